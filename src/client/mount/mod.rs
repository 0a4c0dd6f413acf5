//! `ibackup mount`, `umount` and `status`.
//!
//! `mount` checks what it needs (FUSE, a free mount point, a session), then runs the mount
//! in a background process of its own and returns once the mount is ready (`--foreground`
//! stays attached). The mount process writes its state (pending uploads, last error) to a
//! small file under the cache directory, which `status` and `umount` read.
//! On `ibackup umount` (SIGUSR2) and when the kernel unmounts it (`fusermount3 -u`,
//! `umount`) it uploads what is pending, then ends; if uploads keep failing for 20 s (the
//! server unreachable) it ends anyway and leaves the rest journaled for the next mount. On
//! SIGTERM, SIGINT, SIGHUP and SIGUSR1 (`umount --no-wait`) it unmounts and ends at once,
//! the journal intact.

mod cache;
mod diskcache;
mod fuse;
mod iomode;
mod journal;
mod libraries;
mod locks;
mod run;
mod spin;
mod status_file;
mod unit;
pub mod vfs;
mod workers;
mod writeback;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Paths;
use crate::session::Session;
use crate::units::parse_size;
use crate::{ClientError, Result};
pub use status_file::{is_mounted, queued, status, umount, MountRecord};

/// The mount's two on-disk formats, which it reads back after a crash and so must refuse
/// damage without panicking: a write-back journal entry and a disk-cache index record.
/// Public for the fuzzer (`ibackup-tools`).
pub mod disk_formats {
    pub use super::diskcache::{
        decode_record as decode_cache_record, encode_record as encode_cache_record,
    };
    pub use super::journal::{
        decode as decode_journal_op, encode as encode_journal_op, Op as JournalOp,
    };
}

/// `path` from `/`, for the mount process, which does not work from the caller's folder.
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(ClientError::io(path))
}

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
    /// Let other users (and services such as Samba or NFS) into the mount; the kernel then
    /// checks every access against the files' owners and modes. A user other than root
    /// needs `user_allow_other` in /etc/fuse.conf.
    #[arg(long)]
    #[serde(default)]
    pub allow_other: bool,
    /// Seconds between checks for changes other clients made.
    #[arg(long, default_value_t = 30.0)]
    pub poll_interval: f64,
    /// Mount one library (`NAME`, or `NAME@OWNER` for one shared with you), or a folder in
    /// it (`NAME:PATH`), at the mount point's root; its snapshots are in `.snapshots/`.
    #[arg(long, value_name = "NAME[:PATH]")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// Device nodes open the devices they name (`mount -o dev`, as root); by default the
    /// mount is `nodev`, so a device node restored from a backup opens nothing.
    #[arg(long = "dev", hide = true)]
    #[serde(default)]
    pub devices: bool,
    /// What the mount table names as the mount's source (default `ibackup`); the mount
    /// helper gives its `EMAIL:LIBRARY`, as `mount` and tools such as fstests expect.
    #[arg(long, hide = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsname: Option<String>,
    /// Do not mount now: write a systemd user unit that mounts this way at login (and
    /// unmounts cleanly at logout), and say how to turn it on.
    #[arg(long)]
    #[serde(default, skip_serializing)]
    pub install_unit: bool,
}

fn default_mountpoint() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join("ibackup"))
        .ok_or_else(|| ClientError::Usage("HOME is not set; name the mount point".into()))
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
    let holds_something = std::fs::read_dir(&mountpoint)
        .map_err(ClientError::io(&mountpoint))?
        .next()
        .is_some();
    if holds_something {
        return Err(ClientError::Usage(format!(
            "{} is not empty: mount on an empty folder (the mount would hide what is there)",
            mountpoint.display()
        )));
    }
    Ok(mountpoint)
}

const FUSE_CONF: &str = "/etc/fuse.conf";

/// `--allow-other` takes `user_allow_other` in /etc/fuse.conf (`conf`), except for root.
fn check_allow_other(conf: &str, root: bool) -> Result<()> {
    let allowed = conf
        .lines()
        .any(|line| line.split('#').next().unwrap_or_default().trim() == "user_allow_other");
    if allowed || root {
        return Ok(());
    }
    Err(ClientError::Usage(format!(
        "--allow-other needs `user_allow_other` in {FUSE_CONF} (ask an administrator to add \
         that line), or mount without --allow-other"
    )))
}

/// `--install-unit`: writes the unit for this mount; returns its path and name.
pub fn install_unit(paths: &Paths, options: &MountOptions) -> Result<(PathBuf, String)> {
    let mountpoint = match &options.mountpoint {
        Some(path) => path.clone(),
        None => default_mountpoint()?,
    };
    let path = unit::install(paths, &mountpoint, options)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((path, name))
}

pub fn mount(paths: &Paths, options: &MountOptions) -> Result<PathBuf> {
    let mountpoint = preflight(options.mountpoint.as_deref())?;
    if options.allow_other {
        let conf = std::fs::read_to_string(FUSE_CONF).unwrap_or_default();
        check_allow_other(&conf, rustix::process::geteuid().is_root())?;
    }
    Session::load(paths)?;
    if options.foreground {
        run::run_foreground(paths, options, &mountpoint)?;
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
        // The folders this mount was given, which a mount helper may have named itself.
        .env("IBACKUP_CONFIG_DIR", absolute(&paths.config_dir)?)
        .env("IBACKUP_CACHE_DIR", absolute(&paths.cache_dir)?)
        // A daemon works from `/`: started from a shell inside another mount, it would keep
        // that one busy (its `umount` failing) for as long as it runs.
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(ClientError::io(&log_path))?)
        .stderr(log);
    if options.read_only {
        command.arg("--read-only");
    }
    if options.allow_other {
        command.arg("--allow-other");
    }
    if let Some(library) = &options.library {
        command.args(["--library", library]);
    }
    if let Some(fsname) = &options.fsname {
        command.args(["--fsname", fsname]);
    }
    if options.devices {
        command.arg("--dev");
    }
    // glibc gives each of the mount's threads an arena of its own (up to eight per core),
    // and memory one arena freed is not reused by the others: two arenas keep the peak
    // about 90 MiB lower at the same speed (DECISIONS 94). A value the user set stays.
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        command.env("MALLOC_ARENA_MAX", "2");
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

/// This computer's caches and write-back journal for the logged-in account.
pub fn account_dir(paths: &Paths, session: &Session) -> PathBuf {
    account_dir_of(paths, session.remote.base(), &session.email)
}

/// The cache folder of the account `email` on the server at `base` (its URL without a
/// trailing slash).
fn account_dir_of(paths: &Paths, base: &str, email: &str) -> PathBuf {
    let key = blake3::hash(format!("{base}\n{email}").as_bytes()).to_hex();
    paths.cache_dir.join(&key[..16])
}

/// The write-back journal of the account signed in on this computer, found without the
/// server (the session file names it); `None` when nobody is signed in.
fn signed_in_journal(paths: &Paths) -> Option<PathBuf> {
    let file = crate::config::SessionFile::load(paths).ok()?;
    let url = crate::remote::parse_server_url(&file.server).ok()?;
    let base = url.as_str().trim_end_matches('/');
    Some(
        account_dir_of(paths, base, &file.email)
            .join("writeback")
            .join("journal.db"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_other_needs_the_line_in_fuse_conf_unless_root() {
        let refused = check_allow_other("# user_allow_other\nmount_max = 1000\n", false);
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("user_allow_other"), "{message}");
        assert!(check_allow_other("  user_allow_other  # for Samba\n", false).is_ok());
        assert!(check_allow_other("", true).is_ok());
    }
}
