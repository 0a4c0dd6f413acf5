//! Where blob bytes live: packs, each an immutable concatenation of blobs from one upload,
//! named `LIBRARY/XX/PACK`. The database records which blob is where; a pack no row points
//! at is garbage (left by a crash or a refused upload) and collection removes it.
//!
//! Two stores implement [`BlobStore`]: [`LocalStore`], the `packs` folder of the data
//! directory (the embedded default), and [`S3Store`], a bucket of any S3-compatible store
//! (Garage in the tests). A pack is stored durably before any database row refers to it.

mod direct;
mod frames;
mod local;
mod s3;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::db::Database;

pub use frames::{Frames, FramesBody};
pub use local::LocalStore;
pub use s3::{S3Credentials, S3Settings, S3Store};

/// Why a store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The pack is not in the store: damage (or a pack collected under a reader).
    #[error("pack {pack} of library {library} is missing from the blob store")]
    Missing { library: String, pack: String },
    /// The pack ends before an object its index promises: damage.
    #[error("pack {pack} ends before the object at {offset}")]
    Short { pack: String, offset: u64 },
    /// The store did not answer, or refused, after its retries: nothing is known damaged.
    #[error("the blob store is unavailable ({0}); nothing was changed, try again when it is back")]
    Unavailable(String),
    #[error("the blob store is misconfigured: {0}")]
    Config(String),
    #[error("blob store: {0}")]
    Io(#[from] io::Error),
}

impl StorageError {
    /// Whether this says the stored bytes are gone or cut short (as opposed to the store
    /// being out of reach): what `verify` marks damaged.
    pub fn is_damage(&self) -> bool {
        matches!(self, Self::Missing { .. } | Self::Short { .. })
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// One stored pack, as a listing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackInfo {
    pub id: String,
    pub modified: SystemTime,
    pub size: u64,
}

/// A store of packs. Calls block: the server makes them from its blocking pool.
pub trait BlobStore: Send + Sync {
    /// Stores a whole pack durably; a pack is never changed after.
    fn write_pack(&self, library: &str, pack: &str, data: Bytes) -> StorageResult<()>;

    /// Reads objects (pack, offset, size) into one fetch answer: `length (u32 BE) || blob`
    /// each, in the order asked.
    fn read_frames(&self, library: &str, wanted: &[(String, u64, u64)]) -> StorageResult<Frames>;

    /// One object's bytes out of a pack.
    fn read_range(
        &self,
        library: &str,
        pack: &str,
        offset: u64,
        size: u64,
    ) -> StorageResult<Vec<u8>>;

    /// A pack's size; 0 if it is gone already.
    fn pack_size(&self, library: &str, pack: &str) -> StorageResult<u64>;

    /// Every pack of a library. Writes under way are not listed.
    fn list_packs(&self, library: &str) -> StorageResult<Vec<PackInfo>>;

    /// Deletes a pack; deleting one that is gone is not an error.
    fn delete_pack(&self, library: &str, pack: &str) -> StorageResult<()>;

    /// The libraries that have packs stored.
    fn libraries(&self) -> StorageResult<Vec<String>>;

    /// Deletes every pack of a library (after the library itself was deleted).
    fn remove_library(&self, library: &str) -> StorageResult<()>;

    /// Where the packs are, for the record in the database and for messages:
    /// `local` or `s3://BUCKET/PREFIX`.
    fn location(&self) -> String;
}

/// Where packs are kept, as `server.toml` (`[storage]`) and `ibackup-server serve` say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct StorageOptions {
    /// Where packs are kept: `local` (the `packs` folder of the data directory, the default)
    /// or `s3://BUCKET/PREFIX` on an S3-compatible store. Credentials come from
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or from `[storage]` in server.toml.
    #[arg(long, value_name = "local|s3://BUCKET/PREFIX")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_store: Option<String>,
    /// The S3 endpoint, e.g. `http://127.0.0.1:3900` (default: AWS, from AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    /// The S3 region (default: AWS_REGION, else `us-east-1`).
    #[arg(long, value_name = "REGION")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    /// The metadata database: `sqlite:PATH` (default: `ibackup.db` in the data directory),
    /// which several servers on one machine may share, or `postgres://USER@HOST/DB`, which
    /// servers on several machines share.
    #[arg(long, value_name = "sqlite:PATH|postgres://USER@HOST/DB")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

impl StorageOptions {
    /// The database the option names (the data directory's SQLite file by default).
    pub fn database(&self, data_dir: &Path) -> StorageResult<Database> {
        match self.database.as_deref() {
            None => Ok(Database::Sqlite(data_dir.join("ibackup.db"))),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres(url.to_owned()))
            }
            Some(url) => match url.strip_prefix("sqlite:") {
                Some(path) if !path.is_empty() => Ok(Database::Sqlite(path.into())),
                _ => Err(StorageError::Config(
                    "--database is neither `sqlite:PATH` nor `postgres://USER@HOST/DB`".into(),
                )),
            },
        }
    }

    /// These options, with the ones not given taken from `file` (server.toml).
    pub fn or(&self, file: &StorageOptions) -> StorageOptions {
        StorageOptions {
            blob_store: self.blob_store.clone().or_else(|| file.blob_store.clone()),
            s3_endpoint: self
                .s3_endpoint
                .clone()
                .or_else(|| file.s3_endpoint.clone()),
            s3_region: self.s3_region.clone().or_else(|| file.s3_region.clone()),
            database: self.database.clone().or_else(|| file.database.clone()),
        }
    }
}

/// Opens the store `options` name; `data_dir` holds the local one.
pub fn open(
    options: &StorageOptions,
    credentials: Option<S3Credentials>,
    data_dir: &Path,
) -> StorageResult<Arc<dyn BlobStore>> {
    match options.blob_store.as_deref() {
        None | Some("local") => {
            if options.s3_endpoint.is_some() || options.s3_region.is_some() {
                return Err(StorageError::Config(
                    "an S3 endpoint or region was given but packs are kept locally; add \
                     --blob-store s3://BUCKET/PREFIX, or drop the S3 settings"
                        .into(),
                ));
            }
            Ok(Arc::new(LocalStore::open(&data_dir.join("packs"))?))
        }
        Some(url) => {
            let settings = S3Settings::parse(url, options, credentials)?;
            Ok(Arc::new(S3Store::open(settings)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_options_win_over_the_file() {
        let file = StorageOptions {
            blob_store: Some("s3://a/b".into()),
            s3_endpoint: Some("http://x".into()),
            s3_region: None,
            database: Some("sqlite:/srv/one.db".into()),
        };
        let flags = StorageOptions {
            blob_store: Some("s3://c".into()),
            ..Default::default()
        };
        let merged = flags.or(&file);
        assert_eq!(merged.blob_store.as_deref(), Some("s3://c"));
        assert_eq!(merged.s3_endpoint.as_deref(), Some("http://x"));
        assert_eq!(merged.s3_region, None);
        let dir = Path::new("/srv/ibackup");
        assert_eq!(
            merged.database(dir).unwrap(),
            Database::Sqlite("/srv/one.db".into())
        );
        assert_eq!(
            StorageOptions::default().database(dir).unwrap(),
            Database::Sqlite(dir.join("ibackup.db"))
        );
        let postgres = StorageOptions {
            database: Some("postgres://u@h/db".into()),
            ..Default::default()
        };
        assert_eq!(
            postgres.database(dir).unwrap(),
            Database::Postgres("postgres://u@h/db".into())
        );
        for refused in ["mysql://x", "sqlite:", "/srv/one.db"] {
            let options = StorageOptions {
                database: Some(refused.into()),
                ..Default::default()
            };
            assert!(options.database(dir).is_err(), "{refused}");
        }
    }

    #[test]
    fn s3_settings_without_an_s3_store_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = StorageOptions {
            s3_region: Some("garage".into()),
            ..Default::default()
        };
        let error = open(&options, None, dir.path()).err().unwrap();
        assert!(error.to_string().contains("--blob-store s3://"), "{error}");
    }
}
