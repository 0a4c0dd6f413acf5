//! Retention policies, forgetting snapshots, and the queries collection is made of: what is
//! live, what may go, and where the packs stand.

use std::collections::HashSet;

use crate::db::{params, Conn, OptionalExtension};

use super::{now, DbError};
use crate::crypto::ObjectId;
use crate::model::retention::Policy;

/// What the server keeps per object and per edge in its index, charged to the owner's quota
/// beside the blob bytes, so nobody stores unbounded metadata for free.
pub const OBJECT_ROW_BYTES: u64 = 100;
pub const EDGE_ROW_BYTES: u64 = 64;

pub fn policy(conn: &Conn, library_id: &str) -> Result<Policy, DbError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT policy FROM library_policies WHERE library_id = ?1",
            params![library_id],
            |row| row.get(0),
        )
        .optional()?;
    match text {
        None => Ok(Policy::default()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| DbError::Corrupt(format!("retention policy: {e}"))),
    }
}

pub fn set_policy(conn: &Conn, library_id: &str, policy: &Policy) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO library_policies (library_id, policy, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (library_id) DO UPDATE SET policy = ?2, updated_at = ?3",
        params![
            library_id,
            serde_json::to_string(policy).expect("serialises"),
            now()
        ],
    )?;
    Ok(())
}

/// A snapshot retention decides about.
pub struct Listed {
    pub id: ObjectId,
    pub time_ns: i64,
    pub parent: Option<ObjectId>,
    /// Keyed hashes of its tags (the server never sees the tags).
    pub tag_macs: Vec<String>,
}

/// The listed snapshots (those that became a head and are not forgotten), oldest first:
/// what `snapshots` shows and what retention decides about.
pub fn retained(conn: &Conn, library_id: &str) -> Result<Vec<Listed>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id, time_ns, parent, tag_macs FROM snapshots WHERE library_id = ?1 \
         AND committed = 1 AND forgotten_at IS NULL ORDER BY time_ns, id",
    )?;
    let rows = stmt
        .query_map(params![library_id], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<Vec<u8>>>(2)?,
                row.get::<_, String>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let id = |bytes: &[u8]| {
        ObjectId::from_slice(bytes).ok_or_else(|| DbError::Corrupt("snapshot".into()))
    };
    rows.into_iter()
        .map(|(snapshot, time_ns, parent, macs)| {
            Ok(Listed {
                id: id(&snapshot)?,
                time_ns,
                parent: parent.as_deref().map(id).transpose()?,
                tag_macs: macs
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// Marks snapshots forgotten: no longer listed, and collected once nothing else needs
/// their objects. Returns how many changed.
pub fn forget(conn: &Conn, library_id: &str, ids: &[ObjectId]) -> Result<usize, DbError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE snapshots SET forgotten_at = ?3 WHERE library_id = ?1 AND id = ?2 \
         AND committed = 1 AND forgotten_at IS NULL",
    )?;
    let at = now();
    let mut changed = 0;
    for id in ids {
        changed += stmt.execute(params![library_id, id.as_bytes().as_slice(), at])?;
    }
    Ok(changed)
}

/// `CROSS JOIN` keeps SQLite's join order as written: each queued object, then its edges
/// by index; the other order scans every edge for every object (minutes on 100,000).
///
/// Every object still needed: reachable from the head, from snapshots that are kept, from
/// trees a mount holds (files are open inside a snapshot), and from objects written or
/// reused after `cutoff` (an upload in flight may reference them).
pub fn live(conn: &Conn, library_id: &str, cutoff: i64) -> Result<HashSet<Vec<u8>>, DbError> {
    let mut stmt = conn.prepare(
        "WITH RECURSIVE live(id) AS ( \
           SELECT s.id FROM snapshots s WHERE s.library_id = ?1 AND s.committed = 1 \
             AND s.forgotten_at IS NULL \
           UNION SELECT head FROM libraries WHERE id = ?1 AND head IS NOT NULL \
           UNION SELECT root FROM holds WHERE library_id = ?1 AND expires_at > ?3 \
           UNION SELECT id FROM objects WHERE library_id = ?1 \
             AND (created_at > ?2 OR touched_at > ?2) \
           UNION SELECT e.child FROM live l CROSS JOIN edges e \
             WHERE e.library_id = ?1 AND e.parent = l.id \
         ) SELECT id FROM live",
    )?;
    let rows = stmt
        .query_map(params![library_id, cutoff, now()], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// An object collection may delete.
pub struct Dead {
    pub id: Vec<u8>,
    pub size: u64,
}

/// Objects outside `live`, each with its blob size.
pub fn dead(conn: &Conn, library_id: &str, live: &HashSet<Vec<u8>>) -> Result<Vec<Dead>, DbError> {
    let mut stmt = conn.prepare("SELECT id, size FROM objects WHERE library_id = ?1")?;
    let rows = stmt
        .query_map(params![library_id], |row| {
            Ok(Dead {
                id: row.get(0)?,
                size: row.get::<_, i64>(1)? as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows.into_iter().filter(|d| !live.contains(&d.id)).collect())
}

/// Deletes `dead` objects that are still untouched since `cutoff` (an upload may have
/// reused one since it was found dead: then it stays), with their edges and snapshot rows,
/// and takes their bytes off the library's usage. Returns (objects, blob bytes) deleted.
pub fn sweep(
    conn: &Conn,
    library_id: &str,
    dead: &[Dead],
    cutoff: i64,
) -> Result<(u64, u64), DbError> {
    let mut delete = conn.prepare_cached(
        "DELETE FROM objects WHERE library_id = ?1 AND id = ?2 AND created_at <= ?3 \
         AND touched_at <= ?3",
    )?;
    let mut edges =
        conn.prepare_cached("DELETE FROM edges WHERE library_id = ?1 AND parent = ?2")?;
    let mut snapshots =
        conn.prepare_cached("DELETE FROM snapshots WHERE library_id = ?1 AND id = ?2")?;
    let (mut objects, mut bytes, mut charged) = (0u64, 0u64, 0u64);
    for object in dead {
        if delete.execute(params![library_id, object.id, cutoff])? == 0 {
            continue;
        }
        let edge_rows = edges.execute(params![library_id, object.id])? as u64;
        snapshots.execute(params![library_id, object.id])?;
        objects += 1;
        bytes += object.size;
        charged += object.size + OBJECT_ROW_BYTES + edge_rows * EDGE_ROW_BYTES;
    }
    super::objects::add_stored_bytes(conn, library_id, -(charged as i64))?;
    Ok((objects, bytes))
}

/// A pack with the bytes its objects still use.
pub struct PackUse {
    pub id: String,
    pub size: u64,
    pub live: u64,
}

pub fn pack_use(conn: &Conn, library_id: &str) -> Result<Vec<PackUse>, DbError> {
    // One pass over the objects, grouped by pack, then joined here: a join in SQL ran a
    // scan of the library's objects per pack (half a minute for 3,000 packs).
    let mut live: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut stmt = conn
        .prepare("SELECT pack_id, CAST(SUM(size) AS BIGINT) FROM objects WHERE library_id = ?1 GROUP BY pack_id")?;
    for row in stmt.query_map(params![library_id], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
    })? {
        let (pack, bytes) = row?;
        live.insert(pack, bytes);
    }
    let mut stmt = conn.prepare("SELECT id, size FROM packs WHERE library_id = ?1")?;
    let rows = stmt
        .query_map(params![library_id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .map(|(id, size)| PackUse {
            live: live.get(&id).copied().unwrap_or(0),
            id,
            size,
        })
        .collect())
}

/// The objects of a pack: (id, offset, size), in pack order.
pub fn pack_objects(
    conn: &Conn,
    library_id: &str,
    pack_id: &str,
) -> Result<Vec<(Vec<u8>, u64, u64)>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id, \"offset\", size FROM objects WHERE library_id = ?1 AND pack_id = ?2 \
         ORDER BY \"offset\"",
    )?;
    let rows = stmt
        .query_map(params![library_id, pack_id], |row| {
            Ok((
                row.get(0)?,
                row.get::<_, i64>(1)? as u64,
                row.get::<_, i64>(2)? as u64,
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Points the objects of `old` that still live there at their place in `new`, records `new`
/// and retires `old` (its file goes once no reader can still be using it).
pub fn switch_pack(
    conn: &Conn,
    library_id: &str,
    old: &str,
    new: &str,
    new_size: u64,
    moved: &[(Vec<u8>, u64)],
) -> Result<(), DbError> {
    super::objects::insert_pack(conn, library_id, new, new_size)?;
    let mut stmt = conn.prepare_cached(
        "UPDATE objects SET pack_id = ?3, \"offset\" = ?4 WHERE library_id = ?1 AND id = ?2 \
         AND pack_id = ?5",
    )?;
    for (id, offset) in moved {
        stmt.execute(params![library_id, id, new, *offset as i64, old])?;
    }
    retire_pack(conn, library_id, old)
}

/// Drops a pack's row; its file is deleted later by [`retired_before`]'s caller.
pub fn retire_pack(conn: &Conn, library_id: &str, pack_id: &str) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM packs WHERE library_id = ?1 AND id = ?2",
        params![library_id, pack_id],
    )?;
    conn.execute(
        "INSERT INTO retired_packs (library_id, pack_id, retired_at) \
         VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![library_id, pack_id, now()],
    )?;
    Ok(())
}

/// Retired packs of a library whose files may go now.
pub fn retired_before(conn: &Conn, library_id: &str, before: i64) -> Result<Vec<String>, DbError> {
    let mut stmt = conn
        .prepare("SELECT pack_id FROM retired_packs WHERE library_id = ?1 AND retired_at <= ?2")?;
    let rows = stmt
        .query_map(params![library_id, before], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn forget_retired(conn: &Conn, library_id: &str, pack_id: &str) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM retired_packs WHERE library_id = ?1 AND pack_id = ?2",
        params![library_id, pack_id],
    )?;
    Ok(())
}

/// Every pack id the database knows for a library, live or retired (files not among them
/// are orphans: a crash between writing a pack and committing its rows).
pub fn known_packs(conn: &Conn, library_id: &str) -> Result<HashSet<String>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id FROM packs WHERE library_id = ?1 \
         UNION SELECT pack_id FROM retired_packs WHERE library_id = ?1",
    )?;
    let rows = stmt
        .query_map(params![library_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Library ids, with the owner's e-mail, for collection and usage reports.
pub fn libraries(conn: &Conn) -> Result<Vec<(String, String)>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT l.id, a.email FROM libraries l JOIN accounts a ON a.id = l.owner_id \
         ORDER BY a.email, l.created_at",
    )?;
    let rows = stmt
        .query_map(params![], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// How many mounts of one account may hold trees of one library at once: each holds at
/// most one request's ids, so what a member keeps alive at the owner's cost is bounded.
pub const HOLDERS_PER_ACCOUNT: i64 = 4;

/// Replaces what `holder` (one mount of `account_id`) holds in a library: trees with files
/// open inside, kept from collection until `expires_at` unless renewed. `false` (nothing
/// changed) when the account already has [`HOLDERS_PER_ACCOUNT`] other holders there.
pub fn set_holds(
    conn: &Conn,
    library_id: &str,
    account_id: i64,
    holder: &str,
    roots: &[ObjectId],
    expires_at: i64,
) -> Result<bool, DbError> {
    conn.execute("DELETE FROM holds WHERE expires_at <= ?1", params![now()])?;
    let others: i64 = conn.query_row(
        "SELECT COUNT(DISTINCT holder) FROM holds WHERE library_id = ?1 AND account_id = ?2 \
         AND holder != ?3",
        params![library_id, account_id, holder],
        |row| row.get(0),
    )?;
    if others >= HOLDERS_PER_ACCOUNT {
        return Ok(false);
    }
    conn.execute(
        "DELETE FROM holds WHERE library_id = ?1 AND holder = ?2",
        params![library_id, holder],
    )?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO holds (library_id, holder, root, expires_at, account_id) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (library_id, holder, root) \
         DO UPDATE SET expires_at = excluded.expires_at, account_id = excluded.account_id",
    )?;
    for root in roots {
        stmt.execute(params![
            library_id,
            holder,
            root.as_bytes().as_slice(),
            expires_at,
            account_id
        ])?;
    }
    Ok(true)
}

/// The holds `account_id`'s mounts set, for its export: library, holder, root, expiry.
pub fn holds_of(conn: &Conn, account_id: i64) -> Result<Vec<crate::api::account::Hold>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT library_id, holder, root, expires_at FROM holds WHERE account_id = ?1 \
         ORDER BY library_id, holder",
    )?;
    let rows = stmt
        .query_map(params![account_id], |row| {
            Ok(crate::api::account::Hold {
                library_id: row.get(0)?,
                holder: row.get(1)?,
                root: hex::encode(row.get::<_, Vec<u8>>(2)?),
                expires_at: row.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Marks objects reused now (a `missing` answer said they exist, or a new object references
/// them), so a collection under way does not delete them.
pub fn touch(conn: &Conn, library_id: &str, ids: &[ObjectId]) -> Result<(), DbError> {
    let at = now();
    let mut stmt = conn.prepare_cached(
        "UPDATE objects SET touched_at = ?3 WHERE library_id = ?1 AND id = ?2 AND touched_at < ?3",
    )?;
    for id in ids {
        stmt.execute(params![library_id, id.as_bytes().as_slice(), at])?;
    }
    Ok(())
}
