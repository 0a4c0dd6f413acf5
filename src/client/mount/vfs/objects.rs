//! Where the mount's objects come from: the seam between the file-system model and the
//! network. The mount reads through [`Fetcher`] (memory, disk cache, server); unit tests
//! read through an in-memory library (`MemoryRepo`), so the read path, snapshot folders
//! and write-back run without a server or a kernel.
//!
//! [`Fetcher`]: crate::mount::cache::Fetcher

use std::sync::Arc;

use bytes::Bytes;

use crate::crypto::{BlobKind, ObjectId, ObjectKey};
use crate::model::{Snapshot, Tree};
use crate::session::OpenLibrary;
use crate::Result;

pub trait Objects: Send + Sync {
    /// Chunks or trees of `library`, opened and verified, in the order of `keys`.
    fn get(&self, library: &OpenLibrary, kind: BlobKind, keys: &[ObjectKey]) -> Result<Vec<Bytes>>;

    fn tree(&self, library: &OpenLibrary, key: &ObjectKey) -> Result<Tree> {
        let plain = self.get(library, BlobKind::Tree, std::slice::from_ref(key))?;
        Ok(Tree::decode(&plain[0])?)
    }

    /// Whether every one of `keys` can be had without waiting on the network.
    fn at_hand(&self, library: &OpenLibrary, keys: &[ObjectKey]) -> bool;

    /// Starts loading `keys` so that a later `get` finds them at hand, `per_request` to a
    /// request; a source that has everything at hand does nothing.
    fn prefetch(
        self: Arc<Self>,
        library: &Arc<OpenLibrary>,
        keys: Vec<ObjectKey>,
        per_request: usize,
    );

    /// The ids of `library`'s snapshots, oldest first.
    fn snapshot_ids(&self, library: &OpenLibrary) -> Result<Vec<ObjectId>>;

    /// The snapshots `ids` of `library`, opened, in the order of `ids`.
    fn load_snapshots(&self, library: &OpenLibrary, ids: &[ObjectId]) -> Result<Vec<Snapshot>>;
}

#[cfg(test)]
mod memory {
    use super::*;
    use crate::objects::ObjectSource;
    use crate::repo::memory::MemoryRepo;
    use crate::repo::Repo;

    /// One library held in memory; the library argument is the one it was mounted as.
    impl Objects for MemoryRepo {
        fn get(&self, _: &OpenLibrary, kind: BlobKind, keys: &[ObjectKey]) -> Result<Vec<Bytes>> {
            self.load(kind, keys)
        }

        fn at_hand(&self, _: &OpenLibrary, _: &[ObjectKey]) -> bool {
            true
        }

        fn prefetch(self: Arc<Self>, _: &Arc<OpenLibrary>, _: Vec<ObjectKey>, _: usize) {}

        fn snapshot_ids(&self, _: &OpenLibrary) -> Result<Vec<ObjectId>> {
            Ok(self.history())
        }

        fn load_snapshots(&self, _: &OpenLibrary, ids: &[ObjectId]) -> Result<Vec<Snapshot>> {
            ids.iter().map(|id| self.load_snapshot(id)).collect()
        }
    }
}
