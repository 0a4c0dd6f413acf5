//! Password-based key derivation (Argon2id).
//!
//! The client derives 64 bytes from the password and the account's salt: the first 32 are
//! the key-encryption key, which never leaves the client; the last 32 are the auth secret,
//! which is sent at login and which the server stores only as an Argon2id hash.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::keys::SymmetricKey;
use super::CryptoError;

/// Argon2id cost parameters, stored per account so they can be raised later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// Stronger than OWASP's minimum (19 MiB, 2 passes): 64 MiB, 3 passes.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Refuses parameters too weak to protect a password, or so costly that a hostile
    /// server could use them to exhaust the client's memory.
    pub fn validate(&self) -> Result<(), String> {
        if self.memory_kib < 19 * 1024 || self.iterations < 2 || self.parallelism < 1 {
            return Err("key derivation parameters are weaker than OWASP's minimum".into());
        }
        if self.memory_kib > 1024 * 1024 || self.iterations > 64 || self.parallelism > 16 {
            return Err("key derivation parameters are unreasonably large".into());
        }
        Ok(())
    }
}

/// The secret sent at login in place of the password.
pub type AuthSecret = Zeroizing<[u8; 32]>;

/// Derives the key-encryption key and the auth secret from a password.
pub fn derive(
    password: &[u8],
    salt: &[u8],
    params: &KdfParams,
) -> Result<(SymmetricKey, AuthSecret), CryptoError> {
    params.validate().map_err(CryptoError::Kdf)?;
    let argon_params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(64),
    )
    .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut out = Zeroizing::new([0u8; 64]);
    argon
        .hash_password_into(password, salt, out.as_mut())
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let mut kek = [0u8; 32];
    kek.copy_from_slice(&out[..32]);
    let mut auth = Zeroizing::new([0u8; 32]);
    auth.copy_from_slice(&out[32..]);
    Ok((SymmetricKey::from_bytes(kek), auth))
}

/// Server side: hashes an auth secret for storage (Argon2id, OWASP parameters).
pub fn hash_auth_secret(secret: &[u8]) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    server_hasher()
        .hash_password(secret, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| CryptoError::Kdf(e.to_string()))
}

/// Server side: checks an auth secret against its stored hash, in constant time.
pub fn verify_auth_secret(secret: &[u8], stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(hash) => server_hasher().verify_password(secret, &hash).is_ok(),
        Err(_) => false,
    }
}

fn server_hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_salted() {
        let params = KdfParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        };
        let (k1, a1) = derive(b"password", b"salt-salt-salt-1", &params).unwrap();
        let (k2, a2) = derive(b"password", b"salt-salt-salt-1", &params).unwrap();
        let (k3, _) = derive(b"password", b"salt-salt-salt-2", &params).unwrap();
        assert_eq!(k1.as_bytes(), k2.as_bytes());
        assert_eq!(*a1, *a2);
        assert_ne!(k1.as_bytes(), k3.as_bytes());
        assert_ne!(k1.as_bytes()[..], a1[..], "the two halves differ");
    }

    #[test]
    fn weak_parameters_are_refused() {
        let weak = KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        assert!(derive(b"pw", b"salt-salt-salt-1", &weak).is_err());
    }

    #[test]
    fn auth_hash_verifies_only_the_right_secret() {
        let stored = hash_auth_secret(b"secret").unwrap();
        assert!(verify_auth_secret(b"secret", &stored));
        assert!(!verify_auth_secret(b"secrex", &stored));
        assert!(!verify_auth_secret(b"secret", "not a hash"));
    }
}
