//! My Profile: correcting details, marketing consent (with the opt-out link that needs no
//! login), changing the password, and recovery with the recovery key.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderName, StatusCode};
use axum::Json;
use subtle::ConstantTimeEq;

use super::accounts::{account_info, check_login, recovery_proof_hash, PreparedLogin};
use super::app::AppState;
use super::db::{self, accounts, sessions};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, Caller};
use super::sessions::{invalid_credentials, verify, SessionStart};
use super::throttle::Guess;
use super::validate;
use crate::api::account::{
    ConsentRequest, PasswordChangeRequest, RecoveryChallenge, RecoveryCompleteRequest,
    RecoveryKeyRequest, RecoveryStartRequest, SessionsEnded, UpdateProfileRequest,
};
use crate::api::types::{AccountInfo, SessionResponse};
use crate::api::ErrorCode;
use crate::crypto::AccountKeyPair;

/// Changes names and the e-mail address. A new address needs the password (a stolen
/// session must not move the account to another inbox), is unconfirmed until its mailed
/// link is followed, and the old address is told.
pub async fn update(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    ApiJson(req): ApiJson<UpdateProfileRequest>,
) -> ApiResult<Json<AccountInfo>> {
    let first = req
        .first_name
        .as_deref()
        .map(|n| validate::person_name("first name", n))
        .transpose()?;
    let last = req
        .last_name
        .as_deref()
        .map(|n| validate::person_name("last name", n))
        .transpose()?;
    let email = req.email.as_deref().map(validate::email).transpose()?;
    if first.is_none() && last.is_none() && email.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give a first name, last name or e-mail",
        ));
    }
    let current = state
        .db
        .call(move |conn| accounts::by_id(conn, caller.account_id))
        .await?
        .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    let changing = email.clone().filter(|new| *new != current.email);
    if changing.is_some() {
        let secret = req.current_auth_secret.clone().ok_or_else(|| {
            ApiError::bad_request(
                "changing the e-mail address needs the password; `ibackup account update \
                 --email` asks for it",
            )
        })?;
        validate::bytes_len("current_auth_secret", &secret, 32..=32)?;
        verify(&state, &current.email, secret, peer.ip())
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidCredentials,
                    "the password is wrong; the e-mail address was not changed",
                )
            })?;
    }
    let config = state.config.clone();
    let info = state
        .db
        .call(move |conn| -> ApiResult<AccountInfo> {
            let tx = conn.transaction()?;
            let account = accounts::by_id(&tx, caller.account_id)?
                .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
            if let Some(email) = &email {
                if let Some(other) = accounts::by_email(&tx, email)? {
                    if other.id != account.id {
                        return Err(ApiError::new(
                            ErrorCode::AlreadyExists,
                            "another account uses this e-mail; choose another",
                        ));
                    }
                }
            }
            accounts::update_profile(
                &tx,
                account.id,
                &accounts::Profile {
                    first_name: first.as_deref().unwrap_or(&account.first_name),
                    last_name: last.as_deref().unwrap_or(&account.last_name),
                    email: email.as_deref().unwrap_or(&account.email),
                },
            )?;
            tx.commit()?;
            account_info(conn, &config, account.id)
        })
        .await?;
    if let Some(new) = changing {
        super::addresses::send_link(&state, current.id, &new);
        super::billing::send_service_mail(
            &state,
            current.email.clone(),
            "ibackup: your e-mail address was changed".into(),
            format!(
                "The e-mail address of your ibackup account was changed from this one to \
                 {new}.\nIf you did not do this, recover the account with `ibackup account \
                 recover` and your recovery key, then change the address back."
            ),
        );
    }
    Ok(Json(info))
}

pub async fn consent(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ConsentRequest>,
) -> ApiResult<Json<AccountInfo>> {
    let config = state.config.clone();
    let info = state
        .db
        .call(move |conn| -> ApiResult<AccountInfo> {
            let tx = conn.transaction()?;
            accounts::set_consent(&tx, caller.account_id, req.marketing_email, "profile")?;
            tx.commit()?;
            account_info(conn, &config, caller.account_id)
        })
        .await?;
    Ok(Json(info))
}

/// The opt-out token of an account: its id and a MAC over it, so links cannot be forged or
/// guessed for other accounts, and need no login.
pub fn optout_token(secret: &[u8; 32], account_id: i64) -> String {
    let mac = optout_mac(secret, account_id);
    format!("{account_id}-{}", hex::encode(&mac[..16]))
}

fn optout_mac(secret: &[u8; 32], account_id: i64) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_keyed(secret);
    hasher.update(b"marketing opt-out\0");
    hasher.update(&account_id.to_be_bytes());
    *hasher.finalize().as_bytes()
}

fn parse_optout(secret: &[u8; 32], token: &str) -> Option<i64> {
    let (id, mac) = token.split_once('-')?;
    let id: i64 = id.parse().ok()?;
    let mac = hex::decode(mac).ok()?;
    let expected = optout_mac(secret, id);
    (mac.len() == 16 && bool::from(mac.ct_eq(&expected[..16]))).then_some(id)
}

fn damaged_optout() -> ApiError {
    ApiError::bad_request(
        "this opt-out link is damaged; copy the whole link from the message, or run \
         `ibackup account consent off`",
    )
}

/// `GET` on the link in a marketing message: a page that asks to confirm. Opening the link
/// changes nothing, so a mail scanner that follows links does not unsubscribe anyone.
pub async fn optout_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<([(HeaderName, &'static str); 2], &'static str)> {
    parse_optout(&state.secret, &token).ok_or_else(damaged_optout)?;
    Ok((
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                CONTENT_SECURITY_POLICY,
                "default-src 'none'; form-action 'self'",
            ),
        ],
        OPTOUT_PAGE,
    ))
}

const OPTOUT_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>Unsubscribe from ibackup news\
</title></head><body><h1>Unsubscribe from ibackup news?</h1><p>You will get no more news or \
offers. Messages about your account itself (quota, payments) still reach you.</p>\
<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
<button type=\"submit\">Unsubscribe</button></form></body></html>\n";

/// `POST` on the link: the confirmation page's button, or a mail client's RFC 8058
/// one-click unsubscribe.
pub async fn optout(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<([(HeaderName, &'static str); 1], String)> {
    let account_id = parse_optout(&state.secret, &token).ok_or_else(damaged_optout)?;
    state
        .db
        .call(move |conn| -> ApiResult<()> {
            if let Some(account) = accounts::by_id(conn, account_id)? {
                if account.marketing_consent {
                    accounts::set_consent(conn, account_id, false, "link")?;
                }
            }
            Ok(())
        })
        .await?;
    Ok((
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        "You are unsubscribed: ibackup will send you no more news or offers.\n\
         Messages about your account itself (quota, payments) still reach you.\n"
            .into(),
    ))
}

pub async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    ApiJson(req): ApiJson<PasswordChangeRequest>,
) -> ApiResult<Json<SessionsEnded>> {
    check_login(&req.login)?;
    validate::bytes_len("current_auth_secret", &req.current_auth_secret, 32..=32)?;
    let email = state
        .db
        .call(move |conn| -> ApiResult<String> {
            Ok(accounts::by_id(conn, caller.account_id)?
                .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?
                .email)
        })
        .await?;
    let account = verify(&state, &email, req.current_auth_secret.clone(), peer.ip())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidCredentials,
                "the current password is wrong; nothing was changed",
            )
        })?;
    let login = PreparedLogin::hash(&state, &req.login).await?;
    let ended = state
        .db
        .call(move |conn| -> ApiResult<usize> {
            let tx = conn.transaction()?;
            accounts::set_login(&tx, account.id, &login.stored())?;
            let ended = sessions::revoke_others(&tx, account.id, Some(&caller.session_id))?;
            tx.commit()?;
            Ok(ended)
        })
        .await?;
    Ok(Json(SessionsEnded {
        sessions_ended: ended as u64,
    }))
}

/// Replaces the recovery key (the old one stops working): for accounts from before recovery
/// proofs, and after a recovery key was exposed. Needs the password.
pub async fn new_recovery_key(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    ApiJson(req): ApiJson<RecoveryKeyRequest>,
) -> ApiResult<StatusCode> {
    validate::bytes_len("current_auth_secret", &req.current_auth_secret, 32..=32)?;
    validate::bytes_len(
        "recovery_wrapped_private_key",
        &req.recovery_wrapped_private_key,
        60..=60,
    )?;
    validate::bytes_len("recovery_proof", &req.recovery_proof, 32..=32)?;
    let email = state
        .db
        .call(move |conn| -> ApiResult<String> {
            Ok(accounts::by_id(conn, caller.account_id)?
                .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?
                .email)
        })
        .await?;
    let account = verify(&state, &email, req.current_auth_secret.clone(), peer.ip())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidCredentials,
                "the password is wrong; the recovery key was not changed",
            )
        })?;
    let proof_hash = recovery_proof_hash(&req.recovery_proof);
    state
        .db
        .call(move |conn| {
            accounts::set_recovery(
                conn,
                account.id,
                &req.recovery_wrapped_private_key,
                &proof_hash,
            )
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long a recovery challenge stays valid.
const CHALLENGE_SECS: i64 = 600;

fn challenge_mac(secret: &[u8; 32], account_id: i64, time: i64, auth_hash: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_keyed(secret);
    hasher.update(b"recovery challenge\0");
    hasher.update(&account_id.to_be_bytes());
    hasher.update(&time.to_be_bytes());
    // A completed recovery changes the hash, which voids older challenges.
    hasher.update(auth_hash.as_bytes());
    *hasher.finalize().as_bytes()
}

pub async fn recovery_start(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RecoveryStartRequest>,
) -> ApiResult<Json<RecoveryChallenge>> {
    let email = validate::email(&req.email)?;
    let lookup = email.clone();
    let found = state
        .db
        .call(move |conn| -> ApiResult<_> {
            match accounts::by_email(conn, &lookup)? {
                Some(account) => {
                    let wrapped = accounts::recovery_wrapped_key(conn, account.id)?;
                    Ok(Some((account, wrapped)))
                }
                None => Ok(None),
            }
        })
        .await?;
    let now = db::now();
    let response = match found {
        Some((account, wrapped)) => {
            let mut plain = Vec::with_capacity(48);
            plain.extend_from_slice(&account.id.to_be_bytes());
            plain.extend_from_slice(&now.to_be_bytes());
            plain.extend_from_slice(&challenge_mac(
                &state.secret,
                account.id,
                now,
                &account.auth_hash,
            ));
            RecoveryChallenge {
                recovery_wrapped_private_key: wrapped,
                challenge: AccountKeyPair::seal_to(&account.public_key, &plain)
                    .map_err(ApiError::internal)?,
            }
        }
        // Same shapes for an unknown address, stable per address.
        None => {
            let mut hasher = blake3::Hasher::new_keyed(&state.secret);
            hasher.update(b"recovery stand-in\0");
            hasher.update(email.as_bytes());
            let mut stream = hasher.finalize_xof();
            let mut wrapped = vec![0u8; 60];
            let mut public = [0u8; 32];
            stream.fill(&mut wrapped);
            stream.fill(&mut public);
            RecoveryChallenge {
                recovery_wrapped_private_key: wrapped,
                challenge: AccountKeyPair::seal_to(&public, &[0u8; 48])
                    .map_err(ApiError::internal)?,
            }
        }
    };
    Ok(Json(response))
}

pub async fn recovery_complete(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<RecoveryCompleteRequest>,
) -> ApiResult<(StatusCode, [(HeaderName, String); 1], Json<SessionResponse>)> {
    let email = validate::email(&req.email).map_err(|_| invalid_credentials())?;
    check_login(&req.login)?;
    let refused = || {
        ApiError::new(
            ErrorCode::InvalidCredentials,
            "the recovery did not verify; start again with `ibackup account recover`",
        )
    };
    let guess = Guess::new(&state, "recovery", &email, peer.ip());
    let lookup = email.clone();
    let answer = req.answer.clone();
    let secret = state.secret.clone();
    let proof = req.recovery_proof.clone();
    let account = state
        .db
        .call(move |conn| -> ApiResult<_> {
            guess.begin(conn)?;
            let account = accounts::by_email(conn, &lookup)?;
            let valid = match &account {
                Some(account) => match accounts::recovery_proof_hash(conn, account.id)? {
                    // The recovery key itself must be shown: the account's private key (in
                    // every session file) opens the challenge, but does not give this.
                    Some(stored) => proof.as_deref().is_some_and(|proof| {
                        bool::from(recovery_proof_hash(proof).ct_eq(&stored[..]))
                    }),
                    None => legacy_answer_valid(&secret, account, &answer),
                },
                None => false,
            };
            guess.finish(conn, valid)?;
            Ok(if valid { account } else { None })
        })
        .await?
        .ok_or_else(refused)?;
    let login = PreparedLogin::hash(&state, &req.login).await?;
    let config = state.config.clone();
    let session = SessionStart::new(&config, req.client.as_deref(), peer);
    let cookie = session.cookie.clone();
    let response = state
        .db
        .call(move |conn| -> ApiResult<SessionResponse> {
            let tx = conn.transaction()?;
            accounts::set_login(&tx, account.id, &login.stored())?;
            sessions::revoke_others(&tx, account.id, None)?;
            let response = session.create(&tx, &config, account.id)?;
            tx.commit()?;
            Ok(response)
        })
        .await?;
    Ok((StatusCode::CREATED, [(SET_COOKIE, cookie)], Json(response)))
}

/// An account made before recovery proofs is recovered by opening the challenge sealed to
/// its public key (which its private key does; `account recovery-key` ends this).
fn legacy_answer_valid(secret: &[u8; 32], account: &accounts::AccountRow, answer: &[u8]) -> bool {
    if answer.len() != 48 {
        return false;
    }
    let id = i64::from_be_bytes(answer[..8].try_into().expect("8 bytes"));
    let time = i64::from_be_bytes(answer[8..16].try_into().expect("8 bytes"));
    let expected = challenge_mac(secret, account.id, time, &account.auth_hash);
    id == account.id
        && (0..=CHALLENGE_SECS).contains(&(db::now() - time))
        && bool::from(answer[16..].ct_eq(&expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optout_tokens_verify_only_unchanged() {
        let secret = [7u8; 32];
        let token = optout_token(&secret, 42);
        assert_eq!(parse_optout(&secret, &token), Some(42));
        assert_eq!(parse_optout(&[8u8; 32], &token), None);
        let forged = token.replacen("42-", "43-", 1);
        assert_eq!(parse_optout(&secret, &forged), None);
        assert_eq!(parse_optout(&secret, "junk"), None);
    }
}
