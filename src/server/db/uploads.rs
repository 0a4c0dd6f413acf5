//! Recording an upload: the pack that was written and the objects in it, in one
//! transaction, or nothing. The route (`http::objects::upload`) checks the request and
//! writes the pack first; this is the part that must be atomic.

use std::collections::HashSet;

use crate::db::Conn;

use super::objects::{self, Location};
use super::{accounts, immediate, libraries, retention, DbError};
use crate::api::types::UploadObject;
use crate::config::ServerConfig;
use crate::crypto::ObjectId;

/// Why an upload was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A referenced object was collected since the upload was checked.
    #[error("object {0} was collected while this upload ran")]
    Collected(ObjectId),
    /// The library's key was rotated since the upload was checked.
    #[error("the library is at key epoch {0} now")]
    StaleEpoch(u32),
    #[error("the owner's quota would be exceeded")]
    OverQuota(OverQuota),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for Refused {
    fn from(error: rusqlite::Error) -> Self {
        Refused::Db(error.into())
    }
}

/// What passing the quota would look like: bytes in use, the limit, the owner's address.
#[derive(Debug)]
pub struct OverQuota {
    pub used: u64,
    pub limit: u64,
    pub owner_email: String,
}

/// Whether adding `adding` bytes to what `owner_id` stores passes that account's limit
/// (its plan's, or an override).
pub fn over_quota(
    conn: &Conn,
    config: &ServerConfig,
    owner_id: i64,
    adding: u64,
) -> Result<Option<OverQuota>, DbError> {
    let owner = accounts::by_id(conn, owner_id)?
        .ok_or_else(|| DbError::Corrupt(format!("library owner {owner_id} missing")))?;
    let limit = config.quota_for(&owner.plan, owner.quota_override);
    let used = accounts::used_bytes(conn, owner_id)?;
    Ok((used.saturating_add(adding) > limit).then_some(OverQuota {
        used,
        limit,
        owner_email: owner.email,
    }))
}

/// A written pack and the new objects placed in it.
pub struct Upload<'a> {
    pub library: &'a str,
    pub pack_id: &'a str,
    pub pack_size: u64,
    /// The key epoch the new objects are sealed under (checked against the library's now).
    pub epoch: u32,
    pub owner_id: i64,
    /// Every object of the request (new or not): their references are touched.
    pub all: &'a [UploadObject],
    pub placed: &'a [(UploadObject, Location)],
}

/// Counts of a recorded upload.
#[derive(Debug, Default)]
pub struct Recorded {
    pub stored: u64,
    pub stored_bytes: u64,
    /// Objects another upload recorded first.
    pub raced: u64,
}

/// Records `upload` in one transaction: the pack, each object not yet there with its edges
/// and snapshot metadata, what it adds to the owner's usage. Refuses, recording nothing,
/// when a referenced object was collected meanwhile, the key epoch moved, or the quota
/// would be passed. Every reference is marked reused, so the next collection spares it.
pub fn record(
    conn: &mut Conn,
    config: &ServerConfig,
    upload: &Upload<'_>,
) -> Result<Recorded, Refused> {
    let library = upload.library;
    let tx = immediate(conn)?;
    objects::insert_pack(&tx, library, upload.pack_id, upload.pack_size)?;
    let all_ids: Vec<ObjectId> = upload.all.iter().map(|o| o.id).collect();
    let batch: HashSet<ObjectId> = upload.placed.iter().map(|(o, _)| o.id).collect();
    let refs: Vec<ObjectId> = upload
        .all
        .iter()
        .flat_map(|o| o.refs.iter())
        .filter(|r| !batch.contains(r))
        .copied()
        .collect();
    if let Some(gone) = objects::absent(&tx, library, &refs)?.first() {
        return Err(Refused::Collected(*gone));
    }
    retention::touch(&tx, library, &refs)?;
    retention::touch(&tx, library, &all_ids)?;
    let mut recorded = Recorded::default();
    let mut charged = 0u64;
    for (object, location) in upload.placed {
        if !objects::insert(&tx, library, &object.id, object.kind, location)? {
            recorded.raced += 1;
            continue;
        }
        recorded.stored += 1;
        recorded.stored_bytes += location.size;
        charged += location.size
            + retention::OBJECT_ROW_BYTES
            + object.refs.len() as u64 * retention::EDGE_ROW_BYTES;
        objects::insert_edges(&tx, library, &object.id, &object.refs)?;
        if let Some(meta) = &object.snapshot {
            objects::insert_snapshot(&tx, library, &object.id, meta, upload.epoch)?;
        }
    }
    let epoch = libraries::epoch(&tx, library)?;
    if epoch != upload.epoch {
        return Err(Refused::StaleEpoch(epoch));
    }
    if let Some(over) = over_quota(&tx, config, upload.owner_id, charged)? {
        return Err(Refused::OverQuota(over));
    }
    objects::add_stored_bytes(&tx, library, charged as i64)?;
    tx.commit()?;
    Ok(recorded)
}
