//! Object ids and object keys.
//!
//! A chunk or tree is encrypted under its own key, derived from its plaintext and the
//! library epoch's convergence secret ([`ObjectKey`]); its id is derived from that key, so
//! whoever holds the key can ask for the blob, and the server, which holds only ids, can
//! neither read data nor confirm a guess about it. Snapshots are named by a keyed hash of
//! their plaintext under the epoch's snapshot id key ([`IdKey`]).

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

/// The key of one chunk or tree: a capability to read it and, through the keys its entries
/// carry, everything below it. Its id is derived from it and is all the server sees.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectKey([u8; 32]);

const ID_FROM_KEY: &str = "ibackup 2026-12 object id from object key";

impl ObjectKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id under which the server stores the object.
    pub fn id(&self) -> ObjectId {
        ObjectId(blake3::derive_key(ID_FROM_KEY, &self.0))
    }
}

/// Never prints the key, only the id it names.
impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectKey(id {})", self.id().short())
    }
}

/// Raw bytes in CBOR (inside encrypted trees and snapshots); never written to JSON.
impl Serialize for ObjectKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ObjectKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
        Self::from_slice(&bytes).ok_or_else(|| D::Error::custom("object key must be 32 bytes"))
    }
}

/// A BLAKE3 key: turns plaintext into snapshot ids, or (as an epoch's convergence key) into
/// object keys.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct IdKey([u8; 32]);

impl IdKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    pub fn id_of(&self, plaintext: &[u8]) -> ObjectId {
        ObjectId(*blake3::keyed_hash(&self.0, plaintext).as_bytes())
    }

    /// The convergent key of an object: the same plaintext of the same kind always gets the
    /// same key (and so the same id) under one epoch, which is what deduplicates it.
    pub fn object_key(&self, kind_code: u8, plaintext: &[u8]) -> ObjectKey {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(&[kind_code]);
        hasher.update(plaintext);
        ObjectKey(*hasher.finalize().as_bytes())
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
    fn object_keys_converge_per_kind_and_name_their_id() {
        let convergence = IdKey::new([5; 32]);
        let a = convergence.object_key(1, b"data");
        assert_eq!(a, convergence.object_key(1, b"data"));
        assert_ne!(
            a,
            convergence.object_key(2, b"data"),
            "kind is part of the key"
        );
        assert_ne!(a, IdKey::new([6; 32]).object_key(1, b"data"));
        assert_eq!(a.id(), a.id());
        assert_ne!(a.id().as_bytes(), a.as_bytes());
        assert!(!format!("{a:?}").contains(&hex::encode(a.as_bytes())));
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
