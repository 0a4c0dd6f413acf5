//! The content pipeline: read and chunk files, ask the server which chunks it lacks, encrypt
//! those, and upload them in batches, all stages running at once.
//!
//! ```text
//! readers (2) ──chunks──► dedupe (1) ──missing──► sealers (2) ──blobs──► uploaders (2)
//! ```
//! Channels are bounded, so memory stays bounded (a few dozen MiB) whatever the input size.
//! A file whose size, mtime or ctime changes while it is read is read again; if it keeps
//! changing it is stored as read and reported, never silently.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crossbeam_channel::{bounded, Receiver, Sender};
use indicatif::ProgressBar;

use super::{Batch, Repo};
use crate::api::types::UploadObject;
use crate::crypto::{BlobKind, ObjectId, ObjectKey};
use crate::model::chunker::{self, Piece};
use crate::model::ChunkRef;
use crate::{ClientError, Result};

const READERS: usize = 2;
const SEALERS: usize = 2;
const UPLOADERS: usize = 2;
const CHANNEL_DEPTH: usize = 8;
/// Ask about missing chunks once this many are waiting (or this many bytes).
const DEDUPE_IDS: usize = 512;
const DEDUPE_BYTES: usize = 24 << 20;
const READ_ATTEMPTS: usize = 3;

/// What reading one file gave.
#[derive(Clone)]
pub enum FileRead {
    Stored {
        chunks: Vec<ChunkRef>,
        size: u64,
        mtime_ns: i64,
        warning: Option<String>,
    },
    Failed(String),
}

#[derive(Default)]
pub struct ContentStats {
    pub bytes_read: AtomicU64,
    pub chunks_uploaded: AtomicU64,
    pub chunk_bytes_uploaded: AtomicU64,
    pub blob_bytes_uploaded: AtomicU64,
}

type Chunk = (ObjectKey, Vec<u8>);

/// A file whose content must be read.
pub struct FileJob {
    pub path: PathBuf,
    pub size: u64,
}

struct Shared<'a> {
    store: &'a dyn Repo,
    jobs: &'a [FileJob],
    next: AtomicUsize,
    failed: AtomicBool,
    error: Mutex<Option<ClientError>>,
    stats: &'a ContentStats,
    progress: &'a ProgressBar,
    /// The keys of the chunks of zeros cut in files' holes, by length: each goes to the
    /// server once a run, however many holes hold it.
    zero_chunks: Mutex<HashMap<usize, ObjectKey>>,
}

impl Shared<'_> {
    fn fail(&self, error: ClientError) {
        self.failed.store(true, Ordering::SeqCst);
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(error);
    }

    fn aborted(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// The key of `len` zeros, and the zeros themselves the first time they are asked for
    /// (to be sent on; later holes need not be).
    fn zero_chunk(&self, len: usize) -> (ObjectKey, Option<Vec<u8>>) {
        let mut known = self.zero_chunks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = known.get(&len) {
            return (*key, None);
        }
        let zeros = vec![0; len];
        let key = self.store.keys().object_key(BlobKind::Chunk, &zeros);
        known.insert(len, key);
        (key, Some(zeros))
    }
}

/// Reads every job's file and makes sure the server holds all its chunks.
pub fn store_contents(
    store: &dyn Repo,
    jobs: &[FileJob],
    stats: &ContentStats,
    progress: &ProgressBar,
) -> Result<Vec<FileRead>> {
    let shared = Shared {
        store,
        jobs,
        next: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
        stats,
        progress,
        zero_chunks: Mutex::default(),
    };
    let results: Mutex<Vec<Option<FileRead>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        let (chunk_tx, chunk_rx) = bounded::<Chunk>(CHANNEL_DEPTH);
        let (seal_tx, seal_rx) = bounded::<Chunk>(CHANNEL_DEPTH);
        let (upload_tx, upload_rx) = bounded::<(UploadObject, Vec<u8>)>(CHANNEL_DEPTH);
        for _ in 0..READERS {
            let tx = chunk_tx.clone();
            let (shared, results) = (&shared, &results);
            scope.spawn(move || reader(shared, tx, results));
        }
        drop(chunk_tx);
        let shared_ref = &shared;
        scope.spawn(move || dedupe(shared_ref, chunk_rx, seal_tx));
        for _ in 0..SEALERS {
            let (rx, tx) = (seal_rx.clone(), upload_tx.clone());
            scope.spawn(move || sealer(shared_ref, rx, tx));
        }
        drop(seal_rx);
        drop(upload_tx);
        for _ in 0..UPLOADERS {
            let rx = upload_rx.clone();
            scope.spawn(move || uploader(shared_ref, rx));
        }
    });
    if let Some(error) = shared.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(error);
    }
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| FileRead::Failed("not read".into())))
        .collect())
}

fn reader(shared: &Shared<'_>, tx: Sender<Chunk>, results: &Mutex<Vec<Option<FileRead>>>) {
    loop {
        let index = shared.next.fetch_add(1, Ordering::SeqCst);
        if index >= shared.jobs.len() || shared.aborted() {
            return;
        }
        let job = &shared.jobs[index];
        let outcome = read_file(shared, job, &tx);
        results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(outcome);
    }
}

fn read_file(shared: &Shared<'_>, job: &FileJob, tx: &Sender<Chunk>) -> FileRead {
    let path = &job.path;
    let mut counted = 0u64;
    for attempt in 1..=READ_ATTEMPTS {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) => return FileRead::Failed(format!("{}: {e}; skipped", path.display())),
        };
        let before = match file.metadata() {
            Ok(meta) => meta,
            Err(e) => return FileRead::Failed(format!("{}: {e}; skipped", path.display())),
        };
        let mut chunks = Vec::new();
        let mut size = 0u64;
        let gear = &shared.store.keys().newest().chunker_gear;
        for piece in chunker::file_chunks(&file, gear) {
            let piece = match piece {
                Ok(piece) => piece,
                Err(e) => return FileRead::Failed(format!("{}: {e}; skipped", path.display())),
            };
            let (key, len, data) = match piece {
                Piece::Data(data) => (
                    shared.store.keys().object_key(BlobKind::Chunk, &data),
                    data.len() as u32,
                    Some(data),
                ),
                Piece::Zeros(len) => {
                    let (key, first) = shared.zero_chunk(len);
                    (key, len as u32, first)
                }
            };
            size += u64::from(len);
            chunks.push(ChunkRef { key, len });
            shared
                .stats
                .bytes_read
                .fetch_add(u64::from(len), Ordering::Relaxed);
            if counted < job.size {
                let step = u64::from(len).min(job.size - counted);
                shared.progress.inc(step);
                counted += step;
            }
            if shared.aborted() {
                return FileRead::Failed("backup aborted".into());
            }
            if let Some(data) = data {
                if tx.send((key, data)).is_err() {
                    return FileRead::Failed("backup aborted".into());
                }
            }
        }
        let after = match file.metadata() {
            Ok(meta) => meta,
            Err(e) => return FileRead::Failed(format!("{}: {e}; skipped", path.display())),
        };
        let steady = before.len() == after.len()
            && before.mtime() == after.mtime()
            && before.mtime_nsec() == after.mtime_nsec()
            && before.ctime() == after.ctime()
            && before.ctime_nsec() == after.ctime_nsec()
            && size == after.len();
        let mtime_ns = after.mtime().saturating_mul(1_000_000_000) + after.mtime_nsec();
        if steady || attempt == READ_ATTEMPTS {
            let warning = (!steady).then(|| {
                format!(
                    "{}: changed while being read ({READ_ATTEMPTS} attempts); stored as read, \
                     which may mix old and new content",
                    path.display()
                )
            });
            shared.progress.inc(job.size - counted);
            return FileRead::Stored {
                chunks,
                size,
                mtime_ns,
                warning,
            };
        }
    }
    unreachable!("the last attempt returns")
}

fn dedupe(shared: &Shared<'_>, rx: Receiver<Chunk>, tx: Sender<Chunk>) {
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut waiting: Vec<Chunk> = Vec::new();
    let mut waiting_bytes = 0usize;
    let flush = |waiting: &mut Vec<Chunk>| -> Result<()> {
        let ids: Vec<ObjectId> = waiting.iter().map(|(key, _)| key.id()).collect();
        let missing = shared.store.missing(&ids)?;
        for ((key, data), id) in waiting.drain(..).zip(ids) {
            if missing.contains(&id) && tx.send((key, data)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    };
    for (key, data) in rx {
        if shared.aborted() {
            return;
        }
        if !seen.insert(key.id()) {
            continue;
        }
        waiting_bytes += data.len();
        waiting.push((key, data));
        if waiting.len() >= DEDUPE_IDS || waiting_bytes >= DEDUPE_BYTES {
            if let Err(e) = flush(&mut waiting) {
                return shared.fail(e);
            }
            waiting_bytes = 0;
        }
    }
    if !waiting.is_empty() {
        if let Err(e) = flush(&mut waiting) {
            shared.fail(e);
        }
    }
}

fn sealer(shared: &Shared<'_>, rx: Receiver<Chunk>, tx: Sender<(UploadObject, Vec<u8>)>) {
    for (key, data) in rx {
        let blob = shared
            .store
            .keys()
            .seal_object(BlobKind::Chunk, &key, &data);
        shared
            .stats
            .chunk_bytes_uploaded
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let object = UploadObject {
            id: key.id(),
            kind: BlobKind::Chunk,
            len: blob.len() as u32,
            refs: Vec::new(),
            snapshot: None,
        };
        if tx.send((object, blob)).is_err() {
            return;
        }
    }
}

fn uploader(shared: &Shared<'_>, rx: Receiver<(UploadObject, Vec<u8>)>) {
    let mut batch = Batch::default();
    let send = |batch: Batch| -> Result<()> {
        let bytes = batch.bytes() as u64;
        let response = shared.store.upload(batch)?;
        shared
            .stats
            .chunks_uploaded
            .fetch_add(response.stored, Ordering::Relaxed);
        shared
            .stats
            .blob_bytes_uploaded
            .fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    };
    for (object, blob) in rx.iter() {
        if shared.aborted() {
            continue;
        }
        batch.push(object, blob);
        if batch.is_full() {
            if let Err(e) = send(std::mem::take(&mut batch)) {
                shared.fail(e);
            }
        }
    }
    if !batch.is_empty() && !shared.aborted() {
        if let Err(e) = send(batch) {
            shared.fail(e);
        }
    }
}
