//! Issue 27: the mount as Linux users mount things: one library (or a folder in it) at a
//! mount point's root with its snapshots in a hidden `.snapshots/`, and the errors people
//! hit said in one line with nothing left mounted.

use std::fs;
use std::path::Path;

use crate::sharing::share;
use crate::util::{fuse_or_skip, is_mounted, write_file, TestClient, TestMount, TestServer};

/// Mounts `client`'s `library` at `dir` (made empty); the run's outcome.
fn mount_library(
    client: &TestClient,
    dir: &Path,
    library: &str,
    extra: &[&str],
) -> crate::util::Run {
    fs::create_dir_all(dir).unwrap();
    let mut args = vec!["mount", dir.to_str().unwrap(), "--library", library];
    args.extend_from_slice(&["--write-back-delay", "0.2"]);
    args.extend_from_slice(extra);
    client.run(&args)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn restored(client: &TestClient, path: &str) -> Option<Vec<u8>> {
    let out = tempfile::tempdir().unwrap();
    client
        .run(&[
            "restore",
            "latest:/",
            "--target",
            out.path().to_str().unwrap(),
        ])
        .ok();
    fs::read(out.path().join(path)).ok()
}

#[test]
fn one_library_or_a_folder_in_it_is_the_mounts_root_with_hidden_snapshots() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let alice = TestClient::new("alice-library@example.com");
    alice.register(&server);
    let mount = TestMount::start(&alice, &[]);
    fs::create_dir(mount.live().join("docs")).unwrap();
    write_file(
        &mount.live().join("docs/a.txt"),
        b"written in the whole mount",
    );
    mount.unmount();

    // The library at the root: its folders, no list of libraries, snapshots hidden.
    let dir = alice.home.path().join("backups");
    let run = mount_library(&alice, &dir, "Backups", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(names(&dir), vec!["docs"]);
    assert_eq!(
        fs::read(dir.join(".snapshots/latest/docs/a.txt")).unwrap(),
        b"written in the whole mount"
    );
    assert!(fs::write(dir.join(".snapshots/latest/new.txt"), b"x").is_err());
    write_file(&dir.join("top.txt"), b"written at the root");
    fs::create_dir(dir.join("made")).unwrap();
    let run = alice.run(&["umount", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!is_mounted(&dir));
    assert_eq!(
        restored(&alice, "top.txt").as_deref(),
        Some(&b"written at the root"[..])
    );

    // A folder of it at the root: what is written there lands in that folder.
    let run = mount_library(&alice, &dir, "Backups:docs", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(names(&dir), vec!["a.txt"]);
    write_file(&dir.join("b.txt"), b"written in docs");
    alice.run(&["umount", dir.to_str().unwrap()]).ok();
    assert_eq!(
        restored(&alice, "docs/b.txt").as_deref(),
        Some(&b"written in docs"[..])
    );
}

#[test]
fn mounts_that_cannot_be_made_say_why_and_leave_nothing_mounted() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let alice = TestClient::new("alice-refused@example.com");
    alice.register(&server);
    let bob = TestClient::new("bob-refused@example.com");
    bob.register(&server);
    let mount = TestMount::start(&alice, &[]);
    write_file(&mount.live().join("shared.txt"), b"for bob to read");
    mount.unmount();
    share(&alice, "bob-refused@example.com", "--read");

    let dir = alice.home.path().join("mnt");
    for (library, said) in [
        ("Nope", "no library named 'Nope'"),
        (
            "Backups:no/such/folder",
            "there is no folder 'no/such/folder' in Backups",
        ),
    ] {
        let run = mount_library(&alice, &dir, library, &[]);
        assert_ne!(run.code, 0, "{library}");
        assert!(run.stderr.contains(said), "{library}: {}", run.stderr);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
        assert!(!is_mounted(&dir), "{library} left a mount");
    }

    // Not an empty folder: refused, its files untouched.
    write_file(&dir.join("mine.txt"), b"already here");
    let run = mount_library(&alice, &dir, "Backups", &[]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("is not empty"), "{}", run.stderr);
    assert!(!is_mounted(&dir));
    assert_eq!(fs::read(dir.join("mine.txt")).unwrap(), b"already here");

    // A library shared read-only: only with --read-only.
    let bobs = bob.home.path().join("shared");
    let shared = "Backups@alice-refused@example.com";
    let run = mount_library(&bob, &bobs, shared, &[]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("read-only: mount it with --read-only"),
        "{}",
        run.stderr
    );
    assert!(!is_mounted(&bobs));
    let run = mount_library(&bob, &bobs, shared, &["--read-only"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        fs::read(bobs.join("shared.txt")).unwrap(),
        b"for bob to read"
    );
    assert!(fs::write(bobs.join("mine.txt"), b"x").is_err());
    bob.run(&["umount", bobs.to_str().unwrap()]).ok();
}
