//! Objects: where each stored blob lives (pack and offset), its kind and size, the edges
//! between objects, and the plaintext metadata of snapshots.
//!
//! Invariant: an object row exists only when every object it references has a row, so a
//! stored snapshot is always complete.

use crate::db::{params, Conn, OptionalExtension};

use super::{now, DbError};
use crate::api::types::SnapshotMeta;
use crate::crypto::{BlobKind, ObjectId};

/// Where a stored blob is, and the CRC-32C of its bytes as they were uploaded (the server
/// cannot decrypt, so this is how `verify` tells that a pack's bytes changed on disk).
#[derive(Clone, Debug)]
pub struct Location {
    pub pack_id: String,
    pub offset: u64,
    pub size: u64,
    pub checksum: u32,
}

pub fn kind_of(conn: &Conn, library_id: &str, id: &ObjectId) -> Result<Option<BlobKind>, DbError> {
    let code: Option<u8> = conn
        .query_row(
            "SELECT kind FROM objects WHERE library_id = ?1 AND id = ?2",
            params![library_id, id.as_bytes().as_slice()],
            |row| row.get(0),
        )
        .optional()?;
    code.map(|c| BlobKind::from_code(c).ok_or_else(|| DbError::Corrupt(format!("kind {c}"))))
        .transpose()
}

/// The ids among `ids` that the library does not hold whole: absent, or found damaged by
/// `verify` (so the client uploads them again, which heals them).
pub fn missing(conn: &Conn, library_id: &str, ids: &[ObjectId]) -> Result<Vec<ObjectId>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM objects WHERE library_id = ?1 AND id = ?2 AND damaged = 0",
    )?;
    let mut missing = Vec::new();
    for id in ids {
        if !stmt.exists(params![library_id, id.as_bytes().as_slice()])? {
            missing.push(*id);
        }
    }
    Ok(missing)
}

/// The ids among `ids` without any row (damaged ones have one: a new object may still
/// reference them).
pub fn absent(conn: &Conn, library_id: &str, ids: &[ObjectId]) -> Result<Vec<ObjectId>, DbError> {
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM objects WHERE library_id = ?1 AND id = ?2")?;
    let mut missing = Vec::new();
    for id in ids {
        if !stmt.exists(params![library_id, id.as_bytes().as_slice()])? {
            missing.push(*id);
        }
    }
    Ok(missing)
}

pub fn locate(
    conn: &Conn,
    library_id: &str,
    ids: &[ObjectId],
) -> Result<Vec<Option<Location>>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT pack_id, \"offset\", size, checksum FROM objects WHERE library_id = ?1 AND id = ?2",
    )?;
    ids.iter()
        .map(|id| {
            stmt.query_row(params![library_id, id.as_bytes().as_slice()], |row| {
                Ok(Location {
                    pack_id: row.get(0)?,
                    offset: row.get::<_, i64>(1)? as u64,
                    size: row.get::<_, i64>(2)? as u64,
                    checksum: row.get::<_, Option<u32>>(3)?.unwrap_or(0),
                })
            })
            .optional()
        })
        .collect()
}

pub fn insert_pack(conn: &Conn, library_id: &str, pack_id: &str, size: u64) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO packs (id, library_id, size, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![pack_id, library_id, size as i64, now()],
    )?;
    Ok(())
}

/// Records a stored object, or heals a damaged one with the new copy. False if the library
/// already had it whole (nothing changes then).
pub fn insert(
    conn: &Conn,
    library_id: &str,
    id: &ObjectId,
    kind: BlobKind,
    location: &Location,
) -> Result<bool, DbError> {
    let changed = conn.prepare_cached(
        "INSERT INTO objects (library_id, id, kind, size, pack_id, \"offset\", created_at, checksum) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (library_id, id) DO UPDATE SET size = excluded.size, \
         pack_id = excluded.pack_id, \"offset\" = excluded.\"offset\", checksum = excluded.checksum, \
         damaged = 0 WHERE objects.damaged = 1",
    )?
    .execute(params![
        library_id,
        id.as_bytes().as_slice(),
        kind.code(),
        location.size as i64,
        location.pack_id,
        location.offset as i64,
        now(),
        location.checksum,
    ])?;
    Ok(changed == 1)
}

pub fn insert_edges(
    conn: &Conn,
    library_id: &str,
    parent: &ObjectId,
    children: &[ObjectId],
) -> Result<(), DbError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO edges (library_id, parent, child) VALUES (?1, ?2, ?3) \
         ON CONFLICT DO NOTHING",
    )?;
    for child in children {
        stmt.execute(params![
            library_id,
            parent.as_bytes().as_slice(),
            child.as_bytes().as_slice()
        ])?;
    }
    Ok(())
}

pub fn insert_snapshot(
    conn: &Conn,
    library_id: &str,
    id: &ObjectId,
    meta: &SnapshotMeta,
    epoch: u32,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO snapshots (library_id, id, time_ns, parent, epoch, tag_macs) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        params![
            library_id,
            id.as_bytes().as_slice(),
            meta.time_ns,
            meta.parent.as_ref().map(|p| p.as_bytes().to_vec()),
            epoch,
            meta.tag_macs.join(","),
        ],
    )?;
    Ok(())
}

pub fn add_stored_bytes(conn: &Conn, library_id: &str, delta: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE libraries SET stored_bytes = stored_bytes + ?2 WHERE id = ?1",
        params![library_id, delta],
    )?;
    Ok(())
}

/// An object as `verify` sees it: id, pack, offset, size, checksum (none before checksums).
pub type Indexed = (Vec<u8>, String, u64, u64, Option<u32>);

/// Every object of a library with where it is, in pack order.
pub fn indexed(conn: &Conn, library_id: &str) -> Result<Vec<Indexed>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id, pack_id, \"offset\", size, checksum FROM objects WHERE library_id = ?1 \
         ORDER BY pack_id, \"offset\"",
    )?;
    let rows = stmt
        .query_map(params![library_id], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get::<_, i64>(2)? as u64,
                row.get::<_, i64>(3)? as u64,
                row.get(4)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Marks objects damaged: `missing` reports them from now on, so the next upload of the
/// same content stores it again.
pub fn mark_damaged(conn: &mut Conn, library_id: &str, ids: &[&[u8]]) -> Result<(), DbError> {
    let tx = super::immediate(conn)?;
    for id in ids {
        tx.execute(
            "UPDATE objects SET damaged = 1 WHERE library_id = ?1 AND id = ?2",
            params![library_id, id],
        )?;
    }
    tx.commit()?;
    Ok(())
}
