//! Collection inside live libraries, without a lock: backups, mount uploads and shared
//! writers go on while it runs.
//!
//! Per library: apply the retention policy (forget the snapshots no rule keeps), mark what
//! is live (reachable through the recorded edges from the head, the kept snapshots, and
//! every object written or reused within the grace period), sweep the rest, then free disk:
//! delete packs nothing lives in, rewrite packs mostly dead, remove orphan pack files.
//!
//! Why no upload loses a blob (the argument, also in docs/DECISIONS.md): an upload either
//! writes an object (new: younger than the grace period, so live) or relies on one that
//! exists. It learns that one exists from `missing`, which marks it reused, or from a tree
//! it read, whose objects it references in a new tree; the commit of that tree checks, in
//! its own transaction, that every reference exists and marks it reused. The sweep deletes
//! only objects that are still unreused since the grace cutoff, in a transaction of its
//! own; so an object an upload relies on is either spared (reused after the cutoff) or was
//! deleted before the upload's commit, which then fails with `missing_references` and is
//! retried. A snapshot is never recorded with a missing object.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::db::{self, retention, Db, DbError};
use super::storage::{BlobStore, PackInfo, StorageError};
use crate::crypto::ObjectId;
use crate::model::retention::{decide, Candidate};

#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Objects written or reused this recently are spared (uploads in flight).
    pub grace: Duration,
    /// Report what would go; change nothing.
    pub dry_run: bool,
    /// Only this library.
    pub library: Option<String>,
    /// Packs whose live bytes fall under this share are rewritten with only those.
    pub repack_below: f64,
}

impl GcOptions {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            dry_run: false,
            library: None,
            repack_below: 0.5,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub libraries: u64,
    pub snapshots_dropped: u64,
    pub blobs_freed: u64,
    /// Bytes of the blobs freed (what quota usage falls by, index rows aside).
    pub blob_bytes_freed: u64,
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub orphan_packs: u64,
    /// Bytes the data directory gave back (packs deleted, rewritten or orphaned).
    pub disk_bytes_freed: u64,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("no library has the id `{0}`")]
    UnknownLibrary(String),
}

impl From<rusqlite::Error> for GcError {
    fn from(error: rusqlite::Error) -> Self {
        GcError::Db(DbError::from(error))
    }
}

/// Collects every library (or the one named); `progress(done, total)` after each.
pub fn collect(
    db: &Db,
    blobs: &dyn BlobStore,
    options: &GcOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<GcReport, GcError> {
    let started = Instant::now();
    let mut libraries: Vec<String> = db
        .blocking(|conn| retention::libraries(conn))?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    if let Some(only) = &options.library {
        if !libraries.contains(only) {
            return Err(GcError::UnknownLibrary(only.clone()));
        }
        libraries.retain(|id| id == only);
    }
    let mut report = GcReport {
        dry_run: options.dry_run,
        ..Default::default()
    };
    let total = libraries.len() as u64;
    for (done, library) in libraries.iter().enumerate() {
        collect_library(db, blobs, library, options, &mut report)?;
        report.libraries += 1;
        progress(done as u64 + 1, total);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The snapshots the library's policy no longer keeps.
fn dropped(conn: &crate::db::Conn, library: &str) -> Result<Vec<ObjectId>, DbError> {
    let policy = retention::policy(conn, library)?;
    let head = db::libraries::head(conn, library)?;
    let listed = retention::retained(conn, library)?;
    let candidates: Vec<Candidate> = listed
        .iter()
        .map(|s| Candidate {
            time_ns: s.time_ns,
            head: Some(s.id) == head,
            kept_tag: s.tag_macs.iter().any(|m| policy.keep_tags.contains(m)),
        })
        .collect();
    Ok(decide(&policy, &candidates)
        .into_iter()
        .zip(&listed)
        .filter(|(reasons, _)| reasons.is_empty())
        .map(|(_, s)| s.id)
        .collect())
}

fn collect_library(
    db: &Db,
    blobs: &dyn BlobStore,
    library: &str,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let cutoff = db::now() - options.grace.as_secs() as i64;
    if options.dry_run {
        // Everything in one transaction, rolled back: the numbers are exact, nothing moves.
        return db.blocking(|conn| -> Result<(), GcError> {
            let tx = db::immediate(conn)?;
            let drop = dropped(&tx, library)?;
            report.snapshots_dropped += retention::forget(&tx, library, &drop)? as u64;
            let live = retention::live(&tx, library, cutoff)?;
            let dead = retention::dead(&tx, library, &live)?;
            let (objects, bytes) = retention::sweep(&tx, library, &dead, cutoff)?;
            report.blobs_freed += objects;
            report.blob_bytes_freed += bytes;
            for pack in retention::pack_use(&tx, library)? {
                if pack.live == 0 {
                    report.packs_deleted += 1;
                    report.disk_bytes_freed += pack.size;
                } else if (pack.live as f64) < options.repack_below * pack.size as f64 {
                    report.packs_repacked += 1;
                    report.disk_bytes_freed += pack.size - pack.live;
                }
            }
            tx.rollback()?;
            Ok(())
        });
    }

    // 1. Retention: forget what no rule keeps.
    report.snapshots_dropped += db.blocking(|conn| -> Result<u64, GcError> {
        let tx = db::immediate(conn)?;
        let drop = dropped(&tx, library)?;
        let forgotten = retention::forget(&tx, library, &drop)? as u64;
        tx.commit()?;
        Ok(forgotten)
    })?;
    // 2. Mark (reads only: uploads go on).
    let dead = db.blocking(|conn| -> Result<_, GcError> {
        let live = retention::live(conn, library, cutoff)?;
        Ok(retention::dead(conn, library, &live)?)
    })?;
    // 3. Sweep, sparing anything reused since the mark, and retire packs left empty.
    let packs = db.blocking(|conn| -> Result<_, GcError> {
        let tx = db::immediate(conn)?;
        let (objects, bytes) = retention::sweep(&tx, library, &dead, cutoff)?;
        report.blobs_freed += objects;
        report.blob_bytes_freed += bytes;
        let packs = retention::pack_use(&tx, library)?;
        for pack in packs.iter().filter(|p| p.live == 0) {
            retention::retire_pack(&tx, library, &pack.id)?;
            report.packs_deleted += 1;
        }
        tx.commit()?;
        Ok(packs)
    })?;
    // 4. Rewrite packs that are mostly dead.
    for pack in packs
        .iter()
        .filter(|p| p.live > 0 && (p.live as f64) < options.repack_below * p.size as f64)
    {
        repack(db, blobs, library, &pack.id)?;
        report.packs_repacked += 1;
    }
    // 5. Delete retired packs no reader can still be using, and orphans past the grace.
    let retire_delay = options.grace.min(Duration::from_secs(300)).as_secs() as i64;
    let (retired, known) = db.blocking(|conn| -> Result<_, GcError> {
        Ok((
            retention::retired_before(conn, library, db::now() - retire_delay)?,
            retention::known_packs(conn, library)?,
        ))
    })?;
    for pack in &retired {
        report.disk_bytes_freed += blobs.pack_size(library, pack)?;
        blobs.delete_pack(library, pack)?;
    }
    db.blocking(|conn| -> Result<(), GcError> {
        let tx = db::immediate(conn)?;
        for pack in &retired {
            retention::forget_retired(&tx, library, pack)?;
        }
        tx.commit()?;
        Ok(())
    })?;
    let orphan_before = std::time::SystemTime::now() - options.grace;
    for PackInfo {
        id: pack,
        modified,
        size,
    } in blobs.list_packs(library)?
    {
        if !known.contains(&pack) && modified <= orphan_before {
            blobs.delete_pack(library, &pack)?;
            report.orphan_packs += 1;
            report.disk_bytes_freed += size;
        }
    }
    Ok(())
}

/// Writes a pack's live objects into a new pack, durably, then points them at it and
/// retires the old one (its file stays until readers that looked it up are done).
fn repack(db: &Db, blobs: &dyn BlobStore, library: &str, old: &str) -> Result<(), GcError> {
    let objects = db.blocking(|conn| retention::pack_objects(conn, library, old))?;
    let mut data = Vec::new();
    let mut moved = Vec::with_capacity(objects.len());
    for (id, offset, size) in objects {
        moved.push((id, data.len() as u64));
        data.extend_from_slice(&blobs.read_range(library, old, offset, size)?);
    }
    let new = db::random_id();
    let size = data.len() as u64;
    blobs.write_pack(library, &new, data.into())?;
    let switched = db.blocking(|conn| -> Result<(), GcError> {
        let tx = db::immediate(conn)?;
        retention::switch_pack(&tx, library, old, &new, size, &moved)?;
        tx.commit()?;
        Ok(())
    });
    if switched.is_err() {
        let _ = blobs.delete_pack(library, &new);
    }
    switched
}
