//! The `ibackup` client: accounts and sessions, backup, restore and snapshot listing.
//!
//! Error policy: each module reports through [`ClientError`], whose message says what went
//! wrong and what to do; `cli` prints it and picks the exit code. Nothing secret (password,
//! keys, tokens) is ever part of an error or a log line.

// What client and server share, named here as if it were this crate's own.
pub use ibackup_proto::{api, crypto, fsutil, model, units};

pub mod account;
pub mod backup;
pub mod check;
pub mod cli;
pub mod config;
pub mod links;
pub mod mount;
pub mod objects;
pub mod remote;
pub mod repo;
pub mod restore;
pub mod retention;
pub mod roster;
pub mod seen;
pub mod session;
pub mod sharing;
pub mod snapshots;
pub mod store;
pub mod tls;

use std::path::PathBuf;

use crate::crypto::CryptoError;
use crate::model::ModelError;
pub use remote::RemoteError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("not logged in; run `ibackup login --server URL --email EMAIL` or `ibackup register`")]
    NotLoggedIn,
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    State(String),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("{0}")]
    Model(#[from] ModelError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ClientError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ClientError::Io { path, source }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// What this client calls itself in session records.
pub fn client_label() -> String {
    format!(
        "ibackup/{} ({})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS
    )
}

/// This machine's name, as recorded in snapshots.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
