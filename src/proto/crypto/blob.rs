//! The stored blob envelope (version 2):
//! `version (1) || epoch (4, big-endian) || nonce (12) || AES-256-GCM(flag (1) || body)`,
//! where `flag` says whether `body` is zstd-compressed (only when that makes it smaller).
//! The associated data binds the ciphertext to its version, epoch, kind and id, so the
//! server cannot pass off one blob as another.
//!
//! Chunks and trees are sealed under their own [`ObjectKey`] (derived from their plaintext
//! under the epoch's convergence key; their id derives from the key). Snapshots are sealed
//! under the epoch's snapshot key and named by a keyed hash of their plaintext, so every
//! member can list them. See `docs/FORMAT.md`.

use bytes::{Bytes, BytesMut};
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::{Deserialize, Serialize};

use super::epoch::LibraryKeys;
use super::{CryptoError, ObjectId, ObjectKey};

pub const BLOB_VERSION: u8 = 2;
const EPOCH_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + EPOCH_LEN + NONCE_LEN;
/// The smallest possible blob: header, nonce, flag byte and tag.
pub const MIN_BLOB_LEN: usize = HEADER_LEN + 1 + TAG_LEN;
/// Bytes a blob adds to its (possibly compressed) plaintext.
pub const OVERHEAD: usize = MIN_BLOB_LEN;

/// The inner envelope's first byte. `RAW` and `ZSTD` (the body follows) are what blobs
/// before padding hold; `RAW_PADDED` and `ZSTD_PADDED` (issue 14) are followed by the
/// body's length (u32, little-endian), the body, and zeros up to the Padmé length of the
/// whole inner envelope, so a blob's size says little more than its order of magnitude.
const RAW: u8 = 0;
const ZSTD: u8 = 1;
const RAW_PADDED: u8 = 2;
const ZSTD_PADDED: u8 = 3;
const LEN_LEN: usize = 4;
const ZSTD_LEVEL: i32 = 3;
/// Larger plaintexts are compressed only if a trial on their first bytes shows a gain.
const TRIAL_LEN: usize = 64 * 1024;
/// The most a blob may expand to: a chunk is at most the chunker's maximum; a tree or
/// snapshot far more than any real directory needs. A writer cannot plant a small blob
/// that expands to gigabytes in every reader.
const MAX_CHUNK_PLAINTEXT: u64 = 4 << 20;
const MAX_METADATA_PLAINTEXT: u64 = 256 << 20;

fn max_plaintext(kind: BlobKind) -> u64 {
    match kind {
        BlobKind::Chunk => MAX_CHUNK_PLAINTEXT,
        BlobKind::Tree | BlobKind::Snapshot => MAX_METADATA_PLAINTEXT,
    }
}

/// The largest zstd window a blob may ask a reader for (2^24 = 16 MiB). What this client
/// writes (level 3) uses at most 2^21; zstd would otherwise allow 2^27 (128 MiB) per
/// reader, which a hostile writer could ask of every member for every blob.
const MAX_WINDOW_LOG: u32 = 24;

/// Decompresses at most `limit` bytes; more is an error, not an allocation.
fn decompress(body: &[u8], limit: u64) -> Result<Vec<u8>, CryptoError> {
    use std::io::Read;
    let mut decoder = zstd::stream::read::Decoder::new(body)
        .map_err(|e| CryptoError::Decompress(e.to_string()))?;
    decoder
        .window_log_max(MAX_WINDOW_LOG)
        .map_err(|e| CryptoError::Decompress(e.to_string()))?;
    let mut out = Vec::new();
    decoder
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| CryptoError::Decompress(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(CryptoError::Decompress(format!(
            "it expands past {limit} bytes, more than such an object can hold"
        )));
    }
    Ok(out)
}

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

/// The epoch a blob's header names, as the server may read it; `None` if it is no
/// version-2 blob.
pub fn blob_epoch(blob: &[u8]) -> Option<u32> {
    if blob.len() < MIN_BLOB_LEN || blob[0] != BLOB_VERSION {
        return None;
    }
    Some(u32::from_be_bytes(blob[1..5].try_into().expect("4 bytes")))
}

fn associated_data(epoch: u32, kind: BlobKind, id: &ObjectId) -> [u8; 38] {
    let mut aad = [0u8; 38];
    aad[0] = BLOB_VERSION;
    aad[1..5].copy_from_slice(&epoch.to_be_bytes());
    aad[5] = kind.code();
    aad[6..].copy_from_slice(id.as_bytes());
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
fn cipher(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("AES-256 takes a 32-byte key"))
}

fn seal(key: &[u8; 32], epoch: u32, kind: BlobKind, id: &ObjectId, plaintext: &[u8]) -> Vec<u8> {
    let compressed = if worth_compressing(plaintext) {
        zstd::bulk::compress(plaintext, ZSTD_LEVEL)
            .ok()
            .filter(|c| c.len() < plaintext.len())
    } else {
        None
    };
    let (flag, body) = match &compressed {
        Some(c) => (ZSTD_PADDED, c.as_slice()),
        None => (RAW_PADDED, plaintext),
    };
    let inner = 1 + LEN_LEN + body.len();
    let padding = padme(inner as u64) as usize - inner;
    let len = u32::try_from(body.len()).expect("blobs are far below 4 GiB");
    seal_parts(
        key,
        epoch,
        kind,
        id,
        flag,
        &[&len.to_le_bytes(), body],
        padding,
    )
}

/// Padmé (Nikitin et al., PETS 2019): `len` rounded up so that only its top bits vary,
/// at most about 1/2^(log2 log2 len) more (12 % for 100 bytes, 3 % for 1 MiB); a padded
/// length reveals O(log log len) bits instead of O(log len).
pub fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let exponent = 63 - u64::from(len.leading_zeros());
    let bits_of_exponent = 64 - u64::from(exponent.leading_zeros());
    let mask = (1u64 << (exponent - bits_of_exponent)) - 1;
    (len + mask) & !mask
}

/// The largest blob a plaintext of `len` bytes seals to (padding included).
pub fn max_sealed_len(len: usize) -> usize {
    HEADER_LEN + padme((1 + LEN_LEN + len) as u64) as usize + TAG_LEN
}

/// Seals `inner` (the compression flag, then the body) as it is: what a writer holding the
/// key can make, for the fuzz harness.
pub fn seal_envelope(key: &ObjectKey, kind: BlobKind, inner: &[u8]) -> Vec<u8> {
    let (flag, body) = inner.split_first().map_or((RAW, inner), |(f, b)| (*f, b));
    seal_parts(key.as_bytes(), 1, kind, &key.id(), flag, &[body], 0)
}

/// Seals `flag`, the `parts` in order and `padding` zeros.
fn seal_parts(
    key: &[u8; 32],
    epoch: u32,
    kind: BlobKind,
    id: &ObjectId,
    flag: u8,
    parts: &[&[u8]],
    padding: usize,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let body_len: usize = parts.iter().map(|p| p.len()).sum();
    // One buffer, encrypted in place: the body is copied once.
    let mut out = Vec::with_capacity(HEADER_LEN + 1 + body_len + padding + TAG_LEN);
    out.push(BLOB_VERSION);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.push(flag);
    for part in parts {
        out.extend_from_slice(part);
    }
    out.resize(out.len() + padding, 0);
    let tag = cipher(key)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated_data(epoch, kind, id)),
            &mut out[HEADER_LEN..],
        )
        .expect("AES-GCM encryption fails only past 64 GiB");
    out.extend_from_slice(tag.as_ref());
    out
}

/// Opens a blob in its own buffer (raw content is then that buffer, without a copy);
/// returns the epoch its header named and the plaintext.
fn open(
    key: &[u8; 32],
    kind: BlobKind,
    id: &ObjectId,
    mut blob: BytesMut,
) -> Result<(u32, Bytes), CryptoError> {
    if blob.len() < MIN_BLOB_LEN {
        return Err(CryptoError::Truncated(blob.len()));
    }
    if blob[0] != BLOB_VERSION {
        return Err(CryptoError::Version(blob[0]));
    }
    let epoch = u32::from_be_bytes(blob[1..5].try_into().expect("4 bytes"));
    let nonce = Nonce::try_assume_unique_for_key(&blob[1 + EPOCH_LEN..HEADER_LEN])
        .map_err(|_| CryptoError::Decrypt)?;
    // Ciphertext and tag, opened in place; the tag's bytes are cut off after.
    let opened = cipher(key)
        .open_in_place(
            nonce,
            Aad::from(associated_data(epoch, kind, id)),
            &mut blob[HEADER_LEN..],
        )
        .map_err(|_| CryptoError::Decrypt)?
        .len();
    let inner = blob.freeze().slice(HEADER_LEN..HEADER_LEN + opened);
    let (flag, body) = match inner.first() {
        Some(&flag @ (RAW | ZSTD)) => (flag, inner.slice(1..)),
        Some(&flag @ (RAW_PADDED | ZSTD_PADDED)) => {
            let len = inner
                .get(1..1 + LEN_LEN)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                .ok_or(CryptoError::Decrypt)?;
            let start = 1 + LEN_LEN;
            if len > inner.len() - start {
                return Err(CryptoError::Decrypt);
            }
            let unpadded = if flag == RAW_PADDED { RAW } else { ZSTD };
            (unpadded, inner.slice(start..start + len))
        }
        _ => return Err(CryptoError::Decrypt),
    };
    let plaintext = if flag == RAW {
        body
    } else {
        Bytes::from(decompress(&body, max_plaintext(kind))?)
    };
    Ok((epoch, plaintext))
}

impl ObjectKey {
    /// Opens a chunk or tree with its key alone (what a link holder has). Integrity rests
    /// on AES-GCM under a key the server never saw; see [`LibraryKeys::open_object`] for the
    /// members' further check.
    pub fn open(&self, kind: BlobKind, blob: BytesMut) -> Result<Bytes, CryptoError> {
        Ok(open(self.as_bytes(), kind, &self.id(), blob)?.1)
    }
}

impl LibraryKeys {
    /// The key (and so the id) `plaintext` gets as a `kind` object under the newest epoch.
    pub fn object_key(&self, kind: BlobKind, plaintext: &[u8]) -> ObjectKey {
        self.newest().convergence.object_key(kind.code(), plaintext)
    }

    /// Seals a chunk or tree whose key [`object_key`](Self::object_key) gave.
    pub fn seal_object(&self, kind: BlobKind, key: &ObjectKey, plaintext: &[u8]) -> Vec<u8> {
        seal(
            key.as_bytes(),
            self.newest().epoch,
            kind,
            &key.id(),
            plaintext,
        )
    }

    /// Opens a chunk or tree and checks that the key really derives from the plaintext
    /// under the convergence key of the epoch that made it, so a writer cannot store
    /// content under a key that names other content (dedup poisoning). A blob naming an
    /// epoch this reader does not hold is refused: anyone who holds the object's key alone
    /// (a link visitor, a member who may only read) could seal other contents under it and
    /// name an epoch nobody holds to skip the check (issue 26).
    pub fn open_object(
        &self,
        kind: BlobKind,
        key: &ObjectKey,
        blob: BytesMut,
    ) -> Result<Bytes, CryptoError> {
        let id = key.id();
        let (epoch, plaintext) = open(key.as_bytes(), kind, &id, blob)?;
        let keys = self.epoch(epoch).ok_or(CryptoError::UnknownEpoch(epoch))?;
        if keys.convergence.object_key(kind.code(), &plaintext) != *key {
            return Err(CryptoError::IdMismatch(id));
        }
        Ok(plaintext)
    }

    /// Computes a snapshot's id and seals it under the newest epoch's snapshot key.
    pub fn seal_snapshot(&self, plaintext: &[u8]) -> (ObjectId, Vec<u8>) {
        let keys = self.newest();
        let id = keys.snapshot_id.id_of(plaintext);
        let blob = seal(
            keys.snapshot.as_bytes(),
            keys.epoch,
            BlobKind::Snapshot,
            &id,
            plaintext,
        );
        (id, blob)
    }

    /// Opens a snapshot under the epoch its header names and checks it has id `id`.
    pub fn open_snapshot(&self, id: &ObjectId, blob: BytesMut) -> Result<Bytes, CryptoError> {
        let epoch = blob_epoch(&blob).ok_or_else(|| match blob.first() {
            Some(&version) if version != BLOB_VERSION => CryptoError::Version(version),
            _ => CryptoError::Truncated(blob.len()),
        })?;
        let keys = self.epoch(epoch).ok_or(CryptoError::UnknownEpoch(epoch))?;
        let (_, plaintext) = open(keys.snapshot.as_bytes(), BlobKind::Snapshot, id, blob)?;
        if keys.snapshot_id.id_of(&plaintext) != *id {
            return Err(CryptoError::IdMismatch(*id));
        }
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_chunk(keys: &LibraryKeys, plaintext: &[u8]) -> (ObjectKey, Vec<u8>) {
        let key = keys.object_key(BlobKind::Chunk, plaintext);
        (key, keys.seal_object(BlobKind::Chunk, &key, plaintext))
    }

    fn owned(blob: &[u8]) -> BytesMut {
        BytesMut::from(blob)
    }

    #[test]
    fn round_trip_compressible_and_random() {
        let keys = LibraryKeys::generate();
        let text = b"hello hello hello hello hello hello hello".repeat(1000);
        let mut random = vec![0u8; 300_000];
        rand::rngs::OsRng.fill_bytes(&mut random);
        for plaintext in [&text[..], &random[..], b""] {
            let (key, blob) = seal_chunk(&keys, plaintext);
            assert_eq!(
                keys.open_object(BlobKind::Chunk, &key, owned(&blob))
                    .unwrap()
                    .as_ref(),
                plaintext
            );
            assert_eq!(
                key.open(BlobKind::Chunk, owned(&blob)).unwrap().as_ref(),
                plaintext,
                "the key alone opens it"
            );
        }
        let (_, blob) = seal_chunk(&keys, &text);
        assert!(
            blob.len() < text.len() / 10,
            "repetitive text is compressed"
        );
        let (_, blob) = seal_chunk(&keys, &random);
        assert_eq!(
            blob.len(),
            HEADER_LEN + padme((1 + LEN_LEN + random.len()) as u64) as usize + TAG_LEN,
            "random data is stored raw, padded"
        );
        assert!(blob.len() <= max_sealed_len(random.len()));
        assert_eq!(blob_epoch(&blob), Some(1));
    }

    #[test]
    fn the_envelope_is_standard_aes_gcm() {
        // ring seals, RustCrypto opens (and the other way round): plain AES-256-GCM.
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let keys = LibraryKeys::generate();
        let plaintext = vec![5u8; 200_000];
        let (key, blob) = seal_chunk(&keys, &plaintext);
        let other = aes_gcm::Aes256Gcm::new(key.as_bytes().into());
        let aad = associated_data(1, BlobKind::Chunk, &key.id());
        let inner = other
            .decrypt(
                aes_gcm::Nonce::from_slice(&blob[5..17]),
                Payload {
                    msg: &blob[17..],
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(inner[0], ZSTD_PADDED);
        let mut raw = vec![RAW];
        raw.extend_from_slice(&plaintext);
        let nonce = [9u8; NONCE_LEN];
        let mut made = vec![BLOB_VERSION, 0, 0, 0, 1];
        made.extend_from_slice(&nonce);
        made.extend(
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
        assert_eq!(
            keys.open_object(BlobKind::Chunk, &key, owned(&made))
                .unwrap(),
            plaintext
        );
    }

    #[test]
    fn plaintext_does_not_appear_in_blob() {
        let keys = LibraryKeys::generate();
        let (_, blob) = seal_chunk(&keys, b"UNIQUE-MARKER-1234");
        assert!(!blob.windows(18).any(|w| w == b"UNIQUE-MARKER-1234"));
    }

    #[test]
    fn substitution_and_tampering_are_detected() {
        let keys = LibraryKeys::generate();
        let (key_a, blob_a) = seal_chunk(&keys, b"a");
        let (key_b, _) = seal_chunk(&keys, b"b");
        let open = |key: &ObjectKey, kind, blob: &[u8]| keys.open_object(kind, key, owned(blob));
        assert!(open(&key_b, BlobKind::Chunk, &blob_a).is_err(), "wrong key");
        assert!(open(&key_a, BlobKind::Tree, &blob_a).is_err(), "wrong kind");
        let mut bad = blob_a.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(open(&key_a, BlobKind::Chunk, &bad).is_err(), "flipped bit");
        let mut other_epoch = blob_a.clone();
        other_epoch[4] = 2;
        assert!(
            open(&key_a, BlobKind::Chunk, &other_epoch).is_err(),
            "epoch is bound"
        );
        let mut future = blob_a;
        future[0] = 9;
        assert!(matches!(
            open(&key_a, BlobKind::Chunk, &future),
            Err(CryptoError::Version(9))
        ));
    }

    #[test]
    fn a_writer_cannot_store_other_content_under_a_key() {
        // The key of "a", used to seal "evil": the key alone opens it, a member refuses it.
        let keys = LibraryKeys::generate();
        let key = keys.object_key(BlobKind::Chunk, b"a");
        let poisoned = keys.seal_object(BlobKind::Chunk, &key, b"evil");
        assert!(matches!(
            keys.open_object(BlobKind::Chunk, &key, owned(&poisoned)),
            Err(CryptoError::IdMismatch(_))
        ));
    }

    #[test]
    fn an_object_naming_an_epoch_the_reader_lacks_is_refused() {
        // The key of "a" used to seal "evil" under epoch 2, which this reader does not hold.
        let keys = LibraryKeys::generate();
        let key = keys.object_key(BlobKind::Chunk, b"a");
        let forged = seal(key.as_bytes(), 2, BlobKind::Chunk, &key.id(), b"evil");
        assert!(matches!(
            keys.open_object(BlobKind::Chunk, &key, owned(&forged)),
            Err(CryptoError::UnknownEpoch(2))
        ));
    }

    #[test]
    fn padded_sizes_hide_all_but_the_top_bits() {
        assert_eq!(padme(0), 0);
        assert_eq!(padme(1), 1);
        assert_eq!(padme(100), 104);
        assert_eq!(padme(1 << 20), 1 << 20);
        assert_eq!(padme((1 << 20) + 1), (1 << 20) + (1 << 15));
        for len in [5u64, 77, 1000, 65_537, 1_000_000, 4 << 20, 123_456_789] {
            let padded = padme(len);
            assert!(
                padded >= len && padded - len <= len / 8 + 1,
                "{len} -> {padded}"
            );
            assert_eq!(padme(padded), padded);
        }
        // Files of sizes near each other are stored at one size.
        let keys = LibraryKeys::generate();
        let random = |n: usize| (0..n).map(|_| rand::random::<u8>()).collect::<Vec<_>>();
        let sizes: std::collections::HashSet<usize> = (60_000..60_100)
            .map(|n| seal_chunk(&keys, &random(n)).1.len())
            .collect();
        assert!(sizes.len() <= 2, "{sizes:?}");
    }

    #[test]
    fn a_blob_that_asks_for_a_huge_window_is_refused() {
        use std::io::Write;
        // Found by the fuzzer (tests/fuzz.rs): a frame may ask for a 128 MiB window.
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(27).unwrap();
        encoder.write_all(&[7u8; 1000]).unwrap();
        let frame = encoder.finish().unwrap();
        let key = ObjectKey::from_bytes([4; 32]);
        let sealed = seal_envelope(&key, BlobKind::Chunk, &[&[ZSTD][..], &frame].concat());
        let opened = key.open(BlobKind::Chunk, owned(&sealed));
        assert!(
            matches!(opened, Err(CryptoError::Decompress(_))),
            "{opened:?}"
        );
        // What this client writes opens.
        let plain = vec![7u8; 3 << 20];
        let keys = LibraryKeys::generate();
        let (key, blob) = seal_chunk(&keys, &plain);
        assert_eq!(
            key.open(BlobKind::Chunk, owned(&blob)).unwrap().len(),
            3 << 20
        );
    }

    #[test]
    fn a_blob_that_expands_past_its_kind_is_refused() {
        // A writer could seal 5 MiB of zeros as a "chunk" (a few hundred bytes stored);
        // readers refuse it instead of allocating what it expands to.
        let keys = LibraryKeys::generate();
        let zeros = vec![0u8; 5 << 20];
        let (key, blob) = seal_chunk(&keys, &zeros);
        assert!(blob.len() < 4096);
        assert!(matches!(
            key.open(BlobKind::Chunk, owned(&blob)),
            Err(CryptoError::Decompress(_))
        ));
        let limit = vec![0u8; 4 << 20];
        let (key, blob) = seal_chunk(&keys, &limit);
        assert_eq!(
            key.open(BlobKind::Chunk, owned(&blob)).unwrap().len(),
            4 << 20
        );
    }

    #[test]
    fn snapshots_open_under_their_epoch() {
        let first = LibraryKeys::generate();
        let (id, blob) = first.seal_snapshot(b"snapshot one");
        let (second, _) = first.rotate("00112233445566778899aabbccddeeff").unwrap();
        let (id2, blob2) = second.seal_snapshot(b"snapshot two");
        assert_eq!(blob_epoch(&blob2), Some(2));
        assert_eq!(
            second.open_snapshot(&id, owned(&blob)).unwrap().as_ref(),
            b"snapshot one"
        );
        assert!(matches!(
            first.open_snapshot(&id2, owned(&blob2)),
            Err(CryptoError::UnknownEpoch(2))
        ));
        assert!(second.open_snapshot(&id2, owned(&blob)).is_err());
        assert!(LibraryKeys::generate()
            .open_snapshot(&id, owned(&blob))
            .is_err());
    }
}
