//! Walks the local file system into an in-memory tree of nodes, deciding for each file
//! whether it must be read: a file whose size, mtime and inode match its entry in the parent
//! snapshot keeps that entry's chunks and is not opened.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::crypto::ObjectKey;
use crate::model::{Entry, EntryKind, Tree, Xattr};
use crate::repo::content::FileJob;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    New,
    Changed,
    Unmodified,
}

pub enum Node {
    File {
        entry: Entry,
        job: Option<usize>,
        change: Change,
        /// The file's identity when it has other names (`st_nlink` > 1), see [`LinkKey`].
        link: Option<LinkKey>,
    },
    /// An entry with no content of its own: a symlink, FIFO, socket or device.
    Leaf(Entry),
    Dir {
        entry: Entry,
        children: Vec<Node>,
    },
}

/// A file with several names: its device, inode and modification time. The time keeps a
/// reused inode number from joining unrelated files into one group.
pub type LinkKey = (u64, u64, i64);

#[derive(Default)]
pub struct Scan {
    pub jobs: Vec<FileJob>,
    pub warnings: Vec<String>,
    /// Files met under several names: how many names, and the read of the first.
    pub links: HashMap<LinkKey, LinkGroup>,
}

#[derive(Default)]
pub struct LinkGroup {
    pub names: u32,
    job: Option<usize>,
}

impl LinkGroup {
    /// The group's id in trees: stable while the file is unchanged, so an unchanged folder
    /// keeps its tree.
    pub fn id(key: &LinkKey) -> u64 {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&key.0.to_le_bytes());
        hasher.update(&key.1.to_le_bytes());
        hasher.update(&key.2.to_le_bytes());
        let bytes = hasher.finalize();
        // Never 0, which means "no other name".
        u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes")).max(1)
    }
}

fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

fn read_xattrs(path: &Path) -> Vec<Xattr> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut xattrs: Vec<Xattr> = names
        .filter_map(|name| {
            let value = xattr::get(path, &name).ok().flatten()?;
            Some(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            })
        })
        .collect();
    xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    xattrs
}

/// The entry for `path` from its metadata, with no content yet.
pub fn entry_for(name: Vec<u8>, path: &Path, meta: &Metadata) -> Entry {
    let kind = EntryKind::from_mode(meta.mode()).unwrap_or(EntryKind::File);
    Entry {
        name,
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_ns: mtime_ns(meta),
        size: if kind == EntryKind::Dir || kind.is_special() {
            0
        } else {
            meta.len()
        },
        inode: meta.ino(),
        atime_ns: None,
        ctime_ns: None,
        link: 0,
        nlink: 0,
        rdev: if kind.is_device() { meta.rdev() } else { 0 },
        xattrs: if kind == EntryKind::Symlink {
            Vec::new()
        } else {
            read_xattrs(path)
        },
        chunks: Vec::new(),
        target: None,
        subtree: None,
    }
}

impl Scan {
    /// Scans `path` (named `name` in its parent), comparing with `parent` from the last
    /// snapshot. Returns `None` (with a warning) for what cannot be backed up.
    pub fn node(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        parent: Option<&Entry>,
        parent_trees: &HashMap<ObjectKey, Tree>,
    ) -> Option<Node> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) => {
                self.warnings
                    .push(format!("{}: {e}; skipped", path.display()));
                return None;
            }
        };
        let file_type = meta.file_type();
        let mut entry = entry_for(name, path, &meta);
        if file_type.is_dir() {
            let parent_tree = parent
                .filter(|p| p.kind == EntryKind::Dir)
                .and_then(|p| p.subtree)
                .and_then(|id| parent_trees.get(&id));
            let children = self.dir_children(path, parent_tree, parent_trees)?;
            Some(Node::Dir { entry, children })
        } else if file_type.is_symlink() {
            match std::fs::read_link(path) {
                Ok(target) => {
                    entry.target = Some(target.as_os_str().as_bytes().to_vec());
                    Some(Node::Leaf(entry))
                }
                Err(e) => {
                    self.warnings
                        .push(format!("{}: {e}; skipped", path.display()));
                    None
                }
            }
        } else if file_type.is_file() {
            let link = (meta.nlink() > 1).then(|| (meta.dev(), meta.ino(), entry.mtime_ns));
            if let Some(group) = link.and_then(|key| self.links.get_mut(&key)) {
                // Another name of a file already met: its content is read once.
                group.names += 1;
                if let Some(job) = group.job {
                    return Some(Node::File {
                        entry,
                        job: Some(job),
                        change: Change::Unmodified,
                        link,
                    });
                }
            }
            let previous = parent.filter(|p| p.kind == EntryKind::File);
            let unchanged = previous.filter(|p| {
                p.size == entry.size && p.mtime_ns == entry.mtime_ns && p.inode == entry.inode
            });
            if let Some(previous) = unchanged {
                entry.chunks = previous.chunks.clone();
                self.join_link(link, None);
                return Some(Node::File {
                    entry,
                    job: None,
                    change: Change::Unmodified,
                    link,
                });
            }
            let change = if previous.is_some() {
                Change::Changed
            } else {
                Change::New
            };
            self.jobs.push(FileJob {
                path: path.to_owned(),
                size: entry.size,
            });
            self.join_link(link, Some(self.jobs.len() - 1));
            Some(Node::File {
                entry,
                job: Some(self.jobs.len() - 1),
                change,
                link,
            })
        } else if entry.kind.is_special() {
            Some(Node::Leaf(entry))
        } else {
            self.warnings.push(format!(
                "{}: not a file type a backup can hold; skipped",
                path.display()
            ));
            None
        }
    }

    /// Counts the first name of a linked file, with the read of its content (if any).
    fn join_link(&mut self, link: Option<LinkKey>, job: Option<usize>) {
        if let Some(key) = link {
            let group = self.links.entry(key).or_default();
            if group.names == 0 {
                group.names = 1;
                group.job = job;
            }
        }
    }

    fn dir_children(
        &mut self,
        path: &Path,
        parent_tree: Option<&Tree>,
        parent_trees: &HashMap<ObjectKey, Tree>,
    ) -> Option<Vec<Node>> {
        let reader = match std::fs::read_dir(path) {
            Ok(reader) => reader,
            Err(e) => {
                self.warnings
                    .push(format!("{}: {e}; skipped", path.display()));
                return None;
            }
        };
        let mut names: Vec<_> = Vec::new();
        for item in reader {
            match item {
                Ok(item) => names.push(item.file_name()),
                Err(e) => self.warnings.push(format!("{}: {e}", path.display())),
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let children = names
            .into_iter()
            .filter_map(|name| {
                let bytes = name.as_bytes().to_vec();
                let previous = parent_tree.and_then(|t| t.get(&bytes));
                self.node(&path.join(&name), bytes, previous, parent_trees)
            })
            .collect();
        Some(children)
    }
}
