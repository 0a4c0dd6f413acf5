//! Retention and collection against a real server: a policy's dry run matches what is then
//! dropped, forgetting by hand, collection freeing disk and quota (deleted and rewritten
//! packs, orphans), and collection while backups and a mount keep writing.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::sharing::{clients, share};
use crate::util::{
    assert_same_tree, fails, fuse_or_skip, snapshot_ids, write_file, TestClient, TestMount,
    TestServer,
};

fn gc(server: &TestServer, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--grace", "0s"];
    all.extend_from_slice(args);
    let out = server.tool("gc", &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Sets the library's policy to keep only the last `n` snapshots.
fn keep_last(client: &TestClient, n: u32) {
    let n = n.to_string();
    let mut args = vec!["library", "policy", "Backups", "--keep-last", n.as_str()];
    for rule in [
        "--keep-hourly",
        "--keep-daily",
        "--keep-weekly",
        "--keep-monthly",
        "--keep-yearly",
    ] {
        args.extend([rule, "0"]);
    }
    client.run(&args).ok();
}

fn noise(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    bytes
}

fn backup_id(client: &TestClient, path: &Path, extra: &[&str]) -> String {
    let mut args = vec!["backup", "--json"];
    args.extend_from_slice(extra);
    let path = path.to_str().unwrap();
    args.push(path);
    client.run(&args).ok().json()["snapshot"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_policy_dry_run_matches_what_is_then_forgotten() {
    let server = TestServer::start();
    let [alice, bob] = clients(&server, ["alice@example.com", "bob@example.com"]);
    let source = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        write_file(
            &source.path().join("f.txt"),
            format!("version {i}").as_bytes(),
        );
        let extra: &[&str] = if i == 1 { &["--tag", "keepme"] } else { &[] };
        ids.push(backup_id(&alice, source.path(), extra));
    }
    let shown = alice.run(&["library", "policy", "Backups"]).ok().stdout;
    assert!(
        shown.contains("keeps the last 10, hourly 48, daily 14"),
        "{shown}"
    );
    let set = alice
        .run(&[
            "library",
            "policy",
            "Backups",
            "--keep-last",
            "2",
            "--keep-hourly",
            "0",
            "--keep-daily",
            "0",
            "--keep-weekly",
            "0",
            "--keep-monthly",
            "0",
            "--keep-yearly",
            "0",
            "--keep-tag",
            "keepme",
        ])
        .ok()
        .stdout;
    assert!(
        set.contains("keeps the last 2") && set.contains("tagged keepme"),
        "{set}"
    );

    let planned = alice.run(&["forget", "--dry-run", "--json"]).ok().json();
    assert_eq!(planned["forgotten"], 2);
    let decisions = planned["decisions"].as_array().unwrap();
    let why: Vec<(bool, String)> = decisions
        .iter()
        .map(|d| (d["keep"].as_bool().unwrap(), d["reasons"].to_string()))
        .collect();
    assert_eq!(
        why,
        vec![
            (false, "[]".into()),
            (true, r#"["tag"]"#.into()),
            (false, "[]".into()),
            (true, r#"["last"]"#.into()),
            (true, r#"["head","last"]"#.into()),
        ]
    );
    assert_eq!(snapshot_ids(&alice).len(), 5, "a dry run changes nothing");
    let done = alice.run(&["forget", "--json"]).ok().json();
    assert_eq!(done["forgotten"], 2);
    assert_eq!(
        snapshot_ids(&alice),
        vec![ids[1].clone(), ids[3].clone(), ids[4].clone()]
    );

    // By hand: an id prefix; the head and unknown ids are refused; readers may not.
    alice.run(&["forget", &ids[1][..10]]).ok();
    assert_eq!(snapshot_ids(&alice), vec![ids[3].clone(), ids[4].clone()]);
    fails(alice.run(&["forget", "latest"]), "current state");
    fails(alice.run(&["forget", &ids[4][..10]]), "current state");
    fails(
        alice.run(&["forget", &ids[0][..10]]),
        "no snapshot id starts with",
    );
    share(&alice, "bob@example.com", "--read");
    fails(
        bob.run(&[
            "forget",
            "--library",
            "Backups@alice@example.com",
            &ids[3][..10],
        ]),
        "read-only",
    );
}

#[test]
fn collection_frees_disk_and_quota_and_keeps_what_is_retained() {
    let server = TestServer::start();
    let [alice] = clients(&server, ["alice@example.com"]);
    let source = tempfile::tempdir().unwrap();
    let small = source.path().join("small.txt");
    let big = source.path().join("big.bin");
    write_file(&small, b"small and kept");
    write_file(&big, &noise(3 << 20));
    // The trees of one backup go up in one pack: a small folder that stays beside a large
    // one that goes leaves that pack mostly dead, so it is rewritten.
    let keep = source.path().join("keep");
    let churn = source.path().join("churn");
    fs::create_dir_all(&keep).unwrap();
    fs::create_dir_all(&churn).unwrap();
    write_file(&keep.join("k.txt"), b"k");
    for i in 0..150 {
        write_file(
            &churn.join(format!("file-with-a-long-name-{i:03}.txt")),
            b"c",
        );
    }
    alice.backup(&[source.path()]).ok();
    for _ in 0..2 {
        write_file(&big, &noise(3 << 20));
        alice.backup(&[source.path()]).ok();
    }
    fs::remove_file(&big).unwrap();
    fs::remove_dir_all(&churn).unwrap();
    alice.backup(&[source.path()]).ok();
    keep_last(&alice, 1);
    // An orphan: a pack file no row points at (a crash between writing and recording).
    let library = alice.run(&["library", "list", "--json"]).ok().json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let orphan = server.pack_path(&library, &"ab".repeat(16));
    fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    fs::write(&orphan, noise(100_000)).unwrap();

    let disk_before = server.pack_bytes();
    let used_before = alice.account_json()["used_bytes"].as_u64().unwrap();
    let dry = gc(&server, &["--dry-run"]);
    assert_eq!(
        server.pack_bytes(),
        disk_before,
        "a dry run changes nothing"
    );
    assert_eq!(snapshot_ids(&alice).len(), 4);
    let report = gc(&server, &[]);
    assert_eq!(report["snapshots_dropped"], 3);
    assert_eq!(report["snapshots_dropped"], dry["snapshots_dropped"]);
    assert_eq!(report["blobs_freed"], dry["blobs_freed"]);
    assert!(report["packs_deleted"].as_u64().unwrap() >= 2, "{report}");
    assert!(report["packs_repacked"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["orphan_packs"], 1);
    let disk_after = server.pack_bytes();
    assert!(
        disk_after + (9 << 20) <= disk_before,
        "freed {} of {disk_before} bytes",
        disk_before - disk_after
    );
    assert!(!orphan.exists());
    let used_after = alice.account_json()["used_bytes"].as_u64().unwrap();
    assert!(
        used_after + (9 << 20) <= used_before,
        "{used_before} -> {used_after}"
    );

    // What is retained restores bit for bit, from the rewritten pack.
    assert_eq!(snapshot_ids(&alice).len(), 1);
    let out = tempfile::tempdir().unwrap();
    alice
        .run(&[
            "restore",
            &format!("latest:{}", source.path().display()),
            "--target",
            out.path().to_str().unwrap(),
        ])
        .ok();
    assert_same_tree(source.path(), out.path());
    // A second pass finds nothing more.
    let again = gc(&server, &[]);
    assert_eq!(again["blobs_freed"], 0);
    assert_eq!(again["disk_bytes_freed"], 0);
}

#[test]
fn collection_runs_while_backups_and_a_mount_keep_writing() {
    let server = TestServer::start();
    let [alice] = clients(&server, ["alice@example.com"]);
    let other = TestClient::new("alice@example.com");
    other.login(&server);
    keep_last(&alice, 3);
    let fuse = fuse_or_skip();
    let mount = fuse.then(|| TestMount::start(&other, &["--poll-interval", "0.5"]));
    let source = tempfile::tempdir().unwrap();
    // What each backup held: snapshot id -> (file name -> content).
    let mut expected: HashMap<String, Vec<(String, Vec<u8>)>> = HashMap::new();
    for round in 0..8u32 {
        let files: Vec<(String, Vec<u8>)> = (0..3)
            .map(|i| {
                (
                    format!("f{i}.bin"),
                    noise(200_000 + (round as usize) * 1_000 + i),
                )
            })
            .collect();
        for (name, bytes) in &files {
            write_file(&source.path().join(name), bytes);
        }
        let pause = std::time::Duration::from_millis(u64::from(rand::random::<u8>() % 200));
        std::thread::scope(|scope| {
            let collector = scope.spawn(|| {
                std::thread::sleep(pause);
                alice.run(&["forget"]).ok();
                let out = server.tool("gc", &["--grace", "2s"]);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            });
            if let Some(mount) = &mount {
                write_file(&mount.live().join(format!("m{round}.txt")), &noise(50_000));
            }
            let run = alice.backup(&[source.path()]);
            // A backup that raced a collection may be told to retry; it never commits
            // a snapshot with a missing object.
            if run.code == 0 {
                expected.insert(
                    run.json()["snapshot"].as_str().unwrap().to_owned(),
                    files.clone(),
                );
            } else {
                assert!(
                    run.stderr.contains("collected while this upload ran"),
                    "{}",
                    run.stderr
                );
            }
            collector.join().unwrap();
        });
    }
    if let Some(mount) = mount {
        mount.settle();
        let run = mount.unmount();
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    alice.run(&["forget"]).ok();
    let out = server.tool("gc", &["--grace", "0s"]);
    assert!(out.status.success());
    // Every retained snapshot restores whole; those made by backup bit for bit.
    let retained = snapshot_ids(&alice);
    assert!(retained.len() >= 3, "{retained:?}");
    for id in retained {
        let target = tempfile::tempdir().unwrap();
        alice
            .run(&[
                "restore",
                &id[..12],
                "--target",
                target.path().to_str().unwrap(),
            ])
            .ok();
        if let Some(files) = expected.get(&id) {
            let inside = target.path().join(source.path().strip_prefix("/").unwrap());
            for (name, bytes) in files {
                assert_eq!(&fs::read(inside.join(name)).unwrap(), bytes, "{id} {name}");
            }
        }
    }
}

#[test]
fn a_snapshot_read_in_a_mount_is_kept_until_its_files_close() {
    use std::io::{Read, Seek, SeekFrom};
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let [alice] = clients(&server, ["alice@example.com"]);
    let source = tempfile::tempdir().unwrap();
    let old = noise(40 << 20);
    write_file(&source.path().join("big.bin"), &old);
    let first = backup_id(&alice, source.path(), &[]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write_file(&source.path().join("big.bin"), &noise(40 << 20));
    backup_id(&alice, source.path(), &[]);

    let mount = TestMount::start(&alice, &["--poll-interval", "0.5"]);
    let list = mount.dir.join("snapshots/Backups");
    let mut names: Vec<String> = fs::read_dir(&list)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "latest")
        .collect();
    names.sort();
    let inner = source.path().strip_prefix("/").unwrap().join("big.bin");
    let mut file = fs::File::open(list.join(&names[0]).join(&inner)).unwrap();
    let mut head = vec![0u8; 1 << 20];
    file.read_exact(&mut head).unwrap();
    assert_eq!(head, old[..1 << 20]);
    std::thread::sleep(std::time::Duration::from_millis(1500)); // the poll sends its holds

    // Forgotten and collected while the file is open: what it reads is still there.
    alice.run(&["forget", &first[..12]]).ok();
    gc(&server, &[]);
    let mut far = vec![0u8; 1 << 20];
    file.seek(SeekFrom::Start(30 << 20)).unwrap();
    file.read_exact(&mut far).unwrap();
    assert_eq!(far, old[30 << 20..31 << 20]);

    // Once it is closed the hold ends, and the next collection frees the old content.
    drop(file);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let report = gc(&server, &[]);
    assert!(
        report["blob_bytes_freed"].as_u64().unwrap() >= 30 << 20,
        "{report}"
    );
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}
