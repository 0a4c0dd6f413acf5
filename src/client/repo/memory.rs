//! A library held in memory, for unit tests of what builds snapshots (the write-back merge,
//! tree writing): the same sealing and opening as the network store, no server.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

use super::{Batch, Repo};
use crate::api::types::UploadResponse;
use crate::crypto::{BlobKind, LibraryKeys, ObjectId, ObjectKey};
use crate::model::Snapshot;
use crate::objects::ObjectSource;
use crate::Result;

pub struct MemoryRepo {
    keys: LibraryKeys,
    blobs: Mutex<HashMap<ObjectId, Vec<u8>>>,
    head: Mutex<Option<ObjectId>>,
    /// Every head set, oldest first: the library's snapshots.
    history: Mutex<Vec<ObjectId>>,
    /// Trees read back, counted: what a reader's caching saves shows here.
    trees_loaded: AtomicU64,
}

impl Default for MemoryRepo {
    /// An empty library with a fresh first epoch key.
    fn default() -> Self {
        Self {
            keys: LibraryKeys::generate(),
            blobs: Mutex::default(),
            head: Mutex::default(),
            history: Mutex::default(),
            trees_loaded: AtomicU64::new(0),
        }
    }
}

impl MemoryRepo {
    /// Stores `data` as one chunk, as the content pipeline would; its chunk list.
    pub fn store_chunk(&self, data: &[u8]) -> Vec<crate::model::ChunkRef> {
        let key = self.keys.object_key(BlobKind::Chunk, data);
        let mut batch = Batch::default();
        batch.push(
            crate::api::types::UploadObject {
                id: key.id(),
                kind: BlobKind::Chunk,
                len: 0,
                refs: Vec::new(),
                snapshot: None,
            },
            self.keys.seal_object(BlobKind::Chunk, &key, data),
        );
        self.upload(batch)
            .expect("a memory library stores everything");
        vec![crate::model::ChunkRef {
            key,
            len: data.len() as u32,
        }]
    }

    /// How many trees were read back so far.
    pub fn trees_loaded(&self) -> u64 {
        self.trees_loaded.load(Ordering::Relaxed)
    }

    /// The snapshots committed, oldest first.
    pub fn history(&self) -> Vec<ObjectId> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn blob(&self, id: &ObjectId) -> Result<BytesMut> {
        let blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        let blob = blobs
            .get(id)
            .ok_or_else(|| crate::ClientError::State(format!("object {id} is not stored")))?;
        Ok(BytesMut::from(&blob[..]))
    }
}

impl ObjectSource for MemoryRepo {
    fn load(&self, kind: BlobKind, keys: &[ObjectKey]) -> Result<Vec<Bytes>> {
        if kind == BlobKind::Tree {
            self.trees_loaded
                .fetch_add(keys.len() as u64, Ordering::Relaxed);
        }
        keys.iter()
            .map(|key| Ok(self.keys.open_object(kind, key, self.blob(&key.id())?)?))
            .collect()
    }
}

impl Repo for MemoryRepo {
    fn keys(&self) -> &LibraryKeys {
        &self.keys
    }

    fn missing(&self, ids: &[ObjectId]) -> Result<HashSet<ObjectId>> {
        let blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(ids
            .iter()
            .filter(|id| !blobs.contains_key(id))
            .copied()
            .collect())
    }

    fn upload(&self, batch: Batch) -> Result<UploadResponse> {
        let (header, blobs) = batch.into_parts();
        let mut stored = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut response = UploadResponse::default();
        for (object, blob) in header.objects.iter().zip(blobs) {
            match stored.entry(object.id) {
                std::collections::hash_map::Entry::Occupied(_) => response.already_present += 1,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    response.stored += 1;
                    response.stored_bytes += blob.len() as u64;
                    slot.insert(blob);
                }
            }
        }
        Ok(response)
    }

    fn head(&self) -> Result<Option<ObjectId>> {
        Ok(*self.head.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn set_head(
        &self,
        expected: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<std::result::Result<(), Option<ObjectId>>> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        if *head != expected {
            return Ok(Err(*head));
        }
        *head = Some(new);
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(new);
        Ok(Ok(()))
    }

    fn load_snapshot(&self, id: &ObjectId) -> Result<Snapshot> {
        Ok(Snapshot::decode(
            &self.keys.open_snapshot(id, self.blob(id)?)?,
        )?)
    }
}
