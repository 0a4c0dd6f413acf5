//! E-mail addresses are confirmed by a mailed link before marketing mail may go to them
//! (anyone can type someone else's address at sign-up; consent is the address owner's to
//! give). A sign-up and an address change mail the link; `GET` on it shows a page that asks
//! to confirm (mail scanners follow links), `POST` confirms. The token names the account and
//! the address and carries a MAC and a time, so it cannot be forged, does not confirm an
//! address the account no longer has, and ends after a week.

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, StatusCode};
use subtle::ConstantTimeEq;

use super::billing::send_service_mail;
use super::extract::Caller;
use super::pages::{Confirm, Page};
use crate::db::{self, accounts};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long a confirmation link works.
const LINK_SECS: i64 = 7 * 86_400;

fn mac(secret: &[u8; 32], account_id: i64, email: &str, time: i64) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_keyed(secret);
    hasher.update(b"confirm address\0");
    hasher.update(&account_id.to_be_bytes());
    hasher.update(&time.to_be_bytes());
    hasher.update(email.as_bytes());
    *hasher.finalize().as_bytes()
}

/// The token of a link confirming `email` for `account_id`, made at `time`.
pub fn token(secret: &[u8; 32], account_id: i64, email: &str, time: i64) -> String {
    let mac = mac(secret, account_id, email, time);
    format!("{account_id}-{time}-{}", hex::encode(&mac[..16]))
}

/// The account a token confirms `email` for, if it is genuine and recent.
fn parse(secret: &[u8; 32], token: &str, email: &str, now: i64) -> bool {
    let mut parts = token.splitn(3, '-');
    let (Some(id), Some(time), Some(given)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(id), Ok(time), Ok(given)) =
        (id.parse::<i64>(), time.parse::<i64>(), hex::decode(given))
    else {
        return false;
    };
    let expected = mac(secret, id, email, time);
    given.len() == 16
        && bool::from(given.ct_eq(&expected[..16]))
        && (0..=LINK_SECS).contains(&(now - time))
}

fn account_of(token: &str) -> Option<i64> {
    token.split('-').next()?.parse().ok()
}

/// Mails the confirmation link for `email` (a service message: it needs no consent).
pub fn send_link(state: &AppState, account_id: i64, email: &str) {
    let url = format!(
        "{}{}",
        state.config.public_url,
        crate::api::routes::CONFIRM_ADDRESS.replace(
            "{token}",
            &token(&state.secret, account_id, email, db::now())
        )
    );
    send_service_mail(
        state,
        email.to_owned(),
        "ibackup: confirm your e-mail address".into(),
        format!(
            "Someone (we hope you) gave this address to an ibackup account. Open this link \
             within a week to confirm it:\n{url}\n\nUntil it is confirmed, ibackup sends it no \
             news or offers, whatever the account chose. If this was not you, ignore this \
             message."
        ),
    );
}

fn damaged() -> ApiError {
    ApiError::bad_request(
        "this confirmation link is damaged, older than a week, or for an address the account \
         no longer has; `ibackup account confirm-email` sends a new one",
    )
}

/// The account and address a token confirms, checked against the account as it is now.
async fn confirmable(state: &AppState, token: &str) -> ApiResult<i64> {
    let account_id = account_of(token).ok_or_else(damaged)?;
    let email = state
        .db
        .call(move |conn| accounts::by_id(conn, account_id))
        .await?
        .ok_or_else(damaged)?
        .email;
    if parse(&state.secret, token, &email, db::now()) {
        Ok(account_id)
    } else {
        Err(damaged())
    }
}

/// `GET` on the link: a page with a button; nothing changes yet.
pub async fn page(State(state): State<AppState>, Path(token): Path<String>) -> ApiResult<Page> {
    confirmable(&state, &token).await?;
    Ok(PAGE.page())
}

const PAGE: Confirm = Confirm {
    title: "Confirm your e-mail address",
    question: "Confirm your e-mail address for ibackup?",
    detail: None,
    field: None,
    button: "Confirm",
};

/// `POST` on the link: the address is confirmed.
pub async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<([(HeaderName, &'static str); 1], &'static str)> {
    let account_id = confirmable(&state, &token).await?;
    state
        .db
        .call(move |conn| accounts::set_email_confirmed(conn, account_id, Some(db::now())))
        .await?;
    Ok((
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Your e-mail address is confirmed.\n",
    ))
}

/// Mails a new link to the account's address (`ibackup account confirm-email`).
pub async fn resend(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let account = state
        .db
        .call(move |conn| accounts::by_id(conn, caller.account_id))
        .await?
        .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    if account.email_confirmed_at.is_some() {
        return Err(ApiError::bad_request(
            "your e-mail address is confirmed already",
        ));
    }
    send_link(&state, account.id, &account.email);
    Ok(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_confirm_one_address_of_one_account_for_a_week() {
        let secret = [7u8; 32];
        let now = 1_800_000_000;
        let token = token(&secret, 42, "a@example.com", now);
        assert!(parse(&secret, &token, "a@example.com", now + 60));
        assert_eq!(account_of(&token), Some(42));
        assert!(!parse(&secret, &token, "b@example.com", now + 60));
        assert!(!parse(
            &secret,
            &token,
            "a@example.com",
            now + LINK_SECS + 1
        ));
        assert!(!parse(&[8u8; 32], &token, "a@example.com", now));
        let forged = token.replacen("42-", "43-", 1);
        assert!(!parse(&secret, &forged, "a@example.com", now));
        assert!(!parse(&secret, "junk", "a@example.com", now));
    }
}
