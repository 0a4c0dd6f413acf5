//! Wire types shared by client and server: route paths, request and response bodies, error
//! codes and the binary framing of object batches. Pure data: no I/O here.

pub mod account;
pub mod b64;
pub mod error;
pub mod frame;
pub mod routes;
pub mod types;

pub use error::{ErrorBody, ErrorCode};
