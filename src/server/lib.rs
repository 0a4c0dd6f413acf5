//! `ibackup-server`: accounts, sessions, libraries and encrypted objects over HTTPS.
//!
//! The server never decrypts anything: it stores blobs it cannot read, checks what it can
//! without keys (sizes, kinds, references, quota, permissions) and moves library heads only
//! by compare-and-swap.
//!
//! Its parts: `http` (the routes, a module per area) over `state` (what handlers share);
//! `db` (the metadata, all SQL) and `storage` (the packs); `maintenance`, `gc` and `verify`
//! (work of its own, also run by `admin` commands); `billing`, `mail`, `throttle`, `hashing`,
//! `records` (services the routes and the maintenance pass use).

// What client and server share, named here as if it were this crate's own.
pub use ibackup_proto::{api, crypto, fsutil, model, units};

pub mod admin;
pub mod billing;
pub mod config;
pub mod db;
pub mod error;
pub mod gc;
pub mod hashing;
pub mod http;
pub mod mail;
pub mod maintenance;
pub mod memory;
pub mod proxy;
pub mod records;
pub mod state;
pub mod storage;
pub mod throttle;
pub mod tls;
pub mod validate;
pub mod verify;
pub mod write_deadline;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use self::error::{ServerError, ServerResult};
use crate::fsutil::create_private_dir;

/// Which data directory, and where its packs are kept (`server.toml` says, unless these
/// options do).
#[derive(Clone, Debug, clap::Args, Serialize, Deserialize)]
pub struct DataDirOptions {
    /// Where the configuration, database, local packs and certificate live.
    #[arg(long, env = "IBACKUP_DATA_DIR")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: storage::StorageOptions,
}

/// Options of `ibackup-server serve`.
#[derive(Clone, Debug, clap::Args, Serialize, Deserialize)]
pub struct ServeOptions {
    #[command(flatten)]
    #[serde(flatten)]
    pub place: DataDirOptions,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS (only on a loopback address).
    #[arg(long)]
    pub insecure_http: bool,
}

/// What a data directory holds, opened.
pub struct DataDir {
    pub db: db::Db,
    pub blobs: Arc<dyn storage::BlobStore>,
    pub config: Arc<config::ServerConfig>,
    pub secret: Arc<[u8; 32]>,
    pub processor: Arc<dyn billing::processor::PaymentProcessor>,
    pub mailer: Arc<mail::Mailer>,
}

impl DataDir {
    pub fn maintenance(&self) -> maintenance::Maintenance {
        maintenance::Maintenance {
            db: self.db.clone(),
            blobs: self.blobs.clone(),
            config: self.config.clone(),
            processor: self.processor.clone(),
            mailer: self.mailer.clone(),
        }
    }
}

/// Opens the database, blob store, configuration and secret of a data directory, creating
/// them on first use. The database remembers where its packs are: opening it with another
/// blob store is refused, as collection there would find none of its packs.
pub fn open_data_dir(place: &DataDirOptions) -> ServerResult<DataDir> {
    let data_dir = place.data_dir.as_path();
    create_private_dir(data_dir).map_err(ServerError::io(format!(
        "cannot make the data directory {}",
        data_dir.display()
    )))?;
    let config = Arc::new(config::ServerConfig::load_or_create(data_dir)?);
    let chosen = place.storage.or(&config.storage);
    let database = db::Db::open(&chosen.database(data_dir)?, config.limits.db_readers)?;
    let blobs = storage::open(&chosen, config.s3_credentials.clone(), data_dir)?;
    database.blocking(|conn| db::settings::check_blob_store(conn, &blobs.location()))?;
    let legacy = load_legacy_secret(&data_dir.join("server-secret"))?;
    let secret = database.blocking(|conn| {
        db::settings::server_secret(conn, || legacy.unwrap_or_else(rand::random))
    })?;
    let secret = Arc::new(secret);
    let mailer = Arc::new(mail::Mailer::new(&config, data_dir)?);
    let processor = Arc::new(billing::processor::OfflineLedger::new(database.clone()));
    Ok(DataDir {
        db: database,
        blobs,
        config,
        secret,
        processor,
        mailer,
    })
}

/// The secret a data directory kept in a file before it moved into the database (where
/// every server sharing the database finds the same one).
fn load_legacy_secret(path: &Path) -> ServerResult<Option<[u8; 32]>> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(None);
    };
    match <[u8; 32]>::try_from(bytes.as_slice()) {
        Ok(secret) => Ok(Some(secret)),
        Err(_) => Err(ServerError::Refused(format!(
            "{} is damaged (not 32 bytes); move it away to make a new one",
            path.display()
        ))),
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(options: ServeOptions) -> ServerResult<()> {
    if options.insecure_http && !options.listen.ip().is_loopback() {
        return Err(ServerError::Refused(format!(
            "plain HTTP is allowed only on a loopback address ({} is not); drop \
             --insecure-http to serve HTTPS",
            options.listen.ip()
        )));
    }
    // Opening blocks (PostgreSQL's driver runs its own small runtime), so it runs beside
    // this one.
    let place = options.place.clone();
    let data = tokio::task::spawn_blocking(move || open_data_dir(&place))
        .await
        .map_err(|e| ServerError::Refused(format!("opening the data directory failed: {e}")))??;
    let tls = if options.insecure_http {
        None
    } else {
        let identity = tls::load_or_create(&options.place.data_dir.join("tls"))
            .map_err(ServerError::Refused)?;
        Some(identity)
    };
    let dummy_hash = crate::crypto::kdf::hash_auth_secret(&rand::random::<[u8; 32]>())?;
    let state = state::AppState {
        db: data.db.clone(),
        blobs: data.blobs.clone(),
        secret: data.secret.clone(),
        dummy_hash: Arc::from(dummy_hash),
        config: data.config.clone(),
        processor: data.processor.clone(),
        mailer: data.mailer.clone(),
        records: Arc::new(records::SessionRecords::default()),
        reach: Arc::default(),
        hashers: Arc::new(hashing::Hashers::new(&data.config.limits)),
        uploads: Arc::new(memory::MemoryBound::new(data.config.limits.upload_memory)),
        answers: Arc::new(memory::MemoryBound::new(data.config.limits.fetch_memory)),
        certificate: tls
            .as_ref()
            .map(|identity| Arc::from(identity.fingerprint.as_str())),
    };
    spawn_background(&state, data.maintenance());
    let router = http::router(state.clone());
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(ServerError::io(format!(
            "cannot listen on {}",
            options.listen
        )))?;
    let address = listener
        .local_addr()
        .map_err(ServerError::io("cannot read the listening address"))?;
    match &tls {
        Some(identity) => {
            println!("listening on https://{address}");
            println!("certificate fingerprint {}", identity.fingerprint);
        }
        None => println!("listening on http://{address}"),
    }
    use std::io::Write;
    std::io::stdout()
        .flush()
        .map_err(ServerError::io("cannot write the address to stdout"))?;
    let acceptor = tls.map(|identity| tokio_rustls::TlsAcceptor::from(identity.config));

    let limits = state.config.limits.clone();
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServerError::io("cannot watch for SIGTERM"))?;
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        // A connection is accepted only when it can be served: past the limit, new ones
        // wait in the kernel's backlog.
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => {
                slot.expect("the connection semaphore is never closed")
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    pair
                }
                Err(e) => {
                    // Out of file descriptors (or memory): accepting again at once would
                    // spin; wait for connections to close.
                    tracing::warn!("accept failed: {e}; waiting {} ms", backoff.as_millis());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        };
        let router = router.clone();
        let acceptor = acceptor.clone();
        let timeout = limits.request_timeout;
        let from_balancer = limits.balancers.contains(&peer.ip());
        tokio::spawn(async move {
            let _slot = slot;
            let mut stream = stream;
            let _ = stream.set_nodelay(true);
            // A configured balancer says whose connection this is first.
            let peer = if from_balancer {
                match tokio::time::timeout(timeout, proxy::read_header(&mut stream)).await {
                    Ok(Ok(client)) => client.unwrap_or(peer),
                    Ok(Err(e)) => return tracing::warn!("balancer {peer}: {e}"),
                    Err(_) => return tracing::debug!("balancer {peer} sent no PROXY header"),
                }
            } else {
                peer
            };
            match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve_connection(tls_stream, peer, router, timeout).await
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                }
                None => serve_connection(stream, peer, router, timeout).await,
            }
        });
    }
    tracing::info!("shutting down");
    state.records.flush(&state.db).await?;
    Ok(())
}

/// How often gathered session records are written.
const RECORD_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

fn spawn_background(state: &state::AppState, maintenance: maintenance::Maintenance) {
    let records = state.records.clone();
    let database = state.db.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RECORD_FLUSH);
        loop {
            tick.tick().await;
            if let Err(e) = records.flush(&database).await {
                tracing::warn!("session records not written: {e}");
            }
        }
    });
    let interval = state.config.maintenance_interval;
    let maintenance = Arc::new(maintenance);
    // This process's name in the leases it takes.
    let holder = db::random_id();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            let pass = maintenance.clone();
            let holder = holder.clone();
            // Of the servers sharing a database, one does each interval's pass.
            let run = move || -> ServerResult<Option<maintenance::Report>> {
                let now = db::now();
                let until = now + interval.as_secs().max(1) as i64;
                let ours = pass
                    .db
                    .blocking(|conn| db::leases::take(conn, "maintenance", &holder, now, until))?;
                ours.then(|| pass.run_once()).transpose()
            };
            match tokio::task::spawn_blocking(run).await {
                Ok(Ok(Some(report))) => tracing::debug!("maintenance: {report:?}"),
                Ok(Ok(None)) => tracing::debug!("maintenance: another server's turn"),
                Ok(Err(e)) => tracing::warn!("maintenance failed: {e:#}"),
                Err(e) => tracing::warn!("maintenance task failed: {e}"),
            }
        }
    });
}

/// First and longest wait after a failed accept.
const ACCEPT_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves HTTP/1.1 on one connection. A request's headers must arrive within `timeout`,
/// and so must the next request on an idle connection, or the connection is closed; so is
/// one whose client stops reading an answer for `timeout`.
async fn serve_connection<IO>(
    io: IO,
    peer: SocketAddr,
    router: axum::Router,
    timeout: std::time::Duration,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout);
    let io = write_deadline::WriteDeadline::new(io, timeout);
    if let Err(e) = builder.serve_connection(TokioIo::new(io), service).await {
        tracing::debug!("connection from {peer} ended: {e}");
    }
}
