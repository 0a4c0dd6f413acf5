//! The inode arena: every file, directory, symlink and special file the mount shows, live or in a
//! snapshot, with the virtual directories around them. Directories load their children
//! lazily from their tree id the first time they are listed or looked into.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::VfsError;
use crate::crypto::ObjectKey;
use crate::model::{ChunkRef, Entry, EntryKind, Xattr};

pub type Ino = u64;
pub const ROOT: Ino = 1;

/// Where a node lives, which decides whether it may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The mount's root, `snapshots/`, and `snapshots/LIBRARY/`.
    Virtual,
    /// Inside the live view of library `n`.
    Live(usize),
    /// Inside a snapshot of library `n` (read-only).
    Snapshot(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// Set explicitly (`utimensat`); `None` shows the modification time (the mount is
    /// `noatime`: reads never change it).
    pub atime_ns: Option<i64>,
    pub size: u64,
}

#[derive(Clone, Debug)]
pub enum Body {
    Dir {
        /// `None` until loaded from `tree`.
        children: Option<BTreeMap<Vec<u8>, Ino>>,
        tree: Option<ObjectKey>,
    },
    File {
        chunks: Arc<Vec<ChunkRef>>,
        /// A local file holding newer content than `chunks` (write-back).
        staged: Option<String>,
        /// Signature of the server's version this content derives from (none: made here).
        base: Option<String>,
    },
    Symlink(Vec<u8>),
    /// A FIFO, socket or device (`rdev`): nothing to read or write through the mount.
    Special {
        rdev: u64,
    },
}

#[derive(Clone, Debug)]
pub struct Node {
    /// The first name's directory and the name: what the journal calls the node by.
    pub parent: Ino,
    pub name: Vec<u8>,
    /// Hard links: the node's group id in its trees (0: none), its count of names, and the
    /// names besides the first that this mount has loaded or made.
    pub link: u64,
    pub nlink: u32,
    pub other_names: Vec<(Ino, Vec<u8>)>,
    pub kind: EntryKind,
    pub attr: Attr,
    pub xattrs: Vec<Xattr>,
    pub body: Body,
    pub place: Place,
}

impl Node {
    /// A node with one name and no other: what every new file, link or directory starts as.
    pub fn new(
        parent: Ino,
        name: &[u8],
        kind: EntryKind,
        attr: Attr,
        body: Body,
        place: Place,
    ) -> Self {
        Node {
            parent,
            name: name.to_vec(),
            link: 0,
            nlink: 1,
            other_names: Vec::new(),
            kind,
            attr,
            xattrs: Vec::new(),
            body,
            place,
        }
    }

    pub fn from_entry(entry: &Entry, parent: Ino, place: Place) -> Self {
        let body = match entry.kind {
            EntryKind::Dir => Body::Dir {
                children: None,
                tree: entry.subtree,
            },
            EntryKind::File => Body::File {
                chunks: Arc::new(entry.chunks.clone()),
                staged: None,
                base: Some(content_sig(&entry.chunks)),
            },
            EntryKind::Symlink => Body::Symlink(entry.target.clone().unwrap_or_default()),
            EntryKind::Fifo
            | EntryKind::Socket
            | EntryKind::CharDevice
            | EntryKind::BlockDevice => Body::Special { rdev: entry.rdev },
        };
        Node {
            parent,
            name: entry.name.clone(),
            link: entry.link,
            nlink: entry.nlink.max(1),
            other_names: Vec::new(),
            kind: entry.kind,
            attr: Attr {
                mode: entry.mode,
                uid: entry.uid,
                gid: entry.gid,
                mtime_ns: entry.mtime_ns,
                ctime_ns: entry.ctime_ns.unwrap_or(entry.mtime_ns),
                atime_ns: entry.atime_ns,
                size: entry.size,
            },
            xattrs: entry.xattrs.clone(),
            body,
            place,
        }
    }

    pub fn dir(parent: Ino, name: &[u8], attr: Attr, place: Place) -> Self {
        let body = Body::Dir {
            children: Some(BTreeMap::new()),
            tree: None,
        };
        Node::new(parent, name, EntryKind::Dir, attr, body, place)
    }
}

/// Names a file's committed content, to tell whether someone else changed it meanwhile.
pub fn content_sig(chunks: &[ChunkRef]) -> String {
    let mut hasher = blake3::Hasher::new();
    for chunk in chunks {
        hasher.update(chunk.id().as_bytes());
        hasher.update(&chunk.len.to_le_bytes());
    }
    hasher.finalize().to_hex()[..32].to_owned()
}

#[derive(Default)]
pub struct Nodes {
    slots: Vec<Option<Node>>,
}

impl Nodes {
    /// Adds a node and returns its inode number (never reused while mounted).
    pub fn insert(&mut self, node: Node) -> Ino {
        self.slots.push(Some(node));
        self.slots.len() as Ino
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn get(&self, ino: Ino) -> Option<&Node> {
        self.slots.get((ino as usize).checked_sub(1)?)?.as_ref()
    }

    pub fn get_mut(&mut self, ino: Ino) -> Option<&mut Node> {
        self.slots.get_mut((ino as usize).checked_sub(1)?)?.as_mut()
    }

    /// The node the kernel names by `ino`; [`VfsError::Stale`] if the mount dropped it.
    pub fn known(&self, ino: Ino) -> Result<&Node, VfsError> {
        self.get(ino).ok_or(VfsError::Stale)
    }

    /// [`Nodes::known`], to change.
    pub fn known_mut(&mut self, ino: Ino) -> Result<&mut Node, VfsError> {
        self.get_mut(ino).ok_or(VfsError::Stale)
    }

    /// Drops a node and everything loaded below it.
    pub fn remove_tree(&mut self, ino: Ino) {
        let mut stack = vec![ino];
        while let Some(ino) = stack.pop() {
            let Some(slot) = self.slots.get_mut((ino as usize).wrapping_sub(1)) else {
                continue;
            };
            if let Some(Node {
                body:
                    Body::Dir {
                        children: Some(children),
                        ..
                    },
                ..
            }) = slot.take()
            {
                stack.extend(children.values());
            }
        }
    }
}
