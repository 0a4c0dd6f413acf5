//! A logged-in session: the authenticated connection, the account key pair, and the
//! libraries it can open.
//!
//! A library opens only through a grant that verifies against a key this computer trusts:
//! the account's own for its own libraries, the owner's pinned key (trust on first use, as
//! ssh does for hosts) for shared ones. A server that hands out a key of its own making, an
//! owner key that changed, or an older key epoch than one seen before is refused loudly, and
//! nothing is written under such a key.

use std::collections::BTreeMap;

use super::config::{KnownContacts, KnownServers, Paths, SessionFile};
use super::remote::{parse_server_url, Remote};
use super::{ClientError, Result};
use crate::api::routes;
use crate::api::types::{CreateLibraryRequest, KeyShare, LibraryInfo, LibraryList, Permission};
use crate::crypto::epoch::{self, LibraryKeys};
use crate::crypto::keys::{fingerprint, normalize_fingerprint};
use crate::crypto::{AccountKeyPair, SymmetricKey};

pub struct Session {
    pub remote: Remote,
    pub keys: AccountKeyPair,
    pub email: String,
    pub server: String,
    paths: Paths,
}

/// A library with its keys unsealed and its name opened.
pub struct OpenLibrary {
    pub info: LibraryInfo,
    pub name: String,
    pub keys: LibraryKeys,
}

impl OpenLibrary {
    pub fn is_owner(&self) -> bool {
        self.info.permission == Permission::Owner
    }

    /// How the library is named to its user: `NAME` for their own, `NAME@OWNER` for shared.
    pub fn display(&self) -> String {
        if self.is_owner() {
            self.name.clone()
        } else {
            format!("{}@{}", self.name, self.info.owner_email)
        }
    }
}

/// A library the server lists, opened or refused.
pub enum Listed {
    Open(OpenLibrary),
    /// Refused: the reason says what is wrong and what to do.
    Refused {
        info: LibraryInfo,
        reason: String,
    },
}

/// Rewrites a session file from before key shares, whose account key is in the clear, with
/// the key sealed under the session's share. Best effort: an older server without shares,
/// or no connection, leaves the file as it is until the next time.
fn seal_legacy_file(paths: &Paths, file: &SessionFile, remote: &Remote, secret: &[u8]) {
    if let Err(e) = reseal_session_file(paths, file, remote, secret) {
        tracing::warn!("the session file keeps its key in the clear: {e}");
    }
}

/// The account key `secret` wrapped under a session's key share, as `session.json` holds it.
pub fn seal_private_key(share: &[u8], secret: &[u8]) -> Result<String> {
    Ok(crate::api::b64::encode(
        &SymmetricKey::from_slice(share)?.wrap(secret),
    ))
}

/// Writes `file` again with `secret` as its account key, sealed under the session's key
/// share (fetched with its token).
pub fn reseal_session_file(
    paths: &Paths,
    file: &SessionFile,
    remote: &Remote,
    secret: &[u8],
) -> Result<()> {
    let share: KeyShare = remote.get(routes::SESSION_KEY_SHARE)?;
    SessionFile {
        server: file.server.clone(),
        email: file.email.clone(),
        session_id: file.session_id.clone(),
        token: file.token.clone(),
        private_key_sealed: seal_private_key(&share.key_share, secret)?,
        private_key: String::new(),
    }
    .save(paths)
}

/// A new random library id (128 bits as 32 hex digits), chosen by the client because the
/// grant and the sealed name are bound to it.
pub fn new_library_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A new library's request: its id, sealed name and the owner's grant to itself.
pub fn new_library(
    owner: &AccountKeyPair,
    name: &str,
) -> Result<(CreateLibraryRequest, LibraryKeys)> {
    let name = crate::api::check_library_name(name).map_err(ClientError::Usage)?;
    let id = new_library_id();
    let keys = LibraryKeys::generate();
    let (_, name_sealed) = keys.seal_name(&id, &name)?;
    let grant = epoch::grant(owner, &owner.public_bytes(), &id, 1, keys.newest().key())?;
    Ok((
        CreateLibraryRequest {
            id,
            name_sealed,
            grant,
        },
        keys,
    ))
}

impl Session {
    pub fn load(paths: &Paths) -> Result<Self> {
        let file = SessionFile::load(paths)?;
        let url = parse_server_url(&file.server).map_err(ClientError::State)?;
        let pin = KnownServers::load(paths)?
            .servers
            .get(&file.server)
            .cloned();
        if url.scheme() == "https" && pin.is_none() {
            return Err(ClientError::State(format!(
                "no pinned certificate for {}; log in again with `ibackup login`",
                file.server
            )));
        }
        let known_file = KnownServers::file(paths).display().to_string();
        let remote = Remote::new(&url, pin, known_file)
            .map_err(ClientError::State)?
            .with_token(&file.token)
            .with_seen(super::seen::SeenHeads::new(paths, &file.server));
        let damaged = || ClientError::State("the session file is damaged; log in again".into());
        let secret = if file.private_key_sealed.is_empty() {
            let secret = zeroize::Zeroizing::new(
                crate::api::b64::decode(&file.private_key).ok_or_else(damaged)?,
            );
            seal_legacy_file(paths, &file, &remote, &secret);
            secret
        } else {
            // The key share lives on the server only while the session does.
            let share: KeyShare = remote.get(routes::SESSION_KEY_SHARE)?;
            let sealed = crate::api::b64::decode(&file.private_key_sealed).ok_or_else(damaged)?;
            SymmetricKey::from_slice(&share.key_share)?
                .unwrap_secret(&sealed)
                .map_err(|_| damaged())?
        };
        let keys = AccountKeyPair::from_secret_bytes(&secret)?;
        Ok(Self {
            remote,
            keys,
            email: file.email.clone(),
            server: file.server.clone(),
            paths: paths.clone(),
        })
    }

    /// This account's key fingerprint, to read to someone who shares with it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.keys.public_bytes())
    }

    /// Every library the server lists, each opened through its grant or refused.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let infos = self.remote.get::<LibraryList>(routes::LIBRARIES)?.libraries;
        let mut known = KnownContacts::load(&self.paths)?;
        let before = serde_json::to_string(&known).unwrap_or_default();
        let listed = infos
            .into_iter()
            .map(|info| match self.open(&info, &mut known) {
                Ok((name, keys)) => Listed::Open(OpenLibrary { info, name, keys }),
                Err(reason) => Listed::Refused { info, reason },
            })
            .collect();
        if serde_json::to_string(&known).unwrap_or_default() != before {
            known.save(&self.paths)?;
        }
        Ok(listed)
    }

    /// The libraries that opened; refusals are printed as warnings (they are never used).
    pub fn libraries(&self) -> Result<Vec<OpenLibrary>> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|listed| match listed {
                Listed::Open(library) => Some(library),
                Listed::Refused { reason, .. } => {
                    eprintln!("ibackup: warning: {reason}");
                    None
                }
            })
            .collect())
    }

    /// Opens one library's grant, chain and name, or says why it is refused.
    fn open(
        &self,
        info: &LibraryInfo,
        known: &mut KnownContacts,
    ) -> std::result::Result<(String, LibraryKeys), String> {
        // What the server says becomes paths and folder names here: check it first.
        if !crate::api::is_random_id(&info.id) {
            return Err(
                "the server sent a library id that is not 32 hex digits; it is left \
                 out (report this to whoever runs the server)"
                    .into(),
            );
        }
        let short = &info.id[..8];
        if crate::api::check_email(&info.owner_email).as_deref() != Ok(info.owner_email.as_str()) {
            return Err(format!(
                "the server sent {:?} as the owner's address of library {short}, which is not \
                 an e-mail address; the library is left out",
                info.owner_email
            ));
        }
        let trusted = known.servers.entry(self.server.clone()).or_default();
        let granter = if info.owner_email == self.email {
            self.keys.public_bytes().to_vec()
        } else {
            let presented = fingerprint(&info.owner_public_key);
            match trusted.contacts.get(&info.owner_email) {
                Some(pinned)
                    if normalize_fingerprint(pinned) != normalize_fingerprint(&presented) =>
                {
                    return Err(key_changed(&info.owner_email, pinned, &presented, short));
                }
                _ => {}
            }
            // The owner this computer pinned for the library, whatever address the server
            // gives for them now (it may name a new one to make its own key a first use).
            if let Some(owner) = trusted.library_owners.get(&info.id) {
                if normalize_fingerprint(owner) != normalize_fingerprint(&presented) {
                    return Err(format!(
                        "REFUSED library {short}: THE SERVER PRESENTS ANOTHER OWNER KEY for it \
                         ({presented}, as {}) than this computer pinned ({owner}). Someone may \
                         be impersonating its owner; nothing is read or written. If its owner \
                         really changed keys, run `ibackup contact verify {} FINGERPRINT`.",
                        info.owner_email, info.owner_email
                    ));
                }
            }
            trusted
                .contacts
                .entry(info.owner_email.clone())
                .or_insert_with(|| presented.clone());
            info.owner_public_key.clone()
        };
        let open = |granter: &[u8]| {
            epoch::open_grant(&self.keys, granter, &info.id, info.grant_epoch, &info.grant)
        };
        // After `account rotate-keys` a member holds a grant from its own new key (only its
        // private key can make one, so the server cannot forge it).
        let key = open(&granter)
            .or_else(|e| match info.owner_email == self.email {
                true => Err(e),
                false => open(&self.keys.public_bytes()),
            })
            .map_err(|_| {
                format!(
                    "REFUSED library {short}: its key was not granted by {} (the grant does not \
                     verify against {} key). The server may be forging keys; nothing is read \
                     or written with it. Tell the server's operator.",
                    info.owner_email,
                    if info.owner_email == self.email {
                        "your own".to_owned()
                    } else {
                        format!("{}'s pinned", info.owner_email)
                    }
                )
            })?;
        let seen = trusted.epochs.get(&info.id).copied().unwrap_or(0);
        if info.grant_epoch < seen {
            return Err(format!(
                "REFUSED library {short}: the server offers key epoch {} but this computer has \
                 seen epoch {seen}; an older key may be readable by a removed member, so it is \
                 not used. Tell the server's operator.",
                info.grant_epoch
            ));
        }
        let chain: BTreeMap<u32, Vec<u8>> = info
            .chain
            .iter()
            .map(|link| (link.epoch, link.link.clone()))
            .collect();
        let keys = LibraryKeys::unchain(&info.id, info.grant_epoch, key, &chain).map_err(|e| {
            format!("REFUSED library {short}: its chain of older keys does not open ({e})")
        })?;
        let name = keys
            .open_name(&info.id, info.name_epoch, &info.name_sealed)
            .map_err(|_| format!("REFUSED library {short}: its name does not open with its key"))?;
        let name = crate::api::check_library_name(&name)
            .map_err(|e| format!("REFUSED library {short}: {e}"))?;
        trusted.epochs.insert(info.id.clone(), info.grant_epoch);
        if info.owner_email != self.email {
            trusted
                .library_owners
                .entry(info.id.clone())
                .or_insert_with(|| fingerprint(&info.owner_public_key));
        }
        Ok((name, keys))
    }

    /// Opens the library named `name` (`NAME` of one's own, or `NAME@OWNER`).
    pub fn open_library(&self, name: &str) -> Result<OpenLibrary> {
        let listed = self.list()?;
        let mut refused = Vec::new();
        let mut names = Vec::new();
        let mut found = None;
        for item in listed {
            match item {
                Listed::Open(library) => {
                    names.push(library.display());
                    let own_match = library.is_owner() && library.name == name;
                    if found.is_none() && (own_match || library.display() == name) {
                        found = Some(library);
                    }
                }
                Listed::Refused { reason, .. } => refused.push(reason),
            }
        }
        if let Some(library) = found {
            return Ok(library);
        }
        let mut message = format!(
            "no library named `{name}`; yours: {}; `ibackup library create NAME` makes one",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
        for reason in refused {
            message.push('\n');
            message.push_str(&reason);
        }
        Err(ClientError::Usage(message))
    }

    /// Opens a library the caller owns, for sharing, renaming or deleting it.
    pub fn open_owned(&self, name: &str) -> Result<OpenLibrary> {
        let library = self.open_library(name)?;
        if !library.is_owner() {
            return Err(ClientError::Usage(format!(
                "`{name}` belongs to {}; only its owner can do this",
                library.info.owner_email
            )));
        }
        Ok(library)
    }

    pub fn create_library(&self, name: &str) -> Result<OpenLibrary> {
        let (request, keys) = new_library(&self.keys, name)?;
        let name = crate::api::check_library_name(name).map_err(ClientError::Usage)?;
        if self
            .libraries()?
            .iter()
            .any(|l| l.is_owner() && l.name == name)
        {
            return Err(ClientError::Usage(format!(
                "you already have a library named `{name}`"
            )));
        }
        let info: LibraryInfo = self.remote.post(routes::LIBRARIES, &request, false)?;
        Ok(OpenLibrary { info, name, keys })
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }
}

fn key_changed(email: &str, pinned: &str, presented: &str, short: &str) -> String {
    format!(
        "REFUSED library {short}: THE ACCOUNT KEY OF {email} HAS CHANGED. This computer pinned \
         {pinned}, the server now presents {presented}. Someone may be impersonating {email}. \
         Compare fingerprints with {email} in person or by phone; if they really changed keys, \
         run `ibackup contact verify {email} FINGERPRINT`."
    )
}
