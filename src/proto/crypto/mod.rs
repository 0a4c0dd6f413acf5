//! Client-side cryptography: key derivation, key wrapping, the blob envelope and object ids.
//!
//! Invariant: nothing leaves the client unencrypted except what the server must see (blob
//! sizes and kinds, the ids a tree references). Every primitive comes from a reviewed crate
//! (RustCrypto, BLAKE3); nothing here is hand-rolled. This module knows nothing of HTTP or
//! files.

pub mod blob;
pub mod epoch;
pub mod id;
pub mod kdf;
pub mod keys;

pub use blob::BlobKind;
pub use epoch::{EpochKeys, LibraryKeys};
pub use id::{IdKey, ObjectId, ObjectKey};
pub use keys::{AccountKeyPair, SymmetricKey};

/// A TLS certificate's fingerprint as servers print it and clients pin it:
/// `SHA256:` and the hex digest of its DER encoding.
pub fn cert_fingerprint(cert_der: &[u8]) -> String {
    use sha2::Digest;
    format!("SHA256:{}", hex::encode(sha2::Sha256::digest(cert_der)))
}

/// What can go wrong in this module. None of these carry key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("decryption failed: wrong key, or the data was altered")]
    Decrypt,
    #[error("unsupported blob format version {0}; a newer ibackup wrote it, please upgrade")]
    Version(u8),
    #[error("blob is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("object {0} does not match its content (corrupted or substituted)")]
    IdMismatch(ObjectId),
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("malformed key: {0}")]
    Key(&'static str),
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error(
        "an object is sealed under key epoch {0}, which your copy of the library keys does \
         not have: it is not used. If the library's key was rotated just now, try again; \
         otherwise it may be forged (run `ibackup check`)"
    )]
    UnknownEpoch(u32),
}
