//! The disk cache of fetched blobs: bounded, kept across mounts, the least recently used
//! segment evicted first. It holds blobs exactly as the server sent them, encrypted, so it
//! never holds plaintext; a damaged record fails authentication when opened and is fetched
//! again.
//!
//! Blobs are appended to segment files (`SEQ.seg`, SEQ 16 hex digits) next to an index file
//! (`SEQ.idx`) of (library, id, offset, length) records. A file per blob cost an inode
//! allocation per blob, which on ext4 after deletions took more CPU than decrypting the blob
//! (DECISIONS 34). Nothing is fsynced: a cache may lose what it never promised to keep.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use lru::LruCache;

use crate::crypto::ObjectId;

type Key = (String, ObjectId);

/// Largest segment; a smaller cache gets segments of an eighth of its size, so that evicting
/// one does not empty much of it.
const SEGMENT_LIMIT: u64 = 64 << 20;

/// Encrypted blobs in segment files under `DIR`.
pub struct DiskCache {
    dir: PathBuf,
    limit: u64,
    segment_limit: u64,
    state: Mutex<State>,
}

struct State {
    index: HashMap<Key, Location>,
    /// Segments by sequence number, least recently used first.
    segments: LruCache<u64, Segment>,
    /// The segment new blobs go to; a new one each mount, so no torn tail is appended to.
    active: Option<u64>,
    next_seq: u64,
    /// Bytes of all segments, records that were replaced included.
    used: u64,
}

struct Segment {
    data: Arc<File>,
    index: File,
    size: u64,
    keys: Vec<Key>,
}

#[derive(Clone, Copy)]
struct Location {
    segment: u64,
    offset: u64,
    len: u64,
}

impl DiskCache {
    pub fn open(dir: &Path, limit: u64) -> io::Result<Self> {
        crate::fsutil::create_private_dir(dir)?;
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)?.flatten() {
            let path = entry.path();
            let seq = path
                .extension()
                .filter(|e| *e == "seg")
                .and(path.file_stem())
                .and_then(|s| s.to_str())
                .and_then(|s| u64::from_str_radix(s, 16).ok());
            match seq {
                Some(seq) => found.push(seq),
                None if path.extension().is_some_and(|e| e == "idx") => {}
                // Anything else (the one-file-per-blob layout of earlier versions included)
                // is not this cache's.
                None if entry.file_type().is_ok_and(|t| t.is_dir()) => {
                    let _ = fs::remove_dir_all(&path);
                }
                None => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let mut state = State {
            index: HashMap::new(),
            segments: LruCache::unbounded(),
            active: None,
            next_seq: found.iter().max().map_or(1, |m| m + 1),
            used: 0,
        };
        found.sort_unstable();
        let mut loaded = Vec::new();
        for seq in found {
            match load_segment(dir, seq, &mut state.index) {
                Ok((segment, used)) => loaded.push((used, seq, segment)),
                Err(_) => remove_segment(dir, seq),
            }
        }
        loaded.sort_by_key(|(used, seq, _)| (*used, *seq));
        for (_, seq, segment) in loaded {
            state.used += segment.size;
            state.segments.put(seq, segment);
        }
        // Orphaned index files, and files of segments that failed to load.
        for entry in fs::read_dir(dir)?.flatten() {
            let path = entry.path();
            let seq = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| u64::from_str_radix(s, 16).ok());
            if seq.is_none_or(|seq| !state.segments.contains(&seq)) {
                let _ = fs::remove_file(&path);
            }
        }
        let cache = Self {
            dir: dir.to_owned(),
            limit,
            segment_limit: (limit / 8).clamp(1, SEGMENT_LIMIT),
            state: Mutex::new(state),
        };
        cache.evict();
        Ok(cache)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, library: &str, id: &ObjectId) -> Option<Vec<u8>> {
        let (data, at) = {
            let mut state = self.lock();
            let at = *state.index.get(&(library.to_owned(), *id))?;
            (state.segments.get(&at.segment)?.data.clone(), at)
        };
        let mut blob = vec![0u8; usize::try_from(at.len).ok()?];
        data.read_exact_at(&mut blob, at.offset).ok()?;
        // The segment's time of last use orders eviction after a remount.
        let _ = data.set_modified(SystemTime::now());
        Some(blob)
    }

    /// Adds a blob; a failure to write leaves the cache without it.
    pub fn put(&self, library: &str, id: &ObjectId, blob: &[u8]) {
        let len = blob.len() as u64;
        if self.limit == 0 || len > self.limit {
            return;
        }
        let Some((seq, data, offset)) = self.reserve(len) else {
            return;
        };
        if data.write_all_at(blob, offset).is_err() {
            return;
        }
        {
            let mut state = self.lock();
            let Some(segment) = state.segments.peek_mut(&seq) else {
                return; // evicted while it was written
            };
            if segment
                .index
                .write_all(&encode_record(library, id, offset, len))
                .is_err()
            {
                return;
            }
            let key = (library.to_owned(), *id);
            segment.keys.push(key.clone());
            let at = Location {
                segment: seq,
                offset,
                len,
            };
            state.index.insert(key, at);
        }
        self.evict();
    }

    /// Room for `len` bytes at the end of the active segment, a new one if it is full.
    fn reserve(&self, len: u64) -> Option<(u64, Arc<File>, u64)> {
        let mut state = self.lock();
        let fits = |s: &Segment| s.size == 0 || s.size + len <= self.segment_limit;
        let seq = match state.active {
            Some(seq) if state.segments.peek(&seq).is_some_and(fits) => seq,
            _ => {
                let seq = state.next_seq;
                state.next_seq += 1;
                let segment = create_segment(&self.dir, seq).ok()?;
                state.segments.put(seq, segment);
                state.active = Some(seq);
                seq
            }
        };
        state.used += len;
        let segment = state.segments.get_mut(&seq).expect("just found");
        let offset = segment.size;
        segment.size += len;
        Some((seq, segment.data.clone(), offset))
    }

    fn evict(&self) {
        let mut state = self.lock();
        while state.used > self.limit {
            let Some((&seq, _)) = state.segments.peek_lru() else {
                break;
            };
            if state.active == Some(seq) && state.segments.len() > 1 {
                state.segments.promote(&seq);
                continue;
            }
            let (seq, segment) = state.segments.pop_lru().expect("peeked");
            if state.active == Some(seq) {
                state.active = None;
            }
            state.used -= segment.size;
            for key in segment.keys {
                if state.index.get(&key).is_some_and(|at| at.segment == seq) {
                    state.index.remove(&key);
                }
            }
            remove_segment(&self.dir, seq);
        }
    }

    /// Bytes held now (the tests check eviction with it).
    #[cfg(test)]
    pub fn used(&self) -> u64 {
        self.lock().used
    }
}

fn segment_paths(dir: &Path, seq: u64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{seq:016x}.seg")),
        dir.join(format!("{seq:016x}.idx")),
    )
}

fn create_segment(dir: &Path, seq: u64) -> io::Result<Segment> {
    let (data, index) = segment_paths(dir, seq);
    let new = || {
        File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .clone()
    };
    Ok(Segment {
        data: Arc::new(new().open(data)?),
        index: new().append(true).open(index)?,
        size: 0,
        keys: Vec::new(),
    })
}

/// Reads a segment's index into `index`; later records replace earlier ones. Returns the
/// segment and its time of last use.
fn load_segment(
    dir: &Path,
    seq: u64,
    index: &mut HashMap<Key, Location>,
) -> io::Result<(Segment, SystemTime)> {
    let (data_path, index_path) = segment_paths(dir, seq);
    let data = File::options().read(true).write(true).open(data_path)?;
    let meta = data.metadata()?;
    let records = fs::read(&index_path)?;
    let mut keys = Vec::new();
    let mut rest = records.as_slice();
    while let Some((library, id, offset, len, after)) = decode_record(rest) {
        rest = after;
        if offset.checked_add(len).is_some_and(|end| end <= meta.len()) {
            let key = (library, id);
            keys.push(key.clone());
            let at = Location {
                segment: seq,
                offset,
                len,
            };
            index.insert(key, at);
        }
    }
    let segment = Segment {
        data: Arc::new(data),
        index: File::options().append(true).open(index_path)?,
        size: meta.len(),
        keys,
    };
    Ok((segment, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}

fn remove_segment(dir: &Path, seq: u64) {
    let (data, index) = segment_paths(dir, seq);
    let _ = fs::remove_file(data);
    let _ = fs::remove_file(index);
}

/// `u16` library length, library, 32-byte id, `u64` offset, `u64` length; little-endian.
pub fn encode_record(library: &str, id: &ObjectId, offset: u64, len: u64) -> Vec<u8> {
    let mut record = Vec::with_capacity(2 + library.len() + 32 + 16);
    record.extend_from_slice(&(library.len() as u16).to_le_bytes());
    record.extend_from_slice(library.as_bytes());
    record.extend_from_slice(id.as_bytes());
    record.extend_from_slice(&offset.to_le_bytes());
    record.extend_from_slice(&len.to_le_bytes());
    record
}

/// One record and what follows it; `None` at the end or at a torn last record.
pub fn decode_record(bytes: &[u8]) -> Option<(String, ObjectId, u64, u64, &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<2>()?;
    let (library, rest) = rest.split_at_checked(u16::from_le_bytes(*len) as usize)?;
    let (id, rest) = rest.split_first_chunk::<32>()?;
    let (offset, rest) = rest.split_first_chunk::<8>()?;
    let (size, rest) = rest.split_first_chunk::<8>()?;
    Some((
        String::from_utf8(library.to_vec()).ok()?,
        ObjectId::from_bytes(*id),
        u64::from_le_bytes(*offset),
        u64::from_le_bytes(*size),
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<ObjectId> {
        (0..n).map(|i| ObjectId::from_bytes([i; 32])).collect()
    }

    #[test]
    fn evicts_least_recently_used_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ids(4);
        let cache = DiskCache::open(dir.path(), 250).unwrap();
        cache.put("lib", &ids[0], &[0; 100]);
        cache.put("lib", &ids[1], &[1; 100]);
        assert!(
            cache.get("lib", &ids[0]).is_some(),
            "touch 0 so 1 is the oldest"
        );
        cache.put("lib", &ids[2], &[2; 100]);
        assert!(cache.get("lib", &ids[1]).is_none());
        assert!(cache.get("lib", &ids[0]).is_some());
        assert!(cache.used() <= 250);
        drop(cache);
        let again = DiskCache::open(dir.path(), 250).unwrap();
        assert_eq!(again.get("lib", &ids[2]).unwrap(), vec![2; 100]);
        assert_eq!(again.get("lib", &ids[0]).unwrap(), vec![0; 100]);
        assert_eq!(again.used(), 200);
    }

    #[test]
    fn many_blobs_share_a_segment_and_a_replaced_blob_reads_its_last_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ids(50);
        let cache = DiskCache::open(dir.path(), 1 << 20).unwrap();
        for (i, id) in ids.iter().enumerate() {
            cache.put("lib", id, &vec![i as u8; 1000]);
        }
        cache.put("other", &ids[0], b"other library");
        cache.put("lib", &ids[7], b"fetched again");
        let files = || fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files(), 2, "one segment and its index");
        drop(cache);
        let again = DiskCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(again.get("lib", &ids[7]).unwrap(), b"fetched again");
        assert_eq!(again.get("lib", &ids[49]).unwrap(), vec![49; 1000]);
        assert_eq!(again.get("other", &ids[0]).unwrap(), b"other library");
        assert!(again.get("other", &ids[1]).is_none());
        again.put("lib", &ids[0], b"new");
        assert_eq!(files(), 4, "a new mount writes a new segment");
    }

    #[test]
    fn a_torn_index_and_a_short_segment_lose_only_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ids(3);
        let cache = DiskCache::open(dir.path(), 1 << 20).unwrap();
        for id in &ids {
            cache.put("lib", id, &[7; 100]);
        }
        drop(cache);
        let (data, index) = segment_paths(dir.path(), 1);
        let records = fs::read(&index).unwrap();
        fs::write(&index, &records[..records.len() - 3]).unwrap();
        File::options()
            .write(true)
            .open(&data)
            .unwrap()
            .set_len(150)
            .unwrap();
        fs::create_dir(dir.path().join("ab")).unwrap();
        fs::write(dir.path().join("ab").join("old-layout"), b"x").unwrap();
        let again = DiskCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(again.get("lib", &ids[0]).unwrap(), vec![7; 100]);
        assert!(
            again.get("lib", &ids[1]).is_none(),
            "past the segment's end"
        );
        assert!(again.get("lib", &ids[2]).is_none(), "torn record");
        assert!(!dir.path().join("ab").exists());
    }
}
