//! Staged files the kernel reads and writes itself (FUSE passthrough, DECISIONS 38): once a
//! handle is passed through, its reads and writes go straight to the stage file and never
//! reach the mount. What the mount still sees is open, flush, fsync, setattr and release,
//! so the file's size and mtime are taken from the stage file, and a change is noticed by
//! the stage file's size and mtime moving.

use std::fs::File;
use std::sync::Arc;

use super::nodes::{Attr, Ino};
use super::read::Handle;
use super::{Vfs, VfsError, VfsResult};

/// A staged file with passed-through handles open.
pub(crate) struct PassedThrough {
    file: Arc<File>,
    /// The stage file's size and mtime (ns) when last looked at.
    seen: (u64, i64),
    /// Whether the stage changed since it was last journaled.
    changed: bool,
    /// The size below which growth is not checked against the quota: the file's size when
    /// passthrough began, or after a truncation.
    allowed: u64,
    opens: usize,
}

fn signature(file: &File) -> VfsResult<(u64, i64)> {
    Ok(super::stage_signature(&file.metadata()?))
}

impl Vfs {
    /// Marks handle `fh` as passed through: the kernel now writes its stage file directly.
    pub fn passed_through(&mut self, fh: u64) -> VfsResult<()> {
        let Some(Handle::Staged {
            ino,
            file,
            passthrough,
            ..
        }) = self.handles.get_mut(&fh)
        else {
            return Err(VfsError::BadHandle);
        };
        *passthrough = true;
        let (ino, file) = (*ino, file.clone());
        if let Some(state) = self.passed.get_mut(&ino) {
            state.opens += 1;
            return Ok(());
        }
        let seen = signature(&file)?;
        self.passed.insert(
            ino,
            PassedThrough {
                file,
                seen,
                changed: false,
                allowed: seen.0,
                opens: 1,
            },
        );
        Ok(())
    }

    /// `attr` as the stage file of a passed-through `ino` says it is now, if it changed.
    pub(crate) fn passed_attr(&self, ino: Ino, attr: &mut Attr) {
        let Some(state) = self.passed.get(&ino) else {
            return;
        };
        if let Ok(now) = signature(&state.file) {
            if now != state.seen {
                (attr.size, attr.mtime_ns, attr.ctime_ns) = (now.0, now.1, now.1);
            }
        }
    }

    /// Takes what the kernel wrote into the stage of `ino` since last looked into the
    /// file's attributes.
    pub(crate) fn sync_passed(&mut self, ino: Ino) -> VfsResult<()> {
        let Some(state) = self.passed.get_mut(&ino) else {
            return Ok(());
        };
        let now = signature(&state.file)?;
        if now == state.seen {
            return Ok(());
        }
        state.seen = now;
        state.changed = true;
        if let Some(node) = self.nodes.get_mut(ino) {
            (node.attr.size, node.attr.mtime_ns, node.attr.ctime_ns) = (now.0, now.1, now.1);
        }
        Ok(())
    }

    /// After the mount itself changed the stage or attributes of `ino` (setattr): what the
    /// stage file holds now is known, and an explicit mtime stays until the next write.
    pub(crate) fn settle_passed(&mut self, ino: Ino, size_set: bool) -> VfsResult<()> {
        if let Some(state) = self.passed.get_mut(&ino) {
            state.seen = signature(&state.file)?;
            if size_set {
                state.allowed = state.seen.0;
            }
        }
        Ok(())
    }

    /// Whether the stage of `ino` changed since it was last journaled (and forgets it).
    pub(crate) fn take_passed_change(&mut self, ino: Ino) -> VfsResult<bool> {
        self.sync_passed(ino)?;
        Ok(self
            .passed
            .get_mut(&ino)
            .is_some_and(|state| std::mem::take(&mut state.changed)))
    }

    /// At `close` or `fsync` of passed-through handle `fh`: the kernel gave the mount no
    /// chance to refuse writes past the quota, so a file grown past `room` (the quota
    /// left) is cut back to it here, and the caller tells the writer `NoSpace`, as a
    /// refused write would have. Returns whether it cut.
    pub(crate) fn cut_to_quota(&mut self, fh: u64, room: u64) -> VfsResult<bool> {
        let ino = match self.handles.get(&fh) {
            Some(Handle::Staged {
                ino,
                passthrough: true,
                ..
            }) => *ino,
            _ => return Ok(false),
        };
        self.sync_passed(ino)?;
        let Some(state) = self.passed.get_mut(&ino) else {
            return Ok(false);
        };
        let limit = room.max(state.allowed);
        if state.seen.0 <= limit {
            return Ok(false);
        }
        state.file.set_len(limit)?;
        self.sync_passed(ino)?;
        Ok(true)
    }

    /// A passed-through handle closes; the last one ends the bookkeeping for its file.
    pub(crate) fn release_passed(&mut self, ino: Ino) {
        if let Some(state) = self.passed.get_mut(&ino) {
            state.opens -= 1;
            if state.opens == 0 {
                self.passed.remove(&ino);
            }
        }
    }
}
