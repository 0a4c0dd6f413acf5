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
use crate::db::DbError;

/// How long a connection attempt may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One PostgreSQL connection, its prepared statements, and how to open it again after the
/// server went away.
pub struct PgConn {
    config: Config,
    /// Set with `sslmode=verify-full`: TLS with the server's certificate checked against
    /// the CA of `sslrootcert` and the host name.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    read_only: bool,
    client: Option<Client>,
    statements: HashMap<String, Statement>,
}

impl PgConn {
    /// Parses `url` (refusing what would send the password in clear over a network) and
    /// connects; `read_only` connections refuse changes, as SQLite's readers do.
    pub fn connect(url: &str, read_only: bool) -> Result<Self, DbError> {
        let (config, tls) = config(url)?;
        let mut conn = Self {
            config,
            tls,
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
        let mut client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        }
        .map_err(unavailable)?;
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

/// The URL parsed, with a connect timeout and what TLS it asks for. `sslmode=verify-full`
/// with `sslrootcert=CA.pem` speaks TLS and checks the server's certificate and host name;
/// `sslmode=disable` says a plain connection over a trusted network is meant; without
/// either, only a Unix socket or loopback is used (a password would cross a network in
/// clear). The password may be in the URL, but is better kept out of the command line:
/// `passfile=FILE` in the URL, `PGPASSFILE`, `~/.pgpass` (libpq's format) or `PGPASSWORD`.
fn config(
    url: &str,
) -> Result<(Config, Option<tokio_postgres_rustls::MakeRustlsConnect>), DbError> {
    let bad = |why: String| DbError::Config(format!("--database {}: {why}", without_password(url)));
    let (rest, ours) = own_parameters(url);
    let mut config: Config = rest.parse().map_err(|e| {
        bad(format!(
            "{e}; write it as postgres://USER@HOST[:PORT]/DB[?sslmode=verify-full&sslrootcert=CA.pem]"
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
    let tls = match ours.sslmode.as_deref() {
        None | Some("disable") => None,
        Some("verify-full") => {
            let root = ours.sslrootcert.as_deref().ok_or_else(|| {
                bad("sslmode=verify-full needs sslrootcert=FILE, the CA that signed the database's certificate".into())
            })?;
            Some(tls_to(root).map_err(bad)?)
        }
        Some(other) => {
            return Err(bad(format!(
                "sslmode={other} is not supported: use sslmode=verify-full with \
                 sslrootcert=CA.pem (TLS, certificate checked), or sslmode=disable on a \
                 network you trust"
            )))
        }
    };
    if tls.is_none() && !local && ours.sslmode.as_deref() != Some("disable") {
        return Err(bad(
            "the database is on another machine: add `?sslmode=verify-full&sslrootcert=CA.pem` \
             for TLS, or `?sslmode=disable` on a private network you trust (docs/SCALING.md)"
                .into(),
        ));
    }
    if config.get_password().is_none() {
        if let Some(password) =
            password_from_files(&config, ours.passfile.as_deref()).map_err(bad)?
        {
            config.password(password);
        }
    }
    Ok((config, tls))
}

/// The URL parameters this server reads itself (libpq's names), and the URL without them.
#[derive(Default)]
struct OwnParameters {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    passfile: Option<String>,
}

fn own_parameters(url: &str) -> (String, OwnParameters) {
    let mut ours = OwnParameters::default();
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), ours);
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = url::form_urlencoded::parse(format!("v={value}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        match name {
            "sslmode" => ours.sslmode = Some(value),
            "sslrootcert" => ours.sslrootcert = Some(value),
            "passfile" => ours.passfile = Some(value),
            _ => kept.push(pair),
        }
    }
    let rest = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    (rest, ours)
}

/// A TLS connector that trusts only the CA certificates in the PEM file `root`.
fn tls_to(root: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(root)
        .and_then(|iter| iter.collect())
        .map_err(|e| format!("sslrootcert={root}: {e}"))?;
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| format!("sslrootcert={root}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert={root} holds no certificate"));
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The password for `config` from libpq's sources, in its order: a password file
/// (`passfile=` in the URL, else `PGPASSFILE`, else `~/.pgpass`), then `PGPASSWORD`.
fn password_from_files(config: &Config, passfile: Option<&str>) -> Result<Option<String>, String> {
    let file = passfile
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("PGPASSFILE").map(std::path::PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")));
    if let Some(file) = file {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                if let Some(found) = pgpass_lookup(&text, config) {
                    return Ok(Some(found));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && passfile.is_none() => {}
            Err(e) => return Err(format!("passfile {}: {e}", file.display())),
        }
    }
    Ok(std::env::var("PGPASSWORD").ok())
}

/// The password of the first line of a `.pgpass` text that matches `config`'s host, port,
/// database and user (`*` matches anything; `\:` and `\\` are escapes).
fn pgpass_lookup(text: &str, config: &Config) -> Option<String> {
    let host = config.get_hosts().first().map(|h| match h {
        ::postgres::config::Host::Tcp(name) => name.clone(),
        ::postgres::config::Host::Unix(_) => "localhost".to_owned(),
    })?;
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or_default();
    let user = config.get_user().unwrap_or_default();
    let wanted = [host.as_str(), port.as_str(), database, user];
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => field.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() == 5
            && fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want)
        {
            return fields.pop();
        }
    }
    None
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
        let refused = |url: &str| match config(url) {
            Err(DbError::Config(why)) => why,
            _ => panic!("{url} was taken"),
        };
        assert!(refused("postgres://ib@db.example/ib?sslmode=require").contains("verify-full"));
        assert!(refused("postgres://ib@db.example/ib?sslmode=verify-full").contains("sslrootcert"));
        assert!(refused(
            "postgres://ib@db.example/ib?sslmode=verify-full&sslrootcert=/nonexistent"
        )
        .contains("/nonexistent"));
    }

    #[test]
    fn own_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, ours) = own_parameters(
            "postgres://ib@h/db?sslmode=verify-full&connect_timeout=3&sslrootcert=%2Fetc%2Fca.pem&passfile=/p",
        );
        assert_eq!(rest, "postgres://ib@h/db?connect_timeout=3");
        assert_eq!(ours.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(ours.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(ours.passfile.as_deref(), Some("/p"));
    }

    #[test]
    fn a_pgpass_line_matches_host_port_database_and_user() {
        let config: Config = "postgres://ib@db.example:6432/meta".parse().unwrap();
        let text = "# comment\n\
                    other:6432:meta:ib:wrong\n\
                    db.example:*:meta:ib:pa\\:ss\n\
                    *:*:*:*:fallback\n";
        assert_eq!(pgpass_lookup(text, &config).as_deref(), Some("pa:ss"));
        assert_eq!(
            pgpass_lookup("*:*:*:*:any", &config).as_deref(),
            Some("any")
        );
        assert_eq!(pgpass_lookup("db.example:5432:meta:ib:x", &config), None);
    }
}
