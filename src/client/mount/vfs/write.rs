//! Changes through the mount: each updates the in-memory tree at once (so the next call sees
//! it) and appends an operation to the journal before returning (so it is never lost).
//! File contents are staged in local files; opening with O_TRUNC or creating downloads
//! nothing. Only live views of libraries the user may write to can change: snapshots answer
//! EROFS, the virtual directories and read-only shares EACCES.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::nodes::{Attr, Body, Ino, Node, Place};
use super::read::{Handle, Opened};
use super::{now_ns, Stat, Vfs, VfsError, VfsResult};
use crate::crypto::BlobKind;
use crate::model::tree::valid_name;
use crate::model::{EntryKind, Xattr};
use crate::mount::journal::Op;

/// What `setattr` changes: each field given is set.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttrChange {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime_ns: Option<i64>,
    pub mtime_ns: Option<i64>,
    /// The status-change time the kernel keeps itself when it caches writes, sent with
    /// the times it writes back; otherwise the change's own time.
    pub ctime_ns: Option<i64>,
}

/// Who asks, as the kernel says.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// The caller's umask, for what it makes where no default ACL says otherwise.
    pub umask: u32,
}

impl Vfs {
    /// The library index of a node that may change, or why it may not.
    pub(super) fn writable(&self, ino: Ino) -> VfsResult<usize> {
        match self.node(ino)?.place {
            Place::Live(index) if self.libraries[index].writable => Ok(index),
            Place::Snapshot(_) => Err(VfsError::ReadOnly),
            Place::Virtual if self.libraries.iter().any(|v| v.snapshots == ino) => {
                Err(VfsError::ReadOnly)
            }
            Place::Virtual
                if self.node(ino)?.name == super::SNAPSHOTS_DIR && ino != super::nodes::ROOT =>
            {
                Err(VfsError::ReadOnly)
            }
            _ => Err(VfsError::Access),
        }
    }

    /// The path of a live node inside its library (`a/b/c`), or `None` if it is no longer
    /// reachable (unlinked while open).
    pub(crate) fn live_path(&self, ino: Ino) -> Option<(usize, Vec<u8>)> {
        let Place::Live(index) = self.nodes.get(ino)?.place else {
            return None;
        };
        let root = self.libraries[index].live;
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut current = ino;
        while current != root {
            let node = self.nodes.get(current)?;
            let parent = self.nodes.get(node.parent)?;
            match &parent.body {
                Body::Dir {
                    children: Some(children),
                    ..
                } if children.get(&node.name) == Some(&current) => {}
                _ => return None,
            }
            parts.push(&node.name);
            current = node.parent;
        }
        parts.reverse();
        Some((index, parts.join(&b'/')))
    }

    pub(super) fn record(&mut self, index: usize, op: Op, durable: bool) -> VfsResult<()> {
        let library = self.libraries[index].library.info.id.clone();
        let bytes = match &op {
            Op::Write { stage, .. } => std::fs::metadata(self.stage_path(stage))
                .map(|m| m.len())
                .unwrap_or(0),
            _ => 0,
        };
        let result = if durable {
            self.journal.append_durable(&library, &op, bytes)
        } else {
            self.journal.append(&library, &op, bytes)
        };
        result.map_err(|e| VfsError::Io(std::io::Error::other(e.to_string())))?;
        self.last_change = std::time::Instant::now();
        Ok(())
    }

    pub(super) fn check_name(name: &[u8]) -> VfsResult<()> {
        if name.len() > super::NAME_MAX {
            return Err(VfsError::NameTooLong);
        }
        if !valid_name(name) {
            return Err(VfsError::Invalid("invalid file name"));
        }
        Ok(())
    }

    /// Whether `name` may be added to directory `parent`: a valid name, not taken.
    pub(super) fn check_new_name(&mut self, parent: Ino, name: &[u8]) -> VfsResult<()> {
        Self::check_name(name)?;
        if self.children(parent)?.contains_key(name) {
            return Err(VfsError::Exists);
        }
        Ok(())
    }

    /// Adds a new child, failing if the name is taken.
    fn add_child(&mut self, parent: Ino, name: &[u8], node: Node) -> VfsResult<Ino> {
        self.check_new_name(parent, name)?;
        let ino = self.nodes.insert(node);
        self.insert_child(parent, name, ino);
        Ok(ino)
    }

    /// Adds `node` (with no content to stage) as `name` in `parent` of library `index`, and
    /// journals the operation `op` makes of its path.
    fn make_child(
        &mut self,
        index: usize,
        parent: Ino,
        name: &[u8],
        node: Node,
        op: impl FnOnce(Vec<u8>) -> Op,
    ) -> VfsResult<Stat> {
        let ino = self.add_child(parent, name, node)?;
        let (_, path) = self.live_path(ino).ok_or(VfsError::NotFound)?;
        self.record(index, op(path), false)?;
        self.stat(ino)
    }

    pub(super) fn insert_child(&mut self, parent: Ino, name: &[u8], ino: Ino) -> Option<Ino> {
        self.changed_children(parent)?.insert(name.to_vec(), ino)
    }

    fn remove_child(&mut self, parent: Ino, name: &[u8]) -> Option<Ino> {
        self.changed_children(parent)?.remove(name)
    }

    /// The loaded children of `parent`, about to change: its mtime and ctime become now.
    fn changed_children(&mut self, parent: Ino) -> Option<&mut BTreeMap<Vec<u8>, Ino>> {
        let now = now_ns();
        let node = self.nodes.get_mut(parent)?;
        node.attr.mtime_ns = now;
        node.attr.ctime_ns = now;
        match &mut node.body {
            Body::Dir {
                children: Some(children),
                ..
            } => Some(children),
            _ => None,
        }
    }

    /// The attributes of a new node in `parent`, as ext4 gives them: the caller owns it, and
    /// in a set-group-ID directory it takes the directory's group (a directory also its
    /// set-group-ID bit).
    fn new_attr(&self, parent: Ino, mode: u32, dir: bool, caller: Caller) -> Attr {
        let now = now_ns();
        let (mut mode, mut gid) = (mode & 0o7777, caller.gid);
        if let Some(parent) = self.nodes.get(parent) {
            if parent.attr.mode & libc::S_ISGID != 0 {
                gid = parent.attr.gid;
                if dir {
                    mode |= libc::S_ISGID;
                }
            }
        }
        Attr {
            mode,
            uid: caller.uid,
            gid,
            mtime_ns: now,
            ctime_ns: now,
            atime_ns: None,
            size: 0,
        }
    }

    /// The attributes of a new file, folder or special file made with `mode` in `parent`,
    /// and the ACLs it inherits: a default ACL of `parent` masks `mode` in place of the
    /// caller's umask and becomes the node's (a folder's default ACL too).
    fn masked_attr(&self, parent: Ino, mode: u32, dir: bool, caller: Caller) -> (Attr, Vec<Xattr>) {
        let default = self
            .nodes
            .get(parent)
            .and_then(|parent| (parent.xattrs.iter()).find(|x| x.name == super::acl::DEFAULT));
        let inherited = default.and_then(|default| super::acl::inherit(&default.value, mode));
        let Some((mode, access)) = inherited else {
            return (
                self.new_attr(parent, mode & !caller.umask, dir, caller),
                Vec::new(),
            );
        };
        let mut acls = Vec::new();
        if let Some(access) = access {
            acls.push(Xattr {
                name: super::acl::ACCESS.to_vec(),
                value: access,
            });
        }
        if let Some(default) = default.filter(|_| dir) {
            acls.push(default.clone());
        }
        (self.new_attr(parent, mode, dir, caller), acls)
    }

    /// Journals the ACLs node `ino` of library `index` inherited when it was made.
    fn record_inherited(&mut self, index: usize, ino: Ino, acls: Vec<Xattr>) -> VfsResult<()> {
        match self.live_path(ino) {
            Some((_, path)) if !acls.is_empty() => {
                let op = Op::SetXattrs {
                    path,
                    xattrs: acls,
                    ctime_ns: None,
                };
                self.record(index, op, false)
            }
            _ => Ok(()),
        }
    }

    /// A new, empty staged file. An uploaded stage's file is reused when there is one:
    /// allocating a fresh inode per file is what costs most when thousands are written
    /// (ext4 without a journal scans past recently deleted inodes on every create).
    fn new_stage(&mut self) -> VfsResult<(String, File)> {
        let stage = hex::encode(rand::random::<[u8; 16]>());
        while let Some(free) = self.free_stages.pop() {
            let from = self.stage_dir.join(super::FREE_STAGES).join(&free);
            if std::fs::rename(&from, self.stage_path(&stage)).is_err() {
                continue;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.stage_path(&stage))?;
            // Free stages are emptied when freed. Truncating again, even an empty file,
            // would make ext4 flush the whole new content when the file is next closed
            // (its guard for files rewritten after truncation), inside the writer's
            // `close` when the kernel passes the file through.
            if file.metadata()?.len() != 0 {
                file.set_len(0)?;
            }
            return Ok((stage, file));
        }
        crate::fsutil::create_private_dir(&self.stage_dir)?;
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.stage_path(&stage))?;
        Ok((stage, file))
    }

    pub fn create(
        &mut self,
        parent: Ino,
        name: &[u8],
        mode: u32,
        caller: Caller,
    ) -> VfsResult<(Stat, Opened)> {
        let index = self.writable(parent)?;
        let (stage, file) = self.new_stage()?;
        let (attr, acls) = self.masked_attr(parent, mode, false, caller);
        let mut node = Node::new(
            parent,
            name,
            EntryKind::File,
            attr,
            Body::File {
                chunks: Arc::new(Vec::new()),
                staged: Some(stage.clone()),
                base: None,
            },
            Place::Live(index),
        );
        // Journaled with the file's first write, at close.
        node.xattrs = acls;
        let ino = match self.add_child(parent, name, node) {
            Ok(ino) => ino,
            Err(e) => {
                let _ = std::fs::remove_file(self.stage_path(&stage));
                return Err(e);
            }
        };
        let file = Arc::new(file);
        let fh = self.new_handle(Handle::Staged {
            ino,
            file: file.clone(),
            writable: true,
            wrote: true,
            passthrough: false,
        });
        Ok((
            self.stat(ino)?,
            Opened {
                fh,
                keep_cache: false,
                stage: Some(file),
            },
        ))
    }

    /// Opens a file for writing: stages it locally (copying the content unless truncating).
    pub fn open_write(&mut self, ino: Ino, truncate: bool) -> VfsResult<Opened> {
        let index = self.writable(ino)?;
        let (chunks, staged) = match &self.node(ino)?.body {
            Body::File { chunks, staged, .. } => (chunks.clone(), staged.clone()),
            Body::Dir { .. } => return Err(VfsError::IsDir),
            Body::Symlink(_) => return Err(VfsError::Invalid("cannot open a symlink")),
            Body::Special { .. } => return Err(VfsError::Invalid("not a regular file")),
        };
        let file = match staged {
            Some(stage) => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(self.stage_path(&stage))?;
                if truncate {
                    file.set_len(0)?;
                }
                file
            }
            None => {
                let (stage, file) = self.new_stage()?;
                if !truncate {
                    let library = self.libraries[index].library.clone();
                    let mut offset = 0u64;
                    for group in chunks.chunks(16) {
                        let ids: Vec<_> = group.iter().map(|c| c.key).collect();
                        for plain in self.objects.get(&library, BlobKind::Chunk, &ids)? {
                            file.write_all_at(&plain, offset)?;
                            offset += plain.len() as u64;
                        }
                    }
                }
                if let Some(Node {
                    body: Body::File { staged, .. },
                    ..
                }) = self.nodes.get_mut(ino)
                {
                    *staged = Some(stage);
                }
                file
            }
        };
        if truncate {
            self.touch(ino, Some(0));
        }
        let file = Arc::new(file);
        let fh = self.new_handle(Handle::Staged {
            ino,
            file: file.clone(),
            writable: true,
            wrote: truncate,
            passthrough: false,
        });
        Ok(Opened {
            fh,
            keep_cache: false,
            stage: Some(file),
        })
    }

    pub(super) fn touch(&mut self, ino: Ino, size: Option<u64>) {
        let now = now_ns();
        if let Some(node) = self.nodes.get_mut(ino) {
            node.attr.mtime_ns = now;
            node.attr.ctime_ns = now;
            if let Some(size) = size {
                node.attr.size = size;
            }
        }
    }

    /// Writes into a staged file (the unit tests' way; the mount uses [`Vfs::prepare_write`]
    /// and writes outside the file-system lock).
    pub fn write(&mut self, fh: u64, offset: u64, data: &[u8], room: u64) -> VfsResult<usize> {
        let file = self.prepare_write(fh, offset, data.len(), room)?;
        if let Err(e) = file.write_all_at(data, offset) {
            self.write_failed(fh);
            return Err(e.into());
        }
        Ok(data.len())
    }

    /// After a write that [`Vfs::prepare_write`] accepted failed (the local disk is full,
    /// say): the file's size goes back to what its stage file holds.
    pub fn write_failed(&mut self, fh: u64) {
        let Some(Handle::Staged { ino, file, .. }) = self.handles.get(&fh) else {
            return;
        };
        let (ino, held) = (*ino, file.metadata().map(|m| m.len()));
        if let (Some(node), Ok(held)) = (self.nodes.get_mut(ino), held) {
            node.attr.size = held;
        }
    }

    /// Checks a write of `len` bytes at `offset`, records the file's new size and time, and
    /// returns the staged file the bytes go into. A write that grows the file past `room`
    /// (the quota left, as the server last reported it) is refused with `NoSpace`: such a
    /// file could never be uploaded. Smaller files that only together pass the quota are
    /// refused later, by the server, at upload (see docs/DECISIONS.md).
    pub fn prepare_write(
        &mut self,
        fh: u64,
        offset: u64,
        len: usize,
        room: u64,
    ) -> VfsResult<Arc<File>> {
        let end = offset + len as u64;
        if let Some(Handle::Staged { ino, .. }) = self.handles.get(&fh) {
            let size = self.nodes.get(*ino).map(|n| n.attr.size).unwrap_or(0);
            if end > size && end > room {
                return Err(VfsError::NoSpace);
            }
        }
        let (ino, file) = match self.handles.get_mut(&fh).ok_or(VfsError::BadHandle)? {
            Handle::Staged {
                ino,
                file,
                writable: true,
                wrote,
                ..
            } => {
                *wrote = true;
                (*ino, file.clone())
            }
            _ => return Err(VfsError::BadHandle),
        };
        let size = self.nodes.get(ino).map(|n| n.attr.size.max(end));
        self.touch(ino, size);
        Ok(file)
    }

    /// Journals the staged content of `ino` as the file's new state.
    fn record_write(&mut self, ino: Ino, durable: bool) -> VfsResult<()> {
        let Some((index, path)) = self.live_path(ino) else {
            return Ok(());
        };
        let node = self.node(ino)?;
        let Body::File {
            staged: Some(stage),
            base,
            ..
        } = &node.body
        else {
            return Ok(());
        };
        let op = Op::Write {
            path,
            stage: stage.clone(),
            mode: node.attr.mode,
            uid: node.attr.uid,
            gid: node.attr.gid,
            mtime_ns: node.attr.mtime_ns,
            xattrs: node.xattrs.clone(),
            base: base.clone(),
            link: node.link,
            atime_ns: node.attr.atime_ns,
        };
        self.record(index, op, durable)
    }

    /// Journals the file behind handle `fh` if it was written through it (or, passed
    /// through, changed) since last journaled; `durable` also syncs the journal.
    fn journal_written(&mut self, fh: u64, durable: bool) -> VfsResult<()> {
        let Some(Handle::Staged {
            ino,
            wrote,
            passthrough,
            ..
        }) = self.handles.get_mut(&fh)
        else {
            return Ok(());
        };
        let (ino, wrote, passthrough) = (*ino, std::mem::take(wrote), *passthrough);
        // Both taken, so the next call journals only what comes after.
        let changed = passthrough && self.take_passed_change(ino)?;
        if wrote || changed {
            self.record_write(ino, durable)?;
        }
        Ok(())
    }

    /// Makes what was written through `fh` survive a power cut: the stage file and the
    /// journal entry are synced. `room` as for [`Vfs::flush`].
    pub fn fsync(&mut self, fh: u64, room: u64) -> VfsResult<()> {
        let cut = self.cut_to_quota(fh, room)?;
        match self.handles.get(&fh).ok_or(VfsError::BadHandle)? {
            Handle::Staged { file, .. } => file.sync_all()?,
            Handle::Chunks { .. } => return Ok(()),
        }
        self.journal_written(fh, true)?;
        match cut {
            true => Err(VfsError::NoSpace),
            false => Ok(()),
        }
    }

    /// At each `close` of a descriptor (the kernel's flush, which `close` waits for): a
    /// file written through the handle is journaled before `close` returns. (The release
    /// that ends the handle reaches the mount only after `close` returned.) `room` is the
    /// quota left, which a passed-through file may not have grown past.
    pub fn flush(&mut self, fh: u64, room: u64) -> VfsResult<()> {
        let cut = self.cut_to_quota(fh, room)?;
        self.journal_written(fh, false)?;
        match cut {
            true => Err(VfsError::NoSpace),
            false => Ok(()),
        }
    }

    /// Ends a handle; what was written through it since the last flush is journaled.
    pub fn close(&mut self, fh: u64) -> VfsResult<()> {
        self.journal_written(fh, false)?;
        if let Some(Handle::Staged {
            ino,
            passthrough: true,
            ..
        }) = self.handles.remove(&fh)
        {
            self.release_passed(ino);
        }
        Ok(())
    }

    /// `fsync` of a folder: the changes of names journaled so far (made, renamed,
    /// removed) survive a power cut, as the file contents `fsync` makes durable do.
    pub fn sync_names(&mut self) -> VfsResult<()> {
        (self.journal.sync()).map_err(|e| VfsError::Io(std::io::Error::other(e.to_string())))
    }

    pub fn mkdir(
        &mut self,
        parent: Ino,
        name: &[u8],
        mode: u32,
        caller: Caller,
    ) -> VfsResult<Stat> {
        let index = self.writable(parent)?;
        let (attr, acls) = self.masked_attr(parent, mode, true, caller);
        let mut node = Node::dir(parent, name, attr.clone(), Place::Live(index));
        node.xattrs = acls.clone();
        let stat = self.make_child(index, parent, name, node, |path| Op::Mkdir {
            path,
            mode: attr.mode,
            uid: attr.uid,
            gid: attr.gid,
            mtime_ns: attr.mtime_ns,
        })?;
        self.record_inherited(index, stat.ino, acls)?;
        Ok(stat)
    }

    pub fn symlink(
        &mut self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        caller: Caller,
    ) -> VfsResult<Stat> {
        let index = self.writable(parent)?;
        let mut attr = self.new_attr(parent, 0o777, false, caller);
        attr.size = target.len() as u64;
        let node = Node::new(
            parent,
            name,
            EntryKind::Symlink,
            attr.clone(),
            Body::Symlink(target.to_vec()),
            Place::Live(index),
        );
        self.make_child(index, parent, name, node, |path| Op::Symlink {
            path,
            target: target.to_vec(),
            uid: attr.uid,
            gid: attr.gid,
            mtime_ns: attr.mtime_ns,
        })
    }

    /// Makes a FIFO, socket or device `kind` (`rdev` for a device) named `name`.
    pub fn mknod(
        &mut self,
        parent: Ino,
        name: &[u8],
        kind: EntryKind,
        mode: u32,
        rdev: u64,
        caller: Caller,
    ) -> VfsResult<Stat> {
        if !kind.is_special() {
            return Err(VfsError::Invalid("mknod makes FIFOs, sockets and devices"));
        }
        let index = self.writable(parent)?;
        let (attr, acls) = self.masked_attr(parent, mode, false, caller);
        let rdev = if kind.is_device() { rdev } else { 0 };
        let mut node = Node::new(
            parent,
            name,
            kind,
            attr.clone(),
            Body::Special { rdev },
            Place::Live(index),
        );
        node.xattrs = acls.clone();
        let stat = self.make_child(index, parent, name, node, |path| Op::Special {
            path,
            kind,
            mode: attr.mode,
            uid: attr.uid,
            gid: attr.gid,
            rdev,
            mtime_ns: attr.mtime_ns,
        })?;
        self.record_inherited(index, stat.ino, acls)?;
        Ok(stat)
    }

    /// Whether `target` may be removed, or replaced by a directory (`as_dir`) or a
    /// non-directory: kinds must match, and a directory must be empty.
    fn check_replaceable(&mut self, target: Ino, as_dir: bool) -> VfsResult<()> {
        let is_dir = self.node(target)?.kind == EntryKind::Dir;
        match (as_dir, is_dir) {
            (true, false) => Err(VfsError::NotDir),
            (false, true) => Err(VfsError::IsDir),
            (true, true) if !self.children(target)?.is_empty() => Err(VfsError::NotEmpty),
            _ => Ok(()),
        }
    }

    /// Removes a file or symlink (`dir == false`) or an empty directory (`dir == true`).
    pub fn remove(&mut self, parent: Ino, name: &[u8], dir: bool) -> VfsResult<()> {
        let index = self.writable(parent)?;
        let ino = *self.children(parent)?.get(name).ok_or(VfsError::NotFound)?;
        self.check_replaceable(ino, dir)?;
        let path = self.name_path(parent, name).ok_or(VfsError::NotFound)?;
        self.remove_child(parent, name);
        self.drop_name(ino, parent, name);
        self.record(index, Op::Remove { path }, false)
    }

    pub fn rename(
        &mut self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        no_replace: bool,
    ) -> VfsResult<()> {
        let index = self.writable(parent)?;
        if self.writable(new_parent)? != index {
            return Err(VfsError::CrossDevice);
        }
        Self::check_name(new_name)?;
        let ino = *self.children(parent)?.get(name).ok_or(VfsError::NotFound)?;
        if self.node(new_parent)?.kind != EntryKind::Dir {
            return Err(VfsError::NotDir);
        }
        // A directory cannot move into itself.
        let mut up = new_parent;
        while up != self.libraries[index].live {
            if up == ino {
                return Err(VfsError::Invalid("cannot move a directory into itself"));
            }
            up = self.node(up)?.parent;
        }
        let replaced = self.children(new_parent)?.get(new_name).copied();
        if let Some(existing) = replaced {
            // Two names of one file: nothing happens (POSIX).
            if existing == ino {
                return Ok(());
            }
            if no_replace {
                return Err(VfsError::Exists);
            }
            let source_dir = self.node(ino)?.kind == EntryKind::Dir;
            self.check_replaceable(existing, source_dir)?;
        }
        let from = self.name_path(parent, name).ok_or(VfsError::NotFound)?;
        self.remove_child(parent, name);
        self.insert_child(new_parent, new_name, ino);
        if let Some(existing) = replaced {
            self.drop_name(existing, new_parent, new_name);
        }
        self.move_name(ino, (parent, name), (new_parent, new_name));
        let to = self
            .name_path(new_parent, new_name)
            .ok_or(VfsError::NotFound)?;
        self.record(index, Op::Rename { from, to }, false)
    }

    /// `renameat2` with `RENAME_EXCHANGE`: `name` in `parent` and `new_name` in
    /// `new_parent` trade places at once. Journaled as three renames through a name no one
    /// sees, appended together, so no commit shows the one without the other.
    pub fn exchange(
        &mut self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
    ) -> VfsResult<()> {
        let index = self.writable(parent)?;
        if self.writable(new_parent)? != index {
            return Err(VfsError::CrossDevice);
        }
        let first = *self.children(parent)?.get(name).ok_or(VfsError::NotFound)?;
        let second = *self
            .children(new_parent)?
            .get(new_name)
            .ok_or(VfsError::NotFound)?;
        if first == second {
            return Ok(());
        }
        // Neither may end up inside itself.
        for (moved, into) in [(first, new_parent), (second, parent)] {
            let mut up = into;
            while up != self.libraries[index].live {
                if up == moved {
                    return Err(VfsError::Invalid("cannot move a directory into itself"));
                }
                up = self.node(up)?.parent;
            }
        }
        let from = self.name_path(parent, name).ok_or(VfsError::NotFound)?;
        let to = (self.name_path(new_parent, new_name)).ok_or(VfsError::NotFound)?;
        let aside = format!(
            ".ibackup-exchange-{}",
            hex::encode(rand::random::<[u8; 8]>())
        );
        let aside = (self.name_path(parent, aside.as_bytes())).ok_or(VfsError::NotFound)?;
        self.insert_child(parent, name, second);
        self.insert_child(new_parent, new_name, first);
        self.move_name(first, (parent, name), (new_parent, new_name));
        self.move_name(second, (new_parent, new_name), (parent, name));
        let library = self.libraries[index].library.info.id.clone();
        let renames = [
            Op::Rename {
                from: from.clone(),
                to: aside.clone(),
            },
            Op::Rename {
                from: to.clone(),
                to: from,
            },
            Op::Rename { from: aside, to },
        ];
        (self.journal.append_together(&library, &renames))
            .map_err(|e| VfsError::Io(std::io::Error::other(e.to_string())))?;
        self.last_change = std::time::Instant::now();
        Ok(())
    }

    /// chmod, chown, truncate and utimens.
    pub fn setattr(&mut self, ino: Ino, change: AttrChange) -> VfsResult<Stat> {
        let AttrChange {
            mode,
            uid,
            gid,
            size,
            atime_ns,
            mtime_ns,
            ctime_ns,
        } = change;
        let index = self.writable(ino)?;
        self.sync_passed(ino)?;
        if let Some(size) = size {
            let opened = self.open_write(ino, size == 0)?;
            let result = match self.handles.get(&opened.fh) {
                Some(Handle::Staged { file, .. }) => file.set_len(size).map_err(VfsError::from),
                _ => Err(VfsError::BadHandle),
            };
            if result.is_ok() {
                if let Some(Handle::Staged { wrote, .. }) = self.handles.get_mut(&opened.fh) {
                    *wrote = true;
                }
                self.touch(ino, Some(size));
            }
            // Closed either way: a handle left open would hold up unmounting for good.
            let closed = self.close(opened.fh);
            result?;
            closed?;
        }
        let node = self.nodes.known_mut(ino)?;
        if let Some(mode) = mode {
            node.attr.mode = mode & 0o7777;
        }
        if let Some(uid) = uid {
            node.attr.uid = uid;
        }
        if let Some(gid) = gid {
            node.attr.gid = gid;
        }
        if let Some(mtime) = mtime_ns {
            node.attr.mtime_ns = mtime;
        }
        if atime_ns.is_some() {
            node.attr.atime_ns = atime_ns;
        }
        node.attr.ctime_ns = ctime_ns.unwrap_or_else(now_ns);
        let changed_at = node.attr.ctime_ns;
        if let Some(mode) = mode {
            self.chmod_acl(index, ino, mode)?;
        }
        self.settle_passed(ino, size.is_some())?;
        // The kernel's writeback cache sends the mtime of a file it is writing out just
        // before `flush`; the write journaled at close carries it, so it needs no entry.
        let only_mtime = mode.is_none() && uid.is_none() && gid.is_none() && atime_ns.is_none();
        let write_pending = self
            .handles
            .values()
            .any(|h| matches!(h, Handle::Staged { ino: open, wrote: true, .. } if *open == ino));
        if only_mtime && write_pending {
            return self.stat(ino);
        }
        if mode.is_some()
            || uid.is_some()
            || gid.is_some()
            || mtime_ns.is_some()
            || atime_ns.is_some()
            || ctime_ns.is_some()
        {
            if let Some((_, path)) = self.live_path(ino) {
                self.record(
                    index,
                    Op::SetAttr {
                        path,
                        mode,
                        uid,
                        gid,
                        mtime_ns,
                        atime_ns,
                        ctime_ns: Some(changed_at),
                    },
                    false,
                )?;
            }
        }
        self.stat(ino)
    }

    /// The mode `ino` takes when a write, a truncation or a change of owner clears its
    /// set-user-ID bit, and its set-group-ID bit where group execute is set; `None` if that
    /// changes nothing. The kernel leaves this to the file system once it handles
    /// `FUSE_HANDLE_KILLPRIV_V2` (DECISIONS 35). Directories keep theirs.
    pub fn mode_without_setid(&self, ino: Ino) -> VfsResult<Option<u32>> {
        let node = self.node(ino)?;
        if node.kind == EntryKind::Dir {
            return Ok(None);
        }
        let mode = node.attr.mode;
        let mut kept = mode & !libc::S_ISUID;
        if mode & libc::S_IXGRP != 0 {
            kept &= !libc::S_ISGID;
        }
        Ok((kept != mode).then_some(kept))
    }

    /// Clears the set-ID bits [`Vfs::mode_without_setid`] names.
    pub fn drop_setid(&mut self, ino: Ino) -> VfsResult<()> {
        if let Some(mode) = self.mode_without_setid(ino)? {
            let change = AttrChange {
                mode: Some(mode),
                ..AttrChange::default()
            };
            self.setattr(ino, change)?;
        }
        Ok(())
    }

    pub fn xattrs(&self, ino: Ino) -> VfsResult<&[Xattr]> {
        Ok(&self.node(ino)?.xattrs)
    }

    /// Sets (`Some`) or removes (`None`) an extended attribute.
    pub fn set_xattr(&mut self, ino: Ino, name: &[u8], value: Option<&[u8]>) -> VfsResult<()> {
        let index = self.writable(ino)?;
        let asked_removal = value.is_none();
        let mut value = value;
        // An access ACL sets the mode's bits too (the kernel leaves that to the file
        // system); one the mode alone can say is not kept, as on ext4.
        let mut mode = None;
        if super::acl::is_acl(name) {
            if value.is_some_and(|value| !super::acl::valid(value)) {
                return Err(VfsError::Invalid("not a POSIX ACL"));
            }
            if name == super::acl::DEFAULT && self.node(ino)?.kind != EntryKind::Dir {
                return Err(VfsError::Access);
            }
            if let Some((bits, plain)) = value
                .filter(|_| name == super::acl::ACCESS)
                .and_then(super::acl::mode_bits)
            {
                mode = Some((self.node(ino)?.attr.mode & !0o777) | bits);
                if plain {
                    value = None;
                }
            }
        } else if name.starts_with(b"system.") || name.starts_with(b"security.") {
            // Capabilities, SELinux labels and the like are this computer's, not the
            // files': not kept.
            return Err(VfsError::NotSupported);
        }
        let node = self.nodes.known_mut(ino)?;
        let mut xattrs: BTreeMap<Vec<u8>, Vec<u8>> =
            node.xattrs.drain(..).map(|x| (x.name, x.value)).collect();
        let existed = match value {
            Some(value) => {
                xattrs.insert(name.to_vec(), value.to_vec());
                true
            }
            None => xattrs.remove(name).is_some(),
        };
        node.xattrs = xattrs
            .into_iter()
            .map(|(name, value)| Xattr { name, value })
            .collect();
        if !existed && asked_removal {
            return Err(VfsError::NoAttribute);
        }
        node.attr.ctime_ns = now_ns();
        let (xattrs, ctime_ns) = (node.xattrs.clone(), Some(node.attr.ctime_ns));
        if let Some((_, path)) = self.live_path(ino) {
            let op = Op::SetXattrs {
                path,
                xattrs,
                ctime_ns,
            };
            self.record(index, op, false)?;
        }
        if let Some(mode) = mode {
            let change = AttrChange {
                mode: Some(mode),
                ..AttrChange::default()
            };
            self.setattr(ino, change)?;
        }
        Ok(())
    }

    /// After a `chmod` of `ino` to `mode`: its access ACL, if it has one, takes the new
    /// bits (the kernel leaves that to the file system).
    fn chmod_acl(&mut self, index: usize, ino: Ino, mode: u32) -> VfsResult<()> {
        let node = self.nodes.known_mut(ino)?;
        let Some(access) = (node.xattrs.iter_mut()).find(|x| x.name == super::acl::ACCESS) else {
            return Ok(());
        };
        match super::acl::chmod(&access.value, mode) {
            Some(changed) if changed != access.value => access.value = changed,
            _ => return Ok(()),
        }
        let (xattrs, ctime_ns) = (node.xattrs.clone(), Some(node.attr.ctime_ns));
        match self.live_path(ino) {
            Some((_, path)) => {
                let op = Op::SetXattrs {
                    path,
                    xattrs,
                    ctime_ns,
                };
                self.record(index, op, false)
            }
            None => Ok(()),
        }
    }
}
