//! The write-back journal: every change made through the mount, as a path-based operation,
//! in a local SQLite database, until it is uploaded.
//!
//! An operation is appended before the call that made it returns (close, fsync, mkdir,
//! rename, …), so a crash or SIGKILL afterwards leaves it on disk, and the next mount
//! replays and uploads it. The database runs in WAL mode: commits survive a process crash
//! at once; `append_durable` (used by fsync) also fsyncs, so they survive a power cut.
//! Staged file contents live beside it in `staging/`, named by the operations.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::model::{EntryKind, Xattr};

/// `name` inside the folder at library path `prefix` (the root: empty).
pub fn join_path(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = prefix.to_vec();
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// The file at `path` now has the content of staged file `stage` and these attributes.
    /// `base` is the signature of the server's version it was edited from (none if new).
    Write {
        #[serde(with = "serde_bytes")]
        path: Vec<u8>,
        stage: String,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime_ns: i64,
        xattrs: Vec<Xattr>,
        base: Option<String>,
        /// The file's hard-link group (0: one name), so every name takes the content.
        #[serde(default)]
        link: u64,
        /// An access time set explicitly, which a write keeps.
        #[serde(default)]
        atime_ns: Option<i64>,
    },
    Mkdir {
        #[serde(with = "serde_bytes")]
        path: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime_ns: i64,
    },
    Symlink {
        #[serde(with = "serde_bytes")]
        path: Vec<u8>,
        #[serde(with = "serde_bytes")]
        target: Vec<u8>,
        uid: u32,
        gid: u32,
        mtime_ns: i64,
    },
    /// A further name `to` for the file at `from`, both in hard-link group `link`.
    Link {
        #[serde(with = "serde_bytes")]
        from: Vec<u8>,
        #[serde(with = "serde_bytes")]
        to: Vec<u8>,
        link: u64,
    },
    /// A FIFO, socket or device made at `path`.
    Special {
        #[serde(with = "serde_bytes")]
        path: Vec<u8>,
        kind: EntryKind,
        mode: u32,
        uid: u32,
        gid: u32,
        rdev: u64,
        mtime_ns: i64,
    },
    Remove {
        #[serde(with = "serde_bytes")]
        path: Vec<u8>,
    },
    Rename {
        #[serde(with = "serde_bytes")]
        from: Vec<u8>,
        #[serde(with = "serde_bytes")]
        to: Vec<u8>,
    },
    SetAttr {
        #[serde(with = "serde_bytes")]
        path: Vec<u8>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        mtime_ns: Option<i64>,
        /// Absent in entries journaled before access times were kept.
        #[serde(default)]
        atime_ns: Option<i64>,
        /// The status-change time the change set; absent in entries journaled before
        /// it was kept.
        #[serde(default)]
        ctime_ns: Option<i64>,
    },
    SetXattrs {
        #[serde(with = "serde_bytes")]
        path: Vec<u8>,
        xattrs: Vec<Xattr>,
        /// As in `SetAttr`.
        #[serde(default)]
        ctime_ns: Option<i64>,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("write-back journal: {0}")]
pub struct JournalError(#[from] rusqlite::Error);

pub struct Journal {
    conn: Mutex<Connection>,
}

pub fn encode(op: &Op) -> Vec<u8> {
    crate::model::codec::encode(op)
}

pub fn decode(bytes: &[u8]) -> Option<Op> {
    crate::model::codec::decode(bytes).ok()
}

impl Journal {
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version < 1 {
            // `stage` and `bytes` repeat what Write operations name, so that counting what
            // is pending needs no decoding.
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS ops (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    library TEXT NOT NULL,
                    op BLOB NOT NULL
                );
                ALTER TABLE ops ADD COLUMN stage TEXT;
                ALTER TABLE ops ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
                PRAGMA user_version = 1;",
            )?;
        }
        if version < 2 {
            // Counting and reading one library's operations go by index, and the counts
            // read the index alone: a journal another mount of the account filled with a
            // hundred thousand operations costs this one nothing, and a mount's own large
            // journal does not slow its writers (fstests' generic/521 slowed as its journal
            // grew: every count, ten a second, was a sort of the whole table, and appends
            // waited for it).
            conn.execute_batch(
                "CREATE INDEX IF NOT EXISTS ops_by_library ON ops (library, seq);
                CREATE INDEX IF NOT EXISTS ops_by_stage ON ops (library, stage, bytes);
                PRAGMA user_version = 2;",
            )?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Opens a journal another process (the mount) writes, to read what is pending.
    pub fn open_read_only(path: &Path) -> Result<Self, JournalError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an operation; `bytes` is the size of the staged file a Write names.
    pub fn append(&self, library: &str, op: &Op, bytes: u64) -> Result<i64, JournalError> {
        let stage = match op {
            Op::Write { stage, .. } => Some(stage.as_str()),
            _ => None,
        };
        let conn = self.conn();
        // Cached: `close` waits for this (one statement per file of a `cp -r`).
        conn.prepare_cached("INSERT INTO ops (library, op, stage, bytes) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![library, encode(op), stage, bytes as i64])?;
        Ok(conn.last_insert_rowid())
    }

    /// Appends operations that name no staged file, all at once: a reader sees all of them
    /// or none.
    pub fn append_together(&self, library: &str, ops: &[Op]) -> Result<(), JournalError> {
        let mut conn = self.conn();
        let together = conn.transaction()?;
        {
            let mut insert = together.prepare_cached(
                "INSERT INTO ops (library, op, stage, bytes) VALUES (?1, ?2, NULL, 0)",
            )?;
            for op in ops {
                debug_assert!(!matches!(op, Op::Write { .. }), "a write names its stage");
                insert.execute(params![library, encode(op)])?;
            }
        }
        together.commit()?;
        Ok(())
    }

    /// Appends and fsyncs, so the operation survives a power cut.
    pub fn append_durable(&self, library: &str, op: &Op, bytes: u64) -> Result<i64, JournalError> {
        let seq = self.append(library, op, bytes)?;
        self.sync()?;
        Ok(seq)
    }

    /// Makes every operation appended so far survive a power cut.
    pub fn sync(&self) -> Result<(), JournalError> {
        self.conn()
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))?;
        Ok(())
    }

    /// How many operations of `libraries` wait (other mounts of the account may journal
    /// other libraries in the same journal).
    pub fn pending_count(&self, libraries: &[String]) -> Result<u64, JournalError> {
        Ok(self.counts_of(libraries)?.0)
    }

    /// Pending operations of a library, oldest first.
    pub fn pending(&self, library: &str) -> Result<Vec<(i64, Op)>, JournalError> {
        self.pending_after(library, 0)
    }

    /// Pending operations of a library later than `seq`, oldest first: what came in while
    /// the operations up to `seq` were uploaded (those are not read and decoded again).
    pub fn pending_after(&self, library: &str, seq: i64) -> Result<Vec<(i64, Op)>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, op FROM ops WHERE library = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        let rows = stmt
            .query_map(params![library, seq], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, bytes)| Some((seq, decode(&bytes)?)))
            .collect())
    }

    /// Drops the operations up to `seq` (uploaded) and rewrites later ones (`updates`).
    pub fn complete(
        &self,
        library: &str,
        seq: i64,
        updates: &[(i64, Op)],
    ) -> Result<(), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM ops WHERE library = ?1 AND seq <= ?2",
            params![library, seq],
        )?;
        for (seq, op) in updates {
            tx.execute(
                "UPDATE ops SET op = ?2 WHERE seq = ?1",
                params![seq, encode(op)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Staged files still named by a pending operation.
    pub fn stages_in_use(&self) -> Result<std::collections::HashSet<String>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT DISTINCT stage FROM ops WHERE stage IS NOT NULL")?;
        let stages = stmt
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(stages)
    }

    /// Staged files of a library's pending writes that were at least `min_bytes` when
    /// journaled.
    pub fn large_stages(&self, library: &str, min_bytes: u64) -> Result<Vec<String>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT DISTINCT stage FROM ops WHERE library = ?1 AND stage IS NOT NULL \
             AND bytes >= ?2",
        )?;
        let stages = stmt
            .query_map(params![library, min_bytes as i64], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(stages)
    }

    /// `(operations, distinct files written, their bytes)` waiting, over all libraries.
    pub fn counts(&self) -> Result<(u64, u64, u64), JournalError> {
        self.counted("1", &[])
    }

    /// [`Journal::counts`] of `libraries` only (a stage belongs to one library).
    pub fn counts_of(&self, libraries: &[String]) -> Result<(u64, u64, u64), JournalError> {
        let mut total = (0, 0, 0);
        for library in libraries {
            let (ops, files, bytes) = self.counted("library = ?1", &[library.as_str()])?;
            total = (total.0 + ops, total.1 + files, total.2 + bytes);
        }
        Ok(total)
    }

    /// Operations, distinct staged files and their bytes among the operations `filter`
    /// selects.
    fn counted(&self, filter: &str, values: &[&str]) -> Result<(u64, u64, u64), JournalError> {
        let values = rusqlite::params_from_iter(values);
        let conn = self.conn();
        let (ops, files): (i64, i64) = conn
            .prepare_cached(&format!(
                "SELECT COUNT(*), COUNT(DISTINCT stage) FROM ops WHERE {filter}"
            ))?
            .query_row(values.clone(), |row| Ok((row.get(0)?, row.get(1)?)))?;
        let bytes: i64 = conn
            .prepare_cached(&format!(
                "SELECT COALESCE(SUM(b), 0) FROM (SELECT MAX(bytes) AS b FROM ops \
                 WHERE stage IS NOT NULL AND {filter} GROUP BY stage)"
            ))?
            .query_row(values, |row| row.get(0))?;
        Ok((ops as u64, files as u64, bytes as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the journal's main file alone holds (as after a power cut that lost what the
    /// write-ahead log had not yet written there).
    fn in_main_file(path: &Path) -> u64 {
        let copy = path.with_extension("copy");
        std::fs::copy(path, &copy).unwrap();
        Journal::open(&copy).unwrap().counts().unwrap().0
    }

    #[test]
    fn sync_puts_what_was_appended_in_the_main_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let journal = Journal::open(&path).unwrap();
        let rename = Op::Rename {
            from: b"a".to_vec(),
            to: b"b".to_vec(),
        };
        journal.append("lib", &rename, 0).unwrap();
        assert_eq!(in_main_file(&path), 0, "still in the write-ahead log");
        journal.sync().unwrap();
        assert_eq!(in_main_file(&path), 1);
    }

    #[test]
    fn ops_survive_reopen_and_complete_drops_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let journal = Journal::open(&path).unwrap();
        let mkdir = Op::Mkdir {
            path: b"a".to_vec(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime_ns: 1,
        };
        let remove = Op::Remove {
            path: b"\xffodd".to_vec(),
        };
        let first = journal.append("lib", &mkdir, 0).unwrap();
        journal.append_durable("lib", &remove, 0).unwrap();
        journal.append("other", &mkdir, 0).unwrap();
        drop(journal);
        let journal = Journal::open(&path).unwrap();
        let pending = journal.pending("lib").unwrap();
        assert_eq!(
            pending.iter().map(|(_, op)| op.clone()).collect::<Vec<_>>(),
            vec![mkdir, remove.clone()]
        );
        // What came after an upload's operations, without them.
        let after = journal.pending_after("lib", first).unwrap();
        assert_eq!(
            after.into_iter().map(|(_, op)| op).collect::<Vec<_>>(),
            vec![remove]
        );
        journal.complete("lib", first, &[]).unwrap();
        assert_eq!(journal.pending("lib").unwrap().len(), 1);
        assert_eq!(journal.counts().unwrap().0, 2);
    }

    #[test]
    fn one_librarys_counts_and_operations_are_read_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal.db")).unwrap();
        let plan = |sql: &str| -> String {
            let conn = journal.conn();
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map([], |row| row.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let counts = plan("SELECT COUNT(*), COUNT(DISTINCT stage) FROM ops WHERE library = 'l'");
        assert!(counts.contains("COVERING INDEX ops_by_stage"), "{counts}");
        let bytes = plan(
            "SELECT MAX(bytes) FROM ops WHERE stage IS NOT NULL AND library = 'l' GROUP BY stage",
        );
        assert!(bytes.contains("COVERING INDEX ops_by_stage"), "{bytes}");
        assert!(!bytes.contains("TEMP B-TREE"), "{bytes}");
        let pending = plan("SELECT seq, op FROM ops WHERE library = 'l' AND seq > 0 ORDER BY seq");
        assert!(pending.contains("INDEX ops_by_library"), "{pending}");
        assert!(!pending.contains("TEMP B-TREE"), "{pending}");
    }
}
