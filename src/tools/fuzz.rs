//! A mutation fuzzer for every decoder of bytes that a server or a damaged disk can hand
//! the client (docs/SECURITY.md §6). Each target starts from valid encodings (seeds) and
//! feeds its decoder mutations of them: bit flips, interesting bytes and integers, cuts,
//! insertions, repeats and splices. A decoder may refuse any input; it must not panic.
//! `tests/fuzz.rs` runs it with a counting allocator (no single allocation past a bound)
//! for a short pass in the test suite; `scripts/fuzz` runs 10 million inputs per target.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::mount_seeds;
use ibackup_proto::api::frame;
use ibackup_proto::api::types::{SnapshotMeta, UploadHeader, UploadObject};
use ibackup_proto::crypto::{BlobKind, LibraryKeys, ObjectId, ObjectKey};
use ibackup_proto::model::tree::{ChunkRef, Entry, EntryKind, Tree, Xattr};
use ibackup_proto::model::{Snapshot, SnapshotKind, SnapshotSummary};

/// The decoders, by name.
pub const TARGETS: &[&str] = &[
    "blob",
    "blob-inner",
    "tree",
    "snapshot",
    "upload",
    "frames",
    "journal-op",
    "disk-index",
];

/// A decoder that panicked, with the input that did it.
#[derive(Debug)]
pub struct Failure {
    pub target: String,
    pub input: Vec<u8>,
    pub message: String,
}

/// Feeds `inputs` mutated inputs to `target`'s decoder; `seed` makes the run repeatable.
pub fn run(target: &str, inputs: u64, seed: u64) -> Result<(), Failure> {
    let decode = decoder(target);
    let seeds = seeds(target);
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..inputs {
        let input = mutate(&mut rng, &seeds);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| decode(&input))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err(Failure {
                target: target.to_owned(),
                input,
                message,
            });
        }
    }
    Ok(())
}

/// The keys the blob targets seal and open with.
fn keys() -> &'static (LibraryKeys, ObjectKey) {
    static KEYS: OnceLock<(LibraryKeys, ObjectKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let keys = LibraryKeys::generate();
        let key = keys.object_key(BlobKind::Tree, b"fuzz");
        (keys, key)
    })
}

fn decoder(target: &str) -> fn(&[u8]) {
    match target {
        "blob" => |input| {
            let (keys, key) = keys();
            let _ = keys.open_object(BlobKind::Chunk, key, BytesMut::from(input));
            let _ = keys.open_snapshot(&key.id(), BytesMut::from(input));
            let _ = ibackup_proto::crypto::blob::blob_epoch(input);
        },
        // What a writer holding the key can make: any inner envelope (flag and body, e.g. a
        // zstd frame that claims gigabytes), properly sealed.
        "blob-inner" => |input| {
            let (_, key) = keys();
            let sealed = ibackup_proto::crypto::blob::seal_envelope(key, BlobKind::Chunk, input);
            let _ = key.open(BlobKind::Chunk, BytesMut::from(&sealed[..]));
        },
        "tree" => |input| {
            let _ = Tree::decode(input);
        },
        "snapshot" => |input| {
            let _ = Snapshot::decode(input);
        },
        "upload" => |input| {
            let _ = frame::decode_upload(input);
        },
        "frames" => |input| {
            let _ = frame::decode_frames(input);
            let _ = frame::split_frames(BytesMut::from(input));
        },
        "journal-op" => |input| {
            let _ = ibackup_client::mount::disk_formats::decode_journal_op(input);
        },
        "disk-index" => |input| {
            mount_seeds::decode_disk_index(input);
        },
        other => panic!("no fuzz target `{other}`; targets: {}", TARGETS.join(", ")),
    }
}

fn entry(name: &[u8], kind: EntryKind) -> Entry {
    let mut entry = Entry::new(name, kind);
    entry.mode = 0o644;
    entry.mtime_ns = 1_700_000_000_123_456_789;
    entry
}

/// Valid encodings to mutate.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let key = ObjectKey::from_bytes([7; 32]);
    let mut file = entry(b"notes.txt", EntryKind::File);
    file.size = 5000;
    file.chunks = vec![ChunkRef { key, len: 5000 }; 3];
    file.xattrs = vec![Xattr {
        name: b"user.tag".to_vec(),
        value: b"blue".to_vec(),
    }];
    let mut dir = entry(b"docs", EntryKind::Dir);
    dir.subtree = Some(key);
    let mut link = entry(b"latest", EntryKind::Symlink);
    link.target = Some(b"docs/notes.txt".to_vec());
    let mut device = entry(b"null", EntryKind::CharDevice);
    device.rdev = 0x103;
    let mut twin = entry(b"twin", EntryKind::File);
    twin.link = 4;
    twin.nlink = 2;
    twin.atime_ns = Some(5);
    let tree = Tree::new(vec![dir, device, link, file, twin]);
    let snapshot = Snapshot {
        tree: key,
        parent: Some(ObjectId::from_bytes([9; 32])),
        time_ns: 1_795_920_300_000_000_000,
        host: "laptop".into(),
        username: "alice".into(),
        author: "alice@example.com".into(),
        paths: vec!["/home/alice".into()],
        tags: vec!["daily".into()],
        kind: SnapshotKind::Backup,
        summary: SnapshotSummary {
            files: 1,
            dirs: 2,
            bytes: 3,
        },
        generation: 12,
    };
    let blobs = vec![vec![1u8; 40], vec![2u8; 300]];
    let header = UploadHeader {
        objects: vec![
            UploadObject {
                id: ObjectId::from_bytes([1; 32]),
                kind: BlobKind::Chunk,
                len: 40,
                refs: Vec::new(),
                snapshot: None,
            },
            UploadObject {
                id: ObjectId::from_bytes([2; 32]),
                kind: BlobKind::Snapshot,
                len: 300,
                refs: vec![key.id()],
                snapshot: Some(SnapshotMeta {
                    time_ns: 1,
                    parent: None,
                    tag_macs: vec!["ab".repeat(16)],
                }),
            },
        ],
    };
    match target {
        "blob" => {
            let (keys, key) = keys();
            vec![
                keys.seal_object(BlobKind::Chunk, key, b"hello"),
                keys.seal_object(BlobKind::Chunk, key, &[0u8; 5000]),
                keys.seal_snapshot(&snapshot.encode()).1,
            ]
        }
        "blob-inner" => vec![
            [&[0u8][..], b"raw bytes"].concat(),
            [&[2u8][..], &9u32.to_le_bytes(), b"raw bytes", &[0u8; 7]].concat(),
            [
                &[1u8][..],
                &zstd::bulk::compress(&[0u8; 1000], 3).unwrap()[..],
            ]
            .concat(),
        ],
        "tree" => vec![tree.encode(), Tree::new(Vec::new()).encode()],
        "snapshot" => vec![snapshot.encode()],
        "upload" => vec![frame::encode_upload(&header, &blobs)],
        "frames" => vec![frame::encode_frames(blobs.iter().map(Vec::as_slice))],
        "journal-op" => mount_seeds::journal_ops(),
        "disk-index" => vec![mount_seeds::disk_index()],
        _ => Vec::new(),
    }
}

/// Bytes that decoders treat specially: CBOR major types with long lengths, lengths at
/// their limits, the version bytes.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x3b, 0x5b, 0x5f, 0x7b, 0x7f,
    0x9b, 0x9f, 0xbb, 0xbf, 0xf9, 0xfa, 0xfb, 0xff,
];

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.gen_range(0..seeds.len())].clone();
    for _ in 0..rng.gen_range(1..=6) {
        let len = data.len();
        let at = if len == 0 { 0 } else { rng.gen_range(0..len) };
        match rng.gen_range(0..9) {
            0 if len > 0 => data[at] ^= 1 << rng.gen_range(0..8),
            1 if len > 0 => data[at] = INTERESTING[rng.gen_range(0..INTERESTING.len())],
            2 => {
                let count = rng.gen_range(1..=16);
                let bytes: Vec<u8> = (0..count).map(|_| rng.gen()).collect();
                data.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let end = (at + rng.gen_range(1..=32)).min(len);
                data.drain(at..end);
            }
            4 => data.truncate(at),
            5 if len > 0 => {
                let end = (at + rng.gen_range(1..=64)).min(len);
                let piece = data[at..end].to_vec();
                for _ in 0..rng.gen_range(1..=8) {
                    data.splice(at..at, piece.iter().copied());
                }
            }
            6 => {
                let other = &seeds[rng.gen_range(0..seeds.len())];
                if !other.is_empty() {
                    let from = rng.gen_range(0..other.len());
                    let end = (from + rng.gen_range(1..=64)).min(other.len());
                    data.splice(at..at, other[from..end].iter().copied());
                }
            }
            7 if len >= 8 => {
                let at = rng.gen_range(0..=len - 8);
                let value: u64 = match rng.gen_range(0..4) {
                    0 => u64::MAX,
                    1 => u32::MAX as u64,
                    2 => 1 << rng.gen_range(0..64),
                    _ => rng.gen(),
                };
                let bytes = if rng.gen() {
                    value.to_le_bytes()
                } else {
                    value.to_be_bytes()
                };
                data[at..at + 8].copy_from_slice(&bytes);
            }
            _ => {
                if len > 0 {
                    data[at] = rng.gen();
                }
            }
        }
    }
    data
}
