//! SQLite through rusqlite: statements as written, each cached on its connection.

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::{Flow, Params, Row, Value};
use crate::db::DbError;

/// A bound value, as rusqlite takes it.
struct Bound<'a>(Value<'a>);

impl rusqlite::ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Int(value) => ValueRef::Integer(value),
            Value::Real(value) => ValueRef::Real(value),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

fn bind<'a>(params: &'a Params<'a>) -> Result<Vec<Bound<'a>>, DbError> {
    params
        .iter()
        .map(|param| param.value().map(Bound))
        .collect()
}

pub(super) fn execute(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &Params,
) -> Result<usize, DbError> {
    let bound = bind(params)?;
    Ok(conn
        .prepare_cached(sql)?
        .execute(rusqlite::params_from_iter(bound.iter()))?)
}

pub(super) fn each(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &Params,
    f: &mut dyn FnMut(&Row<'_>) -> Result<Flow, DbError>,
) -> Result<(), DbError> {
    let bound = bind(params)?;
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(bound.iter()))?;
    while let Some(row) = rows.next()? {
        if let Flow::Stop = f(&Row::Sqlite(row))? {
            break;
        }
    }
    Ok(())
}

pub(super) fn cell<'a>(row: &'a rusqlite::Row<'_>, index: usize) -> Result<Value<'a>, DbError> {
    Ok(match row.get_ref(index)? {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(value) => Value::Int(value),
        ValueRef::Real(value) => Value::Real(value),
        ValueRef::Text(bytes) => Value::Text(
            std::str::from_utf8(bytes).map_err(|e| DbError::Value(format!("text column: {e}")))?,
        ),
        ValueRef::Blob(bytes) => Value::Blob(bytes),
    })
}
