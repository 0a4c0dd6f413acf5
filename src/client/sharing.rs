//! Sharing libraries from the owner's side and the member's: granting a member the newest
//! epoch key, removing one with a key rotation in the same step, leaving, renaming and
//! deleting; and the contacts whose keys this computer pins.
//!
//! Every grant is boxed from the owner's key to a member key this computer trusts (its own,
//! or a contact's pinned fingerprint), so the server never holds a key it could open, and
//! cannot slip in a member key of its own making without the owner's client refusing.

use serde::Serialize;

use super::config::KnownContacts;
use super::roster::{self, Roster, RosterMember};
use super::session::{OpenLibrary, Session};
use super::{ClientError, Result};
use crate::api::routes;
use crate::api::types::{
    AddMemberRequest, ContactKey, ContactRequest, LibraryInfo, MemberGrant, MemberInfo, MemberList,
    Permission, RenameLibraryRequest, RotateRequest,
};
use crate::crypto::epoch;
use crate::crypto::keys::{fingerprint, normalize_fingerprint};

#[derive(Debug, Serialize)]
pub struct Shared {
    pub library: String,
    pub email: String,
    pub permission: Permission,
    pub fingerprint: String,
    /// Whether the fingerprint was pinned just now (first share with this contact).
    pub newly_pinned: bool,
}

#[derive(Debug, Serialize)]
pub struct ShareListing {
    pub library: String,
    pub owner: String,
    pub permission: Permission,
    pub members: Vec<MemberView>,
}

#[derive(Debug, Serialize)]
pub struct MemberView {
    pub email: String,
    pub permission: Permission,
    /// For a library you own: false when the server lists this member but your clients
    /// never shared it with them (they are given no key, and removed at the next new key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_by_you: Option<bool>,
}

/// What the server says of an account's key, checked against what this computer pinned.
/// Unpinned keys are pinned now (trust on first use); a changed one is refused loudly.
pub(crate) fn trusted_key(
    session: &Session,
    known: &mut KnownContacts,
    email: &str,
    public_key: &[u8],
    expected: Option<&str>,
) -> Result<(String, bool)> {
    if email == session.email {
        if public_key != session.keys.public_bytes() {
            return Err(ClientError::State(
                "the server presents a different key for your own account; refusing".into(),
            ));
        }
        return Ok((session.fingerprint(), false));
    }
    let presented = fingerprint(public_key);
    if let Some(expected) = expected {
        if normalize_fingerprint(expected) != normalize_fingerprint(&presented) {
            return Err(ClientError::State(format!(
                "the key the server has for {email} has fingerprint {presented}, not the \
                 {expected} you were given: it was not shared. Check the fingerprint with \
                 {email} again."
            )));
        }
    }
    let contacts = &mut known
        .servers
        .entry(session.server.clone())
        .or_default()
        .contacts;
    match contacts.get(email) {
        Some(pinned) if normalize_fingerprint(pinned) != normalize_fingerprint(&presented) => {
            Err(ClientError::State(format!(
                "THE ACCOUNT KEY OF {email} HAS CHANGED: this computer pinned {pinned}, the \
                 server now presents {presented}. Nothing was shared. Compare fingerprints \
                 with {email}; if they really changed keys, run `ibackup contact verify \
                 {email} FINGERPRINT`."
            )))
        }
        Some(_) => Ok((presented, false)),
        None => {
            contacts.insert(email.to_owned(), presented.clone());
            Ok((presented, true))
        }
    }
}

/// The account key the server has for `email`.
fn lookup(session: &Session, email: &str) -> Result<ContactKey> {
    let request = ContactRequest {
        email: email.to_owned(),
    };
    Ok(session
        .remote
        .post(routes::CONTACT_LOOKUP, &request, false)?)
}

/// The members the server lists, with the owner's sealed roster when the caller owns it.
pub(crate) fn member_list(session: &Session, library: &OpenLibrary) -> Result<MemberList> {
    let path = routes::library(routes::LIBRARY_MEMBERS, &library.info.id);
    Ok(session.remote.get::<MemberList>(&path)?)
}

/// Grants `email` access to the library `name` the caller owns. A key this computer sees
/// for the first time, with no `expected_fingerprint`, is shown to `confirm` (e-mail,
/// fingerprint) before anything is granted; an error from it stops the share.
pub fn add(
    session: &Session,
    name: &str,
    email: &str,
    permission: Permission,
    expected_fingerprint: Option<&str>,
    confirm: &dyn Fn(&str, &str) -> Result<()>,
) -> Result<Shared> {
    let (library, _) = rotate_if_asked(session, session.open_owned(name)?)?;
    let email = email.trim().to_lowercase();
    if email == session.email {
        return Err(ClientError::Usage(format!(
            "you own `{name}`; share it with someone else"
        )));
    }
    let listed = member_list(session, &library)?;
    let roster = roster::of(session, &library, &listed)?;
    let contact = lookup(session, &email)?;
    let mut known = KnownContacts::load(session.paths())?;
    let (fingerprint, newly_pinned) = trusted_key(
        session,
        &mut known,
        &email,
        &contact.public_key,
        expected_fingerprint,
    )?;
    if newly_pinned && expected_fingerprint.is_none() {
        confirm(&email, &fingerprint)?;
    }
    let newest = library.keys.newest();
    let grant = epoch::grant(
        &session.keys,
        &contact.public_key,
        &library.info.id,
        newest.epoch,
        newest.key(),
    )?;
    let mut members = roster.members.clone();
    members.retain(|m| m.email != email);
    members.push(RosterMember {
        email: email.clone(),
        key: contact.public_key.clone(),
        permission,
    });
    let roster = roster.next(newest.epoch, members);
    let request = AddMemberRequest {
        email: email.clone(),
        permission,
        epoch: newest.epoch,
        grant,
        roster: roster.seal(session)?,
    };
    let path = routes::library(routes::LIBRARY_MEMBERS, &library.info.id);
    session
        .remote
        .post::<_, MemberList>(&path, &request, false)?;
    known.save(session.paths())?;
    roster.remember(session)?;
    Ok(Shared {
        library: library.name,
        email,
        permission,
        fingerprint,
        newly_pinned,
    })
}

/// A new key epoch: the library as the server then has it, and the members listed whom the
/// owner's clients never added (removed in the same step, granted nothing).
pub struct Rotated {
    pub info: LibraryInfo,
    pub refused: Vec<String>,
}

/// Starts a new key epoch, removing `remove` in the same request: every remaining member
/// the owner's roster names gets a grant of the new key, boxed to the key the roster holds
/// for them (or the one the user verified since with `contact verify`). A member the server
/// lists but the roster does not name is refused: removed in the same step, never granted.
pub(crate) fn rotate(
    session: &Session,
    library: &OpenLibrary,
    remove: Option<&str>,
) -> Result<Rotated> {
    let listed = member_list(session, library)?;
    let roster = roster::of(session, library, &listed)?;
    rotate_with(session, library, remove, &listed.members, &roster)
}

/// [`rotate`] with the members listed and the roster already read (`account rotate-keys`
/// reads the roster under the account's old key).
pub(crate) fn rotate_with(
    session: &Session,
    library: &OpenLibrary,
    remove: Option<&str>,
    listed: &[MemberInfo],
    roster: &Roster,
) -> Result<Rotated> {
    if let Some(email) = remove {
        if !roster::others(session, listed).any(|m| m.email == email) {
            return Err(ClientError::Usage(format!(
                "`{}` is not shared with {email}; `ibackup share list {}` shows who has it",
                library.name, library.name
            )));
        }
    }
    let refused: Vec<String> = roster::strangers(session, roster, listed)
        .into_iter()
        .filter(|email| Some(email.as_str()) != remove)
        .collect();
    let (keys, link) = library.keys.rotate(&library.info.id)?;
    let newest = keys.newest();
    let known = KnownContacts::load(session.paths())?;
    let mut grants = Vec::new();
    let mut kept = Vec::new();
    let mut grant_to = |email: &str, key: &[u8]| -> Result<()> {
        grants.push(MemberGrant {
            email: email.to_owned(),
            grant: epoch::grant(
                &session.keys,
                key,
                &library.info.id,
                newest.epoch,
                newest.key(),
            )?,
        });
        Ok(())
    };
    grant_to(&session.email, &session.keys.public_bytes())?;
    for member in roster::others(session, listed) {
        if Some(member.email.as_str()) == remove || refused.contains(&member.email) {
            continue;
        }
        let added = roster.get(&member.email).expect("not a stranger");
        let key = roster::key_for(session, &known, &library.name, member, added)?;
        grant_to(&member.email, key)?;
        kept.push(RosterMember {
            email: member.email.clone(),
            key: key.to_vec(),
            permission: added.permission,
        });
    }
    let roster = roster.next(newest.epoch, kept);
    let (_, name_sealed) = keys.seal_name(&library.info.id, &library.name)?;
    let request = RotateRequest {
        remove: remove.map(str::to_owned),
        refuse: refused.clone(),
        roster: roster.seal(session)?,
        epoch: newest.epoch,
        link,
        name_sealed,
        grants,
    };
    let path = routes::library(routes::LIBRARY_ROTATE, &library.info.id);
    let info = session.remote.post(&path, &request, false)?;
    roster.remember(session)?;
    Ok(Rotated { info, refused })
}

/// What the owner is told of members refused in a rotation of `library`.
pub fn refused_warning(library: &str, refused: &[String]) -> String {
    format!(
        "REFUSED member{} {} of `{library}`: the server lists them, but you never shared it \
         with them. They were given no key and were removed. The server may be adding members \
         of its own; tell its operator.",
        if refused.len() == 1 { "" } else { "s" },
        refused.join(", ")
    )
}

/// Warnings for `ibackup status`: each library the caller owns whose members the server
/// lists include someone the owner's clients never added, or whose roster is refused.
pub fn roster_warnings(session: &Session) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for library in session.libraries()?.iter().filter(|l| l.is_owner()) {
        let listed = member_list(session, library)?;
        match roster::of(session, library, &listed) {
            Ok(roster) => {
                let strangers = roster::strangers(session, &roster, &listed.members);
                if !strangers.is_empty() {
                    warnings.push(format!(
                        "the server lists {} as member{} of `{}`, but you never shared it with \
                         them: they are given no key (`ibackup share remove {} EMAIL` removes \
                         them; tell the server's operator)",
                        strangers.join(", "),
                        if strangers.len() == 1 { "" } else { "s" },
                        library.name,
                        library.name
                    ));
                }
            }
            Err(e) => warnings.push(e.to_string()),
        }
    }
    Ok(warnings)
}

/// Removes `email` from the library and rotates its key in the same step.
pub fn remove(session: &Session, name: &str, email: &str) -> Result<u32> {
    let library = session.open_owned(name)?;
    let email = email.trim().to_lowercase();
    let rotated = rotate(session, &library, Some(&email))?;
    if !rotated.refused.is_empty() {
        eprintln!("{}", refused_warning(&library.name, &rotated.refused));
    }
    Ok(rotated.info.epoch)
}

/// When a member left (their keys still open what exists), the owner's client starts a new
/// epoch before writing more; returns the library as it then is, and the members refused in
/// that step (see [`rotate`]), for the caller to report.
pub fn rotate_if_asked(
    session: &Session,
    library: OpenLibrary,
) -> Result<(OpenLibrary, Vec<String>)> {
    if !(library.info.rotate && library.is_owner()) {
        return Ok((library, Vec::new()));
    }
    let rotated = rotate(session, &library, None)?;
    Ok((session.open_library(&library.name)?, rotated.refused))
}

/// Leaves a library shared with the caller (`NAME@OWNER`).
pub fn leave(session: &Session, display: &str) -> Result<()> {
    let library = session.open_library(display)?;
    if library.is_owner() {
        return Err(ClientError::Usage(format!(
            "you own `{display}`, so you cannot leave it; `ibackup library delete {display}` \
             deletes it"
        )));
    }
    let path = routes::library(routes::LIBRARY_LEAVE, &library.info.id);
    session
        .remote
        .post::<_, serde_json::Value>(&path, &serde_json::json!({}), false)?;
    Ok(())
}

/// Who has each library (or the one named): what the caller shares and what is shared with
/// the caller.
pub fn list(session: &Session, name: Option<&str>) -> Result<Vec<ShareListing>> {
    let libraries = match name {
        Some(name) => vec![session.open_library(name)?],
        None => session.libraries()?,
    };
    libraries
        .iter()
        .map(|library| {
            let listed = member_list(session, library)?;
            let roster = match library.is_owner() {
                true => Some(roster::of(session, library, &listed)?),
                false => None,
            };
            let members = roster::others(session, &listed.members)
                .map(|m| MemberView {
                    email: m.email.clone(),
                    permission: m.permission,
                    added_by_you: roster.as_ref().map(|r| r.get(&m.email).is_some()),
                })
                .collect();
            Ok(ShareListing {
                library: library.display(),
                owner: library.info.owner_email.clone(),
                permission: library.info.permission,
                members,
            })
        })
        .collect()
}

pub fn rename(session: &Session, old: &str, new: &str) -> Result<()> {
    let library = session.open_owned(old)?;
    let new = crate::api::check_library_name(new).map_err(ClientError::Usage)?;
    if session
        .libraries()?
        .iter()
        .any(|l| l.is_owner() && l.name == new)
    {
        return Err(ClientError::Usage(format!(
            "you already have a library named `{new}`"
        )));
    }
    let (name_epoch, name_sealed) = library.keys.seal_name(&library.info.id, &new)?;
    let path = routes::library(routes::LIBRARY, &library.info.id);
    session.remote.patch::<_, LibraryInfo>(
        &path,
        &RenameLibraryRequest {
            name_sealed,
            name_epoch,
        },
    )?;
    Ok(())
}

/// Deletes a library the caller owns; `confirm` must repeat its name.
pub fn delete(session: &Session, name: &str, confirm: Option<&str>) -> Result<()> {
    let library = session.open_owned(name)?;
    let confirm = match confirm {
        Some(text) => text.to_owned(),
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            super::account::password::prompt_line(&format!(
                "This deletes `{name}` and all its snapshots for everyone it is shared with. \
                 Type its name to confirm: "
            ))?
        }
        None => {
            return Err(ClientError::Usage(format!(
                "deleting a library cannot be undone: repeat its name with `--confirm {name}`"
            )))
        }
    };
    if confirm.trim() != library.name {
        return Err(ClientError::Usage(format!(
            "`{}` is not `{name}`; nothing was deleted",
            confirm.trim()
        )));
    }
    let path = routes::library(routes::LIBRARY, &library.info.id);
    session.remote.delete(&path)?;
    Ok(())
}

/// The fingerprint pinned for `email` on this computer, if any.
pub fn contact_show(session: &Session, email: &str) -> Result<Option<String>> {
    let email = email.trim().to_lowercase();
    if email == session.email {
        return Ok(Some(session.fingerprint()));
    }
    Ok(KnownContacts::load(session.paths())?
        .servers
        .get(&session.server)
        .and_then(|s| s.contacts.get(&email).cloned()))
}

/// Pins `email`'s key after the user compared `typed` with them out of band: the key the
/// server has now must have that fingerprint.
pub fn contact_verify(session: &Session, email: &str, typed: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let contact = lookup(session, &email)?;
    let presented = fingerprint(&contact.public_key);
    if normalize_fingerprint(typed) != normalize_fingerprint(&presented) {
        return Err(ClientError::State(format!(
            "the server's key for {email} has fingerprint {presented}, not {typed}; nothing was \
             pinned. Do not trust it until the fingerprints match."
        )));
    }
    let mut known = KnownContacts::load(session.paths())?;
    let trusted = known.servers.entry(session.server.clone()).or_default();
    // Libraries of theirs pinned with the key they had follow them to the new one.
    if let Some(old) = trusted.contacts.insert(email, presented.clone()) {
        for owner in trusted.library_owners.values_mut() {
            if normalize_fingerprint(owner) == normalize_fingerprint(&old) {
                owner.clone_from(&presented);
            }
        }
    }
    known.save(session.paths())?;
    Ok(presented)
}
