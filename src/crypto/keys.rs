//! Keys: symmetric keys with AES-256-GCM wrapping, the account's X25519 key pair with sealed
//! boxes, and a library's key with the two subkeys derived from it.
//!
//! Key material is zeroized on drop and never printed (no `Debug` shows bytes).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::id::IdKey;
use super::CryptoError;

const NONCE_LEN: usize = 12;

/// A 256-bit symmetric key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SymmetricKey([u8; 32]);

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(..)")
    }
}

impl SymmetricKey {
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::Key("not 32 bytes"))?;
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&self.0).into())
    }

    /// Encrypts a small secret (a key): `nonce (12) || AES-256-GCM(secret)`.
    pub fn wrap(&self, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), secret)
            .expect("AES-GCM encryption of a small buffer cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    /// Reverses [`wrap`](Self::wrap); fails if the key is wrong or the data was altered.
    pub fn unwrap_secret(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if wrapped.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Truncated(wrapped.len()));
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Decrypt)
    }

    /// Shows a key for a person to write down: 64 hex digits in groups of eight.
    pub fn to_display_groups(&self) -> String {
        let hex = Zeroizing::new(hex::encode(self.0));
        hex.as_bytes()
            .chunks(8)
            .map(|group| std::str::from_utf8(group).expect("hex is ASCII"))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Parses what [`to_display_groups`](Self::to_display_groups) printed, forgiving spaces,
    /// dashes and case.
    pub fn from_display_groups(text: &str) -> Result<Self, CryptoError> {
        let digits: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| c.is_ascii_hexdigit()).collect());
        let mut key = [0u8; 32];
        hex::decode_to_slice(digits.as_str(), &mut key)
            .map_err(|_| CryptoError::Key("a recovery key is 64 hex digits"))?;
        Ok(Self(key))
    }
}

/// The account's X25519 key pair; library keys are sealed to its public half.
pub struct AccountKeyPair {
    secret: crypto_box::SecretKey,
}

impl AccountKeyPair {
    pub fn generate() -> Self {
        Self {
            secret: crypto_box::SecretKey::generate(&mut rand::rngs::OsRng),
        }
    }

    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::Key("private key is not 32 bytes"))?;
        Ok(Self {
            secret: crypto_box::SecretKey::from(bytes),
        })
    }

    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    pub fn public_bytes(&self) -> [u8; 32] {
        *self.secret.public_key().as_bytes()
    }

    /// Seals `secret` so that only the holder of `public`'s private key can open it.
    pub fn seal_to(public: &[u8], secret: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| CryptoError::Key("public key is not 32 bytes"))?;
        crypto_box::PublicKey::from(public)
            .seal(&mut rand::rngs::OsRng, secret)
            .map_err(|_| CryptoError::Key("sealing failed"))
    }

    /// Opens a box sealed to this key pair.
    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.secret
            .unseal(sealed)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Decrypt)
    }
}

/// The keys of one library, derived from its 32-byte library key: one names objects, the
/// other encrypts them. Deriving both from one secret means sharing a library shares one key.
#[derive(Clone)]
pub struct LibraryKeys {
    pub id: IdKey,
    pub blob: SymmetricKey,
}

impl LibraryKeys {
    pub fn derive(library_key: &SymmetricKey) -> Self {
        let key = library_key.as_bytes();
        Self {
            id: IdKey::new(blake3::derive_key("ibackup 2026-11 library object id", key)),
            blob: SymmetricKey::from_bytes(blake3::derive_key("ibackup 2026-11 library blob", key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trip_and_tamper_detection() {
        let key = SymmetricKey::generate();
        let mut wrapped = key.wrap(b"library key bytes");
        assert_eq!(
            key.unwrap_secret(&wrapped).unwrap().as_slice(),
            b"library key bytes"
        );
        assert!(SymmetricKey::generate().unwrap_secret(&wrapped).is_err());
        wrapped[14] ^= 1;
        assert!(key.unwrap_secret(&wrapped).is_err());
    }

    #[test]
    fn sealed_boxes_open_only_for_the_recipient() {
        let alice = AccountKeyPair::generate();
        let bob = AccountKeyPair::generate();
        let sealed = AccountKeyPair::seal_to(&alice.public_bytes(), b"secret").unwrap();
        assert_eq!(alice.open(&sealed).unwrap().as_slice(), b"secret");
        assert!(bob.open(&sealed).is_err());
        let restored = AccountKeyPair::from_secret_bytes(alice.secret_bytes().as_ref()).unwrap();
        assert_eq!(restored.public_bytes(), alice.public_bytes());
    }

    #[test]
    fn recovery_key_display_round_trip() {
        let key = SymmetricKey::generate();
        let shown = key.to_display_groups();
        assert_eq!(shown.len(), 64 + 7);
        let parsed = SymmetricKey::from_display_groups(&shown.to_uppercase()).unwrap();
        assert_eq!(parsed.as_bytes(), key.as_bytes());
        assert!(SymmetricKey::from_display_groups("1234").is_err());
    }

    #[test]
    fn library_subkeys_differ() {
        let keys = LibraryKeys::derive(&SymmetricKey::generate());
        assert_ne!(keys.id.id_of(b"x").as_bytes(), keys.blob.as_bytes());
    }
}
