//! Object ids: the BLAKE3 keyed hash of an object's plaintext, keyed by its library's id key.
//!
//! Keying means the server can neither read data nor confirm a guess about it: without the
//! key, knowing a file does not tell you its id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The 32-byte id of a stored object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 32]);

impl ObjectId {
    pub const LEN: usize = 32;

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first eight hex digits, as shown in listings.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.short())
    }
}

/// The text of an id was not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an object id (64 hex digits)")]
pub struct ParseIdError(String);

impl FromStr for ObjectId {
    type Err = ParseIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| ParseIdError(text.to_owned()))?;
        Ok(Self(bytes))
    }
}

/// Hex in JSON (readable on the wire), raw bytes in CBOR (compact inside trees).
impl Serialize for ObjectId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(D::Error::custom)
        } else {
            let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
            Self::from_slice(&bytes).ok_or_else(|| D::Error::custom("object id must be 32 bytes"))
        }
    }
}

/// The key that turns plaintext into ids for one library.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct IdKey([u8; 32]);

impl IdKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    pub fn id_of(&self, plaintext: &[u8]) -> ObjectId {
        ObjectId(*blake3::keyed_hash(&self.0, plaintext).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_the_key() {
        let a = IdKey::new([1; 32]);
        let b = IdKey::new([2; 32]);
        assert_eq!(a.id_of(b"data"), a.id_of(b"data"));
        assert_ne!(a.id_of(b"data"), b.id_of(b"data"));
        assert_ne!(
            a.id_of(b"data"),
            ObjectId(*blake3::hash(b"data").as_bytes())
        );
    }

    #[test]
    fn hex_round_trip() {
        let id = IdKey::new([7; 32]).id_of(b"x");
        assert_eq!(id.to_hex().parse::<ObjectId>().unwrap(), id);
        assert!("zz".parse::<ObjectId>().is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
    }
}
