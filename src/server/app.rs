//! The axum application: shared state and the route table (see `docs/PROTOCOL.md`).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use super::blobstore::BlobStore;
use super::db::Db;
use super::error::ApiError;
use super::{accounts, libraries, objects, sessions};
use crate::api::routes;
use crate::api::types::Health;
use crate::api::ErrorCode;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub blobs: BlobStore,
    /// Keys the stand-in salts for unknown e-mail addresses.
    pub secret: Arc<[u8; 32]>,
    /// A hash to verify against when the e-mail is unknown, so that takes as long as a
    /// wrong password.
    pub dummy_hash: Arc<str>,
}

impl AppState {
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
        .route(routes::ACCOUNT, get(accounts::show))
        .route(routes::SESSIONS, post(sessions::login))
        .route(routes::SESSION_CURRENT, delete(sessions::logout))
        .route(
            routes::LIBRARIES,
            get(libraries::list).post(libraries::create),
        )
        .route(
            routes::LIBRARY_HEAD,
            get(libraries::head).put(libraries::set_head),
        )
        .route(routes::LIBRARY_SNAPSHOTS, get(libraries::snapshots))
        .route(routes::OBJECTS_MISSING, post(objects::missing))
        .route(routes::OBJECTS_UPLOAD, post(objects::upload))
        .route(routes::OBJECTS_FETCH, post(objects::fetch))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // ApiJson and ApiBytes enforce their own limits, so they can answer cleanly.
        .layer(DefaultBodyLimit::disable())
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
