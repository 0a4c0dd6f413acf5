//! The owner's roster of a library: whom the owner's own clients shared it with, and with
//! which key. The server lists a library's members, but a compromised server can list
//! anyone; the owner's client grants a new key epoch only to members its roster names, and
//! reports the others (issue 26).
//!
//! The roster is boxed from the owner's key to itself (as link labels are), so only the
//! owner's clients can make or read one; it names the library and the key epoch it was made
//! in and carries a sequence number. The server keeps it beside the library and hands it to
//! the owner with the member list. This computer remembers the newest sequence number it saw
//! of each library, so a server that hands back an older roster, or none after there was
//! one, is refused. An older roster from before a member was removed is refused on any
//! computer: a removal starts a new epoch, and the roster must name the newest. See
//! docs/FORMAT.md, "Rosters".

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::config::KnownContacts;
use super::session::{OpenLibrary, Session};
use super::{ClientError, Result};
use crate::api::types::{MemberInfo, MemberList, Permission};
use crate::crypto::keys::{fingerprint, normalize_fingerprint};

/// What a roster's plaintext says it is, so no other box of the owner's (a link label) is
/// taken for one.
const KIND: &str = "ibackup roster v1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Roster {
    kind: String,
    pub library: String,
    /// The key epoch the roster was made in: the library's newest when it is read.
    pub epoch: u32,
    /// One more with every change.
    pub seq: u64,
    pub members: Vec<RosterMember>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RosterMember {
    pub email: String,
    /// The account key the owner granted to.
    #[serde(with = "crate::api::b64")]
    pub key: Vec<u8>,
    pub permission: Permission,
}

impl Roster {
    fn empty(library: &OpenLibrary) -> Self {
        Self {
            kind: KIND.into(),
            library: library.info.id.clone(),
            epoch: library.keys.newest().epoch,
            seq: 0,
            members: Vec::new(),
        }
    }

    pub fn get(&self, email: &str) -> Option<&RosterMember> {
        self.members.iter().find(|m| m.email == email)
    }

    /// The roster after a change: one more in sequence, made in `epoch`, naming `members`.
    pub fn next(&self, epoch: u32, members: Vec<RosterMember>) -> Self {
        Self {
            kind: KIND.into(),
            library: self.library.clone(),
            epoch,
            seq: self.seq + 1,
            members,
        }
    }

    /// Boxed from the owner's key to itself, for the server to keep.
    pub fn seal(&self, session: &Session) -> Result<Vec<u8>> {
        let plain = Zeroizing::new(serde_json::to_vec(self).expect("serialises"));
        Ok(session.keys.box_to(&session.keys.public_bytes(), &plain)?)
    }

    /// Notes on this computer that the roster of this sequence number was seen or made.
    pub fn remember(&self, session: &Session) -> Result<()> {
        let mut known = KnownContacts::load(session.paths())?;
        let seen = known
            .servers
            .entry(session.server.clone())
            .or_default()
            .rosters
            .entry(self.library.clone())
            .or_default();
        *seen = (*seen).max(self.seq);
        known.save(session.paths())
    }
}

fn refused(library: &OpenLibrary, why: &str) -> ClientError {
    ClientError::State(format!(
        "REFUSED: the server's record of whom you shared `{}` with {why}. Nobody was given a \
         key. The server may be tampering with your library's members; tell its operator.",
        library.name
    ))
}

/// The roster the owner's clients keep of `library`, checked: sealed by this account, for
/// this library, made in its newest epoch, and no older than this computer has seen.
/// A library shared before rosters existed has none; its roster is then the members listed
/// whose keys this computer pinned (it added them, or the user verified them), and the
/// first change writes it.
pub fn of(session: &Session, library: &OpenLibrary, listed: &MemberList) -> Result<Roster> {
    let known = KnownContacts::load(session.paths())?;
    let server = known.servers.get(&session.server);
    let seen = server
        .and_then(|s| s.rosters.get(&library.info.id))
        .copied();
    let Some(sealed) = &listed.roster else {
        if seen.is_some() {
            return Err(refused(library, "is gone, though this computer saw one"));
        }
        let mut roster = Roster::empty(library);
        let pinned = server.map(|s| &s.contacts);
        for member in others(session, &listed.members) {
            let presented = fingerprint(&member.public_key);
            let pinned_here = pinned
                .and_then(|p| p.get(&member.email))
                .is_some_and(|fp| normalize_fingerprint(fp) == normalize_fingerprint(&presented));
            if pinned_here {
                roster.members.push(RosterMember {
                    email: member.email.clone(),
                    key: member.public_key.clone(),
                    permission: member.permission,
                });
            }
        }
        return Ok(roster);
    };
    let plain = session
        .keys
        .open_from(&session.keys.public_bytes(), sealed)
        .map_err(|_| refused(library, "was not made by your key"))?;
    let roster: Roster = serde_json::from_slice(&plain)
        .ok()
        .filter(|r: &Roster| r.kind == KIND)
        .ok_or_else(|| refused(library, "is not a roster"))?;
    if roster.library != library.info.id {
        return Err(refused(library, "was made for another library"));
    }
    let newest = library.keys.newest().epoch;
    if roster.epoch != newest {
        return Err(refused(
            library,
            &format!(
                "was made in key epoch {}, not the library's newest ({newest}): it may name \
                 someone you removed since",
                roster.epoch
            ),
        ));
    }
    if let Some(seen) = seen.filter(|seen| roster.seq < *seen) {
        return Err(refused(
            library,
            &format!(
                "is older (change {}) than the one this computer saw (change {seen})",
                roster.seq
            ),
        ));
    }
    Ok(roster)
}

/// The members listed other than the owner.
pub fn others<'a>(
    session: &'a Session,
    members: &'a [MemberInfo],
) -> impl Iterator<Item = &'a MemberInfo> {
    members
        .iter()
        .filter(move |m| m.permission != Permission::Owner && m.email != session.email)
}

/// The members the server lists whom the roster does not name: nobody the owner's clients
/// added, so they are never granted a key.
pub fn strangers(session: &Session, roster: &Roster, members: &[MemberInfo]) -> Vec<String> {
    others(session, members)
        .filter(|m| roster.get(&m.email).is_none())
        .map(|m| m.email.clone())
        .collect()
}

/// The key to grant `member` (as the server lists them) to: the one the roster holds, or,
/// when they changed keys (`account rotate-keys`), the new one once the user checked its
/// fingerprint with them (`contact verify`, found in `known`). Never pinned here.
pub fn key_for<'a>(
    session: &Session,
    known: &KnownContacts,
    library: &str,
    member: &'a MemberInfo,
    added: &'a RosterMember,
) -> Result<&'a [u8]> {
    if member.public_key == added.key {
        return Ok(&added.key);
    }
    let presented = fingerprint(&member.public_key);
    let verified = known
        .servers
        .get(&session.server)
        .and_then(|s| s.contacts.get(&member.email))
        .is_some_and(|fp| normalize_fingerprint(fp) == normalize_fingerprint(&presented));
    if !verified {
        return Err(ClientError::State(format!(
            "THE ACCOUNT KEY OF {email} HAS CHANGED: you shared `{library}` with key {}, the \
             server now presents {presented}. Nothing was changed. Compare fingerprints with \
             {email}; if they really changed keys, run `ibackup contact verify {email} \
             FINGERPRINT`.",
            fingerprint(&added.key),
            email = member.email,
        )));
    }
    Ok(&member.public_key)
}
