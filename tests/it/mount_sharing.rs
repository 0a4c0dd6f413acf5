//! Shared libraries in real FUSE mounts: a share appears without remounting and leaves when
//! removed, read-only shares refuse writes with EACCES, and two read-write members converge,
//! keep both sides of a conflict (the copy names its author) and are charged to the owner.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::sharing::{clients, share, ALICE, ALICES_BACKUPS};
use crate::util::{fuse_or_skip, write_file, TestMount, TestServer};

/// Waits up to 20 s for `done`.
#[track_caller]
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn refused(result: std::io::Result<impl Sized>) -> bool {
    matches!(result, Err(e) if e.kind() == ErrorKind::PermissionDenied)
}

#[test]
fn a_share_appears_read_only_without_remounting_and_leaves_when_removed() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let [alice, bob] = clients(&server, [ALICE, "bob@example.com"]);
    let source = tempfile::tempdir().unwrap();
    write_file(&source.path().join("plan.txt"), b"the plan");
    alice.backup(&[source.path()]).ok();
    let mount = TestMount::start(&bob, &["--poll-interval", "0.5"]);
    let shared = mount.dir.join(ALICES_BACKUPS);
    assert!(!shared.exists());

    share(&alice, "bob@example.com", "--read");
    wait_for("the share to appear", || shared.exists());
    let inside = shared.join(source.path().strip_prefix("/").unwrap());
    assert_eq!(fs::read(inside.join("plan.txt")).unwrap(), b"the plan");
    let latest = mount
        .dir
        .join("snapshots")
        .join(ALICES_BACKUPS)
        .join("latest");
    let in_snapshot = latest.join(source.path().strip_prefix("/").unwrap());
    assert_eq!(fs::read(in_snapshot.join("plan.txt")).unwrap(), b"the plan");

    // Every write is refused where it starts: create, open for writing, mkdir, rename.
    assert!(refused(fs::write(inside.join("new.txt"), b"x")));
    assert!(refused(
        fs::OpenOptions::new()
            .write(true)
            .open(inside.join("plan.txt"))
    ));
    assert!(refused(fs::create_dir(inside.join("dir"))));
    assert!(refused(fs::rename(
        inside.join("plan.txt"),
        inside.join("renamed.txt")
    )));
    assert!(refused(fs::remove_file(inside.join("plan.txt"))));

    alice
        .run(&["share", "remove", "Backups", "bob@example.com"])
        .ok();
    wait_for("the share to leave", || !shared.exists());
    let listing: Vec<_> = fs::read_dir(&mount.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(listing.len(), 2, "{listing:?}"); // Backups and snapshots
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn read_write_members_converge_keep_both_sides_of_a_conflict_and_are_charged_to_the_owner() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let [alice, carol] = clients(&server, [ALICE, "carol@example.com"]);
    share(&alice, "carol@example.com", "--read-write");
    let hers = TestMount::start(&alice, &["--poll-interval", "0.5"]);
    let theirs = TestMount::start(&carol, &["--poll-interval", "0.5"]);
    let (a, c) = (hers.live(), theirs.dir.join(ALICES_BACKUPS));
    assert!(c.is_dir());

    write_file(&a.join("shared.txt"), b"original");
    hers.settle();
    wait_for("alice's file to reach carol", || {
        c.join("shared.txt").exists()
    });
    write_file(&a.join("from-alice.txt"), b"alice");
    write_file(&c.join("from-carol.txt"), b"carol");
    write_file(&a.join("shared.txt"), b"edited by alice");
    write_file(&c.join("shared.txt"), b"edited by carol");
    hers.settle();
    theirs.settle();
    wait_for("each side's files to cross", || {
        a.join("from-carol.txt").exists() && c.join("from-alice.txt").exists()
    });
    wait_for("the conflict copy to show on both sides", || {
        names_in(&a).iter().any(|n| n.contains("(conflict "))
            && names_in(&c).iter().any(|n| n.contains("(conflict "))
    });
    let names = names_in(&a);
    let copy = names
        .iter()
        .find(|n| n.starts_with("shared.txt (conflict "))
        .unwrap();
    let mut versions = vec![
        fs::read(a.join("shared.txt")).unwrap(),
        fs::read(a.join(copy)).unwrap(),
    ];
    versions.sort();
    assert_eq!(
        versions,
        vec![b"edited by alice".to_vec(), b"edited by carol".to_vec()]
    );
    // The copy names whoever made it: the writer whose commit came second.
    let author = if fs::read(a.join(copy)).unwrap() == b"edited by carol" {
        "carol@example.com"
    } else {
        ALICE
    };
    assert!(copy.contains(&format!("(conflict {author} ")), "{copy}");
    assert_eq!(names_in(&a), names_in(&c));

    // The owner's quota holds for what carol writes: refused at upload, and her status
    // names whose plan it is.
    let set = server.admin(&["user", "set-quota", ALICE, "1MiB"]);
    assert!(set.status.success());
    std::thread::sleep(Duration::from_millis(1200)); // the mounts' poll takes the new quota
    let mut noise = vec![0u8; 600_000];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut noise);
    for i in 0..3 {
        write_file(&c.join(format!("noise-{i}.bin")), &noise);
        noise[0] = noise[0].wrapping_add(1);
    }
    wait_for("the owner's quota to be reported", || {
        let status = carol.run(&["status"]).stdout;
        status.contains("stored on alice@example.com's plan")
    });
    drop(theirs);
    let run = hers.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn changes_waiting_when_a_share_is_removed_are_kept_on_the_members_computer() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let [alice, bob] = clients(&server, [ALICE, "bob@example.com"]);
    share(&alice, "bob@example.com", "--read-write");
    // A long quiet delay keeps bob's change waiting in his journal.
    let mount = TestMount::start(
        &bob,
        &["--poll-interval", "0.5", "--write-back-delay", "600"],
    );
    let shared = mount.dir.join(ALICES_BACKUPS);
    fs::create_dir(shared.join("drafts")).unwrap();
    write_file(&shared.join("drafts/letter.txt"), b"not uploaded yet");
    alice
        .run(&["share", "remove", "Backups", "bob@example.com"])
        .ok();
    wait_for("the share to leave", || !shared.exists());
    let mut kept = None;
    wait_for("the change to be set aside", || {
        let status = bob.run(&["status", "--json"]).json();
        kept = status["mounts"][0]["set_aside"][0]
            .as_str()
            .map(std::path::PathBuf::from);
        kept.is_some()
    });
    let kept = kept.unwrap();
    assert_eq!(
        fs::read(kept.join("drafts/letter.txt")).unwrap(),
        b"not uploaded yet"
    );
    assert!(bob
        .run(&["status"])
        .stdout
        .contains("no longer shared with you"));
    let started = Instant::now();
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "unmount did not wait"
    );
}
