//! Sign-up, pre-login (salt and KDF cost) and the account profile.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderName, StatusCode};
use axum::Json;

use super::app::AppState;
use super::config::ServerConfig;
use super::db::{accounts, billing, libraries, sessions};
use super::error::{ApiError, ApiResult};
use super::extract::{new_token, session_cookie, ApiJson, Caller};
use super::validate;
use crate::api::account::CardSummary;
use crate::api::types::{
    AccountInfo, AccountKeys, PreloginRequest, PreloginResponse, RegisterRequest, SessionResponse,
};
use crate::api::ErrorCode;
use crate::crypto::kdf::{self, KdfParams};

/// Wrapped 32-byte keys: nonce, key, tag.
const WRAPPED_KEY_LEN: std::ops::RangeInclusive<usize> = 60..=60;
/// A 32-byte key sealed to a public key: ephemeral key, key, tag.
const SEALED_KEY_LEN: std::ops::RangeInclusive<usize> = 80..=80;

pub async fn prelogin(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PreloginRequest>,
) -> ApiResult<Json<PreloginResponse>> {
    let email = validate::email(&req.email)?;
    let lookup = email.clone();
    let found = state
        .db
        .call(move |conn| accounts::by_email(conn, &lookup))
        .await?;
    let response = match found {
        Some(account) => PreloginResponse {
            salt: account.kdf_salt,
            kdf: serde_json::from_str(&account.kdf_params).map_err(ApiError::internal)?,
        },
        // The same shape for unknown addresses, stable per address, so this cannot be used
        // to learn who has an account.
        None => PreloginResponse {
            salt: state.fake_salt(&email),
            kdf: KdfParams::default(),
        },
    };
    Ok(Json(response))
}

pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, [(HeaderName, String); 1], Json<SessionResponse>)> {
    let email = validate::email(&req.email)?;
    let first_name = validate::person_name("first name", &req.first_name)?;
    let last_name = validate::person_name("last name", &req.last_name)?;
    let library_name = validate::library_name(&req.library_name)?;
    let config = state.config.clone();
    let plan = match req.plan.as_deref() {
        None => config.default_plan().clone(),
        Some(name) => config.plan(name).cloned().ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown plan `{name}`; choose one of {}",
                config.plan_names()
            ))
        })?,
    };
    if plan.price_cents > 0 {
        return Err(ApiError::new(
            ErrorCode::PaymentRequired,
            format!(
                "plan `{}` needs a payment card: register with the free plan, then add a card \
                 with `ibackup account card add` and choose the plan with `ibackup account plan \
                 {}`",
                plan.name, plan.name
            ),
        ));
    }
    validate::bytes_len("auth_secret", &req.auth_secret, 32..=32)?;
    validate::bytes_len("salt", &req.salt, 16..=64)?;
    validate::bytes_len("public_key", &req.public_key, 32..=32)?;
    validate::bytes_len(
        "wrapped_private_key",
        &req.wrapped_private_key,
        WRAPPED_KEY_LEN,
    )?;
    validate::bytes_len(
        "recovery_wrapped_private_key",
        &req.recovery_wrapped_private_key,
        WRAPPED_KEY_LEN,
    )?;
    validate::bytes_len(
        "library_wrapped_key",
        &req.library_wrapped_key,
        SEALED_KEY_LEN,
    )?;
    req.kdf.validate().map_err(ApiError::bad_request)?;
    let client = client_label(req.client.as_deref());

    let auth_hash = hash_secret(req.auth_secret.clone()).await?;
    let (token, token_hash) = new_token();
    let kdf_params = serde_json::to_string(&req.kdf).map_err(ApiError::internal)?;
    let cookie = session_cookie(&token, config.absolute_timeout);

    let response = state
        .db
        .call(move |conn| -> ApiResult<SessionResponse> {
            let tx = conn.transaction()?;
            if accounts::by_email(&tx, &email)?.is_some() {
                return Err(ApiError::new(
                    ErrorCode::AlreadyExists,
                    "an account with this e-mail already exists; log in with `ibackup login`",
                ));
            }
            let account_id = accounts::insert(
                &tx,
                &accounts::NewAccount {
                    email: &email,
                    first_name: &first_name,
                    last_name: &last_name,
                    plan: &plan.name,
                    auth_hash: &auth_hash,
                    kdf_salt: &req.salt,
                    kdf_params: &kdf_params,
                    public_key: &req.public_key,
                    wrapped_private_key: &req.wrapped_private_key,
                    recovery_wrapped_private_key: &req.recovery_wrapped_private_key,
                    marketing_consent: req.marketing_email,
                },
            )?;
            accounts::set_consent(&tx, account_id, req.marketing_email, "sign-up")?;
            billing::record_plan_change(
                &tx,
                account_id,
                &billing::PlanChange {
                    at: crate::server::db::now(),
                    from_plan: None,
                    to_plan: plan.name.clone(),
                    amount_cents: 0,
                },
            )?;
            libraries::create(&tx, account_id, &library_name, &req.library_wrapped_key)?;
            let address = peer.ip().to_string();
            let session_id = sessions::create(
                &tx,
                account_id,
                &token_hash,
                client.as_deref(),
                Some(&address),
            )?;
            let response = session_response(&tx, &config, account_id, token, session_id)?;
            tx.commit().map_err(super::db::DbError::from)?;
            Ok(response)
        })
        .await?;
    Ok((StatusCode::CREATED, [(SET_COOKIE, cookie)], Json(response)))
}

/// Hashes an auth secret for storage (Argon2id, on the blocking pool).
pub async fn hash_secret(secret: Vec<u8>) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || kdf::hash_auth_secret(&secret))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

pub async fn show(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<AccountInfo>> {
    let config = state.config.clone();
    let info = state
        .db
        .call(move |conn| account_info(conn, &config, caller.account_id))
        .await?;
    Ok(Json(info))
}

pub fn account_info(
    conn: &rusqlite::Connection,
    config: &ServerConfig,
    account_id: i64,
) -> ApiResult<AccountInfo> {
    let account = accounts::by_id(conn, account_id)?
        .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    let card = billing::card(conn, account_id)?.map(|c| CardSummary {
        brand: c.brand,
        last4: c.last4,
        exp_month: c.exp_month,
        exp_year: c.exp_year,
    });
    Ok(AccountInfo {
        id: account.id,
        quota_bytes: config.quota_for(&account.plan, account.quota_override),
        used_bytes: accounts::used_bytes(conn, account.id)?,
        delete_after: account
            .canceled_at
            .map(|at| at + config.cancel_grace.as_secs() as i64),
        email: account.email,
        first_name: account.first_name,
        last_name: account.last_name,
        plan: account.plan,
        marketing_email: account.marketing_consent,
        created_at: account.created_at,
        status: account.status,
        canceled_at: account.canceled_at,
        period_end: account.period_end,
        card,
    })
}

pub fn session_response(
    conn: &rusqlite::Connection,
    config: &ServerConfig,
    account_id: i64,
    token: String,
    session_id: String,
) -> ApiResult<SessionResponse> {
    let account = accounts::by_id(conn, account_id)?
        .ok_or_else(|| ApiError::internal("account vanished during login"))?;
    Ok(SessionResponse {
        token,
        session_id,
        keys: AccountKeys {
            public_key: account.public_key.clone(),
            wrapped_private_key: account.wrapped_private_key.clone(),
        },
        account: account_info(conn, config, account_id)?,
    })
}

/// What the client says it is ("ibackup/0.1 linux"), cut to something safe to store.
pub fn client_label(client: Option<&str>) -> Option<String> {
    client.map(|c| c.chars().filter(|ch| !ch.is_control()).take(64).collect())
}
