//! PostgreSQL through the `postgres` crate, the blocking face of `tokio-postgres`: the
//! metadata code runs as closures on the blocking pool for both engines (DECISIONS 84).
//!
//! Statements arrive in the portable form, placeholders `?N`; they are rewritten to `$N`
//! once and prepared once per connection. Values are converted to the type the server
//! inferred for each placeholder (a `BIGINT` column takes an `i64`, an `INTEGER` an `i32`),
//! and columns are read back by their type, so the modules see the same values as on
//! SQLite.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::time::Duration;

use ::postgres::types::{IsNull, ToSql, Type};
use ::postgres::{Client, Config, NoTls, Statement};

use super::{Flow, Params, Row, Value};
use crate::server::db::DbError;

/// How long a connection attempt may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One PostgreSQL connection, its prepared statements, and how to open it again after the
/// server went away.
pub struct PgConn {
    config: Config,
    read_only: bool,
    client: Option<Client>,
    statements: HashMap<String, Statement>,
}

impl PgConn {
    /// Parses `url` (refusing what would send the password in clear over a network) and
    /// connects; `read_only` connections refuse changes, as SQLite's readers do.
    pub fn connect(url: &str, read_only: bool) -> Result<Self, DbError> {
        let mut conn = Self {
            config: config(url)?,
            read_only,
            client: None,
            statements: HashMap::new(),
        };
        conn.ready()?;
        Ok(conn)
    }

    /// Connects again if the connection broke (the database restarted): called before
    /// each use, never in the middle of one.
    pub fn ready(&mut self) -> Result<(), DbError> {
        if self
            .client
            .as_ref()
            .is_some_and(|client| !client.is_closed())
        {
            return Ok(());
        }
        self.client = None;
        self.statements.clear();
        let mut client = self.config.connect(NoTls).map_err(unavailable)?;
        if self.read_only {
            client
                .batch_execute("SET default_transaction_read_only = on")
                .map_err(classify)?;
        }
        self.client = Some(client);
        Ok(())
    }

    fn client(&mut self) -> Result<&mut Client, DbError> {
        self.client
            .as_mut()
            .ok_or_else(|| DbError::Unavailable("the connection to PostgreSQL was lost".into()))
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .client()?
            .prepare(&placeholders(sql))
            .map_err(|e| classify_in(e, sql))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub fn execute(&mut self, sql: &str, params: &Params) -> Result<usize, DbError> {
        let changed = self.run(sql, params, |client, statement, refs| {
            client.execute(statement, refs)
        })?;
        Ok(changed as usize)
    }

    /// `sql` prepared (or taken from the cache), `params` bound, and both handed to `run`
    /// with the connection; its error said with the statement.
    fn run<T>(
        &mut self,
        sql: &str,
        params: &Params,
        run: impl FnOnce(
            &mut Client,
            &Statement,
            &[&(dyn ToSql + Sync)],
        ) -> Result<T, ::postgres::Error>,
    ) -> Result<T, DbError> {
        let statement = self.statement(sql)?;
        let bound = bind(params)?;
        let refs = refs(&bound);
        run(self.client()?, &statement, &refs).map_err(|e| classify_in(e, sql))
    }

    pub fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.client()?
            .batch_execute(sql)
            .map_err(|e| classify_in(e, sql))
    }

    pub(super) fn each(
        &mut self,
        sql: &str,
        params: &Params,
        f: &mut dyn FnMut(&Row<'_>) -> Result<Flow, DbError>,
    ) -> Result<(), DbError> {
        let rows = self.run(sql, params, |client, statement, refs| {
            client.query(statement, refs)
        })?;
        for row in &rows {
            if let Flow::Stop = f(&Row::Postgres(row))? {
                break;
            }
        }
        Ok(())
    }
}

/// A bound value, converted to the type PostgreSQL inferred for its placeholder.
#[derive(Debug)]
struct Bound<'a>(Value<'a>);

impl ToSql for Bound<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut ::postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match (self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(value), &Type::INT8) => value.to_sql(ty, out),
            (Value::Int(value), &Type::INT4) => i32::try_from(value)?.to_sql(ty, out),
            (Value::Int(value), &Type::INT2) => i16::try_from(value)?.to_sql(ty, out),
            (Value::Int(value), &Type::BOOL) => (value != 0).to_sql(ty, out),
            (Value::Int(value), &Type::FLOAT8) => (value as f64).to_sql(ty, out),
            (Value::Real(value), &Type::FLOAT8) => value.to_sql(ty, out),
            (Value::Text(text), &Type::TEXT | &Type::VARCHAR | &Type::UNKNOWN) => {
                text.to_sql(ty, out)
            }
            (Value::Blob(bytes), &Type::BYTEA) => bytes.to_sql(ty, out),
            (value, ty) => Err(format!("{value:?} cannot be bound as {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    ::postgres::types::to_sql_checked!();
}

fn bind<'a>(params: &'a Params<'a>) -> Result<Vec<Bound<'a>>, DbError> {
    params
        .iter()
        .map(|param| param.value().map(Bound))
        .collect()
}

fn refs<'a>(bound: &'a [Bound<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    bound
        .iter()
        .map(|value| value as &(dyn ToSql + Sync))
        .collect()
}

pub(super) fn cell(row: &::postgres::Row, index: usize) -> Result<Value<'_>, DbError> {
    let column = row
        .columns()
        .get(index)
        .ok_or_else(|| DbError::Value(format!("no column {index}")))?;
    let cell = match *column.type_() {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(index)
            .map(|v| v.map(Value::Int)),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map(|v| v.map(|v| Value::Int(v.into()))),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map(|v| v.map(|v| Value::Int(v.into()))),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)
            .map(|v| v.map(|v| Value::Int(v.into()))),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(index)
            .map(|v| v.map(Value::Real)),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => row
            .try_get::<_, Option<&str>>(index)
            .map(|v| v.map(Value::Text)),
        Type::BYTEA => row
            .try_get::<_, Option<&[u8]>>(index)
            .map(|v| v.map(Value::Blob)),
        ref other => {
            return Err(DbError::Value(format!(
                "column {} is {other}; cast it to BIGINT, TEXT or BYTEA",
                column.name()
            )))
        }
    };
    Ok(cell.map_err(classify)?.unwrap_or(Value::Null))
}

/// The statement with `?N` (and bare `?`) placeholders as PostgreSQL's `$N`; quoted text
/// and names are left alone.
pub(super) fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    let mut bare = 0;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                out.push('$');
                if chars.peek().is_some_and(|next| next.is_ascii_digit()) {
                    while let Some(digit) = chars.next_if(|next| next.is_ascii_digit()) {
                        out.push(digit);
                    }
                } else {
                    bare += 1;
                    out.push_str(&bare.to_string());
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// The URL parsed, with a connect timeout; a password over a plain network connection is
/// refused (this build speaks to PostgreSQL without TLS: use a Unix socket, loopback, or
/// say `sslmode=disable` to accept a trusted network).
fn config(url: &str) -> Result<Config, DbError> {
    let mut config: Config = url.parse().map_err(|e| {
        DbError::Config(format!(
            "--database {}: {e}; write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DB",
            without_password(url)
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.application_name("ibackup-server");
    let local = config.get_hosts().iter().all(|host| match host {
        ::postgres::config::Host::Unix(_) => true,
        ::postgres::config::Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    });
    let plain_allowed = url.contains("sslmode=disable");
    if !local && !plain_allowed {
        return Err(DbError::Config(format!(
            "--database {}: this server speaks to PostgreSQL without TLS, so it connects only \
             over a Unix socket or loopback; on a private network you trust, add \
             `?sslmode=disable` to say so (docs/SCALING.md)",
            without_password(url)
        )));
    }
    Ok(config)
}

/// A `postgres://` URL with any password replaced by `***`.
pub(super) fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a PostgreSQL URL)".into();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.find("password=") {
        Some(at) => {
            let end = tail[at..].find('&').map_or(tail.len(), |end| at + end);
            format!("{}password=***{}", &tail[..at], &tail[end..])
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

fn unavailable(error: ::postgres::Error) -> DbError {
    let cause = error
        .source()
        .map(|cause| format!(": {cause}"))
        .unwrap_or_default();
    DbError::Unavailable(format!("cannot reach PostgreSQL: {error}{cause}"))
}

/// A lost connection or a database shutting down or starting is "unavailable" (the request
/// may be tried again); anything else is an error of the statement.
fn classify(error: ::postgres::Error) -> DbError {
    classify_in(error, "")
}

/// As [`classify`], naming the statement that failed (its text only: values are never
/// shown).
fn classify_in(error: ::postgres::Error, sql: &str) -> DbError {
    let lost = error.is_closed()
        || error
            .source()
            .is_some_and(|source| source.is::<std::io::Error>())
        || error.code().is_some_and(|code| {
            let code = code.code();
            code.starts_with("08") || code.starts_with("57P")
        });
    let said = match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    };
    let said = match sql {
        "" => said,
        sql => format!("{said}, in `{sql}`"),
    };
    if lost {
        DbError::Unavailable(format!("PostgreSQL: {said}"))
    } else {
        DbError::Postgres(said)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_outside_quotes() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?12 AND d = '?2' AND \"e?\" = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = $12 AND d = '?2' AND \"e?\" = $1"
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            without_password("postgres://ib:s3cret@db.example:5432/ib?sslmode=disable"),
            "postgres://ib:***@db.example:5432/ib?sslmode=disable"
        );
        assert_eq!(
            without_password("postgres://ib@/ib?host=/run/pg&password=x&a=b"),
            "postgres://ib@/ib?host=/run/pg&password=***&a=b"
        );
        assert_eq!(without_password("nonsense"), "(a PostgreSQL URL)");
    }

    #[test]
    fn plain_connections_leave_the_machine_only_when_asked() {
        assert!(config("postgres://ib@127.0.0.1:5432/ib").is_ok());
        assert!(config("postgres://ib@localhost/ib").is_ok());
        assert!(config("postgres://ib@db.example/ib").is_err());
        assert!(config("postgres://ib@db.example/ib?sslmode=disable").is_ok());
        assert!(config("postgres://ib@[::1]:5/ib").is_ok());
    }
}
