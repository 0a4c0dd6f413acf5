//! `snapshots/LIBRARY/`: one read-only folder per snapshot, named by its time, and `latest`
//! pointing at the newest.
//!
//! The listing stays current: the mount's own commits and whatever its poll finds (another
//! client's backup, a member's commit, a forget) replace it. A snapshot that stays keeps its
//! inode; one that leaves the listing keeps its nodes until unmount, so files open inside it
//! keep working until closed. Snapshots are fetched and opened outside the file-system lock
//! ([`Vfs::unknown_snapshots`] names the ones to fetch), each once per mount.

use std::collections::BTreeMap;

use super::nodes::{Attr, Body, Ino, Node, Place};
use super::{Vfs, VfsResult};
use crate::crypto::{ObjectId, ObjectKey};
use crate::model::snapshot::format_time_ns;
use crate::model::{EntryKind, Snapshot};

/// What the mount keeps of a snapshot it opened: when it was made and its root tree.
#[derive(Clone, Copy)]
pub struct Shown {
    pub time_ns: i64,
    pub tree: ObjectKey,
}

pub const LATEST: &[u8] = b"latest";

impl Vfs {
    /// Of `ids`, the snapshots of library `index` this mount has not opened yet.
    pub fn unknown_snapshots(&self, index: usize, ids: &[ObjectId]) -> Vec<ObjectId> {
        let known = &self.libraries[index].known_snapshots;
        ids.iter()
            .filter(|id| !known.contains_key(id))
            .copied()
            .collect()
    }

    /// Shows exactly `ids` (as the server lists them) in `snapshots/LIB/`; `fetched` holds
    /// the snapshots [`unknown_snapshots`](Self::unknown_snapshots) named, opened.
    pub fn show_snapshots(
        &mut self,
        index: usize,
        ids: &[ObjectId],
        fetched: Vec<(ObjectId, Snapshot)>,
    ) {
        let view = &mut self.libraries[index];
        for (id, snapshot) in fetched {
            let shown = Shown {
                time_ns: snapshot.time_ns,
                tree: snapshot.tree,
            };
            view.known_snapshots.insert(id, shown);
        }
        let listed: Vec<(ObjectId, Shown)> = ids
            .iter()
            .filter_map(|id| view.known_snapshots.get(id).map(|s| (*id, *s)))
            .collect();
        let dir = view.snapshots;
        let old: BTreeMap<Vec<u8>, Ino> = match self.nodes.get(dir).map(|n| &n.body) {
            Some(Body::Dir {
                children: Some(children),
                ..
            }) => children.clone(),
            _ => BTreeMap::new(),
        };
        let mut children = BTreeMap::new();
        let mut newest: Option<(i64, Vec<u8>)> = None;
        for (id, shown) in listed {
            let time = format_time_ns(shown.time_ns);
            let mut name = time.clone().into_bytes();
            if children.contains_key(&name) {
                name = format!("{time}-{}", id.short()).into_bytes();
            }
            if newest.as_ref().is_none_or(|(t, _)| shown.time_ns >= *t) {
                newest = Some((shown.time_ns, name.clone()));
            }
            let same = old.get(&name).copied().filter(|ino| {
                matches!(
                    self.nodes.get(*ino).map(|n| &n.body),
                    Some(Body::Dir { tree: Some(tree), .. }) if *tree == shown.tree
                )
            });
            let ino = match same {
                Some(ino) => ino,
                None => {
                    let attr = fixed_attr(0o555, shown.time_ns, 0);
                    let mut node = Node::dir(dir, &name, attr, Place::Snapshot(index));
                    node.body = Body::Dir {
                        children: None,
                        tree: Some(shown.tree),
                    };
                    self.nodes.insert(node)
                }
            };
            children.insert(name, ino);
        }
        if let Some((time, target)) = newest {
            let attr = fixed_attr(0o777, time, target.len() as u64);
            let ino = match old.get(LATEST).copied() {
                Some(ino) if self.nodes.get(ino).is_some() => {
                    let node = self.nodes.get_mut(ino).expect("checked");
                    node.attr = attr;
                    node.body = Body::Symlink(target);
                    ino
                }
                _ => self.nodes.insert(Node::new(
                    dir,
                    LATEST,
                    EntryKind::Symlink,
                    attr,
                    Body::Symlink(target),
                    Place::Virtual,
                )),
            };
            children.insert(LATEST.to_vec(), ino);
        }
        super::set_children(&mut self.nodes, dir, children);
    }

    /// The trees of snapshots with files open inside them, by library index: what the mount
    /// asks the server to hold, so a snapshot forgotten meanwhile is not collected while it
    /// is read (it has left the listing; open files keep working until closed).
    pub fn held_roots(&self) -> std::collections::HashMap<usize, Vec<ObjectId>> {
        let mut held: std::collections::HashMap<usize, Vec<ObjectId>> = Default::default();
        for handle in self.handles.values() {
            let super::Handle::Chunks { ino, library, .. } = handle else {
                continue;
            };
            let list = self.libraries[*library].snapshots;
            let mut current = *ino;
            while let Some(node) = self.nodes.get(current) {
                if !matches!(node.place, Place::Snapshot(_)) {
                    break;
                }
                if node.parent == list {
                    if let Body::Dir {
                        tree: Some(tree), ..
                    } = &node.body
                    {
                        let roots = held.entry(*library).or_default();
                        if !roots.contains(&tree.id()) {
                            roots.push(tree.id());
                        }
                    }
                    break;
                }
                current = node.parent;
            }
        }
        held
    }

    /// The first listing of `snapshots/LIB/` (under the lock: nothing is shown yet).
    pub(super) fn load_snapshot_list(&mut self, ino: Ino) -> VfsResult<BTreeMap<Vec<u8>, Ino>> {
        let Some(index) = self.libraries.iter().position(|v| v.snapshots == ino) else {
            return Ok(BTreeMap::new());
        };
        let library = self.libraries[index].library.clone();
        let ids = self.objects.snapshot_ids(&library)?;
        let unknown = self.unknown_snapshots(index, &ids);
        let fetched = self.objects.load_snapshots(&library, &unknown)?;
        self.show_snapshots(index, &ids, unknown.into_iter().zip(fetched).collect());
        match &self.node(ino)?.body {
            Body::Dir {
                children: Some(children),
                ..
            } => Ok(children.clone()),
            _ => Ok(BTreeMap::new()),
        }
    }
}

fn fixed_attr(mode: u32, time_ns: i64, size: u64) -> Attr {
    Attr {
        mode,
        uid: 0,
        gid: 0,
        mtime_ns: time_ns,
        ctime_ns: time_ns,
        atime_ns: None,
        size,
    }
}
