//! Recovery with the recovery key: a forgotten password is replaced, proving the recovery
//! key itself (its one-way proof, which the account's private key in a session file does
//! not give), and `account recovery-key` replaces the recovery key.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderName, StatusCode};
use axum::Json;
use subtle::ConstantTimeEq;

use super::accounts::{check_login, check_recovery, recovery_proof_hash, PreparedLogin};
use super::extract::{ApiJson, Caller};
use super::sessions::{confirm_password, invalid_credentials, SessionStart};
use crate::api::account::{
    RecoveryChallenge, RecoveryCompleteRequest, RecoveryKeyRequest, RecoveryStartRequest,
};
use crate::api::types::SessionResponse;
use crate::api::ErrorCode;
use crate::crypto::AccountKeyPair;
use crate::db::{self, accounts, sessions};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::throttle::Guess;
use crate::validate;

/// Replaces the recovery key (the old one stops working): for accounts from before recovery
/// proofs, and after a recovery key was exposed. Needs the password.
pub async fn new_recovery_key(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    ApiJson(req): ApiJson<RecoveryKeyRequest>,
) -> ApiResult<StatusCode> {
    check_recovery(&req.recovery_wrapped_private_key, &req.recovery_proof)?;
    let account = confirm_password(
        &state,
        caller.account_id,
        &req.current_auth_secret,
        peer.ip(),
        "the password is wrong; the recovery key was not changed",
    )
    .await?;
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
