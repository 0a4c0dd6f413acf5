//! Sign-up, pre-login (salt and KDF cost) and the account profile.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::app::AppState;
use super::db::{accounts, libraries, sessions};
use super::error::{ApiError, ApiResult};
use super::extract::{new_token, ApiJson, Caller};
use super::{plans, validate};
use crate::api::types::{
    AccountInfo, AccountKeys, PreloginRequest, PreloginResponse, RegisterRequest, SessionResponse,
};
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
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    let email = validate::email(&req.email)?;
    let first_name = validate::person_name("first name", &req.first_name)?;
    let last_name = validate::person_name("last name", &req.last_name)?;
    let library_name = validate::library_name(&req.library_name)?;
    let plan_name = req
        .plan
        .as_deref()
        .unwrap_or(plans::DEFAULT_PLAN)
        .to_owned();
    let plan = plans::find(&plan_name).ok_or_else(|| {
        let names: Vec<_> = plans::PLANS.iter().map(|p| p.name).collect();
        ApiError::bad_request(format!(
            "unknown plan `{plan_name}`; choose one of {names:?}"
        ))
    })?;
    if plan.monthly_price_cents > 0 {
        return Err(ApiError::bad_request(format!(
            "plan `{plan_name}` needs a payment card, which this server cannot take yet; \
             register with the free plan"
        )));
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

    let secret = req.auth_secret.clone();
    let auth_hash = tokio::task::spawn_blocking(move || kdf::hash_auth_secret(&secret))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let (token, token_hash) = new_token();
    let kdf_params = serde_json::to_string(&req.kdf).map_err(ApiError::internal)?;

    let response = state
        .db
        .call(move |conn| -> ApiResult<SessionResponse> {
            let tx = conn.transaction()?;
            if accounts::by_email(&tx, &email)?.is_some() {
                return Err(ApiError::new(
                    crate::api::ErrorCode::AlreadyExists,
                    "an account with this e-mail already exists; log in with `ibackup login`",
                ));
            }
            let account_id = accounts::insert(
                &tx,
                &accounts::NewAccount {
                    email: &email,
                    first_name: &first_name,
                    last_name: &last_name,
                    plan: plan.name,
                    auth_hash: &auth_hash,
                    kdf_salt: &req.salt,
                    kdf_params: &kdf_params,
                    public_key: &req.public_key,
                    wrapped_private_key: &req.wrapped_private_key,
                    recovery_wrapped_private_key: &req.recovery_wrapped_private_key,
                    marketing_consent: req.marketing_email,
                },
            )?;
            libraries::create(&tx, account_id, &library_name, &req.library_wrapped_key)?;
            let session_id = sessions::create(&tx, account_id, &token_hash, client.as_deref())?;
            let response = session_response(&tx, account_id, token, session_id)?;
            tx.commit().map_err(super::db::DbError::from)?;
            Ok(response)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(response)))
}

pub async fn show(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<AccountInfo>> {
    let info = state
        .db
        .call(move |conn| account_info(conn, caller.account_id))
        .await?;
    Ok(Json(info))
}

pub fn account_info(conn: &rusqlite::Connection, account_id: i64) -> ApiResult<AccountInfo> {
    let account = accounts::by_id(conn, account_id)?
        .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    Ok(AccountInfo {
        id: account.id,
        quota_bytes: plans::quota_for(&account.plan, account.quota_override),
        used_bytes: accounts::used_bytes(conn, account.id)?,
        email: account.email,
        first_name: account.first_name,
        last_name: account.last_name,
        plan: account.plan,
        marketing_email: account.marketing_consent,
        created_at: account.created_at,
    })
}

pub fn session_response(
    conn: &rusqlite::Connection,
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
        account: account_info(conn, account_id)?,
    })
}

/// What the client says it is ("ibackup/0.1 linux"), cut to something safe to store.
pub fn client_label(client: Option<&str>) -> Option<String> {
    client.map(|c| c.chars().filter(|ch| !ch.is_control()).take(64).collect())
}
