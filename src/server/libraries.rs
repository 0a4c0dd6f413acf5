//! Libraries: listing, creating, the head (moved only by compare-and-swap) and the list of
//! committed snapshots.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::app::AppState;
use super::db::{self, libraries, objects, DbError};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, Caller};
use super::validate;
use crate::api::types::{
    CreateLibraryRequest, HeadResponse, HeadUpdate, LibraryInfo, LibraryList, Permission,
    SnapshotList,
};
use crate::api::ErrorCode;
use crate::crypto::BlobKind;

/// What a request needs to do with a library.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

/// The caller's standing in a library, or the error that refuses the request.
pub struct Granted {
    pub owner_id: i64,
    pub permission: Permission,
}

pub fn require(
    conn: &rusqlite::Connection,
    library_id: &str,
    account_id: i64,
    need: Need,
) -> ApiResult<Granted> {
    if !db::is_random_id(library_id) {
        return Err(ApiError::not_found(format!(
            "no library has the id `{library_id}`"
        )));
    }
    match libraries::access(conn, library_id, account_id)? {
        libraries::Access::Unknown => Err(ApiError::not_found(format!(
            "no library has the id `{library_id}`"
        ))),
        libraries::Access::NotMember => Err(ApiError::forbidden(
            "this library belongs to another account and was not shared with you",
        )),
        libraries::Access::Member { permission, .. }
            if need == Need::Write && !permission.can_write() =>
        {
            Err(ApiError::forbidden(
                "this library was shared with you read-only",
            ))
        }
        libraries::Access::Member { owner_id, .. }
            if need == Need::Write && !super::db::accounts::is_active(conn, owner_id)? =>
        {
            Err(ApiError::new(
                ErrorCode::AccountInactive,
                "the subscription of this library's owner was canceled: its data can be read, \
                 not changed; `ibackup account reactivate` resumes it",
            ))
        }
        libraries::Access::Member {
            permission,
            owner_id,
        } => Ok(Granted {
            owner_id,
            permission,
        }),
    }
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<LibraryList>> {
    let libraries = state
        .db
        .call(move |conn| libraries::list_for(conn, caller.account_id))
        .await?;
    Ok(Json(LibraryList { libraries }))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateLibraryRequest>,
) -> ApiResult<(StatusCode, Json<LibraryInfo>)> {
    let name = validate::library_name(&req.name)?;
    validate::bytes_len("wrapped_key", &req.wrapped_key, 80..=80)?;
    let info = state
        .db
        .call(move |conn| -> ApiResult<LibraryInfo> {
            if !db::accounts::is_active(conn, caller.account_id)? {
                return Err(ApiError::new(
                    ErrorCode::AccountInactive,
                    "the subscription was canceled: `ibackup account reactivate` resumes it \
                     before you create libraries",
                ));
            }
            let tx = conn.transaction().map_err(DbError::from)?;
            if libraries::exists_for_owner(&tx, caller.account_id, &name)? {
                return Err(ApiError::new(
                    ErrorCode::AlreadyExists,
                    format!("you already have a library named `{name}`"),
                ));
            }
            let id = libraries::create(&tx, caller.account_id, &name, &req.wrapped_key)?;
            let info = libraries::info_for(&tx, &id, caller.account_id)?
                .ok_or_else(|| ApiError::internal("new library not visible"))?;
            tx.commit().map_err(DbError::from)?;
            Ok(info)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

pub async fn head(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
) -> ApiResult<Json<HeadResponse>> {
    let head = state
        .db
        .call(move |conn| -> ApiResult<_> {
            require(conn, &library_id, caller.account_id, Need::Read)?;
            Ok(libraries::head(conn, &library_id)?)
        })
        .await?;
    Ok(Json(HeadResponse { head }))
}

pub async fn set_head(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
    ApiJson(req): ApiJson<HeadUpdate>,
) -> ApiResult<Json<HeadResponse>> {
    state
        .db
        .call(move |conn| -> ApiResult<Json<HeadResponse>> {
            require(conn, &library_id, caller.account_id, Need::Write)?;
            if objects::kind_of(conn, &library_id, &req.new)? != Some(BlobKind::Snapshot) {
                return Err(ApiError::bad_request(format!(
                    "{} is not a snapshot stored in this library; upload it first",
                    req.new
                )));
            }
            match libraries::compare_and_swap_head(
                conn,
                &library_id,
                req.expected.as_ref(),
                &req.new,
            )? {
                Ok(()) => Ok(Json(HeadResponse {
                    head: Some(req.new),
                })),
                Err(actual) => Err(ApiError::head_moved(actual)),
            }
        })
        .await
}

pub async fn snapshots(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
) -> ApiResult<Json<SnapshotList>> {
    let snapshots = state
        .db
        .call(move |conn| -> ApiResult<_> {
            require(conn, &library_id, caller.account_id, Need::Read)?;
            Ok(libraries::committed_snapshots(conn, &library_id)?)
        })
        .await?;
    Ok(Json(SnapshotList { snapshots }))
}
