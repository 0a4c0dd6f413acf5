//! Sessions: opaque bearer tokens, stored only as their SHA-256 hash.

use rusqlite::{params, Connection, OptionalExtension};

use super::{now, random_id, DbError};

pub fn create(
    conn: &Connection,
    account_id: i64,
    token_hash: &[u8],
    client: Option<&str>,
) -> Result<String, DbError> {
    let id = random_id();
    let time = now();
    conn.execute(
        "INSERT INTO sessions (id, account_id, token_hash, client, created_at, last_seen) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![id, account_id, token_hash, client, time],
    )?;
    Ok(id)
}

/// The live session holding this token hash: `(session id, account id)`.
pub fn lookup(conn: &Connection, token_hash: &[u8]) -> Result<Option<(String, i64)>, DbError> {
    Ok(conn
        .query_row(
            "SELECT id, account_id FROM sessions WHERE token_hash = ?1 AND revoked_at IS NULL",
            [token_hash],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
}

pub fn revoke(conn: &Connection, session_id: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![session_id, now()],
    )?;
    Ok(())
}
