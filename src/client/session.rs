//! A logged-in session: the authenticated connection, the account key pair, and the
//! libraries it can open.

use super::config::{KnownServers, Paths, SessionFile};
use super::remote::{parse_server_url, Remote};
use super::{ClientError, Result};
use crate::api::routes;
use crate::api::types::{CreateLibraryRequest, LibraryInfo, LibraryList};
use crate::crypto::{AccountKeyPair, LibraryKeys, SymmetricKey};

pub struct Session {
    pub remote: Remote,
    pub keys: AccountKeyPair,
    pub email: String,
}

/// A library with its keys unsealed.
pub struct OpenLibrary {
    pub info: LibraryInfo,
    pub keys: LibraryKeys,
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
            .with_token(&file.token);
        let secret = crate::api::b64::decode(&file.private_key).ok_or_else(|| {
            ClientError::State("the session file is damaged; log in again".into())
        })?;
        let keys = AccountKeyPair::from_secret_bytes(&secret)?;
        Ok(Self {
            remote,
            keys,
            email: file.email.clone(),
        })
    }

    pub fn libraries(&self) -> Result<Vec<LibraryInfo>> {
        Ok(self.remote.get::<LibraryList>(routes::LIBRARIES)?.libraries)
    }

    /// How a library is named to this user: `NAME` for their own, `NAME@OWNER` for shared.
    pub fn display_name(&self, info: &LibraryInfo) -> String {
        if info.owner_email == self.email {
            info.name.clone()
        } else {
            format!("{}@{}", info.name, info.owner_email)
        }
    }

    pub fn open_library(&self, name: &str) -> Result<OpenLibrary> {
        let libraries = self.libraries()?;
        let info = libraries
            .iter()
            .find(|l| l.owner_email == self.email && l.name == name)
            .or_else(|| libraries.iter().find(|l| self.display_name(l) == name))
            .cloned()
            .ok_or_else(|| {
                let names: Vec<_> = libraries.iter().map(|l| self.display_name(l)).collect();
                ClientError::Usage(format!(
                    "no library named `{name}`; yours: {}; `ibackup library create NAME` makes one",
                    names.join(", ")
                ))
            })?;
        self.unseal(info)
    }

    fn unseal(&self, info: LibraryInfo) -> Result<OpenLibrary> {
        let key = self.keys.open(&info.wrapped_key).map_err(|_| {
            ClientError::State(format!(
                "the key of library `{}` does not open with your key",
                info.name
            ))
        })?;
        let key = SymmetricKey::from_slice(&key)?;
        Ok(OpenLibrary {
            keys: LibraryKeys::derive(&key),
            info,
        })
    }

    pub fn create_library(&self, name: &str) -> Result<LibraryInfo> {
        let key = SymmetricKey::generate();
        let wrapped_key = AccountKeyPair::seal_to(&self.keys.public_bytes(), key.as_bytes())?;
        let request = CreateLibraryRequest {
            name: name.into(),
            wrapped_key,
        };
        Ok(self.remote.post(routes::LIBRARIES, &request, false)?)
    }
}
