//! Keys: symmetric keys with AES-256-GCM wrapping, and the account's X25519 key pair with
//! sealed boxes (anonymous: recovery challenges) and authenticated boxes (key grants, which
//! the recipient checks against the granter's public key).
//!
//! Key material is zeroized on drop and never printed (no `Debug` shows bytes).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use crypto_box::aead::AeadCore;
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

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
        self.open_bound(b"", wrapped)
    }

    /// [`wrap`](Self::wrap) bound to `context` (AES-GCM associated data): it opens only
    /// with the same context, so a wrapped value cannot be moved to another place.
    pub fn seal_bound(&self, context: &[u8], secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret,
            aad: context,
        };
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM encryption of a small buffer cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    /// Reverses [`seal_bound`](Self::seal_bound) with the same `context`.
    pub fn open_bound(
        &self,
        context: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if wrapped.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Truncated(wrapped.len()));
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: context,
        };
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Decrypt)
    }

    /// What proves to the server that someone holds this recovery key, without showing
    /// it: a one-way derivation the server stores only as a hash. Holding the account's
    /// private key (as a copied session file does) does not give it.
    pub fn recovery_proof(&self) -> [u8; 32] {
        blake3::derive_key("ibackup 2026 recovery proof", &self.0)
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

    /// Encrypts `secret` from this key pair to `recipient`: `nonce (24) || crypto_box`.
    /// Unlike a sealed box it is authenticated: it opens only with the recipient's private
    /// key *and* this pair's public key, so nobody without one of the two private keys (a
    /// server, say) can make one.
    pub fn box_to(&self, recipient: &[u8], secret: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let recipient = public_key(recipient)?;
        let cipher = crypto_box::SalsaBox::new(&recipient, &self.secret);
        let nonce = crypto_box::SalsaBox::generate_nonce(&mut rand::rngs::OsRng);
        let sealed = cipher
            .encrypt(&nonce, secret)
            .map_err(|_| CryptoError::Key("boxing failed"))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// Opens a box made by the holder of `sender`'s private key for this key pair.
    pub fn open_from(
        &self,
        sender: &[u8],
        boxed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        const BOX_NONCE: usize = 24;
        if boxed.len() < BOX_NONCE + 16 {
            return Err(CryptoError::Truncated(boxed.len()));
        }
        let sender = public_key(sender)?;
        let cipher = crypto_box::SalsaBox::new(&sender, &self.secret);
        let (nonce, sealed) = boxed.split_at(BOX_NONCE);
        cipher
            .decrypt(nonce.into(), sealed)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Decrypt)
    }
}

fn public_key(bytes: &[u8]) -> Result<crypto_box::PublicKey, CryptoError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| CryptoError::Key("public key is not 32 bytes"))?;
    Ok(crypto_box::PublicKey::from(bytes))
}

/// How a person compares account keys out of band: 40 hex digits of SHA-256 of the public
/// key, in groups of four (160 bits, beyond a search for a look-alike key).
pub fn fingerprint(public_key: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(public_key);
    let hex = hex::encode(&digest[..20]);
    hex.as_bytes()
        .chunks(4)
        .map(|group| std::str::from_utf8(group).expect("hex is ASCII"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fingerprint as typed by a person (any case, spaces or dashes), reduced to its digits.
pub fn normalize_fingerprint(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != ':')
        .collect::<String>()
        .to_lowercase()
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
    fn bound_wrapping_opens_only_in_its_context() {
        let key = SymmetricKey::generate();
        let wrapped = key.seal_bound(b"library 1 epoch 2", b"secret");
        assert_eq!(
            key.open_bound(b"library 1 epoch 2", &wrapped)
                .unwrap()
                .as_slice(),
            b"secret"
        );
        assert!(key.open_bound(b"library 1 epoch 3", &wrapped).is_err());
        assert!(key.unwrap_secret(&wrapped).is_err());
    }

    #[test]
    fn authenticated_boxes_need_the_senders_key() {
        let alice = AccountKeyPair::generate();
        let bob = AccountKeyPair::generate();
        let mallory = AccountKeyPair::generate();
        let boxed = alice.box_to(&bob.public_bytes(), b"grant").unwrap();
        assert_eq!(
            bob.open_from(&alice.public_bytes(), &boxed)
                .unwrap()
                .as_slice(),
            b"grant"
        );
        // Made by someone else, or opened as if from someone else: refused.
        let forged = mallory.box_to(&bob.public_bytes(), b"grant").unwrap();
        assert!(bob.open_from(&alice.public_bytes(), &forged).is_err());
        assert!(bob.open_from(&mallory.public_bytes(), &boxed).is_err());
        // A box to oneself works too (an owner's own grant).
        let own = alice.box_to(&alice.public_bytes(), b"mine").unwrap();
        assert_eq!(
            alice
                .open_from(&alice.public_bytes(), &own)
                .unwrap()
                .as_slice(),
            b"mine"
        );
    }

    #[test]
    fn fingerprints_are_grouped_and_normalised() {
        let pair = AccountKeyPair::generate();
        let shown = fingerprint(&pair.public_bytes());
        assert_eq!(shown.len(), 40 + 9);
        assert_eq!(
            normalize_fingerprint(&shown.to_uppercase()),
            shown.replace(' ', "")
        );
    }
}
