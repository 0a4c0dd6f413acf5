//! `ibackup backup`: stores local paths as a new snapshot of a library.
//!
//! Each source is stored under its absolute path, spliced into the root of the library's
//! current head, so what the head holds at other paths is kept. The new snapshot's parent is
//! that head; files unchanged since it (size, mtime, inode) are not re-read, and chunks and
//! trees the server already holds are not uploaded again. The head moves by compare-and-swap:
//! if another writer moved it meanwhile, the sources are spliced into the new head and the
//! commit is retried, so neither side's work is lost.

pub(crate) mod scan;

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use self::scan::{Change, LinkGroup, LinkKey, Node, Scan};
use super::objects::ObjectSource;
use super::repo::content::{self, ContentStats, FileRead};
use super::repo::trees::{self, TreeWriter};
use super::repo::Repo;
use super::session::Session;
use super::store::Store;
use super::{hostname, ClientError, Result};
use crate::crypto::{ObjectId, ObjectKey};
use crate::model::{Entry, EntryKind, Snapshot, SnapshotKind, SnapshotSummary, Tree};

const COMMIT_ATTEMPTS: usize = 10;

pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub library: String,
    pub tags: Vec<String>,
    pub progress: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct BackupSummary {
    pub snapshot: Option<ObjectId>,
    pub parent: Option<ObjectId>,
    pub library: String,
    pub paths: Vec<String>,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs: u64,
    /// Bytes of all files in the sources.
    pub bytes_total: u64,
    /// Bytes read from disk (changed and new files only).
    pub bytes_read: u64,
    pub chunks_uploaded: u64,
    /// Plaintext bytes of the chunks uploaded.
    pub chunk_bytes_uploaded: u64,
    pub trees_uploaded: u64,
    /// Bytes sent as blobs (chunks, trees, snapshot), encrypted and compressed.
    pub bytes_uploaded: u64,
    pub duration_secs: f64,
    /// Files skipped or stored inconsistently; when not empty the exit code is 3.
    pub warnings: Vec<String>,
}

/// A path to back up, resolved to where it lives.
struct Source {
    path: PathBuf,
    components: Vec<Vec<u8>>,
    /// The directories above it, as entries, outermost first.
    ancestors: Vec<Entry>,
}

fn resolve_source(path: &Path) -> Result<Source> {
    std::fs::symlink_metadata(path).map_err(ClientError::io(path))?;
    // Resolve the parent but not the last component, so a symlink is stored as a symlink.
    let absolute = match path.file_name() {
        Some(name) => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            let parent = parent.unwrap_or(Path::new("."));
            std::fs::canonicalize(parent)
                .map_err(ClientError::io(parent))?
                .join(name)
        }
        None => std::fs::canonicalize(path).map_err(ClientError::io(path))?,
    };
    let components: Vec<Vec<u8>> = absolute
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.as_bytes().to_vec()),
            _ => None,
        })
        .collect();
    let mut ancestors = Vec::new();
    let mut prefix = PathBuf::from("/");
    for name in components.iter().take(components.len().saturating_sub(1)) {
        prefix.push(std::ffi::OsStr::from_bytes(name));
        let meta = std::fs::symlink_metadata(&prefix).map_err(ClientError::io(&prefix))?;
        ancestors.push(scan::entry_for(name.clone(), &prefix, &meta));
    }
    Ok(Source {
        path: absolute,
        components,
        ancestors,
    })
}

fn progress_bar(enabled: bool, total: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .expect("valid template"),
    );
    bar
}

pub fn run(session: &Session, options: &BackupOptions) -> Result<BackupSummary> {
    let started = Instant::now();
    if options.paths.is_empty() {
        return Err(ClientError::Usage(
            "name at least one path to back up".into(),
        ));
    }
    let (library, refused) =
        super::sharing::rotate_if_asked(session, session.open_library(&options.library)?)?;
    if !library.info.permission.can_write() {
        return Err(ClientError::Usage(format!(
            "library `{}` was shared with you read-only; back up into one of your own",
            options.library
        )));
    }
    let store = Store::new(&session.remote, &library);
    let mut sources: Vec<Source> = options
        .paths
        .iter()
        .map(|p| resolve_source(p))
        .collect::<Result<_>>()?;
    sources.sort_by(|a, b| a.components.cmp(&b.components));
    sources.dedup_by(|a, b| a.components == b.components);

    let mut head = store.head()?;
    let mut head_snapshot = match head {
        Some(id) => Some(store.load_snapshot(&id)?),
        None => None,
    };
    let mut head_root = head_snapshot.as_ref().map(|s| s.tree);
    let mut writer = TreeWriter::new(&store, HashMap::new());

    // Scan every source against what the head holds at the same path.
    let mut scan = Scan::default();
    let mut nodes = Vec::new();
    for source in &sources {
        let previous = match head_root {
            Some(root) if source.components.is_empty() => Some(root_entry(root)),
            Some(root) => trees::lookup(&mut writer, root, &source.components)?,
            None => None,
        };
        let previous_trees = match previous.as_ref().and_then(|e| e.subtree) {
            Some(subtree) => store.load_subtrees(subtree)?,
            None => HashMap::new(),
        };
        let name = source.components.last().cloned().unwrap_or_default();
        let node = scan
            .node(&source.path, name, previous.as_ref(), &previous_trees)
            .ok_or_else(|| ClientError::Usage(scan.warnings.pop().unwrap_or_default()))?;
        nodes.push(node);
    }

    heal(&store, &sources, &mut nodes, &mut scan)?;
    let total: u64 = scan.jobs.iter().map(|j| j.size).sum();
    let bar = progress_bar(options.progress, total);
    let stats = ContentStats::default();
    let reads = content::store_contents(&store, &scan.jobs, &stats, &bar);
    bar.finish_and_clear();
    let reads: Vec<Option<FileRead>> = reads?.into_iter().map(Some).collect();

    let mut summary = BackupSummary {
        library: options.library.clone(),
        paths: sources
            .iter()
            .map(|s| s.path.display().to_string())
            .collect(),
        warnings: std::mem::take(&mut scan.warnings),
        ..Default::default()
    };
    let entries: Vec<Entry> = nodes
        .into_iter()
        .map(|node| build(node, &reads, &scan.links, &mut writer, &mut summary))
        .collect::<Option<_>>()
        .ok_or_else(|| ClientError::Usage(summary.warnings.last().cloned().unwrap_or_default()))?;
    if !refused.is_empty() {
        let warning = super::sharing::refused_warning(&library.name, &refused);
        summary.warnings.push(warning);
    }

    for _ in 0..COMMIT_ATTEMPTS {
        let mut root = head_root;
        for (source, entry) in sources.iter().zip(&entries) {
            root = Some(if source.components.is_empty() {
                entry.subtree.expect("the root is a directory")
            } else {
                writer.splice(root, &source.components, &source.ancestors, entry)?
            });
        }
        let root = match root {
            Some(root) => root,
            None => writer.add(Tree::default()),
        };
        let tree_stats = writer.flush()?;
        summary.trees_uploaded += tree_stats.trees_uploaded;
        summary.bytes_uploaded += tree_stats.bytes_uploaded;
        let snapshot = Snapshot {
            tree: root,
            parent: head,
            time_ns: now_ns(),
            host: hostname(),
            username: std::env::var("USER").unwrap_or_default(),
            author: session.email.clone(),
            paths: summary.paths.clone(),
            tags: options.tags.clone(),
            kind: SnapshotKind::Backup,
            summary: SnapshotSummary {
                files: summary.files_new + summary.files_changed + summary.files_unmodified,
                dirs: summary.dirs,
                bytes: summary.bytes_total,
            },
            generation: Snapshot::next_generation(head_snapshot.as_ref()),
        };
        let (id, snapshot_bytes) = store.upload_snapshot(&snapshot)?;
        summary.bytes_uploaded += snapshot_bytes;
        match store.set_head(head, id)? {
            Ok(()) => {
                summary.snapshot = Some(id);
                summary.parent = head;
                if let Err(e) = super::links::repoint(session, &library, root) {
                    summary.warnings.push(format!(
                        "links that follow `{}` were not re-pointed: {e}",
                        library.name
                    ));
                }
                break;
            }
            Err(actual) => {
                head = actual;
                head_snapshot = match actual {
                    Some(id) => Some(store.checked_head(id)?),
                    None => None,
                };
                head_root = head_snapshot.as_ref().map(|s| s.tree);
            }
        }
    }
    if summary.snapshot.is_none() {
        return Err(ClientError::State(format!(
            "the library kept changing under this backup ({COMMIT_ATTEMPTS} attempts); try again"
        )));
    }
    summary.bytes_read = stats.bytes_read.into_inner();
    summary.chunks_uploaded = stats.chunks_uploaded.into_inner();
    summary.chunk_bytes_uploaded = stats.chunk_bytes_uploaded.into_inner();
    summary.bytes_uploaded += stats.blob_bytes_uploaded.into_inner();
    summary.duration_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Unchanged files are normally not read: their chunks are referenced as the last snapshot
/// has them. Asking the server about those chunks marks them reused (collection spares
/// them while this backup runs), and any it no longer holds whole (damaged, as `verify`
/// found, or collected) makes the file be read again, so this backup heals the damage.
fn heal(store: &Store<'_>, sources: &[Source], nodes: &mut [Node], scan: &mut Scan) -> Result<()> {
    fn chunk_ids(node: &Node, out: &mut Vec<ObjectId>) {
        match node {
            Node::File {
                entry, job: None, ..
            } => out.extend(entry.chunks.iter().map(|c| c.id())),
            Node::Dir { children, .. } => children.iter().for_each(|c| chunk_ids(c, out)),
            _ => {}
        }
    }
    fn reread(node: &mut Node, path: &Path, missing: &HashSet<ObjectId>, scan: &mut Scan) {
        match node {
            Node::File {
                entry,
                job: job @ None,
                change,
                ..
            } if entry.chunks.iter().any(|c| missing.contains(&c.id())) => {
                *job = Some(scan.jobs.len());
                *change = Change::Changed;
                scan.jobs.push(content::FileJob {
                    path: path.to_owned(),
                    size: entry.size,
                });
            }
            Node::Dir { children, .. } => {
                for child in children {
                    let name = match child {
                        Node::File { entry, .. } | Node::Leaf(entry) | Node::Dir { entry, .. } => {
                            entry.name.clone()
                        }
                    };
                    reread(
                        child,
                        &path.join(std::ffi::OsStr::from_bytes(&name)),
                        missing,
                        scan,
                    );
                }
            }
            _ => {}
        }
    }
    let mut ids = Vec::new();
    nodes.iter().for_each(|node| chunk_ids(node, &mut ids));
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let missing = store.missing(&ids)?;
    if !missing.is_empty() {
        for (source, node) in sources.iter().zip(nodes.iter_mut()) {
            reread(node, &source.path, &missing, scan);
        }
    }
    Ok(())
}

/// A directory entry standing for the whole root, for backing up `/`.
fn root_entry(root: ObjectKey) -> Entry {
    Entry {
        mode: 0o755,
        subtree: Some(root),
        ..Entry::new(b"", EntryKind::Dir)
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Turns a scanned node into its entry, queueing directory trees children first.
/// `None` if the node could not be stored (a warning says why).
fn build(
    node: Node,
    reads: &[Option<FileRead>],
    links: &HashMap<LinkKey, LinkGroup>,
    writer: &mut TreeWriter<'_>,
    summary: &mut BackupSummary,
) -> Option<Entry> {
    match node {
        Node::File {
            mut entry,
            job,
            change,
            link,
        } => {
            let group = link.and_then(|key| Some((key, links.get(&key)?)));
            if let Some((key, group)) = group.filter(|(_, group)| group.names > 1) {
                entry.link = LinkGroup::id(&key);
                entry.nlink = group.names;
            }
            if let Some(index) = job {
                // Shared by the names of a file with several.
                match reads[index].clone() {
                    Some(FileRead::Stored {
                        chunks,
                        size,
                        mtime_ns,
                        warning,
                    }) => {
                        entry.chunks = chunks;
                        entry.size = size;
                        entry.mtime_ns = mtime_ns;
                        summary.warnings.extend(warning);
                    }
                    Some(FileRead::Failed(message)) => {
                        summary.warnings.push(message);
                        return None;
                    }
                    None => return None,
                }
            }
            match change {
                Change::New => summary.files_new += 1,
                Change::Changed => summary.files_changed += 1,
                Change::Unmodified => summary.files_unmodified += 1,
            }
            summary.bytes_total += entry.size;
            Some(entry)
        }
        Node::Leaf(entry) => Some(entry),
        Node::Dir {
            mut entry,
            children,
        } => {
            let entries: Vec<Entry> = children
                .into_iter()
                .filter_map(|child| build(child, reads, links, writer, summary))
                .collect();
            entry.subtree = Some(writer.add(Tree::new(entries)));
            summary.dirs += 1;
            Some(entry)
        }
    }
}
