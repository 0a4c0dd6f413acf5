//! Logging in and out, and the pieces registering and password changes share: the
//! server connection with its pinned certificate, login material from a password, and the
//! session file. The password never leaves this process: it derives the key-encryption
//! key (kept here) and the auth secret (sent), per ARCHITECTURE §3.

use std::io::{BufRead, IsTerminal, Write};

use rand::RngCore;

use super::password::{read_password, Purpose};
use crate::api::routes;
use crate::api::types::{
    AccountInfo, Health, LoginMaterial, LoginRequest, PreloginRequest, PreloginResponse,
    SessionResponse,
};
use crate::config::{KnownServers, Paths, SessionFile};
use crate::crypto::kdf::{self, KdfParams};
use crate::crypto::{AccountKeyPair, SymmetricKey};
use crate::remote::{parse_server_url, Remote};
use crate::session::{seal_private_key, Session};
use crate::{client_label, ClientError, Result};

pub const DEFAULT_LIBRARY: &str = "Backups";

/// Connects to `server`, pinning its certificate on first use: asks on a terminal, needs
/// `trust_new` otherwise, and refuses if a pinned certificate changed.
pub fn connect(paths: &Paths, server: &str, trust_new: bool) -> Result<Remote> {
    let url = parse_server_url(server).map_err(ClientError::Usage)?;
    let key = url.as_str().trim_end_matches('/').to_owned();
    let known_file = KnownServers::file(paths).display().to_string();
    if url.scheme() == "http" {
        return Remote::new(&url, None, known_file).map_err(ClientError::Usage);
    }
    let mut known = KnownServers::load(paths)?;
    if let Some(pin) = known.servers.get(&key) {
        let remote =
            Remote::new(&url, Some(pin.clone()), known_file).map_err(ClientError::Usage)?;
        remote.get::<Health>(routes::HEALTH)?;
        return Ok(remote);
    }
    let probe = Remote::new(&url, None, known_file.clone()).map_err(ClientError::Usage)?;
    probe.get::<Health>(routes::HEALTH)?;
    let fingerprint = probe
        .presented_fingerprint()
        .ok_or_else(|| ClientError::Usage("the server presented no certificate".into()))?;
    if !trust_new {
        confirm_new_server(&key, &fingerprint)?;
    }
    known.servers.insert(key, fingerprint.clone());
    known.save(paths)?;
    Remote::new(&url, Some(fingerprint), known_file).map_err(ClientError::Usage)
}

fn confirm_new_server(server: &str, fingerprint: &str) -> Result<()> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(ClientError::Usage(format!(
            "the server at {server} is not known yet; its certificate fingerprint is \
             {fingerprint}. Compare it with the one `ibackup-server serve` printed, then run \
             again with --trust-new"
        )));
    }
    eprint!(
        "The server at {server} is new to this computer.\nIts certificate fingerprint is \
         {fingerprint}\nCompare it with the one `ibackup-server serve` printed.\nTrust it? [y/N] "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(ClientError::Usage(
            "server not trusted; nothing was sent to it".into(),
        ))
    }
}

/// New login material for `keys` under `password`: a fresh salt, the default KDF cost, the
/// auth secret, and the private key wrapped under the password's key.
pub fn new_login(password: &str, keys: &AccountKeyPair) -> Result<LoginMaterial> {
    let mut salt = vec![0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let kdf = KdfParams::default();
    let (kek, auth) = kdf::derive(password.as_bytes(), &salt, &kdf)?;
    Ok(LoginMaterial {
        auth_secret: auth.to_vec(),
        wrapped_private_key: kek.wrap(keys.secret_bytes().as_ref()),
        salt,
        kdf,
    })
}

/// The key-encryption key and auth secret of `password` for `email`, with the salt and cost
/// the server holds.
pub fn derive_existing(
    remote: &Remote,
    email: &str,
    password: &str,
) -> Result<(SymmetricKey, kdf::AuthSecret)> {
    let prelogin: PreloginResponse = remote.post(
        routes::PRELOGIN,
        &PreloginRequest {
            email: email.into(),
        },
        true,
    )?;
    Ok(kdf::derive(
        password.as_bytes(),
        &prelogin.salt,
        &prelogin.kdf,
    )?)
}

pub fn login(
    paths: &Paths,
    server: &str,
    email: &str,
    trust_new: bool,
    password_stdin: bool,
) -> Result<AccountInfo> {
    let password = read_password(password_stdin, Purpose::Existing)?;
    let remote = connect(paths, server, trust_new)?;
    let (kek, auth) = derive_existing(&remote, email, &password)?;
    let request = LoginRequest {
        email: email.into(),
        auth_secret: auth.to_vec(),
        client: Some(client_label()),
    };
    let response: SessionResponse = remote.post(routes::SESSIONS, &request, false)?;
    let secret = kek
        .unwrap_secret(&response.keys.wrapped_private_key)
        .map_err(|_| {
            ClientError::State(
            "the server accepted the password, but its copy of your key does not open with it; \
             the account may have been tampered with — contact the server's operator"
                .into(),
        )
        })?;
    let pair = AccountKeyPair::from_secret_bytes(&secret)?;
    if pair.public_bytes().as_slice() != response.keys.public_key.as_slice() {
        return Err(ClientError::State(
            "the server's public key for this account does not match the private key".into(),
        ));
    }
    if let Ok(old) = Session::load(paths) {
        let _ = old.remote.delete(routes::SESSION_CURRENT);
    }
    save_session(paths, &remote, &response, &pair)?;
    Ok(response.account)
}

pub fn save_session(
    paths: &Paths,
    remote: &Remote,
    response: &SessionResponse,
    pair: &AccountKeyPair,
) -> Result<()> {
    let secret = pair.secret_bytes();
    let (private_key_sealed, private_key) = match &response.key_share {
        Some(share) => (seal_private_key(share, secret.as_ref())?, String::new()),
        None => (String::new(), crate::api::b64::encode(secret.as_ref())),
    };
    SessionFile {
        server: remote.base().to_owned(),
        email: response.account.email.clone(),
        session_id: response.session_id.clone(),
        token: response.token.clone(),
        private_key_sealed,
        private_key,
    }
    .save(paths)
}

/// Ends the session on the server (if it can be reached) and forgets it here.
/// Returns whether the server confirmed.
pub fn logout(paths: &Paths) -> Result<bool> {
    let session = Session::load(paths)?;
    let confirmed = match session.remote.delete(routes::SESSION_CURRENT) {
        Ok(()) => true,
        Err(e) if e.code() == Some(crate::api::ErrorCode::Unauthorized) => true,
        Err(_) => false,
    };
    SessionFile::delete(paths)?;
    Ok(confirmed)
}
