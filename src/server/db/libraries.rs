//! Libraries, their members and their heads.

use rusqlite::{params, Connection, OptionalExtension};

use super::{now, random_id, DbError};
use crate::api::account::{LibrarySummary, Membership};
use crate::api::types::{LibraryInfo, Permission, SnapshotRecord};
use crate::crypto::ObjectId;

/// How the caller stands towards a library.
pub enum Access {
    /// No library has this id.
    Unknown,
    /// It exists, but the caller is not a member.
    NotMember,
    Member {
        permission: Permission,
        owner_id: i64,
    },
}

pub fn create(
    conn: &Connection,
    owner_id: i64,
    name: &str,
    wrapped_key: &[u8],
) -> Result<String, DbError> {
    let id = random_id();
    conn.execute(
        "INSERT INTO libraries (id, owner_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, owner_id, name, now()],
    )?;
    conn.execute(
        "INSERT INTO library_members (library_id, account_id, permission, wrapped_key) \
         VALUES (?1, ?2, ?3, ?4)",
        params![id, owner_id, Permission::Owner.as_str(), wrapped_key],
    )?;
    Ok(id)
}

pub fn exists_for_owner(conn: &Connection, owner_id: i64, name: &str) -> Result<bool, DbError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM libraries WHERE owner_id = ?1 AND name = ?2",
            params![owner_id, name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn object_id(bytes: Option<Vec<u8>>) -> Result<Option<ObjectId>, DbError> {
    bytes
        .map(|b| ObjectId::from_slice(&b).ok_or_else(|| DbError::Corrupt("object id".into())))
        .transpose()
}

fn permission(text: &str) -> Result<Permission, DbError> {
    Permission::parse(text).ok_or_else(|| DbError::Corrupt(format!("permission {text}")))
}

/// Every library the account can see, its own first.
pub fn list_for(conn: &Connection, account_id: i64) -> Result<Vec<LibraryInfo>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT l.id, l.name, a.email, m.permission, l.head, m.wrapped_key, l.stored_bytes \
         FROM library_members m JOIN libraries l ON l.id = m.library_id \
         JOIN accounts a ON a.id = l.owner_id \
         WHERE m.account_id = ?1 ORDER BY l.owner_id != ?1, l.name",
    )?;
    let rows = stmt
        .query_map([account_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<Vec<u8>>>(4)?,
                row.get::<_, Vec<u8>>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, name, owner_email, perm, head, wrapped_key, stored)| {
            Ok(LibraryInfo {
                id,
                name,
                owner_email,
                permission: permission(&perm)?,
                head: object_id(head)?,
                wrapped_key,
                stored_bytes: stored.max(0) as u64,
            })
        })
        .collect()
}

pub fn info_for(
    conn: &Connection,
    library_id: &str,
    account_id: i64,
) -> Result<Option<LibraryInfo>, DbError> {
    Ok(list_for(conn, account_id)?
        .into_iter()
        .find(|l| l.id == library_id))
}

pub fn access(conn: &Connection, library_id: &str, account_id: i64) -> Result<Access, DbError> {
    let owner: Option<i64> = conn
        .query_row(
            "SELECT owner_id FROM libraries WHERE id = ?1",
            [library_id],
            |row| row.get(0),
        )
        .optional()?;
    let Some(owner_id) = owner else {
        return Ok(Access::Unknown);
    };
    let perm: Option<String> = conn
        .query_row(
            "SELECT permission FROM library_members WHERE library_id = ?1 AND account_id = ?2",
            params![library_id, account_id],
            |row| row.get(0),
        )
        .optional()?;
    Ok(match perm {
        None => Access::NotMember,
        Some(text) => Access::Member {
            permission: permission(&text)?,
            owner_id,
        },
    })
}

pub fn head(conn: &Connection, library_id: &str) -> Result<Option<ObjectId>, DbError> {
    let head: Option<Vec<u8>> = conn.query_row(
        "SELECT head FROM libraries WHERE id = ?1",
        [library_id],
        |row| row.get(0),
    )?;
    object_id(head)
}

/// Moves the head from `expected` to `new` if it is still `expected`, and marks the new
/// snapshot committed. On a mismatch returns the actual head and changes nothing.
pub fn compare_and_swap_head(
    conn: &mut Connection,
    library_id: &str,
    expected: Option<&ObjectId>,
    new: &ObjectId,
) -> Result<Result<(), Option<ObjectId>>, DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current = head(&tx, library_id)?;
    if current.as_ref() != expected {
        return Ok(Err(current));
    }
    tx.execute(
        "UPDATE libraries SET head = ?2 WHERE id = ?1",
        params![library_id, new.as_bytes().as_slice()],
    )?;
    tx.execute(
        "UPDATE snapshots SET committed = 1 WHERE library_id = ?1 AND id = ?2",
        params![library_id, new.as_bytes().as_slice()],
    )?;
    tx.commit()?;
    Ok(Ok(()))
}

/// The snapshots that have been a head of the library, oldest first.
pub fn committed_snapshots(
    conn: &Connection,
    library_id: &str,
) -> Result<Vec<SnapshotRecord>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id, time_ns, parent FROM snapshots WHERE library_id = ?1 AND committed = 1 \
         ORDER BY time_ns, id",
    )?;
    let rows = stmt
        .query_map([library_id], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, time_ns, parent)| {
            Ok(SnapshotRecord {
                id: object_id(Some(id))?.expect("some in, some out"),
                time_ns,
                parent: object_id(parent)?,
            })
        })
        .collect()
}

/// Deletes every library an account owns (see [`delete`]).
pub fn delete_owned(conn: &Connection, account_id: i64) -> Result<(), DbError> {
    let mut stmt = conn.prepare("SELECT id FROM libraries WHERE owner_id = ?1")?;
    let owned: Vec<String> = stmt
        .query_map([account_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for library in owned {
        delete(conn, &library)?;
    }
    Ok(())
}

/// Every library id, for collection to tell live data from deleted.
pub fn all_ids(conn: &Connection) -> Result<std::collections::HashSet<String>, DbError> {
    let mut stmt = conn.prepare("SELECT id FROM libraries")?;
    let rows = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Removes a library and everything recorded about its objects; its pack files become
/// garbage for collection.
pub fn delete(conn: &Connection, library_id: &str) -> Result<(), DbError> {
    for table in ["objects", "edges", "snapshots", "packs", "library_members"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE library_id = ?1"),
            [library_id],
        )?;
    }
    conn.execute("DELETE FROM libraries WHERE id = ?1", [library_id])?;
    Ok(())
}

/// The account's own libraries as personal data (names and sizes; contents are encrypted).
pub fn export_owned(conn: &Connection, account_id: i64) -> Result<Vec<LibrarySummary>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT name, stored_bytes, created_at FROM libraries WHERE owner_id = ?1 ORDER BY name",
    )?;
    let rows = stmt
        .query_map([account_id], |row| {
            Ok(LibrarySummary {
                name: row.get(0)?,
                stored_bytes: row.get(1)?,
                created_at: row.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn export_memberships(conn: &Connection, account_id: i64) -> Result<Vec<Membership>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT l.name, a.email, m.permission FROM library_members m \
         JOIN libraries l ON l.id = m.library_id JOIN accounts a ON a.id = l.owner_id \
         WHERE m.account_id = ?1 ORDER BY l.name",
    )?;
    let rows = stmt
        .query_map([account_id], |row| {
            Ok(Membership {
                library: row.get(0)?,
                owner_email: row.get(1)?,
                permission: row.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
