//! The mount as a POSIX file system under load: requests that wait on the network hold up
//! no others. Real FUSE against a real server, skipped where FUSE is missing unless
//! IBACKUP_REQUIRE_FUSE=1.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rand::{RngCore, SeedableRng};

use crate::util::{fuse_or_skip, kind_name, TestClient, TestMount, TestServer};

/// Runs `work` on a thread of its own; its answer, or `None` if it took longer than `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (done, answer) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    answer.recv_timeout(limit).ok()
}

fn walk(dir: &Path, out: &mut Vec<(String, u64)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        out.push((entry.path().display().to_string(), meta.len()));
        if meta.is_dir() {
            walk(&entry.path(), out);
        }
    }
}

#[test]
fn a_cold_read_waiting_on_the_server_holds_up_no_stat_or_listing() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-concurrent@example.com");
    client.register(&server);
    let mut data = vec![0u8; 24 << 20];
    rand::rngs::StdRng::seed_from_u64(5).fill_bytes(&mut data);
    let mount = TestMount::start(&client, &[]);
    fs::write(mount.live().join("large.bin"), &data).unwrap();
    for dir in ["cached/a", "cached/b"] {
        fs::create_dir_all(mount.live().join(dir)).unwrap();
        for i in 0..20 {
            fs::write(mount.live().join(format!("{dir}/{i}.txt")), [b'x'; 100]).unwrap();
        }
    }
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A fresh mount with no cache: the large file's chunks must come from the server.
    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &[]);
    let cached = mount.live().join("cached");
    let mut listed = Vec::new();
    walk(&cached, &mut listed);
    assert_eq!(listed.len(), 42);

    server.pause();
    let large = mount.live().join("large.bin");
    let (started, reading) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let _ = started.send(());
        fs::read(large).unwrap()
    });
    reading.recv().unwrap();
    // Past the kernel's one-second attribute cache, so every stat below reaches the mount.
    std::thread::sleep(Duration::from_millis(1500));
    let waited = !reader.is_finished();
    let again = within(Duration::from_secs(10), move || {
        let mut listed = Vec::new();
        walk(&cached, &mut listed);
        listed
    });
    let still_waiting = !reader.is_finished();
    // Resumed before any check, so a failed one does not leave the mount stuck.
    server.resume();
    assert!(
        waited && still_waiting,
        "the cold read did not wait on the paused server"
    );
    let again = again.expect("listing cached folders waited for the cold read");
    assert_eq!(again, listed);
    let read = reader.join().unwrap();
    assert!(read == data, "the large file read back differently");
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// What the special files, access time, link counts and names of `live` look like.
fn posix_view(live: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = Vec::new();
    for name in ["pipe", "chr", "blk", "sock"] {
        let meta = fs::symlink_metadata(live.join(name)).unwrap();
        let kind = kind_name(meta.file_type());
        // A socket's mode follows the binder's umask: not compared.
        let mode = match kind {
            "socket" => String::new(),
            _ => format!(" {:o}", meta.mode() & 0o7777),
        };
        seen.push(format!("{name} {kind}{mode} {:x}", meta.rdev()));
    }
    let file = fs::metadata(live.join("file")).unwrap();
    seen.push(format!(
        "file atime {} mtime {}",
        file.atime(),
        file.mtime()
    ));
    // Written after its access time was set: the write keeps it.
    let kept = fs::metadata(live.join("kept")).unwrap();
    seen.push(format!("kept atime {}", kept.atime()));
    seen.push(format!(
        "d nlink {}",
        fs::metadata(live.join("d")).unwrap().nlink()
    ));
    let long = live.join("n".repeat(256));
    seen.push(format!(
        "long name {:?}",
        fs::metadata(long).unwrap_err().raw_os_error()
    ));
    seen
}

#[test]
fn special_files_access_times_and_link_counts_survive_a_fresh_mount() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-posix@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &[]);
    let live = mount.live();
    let script = "mkfifo -m 640 pipe && mknod -m 620 chr c 4 1 && mknod -m 644 blk b 7 0 \
                  && echo hi > file && touch -m -d @1500000000 file && touch -a -d @1000000000 file \
                  && echo a > kept && touch -a -d @1200000000 kept && echo b >> kept \
                  && mkdir -p d/a d/b";
    crate::mount::sh(&live, script);
    let socket = std::os::unix::net::UnixListener::bind(live.join("sock")).unwrap();
    drop(socket);
    let expected = vec![
        "pipe fifo 640 0".to_owned(),
        "chr char 620 401".to_owned(),
        "blk block 644 700".to_owned(),
        "sock socket 0".to_owned(),
        "file atime 1000000000 mtime 1500000000".to_owned(),
        "kept atime 1200000000".to_owned(),
        "d nlink 4".to_owned(),
        format!("long name {:?}", Some(libc::ENAMETOOLONG)),
    ];
    assert_eq!(posix_view(&live), expected);
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);

    // From the server's trees alone, in the live view and in the snapshot.
    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &[]);
    assert_eq!(posix_view(&mount.live()), expected);
    let latest = mount.dir.join("snapshots/Backups/latest");
    assert_eq!(posix_view(&latest), expected);
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// Runs `script` with `sh` in `dir` as uid/gid 65534 (nobody); its exit code and stderr.
pub(crate) fn as_nobody(dir: &Path, script: &str) -> (i32, String) {
    let output = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn mode_and_owner(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.mode() & 0o7777, meta.uid())
}

/// A server and a signed-in client whose home a second user (nobody) may enter; `None`
/// where FUSE is missing or the tests do not run as root (who alone switches users).
fn second_user_setup(email: &str) -> Option<(TestServer, TestClient)> {
    if !fuse_or_skip() {
        return None;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: switching to a second user needs root");
        return None;
    }
    let server = TestServer::start();
    let client = TestClient::new(email);
    client.register(&server);
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(client.home.path(), fs::Permissions::from_mode(0o755)).unwrap();
    Some((server, client))
}

#[test]
fn a_second_user_of_an_allow_other_mount_meets_the_rules_of_ext4() {
    let Some((_server, client)) = second_user_setup("mount-allow-other@example.com") else {
        return;
    };

    // Without --allow-other, nobody but the mounting user gets in.
    let mount = TestMount::start(&client, &[]);
    let (code, stderr) = as_nobody(client.home.path(), "ls ibackup");
    assert_ne!(code, 0);
    assert!(stderr.contains("Permission denied"), "{stderr}");
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);

    let mount = TestMount::start(&client, &["--allow-other"]);
    let live = mount.live();
    crate::mount::sh(
        &live,
        "mkdir -m 700 private && echo s > private/secret \
         && mkdir -m 1777 tmp && echo r > tmp/roots && chmod 666 tmp/roots \
         && echo x > setid && chmod 6777 setid \
         && echo d > direct && chown 65534:65534 direct && chmod 6644 direct \
         && echo ro > readonly && chmod 644 readonly",
    );
    let denied = |script: &str, message: &str| {
        let (code, stderr) = as_nobody(&live, script);
        assert_ne!(code, 0, "{script} was allowed");
        assert!(stderr.contains(message), "{script}: {stderr}");
    };
    denied("ls private", "Permission denied");
    denied("echo more >> readonly", "Permission denied");
    denied("touch new-at-top", "Permission denied");
    // The sticky bit: only a file's owner removes or renames it.
    denied("rm -f tmp/roots", "Operation not permitted");
    denied("mv tmp/roots tmp/moved", "Operation not permitted");
    // Only root changes an owner; only the owner changes a mode.
    denied("chown 65534 readonly", "Operation not permitted");
    denied("chmod 777 readonly", "Operation not permitted");

    let (code, stderr) = as_nobody(
        &live,
        "cat readonly >/dev/null && echo mine > tmp/mine && mv tmp/mine tmp/moved \
         && echo more >> setid && echo also >> tmp/roots",
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(mode_and_owner(&live.join("tmp/moved")), (0o644, 65534));
    // Written by someone else: both set-ID bits go (group execute is set).
    assert_eq!(mode_and_owner(&live.join("setid")), (0o777, 0));
    // The same through O_DIRECT by the file's owner (fstests generic/355, which failed in
    // its run of 2026-12-08 but not here: docs/CONFORMANCE.md); set-group-ID without group
    // execute stays, as on ext4.
    let (code, stderr) = as_nobody(
        &live,
        "dd if=/dev/zero of=direct bs=4096 count=1 oflag=direct conv=notrunc status=none",
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(mode_and_owner(&live.join("direct")), (0o2644, 65534));
    let (code, stderr) = as_nobody(&live, "rm tmp/moved");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(fs::read(live.join("tmp/roots")).unwrap(), b"r\nalso\n");
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

fn inode_and_links(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.ino(), meta.nlink())
}

#[test]
fn hard_links_from_a_backup_and_made_in_the_mount_are_one_file() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-links@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("tree");
    fs::create_dir_all(source.join("sub")).unwrap();
    fs::write(source.join("a"), b"backed up").unwrap();
    fs::hard_link(source.join("a"), source.join("sub/b")).unwrap();
    client.backup(&[&source]).ok();

    let mount = TestMount::start(&client, &[]);
    let inside = mount.live().join(source.strip_prefix("/").unwrap());
    let snapshot = mount
        .dir
        .join("snapshots/Backups/latest")
        .join(source.strip_prefix("/").unwrap());
    for dir in [&inside, &snapshot] {
        let (ino, links) = inode_and_links(&dir.join("a"));
        assert_eq!(links, 2, "{}", dir.display());
        assert_eq!(inode_and_links(&dir.join("sub/b")), (ino, 2));
    }

    // A third name, a write through it, then the first name removed.
    fs::hard_link(inside.join("a"), inside.join("c")).unwrap();
    assert_eq!(inode_and_links(&inside.join("sub/b")).1, 3);
    fs::write(inside.join("c"), b"written through c").unwrap();
    assert_eq!(fs::read(inside.join("a")).unwrap(), b"written through c");
    assert_eq!(
        fs::read(inside.join("sub/b")).unwrap(),
        b"written through c"
    );
    fs::remove_file(inside.join("a")).unwrap();
    let (ino, links) = inode_and_links(&inside.join("c"));
    assert_eq!(links, 2);
    assert_eq!(inode_and_links(&inside.join("sub/b")), (ino, 2));
    assert_eq!(
        fs::hard_link(inside.join("sub"), inside.join("dir-link"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EPERM)
    );
    // Anything but a directory takes another name, as on ext4.
    crate::mount::sh(&inside, "mkfifo pipe && ln pipe sub/pipe2");
    assert_eq!(inode_and_links(&inside.join("sub/pipe2")).1, 2);
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);

    // As the server now has it.
    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &[]);
    let inside = mount.live().join(source.strip_prefix("/").unwrap());
    assert!(!inside.join("a").exists());
    let (ino, links) = inode_and_links(&inside.join("c"));
    assert_eq!(links, 2);
    assert_eq!(inode_and_links(&inside.join("sub/b")), (ino, 2));
    assert_eq!(
        fs::read(inside.join("sub/b")).unwrap(),
        b"written through c"
    );
    let pipe = fs::symlink_metadata(inside.join("pipe")).unwrap();
    assert_eq!(
        inode_and_links(&inside.join("sub/pipe2")),
        (std::os::unix::fs::MetadataExt::ino(&pipe), 2)
    );
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);

    // And a restore makes them hard links again.
    let target = work.path().join("restored");
    let spec = format!("latest:{}", source.display());
    client
        .run(&["restore", &spec, "--target", target.to_str().unwrap()])
        .ok();
    let (ino, links) = inode_and_links(&target.join("c"));
    assert_eq!(links, 2);
    assert_eq!(inode_and_links(&target.join("sub/b")), (ino, 2));
    // Every snapshot the mount wrote counts each file's names as the file has them.
    client.run(&["check"]).ok();
}

/// `renameat2(RENAME_EXCHANGE)` on `a` and `b`.
fn exchange(a: &Path, b: &Path) -> rustix::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE)
}

#[test]
fn two_names_trade_places_at_once_and_stay_traded_after_a_fresh_mount() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-exchange@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &[]);
    let live = mount.live();
    crate::mount::sh(
        &live,
        "echo first > a && echo second > b && mkdir -p d/inner && echo deep > d/inner/f",
    );
    exchange(&live.join("a"), &live.join("b")).unwrap();
    // A file and a folder in another folder trade places too.
    exchange(&live.join("a"), &live.join("d/inner")).unwrap();
    let view = |root: &Path| {
        let text = |p: &str| fs::read_to_string(root.join(p)).unwrap_or_else(|e| e.to_string());
        vec![text("a/f"), text("b"), text("d/inner")]
    };
    let expected = vec!["deep\n", "first\n", "second\n"];
    assert_eq!(view(&live), expected);
    assert_eq!(
        exchange(&live.join("d"), &live.join("d/inner")),
        Err(rustix::io::Errno::INVAL),
        "a folder cannot go inside itself"
    );
    assert_eq!(
        exchange(&live.join("b"), &live.join("missing")),
        Err(rustix::io::Errno::NOENT)
    );
    let names = |root: &Path| {
        let mut names: Vec<String> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&live), ["a", "b", "d"]);
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);

    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &[]);
    assert_eq!(view(&mount.live()), expected, "as the server holds it");
    assert_eq!(
        names(&mount.live()),
        ["a", "b", "d"],
        "nothing set aside is left"
    );
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// fstests' generic/035: a file or folder replaced by `rename`, or removed, while open has
/// no links left.
#[test]
fn what_a_rename_replaced_or_rmdir_removed_while_open_has_no_links() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-replaced@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &[]);
    let live = mount.live();
    crate::mount::sh(&live, "touch f1 f2 && mkdir d1 d2 d3 d1/sub");
    for (from, to) in [("f1", "f2"), ("d1", "d2")] {
        let open = fs::File::open(live.join(to)).unwrap();
        fs::rename(live.join(from), live.join(to)).unwrap();
        assert_eq!(
            open.metadata().unwrap().nlink(),
            0,
            "{to} replaced by {from}"
        );
    }
    let open = fs::File::open(live.join("d3")).unwrap();
    fs::remove_dir(live.join("d3")).unwrap();
    assert_eq!(open.metadata().unwrap().nlink(), 0, "d3 removed");
    assert_eq!(
        fs::metadata(live.join("d2")).unwrap().nlink(),
        3,
        "the folder that took d2's place"
    );
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// A POSIX ACL in Linux's xattr form: version 2, then (tag, permissions, id) entries.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut value = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        value.extend_from_slice(&tag.to_le_bytes());
        value.extend_from_slice(&perm.to_le_bytes());
        value.extend_from_slice(&id.to_le_bytes());
    }
    value
}

const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const ANY: u32 = u32::MAX;

#[test]
fn posix_acls_are_kept_checked_inherited_and_survive_a_fresh_mount() {
    let Some((_server, client)) = second_user_setup("mount-acl@example.com") else {
        return;
    };
    let mount = TestMount::start(&client, &["--allow-other"]);
    let live = mount.live();
    crate::mount::sh(
        &live,
        "echo secret > shared && chmod 600 shared && mkdir -m 755 team",
    );
    // nobody may read `shared` by its ACL alone, though its mode says owner only.
    let access = acl(&[
        (USER_OBJ, 6, ANY),
        (USER, 4, 65534),
        (GROUP_OBJ, 0, ANY),
        (MASK, 4, ANY),
        (OTHER, 0, ANY),
    ]);
    xattr::set(live.join("shared"), "system.posix_acl_access", &access).unwrap();
    let (code, stderr) = as_nobody(&live, "cat shared");
    assert_eq!(code, 0, "the ACL lets nobody read: {stderr}");
    let (code, _) = as_nobody(&live, "echo x >> shared");
    assert_ne!(code, 0, "but not write");
    // The group bits of the mode show the ACL's mask, as on ext4.
    assert_eq!(mode_and_owner(&live.join("shared")).0, 0o640);

    // What is made in `team` inherits its default ACL, masked by the mode asked for.
    let default = acl(&[
        (USER_OBJ, 7, ANY),
        (USER, 7, 65534),
        (GROUP_OBJ, 5, ANY),
        (MASK, 7, ANY),
        (OTHER, 0, ANY),
    ]);
    xattr::set(live.join("team"), "system.posix_acl_default", &default).unwrap();
    crate::mount::sh(
        &live,
        "umask 022 && echo plan > team/plan && mkdir team/sub",
    );
    let (code, stderr) = as_nobody(&live, "echo more >> team/plan && touch team/sub/by-nobody");
    assert_eq!(code, 0, "inherited, nobody may write: {stderr}");
    assert_eq!(
        mode_and_owner(&live.join("team/plan")).0,
        0o660,
        "0666 masked by the default ACL, not by the umask"
    );
    let inherited = |path: &str| {
        let path = live.join(path);
        (
            xattr::get(&path, "system.posix_acl_access").unwrap(),
            xattr::get(&path, "system.posix_acl_default").unwrap(),
        )
    };
    let (plan_access, plan_default) = inherited("team/plan");
    assert!(
        plan_access.is_some() && plan_default.is_none(),
        "a file: access only"
    );
    let (_, sub_default) = inherited("team/sub");
    assert_eq!(
        sub_default.as_deref(),
        Some(&default[..]),
        "a folder passes it on"
    );
    // Not an ACL, or a default ACL on a file: refused.
    assert!(xattr::set(live.join("shared"), "system.posix_acl_access", b"junk").is_err());
    assert!(xattr::set(live.join("shared"), "system.posix_acl_default", &default).is_err());

    let before = (
        xattr::get(live.join("shared"), "system.posix_acl_access").unwrap(),
        inherited("team/plan"),
        inherited("team/sub"),
    );
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &["--allow-other"]);
    let live = mount.live();
    let after = (
        xattr::get(live.join("shared"), "system.posix_acl_access").unwrap(),
        inherited("team/plan"),
        inherited("team/sub"),
    );
    assert_eq!(after, before, "as the server holds them");
    let (code, stderr) = as_nobody(&live, "cat shared");
    assert_eq!(code, 0, "{stderr}");
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// The names of `dir` read through `reader` from where it stands to the end.
fn read_names(reader: &mut rustix::fs::Dir) -> Vec<String> {
    let mut names = Vec::new();
    while let Some(entry) = reader.read() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    names.sort();
    names
}

#[test]
fn a_folder_read_again_from_the_start_shows_the_names_added_since() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-rewind@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &[]);
    let dir = mount.live().join("growing");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("first"), b"1").unwrap();
    let opened = fs::File::open(&dir).unwrap();
    let mut reader = rustix::fs::Dir::read_from(&opened).unwrap();
    assert_eq!(read_names(&mut reader), ["first"]);
    fs::write(dir.join("second"), b"2").unwrap();
    // rewinddir(3): POSIX says names added before it are seen after it (fstests 471).
    reader.rewind();
    assert_eq!(read_names(&mut reader), ["first", "second"]);
    drop(reader);
    mount.unmount();
}

#[test]
fn a_change_of_mode_or_attributes_moves_ctime_and_a_fresh_mount_keeps_it() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-ctime@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &[]);
    let (moded, tagged) = (mount.live().join("moded"), mount.live().join("tagged"));
    fs::write(&moded, b"m").unwrap();
    fs::write(&tagged, b"t").unwrap();
    mount.unmount();
    let mount = TestMount::start(&client, &[]);
    let before = |path: &Path| fs::metadata(path).unwrap();
    let (moded_before, tagged_before) = (before(&moded), before(&tagged));
    std::thread::sleep(Duration::from_millis(1100));
    // fstests generic/307: a setfacl the mode can say alone is a chmod.
    fs::set_permissions(&moded, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    xattr::set(&tagged, "user.colour", b"blue").unwrap();
    let after = |path: &Path, was: &fs::Metadata| {
        let now = fs::metadata(path).unwrap();
        assert!(
            now.ctime() > was.ctime(),
            "{}: ctime did not move",
            path.display()
        );
        assert_eq!(now.mtime(), was.mtime(), "{}", path.display());
        (now.ctime(), now.ctime_nsec())
    };
    let changed = [after(&moded, &moded_before), after(&tagged, &tagged_before)];
    mount.unmount();
    let mount = TestMount::start(&client, &[]);
    let kept = [&moded, &tagged].map(|path| {
        let meta = fs::metadata(path).unwrap();
        (meta.ctime(), meta.ctime_nsec())
    });
    assert_eq!(kept, changed, "the status-change times after a fresh mount");
    mount.unmount();
}
