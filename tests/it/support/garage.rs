//! A real Garage (S3) on loopback: a single-node cluster in a temporary directory, with a
//! bucket and an access key, for servers that keep their packs there.
//!
//! `scripts/setup` builds Garage into `$IBACKUP_TOOLS/bin` (default `/opt/ibackup-tools`;
//! IBACKUP_GARAGE names another binary). Without it the S3 tests skip, unless IBACKUP_REQUIRE_S3=1 (CI) makes that a
//! failure. With IBACKUP_TEST_BLOBS=s3, every [`super::util::TestServer`] keeps its packs in
//! one Garage shared by the test process, each under a prefix of its own.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::free_port;

pub const BUCKET: &str = "ibackup-test";

pub struct Garage {
    dir: TempDir,
    child: Option<Child>,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
}

/// The Garage binary, if there is one.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("IBACKUP_GARAGE") {
        return Some(PathBuf::from(path));
    }
    let tools = std::env::var_os("IBACKUP_TOOLS").unwrap_or("/opt/ibackup-tools".into());
    let built = PathBuf::from(tools).join("bin/garage");
    if built.exists() {
        return Some(built);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v garage"])
        .output()
        .ok()?;
    let path = String::from_utf8(found.stdout).ok()?;
    (!path.trim().is_empty()).then(|| PathBuf::from(path.trim()))
}

/// Whether S3 tests can run here; panics if they must (IBACKUP_REQUIRE_S3=1) and cannot.
pub fn available() -> bool {
    if binary().is_some() {
        return true;
    }
    if std::env::var("IBACKUP_REQUIRE_S3").as_deref() == Ok("1") {
        panic!("IBACKUP_REQUIRE_S3=1 but there is no Garage binary: run scripts/setup");
    }
    eprintln!("no Garage binary (scripts/setup builds one): skipping this S3 test");
    false
}

/// Whether this test run keeps every test server's packs in Garage.
pub fn every_server_on_s3() -> bool {
    std::env::var("IBACKUP_TEST_BLOBS").as_deref() == Ok("s3")
}

impl Garage {
    /// The Garage this test process shares among its servers; it ends with the process.
    pub fn shared() -> &'static Garage {
        static SHARED: OnceLock<Garage> = OnceLock::new();
        SHARED.get_or_init(Garage::start)
    }

    /// A new single-node cluster with bucket [`BUCKET`] and a key that may use it.
    pub fn start() -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let root = dir.path().display();
        let secret: [u8; 32] = rand::random();
        let config = format!(
            "metadata_dir = \"{root}/meta\"\n\
             data_dir = \"{root}/data\"\n\
             db_engine = \"sqlite\"\n\
             metadata_fsync = true\n\
             data_fsync = true\n\
             replication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_secret = \"{}\"\n\
             [s3_api]\n\
             s3_region = \"garage\"\n\
             api_bind_addr = \"127.0.0.1:{s3}\"\n\
             root_domain = \".s3.garage.localhost\"\n\
             [admin]\n\
             api_bind_addr = \"127.0.0.1:{admin}\"\n",
            hex::encode(secret)
        );
        std::fs::write(dir.path().join("garage.toml"), config).unwrap();
        let mut garage = Garage {
            dir,
            child: None,
            endpoint: format!("http://127.0.0.1:{s3}"),
            key_id: String::new(),
            secret: String::new(),
        };
        garage.resume();
        let node = garage.cli(&["node", "id", "-q"]);
        let node = node.split('@').next().unwrap().trim().to_owned();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.cli(&["bucket", "create", BUCKET]);
        let key = garage.cli(&["key", "create", "ibackup-test-key"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|line| line.strip_prefix(name))
                .unwrap_or_else(|| panic!("`garage key create` printed no {name}:\n{key}"))
                .trim()
                .to_owned()
        };
        garage.key_id = field("Key ID:");
        garage.secret = field("Secret key:");
        garage.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            BUCKET,
            "--key",
            "ibackup-test-key",
        ]);
        garage
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    /// Runs a `garage` admin command and returns what it printed; panics if it failed.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(binary().unwrap())
            .arg("-c")
            .arg(self.config())
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "garage {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Starts the daemon (again, after [`Garage::kill`]) and waits until it answers. A
    /// watchdog ends it when the test process ends, however that happens.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "garage is running already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("garage.log"))
            .unwrap();
        let child = Command::new("sh")
            .arg("-c")
            .arg(
                "\"$0\" -c \"$1\" server & g=$!; \
                 while kill -0 \"$2\" 2>/dev/null && kill -0 $g 2>/dev/null; do sleep 0.5; done; \
                 kill $g 2>/dev/null; wait $g",
            )
            .arg(binary().unwrap())
            .arg(self.config())
            .arg(std::process::id().to_string())
            .env("RUST_LOG", "garage=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = Command::new(binary().unwrap())
                .arg("-c")
                .arg(self.config())
                .arg("status")
                .output()
                .unwrap();
            let port = self.endpoint.rsplit(':').next().unwrap();
            let s3_up = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok();
            if status.status.success() && s3_up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "garage did not start; its log:\n{}",
                std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the daemon at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(self.config())
            .status();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The lines of server.toml's `[storage]` that keep packs here, under `prefix`.
    pub fn storage_settings(&self, prefix: &str) -> String {
        format!(
            "blob_store = \"s3://{BUCKET}/{prefix}\"\n\
             s3_endpoint = \"{}\"\n\
             s3_region = \"garage\"\n\
             s3_access_key_id = \"{}\"\n\
             s3_secret_access_key = \"{}\"",
            self.endpoint, self.key_id, self.secret
        )
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill();
    }
}
