//! Encrypted objects of one library on the server: load and verify trees, snapshots and
//! chunks; find which ids are missing; upload batches; move the head.
//!
//! Chunks and trees are loaded by their keys (which name their ids), snapshots by id under
//! the library's epoch keys. Everything that comes back is authenticated and checked against
//! the key or id it was asked for, so a server that alters or swaps data is caught, not
//! believed.

use std::collections::HashSet;
use std::sync::Mutex;

use super::objects::ObjectSource;
use super::remote::{Remote, RemoteError};
use super::repo::{Batch, Repo};
use super::session::OpenLibrary;
use super::Result;
use crate::api::routes::{self, MAX_IDS_PER_REQUEST};
use crate::api::types::{
    HeadResponse, HeadUpdate, IdList, MissingResponse, SnapshotList, SnapshotRecord, UploadResponse,
};
use crate::api::{frame, ErrorCode};
use crate::crypto::{BlobKind, LibraryKeys, ObjectId, ObjectKey};
use crate::model::Snapshot;

/// Trees fetched per request.
const TREES_PER_FETCH: usize = 500;

pub struct Store<'a> {
    remote: &'a Remote,
    library_id: String,
    /// The library's name as the user sees it, for messages.
    name: String,
    pub keys: LibraryKeys,
    /// The last head checked, so loading it again costs no request.
    head: Mutex<Option<(ObjectId, Snapshot)>>,
    /// The last snapshot uploaded, remembered as seen without a request once it is the head.
    uploaded: Mutex<Option<(ObjectId, Snapshot)>>,
}

impl<'a> Store<'a> {
    pub fn new(remote: &'a Remote, library: &OpenLibrary) -> Self {
        Self {
            remote,
            library_id: library.info.id.clone(),
            name: library.display(),
            keys: library.keys.clone(),
            head: Mutex::new(None),
            uploaded: Mutex::new(None),
        }
    }

    /// Remembers `snapshot`, of id `id`, as the head seen (see `client::seen`); a head of
    /// a higher generation must build on the one seen.
    fn seen_head(&self, id: ObjectId, snapshot: Snapshot) -> Result<()> {
        if let Some(seen) = self.remote.seen() {
            if let Some((seen_head, seen_generation)) = seen.newest(&self.library_id)? {
                if seen_generation > 0 && snapshot.generation > seen_generation {
                    self.check_descent(id, &snapshot, seen_head, seen_generation)?;
                }
            }
            seen.check(&self.library_id, &self.name, id, snapshot.generation)?;
        }
        *self.head.lock().unwrap_or_else(|p| p.into_inner()) = Some((id, snapshot));
        Ok(())
    }

    /// Follows `snapshot`'s parents back to generation `seen_generation` and refuses it if
    /// `seen_head` is not on that path: the server dropped a commit this computer saw and
    /// others built past it. A parent the server no longer has, or a walk past
    /// [`DESCENT_WALK`](super::seen::DESCENT_WALK), cannot be told: logged and taken.
    fn check_descent(
        &self,
        id: ObjectId,
        snapshot: &Snapshot,
        seen_head: ObjectId,
        seen_generation: u64,
    ) -> Result<()> {
        let mut current = snapshot.clone();
        for _ in 0..super::seen::DESCENT_WALK {
            let Some(parent) = current.parent else {
                break;
            };
            if parent == seen_head {
                return Ok(());
            }
            current = match self.load_snapshots(std::slice::from_ref(&parent)) {
                Ok(mut found) => found.pop().expect("one asked, one answered"),
                Err(super::ClientError::Remote(e)) if e.code() == Some(ErrorCode::NotFound) => {
                    tracing::warn!(
                        "library {}: snapshot {} is gone (forgotten), so whether head {} \
                         builds on the seen {} cannot be told; taken",
                        self.name,
                        parent.short(),
                        id.short(),
                        seen_head.short()
                    );
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            if current.generation <= seen_generation {
                break;
            }
        }
        if current.generation > seen_generation && current.parent.is_some() {
            tracing::warn!(
                "library {}: head {} is more than {} snapshots past the seen {}; taken \
                 without following it back",
                self.name,
                id.short(),
                super::seen::DESCENT_WALK,
                seen_head.short()
            );
            return Ok(());
        }
        Err(super::seen::refused(
            &self.name,
            "ALTERED",
            id,
            snapshot.generation,
            seen_head,
            seen_generation,
        ))
    }

    /// Loads the snapshot `id` the server calls the head, and refuses it if this computer
    /// has seen a newer state of the library (see `client::seen`).
    pub fn checked_head(&self, id: ObjectId) -> Result<Snapshot> {
        let snapshot = self.load_snapshot(&id)?;
        self.seen_head(id, snapshot.clone())?;
        Ok(snapshot)
    }

    fn path(&self, template: &str) -> String {
        routes::library(template, &self.library_id)
    }

    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        Ok(self
            .remote
            .get::<SnapshotList>(&self.path(routes::LIBRARY_SNAPSHOTS))?
            .snapshots)
    }

    /// Fetches raw blobs in one request (splitting it if the server finds it too large),
    /// each a mutable part of the one response body (no copies), to be decrypted in place.
    pub fn fetch_owned(&self, ids: &[ObjectId]) -> Result<Vec<bytes::BytesMut>> {
        let request = IdList { ids: ids.to_vec() };
        match self
            .remote
            .post_for_bytes(&self.path(routes::OBJECTS_FETCH), &request)
        {
            Ok(body) => {
                // The body is the client's own unless the HTTP stack still shares it.
                let body = body
                    .try_into_mut()
                    .unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
                let blobs =
                    frame::split_frames(body).map_err(|e| RemoteError::Protocol(e.to_string()))?;
                if blobs.len() != ids.len() {
                    return Err(RemoteError::Protocol(format!(
                        "asked for {} objects, got {}",
                        ids.len(),
                        blobs.len()
                    ))
                    .into());
                }
                Ok(blobs)
            }
            Err(RemoteError::Api { body, .. })
                if body.error == ErrorCode::PayloadTooLarge && ids.len() > 1 =>
            {
                let (a, b) = ids.split_at(ids.len() / 2);
                let mut blobs = self.fetch_owned(a)?;
                blobs.extend(self.fetch_owned(b)?);
                Ok(blobs)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn load_snapshots(&self, ids: &[ObjectId]) -> Result<Vec<Snapshot>> {
        let mut out = Vec::with_capacity(ids.len());
        for group in ids.chunks(TREES_PER_FETCH) {
            for (id, blob) in group.iter().zip(self.fetch_owned(group)?) {
                out.push(Snapshot::decode(&self.keys.open_snapshot(id, blob)?)?);
            }
        }
        Ok(out)
    }
}

impl ObjectSource for Store<'_> {
    /// Fetches, decrypts and verifies chunks or trees by their keys.
    fn load(&self, kind: BlobKind, keys: &[ObjectKey]) -> Result<Vec<bytes::Bytes>> {
        let mut out = Vec::with_capacity(keys.len());
        for group in keys.chunks(TREES_PER_FETCH) {
            let ids: Vec<ObjectId> = group.iter().map(ObjectKey::id).collect();
            for (key, blob) in group.iter().zip(self.fetch_owned(&ids)?) {
                out.push(self.keys.open_object(kind, key, blob)?);
            }
        }
        Ok(out)
    }
}

impl Repo for Store<'_> {
    fn keys(&self) -> &LibraryKeys {
        &self.keys
    }

    /// The ids among `ids` the server does not hold.
    fn missing(&self, ids: &[ObjectId]) -> Result<HashSet<ObjectId>> {
        let mut missing = HashSet::new();
        for group in ids.chunks(MAX_IDS_PER_REQUEST) {
            let request = IdList {
                ids: group.to_vec(),
            };
            let response: MissingResponse =
                self.remote
                    .post(&self.path(routes::OBJECTS_MISSING), &request, true)?;
            missing.extend(response.missing);
        }
        Ok(missing)
    }

    fn upload(&self, batch: Batch) -> Result<UploadResponse> {
        let (header, blobs) = batch.into_parts();
        let body = frame::encode_upload(&header, &blobs);
        drop(blobs);
        Ok(self
            .remote
            .post_bytes(&self.path(routes::OBJECTS_UPLOAD), body)?)
    }

    /// The head, checked against the newest this computer has seen (the head seen last
    /// needs no check: a poll that finds it unchanged fetches nothing more).
    fn head(&self) -> Result<Option<ObjectId>> {
        let head = self
            .remote
            .get::<HeadResponse>(&self.path(routes::LIBRARY_HEAD))?
            .head;
        if let (Some(id), Some(seen)) = (head, self.remote.seen()) {
            if !seen.is_newest(&self.library_id, id)? {
                self.checked_head(id)?;
            }
        }
        Ok(head)
    }

    fn set_head(
        &self,
        expected: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<std::result::Result<(), Option<ObjectId>>> {
        let update = HeadUpdate { expected, new };
        match self
            .remote
            .put::<_, HeadResponse>(&self.path(routes::LIBRARY_HEAD), &update)
        {
            Ok(_) => {
                // Remember the new head at once, so a server that drops it is caught.
                let uploaded = self
                    .uploaded
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                match uploaded {
                    Some((id, snapshot)) if id == new => self.seen_head(id, snapshot)?,
                    _ => {
                        self.checked_head(new)?;
                    }
                }
                Ok(Ok(()))
            }
            Err(RemoteError::Api { body, .. }) if body.error == ErrorCode::HeadMoved => {
                Ok(Err(body.head))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn upload_snapshot(&self, snapshot: &Snapshot) -> Result<(ObjectId, u64)> {
        let (id, bytes) = crate::repo::seal_and_upload(self, snapshot)?;
        *self.uploaded.lock().unwrap_or_else(|p| p.into_inner()) = Some((id, snapshot.clone()));
        Ok((id, bytes))
    }

    fn load_snapshot(&self, id: &ObjectId) -> Result<Snapshot> {
        if let Some((head, snapshot)) = &*self.head.lock().unwrap_or_else(|p| p.into_inner()) {
            if head == id {
                return Ok(snapshot.clone());
            }
        }
        Ok(self
            .load_snapshots(std::slice::from_ref(id))?
            .pop()
            .expect("one asked, one answered"))
    }
}
