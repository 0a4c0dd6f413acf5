//! Where a staged file's bytes lie: `fallocate` (reserve space, punch a hole, zero a range),
//! the holes and data `lseek` finds (`SEEK_HOLE`, `SEEK_DATA`), and the blocks `stat`
//! reports. Holes are kept while a file is staged, in its stage file; committed content is
//! stored whole (zeros compress to next to nothing), so a committed file reads as all data.

use std::fs::File;
use std::sync::Arc;

use rustix::fs::{FallocateFlags, SeekFrom};

use super::nodes::{Body, Ino};
use super::read::Handle;
use super::{Vfs, VfsError, VfsResult};

/// The `fallocate` modes FUSE passes on; the kernel refuses the others itself.
const MODES: i32 =
    libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE;

/// Space left free on the disk that holds the stage files: `statfs` does not offer it,
/// and `fallocate` will not take it, so a program that fills the mount does not fill the
/// computer.
pub const LOCAL_RESERVE: u64 = 1 << 30;

/// What `lseek` looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seek {
    Data,
    Hole,
}

/// What `SEEK_DATA` or `SEEK_HOLE` finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Sought {
    At(u64),
    /// At or past the end (ENXIO).
    PastEnd,
    /// The kernel knows better (ENOSYS: it answers from its own size from then on).
    Unknown,
}

impl Vfs {
    /// `fallocate(2)` on the file behind writable handle `fh`: mode 0 reserves the range
    /// (growing the file), `KEEP_SIZE` reserves without growing, `PUNCH_HOLE` (with
    /// `KEEP_SIZE`) makes a hole, `ZERO_RANGE` zeroes. Growth past `room` (the quota left)
    /// is refused with `NoSpace`, as a write's is.
    pub fn fallocate(
        &mut self,
        fh: u64,
        offset: u64,
        len: u64,
        mode: i32,
        room: u64,
    ) -> VfsResult<()> {
        if mode & !MODES != 0 {
            return Err(VfsError::NotSupported);
        }
        let punch = mode & libc::FALLOC_FL_PUNCH_HOLE != 0;
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        if punch && (!keep_size || mode & libc::FALLOC_FL_ZERO_RANGE != 0) {
            return Err(VfsError::Invalid(
                "a hole is punched with KEEP_SIZE and alone",
            ));
        }
        let end = (offset.checked_add(len))
            .filter(|end| len > 0 && *end <= i64::MAX as u64)
            .ok_or(VfsError::Invalid("fallocate range out of bounds"))?;
        let (ino, file, size) = self.writable_stage(fh)?;
        let grows = !keep_size && end > size;
        // Growth is charged to the quota; reserved space lies on this computer's disk.
        if grows && end > room || !punch && len > self.local_room() {
            return Err(VfsError::NoSpace);
        }
        let flags = FallocateFlags::from_bits_retain(mode as u32);
        if let Err(e) = rustix::fs::fallocate(&*file, flags, offset, len) {
            // A failed reservation can leave what it took (ext4 keeps the blocks it got
            // and may have grown the file): cut the stage back to the file's size.
            let _ = file.set_len(size);
            return Err(std::io::Error::from(e).into());
        }
        if let Some(Handle::Staged { wrote, .. }) = self.handles.get_mut(&fh) {
            *wrote = true;
        }
        // Reserving space changes no byte; growing, punching and zeroing change the file.
        if grows || punch || mode & libc::FALLOC_FL_ZERO_RANGE != 0 {
            self.touch(ino, grows.then_some(end));
        }
        self.settle_passed(ino, grows)
    }

    /// The file, stage file and size (as the kernel last wrote it) behind writable handle
    /// `fh`.
    fn writable_stage(&mut self, fh: u64) -> VfsResult<(Ino, Arc<File>, u64)> {
        let (ino, file) = match self.handles.get(&fh) {
            Some(Handle::Staged {
                ino,
                file,
                writable: true,
                ..
            }) => (*ino, file.clone()),
            _ => return Err(VfsError::BadHandle),
        };
        self.sync_passed(ino)?;
        Ok((ino, file, self.node(ino)?.attr.size))
    }

    /// The bytes that may still be staged on this computer: the free space of the file
    /// system the stage files live on, less [`LOCAL_RESERVE`] kept for everything else.
    pub fn local_room(&self) -> u64 {
        match rustix::fs::statvfs(&self.stage_dir) {
            Ok(stat) => (stat.f_bavail.saturating_mul(stat.f_frsize)).saturating_sub(LOCAL_RESERVE),
            // Not made yet (nothing staged): nothing to say against it.
            Err(_) => u64::MAX,
        }
    }

    /// `copy_file_range(2)` from the file behind `from` to the staged file behind writable
    /// `to`: the stage files copy between themselves (a reflink where the local file system
    /// can). Committed content is not at hand locally: `NotSupported`, and the kernel
    /// copies by reading and writing. Growth past `room` is refused, as a write's is.
    pub fn copy_range(
        &mut self,
        (from, from_offset): (u64, u64),
        (to, to_offset): (u64, u64),
        len: u64,
        room: u64,
    ) -> VfsResult<u64> {
        let source = match self.handles.get(&from).ok_or(VfsError::BadHandle)? {
            Handle::Staged { file, .. } => file.clone(),
            Handle::Chunks { .. } => return Err(VfsError::NotSupported),
        };
        let (ino, target, size) = self.writable_stage(to)?;
        let end = (to_offset.checked_add(len)).ok_or(VfsError::Invalid("range out of bounds"))?;
        if end > size && end > room {
            return Err(VfsError::NoSpace);
        }
        let (mut from_at, mut to_at) = (from_offset, to_offset);
        let copied = rustix::fs::copy_file_range(
            &*source,
            Some(&mut from_at),
            &*target,
            Some(&mut to_at),
            len.min(1 << 30) as usize,
        )
        .map_err(std::io::Error::from)? as u64;
        if copied > 0 {
            if let Some(Handle::Staged { wrote, .. }) = self.handles.get_mut(&to) {
                *wrote = true;
            }
            self.touch(ino, Some(size.max(to_offset + copied)));
            self.settle_passed(ino, false)?;
        }
        Ok(copied)
    }

    /// `lseek(2)` with `SEEK_DATA` or `SEEK_HOLE` from `offset` in the file behind `fh`:
    /// the next byte of data or the next hole (the end of the file counts as a hole).
    /// `None` (ENXIO) when `offset` is at or past the end. Holes are found in the stage
    /// file when it holds everything written; for committed content the whole file is
    /// data, which is always a true answer. While the kernel's cache holds writes the
    /// mount has not seen, only the kernel knows the file's size: `Unknown`, which the
    /// kernel answers itself from then on (fstests' seek_sanity_test found ENXIO here,
    /// the mount's size being short of the kernel's).
    pub fn seek(&mut self, fh: u64, offset: u64, whence: Seek) -> VfsResult<Sought> {
        let ino = match self.handles.get(&fh).ok_or(VfsError::BadHandle)? {
            Handle::Staged { ino, .. } | Handle::Chunks { ino, .. } => *ino,
        };
        if self.cached_writer(ino) {
            return Ok(Sought::Unknown);
        }
        self.sync_passed(ino)?;
        let size = self.node(ino)?.attr.size;
        if offset >= size {
            return Ok(Sought::PastEnd);
        }
        let stage = match self.settled_stage(ino) {
            Some(stage) => stage,
            None => {
                return Ok(Sought::At(match whence {
                    Seek::Data => offset,
                    Seek::Hole => size,
                }))
            }
        };
        let file = std::fs::File::open(self.stage_path(&stage))?;
        let found = match whence {
            Seek::Data => rustix::fs::seek(&file, SeekFrom::Data(offset)),
            Seek::Hole => rustix::fs::seek(&file, SeekFrom::Hole(offset)),
        };
        match (whence, found) {
            (_, Ok(at)) if at < size => Ok(Sought::At(at)),
            // Data only past the file's end (a stage longer than the file), or none.
            (Seek::Data, Ok(_) | Err(rustix::io::Errno::NXIO)) => Ok(Sought::PastEnd),
            (Seek::Hole, Ok(_)) => Ok(Sought::At(size)),
            // Past the stage's end: a hole up to the file's end.
            (Seek::Hole, Err(rustix::io::Errno::NXIO)) => Ok(Sought::At(offset)),
            (_, Err(e)) => Err(std::io::Error::from(e).into()),
        }
    }

    /// The 512-byte blocks a file takes: its stage file's when the stage holds everything
    /// written (so holes show, as `du` expects), else as many as its size needs.
    pub(super) fn blocks(&self, ino: Ino, size: u64) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let whole = size.div_ceil(512);
        match self.settled_stage(ino) {
            Some(stage) => std::fs::metadata(self.stage_path(&stage))
                .map(|meta| meta.blocks())
                .unwrap_or(whole),
            None => whole,
        }
    }

    /// The stage of `ino` if it holds every byte written: no handle writes it through the
    /// kernel's cache (which may hold pages not yet sent). Passed-through handles write the
    /// stage directly.
    fn settled_stage(&self, ino: Ino) -> Option<String> {
        let Body::File {
            staged: Some(stage),
            ..
        } = &self.nodes.get(ino)?.body
        else {
            return None;
        };
        (!self.cached_writer(ino)).then(|| stage.clone())
    }

    /// Whether a handle writes `ino` through the kernel's cache, which may hold pages (and
    /// a size) the mount has not been sent yet. Passed-through handles write the stage.
    fn cached_writer(&self, ino: Ino) -> bool {
        self.handles.values().any(|handle| {
            matches!(handle, Handle::Staged { ino: open, writable: true, passthrough: false, .. }
                if *open == ino)
        })
    }
}
