//! Turning scanned directories into tree objects, and splicing a backed-up path into the
//! library's existing root so that what the head holds at other paths is kept.
//!
//! Trees are queued children first, so when they are uploaded in that order every tree's
//! subtrees reach the server before it does, as the server requires.

use std::collections::{HashMap, HashSet};

use super::{Batch, Repo};
use crate::api::types::UploadObject;
use crate::crypto::{BlobKind, ObjectId, ObjectKey};
use crate::model::{Entry, EntryKind, Tree};
use crate::Result;

pub struct TreeWriter<'a> {
    store: &'a dyn Repo,
    /// Trees made in this run, by key, in the order they were made.
    made: HashMap<ObjectKey, Tree>,
    order: Vec<ObjectKey>,
    /// Trees read from the server, by key.
    loaded: HashMap<ObjectKey, Tree>,
}

#[derive(Default)]
pub struct TreeStats {
    pub trees_uploaded: u64,
    pub bytes_uploaded: u64,
}

impl<'a> TreeWriter<'a> {
    pub fn new(store: &'a dyn Repo, loaded: HashMap<ObjectKey, Tree>) -> Self {
        Self {
            store,
            made: HashMap::new(),
            order: Vec::new(),
            loaded,
        }
    }

    /// Queues a tree for upload and returns its key.
    pub fn add(&mut self, tree: Tree) -> ObjectKey {
        let key = self.store.keys().object_key(BlobKind::Tree, &tree.encode());
        if let std::collections::hash_map::Entry::Vacant(slot) = self.made.entry(key) {
            slot.insert(tree);
            self.order.push(key);
        }
        key
    }

    /// A tree made in this run or stored on the server.
    pub fn get(&mut self, key: &ObjectKey) -> Result<Tree> {
        if let Some(tree) = self.made.get(key).or_else(|| self.loaded.get(key)) {
            return Ok(tree.clone());
        }
        let tree = self.store.load_tree(key)?;
        self.loaded.insert(*key, tree.clone());
        Ok(tree)
    }

    /// Uploads the queued trees the server lacks, children before parents.
    pub fn flush(&mut self) -> Result<TreeStats> {
        let mut stats = TreeStats::default();
        if self.order.is_empty() {
            return Ok(stats);
        }
        let ids: Vec<ObjectId> = self.order.iter().map(ObjectKey::id).collect();
        let missing = self.store.missing(&ids)?;
        let mut batch = Batch::default();
        let mut sent = HashSet::new();
        for (key, id) in std::mem::take(&mut self.order).into_iter().zip(ids) {
            if !missing.contains(&id) || !sent.insert(id) {
                continue;
            }
            let tree = &self.made[&key];
            let blob = self
                .store
                .keys()
                .seal_object(BlobKind::Tree, &key, &tree.encode());
            stats.trees_uploaded += 1;
            stats.bytes_uploaded += blob.len() as u64;
            let object = UploadObject {
                id,
                kind: BlobKind::Tree,
                len: blob.len() as u32,
                refs: tree.refs(),
                snapshot: None,
            };
            batch.push(object, blob);
            if batch.is_full() {
                self.store.upload(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            self.store.upload(batch)?;
        }
        Ok(stats)
    }

    /// Puts `new` at `components` below the tree `root` (none: an empty root), making the
    /// missing directories from `ancestors` (one entry per component but the last), and
    /// returns the new root's key.
    pub fn splice(
        &mut self,
        root: Option<ObjectKey>,
        components: &[Vec<u8>],
        ancestors: &[Entry],
        new: &Entry,
    ) -> Result<ObjectKey> {
        let mut tree = match root {
            Some(id) => self.get(&id)?,
            None => Tree::default(),
        };
        let (first, rest) = components.split_first().expect("splice needs a path");
        if rest.is_empty() {
            tree.upsert(new.clone());
        } else {
            let existing = tree
                .get(first)
                .filter(|e| e.kind == EntryKind::Dir)
                .and_then(|e| e.subtree);
            let subtree = self.splice(existing, rest, &ancestors[1..], new)?;
            let mut dir = ancestors[0].clone();
            dir.subtree = Some(subtree);
            tree.upsert(dir);
        }
        Ok(self.add(tree))
    }
}

/// Finds the entry at `components` below `root`, loading trees as needed.
pub fn lookup(
    writer: &mut TreeWriter<'_>,
    root: ObjectKey,
    components: &[Vec<u8>],
) -> Result<Option<Entry>> {
    let mut tree = writer.get(&root)?;
    for (i, name) in components.iter().enumerate() {
        let Some(entry) = tree.get(name).cloned() else {
            return Ok(None);
        };
        if i + 1 == components.len() {
            return Ok(Some(entry));
        }
        match (entry.kind, entry.subtree) {
            (EntryKind::Dir, Some(sub)) => tree = writer.get(&sub)?,
            _ => return Ok(None),
        }
    }
    Ok(None)
}
