//! The background uploader of a mount: after a quiet delay, turns journaled changes into a
//! `write-back` snapshot and moves the library's head by compare-and-swap, merging with
//! whatever another client committed meanwhile (see `edit`).
//!
//! Order of work for one library: upload the staged contents (only chunks the server
//! lacks), replay the pending operations onto the current head, upload the new trees and the
//! snapshot, compare-and-swap the head (replaying onto the new head if it moved), and only
//! then drop the operations from the journal and the staged files that nothing needs.
//! A failure anywhere leaves the journal as it was, to retry later.

mod edit;
mod upkeep;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use self::edit::LinkFree;
use self::edit::{within, EditTree};
use super::journal::{Journal, Op};
use super::vfs::Vfs;
use crate::crypto::{ObjectId, ObjectKey};
use crate::model::{ChunkRef, Snapshot, SnapshotKind, SnapshotSummary};
use crate::remote::Remote;
use crate::repo::content::{self, ContentStats, FileJob, FileRead};
use crate::repo::trees::TreeWriter;
use crate::repo::Repo;
use crate::store::Store;
use crate::{hostname, ClientError, Result};

const COMMIT_ATTEMPTS: usize = 10;

/// What `ibackup status` shows about a mount.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UploadStatus {
    pub pending_operations: u64,
    pub pending_files: u64,
    pub pending_bytes: u64,
    pub snapshots_uploaded: u64,
    pub last_error: Option<String>,
    pub conflicts: Vec<String>,
    /// Changes to libraries that stopped being shared while they waited: never uploaded,
    /// kept in these folders on this computer.
    #[serde(default)]
    pub set_aside: Vec<String>,
}

impl UploadStatus {
    /// Sets what is pending from the journal's counts: operations, files, bytes.
    pub fn set_pending(&mut self, (operations, files, bytes): (u64, u64, u64)) {
        self.pending_operations = operations;
        self.pending_files = files;
        self.pending_bytes = bytes;
    }
}

pub struct Uploader {
    pub vfs: Arc<Mutex<Vfs>>,
    pub journal: Arc<Journal>,
    pub remote: Arc<Remote>,
    pub delay: Duration,
    pub stage_dir: PathBuf,
    pub status: Arc<Mutex<UploadStatus>>,
    /// Set to upload at once, without waiting for quiet.
    pub hurry: Arc<AtomicBool>,
    /// Set to end the loop.
    pub stop: Arc<AtomicBool>,
    /// Large closed files whose chunks went up during the quiet delay, by stage name.
    pub prepared: Mutex<HashMap<String, Prepared>>,
    /// The account committing: its e-mail is recorded in each snapshot and in the names of
    /// conflict copies, and its keys re-point the owner's `--follow` links after a commit.
    pub account: Arc<crate::session::Session>,
    /// Set when the server refused an upload under an old key epoch: the mount's poller
    /// then reloads the libraries' keys at once.
    pub refresh_keys: Arc<AtomicBool>,
    /// Where the libraries have no hard links, learned by earlier commits.
    pub link_free: Mutex<LinkFree>,
}

/// A staged file's chunks, uploaded ahead of its commit, and the size and mtime it had.
pub struct Prepared {
    size: u64,
    mtime_ns: i64,
    chunks: Vec<ChunkRef>,
}

/// Closed staged files at least this large start uploading before the quiet delay ends;
/// smaller ones wait, to go up together.
const PREPARE_MIN_BYTES: u64 = 8 << 20;
/// How often the uploader looks for such files while changes keep coming.
const PREPARE_EVERY: Duration = Duration::from_millis(500);

/// Size and mtime (ns) of a staged file, to tell whether prepared chunks still match it.
fn stage_signature(path: &std::path::Path) -> Option<(u64, i64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some(super::vfs::stage_signature(&meta))
}

impl Uploader {
    fn vfs(&self) -> std::sync::MutexGuard<'_, Vfs> {
        self.vfs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs until `stop`; uploads whenever changes have been quiet for the delay.
    pub fn run(&self) {
        let mut backoff = Duration::from_secs(1);
        let mut next_try = Instant::now();
        let mut last_prepare = Instant::now();
        let mut hurried = false;
        let mut next_count = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            if Instant::now() >= next_count {
                // Counting a large journal holds it from the file system's writers: at
                // most a tenth of the time.
                let started = Instant::now();
                self.refresh_status();
                next_count = Instant::now() + started.elapsed() * 9;
            }
            if !hurried && self.hurry.load(Ordering::SeqCst) {
                // Asked to end: try now, whatever the backoff after earlier failures.
                hurried = true;
                next_try = Instant::now();
                backoff = Duration::from_secs(1);
            }
            let quiet = self.vfs().last_change.elapsed() >= self.delay;
            if !(quiet || self.hurry.load(Ordering::SeqCst)) || Instant::now() < next_try {
                if !quiet && last_prepare.elapsed() >= PREPARE_EVERY {
                    last_prepare = Instant::now();
                    if let Err(error) = self.prepare_closed() {
                        tracing::debug!("early upload failed, the commit retries: {error}");
                    }
                }
                continue;
            }
            match self.upload_all() {
                Ok(()) => {
                    backoff = Duration::from_secs(1);
                    self.status
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .last_error = None;
                }
                Err(error) => {
                    if let ClientError::Remote(remote) = &error {
                        if remote.code() == Some(crate::api::ErrorCode::StaleEpoch) {
                            self.refresh_keys.store(true, Ordering::SeqCst);
                        }
                    }
                    self.status
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .last_error = Some(error.to_string());
                    next_try = Instant::now() + backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        self.refresh_status();
    }

    pub fn refresh_status(&self) {
        let libraries: Vec<String> = (self.vfs().libraries.iter())
            .map(|view| view.library.info.id.clone())
            .collect();
        let counts = self.journal.counts_of(&libraries).unwrap_or((0, 0, 0));
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_pending(counts);
    }

    /// Uploads the chunks of large staged files that are closed, before the quiet delay
    /// ends; the commit then finds them prepared and only writes trees.
    fn prepare_closed(&self) -> Result<()> {
        let (count, open) = {
            let vfs = self.vfs();
            (vfs.libraries.len(), vfs.stages_open_for_writing())
        };
        for index in 0..count {
            let (library, gone) = {
                let vfs = self.vfs();
                (
                    vfs.libraries[index].library.clone(),
                    vfs.libraries[index].gone,
                )
            };
            if gone {
                continue;
            }
            let stages = self
                .journal
                .large_stages(&library.info.id, PREPARE_MIN_BYTES)
                .map_err(state_error)?;
            let mut jobs = Vec::new();
            let mut names = Vec::new();
            for stage in stages {
                if open.contains(&stage) {
                    continue;
                }
                let path = self.stage_dir.join(&stage);
                let Some((size, mtime_ns)) = stage_signature(&path) else {
                    continue;
                };
                let fresh = self
                    .prepared
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&stage)
                    .is_some_and(|p| p.size == size && p.mtime_ns == mtime_ns);
                if size >= PREPARE_MIN_BYTES && !fresh {
                    names.push(stage);
                    jobs.push(FileJob { path, size });
                }
            }
            if jobs.is_empty() {
                continue;
            }
            let store = Store::new(&self.remote, &library);
            let reads = content::store_contents(
                &store,
                &jobs,
                &ContentStats::default(),
                &indicatif::ProgressBar::hidden(),
            )?;
            let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
            for (stage, read) in names.into_iter().zip(reads) {
                if let FileRead::Stored {
                    chunks,
                    size,
                    mtime_ns,
                    ..
                } = read
                {
                    prepared.insert(
                        stage,
                        Prepared {
                            size,
                            mtime_ns,
                            chunks,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Uploads what every library has pending.
    pub fn upload_all(&self) -> Result<()> {
        let count = self.vfs().libraries.len();
        for index in 0..count {
            let (library_id, gone) = {
                let vfs = self.vfs();
                let view = &vfs.libraries[index];
                (view.library.info.id.clone(), view.gone)
            };
            if gone {
                continue;
            }
            let ops = self.journal.pending(&library_id).map_err(state_error)?;
            if !ops.is_empty() {
                self.upload_library(index, ops)?;
            }
        }
        Ok(())
    }

    fn upload_library(&self, index: usize, ops: Vec<(i64, Op)>) -> Result<()> {
        let (library, shown_head) = {
            let vfs = self.vfs();
            (
                vfs.libraries[index].library.clone(),
                vfs.libraries[index].head,
            )
        };
        let store = Store::new(&self.remote, &library);
        let last_seq = ops.last().map(|(seq, _)| *seq).unwrap_or(0);

        // 1. The staged contents, but for files removed again before this upload.
        let discarded = discarded_stages(&ops);
        let stages: Vec<String> = ops
            .iter()
            .filter_map(|(_, op)| match op {
                Op::Write { stage, .. } => Some(stage.clone()),
                _ => None,
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .filter(|stage| !discarded.contains(stage) && self.stage_dir.join(stage).exists())
            .collect();
        let mut contents: Contents = HashMap::new();
        {
            let prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
            for stage in &stages {
                let Some(ready) = prepared.get(stage) else {
                    continue;
                };
                let signature = stage_signature(&self.stage_dir.join(stage));
                if signature == Some((ready.size, ready.mtime_ns)) {
                    contents.insert(stage.clone(), (ready.chunks.clone(), ready.size));
                }
            }
        }
        let stages: Vec<String> = stages
            .into_iter()
            .filter(|stage| !contents.contains_key(stage))
            .collect();
        let jobs: Vec<FileJob> = stages
            .iter()
            .map(|stage| {
                let path = self.stage_dir.join(stage);
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                FileJob { path, size }
            })
            .collect();
        let stats = ContentStats::default();
        let reads =
            content::store_contents(&store, &jobs, &stats, &indicatif::ProgressBar::hidden())?;
        for (stage, read) in stages.iter().zip(reads) {
            match read {
                FileRead::Stored { chunks, size, .. } => {
                    contents.insert(stage.clone(), (chunks, size));
                }
                FileRead::Failed(message) => return Err(ClientError::State(message)),
            }
        }

        // 2. Replay onto the current head and commit, retrying if the head moves.
        let host = hostname();
        let (paths, summary) = changed(&ops, &contents);
        for _ in 0..COMMIT_ATTEMPTS {
            let head = store.head()?;
            let head_snapshot = match head {
                Some(id) => Some(store.load_snapshot(&id)?),
                None => None,
            };
            let root = head_snapshot.as_ref().map(|s| s.tree);
            let mut writer = TreeWriter::new(&store, HashMap::new());
            let author = format!("{} {host}", self.account.email);
            let mut edit = EditTree::new(&mut writer, root, &author)?;
            if head == shown_head {
                edit.alone();
            }
            for (_, op) in &ops {
                edit.apply(&mut writer, op, &contents)?;
            }
            let new_root = {
                let mut free = self.link_free.lock().unwrap_or_else(|p| p.into_inner());
                edit.write(&mut writer, &mut free)?
            };
            writer.flush()?;
            let snapshot = Snapshot {
                tree: new_root,
                parent: head,
                time_ns: crate::mount::vfs::now_ns(),
                host: host.clone(),
                username: std::env::var("USER").unwrap_or_default(),
                author: self.account.email.clone(),
                paths: paths.clone(),
                tags: Vec::new(),
                kind: SnapshotKind::WriteBack,
                summary: summary.clone(),
                generation: Snapshot::next_generation(head_snapshot.as_ref()),
            };
            let (id, _) = store.upload_snapshot(&snapshot)?;
            if store.set_head(head, id)?.is_err() {
                continue;
            }
            if let Err(e) = crate::links::repoint(&self.account, &library, new_root) {
                tracing::warn!("links not re-pointed to the new snapshot: {e}");
            }
            // The snapshot folders show the new snapshot before the journal lets go of the
            // operations it holds: whoever sees nothing pending (`ibackup status`) finds it.
            if let Err(e) = self.refresh_snapshots(index, &store) {
                tracing::debug!("snapshot folder not refreshed: {e}");
            }
            self.committed(
                index,
                last_seq,
                &mut writer,
                &mut edit,
                (&contents, &discarded),
                id,
                new_root,
                head != shown_head,
            )?;
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            status.snapshots_uploaded += 1;
            status.conflicts.append(&mut edit.conflicts);
            return Ok(());
        }
        Err(ClientError::State(
            "the library kept changing; will retry".into(),
        ))
    }

    /// After a commit: forget uploaded operations, point live files at their chunks, drop
    /// staged files nothing needs, and show other clients' changes if nothing is pending.
    #[allow(clippy::too_many_arguments)]
    fn committed(
        &self,
        index: usize,
        last_seq: i64,
        writer: &mut TreeWriter<'_>,
        edit: &mut EditTree,
        (contents, discarded): (&Contents, &HashSet<String>),
        head: ObjectId,
        root: ObjectKey,
        remote_changed: bool,
    ) -> Result<()> {
        let mut vfs = self.vfs();
        let library_id = vfs.libraries[index].library.info.id.clone();
        let later = self
            .journal
            .pending_after(&library_id, last_seq)
            .map_err(state_error)?;
        let mut updates = Vec::new();
        // A later write's path is looked up where it was in this commit's tree: before the
        // later renames (of it, or of a folder above it).
        let mut renames: Vec<(&[u8], &[u8])> = Vec::new();
        for (seq, op) in &later {
            if let Op::Rename { from, to } = op {
                renames.push((from, to));
            }
            if let Op::Write { path, base, .. } = op {
                let now = edit.file_sig(writer, &edit::before_renames(path, &renames))?;
                if now != *base {
                    let mut op = op.clone();
                    if let Op::Write { base, .. } = &mut op {
                        *base = now;
                    }
                    updates.push((*seq, op));
                }
            }
        }
        self.journal
            .complete(&library_id, last_seq, &updates)
            .map_err(state_error)?;
        let needed = self.journal.stages_in_use().map_err(state_error)?;
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|stage, _| needed.contains(stage));
        let freed = vfs.apply_commit(index, head, contents, discarded, &needed);
        if remote_changed && later.is_empty() && !vfs.any_stage_open() {
            vfs.show_new_head(index, head, root);
        }
        let room = vfs.free_stage_room();
        drop(vfs);
        let recycled = self.recycle_stages(freed, room);
        self.vfs().take_free_stages(recycled);
        Ok(())
    }

    /// Empties up to `room` uploaded stage files into the free folder for reuse and
    /// deletes the rest; returns the names of those kept.
    fn recycle_stages(&self, stages: Vec<String>, room: usize) -> Vec<String> {
        let free_dir = self.stage_dir.join(super::vfs::FREE_STAGES);
        let pool = room > 0 && crate::fsutil::create_private_dir(&free_dir).is_ok();
        let mut kept = Vec::new();
        for stage in stages {
            let path = self.stage_dir.join(&stage);
            let emptied = pool
                && kept.len() < room
                && std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|file| file.set_len(0))
                    .and_then(|()| std::fs::rename(&path, free_dir.join(&stage)))
                    .is_ok();
            if emptied {
                kept.push(stage);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
        kept
    }

    /// Shows each library's recorded head afresh (after uploading what the previous mount
    /// left, which the tree built at start does not include).
    pub fn show_committed_heads(&self) -> Result<()> {
        let count = self.vfs().libraries.len();
        for index in 0..count {
            let (library, head, gone) = {
                let vfs = self.vfs();
                let view = &vfs.libraries[index];
                (view.library.clone(), view.head, view.gone)
            };
            if gone {
                continue;
            }
            if let Some(head) = head {
                let root = Store::new(&self.remote, &library)
                    .load_snapshot(&head)?
                    .tree;
                self.vfs().show_new_head(index, head, root);
            }
        }
        Ok(())
    }

    /// Checks the server for heads another client moved, and shows them when nothing local
    /// is pending.
    pub fn poll_heads(&self) -> Result<()> {
        let count = self.vfs().libraries.len();
        for index in 0..count {
            let (library, shown, gone) = {
                let vfs = self.vfs();
                let view = &vfs.libraries[index];
                (view.library.clone(), view.head, view.gone)
            };
            if gone {
                continue;
            }
            let store = Store::new(&self.remote, &library);
            // The list changes without the head too (a forget, the server's retention).
            self.refresh_snapshots(index, &store)?;
            let head = store.head()?;
            if head == shown || head.is_none() {
                continue;
            }
            let root = store.load_snapshot(&head.expect("checked"))?.tree;
            let pending = self
                .journal
                .pending(&library.info.id)
                .map_err(state_error)?;
            let mut vfs = self.vfs();
            if pending.is_empty() && vfs.handles.is_empty() {
                vfs.show_new_head(index, head.expect("checked"), root);
            }
        }
        Ok(())
    }
}

/// The content of each uploaded stage: its chunks and size.
type Contents = HashMap<String, (Vec<ChunkRef>, u64)>;

/// Stages whose every write is undone within `ops`: written at a path that a later
/// operation removes (the path or a folder above it), with nothing moved or linked away
/// from it in between, and no other name (hard link). Their content is never read or
/// uploaded: a file copied in and deleted before the quiet delay ends costs nothing.
fn discarded_stages(ops: &[(i64, Op)]) -> HashSet<String> {
    let mut kept = HashSet::new();
    let mut undone = HashSet::new();
    for (i, (_, op)) in ops.iter().enumerate() {
        let Op::Write {
            path, stage, link, ..
        } = op
        else {
            continue;
        };
        let removed = *link == 0
            && ops[i + 1..]
                .iter()
                .take_while(|(_, later)| {
                    !matches!(later, Op::Rename { from, .. } | Op::Link { from, .. }
                        if within(path, from))
                })
                .any(|(_, later)| matches!(later, Op::Remove { path: gone } if within(path, gone)));
        if removed {
            undone.insert(stage.clone());
        } else {
            kept.insert(stage.clone());
        }
    }
    undone.retain(|stage| !kept.contains(stage));
    undone
}

/// What a write-back snapshot changed, for `ibackup snapshots`: the paths (the first 20,
/// then how many more) and the files written with their bytes.
fn changed(ops: &[(i64, Op)], contents: &Contents) -> (Vec<String>, SnapshotSummary) {
    const SHOWN: usize = 20;
    let mut paths: Vec<Vec<u8>> = Vec::new();
    let mut written: HashMap<&[u8], u64> = HashMap::new();
    for (_, op) in ops {
        let touched: &[&Vec<u8>] = match op {
            Op::Write { path, stage, .. } => {
                let size = contents.get(stage).map(|(_, size)| *size).unwrap_or(0);
                written.insert(path, size);
                &[path]
            }
            Op::Mkdir { path, .. }
            | Op::Symlink { path, .. }
            | Op::Special { path, .. }
            | Op::Remove { path }
            | Op::SetAttr { path, .. }
            | Op::SetXattrs { path, .. } => &[path],
            Op::Rename { from, to } | Op::Link { from, to, .. } => &[from, to],
        };
        for path in touched {
            if !paths.contains(path) {
                paths.push((*path).clone());
            }
        }
    }
    let mut shown: Vec<String> = paths
        .iter()
        .take(SHOWN)
        .map(|p| format!("/{}", String::from_utf8_lossy(p).trim_start_matches('/')))
        .collect();
    if paths.len() > SHOWN {
        shown.push(format!("… and {} more", paths.len() - SHOWN));
    }
    let summary = SnapshotSummary {
        files: written.len() as u64,
        dirs: 0,
        bytes: written.values().sum(),
    };
    (shown, summary)
}

fn state_error(error: impl std::fmt::Display) -> ClientError {
    ClientError::State(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &str, stage: &str, link: u64) -> (i64, Op) {
        let op = Op::Write {
            path: path.as_bytes().to_vec(),
            stage: stage.into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime_ns: 1,
            xattrs: Vec::new(),
            base: None,
            link,
            atime_ns: None,
        };
        (0, op)
    }

    fn remove(path: &str) -> (i64, Op) {
        let path = path.as_bytes().to_vec();
        (0, Op::Remove { path })
    }

    #[test]
    fn only_files_removed_again_unmoved_and_unlinked_are_discarded() {
        let rename = |from: &str, to: &str| {
            let (from, to) = (from.as_bytes().to_vec(), to.as_bytes().to_vec());
            (0, Op::Rename { from, to })
        };
        let ops = [
            write("tmp.bin", "copied-then-deleted", 0),
            write("dir/inner", "folder-removed", 0),
            write("kept.txt", "kept", 0),
            write("moved", "moved-first", 0),
            rename("moved", "elsewhere"),
            write("linked", "other-name", 7),
            write("again", "reused", 0),
            remove("again"),
            write("again", "reused", 0),
            remove("tmp.bin"),
            remove("dir"),
            remove("moved"),
            remove("linked"),
        ];
        let mut discarded: Vec<String> = discarded_stages(&ops).into_iter().collect();
        discarded.sort();
        assert_eq!(discarded, ["copied-then-deleted", "folder-removed"]);
    }
}
