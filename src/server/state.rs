//! The state every handler shares: the stores, the configuration and the server's secrets.

use std::sync::Arc;

use super::billing::processor::PaymentProcessor;
use super::config::ServerConfig;
use super::db::Db;
use super::hashing::Hashers;
use super::mail::Mailer;
use super::records::SessionRecords;
use super::storage::BlobStore;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub blobs: Arc<dyn BlobStore>,
    /// Keys the stand-in salts for unknown e-mail addresses.
    pub secret: Arc<[u8; 32]>,
    /// A hash to verify against when the e-mail is unknown, so that takes as long as a
    /// wrong password.
    pub dummy_hash: Arc<str>,
    pub config: Arc<ServerConfig>,
    pub processor: Arc<dyn PaymentProcessor>,
    pub mailer: Arc<Mailer>,
    pub records: Arc<SessionRecords>,
    /// What each link's root reaches, computed once per root (see `links`).
    pub reach: Arc<std::sync::Mutex<ReachCache>>,
    pub hashers: Arc<Hashers>,
    /// Upload bodies in memory (`limits.upload_memory`), per account and in all.
    pub uploads: Arc<super::memory::MemoryBound>,
    /// Fetch answers in memory until sent (`limits.fetch_memory`), per account or link and
    /// in all.
    pub answers: Arc<super::memory::MemoryBound>,
    /// The fingerprint of the certificate this server presents (`SHA256:hex`), when it ends
    /// TLS itself: the web page puts it into the links it makes, as `ibackup link create`
    /// puts the one its computer pinned.
    pub certificate: Option<Arc<str>>,
}

pub type ReachCache = std::collections::HashMap<
    (String, crate::crypto::ObjectId),
    Arc<std::collections::HashSet<crate::crypto::ObjectId>>,
>;

impl AppState {
    pub fn reach_cache(&self) -> std::sync::MutexGuard<'_, ReachCache> {
        self.reach.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fake_salt(&self, email: &str) -> Vec<u8> {
        let mut hasher = blake3::Hasher::new_keyed(&self.secret);
        hasher.update(b"prelogin salt\0");
        hasher.update(email.as_bytes());
        hasher.finalize().as_bytes()[..16].to_vec()
    }
}
