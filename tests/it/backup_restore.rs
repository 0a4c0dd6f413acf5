//! Backup and restore, end to end through the real binaries.

use std::fs;
use std::path::Path;

use crate::util::{
    assert_same_tree, files_containing, kind_name, listing, make_tree, write_file, TestClient,
    TestServer,
};

#[test]
fn backup_then_restore_is_identical_and_rebackup_uploads_nothing() {
    let server = TestServer::start();
    let client = TestClient::new("roundtrip@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    let source = make_tree(work.path(), 20_000_000, 1);

    let first = client.backup(&[&source]).ok().json();
    assert!(first["files_new"].as_u64().unwrap() >= 35, "{first}");
    assert_eq!(first["files_unmodified"], 0);
    assert!(first["chunk_bytes_uploaded"].as_u64().unwrap() >= 20_000_000);
    assert!(first["bytes_read"].as_u64().unwrap() >= 20_000_000);
    let snapshot = first["snapshot"].as_str().unwrap().to_owned();

    let target = work.path().join("restored");
    let spec = format!("latest:{}", source.display());
    client
        .run(&["restore", &spec, "--target", target.to_str().unwrap()])
        .ok();
    assert_same_tree(&source, &target);

    // Nothing changed: nothing is re-read, no chunk is uploaded.
    let second = client.backup(&[&source]).ok().json();
    assert_eq!(second["chunk_bytes_uploaded"], 0, "{second}");
    assert_eq!(second["chunks_uploaded"], 0);
    assert_eq!(second["bytes_read"], 0);
    assert_eq!(second["files_new"], 0);
    assert_eq!(second["files_changed"], 0);
    assert_eq!(second["parent"].as_str(), Some(snapshot.as_str()));

    // A changed file is read again; its unchanged neighbours are not.
    write_file(&source.join("docs/readme.txt"), b"changed content\n");
    let third = client.backup(&[&source]).ok().json();
    assert_eq!(third["files_changed"], 1, "{third}");
    assert_eq!(third["bytes_read"], 16);

    // The first snapshot still restores as it was, by id prefix.
    let old = work.path().join("old");
    let spec = format!("{}:{}/docs/readme.txt", &snapshot[..10], source.display());
    client
        .run(&["restore", &spec, "--target", old.to_str().unwrap()])
        .ok();
    assert_eq!(fs::read(old.join("readme.txt")).unwrap(), b"hello, world\n");

    let list = client.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(list[2]["latest"], true);
}

#[test]
fn server_never_sees_contents_or_names() {
    let server = TestServer::start();
    let client = TestClient::new("private@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("secret-folder-name-q7w8e9");
    fs::create_dir(&dir).unwrap();
    write_file(
        &dir.join("diary-r4t5y6.txt"),
        b"the marker UNIQUE-MARKER-a1b2c3d4 is here\n",
    );
    write_file(
        &dir.join("big.txt"),
        &b"UNIQUE-MARKER-a1b2c3d4 ".repeat(100_000),
    );
    client.backup(&[&dir]).ok();
    for needle in [
        &b"UNIQUE-MARKER-a1b2c3d4"[..],
        b"diary-r4t5y6",
        b"secret-folder-name-q7w8e9",
    ] {
        let found = files_containing(server.data.path(), needle);
        assert!(
            found.is_empty(),
            "{:?} found in {found:?}",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
fn backups_of_other_paths_are_kept_in_the_next_snapshot() {
    let server = TestServer::start();
    let client = TestClient::new("merge@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    write_file(&a.join("one.txt"), b"one");
    write_file(&b.join("two.txt"), b"two");
    client.backup(&[&a]).ok();
    client.backup(&[&b]).ok();
    let out = work.path().join("out");
    client
        .run(&["restore", "latest", "--target", out.to_str().unwrap()])
        .ok();
    let inside = |p: &Path| out.join(p.strip_prefix("/").unwrap());
    assert_eq!(fs::read(inside(&a).join("one.txt")).unwrap(), b"one");
    assert_eq!(fs::read(inside(&b).join("two.txt")).unwrap(), b"two");
}

#[test]
fn two_clients_backing_up_at_once_both_land() {
    let server = TestServer::start();
    let first = TestClient::new("race@example.com");
    first.register(&server);
    let second = TestClient::new("race@example.com");
    second.login(&server);
    let work = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..2)
        .map(|i| {
            let dir = work.path().join(format!("machine-{i}"));
            fs::create_dir(&dir).unwrap();
            for f in 0..20 {
                write_file(&dir.join(format!("f{f}")), format!("{i}-{f}").as_bytes());
            }
            dir
        })
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..3 {
            let (d0, d1) = (&dirs[0], &dirs[1]);
            let (c0, c1) = (&first, &second);
            let t0 = scope.spawn(move || c0.backup(&[d0]).ok());
            let t1 = scope.spawn(move || c1.backup(&[d1]).ok());
            t0.join().unwrap();
            t1.join().unwrap();
        }
    });
    let out = work.path().join("out");
    first
        .run(&["restore", "latest", "--target", out.to_str().unwrap()])
        .ok();
    for dir in &dirs {
        assert_same_tree(dir, &out.join(dir.strip_prefix("/").unwrap()));
    }
    let list = first.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(
        list.as_array().unwrap().len(),
        6,
        "every backup became a snapshot"
    );
}

#[test]
fn a_file_changing_while_read_is_reported() {
    let server = TestServer::start();
    let client = TestClient::new("torn@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("busy");
    fs::create_dir(&dir).unwrap();
    let path = dir.join("growing.log");
    write_file(&path, &vec![b'x'; 30_000_000]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let run = std::thread::scope(|scope| {
        scope.spawn(|| {
            use std::io::Write;
            let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                file.write_all(b"y").unwrap();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        });
        let run = client.backup(&[&dir]);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        run
    });
    assert_eq!(
        run.code, 3,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains("changed while being read"),
        "{}",
        run.stderr
    );
    let summary = run.json();
    assert!(summary["snapshot"].is_string(), "the rest is still saved");
}

#[test]
fn restore_reports_unknown_snapshots_and_paths() {
    let server = TestServer::start();
    let client = TestClient::new("restore-errors@example.com");
    client.register(&server);
    let run = client.run(&["restore", "latest", "--target", "/tmp/never"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no snapshots yet"), "{}", run.stderr);
    let work = tempfile::tempdir().unwrap();
    write_file(&work.path().join("f"), b"x");
    client.backup(&[work.path()]).ok();
    let run = client.run(&["restore", "latest:/no/such/path", "--target", "/tmp/never"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("has nothing at `/no`"),
        "{}",
        run.stderr
    );
    let run = client.run(&["restore", "zzz", "--target", "/tmp/never"]);
    assert!(run.stderr.contains("is not a snapshot"), "{}", run.stderr);
    let run = client.run(&["backup", "/no/such/dir"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("No such file"), "{}", run.stderr);
}

/// Kind, mode and device number of each name in `dir`.
fn special_kinds(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    listing(dir)
        .iter()
        .map(|name| {
            let meta = fs::symlink_metadata(dir.join(name)).unwrap();
            format!(
                "{} {} {:o} {:x}",
                name.to_string_lossy(),
                kind_name(meta.file_type()),
                meta.mode() & 0o7777,
                meta.rdev()
            )
        })
        .collect()
}

#[test]
fn fifos_sockets_and_devices_are_backed_up_and_restored() {
    let server = TestServer::start();
    let client = TestClient::new("specials@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("dev-like");
    fs::create_dir(&source).unwrap();
    write_file(&source.join("plain"), b"text");
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg("mkfifo -m 600 pipe && mknod -m 640 null c 1 3 && mknod -m 660 loop b 7 0")
        .current_dir(&source)
        .status()
        .unwrap();
    assert!(
        made.success(),
        "mkfifo/mknod failed (the test runs as root)"
    );
    drop(std::os::unix::net::UnixListener::bind(source.join("sock")).unwrap());
    fs::set_permissions(
        source.join("sock"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let backup = client.backup(&[&source]).ok();
    assert!(!backup.stderr.contains("skipped"), "{}", backup.stderr);

    let target = work.path().join("restored");
    let spec = format!("latest:{}", source.display());
    let restored = client
        .run(&["restore", &spec, "--target", target.to_str().unwrap()])
        .ok();
    assert!(
        restored.stdout.contains("4 FIFOs, sockets or devices"),
        "{}",
        restored.stdout
    );
    assert_eq!(special_kinds(&target), special_kinds(&source));
    assert_eq!(
        special_kinds(&target),
        [
            "loop block 660 700",
            "null char 640 103",
            "pipe fifo 600 0",
            "plain file 644 0",
            "sock socket 700 0"
        ]
    );
}

#[test]
fn hard_links_are_read_once_and_restored_as_hard_links() {
    use std::os::unix::fs::MetadataExt;
    let server = TestServer::start();
    let client = TestClient::new("hardlinks@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("tree");
    fs::create_dir_all(source.join("sub")).unwrap();
    let content = vec![7u8; 300_000];
    write_file(&source.join("a"), &content);
    fs::hard_link(source.join("a"), source.join("sub/b")).unwrap();
    fs::hard_link(source.join("a"), source.join("c")).unwrap();
    write_file(&source.join("alone"), b"one name");
    // A second name outside what is backed up: restored as a file of its own.
    write_file(&source.join("half"), b"half");
    fs::hard_link(source.join("half"), work.path().join("outside")).unwrap();

    let backup = client.backup(&[&source]).ok().json();
    assert_eq!(
        backup["bytes_read"].as_u64().unwrap(),
        300_000 + 8 + 4,
        "{backup}"
    );
    let target = work.path().join("restored");
    let spec = format!("latest:{}", source.display());
    client
        .run(&["restore", &spec, "--target", target.to_str().unwrap()])
        .ok();
    let meta = |name: &str| fs::metadata(target.join(name)).unwrap();
    assert_eq!(meta("a").nlink(), 3);
    assert_eq!(meta("a").ino(), meta("sub/b").ino());
    assert_eq!(meta("a").ino(), meta("c").ino());
    assert_eq!(fs::read(target.join("c")).unwrap(), content);
    assert_eq!(meta("alone").nlink(), 1);
    assert_eq!(meta("half").nlink(), 1);
    assert_eq!(fs::read(target.join("half")).unwrap(), b"half");
    assert_same_tree(&source, &target);
    // The names of each file agree on their count and contents.
    client.run(&["check"]).ok();

    // Unchanged, the next backup reads nothing and keeps the same trees.
    let again = client.backup(&[&source]).ok().json();
    assert_eq!(again["bytes_read"], 0, "{again}");
}
