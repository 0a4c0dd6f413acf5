//! Sign-up, pre-login (salt and KDF cost) and the account profile.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderName, StatusCode};
use axum::Json;

use super::extract::{ApiJson, Caller};
use super::sessions::SessionStart;
use crate::api::account::CardSummary;
use crate::api::types::{
    AccountInfo, AccountKeys, LoginMaterial, PreloginRequest, PreloginResponse, RegisterRequest,
    SessionResponse,
};
use crate::api::ErrorCode;
use crate::config::ServerConfig;
use crate::crypto::kdf::{self, KdfParams};
use crate::db::{accounts, billing, libraries};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::throttle::Signup;
use crate::validate;

/// Wrapped 32-byte keys: nonce, key, tag.
pub const WRAPPED_KEY_LEN: std::ops::RangeInclusive<usize> = 60..=60;

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
    let config = state.config.clone();
    let plan = match req.plan.as_deref() {
        None => config.default_plan().clone(),
        Some(name) => config
            .plan(name)
            .cloned()
            .ok_or_else(|| ApiError::bad_request(config.unknown_plan(name)))?,
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
    validate::bytes_len("public_key", &req.public_key, 32..=32)?;
    validate::bytes_len(
        "recovery_wrapped_private_key",
        &req.recovery_wrapped_private_key,
        WRAPPED_KEY_LEN,
    )?;
    super::libraries::check_new_library(&req.library)?;
    check_login(&req.login)?;
    let proof_hash = match &req.recovery_proof {
        Some(proof) => {
            validate::bytes_len("recovery_proof", proof, 32..=32)?;
            Some(recovery_proof_hash(proof))
        }
        None => None,
    };
    let signup = Signup::new(&state, peer.ip());
    state.db.call(move |conn| signup.count(conn)).await?;
    let login = PreparedLogin::hash(&state, &req.login).await?;
    let session = SessionStart::new(&config, req.client.as_deref(), peer);
    let cookie = session.cookie.clone();

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
                    login: login.stored(),
                    public_key: &req.public_key,
                    recovery_wrapped_private_key: &req.recovery_wrapped_private_key,
                    recovery_proof_hash: proof_hash.as_ref().map(|h| &h[..]),
                    marketing_consent: req.marketing_email,
                },
            )?;
            accounts::set_consent(&tx, account_id, req.marketing_email, "sign-up")?;
            billing::record_plan_change(
                &tx,
                account_id,
                &billing::PlanChange {
                    at: crate::db::now(),
                    from_plan: None,
                    to_plan: plan.name.clone(),
                    amount_cents: 0,
                },
            )?;
            if libraries::exists(&tx, &req.library.id)? {
                return Err(ApiError::new(
                    ErrorCode::AlreadyExists,
                    "a library with this id exists; choose another random id",
                ));
            }
            libraries::create(
                &tx,
                &req.library.id,
                account_id,
                &req.library.name_sealed,
                &req.library.grant,
            )?;
            let response = session.create(&tx, &config, account_id)?;
            tx.commit()?;
            Ok(response)
        })
        .await?;
    super::addresses::send_link(&state, response.account.id, &response.account.email);
    Ok((StatusCode::CREATED, [(SET_COOKIE, cookie)], Json(response)))
}

/// Checks a new recovery key's material: the private key wrapped under it, and its proof.
pub fn check_recovery(wrapped_private_key: &[u8], proof: &[u8]) -> ApiResult<()> {
    validate::bytes_len(
        "recovery_wrapped_private_key",
        wrapped_private_key,
        WRAPPED_KEY_LEN,
    )?;
    validate::bytes_len("recovery_proof", proof, 32..=32)
}

/// What the server keeps of a recovery proof.
pub fn recovery_proof_hash(proof: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(proof).into()
}

/// Checks new login material: sizes of the secret, salt and wrapped key, and the KDF cost.
pub fn check_login(login: &LoginMaterial) -> ApiResult<()> {
    validate::bytes_len("auth_secret", &login.auth_secret, 32..=32)?;
    validate::bytes_len("salt", &login.salt, 16..=64)?;
    validate::bytes_len(
        "wrapped_private_key",
        &login.wrapped_private_key,
        WRAPPED_KEY_LEN,
    )?;
    login.kdf.validate().map_err(ApiError::bad_request)
}

/// Checked login material ready to store: the auth secret hashed with Argon2id (on the
/// blocking pool) and the KDF cost as stored.
pub struct PreparedLogin {
    auth_hash: String,
    kdf_params: String,
    salt: Vec<u8>,
    wrapped_private_key: Vec<u8>,
}

impl PreparedLogin {
    /// Hashes material that passed [`check_login`]; the slow step, so it comes after the
    /// caller proved who they are.
    pub async fn hash(state: &AppState, login: &LoginMaterial) -> ApiResult<Self> {
        let secret = login.auth_secret.clone();
        let auth_hash = state
            .hashers
            .run(move || kdf::hash_auth_secret(&secret))
            .await?
            .map_err(ApiError::internal)?;
        Ok(Self {
            auth_hash,
            kdf_params: serde_json::to_string(&login.kdf).map_err(ApiError::internal)?,
            salt: login.salt.clone(),
            wrapped_private_key: login.wrapped_private_key.clone(),
        })
    }

    pub fn stored(&self) -> accounts::NewLogin<'_> {
        accounts::NewLogin {
            auth_hash: &self.auth_hash,
            kdf_salt: &self.salt,
            kdf_params: &self.kdf_params,
            wrapped_private_key: &self.wrapped_private_key,
        }
    }
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
    conn: &crate::db::Conn,
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
        email_confirmed: account.email_confirmed_at.is_some(),
        created_at: account.created_at,
        status: account.status,
        canceled_at: account.canceled_at,
        period_end: account.period_end,
        card,
    })
}

pub fn session_response(
    conn: &crate::db::Conn,
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
        key_share: None,
    })
}

/// What the client says it is ("ibackup/0.1 linux"), cut to something safe to store.
pub fn client_label(client: Option<&str>) -> Option<String> {
    client.map(|c| c.chars().filter(|ch| !ch.is_control()).take(64).collect())
}
