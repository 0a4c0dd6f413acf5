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
