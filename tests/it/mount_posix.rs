//! The mount as a POSIX file system under load: requests that wait on the network hold up
//! no others. Real FUSE against a real server, skipped where FUSE is missing unless
//! IBACKUP_REQUIRE_FUSE=1.

use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rand::{RngCore, SeedableRng};

use crate::util::{fuse_or_skip, TestClient, TestMount, TestServer};

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
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut seen = Vec::new();
    for name in ["pipe", "chr", "blk", "sock"] {
        let meta = fs::symlink_metadata(live.join(name)).unwrap();
        let t = meta.file_type();
        let kind = if t.is_fifo() {
            "fifo"
        } else if t.is_char_device() {
            "char"
        } else if t.is_block_device() {
            "block"
        } else if t.is_socket() {
            "socket"
        } else {
            "other"
        };
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
