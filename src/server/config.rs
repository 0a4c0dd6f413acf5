//! The server's configuration: `server.toml` in the data directory, written with commented
//! defaults on first start. It holds the plans, billing, session, survey and mail settings.
//! Unknown keys are refused, so a misspelt setting is an error, not silently ignored.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::storage::{S3Credentials, StorageOptions};
use crate::fsutil::write_atomic;
use crate::units::{format_size, parse_size};

pub const FILE_NAME: &str = "server.toml";

/// What a fresh data directory gets. It is also parsed for the defaults' own test.
pub const DEFAULT_CONFIG: &str = r#"# ibackup-server configuration. Edit and restart the server; unknown keys are refused.

# The address users reach this server at; opt-out links in e-mail point here.
public_url = "https://localhost:8443"

# Plans anyone can list with `ibackup account plans`. The first plan with price 0 is the one
# new accounts get. Prices are per billing period, in cents.
[[plans]]
name = "free"
quota = "5GiB"
price_cents = 0

[[plans]]
name = "personal"
quota = "500GiB"
price_cents = 499

[[plans]]
name = "pro"
quota = "2TiB"
price_cents = 999

[[plans]]
name = "business"
quota = "10TiB"
price_cents = 2999

[billing]
currency = "USD"
# Length of one billing period; a plan change is prorated over what is left of it.
period = "30days"
# After `ibackup account cancel`, data stays readable this long, then it is deleted.
cancel_grace = "30days"

[sessions]
# A session unused this long, or older than the absolute limit, must log in again.
idle_timeout = "30days"
absolute_timeout = "365days"
# Session records (timing and size only) are deleted after this.
record_retention = "90days"

[surveys]
# Survey reports show a choice's count only when at least this many chose it.
min_respondents = 5

[mail]
from = "ibackup <noreply@localhost>"
# Without [mail.smtp], messages are written as .eml files to the `mail-spool` folder in the
# data directory (for self-hosted servers without a mail relay).
# [mail.smtp]
# host = "smtp.example.com"
# port = 587
# username = "ibackup"
# password = "secret"

[maintenance]
# How often the server purges old records, renews subscriptions, ends canceled accounts
# past their grace period, applies retention policies and collects unreferenced data.
interval = "10min"
# Collection leaves alone data written or reused this recently (uploads in flight); keep it
# longer than the longest backup or mount upload.
gc_grace = "24h"
# How often every stored blob is checked against the checksum recorded at upload.
verify_interval = "7days"

[limits]
# Sign-ups from one network address (an IPv6 /64) before each further one must wait, 1 s
# and doubling up to a minute; the count is forgotten a day after the last one.
free_signups_per_address = 20
# Connections served at once; further ones wait to be accepted.
max_connections = 1024
# A client must finish the TLS handshake, send each request's headers, and keep a request
# body moving within this time; an idle connection is closed after it.
request_timeout = "30s"
# Upload bodies held in memory at once, over all requests; further uploads wait. One
# account holds at most a quarter of it (and always one upload's worth).
upload_memory = "512MiB"
# Fetch answers held in memory until the client has read them, likewise.
fetch_memory = "512MiB"
# Addresses of load balancers in TCP mode that send the PROXY protocol v2 header (HAProxy:
# `send-proxy-v2`), so throttles count each client's address, not the balancer's. Every
# connection from them must carry it; nobody else's is read. Example: ["10.0.0.5"].
balancers = []
# Password hashes (Argon2id, at sign-up, login and password change) computed at once, and
# how many more may wait; past that the server answers "busy, retry in a second".
# 0 hashers means half the processor cores (at least one).
hashers = 0
hash_queue = 64
# Read-only database connections beside the one that writes (SQLite); 0 reads through the
# writer.
db_readers = 4

[storage]
# Where packs (the encrypted blobs) are kept: "local", the `packs` folder of this data
# directory, or "s3://BUCKET/PREFIX" on an S3-compatible store (Garage, MinIO, AWS S3).
# `ibackup-server serve --blob-store ...` overrides this. See docs/SCALING.md.
blob_store = "local"
# s3_endpoint = "http://127.0.0.1:3900"
# s3_region = "garage"
# Credentials, if not in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY:
# s3_access_key_id = "GK..."
# s3_secret_access_key = "..."
# The metadata database (default: ibackup.db here). Servers sharing one database (and one
# S3 bucket) serve the same accounts: `--database sqlite:PATH` on one machine.
# database = "sqlite:/srv/ibackup/shared.db"
"#;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    path: String,
    message: String,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub quota_bytes: u64,
    pub price_cents: u64,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub public_url: String,
    pub plans: Vec<Plan>,
    pub currency: String,
    pub billing_period: Duration,
    pub cancel_grace: Duration,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub record_retention: Duration,
    pub survey_min_respondents: u64,
    pub mail_from: String,
    pub smtp: Option<SmtpConfig>,
    pub maintenance_interval: Duration,
    /// Collection spares blobs written or reused this recently.
    pub gc_grace: Duration,
    /// How often the maintenance pass verifies every blob.
    pub verify_interval: Duration,
    pub limits: Limits,
    /// Where packs are kept, as the file says (command-line options override it).
    pub storage: StorageOptions,
    /// S3 access key id and secret from the file, if there.
    pub s3_credentials: Option<S3Credentials>,
}

/// Bounds that keep a flood of requests from starving the rest (`[limits]`).
#[derive(Clone, Debug)]
pub struct Limits {
    pub free_signups_per_address: u32,
    pub max_connections: usize,
    pub request_timeout: Duration,
    pub upload_memory: u64,
    pub fetch_memory: u64,
    pub balancers: Vec<std::net::IpAddr>,
    pub hashers: usize,
    pub hash_queue: usize,
    pub db_readers: usize,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Plain SMTP without TLS: only for a relay on this machine.
    #[serde(default)]
    pub insecure_plaintext: bool,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn default_smtp_port() -> u16 {
    587
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    public_url: String,
    plans: Vec<RawPlan>,
    billing: RawBilling,
    sessions: RawSessions,
    surveys: RawSurveys,
    mail: RawMail,
    maintenance: RawMaintenance,
    /// Absent from files written before the limits existed.
    #[serde(default)]
    limits: RawLimits,
    /// Absent from files written before S3 storage existed.
    #[serde(default)]
    storage: RawStorage,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawStorage {
    blob_store: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    database: Option<String>,
}

impl RawStorage {
    fn parse(self) -> Result<(StorageOptions, Option<S3Credentials>), String> {
        let credentials = match (self.s3_access_key_id, self.s3_secret_access_key) {
            (Some(access_key_id), Some(secret_access_key)) => Some(S3Credentials {
                access_key_id,
                secret_access_key,
            }),
            (None, None) => None,
            _ => {
                return Err(
                    "storage: give both s3_access_key_id and s3_secret_access_key, or neither"
                        .into(),
                )
            }
        };
        let options = StorageOptions {
            blob_store: self.blob_store,
            s3_endpoint: self.s3_endpoint,
            s3_region: self.s3_region,
            database: self.database,
        };
        Ok((options, credentials))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    free_signups_per_address: u32,
    max_connections: usize,
    request_timeout: String,
    upload_memory: String,
    fetch_memory: String,
    balancers: Vec<String>,
    hashers: usize,
    hash_queue: usize,
    db_readers: usize,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            free_signups_per_address: 20,
            max_connections: 1024,
            request_timeout: "30s".into(),
            upload_memory: "512MiB".into(),
            fetch_memory: "512MiB".into(),
            balancers: Vec::new(),
            hashers: 0,
            hash_queue: 64,
            db_readers: 4,
        }
    }
}

impl RawLimits {
    fn parse(self) -> Result<Limits, String> {
        if self.max_connections < 2 {
            return Err("limits.max_connections must be at least 2".into());
        }
        let batch = |name: &str, text: &str| {
            let bytes = parse_size(text).map_err(|e| format!("limits.{name} = \"{text}\": {e}"))?;
            if bytes < crate::api::routes::MAX_BATCH_BYTES as u64 {
                return Err(format!(
                    "limits.{name} must hold at least one batch ({})",
                    format_size(crate::api::routes::MAX_BATCH_BYTES as u64)
                ));
            }
            Ok(bytes)
        };
        let upload_memory = batch("upload_memory", &self.upload_memory)?;
        let fetch_memory = batch("fetch_memory", &self.fetch_memory)?;
        let hashers = match self.hashers {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n,
        };
        Ok(Limits {
            free_signups_per_address: self.free_signups_per_address,
            max_connections: self.max_connections,
            request_timeout: duration("limits.request_timeout", &self.request_timeout)?,
            upload_memory,
            fetch_memory,
            balancers: self
                .balancers
                .iter()
                .map(|a| {
                    a.parse().map_err(|_| {
                        format!("limits.balancers: `{a}` is not an IP address (like 10.0.0.5)")
                    })
                })
                .collect::<Result<_, String>>()?,
            hashers,
            hash_queue: self.hash_queue,
            db_readers: self.db_readers.min(64),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    name: String,
    quota: String,
    price_cents: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBilling {
    currency: String,
    period: String,
    cancel_grace: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessions {
    idle_timeout: String,
    absolute_timeout: String,
    record_retention: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSurveys {
    min_respondents: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    from: String,
    #[serde(default)]
    smtp: Option<SmtpConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    interval: String,
    /// Absent from files written before collection existed.
    #[serde(default = "default_gc_grace")]
    gc_grace: String,
    #[serde(default = "default_verify_interval")]
    verify_interval: String,
}

fn default_verify_interval() -> String {
    "7days".into()
}

fn default_gc_grace() -> String {
    "24h".into()
}

fn duration(key: &str, text: &str) -> Result<Duration, String> {
    let value = humantime::parse_duration(text).map_err(|e| {
        format!("{key} = \"{text}\" is not a duration ({e}); write e.g. \"30days\"")
    })?;
    if value.is_zero() {
        return Err(format!("{key} must be longer than zero"));
    }
    Ok(value)
}

/// The collection grace period: spared data must outlive the longest upload session, so
/// the file may not set less than an hour (`ibackup-server gc --grace` may, for an
/// operator who knows nothing is uploading).
fn grace(text: &str) -> Result<Duration, String> {
    let value = duration("maintenance.gc_grace", text)?;
    if value < Duration::from_secs(3600) {
        return Err(format!(
            "maintenance.gc_grace = \"{text}\" is shorter than an hour; uploads in flight \
             could lose blobs they rely on. Use at least \"1h\" (default \"24h\")"
        ));
    }
    Ok(value)
}

impl ServerConfig {
    /// Reads `server.toml` from `data_dir`, writing the defaults first if it is missing.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = data_dir.join(FILE_NAME);
        let error = |message: String| ConfigError {
            path: path.display().to_string(),
            message,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomic(&path, DEFAULT_CONFIG.as_bytes(), 0o600)
                    .map_err(|e| error(format!("cannot write the default configuration: {e}")))?;
                DEFAULT_CONFIG.to_owned()
            }
            Err(e) => return Err(error(format!("cannot read: {e}"))),
        };
        Self::parse(&text).map_err(error)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let (storage, s3_credentials) = raw.storage.parse()?;
        let mut plans = Vec::new();
        for plan in raw.plans {
            let name = plan.name.trim().to_owned();
            let valid_name = !name.is_empty()
                && name.len() <= 32
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name {
                return Err(format!(
                    "plan name `{name}`: use 1 to 32 letters, digits, `-` or `_`"
                ));
            }
            if plans.iter().any(|p: &Plan| p.name == name) {
                return Err(format!("plan `{name}` is listed twice"));
            }
            let quota_bytes = parse_size(&plan.quota)
                .map_err(|e| format!("plan `{name}`: quota \"{}\": {e}", plan.quota))?;
            plans.push(Plan {
                name,
                quota_bytes,
                price_cents: plan.price_cents,
            });
        }
        if !plans.iter().any(|p| p.price_cents == 0) {
            return Err("list at least one plan with price_cents = 0 for new accounts".into());
        }
        let public_url = raw.public_url.trim_end_matches('/').to_owned();
        url::Url::parse(&public_url).map_err(|e| format!("public_url: {e}"))?;
        if raw.surveys.min_respondents == 0 {
            return Err("surveys.min_respondents must be at least 1".into());
        }
        Ok(Self {
            public_url,
            plans,
            currency: raw.billing.currency,
            billing_period: duration("billing.period", &raw.billing.period)?,
            cancel_grace: duration("billing.cancel_grace", &raw.billing.cancel_grace)?,
            idle_timeout: duration("sessions.idle_timeout", &raw.sessions.idle_timeout)?,
            absolute_timeout: duration(
                "sessions.absolute_timeout",
                &raw.sessions.absolute_timeout,
            )?,
            record_retention: duration(
                "sessions.record_retention",
                &raw.sessions.record_retention,
            )?,
            survey_min_respondents: raw.surveys.min_respondents,
            mail_from: raw.mail.from,
            smtp: raw.mail.smtp,
            maintenance_interval: duration("maintenance.interval", &raw.maintenance.interval)?,
            gc_grace: grace(&raw.maintenance.gc_grace)?,
            verify_interval: duration(
                "maintenance.verify_interval",
                &raw.maintenance.verify_interval,
            )?,
            limits: raw.limits.parse()?,
            storage,
            s3_credentials,
        })
    }

    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }

    /// The plan new accounts get: the first free one.
    pub fn default_plan(&self) -> &Plan {
        self.plans
            .iter()
            .find(|p| p.price_cents == 0)
            .expect("parse checks a free plan exists")
    }

    /// The storage limit of an account: an administrator's override, else its plan's (a plan
    /// since removed from the configuration counts as the default plan).
    pub fn quota_for(&self, plan: &str, quota_override: Option<i64>) -> u64 {
        match quota_override {
            Some(bytes) => bytes.max(0) as u64,
            None => self.plan_or_default(plan).quota_bytes,
        }
    }

    /// An account's plan `name`, or the default plan if it was since removed from the
    /// configuration.
    pub fn plan_or_default(&self, name: &str) -> &Plan {
        self.plan(name).unwrap_or_else(|| self.default_plan())
    }

    /// What to answer for a plan `name` that is not configured.
    pub fn unknown_plan(&self, name: &str) -> String {
        format!("unknown plan `{name}`; choose one of {}", self.plan_names())
    }

    pub fn plan_names(&self) -> String {
        self.plans
            .iter()
            .map(|p| format!("{} ({})", p.name, format_size(p.quota_bytes)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let config = ServerConfig::parse(DEFAULT_CONFIG).unwrap();
        assert_eq!(config.plans.len(), 4);
        assert_eq!(config.default_plan().name, "free");
        assert_eq!(config.quota_for("free", None), 5 << 30);
        assert_eq!(config.quota_for("gone", None), 5 << 30);
        assert_eq!(config.quota_for("pro", Some(7)), 7);
        assert_eq!(config.cancel_grace, Duration::from_secs(30 * 86400));
        assert_eq!(config.survey_min_respondents, 5);
        assert!(config.smtp.is_none());
    }

    #[test]
    fn a_grace_period_under_an_hour_is_refused() {
        let short = DEFAULT_CONFIG.replace("gc_grace = \"24h\"", "gc_grace = \"10min\"");
        let error = ServerConfig::parse(&short).unwrap_err();
        assert!(error.contains("shorter than an hour"), "{error}");
        let old = DEFAULT_CONFIG.replace("gc_grace = \"24h\"\n", "");
        assert_eq!(
            ServerConfig::parse(&old).unwrap().gc_grace,
            Duration::from_secs(24 * 3600),
            "files from before collection get the default"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let typo = DEFAULT_CONFIG.replace("[surveys]", "[surveys]\nmin_respondent = 3");
        assert!(ServerConfig::parse(&typo)
            .unwrap_err()
            .contains("min_respondent"));
        let bad = DEFAULT_CONFIG.replace("cancel_grace = \"30days\"", "cancel_grace = \"soon\"");
        assert!(ServerConfig::parse(&bad)
            .unwrap_err()
            .contains("billing.cancel_grace"));
        let no_free = DEFAULT_CONFIG.replace("price_cents = 0", "price_cents = 1");
        assert!(ServerConfig::parse(&no_free)
            .unwrap_err()
            .contains("price_cents = 0"));
    }
}
