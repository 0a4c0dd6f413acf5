//! `ibackup restore`: recreates a snapshot (or a path inside it) under a target directory,
//! with contents, modes, mtimes, symlinks, extended attributes and, when run as root, owners.
//!
//! Every chunk is decrypted and checked against its id before it is written. Chunks are
//! fetched in large batches by several workers, each chunk once however many files share it.
//! Symlinks are made last and directory metadata is applied deepest first, so nothing is
//! written through a restored symlink and read-only directories are filled before they close.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use filetime::FileTime;
use serde::Serialize;

use super::objects::ObjectSource;
use super::session::Session;
use super::snapshots::resolve;
use super::store::Store;
use super::{ClientError, Result};
use crate::crypto::{BlobKind, ObjectId, ObjectKey};
use crate::model::{Entry, EntryKind, Tree};

const WORKERS: usize = 3;
const FETCH_BYTES: u64 = 16 << 20;
const FETCH_CHUNKS: usize = 2000;

pub struct RestoreOptions {
    /// `SNAPSHOT` or `SNAPSHOT:PATH`.
    pub spec: String,
    pub target: PathBuf,
    pub library: String,
}

#[derive(Debug, Default, Serialize)]
pub struct RestoreSummary {
    pub snapshot: Option<ObjectId>,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// FIFOs, sockets and devices made.
    pub specials: u64,
    pub bytes: u64,
    pub duration_secs: f64,
    pub warnings: Vec<String>,
}

/// What the names of one hard-linked file must agree on: kind, device, chunks, target.
type Identity = (EntryKind, u64, Vec<crate::model::ChunkRef>, Option<Vec<u8>>);

#[derive(Default)]
struct Plan {
    dirs: Vec<(PathBuf, Entry)>,
    files: Vec<(PathBuf, Entry)>,
    links: Vec<(PathBuf, Entry)>,
    /// FIFOs, sockets and devices, made with the other metadata at the end.
    specials: Vec<(PathBuf, Entry)>,
    /// Further names of files with several: (name, the first name restored).
    hard_links: Vec<(PathBuf, PathBuf)>,
    /// The first name restored of each link group, with what makes it that file.
    first_names: HashMap<u64, (PathBuf, Identity)>,
    /// What the restore may take of the entries' metadata.
    origin: Origin,
}

/// Whose data is restored: one's own libraries keep owners, set-ID bits, every extended
/// attribute and device nodes (as root); what a stranger's link holds (`ibackup get`) is
/// restored as plain files of the person running it, even as root: no owners, no set-ID
/// bits, only `user.*` attributes, no devices (issue 26).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    #[default]
    Own,
    Stranger,
}

impl Origin {
    fn mode(self, mode: u32) -> u32 {
        match self {
            Origin::Own => mode,
            Origin::Stranger => mode & 0o1777,
        }
    }

    fn takes_xattr(self, name: &[u8]) -> bool {
        self == Origin::Own || name.starts_with(b"user.")
    }
}

pub fn run(session: &Session, options: &RestoreOptions) -> Result<RestoreSummary> {
    let started = Instant::now();
    let (snapshot_spec, inner) = match options.spec.split_once(':') {
        Some((snapshot, path)) => (snapshot, Some(path)),
        None => (options.spec.as_str(), None),
    };
    let library = session.open_library(&options.library)?;
    let store = Store::new(&session.remote, &library);
    let (id, snapshot) = resolve(&store, snapshot_spec)?;
    let found = find(
        &store,
        snapshot.tree,
        &components(inner.unwrap_or("")),
        &format!("snapshot {}", id.short()),
    )?;
    let mut summary = restore_found(&store, found, &options.target, Origin::Own)?;
    summary.snapshot = Some(id);
    summary.duration_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The names of a path typed as `a/b/c` (or `/a/b/c`), as stored in trees.
pub fn components(path: &str) -> Vec<Vec<u8>> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(|c| c.as_bytes().to_vec())
        .collect()
}

/// What a path inside a tree names.
pub enum Found {
    /// A folder: its tree's key and the tree.
    Folder(ObjectKey, Tree),
    /// A file or symlink.
    Entry(Entry),
}

/// Finds `components` below the tree `root`; `what` names the tree in errors.
pub fn find(
    source: &dyn ObjectSource,
    root: ObjectKey,
    components: &[Vec<u8>],
    what: &str,
) -> Result<Found> {
    let mut key = root;
    let mut tree = source.load_tree(&key)?;
    for (i, name) in components.iter().enumerate() {
        let entry = tree.get(name).cloned().ok_or_else(|| {
            ClientError::Usage(format!(
                "{what} has nothing at `/{}`",
                String::from_utf8_lossy(&components[..=i].join(&b'/'))
            ))
        })?;
        match (entry.kind, entry.subtree) {
            (EntryKind::Dir, Some(sub)) => {
                tree = source.load_tree(&sub)?;
                key = sub;
            }
            _ if i + 1 == components.len() => return Ok(Found::Entry(entry)),
            _ => {
                return Err(ClientError::Usage(format!(
                    "`{}` in {what} is not a directory",
                    String::from_utf8_lossy(name),
                )))
            }
        }
    }
    Ok(Found::Folder(key, tree))
}

/// Writes a folder's contents, or one entry, under `target`.
pub fn restore_found(
    source: &dyn ObjectSource,
    found: Found,
    target: &Path,
    origin: Origin,
) -> Result<RestoreSummary> {
    let started = Instant::now();
    fs::create_dir_all(target).map_err(ClientError::io(target))?;
    let mut plan = Plan {
        origin,
        ..Plan::default()
    };
    let mut summary = RestoreSummary::default();
    match found {
        Found::Entry(entry) => plan.add(target, entry, &HashMap::new(), &mut summary),
        Found::Folder(key, tree) => {
            let trees = source.load_subtrees(key)?;
            plan.add_children(target, &tree, &trees, &mut summary);
        }
    }
    let damaged = write_contents(source, &plan)?;
    // A file whose content did not verify is never left looking whole: it is removed and
    // named, and the restore ends with exit code 3.
    let mut gone = std::collections::HashSet::new();
    for (index, problem) in damaged {
        if gone.insert(index) {
            let path = &plan.files[index].0;
            let _ = fs::remove_file(path);
            summary.warnings.push(format!(
                "{}: not restored: {problem}; `ibackup check --read-data` lists what is damaged",
                path.display()
            ));
        }
    }
    let mut index = 0;
    plan.files.retain(|_| {
        index += 1;
        !gone.contains(&(index - 1))
    });
    apply_metadata(&plan, &mut summary);
    summary.duration_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn join(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}

impl Plan {
    /// Whether `entry` is another name of something already planned (a hard link, made
    /// after everything else); the first name of each group is planned as usual. A group
    /// whose names disagree (kind, content, device) is restored name by name.
    fn another_name(&mut self, path: &Path, entry: &Entry) -> bool {
        if entry.link == 0 {
            return false;
        }
        let identity = (
            entry.kind,
            entry.rdev,
            entry.chunks.clone(),
            entry.target.clone(),
        );
        match self.first_names.get(&entry.link) {
            Some((first, same)) if *same == identity => {
                self.hard_links.push((path.to_owned(), first.clone()));
                true
            }
            Some(_) => false,
            None => {
                self.first_names
                    .insert(entry.link, (path.to_owned(), identity));
                false
            }
        }
    }

    fn add_children(
        &mut self,
        dir: &Path,
        tree: &Tree,
        trees: &HashMap<ObjectKey, Tree>,
        summary: &mut RestoreSummary,
    ) {
        for entry in &tree.entries {
            self.add(dir, entry.clone(), trees, summary);
        }
    }

    fn add(
        &mut self,
        dir: &Path,
        entry: Entry,
        trees: &HashMap<ObjectKey, Tree>,
        summary: &mut RestoreSummary,
    ) {
        let path = join(dir, &entry.name);
        match entry.kind {
            EntryKind::Dir => {
                if let Err(e) = make_dir(&path) {
                    summary
                        .warnings
                        .push(format!("{}: {e}; skipped", path.display()));
                    return;
                }
                summary.dirs += 1;
                if let Some(tree) = entry.subtree.and_then(|id| trees.get(&id)) {
                    self.add_children(&path, tree, trees, summary);
                }
                self.dirs.push((path, entry));
            }
            EntryKind::File => {
                summary.files += 1;
                if self.another_name(&path, &entry) {
                    return;
                }
                summary.bytes += entry.size;
                self.files.push((path, entry));
            }
            EntryKind::Symlink => {
                summary.symlinks += 1;
                self.links.push((path, entry));
            }
            EntryKind::Fifo
            | EntryKind::Socket
            | EntryKind::CharDevice
            | EntryKind::BlockDevice => {
                self.specials.push((path, entry));
            }
        }
    }
}

fn make_dir(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => {
            fs::remove_file(path)?;
            fs::create_dir(path)
        }
        Err(_) => fs::create_dir(path),
    }
}

/// Whether an error means the object itself is bad (missing, or not what its key names),
/// rather than the connection or this computer.
pub fn is_damage(error: &ClientError) -> bool {
    match error {
        ClientError::Crypto(_) | ClientError::Model(_) => true,
        ClientError::Remote(remote) => remote.code() == Some(crate::api::ErrorCode::NotFound),
        _ => false,
    }
}

/// Creates every file at its size, then fills in the chunks. Returns the files (by index)
/// a damaged or missing chunk belongs to, with the problem.
fn write_contents(source: &dyn ObjectSource, plan: &Plan) -> Result<Vec<(usize, String)>> {
    let mut destinations: HashMap<ObjectKey, Vec<(usize, u64)>> = HashMap::new();
    let mut order: Vec<(ObjectKey, u32)> = Vec::new();
    for (index, (path, entry)) in plan.files.iter().enumerate() {
        if let Ok(meta) = fs::symlink_metadata(path) {
            if !meta.is_file() {
                let _ = fs::remove_file(path);
            }
        }
        // A file of one chunk is created by the worker that writes that chunk; others are
        // created here at their size, so workers can fill their chunks in any order.
        if entry.chunks.len() != 1 {
            let file = fs::File::create(path).map_err(ClientError::io(path))?;
            file.set_len(entry.size).map_err(ClientError::io(path))?;
        }
        let mut offset = 0u64;
        for chunk in &entry.chunks {
            let places = destinations.entry(chunk.key).or_default();
            if places.is_empty() {
                order.push((chunk.key, chunk.len));
            }
            places.push((index, offset));
            offset += u64::from(chunk.len);
        }
    }
    let mut batches: Vec<Vec<ObjectKey>> = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0u64;
    for (id, len) in order {
        if !current.is_empty()
            && (bytes + u64::from(len) > FETCH_BYTES || current.len() >= FETCH_CHUNKS)
        {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += u64::from(len);
        current.push(id);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    let next = AtomicUsize::new(0);
    let error: Mutex<Option<ClientError>> = Mutex::new(None);
    let damaged: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= batches.len() || error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return;
                }
                match write_batch(source, plan, &batches[index], &destinations) {
                    Ok(bad) => damaged
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(bad),
                    Err(e) => {
                        error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(damaged.into_inner().unwrap_or_else(|p| p.into_inner()))
}

fn write_batch(
    source: &dyn ObjectSource,
    plan: &Plan,
    keys: &[ObjectKey],
    destinations: &HashMap<ObjectKey, Vec<(usize, u64)>>,
) -> Result<Vec<(usize, String)>> {
    // One request for the batch; if something in it is damaged, each chunk alone, so the
    // good ones are written and the bad ones named.
    let loaded: Vec<std::result::Result<bytes::Bytes, String>> =
        match source.load(BlobKind::Chunk, keys) {
            Ok(plains) => plains.into_iter().map(Ok).collect(),
            Err(e) if is_damage(&e) => keys
                .iter()
                .map(
                    |key| match source.load(BlobKind::Chunk, std::slice::from_ref(key)) {
                        Ok(mut plain) => Ok(plain.remove(0)),
                        Err(e) if is_damage(&e) => Err(format!(
                            "chunk {} is damaged or missing ({e})",
                            key.id().short()
                        )),
                        Err(e) => Err(e.to_string()),
                    },
                )
                .collect(),
            Err(e) => return Err(e),
        };
    let mut damaged = Vec::new();
    for (key, data) in keys.iter().zip(loaded) {
        let data = match data {
            Ok(data) => data,
            Err(problem) => {
                damaged.extend(
                    destinations[key]
                        .iter()
                        .map(|&(file, _)| (file, problem.clone())),
                );
                continue;
            }
        };
        for &(file_index, offset) in &destinations[key] {
            let (path, entry) = &plan.files[file_index];
            if entry.chunks.len() == 1 {
                fs::write(path, &data).map_err(ClientError::io(path))?;
                continue;
            }
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(ClientError::io(path))?;
            file.write_all_at(&data, offset)
                .map_err(ClientError::io(path))?;
        }
    }
    Ok(damaged)
}

fn file_time(ns: i64) -> FileTime {
    FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
}

/// Access and modification times: the access time kept if one was set in the mount, else
/// the modification time.
fn times(entry: &Entry) -> (FileTime, FileTime) {
    let mtime = file_time(entry.mtime_ns);
    (entry.atime_ns.map_or(mtime, file_time), mtime)
}

/// Owners (where permitted), xattrs, modes and mtimes; symlinks are made here, last.
fn apply_metadata(plan: &Plan, summary: &mut RestoreSummary) {
    let mut warn = |path: &Path, what: &str, e: std::io::Error| {
        summary
            .warnings
            .push(format!("{}: cannot restore {what}: {e}", path.display()));
    };
    let origin = plan.origin;
    for (path, entry) in &plan.files {
        apply_attributes(path, entry, origin, &mut warn);
    }
    for (path, entry) in &plan.links {
        if fs::symlink_metadata(path).is_ok() {
            let _ = fs::remove_file(path);
        }
        let target = OsStr::from_bytes(entry.target.as_deref().unwrap_or_default());
        if let Err(e) = std::os::unix::fs::symlink(target, path) {
            warn(path, "symlink", e);
            continue;
        }
        if origin == Origin::Own {
            set_owner(path, entry);
        }
        let (atime, mtime) = times(entry);
        if let Err(e) = filetime::set_symlink_file_times(path, atime, mtime) {
            warn(path, "mtime", e);
        }
    }
    for (path, entry) in &plan.specials {
        match make_special(path, entry, origin) {
            Ok(true) => {
                summary.specials += 1;
                apply_attributes(path, entry, origin, &mut warn);
            }
            Ok(false) => warn(
                path,
                "the device",
                std::io::Error::other(match origin {
                    Origin::Own => "devices are made only when restoring as root; skipped",
                    Origin::Stranger => "a link's devices are never made; skipped",
                }),
            ),
            Err(e) => warn(path, "the special file", e),
        }
    }
    // Further names of files, symlinks and special files, once their first names exist
    // (a link does not follow a symlink).
    for (path, first) in &plan.hard_links {
        if fs::symlink_metadata(path).is_ok() {
            let _ = fs::remove_file(path);
        }
        if let Err(e) = fs::hard_link(first, path) {
            warn(path, "the hard link", e);
        }
    }
    // Deepest first: a directory's mtime is set after everything inside it is written.
    for (path, entry) in plan.dirs.iter().rev() {
        apply_attributes(path, entry, origin, &mut warn);
    }
}

/// Owner, xattrs, mode and mtime of a file or directory.
fn apply_attributes(
    path: &Path,
    entry: &Entry,
    origin: Origin,
    warn: &mut impl FnMut(&Path, &str, std::io::Error),
) {
    if origin == Origin::Own {
        set_owner(path, entry);
    }
    set_xattrs(path, entry, origin);
    let mode = origin.mode(entry.mode);
    if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        warn(path, "mode", e);
    }
    // By path (utimensat): opening a FIFO would wait for a writer.
    let (atime, mtime) = times(entry);
    if let Err(e) = filetime::set_symlink_file_times(path, atime, mtime) {
        warn(path, "mtime", e);
    }
}

/// Makes the FIFO, socket or device `entry` at `path` (replacing what is there). Devices
/// need root: `Ok(false)` when not run as root.
fn make_special(path: &Path, entry: &Entry, origin: Origin) -> std::io::Result<bool> {
    use rustix::fs::{FileType, Mode};
    let (kind, dev) = match entry.kind {
        EntryKind::Fifo => (FileType::Fifo, 0),
        EntryKind::Socket => (FileType::Socket, 0),
        EntryKind::CharDevice => (FileType::CharacterDevice, entry.rdev),
        EntryKind::BlockDevice => (FileType::BlockDevice, entry.rdev),
        _ => return Err(std::io::Error::other("not a special file")),
    };
    if dev != 0 && (origin == Origin::Stranger || !rustix::process::geteuid().is_root()) {
        return Ok(false);
    }
    if fs::symlink_metadata(path).is_ok() {
        fs::remove_file(path)?;
    }
    let mode = Mode::from_raw_mode(entry.mode & 0o777);
    rustix::fs::mknodat(rustix::fs::CWD, path, kind, mode, dev)?;
    Ok(true)
}

/// Restores the owner when permitted (as root); otherwise files belong to the restorer.
fn set_owner(path: &Path, entry: &Entry) {
    let _ = std::os::unix::fs::lchown(path, Some(entry.uid), Some(entry.gid));
}

fn set_xattrs(path: &Path, entry: &Entry, origin: Origin) {
    for xattr in entry.xattrs.iter().filter(|x| origin.takes_xattr(&x.name)) {
        let _ = xattr::set(path, OsStr::from_bytes(&xattr.name), &xattr.value);
    }
}
