//! The schema of each engine, in a file of its own, with its migrations.

mod postgres;
mod sqlite;

use super::{Conn, DbError};

/// Brings the database's schema up to what this server knows, refusing a newer one.
pub fn migrate(conn: &mut Conn) -> Result<(), DbError> {
    if conn.is_sqlite() {
        sqlite::migrate(conn)
    } else {
        postgres::migrate(conn)
    }
}
