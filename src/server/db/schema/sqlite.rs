//! SQLite's schema migrations, applied in order; `PRAGMA user_version` records how many ran.

use crate::db::{params, Conn, DbError};

const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    // Plans, billing, profile, session records, surveys and feedback (issue 4).
    r#"
ALTER TABLE accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE accounts ADD COLUMN canceled_at INTEGER;
ALTER TABLE accounts ADD COLUMN period_end INTEGER;
ALTER TABLE accounts ADD COLUMN quota_warned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN address TEXT;
ALTER TABLE sessions ADD COLUMN requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN bytes_up INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN bytes_down INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN transfer_ms INTEGER NOT NULL DEFAULT 0;
CREATE TABLE cards (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    brand TEXT NOT NULL,
    last4 TEXT NOT NULL,
    exp_month INTEGER NOT NULL,
    exp_year INTEGER NOT NULL,
    processor_token TEXT NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE TABLE plan_changes (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    from_plan TEXT,
    to_plan TEXT NOT NULL,
    amount_cents INTEGER NOT NULL
);
CREATE INDEX plan_changes_account ON plan_changes(account_id);
CREATE TABLE invoices (
    id INTEGER PRIMARY KEY,
    account_id INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    at INTEGER NOT NULL,
    description TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    processor_ref TEXT
);
CREATE INDEX invoices_account ON invoices(account_id);
CREATE TABLE consent_events (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    marketing INTEGER NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX consent_events_account ON consent_events(account_id);
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY,
    account_id INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    at INTEGER NOT NULL,
    rating INTEGER NOT NULL,
    message TEXT
);
CREATE INDEX feedback_account ON feedback(account_id);
CREATE TABLE surveys (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    questions TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    closed_at INTEGER
);
CREATE TABLE survey_respondents (
    survey_id TEXT NOT NULL REFERENCES surveys(id) ON DELETE CASCADE,
    respondent BLOB NOT NULL,
    PRIMARY KEY (survey_id, respondent)
) WITHOUT ROWID;
CREATE TABLE survey_counts (
    survey_id TEXT NOT NULL REFERENCES surveys(id) ON DELETE CASCADE,
    question INTEGER NOT NULL,
    choice INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (survey_id, question, choice)
) WITHOUT ROWID;
CREATE TABLE login_throttle (
    key BLOB PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE ledger_cards (
    token TEXT PRIMARY KEY,
    brand TEXT NOT NULL,
    last4 TEXT NOT NULL,
    behaviour TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE ledger_charges (
    id TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
"#,
    // Sharing (issue 11): encrypted names, key epochs, authenticated grants, links. Storage
    // format 2; `migrate` refuses to run this over libraries of format 1 (it cannot convert
    // what it cannot decrypt), so the tables it replaces are empty here.
    r#"
DROP TABLE library_members;
DROP TABLE libraries;
CREATE TABLE libraries (
    id TEXT PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name_sealed BLOB NOT NULL,
    name_epoch INTEGER NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 1,
    rotate INTEGER NOT NULL DEFAULT 0,
    head BLOB,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX libraries_owner ON libraries(owner_id);
CREATE TABLE library_members (
    library_id TEXT NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    grant_epoch INTEGER NOT NULL,
    key_grant BLOB NOT NULL,
    PRIMARY KEY (library_id, account_id)
);
CREATE INDEX library_members_account ON library_members(account_id);
CREATE TABLE library_epochs (
    library_id TEXT NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    link BLOB,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (library_id, epoch)
) WITHOUT ROWID;
ALTER TABLE snapshots ADD COLUMN epoch INTEGER NOT NULL DEFAULT 1;
"#,
    // Links (issue 11): a folder handed out by URL; the key is in the URL's fragment only.
    r#"
CREATE TABLE links (
    id TEXT PRIMARY KEY,
    library_id TEXT NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    root BLOB NOT NULL,
    follow INTEGER NOT NULL DEFAULT 0,
    pointer BLOB NOT NULL,
    label_sealed BLOB NOT NULL,
    password_hash TEXT,
    expires_at INTEGER,
    revoked_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX links_library ON links(library_id);
CREATE INDEX links_account ON links(account_id);
CREATE TABLE link_sessions (
    token_hash BLOB PRIMARY KEY,
    link_id TEXT NOT NULL REFERENCES links(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // Retention and collection (issue 12).
    r#"
CREATE TABLE library_policies (
    library_id TEXT PRIMARY KEY REFERENCES libraries(id) ON DELETE CASCADE,
    policy TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
ALTER TABLE objects ADD COLUMN touched_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN forgotten_at INTEGER;
ALTER TABLE snapshots ADD COLUMN tag_macs TEXT NOT NULL DEFAULT '';
CREATE INDEX objects_pack ON objects(library_id, pack_id);
CREATE TABLE retired_packs (
    library_id TEXT NOT NULL,
    pack_id TEXT NOT NULL,
    retired_at INTEGER NOT NULL,
    PRIMARY KEY (library_id, pack_id)
) WITHOUT ROWID;
ALTER TABLE objects ADD COLUMN checksum INTEGER;
ALTER TABLE objects ADD COLUMN damaged INTEGER NOT NULL DEFAULT 0;
CREATE TABLE server_state (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE holds (
    library_id TEXT NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    holder TEXT NOT NULL,
    root BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (library_id, holder, root)
) WITHOUT ROWID;
"#,
    // Throttle counts move to keyed hashes of (scope, target, address) and to times in
    // milliseconds; the old counts are dropped (they were only seconds-old waits). Billing
    // changes of one account take turns (`billing_lock_until`). Recovery must show the
    // recovery key's proof, stored as its SHA-256 (`recovery_proof_hash`; null for older
    // accounts until `account recovery-key` sets one). Marketing goes only to confirmed
    // addresses (`email_confirmed_at`; null for every older account until it confirms).
    // Each session holds the key that seals the account key in its session file
    // (`key_share`), dropped when the session ends.
    r#"
CREATE TABLE login_throttle_ms (
    key BLOB PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure_ms INTEGER NOT NULL
) WITHOUT ROWID;
DROP TABLE login_throttle;
ALTER TABLE accounts ADD COLUMN billing_lock_until INTEGER;
ALTER TABLE accounts ADD COLUMN recovery_proof_hash BLOB;
ALTER TABLE accounts ADD COLUMN email_confirmed_at INTEGER;
ALTER TABLE sessions ADD COLUMN key_share BLOB;
"#,
    // Settings of the deployment that every server sharing the database must agree on,
    // as text: where the packs are kept (`blob_store`). Leases: work one server of many
    // does at a time (`db::leases`).
    r#"
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until INTEGER NOT NULL
);
"#,
    // The owner's record of whom it shared a library with (`roster`), sealed by the owner's
    // client to its own key: the server keeps it and cannot read or make one (issue 26).
    // Who set each hold (`holds.account_id`), so a member's holds are bounded.
    r#"
ALTER TABLE libraries ADD COLUMN roster BLOB;
ALTER TABLE holds ADD COLUMN account_id INTEGER;
"#,
];

/// The migration that replaced storage format 1 (it drops the old library tables).
const FORMAT_2_MIGRATION: usize = 2;

pub fn migrate(conn: &mut Conn) -> Result<(), DbError> {
    let applied: i64 = conn.query_row("PRAGMA user_version", params![], |row| row.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if applied > known {
        return Err(DbError::SchemaTooNew {
            found: applied,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        if index == FORMAT_2_MIGRATION {
            let old: i64 = conn.query_row("SELECT COUNT(*) FROM libraries", params![], |row| {
                row.get(0)
            })?;
            if old > 0 {
                return Err(DbError::FormatOneLibraries(old));
            }
        }
        let tx = conn.transaction()?;
        // Another server sharing the database may have applied it while this one waited.
        let now: i64 = tx.query_row("PRAGMA user_version", params![], |row| row.get(0))?;
        if now > index as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn open() -> Conn {
        Conn::sqlite(Connection::open_in_memory().unwrap())
    }

    #[test]
    fn migrations_apply_once_and_refuse_newer_schema() {
        let mut conn = open();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(DbError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn format_one_libraries_are_refused_not_dropped() {
        let mut conn = open();
        for sql in &MIGRATIONS[..FORMAT_2_MIGRATION] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(&format!("PRAGMA user_version = {FORMAT_2_MIGRATION}"))
            .unwrap();
        conn.execute_batch(
            "INSERT INTO accounts (id, email, first_name, last_name, plan, auth_hash, kdf_salt, \
             kdf_params, public_key, wrapped_private_key, recovery_wrapped_private_key, \
             created_at) VALUES (1, 'a@b.c', 'A', 'B', 'free', '', x'', '', x'', x'', x'', 0); \
             INSERT INTO libraries (id, owner_id, name, created_at) VALUES ('l', 1, 'Backups', 0);",
        )
        .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(DbError::FormatOneLibraries(1))
        ));
        let kept: i64 = conn
            .query_row("SELECT COUNT(*) FROM libraries", params![], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(kept, 1, "nothing was dropped");
    }
}
