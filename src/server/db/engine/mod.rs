//! The two metadata engines behind one connection type. The modules of `db/` write each
//! statement once, with `?N` placeholders, and call [`Conn`] the way they called rusqlite:
//! `execute`, `query_row` with [`OptionalExtension::optional`], `prepare` and `query_map`,
//! `transaction`. Over SQLite that is rusqlite itself; over PostgreSQL the placeholders
//! become `$N` and values are converted at the boundary ([`postgres`]).
//!
//! Portable SQL is the rule: what one engine alone understands is written in the form both
//! do (`ON CONFLICT`, `RETURNING`, `IS DISTINCT FROM`, `CASE` for a two-value maximum,
//! `CAST(SUM(..) AS BIGINT)`, `"offset"` quoted). docs/SCALING.md lists them.

mod postgres;
mod sqlite;

use std::cell::RefCell;

pub use self::postgres::PgConn;

use super::DbError;

/// Which database the server keeps its metadata in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(std::path::PathBuf),
    /// A `postgres://` URL (credentials included, so never printed: see [`Database::show`]).
    Postgres(String),
}

impl Database {
    /// The database as it may be printed: a PostgreSQL password is left out.
    pub fn show(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("sqlite:{}", path.display()),
            Database::Postgres(url) => postgres::without_password(url),
        }
    }
}

/// One connection to either engine.
pub struct Conn(Engine);

enum Engine {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<PgConn>>),
}

/// A value bound to a placeholder or read from a column, borrowed from the caller or the
/// row.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// What can be bound to a placeholder.
pub trait Param {
    fn value(&self) -> Result<Value<'_>, DbError>;
}

/// The values of one statement's placeholders, in order (`params![a, b]`).
pub type Params<'a> = [&'a dyn Param];

/// The placeholders' values of one statement, as rusqlite's macro of the same name wrote
/// them.
#[macro_export]
macro_rules! params {
    () => { &[] as &[&dyn $crate::db::Param] };
    ($($value:expr),+ $(,)?) => {
        &[$(&$value as &dyn $crate::db::Param),+] as &[&dyn $crate::db::Param]
    };
}
pub use params;

/// What a column can be read as.
pub trait FromSql: Sized {
    fn from_value(value: Value<'_>) -> Result<Self, DbError>;
}

/// A row of a result, as a statement's row closure sees it.
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a ::postgres::Row),
}

/// A column's position in a row (from 0).
pub trait ColumnIndex {
    fn position(self) -> usize;
}

impl ColumnIndex for usize {
    fn position(self) -> usize {
        self
    }
}

impl Row<'_> {
    /// Column `index` as a `T`; a type that does not fit is an error, not a guess.
    pub fn get<I: ColumnIndex, T: FromSql>(&self, index: I) -> Result<T, DbError> {
        let index = index.position();
        match self {
            Row::Sqlite(row) => T::from_value(sqlite::cell(row, index)?),
            Row::Postgres(row) => T::from_value(postgres::cell(row, index)?),
        }
    }
}

/// `Ok(None)` where a query found no row, as rusqlite's trait of the same name.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>, DbError>;
}

impl<T> OptionalExtension<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(DbError::NoRows) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl Conn {
    pub(crate) fn sqlite(conn: rusqlite::Connection) -> Self {
        Conn(Engine::Sqlite(conn))
    }

    pub(crate) fn postgres(conn: PgConn) -> Self {
        Conn(Engine::Postgres(Box::new(RefCell::new(conn))))
    }

    /// Whether this is SQLite (for the few maintenance steps only it has, as checkpoints).
    pub fn is_sqlite(&self) -> bool {
        matches!(self.0, Engine::Sqlite(_))
    }

    /// The SQLite connection, for steps only SQLite has; none on PostgreSQL.
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.0 {
            Engine::Sqlite(conn) => Some(conn),
            Engine::Postgres(_) => None,
        }
    }

    /// The PostgreSQL connection, for the engine's own steps (locks, reconnecting).
    pub(super) fn as_postgres(&self) -> Option<std::cell::RefMut<'_, PgConn>> {
        match &self.0 {
            Engine::Sqlite(_) => None,
            Engine::Postgres(conn) => Some(conn.borrow_mut()),
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &Params) -> Result<usize, DbError> {
        match &self.0 {
            Engine::Sqlite(conn) => sqlite::execute(conn, sql, params),
            Engine::Postgres(conn) => conn.borrow_mut().execute(sql, params),
        }
    }

    /// Runs several statements without parameters (schemas, tests).
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        match &self.0 {
            Engine::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Engine::Postgres(conn) => conn.borrow_mut().batch(sql),
        }
    }

    /// The first row's `f`; [`DbError::NoRows`] when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &Params,
        f: impl FnOnce(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut f = Some(f);
        let mut first = None;
        self.each(sql, params, &mut |row| {
            if let Some(f) = f.take() {
                first = Some(f(row)?);
            }
            Ok(Flow::Stop)
        })?;
        first.ok_or(DbError::NoRows)
    }

    /// `f` of every row, in order.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &Params,
        mut f: impl FnMut(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        let mut rows = Vec::new();
        self.each(sql, params, &mut |row| {
            rows.push(f(row)?);
            Ok(Flow::More)
        })?;
        Ok(rows)
    }

    /// Whether the query returns a row.
    pub fn exists(&self, sql: &str, params: &Params) -> Result<bool, DbError> {
        self.query_row(sql, params, |_| Ok(()))
            .optional()
            .map(|found| found.is_some())
    }

    fn each(
        &self,
        sql: &str,
        params: &Params,
        f: &mut dyn FnMut(&Row<'_>) -> Result<Flow, DbError>,
    ) -> Result<(), DbError> {
        match &self.0 {
            Engine::Sqlite(conn) => sqlite::each(conn, sql, params, f),
            Engine::Postgres(conn) => conn.borrow_mut().each(sql, params, f),
        }
    }

    /// A statement to run several times (statements are cached per connection by both
    /// engines, so this only keeps the text).
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        Ok(Stmt {
            conn: self,
            sql: sql.to_owned(),
        })
    }

    /// The same as [`Conn::prepare`]: every statement is cached.
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        self.prepare(sql)
    }

    /// A transaction, rolled back unless committed. On SQLite it takes the write lock when
    /// it begins (`BEGIN IMMEDIATE`), where a busy database is waited for; on PostgreSQL
    /// writers already take turns ([`super::Db::call`]).
    pub fn transaction(&mut self) -> Result<Tx<'_>, DbError> {
        self.execute_batch(match self.0 {
            Engine::Sqlite(_) => "BEGIN IMMEDIATE",
            Engine::Postgres(_) => "BEGIN",
        })?;
        Ok(Tx {
            conn: self,
            open: true,
        })
    }
}

/// Whether a row callback wants the rows after this one.
pub(super) enum Flow {
    More,
    Stop,
}

/// A statement kept for running several times.
pub struct Stmt<'c> {
    conn: &'c Conn,
    sql: String,
}

impl Stmt<'_> {
    pub fn execute(&mut self, params: &Params) -> Result<usize, DbError> {
        self.conn.execute(&self.sql, params)
    }

    pub fn query_row<T>(
        &mut self,
        params: &Params,
        f: impl FnOnce(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.conn.query_row(&self.sql, params, f)
    }

    /// `f` of every row, each as a result (as rusqlite's `query_map` yields them).
    pub fn query_map<T>(
        &mut self,
        params: &Params,
        f: impl FnMut(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<impl Iterator<Item = Result<T, DbError>>, DbError> {
        let rows = self.conn.query_map(&self.sql, params, f)?;
        Ok(rows.into_iter().map(Ok))
    }

    pub fn exists(&mut self, params: &Params) -> Result<bool, DbError> {
        self.conn.exists(&self.sql, params)
    }
}

/// An open transaction; it reads and writes as its connection does.
pub struct Tx<'c> {
    conn: &'c mut Conn,
    open: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<(), DbError> {
        self.open = false;
        self.conn.execute_batch("COMMIT")
    }

    pub fn rollback(mut self) -> Result<(), DbError> {
        self.open = false;
        self.conn.execute_batch("ROLLBACK")
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing is kept of a transaction not committed; a connection that broke has
            // rolled it back already.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Param for i64 {
    fn value(&self) -> Result<Value<'_>, DbError> {
        Ok(Value::Int(*self))
    }
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn value(&self) -> Result<Value<'_>, DbError> {
                i64::try_from(*self).map(Value::Int).map_err(|_| {
                    DbError::Value(format!("{self} does not fit a 64-bit signed column"))
                })
            }
        }
    )*};
}
int_param!(i32, u32, u64, usize, u16, u8);

impl Param for bool {
    fn value(&self) -> Result<Value<'_>, DbError> {
        Ok(Value::Int(*self as i64))
    }
}

impl Param for f64 {
    fn value(&self) -> Result<Value<'_>, DbError> {
        Ok(Value::Real(*self))
    }
}

impl Param for str {
    fn value(&self) -> Result<Value<'_>, DbError> {
        Ok(Value::Text(self))
    }
}

impl Param for String {
    fn value(&self) -> Result<Value<'_>, DbError> {
        Ok(Value::Text(self))
    }
}

impl Param for [u8] {
    fn value(&self) -> Result<Value<'_>, DbError> {
        Ok(Value::Blob(self))
    }
}

impl Param for Vec<u8> {
    fn value(&self) -> Result<Value<'_>, DbError> {
        Ok(Value::Blob(self))
    }
}

impl<const N: usize> Param for [u8; N] {
    fn value(&self) -> Result<Value<'_>, DbError> {
        Ok(Value::Blob(self))
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Result<Value<'_>, DbError> {
        (**self).value()
    }
}

impl<T: Param> Param for Option<T> {
    fn value(&self) -> Result<Value<'_>, DbError> {
        match self {
            Some(value) => value.value(),
            None => Ok(Value::Null),
        }
    }
}

fn mismatch<T>(value: Value<'_>) -> DbError {
    DbError::Value(format!(
        "a column holds {value:?}, read as {}",
        std::any::type_name::<T>()
    ))
}

impl FromSql for i64 {
    fn from_value(value: Value<'_>) -> Result<Self, DbError> {
        match value {
            Value::Int(value) => Ok(value),
            other => Err(mismatch::<i64>(other)),
        }
    }
}

macro_rules! int_from_sql {
    ($($t:ty),*) => {$(
        impl FromSql for $t {
            fn from_value(value: Value<'_>) -> Result<Self, DbError> {
                let value = i64::from_value(value)?;
                <$t>::try_from(value).map_err(|_| {
                    DbError::Value(format!("{value} is out of range for {}", stringify!($t)))
                })
            }
        }
    )*};
}
int_from_sql!(i32, u32, u64, usize, u16, u8);

impl FromSql for bool {
    fn from_value(value: Value<'_>) -> Result<Self, DbError> {
        Ok(i64::from_value(value)? != 0)
    }
}

impl FromSql for f64 {
    fn from_value(value: Value<'_>) -> Result<Self, DbError> {
        match value {
            Value::Real(value) => Ok(value),
            Value::Int(value) => Ok(value as f64),
            other => Err(mismatch::<f64>(other)),
        }
    }
}

impl FromSql for String {
    fn from_value(value: Value<'_>) -> Result<Self, DbError> {
        match value {
            Value::Text(text) => Ok(text.to_owned()),
            other => Err(mismatch::<String>(other)),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_value(value: Value<'_>) -> Result<Self, DbError> {
        match value {
            Value::Blob(bytes) => Ok(bytes.to_vec()),
            other => Err(mismatch::<Vec<u8>>(other)),
        }
    }
}

impl<const N: usize> FromSql for [u8; N] {
    fn from_value(value: Value<'_>) -> Result<Self, DbError> {
        match value {
            Value::Blob(bytes) => bytes.try_into().map_err(|_| {
                DbError::Value(format!("a value of {} bytes where {N} belong", bytes.len()))
            }),
            other => Err(mismatch::<[u8; N]>(other)),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_value(value: Value<'_>) -> Result<Self, DbError> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}
