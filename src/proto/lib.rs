//! What the ibackup client and server share, and all they share: `api` holds the wire
//! types and routes, `crypto` the keys and the blob envelope, `model` the objects (chunk,
//! tree, snapshot); `fsutil` and `units` are small helpers both sides use.

pub mod api;
pub mod crypto;
pub mod fsutil;
pub mod model;
pub mod units;
