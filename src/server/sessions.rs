//! Login and logout. Wrong passwords and unknown addresses get the same answer, after the
//! same work, so neither reveals whether an account exists.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::accounts::{client_label, session_response};
use super::app::AppState;
use super::db::{accounts, sessions};
use super::error::{ApiError, ApiResult};
use super::extract::{new_token, ApiJson, Caller};
use super::validate;
use crate::api::types::{LoginRequest, SessionResponse};
use crate::api::ErrorCode;
use crate::crypto::kdf;

pub async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    let invalid = || ApiError::new(ErrorCode::InvalidCredentials, "wrong e-mail or password");
    let email = validate::email(&req.email).map_err(|_| invalid())?;
    let lookup = email.clone();
    let account = state
        .db
        .call(move |conn| accounts::by_email(conn, &lookup))
        .await?;
    let stored_hash = match &account {
        Some(account) => account.auth_hash.clone(),
        None => state.dummy_hash.to_string(),
    };
    let secret = req.auth_secret.clone();
    let verified =
        tokio::task::spawn_blocking(move || kdf::verify_auth_secret(&secret, &stored_hash))
            .await
            .map_err(ApiError::internal)?;
    let account = match account {
        Some(account) if verified => account,
        _ => return Err(invalid()),
    };
    let (token, token_hash) = new_token();
    let client = client_label(req.client.as_deref());
    let response = state
        .db
        .call(move |conn| {
            let session_id = sessions::create(conn, account.id, &token_hash, client.as_deref())?;
            session_response(conn, account.id, token, session_id)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(response)))
}

pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    state
        .db
        .call(move |conn| sessions::revoke(conn, &caller.session_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
