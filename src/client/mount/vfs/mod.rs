//! The filesystem model behind the mount: what `~/ibackup` shows and how it answers lookup,
//! getattr, readdir, open, read and (in `write`) every change. Plain Rust, tested without a
//! kernel; `client::fuse` only translates to and from FUSE.
//!
//! Layout: one directory per library (`Backups`, shared ones `NAME@OWNER`) showing its live
//! head, and `snapshots/LIBRARY/TIMESTAMP/` read-only for each snapshot, with
//! `snapshots/LIBRARY/latest` a symlink to the newest. Inode numbers are never reused while
//! mounted; directories load lazily, and snapshot listings are taken once per open, so
//! readdir offsets survive changes made meanwhile.

mod acl;
mod commit;
mod hardlinks;
pub mod nodes;
pub mod objects;
mod passthrough;
mod read;
pub mod snapshots;
mod space;
#[cfg(test)]
mod tests;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use self::nodes::{Attr, Body, Ino, Node, Nodes, Place, ROOT};
use self::objects::Objects;
use crate::crypto::{ObjectId, ObjectKey};
use crate::model::EntryKind;
use crate::session::OpenLibrary;
use crate::ClientError;

pub use self::acl::is_acl;
pub use self::read::{Handle, Opened};
pub use self::space::{Seek, Sought};
pub use self::write::{AttrChange, Caller};

/// What went wrong, in terms a file system can report. `client::fuse` maps each to an errno.
#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    #[error("no such file or directory")]
    NotFound,
    /// The kernel named a node the mount no longer has (the view was rebuilt after another
    /// client's change since the kernel looked the name up): ESTALE, on which the kernel
    /// looks the path up again.
    #[error("stale file handle")]
    Stale,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("file exists")]
    Exists,
    #[error("directory not empty")]
    NotEmpty,
    #[error("read-only: snapshots never change")]
    ReadOnly,
    #[error("permission denied")]
    Access,
    #[error("quota exceeded")]
    NoSpace,
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("bad file handle")]
    BadHandle,
    #[error("cannot move between libraries")]
    CrossDevice,
    #[error("file name too long")]
    NameTooLong,
    #[error("no such extended attribute")]
    NoAttribute,
    #[error("operation not supported")]
    NotSupported,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Remote(#[from] ClientError),
}

pub type VfsResult<T> = Result<T, VfsError>;

/// A library as the mount shows it.
pub struct LibraryView {
    pub library: Arc<OpenLibrary>,
    pub display: String,
    /// The live directory.
    pub live: Ino,
    /// `snapshots/LIBRARY/`.
    pub snapshots: Ino,
    pub head: Option<ObjectId>,
    pub writable: bool,
    /// Snapshots this mount opened, by id (see `snapshots`).
    known_snapshots: HashMap<ObjectId, snapshots::Shown>,
    /// No longer shown: unshared or deleted while mounted.
    pub gone: bool,
}

/// What `getattr` and `lookup` report.
#[derive(Clone, Debug)]
pub struct Stat {
    pub ino: Ino,
    pub kind: EntryKind,
    pub attr: Attr,
    pub nlink: u32,
    /// A device's number; 0 for everything else.
    pub rdev: u64,
    /// The 512-byte blocks it takes (fewer than its size needs where it has holes).
    pub blocks: u64,
    pub read_only: bool,
    /// Inside a snapshot: never changes, so the kernel may cache it for long.
    pub immutable: bool,
}

/// A folder's entries as an open handle reads them.
struct Listing {
    dir: Ino,
    entries: Vec<(Ino, EntryKind, Vec<u8>)>,
    /// Whether the handle has read from it: a read from the start after that is a rewind.
    read: bool,
}

pub struct Vfs {
    pub(crate) nodes: Nodes,
    pub(crate) libraries: Vec<LibraryView>,
    pub(crate) objects: Arc<dyn Objects>,
    pub(crate) handles: HashMap<u64, Handle>,
    next_handle: u64,
    /// Listings taken at opendir, by handle.
    listings: HashMap<u64, Listing>,
    /// Where staged (written, not yet uploaded) files live.
    pub(crate) stage_dir: std::path::PathBuf,
    pub(crate) journal: Arc<super::journal::Journal>,
    /// When the last change was journaled, for the uploader's quiet delay.
    pub last_change: std::time::Instant,
    /// Directories whose small files were already prefetched together.
    pub(crate) prefetched_dirs: std::collections::HashSet<Ino>,
    /// Empty files in `stage_dir/free`, left by uploaded stages, to reuse for new ones.
    pub(crate) free_stages: Vec<String>,
    /// Staged files the kernel reads and writes itself, by inode.
    pub(crate) passed: HashMap<Ino, passthrough::PassedThrough>,
    /// The node of each hard-link group loaded, by (top directory, link id): see `hardlinks`.
    hardlinks: HashMap<(Ino, u64), Ino>,
}

/// Where uploaded stages wait, truncated, to be reused.
pub const FREE_STAGES: &str = "free";
/// Most empty stage files kept for reuse.
pub const MAX_FREE_STAGES: usize = 16_384;

/// A library to show, with its head and that head's root tree.
pub struct MountedLibrary {
    pub library: OpenLibrary,
    pub display: String,
    pub head: Option<(ObjectId, ObjectKey)>,
}

/// Size and mtime (ns) of a staged file: what tells that its content changed (the kernel
/// writing a passed-through file, or a file changed after its chunks were prepared).
pub fn stage_signature(meta: &std::fs::Metadata) -> (u64, i64) {
    use std::os::unix::fs::MetadataExt;
    (meta.len(), meta.mtime() * 1_000_000_000 + meta.mtime_nsec())
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn virtual_attr(mode: u32) -> Attr {
    let now = now_ns();
    Attr {
        mode,
        uid: 0,
        gid: 0,
        mtime_ns: now,
        ctime_ns: now,
        atime_ns: None,
        size: 0,
    }
}

/// The folder name a library is shown under: its display name (`NAME`, `NAME@OWNER`, both
/// from whoever owns the library) made into a name a folder here can have: `/` becomes
/// `∕`, NUL goes, a name past 255 bytes is cut, and `library-ID` stands for one that is
/// empty, `.`, `..` or `snapshots`. A hostile owner cannot reach outside the mount's root
/// or hide the snapshots folder.
fn folder_name(display: &str, id: &str) -> String {
    let mut name: String = display
        .chars()
        .filter(|c| *c != '\0')
        .map(|c| if c == '/' { '∕' } else { c })
        .collect();
    if name.len() > NAME_MAX {
        let mut end = NAME_MAX;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    if !crate::model::tree::valid_name(name.as_bytes()) || name.as_bytes() == SNAPSHOTS_DIR {
        name = format!("library-{}", &id[..id.len().min(8)]);
    }
    name
}

pub const SNAPSHOTS_DIR: &[u8] = b"snapshots";
/// The longest file name, in bytes, as on ext4.
pub const NAME_MAX: usize = 255;

impl Vfs {
    pub fn new(
        libraries: Vec<MountedLibrary>,
        objects: Arc<dyn Objects>,
        owner: (u32, u32),
        stage_dir: std::path::PathBuf,
        journal: Arc<super::journal::Journal>,
    ) -> Self {
        let mut nodes = Nodes::default();
        let mut root_attr = virtual_attr(0o755);
        (root_attr.uid, root_attr.gid) = owner;
        let root = nodes.insert(Node::dir(ROOT, b"", root_attr, Place::Virtual));
        debug_assert_eq!(root, ROOT);
        let snapshots_root = nodes.insert(Node::dir(
            ROOT,
            SNAPSHOTS_DIR,
            virtual_attr(0o555),
            Place::Virtual,
        ));
        let mut root_children = BTreeMap::new();
        root_children.insert(SNAPSHOTS_DIR.to_vec(), snapshots_root);
        set_children(&mut nodes, ROOT, root_children);
        set_children(&mut nodes, snapshots_root, BTreeMap::new());
        let mut vfs = Vfs {
            nodes,
            libraries: Vec::new(),
            objects,
            handles: HashMap::new(),
            next_handle: 1,
            listings: HashMap::new(),
            stage_dir,
            journal,
            last_change: std::time::Instant::now(),
            prefetched_dirs: std::collections::HashSet::new(),
            hardlinks: HashMap::new(),
            free_stages: Vec::new(),
            passed: HashMap::new(),
        }
        .with_free_stages();
        for mounted in libraries {
            vfs.attach(mounted);
        }
        vfs
    }

    /// `snapshots/`, the folder of every library's snapshot folders.
    fn snapshots_root(&self) -> Ino {
        match &self.nodes.get(ROOT).map(|n| &n.body) {
            Some(Body::Dir {
                children: Some(children),
                ..
            }) => children[SNAPSHOTS_DIR],
            _ => unreachable!("the root always lists snapshots/"),
        }
    }

    fn child_map(&mut self, ino: Ino) -> Option<&mut BTreeMap<Vec<u8>, Ino>> {
        match &mut self.nodes.get_mut(ino)?.body {
            Body::Dir {
                children: Some(children),
                ..
            } => Some(children),
            _ => None,
        }
    }

    /// Shows a library: its live folder at the root and its folder under `snapshots/`.
    /// Returns its index (places refer to libraries by index; indexes are never reused).
    pub fn attach(&mut self, mounted: MountedLibrary) -> usize {
        let index = self.libraries.len();
        let writable = mounted.library.info.permission.can_write();
        let owner = self.nodes.get(ROOT).map(|n| (n.attr.uid, n.attr.gid));
        let mut attr = virtual_attr(if writable { 0o755 } else { 0o555 });
        (attr.uid, attr.gid) = owner.unwrap_or((0, 0));
        let mut display = folder_name(&mounted.display, &mounted.library.info.id);
        let taken =
            |vfs: &Self, name: &str| vfs.libraries.iter().any(|v| !v.gone && v.display == name);
        if taken(self, &display) {
            // Two libraries the server calls the same: both stay reachable.
            let id = &mounted.library.info.id;
            display = format!("{display} ({})", &id[..id.len().min(8)]);
        }
        let name = display.as_bytes().to_vec();
        let mut live = Node::dir(ROOT, &name, attr, Place::Live(index));
        if let Some((_, root_tree)) = mounted.head {
            live.body = Body::Dir {
                children: None,
                tree: Some(root_tree),
            };
        }
        let live = self.nodes.insert(live);
        let snapshots_root = self.snapshots_root();
        let mut list = Node::dir(snapshots_root, &name, virtual_attr(0o555), Place::Virtual);
        list.body = Body::Dir {
            children: None,
            tree: None,
        };
        let snapshots = self.nodes.insert(list);
        if let Some(children) = self.child_map(ROOT) {
            children.insert(name.clone(), live);
        }
        if let Some(children) = self.child_map(snapshots_root) {
            children.insert(name, snapshots);
        }
        self.libraries.push(LibraryView {
            library: Arc::new(mounted.library),
            display,
            live,
            snapshots,
            head: mounted.head.map(|(head, _)| head),
            writable,
            known_snapshots: HashMap::new(),
            gone: false,
        });
        index
    }

    /// Stops showing a library (it was unshared or deleted): its folders leave the listing;
    /// open files keep their content until closed, and nothing more is written to it.
    pub fn detach(&mut self, index: usize) {
        let view = &mut self.libraries[index];
        if view.gone {
            return;
        }
        view.gone = true;
        view.writable = false;
        let (name, live, snapshots) = (view.display.as_bytes().to_vec(), view.live, view.snapshots);
        let snapshots_root = self.snapshots_root();
        if let Some(children) = self.child_map(ROOT) {
            if children.get(&name) == Some(&live) {
                children.remove(&name);
            }
        }
        if let Some(children) = self.child_map(snapshots_root) {
            if children.get(&name) == Some(&snapshots) {
                children.remove(&name);
            }
        }
    }

    /// Takes a library's keys and permission as they are now (after a key rotation, or a
    /// share changed from read to read-write).
    pub fn update_library(&mut self, index: usize, library: crate::session::OpenLibrary) {
        let view = &mut self.libraries[index];
        view.writable = library.info.permission.can_write();
        view.library = Arc::new(library);
        let mode = if view.writable { 0o755 } else { 0o555 };
        let live = view.live;
        if let Some(node) = self.nodes.get_mut(live) {
            node.attr.mode = mode;
        }
    }

    /// Lists the reusable empty stage files a previous mount left.
    fn with_free_stages(mut self) -> Self {
        if let Ok(entries) = std::fs::read_dir(self.stage_dir.join(FREE_STAGES)) {
            self.free_stages = entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .take(MAX_FREE_STAGES)
                .collect();
        }
        self
    }

    pub(crate) fn node(&self, ino: Ino) -> VfsResult<&Node> {
        self.nodes.known(ino)
    }

    pub(crate) fn new_handle(&mut self, handle: Handle) -> u64 {
        let fh = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(fh, handle);
        fh
    }

    /// A node's attributes. A directory is loaded first, as its link count (2 + its
    /// subdirectories, as on ext4: `find` relies on it) needs its children.
    pub fn stat(&mut self, ino: Ino) -> VfsResult<Stat> {
        let node = self.node(ino)?;
        let nlink = match node.kind {
            // Removed, or replaced by a rename, while open: no links, as on ext4.
            EntryKind::Dir
                if matches!(node.place, Place::Live(_)) && self.live_path(ino).is_none() =>
            {
                0
            }
            EntryKind::Dir => self.dir_links(ino),
            _ => self.node(ino)?.nlink,
        };
        let node = self.node(ino)?;
        let read_only = !matches!(node.place, Place::Live(i) if self.libraries[i].writable);
        // `attr.size` follows every write, truncate and setattr, staged or not.
        let mut attr = node.attr.clone();
        self.passed_attr(ino, &mut attr);
        let rdev = match node.body {
            Body::Special { rdev } => rdev,
            _ => 0,
        };
        let blocks = match node.kind {
            EntryKind::File => self.blocks(ino, attr.size),
            _ => attr.size.div_ceil(512),
        };
        Ok(Stat {
            ino,
            kind: node.kind,
            attr,
            nlink,
            rdev,
            blocks,
            read_only,
            immutable: matches!(node.place, Place::Snapshot(_)),
        })
    }

    /// 2 + the subdirectories of directory `ino`, loaded first; 1 (what tools read as
    /// "count unknown") if it cannot be loaded.
    fn dir_links(&mut self, ino: Ino) -> u32 {
        if self.children(ino).is_err() {
            return 1;
        }
        let Some(Body::Dir {
            children: Some(children),
            ..
        }) = self.nodes.get(ino).map(|n| &n.body)
        else {
            return 1;
        };
        let subdirs = children
            .values()
            .filter(|child| {
                self.nodes
                    .get(**child)
                    .is_some_and(|n| n.kind == EntryKind::Dir)
            })
            .count();
        2 + subdirs as u32
    }

    /// The children of a directory, loading them first if needed.
    pub(crate) fn children(&mut self, ino: Ino) -> VfsResult<&BTreeMap<Vec<u8>, Ino>> {
        let node = self.node(ino)?;
        let (place, tree) = match &node.body {
            Body::Dir {
                children: Some(_), ..
            } => {
                return match &self.node(ino)?.body {
                    Body::Dir {
                        children: Some(children),
                        ..
                    } => Ok(children),
                    _ => unreachable!("checked above"),
                };
            }
            Body::Dir {
                children: None,
                tree,
            } => (node.place, *tree),
            _ => return Err(VfsError::NotDir),
        };
        let loaded = match (place, tree) {
            (Place::Live(lib) | Place::Snapshot(lib), Some(tree)) => {
                let library = self.libraries[lib].library.clone();
                let tree = self.objects.tree(&library, &tree)?;
                self.look_ahead(&library, &tree);
                let root = self.link_root(ino);
                let mut loaded = BTreeMap::new();
                for entry in &tree.entries {
                    let group = (entry.link != 0 && entry.kind != EntryKind::Dir)
                        .then_some((root, entry.link));
                    let child = match group.and_then(|(root, link)| self.linked_node(root, link)) {
                        Some(node) => {
                            self.add_loaded_name(node, ino, &entry.name);
                            node
                        }
                        None => {
                            let node = self.nodes.insert(Node::from_entry(entry, ino, place));
                            if let Some(group) = group {
                                self.hardlinks.insert(group, node);
                            }
                            node
                        }
                    };
                    loaded.insert(entry.name.clone(), child);
                }
                loaded
            }
            (Place::Virtual, _) => self.load_snapshot_list(ino)?,
            _ => BTreeMap::new(),
        };
        set_children(&mut self.nodes, ino, loaded);
        self.children(ino)
    }

    /// Loads the trees of a directory's subdirectories in one request, as listing or
    /// looking into the directory goes on to stat them (which loads them: see `stat`).
    fn look_ahead(&self, library: &OpenLibrary, tree: &crate::model::Tree) {
        let subtrees: Vec<ObjectKey> = tree.entries.iter().filter_map(|e| e.subtree).collect();
        if !subtrees.is_empty() && !self.objects.at_hand(library, &subtrees) {
            // A failure shows when the directory itself is loaded.
            let _ = self
                .objects
                .get(library, crate::crypto::BlobKind::Tree, &subtrees);
        }
    }

    pub fn lookup(&mut self, parent: Ino, name: &[u8]) -> VfsResult<Stat> {
        if name.len() > NAME_MAX {
            return Err(VfsError::NameTooLong);
        }
        let ino = *self.children(parent)?.get(name).ok_or(VfsError::NotFound)?;
        self.stat(ino)
    }

    /// Where a node is in the mount (`Backups/docs/a.txt`, `snapshots/Backups/...`), for
    /// log lines.
    pub fn mount_path(&self, ino: Ino) -> String {
        let mut parts = Vec::new();
        let mut current = ino;
        while current != ROOT {
            let Some(node) = self.nodes.get(current) else {
                break;
            };
            parts.push(String::from_utf8_lossy(&node.name).into_owned());
            current = node.parent;
        }
        parts.reverse();
        parts.join("/")
    }

    pub fn readlink(&self, ino: Ino) -> VfsResult<Vec<u8>> {
        match &self.node(ino)?.body {
            Body::Symlink(target) => Ok(target.clone()),
            _ => Err(VfsError::Invalid("not a symlink")),
        }
    }

    /// Takes a listing of a directory (with `.` and `..`) for readdir to page through.
    pub fn opendir(&mut self, ino: Ino) -> VfsResult<u64> {
        let listing = self.listing(ino)?;
        let fh = self.next_handle;
        self.next_handle += 1;
        self.listings.insert(
            fh,
            Listing {
                dir: ino,
                entries: listing,
                read: false,
            },
        );
        Ok(fh)
    }

    /// A folder's entries as they are now, `.` and `..` first.
    fn listing(&mut self, ino: Ino) -> VfsResult<Vec<(Ino, EntryKind, Vec<u8>)>> {
        let parent = self.node(ino)?.parent;
        let mut listing = vec![
            (ino, EntryKind::Dir, b".".to_vec()),
            (parent, EntryKind::Dir, b"..".to_vec()),
        ];
        let children: Vec<(Vec<u8>, Ino)> = self
            .children(ino)?
            .iter()
            .map(|(n, i)| (n.clone(), *i))
            .collect();
        for (name, child) in children {
            listing.push((child, self.node(child)?.kind, name));
        }
        Ok(listing)
    }

    /// Entries from position `offset` of the handle's listing, taken at opendir and taken
    /// again when the reader starts over (`rewinddir`, which POSIX requires to show the
    /// names added since: fstests generic/471).
    pub fn readdir(&mut self, fh: u64, offset: usize) -> VfsResult<&[(Ino, EntryKind, Vec<u8>)]> {
        let listing = self.listings.get(&fh).ok_or(VfsError::BadHandle)?;
        let again = if offset == 0 && listing.read {
            Some(self.listing(listing.dir)?)
        } else {
            None
        };
        let listing = self.listings.get_mut(&fh).expect("looked up above");
        if let Some(entries) = again {
            listing.entries = entries;
        }
        listing.read = true;
        Ok(listing.entries.get(offset..).unwrap_or(&[]))
    }

    pub fn releasedir(&mut self, fh: u64) {
        self.listings.remove(&fh);
    }

    /// Replaces what the live view of library `index` shows with a new head, when another
    /// client moved it and nothing local is pending.
    pub fn show_new_head(&mut self, index: usize, head: ObjectId, root: ObjectKey) {
        let view = &mut self.libraries[index];
        view.head = Some(head);
        let live = view.live;
        self.hardlinks.retain(|(top, _), _| *top != live);
        self.reset_dir(live, Some(root));
    }

    fn reset_dir(&mut self, ino: Ino, tree: Option<ObjectKey>) {
        let old = match self.nodes.get_mut(ino) {
            Some(node) => std::mem::replace(
                &mut node.body,
                Body::Dir {
                    children: None,
                    tree,
                },
            ),
            None => return,
        };
        if let Body::Dir {
            children: Some(children),
            ..
        } = old
        {
            for child in children.into_values() {
                self.nodes.remove_tree(child);
            }
        }
    }

    /// Live nodes by the staged file holding their content, in one pass over the nodes
    /// (the uploader asks for every stage it committed).
    pub(crate) fn nodes_by_stage(&self) -> HashMap<String, Vec<Ino>> {
        let mut holders: HashMap<String, Vec<Ino>> = HashMap::new();
        for ino in 1..=self.nodes.len() as Ino {
            if let Some(Node {
                body:
                    Body::File {
                        staged: Some(stage),
                        ..
                    },
                ..
            }) = self.nodes.get(ino)
            {
                holders.entry(stage.clone()).or_default().push(ino);
            }
        }
        holders
    }
}

pub(crate) fn set_children(nodes: &mut Nodes, ino: Ino, children: BTreeMap<Vec<u8>, Ino>) {
    if let Some(node) = nodes.get_mut(ino) {
        if let Body::Dir { children: slot, .. } = &mut node.body {
            *slot = Some(children);
        }
    }
}
