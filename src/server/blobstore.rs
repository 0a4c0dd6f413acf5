//! Where blob bytes live: pack files, each an immutable concatenation of blobs from one
//! upload, under `packs/LIBRARY/XX/PACK` in the data directory. The database records which
//! blob is where; a pack that no row points at is garbage (left by a crash or a refused
//! upload) and is removed by collection.
//!
//! Packs are written atomically and durably (temp file, fsync, rename, fsync directory)
//! before any database row refers to them.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::direct;
use crate::fsutil::{create_private_dir, write_atomic};

#[derive(Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn open(root: &Path) -> io::Result<Self> {
        create_private_dir(root)?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// Ids reach here only after `db::is_random_id` checked them, so they cannot escape
    /// `root`.
    fn pack_path(&self, library_id: &str, pack_id: &str) -> PathBuf {
        self.root.join(library_id).join(&pack_id[..2]).join(pack_id)
    }

    pub fn write_pack(&self, library_id: &str, pack_id: &str, data: &[u8]) -> io::Result<()> {
        let path = self.pack_path(library_id, pack_id);
        let dir = path.parent().expect("pack path has a parent");
        if !dir.exists() {
            create_private_dir(dir)?;
            crate::fsutil::sync_dir(dir.parent().expect("library dir"))?;
        }
        write_atomic(&path, data, 0o600)
    }

    /// Reads blobs, opening each pack once, straight into one fetch answer (`length (u32 BE) || blob` each),
    /// without an intermediate copy.
    pub fn read_frames(
        &self,
        library_id: &str,
        wanted: &[(String, u64, u64)],
    ) -> io::Result<Vec<u8>> {
        let total: u64 = wanted.iter().map(|(_, _, size)| size + 4).sum();
        let mut out = Vec::with_capacity(total as usize);
        // The pack open now: buffered, and for large objects direct (`None` if refused).
        let mut open: Option<(&str, File, Option<Option<File>>)> = None;
        for (pack_id, offset, size) in wanted {
            if open.as_ref().is_none_or(|(id, _, _)| id != pack_id) {
                let file = File::open(self.pack_path(library_id, pack_id))?;
                open = Some((pack_id, file, None));
            }
            let (_, file, direct) = open.as_mut().expect("opened above");
            out.extend_from_slice(&(*size as u32).to_be_bytes());
            if *size >= direct::DIRECT_MIN {
                let direct = direct
                    .get_or_insert_with(|| direct::open(&self.pack_path(library_id, pack_id)));
                if let Some(direct_file) = direct {
                    if direct::read_into(direct_file, *offset, *size, &mut out)? {
                        continue;
                    }
                }
            }
            let mut file = &*file;
            // Read into the spare capacity: no zeroing of bytes about to be overwritten.
            file.seek(SeekFrom::Start(*offset))?;
            if file.take(*size).read_to_end(&mut out)? as u64 != *size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("pack {pack_id} ends before the object at {offset}"),
                ));
            }
        }
        Ok(out)
    }

    /// Libraries that have a pack folder.
    pub fn library_dirs(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let name = entry?.file_name();
            if let Some(name) = name.to_str() {
                if crate::server::db::is_random_id(name) {
                    ids.push(name.to_owned());
                }
            }
        }
        Ok(ids)
    }

    /// Removes every pack of a library (after the library itself was deleted).
    pub fn remove_library(&self, library_id: &str) -> io::Result<()> {
        match fs::remove_dir_all(self.root.join(library_id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => crate::fsutil::sync_dir(&self.root),
        }
    }

    /// One object's bytes out of a pack (collection's repacking).
    pub fn read_range(
        &self,
        library_id: &str,
        pack_id: &str,
        offset: u64,
        size: u64,
    ) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = File::open(self.pack_path(library_id, pack_id))?;
        let mut out = vec![0u8; size as usize];
        file.read_exact_at(&mut out, offset)?;
        Ok(out)
    }

    /// A pack file's size; 0 if it is gone already.
    pub fn pack_size(&self, library_id: &str, pack_id: &str) -> io::Result<u64> {
        match fs::metadata(self.pack_path(library_id, pack_id)) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Every pack file of a library: id, last modified, size. Temporary files of writes
    /// under way are not packs and are left alone.
    pub fn list_packs(
        &self,
        library_id: &str,
    ) -> io::Result<Vec<(String, std::time::SystemTime, u64)>> {
        let mut packs = Vec::new();
        let dir = self.root.join(library_id);
        let shards = match fs::read_dir(&dir) {
            Ok(shards) => shards,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(packs),
            Err(e) => return Err(e),
        };
        for shard in shards {
            for entry in fs::read_dir(shard?.path())? {
                let entry = entry?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if crate::server::db::is_random_id(&name) {
                    let meta = entry.metadata()?;
                    packs.push((name, meta.modified()?, meta.len()));
                }
            }
        }
        Ok(packs)
    }

    pub fn delete_pack(&self, library_id: &str, pack_id: &str) -> io::Result<()> {
        match fs::remove_file(self.pack_path(library_id, pack_id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "0123456789abcdef0123456789abcdef";
    const PACK: &str = "fedcba9876543210fedcba9876543210";

    /// A store holding one pack, `PACK` of library `LIB`, with `data`.
    fn store_with(data: &[u8]) -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("packs")).unwrap();
        store.write_pack(LIB, PACK, data).unwrap();
        (dir, store)
    }

    #[test]
    fn write_read_delete() {
        let (_dir, store) = store_with(b"helloworld");
        let (lib, pack) = (LIB, PACK);
        let body = store
            .read_frames(lib, &[(pack.into(), 5, 5), (pack.into(), 0, 5)])
            .unwrap();
        let got = crate::api::frame::decode_frames(&body).unwrap();
        assert_eq!(got, vec![&b"world"[..], b"hello"]);
        // An index that points past the end of its pack is an error, not short data.
        let past = store.read_frames(lib, &[(pack.into(), 8, 5)]).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
        store.delete_pack(lib, pack).unwrap();
        assert!(store.read_frames(lib, &[(pack.into(), 0, 1)]).is_err());
        store.delete_pack(lib, pack).unwrap();
    }

    #[test]
    fn large_objects_read_directly_match_and_a_short_pack_is_an_error() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let (_dir, store) = store_with(&data);
        let (lib, pack) = (LIB, PACK);
        let wanted = [
            (pack.into(), 3, 400_000),
            (pack.into(), 400_003, 10),
            (pack.into(), 400_013, 599_987),
        ];
        let body = store.read_frames(lib, &wanted).unwrap();
        let got = crate::api::frame::decode_frames(&body).unwrap();
        assert_eq!(
            got,
            vec![&data[3..400_003], &data[400_003..400_013], &data[400_013..]]
        );
        let past = store
            .read_frames(lib, &[(pack.into(), 999_000, 100_000)])
            .unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
    }
}
