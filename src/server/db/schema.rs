//! Schema migrations, applied in order; `PRAGMA user_version` records how many ran.

use rusqlite::Connection;

use super::DbError;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    plan TEXT NOT NULL,
    quota_override INTEGER,
    auth_hash TEXT NOT NULL,
    kdf_salt BLOB NOT NULL,
    kdf_params TEXT NOT NULL,
    public_key BLOB NOT NULL,
    wrapped_private_key BLOB NOT NULL,
    recovery_wrapped_private_key BLOB NOT NULL,
    marketing_consent INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL UNIQUE,
    client TEXT,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_account ON sessions(account_id);
CREATE TABLE libraries (
    id TEXT PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    head BLOB,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (owner_id, name)
);
CREATE TABLE library_members (
    library_id TEXT NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    PRIMARY KEY (library_id, account_id)
);
CREATE INDEX library_members_account ON library_members(account_id);
CREATE TABLE packs (
    id TEXT PRIMARY KEY,
    library_id TEXT NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE objects (
    library_id TEXT NOT NULL,
    id BLOB NOT NULL,
    kind INTEGER NOT NULL,
    size INTEGER NOT NULL,
    pack_id TEXT NOT NULL,
    offset INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (library_id, id)
) WITHOUT ROWID;
CREATE TABLE edges (
    library_id TEXT NOT NULL,
    parent BLOB NOT NULL,
    child BLOB NOT NULL,
    PRIMARY KEY (library_id, parent, child)
) WITHOUT ROWID;
CREATE TABLE snapshots (
    library_id TEXT NOT NULL,
    id BLOB NOT NULL,
    time_ns INTEGER NOT NULL,
    parent BLOB,
    committed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (library_id, id)
) WITHOUT ROWID;
"#];

pub fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if applied > known {
        return Err(DbError::SchemaTooNew {
            found: applied,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_refuse_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(DbError::SchemaTooNew { found: 99, .. })
        ));
    }
}
