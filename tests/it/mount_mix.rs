//! Issue 27: a random mix of namespace and data operations from several processes in one
//! mount (creates, writes held open across renames, truncates, renames of files and
//! folders, hard links, symlinks, xattrs, chmod, fsync, removals), then the live view, the
//! tree after a cold remount and `restore latest` compared entry by entry. One mount is one
//! writer: its own journal replayed must give exactly the tree it showed, with no conflict
//! copies. CI runs one fixed seed; `IBACKUP_MIX_SEEDS=1-50 IBACKUP_MIX_OPS=2000` runs more
//! (and `IBACKUP_MIX_WORKERS=N` other than four).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::util::{fuse_or_skip, TestClient, TestMount, TestServer};

const WORKERS: u64 = 4;
/// Folder and file names are drawn from small sets, so operations meet each other.
const DIRS: [&str; 5] = ["a", "b", "a/x", "b/y", "c"];
const NAMES: [&str; 6] = ["f0", "f1", "f2", "f3", "f4", "f5"];

/// What an entry is, as compared: kind, permission bits, size, content hash or link target.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Dir(u32),
    File(u32, u64, String),
    Symlink(Vec<u8>),
}

fn walk(root: &Path) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| {
            let above: Vec<_> = dir
                .parent()
                .and_then(|p| fs::read_dir(p).ok())
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            panic!("{}: {e}; its parent holds {above:?}", dir.display())
        });
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let meta =
                fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mode = meta.mode() & 0o7777;
            let seen = if meta.file_type().is_symlink() {
                use std::os::unix::ffi::OsStrExt;
                Seen::Symlink(
                    fs::read_link(&path)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec(),
                )
            } else if meta.is_dir() {
                stack.push(path.clone());
                Seen::Dir(mode)
            } else {
                let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                Seen::File(mode, meta.len(), blake3::hash(&data).to_hex().to_string())
            };
            out.insert(name, seen);
        }
    }
    out
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.gen_range(0..from.len())]
}

fn file_path(root: &Path, rng: &mut StdRng) -> PathBuf {
    root.join(pick(rng, &DIRS)).join(pick(rng, &NAMES))
}

fn bytes(rng: &mut StdRng) -> Vec<u8> {
    let len = match rng.gen_range(0..10) {
        0 => rng.gen_range(200_000..400_000),
        1 => 0,
        _ => rng.gen_range(1..8_000),
    };
    let mut data = vec![0u8; len];
    rng.fill(&mut data[..]);
    data
}

/// One worker's operations. Failures are expected (another worker moved or removed the
/// target) and ignored: what counts is that the mount ends up consistent.
fn work(root: &Path, seed: u64, ops: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..ops {
        let _ = match rng.gen_range(0..100) {
            0..=24 => {
                let path = file_path(root, &mut rng);
                fs::write(path, bytes(&mut rng))
            }
            25..=34 => {
                // Written in steps, held open while others rename and commit.
                let path = file_path(root, &mut rng);
                let steps = rng.gen_range(2..5);
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|mut file| {
                        for _ in 0..steps {
                            file.write_all(&bytes(&mut rng))?;
                            if rng.gen_bool(0.3) {
                                file.sync_all()?;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(
                                rng.gen_range(0..30),
                            ));
                        }
                        Ok(())
                    })
            }
            35..=39 => {
                let path = file_path(root, &mut rng);
                let len = rng.gen_range(0..20_000);
                fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|file| file.set_len(len))
            }
            40..=44 => {
                let path = file_path(root, &mut rng);
                let at = rng.gen_range(0..10_000);
                let data = bytes(&mut rng);
                fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|mut file| {
                        file.seek(SeekFrom::Start(at))?;
                        file.write_all(&data)
                    })
            }
            45..=54 => {
                let (from, to) = (file_path(root, &mut rng), file_path(root, &mut rng));
                fs::rename(from, to)
            }
            55..=61 => {
                // A folder renamed, and (sometimes) put back, while files in it are written.
                let (from, to) = (pick(&mut rng, &DIRS), pick(&mut rng, &DIRS));
                fs::rename(root.join(from), root.join(to))
            }
            62..=67 => fs::create_dir_all(root.join(pick(&mut rng, &DIRS))),
            68..=69 => fs::remove_dir(root.join(pick(&mut rng, &DIRS))),
            70..=76 => fs::remove_file(file_path(root, &mut rng)),
            77..=81 => fs::hard_link(file_path(root, &mut rng), file_path(root, &mut rng)),
            82..=85 => {
                let target = pick(&mut rng, &NAMES).to_owned();
                std::os::unix::fs::symlink(target, file_path(root, &mut rng))
            }
            86..=90 => {
                let mode = [0o600, 0o644, 0o640, 0o755][rng.gen_range(0..4)];
                fs::set_permissions(file_path(root, &mut rng), fs::Permissions::from_mode(mode))
            }
            91..=94 => {
                let value = format!("v{}", rng.gen::<u16>());
                xattr::set(file_path(root, &mut rng), "user.mix", value.as_bytes())
            }
            _ => fs::File::open(file_path(root, &mut rng)).and_then(|file| file.sync_all()),
        };
    }
}

fn seeds() -> Vec<u64> {
    let Ok(text) = std::env::var("IBACKUP_MIX_SEEDS") else {
        return vec![27];
    };
    match text.split_once('-') {
        Some((first, last)) => (first.parse().unwrap()..=last.parse().unwrap()).collect(),
        None => vec![text.parse().unwrap()],
    }
}

#[test]
fn a_random_mix_in_one_mount_reads_back_the_same_after_a_cold_remount_and_a_restore() {
    if !fuse_or_skip() {
        return;
    }
    let ops: usize = std::env::var("IBACKUP_MIX_OPS")
        .map(|n| n.parse().unwrap())
        .unwrap_or(500);
    let server = TestServer::start();
    for seed in seeds() {
        let client = TestClient::new(&format!("mix-{seed}@example.com"));
        client.register(&server);
        // Commits race the operations: the uploader takes what is journaled every 100 ms.
        let mount = TestMount::start(&client, &["--write-back-delay", "0"]);
        let live = mount.live();
        for dir in DIRS {
            fs::create_dir_all(live.join(dir)).unwrap();
        }
        std::thread::scope(|scope| {
            let workers = std::env::var("IBACKUP_MIX_WORKERS")
                .map(|n| n.parse().unwrap())
                .unwrap_or(WORKERS);
            for worker in 0..workers {
                let live = &live;
                scope.spawn(move || work(live, seed * 1000 + worker, ops));
            }
        });
        let shown = walk(&live);
        let run = mount.unmount();
        assert_eq!(run.code, 0, "seed {seed}: {}", run.stderr);

        fs::remove_dir_all(client.home.path().join("cache")).unwrap();
        let mount = TestMount::start(&client, &["--read-only"]);
        let remounted = walk(&mount.live());
        drop(mount);
        let conflicts: Vec<&String> = remounted
            .keys()
            .filter(|p| p.contains("(conflict"))
            .collect();
        assert!(
            conflicts.is_empty(),
            "seed {seed}: conflict copies {conflicts:?}"
        );
        compare(seed, "after a cold remount", &shown, &remounted);

        let out = client.restore_latest();
        compare(seed, "restored", &shown, &walk(out.path()));
    }
}

fn compare(seed: u64, what: &str, shown: &BTreeMap<String, Seen>, got: &BTreeMap<String, Seen>) {
    let mut differences = Vec::new();
    for (path, before) in shown {
        match got.get(path) {
            Some(after) if after == before => {}
            other => differences.push(format!("{path}: shown {before:?}, {what} {other:?}")),
        }
    }
    for path in got.keys().filter(|p| !shown.contains_key(*p)) {
        differences.push(format!("{path}: not shown, but {what}"));
    }
    assert!(
        differences.is_empty(),
        "seed {seed}: {} of {} entries differ {what}:\n{}",
        differences.len(),
        shown.len(),
        differences.join("\n")
    );
}
