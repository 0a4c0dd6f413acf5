//! My Profile: correcting details, marketing consent (with the opt-out link that needs no
//! login), and changing the password. Recovery is in `recovery`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderName;
use axum::Json;
use subtle::ConstantTimeEq;

use super::accounts::{account_info, check_login, PreparedLogin};
use super::extract::{ApiJson, Caller};
use super::pages::{Confirm, Page};
use super::sessions::confirm_password;
use crate::api::account::{
    ConsentRequest, PasswordChangeRequest, SessionsEnded, UpdateProfileRequest,
};
use crate::api::types::AccountInfo;
use crate::api::ErrorCode;
use crate::db::{accounts, sessions};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::validate;

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
        let secret = req.current_auth_secret.as_deref().ok_or_else(|| {
            ApiError::bad_request(
                "changing the e-mail address needs the password; `ibackup account update \
                 --email` asks for it",
            )
        })?;
        let refused = "the password is wrong; the e-mail address was not changed";
        confirm_password(&state, current.id, secret, peer.ip(), refused).await?;
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
) -> ApiResult<Page> {
    parse_optout(&state.secret, &token).ok_or_else(damaged_optout)?;
    Ok(OPTOUT_PAGE.page())
}

const OPTOUT_PAGE: Confirm = Confirm {
    title: "Unsubscribe from ibackup news",
    question: "Unsubscribe from ibackup news?",
    detail: Some(
        "You will get no more news or offers. Messages about your account itself (quota, \
         payments) still reach you.",
    ),
    field: Some(("List-Unsubscribe", "One-Click")),
    button: "Unsubscribe",
};

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
    let account = confirm_password(
        &state,
        caller.account_id,
        &req.current_auth_secret,
        peer.ip(),
        "the current password is wrong; nothing was changed",
    )
    .await?;
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
