//! Where a file's bytes lie, through the mount as on ext4: `fallocate` (reserve, punch a
//! hole, zero a range), `SEEK_DATA`/`SEEK_HOLE`, sparse files' blocks, and a sparse file
//! of many gigabytes that uploads by its data, not its size. Each operation is done on a
//! file in the mount and on a file on the local disk, and the two compared. fstests'
//! `falloc`, `fpunch`, `fzero` and sparse-file tests found these missing (issue 27).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use rustix::fs::{FallocateFlags, SeekFrom};

use crate::util::{fuse_or_skip, TestClient, TestMount, TestServer};

const MIB: u64 = 1 << 20;

/// The operations, on `path`: each a `fallocate` mode, offset and length.
fn shape(path: &Path) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    file.write_all_at(&vec![0xab; 3 * MIB as usize], 0).unwrap();
    let punch = FallocateFlags::KEEP_SIZE | FallocateFlags::PUNCH_HOLE;
    for (mode, offset, len) in [
        (punch, MIB, MIB),
        (FallocateFlags::ZERO_RANGE, 2 * MIB + MIB / 2, 100_000),
        (FallocateFlags::empty(), 3 * MIB, MIB),
        (FallocateFlags::KEEP_SIZE, 4 * MIB, MIB),
    ] {
        rustix::fs::fallocate(&file, mode, offset, len).unwrap();
    }
    // A hole left by writing past the end.
    file.write_all_at(b"tail", 9 * MIB).unwrap();
}

/// From an offset, where `SEEK_DATA` and `SEEK_HOLE` lead (`None`: ENXIO).
type Seeks = Vec<(u64, Option<u64>, Option<u64>)>;

/// What a reader sees of `path`: its size, a digest of its bytes, and its [`Seeks`] from a
/// few offsets.
fn seen(path: &Path) -> (u64, String, Seeks) {
    let bytes = fs::read(path).unwrap();
    let file = File::open(path).unwrap();
    let seeks = [0, MIB / 2, MIB, 2 * MIB, 3 * MIB, 5 * MIB, 9 * MIB]
        .into_iter()
        .map(|at| {
            (
                at,
                rustix::fs::seek(&file, SeekFrom::Data(at)).ok(),
                rustix::fs::seek(&file, SeekFrom::Hole(at)).ok(),
            )
        })
        .collect();
    (
        bytes.len() as u64,
        blake3::hash(&bytes).to_hex().to_string(),
        seeks,
    )
}

#[test]
fn space_is_reserved_punched_and_zeroed_and_holes_are_found_as_on_ext4() {
    if !fuse_or_skip() {
        return;
    }
    let local = tempfile::tempdir().unwrap();
    let reference = local.path().join("reference");
    shape(&reference);
    let expected = seen(&reference);
    assert_eq!(expected.0, 9 * MIB + 4);

    let server = TestServer::start();
    let client = TestClient::new("mount-space@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &[]);
    let live = mount.live();
    shape(&live.join("shaped"));
    assert_eq!(seen(&live.join("shaped")), expected, "in the mount, staged");
    // The kernel may answer from attributes it cached while the file was being written
    // (for a second, the mount's time to live).
    let blocks = || fs::metadata(live.join("shaped")).unwrap().blocks() * 512;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while blocks() >= 6 * MIB && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(blocks() < 6 * MIB, "holes take no room: {} bytes", blocks());

    // fallocate needs a file open for writing, and a range.
    let read_only = File::open(live.join("shaped")).unwrap();
    let refused = rustix::fs::fallocate(&read_only, FallocateFlags::empty(), 0, MIB);
    assert_eq!(refused, Err(rustix::io::Errno::BADF));
    let writable = OpenOptions::new()
        .write(true)
        .open(live.join("shaped"))
        .unwrap();
    let refused = rustix::fs::fallocate(&writable, FallocateFlags::PUNCH_HOLE, 0, MIB);
    assert_eq!(
        refused,
        Err(rustix::io::Errno::OPNOTSUPP),
        "a hole needs KEEP_SIZE"
    );
    // More than this computer can stage: refused, and nothing changes.
    let refused = rustix::fs::fallocate(&writable, FallocateFlags::empty(), 0, 1 << 50);
    assert_eq!(refused, Err(rustix::io::Errno::NOSPC));
    assert_eq!(writable.metadata().unwrap().len(), expected.0);
    let mount_free = rustix::fs::statvfs(&live).unwrap();
    let local_free = rustix::fs::statvfs(client.home.path()).unwrap();
    assert!(
        mount_free.f_bavail * mount_free.f_frsize <= local_free.f_bavail * local_free.f_frsize,
        "statfs offers no more than the local disk holds"
    );
    drop((read_only, writable));

    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
    // From the server alone: the same bytes; a committed file reads as all data.
    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &[]);
    let (size, digest, _) = seen(&mount.live().join("shaped"));
    assert_eq!((size, digest), (expected.0, expected.1.clone()));
    let file = File::open(mount.live().join("shaped")).unwrap();
    assert_eq!(rustix::fs::seek(&file, SeekFrom::Hole(0)), Ok(size));
    assert_eq!(
        rustix::fs::seek(&file, SeekFrom::Data(size)),
        Err(rustix::io::Errno::NXIO)
    );
    drop(file);
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_sparse_file_of_many_gigabytes_is_stored_by_its_data() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-sparse@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &[]);
    let path = mount.live().join("disk.img");
    let data: Vec<u8> = (0..MIB).map(|i| (i * 7 % 251) as u8).collect();
    {
        let file = File::create(&path).unwrap();
        file.set_len(64 << 30).unwrap();
        file.write_all_at(&data, 10 << 30).unwrap();
    }
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        server.pack_bytes() < 16 * MIB,
        "64 GiB of holes are stored as a few chunks of zeros: {} bytes",
        server.pack_bytes()
    );

    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &[]);
    let file = File::open(mount.live().join("disk.img")).unwrap();
    assert_eq!(file.metadata().unwrap().len(), 64 << 30);
    let mut back = vec![0u8; data.len()];
    file.read_exact_at(&mut back, 10 << 30).unwrap();
    assert!(back == data, "the data where it was written");
    file.read_exact_at(&mut back, 40 << 30).unwrap();
    assert!(back.iter().all(|b| *b == 0), "zeros in the holes");
    drop(file);
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// `copy_file_range` of `len` bytes from `from` at `from_at` to `to` at `to_at`, all of it.
fn copy_range(from: &Path, from_at: u64, to: &Path, to_at: u64, len: usize) {
    let source = File::open(from).unwrap();
    let target = OpenOptions::new().write(true).open(to).unwrap();
    let (mut from_at, mut to_at, mut left) = (from_at, to_at, len);
    while left > 0 {
        let copied = rustix::fs::copy_file_range(
            &source,
            Some(&mut from_at),
            &target,
            Some(&mut to_at),
            left,
        )
        .unwrap();
        assert!(copied > 0, "copy_file_range stopped {left} bytes short");
        left -= copied;
    }
}

#[test]
fn copy_file_range_copies_between_staged_and_committed_files() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("mount-copy-range@example.com");
    client.register(&server);
    let mount = TestMount::start(&client, &[]);
    let live = mount.live();
    let data: Vec<u8> = (0..3 * MIB).map(|i| (i * 13 % 251) as u8).collect();
    fs::write(live.join("source"), &data).unwrap();
    fs::write(live.join("target"), b"0123456789").unwrap();
    // Staged to staged: the middle MiB of the source over the target from byte 4 on.
    copy_range(
        &live.join("source"),
        MIB,
        &live.join("target"),
        4,
        MIB as usize,
    );
    let mut expected = b"0123".to_vec();
    expected.extend_from_slice(&data[MIB as usize..2 * MIB as usize]);
    assert!(fs::read(live.join("target")).unwrap() == expected, "staged");
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);

    // From committed content (nothing staged after a fresh mount) the kernel reads and
    // writes instead.
    fs::remove_dir_all(client.home.path().join("cache")).unwrap();
    let mount = TestMount::start(&client, &[]);
    let live = mount.live();
    fs::write(live.join("copy"), b"").unwrap();
    copy_range(&live.join("source"), 0, &live.join("copy"), 0, data.len());
    assert!(fs::read(live.join("copy")).unwrap() == data, "committed");
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn data_the_kernel_still_caches_is_found_by_seek_data() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let client = TestClient::new("space-cached-seek@example.com");
    client.register(&server);
    // `--allow-other`: no passthrough, so writes wait in the kernel's cache, and with them
    // the file's size (fstests' seek_sanity_test found ENXIO here).
    let mount = TestMount::start(&client, &["--allow-other"]);
    let path = mount.live().join("growing");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.write_all_at(b"a", 4096).unwrap();
    let data = rustix::fs::seek(&file, SeekFrom::Data(0)).unwrap();
    assert!(data <= 4096, "data at {data}");
    file.write_all_at(&[b'b'; 8192], 0).unwrap();
    file.set_len(32768).unwrap();
    assert_eq!(rustix::fs::seek(&file, SeekFrom::Data(0)).unwrap(), 0);
    let hole = rustix::fs::seek(&file, SeekFrom::Hole(0)).unwrap();
    assert!((8192..=32768).contains(&hole), "hole at {hole}");
    assert_eq!(
        rustix::fs::seek(&file, SeekFrom::Data(32768)),
        Err(rustix::io::Errno::NXIO)
    );
    drop(file);
    mount.unmount();
}
