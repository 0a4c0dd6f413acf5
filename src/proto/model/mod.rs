//! The objects ibackup stores: chunks (pieces of file content), trees (one directory each)
//! and snapshots (a root tree at a time), with content-defined chunking and a versioned
//! encoding. Plain data and pure functions: no network or file I/O beyond reading a file's
//! bytes for chunking.

pub mod chunker;
pub mod codec;
pub mod retention;
pub mod snapshot;
pub mod tree;

pub use snapshot::{Snapshot, SnapshotKind, SnapshotSummary};
pub use tree::{ChunkRef, Entry, EntryKind, Tree, Xattr};

/// An object could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("object format version {0} is newer than this ibackup understands; please upgrade")]
    Version(u8),
    #[error("object is empty")]
    Empty,
    #[error("object is malformed: {0}")]
    Malformed(String),
}
