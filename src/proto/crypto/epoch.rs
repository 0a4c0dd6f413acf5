//! A library's key epochs (Keybase's per-team key generations) and how they travel.
//!
//! Each library has epoch keys k1, k2, ...; the newest encrypts what is written now. Every
//! epoch key after the first carries the one before it encrypted under it (the *chain*), so a
//! member given the newest key reads all history. Removing a member makes a new epoch, so
//! what is written afterwards is unreadable with any key the removed member held.
//!
//! An epoch key reaches a member as a *grant*: an authenticated box from the library's owner
//! to the member, whose plaintext binds the library id, the epoch and the recipient's public
//! key. A client accepts a grant only if it opens with the owner's public key as the client
//! trusts it (its own, or a pinned contact's), so a server cannot hand out a key of its own
//! making. Library names are encrypted under an epoch key too. See docs/FORMAT.md.

use std::collections::BTreeMap;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::id::IdKey;
use super::keys::{AccountKeyPair, SymmetricKey};
use super::CryptoError;

const GRANT_MAGIC: &[u8; 16] = b"ibackup grant v2";
const GRANT_LEN: usize = 16 + 16 + 4 + 32 + 32;

/// The keys one epoch key gives.
pub struct EpochKeys {
    pub epoch: u32,
    key: SymmetricKey,
    /// Makes chunk and tree keys from their plaintext (convergent within the epoch).
    pub convergence: IdKey,
    /// Names snapshots.
    pub snapshot_id: IdKey,
    /// Encrypts snapshots.
    pub snapshot: SymmetricKey,
    /// Encrypts the library's name.
    names: SymmetricKey,
    /// The chunker's gear table (issue 14, 26): every entry from the epoch key, so the
    /// server cannot tell a known file from the sizes of its chunks, and a member who sees
    /// where chunks end learns nothing that keys another epoch.
    pub chunker_gear: Box<[u64; 256]>,
}

impl EpochKeys {
    pub fn derive(epoch: u32, key: SymmetricKey) -> Self {
        let raw = key.as_bytes();
        Self {
            epoch,
            convergence: IdKey::new(blake3::derive_key("ibackup 2026-12 epoch convergence", raw)),
            snapshot_id: IdKey::new(blake3::derive_key("ibackup 2026-12 epoch snapshot id", raw)),
            snapshot: SymmetricKey::from_bytes(blake3::derive_key(
                "ibackup 2026-12 epoch snapshot",
                raw,
            )),
            names: SymmetricKey::from_bytes(blake3::derive_key("ibackup 2026-12 epoch name", raw)),
            chunker_gear: chunker_gear(raw),
            key,
        }
    }

    pub fn key(&self) -> &SymmetricKey {
        &self.key
    }
}

/// The chunker's gear table: 2 KiB of BLAKE3 in key-derivation mode over the epoch key, a
/// keyed pseudorandom function, read as 256 little-endian 64-bit entries.
fn chunker_gear(raw: &[u8; 32]) -> Box<[u64; 256]> {
    let mut bytes = [0u8; 256 * 8];
    blake3::Hasher::new_derive_key("ibackup 2026-12 epoch chunker gear")
        .update(raw)
        .finalize_xof()
        .fill(&mut bytes);
    let mut gear = Box::new([0u64; 256]);
    for (entry, word) in gear.iter_mut().zip(bytes.chunks_exact(8)) {
        *entry = u64::from_le_bytes(word.try_into().expect("8 bytes"));
    }
    gear
}

/// A library id as the 16 bytes behind its 32 hex digits.
fn library_bytes(library_id: &str) -> Result<[u8; 16], CryptoError> {
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(library_id, &mut bytes)
        .map_err(|_| CryptoError::Key("a library id is 32 hex digits"))?;
    Ok(bytes)
}

fn context(label: &[u8], library_id: &str, epoch: u32) -> Result<Vec<u8>, CryptoError> {
    let mut out = label.to_vec();
    out.extend_from_slice(&library_bytes(library_id)?);
    out.extend_from_slice(&epoch.to_be_bytes());
    Ok(out)
}

/// Makes a grant of `key` (epoch `epoch` of `library_id`) from `granter` to `recipient`.
pub fn grant(
    granter: &AccountKeyPair,
    recipient: &[u8],
    library_id: &str,
    epoch: u32,
    key: &SymmetricKey,
) -> Result<Vec<u8>, CryptoError> {
    let mut plain = Zeroizing::new(Vec::with_capacity(GRANT_LEN));
    plain.extend_from_slice(GRANT_MAGIC);
    plain.extend_from_slice(&library_bytes(library_id)?);
    plain.extend_from_slice(&epoch.to_be_bytes());
    plain.extend_from_slice(recipient);
    plain.extend_from_slice(key.as_bytes());
    if plain.len() != GRANT_LEN {
        return Err(CryptoError::Key("public key is not 32 bytes"));
    }
    granter.box_to(recipient, &plain)
}

/// Opens a grant made for `me` by the holder of `granter`'s private key, and checks it is
/// for this library, this epoch and this recipient (so it cannot be replayed elsewhere).
pub fn open_grant(
    me: &AccountKeyPair,
    granter: &[u8],
    library_id: &str,
    epoch: u32,
    grant: &[u8],
) -> Result<SymmetricKey, CryptoError> {
    let plain = me.open_from(granter, grant)?;
    let mut expected = Vec::with_capacity(GRANT_LEN - 32);
    expected.extend_from_slice(GRANT_MAGIC);
    expected.extend_from_slice(&library_bytes(library_id)?);
    expected.extend_from_slice(&epoch.to_be_bytes());
    expected.extend_from_slice(&me.public_bytes());
    if plain.len() != GRANT_LEN || plain[..GRANT_LEN - 32] != expected[..] {
        return Err(CryptoError::Decrypt);
    }
    SymmetricKey::from_slice(&plain[GRANT_LEN - 32..])
}

/// The previous epoch's key encrypted under the key of `epoch` (which must be > 1).
pub fn chain_link(
    newer: &SymmetricKey,
    library_id: &str,
    epoch: u32,
    older: &SymmetricKey,
) -> Result<Vec<u8>, CryptoError> {
    Ok(newer.seal_bound(
        &context(b"ibackup chain", library_id, epoch)?,
        older.as_bytes(),
    ))
}

fn open_chain_link(
    newer: &SymmetricKey,
    library_id: &str,
    epoch: u32,
    link: &[u8],
) -> Result<SymmetricKey, CryptoError> {
    let older = newer.open_bound(&context(b"ibackup chain", library_id, epoch)?, link)?;
    SymmetricKey::from_slice(&older)
}

/// Every epoch of a library a member can reach, newest first in use. Cheap to clone.
#[derive(Clone)]
pub struct LibraryKeys {
    epochs: Arc<BTreeMap<u32, EpochKeys>>,
    newest: u32,
}

impl LibraryKeys {
    /// A new library's first epoch, with a fresh random key.
    pub fn generate() -> Self {
        Self::single(1, SymmetricKey::generate())
    }

    pub fn single(epoch: u32, key: SymmetricKey) -> Self {
        let mut epochs = BTreeMap::new();
        epochs.insert(epoch, EpochKeys::derive(epoch, key));
        Self {
            epochs: Arc::new(epochs),
            newest: epoch,
        }
    }

    /// The keys of `newest` and, through `chain` (epoch -> link to the epoch before it),
    /// every earlier epoch. A link that does not open is an error: history must not vanish
    /// silently.
    pub fn unchain(
        library_id: &str,
        newest: u32,
        key: SymmetricKey,
        chain: &BTreeMap<u32, Vec<u8>>,
    ) -> Result<Self, CryptoError> {
        let mut epochs = BTreeMap::new();
        let mut current = key;
        let mut epoch = newest;
        while epoch > 1 {
            let link = chain.get(&epoch).ok_or(CryptoError::Key(
                "an epoch's link to the one before it is missing",
            ))?;
            let older = open_chain_link(&current, library_id, epoch, link)?;
            epochs.insert(epoch, EpochKeys::derive(epoch, current));
            current = older;
            epoch -= 1;
        }
        epochs.insert(epoch, EpochKeys::derive(epoch, current));
        Ok(Self {
            epochs: Arc::new(epochs),
            newest,
        })
    }

    /// A new epoch after this one: its key, and the link that carries this one's key.
    pub fn rotate(&self, library_id: &str) -> Result<(Self, Vec<u8>), CryptoError> {
        let epoch = self.newest + 1;
        let key = SymmetricKey::generate();
        let link = chain_link(&key, library_id, epoch, self.newest().key())?;
        let mut epochs: BTreeMap<u32, EpochKeys> = BTreeMap::new();
        for (e, keys) in self.epochs.iter() {
            epochs.insert(*e, EpochKeys::derive(*e, keys.key().clone()));
        }
        epochs.insert(epoch, EpochKeys::derive(epoch, key));
        Ok((
            Self {
                epochs: Arc::new(epochs),
                newest: epoch,
            },
            link,
        ))
    }

    pub fn newest(&self) -> &EpochKeys {
        &self.epochs[&self.newest]
    }

    pub fn epoch(&self, epoch: u32) -> Option<&EpochKeys> {
        self.epochs.get(&epoch)
    }

    /// A tag as the server may hold it: a keyed hash under a key from the library's first
    /// epoch (every member reaches it through the chain), so a retention policy can keep
    /// tagged snapshots across rotations without the server learning the tag.
    pub fn tag_mac(&self, tag: &str) -> String {
        let first = self
            .epochs
            .values()
            .next()
            .expect("a library has at least one epoch");
        let key = blake3::derive_key("ibackup 2026-12 snapshot tag", first.key().as_bytes());
        hex::encode(&blake3::keyed_hash(&key, tag.as_bytes()).as_bytes()[..16])
    }

    /// Encrypts the library's name under the newest epoch, bound to the library.
    pub fn seal_name(&self, library_id: &str, name: &str) -> Result<(u32, Vec<u8>), CryptoError> {
        let keys = self.newest();
        let context = context(b"ibackup name", library_id, keys.epoch)?;
        Ok((keys.epoch, keys.names.seal_bound(&context, name.as_bytes())))
    }

    pub fn open_name(
        &self,
        library_id: &str,
        epoch: u32,
        sealed: &[u8],
    ) -> Result<String, CryptoError> {
        let keys = self.epoch(epoch).ok_or(CryptoError::Key(
            "the name is sealed under an unknown epoch",
        ))?;
        let context = context(b"ibackup name", library_id, epoch)?;
        let plain = keys.names.open_bound(&context, sealed)?;
        String::from_utf8(plain.to_vec()).map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "00112233445566778899aabbccddeeff";
    const OTHER: &str = "ffeeddccbbaa99887766554433221100";

    /// The web page derives the same table (web/test/chunker.test.mjs checks these values).
    #[test]
    fn the_chunker_gear_is_the_one_the_page_derives() {
        let gear = chunker_gear(&[7u8; 32]);
        assert_eq!(
            [gear[0], gear[1], gear[255]],
            [
                0x8afd_2591_2e46_5673,
                0xfc2c_b8f3_050f_6936,
                0xb598_8dfc_1113_b779
            ]
        );
        assert_ne!(chunker_gear(&[8u8; 32])[0], gear[0]);
    }

    #[test]
    fn grants_bind_granter_library_epoch_and_recipient() {
        let owner = AccountKeyPair::generate();
        let bob = AccountKeyPair::generate();
        let server = AccountKeyPair::generate();
        let key = SymmetricKey::generate();
        let g = grant(&owner, &bob.public_bytes(), LIB, 3, &key).unwrap();
        let opened = open_grant(&bob, &owner.public_bytes(), LIB, 3, &g).unwrap();
        assert_eq!(opened.as_bytes(), key.as_bytes());
        assert!(open_grant(&bob, &owner.public_bytes(), OTHER, 3, &g).is_err());
        assert!(open_grant(&bob, &owner.public_bytes(), LIB, 2, &g).is_err());
        assert!(open_grant(&bob, &server.public_bytes(), LIB, 3, &g).is_err());
        // A key the server made itself, boxed from its own key pair: refused.
        let forged = grant(&server, &bob.public_bytes(), LIB, 3, &key).unwrap();
        assert!(open_grant(&bob, &owner.public_bytes(), LIB, 3, &forged).is_err());
        // A grant for someone else, passed on: it does not open for bob.
        let carol = AccountKeyPair::generate();
        let for_carol = grant(&owner, &carol.public_bytes(), LIB, 3, &key).unwrap();
        assert!(open_grant(&bob, &owner.public_bytes(), LIB, 3, &for_carol).is_err());
    }

    #[test]
    fn the_chain_reaches_every_older_epoch_and_names_follow() {
        let first = LibraryKeys::generate();
        let (name_epoch, name) = first.seal_name(LIB, "Project X").unwrap();
        let (second, link2) = first.rotate(LIB).unwrap();
        let (third, link3) = second.rotate(LIB).unwrap();
        assert_eq!(third.newest().epoch, 3);
        let chain: BTreeMap<u32, Vec<u8>> = [(2, link2), (3, link3)].into();
        let member = LibraryKeys::unchain(LIB, 3, third.newest().key().clone(), &chain).unwrap();
        assert_eq!(
            member.epoch(1).unwrap().key().as_bytes(),
            first.newest().key().as_bytes()
        );
        assert_eq!(
            member.open_name(LIB, name_epoch, &name).unwrap(),
            "Project X"
        );
        // The old key does not reach the new ones, and a link moved to another library fails.
        assert!(first.epoch(2).is_none());
        assert!(LibraryKeys::unchain(OTHER, 3, third.newest().key().clone(), &chain).is_err());
        let broken: BTreeMap<u32, Vec<u8>> = [(3, chain[&3].clone())].into();
        assert!(LibraryKeys::unchain(LIB, 3, third.newest().key().clone(), &broken).is_err());
        assert!(member.open_name(OTHER, name_epoch, &name).is_err());
    }
}
