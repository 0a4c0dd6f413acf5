//! The small file each running mount publishes under the cache directory (its pid,
//! pending uploads and journal), and the commands that read it: `status` and `umount`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::default_mountpoint;
use super::journal::Journal;
use super::writeback::UploadStatus;
use crate::config::Paths;
use crate::units::{count, format_size};
use crate::{ClientError, Result};

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
    /// The libraries the mount shows (their ids): what of the journal is its to upload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<String>,
}

pub(super) fn records_dir(paths: &Paths) -> PathBuf {
    paths.cache_dir.join("mounts")
}

pub(super) fn record_path(paths: &Paths, mountpoint: &Path) -> PathBuf {
    let key = blake3::hash(mountpoint.as_os_str().as_encoded_bytes()).to_hex();
    records_dir(paths).join(format!("{}.json", &key[..16]))
}

pub(super) fn write_record(path: &Path, record: &MountRecord) {
    let tmp = path.with_extension("tmp");
    if let Ok(json) = serde_json::to_vec_pretty(record) {
        if std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

pub(super) fn read_record(path: &Path) -> Option<MountRecord> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Whether process `pid` runs: it exists and has not ended (a process that ended stays a
/// zombie until its parent collects it, and is then done with the mount all the same).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `PID (NAME) STATE ...`; the name may hold spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    state != Some("Z") && state != Some("X")
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
    // SIGUSR2 asks the mount to upload what is pending first (for at most as long as the
    // uploads succeed); SIGUSR1 ends it at once, like SIGTERM.
    let signal = if no_wait { "-USR1" } else { "-USR2" };
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

/// Changes a mount left journaled when it ended without uploading them (the server was
/// unreachable, or it was told to end at once), while no mount is running to send them:
/// the next mount of this account uploads them first. `None` when there are none.
pub fn queued(paths: &Paths) -> Option<UploadStatus> {
    let journal = super::signed_in_journal(paths)?;
    if !journal.exists()
        || status(paths)
            .iter()
            .any(|m| m.journal.as_ref() == Some(&journal))
    {
        return None;
    }
    let counts = Journal::open_read_only(&journal)
        .and_then(|journal| journal.counts())
        .ok()?;
    let mut queued = UploadStatus::default();
    queued.set_pending(counts);
    (queued.pending_operations > 0).then_some(queued)
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
                .and_then(|journal| journal.counts_of(&record.libraries))
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
