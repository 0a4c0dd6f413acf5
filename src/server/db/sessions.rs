//! Sessions: opaque bearer tokens, stored only as their SHA-256 hash, and each session's
//! record: when, from where, how many requests and bytes, how long. Never what was done.

use crate::db::{params, Conn, OptionalExtension, Row};

use super::{now, random_id, DbError};
pub use crate::api::account::SessionRecord as Record;

/// Starts a session; returns its id and its key share (the key the client seals the
/// account key under in its session file; dropped when the session ends).
pub fn create(
    conn: &Conn,
    account_id: i64,
    token_hash: &[u8],
    client: Option<&str>,
    address: Option<&str>,
) -> Result<(String, [u8; 32]), DbError> {
    let id = random_id();
    let time = now();
    let share: [u8; 32] = rand::random();
    conn.execute(
        "INSERT INTO sessions (id, account_id, token_hash, client, address, created_at, \
         last_seen, key_share) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
        params![
            id,
            account_id,
            token_hash,
            client,
            address,
            time,
            &share[..]
        ],
    )?;
    Ok((id, share))
}

/// The key share of a live session; one is made for a session from before key shares,
/// so its client can seal the key it holds in the clear.
pub fn key_share(conn: &Conn, session_id: &str) -> Result<Option<Vec<u8>>, DbError> {
    let made: [u8; 32] = rand::random();
    conn.execute(
        "UPDATE sessions SET key_share = ?2 WHERE id = ?1 AND revoked_at IS NULL \
         AND key_share IS NULL",
        params![session_id, &made[..]],
    )?;
    Ok(conn
        .query_row(
            "SELECT key_share FROM sessions WHERE id = ?1 AND revoked_at IS NULL",
            params![session_id],
            |row| row.get(0),
        )
        .optional()?
        .flatten())
}

/// A live (not revoked) session found by its token hash.
pub struct Live {
    pub id: String,
    pub account_id: i64,
    pub created_at: i64,
    pub last_seen: i64,
}

pub fn lookup(conn: &Conn, token_hash: &[u8]) -> Result<Option<Live>, DbError> {
    conn.query_row(
        "SELECT id, account_id, created_at, last_seen FROM sessions \
             WHERE token_hash = ?1 AND revoked_at IS NULL",
        params![token_hash],
        |row| {
            Ok(Live {
                id: row.get(0)?,
                account_id: row.get(1)?,
                created_at: row.get(2)?,
                last_seen: row.get(3)?,
            })
        },
    )
    .optional()
}

pub fn revoke(conn: &Conn, session_id: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE sessions SET revoked_at = ?2, key_share = NULL WHERE id = ?1 \
         AND revoked_at IS NULL",
        params![session_id, now()],
    )?;
    Ok(())
}

/// Revokes one of the account's sessions; false if it has no such session.
pub fn revoke_own(conn: &Conn, account_id: i64, session_id: &str) -> Result<bool, DbError> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sessions WHERE id = ?1 AND account_id = ?2",
            params![session_id, account_id],
            |row| row.get(0),
        )
        .optional()?;
    if found.is_none() {
        return Ok(false);
    }
    revoke(conn, session_id)?;
    Ok(true)
}

/// Revokes every live session of the account except `keep`; returns how many.
pub fn revoke_others(conn: &Conn, account_id: i64, keep: Option<&str>) -> Result<usize, DbError> {
    conn.execute(
        "UPDATE sessions SET revoked_at = ?3, key_share = NULL \
         WHERE account_id = ?1 AND revoked_at IS NULL AND id IS DISTINCT FROM ?2",
        params![account_id, keep, now()],
    )
}

/// Usage gathered in memory since the last flush.
pub struct Usage<'a> {
    pub address: &'a str,
    pub requests: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub transfer_ms: u64,
    pub last_seen: i64,
}

pub fn add_usage(conn: &Conn, session_id: &str, usage: &Usage<'_>) -> Result<(), DbError> {
    conn.execute(
        "UPDATE sessions SET address = ?2, requests = requests + ?3, bytes_up = bytes_up + ?4, \
         bytes_down = bytes_down + ?5, transfer_ms = transfer_ms + ?6, \
         last_seen = CASE WHEN last_seen > ?7 THEN last_seen ELSE ?7 END WHERE id = ?1",
        params![
            session_id,
            usage.address,
            usage.requests as i64,
            usage.bytes_up as i64,
            usage.bytes_down as i64,
            usage.transfer_ms as i64,
            usage.last_seen
        ],
    )?;
    Ok(())
}

fn record(row: &Row<'_>) -> Result<Record, crate::db::DbError> {
    Ok(Record {
        id: row.get(0)?,
        current: false,
        client: row.get(1)?,
        address: row.get(2)?,
        created_at: row.get(3)?,
        last_seen: row.get(4)?,
        revoked_at: row.get(5)?,
        requests: row.get(6)?,
        bytes_up: row.get(7)?,
        bytes_down: row.get(8)?,
        transfer_ms: row.get(9)?,
    })
}

pub fn records_for(conn: &Conn, account_id: i64) -> Result<Vec<Record>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id, client, address, created_at, last_seen, revoked_at, requests, bytes_up, \
         bytes_down, transfer_ms FROM sessions WHERE account_id = ?1 ORDER BY created_at, id",
    )?;
    let rows = stmt
        .query_map(params![account_id], record)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Drops the key shares of sessions that timed out: idle since before `idle_cutoff`, or
/// begun before `absolute_cutoff`. A copied session file then opens nothing, as after a
/// revocation; the session's record stays for its retention period.
pub fn drop_expired_shares(
    conn: &Conn,
    idle_cutoff: i64,
    absolute_cutoff: i64,
) -> Result<usize, DbError> {
    conn.execute(
        "UPDATE sessions SET key_share = NULL WHERE key_share IS NOT NULL \
         AND (last_seen < ?1 OR created_at < ?2)",
        params![idle_cutoff, absolute_cutoff],
    )
}

/// Drops one session's key share (it was found timed out).
pub fn drop_share(conn: &Conn, session_id: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE sessions SET key_share = NULL WHERE id = ?1",
        params![session_id],
    )?;
    Ok(())
}

/// Deletes records of sessions last used before `cutoff`; returns how many.
pub fn purge_before(conn: &Conn, cutoff: i64) -> Result<usize, DbError> {
    conn.execute("DELETE FROM sessions WHERE last_seen < ?1", params![cutoff])
}
