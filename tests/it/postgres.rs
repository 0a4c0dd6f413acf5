//! The metadata on a real PostgreSQL (`--database postgres://...`): what only PostgreSQL
//! brings (a restart under traffic), and what the server refuses. The foundation, mount and
//! sharing tests run on PostgreSQL too, in `scripts/test`'s second pass (IBACKUP_TEST_DB).

use std::fs;
use std::time::{Duration, Instant};

use crate::pg::{self, Postgres};
use crate::util::{snapshot_ids, write_file, TestClient, TestServer};

/// A server whose metadata is in a new database of `postgres`.
fn server_on(postgres: &Postgres) -> TestServer {
    let data = tempfile::tempdir().unwrap();
    crate::util::keep_metadata_on(data.path(), postgres);
    TestServer::start_in(data, 0)
}

#[test]
fn a_postgres_restart_under_traffic_answers_unavailable_then_recovers_and_loses_nothing() {
    if !pg::available() {
        return;
    }
    let mut postgres = Postgres::start();
    let server = server_on(&postgres);
    let client = TestClient::new("restart@example.com");
    client.register(&server).ok();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    write_file(&tree.join("start.txt"), b"before the restart");
    client.backup(&[&tree]).ok();

    // Backups keep coming while PostgreSQL stops (a fast shutdown cuts every connection)
    // and starts again six seconds later (longer than the client's retries).
    let outcomes = std::thread::scope(|scope| {
        let running = scope.spawn(|| {
            let until = Instant::now() + Duration::from_secs(14);
            let mut outcomes = Vec::new();
            let mut i = 0;
            while Instant::now() < until {
                write_file(
                    &tree.join("changing.txt"),
                    format!("version {i}").as_bytes(),
                );
                outcomes.push(client.backup(&[&tree]));
                i += 1;
            }
            outcomes
        });
        std::thread::sleep(Duration::from_millis(1500));
        postgres.stop();
        // While it is down, a request is answered, in words, as a pause to wait out.
        let during = client.run(&["snapshots"]);
        std::thread::sleep(Duration::from_secs(6));
        postgres.resume();
        (running.join().unwrap(), during)
    });
    let (outcomes, during) = outcomes;
    assert_ne!(during.code, 0, "a listing succeeded with PostgreSQL down");
    assert!(
        during.stderr.contains("metadata database is unavailable"),
        "{}",
        during.stderr
    );
    for failed in outcomes.iter().filter(|run| run.code != 0) {
        assert!(
            failed.stderr.contains("unavailable"),
            "a backup failed otherwise than as unavailable: {}",
            failed.stderr
        );
    }
    assert!(outcomes.len() >= 3, "only {} backups ran", outcomes.len());
    assert_eq!(
        outcomes.last().unwrap().code,
        0,
        "the last backup failed: {}",
        outcomes.last().unwrap().stderr
    );

    // Every commit that was answered is there, and the data reads back whole.
    let listed = snapshot_ids(&client);
    for run in outcomes.iter().filter(|run| run.code == 0) {
        let id = run.json()["snapshot"].as_str().unwrap().to_owned();
        assert!(listed.contains(&id), "commit {id} was lost");
    }
    let check = client.run(&["check", "--read-data"]).ok();
    assert!(
        check.stdout.contains("No errors were found"),
        "{}",
        check.stdout
    );
}

#[test]
fn a_database_that_cannot_be_reached_or_named_is_refused_at_start_in_words() {
    let data = tempfile::tempdir().unwrap();
    let serve = |database: &str| {
        std::process::Command::new(crate::util::SERVER_BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(["--database", database])
            .output()
            .unwrap()
    };
    let refused = serve("postgres://ib:hunter2@db.example.net/ib");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(said.contains("sslmode=disable"), "{said}");
    assert!(
        !said.contains("hunter2"),
        "the password was printed: {said}"
    );

    let port = crate::util::free_port();
    let refused = serve(&format!("postgres://ib:hunter2@127.0.0.1:{port}/ib"));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(said.contains("cannot reach PostgreSQL"), "{said}");
    assert!(
        !said.contains("hunter2"),
        "the password was printed: {said}"
    );

    let refused = serve("mysql://ib@127.0.0.1/ib");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(said.contains("postgres://USER@HOST/DB"), "{said}");
}

/// A CA and a certificate for `localhost` signed by it, as PEM: (CA, certificate, key).
fn certificates() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Issue 26, finding 9: the metadata crossed the network to PostgreSQL in clear, with the
/// password on the command line. `sslmode=verify-full` with a CA file now speaks TLS and
/// checks the database's certificate; the password comes from a password file.
#[test]
fn the_metadata_reaches_postgres_over_verified_tls_with_the_password_from_a_file() {
    if !pg::available() {
        return;
    }
    let mut postgres = Postgres::start();
    let (ca, cert, key) = certificates();
    let data = postgres.data_dir().join("data");
    fs::write(data.join("server.crt"), cert).unwrap();
    fs::write(data.join("server.key"), key).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(data.join("server.key"), fs::Permissions::from_mode(0o600)).unwrap();
    }
    if rustix::process::geteuid().is_root() {
        let status = std::process::Command::new("chown")
            .args(["postgres:postgres"])
            .arg(data.join("server.crt"))
            .arg(data.join("server.key"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    // The test's own connections (as `postgres`) stay trusted; `ibackup` must come over TLS
    // with its password.
    fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\n\
         hostssl all ibackup 127.0.0.1/32 scram-sha-256\n\
         host all ibackup 127.0.0.1/32 reject\n\
         host all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    let admin = ibackup_server::db::Conn::open(&postgres.database("postgres")).unwrap();
    for sql in [
        "ALTER SYSTEM SET ssl = on",
        "CREATE ROLE ibackup LOGIN PASSWORD 'a secret of the operator'",
        "CREATE DATABASE ib OWNER ibackup",
    ] {
        admin.execute_batch(sql).unwrap();
    }
    drop(admin);
    postgres.stop();
    postgres.resume();

    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("ca.pem");
    fs::write(&ca_file, ca).unwrap();
    let passfile = files.path().join("pgpass");
    fs::write(
        &passfile,
        format!(
            "localhost:{}:ib:ibackup:a secret of the operator\n",
            postgres.port
        ),
    )
    .unwrap();
    let url = |ca: &std::path::Path| {
        format!(
            "postgres://ibackup@localhost:{}/ib?sslmode=verify-full&sslrootcert={}&passfile={}",
            postgres.port,
            ca.display(),
            passfile.display()
        )
    };
    let start = |database: &str| {
        let dir = tempfile::tempdir().unwrap();
        let config = ibackup_server::config::DEFAULT_CONFIG.replace(
            "# database = \"sqlite:/srv/ibackup/shared.db\"",
            &format!("database = \"{database}\""),
        );
        fs::write(dir.path().join("server.toml"), config).unwrap();
        dir
    };
    let data = start(&url(&ca_file));
    let server = TestServer::start_in(data, 0);
    let client = TestClient::new("tls@example.com");
    client.register(&server).ok();
    let work = tempfile::tempdir().unwrap();
    write_file(&work.path().join("a.txt"), b"over TLS");
    client.backup(&[work.path()]).ok();
    let admin = ibackup_server::db::Conn::open(&postgres.database("postgres")).unwrap();
    let plain: i64 = admin
        .query_row(
            "SELECT COUNT(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.usename = 'ibackup' AND NOT s.ssl",
            ibackup_server::params![],
            |r| r.get(0),
        )
        .unwrap();
    let encrypted: i64 = admin
        .query_row(
            "SELECT COUNT(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.usename = 'ibackup' AND s.ssl",
            ibackup_server::params![],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(plain, 0, "a connection of the server is not encrypted");
    assert!(
        encrypted > 0,
        "the server holds no connection to PostgreSQL"
    );
    let cmdline = fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains("secret"));
    drop(server);

    // Another CA: the database's certificate is refused and the server does not start.
    let (other_ca, _, _) = certificates();
    let other = files.path().join("other.pem");
    fs::write(&other, other_ca).unwrap();
    let dir = start(&url(&other));
    let refused = std::process::Command::new(crate::util::SERVER_BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("certificate") || said.contains("Certificate"),
        "{said}"
    );
}
