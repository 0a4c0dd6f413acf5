//! Login, logout and the user's list of sessions. Wrong passwords and unknown addresses get
//! the same answer after the same work, so neither reveals whether an account exists.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderName, StatusCode};
use axum::Json;

use super::accounts::{client_label, session_response};
use super::extract::{new_token, session_cookie, ApiJson, Caller};
use crate::api::account::{SessionList, SessionsEnded};
use crate::api::types::{KeyShare, LoginRequest, SessionResponse};
use crate::api::ErrorCode;
use crate::config::ServerConfig;
use crate::crypto::kdf;
use crate::db::{accounts, sessions};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::throttle::Guess;
use crate::validate;

pub fn invalid_credentials() -> ApiError {
    ApiError::new(ErrorCode::InvalidCredentials, "wrong e-mail or password")
}

/// Checks an auth secret against the account's (or, for an unknown account, a dummy hash, so
/// both take as long), under the throttle for `email` from `from`.
pub async fn verify(
    state: &AppState,
    email: &str,
    secret: Vec<u8>,
    from: IpAddr,
) -> ApiResult<Option<accounts::AccountRow>> {
    let guess = Arc::new(Guess::new(state, "login", email, from));
    let lookup = email.to_owned();
    let started = guess.clone();
    let account = state
        .db
        .call(move |conn| {
            started.begin(conn)?;
            Ok::<_, ApiError>(accounts::by_email(conn, &lookup)?)
        })
        .await?;
    let stored_hash = match &account {
        Some(account) => account.auth_hash.clone(),
        None => state.dummy_hash.to_string(),
    };
    let known = account.is_some();
    let success = guess
        .check(state, move || {
            kdf::verify_auth_secret(&secret, &stored_hash) && known
        })
        .await?;
    Ok(if success { account } else { None })
}

/// The caller's own account, if `secret` is its password's auth secret (checked as a login
/// is, under the same throttle); otherwise 401 with `refused`, which says what was not done.
pub async fn confirm_password(
    state: &AppState,
    account_id: i64,
    secret: &[u8],
    from: IpAddr,
    refused: &str,
) -> ApiResult<accounts::AccountRow> {
    validate::bytes_len("current_auth_secret", secret, 32..=32)?;
    let email = state
        .db
        .call(move |conn| -> ApiResult<String> {
            Ok(accounts::by_id(conn, account_id)?
                .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?
                .email)
        })
        .await?;
    verify(state, &email, secret.to_vec(), from)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidCredentials, refused))
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<(StatusCode, [(HeaderName, String); 1], Json<SessionResponse>)> {
    let email = validate::email(&req.email).map_err(|_| invalid_credentials())?;
    let account = verify(&state, &email, req.auth_secret.clone(), peer.ip())
        .await?
        .ok_or_else(invalid_credentials)?;
    let config = state.config.clone();
    let session = SessionStart::new(&config, req.client.as_deref(), peer);
    let cookie = session.cookie.clone();
    let response = state
        .db
        .call(move |conn| session.create(conn, &config, account.id))
        .await?;
    Ok((StatusCode::CREATED, [(SET_COOKIE, cookie)], Json(response)))
}

/// A session about to start: its token (shown once), the hash that is stored, where and what
/// the client is, and the cookie that carries the token.
pub struct SessionStart {
    token: String,
    token_hash: [u8; 32],
    client: Option<String>,
    address: String,
    pub cookie: String,
}

impl SessionStart {
    pub fn new(config: &ServerConfig, client: Option<&str>, peer: SocketAddr) -> Self {
        let (token, token_hash) = new_token();
        Self {
            cookie: session_cookie(&token, config.absolute_timeout),
            token,
            token_hash,
            client: client_label(client),
            address: peer.ip().to_string(),
        }
    }

    /// Records the session and answers with it, the account and its wrapped key.
    pub fn create(
        self,
        conn: &crate::db::Conn,
        config: &ServerConfig,
        account_id: i64,
    ) -> ApiResult<SessionResponse> {
        let (session_id, key_share) = sessions::create(
            conn,
            account_id,
            &self.token_hash,
            self.client.as_deref(),
            Some(&self.address),
        )?;
        let mut response = session_response(conn, config, account_id, self.token, session_id)?;
        response.key_share = Some(key_share.to_vec());
        Ok(response)
    }
}

/// The key share of the caller's session: a session file's account key opens with it only
/// while the session lives.
pub async fn key_share(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<KeyShare>> {
    let share = state
        .db
        .call(move |conn| sessions::key_share(conn, &caller.session_id))
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized("this session has no key share; run `ibackup login` again")
        })?;
    Ok(Json(KeyShare { key_share: share }))
}

/// Ends the caller's session; a browser also forgets its cookie.
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<(StatusCode, [(axum::http::HeaderName, String); 1])> {
    state
        .db
        .call(move |conn| sessions::revoke(conn, &caller.session_id))
        .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(SET_COOKIE, super::extract::cleared_session_cookie())],
    ))
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<SessionList>> {
    state.records.flush(&state.db).await?;
    let mut records = state
        .db
        .call(move |conn| sessions::records_for(conn, caller.account_id))
        .await?;
    for record in &mut records {
        record.current = record.id == caller.session_id;
    }
    Ok(Json(SessionList { sessions: records }))
}

pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(session_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = session_id.clone();
    let found = crate::db::is_random_id(&session_id)
        && state
            .db
            .call(move |conn| sessions::revoke_own(conn, caller.account_id, &id))
            .await?;
    if !found {
        return Err(ApiError::not_found(format!(
            "you have no session `{session_id}`; `ibackup account sessions` lists them"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke_others(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SessionsEnded>> {
    let ended = state
        .db
        .call(move |conn| {
            sessions::revoke_others(conn, caller.account_id, Some(&caller.session_id))
        })
        .await?;
    Ok(Json(SessionsEnded {
        sessions_ended: ended as u64,
    }))
}
