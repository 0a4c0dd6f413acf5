//! `ibackup mount`, `umount` and `status`.
//!
//! `mount` checks what it needs (FUSE, a free mount point, a session), then runs the mount
//! in a background process of its own and returns once the mount is ready (`--foreground`
//! stays attached). The mount process writes its state (pending uploads, last error) to a
//! small file under the cache directory, which `status` and `umount` read.
//! On SIGTERM (and `umount`, and `fusermount3 -u`) it uploads what is pending, then ends;
//! on SIGUSR1 (`umount --no-wait`) it unmounts at once and leaves the queue for next time.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cache::Fetcher;
use super::config::Paths;
use super::diskcache::DiskCache;
use super::fuse::FuseFs;
use super::journal::Journal;
use super::repo::Repo;
use super::session::{OpenLibrary, Session};
use super::spin::Spinner;
use super::store::Store;
use super::vfs::{MountedLibrary, Vfs};
use super::writeback::{UploadStatus, Uploader};
use super::{ClientError, Result};
use crate::api::types::Permission;
use crate::units::{count, format_size, parse_size};

fn size_arg(text: &str) -> std::result::Result<u64, String> {
    parse_size(text)
}

/// Options of `ibackup mount` (flags, or fields of a config file).
#[derive(Clone, Debug, clap::Args, Serialize, Deserialize)]
pub struct MountOptions {
    /// Where to mount (default: ~/ibackup, created if missing).
    pub mountpoint: Option<PathBuf>,
    /// Stay attached instead of running in the background.
    #[arg(long)]
    pub foreground: bool,
    /// Disk cache of fetched (encrypted) blobs.
    #[arg(long, default_value = "10GiB", value_parser = size_arg)]
    pub cache_size: u64,
    /// Memory cache of decrypted chunks.
    #[arg(long, default_value = "128MiB", value_parser = size_arg)]
    pub memory_cache: u64,
    /// Seconds of quiet before changes are uploaded.
    #[arg(long, default_value_t = 2.0)]
    pub write_back_delay: f64,
    /// Show everything read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Seconds between checks for changes other clients made.
    #[arg(long, default_value_t = 30.0)]
    pub poll_interval: f64,
}

/// What a running mount publishes about itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MountRecord {
    pub mountpoint: PathBuf,
    pub pid: u32,
    pub running: bool,
    #[serde(flatten)]
    pub uploads: UploadStatus,
    /// The write-back journal, from which `status` counts what is pending at the moment it
    /// asks (the published counts are up to a few hundred ms old, older during an upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<PathBuf>,
    /// Whether the kernel writes open files straight to their local stage (FUSE
    /// passthrough, DECISIONS 38).
    #[serde(default)]
    pub passthrough: bool,
}

fn default_mountpoint() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join("ibackup"))
        .ok_or_else(|| ClientError::Usage("HOME is not set; name the mount point".into()))
}

fn records_dir(paths: &Paths) -> PathBuf {
    paths.cache_dir.join("mounts")
}

fn record_path(paths: &Paths, mountpoint: &Path) -> PathBuf {
    let key = blake3::hash(mountpoint.as_os_str().as_encoded_bytes()).to_hex();
    records_dir(paths).join(format!("{}.json", &key[..16]))
}

fn write_record(path: &Path, record: &MountRecord) {
    let tmp = path.with_extension("tmp");
    if let Ok(json) = serde_json::to_vec_pretty(record) {
        if std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

fn read_record(path: &Path) -> Option<MountRecord> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether something is mounted at `path` (from /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines()
        .any(|line| line.split(' ').nth(4).map(unescape_mount_path).as_deref() == Some(path))
}

fn unescape_mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Ok(value) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// Checks FUSE and the mount point; returns the mount point's canonical path.
fn preflight(mountpoint: Option<&Path>) -> Result<PathBuf> {
    if !Path::new("/dev/fuse").exists() {
        return Err(ClientError::Usage(
            "FUSE is not available: /dev/fuse is missing; load the fuse module (modprobe fuse) \
             or, in a container, pass the device through"
                .into(),
        ));
    }
    if !on_path("fusermount3") {
        return Err(ClientError::Usage(
            "fusermount3 was not found; install FUSE 3 (e.g. `apt-get install fuse3`)".into(),
        ));
    }
    let mountpoint = match mountpoint {
        Some(path) => path.to_owned(),
        None => default_mountpoint()?,
    };
    std::fs::create_dir_all(&mountpoint).map_err(ClientError::io(&mountpoint))?;
    let mountpoint = std::fs::canonicalize(&mountpoint).map_err(ClientError::io(&mountpoint))?;
    if is_mounted(&mountpoint) {
        return Err(ClientError::Usage(format!(
            "{} is busy: something is already mounted there; `ibackup umount {}` first",
            mountpoint.display(),
            mountpoint.display()
        )));
    }
    Ok(mountpoint)
}

pub fn mount(paths: &Paths, options: &MountOptions) -> Result<PathBuf> {
    let mountpoint = preflight(options.mountpoint.as_deref())?;
    Session::load(paths)?;
    if options.foreground {
        run_foreground(paths, options, &mountpoint)?;
        return Ok(mountpoint);
    }
    // Run the mount in a process of its own and wait until it is ready.
    std::fs::create_dir_all(&paths.cache_dir).map_err(ClientError::io(&paths.cache_dir))?;
    let log_path = paths.cache_dir.join("mount.log");
    // Appended to, so one mount's messages survive the next; started afresh past 1 MiB.
    let too_big = std::fs::metadata(&log_path)
        .map(|m| m.len() > 1 << 20)
        .unwrap_or(false);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(!too_big)
        .write(true)
        .truncate(too_big)
        .open(&log_path)
        .map_err(ClientError::io(&log_path))?;
    let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().map_err(ClientError::io("current executable"))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("mount")
        .arg(&mountpoint)
        .arg("--foreground")
        .args(["--cache-size", &options.cache_size.to_string()])
        .args(["--memory-cache", &options.memory_cache.to_string()])
        .args(["--write-back-delay", &options.write_back_delay.to_string()])
        .args(["--poll-interval", &options.poll_interval.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(ClientError::io(&log_path))?)
        .stderr(log);
    if options.read_only {
        command.arg("--read-only");
    }
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    let mut child = command.spawn().map_err(ClientError::io("ibackup mount"))?;
    let started = Instant::now();
    loop {
        if is_mounted(&mountpoint) {
            return Ok(mountpoint);
        }
        if let Ok(Some(_)) = child.try_wait() {
            let log = std::fs::read(&log_path).unwrap_or_default();
            let log = String::from_utf8_lossy(log.get(log_start as usize..).unwrap_or_default());
            let reason = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no reason given");
            return Err(ClientError::State(format!(
                "the mount failed: {}",
                reason.trim_start_matches("ibackup: ")
            )));
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            return Err(ClientError::State(format!(
                "the mount did not become ready in 2 minutes; see {}",
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Mounts. If the kernel agreed to passthrough but then refuses to register a file for
/// this process, unmounts and mounts again without it, with the writeback cache: the
/// choice is made at `init`, before a registration can be tried (DECISIONS 38).
fn start_session(
    make_fs: impl Fn() -> FuseFs,
    passthrough: &AtomicBool,
    mountpoint: &Path,
    config: &fuser::Config,
    probe: &Path,
) -> std::io::Result<fuser::Session<FuseFs>> {
    let session = fuser::Session::new(make_fs(), mountpoint, config)?;
    if !passthrough.load(Ordering::Relaxed) {
        return Ok(session);
    }
    // The probe's registration stays open (fuser has no safe way to close an id it did not
    // make): the kernel holds the empty probe file until unmount.
    let registered =
        std::fs::File::create(probe).and_then(|file| fuser::BackingId::create_raw(&session, &file));
    match registered {
        Ok(_) => Ok(session),
        Err(e) => {
            eprintln!("warning: FUSE passthrough refused ({e}); mounting without it");
            drop(session);
            passthrough.store(false, Ordering::Relaxed);
            fuser::Session::new(make_fs(), mountpoint, config)
        }
    }
}

/// A library as a mount shows it, with its head's root tree; `--read-only` shows every
/// library as if shared read-only.
fn mounted_library(
    session: &Session,
    mut library: OpenLibrary,
    read_only: bool,
) -> Result<MountedLibrary> {
    if read_only {
        library.info.permission = Permission::Read;
    }
    let head = match library.info.head {
        Some(head) => {
            let store = Store::new(&session.remote, &library);
            Some((head, store.load_snapshot(&head)?.tree))
        }
        None => None,
    };
    Ok(MountedLibrary {
        display: library.display(),
        library,
        head,
    })
}

/// Brings the mounted libraries in line with what the server lists now: libraries shared
/// since appear, unshared or deleted ones disappear, and rotated keys or changed
/// permissions are taken (a removed member's next upload would be refused otherwise).
pub fn refresh_libraries(vfs: &Mutex<Vfs>, session: &Session, read_only: bool) -> Result<()> {
    let listed = session.libraries()?;
    let shown: Vec<(usize, String, u32, Permission, bool)> = {
        let vfs = vfs.lock().unwrap_or_else(|p| p.into_inner());
        vfs.libraries
            .iter()
            .enumerate()
            .map(|(index, view)| {
                let info = &view.library.info;
                (
                    index,
                    info.id.clone(),
                    info.grant_epoch,
                    info.permission,
                    view.gone,
                )
            })
            .collect()
    };
    for (index, id, _, _, gone) in &shown {
        if !gone && !listed.iter().any(|l| &l.info.id == id) {
            vfs.lock().unwrap_or_else(|p| p.into_inner()).detach(*index);
        }
    }
    for library in listed {
        let library = super::sharing::rotate_if_asked(session, library)?;
        let current = shown
            .iter()
            .find(|(_, id, _, _, gone)| *id == library.info.id && !gone);
        match current {
            None => {
                let mounted = mounted_library(session, library, read_only)?;
                vfs.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .attach(mounted);
            }
            Some((index, _, epoch, permission, _)) => {
                let mut library = library;
                if read_only {
                    library.info.permission = Permission::Read;
                }
                if *epoch != library.info.grant_epoch || *permission != library.info.permission {
                    vfs.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .update_library(*index, library);
                }
            }
        }
    }
    Ok(())
}

/// This computer's caches and write-back journal for the logged-in account.
pub fn account_dir(paths: &Paths, session: &Session) -> PathBuf {
    let key =
        blake3::hash(format!("{}\n{}", session.remote.base(), session.email).as_bytes()).to_hex();
    paths.cache_dir.join(&key[..16])
}

fn run_foreground(paths: &Paths, options: &MountOptions, mountpoint: &Path) -> Result<()> {
    let session = Session::load(paths)?;
    let account_dir = account_dir(paths, &session);
    let mut mounted = Vec::new();
    for library in session.libraries()? {
        mounted.push(mounted_library(&session, library, options.read_only)?);
    }
    let account = session
        .remote
        .get::<crate::api::types::AccountInfo>(crate::api::routes::ACCOUNT)?;
    let space = Arc::new(Mutex::new((account.quota_bytes, account.used_bytes)));
    let remote = Arc::new(session.remote.clone());
    let signed_in = Arc::new(session);
    let blobs = account_dir.join("blobs");
    let disk = DiskCache::open(&blobs, options.cache_size).map_err(ClientError::io(&blobs))?;
    let fetcher = Arc::new(Fetcher::new(remote.clone(), disk, options.memory_cache));
    let writeback_dir = account_dir.join("writeback");
    crate::fsutil::create_private_dir(&writeback_dir).map_err(ClientError::io(&writeback_dir))?;
    let journal_path = writeback_dir.join("journal.db");
    let journal =
        Arc::new(Journal::open(&journal_path).map_err(|e| ClientError::State(e.to_string()))?);
    let stage_dir = writeback_dir.join("staging");
    let meta = std::fs::metadata("/proc/self").map_err(ClientError::io("/proc/self"))?;
    use std::os::unix::fs::MetadataExt;
    let vfs = Vfs::new(
        mounted,
        fetcher,
        (meta.uid(), meta.gid()),
        stage_dir.clone(),
        journal.clone(),
    );
    let vfs = Arc::new(Mutex::new(vfs));
    let status = Arc::new(Mutex::new(UploadStatus::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let hurry = Arc::new(AtomicBool::new(false));
    let uploader = Arc::new(Uploader {
        vfs: vfs.clone(),
        journal: journal.clone(),
        remote: remote.clone(),
        delay: Duration::from_secs_f64(options.write_back_delay.max(0.0)),
        stage_dir,
        status: status.clone(),
        hurry: hurry.clone(),
        stop: stop.clone(),
        prepared: Mutex::new(HashMap::new()),
        account: signed_in.clone(),
        refresh_keys: Arc::new(AtomicBool::new(false)),
    });
    // Changes a previous mount left behind go up first, so the tree shows them.
    if journal.counts().map(|c| c.0).unwrap_or(0) > 0 {
        eprintln!("uploading changes left by the previous mount");
        if let Err(e) = uploader
            .upload_all()
            .and_then(|()| uploader.show_committed_heads())
        {
            eprintln!("warning: {e}; they stay queued and will be retried");
        }
    }

    let mut mount_config = fuser::Config::default();
    mount_config.mount_options = vec![
        fuser::MountOption::FSName("ibackup".into()),
        fuser::MountOption::Subtype("ibackup".into()),
        fuser::MountOption::NoAtime,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    let spinner = Arc::new(OnceLock::new());
    let passthrough = Arc::new(AtomicBool::new(super::fuse::may_pass_through()));
    let make_fs = || FuseFs {
        vfs: vfs.clone(),
        space: space.clone(),
        spinner: spinner.clone(),
        passthrough: passthrough.clone(),
        io: Mutex::new(Default::default()),
    };
    let probe = writeback_dir.join("passthrough-probe");
    let session = start_session(make_fs, &passthrough, mountpoint, &mount_config, &probe)
        .and_then(|session| {
            let fd = session.as_fd().try_clone_to_owned()?;
            if let Some(started) = Spinner::start(fd) {
                let _ = spinner.set(started);
            }
            session.spawn()
        })
        .map_err(|e| {
            ClientError::State(format!("cannot mount at {}: {e}", mountpoint.display()))
        })?;
    println!("mounted at {}", mountpoint.display());
    let _ = std::io::stdout().flush();

    let terminate = Arc::new(AtomicBool::new(false));
    let no_wait = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register(signal, terminate.clone());
    }
    let _ = signal_hook::flag::register(signal_hook::consts::SIGUSR1, no_wait.clone());

    let upload_thread = {
        let uploader = uploader.clone();
        std::thread::spawn(move || uploader.run())
    };
    let poll_thread = {
        let (uploader, stop, space, remote, account) = (
            uploader.clone(),
            stop.clone(),
            space.clone(),
            remote.clone(),
            signed_in.clone(),
        );
        let read_only = options.read_only;
        let interval = Duration::from_secs_f64(options.poll_interval.max(0.5));
        let holder = hex::encode(rand::random::<[u8; 16]>());
        let hold_ttl = (interval * 3).max(Duration::from_secs(60));
        std::thread::spawn(move || {
            let mut last = Instant::now();
            let mut holding = std::collections::HashSet::new();
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() >= interval || uploader.refresh_keys.swap(false, Ordering::SeqCst)
                {
                    last = Instant::now();
                    if let Err(e) = refresh_libraries(&uploader.vfs, &account, read_only) {
                        tracing::debug!("library list not refreshed: {e}");
                    }
                    if let Err(e) = uploader.set_aside_gone() {
                        tracing::warn!("changes to an unshared library not set aside: {e}");
                    }
                    if let Err(e) = uploader.send_holds(&holder, hold_ttl, &mut holding) {
                        tracing::debug!("snapshots in use not held: {e}");
                    }
                    let _ = uploader.poll_heads();
                    if let Ok(account) =
                        remote.get::<crate::api::types::AccountInfo>(crate::api::routes::ACCOUNT)
                    {
                        *space.lock().unwrap_or_else(|p| p.into_inner()) =
                            (account.quota_bytes, account.used_bytes);
                    }
                }
            }
        })
    };

    let record_file = record_path(paths, mountpoint);
    let _ = std::fs::create_dir_all(records_dir(paths));
    let publish = |running: bool| {
        let record = MountRecord {
            mountpoint: mountpoint.to_owned(),
            pid: std::process::id(),
            running,
            uploads: status.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            journal: Some(journal_path.clone()),
            passthrough: passthrough.load(Ordering::Relaxed),
        };
        write_record(&record_file, &record);
    };
    let mut draining = false;
    loop {
        publish(true);
        std::thread::sleep(Duration::from_millis(100));
        if no_wait.load(Ordering::SeqCst) {
            break;
        }
        if terminate.load(Ordering::SeqCst) || session.guard.is_finished() {
            if !draining {
                draining = true;
                hurry.store(true, Ordering::SeqCst);
            }
            let pending = journal.counts().map(|c| c.0).unwrap_or(0);
            let open = !vfs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .handles
                .is_empty();
            if pending == 0 && (!open || session.guard.is_finished()) {
                break;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    drop(session);
    let _ = upload_thread.join();
    let _ = poll_thread.join();
    uploader.refresh_status();
    publish(false);
    let left = status.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if left.pending_operations > 0 {
        eprintln!(
            "unmounted {}; {} ({}) stay queued for the next mount",
            mountpoint.display(),
            count(left.pending_files, "file"),
            format_size(left.pending_bytes)
        );
    } else {
        eprintln!("unmounted {}; everything is uploaded", mountpoint.display());
    }
    Ok(())
}

/// Ends a mount: waits for its uploads (showing progress) unless `no_wait`.
pub fn umount(
    paths: &Paths,
    mountpoint: Option<&Path>,
    no_wait: bool,
    progress: bool,
) -> Result<MountRecord> {
    let mountpoint = match mountpoint {
        Some(path) => path.to_owned(),
        None => default_mountpoint()?,
    };
    let mountpoint = std::fs::canonicalize(&mountpoint).unwrap_or(mountpoint);
    let file = record_path(paths, &mountpoint);
    let record = read_record(&file).filter(|r| r.running && alive(r.pid));
    let Some(record) = record else {
        if is_mounted(&mountpoint) {
            let status = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(&mountpoint)
                .status();
            if matches!(status, Ok(s) if s.success()) {
                return Ok(MountRecord {
                    mountpoint,
                    ..Default::default()
                });
            }
            return Err(ClientError::State(format!(
                "cannot unmount {}",
                mountpoint.display()
            )));
        }
        return Err(ClientError::Usage(format!(
            "nothing is mounted at {}",
            mountpoint.display()
        )));
    };
    let signal = if no_wait { "-USR1" } else { "-TERM" };
    std::process::Command::new("kill")
        .args([signal, &record.pid.to_string()])
        .status()
        .map_err(ClientError::io("kill"))?;
    while alive(record.pid) {
        if progress {
            if let Some(now) = read_record(&file) {
                eprint!(
                    "\ruploading: {} ({}) pending    ",
                    count(now.uploads.pending_files, "file"),
                    format_size(now.uploads.pending_bytes)
                );
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    let last = read_record(&file).unwrap_or(record);
    let _ = std::fs::remove_file(&file);
    Ok(last)
}

/// The running mounts of this user, with their pending uploads.
pub fn status(paths: &Paths) -> Vec<MountRecord> {
    let mut records: Vec<MountRecord> = std::fs::read_dir(records_dir(paths))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| read_record(&entry.path()))
        .filter(|record| record.running && alive(record.pid))
        .collect();
    for record in &mut records {
        let counted = record.journal.as_deref().and_then(|path| {
            Journal::open_read_only(path)
                .and_then(|journal| journal.counts())
                .ok()
        });
        if let Some(counts) = counted {
            record.uploads.set_pending(counts);
        }
    }
    records.sort_by(|a, b| a.mountpoint.cmp(&b.mountpoint));
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(
            unescape_mount_path("/home/a\\040b"),
            PathBuf::from("/home/a b")
        );
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
    }
}
