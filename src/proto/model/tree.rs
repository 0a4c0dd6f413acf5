//! A tree is one directory: its entries sorted by name (as raw bytes, so any name a Linux
//! file system allows round-trips, UTF-8 or not), each with the metadata a restore needs.
//! Entries carry the *keys* of what they point at (chunks, subtrees), from which the ids
//! derive: holding a tree's key opens everything below it and nothing else.

use serde::{Deserialize, Serialize};

use super::{codec, ModelError};
use crate::crypto::{ObjectId, ObjectKey};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix domain socket's name (no connection survives a backup).
    Socket,
    /// A character device; `rdev` says which.
    #[serde(rename = "chardev")]
    CharDevice,
    /// A block device; `rdev` says which.
    #[serde(rename = "blockdev")]
    BlockDevice,
}

impl EntryKind {
    /// A FIFO, socket or device: an entry with no content of its own.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            EntryKind::Fifo | EntryKind::Socket | EntryKind::CharDevice | EntryKind::BlockDevice
        )
    }

    /// A character or block device, which has a device number (`rdev`).
    pub fn is_device(self) -> bool {
        matches!(self, EntryKind::CharDevice | EntryKind::BlockDevice)
    }

    /// The kind of a file with `st_mode` `mode` (its `S_IFMT` bits).
    pub fn from_mode(mode: u32) -> Option<Self> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => EntryKind::File,
            libc::S_IFDIR => EntryKind::Dir,
            libc::S_IFLNK => EntryKind::Symlink,
            libc::S_IFIFO => EntryKind::Fifo,
            libc::S_IFSOCK => EntryKind::Socket,
            libc::S_IFCHR => EntryKind::CharDevice,
            libc::S_IFBLK => EntryKind::BlockDevice,
            _ => return None,
        })
    }
}

/// One piece of a file: the chunk's key and its plaintext length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub key: ObjectKey,
    pub len: u32,
}

impl ChunkRef {
    pub fn id(&self) -> ObjectId {
        self.key.id()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits (and setuid/setgid/sticky), without the file-type bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// File size in bytes; for a symlink the target's length; 0 for a directory.
    pub size: u64,
    /// The inode number at backup time, to skip re-reading unchanged files.
    #[serde(default)]
    pub inode: u64,
    /// Access time in nanoseconds since the Unix epoch, when set explicitly in the mount
    /// (`touch -a`, `utimensat`); absent means "the modification time".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atime_ns: Option<i64>,
    /// Status-change time in nanoseconds, when a change in the mount (mode, owner,
    /// extended attributes, ACLs) came after the last modification; absent means "the
    /// modification time".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctime_ns: Option<i64>,
    /// A device's number (`st_rdev`); 0 for everything else.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// Hard links: files of one snapshot with the same nonzero `link` are one file under
    /// several names (each entry still carries the whole file). 0: no other name.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub link: u64,
    /// How many names the file has in the snapshot (with `link`); 0 means 1.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub nlink: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    /// File contents in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkRef>,
    /// Symlink target.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub target: Option<Vec<u8>>,
    /// Directory contents: the key of the tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<ObjectKey>,
}

impl Entry {
    /// An entry named `name` of `kind` with everything else zero or empty (owner root,
    /// mode 0, time 0): a start for the fields that matter to fill in.
    pub fn new(name: &[u8], kind: EntryKind) -> Self {
        Entry {
            name: name.to_vec(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            size: 0,
            inode: 0,
            atime_ns: None,
            ctime_ns: None,
            rdev: 0,
            link: 0,
            nlink: 0,
            xattrs: Vec::new(),
            chunks: Vec::new(),
            target: None,
            subtree: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

impl Tree {
    /// Builds a tree from entries in any order; names must be unique.
    pub fn new(mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.dedup_by(|a, b| a.name == b.name);
        Self { entries }
    }

    pub fn get(&self, name: &[u8]) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Inserts or replaces the entry with `entry.name`, keeping the order.
    pub fn upsert(&mut self, entry: Entry) {
        match self.entries.binary_search_by(|e| e.name.cmp(&entry.name)) {
            Ok(i) => self.entries[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
    }

    /// Every object this tree points at (chunks and subtrees), each once: the edges the
    /// server records for garbage collection and completeness checks.
    pub fn refs(&self) -> Vec<ObjectId> {
        let mut refs: Vec<ObjectId> = self
            .entries
            .iter()
            .flat_map(|e| {
                e.chunks
                    .iter()
                    .map(ChunkRef::id)
                    .chain(e.subtree.map(|k| k.id()))
            })
            .collect();
        refs.sort();
        refs.dedup();
        refs
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ModelError> {
        let tree: Tree = codec::decode(bytes)?;
        if !tree.entries.windows(2).all(|w| w[0].name < w[1].name) {
            return Err(ModelError::Malformed(
                "tree entries are not sorted and unique".into(),
            ));
        }
        if let Some(bad) = tree.entries.iter().find(|e| !valid_name(&e.name)) {
            return Err(ModelError::Malformed(format!(
                "invalid entry name {:?}",
                String::from_utf8_lossy(&bad.name)
            )));
        }
        Ok(tree)
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

/// A name a directory can hold: not empty, not `.` or `..`, no `/` or NUL.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::IdKey;

    pub(crate) fn file(name: &[u8]) -> Entry {
        Entry {
            name: name.to_vec(),
            kind: EntryKind::File,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            mtime_ns: 1_700_000_000_123_456_789,
            size: 3,
            inode: 42,
            atime_ns: None,
            ctime_ns: None,
            rdev: 0,
            link: 0,
            nlink: 0,
            xattrs: vec![],
            chunks: vec![ChunkRef {
                key: IdKey::new([1; 32]).object_key(1, b"abc"),
                len: 3,
            }],
            target: None,
            subtree: None,
        }
    }

    #[test]
    fn encode_decode_round_trip_with_non_utf8_names() {
        let tree = Tree::new(vec![
            file(b"z"),
            file(b"\xff\xfe odd"),
            file("ü ñ".as_bytes()),
        ]);
        let decoded = Tree::decode(&tree.encode()).unwrap();
        assert_eq!(decoded, tree);
        assert!(decoded.get(b"\xff\xfe odd").is_some());
        let names: Vec<&[u8]> = decoded.entries.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(names, vec![&b"z"[..], "ü ñ".as_bytes(), b"\xff\xfe odd"]);
    }

    #[test]
    fn decode_refuses_unknown_version_and_bad_names() {
        let mut bytes = Tree::new(vec![file(b"a")]).encode();
        bytes[0] = 3;
        assert!(matches!(Tree::decode(&bytes), Err(ModelError::Version(3))));
        bytes[0] = 1;
        assert!(matches!(Tree::decode(&bytes), Err(ModelError::Version(1))));
        let evil = Tree {
            entries: vec![file(b"../etc")],
        };
        assert!(Tree::decode(&evil.encode()).is_err());
    }

    #[test]
    fn refs_are_unique() {
        let tree = Tree::new(vec![file(b"a"), file(b"b")]);
        assert_eq!(tree.refs().len(), 1);
    }
}
