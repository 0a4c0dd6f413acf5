//! A new key pair for an account (`ibackup account rotate-keys`): after a session file was
//! copied while its session lived, the old private key it held opens nothing granted from
//! then on. One transaction replaces the public key, the private key's wrappings (password
//! and a new recovery key) and every grant that named the old key, and ends the account's
//! other sessions.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::Json;

use super::accounts::{check_login, check_recovery, recovery_proof_hash, PreparedLogin};
use super::extract::{ApiJson, Caller};
use super::sessions::confirm_password;
use crate::api::account::{RotateKeysRequest, SessionsEnded};
use crate::api::{ErrorCode, GRANT_BYTES};
use crate::db::{self, accounts, libraries, sessions};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::validate;

pub async fn rotate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    ApiJson(req): ApiJson<RotateKeysRequest>,
) -> ApiResult<Json<SessionsEnded>> {
    check_login(&req.login)?;
    validate::bytes_len("public_key", &req.public_key, 32..=32)?;
    check_recovery(&req.recovery_wrapped_private_key, &req.recovery_proof)?;
    for grant in &req.grants {
        validate::bytes_len("grant", &grant.grant, GRANT_BYTES..=GRANT_BYTES)?;
    }
    let account = confirm_password(
        &state,
        caller.account_id,
        &req.current_auth_secret,
        peer.ip(),
        "the password is wrong; the keys were not changed",
    )
    .await?;
    let login = PreparedLogin::hash(&state, &req.login).await?;
    let ended = state
        .db
        .call(move |conn| -> ApiResult<usize> {
            let tx = db::immediate(conn)?;
            let needed = libraries::grants_of(&tx, account.id)?;
            let mut given: HashMap<(&str, &str), (u32, &[u8])> = req
                .grants
                .iter()
                .map(|g| {
                    (
                        (g.library.as_str(), g.email.as_str()),
                        (g.epoch, &g.grant[..]),
                    )
                })
                .collect();
            if given.len() != req.grants.len() || given.len() != needed.len() {
                return Err(changed());
            }
            for (library, member, email, epoch) in &needed {
                let (given_epoch, grant) = given
                    .remove(&(library.as_str(), email.as_str()))
                    .ok_or_else(changed)?;
                if given_epoch != *epoch {
                    return Err(ApiError::stale_epoch(*epoch));
                }
                libraries::set_grant(&tx, library, *member, *epoch, grant)?;
            }
            accounts::set_public_key(&tx, account.id, &req.public_key)?;
            accounts::set_login(&tx, account.id, &login.stored())?;
            accounts::set_recovery(
                &tx,
                account.id,
                &req.recovery_wrapped_private_key,
                &recovery_proof_hash(&req.recovery_proof),
            )?;
            let ended = sessions::revoke_others(&tx, account.id, Some(&caller.session_id))?;
            tx.commit()?;
            Ok(ended)
        })
        .await?;
    Ok(Json(SessionsEnded {
        sessions_ended: ended as u64,
    }))
}

fn changed() -> ApiError {
    ApiError::new(
        ErrorCode::HeadMoved,
        "your libraries or their members changed while the new keys were made; nothing was \
         changed, run `ibackup account rotate-keys` again",
    )
}
