//! Object encoding: `format version (1) || CBOR (RFC 8949)`. The version byte lets a later
//! format be read beside this one; an unknown version is refused, never guessed at.
//! Version 2 (sharing): trees carry their children's keys, snapshots their root's key.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ModelError;

pub const FORMAT_VERSION: u8 = 2;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    ciborium::into_writer(value, &mut out).expect("serialising to memory cannot fail");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ModelError> {
    match bytes.first() {
        None => Err(ModelError::Empty),
        Some(&FORMAT_VERSION) => {
            ciborium::from_reader(&bytes[1..]).map_err(|e| ModelError::Malformed(e.to_string()))
        }
        Some(&other) => Err(ModelError::Version(other)),
    }
}
