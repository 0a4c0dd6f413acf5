//! The axum application: shared state and the route table (see `docs/PROTOCOL.md`).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};

use super::billing::processor::PaymentProcessor;
use super::config::ServerConfig;
use super::db::Db;
use super::error::ApiError;
use super::mail::Mailer;
use super::records::SessionRecords;
use super::storage::BlobStore;
use super::{
    account_keys, accounts, addresses, billing, libraries, links, objects, privacy, profile,
    records, recovery, retention, sessions, sharing,
};
use crate::api::routes;
use crate::api::types::Health;
use crate::api::ErrorCode;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub blobs: Arc<dyn BlobStore>,
    /// Keys the stand-in salts for unknown e-mail addresses.
    pub secret: Arc<[u8; 32]>,
    /// A hash to verify against when the e-mail is unknown, so that takes as long as a
    /// wrong password.
    pub dummy_hash: Arc<str>,
    pub config: Arc<ServerConfig>,
    pub processor: Arc<dyn PaymentProcessor>,
    pub mailer: Arc<Mailer>,
    pub records: Arc<SessionRecords>,
    /// What each link's root reaches, computed once per root (see `links`).
    pub reach: Arc<std::sync::Mutex<ReachCache>>,
    pub hashers: Arc<super::hashing::Hashers>,
    /// Upload bodies in memory, in KiB (`limits.upload_memory`).
    pub uploads: Arc<tokio::sync::Semaphore>,
}

pub type ReachCache = std::collections::HashMap<
    (String, crate::crypto::ObjectId),
    Arc<std::collections::HashSet<crate::crypto::ObjectId>>,
>;

impl AppState {
    pub fn reach_cache(&self) -> std::sync::MutexGuard<'_, ReachCache> {
        self.reach.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fake_salt(&self, email: &str) -> Vec<u8> {
        let mut hasher = blake3::Hasher::new_keyed(&self.secret);
        hasher.update(b"prelogin salt\0");
        hasher.update(email.as_bytes());
        hasher.finalize().as_bytes()[..16].to_vec()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(routes::HEALTH, get(health))
        .route(routes::PRELOGIN, post(accounts::prelogin))
        .route(routes::ACCOUNTS, post(accounts::register))
        .route(routes::ACCOUNT, get(accounts::show).patch(profile::update))
        .route(routes::SESSIONS, post(sessions::login))
        .route(routes::SESSION_CURRENT, delete(sessions::logout))
        .route(routes::SESSION_KEY_SHARE, get(sessions::key_share))
        .route(routes::PLANS, get(billing::plans))
        .route(routes::ACCOUNT_PLAN, put(billing::change_plan))
        .route(routes::ACCOUNT_CARD, post(billing::add_card))
        .route(routes::ACCOUNT_INVOICES, get(billing::invoices))
        .route(routes::ACCOUNT_CANCEL, post(billing::cancel))
        .route(routes::ACCOUNT_REACTIVATE, post(billing::reactivate))
        .route(routes::ACCOUNT_CONSENT, put(profile::consent))
        .route(routes::ACCOUNT_PASSWORD, post(profile::change_password))
        .route(routes::ACCOUNT_KEYS, post(account_keys::rotate))
        .route(routes::ACCOUNT_CONFIRM_EMAIL, post(addresses::resend))
        .route(
            routes::CONFIRM_ADDRESS,
            get(addresses::page).post(addresses::confirm),
        )
        .route(
            routes::ACCOUNT_RECOVERY_KEY,
            post(recovery::new_recovery_key),
        )
        .route(routes::ACCOUNT_SESSIONS, get(sessions::list))
        .route(routes::ACCOUNT_SESSION, delete(sessions::revoke))
        .route(
            routes::ACCOUNT_SESSIONS_REVOKE_OTHERS,
            post(sessions::revoke_others),
        )
        .route(routes::ACCOUNT_EXPORT, get(privacy::export))
        .route(routes::ACCOUNT_DELETE, post(privacy::delete))
        .route(routes::RECOVERY_CHALLENGE, post(recovery::recovery_start))
        .route(routes::RECOVERY_COMPLETE, post(recovery::recovery_complete))
        .route(
            routes::OPTOUT,
            get(profile::optout_page).post(profile::optout),
        )
        .route(routes::FEEDBACK, post(privacy::feedback))
        .route(routes::SURVEYS, get(privacy::surveys))
        .route(routes::SURVEY_ANSWERS, post(privacy::answer))
        .route(
            routes::LIBRARIES,
            get(libraries::list).post(libraries::create),
        )
        .route(
            routes::LIBRARY,
            axum::routing::patch(libraries::rename).delete(libraries::delete),
        )
        .route(
            routes::LIBRARY_MEMBERS,
            get(sharing::members).post(sharing::add_member),
        )
        .route(routes::LIBRARY_ROTATE, post(sharing::rotate))
        .route(routes::LIBRARY_LEAVE, post(sharing::leave))
        .route(routes::CONTACT_LOOKUP, post(sharing::contact))
        .route(routes::LIBRARY_LINKS, post(links::create))
        .route(routes::LINKS, get(links::list))
        .route(routes::LINK, delete(links::revoke))
        .route(routes::LINK_POINTER, put(links::set_pointer))
        .route(routes::LINK_OPEN, post(links::open))
        .route(routes::LINK_FETCH, post(links::fetch))
        .route(
            routes::LIBRARY_HEAD,
            get(libraries::head).put(libraries::set_head),
        )
        .route(routes::LIBRARY_SNAPSHOTS, get(libraries::snapshots))
        .route(
            routes::LIBRARY_POLICY,
            get(retention::policy).put(retention::set_policy),
        )
        .route(routes::LIBRARY_FORGET, post(retention::forget))
        .route(routes::LIBRARY_HOLDS, put(retention::hold))
        .route(routes::OBJECTS_MISSING, post(objects::missing))
        .route(routes::OBJECTS_UPLOAD, post(objects::upload))
        .route(routes::OBJECTS_FETCH, post(objects::fetch))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // ApiJson and ApiBytes enforce their own limits, so they can answer cleanly.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            records::track,
        ))
        .with_state(state)
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see docs/PROTOCOL.md")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}
