//! A real PostgreSQL on loopback: a cluster made by `initdb` in a temporary directory and
//! run on a free port, for servers that keep their metadata there.
//!
//! `scripts/setup` installs Debian's `postgresql` (IBACKUP_PG_BIN names another `bin`
//! folder). Without it the PostgreSQL tests skip, unless IBACKUP_REQUIRE_POSTGRES=1 (CI)
//! makes that a failure. With IBACKUP_TEST_DB=postgres, every
//! [`super::util::TestServer`] keeps its metadata in a database of its own in one cluster
//! shared by the test process. Run as root, the cluster runs as the `postgres` user (it
//! refuses root).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ibackup_server::db::{Conn, Database};
use tempfile::TempDir;

use crate::util::free_port;

pub struct Postgres {
    dir: TempDir,
    child: Option<Child>,
    pub port: u16,
}

/// The folder with `initdb` and `postgres`, if there is one.
pub fn binaries() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("IBACKUP_PG_BIN") {
        return Some(PathBuf::from(path));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Whether PostgreSQL tests can run here; panics if they must (IBACKUP_REQUIRE_POSTGRES=1)
/// and cannot.
pub fn available() -> bool {
    if binaries().is_some() {
        return true;
    }
    if std::env::var("IBACKUP_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("IBACKUP_REQUIRE_POSTGRES=1 but PostgreSQL is not installed: run scripts/setup");
    }
    eprintln!("no PostgreSQL (scripts/setup installs it): skipping this PostgreSQL test");
    false
}

/// Whether this test run keeps every test server's metadata in PostgreSQL.
pub fn every_server_on_postgres() -> bool {
    std::env::var("IBACKUP_TEST_DB").as_deref() == Ok("postgres")
}

fn as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|me| me.uid() == 0)
}

/// `program` from PostgreSQL's folder, as the `postgres` user when the tests run as root.
/// `setpriv` changes user and runs the program in its own place (`runuser` stays as its
/// parent and passes no signal on, so the watchdog's SIGINT never reached the postmaster
/// and clusters outlived the tests).
fn command(program: &str) -> Command {
    let path = binaries().unwrap().join(program);
    if as_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(path);
        command
    } else {
        Command::new(path)
    }
}

impl Postgres {
    /// The cluster this test process shares among its servers; it ends with the process.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(Postgres::start)
    }

    /// A new cluster, trusting local connections (loopback only), started and answering.
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if as_root() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data)
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster's folder failed");
        }
        let output = command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "initdb failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut postgres = Postgres {
            dir,
            child: None,
            port: free_port(),
        };
        postgres.resume();
        postgres
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The cluster's files.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Starts the postmaster (again, after [`Postgres::stop`]) and waits until it accepts
    /// connections. A watchdog ends it when the test process ends, however that happens.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "postgres is running already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .unwrap();
        let postgres = command("postgres");
        let program = postgres.get_program().to_owned();
        let prefix: Vec<_> = postgres.get_args().map(|a| a.to_owned()).collect();
        let child = Command::new("sh")
            .arg("-c")
            .arg(
                "\"$@\" & g=$!; \
                 while [ -d /proc/$WATCH ] && kill -0 $g 2>/dev/null; do sleep 0.5; done; \
                 kill -INT $g 2>/dev/null; wait $g",
            )
            .arg("watchdog")
            .arg(program)
            .args(prefix)
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.data())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=64MB",
            ])
            .env("WATCH", std::process::id().to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Conn::open(&self.database("postgres")).is_err() {
            assert!(
                Instant::now() < deadline,
                "postgres did not start; its log:\n{}",
                std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the postmaster with a fast shutdown (open connections are cut), as a restart
    /// by an operator would, and waits until it is gone.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_owned));
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
        }
        let _ = child.wait();
    }

    /// The URL of database `name` in this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn database(&self, name: &str) -> Database {
        Database::Postgres(self.url(name))
    }

    /// A new, empty database; its URL.
    pub fn create(&self) -> String {
        let name = format!("ib_{}", hex::encode(rand::random::<[u8; 8]>()));
        Conn::open(&self.database("postgres"))
            .unwrap()
            .execute_batch(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.url(&name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
