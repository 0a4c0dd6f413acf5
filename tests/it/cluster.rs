//! Several servers serving the same accounts: two `ibackup-server` processes on one
//! database (PostgreSQL, or one SQLite file on one machine) and one Garage bucket, alone and
//! behind a real HAProxy in TCP mode (TLS ends at the servers, which present the same
//! certificate).

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::garage::{self, Garage};
use crate::pg::{self, Postgres};
use crate::util::{keep_packs_on, snapshot_ids, write_file, TestClient, TestMount, TestServer};

/// Two servers sharing a database and a bucket; server `i`'s log is `logs[i]`.
struct Pair {
    shared: TempDir,
    servers: Vec<Option<TestServer>>,
}

/// The database two servers share.
enum Shared {
    /// A new database in the test process's PostgreSQL.
    Postgres,
    /// One SQLite file.
    SqliteFile,
}

impl Pair {
    fn start(garage: &Garage, metadata: Shared) -> Self {
        let shared = tempfile::tempdir().unwrap();
        let database = match metadata {
            Shared::Postgres => Postgres::shared().create(),
            Shared::SqliteFile => format!("sqlite:{}", shared.path().join("shared.db").display()),
        };
        let prefix = hex::encode(rand::random::<[u8; 8]>());
        let mut servers = Vec::new();
        let mut tls: Option<std::path::PathBuf> = None;
        for i in 0..2 {
            let data = tempfile::tempdir().unwrap();
            keep_packs_on(data.path(), garage);
            let config = data.path().join("server.toml");
            let text = fs::read_to_string(&config).unwrap();
            // Same bucket prefix and database for both; maintenance every second.
            let text = regex_like_replace_prefix(&text, &prefix)
                .replace("interval = \"10min\"", "interval = \"1s\"")
                .replace(
                    "# database = \"sqlite:/srv/ibackup/shared.db\"",
                    &format!("database = \"{database}\""),
                );
            fs::write(&config, text).unwrap();
            if let Some(tls) = &tls {
                copy_dir(tls, &data.path().join("tls"));
            }
            let log = shared.path().join(format!("server-{i}.log"));
            let server = TestServer::start_logged(data, &log);
            tls.get_or_insert_with(|| server.data.path().join("tls"));
            servers.push(Some(server));
        }
        Self { shared, servers }
    }

    fn server(&self, i: usize) -> &TestServer {
        self.servers[i].as_ref().unwrap()
    }

    fn log(&self, i: usize) -> String {
        fs::read_to_string(self.shared.path().join(format!("server-{i}.log"))).unwrap_or_default()
    }
}

/// Points `blob_store` at the shared prefix (each data directory got one of its own).
fn regex_like_replace_prefix(text: &str, prefix: &str) -> String {
    let start = text.find("blob_store = \"s3://").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    format!(
        "{}blob_store = \"s3://{}/{prefix}\"{}",
        &text[..start],
        garage::BUCKET,
        &text[end..]
    )
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn connect(client: &TestClient, verb: &str, url: &str) {
    let mut args = vec![
        verb,
        "--server",
        url,
        "--email",
        &client.email,
        "--trust-new",
    ];
    if verb == "register" {
        args.extend(["--first-name", "Test", "--last-name", "User"]);
    }
    client.run(&args).ok();
}

#[test]
fn two_servers_on_one_postgres_database_and_bucket_serve_the_same_accounts() {
    if !garage::available() || !pg::available() {
        return;
    }
    serve_the_same_accounts(Pair::start(Garage::shared(), Shared::Postgres));
}

#[test]
fn two_servers_on_one_sqlite_file_and_bucket_serve_the_same_accounts() {
    if !garage::available() {
        return;
    }
    serve_the_same_accounts(Pair::start(Garage::shared(), Shared::SqliteFile));
}

fn serve_the_same_accounts(pair: Pair) {
    let laptop = TestClient::new("two@example.com");
    let desktop = TestClient::new("two@example.com");
    connect(&laptop, "register", &pair.server(0).url);
    connect(&desktop, "login", &pair.server(1).url);
    // Maintenance runs every second here: keep every snapshot, so a count tells a lost one.
    laptop
        .run(&["library", "policy", "Backups", "--keep-last", "1000"])
        .ok();

    // A commit through one server is seen through the other.
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    write_file(&a.join("one.txt"), b"from the laptop");
    write_file(&b.join("two.txt"), b"from the desktop");
    laptop.backup(&[&a]).ok();
    assert_eq!(snapshot_ids(&desktop).len(), 1);

    // A mount through the second server sees a commit made through the first at its
    // next poll.
    if crate::util::fuse_or_skip() {
        let mount = TestMount::start(&desktop, &["--poll-interval", "0.5"]);
        let latest = mount.dir.join("snapshots/Backups/latest");
        let inner = a.strip_prefix("/").unwrap().join("later.txt");
        write_file(&a.join("later.txt"), b"committed through server one");
        laptop.backup(&[&a]).ok();
        let deadline = Instant::now() + Duration::from_secs(20);
        while fs::read(latest.join(&inner)).ok().as_deref() != Some(b"committed through server one")
        {
            assert!(Instant::now() < deadline, "the mount never saw the commit");
            std::thread::sleep(Duration::from_millis(100));
        }
        mount.unmount();
    }

    // Both commit at once, through different servers: every commit lands, one after
    // another (compare-and-swap across the two processes).
    let commits = |client: &TestClient, dir: &Path| {
        (0..5)
            .map(|i| {
                write_file(&dir.join("changing.txt"), format!("version {i}").as_bytes());
                client.backup(&[dir]).ok().json()["snapshot"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    let (mine, theirs) = std::thread::scope(|scope| {
        let mine = scope.spawn(|| commits(&laptop, &a));
        let theirs = scope.spawn(|| commits(&desktop, &b));
        (mine.join().unwrap(), theirs.join().unwrap())
    });
    let listed = snapshot_ids(&laptop);
    let before = if crate::util::fuse_or_skip() { 2 } else { 1 };
    assert_eq!(listed.len(), before + 10, "{listed:?}");
    for id in mine.iter().chain(&theirs) {
        assert!(listed.contains(id), "commit {id} was lost");
    }
    assert_eq!(snapshot_ids(&desktop), listed);
    let check = desktop.run(&["check", "--read-data"]).ok();
    assert!(
        check.stdout.contains("No errors were found"),
        "{}",
        check.stdout
    );

    // The maintenance pass runs once a second between the two of them, not twice.
    std::thread::sleep(Duration::from_secs(4));
    let runs = |log: &str| log.matches("maintenance: Report").count();
    let turns = |log: &str| log.matches("another server's turn").count();
    let (log0, log1) = (pair.log(0), pair.log(1));
    assert!(
        turns(&log0) + turns(&log1) > 0,
        "no server ever found the pass taken"
    );
    let seconds = pair.server(0).uptime().as_secs() + 2;
    assert!(
        (runs(&log0) + runs(&log1)) as u64 <= seconds,
        "{} passes in {seconds} s",
        runs(&log0) + runs(&log1)
    );
}

/// HAProxy in TCP mode in front of both servers, on a free port.
struct Balancer {
    _dir: TempDir,
    child: Child,
    url: String,
}

pub fn haproxy() -> Option<&'static str> {
    let path = "/usr/sbin/haproxy";
    if Path::new(path).exists() {
        return Some(path);
    }
    if std::env::var("IBACKUP_REQUIRE_BALANCER").as_deref() == Ok("1") {
        panic!("IBACKUP_REQUIRE_BALANCER=1 but HAProxy is missing: run scripts/setup");
    }
    eprintln!("no HAProxy (scripts/setup installs it): skipping this test");
    None
}

impl Balancer {
    fn start(binary: &str, pair: &Pair) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::util::free_port();
        let config = format!(
            "global\n  maxconn 4096\n\
             defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  \
             timeout server 60s\n  retries 3\n  option redispatch\n\
             frontend ibackup\n  bind 127.0.0.1:{port}\n  default_backend servers\n\
             backend servers\n  balance roundrobin\n  \
             server one 127.0.0.1:{} check inter 300ms fall 1 rise 2\n  \
             server two 127.0.0.1:{} check inter 300ms fall 1 rise 2\n",
            pair.server(0).port,
            pair.server(1).port
        );
        let path = dir.path().join("haproxy.cfg");
        fs::write(&path, config).unwrap();
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "HAProxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            _dir: dir,
            child,
            url: format!("https://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn behind_a_balancer_clients_continue_when_one_server_is_killed() {
    if !garage::available() || !pg::available() {
        return;
    }
    let Some(binary) = haproxy() else {
        return;
    };
    let mut pair = Pair::start(Garage::shared(), Shared::Postgres);
    let balancer = Balancer::start(binary, &pair);
    let client = TestClient::new("balanced@example.com");
    connect(&client, "register", &balancer.url);
    client
        .run(&["library", "policy", "Backups", "--keep-last", "1000"])
        .ok();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    write_file(&tree.join("start.txt"), b"first");
    client.backup(&[&tree]).ok();

    // Backups keep coming while one server is killed; at most the one in flight at that
    // moment may fail, and every commit that was answered is there afterwards.
    let outcomes = std::thread::scope(|scope| {
        let running = scope.spawn(|| {
            (0..8)
                .map(|i| {
                    write_file(
                        &tree.join("changing.txt"),
                        format!("version {i}").as_bytes(),
                    );
                    let run = client.backup(&[&tree]);
                    (run.code == 0).then(|| run.json()["snapshot"].as_str().unwrap().to_owned())
                })
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(1500));
        let killed = pair.servers[0].take().unwrap();
        drop(killed);
        running.join().unwrap()
    });
    let failed = outcomes.iter().filter(|o| o.is_none()).count();
    assert!(
        failed <= 1,
        "{failed} backups failed after a server was killed"
    );
    assert!(outcomes.last().unwrap().is_some(), "the last backup failed");
    let listed = snapshot_ids(&client);
    for id in outcomes.iter().flatten() {
        assert!(listed.contains(id), "commit {id} was lost");
    }
    let check = client.run(&["check", "--read-data"]).ok();
    assert!(
        check.stdout.contains("No errors were found"),
        "{}",
        check.stdout
    );
}
