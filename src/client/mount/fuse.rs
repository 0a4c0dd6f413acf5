//! The thin FUSE adapter: translates kernel requests into `vfs` calls and `vfs` answers
//! into replies. No file-system logic lives here; errors become errno values in [`errno`].

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BackingId, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyIoctl, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

use super::iomode::{Choice, IoModes};
use super::spin::Spinner;
use super::vfs::{AttrChange, Caller, Opened, Seek, Sought, Stat, Vfs, VfsError};
use super::workers::Workers;
use crate::model::EntryKind;

/// Whether the caller may keep set-ID bits through a truncation (the kernel asks for
/// CAP_FSETID, which reaches a file system only as "is root").
fn keeps_setid(req: &Request) -> bool {
    req.uid() == 0
}

/// How long the kernel may trust what it was told: live views can change under it (other
/// clients), snapshots never do.
const LIVE_TTL: Duration = Duration::from_secs(1);
const SNAPSHOT_TTL: Duration = Duration::from_secs(3600);

/// Threads answering reads that wait on the network, and so the most such reads the kernel
/// keeps in flight.
pub const READ_WORKERS: usize = 32;

/// The one place errors become errno values.
const ROOT_INO: u64 = 1;

pub fn errno(error: &VfsError) -> Errno {
    Errno::from_i32(errno_code(error))
}

fn errno_code(error: &VfsError) -> i32 {
    match error {
        VfsError::NotFound => libc::ENOENT,
        VfsError::Stale => libc::ESTALE,
        VfsError::NotDir => libc::ENOTDIR,
        VfsError::IsDir => libc::EISDIR,
        VfsError::Exists => libc::EEXIST,
        VfsError::NotEmpty => libc::ENOTEMPTY,
        VfsError::ReadOnly => libc::EROFS,
        VfsError::Access => libc::EACCES,
        // ENOSPC, not EDQUOT: with the writeback cache the error reaches the writer at
        // close, where the kernel reports only ENOSPC as itself (anything else as EIO).
        VfsError::NoSpace => libc::ENOSPC,
        VfsError::Invalid(_) => libc::EINVAL,
        VfsError::BadHandle => libc::EBADF,
        VfsError::CrossDevice => libc::EXDEV,
        VfsError::NameTooLong => libc::ENAMETOOLONG,
        VfsError::NoAttribute => libc::ENODATA,
        VfsError::NotSupported => libc::EOPNOTSUPP,
        VfsError::NotPermitted => libc::EPERM,
        VfsError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        VfsError::Remote(_) => libc::EIO,
    }
}

pub struct FuseFs {
    pub vfs: Arc<Mutex<Vfs>>,
    /// `(quota, used)` bytes for statfs.
    pub space: Arc<Mutex<(u64, u64)>>,
    /// Set once the session's descriptor exists; see [`Spinner`].
    pub spinner: Arc<OnceLock<Arc<Spinner>>>,
    /// Whether the kernel reads and writes staged files itself (DECISIONS 38): asked for
    /// at `init` when [`may_pass_through`], and turned off if registering a file fails.
    pub passthrough: Arc<AtomicBool>,
    pub io: Mutex<IoModes<BackingId>>,
    /// Answer reads that wait on the network.
    pub workers: Arc<Workers>,
    /// `--library`: the folder shown as the mount's root, and what `.snapshots` there is.
    pub top: Option<Top>,
    /// Whether the kernel checks every access against owners, modes and ACLs
    /// (`--allow-other`); a mount for its user alone lets that user read all it shows.
    pub checks_access: bool,
}

/// A mount of one library (or a folder in it) at its root (`mount --library`). The kernel
/// knows the mount's root as inode 1; the model's root (the list of libraries) and the
/// folder shown there trade numbers, so the model itself is the same as for a whole mount.
/// `.snapshots` at the root, hidden from listings like ZFS's `.zfs`, is the library's
/// snapshot list.
#[derive(Clone, Copy, Debug)]
pub struct Top {
    pub folder: u64,
    pub snapshots: u64,
}

/// The hidden name of the snapshot list at the root of a `--library` mount.
pub const HIDDEN_SNAPSHOTS: &[u8] = b".snapshots";

/// Whether this process may have the kernel pass files through: that takes
/// CAP_SYS_ADMIN in the initial user namespace (the kernel checks it when a backing file
/// is registered). `IBACKUP_FUSE_PASSTHROUGH=0` turns it off.
pub fn may_pass_through() -> bool {
    if std::env::var("IBACKUP_FUSE_PASSTHROUGH").is_ok_and(|v| v == "0") {
        return false;
    }
    const CAP_SYS_ADMIN: u32 = 21;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let capable = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0);
    // Capabilities inside a user namespace (rootless containers) do not count.
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let initial = uid_map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
    capable && initial
}

fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn file_type(kind: EntryKind) -> FileType {
    match kind {
        EntryKind::Dir => FileType::Directory,
        EntryKind::File => FileType::RegularFile,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::Socket => FileType::Socket,
        EntryKind::CharDevice => FileType::CharDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
    }
}

fn file_attr(stat: &Stat) -> FileAttr {
    let kind = file_type(stat.kind);
    FileAttr {
        ino: INodeNo(stat.ino),
        size: stat.attr.size,
        blocks: stat.blocks,
        atime: time(stat.attr.atime_ns.unwrap_or(stat.attr.mtime_ns)),
        mtime: time(stat.attr.mtime_ns),
        ctime: time(stat.attr.ctime_ns),
        crtime: time(stat.attr.mtime_ns),
        kind,
        perm: (stat.attr.mode & 0o7777) as u16,
        nlink: stat.nlink,
        uid: stat.attr.uid,
        gid: stat.attr.gid,
        rdev: stat.rdev as u32,
        blksize: 1 << 20,
        flags: 0,
    }
}

/// Snapshot content never changes; everything else (live folders, also of read-only
/// shares, and the listings of libraries and snapshots) may change at any poll.
fn ttl(stat: &Stat) -> Duration {
    if stat.immutable {
        SNAPSHOT_TTL
    } else {
        LIVE_TTL
    }
}

impl FuseFs {
    /// An inode number between the kernel and the model (the same both ways: the root and
    /// the `--library` folder trade numbers).
    fn ino(&self, ino: u64) -> u64 {
        match self.top {
            Some(top) if ino == ROOT_INO => top.folder,
            Some(top) if ino == top.folder => ROOT_INO,
            _ => ino,
        }
    }

    /// `stat` with its inode number as the kernel knows it.
    fn shown(&self, result: Result<Stat, VfsError>) -> Result<Stat, VfsError> {
        result.map(|mut stat| {
            stat.ino = self.ino(stat.ino);
            stat
        })
    }

    /// The file system, for one request that a caller waits on; see [`FuseFs::request`].
    fn vfs(&self) -> MutexGuard<'_, Vfs> {
        self.request();
        self.lock()
    }

    /// The file system, for a read: reads do not keep the reader polling. Cold reads arrive
    /// as read-ahead the caller does not wait on one by one, and the CPU a polling reader
    /// takes is then missed by the threads fetching and decrypting.
    fn lock(&self) -> MutexGuard<'_, Vfs> {
        self.vfs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The quota left, as the server last reported it.
    fn room(&self) -> u64 {
        let (quota, used) = *self.space.lock().unwrap_or_else(|p| p.into_inner());
        quota.saturating_sub(used)
    }

    /// Decides whether the kernel serves the new open `opened` of `ino` itself, registering
    /// its stage file with `register` when it is the inode's first (DECISIONS 38).
    /// `Ok(Some(backing))`: pass through, to `backing`; `Ok(None)`: serve it here.
    fn pass_through<'a>(
        &self,
        vfs: &mut Vfs,
        io: &'a mut IoModes<BackingId>,
        ino: u64,
        opened: &Opened,
        register: impl FnOnce(&std::fs::File) -> std::io::Result<BackingId>,
    ) -> Result<Option<&'a BackingId>, Errno> {
        let on = self.passthrough.load(Ordering::Relaxed);
        // A file already passed through stays so even if passthrough was turned off since.
        let stage = (opened.stage.as_ref()).filter(|_| on || io.backing(ino).is_some());
        let new = match (io.choose(ino, stage.is_some()), stage) {
            (Choice::Reuse(_), _) => None,
            (Choice::New, Some(stage)) => match register(stage) {
                Ok(backing) => Some(backing),
                Err(e) => {
                    // Not allowed after all (or not supported): serve every file here.
                    eprintln!("warning: FUSE passthrough is off: {e}");
                    self.passthrough.store(false, Ordering::Relaxed);
                    io.opened_cached(ino, opened.fh);
                    return Ok(None);
                }
            },
            (Choice::Busy, _) => {
                let _ = vfs.close(opened.fh);
                return Err(Errno::EBUSY);
            }
            _ => {
                io.opened_cached(ino, opened.fh);
                return Ok(None);
            }
        };
        if let Err(e) = vfs.passed_through(opened.fh) {
            let _ = vfs.close(opened.fh);
            return Err(errno(&e));
        }
        io.opened_backed(ino, opened.fh, new);
        Ok(io.backing(ino))
    }

    /// Keeps the reader polling while requests come (requests that need no `vfs` call it
    /// themselves).
    fn request(&self) {
        if let Some(spinner) = self.spinner.get() {
            spinner.request();
        }
    }
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_write(1 << 20);
        // Cold reads of several files (and read-ahead) in flight at once, up to the workers.
        let _ = config.set_max_background(READ_WORKERS as u16);
        let _ = config.set_congestion_threshold((READ_WORKERS * 3 / 4) as u16);
        // O_TRUNC reaches `open`, so overwriting a file never downloads it first.
        let _ = config.add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC);
        let pass = self.passthrough.load(Ordering::Relaxed)
            && config.capabilities().contains(InitFlags::FUSE_PASSTHROUGH)
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            // Stage files may lie on a stacked file system (overlayfs in a container).
            && config.set_max_stack_depth(2).is_ok();
        self.passthrough.store(pass, Ordering::Relaxed);
        if !pass {
            // The kernel gathers writes in its page cache and sends them in 1 MiB requests
            // (instead of one request per 64 KiB that `sendfile`/`splice` make), and keeps
            // size and times itself while pages are dirty; `close` still writes them all
            // out before `flush` reaches us, so the journal sees the whole file. Not with
            // passthrough: the kernel would then keep a passed-through file's mtime as it
            // was at open, since those writes never touch the mount's inode.
            let _ = config.add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE);
        }
        // The file system clears set-ID bits itself, and in return the kernel marks inodes
        // it found without them and stops asking for `security.capability` before every
        // `write` call (DECISIONS 35).
        let _ = config.add_capabilities(InitFlags::FUSE_HANDLE_KILLPRIV_V2);
        // The umask reaches the file system unapplied, as a default ACL replaces it.
        let _ = config.add_capabilities(InitFlags::FUSE_DONT_MASK);
        // Where the kernel checks access, it checks POSIX ACLs too (the file system stores
        // them). Asking for them turns on its checks, so a mount for its user alone keeps
        // them as plain attributes.
        if self.checks_access {
            if let Err(missing) = config.add_capabilities(InitFlags::FUSE_POSIX_ACL) {
                eprintln!("warning: the kernel offers no POSIX ACLs to this mount ({missing:?})");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let parent = self.ino(parent.0);
        let found = match self.top {
            Some(top) if parent == top.folder && name.as_bytes() == HIDDEN_SNAPSHOTS => {
                self.vfs().stat(top.snapshots)
            }
            _ => self.vfs().lookup(parent, name.as_bytes()),
        };
        answer_entry(reply, self.shown(found))
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        answer_attr(reply, self.shown(self.vfs().stat(self.ino(ino.0))))
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.vfs().readlink(self.ino(ino.0)) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.vfs().opendir(self.ino(ino.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut vfs = self.vfs();
        match vfs.readdir(fh.0, offset as usize) {
            Ok(entries) => {
                for (i, (ino, kind, name)) in entries.iter().enumerate() {
                    let kind = file_type(*kind);
                    let next = offset + i as u64 + 1;
                    let ino = INodeNo(self.ino(*ino));
                    if reply.add(ino, next, kind, OsStr::from_bytes(name)) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.vfs().releasedir(fh.0);
        reply.ok();
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let ino = self.ino(ino.0);
        let mut vfs = self.vfs();
        let truncate = flags.0 & libc::O_TRUNC != 0;
        let result = if flags.acc_mode() == OpenAccMode::O_RDONLY {
            vfs.open_read(ino)
        } else if truncate && !keeps_setid(req) {
            // FUSE_OPEN_KILL_SUIDGID, which fuser does not pass on.
            vfs.drop_setid(ino).and_then(|()| vfs.open_write(ino, true))
        } else {
            vfs.open_write(ino, truncate)
        };
        let opened = match result {
            Ok(opened) => opened,
            Err(e) => return reply.error(errno(&e)),
        };
        let flags = if opened.keep_cache {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        };
        let fh = FileHandle(opened.fh);
        let mut io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        match self.pass_through(&mut vfs, &mut io, ino, &opened, |file| {
            reply.open_backing(file)
        }) {
            Ok(Some(backing)) => reply.opened_passthrough(fh, flags, backing),
            Ok(None) => reply.opened(fh, flags),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Planned under the lock, read without it; a read that waits on the network is
        // answered by a worker, so this thread goes back to the kernel at once.
        let pending = match self.lock().start_read(fh.0, offset, size as usize) {
            Ok(pending) => pending,
            Err(e) => return reply.error(errno(&e)),
        };
        if pending.at_hand() {
            return answer_read(reply, pending.finish(), &self.vfs, ino.0);
        }
        let vfs = self.vfs.clone();
        self.workers
            .run(move || answer_read(reply, pending.finish(), &vfs, ino.0));
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut vfs = self.vfs();
        let closed = vfs.close(fh.0);
        // Dropped under the file-system lock, so no open can pick it up meanwhile.
        drop(
            self.io
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .released(fh.0),
        );
        drop(vfs);
        answer_empty(reply, closed)
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut vfs = self.vfs();
        let (stat, opened) = match vfs.create(
            self.ino(parent.0),
            name.as_bytes(),
            mode,
            caller(req, umask),
        ) {
            Ok(created) => created,
            Err(e) => return reply.error(errno(&e)),
        };
        let (ttl, attr, fh) = (ttl(&stat), file_attr(&stat), FileHandle(opened.fh));
        let flags = FopenFlags::empty();
        let mut io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        match self.pass_through(&mut vfs, &mut io, stat.ino, &opened, |file| {
            reply.open_backing(file)
        }) {
            Ok(Some(backing)) => {
                reply.created_passthrough(&ttl, &attr, Generation(0), fh, flags, backing)
            }
            Ok(None) => reply.created(&ttl, &attr, Generation(0), fh, flags),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let room = self.room();
        let fh = fh.0;
        let prepared = {
            let mut vfs = self.vfs();
            // The writer may not keep the file's set-ID bits.
            let dropped = if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
                vfs.drop_setid(ino.0)
            } else {
                Ok(())
            };
            dropped.and_then(|()| vfs.prepare_write(fh, offset, data.len(), room))
        };
        let file = match prepared {
            Ok(file) => file,
            Err(e) => return reply.error(errno(&e)),
        };
        // Written here, outside the file-system lock, and answered after (DECISIONS 37).
        match file.write_all_at(data, offset) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => {
                self.lock().write_failed(fh);
                reply.error(Errno::from(e))
            }
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let room = self.room();
        answer_empty(reply, self.vfs().flush(fh.0, room))
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let room = self.room();
        answer_empty(reply, self.vfs().fsync(fh.0, room))
    }

    /// No ioctl is the file system's: file attributes (`chattr`), FIEMAP and the like are
    /// not kept, as on file systems without them.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        self.request();
        reply.error(Errno::ENOTTY);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let room = self.room();
        answer_empty(
            reply,
            self.vfs().fallocate(fh.0, offset, length, mode, room),
        )
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let room = self.room();
        let copied = (self.vfs()).copy_range(
            (fh_in.0, offset_in),
            (fh_out.0, offset_out),
            len.min(u64::from(u32::MAX)),
            room,
        );
        match copied {
            Ok(copied) => reply.written(copied as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        // Only SEEK_DATA and SEEK_HOLE reach the file system.
        let whence = match whence {
            libc::SEEK_DATA => Seek::Data,
            libc::SEEK_HOLE => Seek::Hole,
            _ => return reply.error(Errno::EINVAL),
        };
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(Errno::ENXIO);
        };
        match self.vfs().seek(fh.0, offset, whence) {
            Ok(Sought::At(at)) => reply.offset(at as i64),
            Ok(Sought::PastEnd) => reply.error(Errno::ENXIO),
            Ok(Sought::Unknown) => reply.error(Errno::ENOSYS),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        answer_empty(reply, self.vfs().sync_names())
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self.vfs().mkdir(
            self.ino(parent.0),
            name.as_bytes(),
            mode,
            caller(req, umask),
        ) {
            Ok(stat) => reply.entry(&ttl(&stat), &file_attr(&stat), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let target = target.as_os_str().as_bytes();
        match self.vfs().symlink(
            self.ino(parent.0),
            link_name.as_bytes(),
            target,
            caller(req, 0),
        ) {
            Ok(stat) => reply.entry(&ttl(&stat), &file_attr(&stat), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let Some(kind) = EntryKind::from_mode(mode) else {
            return reply.error(Errno::EINVAL);
        };
        if kind == EntryKind::File {
            // Not sent while `create` is implemented; answered as `create` would be.
            return reply.error(Errno::ENOSYS);
        }
        let made = self.vfs().mknod(
            self.ino(parent.0),
            name.as_bytes(),
            kind,
            mode,
            u64::from(rdev),
            caller(req, umask),
        );
        answer_entry(reply, made)
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        answer_empty(
            reply,
            self.vfs()
                .remove(self.ino(parent.0), name.as_bytes(), false),
        )
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        answer_empty(
            reply,
            self.vfs().remove(self.ino(parent.0), name.as_bytes(), true),
        )
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (parent, new_parent) = (self.ino(parent.0), self.ino(new_parent.0));
        if flags == RenameFlags::RENAME_EXCHANGE {
            let exchanged =
                (self.vfs()).exchange(parent, name.as_bytes(), new_parent, new_name.as_bytes());
            return answer_empty(reply, exchanged);
        }
        // Whiteouts are overlayfs's; no flag goes with an exchange.
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        answer_empty(
            reply,
            self.vfs().rename(
                parent,
                name.as_bytes(),
                new_parent,
                new_name.as_bytes(),
                no_replace,
            ),
        )
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ino = self.ino(ino.0);
        let ns = |t: TimeOrNow| {
            let t = match t {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => SystemTime::now(),
            };
            match t.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_nanos() as i64,
                Err(e) => -(e.duration().as_nanos() as i64),
            }
        };
        // What the kernel marks FATTR_KILL_SUIDGID (fuser does not pass it on): a change of
        // owner, and a truncation by someone without CAP_FSETID. The cleared mode goes in
        // the same change.
        let kill = uid.is_some() || gid.is_some() || size.is_some() && !keeps_setid(req);
        let mut vfs = self.vfs();
        let mode = match mode {
            None if kill => vfs.mode_without_setid(ino),
            given => Ok(given),
        };
        answer_attr(
            reply,
            mode.and_then(|mode| {
                let change = AttrChange {
                    mode,
                    uid,
                    gid,
                    size,
                    atime_ns: atime.map(ns),
                    mtime_ns: mtime.map(ns),
                    ctime_ns: ctime.map(|t| ns(TimeOrNow::SpecificTime(t))),
                };
                self.shown(vfs.setattr(ino, change))
            }),
        )
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        answer_empty(
            reply,
            self.vfs()
                .set_xattr(self.ino(ino.0), name.as_bytes(), Some(value)),
        )
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let ino = self.ino(ino.0);
        // These are never stored (set_xattr refuses them), and the kernel asks for
        // security.capability before every write call: answer without the lock. ACLs are
        // kept (`vfs::acl`).
        let name_bytes = name.as_bytes();
        if name_bytes.starts_with(b"security.")
            || name_bytes.starts_with(b"system.") && !super::vfs::is_acl(name_bytes)
        {
            self.request();
            return reply.error(Errno::ENODATA);
        }
        let vfs = self.vfs();
        let value = match vfs.xattrs(ino) {
            Ok(xattrs) => xattrs
                .iter()
                .find(|x| x.name == name.as_bytes())
                .map(|x| x.value.clone()),
            Err(e) => return reply.error(errno(&e)),
        };
        match value {
            None => reply.error(Errno::ENODATA),
            Some(value) => xattr_reply(reply, size, &value),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let vfs = self.vfs();
        match vfs.xattrs(self.ino(ino.0)) {
            Ok(xattrs) => {
                let mut names = Vec::new();
                for x in xattrs {
                    names.extend_from_slice(&x.name);
                    names.push(0);
                }
                xattr_reply(reply, size, &names)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        answer_empty(
            reply,
            self.vfs().set_xattr(self.ino(ino.0), name.as_bytes(), None),
        )
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        new_parent: INodeNo,
        new_name: &OsStr,
        reply: ReplyEntry,
    ) {
        let linked = self
            .vfs()
            .link(ino.0, self.ino(new_parent.0), new_name.as_bytes());
        answer_entry(reply, linked)
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (quota, used) = *self.space.lock().unwrap_or_else(|p| p.into_inner());
        const BLOCK: u64 = 4096;
        let blocks = quota.div_ceil(BLOCK);
        // What may be written: the quota left, and no more than this computer can stage.
        let local = self.vfs().local_room();
        let free = quota.saturating_sub(used).min(local) / BLOCK;
        reply.statfs(
            blocks,
            free,
            free,
            1 << 20,
            1 << 20,
            BLOCK as u32,
            255,
            BLOCK as u32,
        );
    }
}

fn answer_read(reply: ReplyData, read: Result<bytes::Bytes, VfsError>, vfs: &Mutex<Vfs>, ino: u64) {
    match read {
        Ok(data) => reply.data(&data),
        Err(e) => {
            if matches!(e, VfsError::Remote(_)) {
                let vfs = vfs.lock().unwrap_or_else(|p| p.into_inner());
                tracing::warn!("cannot read {}: {e}", vfs.mount_path(ino));
            }
            reply.error(errno(&e))
        }
    }
}

fn answer_entry(reply: ReplyEntry, result: Result<Stat, VfsError>) {
    match result {
        Ok(stat) => reply.entry(&ttl(&stat), &file_attr(&stat), Generation(0)),
        Err(e) => reply.error(errno(&e)),
    }
}

fn answer_attr(reply: ReplyAttr, result: Result<Stat, VfsError>) {
    match result {
        Ok(stat) => reply.attr(&ttl(&stat), &file_attr(&stat)),
        Err(e) => reply.error(errno(&e)),
    }
}

fn answer_empty(reply: ReplyEmpty, result: Result<(), VfsError>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

/// Who asks, and the umask of what they make (applied by the model, as a folder's default
/// ACL may stand in for it).
fn caller(req: &Request, umask: u32) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        umask,
    }
}

fn xattr_reply(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() as u32 <= size {
        reply.data(value);
    } else {
        reply.error(Errno::ERANGE);
    }
}
