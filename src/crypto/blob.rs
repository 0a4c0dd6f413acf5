//! The stored blob envelope:
//! `version (1) || nonce (12) || AES-256-GCM(flag (1) || body)`, where `flag` says whether
//! `body` is zstd-compressed (only when that makes it smaller). The associated data binds the
//! ciphertext to its version, kind and id, so the server cannot pass off one blob as another.
//! See `docs/FORMAT.md`.

use bytes::{Bytes, BytesMut};
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::{Deserialize, Serialize};

use super::keys::LibraryKeys;
use super::{CryptoError, ObjectId};

pub const BLOB_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The smallest possible blob: header, nonce, flag byte and tag.
pub const MIN_BLOB_LEN: usize = 1 + NONCE_LEN + 1 + TAG_LEN;
/// Bytes a blob adds to its (possibly compressed) plaintext.
pub const OVERHEAD: usize = MIN_BLOB_LEN;

const RAW: u8 = 0;
const ZSTD: u8 = 1;
const ZSTD_LEVEL: i32 = 3;
/// Larger plaintexts are compressed only if a trial on their first bytes shows a gain.
const TRIAL_LEN: usize = 64 * 1024;

/// What a blob holds. The server sees this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    Chunk,
    Tree,
    Snapshot,
}

impl BlobKind {
    pub fn code(self) -> u8 {
        match self {
            BlobKind::Chunk => 1,
            BlobKind::Tree => 2,
            BlobKind::Snapshot => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(BlobKind::Chunk),
            2 => Some(BlobKind::Tree),
            3 => Some(BlobKind::Snapshot),
            _ => None,
        }
    }
}

fn associated_data(kind: BlobKind, id: &ObjectId) -> [u8; 34] {
    let mut aad = [0u8; 34];
    aad[0] = BLOB_VERSION;
    aad[1] = kind.code();
    aad[2..].copy_from_slice(id.as_bytes());
    aad
}

fn worth_compressing(plaintext: &[u8]) -> bool {
    if plaintext.len() <= TRIAL_LEN * 2 {
        return true;
    }
    // Random or already-compressed data shows no gain on a sample; skip the full attempt.
    match zstd::bulk::compress(&plaintext[..TRIAL_LEN], 1) {
        Ok(sample) => sample.len() < TRIAL_LEN * 97 / 100,
        Err(_) => false,
    }
}

/// The bulk cipher: ring's AES-256-GCM (VAES/CLMUL assembly), several times faster than a
/// portable implementation on the hot paths (backup, restore, mount reads). The envelope is
/// plain AES-256-GCM either way; see docs/DECISIONS.md.
fn cipher(keys: &LibraryKeys) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, keys.blob.as_bytes()).expect("AES-256 takes a 32-byte key"),
    )
}

impl LibraryKeys {
    /// Computes the id of `plaintext` and seals it into a blob.
    pub fn seal(&self, kind: BlobKind, plaintext: &[u8]) -> (ObjectId, Vec<u8>) {
        let id = self.id.id_of(plaintext);
        (id, self.seal_with_id(kind, &id, plaintext))
    }

    /// Seals `plaintext` whose id the caller already computed.
    pub fn seal_with_id(&self, kind: BlobKind, id: &ObjectId, plaintext: &[u8]) -> Vec<u8> {
        let compressed = if worth_compressing(plaintext) {
            zstd::bulk::compress(plaintext, ZSTD_LEVEL)
                .ok()
                .filter(|c| c.len() < plaintext.len())
        } else {
            None
        };
        let (flag, body) = match &compressed {
            Some(c) => (ZSTD, c.as_slice()),
            None => (RAW, plaintext),
        };
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // One buffer, encrypted in place: the body is copied once.
        let header = 1 + NONCE_LEN;
        let mut out = Vec::with_capacity(header + 1 + body.len() + TAG_LEN);
        out.push(BLOB_VERSION);
        out.extend_from_slice(&nonce);
        out.push(flag);
        out.extend_from_slice(body);
        let tag = cipher(self)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(kind, id)),
                &mut out[header..],
            )
            .expect("AES-GCM encryption fails only past 64 GiB");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Opens a blob and checks that its plaintext really has id `id`. The plaintext is
    /// decrypted in place in one copy of the blob; no further copy is made for raw content.
    pub fn open(&self, kind: BlobKind, id: &ObjectId, blob: &[u8]) -> Result<Bytes, CryptoError> {
        self.open_owned(kind, id, BytesMut::from(blob))
    }

    /// [`LibraryKeys::open`] of a blob the caller hands over: decrypted in its own buffer,
    /// which raw content then is, without a copy.
    pub fn open_owned(
        &self,
        kind: BlobKind,
        id: &ObjectId,
        mut blob: BytesMut,
    ) -> Result<Bytes, CryptoError> {
        if blob.len() < MIN_BLOB_LEN {
            return Err(CryptoError::Truncated(blob.len()));
        }
        if blob[0] != BLOB_VERSION {
            return Err(CryptoError::Version(blob[0]));
        }
        let header = 1 + NONCE_LEN;
        let nonce =
            Nonce::try_assume_unique_for_key(&blob[1..header]).map_err(|_| CryptoError::Decrypt)?;
        // Ciphertext and tag, opened in place; the tag's bytes are cut off after.
        let opened = cipher(self)
            .open_in_place(
                nonce,
                Aad::from(associated_data(kind, id)),
                &mut blob[header..],
            )
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        let inner = blob.freeze().slice(header..header + opened);
        let plaintext = match inner.first() {
            Some(&RAW) => inner.slice(1..),
            Some(&ZSTD) => Bytes::from(
                zstd::stream::decode_all(&inner[1..])
                    .map_err(|e| CryptoError::Decompress(e.to_string()))?,
            ),
            _ => return Err(CryptoError::Decrypt),
        };
        if self.id.id_of(&plaintext) != *id {
            return Err(CryptoError::IdMismatch(*id));
        }
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SymmetricKey;

    fn new_keys() -> LibraryKeys {
        LibraryKeys::derive(&SymmetricKey::generate())
    }

    #[test]
    fn round_trip_compressible_and_random() {
        let keys = new_keys();
        let text = b"hello hello hello hello hello hello hello".repeat(1000);
        let mut random = vec![0u8; 300_000];
        rand::rngs::OsRng.fill_bytes(&mut random);
        for plaintext in [&text[..], &random[..], b""] {
            let (id, blob) = keys.seal(BlobKind::Chunk, plaintext);
            assert_eq!(
                keys.open(BlobKind::Chunk, &id, &blob).unwrap().as_ref(),
                plaintext
            );
        }
        let (_, blob) = keys.seal(BlobKind::Chunk, &text);
        assert!(
            blob.len() < text.len() / 10,
            "repetitive text is compressed"
        );
        let (_, blob) = keys.seal(BlobKind::Chunk, &random);
        assert_eq!(
            blob.len(),
            random.len() + OVERHEAD,
            "random data is stored raw"
        );
    }

    #[test]
    fn the_envelope_is_standard_aes_gcm() {
        // A blob sealed with the RustCrypto implementation (as the first releases did)
        // opens, and the other way round: the format did not change with the library.
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let keys = new_keys();
        let plaintext = vec![5u8; 200_000];
        let (id, blob) = keys.seal(BlobKind::Chunk, &plaintext);
        let other = aes_gcm::Aes256Gcm::new(keys.blob.as_bytes().into());
        let aad = associated_data(BlobKind::Chunk, &id);
        let inner = other
            .decrypt(
                aes_gcm::Nonce::from_slice(&blob[1..13]),
                Payload {
                    msg: &blob[13..],
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(inner[0], ZSTD);
        let mut raw = vec![RAW];
        raw.extend_from_slice(&plaintext);
        let nonce = [9u8; NONCE_LEN];
        let mut old = vec![BLOB_VERSION];
        old.extend_from_slice(&nonce);
        old.extend(
            other
                .encrypt(
                    aes_gcm::Nonce::from_slice(&nonce),
                    Payload {
                        msg: &raw,
                        aad: &aad,
                    },
                )
                .unwrap(),
        );
        assert_eq!(keys.open(BlobKind::Chunk, &id, &old).unwrap(), plaintext);
    }

    #[test]
    fn plaintext_does_not_appear_in_blob() {
        let keys = new_keys();
        let (_, blob) = keys.seal(BlobKind::Chunk, b"UNIQUE-MARKER-1234");
        assert!(!blob.windows(18).any(|w| w == b"UNIQUE-MARKER-1234"));
    }

    #[test]
    fn substitution_and_tampering_are_detected() {
        let keys = new_keys();
        let (id_a, blob_a) = keys.seal(BlobKind::Chunk, b"a");
        let (id_b, _) = keys.seal(BlobKind::Chunk, b"b");
        assert!(
            keys.open(BlobKind::Chunk, &id_b, &blob_a).is_err(),
            "wrong id"
        );
        assert!(
            keys.open(BlobKind::Tree, &id_a, &blob_a).is_err(),
            "wrong kind"
        );
        let mut bad = blob_a.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(
            keys.open(BlobKind::Chunk, &id_a, &bad).is_err(),
            "flipped bit"
        );
        let mut future = blob_a;
        future[0] = 9;
        assert!(matches!(
            keys.open(BlobKind::Chunk, &id_a, &future),
            Err(CryptoError::Version(9))
        ));
        assert!(
            new_keys().open(BlobKind::Chunk, &id_a, &bad).is_err(),
            "other library's key"
        );
    }
}
