//! Hard links: one node under several names. Names of one file in a snapshot share a
//! link group id in their tree entries (see FORMAT.md); as directories load, every name of
//! a group under one top directory (a library's live view, or one snapshot) becomes the
//! same node, so `stat` shows one inode and a write through one name shows through all.

use super::nodes::{Body, Ino, Place};
use super::{Stat, Vfs, VfsError, VfsResult};
use crate::model::EntryKind;
use crate::mount::journal::{join_path, Op};

impl Vfs {
    /// The top directory `dir` lies in: a library's live view or a snapshot's root. Link
    /// groups are shared within it, never across.
    pub(super) fn link_root(&self, dir: Ino) -> Ino {
        let mut current = dir;
        while let Some(node) = self.nodes.get(current) {
            match self.nodes.get(node.parent) {
                Some(parent) if parent.place != Place::Virtual && node.parent != current => {
                    current = node.parent
                }
                _ => break,
            }
        }
        current
    }

    /// The node already loaded for link group `link` under `root`, if any.
    pub(super) fn linked_node(&self, root: Ino, link: u64) -> Option<Ino> {
        let ino = *self.hardlinks.get(&(root, link))?;
        self.nodes.get(ino).filter(|n| n.link == link).map(|_| ino)
    }

    /// The path inside its library of the name `name` in live directory `parent`.
    pub(super) fn name_path(&self, parent: Ino, name: &[u8]) -> Option<Vec<u8>> {
        Some(join_path(&self.live_path(parent)?.1, name))
    }

    /// `ln`: `new_name` in `new_parent` becomes another name of file `ino`, in the same
    /// library.
    pub fn link(&mut self, ino: Ino, new_parent: Ino, new_name: &[u8]) -> VfsResult<Stat> {
        let index = self.writable(new_parent)?;
        if self.writable(ino)? != index {
            return Err(VfsError::CrossDevice);
        }
        // As on ext4: anything but a directory.
        if self.node(ino)?.kind == EntryKind::Dir {
            return Err(VfsError::NotPermitted);
        }
        self.check_new_name(new_parent, new_name)?;
        let from = self.live_path(ino).ok_or(VfsError::NotFound)?.1;
        let root = self.link_root(new_parent);
        let node = self.nodes.known_mut(ino)?;
        if node.link == 0 {
            node.link = rand::random::<u64>().max(1);
        }
        let link = node.link;
        node.nlink += 1;
        node.other_names.push((new_parent, new_name.to_vec()));
        node.attr.ctime_ns = super::now_ns();
        self.hardlinks.insert((root, link), ino);
        self.insert_child(new_parent, new_name, ino);
        let to = self
            .name_path(new_parent, new_name)
            .ok_or(VfsError::NotFound)?;
        self.record(index, Op::Link { from, to, link }, false)?;
        self.stat(ino)
    }

    /// Forgets the name `name` in `parent` of `ino`, which is gone: one name fewer, and the
    /// node's first name moves to another of its names if it was the one.
    pub(super) fn drop_name(&mut self, ino: Ino, parent: Ino, name: &[u8]) {
        let Some(node) = self.nodes.get_mut(ino) else {
            return;
        };
        // The last name gone, an open file shows 0 links until it is closed.
        if node.other_names.is_empty() {
            node.nlink = node.nlink.saturating_sub(1);
            return;
        }
        if node.parent == parent && node.name == name {
            let (next_parent, next_name) = node.other_names.remove(0);
            node.parent = next_parent;
            node.name = next_name;
        } else {
            node.other_names
                .retain(|(p, n)| !(*p == parent && n.as_slice() == name));
        }
        node.nlink = node.nlink.saturating_sub(1);
        node.attr.ctime_ns = super::now_ns();
    }

    /// Records that the name `name` in `parent` of `ino` is now `new_name` in
    /// `new_parent`.
    pub(super) fn move_name(
        &mut self,
        ino: Ino,
        (parent, name): (Ino, &[u8]),
        (new_parent, new_name): (Ino, &[u8]),
    ) {
        let Some(node) = self.nodes.get_mut(ino) else {
            return;
        };
        if node.parent == parent && node.name == name || node.other_names.is_empty() {
            node.parent = new_parent;
            node.name = new_name.to_vec();
        } else if let Some(other) = node
            .other_names
            .iter_mut()
            .find(|(p, n)| *p == parent && n.as_slice() == name)
        {
            *other = (new_parent, new_name.to_vec());
        }
        node.attr.ctime_ns = super::now_ns();
    }

    /// Another name of `node`, met loading `parent`: it becomes the first name if the first
    /// is gone (removed here), else one of the others.
    pub(super) fn add_loaded_name(&mut self, node: Ino, parent: Ino, name: &[u8]) {
        let first_shown = self.nodes.get(node).is_some_and(|n| {
            matches!(
                self.nodes.get(n.parent).map(|p| &p.body),
                Some(Body::Dir { children: Some(children), .. }) if children.get(&n.name) == Some(&node)
            )
        });
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if first_shown {
            n.other_names.push((parent, name.to_vec()));
        } else {
            n.parent = parent;
            n.name = name.to_vec();
        }
    }
}
