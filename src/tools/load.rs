//! `ibackup-load`: simulated clients against a running server, for `scripts/load`.
//!
//! Each client is a real ibackup client (its own account, keys, session and cache, the
//! library's code end to end) in a thread of this process. Setup registers them and backs
//! up a small tree each; then, for `--seconds`, each repeats operations drawn from the mix:
//! listing libraries, listing snapshots, polling the head, restoring its tree, and small
//! commits (one file changed, backed up: what a mount's commit sends). Every request is
//! timed by route. Prints one JSON document. Loopback only: this is a test tool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use ibackup_client::account::{self, RegisterOptions, DEFAULT_LIBRARY};
use ibackup_client::backup::{self, BackupOptions};
use ibackup_client::config::Paths;
use ibackup_client::remote::{observe_requests, parse_server_url};
use ibackup_client::repo::Repo;
use ibackup_client::restore::{self, RestoreOptions};
use ibackup_client::session::Session;
use ibackup_client::snapshots;
use ibackup_client::store::Store;
use rand::{Rng, RngCore, SeedableRng};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "ibackup-load",
    about = "Simulated ibackup clients against a server"
)]
struct Options {
    /// The server's URL (a loopback address).
    #[arg(long)]
    server: String,
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// How long the measured phase runs.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// `read`: mostly listing, polling and restoring, one commit in ten operations;
    /// `write`: commits in four of ten; `poll`: only head polls and library lists (what
    /// idle mounts and clients send; cheap for the clients, so it measures the server).
    #[arg(long, default_value = "read")]
    mix: Mix,
    /// Where the clients keep their state and trees (a temporary folder if not given).
    #[arg(long)]
    work: Option<PathBuf>,
    /// The servers' process ids, to report the processor time they used while measuring.
    #[arg(long)]
    server_pid: Vec<u32>,
}

/// Processor time (user and system) a process used so far, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some(ticks / 100.0)
}

#[derive(Clone, Copy, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mix {
    Read,
    Write,
    Poll,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
enum Operation {
    ListLibraries,
    ListSnapshots,
    PollHead,
    Restore,
    SmallCommit,
}

impl Mix {
    /// Operations and their weights.
    fn weights(self) -> &'static [(Operation, u32)] {
        match self {
            Mix::Read => &[
                (Operation::ListLibraries, 20),
                (Operation::ListSnapshots, 25),
                (Operation::PollHead, 25),
                (Operation::Restore, 20),
                (Operation::SmallCommit, 10),
            ],
            Mix::Write => &[
                (Operation::ListLibraries, 10),
                (Operation::ListSnapshots, 15),
                (Operation::PollHead, 15),
                (Operation::Restore, 20),
                (Operation::SmallCommit, 40),
            ],
            Mix::Poll => &[(Operation::ListLibraries, 30), (Operation::PollHead, 70)],
        }
    }

    fn draw(self, rng: &mut impl Rng) -> Operation {
        let weights = self.weights();
        let total: u32 = weights.iter().map(|(_, w)| w).sum();
        let mut pick = rng.gen_range(0..total);
        for (operation, weight) in weights {
            if pick < *weight {
                return *operation;
            }
            pick -= weight;
        }
        unreachable!("the pick is below the total")
    }
}

/// Requests timed while measuring: route, then each one's time in microseconds.
static TIMINGS: Mutex<Option<HashMap<String, Vec<u32>>>> = Mutex::new(None);
static MEASURING: AtomicBool = AtomicBool::new(false);
static FAILED_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// A route's name: the path with ids (long hex, or numbers) as `{id}`.
fn route(method: &reqwest::Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path
        .split('/')
        .map(|part| {
            let id = (part.len() >= 16 && part.bytes().all(|b| b.is_ascii_hexdigit()))
                || (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
            if id {
                "{id}"
            } else {
                part
            }
        })
        .collect();
    format!("{method} {}", parts.join("/"))
}

fn observe(method: &reqwest::Method, path: &str, status: u16, took: Duration) {
    if !MEASURING.load(Ordering::Relaxed) {
        return;
    }
    // 409 is a lost compare-and-swap the client retries; anything else 4xx/5xx, or no
    // answer, is an error.
    if status == 0 || (status >= 400 && status != 409) {
        FAILED_REQUESTS.fetch_add(1, Ordering::Relaxed);
    }
    let micros = took.as_micros().min(u32::MAX as u128) as u32;
    let mut timings = TIMINGS.lock().unwrap_or_else(|p| p.into_inner());
    timings
        .get_or_insert_with(HashMap::new)
        .entry(route(method, path))
        .or_default()
        .push(micros);
}

struct Client {
    paths: Paths,
    tree: PathBuf,
    scratch: PathBuf,
    rng: rand::rngs::StdRng,
}

impl Client {
    fn set_up(server: &str, run: &str, index: usize, work: &Path) -> Result<Self, String> {
        let root = work.join(format!("client-{index}"));
        let paths = Paths {
            config_dir: root.join("config"),
            cache_dir: root.join("cache"),
        };
        let tree = root.join("tree");
        let scratch = root.join("restored");
        std::fs::create_dir_all(&tree).map_err(|e| e.to_string())?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(index as u64);
        for file in 0..20 {
            let mut bytes = vec![0u8; rng.gen_range(1024..16 * 1024)];
            rng.fill_bytes(&mut bytes);
            std::fs::write(tree.join(format!("file-{file:02}.bin")), bytes)
                .map_err(|e| e.to_string())?;
        }
        account::register(
            &paths,
            &RegisterOptions {
                server: server.to_owned(),
                email: format!("load-{run}-{index}@example.com"),
                first_name: "Load".into(),
                last_name: format!("Client {index}"),
                plan: None,
                marketing_email: false,
                trust_new: true,
                password_stdin: false,
                card_stdin: false,
            },
        )
        .map_err(|e| format!("client {index} could not register: {e}"))?;
        let client = Self {
            paths,
            tree,
            scratch,
            rng,
        };
        client.commit(&client.session()?)?;
        Ok(client)
    }

    fn session(&self) -> Result<Session, String> {
        Session::load(&self.paths).map_err(|e| e.to_string())
    }

    /// Backs up the client's tree: a small commit when one file changed.
    fn commit(&self, session: &Session) -> Result<(), String> {
        backup::run(
            session,
            &BackupOptions {
                paths: vec![self.tree.clone()],
                library: DEFAULT_LIBRARY.into(),
                tags: Vec::new(),
                progress: false,
            },
        )
        .map(drop)
        .map_err(|e| e.to_string())
    }

    fn run(&mut self, operation: Operation, session: &Session) -> Result<(), String> {
        let error = |e: ibackup_client::ClientError| e.to_string();
        match operation {
            Operation::ListLibraries => session.list().map(drop).map_err(error),
            Operation::ListSnapshots | Operation::PollHead => {
                let library = session.open_library(DEFAULT_LIBRARY).map_err(error)?;
                let store = Store::new(&session.remote, &library);
                if operation == Operation::PollHead {
                    store.head().map(drop).map_err(error)
                } else {
                    snapshots::list(&store).map(drop).map_err(error)
                }
            }
            Operation::Restore => {
                let _ = std::fs::remove_dir_all(&self.scratch);
                restore::run(
                    session,
                    &RestoreOptions {
                        spec: "latest".into(),
                        target: self.scratch.clone(),
                        library: DEFAULT_LIBRARY.into(),
                    },
                )
                .map(drop)
                .map_err(error)
            }
            Operation::SmallCommit => {
                let file = self.rng.gen_range(0..20);
                let mut bytes = vec![0u8; self.rng.gen_range(1024..16 * 1024)];
                self.rng.fill_bytes(&mut bytes);
                std::fs::write(self.tree.join(format!("file-{file:02}.bin")), bytes)
                    .map_err(|e| e.to_string())?;
                self.commit(session)
            }
        }
    }
}

#[derive(Serialize)]
struct RouteReport {
    route: String,
    count: usize,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Serialize)]
struct Report {
    clients: usize,
    mix: Mix,
    seconds: f64,
    requests: usize,
    requests_per_second: f64,
    /// Requests answered with an error (a lost compare-and-swap, retried, is not one).
    failed_requests: u64,
    /// Operations that failed (after the client's own retries).
    failed_operations: u64,
    /// Processor cores the clients and the server kept busy while measuring (processor
    /// seconds per second); the server's only with `--server-pid`.
    client_cores: f64,
    server_cores: Option<f64>,
    operations: HashMap<Operation, u64>,
    routes: Vec<RouteReport>,
    errors: Vec<String>,
}

fn percentile(sorted: &[u32], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    match run(&options) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("a report is JSON")
            );
            if report.failed_requests > 0 || report.failed_operations > 0 {
                return std::process::ExitCode::FAILURE;
            }
            std::process::ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("ibackup-load: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<Report, String> {
    let url = parse_server_url(&options.server)?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    if !loopback {
        return Err(format!(
            "{} is not a loopback address; this is a test tool",
            options.server
        ));
    }
    if !(1..=500).contains(&options.clients) || !(1..=3600).contains(&options.seconds) {
        return Err("use 1 to 500 clients and 1 to 3600 seconds".into());
    }
    if std::env::var_os("IBACKUP_PASSWORD").is_none() {
        std::env::set_var("IBACKUP_PASSWORD", "load test password, not a secret");
    }
    let run = hex::encode(rand::random::<[u8; 4]>());
    let work = match &options.work {
        Some(work) => work.clone(),
        None => std::env::temp_dir().join(format!("ibackup-load-{run}")),
    };
    observe_requests(observe);
    let report = measure(options, &run, &work);
    if options.work.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    report
}

fn measure(options: &Options, run: &str, work: &Path) -> Result<Report, String> {
    // Set up a few at a time: registration hashes a password on the server.
    let mut clients: Vec<Client> = Vec::with_capacity(options.clients);
    for batch in (0..options.clients).collect::<Vec<_>>().chunks(4) {
        let made: Vec<Result<Client, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|&i| scope.spawn(move || Client::set_up(&options.server, run, i, work)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("setup thread"))
                .collect()
        });
        for client in made {
            clients.push(client?);
        }
    }

    let failed_operations = AtomicU64::new(0);
    let errors = Mutex::new(Vec::new());
    let counts = Mutex::new(HashMap::<Operation, u64>::new());
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let servers: Vec<String> = options.server_pid.iter().map(u32::to_string).collect();
    let servers_cpu = || -> Option<f64> {
        (!servers.is_empty())
            .then(|| {
                servers
                    .iter()
                    .map(|pid| cpu_seconds(pid))
                    .sum::<Option<f64>>()
            })
            .flatten()
    };
    let cpu_before = (cpu_seconds("self"), servers_cpu());
    MEASURING.store(true, Ordering::SeqCst);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for client in clients.iter_mut() {
            let (failed, errors, counts) = (&failed_operations, &errors, &counts);
            scope.spawn(move || {
                let session = match client.session() {
                    Ok(session) => session,
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.lock().unwrap().push(e);
                        return;
                    }
                };
                while Instant::now() < deadline {
                    let operation = options.mix.draw(&mut client.rng);
                    if let Err(e) = client.run(operation, &session) {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let mut errors = errors.lock().unwrap();
                        if errors.len() < 20 {
                            errors.push(format!("{operation:?}: {e}"));
                        }
                    }
                    *counts.lock().unwrap().entry(operation).or_default() += 1;
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    MEASURING.store(false, Ordering::SeqCst);
    let cores = |before: Option<f64>, after: Option<f64>| Some((after? - before?) / seconds);
    let client_cores = cores(cpu_before.0, cpu_seconds("self")).unwrap_or(0.0);
    let server_cores = cores(cpu_before.1, servers_cpu());

    let timings = TIMINGS.lock().unwrap().take().unwrap_or_default();
    let mut routes: Vec<RouteReport> = timings
        .into_iter()
        .map(|(route, mut times)| {
            times.sort_unstable();
            RouteReport {
                route,
                count: times.len(),
                p50_ms: percentile(&times, 0.50),
                p99_ms: percentile(&times, 0.99),
            }
        })
        .collect();
    routes.sort_by_key(|r| std::cmp::Reverse(r.count));
    let requests: usize = routes.iter().map(|r| r.count).sum();
    Ok(Report {
        clients: options.clients,
        mix: options.mix,
        seconds,
        requests,
        requests_per_second: requests as f64 / seconds,
        failed_requests: FAILED_REQUESTS.load(Ordering::Relaxed),
        failed_operations: failed_operations.into_inner(),
        client_cores,
        server_cores,
        operations: counts.into_inner().unwrap(),
        routes,
        errors: errors.into_inner().unwrap(),
    })
}
