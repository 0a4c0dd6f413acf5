//! Sharing: looking up an account's public key, granting members access, removing them with
//! a key rotation in the same step, members leaving.
//!
//! The server enforces who may do what (only the owner shares, removes and rotates) and that
//! a rotation leaves no remaining member without a grant of the new epoch; the grants
//! themselves are boxed by the owner's client, and the server cannot make or open one.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::extract::{ApiJson, Caller};
use super::libraries::{require, Need};
use crate::api::types::{
    AddMemberRequest, ContactKey, ContactRequest, LibraryInfo, MemberInfo, MemberList, Permission,
    RotateRequest,
};
use crate::api::{ErrorCode, CHAIN_LINK_BYTES, GRANT_BYTES, ROSTER_BYTES};
use crate::db::{accounts, immediate, libraries};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::validate;

fn no_account(email: &str) -> ApiError {
    ApiError::not_found(format!(
        "no account uses the e-mail address {email}; they need to sign up before you can share \
         with them"
    ))
}

/// An account's public key, so the owner's client can box a grant to it.
pub async fn contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ContactRequest>,
) -> ApiResult<Json<ContactKey>> {
    let email = validate::email(&req.email)?;
    let lookup = crate::throttle::Lookup::new(&state, caller.account_id);
    let account = state
        .db
        .call(move |conn| -> ApiResult<_> {
            lookup.count(conn)?;
            Ok(accounts::by_email(conn, &email)?)
        })
        .await?
        .ok_or_else(|| no_account(&req.email))?;
    Ok(Json(ContactKey {
        email: account.email,
        public_key: account.public_key,
    }))
}

pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
) -> ApiResult<Json<MemberList>> {
    let list = state
        .db
        .call(move |conn| -> ApiResult<MemberList> {
            let granted = require(conn, &library_id, caller.account_id, Need::Read)?;
            let roster = match granted.permission {
                Permission::Owner => libraries::roster(conn, &library_id)?,
                _ => None,
            };
            Ok(MemberList {
                members: libraries::members(conn, &library_id)?,
                roster,
            })
        })
        .await?;
    Ok(Json(list))
}

pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
    ApiJson(req): ApiJson<AddMemberRequest>,
) -> ApiResult<(StatusCode, Json<MemberList>)> {
    let email = validate::email(&req.email)?;
    validate::bytes_len("grant", &req.grant, GRANT_BYTES..=GRANT_BYTES)?;
    validate::bytes_len("roster", &req.roster, ROSTER_BYTES)?;
    if req.permission == Permission::Owner {
        return Err(ApiError::bad_request(
            "share with `read` or `read-write`; a library has one owner",
        ));
    }
    let members = state
        .db
        .call(move |conn| -> ApiResult<Vec<MemberInfo>> {
            let tx = immediate(conn)?;
            require(&tx, &library_id, caller.account_id, Need::Own)?;
            let member = accounts::by_email(&tx, &email)?.ok_or_else(|| no_account(&email))?;
            if member.id == caller.account_id {
                return Err(ApiError::bad_request(
                    "you own this library; share it with someone else",
                ));
            }
            if let libraries::Access::Member { permission, .. } =
                libraries::access(&tx, &library_id, member.id)?
            {
                return Err(ApiError::new(
                    ErrorCode::AlreadyExists,
                    format!(
                        "the library is already shared with {email} ({}); remove the share \
                         first to change it",
                        permission.as_str()
                    ),
                ));
            }
            let epoch = libraries::epoch(&tx, &library_id)?;
            if req.epoch != epoch {
                return Err(ApiError::stale_epoch(epoch));
            }
            libraries::add_member(
                &tx,
                &library_id,
                member.id,
                req.permission,
                epoch,
                &req.grant,
            )?;
            libraries::set_roster(&tx, &library_id, &req.roster)?;
            let members = libraries::members(&tx, &library_id)?;
            tx.commit()?;
            Ok(members)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(MemberList {
            members,
            roster: None,
        }),
    ))
}

/// Starts a new key epoch, removing a member in the same transaction when asked: the
/// removed member is refused from the next request on, and every remaining member has a
/// grant of the new epoch.
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
    ApiJson(req): ApiJson<RotateRequest>,
) -> ApiResult<Json<LibraryInfo>> {
    validate::bytes_len("link", &req.link, CHAIN_LINK_BYTES..=CHAIN_LINK_BYTES)?;
    validate::sealed_name(&req.name_sealed)?;
    validate::bytes_len("roster", &req.roster, ROSTER_BYTES)?;
    for grant in &req.grants {
        validate::bytes_len("grant", &grant.grant, GRANT_BYTES..=GRANT_BYTES)?;
    }
    let remove = req.remove.as_deref().map(validate::email).transpose()?;
    let refuse = req
        .refuse
        .iter()
        .map(|email| validate::email(email))
        .collect::<ApiResult<Vec<String>>>()?;
    let info = state
        .db
        .call(move |conn| -> ApiResult<LibraryInfo> {
            let tx = immediate(conn)?;
            require(&tx, &library_id, caller.account_id, Need::Own)?;
            let epoch = libraries::epoch(&tx, &library_id)?;
            if req.epoch != epoch + 1 {
                return Err(ApiError::stale_epoch(epoch));
            }
            if let Some(email) = &remove {
                let member = accounts::by_email(&tx, email)?
                    .filter(|m| m.id != caller.account_id)
                    .ok_or_else(|| not_a_member(email))?;
                if !libraries::remove_member(&tx, &library_id, member.id)? {
                    return Err(not_a_member(email));
                }
            }
            // Members the owner's client refuses (it did not add them) go in the same step;
            // one already gone is no error.
            for email in &refuse {
                if let Some(member) =
                    accounts::by_email(&tx, email)?.filter(|m| m.id != caller.account_id)
                {
                    libraries::remove_member(&tx, &library_id, member.id)?;
                }
            }
            let mut grants: HashMap<i64, Vec<u8>> = HashMap::new();
            for grant in &req.grants {
                let email = validate::email(&grant.email)?;
                let account = accounts::by_email(&tx, &email)?.ok_or_else(|| no_account(&email))?;
                grants.insert(account.id, grant.grant.clone());
            }
            let remaining: HashSet<i64> = libraries::member_ids(&tx, &library_id)?
                .into_iter()
                .collect();
            let granted: HashSet<i64> = grants.keys().copied().collect();
            if granted != remaining {
                return Err(ApiError::new(
                    ErrorCode::HeadMoved,
                    "the members changed while the new key was made (or a grant is missing or \
                     extra); reload the members and try again",
                ));
            }
            let grants: Vec<(i64, Vec<u8>)> = grants.into_iter().collect();
            libraries::rotate(
                &tx,
                &library_id,
                req.epoch,
                &req.link,
                &req.name_sealed,
                &grants,
            )?;
            libraries::set_roster(&tx, &library_id, &req.roster)?;
            let info = libraries::info_for(&tx, &library_id, caller.account_id)?
                .ok_or_else(|| ApiError::internal("rotated library not visible"))?;
            tx.commit()?;
            Ok(info)
        })
        .await?;
    Ok(Json(info))
}

fn not_a_member(email: &str) -> ApiError {
    ApiError::not_found(format!(
        "the library is not shared with {email}; `ibackup share list` shows who has it"
    ))
}

/// A member leaves a library shared with them. Their keys still open what exists, so the
/// owner's client is asked to start a new epoch for what is written next.
pub async fn leave(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .db
        .call(move |conn| -> ApiResult<()> {
            let tx = immediate(conn)?;
            let granted = require(&tx, &library_id, caller.account_id, Need::Read)?;
            if granted.permission == Permission::Owner {
                return Err(ApiError::bad_request(
                    "you own this library, so you cannot leave it; `ibackup library delete` \
                     deletes it",
                ));
            }
            libraries::remove_member(&tx, &library_id, caller.account_id)?;
            libraries::request_rotation(&tx, &library_id)?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
