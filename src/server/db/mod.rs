//! The metadata database. All SQL lives under this folder, so that another database
//! (PostgreSQL) can replace SQLite without touching the handlers.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`: a transaction that committed survives a
//! power cut, which the server promises for every object and head it acknowledges.
//! One writer connection behind a mutex serialises changes; a pool of read-only connections
//! ([`Db::read`]) serves reads beside it, as WAL lets readers run during a write (each sees
//! what was committed when its statement began). Calls run on the blocking pool.

pub mod accounts;
pub mod billing;
mod engine;
pub mod leases;
pub mod libraries;
pub mod links;
pub mod objects;
pub mod privacy;
pub mod retention;
mod schema;
pub mod sessions;
pub mod settings;
pub mod throttle;
pub mod uploads;

use std::sync::{Arc, Mutex};

pub use engine::{
    params, ColumnIndex, Conn, Database, FromSql, OptionalExtension, Param, Params, Row, Stmt, Tx,
    Value,
};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Postgres(String),
    /// The database is out of reach (PostgreSQL restarting, the network down): nothing was
    /// done, and the same request may succeed shortly.
    #[error("the metadata database is unavailable: {0}")]
    Unavailable(String),
    /// The database option cannot be used as given; the message says what to write.
    #[error("{0}")]
    Config(String),
    /// A query that must return a row returned none.
    #[error("no such row")]
    NoRows,
    /// A value that does not fit where it goes (a column read as the wrong type).
    #[error("database value: {0}")]
    Value(String),
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
    conn: Arc<Mutex<Conn>>,
    /// The read connections; none: reads go through the writer.
    readers: Option<Readers>,
}

/// Idle read connections: a reader takes one and puts it back (see [`Reader`]).
#[derive(Clone)]
struct Readers {
    idle: crossbeam_channel::Receiver<Conn>,
    give_back: crossbeam_channel::Sender<Conn>,
}

/// The advisory lock every PostgreSQL writer holds while it runs: writers take turns
/// across all servers, as SQLite's one writer does (DECISIONS 84).
const WRITER_LOCK: i64 = 0x1bac_0001;

impl Db {
    /// Opens (creating if needed) and migrates the database, with `readers` read
    /// connections beside the writer (0: reads go through the writer too).
    pub fn open(database: &Database, readers: usize) -> Result<Self, DbError> {
        let mut conn = connect(database, false)?;
        schema::migrate(&mut conn)?;
        let pool = match readers {
            0 => None,
            n => {
                let (give_back, idle) = crossbeam_channel::bounded(n);
                for _ in 0..n {
                    give_back
                        .send(connect(database, true)?)
                        .expect("the pool has room for every reader");
                }
                Some(Readers { idle, give_back })
            }
        };
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            readers: pool,
        })
    }

    /// Runs `f` with a read-only connection on the blocking thread pool, beside the writer
    /// and other readers. A change attempted through it is an error.
    pub async fn read<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Conn) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || match &db.readers {
            Some(readers) => {
                let reader = readers.take();
                if let Some(mut pg) = reader.as_postgres() {
                    pg.ready()?;
                }
                f(&reader)
            }
            None => db.blocking(|conn| f(conn)),
        })
        .await
        .map_err(|e| E::from(DbError::Task(e.to_string())))?
    }

    /// Runs `f` with the writer connection on the blocking thread pool.
    pub async fn call<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut Conn) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.blocking(f))
            .await
            .map_err(|e| E::from(DbError::Task(e.to_string())))?
    }

    /// Runs `f` with the writer connection on the current thread (command-line tools). On
    /// PostgreSQL it holds the writers' lock meanwhile, so writers of all servers take
    /// turns.
    pub fn blocking<R, E>(&self, f: impl FnOnce(&mut Conn) -> Result<R, E>) -> Result<R, E>
    where
        E: From<DbError>,
    {
        let mut guard = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_sqlite() {
            return f(&mut guard);
        }
        if let Some(mut pg) = guard.as_postgres() {
            pg.ready()?;
        }
        guard.execute("SELECT pg_advisory_lock(?1)", params![WRITER_LOCK])?;
        let turn = WriterTurn(&mut guard);
        f(turn.0)
    }
}

/// The PostgreSQL writers' lock, let go when the writer is done, also after a panic (a
/// connection that broke has let go of it already).
struct WriterTurn<'a>(&'a mut Conn);

impl Drop for WriterTurn<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .execute("SELECT pg_advisory_unlock(?1)", params![WRITER_LOCK]);
    }
}

impl Conn {
    /// A connection of its own to `database`, as the server opens its writer (tools and
    /// tests that look into a server's database).
    pub fn open(database: &Database) -> Result<Conn, DbError> {
        connect(database, false)
    }
}

/// A connection to `database`: SQLite in WAL mode with `synchronous=FULL` (a read
/// connection is `query_only`), or PostgreSQL (a read connection is read-only).
fn connect(database: &Database, read_only: bool) -> Result<Conn, DbError> {
    match database {
        Database::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path)?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            conn.set_prepared_statement_cache_capacity(64);
            if read_only {
                conn.pragma_update(None, "query_only", "ON")?;
                return Ok(Conn::sqlite(conn));
            }
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            // Deleted rows (an account's e-mail and names) are overwritten, not left in
            // free pages.
            conn.pragma_update(None, "secure_delete", "ON")?;
            Ok(Conn::sqlite(conn))
        }
        Database::Postgres(url) => Ok(Conn::postgres(engine::PgConn::connect(url, read_only)?)),
    }
}

impl Readers {
    /// An idle read connection, waiting for one if all are busy; it goes back to the pool
    /// when dropped, also after a panic.
    fn take(&self) -> Reader<'_> {
        let conn = self.idle.recv().expect("the pool's sender lives beside it");
        Reader {
            conn: Some(conn),
            give_back: &self.give_back,
        }
    }
}

/// A read connection borrowed from the pool.
struct Reader<'a> {
    conn: Option<Conn>,
    give_back: &'a crossbeam_channel::Sender<Conn>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = self.give_back.send(conn);
        }
    }
}

/// A transaction that takes the write lock at once (SQLite `BEGIN IMMEDIATE`), for a
/// read-check-write that must not interleave with another writer.
pub fn immediate(conn: &mut Conn) -> Result<Tx<'_>, DbError> {
    conn.transaction()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(conn: &Conn) -> Result<i64, DbError> {
        conn.query_row("SELECT COUNT(*) FROM accounts", params![], |row| row.get(0))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_run_beside_a_writer_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&Database::Sqlite(dir.path().join("ibackup.db")), 4).unwrap();
        // The writer holds a write transaction, with a row not yet committed...
        let (held, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        let (held, release) = (Arc::new(held), Arc::new(release));
        let writer = {
            let (db, held, release) = (db.clone(), held.clone(), release.clone());
            std::thread::spawn(move || {
                db.blocking(|conn| {
                    let tx = immediate(conn).unwrap();
                    tx.execute_batch(
                        "INSERT INTO accounts (email, first_name, last_name, plan, auth_hash, \
                         kdf_salt, kdf_params, public_key, wrapped_private_key, \
                         recovery_wrapped_private_key, created_at) \
                         VALUES ('a@b.c', 'A', 'B', 'free', '', x'', '', x'', x'', x'', 0)",
                    )
                    .unwrap();
                    held.wait();
                    release.wait();
                    tx.commit().unwrap();
                    Ok::<_, DbError>(())
                })
                .unwrap()
            })
        };
        held.wait();
        // ...and every reader still answers at once, with what was committed before.
        for _ in 0..8 {
            let seen = tokio::time::timeout(std::time::Duration::from_secs(2), db.read(accounts))
                .await
                .expect("a read waited for the writer")
                .unwrap();
            assert_eq!(seen, 0);
        }
        release.wait();
        writer.join().unwrap();
        assert_eq!(db.read(accounts).await.unwrap(), 1);
        let refused = db
            .read(|conn| -> Result<usize, DbError> {
                conn.execute("DELETE FROM accounts", params![])
            })
            .await;
        assert!(refused.is_err(), "a reader changed the database");
        assert_eq!(db.read(accounts).await.unwrap(), 1);
    }
}
