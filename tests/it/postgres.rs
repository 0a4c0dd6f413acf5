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
