//! What the mount's poll does besides moving heads: sets aside changes to libraries that
//! stopped being shared, holds the snapshots it reads inside, and keeps `snapshots/LIB/`
//! in line with the server's list.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use super::{state_error, Uploader};
use crate::crypto::ObjectId;
use crate::mount::journal::Op;
use crate::store::Store;
use crate::{ClientError, Result};

impl Uploader {
    /// Moves what is pending for libraries the mount no longer shows (unshared or deleted
    /// meanwhile) out of the journal: the last content of each written file is copied to
    /// `writeback/kept/NAME TIME/PATH`, which `status` names, so nothing acknowledged is lost
    /// and unmounting does not wait for uploads that can never happen.
    pub fn set_aside_gone(&self) -> Result<()> {
        let gone: Vec<(String, String)> = self
            .vfs()
            .libraries
            .iter()
            .filter(|view| view.gone)
            .map(|view| (view.library.info.id.clone(), view.display.clone()))
            .collect();
        for (library, name) in gone {
            let ops = self.journal.pending(&library).map_err(state_error)?;
            let Some(last_seq) = ops.last().map(|(seq, _)| *seq) else {
                continue;
            };
            let mut files: std::collections::BTreeMap<Vec<u8>, String> = Default::default();
            for (_, op) in &ops {
                match op {
                    Op::Write { path, stage, .. } => {
                        files.insert(path.clone(), stage.clone());
                    }
                    Op::Remove { path } => {
                        files.retain(|p, _| !is_at_or_below(p, path));
                    }
                    Op::Rename { from, to } => {
                        let moved: Vec<(Vec<u8>, String)> = files
                            .iter()
                            .filter(|(p, _)| is_at_or_below(p, from))
                            .map(|(p, s)| ([to.as_slice(), &p[from.len()..]].concat(), s.clone()))
                            .collect();
                        files.retain(|p, _| !is_at_or_below(p, from));
                        files.extend(moved);
                    }
                    _ => {}
                }
            }
            let stamp = crate::model::snapshot::format_time_ns(crate::mount::vfs::now_ns());
            let kept = self
                .stage_dir
                .parent()
                .unwrap_or(&self.stage_dir)
                .join("kept")
                .join(format!("{name} {}", stamp.replace(':', "")));
            for (path, stage) in &files {
                let to = kept.join(std::ffi::OsStr::from_bytes(
                    path.strip_prefix(b"/").unwrap_or(path),
                ));
                if let Some(dir) = to.parent() {
                    std::fs::create_dir_all(dir).map_err(ClientError::io(dir))?;
                }
                std::fs::copy(self.stage_dir.join(stage), &to).map_err(ClientError::io(&to))?;
            }
            self.journal
                .complete(&library, last_seq, &[])
                .map_err(state_error)?;
            tracing::warn!(
                "{} is no longer shared with you; {} changed files kept in {:?}",
                name,
                files.len(),
                kept
            );
            self.status
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .set_aside
                .push(kept.display().to_string());
        }
        Ok(())
    }

    /// Tells the server which snapshot trees this mount reads inside (renewed each poll,
    /// they expire after `ttl` if the mount goes away); `holding` remembers which libraries
    /// had holds, so they are cleared once the files close.
    pub fn send_holds(
        &self,
        holder: &str,
        ttl: Duration,
        holding: &mut HashSet<usize>,
    ) -> Result<()> {
        let (held, libraries): (HashMap<usize, Vec<ObjectId>>, Vec<_>) = {
            let vfs = self.vfs();
            let libraries = vfs
                .libraries
                .iter()
                .map(|v| (v.library.clone(), v.gone))
                .collect();
            (vfs.held_roots(), libraries)
        };
        for (index, (library, gone)) in libraries.into_iter().enumerate() {
            let roots = held.get(&index).cloned().unwrap_or_default();
            if gone || (roots.is_empty() && !holding.contains(&index)) {
                continue;
            }
            let request = crate::api::types::HoldRequest {
                holder: holder.to_owned(),
                roots: roots.clone(),
                ttl_secs: ttl.as_secs().max(1),
            };
            let path =
                crate::api::routes::library(crate::api::routes::LIBRARY_HOLDS, &library.info.id);
            self.remote.put::<_, serde_json::Value>(&path, &request)?;
            if roots.is_empty() {
                holding.remove(&index);
            } else {
                holding.insert(index);
            }
        }
        Ok(())
    }

    /// Brings `snapshots/LIB/` in line with the server's list: new snapshots are fetched and
    /// opened here, outside the file-system lock, then shown.
    pub(super) fn refresh_snapshots(&self, index: usize, store: &Store<'_>) -> Result<()> {
        let ids: Vec<ObjectId> = store.snapshots()?.iter().map(|r| r.id).collect();
        let unknown = self.vfs().unknown_snapshots(index, &ids);
        let fetched = store.load_snapshots(&unknown)?;
        self.vfs()
            .show_snapshots(index, &ids, unknown.into_iter().zip(fetched).collect());
        Ok(())
    }
}

/// Whether journal path `path` is `dir` or inside it.
fn is_at_or_below(path: &[u8], dir: &[u8]) -> bool {
    path == dir || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}
