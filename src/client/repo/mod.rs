//! Turning files and directories into stored objects of a library, behind a small store
//! interface: chunking and sealing contents (`content`), writing trees children first and
//! splicing paths into a root (`trees`), and the [`Repo`] they write to.
//!
//! Backup and the mount's write-back both build snapshots through this module, so the key
//! handling of format 2 (object keys from the epoch's convergence key, snapshots under the
//! epoch's snapshot key) lives in one place. [`Repo`] is implemented by the network store
//! (`client::store::Store`) and, for unit tests, by an in-memory store (`memory`), so the
//! write-back merge is tested without a server.

pub mod content;
#[cfg(test)]
pub mod memory;
pub mod trees;

use std::collections::HashSet;

use super::objects::ObjectSource;
use super::Result;
use crate::api::types::{SnapshotMeta, UploadHeader, UploadObject, UploadResponse};
use crate::crypto::{BlobKind, LibraryKeys, ObjectId};
use crate::model::Snapshot;

/// Upload batches are cut at about this size.
pub const BATCH_BYTES: usize = 16 << 20;
const BATCH_OBJECTS: usize = 20_000;

/// Objects gathered for one upload request.
#[derive(Default)]
pub struct Batch {
    header: UploadHeader,
    blobs: Vec<Vec<u8>>,
    bytes: usize,
}

impl Batch {
    pub fn push(&mut self, object: UploadObject, blob: Vec<u8>) {
        self.bytes += blob.len();
        self.header.objects.push(object);
        self.blobs.push(blob);
    }

    pub fn is_full(&self) -> bool {
        self.bytes >= BATCH_BYTES || self.blobs.len() >= BATCH_OBJECTS
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The header (what each object is) and the blobs, in the same order.
    pub fn into_parts(self) -> (UploadHeader, Vec<Vec<u8>>) {
        (self.header, self.blobs)
    }
}

/// Where a library's objects are written and its head is moved.
pub trait Repo: ObjectSource {
    /// The library's keys: the newest epoch writes.
    fn keys(&self) -> &LibraryKeys;

    /// The ids among `ids` the store does not hold.
    fn missing(&self, ids: &[ObjectId]) -> Result<HashSet<ObjectId>>;

    /// Stores a batch whole (objects already stored are skipped).
    fn upload(&self, batch: Batch) -> Result<UploadResponse>;

    fn head(&self) -> Result<Option<ObjectId>>;

    /// Moves the head from `expected` to `new`; `Err(actual)` if someone moved it first.
    fn set_head(
        &self,
        expected: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<std::result::Result<(), Option<ObjectId>>>;

    fn load_snapshot(&self, id: &ObjectId) -> Result<Snapshot>;

    /// Seals and uploads a snapshot (its tree must be stored); returns its id and the bytes
    /// sent. The head does not move until `set_head`.
    fn upload_snapshot(&self, snapshot: &Snapshot) -> Result<(ObjectId, u64)> {
        seal_and_upload(self, snapshot)
    }
}

/// What [`Repo::upload_snapshot`] does, for implementations that add to it.
pub fn seal_and_upload<R: Repo + ?Sized>(repo: &R, snapshot: &Snapshot) -> Result<(ObjectId, u64)> {
    let (id, blob) = repo.keys().seal_snapshot(&snapshot.encode());
    let bytes = blob.len() as u64;
    let object = UploadObject {
        id,
        kind: BlobKind::Snapshot,
        len: blob.len() as u32,
        refs: vec![snapshot.tree.id()],
        snapshot: Some(SnapshotMeta {
            time_ns: snapshot.time_ns,
            parent: snapshot.parent,
            tag_macs: snapshot
                .tags
                .iter()
                .map(|t| repo.keys().tag_mac(t))
                .collect(),
        }),
    };
    let mut batch = Batch::default();
    batch.push(object, blob);
    repo.upload(batch)?;
    Ok((id, bytes))
}
