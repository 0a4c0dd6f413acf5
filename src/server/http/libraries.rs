//! Libraries: listing, creating, renaming and deleting; the head (moved only by
//! compare-and-swap) and the list of committed snapshots. Who may do what with a library
//! is decided here, in [`require`], for every library route.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::extract::{ApiJson, Caller};
use crate::api::types::{
    CreateLibraryRequest, HeadResponse, HeadUpdate, LibraryInfo, LibraryList, Permission,
    RenameLibraryRequest, SnapshotList,
};
use crate::api::ErrorCode;
use crate::api::GRANT_BYTES;
use crate::crypto::BlobKind;
use crate::db::{self, libraries, objects};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::validate;

/// What a request needs to do with a library.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    /// Only the owner: sharing, renaming, deleting, rotating the key.
    Own,
}

/// The caller's standing in a library, or the error that refuses the request.
pub struct Granted {
    pub owner_id: i64,
    pub permission: Permission,
}

pub fn require(
    conn: &crate::db::Conn,
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
            if need == Need::Own && permission != Permission::Owner =>
        {
            Err(ApiError::forbidden(
                "only the library's owner can do this; it was shared with you",
            ))
        }
        libraries::Access::Member { permission, .. }
            if need == Need::Write && !permission.can_write() =>
        {
            Err(ApiError::forbidden(
                "this library was shared with you read-only: you can read it, not change it",
            ))
        }
        libraries::Access::Member { owner_id, .. }
            if need == Need::Write && !crate::db::accounts::is_active(conn, owner_id)? =>
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
        .read(move |conn| libraries::list_for(conn, caller.account_id))
        .await?;
    Ok(Json(LibraryList { libraries }))
}

/// Checks a new library's fields (the name is sealed: the client checks its text).
pub fn check_new_library(req: &CreateLibraryRequest) -> ApiResult<()> {
    if !db::is_random_id(&req.id) {
        return Err(ApiError::bad_request(
            "a library id is 32 lowercase hex digits, chosen at random by the client",
        ));
    }
    validate::sealed_name(&req.name_sealed)?;
    validate::bytes_len("grant", &req.grant, GRANT_BYTES..=GRANT_BYTES)
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateLibraryRequest>,
) -> ApiResult<(StatusCode, Json<LibraryInfo>)> {
    check_new_library(&req)?;
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
            let tx = conn.transaction()?;
            if libraries::exists(&tx, &req.id)? {
                return Err(ApiError::new(
                    ErrorCode::AlreadyExists,
                    "a library with this id exists; choose another random id",
                ));
            }
            libraries::create(
                &tx,
                &req.id,
                caller.account_id,
                &req.name_sealed,
                &req.grant,
            )?;
            let info = libraries::info_for(&tx, &req.id, caller.account_id)?
                .ok_or_else(|| ApiError::internal("new library not visible"))?;
            tx.commit()?;
            Ok(info)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
    ApiJson(req): ApiJson<RenameLibraryRequest>,
) -> ApiResult<Json<LibraryInfo>> {
    validate::sealed_name(&req.name_sealed)?;
    let info = state
        .db
        .call(move |conn| -> ApiResult<LibraryInfo> {
            let tx = db::immediate(conn)?;
            require(&tx, &library_id, caller.account_id, Need::Own)?;
            let epoch = libraries::epoch(&tx, &library_id)?;
            if req.name_epoch != epoch {
                return Err(ApiError::stale_epoch(epoch));
            }
            libraries::rename(&tx, &library_id, &req.name_sealed, req.name_epoch)?;
            let info = libraries::info_for(&tx, &library_id, caller.account_id)?
                .ok_or_else(|| ApiError::internal("renamed library not visible"))?;
            tx.commit()?;
            Ok(info)
        })
        .await?;
    Ok(Json(info))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .db
        .call(move |conn| -> ApiResult<()> {
            let tx = db::immediate(conn)?;
            require(&tx, &library_id, caller.account_id, Need::Own)?;
            libraries::delete(&tx, &library_id)?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn head(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
) -> ApiResult<Json<HeadResponse>> {
    let head = state
        .db
        .read(move |conn| -> ApiResult<_> {
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
            // A snapshot sealed before a key rotation is readable by whoever was removed.
            let epoch = libraries::epoch(conn, &library_id)?;
            if libraries::snapshot_epoch(conn, &library_id, &req.new)? != Some(epoch) {
                return Err(ApiError::stale_epoch(epoch));
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
        .read(move |conn| -> ApiResult<_> {
            require(conn, &library_id, caller.account_id, Need::Read)?;
            Ok(libraries::committed_snapshots(conn, &library_id)?)
        })
        .await?;
    Ok(Json(SnapshotList { snapshots }))
}
