//! Client state on disk: where it lives, the pinned server certificates and the session.
//!
//! State lives in `IBACKUP_CONFIG_DIR` (default `~/.config/ibackup`), caches in
//! `IBACKUP_CACHE_DIR` (default `~/.cache/ibackup`). Files holding tokens or keys are mode
//! 0600 in a 0700 directory, and every write is atomic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::ClientError;
use crate::fsutil::{create_private_dir, write_atomic};

#[derive(Clone, Debug)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub cache_dir: PathBuf,
}

impl Paths {
    pub fn from_env() -> Result<Self, ClientError> {
        let home = || {
            std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| {
                ClientError::Usage(
                    "HOME is not set; set IBACKUP_CONFIG_DIR and IBACKUP_CACHE_DIR".into(),
                )
            })
        };
        let config_dir = match std::env::var_os("IBACKUP_CONFIG_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => home()?.join(".config/ibackup"),
        };
        let cache_dir = match std::env::var_os("IBACKUP_CACHE_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => home()?.join(".cache/ibackup"),
        };
        Ok(Self {
            config_dir,
            cache_dir,
        })
    }

    fn known_servers(&self) -> PathBuf {
        self.config_dir.join("known_servers.json")
    }

    fn session(&self) -> PathBuf {
        self.config_dir.join("session.json")
    }

    pub fn known_contacts(&self) -> PathBuf {
        self.config_dir.join("known_contacts.json")
    }

    pub fn seen_heads(&self) -> PathBuf {
        self.config_dir.join("seen_heads.json")
    }
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<Option<T>, ClientError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ClientError::State(format!(
                "{} is damaged ({e}); fix or delete it and log in again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::State(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

pub(crate) fn write_json<T: Serialize>(
    dir: &Path,
    path: &Path,
    value: &T,
) -> Result<(), ClientError> {
    create_private_dir(dir)
        .and_then(|()| {
            let bytes = Zeroizing::new(serde_json::to_vec_pretty(value).expect("serialises"));
            write_atomic(path, &bytes, 0o600)
        })
        .map_err(|e| ClientError::State(format!("cannot write {}: {e}", path.display())))
}

/// Server certificate fingerprints accepted so far, by server URL (like ssh's known_hosts).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KnownServers {
    pub servers: BTreeMap<String, String>,
}

impl KnownServers {
    pub fn load(paths: &Paths) -> Result<Self, ClientError> {
        Ok(read_json(&paths.known_servers())?.unwrap_or_default())
    }

    pub fn save(&self, paths: &Paths) -> Result<(), ClientError> {
        write_json(&paths.config_dir, &paths.known_servers(), self)
    }

    pub fn file(paths: &Paths) -> PathBuf {
        paths.known_servers()
    }
}

/// What this computer trusts of other accounts, per server (like ssh's known_hosts): the
/// fingerprint of each contact's account key, pinned on first use or by `contact verify`,
/// and the newest key epoch seen of each library, so a server cannot hand back an older key
/// that a removed member still holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KnownContacts {
    #[serde(default)]
    pub servers: BTreeMap<String, ServerContacts>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ServerContacts {
    /// E-mail -> key fingerprint (40 hex digits).
    #[serde(default)]
    pub contacts: BTreeMap<String, String>,
    /// Library id -> newest key epoch seen.
    #[serde(default)]
    pub epochs: BTreeMap<String, u32>,
    /// Library id -> newest change of the owner's roster seen (libraries this account owns).
    #[serde(default)]
    pub rosters: BTreeMap<String, u64>,
    /// Library id -> the fingerprint of its owner's key (libraries shared with this
    /// account): a server that names another owner address for the library cannot make
    /// that a first use of a new key.
    #[serde(default)]
    pub library_owners: BTreeMap<String, String>,
}

impl KnownContacts {
    pub fn load(paths: &Paths) -> Result<Self, ClientError> {
        Ok(read_json(&paths.known_contacts())?.unwrap_or_default())
    }

    pub fn save(&self, paths: &Paths) -> Result<(), ClientError> {
        write_json(&paths.config_dir, &paths.known_contacts(), self)
    }
}

/// The logged-in session: the bearer token and the account's private key, which unlocks the
/// library keys, sealed under the session's key share that only the server holds (and
/// drops when the session ends). Deleted by `ibackup logout`.
#[derive(Serialize, Deserialize)]
pub struct SessionFile {
    pub server: String,
    pub email: String,
    pub session_id: String,
    pub token: String,
    /// The account's X25519 private key wrapped under the session's key share (base64).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key_sealed: String,
    /// The private key in the clear (base64): files from before key shares, or from a
    /// server without them.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
}

impl SessionFile {
    pub fn load(paths: &Paths) -> Result<Self, ClientError> {
        read_json(&paths.session())?.ok_or(ClientError::NotLoggedIn)
    }

    pub fn save(&self, paths: &Paths) -> Result<(), ClientError> {
        write_json(&paths.config_dir, &paths.session(), self)
    }

    pub fn delete(paths: &Paths) -> Result<bool, ClientError> {
        match std::fs::remove_file(paths.session()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ClientError::State(format!(
                "cannot remove the session file: {e}"
            ))),
        }
    }
}

impl Drop for SessionFile {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.token.zeroize();
        self.private_key.zeroize();
        self.private_key_sealed.zeroize();
    }
}
