//! Links: who made them, which tree they reach, their password hash, expiry and revocation,
//! and the short-lived tokens of visitors who opened one.

use std::collections::HashSet;

use crate::db::{params, Conn, OptionalExtension};

use super::{now, DbError};
use crate::api::links::LinkInfo;
use crate::crypto::ObjectId;

pub struct NewLink<'a> {
    pub id: &'a str,
    pub library_id: &'a str,
    pub account_id: i64,
    pub root: &'a ObjectId,
    pub follow: bool,
    pub pointer: &'a [u8],
    pub label_sealed: &'a [u8],
    pub password_hash: Option<&'a str>,
    pub expires_at: Option<i64>,
}

pub fn insert(conn: &Conn, link: &NewLink<'_>) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO links (id, library_id, account_id, root, follow, pointer, label_sealed, \
         password_hash, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            link.id,
            link.library_id,
            link.account_id,
            link.root.as_bytes().as_slice(),
            link.follow,
            link.pointer,
            link.label_sealed,
            link.password_hash,
            link.expires_at,
            now(),
        ],
    )?;
    Ok(())
}

pub fn exists(conn: &Conn, id: &str) -> Result<bool, DbError> {
    Ok(conn
        .query_row("SELECT 1 FROM links WHERE id = ?1", params![id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// A link as the server needs it to serve a visitor.
pub struct Link {
    pub id: String,
    pub library_id: String,
    pub account_id: i64,
    pub root: ObjectId,
    pub follow: bool,
    pub pointer: Vec<u8>,
    pub password_hash: Option<String>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

fn object_id(bytes: Vec<u8>) -> Result<ObjectId, DbError> {
    ObjectId::from_slice(&bytes).ok_or_else(|| DbError::Corrupt("link root".into()))
}

pub fn get(conn: &Conn, id: &str) -> Result<Option<Link>, DbError> {
    let row = conn
        .query_row(
            "SELECT id, library_id, account_id, root, follow, pointer, password_hash, \
             expires_at, revoked_at FROM links WHERE id = ?1",
            params![id],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                    row.get::<_, bool>(4)?,
                    row.get::<_, Vec<u8>>(5)?,
                    row.get::<_, Option<String>>(6)?,
                    row.get::<_, Option<i64>>(7)?,
                    row.get::<_, Option<i64>>(8)?,
                ))
            },
        )
        .optional()?;
    row.map(
        |(
            id,
            library_id,
            account_id,
            root,
            follow,
            pointer,
            password_hash,
            expires_at,
            revoked_at,
        )| {
            Ok(Link {
                id,
                library_id,
                account_id,
                root: object_id(root)?,
                follow,
                pointer,
                password_hash,
                expires_at,
                revoked_at,
            })
        },
    )
    .transpose()
}

/// The links an account made, newest first.
pub fn list_for(conn: &Conn, account_id: i64) -> Result<Vec<LinkInfo>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id, library_id, follow, label_sealed, password_hash IS NOT NULL, created_at, \
         expires_at, revoked_at FROM links WHERE account_id = ?1 ORDER BY created_at DESC, id",
    )?;
    let rows = stmt
        .query_map(params![account_id], |row| {
            Ok(LinkInfo {
                id: row.get(0)?,
                library_id: row.get(1)?,
                follow: row.get(2)?,
                label_sealed: row.get(3)?,
                has_password: row.get(4)?,
                created_at: row.get(5)?,
                expires_at: row.get(6)?,
                revoked_at: row.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Marks a link revoked (its visitors' tokens go with it); false if it was not the
/// account's or was revoked before.
pub fn revoke(conn: &Conn, id: &str, account_id: i64) -> Result<bool, DbError> {
    let changed = conn.execute(
        "UPDATE links SET revoked_at = ?3 WHERE id = ?1 AND account_id = ?2 \
         AND revoked_at IS NULL",
        params![id, account_id, now()],
    )?;
    conn.execute("DELETE FROM link_sessions WHERE link_id = ?1", params![id])?;
    Ok(changed == 1)
}

pub fn set_pointer(conn: &Conn, id: &str, root: &ObjectId, pointer: &[u8]) -> Result<(), DbError> {
    conn.execute(
        "UPDATE links SET root = ?2, pointer = ?3 WHERE id = ?1",
        params![id, root.as_bytes().as_slice(), pointer],
    )?;
    Ok(())
}

pub fn add_session(
    conn: &Conn,
    token_hash: &[u8],
    link_id: &str,
    expires_at: i64,
) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM link_sessions WHERE expires_at < ?1",
        params![now()],
    )?;
    conn.execute(
        "INSERT INTO link_sessions (token_hash, link_id, expires_at) VALUES (?1, ?2, ?3)",
        params![token_hash, link_id, expires_at],
    )?;
    Ok(())
}

/// The link a visitor's token opened, if the token is known and not expired.
pub fn session(conn: &Conn, token_hash: &[u8]) -> Result<Option<String>, DbError> {
    conn.query_row(
        "SELECT link_id FROM link_sessions WHERE token_hash = ?1 AND expires_at >= ?2",
        params![token_hash, now()],
        |row| row.get(0),
    )
    .optional()
}

/// Every object reachable from `root` (itself included: a root the server never indexed
/// reaches nothing) through the edges the server recorded at upload.
pub fn reachable(
    conn: &Conn,
    library_id: &str,
    root: &ObjectId,
) -> Result<HashSet<ObjectId>, DbError> {
    let mut stmt = conn.prepare(
        "WITH RECURSIVE reach(id) AS ( \
           SELECT id FROM objects WHERE library_id = ?1 AND id = ?2 \
           UNION SELECT e.child FROM reach r CROSS JOIN edges e \
             WHERE e.library_id = ?1 AND e.parent = r.id \
         ) SELECT id FROM reach",
    )?;
    let rows = stmt
        .query_map(params![library_id, root.as_bytes().as_slice()], |row| {
            row.get::<_, Vec<u8>>(0)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(object_id).collect()
}

/// The account's links as personal data (ids, dates; labels are sealed to the account).
pub fn export(conn: &Conn, account_id: i64) -> Result<Vec<LinkInfo>, DbError> {
    list_for(conn, account_id)
}
