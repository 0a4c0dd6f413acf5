//! Leases: work that one server of many does at a time (the maintenance pass: renewals,
//! expiry, mail about quotas, collection, verification). Servers sharing one database take
//! the lease named for the work; only the one that got it does the work, and nobody else
//! until the lease runs out. A server that dies holding one lets it run out.

use crate::db::{params, Conn};

use super::DbError;

/// Takes the lease `name` for `holder` until `until` (seconds since the epoch) if nobody
/// holds it at `now`; whether it was taken.
pub fn take(conn: &Conn, name: &str, holder: &str, now: i64, until: i64) -> Result<bool, DbError> {
    // One statement: of two servers racing, the database lets one write first and the
    // other then sees the lease held.
    let taken = conn.execute(
        "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
         WHERE leases.until <= ?4",
        params![name, holder, until, now],
    )?;
    Ok(taken == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_until_the_lease_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = super::super::Database::Sqlite(dir.path().join("ibackup.db"));
        let first = super::super::Db::open(&path, 0).unwrap();
        // A second server: its own connections to the same database.
        let second = super::super::Db::open(&path, 0).unwrap();
        let take_as = |db: &super::super::Db, holder: &str, now: i64| {
            db.blocking(|conn| take(conn, "maintenance", holder, now, now + 600))
                .unwrap()
        };
        assert!(take_as(&first, "a", 1000));
        assert!(!take_as(&second, "b", 1000));
        assert!(!take_as(&second, "b", 1599));
        assert!(!take_as(&first, "a", 1599), "not even again by its holder");
        assert!(take_as(&second, "b", 1600));
        assert!(!take_as(&first, "a", 1700));
        assert!(take_as(&first, "a", 2200));
    }
}
