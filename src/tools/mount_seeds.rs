//! Seeds of the fuzz targets for the mount's two on-disk formats (the write-back journal
//! and the disk cache's index), and the disk index's reader as the mount runs it at start.

use ibackup_client::mount::disk_formats::{
    decode_cache_record, encode_cache_record, encode_journal_op, JournalOp as Op,
};
use ibackup_proto::crypto::ObjectId;
use ibackup_proto::model::tree::{EntryKind, Xattr};

/// Journal entries of every kind, encoded.
pub(crate) fn journal_ops() -> Vec<Vec<u8>> {
    let path = b"docs/notes.txt".to_vec();
    let ops = [
        Op::Write {
            path: path.clone(),
            stage: "00000000000000000000000000000001".into(),
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            mtime_ns: 1_700_000_000_000_000_000,
            xattrs: vec![Xattr {
                name: b"user.a".to_vec(),
                value: b"b".to_vec(),
            }],
            base: Some("sig".into()),
            link: 3,
            atime_ns: Some(7),
        },
        Op::Mkdir {
            path: b"docs".to_vec(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime_ns: 1,
        },
        Op::Symlink {
            path: b"latest".to_vec(),
            target: path.clone(),
            uid: 0,
            gid: 0,
            mtime_ns: 1,
        },
        Op::Link {
            from: path.clone(),
            to: b"twin".to_vec(),
            link: 3,
        },
        Op::Special {
            path: b"fifo".to_vec(),
            kind: EntryKind::Fifo,
            mode: 0o600,
            uid: 0,
            gid: 0,
            rdev: 0,
            mtime_ns: 1,
        },
        Op::Remove { path: path.clone() },
        Op::Rename {
            from: path.clone(),
            to: b"moved".to_vec(),
        },
        Op::SetAttr {
            path: path.clone(),
            mode: Some(0o600),
            uid: None,
            gid: Some(5),
            mtime_ns: Some(9),
            atime_ns: None,
            ctime_ns: Some(10),
        },
        Op::SetXattrs {
            path,
            xattrs: Vec::new(),
            ctime_ns: Some(11),
        },
    ];
    ops.iter().map(encode_journal_op).collect()
}

/// Reads a disk-cache index as the mount does at start: records until the first torn one.
pub(crate) fn decode_disk_index(mut bytes: &[u8]) {
    while let Some((_, _, _, _, rest)) = decode_cache_record(bytes) {
        bytes = rest;
    }
}

/// A disk-cache index of a few records.
pub(crate) fn disk_index() -> Vec<u8> {
    let id = ObjectId::from_bytes([5; 32]);
    [
        encode_cache_record("0123456789abcdef0123456789abcdef", &id, 0, 4096),
        encode_cache_record("0123456789abcdef0123456789abcdef", &id, 4096, 100),
    ]
    .concat()
}
