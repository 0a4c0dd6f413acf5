//! `ibackup account rotate-keys`: a new account key pair, for when a session file may have
//! been copied while its session lived (the copy's private key would open every grant made
//! to the old key). Every library key the account holds is granted anew from the new key,
//! to itself and to the members of the libraries it owns (those the owner's roster
//! names), with the private key wrapped under the password and a new recovery
//! key; the server swaps it all in one step and ends the account's other sessions. Then
//! each library the account owns starts a new key epoch, so library keys taken with the old
//! account key do not open what is written next. (Libraries shared with the account keep
//! their epoch until their owners rotate.)

use serde::Serialize;

use super::login::{derive_existing, new_login};
use super::password::{read_password, Purpose};
use crate::api::account::{KeyGrant, RotateKeysRequest, SessionsEnded};
use crate::api::routes;
use crate::api::types::Permission;
use crate::config::{KnownContacts, Paths, SessionFile};
use crate::crypto::epoch;
use crate::crypto::keys::fingerprint;
use crate::crypto::{AccountKeyPair, SymmetricKey};
use crate::roster;
use crate::session::{reseal_session_file, Listed, Session};
use crate::sharing::{member_list, refused_warning, rotate_with};
use crate::{ClientError, Result};

#[derive(Debug, Serialize)]
pub struct RotatedKeys {
    /// The new key's fingerprint, to read to the people you share with.
    pub fingerprint: String,
    /// The new recovery key (the old one no longer works).
    pub recovery_key: String,
    pub sessions_ended: u64,
    /// Accounts that see your key change, and must verify the new fingerprint.
    pub members_to_tell: Vec<String>,
    /// Libraries of yours that started a new key epoch.
    pub libraries_rotated: u32,
}

pub fn rotate_keys(paths: &Paths, session: &Session) -> Result<RotatedKeys> {
    let password = read_password(false, Purpose::Existing)?;
    let (_, current_auth) = derive_existing(&session.remote, &session.email, &password)?;
    let new = AccountKeyPair::generate();
    let recovery = SymmetricKey::generate();
    let mut grants = Vec::new();
    let mut members_to_tell = Vec::new();
    let mut rosters = Vec::new();
    let known = KnownContacts::load(paths)?;
    for listed in session.list()? {
        let library = match listed {
            Listed::Open(library) => library,
            Listed::Refused { info, reason } => {
                return Err(ClientError::State(format!(
                    "library {} does not open here ({reason}); its key cannot be granted \
                     anew, so nothing was changed",
                    &info.id[..info.id.len().min(8)]
                )))
            }
        };
        let newest = library.keys.newest();
        let mut grant_to = |email: &str, public_key: &[u8]| -> Result<()> {
            grants.push(KeyGrant {
                library: library.info.id.clone(),
                email: email.to_owned(),
                epoch: newest.epoch,
                grant: epoch::grant(
                    &new,
                    public_key,
                    &library.info.id,
                    newest.epoch,
                    newest.key(),
                )?,
            });
            Ok(())
        };
        grant_to(&session.email, &new.public_bytes())?;
        if library.info.permission == Permission::Owner {
            // Only members the owner's roster names are granted (issue 26); the roster is
            // read now, under the old key, and sealed anew under the new one below.
            let listed = member_list(session, &library)?;
            let roster = roster::of(session, &library, &listed)?;
            let strangers = roster::strangers(session, &roster, &listed.members);
            if !strangers.is_empty() {
                return Err(ClientError::State(format!(
                    "{} Nothing was changed; run `ibackup share remove {} EMAIL` for each, \
                     then `ibackup account rotate-keys` again.",
                    refused_warning(&library.name, &strangers).replace(" and were removed", ""),
                    library.name
                )));
            }
            for member in roster::others(session, &listed.members) {
                let added = roster.get(&member.email).expect("not a stranger");
                grant_to(
                    &member.email,
                    roster::key_for(session, &known, &library.name, member, added)?,
                )?;
                if !members_to_tell.contains(&member.email) {
                    members_to_tell.push(member.email.clone());
                }
            }
            rosters.push((library.info.id.clone(), roster));
        }
    }
    let request = RotateKeysRequest {
        current_auth_secret: current_auth.to_vec(),
        public_key: new.public_bytes().to_vec(),
        login: new_login(&password, &new)?,
        recovery_wrapped_private_key: recovery.wrap(new.secret_bytes().as_ref()),
        recovery_proof: recovery.recovery_proof().to_vec(),
        grants,
    };
    let ended: SessionsEnded = session.remote.post(routes::ACCOUNT_KEYS, &request, false)?;
    // This computer keeps its session, now holding the new key.
    let file = SessionFile::load(paths)?;
    reseal_session_file(paths, &file, &session.remote, new.secret_bytes().as_ref())?;
    // The libraries this account owns start a new key epoch, granted from the new key: what
    // is written from now on is out of reach of library keys taken with the old one.
    let session = Session::load(paths)?;
    let mut libraries_rotated = 0;
    for listed in session.list()? {
        if let Listed::Open(library) = listed {
            let roster = rosters.iter().find(|(id, _)| *id == library.info.id);
            if let (true, Some((_, roster))) = (library.is_owner(), roster) {
                let members = member_list(&session, &library)?.members;
                rotate_with(&session, &library, None, &members, roster)?;
                libraries_rotated += 1;
            }
        }
    }
    members_to_tell.sort();
    Ok(RotatedKeys {
        fingerprint: fingerprint(&new.public_bytes()),
        recovery_key: recovery.to_display_groups(),
        sessions_ended: ended.sessions_ended,
        members_to_tell,
        libraries_rotated,
    })
}
