//! Opening and reading files: offset → chunk by binary search over chunk offsets → memory
//! cache → disk cache → server, with read-ahead of the next chunks when reads are
//! sequential. Snapshot files never change, so the kernel may keep their pages cached.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

use super::nodes::{Body, Ino, Place};
use super::objects::Objects;
use super::{Vfs, VfsError, VfsResult};
use crate::crypto::{BlobKind, ObjectKey};
use crate::model::ChunkRef;
use crate::session::OpenLibrary;

/// Chunks fetched ahead of a sequential reader.
const READ_AHEAD: usize = 8;
/// Small files whose content is fetched together when the first of a directory is opened.
const SIBLINGS: usize = 256;
const SIBLING_BYTES: u64 = 16 << 20;

pub enum Handle {
    /// Committed content, read chunk by chunk (until the file is written: see
    /// [`Vfs::follow_stage`]).
    Chunks {
        ino: Ino,
        library: usize,
        chunks: Arc<Vec<ChunkRef>>,
        offsets: Vec<u64>,
        last_end: u64,
    },
    /// A staged local file (write-back), opened for reading and maybe writing.
    Staged {
        ino: Ino,
        /// Shared with a write in progress outside the file-system lock.
        file: Arc<File>,
        writable: bool,
        wrote: bool,
        /// The kernel reads and writes the stage file itself (see `passthrough`).
        passthrough: bool,
    },
}

/// A read whose source is known, to be carried out without the file-system lock.
pub enum PendingRead {
    Done(Bytes),
    /// From a staged local file.
    Stage {
        file: Arc<File>,
        offset: u64,
        size: usize,
    },
    /// From committed chunks: each chunk's key and the byte range of it wanted.
    Chunks {
        objects: Arc<dyn Objects>,
        library: Arc<OpenLibrary>,
        pieces: Vec<(ObjectKey, usize, usize)>,
    },
}

impl PendingRead {
    /// Whether `finish` can answer without waiting on the network.
    pub fn at_hand(&self) -> bool {
        match self {
            PendingRead::Done(_) | PendingRead::Stage { .. } => true,
            PendingRead::Chunks {
                objects,
                library,
                pieces,
            } => objects.at_hand(library, &chunk_keys(pieces)),
        }
    }

    pub fn finish(self) -> VfsResult<Bytes> {
        match self {
            PendingRead::Done(bytes) => Ok(bytes),
            PendingRead::Stage { file, offset, size } => {
                let mut buf = vec![0u8; size];
                let mut filled = 0;
                while filled < size {
                    let n = file.read_at(&mut buf[filled..], offset + filled as u64)?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                buf.truncate(filled);
                Ok(Bytes::from(buf))
            }
            PendingRead::Chunks {
                objects,
                library,
                pieces,
            } => {
                let plains = objects.get(&library, BlobKind::Chunk, &chunk_keys(&pieces))?;
                let mut slices = Vec::with_capacity(pieces.len());
                for ((_, from, to), plain) in pieces.iter().zip(plains) {
                    if *to > plain.len() || from > to {
                        return Err(VfsError::Invalid("chunk shorter than recorded"));
                    }
                    slices.push(plain.slice(*from..*to));
                }
                Ok(match <[Bytes; 1]>::try_from(slices) {
                    Ok([piece]) => piece,
                    Err(slices) => Bytes::from(slices.concat()),
                })
            }
        }
    }
}

fn chunk_keys(pieces: &[(ObjectKey, usize, usize)]) -> Vec<ObjectKey> {
    pieces.iter().map(|(key, _, _)| *key).collect()
}

/// What `open` answers: the handle, whether the kernel may keep cached pages, and the
/// staged file behind the handle, which the kernel may then read and write itself.
pub struct Opened {
    pub fh: u64,
    pub keep_cache: bool,
    pub stage: Option<Arc<File>>,
}

impl Vfs {
    /// Opens a file for reading (writes go through `open_for_write`).
    pub fn open_read(&mut self, ino: Ino) -> VfsResult<Opened> {
        let node = self.node(ino)?;
        let place = node.place;
        let handle = match &node.body {
            Body::File {
                staged: Some(stage),
                ..
            } => self.stage_reader(ino, stage)?,
            Body::File { chunks, .. } => {
                let library = match place {
                    Place::Live(i) | Place::Snapshot(i) => i,
                    Place::Virtual => return Err(VfsError::IsDir),
                };
                let mut offsets = Vec::with_capacity(chunks.len() + 1);
                let mut total = 0u64;
                offsets.push(0);
                for chunk in chunks.iter() {
                    total += u64::from(chunk.len);
                    offsets.push(total);
                }
                Handle::Chunks {
                    ino,
                    library,
                    chunks: chunks.clone(),
                    offsets,
                    last_end: 0,
                }
            }
            Body::Dir { .. } => return Err(VfsError::IsDir),
            Body::Symlink(_) => return Err(VfsError::Invalid("cannot open a symlink")),
            // The kernel opens FIFOs and devices itself; nothing reaches the mount.
            Body::Special { .. } => return Err(VfsError::Invalid("not a regular file")),
        };
        // Committed content never changes under an inode (a change stages it, a change by
        // another client makes new inodes), so the kernel may keep its cached pages.
        let keep_cache = matches!(handle, Handle::Chunks { .. });
        if let Handle::Chunks {
            library, chunks, ..
        } = &handle
        {
            if chunks.len() == 1 {
                self.prefetch_siblings(ino, *library);
            }
        }
        let stage = match &handle {
            Handle::Staged { file, .. } => Some(file.clone()),
            Handle::Chunks { .. } => None,
        };
        Ok(Opened {
            fh: self.new_handle(handle),
            keep_cache,
            stage,
        })
    }

    /// Up to `size` bytes at `offset`. A read within one chunk is a slice of the cached
    /// plaintext, not a copy.
    pub fn read(&mut self, fh: u64, offset: u64, size: usize) -> VfsResult<Bytes> {
        self.start_read(fh, offset, size)?.finish()
    }

    /// What a read of `size` bytes at `offset` needs, found under the file-system lock;
    /// [`PendingRead::finish`] then reads it without the lock, so a read that waits on the
    /// network or the disk holds up no other request.
    pub fn start_read(&mut self, fh: u64, offset: u64, size: usize) -> VfsResult<PendingRead> {
        self.follow_stage(fh)?;
        let objects = self.objects.clone();
        match self.handles.get_mut(&fh).ok_or(VfsError::BadHandle)? {
            Handle::Staged { file, .. } => Ok(PendingRead::Stage {
                file: file.clone(),
                offset,
                size,
            }),
            Handle::Chunks {
                library,
                chunks,
                offsets,
                last_end,
                ..
            } => {
                let total = *offsets.last().expect("offsets start with 0");
                if offset >= total || size == 0 {
                    return Ok(PendingRead::Done(Bytes::new()));
                }
                let end = (offset + size as u64).min(total);
                let library = self.libraries[*library].library.clone();
                let first = offsets.partition_point(|&o| o <= offset) - 1;
                let after = offsets.partition_point(|&o| o < end);
                // Ask for what follows before waiting on what is needed now.
                if offset == *last_end || offset == 0 {
                    let ahead: Vec<_> = chunks
                        .iter()
                        .skip(after)
                        .take(READ_AHEAD)
                        .map(|c| c.key)
                        .collect();
                    // Two chunks per request, so decryption overlaps the transfer.
                    objects.clone().prefetch(&library, ahead, 2);
                }
                *last_end = end;
                let pieces = (first..after)
                    .map(|index| {
                        let from = offset.max(offsets[index]) - offsets[index];
                        let to = end.min(offsets[index + 1]) - offsets[index];
                        (chunks[index].key, from as usize, to as usize)
                    })
                    .collect();
                Ok(PendingRead::Chunks {
                    objects,
                    library,
                    pieces,
                })
            }
        }
    }

    /// A handle opened on committed content reads the file's stage once the file was
    /// written through another handle: reads see every write made before them, whichever
    /// descriptor made it. (With the kernel's writeback cache the written pages answered
    /// such reads; without it, as with passthrough, they reach the mount.)
    fn follow_stage(&mut self, fh: u64) -> VfsResult<()> {
        let Some(Handle::Chunks { ino, .. }) = self.handles.get(&fh) else {
            return Ok(());
        };
        let ino = *ino;
        let Some(Body::File {
            staged: Some(stage),
            ..
        }) = self.nodes.get(ino).map(|n| &n.body)
        else {
            return Ok(());
        };
        let reader = self.stage_reader(ino, stage)?;
        self.handles.insert(fh, reader);
        Ok(())
    }

    /// A read-only handle on `stage`, the staged content of `ino`.
    fn stage_reader(&self, ino: Ino, stage: &str) -> VfsResult<Handle> {
        Ok(Handle::Staged {
            ino,
            file: Arc::new(File::open(self.stage_path(stage))?),
            writable: false,
            wrote: false,
            passthrough: false,
        })
    }

    /// Tools that walk a tree (grep -r, cp -r, tar) read the small files of a directory one
    /// after another; fetching them in a few large requests, once per directory, saves a
    /// round trip per file.
    fn prefetch_siblings(&mut self, ino: Ino, library: usize) {
        let Some(parent) = self.nodes.get(ino).map(|n| n.parent) else {
            return;
        };
        if !self.prefetched_dirs.insert(parent) {
            return;
        }
        let Some(Body::Dir {
            children: Some(children),
            ..
        }) = self.nodes.get(parent).map(|n| &n.body)
        else {
            return;
        };
        let mut ids = Vec::new();
        let mut bytes = 0u64;
        for child in children.values() {
            if let Some(Body::File {
                chunks,
                staged: None,
                ..
            }) = self.nodes.get(*child).map(|n| &n.body)
            {
                if let [chunk] = chunks.as_slice() {
                    bytes += u64::from(chunk.len);
                    ids.push(chunk.key);
                }
            }
            if ids.len() >= SIBLINGS || bytes >= SIBLING_BYTES {
                break;
            }
        }
        let library = self.libraries[library].library.clone();
        self.objects.clone().prefetch(&library, ids, 64);
    }

    /// Stages of files open for writing now (their content may still change).
    pub fn stages_open_for_writing(&self) -> std::collections::HashSet<String> {
        self.handles
            .values()
            .filter_map(|handle| match handle {
                Handle::Staged {
                    ino,
                    writable: true,
                    ..
                } => match &self.nodes.get(*ino)?.body {
                    Body::File {
                        staged: Some(stage),
                        ..
                    } => Some(stage.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    pub(crate) fn stage_path(&self, stage: &str) -> std::path::PathBuf {
        self.stage_dir.join(stage)
    }
}
