//! Retention routes: a library's policy (stored here so every member and the server apply
//! the same one) and forgetting snapshots by hand. What forgetting frees is collected by
//! `gc` (on the maintenance schedule, or `ibackup-server gc`).

use axum::extract::{Path, State};
use axum::Json;

use super::extract::{ApiJson, Caller};
use super::libraries::{require, Need};
use crate::api::types::{ForgetRequest, ForgetResponse, HoldRequest};
use crate::db::{self, libraries, retention};
use crate::error::{ApiError, ApiResult};
use crate::model::retention::Policy;
use crate::state::AppState;

const MAX_KEEP: u32 = 100_000;
const MAX_TAGS: usize = 64;

pub async fn policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
) -> ApiResult<Json<Policy>> {
    let policy = state
        .db
        .call(move |conn| -> ApiResult<Policy> {
            require(conn, &library_id, caller.account_id, Need::Read)?;
            Ok(retention::policy(conn, &library_id)?)
        })
        .await?;
    Ok(Json(policy))
}

/// A tag as the server holds it: its keyed hash, 32 lowercase hex digits.
pub fn is_tag_mac(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub async fn set_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
    ApiJson(policy): ApiJson<Policy>,
) -> ApiResult<Json<Policy>> {
    let counts = [
        policy.keep_last,
        policy.keep_hourly,
        policy.keep_daily,
        policy.keep_weekly,
        policy.keep_monthly,
        policy.keep_yearly,
    ];
    if counts.iter().any(|&n| n > MAX_KEEP) {
        return Err(ApiError::bad_request(format!(
            "keep at most {MAX_KEEP} snapshots per rule"
        )));
    }
    if policy.keep_tags.len() > MAX_TAGS || !policy.keep_tags.iter().all(|t| is_tag_mac(t)) {
        return Err(ApiError::bad_request(format!(
            "keep_tags holds at most {MAX_TAGS} tag hashes of 32 hex digits (clients hash tags; \
             the server never sees them)"
        )));
    }
    let saved = policy.clone();
    state
        .db
        .call(move |conn| -> ApiResult<()> {
            require(conn, &library_id, caller.account_id, Need::Write)?;
            Ok(retention::set_policy(conn, &library_id, &saved)?)
        })
        .await?;
    Ok(Json(policy))
}

/// A mount reading inside snapshots holds their trees (see `db::retention::set_holds`).
pub async fn hold(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
    ApiJson(req): ApiJson<HoldRequest>,
) -> ApiResult<axum::http::StatusCode> {
    if !db::is_random_id(&req.holder) {
        return Err(ApiError::bad_request("a holder is 32 lowercase hex digits"));
    }
    super::objects::check_ids(&req.roots)?;
    if req.ttl_secs == 0 || req.ttl_secs > 86_400 {
        return Err(ApiError::bad_request("ttl_secs is 1 to 86400"));
    }
    state
        .db
        .call(move |conn| -> ApiResult<()> {
            require(conn, &library_id, caller.account_id, Need::Read)?;
            let until = db::now() + req.ttl_secs as i64;
            let tx = db::immediate(conn)?;
            let held = retention::set_holds(
                &tx,
                &library_id,
                caller.account_id,
                &req.holder,
                &req.roots,
                until,
            )?;
            if !held {
                return Err(ApiError::forbidden(format!(
                    "{} mounts of your account already hold snapshots of this library; \
                         unmount one, or wait up to a day for a stopped one's holds to end",
                    retention::HOLDERS_PER_ACCOUNT
                )));
            }
            tx.commit()?;
            Ok(())
        })
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

pub async fn forget(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
    ApiJson(req): ApiJson<ForgetRequest>,
) -> ApiResult<Json<ForgetResponse>> {
    super::objects::check_ids(&req.ids)?;
    let forgotten = state
        .db
        .call(move |conn| -> ApiResult<usize> {
            let tx = db::immediate(conn)?;
            require(&tx, &library_id, caller.account_id, Need::Write)?;
            let head = libraries::head(&tx, &library_id)?;
            let kept: Vec<_> = retention::retained(&tx, &library_id)?
                .into_iter()
                .map(|s| s.id)
                .collect();
            for id in &req.ids {
                if Some(*id) == head {
                    return Err(ApiError::bad_request(format!(
                        "snapshot {} is the library's current state (its head) and cannot be \
                         forgotten; forget older ones",
                        id.short()
                    )));
                }
                if !kept.contains(id) {
                    return Err(ApiError::not_found(format!(
                        "snapshot {} is not a listed snapshot of this library",
                        id.short()
                    )));
                }
            }
            let forgotten = retention::forget(&tx, &library_id, &req.ids)?;
            tx.commit()?;
            Ok(forgotten)
        })
        .await?;
    Ok(Json(ForgetResponse {
        forgotten: forgotten as u64,
    }))
}
