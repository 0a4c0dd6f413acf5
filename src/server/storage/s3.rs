//! Packs in a bucket of an S3-compatible store (Garage, MinIO, AWS S3), through the
//! `object_store` crate: `PREFIX/LIBRARY/XX/PACK`, one object per pack.
//!
//! An S3 PUT is atomic and, once answered, durable as the store promises (Garage: set
//! `data_fsync` and `metadata_fsync`, see docs/SCALING.md). Requests are retried with
//! backoff on 5xx answers and timeouts; large packs go up in parts; reads ask for byte
//! ranges, so fetching a chunk never downloads its whole pack.
//!
//! The calls of [`BlobStore`] block. They run on this store's own small runtime, so they
//! can be made from the server's blocking pool and from the command-line tools alike.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};

use super::{BlobStore, Frames, PackInfo, StorageError, StorageOptions, StorageResult};

/// Packs at least this large go up in parts of this size (S3's smallest part is 5 MiB).
const PART_SIZE: usize = 8 << 20;
/// Packs read at once by one fetch.
const PARALLEL_PACKS: usize = 8;
/// How long one request may take before it counts as failed (and is retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries of one call end after this many, or this long; the caller then hears
/// "unavailable" (and the client tries again a little later).
const RETRIES: usize = 4;
const RETRY_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`S3Store::open`] needs: from `--blob-store s3://BUCKET/PREFIX` and the S3 options.
#[derive(Clone, Debug)]
pub struct S3Settings {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// `None` takes them from the AWS environment variables.
    pub credentials: Option<S3Credentials>,
}

/// An access key; its secret is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    pub fn parse(
        url: &str,
        options: &StorageOptions,
        credentials: Option<S3Credentials>,
    ) -> StorageResult<Self> {
        let config = |m: String| StorageError::Config(m);
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            config(format!(
                "--blob-store `{url}` is neither `local` nor `s3://BUCKET/PREFIX`"
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
        if !bucket_ok {
            return Err(config(format!(
                "`{bucket}` is not an S3 bucket name (3 to 63 lowercase letters, digits, `-`, `.`)"
            )));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|part| part == "." || part == ".." || (part.is_empty() && !prefix.is_empty()))
        {
            return Err(config(format!(
                "the prefix `{prefix}` of --blob-store has an empty, `.` or `..` part"
            )));
        }
        if let Some(endpoint) = &options.s3_endpoint {
            let parsed = url::Url::parse(endpoint)
                .map_err(|e| config(format!("--s3-endpoint `{endpoint}`: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(config(format!(
                    "--s3-endpoint `{endpoint}` must start with https:// (or http:// on loopback)"
                )));
            }
            if parsed.scheme() == "http" && !is_loopback(&parsed) {
                return Err(config(format!(
                    "--s3-endpoint `{endpoint}` is plain HTTP to another machine; use https://"
                )));
            }
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: options.s3_endpoint.clone(),
            region: options.s3_region.clone(),
            credentials,
        })
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

/// Owns the runtime the S3 requests run on; shut down without waiting, so dropping the
/// store is allowed anywhere (also inside the server's runtime).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

pub struct S3Store {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    location: String,
    runtime: Runtime,
}

impl S3Store {
    pub fn open(settings: S3Settings) -> StorageResult<Self> {
        // reqwest's TLS takes the process's default provider: ring, as the rest of ibackup.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&settings.bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: RETRIES,
                retry_timeout: RETRY_TIMEOUT,
            })
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_allow_http(true),
            );
        if let Some(endpoint) = &settings.endpoint {
            // Path-style requests: a bucket need not be a DNS name of the endpoint.
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let Some(credentials) = &settings.credentials {
            builder = builder
                .with_access_key_id(&credentials.access_key_id)
                .with_secret_access_key(&credentials.secret_access_key);
        }
        let store = builder
            .build()
            .map_err(|e| StorageError::Config(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ibackup-s3")
            .enable_all()
            .build()?;
        let location = match settings.prefix.as_str() {
            "" => format!("s3://{}", settings.bucket),
            prefix => format!("s3://{}/{prefix}", settings.bucket),
        };
        Ok(Self {
            store: Arc::new(store),
            prefix: ObjectPath::from(settings.prefix.as_str()),
            location,
            runtime: Runtime(Some(runtime)),
        })
    }

    /// Runs `work` on this store's runtime and waits for it, from any thread.
    fn run<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> T {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let runtime = self
            .runtime
            .0
            .as_ref()
            .expect("runtime lives as long as the store");
        runtime.spawn(async move {
            let _ = sender.send(work.await);
        });
        receiver
            .recv()
            .expect("the S3 runtime finishes what it was given")
    }

    fn library_path(&self, library: &str) -> ObjectPath {
        self.prefix.clone().join(library)
    }

    /// Ids reach here only after `db::is_random_id` checked them.
    fn pack_path(&self, library: &str, pack: &str) -> ObjectPath {
        self.library_path(library).join(&pack[..2]).join(pack)
    }

    /// Why reading `size` bytes at `offset` of a pack failed: the pack is gone or shorter
    /// (damage), or the store is out of reach.
    fn explain(
        &self,
        error: object_store::Error,
        library: &str,
        pack: &str,
        end: u64,
    ) -> StorageError {
        if let object_store::Error::NotFound { .. } = error {
            return missing(library, pack);
        }
        let (store, path) = (self.store.clone(), self.pack_path(library, pack));
        match self.run(async move { store.head(&path).await }) {
            Err(object_store::Error::NotFound { .. }) => missing(library, pack),
            Ok(meta) if meta.size < end => StorageError::Short {
                pack: pack.to_owned(),
                offset: meta.size,
            },
            _ => unavailable(error),
        }
    }
}

fn missing(library: &str, pack: &str) -> StorageError {
    StorageError::Missing {
        library: library.to_owned(),
        pack: pack.to_owned(),
    }
}

fn unavailable(error: object_store::Error) -> StorageError {
    StorageError::Unavailable(error.to_string())
}

impl BlobStore for S3Store {
    fn write_pack(&self, library: &str, pack: &str, data: Bytes) -> StorageResult<()> {
        let (store, path) = (self.store.clone(), self.pack_path(library, pack));
        self.run(async move {
            if data.len() < 2 * PART_SIZE {
                store.put(&path, PutPayload::from(data)).await?;
            } else {
                let upload = store.put_multipart(&path).await?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                writer.put(data);
                writer.finish().await?;
            }
            Ok(())
        })
        .map_err(unavailable)
    }

    /// The objects of each pack are asked for in one ranged request (`object_store` merges
    /// ranges less than 1 MiB apart, and splits the rest into parallel requests), and up to
    /// [`PARALLEL_PACKS`] packs at once: a fetch reads what it needs, not whole packs, and
    /// a batch of small objects from a few packs costs a few round trips, not one each.
    fn read_frames(&self, library: &str, wanted: &[(String, u64, u64)]) -> StorageResult<Frames> {
        // Each pack with the positions in `wanted` of its objects.
        let mut packs: Vec<(&str, Vec<usize>)> = Vec::new();
        let mut index: std::collections::HashMap<&str, usize> = Default::default();
        for (position, (pack, _, _)) in wanted.iter().enumerate() {
            let slot = *index.entry(pack).or_insert_with(|| {
                packs.push((pack, Vec::new()));
                packs.len() - 1
            });
            packs[slot].1.push(position);
        }
        let requests: Vec<(ObjectPath, Vec<Range<u64>>)> = packs
            .iter()
            .map(|(pack, positions)| {
                let ranges = positions
                    .iter()
                    .map(|&p| wanted[p].1..wanted[p].1 + wanted[p].2)
                    .collect();
                (self.pack_path(library, pack), ranges)
            })
            .collect();
        let store = self.store.clone();
        let answers: Vec<(usize, object_store::Result<Vec<Bytes>>)> = self.run(async move {
            futures::stream::iter(requests.into_iter().enumerate().map(|(n, (path, ranges))| {
                let store = store.clone();
                async move { (n, store.get_ranges(&path, &ranges).await) }
            }))
            .buffer_unordered(PARALLEL_PACKS)
            .collect()
            .await
        });
        let mut found: Vec<Option<Bytes>> = vec![None; wanted.len()];
        for (n, answer) in answers {
            let (pack, positions) = &packs[n];
            let end = positions
                .iter()
                .map(|&p| wanted[p].1 + wanted[p].2)
                .max()
                .unwrap_or(0);
            let got = answer.map_err(|e| self.explain(e, library, pack, end))?;
            for (bytes, &position) in got.into_iter().zip(positions) {
                if bytes.len() as u64 != wanted[position].2 {
                    return Err(StorageError::Short {
                        pack: pack.to_string(),
                        offset: wanted[position].1,
                    });
                }
                found[position] = Some(bytes);
            }
        }
        let mut frames = Frames::default();
        for bytes in found {
            let bytes = bytes.expect("every position belongs to one pack, answered above");
            frames.prefix(bytes.len() as u64);
            frames.add(bytes);
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
        let (store, path) = (self.store.clone(), self.pack_path(library, pack));
        let bytes = self
            .run(async move { store.get_range(&path, offset..offset + size).await })
            .map_err(|e| self.explain(e, library, pack, offset + size))?;
        if bytes.len() as u64 != size {
            return Err(StorageError::Short {
                pack: pack.to_owned(),
                offset,
            });
        }
        Ok(bytes.to_vec())
    }

    fn pack_size(&self, library: &str, pack: &str) -> StorageResult<u64> {
        let (store, path) = (self.store.clone(), self.pack_path(library, pack));
        match self.run(async move { store.head(&path).await }) {
            Ok(meta) => Ok(meta.size),
            Err(object_store::Error::NotFound { .. }) => Ok(0),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Multipart uploads under way are not objects yet, so they are not listed.
    fn list_packs(&self, library: &str) -> StorageResult<Vec<PackInfo>> {
        let (store, prefix) = (self.store.clone(), self.library_path(library));
        let metas: Vec<object_store::ObjectMeta> = self
            .run(async move { store.list(Some(&prefix)).try_collect().await })
            .map_err(unavailable)?;
        Ok(metas
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?;
                crate::db::is_random_id(name).then(|| PackInfo {
                    id: name.to_owned(),
                    modified: meta.last_modified.into(),
                    size: meta.size,
                })
            })
            .collect())
    }

    fn delete_pack(&self, library: &str, pack: &str) -> StorageResult<()> {
        let (store, path) = (self.store.clone(), self.pack_path(library, pack));
        match self.run(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn libraries(&self) -> StorageResult<Vec<String>> {
        let (store, prefix) = (self.store.clone(), self.prefix.clone());
        let listed = self
            .run(async move { store.list_with_delimiter(Some(&prefix)).await })
            .map_err(unavailable)?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|path| path.filename())
            .filter(|name| crate::db::is_random_id(name))
            .map(str::to_owned)
            .collect())
    }

    fn remove_library(&self, library: &str) -> StorageResult<()> {
        let (store, prefix) = (self.store.clone(), self.library_path(library));
        self.run(async move {
            let paths = store
                .list(Some(&prefix))
                .map_ok(|meta| meta.location)
                .boxed();
            let deleted: Vec<ObjectPath> = store.delete_stream(paths).try_collect().await?;
            Ok::<_, object_store::Error>(deleted.len())
        })
        .map_err(unavailable)?;
        Ok(())
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str, endpoint: Option<&str>) -> StorageResult<S3Settings> {
        let options = StorageOptions {
            blob_store: Some(url.into()),
            s3_endpoint: endpoint.map(Into::into),
            ..Default::default()
        };
        S3Settings::parse(url, &options, None)
    }

    #[test]
    fn bucket_and_prefix_are_read_and_bad_ones_refused() {
        let settings = parse("s3://ibackup-packs/site/one/", None).unwrap();
        assert_eq!(
            (settings.bucket.as_str(), settings.prefix.as_str()),
            ("ibackup-packs", "site/one")
        );
        assert_eq!(parse("s3://packs", None).unwrap().prefix, "");
        for bad in [
            "s3://",
            "s3://Upper/x",
            "s3://a/x",
            "s3://bucket/a/../b",
            "s3://bucket/a//b",
        ] {
            assert!(parse(bad, None).is_err(), "{bad} was accepted");
        }
        let error = parse("file:///tmp", None).unwrap_err().to_string();
        assert!(error.contains("s3://BUCKET/PREFIX"), "{error}");
    }

    #[test]
    fn plain_http_endpoints_are_for_loopback_only() {
        assert!(parse("s3://packs", Some("http://127.0.0.1:3900")).is_ok());
        assert!(parse("s3://packs", Some("http://localhost:3900")).is_ok());
        assert!(parse("s3://packs", Some("https://s3.example.com")).is_ok());
        let error = parse("s3://packs", Some("http://s3.example.com"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("https://"), "{error}");
        assert!(parse("s3://packs", Some("ftp://x")).is_err());
    }

    #[test]
    fn the_settings_never_print_the_secret() {
        let mut settings = parse("s3://packs", None).unwrap();
        settings.credentials = Some(S3Credentials {
            access_key_id: "GK123".into(),
            secret_access_key: "very-secret".into(),
        });
        assert!(!format!("{settings:?}").contains("very-secret"));
    }
}
