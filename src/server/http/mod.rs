//! The HTTP API: one module per area, each owning its handlers, and the route table (see
//! `docs/PROTOCOL.md`). Handlers share [`AppState`]; what they store goes through `db` and
//! `storage`, never SQL or files of their own.

pub mod account_keys;
pub mod accounts;
pub mod addresses;
mod answer;
pub mod billing;
pub mod extract;
pub mod libraries;
pub mod links;
pub mod objects;
pub mod pages;
pub mod privacy;
pub mod profile;
pub mod recovery;
pub mod retention;
pub mod sessions;
pub mod sharing;
mod track;
pub mod web;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};

use super::error::ApiError;
use super::state::AppState;
use crate::api::routes;
use crate::api::types::Health;
use crate::api::ErrorCode;

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
        .route(routes::ACCOUNT_PLAN_QUOTE, get(billing::quote))
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
        .route(routes::WEB_APP, get(web::app_page))
        .route(routes::LINK_PAGE, get(web::link_page))
        .route(routes::ASSET, get(web::asset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // ApiJson and upload bodies enforce their own limits, so they can answer cleanly.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            track::track,
        ))
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        certificate: state.certificate.as_deref().map(str::to_owned),
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
