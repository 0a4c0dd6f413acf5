//! What the server keeps about itself: settings every server sharing the database must
//! agree on (`settings`, text: where the packs are, the server secret), settled by the first
//! server to open it, and numbers of its own running (`server_state`, e.g. when verify last
//! ran).

use crate::db::{params, Conn, OptionalExtension};

use super::{immediate, DbError};

/// The value of setting `key`, stored first as `propose()` if there is none yet: of servers
/// opening the database at once, the first one's proposal is every one's answer.
fn settle(conn: &mut Conn, key: &str, propose: impl FnOnce() -> String) -> Result<String, DbError> {
    let tx = immediate(conn)?;
    let stored: Option<String> = tx
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            params![key],
            |row| row.get(0),
        )
        .optional()?;
    let value = match stored {
        Some(value) => value,
        None => {
            let value = propose();
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)",
                params![key, value],
            )?;
            value
        }
    };
    tx.commit()?;
    Ok(value)
}

/// Records where this database's packs are kept on first use, and refuses another store
/// after: collection against the wrong store would find none of the packs.
pub fn check_blob_store(conn: &mut Conn, location: &str) -> Result<(), DbError> {
    let recorded = settle(conn, "blob_store", || location.to_owned())?;
    if recorded != location {
        return Err(DbError::OtherBlobStore {
            recorded,
            given: location.to_owned(),
        });
    }
    Ok(())
}

/// The server's secret (it keys the stand-in salts of unknown addresses and the tokens in
/// mailed links), made by `make` on first use and kept here, so that every server sharing
/// the database uses the same one.
pub fn server_secret(
    conn: &mut Conn,
    make: impl FnOnce() -> [u8; 32],
) -> Result<[u8; 32], DbError> {
    let text = settle(conn, "server_secret", || hex::encode(make()))?;
    hex::decode(&text)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| DbError::Corrupt("settings.server_secret is not 32 bytes".into()))
}

/// A number the server keeps about itself (`server_state`), e.g. when verify last ran.
pub fn state(conn: &Conn, key: &str) -> Result<Option<i64>, DbError> {
    conn.query_row(
        "SELECT value FROM server_state WHERE key = ?1",
        params![key],
        |row| row.get(0),
    )
    .optional()
}

pub fn set_state(conn: &Conn, key: &str, value: i64) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO server_state (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = ?2",
        params![key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Database, Db};
    use super::*;

    #[test]
    fn the_first_server_secret_is_kept_for_every_server_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = Database::Sqlite(dir.path().join("ibackup.db"));
        let first = Db::open(&path, 0).unwrap();
        let made = first
            .blocking(|conn| server_secret(conn, || [7; 32]))
            .unwrap();
        // Another server on the same database, with a secret of its own to offer.
        let second = Db::open(&path, 0).unwrap();
        let found = second
            .blocking(|conn| server_secret(conn, || [9; 32]))
            .unwrap();
        assert_eq!((made, found), ([7; 32], [7; 32]));
    }

    #[test]
    fn a_database_keeps_the_blob_store_it_was_first_opened_with() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&Database::Sqlite(dir.path().join("ibackup.db")), 0).unwrap();
        db.blocking(|conn| check_blob_store(conn, "s3://packs/one"))
            .unwrap();
        db.blocking(|conn| check_blob_store(conn, "s3://packs/one"))
            .unwrap();
        let other = db
            .blocking(|conn| check_blob_store(conn, "local"))
            .unwrap_err();
        assert!(
            matches!(&other, DbError::OtherBlobStore { recorded, .. } if recorded == "s3://packs/one"),
            "{other}"
        );
    }
}
