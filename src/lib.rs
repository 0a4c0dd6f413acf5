//! ibackup: an encrypted online backup and storage service.
//!
//! One library shared by two binaries. The folders are the architecture
//! (see `docs/DECISIONS.md` and the shared architecture): `api` holds the wire types, `crypto` the keys and the blob
//! envelope, `model` the objects (chunk, tree, snapshot), `server` the axum service and
//! `client` the command-line client. `fsutil` and `units` are small helpers both sides use;
//! `fuzz` drives every decoder of untrusted bytes with mutated inputs (docs/SECURITY.md).

pub mod api;
pub mod client;
pub mod crypto;
pub mod fsutil;
pub mod fuzz;
pub mod model;
pub mod server;
pub mod units;
