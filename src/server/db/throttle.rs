//! Counts of failed attempts per throttle key (see `server::throttle`).

use crate::db::{params, Conn, OptionalExtension};

use super::DbError;

/// Failures so far under `key`: `(failures, time of the last in ms since the epoch)`.
pub fn get(conn: &Conn, key: &[u8]) -> Result<Option<(u32, i64)>, DbError> {
    conn.query_row(
        "SELECT failures, last_failure_ms FROM login_throttle_ms WHERE key = ?1",
        params![key],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
}

pub fn add_failure(conn: &Conn, key: &[u8], at: i64) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO login_throttle_ms (key, failures, last_failure_ms) VALUES (?1, 1, ?2) \
         ON CONFLICT (key) DO UPDATE SET failures = login_throttle_ms.failures + 1, last_failure_ms = ?2",
        params![key, at],
    )?;
    Ok(())
}

/// Takes back one failure (an attempt counted in advance that succeeded).
pub fn remove_failure(conn: &Conn, key: &[u8]) -> Result<(), DbError> {
    conn.execute(
        "UPDATE login_throttle_ms SET failures = CASE WHEN failures > 1 THEN failures - 1 ELSE 0 END WHERE key = ?1",
        params![key],
    )?;
    Ok(())
}

pub fn clear(conn: &Conn, key: &[u8]) -> Result<(), DbError> {
    conn.execute("DELETE FROM login_throttle_ms WHERE key = ?1", params![key])?;
    Ok(())
}

pub fn purge_before(conn: &Conn, cutoff_ms: i64) -> Result<usize, DbError> {
    conn.execute(
        "DELETE FROM login_throttle_ms WHERE last_failure_ms < ?1",
        params![cutoff_ms],
    )
}
