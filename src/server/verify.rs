//! `ibackup-server verify`: every stored blob still has the bytes it was uploaded with.
//!
//! The server cannot decrypt, so it checks what it can: each object's CRC-32C, recorded at
//! upload, against the bytes in its pack now. A mismatch, or a pack missing or shorter than
//! its index, marks the object damaged: `missing` then reports it, so the next upload of
//! the same content (any client's) stores it again and heals it. Clients never rely on this
//! for integrity (they authenticate every blob); it finds bit rot before a restore does.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use super::db::objects::{self, Indexed};
use super::db::{self, retention, Db, DbError};
use super::storage::{BlobStore, StorageError};

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub libraries: u64,
    pub packs: u64,
    pub objects: u64,
    pub bytes: u64,
    pub damaged: Vec<DamagedObject>,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct DamagedObject {
    pub library: String,
    pub owner: String,
    pub object: String,
    pub pack: String,
    pub problem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no library has the id `{0}`")]
    UnknownLibrary(String),
    /// The store is out of reach: nothing can be said of the objects, none is marked.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub fn verify(
    db: &Db,
    blobs: &dyn BlobStore,
    only: Option<&str>,
) -> Result<VerifyReport, VerifyError> {
    let started = Instant::now();
    let mut libraries = db.blocking(|conn| retention::libraries(conn))?;
    if let Some(only) = only {
        if !libraries.iter().any(|(id, _)| id == only) {
            return Err(VerifyError::UnknownLibrary(only.to_owned()));
        }
        libraries.retain(|(id, _)| id == only);
    }
    let mut report = VerifyReport::default();
    for (library, owner) in libraries {
        report.libraries += 1;
        let objects: Vec<Indexed> = db.blocking(|conn| objects::indexed(conn, &library))?;
        let mut by_pack: BTreeMap<String, Vec<Indexed>> = BTreeMap::new();
        for object in objects {
            by_pack.entry(object.1.clone()).or_default().push(object);
        }
        let mut damaged: Vec<(Vec<u8>, String, String)> = Vec::new();
        for (pack, objects) in by_pack {
            report.packs += 1;
            for (id, _, offset, size, checksum) in objects {
                report.objects += 1;
                report.bytes += size;
                let problem = match (blobs.read_range(&library, &pack, offset, size), checksum) {
                    (Err(e), _) if e.is_damage() => {
                        Some(format!("cannot be read from its pack ({e})"))
                    }
                    (Err(e), _) => return Err(e.into()),
                    (Ok(bytes), Some(sum)) if crc32c::crc32c(&bytes) != sum => {
                        Some("its bytes changed on disk (checksum mismatch)".to_owned())
                    }
                    _ => None,
                };
                if let Some(problem) = problem {
                    damaged.push((id, pack.clone(), problem));
                }
            }
        }
        let ids: Vec<&[u8]> = damaged.iter().map(|(id, _, _)| id.as_slice()).collect();
        db.blocking(|conn| objects::mark_damaged(conn, &library, &ids))?;
        for (id, pack, problem) in damaged {
            tracing::warn!(
                "library {library}: object {} damaged: {problem}",
                hex::encode(&id[..4])
            );
            report.damaged.push(DamagedObject {
                library: library.clone(),
                owner: owner.clone(),
                object: hex::encode(&id),
                pack,
                problem,
            });
        }
    }
    db.blocking(|conn| db::settings::set_state(conn, "last_verify", db::now()))?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// When verify last ran (seconds since the epoch), for the maintenance schedule.
pub fn last_run(db: &Db) -> Result<Option<i64>, DbError> {
    db.blocking(|conn| db::settings::state(conn, "last_verify"))
}
