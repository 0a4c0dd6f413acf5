//! Where chunks and trees come from, opened: a library (a member's [`Store`], which checks
//! keys against the epoch's convergence key) or a link (its key alone). Restore and link
//! downloads read through this seam, so one piece of code writes files out of either.
//!
//! [`Store`]: super::store::Store

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::Result;
use crate::crypto::{BlobKind, ObjectKey};
use crate::model::Tree;

pub trait ObjectSource: Sync {
    /// Chunks or trees opened and verified, in the order of `keys`.
    fn load(&self, kind: BlobKind, keys: &[ObjectKey]) -> Result<Vec<Bytes>>;

    fn load_tree(&self, key: &ObjectKey) -> Result<Tree> {
        let plain = self.load(BlobKind::Tree, std::slice::from_ref(key))?;
        Ok(Tree::decode(&plain[0])?)
    }

    /// Loads the tree `root` and every tree below it, one request per level.
    fn load_subtrees(&self, root: ObjectKey) -> Result<HashMap<ObjectKey, Tree>> {
        let mut trees = HashMap::new();
        let mut level = vec![root];
        while !level.is_empty() {
            let plain = self.load(BlobKind::Tree, &level)?;
            let mut next = Vec::new();
            let mut queued = HashSet::new();
            for (key, bytes) in level.iter().zip(plain) {
                let tree = Tree::decode(&bytes)?;
                for sub in tree.entries.iter().filter_map(|e| e.subtree) {
                    if !trees.contains_key(&sub) && sub != *key && queued.insert(sub) {
                        next.push(sub);
                    }
                }
                trees.insert(*key, tree);
            }
            next.retain(|key| !trees.contains_key(key));
            level = next;
        }
        Ok(trees)
    }
}
