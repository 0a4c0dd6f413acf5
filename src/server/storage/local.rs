//! The embedded default store: pack files under `packs/LIBRARY/XX/PACK` in the data
//! directory, written atomically and durably (temp file, fsync, rename, fsync directory).
//! Large objects are read with `O_DIRECT` (see `direct`).

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{direct, BlobStore, Frames, PackInfo, StorageError, StorageResult};
use crate::fsutil::{create_private_dir, write_atomic};

#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn open(root: &Path) -> io::Result<Self> {
        create_private_dir(root)?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// Ids reach here only after `db::is_random_id` checked them, so they cannot escape
    /// `root`.
    fn pack_path(&self, library: &str, pack: &str) -> PathBuf {
        self.root.join(library).join(&pack[..2]).join(pack)
    }

    fn open_pack(&self, library: &str, pack: &str) -> StorageResult<File> {
        File::open(self.pack_path(library, pack)).map_err(|e| missing(e, library, pack))
    }
}

/// A pack that is not there is `Missing`; any other failure stays an I/O error.
fn missing(error: io::Error, library: &str, pack: &str) -> StorageError {
    if error.kind() == io::ErrorKind::NotFound {
        StorageError::Missing {
            library: library.to_owned(),
            pack: pack.to_owned(),
        }
    } else {
        StorageError::Io(error)
    }
}

fn short(pack: &str, offset: u64) -> StorageError {
    StorageError::Short {
        pack: pack.to_owned(),
        offset,
    }
}

impl BlobStore for LocalStore {
    fn write_pack(&self, library: &str, pack: &str, data: Bytes) -> StorageResult<()> {
        let path = self.pack_path(library, pack);
        let dir = path.parent().expect("pack path has a parent");
        if !dir.exists() {
            create_private_dir(dir)?;
            crate::fsutil::sync_dir(dir.parent().expect("library dir"))?;
        }
        Ok(write_atomic(&path, &data, 0o600)?)
    }

    /// Opens each pack once and reads straight into the answer, without an intermediate
    /// copy; large objects directly.
    fn read_frames(&self, library: &str, wanted: &[(String, u64, u64)]) -> StorageResult<Frames> {
        let mut frames = Frames::default();
        // The pack open now: buffered, and for large objects direct (`None` if refused).
        let mut open: Option<(&str, File, Option<Option<File>>)> = None;
        for (pack, offset, size) in wanted {
            if open.as_ref().is_none_or(|(id, _, _)| id != pack) {
                open = Some((pack, self.open_pack(library, pack)?, None));
            }
            let (_, file, direct) = open.as_mut().expect("opened above");
            frames.prefix(*size);
            if *size >= direct::DIRECT_MIN {
                let direct =
                    direct.get_or_insert_with(|| direct::open(&self.pack_path(library, pack)));
                if let Some(direct_file) = direct {
                    match direct::read_owned(direct_file, *offset, *size) {
                        Ok(Some(object)) => {
                            frames.push(object);
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                            return Err(short(pack, *offset))
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            let mut file = &*file;
            // Read into the spare capacity: no zeroing of bytes about to be overwritten.
            file.seek(SeekFrom::Start(*offset))?;
            let n = file.take(*size).read_to_end(frames.open())? as u64;
            if n != *size {
                return Err(short(pack, *offset));
            }
            frames.note(n);
        }
        Ok(frames)
    }

    fn read_range(
        &self,
        library: &str,
        pack: &str,
        offset: u64,
        size: u64,
    ) -> StorageResult<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = self.open_pack(library, pack)?;
        let mut out = vec![0u8; size as usize];
        file.read_exact_at(&mut out, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                short(pack, offset)
            } else {
                StorageError::Io(e)
            }
        })?;
        Ok(out)
    }

    fn pack_size(&self, library: &str, pack: &str) -> StorageResult<u64> {
        match fs::metadata(self.pack_path(library, pack)) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Temporary files of writes under way are not packs and are left alone.
    fn list_packs(&self, library: &str) -> StorageResult<Vec<PackInfo>> {
        let mut packs = Vec::new();
        let shards = match fs::read_dir(self.root.join(library)) {
            Ok(shards) => shards,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(packs),
            Err(e) => return Err(e.into()),
        };
        for shard in shards {
            for entry in fs::read_dir(shard?.path())? {
                let entry = entry?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if crate::db::is_random_id(&name) {
                    let meta = entry.metadata()?;
                    packs.push(PackInfo {
                        id: name,
                        modified: meta.modified()?,
                        size: meta.len(),
                    });
                }
            }
        }
        Ok(packs)
    }

    fn delete_pack(&self, library: &str, pack: &str) -> StorageResult<()> {
        match fs::remove_file(self.pack_path(library, pack)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn libraries(&self) -> StorageResult<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let name = entry?.file_name();
            if let Some(name) = name.to_str() {
                if crate::db::is_random_id(name) {
                    ids.push(name.to_owned());
                }
            }
        }
        Ok(ids)
    }

    fn remove_library(&self, library: &str) -> StorageResult<()> {
        match fs::remove_dir_all(self.root.join(library)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(crate::fsutil::sync_dir(&self.root)?),
        }
    }

    fn location(&self) -> String {
        "local".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "0123456789abcdef0123456789abcdef";
    const PACK: &str = "fedcba9876543210fedcba9876543210";

    /// A store holding one pack, `PACK` of library `LIB`, with `data`.
    fn store_with(data: &[u8]) -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(&dir.path().join("packs")).unwrap();
        store
            .write_pack(LIB, PACK, Bytes::copy_from_slice(data))
            .unwrap();
        (dir, store)
    }

    #[test]
    fn write_read_delete() {
        let (_dir, store) = store_with(b"helloworld");
        let (lib, pack) = (LIB, PACK);
        let body = store
            .read_frames(lib, &[(pack.into(), 5, 5), (pack.into(), 0, 5)])
            .unwrap()
            .to_vec();
        let got = crate::api::frame::decode_frames(&body).unwrap();
        assert_eq!(got, vec![&b"world"[..], b"hello"]);
        // An index that points past the end of its pack is an error, not short data.
        let past = store.read_frames(lib, &[(pack.into(), 8, 5)]).unwrap_err();
        assert!(matches!(past, StorageError::Short { .. }), "{past}");
        let past = store.read_range(lib, pack, 8, 5).unwrap_err();
        assert!(matches!(past, StorageError::Short { .. }), "{past}");
        store.delete_pack(lib, pack).unwrap();
        let gone = store.read_frames(lib, &[(pack.into(), 0, 1)]).unwrap_err();
        assert!(matches!(gone, StorageError::Missing { .. }), "{gone}");
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
        let body = store.read_frames(lib, &wanted).unwrap().to_vec();
        let got = crate::api::frame::decode_frames(&body).unwrap();
        assert_eq!(
            got,
            vec![&data[3..400_003], &data[400_003..400_013], &data[400_013..]]
        );
        let past = store
            .read_frames(lib, &[(pack.into(), 999_000, 100_000)])
            .unwrap_err();
        assert!(past.is_damage(), "{past}");
    }
}
