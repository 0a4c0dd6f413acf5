//! Integrity against a real server: a flipped byte in a pack is found by `check --read-data`
//! and by `verify`, never served as good data (restore names the file and exits 3; the
//! mount answers EIO and logs the file), and the next backup heals it. Two identical uploads
//! racing leave one copy after collection. A server whose database is rewound to an older
//! state is refused, not believed.

use std::fs;
use std::os::unix::fs::FileExt;

use crate::sharing::clients;
use crate::util::{fuse_or_skip, write_file, TestClient, TestMount, TestServer};

fn noise(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    bytes
}

/// Flips one byte in the middle of the library's largest stored object, in its pack.
fn flip_largest(server: &TestServer, library: &str) {
    let (pack, offset, size): (String, i64, i64) = server
        .db()
        .query_row(
            "SELECT pack_id, \"offset\", size FROM objects WHERE library_id = ?1 \
             ORDER BY size DESC LIMIT 1",
            ibackup_server::params![library],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let path = server.pack_path(library, &pack);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let at = (offset + size / 2) as u64;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
}

fn verify(server: &TestServer) -> (bool, serde_json::Value) {
    let out = server.tool("verify", &[]);
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

/// A folder whose tree the server no longer has: `check` names it as missing and still
/// checks the rest (the folders are fetched at once, and asked about only when one fails).
#[test]
fn a_tree_the_server_lost_is_named_by_check() {
    let server = TestServer::start();
    let [alice] = clients(&server, ["alice@example.com"]);
    let source = tempfile::tempdir().unwrap();
    for folder in ["a", "b", "c"] {
        fs::create_dir_all(source.path().join(folder)).unwrap();
        write_file(
            &source.path().join(folder).join("note.txt"),
            folder.as_bytes(),
        );
    }
    alice.backup(&[source.path()]).ok();
    let library = alice.run(&["library", "list", "--json"]).ok().json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = alice.run(&["check", "--read-data"]).ok().stdout;
    let trees: i64 = server
        .db()
        .query_row(
            "SELECT COUNT(*) FROM objects WHERE library_id = ?1 AND kind = 2",
            ibackup_server::params![&library],
            |r| r.get(0),
        )
        .unwrap();
    let lost = server
        .db()
        .execute(
            "DELETE FROM objects WHERE library_id = ?1 AND kind = 2 AND id = \
             (SELECT id FROM objects WHERE library_id = ?1 AND kind = 2 ORDER BY id LIMIT 1)",
            ibackup_server::params![&library],
        )
        .unwrap();
    assert_eq!(lost, 1);
    for args in [&["check"][..], &["check", "--read-data"]] {
        let found = alice.run(args);
        assert_eq!(found.code, 1, "{}", found.stdout);
        assert!(
            found.stdout.contains("DAMAGED") && found.stdout.contains("missing on the server"),
            "{}",
            found.stdout
        );
    }
    assert!(before.contains("No errors were found"), "{before}");
    assert!(trees > 3, "{trees} trees");
}

#[test]
fn a_flipped_byte_is_found_never_served_and_healed_by_the_next_backup() {
    let server = TestServer::start();
    let [alice] = clients(&server, ["alice@example.com"]);
    let source = tempfile::tempdir().unwrap();
    write_file(&source.path().join("note.txt"), b"a small note");
    let big = noise(1 << 20);
    write_file(&source.path().join("big.bin"), &big);
    alice.backup(&[source.path()]).ok();
    let clean = alice.run(&["check", "--read-data"]).ok();
    assert!(
        clean.stdout.contains("No errors were found"),
        "{}",
        clean.stdout
    );
    assert!(verify(&server).0);

    let library = alice.run(&["library", "list", "--json"]).ok().json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    flip_largest(&server, &library);

    // check: existence alone passes; reading the data finds it and names the file.
    alice.run(&["check"]).ok();
    let found = alice.run(&["check", "--read-data"]);
    assert_eq!(found.code, 1, "{}", found.stdout);
    assert!(
        found.stdout.contains("DAMAGED") && found.stdout.contains("big.bin"),
        "{}",
        found.stdout
    );
    let subset = alice.run(&["check", "--read-data-subset", "100%"]);
    assert_eq!(subset.code, 1);

    // restore: the good file is restored, the damaged one named and left out.
    let out = tempfile::tempdir().unwrap();
    let restored = alice.run(&[
        "restore",
        &format!("latest:{}", source.path().display()),
        "--target",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(restored.code, 3, "{}", restored.stderr);
    assert!(
        restored.stderr.contains("big.bin: not restored"),
        "{}",
        restored.stderr
    );
    assert_eq!(
        fs::read(out.path().join("note.txt")).unwrap(),
        b"a small note"
    );
    assert!(!out.path().join("big.bin").exists());

    // The mount: EIO, and a log line naming the file.
    if fuse_or_skip() {
        let mount = TestMount::start(&alice, &[]);
        let inside = mount.live().join(source.path().strip_prefix("/").unwrap());
        let error = fs::read(inside.join("big.bin")).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EIO), "{error}");
        assert_eq!(fs::read(inside.join("note.txt")).unwrap(), b"a small note");
        let run = mount.unmount();
        assert_eq!(run.code, 0, "{}", run.stderr);
        let log = fs::read_to_string(alice.home.path().join("cache/mount.log")).unwrap_or_default();
        assert!(
            log.contains("cannot read") && log.contains("big.bin"),
            "{log}"
        );
    }

    // verify finds it on the server side and marks it; the next backup heals it.
    let (ok, report) = verify(&server);
    assert!(!ok);
    assert_eq!(report["damaged"].as_array().unwrap().len(), 1, "{report}");
    let healed = alice.backup(&[source.path()]).ok().json();
    assert_eq!(healed["files_changed"], 1, "{healed}");
    assert!(verify(&server).0);
    alice.run(&["check", "--read-data"]).ok();
    let again = tempfile::tempdir().unwrap();
    alice
        .run(&[
            "restore",
            &format!("latest:{}", source.path().display()),
            "--target",
            again.path().to_str().unwrap(),
        ])
        .ok();
    assert_eq!(fs::read(again.path().join("big.bin")).unwrap(), big);
}

#[test]
fn two_identical_uploads_racing_leave_one_copy_after_collection() {
    let server = TestServer::start();
    let [first] = clients(&server, ["alice@example.com"]);
    let second = TestClient::new("alice@example.com");
    second.login(&server);
    let source = tempfile::tempdir().unwrap();
    let data = noise(2 << 20);
    write_file(&source.path().join("same.bin"), &data);
    std::thread::scope(|scope| {
        let a = scope.spawn(|| first.backup(&[source.path()]));
        let b = scope.spawn(|| second.backup(&[source.path()]));
        assert_eq!(a.join().unwrap().code, 0);
        assert_eq!(b.join().unwrap().code, 0);
    });
    let out = server.tool("gc", &["--grace", "0s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = server.pack_bytes();
    assert!(stored >= 2 << 20, "the data is stored");
    assert!(stored < 3 << 20, "one copy, not two: {stored} bytes");
}

#[test]
fn a_server_rewound_to_an_older_state_is_refused() {
    let mut server = TestServer::start();
    let alice = TestClient::new("alice@example.com");
    alice.register(&server);
    let source = tempfile::tempdir().unwrap();
    write_file(&source.path().join("a.txt"), b"first");
    alice.backup(&[source.path()]).ok();
    let old_copy = tempfile::tempdir().unwrap();
    let old_db = old_copy.path().join("ibackup.db");
    server
        .db()
        .execute(
            "VACUUM INTO ?1",
            ibackup_server::params![old_db.to_str().unwrap()],
        )
        .unwrap();
    write_file(&source.path().join("a.txt"), b"second, newer");
    alice.backup(&[source.path()]).ok();

    // The server comes back with the database of before the second backup.
    let port = server.port;
    let data = server.stop();
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(data.path().join(format!("ibackup.db{suffix}")));
    }
    fs::copy(&old_db, data.path().join("ibackup.db")).unwrap();
    server = TestServer::start_in(data, port);

    let objects = || {
        let db = server.db();
        db.query_row(
            "SELECT COUNT(*) FROM objects",
            ibackup_server::params![],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
    };
    let stored = objects();
    for args in [
        &["snapshots"][..],
        &["restore", "latest", "--target", "/tmp/never"],
    ] {
        let run = alice.run(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("OLDER STATE OF LIBRARY `Backups`"),
            "{}",
            run.stderr
        );
    }
    write_file(&source.path().join("b.txt"), b"written after the rewind");
    let run = alice.backup(&[source.path()]);
    assert!(run.stderr.contains("OLDER STATE"), "{}", run.stderr);
    assert_eq!(objects(), stored, "nothing was built on the old state");
    assert!(!std::path::Path::new("/tmp/never").exists());

    // The owner accepts the server's state, and work goes on from it.
    alice.run(&["library", "accept-rollback", "Backups"]).ok();
    alice.backup(&[source.path()]).ok();
    let restored = tempfile::tempdir().unwrap();
    alice
        .run(&[
            "restore",
            "latest",
            "--target",
            restored.path().to_str().unwrap(),
        ])
        .ok();
}
