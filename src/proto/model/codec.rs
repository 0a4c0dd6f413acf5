//! Object encoding: `format version (1) || CBOR (RFC 8949)`. The version byte lets a later
//! format be read beside this one; an unknown version is refused, never guessed at.
//! Version 2 (sharing): trees carry their children's keys, snapshots their root's key.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ModelError;

pub const FORMAT_VERSION: u8 = 2;

/// How deeply CBOR may nest. The deepest object (a snapshot's fields in a map in an array)
/// needs 4; a hostile blob of nested arrays would otherwise take a stack frame per level.
pub const MAX_DEPTH: usize = 16;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    ciborium::into_writer(value, &mut out).expect("serialising to memory cannot fail");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ModelError> {
    match bytes.first() {
        None => Err(ModelError::Empty),
        Some(&FORMAT_VERSION) => {
            ciborium::de::from_reader_with_recursion_limit(&bytes[1..], MAX_DEPTH)
                .map_err(|e| ModelError::Malformed(e.to_string()))
        }
        Some(&other) => Err(ModelError::Version(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_past_the_depth_bound_is_refused() {
        let nested = |depth: usize| {
            let mut bytes = vec![FORMAT_VERSION];
            bytes.extend(std::iter::repeat_n(0x81u8, depth)); // an array of one ...
            bytes.push(0x00); // ... around the integer 0
            bytes
        };
        assert!(decode::<ciborium::Value>(&nested(MAX_DEPTH - 1)).is_ok());
        let deep = decode::<ciborium::Value>(&nested(100));
        assert!(matches!(deep, Err(ModelError::Malformed(_))), "{deep:?}");
    }
}
