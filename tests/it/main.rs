//! The integration tests: real `ibackup-server` and `ibackup` binaries against each other on
//! loopback over TLS, with real SQLite and real files. One binary, one module per area;
//! what they share is in `support/`.

// The helpers, by the names the tests use.
use support::{garage, pg, util};

mod accounts;
mod backup_restore;
mod billing;
mod cluster;
mod floods;
mod hostile;
mod integrity;
mod links;
mod load;
mod mail;
mod mount;
mod mount_mix;
mod mount_posix;
mod mount_sharing;
mod mount_space;
mod mount_system;
mod postgres;
mod privacy;
mod profile;
mod quota;
mod retention;
mod s3;
mod sharing;
mod support;
mod tls;
mod web;
