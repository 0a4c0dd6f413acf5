//! `ibackup check`: every snapshot of a library can be restored. Each snapshot and tree is
//! fetched, decrypted and verified; the names of each hard-linked file agree (`links`);
//! every chunk must exist on the server; with `--read-data` (or a random share of them
//! with `--read-data-subset`) every chunk is fetched and verified too. Damage names the
//! snapshots and file paths it affects. Exit 0 when all is well, 1 when anything is
//! damaged (as restic does).

mod hardlinks;

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::restore::is_damage;
use super::session::Session;
use super::store::Store;
use super::Result;
use crate::crypto::{BlobKind, ObjectId, ObjectKey};
use crate::model::{EntryKind, Snapshot, Tree};

/// Trees fetched per request.
const PER_FETCH: usize = 256;
/// Chunks are read in requests of about this many bytes, by this many workers at once.
const READ_BYTES: u64 = 16 << 20;
const READERS: usize = 3;

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub library: String,
    pub snapshots: u64,
    pub trees: u64,
    pub chunks: u64,
    pub chunks_read: u64,
    pub bytes_read: u64,
    pub damage: Vec<Damage>,
}

#[derive(Debug, Serialize)]
pub struct Damage {
    /// The snapshot (short id) through which the damage was first reached.
    pub snapshot: String,
    /// The file or folder affected, inside that snapshot.
    pub path: String,
    pub object: String,
    pub problem: String,
}

/// Where an object was first met: snapshot and path.
type Seen = (String, String);

fn join(parent: &str, name: &[u8]) -> String {
    format!(
        "{}/{}",
        parent.trim_end_matches('/'),
        String::from_utf8_lossy(name)
    )
}

/// Checks library `name`; `read_share` is the share of chunks to read (1.0 for all).
pub fn run(session: &Session, name: &str, read_share: Option<f64>) -> Result<CheckReport> {
    let library = session.open_library(name)?;
    let store = Store::new(&session.remote, &library);
    let mut report = CheckReport {
        library: library.display(),
        ..Default::default()
    };
    let damage = |seen: &Seen, object: &ObjectId, problem: String| Damage {
        snapshot: seen.0.clone(),
        path: seen.1.clone(),
        object: object.short(),
        problem,
    };

    // Snapshots, one at a time: a damaged one is named, the rest checked.
    let mut level: Vec<(ObjectKey, Seen)> = Vec::new();
    let mut roots: Vec<(String, ObjectKey)> = Vec::new();
    for record in store.snapshots()? {
        report.snapshots += 1;
        let seen = (record.id.short(), "/".to_owned());
        match store
            .fetch_owned(std::slice::from_ref(&record.id))
            .and_then(|mut blobs| {
                let plain = library.keys.open_snapshot(&record.id, blobs.remove(0))?;
                Ok(Snapshot::decode(&plain)?)
            }) {
            Ok(snapshot) => {
                roots.push((seen.0.clone(), snapshot.tree));
                level.push((snapshot.tree, seen));
            }
            Err(e) if is_damage(&e) => report.damage.push(damage(&seen, &record.id, e.to_string())),
            Err(e) => return Err(e),
        }
    }

    // Trees, a level at a time, each once however many snapshots share it.
    let mut trees_seen: HashSet<ObjectKey> = HashSet::new();
    let mut chunks: HashMap<ObjectKey, (Seen, u32)> = HashMap::new();
    // In the order the trees hold them, which is about the order they were stored in: a
    // request of neighbours reads a few long ranges of a pack, not many short ones.
    let mut order: Vec<ObjectKey> = Vec::new();
    let mut link_counts = hardlinks::LinkCounts::default();
    while !level.is_empty() {
        level.retain(|(key, _)| trees_seen.insert(*key));
        let mut next = Vec::new();
        for (key, seen, outcome) in load_each(&store, BlobKind::Tree, level)? {
            report.trees += 1;
            let tree = match outcome.and_then(|plain| Ok(Tree::decode(&plain)?)) {
                Ok(tree) => tree,
                Err(e) if is_damage(&e) => {
                    report.damage.push(damage(&seen, &key.id(), e.to_string()));
                    continue;
                }
                Err(e) => return Err(e),
            };
            link_counts.record(key, &tree);
            for entry in tree.entries {
                let path = join(&seen.1, &entry.name);
                match (entry.kind, entry.subtree) {
                    (EntryKind::Dir, Some(sub)) => next.push((sub, (seen.0.clone(), path))),
                    _ => {
                        for chunk in &entry.chunks {
                            chunks.entry(chunk.key).or_insert_with(|| {
                                order.push(chunk.key);
                                ((seen.0.clone(), path.clone()), chunk.len)
                            });
                        }
                    }
                }
            }
        }
        level = next;
    }
    for (snapshot, root) in roots {
        for found in link_counts.check_snapshot(root) {
            report.damage.push(Damage {
                snapshot: snapshot.clone(),
                path: found.path,
                object: found.tree.id().short(),
                problem: found.problem,
            });
        }
    }

    // Chunks: every one must exist; the share asked for is read and verified.
    report.chunks = chunks.len() as u64;
    let keys = order;
    let ids: Vec<ObjectId> = keys.iter().map(ObjectKey::id).collect();
    let missing = super::repo::Repo::missing(&store, &ids)?;
    let mut to_read: Vec<(ObjectKey, u32)> = Vec::new();
    for key in keys {
        let (seen, len) = &chunks[&key];
        if missing.contains(&key.id()) {
            report.damage.push(damage(
                seen,
                &key.id(),
                "chunk missing on the server".into(),
            ));
        } else if read_share.is_some_and(|share| rand::random::<f64>() < share) {
            to_read.push((key, *len));
        }
    }
    let (read, bytes, bad) = read_chunks(&store, &to_read)?;
    report.chunks_read = read;
    report.bytes_read = bytes;
    for (key, problem) in bad {
        report
            .damage
            .push(damage(&chunks[&key].0, &key.id(), problem));
    }
    Ok(report)
}

/// Reads and verifies chunks in requests of about [`READ_BYTES`], [`READERS`] at once,
/// keeping nothing of what they hold: returns (chunks read, bytes, damaged with why).
#[allow(clippy::type_complexity)]
fn read_chunks(
    store: &Store<'_>,
    chunks: &[(ObjectKey, u32)],
) -> Result<(u64, u64, Vec<(ObjectKey, String)>)> {
    let mut batches: Vec<Vec<ObjectKey>> = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0u64;
    for (key, len) in chunks {
        if !current.is_empty() && bytes + u64::from(*len) > READ_BYTES {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += u64::from(*len);
        current.push(*key);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let totals = std::sync::Mutex::new((0u64, 0u64, Vec::new()));
    let failure: std::sync::Mutex<Option<super::ClientError>> = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..READERS {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(batch) = batches.get(index) else {
                    return;
                };
                let ids: Vec<ObjectId> = batch.iter().map(ObjectKey::id).collect();
                let blobs = match store.fetch_owned(&ids) {
                    Ok(blobs) => blobs,
                    Err(e) => {
                        failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                        return;
                    }
                };
                let (mut read, mut bytes, mut bad) = (0u64, 0u64, Vec::new());
                for (key, blob) in batch.iter().zip(blobs) {
                    read += 1;
                    match store.keys.open_object(BlobKind::Chunk, key, blob) {
                        Ok(plain) => bytes += plain.len() as u64,
                        Err(e) => bad.push((*key, e.to_string())),
                    }
                }
                let mut totals = totals.lock().unwrap_or_else(|p| p.into_inner());
                totals.0 += read;
                totals.1 += bytes;
                totals.2.extend(bad);
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(totals.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Fetches and opens each object, reporting each one's outcome: a missing or damaged
/// object fails alone, not the whole request.
#[allow(clippy::type_complexity)]
fn load_each(
    store: &Store<'_>,
    kind: BlobKind,
    wanted: Vec<(ObjectKey, Seen)>,
) -> Result<Vec<(ObjectKey, Seen, Result<bytes::Bytes>)>> {
    let mut out = Vec::with_capacity(wanted.len());
    let mut wanted = wanted.into_iter().peekable();
    while wanted.peek().is_some() {
        let group: Vec<(ObjectKey, Seen)> = wanted.by_ref().take(PER_FETCH).collect();
        let ids: Vec<ObjectId> = group.iter().map(|(key, _)| key.id()).collect();
        // Fetched at once; only when the server lacks some is it asked which (one round
        // trip a group instead of two: on S3 each is a wait on the store).
        let (missing, mut blobs) = match store.fetch_owned(&ids) {
            Ok(blobs) => (HashSet::new(), blobs.into_iter()),
            Err(super::ClientError::Remote(super::RemoteError::Api { body, .. }))
                if body.error == crate::api::ErrorCode::NotFound =>
            {
                let missing: HashSet<ObjectId> = super::repo::Repo::missing(store, &ids)?
                    .into_iter()
                    .collect();
                let present: Vec<ObjectId> = ids
                    .iter()
                    .filter(|id| !missing.contains(id))
                    .copied()
                    .collect();
                (missing, store.fetch_owned(&present)?.into_iter())
            }
            Err(e) => return Err(e),
        };
        for (key, seen) in group {
            let outcome = if missing.contains(&key.id()) {
                Err(super::ClientError::Remote(super::RemoteError::Api {
                    status: 404,
                    body: crate::api::ErrorBody::new(
                        crate::api::ErrorCode::NotFound,
                        "missing on the server",
                    ),
                }))
            } else {
                let blob = blobs.next().expect("one blob per present id");
                store.keys.open_object(kind, &key, blob).map_err(Into::into)
            };
            out.push((key, seen, outcome));
        }
    }
    Ok(out)
}
