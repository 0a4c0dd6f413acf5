//! Libraries, their members, key epochs and heads.
//!
//! The server keeps what it needs to enforce sharing and nothing it could read: names are
//! sealed by clients, keys travel as grants boxed between accounts, and each epoch's link to
//! the one before it is sealed under that epoch's key.

use crate::db::{params, Conn, OptionalExtension};

use super::{now, DbError};
use crate::api::account::{LibrarySummary, Membership};
use crate::api::types::{ChainLink, LibraryInfo, MemberInfo, Permission, SnapshotRecord};
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

/// A new library at epoch 1, its owner the first member.
pub fn create(
    conn: &Conn,
    id: &str,
    owner_id: i64,
    name_sealed: &[u8],
    grant: &[u8],
) -> Result<(), DbError> {
    let at = now();
    conn.execute(
        "INSERT INTO libraries (id, owner_id, name_sealed, name_epoch, epoch, created_at) \
         VALUES (?1, ?2, ?3, 1, 1, ?4)",
        params![id, owner_id, name_sealed, at],
    )?;
    conn.execute(
        "INSERT INTO library_epochs (library_id, epoch, link, created_at) VALUES (?1, 1, NULL, ?2)",
        params![id, at],
    )?;
    add_member(conn, id, owner_id, Permission::Owner, 1, grant)
}

pub fn exists(conn: &Conn, library_id: &str) -> Result<bool, DbError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM libraries WHERE id = ?1",
            params![library_id],
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

/// Links from each epoch after the first to the one before it, oldest first.
fn chain(conn: &Conn, library_id: &str) -> Result<Vec<ChainLink>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT epoch, link FROM library_epochs WHERE library_id = ?1 AND link IS NOT NULL \
         ORDER BY epoch",
    )?;
    let rows = stmt
        .query_map(params![library_id], |row| {
            Ok(ChainLink {
                epoch: row.get(0)?,
                link: row.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Every library the account can see, its own first.
pub fn list_for(conn: &Conn, account_id: i64) -> Result<Vec<LibraryInfo>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT l.id, l.name_sealed, l.name_epoch, a.email, a.public_key, m.permission, l.head, \
         l.stored_bytes, l.epoch, m.key_grant, m.grant_epoch, l.rotate \
         FROM library_members m JOIN libraries l ON l.id = m.library_id \
         JOIN accounts a ON a.id = l.owner_id \
         WHERE m.account_id = ?1 ORDER BY l.owner_id != ?1, l.created_at, l.id",
    )?;
    let rows = stmt
        .query_map(params![account_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, u32>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Vec<u8>>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, Option<Vec<u8>>>(6)?,
                row.get::<_, i64>(7)?,
                row.get::<_, u32>(8)?,
                row.get::<_, Vec<u8>>(9)?,
                row.get::<_, u32>(10)?,
                row.get::<_, bool>(11)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(
                id,
                name_sealed,
                name_epoch,
                owner_email,
                owner_public_key,
                perm,
                head,
                stored,
                epoch,
                grant,
                grant_epoch,
                rotate,
            )| {
                let permission = permission(&perm)?;
                Ok(LibraryInfo {
                    chain: chain(conn, &id)?,
                    id,
                    name_sealed,
                    name_epoch,
                    owner_email,
                    owner_public_key,
                    head: object_id(head)?,
                    stored_bytes: stored.max(0) as u64,
                    epoch,
                    grant,
                    grant_epoch,
                    rotate: rotate && permission == Permission::Owner,
                    permission,
                })
            },
        )
        .collect()
}

pub fn info_for(
    conn: &Conn,
    library_id: &str,
    account_id: i64,
) -> Result<Option<LibraryInfo>, DbError> {
    Ok(list_for(conn, account_id)?
        .into_iter()
        .find(|l| l.id == library_id))
}

pub fn access(conn: &Conn, library_id: &str, account_id: i64) -> Result<Access, DbError> {
    let owner: Option<i64> = conn
        .query_row(
            "SELECT owner_id FROM libraries WHERE id = ?1",
            params![library_id],
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

/// The library's newest key epoch.
pub fn epoch(conn: &Conn, library_id: &str) -> Result<u32, DbError> {
    conn.query_row(
        "SELECT epoch FROM libraries WHERE id = ?1",
        params![library_id],
        |row| row.get(0),
    )
}

pub fn rename(
    conn: &Conn,
    library_id: &str,
    name_sealed: &[u8],
    name_epoch: u32,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE libraries SET name_sealed = ?2, name_epoch = ?3 WHERE id = ?1",
        params![library_id, name_sealed, name_epoch],
    )?;
    Ok(())
}

/// Every member with their permission and public key, the owner first.
pub fn members(conn: &Conn, library_id: &str) -> Result<Vec<MemberInfo>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT a.email, m.permission, a.public_key FROM library_members m \
         JOIN accounts a ON a.id = m.account_id WHERE m.library_id = ?1 \
         ORDER BY m.permission != 'owner', a.email",
    )?;
    let rows = stmt
        .query_map(params![library_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(email, perm, public_key)| {
            Ok(MemberInfo {
                email,
                permission: permission(&perm)?,
                public_key,
            })
        })
        .collect()
}

pub fn add_member(
    conn: &Conn,
    library_id: &str,
    account_id: i64,
    permission: Permission,
    epoch: u32,
    grant: &[u8],
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO library_members (library_id, account_id, permission, grant_epoch, key_grant) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![library_id, account_id, permission.as_str(), epoch, grant],
    )?;
    Ok(())
}

/// The owner's sealed roster of the library, if its client stored one.
pub fn roster(conn: &Conn, library_id: &str) -> Result<Option<Vec<u8>>, DbError> {
    conn.query_row(
        "SELECT roster FROM libraries WHERE id = ?1",
        params![library_id],
        |row| row.get(0),
    )
}

/// Keeps the owner's sealed roster as it came; the server cannot read it.
pub fn set_roster(conn: &Conn, library_id: &str, roster: &[u8]) -> Result<(), DbError> {
    conn.execute(
        "UPDATE libraries SET roster = ?2 WHERE id = ?1",
        params![library_id, roster],
    )?;
    Ok(())
}

/// Removes a member; true if they were one.
pub fn remove_member(conn: &Conn, library_id: &str, account_id: i64) -> Result<bool, DbError> {
    Ok(conn.execute(
        "DELETE FROM library_members WHERE library_id = ?1 AND account_id = ?2",
        params![library_id, account_id],
    )? == 1)
}

/// Every grant an account's new key pair replaces, as `(library, member id, member e-mail,
/// library epoch)`: its own memberships, and every member of the libraries it owns.
pub fn grants_of(conn: &Conn, account_id: i64) -> Result<Vec<(String, i64, String, u32)>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT m.library_id, m.account_id, a.email, l.epoch FROM library_members m \
         JOIN accounts a ON a.id = m.account_id JOIN libraries l ON l.id = m.library_id \
         WHERE m.account_id = ?1 OR l.owner_id = ?1",
    )?;
    let rows = stmt
        .query_map(params![account_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn set_grant(
    conn: &Conn,
    library_id: &str,
    account_id: i64,
    epoch: u32,
    grant: &[u8],
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE library_members SET grant_epoch = ?3, key_grant = ?4 \
         WHERE library_id = ?1 AND account_id = ?2",
        params![library_id, account_id, epoch, grant],
    )?;
    Ok(())
}

/// Asks the owner's client for a new epoch (a member left with keys that still work).
pub fn request_rotation(conn: &Conn, library_id: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE libraries SET rotate = 1 WHERE id = ?1",
        params![library_id],
    )?;
    Ok(())
}

/// Records epoch `epoch` with its link, the name sealed under it, and a new grant for each
/// remaining member (`grants` must cover exactly them; the caller checks).
pub fn rotate(
    conn: &Conn,
    library_id: &str,
    epoch: u32,
    link: &[u8],
    name_sealed: &[u8],
    grants: &[(i64, Vec<u8>)],
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO library_epochs (library_id, epoch, link, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![library_id, epoch, link, now()],
    )?;
    conn.execute(
        "UPDATE libraries SET epoch = ?2, name_sealed = ?3, name_epoch = ?2, rotate = 0 \
         WHERE id = ?1",
        params![library_id, epoch, name_sealed],
    )?;
    let mut stmt = conn.prepare(
        "UPDATE library_members SET grant_epoch = ?3, key_grant = ?4 \
         WHERE library_id = ?1 AND account_id = ?2",
    )?;
    for (account_id, grant) in grants {
        stmt.execute(params![library_id, account_id, epoch, grant])?;
    }
    Ok(())
}

/// The account ids of every member, the owner included.
pub fn member_ids(conn: &Conn, library_id: &str) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn.prepare("SELECT account_id FROM library_members WHERE library_id = ?1")?;
    let rows = stmt
        .query_map(params![library_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn head(conn: &Conn, library_id: &str) -> Result<Option<ObjectId>, DbError> {
    let head: Option<Vec<u8>> = conn.query_row(
        "SELECT head FROM libraries WHERE id = ?1",
        params![library_id],
        |row| row.get(0),
    )?;
    object_id(head)
}

/// Moves the head from `expected` to `new` if it is still `expected`, and marks the new
/// snapshot committed. On a mismatch returns the actual head and changes nothing.
pub fn compare_and_swap_head(
    conn: &mut Conn,
    library_id: &str,
    expected: Option<&ObjectId>,
    new: &ObjectId,
) -> Result<Result<(), Option<ObjectId>>, DbError> {
    let tx = conn.transaction()?;
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

/// The epoch a stored snapshot was sealed under.
pub fn snapshot_epoch(
    conn: &Conn,
    library_id: &str,
    id: &ObjectId,
) -> Result<Option<u32>, DbError> {
    conn.query_row(
        "SELECT epoch FROM snapshots WHERE library_id = ?1 AND id = ?2",
        params![library_id, id.as_bytes().as_slice()],
        |row| row.get(0),
    )
    .optional()
}

/// The snapshots that have been a head of the library and are not forgotten, oldest first.
pub fn committed_snapshots(conn: &Conn, library_id: &str) -> Result<Vec<SnapshotRecord>, DbError> {
    Ok(super::retention::retained(conn, library_id)?
        .into_iter()
        .map(|s| SnapshotRecord {
            id: s.id,
            time_ns: s.time_ns,
            parent: s.parent,
        })
        .collect())
}

/// How many libraries an account owns.
pub fn count_owned(conn: &Conn, account_id: i64) -> Result<i64, DbError> {
    conn.query_row(
        "SELECT COUNT(*) FROM libraries WHERE owner_id = ?1",
        params![account_id],
        |row| row.get(0),
    )
}

/// Deletes every library an account owns (see [`delete`]).
pub fn delete_owned(conn: &Conn, account_id: i64) -> Result<(), DbError> {
    let mut stmt = conn.prepare("SELECT id FROM libraries WHERE owner_id = ?1")?;
    let owned: Vec<String> = stmt
        .query_map(params![account_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for library in owned {
        delete(conn, &library)?;
    }
    Ok(())
}

/// Every library id, for collection to tell live data from deleted.
pub fn all_ids(conn: &Conn) -> Result<std::collections::HashSet<String>, DbError> {
    let mut stmt = conn.prepare("SELECT id FROM libraries")?;
    let rows = stmt
        .query_map(params![], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Removes a library and everything recorded about it; its pack files become garbage for
/// collection. Members lose it at once.
pub fn delete(conn: &Conn, library_id: &str) -> Result<(), DbError> {
    for table in [
        "links",
        "library_policies",
        "holds",
        "retired_packs",
        "objects",
        "edges",
        "snapshots",
        "packs",
        "library_members",
        "library_epochs",
    ] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE library_id = ?1"),
            params![library_id],
        )?;
    }
    conn.execute("DELETE FROM libraries WHERE id = ?1", params![library_id])?;
    Ok(())
}

/// The account's own libraries as personal data: ids, sealed names and sizes (the client
/// that asked for the export opens the names).
pub fn export_owned(conn: &Conn, account_id: i64) -> Result<Vec<LibrarySummary>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id, name_sealed, name_epoch, stored_bytes, created_at FROM libraries \
         WHERE owner_id = ?1 ORDER BY created_at, id",
    )?;
    let rows = stmt
        .query_map(params![account_id], |row| {
            Ok(LibrarySummary {
                id: row.get(0)?,
                name_sealed: row.get(1)?,
                name_epoch: row.get(2)?,
                name: None,
                stored_bytes: row.get(3)?,
                created_at: row.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn export_memberships(conn: &Conn, account_id: i64) -> Result<Vec<Membership>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT l.id, a.email, m.permission FROM library_members m \
         JOIN libraries l ON l.id = m.library_id JOIN accounts a ON a.id = l.owner_id \
         WHERE m.account_id = ?1 ORDER BY l.id",
    )?;
    let rows = stmt
        .query_map(params![account_id], |row| {
            Ok(Membership {
                library_id: row.get(0)?,
                library: None,
                owner_email: row.get(1)?,
                permission: row.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
