//! The mount process itself: the FUSE session, the uploader, the poller, and the drain
//! at unmount.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::cache::Fetcher;
use super::diskcache::DiskCache;
use super::fuse::Top;
use super::fuse::{FuseFs, READ_WORKERS};
use super::journal::Journal;
use super::libraries::{choose_library, mounted_library, refresh_libraries};
use super::locks::Locks;
use super::spin::Spinner;
use super::status_file::{record_path, records_dir, write_record, MountRecord};
use super::vfs::Vfs;
use super::workers::Workers;
use super::writeback::{UploadStatus, Uploader};
use super::{account_dir, MountOptions};
use crate::config::Paths;
use crate::model::EntryKind;
use crate::session::Session;
use crate::units::{count, format_size};
use crate::{ClientError, Result};

/// Threads reading kernel requests. Requests mostly wait (on the network, the disk, or the
/// file-system lock), so more threads than CPUs pay.
const FUSE_THREADS: usize = 4;

/// How long uploads may keep failing after the mount was asked to end (or the kernel
/// unmounted it) before the process gives up and leaves them queued for the next mount.
const DRAIN_GIVE_UP: Duration = Duration::from_secs(20);
/// How long a mount waits for a library another mount process holds (one that is still
/// uploading after its unmount gives up within `DRAIN_GIVE_UP` and `END_WAIT`).
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// How long an ending process waits for an upload under way to stop.
const END_WAIT: Duration = Duration::from_secs(5);

/// The uploads before the process ends: how long they have been failing.
#[derive(Default)]
struct Drain {
    started: bool,
    failing_since: Option<Instant>,
}

impl Drain {
    /// Whether to stop waiting: uploads failed for `DRAIN_GIVE_UP` without one succeeding
    /// (the server unreachable, or refusing). An upload that makes progress, however long
    /// it takes, is waited for; so is a file still open while nothing is pending.
    fn gives_up(&mut self, pending: u64, error: Option<&str>) -> bool {
        let Some(error) = error.filter(|_| pending > 0) else {
            self.failing_since = None;
            return false;
        };
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() < DRAIN_GIVE_UP {
            return false;
        }
        eprintln!(
            "uploads kept failing for {} s ({error}); ending with {pending} change(s) queued \
             for the next mount",
            DRAIN_GIVE_UP.as_secs()
        );
        true
    }
}

/// The folder a `--library` mount shows at its root (`folder`: its path in the one library
/// mounted), and that library's snapshot list.
fn library_top(vfs: &mut Vfs, folder: &[Vec<u8>]) -> Result<Top> {
    let view = &vfs.libraries[0];
    let (mut at, snapshots, name) = (view.live, view.snapshots, view.display.clone());
    for part in folder {
        let found = vfs
            .lookup(at, part)
            .ok()
            .filter(|s| s.kind == EntryKind::Dir);
        let Some(stat) = found else {
            let path: Vec<String> = folder
                .iter()
                .map(|p| String::from_utf8_lossy(p).into())
                .collect();
            return Err(ClientError::Usage(format!(
                "there is no folder '{}' in {name}",
                path.join("/")
            )));
        };
        at = stat.ino;
    }
    Ok(Top {
        folder: at,
        snapshots,
    })
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

pub(super) fn run_foreground(
    paths: &Paths,
    options: &MountOptions,
    mountpoint: &Path,
) -> Result<()> {
    let session = Session::load(paths)?;
    let account_dir = account_dir(paths, &session);
    let mut folder = Vec::new();
    let wanted = match &options.library {
        Some(wanted) => {
            let (library, path) = choose_library(session.libraries()?, wanted, options.read_only)?;
            folder = path;
            vec![library]
        }
        None => session.libraries()?,
    };
    // A mount that ended a moment ago may still be uploading its libraries' changes.
    let locks = Arc::new(Locks::new(account_dir.join("writeback").join("locks")));
    let deadline = Instant::now() + LOCK_WAIT;
    let mut waited = false;
    while !wanted.iter().all(|l| locks.take(&l.info.id)) && Instant::now() < deadline {
        waited = true;
        std::thread::sleep(Duration::from_millis(200));
    }
    // The mount waited for has committed since the libraries were listed: list them
    // again, or this mount would show the heads from before its last changes.
    let wanted = match (&options.library, waited) {
        (_, false) => wanted,
        (Some(name), true) => {
            vec![choose_library(session.libraries()?, name, options.read_only)?.0]
        }
        (None, true) => session.libraries()?,
    };
    let mut mounted = Vec::new();
    for library in wanted {
        if locks.take(&library.info.id) {
            mounted.push(mounted_library(&session, library, options.read_only)?);
        } else if options.library.is_some() {
            return Err(ClientError::Usage(format!(
                "{} is mounted by another ibackup mount on this computer (or one still \
                 uploading after its unmount): `ibackup status` shows it",
                library.display()
            )));
        } else {
            eprintln!(
                "warning: {} is mounted by another ibackup mount on this computer; not shown here",
                library.display()
            );
        }
    }
    let only = (options.library.as_ref()).map(|_| mounted[0].library.info.id.clone());
    let own_libraries = |vfs: &Mutex<Vfs>| -> Vec<String> {
        let vfs = vfs.lock().unwrap_or_else(|p| p.into_inner());
        vfs.libraries
            .iter()
            .map(|v| v.library.info.id.clone())
            .collect()
    };
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
    let mut vfs = Vfs::new(
        mounted,
        fetcher,
        (meta.uid(), meta.gid()),
        stage_dir.clone(),
        journal.clone(),
    );
    let top = match options.library {
        Some(_) => Some(library_top(&mut vfs, &folder)?),
        None => None,
    };
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
        link_free: Mutex::default(),
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
        fuser::MountOption::FSName(options.fsname.clone().unwrap_or_else(|| "ibackup".into())),
        fuser::MountOption::Subtype("ibackup".into()),
        fuser::MountOption::NoAtime,
        fuser::MountOption::NoSuid,
    ];
    mount_config.mount_options.push(match options.devices {
        true => fuser::MountOption::Dev,
        false => fuser::MountOption::NoDev,
    });
    // Several loop threads, each with a descriptor of its own: a request that waits (a cold
    // read, an upload's flush) holds up no other. Only the first descriptor is switched to
    // polling (see `Spinner`), so the others sleep until a request comes.
    mount_config.n_threads = Some(FUSE_THREADS);
    if options.allow_other {
        // Everyone in, and the kernel checks modes, owners and the sticky bit as on any
        // local file system.
        mount_config.acl = fuser::SessionACL::All;
        mount_config
            .mount_options
            .push(fuser::MountOption::DefaultPermissions);
    }
    mount_config.clone_fd = true;
    let spinner = Arc::new(OnceLock::new());
    // Passed-through writes never reach the mount, which then could not clear set-ID bits
    // when another user writes: no passthrough when others are let in.
    let passthrough = Arc::new(AtomicBool::new(
        super::fuse::may_pass_through() && !options.allow_other,
    ));
    let workers = Arc::new(Workers::start(READ_WORKERS));
    let make_fs = || FuseFs {
        vfs: vfs.clone(),
        space: space.clone(),
        spinner: spinner.clone(),
        passthrough: passthrough.clone(),
        io: Mutex::new(Default::default()),
        workers: workers.clone(),
        top,
        checks_access: options.allow_other,
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
    super::unit::notify("READY=1");

    // SIGTERM, SIGINT, SIGHUP and SIGUSR1 (`umount --no-wait`): end now, the journal kept
    // for the next mount. SIGUSR2 (`ibackup umount`): upload what is pending, then end.
    let terminate = Arc::new(AtomicBool::new(false));
    let drain_asked = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGUSR1,
    ] {
        let _ = signal_hook::flag::register(signal, terminate.clone());
    }
    let _ = signal_hook::flag::register(signal_hook::consts::SIGUSR2, drain_asked.clone());

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
        let only = only.clone();
        let locks = locks.clone();
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
                    let refreshed = refresh_libraries(
                        &uploader.vfs,
                        &account,
                        read_only,
                        only.as_deref(),
                        &locks,
                    );
                    if let Err(e) = refreshed {
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
            libraries: own_libraries(&vfs),
        };
        write_record(&record_file, &record);
    };
    let mut drain = Drain::default();
    loop {
        publish(true);
        std::thread::sleep(Duration::from_millis(100));
        if terminate.load(Ordering::SeqCst) {
            eprintln!("ending at once: what is not uploaded stays queued for the next mount");
            break;
        }
        let unmounted = session.guard.is_finished();
        if !(unmounted || drain_asked.load(Ordering::SeqCst)) {
            continue;
        }
        // Other mounts of the account journal other libraries in the same journal.
        let pending = journal.pending_count(&own_libraries(&vfs)).unwrap_or(0);
        if !drain.started {
            drain.started = true;
            hurry.store(true, Ordering::SeqCst);
            let why = if unmounted {
                "unmounted by the kernel"
            } else {
                "asked to unmount"
            };
            eprintln!("{why}; uploading {pending} pending change(s) before ending");
        }
        let open = !vfs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .handles
            .is_empty();
        if pending == 0 && (!open || unmounted) {
            break;
        }
        let failing = status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_error
            .clone();
        if drain.gives_up(pending, failing.as_deref()) {
            break;
        }
    }
    super::unit::notify("STOPPING=1");
    stop.store(true, Ordering::SeqCst);
    drop(session);
    // An upload under way ends at its next check of `stop`, or with its request; the
    // journal holds all it had not finished, so the process need not wait long for it.
    let until = Instant::now() + END_WAIT;
    while !(upload_thread.is_finished() && poll_thread.is_finished()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
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
