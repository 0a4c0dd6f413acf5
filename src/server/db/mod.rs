//! The metadata database. All SQL lives under this folder, so that another database
//! (PostgreSQL) can replace SQLite without touching the handlers.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`: a transaction that committed survives a
//! power cut, which the server promises for every object and head it acknowledges.
//! One connection behind a mutex serialises access; calls run on the blocking pool.

pub mod accounts;
pub mod billing;
pub mod libraries;
pub mod links;
pub mod objects;
pub mod privacy;
pub mod retention;
mod schema;
pub mod sessions;
pub mod throttle;
pub mod uploads;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this server knows ({known}); upgrade ibackup-server")]
    SchemaTooNew { found: i64, known: i64 },
    #[error(
        "this data directory holds {0} libraries in storage format 1, from before sharing; \
         this server stores format 2 and cannot convert them (it cannot decrypt them). Restore \
         them with the release that made them and back them up to a new data directory"
    )]
    FormatOneLibraries(i64),
    #[error(
        "this database's packs are in {recorded}, but the server was started with {given}; \
         start it with --blob-store {recorded} (or set `[storage] blob_store` in server.toml)"
    )]
    OtherBlobStore { recorded: String, given: String },
    #[error("stored value is malformed: {0}")]
    Corrupt(String),
    #[error("database task failed: {0}")]
    Task(String),
}

#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted rows (an account's e-mail and names) are overwritten, not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking thread pool.
    pub async fn call<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut Connection) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| E::from(DbError::Task(e.to_string())))?
    }

    /// Runs `f` on the current thread (command-line tools).
    pub fn blocking<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        let mut guard = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

/// A transaction that takes the write lock at once (SQLite `BEGIN IMMEDIATE`), for a
/// read-check-write that must not interleave with another writer.
pub fn immediate(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, DbError> {
    Ok(conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
}

/// Records where this database's packs are kept on first use, and refuses another store
/// after: collection against the wrong store would find none of the packs.
pub fn check_blob_store(conn: &mut Connection, location: &str) -> Result<(), DbError> {
    use rusqlite::OptionalExtension;
    let tx = immediate(conn)?;
    let recorded: Option<String> = tx
        .query_row(
            "SELECT value FROM settings WHERE key = 'blob_store'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    match recorded {
        Some(recorded) if recorded != location => {
            return Err(DbError::OtherBlobStore {
                recorded,
                given: location.to_owned(),
            })
        }
        Some(_) => {}
        None => {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ('blob_store', ?1)",
                [location],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A random 128-bit identifier as 32 lowercase hex digits.
pub fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

pub use crate::api::is_random_id;
