//! Reading a library's objects: decrypted plaintexts in memory (bounded LRU), then the disk
//! cache of fetched blobs (`diskcache`), then the server, with prefetching for sequential
//! readers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use lru::LruCache;

use super::diskcache::DiskCache;
use super::vfs::objects::Objects;
use crate::crypto::{BlobKind, ObjectId, ObjectKey};
use crate::model::Snapshot;
use crate::remote::Remote;
use crate::session::OpenLibrary;
use crate::store::Store;
use crate::Result;

type Key = (String, ObjectId);

/// Decrypted objects in memory, bounded by bytes.
struct MemoryCache {
    limit: u64,
    used: u64,
    lru: LruCache<Key, Bytes>,
}

impl MemoryCache {
    fn get(&mut self, key: &Key) -> Option<Bytes> {
        self.lru.get(key).cloned()
    }

    fn put(&mut self, key: Key, value: Bytes) {
        self.used += value.len() as u64;
        if let Some(old) = self.lru.put(key, value) {
            self.used -= old.len() as u64;
        }
        while self.used > self.limit {
            match self.lru.pop_lru() {
                Some((_, old)) => self.used -= old.len() as u64,
                None => break,
            }
        }
    }
}

/// Reads objects of the libraries a mount shows: memory, then disk, then the server.
pub struct Fetcher {
    remote: Arc<Remote>,
    disk: DiskCache,
    memory: Mutex<MemoryCache>,
    in_flight: Mutex<HashSet<Key>>,
    /// Signalled when a prefetch lands, so a reader waits for it instead of fetching twice.
    landed: Condvar,
}

impl Fetcher {
    pub fn new(remote: Arc<Remote>, disk: DiskCache, memory_limit: u64) -> Self {
        let memory = MemoryCache {
            limit: memory_limit,
            used: 0,
            lru: LruCache::unbounded(),
        };
        Self {
            remote,
            disk,
            memory: Mutex::new(memory),
            in_flight: Mutex::new(HashSet::new()),
            landed: Condvar::new(),
        }
    }

    pub fn is_cached(&self, library: &OpenLibrary, id: &ObjectId) -> bool {
        let key = (library.info.id.clone(), *id);
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lru
            .contains(&key)
    }

    /// Plaintexts of the chunks or trees `keys` open, each verified.
    pub fn get(
        &self,
        library: &OpenLibrary,
        kind: BlobKind,
        keys: &[ObjectKey],
    ) -> Result<Vec<Bytes>> {
        let lib = &library.info.id;
        let mut found: HashMap<ObjectId, Bytes> = HashMap::new();
        let mut fetch = Vec::new();
        {
            let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
            for key in keys {
                match memory.get(&(lib.clone(), key.id())) {
                    Some(plain) => {
                        found.insert(key.id(), plain);
                    }
                    None => fetch.push(*key),
                }
            }
        }
        if !fetch.is_empty() {
            let ids: Vec<ObjectId> = fetch.iter().map(ObjectKey::id).collect();
            self.wait_for_prefetch(lib, &ids);
            let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
            fetch.retain(|key| match memory.get(&(lib.clone(), key.id())) {
                Some(plain) => {
                    found.insert(key.id(), plain);
                    false
                }
                None => true,
            });
        }
        let mut from_server = Vec::new();
        for key in fetch {
            let id = key.id();
            if found.contains_key(&id) {
                continue;
            }
            match self.disk_hit(library, kind, &key) {
                Some(plain) => {
                    found.insert(id, self.remember(lib, id, plain));
                }
                None => from_server.push(key),
            }
        }
        from_server.sort_by_key(ObjectKey::id);
        from_server.dedup();
        if !from_server.is_empty() {
            for (key, plain) in from_server
                .iter()
                .zip(self.fetch(library, kind, &from_server)?)
            {
                found.insert(key.id(), self.remember(lib, key.id(), plain));
            }
        }
        Ok(keys.iter().map(|key| found[&key.id()].clone()).collect())
    }

    /// A blob of the disk cache, opened; `None` if absent or damaged (fetched again then).
    fn disk_hit(&self, library: &OpenLibrary, kind: BlobKind, key: &ObjectKey) -> Option<Bytes> {
        let blob = self.disk.get(&library.info.id, &key.id())?;
        library
            .keys
            .open_object(kind, key, bytes::BytesMut::from(&blob[..]))
            .ok()
    }

    /// Plaintexts of `keys` from the server. Each blob goes into the disk cache as it came,
    /// then is decrypted in its own part of the response's buffer: no copy of it is made.
    fn fetch(
        &self,
        library: &OpenLibrary,
        kind: BlobKind,
        keys: &[ObjectKey],
    ) -> Result<Vec<Bytes>> {
        let store = Store::new(&self.remote, library);
        let ids: Vec<ObjectId> = keys.iter().map(ObjectKey::id).collect();
        let mut plains = Vec::with_capacity(keys.len());
        for ((key, id), blob) in keys.iter().zip(&ids).zip(store.fetch_owned(&ids)?) {
            self.disk.put(&library.info.id, id, &blob);
            plains.push(library.keys.open_object(kind, key, blob)?);
        }
        Ok(plains)
    }

    /// Waits (a bounded time) while any of `ids` is being prefetched.
    fn wait_for_prefetch(&self, lib: &str, ids: &[ObjectId]) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while ids
            .iter()
            .any(|id| in_flight.contains(&(lib.to_owned(), *id)))
        {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            in_flight = self
                .landed
                .wait_timeout(in_flight, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Loads `keys` into the memory cache from disk or the server (a prefetch: no waiting).
    fn fetch_missing(
        &self,
        library: &OpenLibrary,
        kind: BlobKind,
        keys: &[ObjectKey],
    ) -> Result<()> {
        let lib = &library.info.id;
        let mut from_server = Vec::new();
        for key in keys {
            match self.disk_hit(library, kind, key) {
                Some(plain) => {
                    self.remember(lib, key.id(), plain);
                }
                None => from_server.push(*key),
            }
        }
        if !from_server.is_empty() {
            for (key, plain) in from_server
                .iter()
                .zip(self.fetch(library, kind, &from_server)?)
            {
                self.remember(lib, key.id(), plain);
            }
        }
        Ok(())
    }

    fn remember(&self, lib: &str, id: ObjectId, plain: Bytes) -> Bytes {
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        memory.put((lib.to_owned(), id), plain.clone());
        plain
    }

    /// Fetches chunks in the background so a sequential reader finds them ready, `per_request`
    /// chunks to a request, the requests in parallel.
    fn prefetch_chunks(
        self: Arc<Self>,
        library: &Arc<OpenLibrary>,
        keys: Vec<ObjectKey>,
        per_request: usize,
    ) {
        let wanted: Vec<ObjectKey> = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            keys.into_iter()
                .filter(|key| !self.is_cached(library, &key.id()))
                .filter(|key| in_flight.insert((library.info.id.clone(), key.id())))
                .collect()
        };
        if wanted.is_empty() {
            return;
        }
        for group in wanted.chunks(per_request.max(1)) {
            let (fetcher, library, group) = (self.clone(), library.clone(), group.to_vec());
            std::thread::spawn(move || {
                // A failure leaves the chunks to the reader, who fetches them again.
                let _ = fetcher.fetch_missing(&library, BlobKind::Chunk, &group);
                {
                    let mut in_flight = fetcher.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                    for key in &group {
                        in_flight.remove(&(library.info.id.clone(), key.id()));
                    }
                }
                fetcher.landed.notify_all();
            });
        }
    }
}

impl Objects for Fetcher {
    fn get(&self, library: &OpenLibrary, kind: BlobKind, keys: &[ObjectKey]) -> Result<Vec<Bytes>> {
        Fetcher::get(self, library, kind, keys)
    }

    fn at_hand(&self, library: &OpenLibrary, keys: &[ObjectKey]) -> bool {
        let memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .all(|key| memory.lru.contains(&(library.info.id.clone(), key.id())))
    }

    fn prefetch(
        self: Arc<Self>,
        library: &Arc<OpenLibrary>,
        keys: Vec<ObjectKey>,
        per_request: usize,
    ) {
        self.prefetch_chunks(library, keys, per_request)
    }

    fn snapshot_ids(&self, library: &OpenLibrary) -> Result<Vec<ObjectId>> {
        let store = Store::new(&self.remote, library);
        Ok(store.snapshots()?.iter().map(|r| r.id).collect())
    }

    fn load_snapshots(&self, library: &OpenLibrary, ids: &[ObjectId]) -> Result<Vec<Snapshot>> {
        Store::new(&self.remote, library).load_snapshots(ids)
    }
}
