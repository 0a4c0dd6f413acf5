//! The FUSE mount, on a real kernel mount against a real server. Skipped where FUSE is
//! missing, unless IBACKUP_REQUIRE_FUSE=1 (CI), which makes a missing FUSE fail.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use rand::{Rng, RngCore, SeedableRng};

use crate::util::{
    assert_same_tree, assert_same_tree_to_seconds, fuse_or_skip, is_mounted, make_tree, write_file,
    TestClient, TestMount, TestServer,
};

pub(crate) fn sh(dir: &Path, script: &str) {
    let output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn cp_and_rsync_in_and_out_survive_a_fresh_mount() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-copy@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    let source = make_tree(work.path(), 3_000_000, 11);
    let mount = TestMount::start(&client, &[]);
    let inside = mount.live().join("copied");
    sh(
        work.path(),
        &format!("cp -a '{}' '{}'", source.display(), inside.display()),
    );
    assert_same_tree(&source, &inside);
    let synced = mount.live().join("synced");
    sh(
        work.path(),
        &format!(
            "rsync -a --checksum '{}/' '{}/'",
            source.display(),
            synced.display()
        ),
    );
    assert_same_tree(&source, &synced);
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("all changes are uploaded"),
        "{}",
        run.stdout
    );

    // A fresh cache: everything comes back from the server.
    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &[]);
    assert_same_tree(&source, &mount.live().join("copied"));
    let out = work.path().join("out");
    sh(
        work.path(),
        &format!(
            "rsync -a --checksum '{}/' '{}/'",
            mount.live().join("synced").display(),
            out.display()
        ),
    );
    assert_same_tree(&source, &out);
    mount.unmount();
}

#[test]
fn tar_git_and_editor_saves_work_inside() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-tools@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    let source = make_tree(work.path(), 100_000, 12);
    sh(work.path(), "tar cf archive.tar data");
    let mount = TestMount::start(&client, &[]);
    let live = mount.live();
    sh(
        &live,
        &format!(
            "mkdir untarred && tar xf '{}/archive.tar' -C untarred",
            work.path().display()
        ),
    );
    // tar keeps whole seconds only.
    assert_same_tree_to_seconds(&source, &live.join("untarred/data"));

    let repo = live.join("repo");
    fs::create_dir(&repo).unwrap();
    sh(
        &repo,
        "git init -q . && git config user.email t@example.com && git config user.name T && \
         echo one > a.txt && mkdir sub && echo two > sub/b.txt && git add -A && \
         git commit -qm first && echo three >> a.txt && git commit -qam second && \
         git fsck --strict && test \"$(git log --oneline | wc -l)\" = 2",
    );

    // An editor's save: write a temporary file, fsync it, rename it over the original.
    write_file(&live.join("doc.txt"), b"draft 1");
    let tmp = live.join(".doc.txt.swp");
    {
        use std::io::Write;
        let mut file = fs::File::create(&tmp).unwrap();
        file.write_all(b"draft 2, saved").unwrap();
        file.sync_all().unwrap();
    }
    fs::rename(&tmp, live.join("doc.txt")).unwrap();
    assert_eq!(fs::read(live.join("doc.txt")).unwrap(), b"draft 2, saved");
    mount.unmount();

    let restored = work.path().join("restored");
    client
        .run(&[
            "restore",
            "latest:/",
            "--target",
            restored.to_str().unwrap(),
        ])
        .ok();
    assert_eq!(
        fs::read(restored.join("doc.txt")).unwrap(),
        b"draft 2, saved"
    );
    assert!(!restored.join(".doc.txt.swp").exists());
    assert_same_tree_to_seconds(&source, &restored.join("untarred/data"));
    sh(
        &restored.join("repo"),
        "git fsck --strict && git log --oneline | wc -l | grep -q 2",
    );
}

#[test]
fn large_file_reads_back_at_random_offsets() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-large@example.com");
    client.register(&server);
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let mut data = vec![0u8; 200_000_000];
    rng.fill_bytes(&mut data);
    let mount = TestMount::start(&client, &[]);
    let path = mount.live().join("large.bin");
    fs::write(&path, &data).unwrap();
    mount.unmount();
    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &[]);
    let file = fs::File::open(mount.live().join("large.bin")).unwrap();
    assert_eq!(file.metadata().unwrap().len(), data.len() as u64);
    use std::os::unix::fs::FileExt;
    for _ in 0..200 {
        let offset = rng.gen_range(0..data.len());
        let len = rng.gen_range(1..300_000).min(data.len() - offset);
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset as u64).unwrap();
        assert!(
            buf == data[offset..offset + len],
            "bytes differ at offset {offset}"
        );
    }
    drop(file);
    mount.unmount();
}

#[test]
fn snapshots_show_the_past_and_refuse_writes() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-snapshots@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("docs");
    fs::create_dir(&dir).unwrap();
    write_file(&dir.join("v.txt"), b"version 1");
    client.backup(&[&dir]).ok();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write_file(&dir.join("v.txt"), b"version 2");
    client.backup(&[&dir]).ok();

    let mount = TestMount::start(&client, &[]);
    let list = mount.dir.join("snapshots/Backups");
    let mut names: Vec<String> = fs::read_dir(&list)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[2], "latest");
    let inner = dir.strip_prefix("/").unwrap().join("v.txt");
    assert_eq!(
        fs::read(list.join(&names[0]).join(&inner)).unwrap(),
        b"version 1"
    );
    assert_eq!(
        fs::read(list.join(&names[1]).join(&inner)).unwrap(),
        b"version 2"
    );
    assert_eq!(
        fs::read_link(list.join("latest")).unwrap(),
        Path::new(&names[1])
    );
    assert_eq!(
        fs::read(list.join("latest").join(&inner)).unwrap(),
        b"version 2"
    );
    assert_eq!(fs::read(mount.live().join(&inner)).unwrap(), b"version 2");

    let old = list.join(&names[0]).join(&inner);
    let refused = [
        fs::write(&old, b"x").unwrap_err(),
        fs::remove_file(&old).unwrap_err(),
        fs::create_dir(old.with_file_name("new")).unwrap_err(),
        fs::create_dir(list.join("new")).unwrap_err(),
    ];
    for error in refused {
        assert_eq!(error.kind(), ErrorKind::ReadOnlyFilesystem, "{error}");
    }
    // The real mode bits, as backed up (so `cp -a` out of a snapshot gives usable files);
    // writes are refused all the same.
    assert_eq!(
        fs::metadata(&old).unwrap().mode() & 0o777,
        fs::metadata(dir.join("v.txt")).unwrap().mode() & 0o777
    );
    assert_eq!(
        fs::metadata(old.parent().unwrap()).unwrap().mode() & 0o777,
        fs::metadata(&dir).unwrap().mode() & 0o777
    );
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn snapshot_folders_follow_new_snapshots_from_this_mount_and_elsewhere() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-fresh@example.com");
    client.register(&server);
    let other = TestClient::new("mount-fresh@example.com");
    other.login(&server);
    let mount = TestMount::start(&client, &["--poll-interval", "0.5"]);
    let list = mount.dir.join("snapshots/Backups");
    let listed = || -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&list)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "latest")
            .collect();
        names.sort();
        names
    };
    assert!(listed().is_empty());

    // The mount's own commit shows as soon as it is made.
    write_file(&mount.live().join("one.txt"), b"one");
    mount.settle();
    let after_one = listed();
    assert_eq!(after_one.len(), 1, "{after_one:?}");
    assert_eq!(
        fs::read(list.join("latest/one.txt")).unwrap(),
        b"one",
        "latest follows the new snapshot"
    );
    let snapshots = client.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(snapshots[0]["kind"], "write-back");
    assert_eq!(snapshots[0]["paths"][0], "/one.txt");
    assert_eq!(snapshots[0]["summary"]["bytes"], 3);

    // Another computer's backup shows within the poll interval.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let source = tempfile::tempdir().unwrap();
    write_file(&source.path().join("two.txt"), b"two");
    other.backup(&[source.path()]).ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while listed().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the other computer's snapshot did not appear"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let inner = source.path().strip_prefix("/").unwrap().join("two.txt");
    assert_eq!(fs::read(list.join("latest").join(inner)).unwrap(), b"two");
    assert_eq!(listed()[0], after_one[0], "the first snapshot stays");

    // A forgotten snapshot leaves the listing within the poll interval.
    let first = client.run(&["snapshots", "--json"]).ok().json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    client.run(&["forget", &first[..12]]).ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while listed().contains(&after_one[0]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the forgotten snapshot stayed listed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(listed().len(), 1);
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn posix_errors_are_the_expected_ones() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-errno@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &[]);
    let live = mount.live();
    fs::create_dir(live.join("d")).unwrap();
    write_file(&live.join("d/f"), b"x");
    assert_eq!(
        fs::remove_dir(live.join("d")).unwrap_err().raw_os_error(),
        Some(libc::ENOTEMPTY)
    );
    assert_eq!(
        fs::create_dir(live.join("d")).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let exclusive = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(live.join("d/f"));
    assert_eq!(exclusive.unwrap_err().kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        fs::read(live.join("nope")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        fs::read(live.join("d/f/x")).unwrap_err().raw_os_error(),
        Some(libc::ENOTDIR)
    );
    assert_eq!(
        fs::write(live.join("d"), b"x").unwrap_err().raw_os_error(),
        Some(libc::EISDIR)
    );
    assert_eq!(
        fs::write(mount.dir.join("toplevel"), b"x")
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
    // Append, truncate, chmod, utimens, xattrs, symlinks.
    {
        use std::io::Write;
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(live.join("d/f"))
            .unwrap();
        file.write_all(b"yz").unwrap();
    }
    assert_eq!(fs::read(live.join("d/f")).unwrap(), b"xyz");
    fs::OpenOptions::new()
        .write(true)
        .open(live.join("d/f"))
        .unwrap()
        .set_len(1)
        .unwrap();
    assert_eq!(fs::read(live.join("d/f")).unwrap(), b"x");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(live.join("d/f"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        fs::metadata(live.join("d/f")).unwrap().mode() & 0o777,
        0o600
    );
    // A change of owner clears set-user-ID (the mount does it: FUSE_HANDLE_KILLPRIV_V2).
    fs::set_permissions(live.join("d/f"), fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::chown(live.join("d/f"), Some(0), Some(0)).unwrap();
    assert_eq!(
        fs::metadata(live.join("d/f")).unwrap().mode() & 0o7777,
        0o755
    );
    fs::set_permissions(live.join("d/f"), fs::Permissions::from_mode(0o600)).unwrap();
    filetime::set_file_mtime(
        live.join("d/f"),
        filetime::FileTime::from_unix_time(1_500_000_000, 7),
    )
    .unwrap();
    assert_eq!(
        fs::metadata(live.join("d/f")).unwrap().mtime(),
        1_500_000_000
    );
    xattr::set(live.join("d/f"), "user.color", b"blue").unwrap();
    assert_eq!(
        xattr::get(live.join("d/f"), "user.color").unwrap().unwrap(),
        b"blue"
    );
    std::os::unix::fs::symlink("f", live.join("d/link")).unwrap();
    fs::hard_link(live.join("d/f"), live.join("d/hard")).unwrap();
    assert_eq!(fs::metadata(live.join("d/f")).unwrap().nlink(), 2);
    fs::remove_file(live.join("d/hard")).unwrap();
    assert_eq!(fs::metadata(live.join("d/f")).unwrap().nlink(), 1);
    assert_eq!(fs::read(live.join("d/link")).unwrap(), b"x");
    fs::rename(live.join("d/f"), live.join("d/g")).unwrap();
    fs::remove_file(live.join("d/link")).unwrap();
    let statfs = Command::new("df")
        .arg("--output=size")
        .arg("-B1")
        .arg(&mount.dir)
        .output()
        .unwrap();
    let size: u64 = String::from_utf8_lossy(&statfs.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(size, 5 << 30, "statfs reports the plan's quota");
    mount.unmount();
    let out = tempfile::tempdir().unwrap();
    client
        .run(&[
            "restore",
            "latest:/d",
            "--target",
            out.path().to_str().unwrap(),
        ])
        .ok();
    assert_eq!(fs::read(out.path().join("g")).unwrap(), b"x");
    assert_eq!(
        fs::metadata(out.path().join("g")).unwrap().mode() & 0o777,
        0o600
    );
    assert_eq!(
        xattr::get(out.path().join("g"), "user.color")
            .unwrap()
            .unwrap(),
        b"blue"
    );
    assert!(!out.path().join("f").exists() && !out.path().join("link").exists());
}

#[test]
fn nothing_acknowledged_is_lost_when_the_mount_is_killed() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-crash@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &["--write-back-delay", "600"]);
    for i in 0..50 {
        write_file(
            &mount.live().join(format!("file-{i}.txt")),
            format!("content {i}").as_bytes(),
        );
    }
    // `status` counts the journal itself: every closed file shows as pending at once, not
    // only after the mount next publishes its state.
    let status = client.run(&["status", "--json"]).ok().json();
    assert_eq!(status["mounts"][0]["pending_files"], 50, "{status}");
    let pid = status["mounts"][0]["pid"].as_u64().unwrap();
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    while Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("fusermount3")
        .arg("-uz")
        .arg(&mount.dir)
        .status()
        .unwrap();
    assert!(!is_mounted(&mount.dir));
    drop(mount);

    let mount = TestMount::start(&client, &[]);
    mount.unmount();
    let out = tempfile::tempdir().unwrap();
    client
        .run(&[
            "restore",
            "latest:/",
            "--target",
            out.path().to_str().unwrap(),
        ])
        .ok();
    for i in 0..50 {
        let got = fs::read(out.path().join(format!("file-{i}.txt"))).unwrap();
        assert_eq!(got, format!("content {i}").as_bytes());
    }
}

#[test]
fn writes_during_a_server_outage_arrive_when_it_returns() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-outage@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &[]);
    write_file(&mount.live().join("before.txt"), b"before");
    mount.settle();
    let port = server.port;
    let data = server.stop();
    write_file(&mount.live().join("during.txt"), b"during the outage");
    // Until the mount has tried to upload it and failed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        let status = client.run(&["status", "--json"]).ok().json();
        if !status["mounts"][0]["last_error"].is_null() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failed upload: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        status["mounts"][0]["pending_files"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert_eq!(
        fs::read(mount.live().join("during.txt")).unwrap(),
        b"during the outage"
    );
    let server = TestServer::start_in(data, port);
    mount.settle();
    mount.unmount();
    let out = tempfile::tempdir().unwrap();
    client
        .run(&[
            "restore",
            "latest:/",
            "--target",
            out.path().to_str().unwrap(),
        ])
        .ok();
    assert_eq!(
        fs::read(out.path().join("during.txt")).unwrap(),
        b"during the outage"
    );
    assert_eq!(fs::read(out.path().join("before.txt")).unwrap(), b"before");
    drop(server);
}

#[test]
fn two_mounts_of_one_library_merge_and_keep_both_sides_of_a_conflict() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let first = TestClient::new("mount-two@example.com");
    first.register(&server);
    let second = TestClient::new("mount-two@example.com");
    second.login(&server);
    write_file(&first.home.path().join("seed"), b"seed");
    let one = TestMount::start(&first, &["--poll-interval", "0.5"]);
    write_file(&one.live().join("shared.txt"), b"original");
    one.settle();
    let two = TestMount::start(&second, &["--poll-interval", "0.5"]);
    assert_eq!(
        fs::read(two.live().join("shared.txt")).unwrap(),
        b"original"
    );

    write_file(&one.live().join("from-one.txt"), b"one");
    write_file(&two.live().join("from-two.txt"), b"two");
    write_file(&one.live().join("shared.txt"), b"edited by one");
    write_file(&two.live().join("shared.txt"), b"edited by two");
    one.settle();
    two.settle();
    // Each side sees the other's files once its poll picks up the new head.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !(one.live().join("from-two.txt").exists() && two.live().join("from-one.txt").exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "changes did not cross between the mounts"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    one.unmount();
    two.unmount();
    let out = tempfile::tempdir().unwrap();
    first
        .run(&[
            "restore",
            "latest:/",
            "--target",
            out.path().to_str().unwrap(),
        ])
        .ok();
    assert_eq!(fs::read(out.path().join("from-one.txt")).unwrap(), b"one");
    assert_eq!(fs::read(out.path().join("from-two.txt")).unwrap(), b"two");
    let mut versions: Vec<Vec<u8>> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("shared.txt"))
        .map(|e| fs::read(e.path()).unwrap())
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        vec![b"edited by one".to_vec(), b"edited by two".to_vec()]
    );
    let names: Vec<String> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("shared.txt (conflict ")),
        "{names:?}"
    );
}

#[test]
fn unmounting_by_fusermount_uploads_and_no_wait_leaves_a_queue() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-umount@example.com");
    client.register(&server);
    // What the latest snapshot holds at `name`; none while there is no snapshot yet.
    let restore = |name: &str| {
        let out = tempfile::tempdir().unwrap();
        let run = client.run(&[
            "restore",
            "latest:/",
            "--target",
            out.path().to_str().unwrap(),
        ]);
        if run.code != 0 {
            assert!(run.stderr.contains("no snapshots yet"), "{}", run.stderr);
            return None;
        }
        fs::read(out.path().join(name)).ok()
    };

    // fusermount3 -u: the mount process still uploads what is pending, then ends.
    let mount = TestMount::start(&client, &["--write-back-delay", "600"]);
    write_file(&mount.live().join("by-fusermount.txt"), b"one");
    // Busy while a process that other tests are starting still holds a copy of this
    // test's file descriptors (between its fork and exec): try again, as a user would.
    let mut tries = 0;
    loop {
        let unmounted = Command::new("fusermount3")
            .arg("-u")
            .arg(&mount.dir)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&unmounted.stderr);
        if unmounted.status.success() {
            break;
        }
        tries += 1;
        assert!(
            tries < 50 && said.contains("busy"),
            "fusermount3 -u: {said}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while restore("by-fusermount.txt").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "not uploaded after fusermount3 -u: {}",
            client.run(&["status"]).stdout
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(mount);
    while !client.run(&["status", "--json"]).json()["mounts"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // --no-wait: unmounts at once, says what stays queued, and the next mount sends it.
    let mount = TestMount::start(&client, &["--write-back-delay", "600"]);
    // Journaled when `close` returned.
    write_file(&mount.live().join("queued.txt"), b"two");
    let run = client
        .run(&["umount", "--no-wait", mount.dir.to_str().unwrap()])
        .ok();
    assert!(
        run.stdout.contains("1 file (") && run.stdout.contains("stay queued"),
        "{}",
        run.stdout
    );
    assert!(!is_mounted(&mount.dir));
    assert_eq!(restore("queued.txt"), None);
    drop(mount);
    let mount = TestMount::start(&client, &[]);
    assert_eq!(fs::read(mount.live().join("queued.txt")).unwrap(), b"two");
    mount.unmount();
    assert_eq!(restore("queued.txt").as_deref(), Some(&b"two"[..]));
}

/// The pid of the running mount, from `status`.
fn mount_pid(client: &TestClient) -> u32 {
    let status = client.run(&["status", "--json"]).ok().json();
    status["mounts"][0]["pid"].as_u64().unwrap() as u32
}

/// Waits for process `pid` to end; how long it took, or `None` past `limit`.
fn ends_within(pid: u32, limit: std::time::Duration) -> Option<std::time::Duration> {
    let started = std::time::Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some(started.elapsed())
}

/// Issue 27: `fusermount3 -u` with the server unreachable left the mount process running
/// for ever (it waited for uploads that could not happen, and ignored SIGTERM). Now it
/// gives up after uploads failed for 20 s, keeps the rest journaled, `status` shows it
/// queued, and the next mount sends it. SIGTERM ends a mount at once, journal intact.
#[test]
fn a_mount_ends_when_unmounted_with_the_server_gone_and_its_changes_wait() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-ends@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &["--write-back-delay", "600"]);
    for i in 0..20 {
        write_file(
            &mount.live().join(format!("small-{i}.txt")),
            format!("small {i}").as_bytes(),
        );
    }
    let pid = mount_pid(&client);
    let port = server.port;
    let data = server.stop();
    let unmounted = Command::new("fusermount3")
        .arg("-u")
        .arg(&mount.dir)
        .output()
        .unwrap();
    assert!(unmounted.status.success(), "{unmounted:?}");
    let took = ends_within(pid, std::time::Duration::from_secs(60));
    assert!(
        took.is_some(),
        "the mount process was still running 60 s after unmount"
    );
    let log = fs::read_to_string(client.home.path().join("cache/mount.log")).unwrap();
    assert!(log.contains("queued for the next mount"), "{log}");
    let status = client.run(&["status", "--json"]).ok().json();
    assert_eq!(status["mounts"], serde_json::json!([]), "{status}");
    assert_eq!(status["queued"]["pending_files"], 20, "{status}");
    let said = client.run(&["status"]).ok();
    assert!(
        said.stdout.contains("20 files") && said.stdout.contains("queued for upload"),
        "{}",
        said.stdout
    );
    drop(mount);

    // Back: a mount ended by SIGTERM while it had more to send ends at once as well...
    let server = TestServer::start_in(data, port);
    let mount = TestMount::start(&client, &["--write-back-delay", "600"]);
    mount.settle();
    write_file(
        &mount.live().join("late.txt"),
        b"written just before SIGTERM",
    );
    let pid = mount_pid(&client);
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let took = ends_within(pid, std::time::Duration::from_secs(15));
    assert!(took.is_some(), "the mount process ignored SIGTERM for 15 s");
    assert_eq!(
        client.run(&["status", "--json"]).ok().json()["queued"]["pending_files"],
        1
    );
    let _ = Command::new("fusermount3")
        .arg("-uz")
        .arg(&mount.dir)
        .output();
    drop(mount);
    // ...and the next mount sends what both left.
    let mount = TestMount::start(&client, &[]);
    mount.unmount();
    let out = client.restore_latest();
    for i in 0..20 {
        let got = fs::read(out.path().join(format!("small-{i}.txt"))).unwrap();
        assert_eq!(got, format!("small {i}").as_bytes());
    }
    assert_eq!(
        fs::read(out.path().join("late.txt")).unwrap(),
        b"written just before SIGTERM"
    );
    assert_eq!(
        client.run(&["status", "--json"]).ok().json()["queued"],
        serde_json::Value::Null
    );
    drop(server);
}

#[test]
fn a_file_larger_than_the_quota_left_is_refused_at_write() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-quota@example.com");
    client.register(&server);
    assert!(server
        .admin(&["user", "set-quota", "mount-quota@example.com", "1MiB"])
        .status
        .success());
    let mount = TestMount::start(&client, &[]);
    let live = mount.live();
    write_file(&live.join("small"), &[1u8; 1000]);
    // The kernel may buffer the writes; the error then comes at fsync or close, as on a
    // full local disk.
    let mut file = fs::File::create(live.join("too big")).unwrap();
    let written = std::io::Write::write_all(&mut file, &vec![7u8; 3 << 20]);
    let error = written
        .err()
        .or_else(|| file.sync_all().err())
        .expect("writing 3 MiB into 1 MiB of quota fails");
    let code = error.raw_os_error().unwrap();
    assert!(
        code == libc::ENOSPC || code == libc::EDQUOT,
        "{error} ({code})"
    );
    drop(file);
    mount.settle();
    assert_eq!(fs::read(live.join("small")).unwrap(), [1u8; 1000]);
}

#[test]
fn a_large_file_changed_after_its_early_upload_keeps_the_last_version() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-early@example.com");
    client.register(&server);
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let mut first = vec![0u8; 24 << 20];
    rng.fill_bytes(&mut first);
    let mut second = first.clone();
    second[5 << 20..(5 << 20) + 4096].fill(0xAB);
    // A long quiet delay: the closed file starts uploading before it ends.
    let mount = TestMount::start(&client, &["--write-back-delay", "4"]);
    let path = mount.live().join("video.bin");
    fs::write(&path, &first).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // Same size, changed in the middle, after its chunks went up.
    use std::os::unix::fs::FileExt;
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&second[5 << 20..(5 << 20) + 4096], 5 << 20)
        .unwrap();
    drop(file);
    mount.unmount().ok();
    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &[]);
    let back = fs::read(mount.live().join("video.bin")).unwrap();
    assert!(back == second, "the last version must be the one stored");
    mount.unmount();
}

#[test]
fn reused_stage_files_hold_only_the_new_content() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-reuse@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &[]);
    let live = mount.live();
    for i in 0..20 {
        write_file(&live.join(format!("long{i}")), &vec![b'L'; 100_000]);
    }
    mount.settle();
    let free = client
        .home
        .path()
        .join("cache")
        .read_dir()
        .unwrap()
        .flatten()
        .map(|account| account.path().join("writeback/staging/free"))
        .find(|dir| dir.exists())
        .expect("uploaded stages wait in the free folder");
    assert_eq!(fs::read_dir(&free).unwrap().count(), 20);
    for i in 0..20 {
        write_file(&live.join(format!("short{i}")), b"short");
    }
    mount.settle();
    assert_eq!(fs::read_dir(&free).unwrap().count(), 20);
    mount.unmount().ok();
    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &[]);
    for i in 0..20 {
        assert_eq!(
            fs::read(mount.live().join(format!("short{i}"))).unwrap(),
            b"short"
        );
        assert_eq!(
            fs::read(mount.live().join(format!("long{i}")))
                .unwrap()
                .len(),
            100_000
        );
    }
    mount.unmount();
}

/// Written in place while open elsewhere: the kernel may write such files straight to their
/// local stage (FUSE passthrough, when the mount may), and must then serve every open of
/// the file the same way, while a file already open through the mount stays there.
#[test]
fn files_written_in_place_show_new_size_and_time_and_keep_every_open_consistent() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-inplace@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &[]);
    let status = client.run(&["status", "--json"]).ok().json();
    let passthrough = status["mounts"][0]["passthrough"].as_bool().unwrap();
    match std::env::var("IBACKUP_FUSE_PASSTHROUGH").as_deref() {
        Ok("0") => assert!(!passthrough, "turned off, yet {status}"),
        _ if std::env::var("IBACKUP_REQUIRE_PASSTHROUGH").as_deref() == Ok("1") => {
            assert!(
                passthrough,
                "passthrough required (root, Linux 6.9+): {status}"
            )
        }
        _ => {}
    }
    let path = mount.live().join("log.txt");
    write_file(&path, &[b'a'; 100_000]);
    let before = fs::metadata(&path).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));

    // A reader and an appender at once, on a file not uploaded yet.
    let mut reader = fs::File::open(&path).unwrap();
    let mut appender = fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut appender, b"tail").unwrap();
    let during = fs::metadata(&path).unwrap();
    assert_eq!(during.len(), 100_004);
    assert!(
        (during.mtime(), during.mtime_nsec()) > (before.mtime(), before.mtime_nsec()),
        "mtime must move with a write"
    );
    drop(appender);
    let mut seen = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut seen).unwrap();
    assert_eq!(seen.len(), 100_004);
    assert!(seen.ends_with(b"tail"));
    drop(reader);
    mount.settle();

    // Uploaded now: a reader opens it through the mount first, then a writer changes it.
    let reader = fs::File::open(&path).unwrap();
    let writer = fs::OpenOptions::new().write(true).open(&path).unwrap();
    use std::os::unix::fs::FileExt;
    writer.write_all_at(b"HEAD", 0).unwrap();
    drop(writer);
    let mut head = [0u8; 4];
    reader.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(&head, b"HEAD");
    drop(reader);
    let last = fs::metadata(&path).unwrap();
    mount.unmount().ok();

    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &[]);
    let back = fs::read(&path).unwrap();
    assert_eq!(back.len(), 100_004);
    assert!(back.starts_with(b"HEAD") && back.ends_with(b"tail"));
    assert_eq!(fs::metadata(&path).unwrap().mtime(), last.mtime());
    mount.unmount();
}

#[test]
fn a_file_removed_before_its_upload_is_never_uploaded() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-scratch@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &["--write-back-delay", "1"]);
    let mut scratch = vec![0u8; 4 << 20];
    rand::rngs::StdRng::seed_from_u64(21).fill_bytes(&mut scratch);
    let path = mount.live().join("scratch.bin");
    fs::write(&path, &scratch).unwrap();
    fs::remove_file(&path).unwrap();
    write_file(&mount.live().join("kept.txt"), b"kept");
    mount.settle();
    assert!(
        server.pack_bytes() < 1 << 20,
        "{} bytes stored for a 4-byte file",
        server.pack_bytes()
    );
    mount.unmount();
    let list = client.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}
