//! Links: a library's owner hands out one folder to people without an account.
//!
//! The key of the folder's tree travels in the URL's fragment, which browsers and `ibackup
//! get` never send, so the server never sees it. The server knows the id of the tree the
//! link reaches, checks the password (Argon2id, throttled per link) and expiry before it
//! serves anything, and then serves only blobs reachable from that tree through the edges it
//! recorded at upload: a visitor cannot fetch anything else, and could not decrypt it if they
//! did (docs/FORMAT.md, "What a key reaches").

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;

use super::extract::{hash_token, new_token, ApiJson, Caller};
use super::libraries::{require, Need};
use crate::api::links::{
    CreateLinkRequest, LinkFetchRequest, LinkInfo, LinkList, OpenLinkRequest, OpenLinkResponse,
    PointerUpdate,
};
use crate::api::{ErrorCode, CHAIN_LINK_BYTES};
use crate::crypto::{kdf, BlobKind, ObjectId};
use crate::db::{self, links, objects};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::throttle::Guess;
use crate::validate;

/// How long a visitor's token lasts after opening a link.
const TOKEN_SECS: i64 = 3600;
const MAX_EXPIRY_SECS: u64 = 10 * 365 * 24 * 3600;

fn no_link() -> ApiError {
    ApiError::not_found("no such link; check that the whole URL was copied")
}

/// Refuses a link that was revoked or has expired, with the reason.
fn usable(link: &links::Link) -> ApiResult<()> {
    if link.revoked_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::Gone,
            "this link was revoked by its owner",
        ));
    }
    if link.expires_at.is_some_and(|at| at < db::now()) {
        return Err(ApiError::new(ErrorCode::Gone, "this link has expired"));
    }
    Ok(())
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
    ApiJson(req): ApiJson<CreateLinkRequest>,
) -> ApiResult<(StatusCode, Json<LinkInfo>)> {
    if !db::is_random_id(&req.id) {
        return Err(ApiError::bad_request(
            "a link id is 32 lowercase hex digits, chosen at random by the client",
        ));
    }
    validate::bytes_len("label_sealed", &req.label_sealed, 40..=4096)?;
    let pointer_len = if req.follow { CHAIN_LINK_BYTES } else { 0 };
    validate::bytes_len("pointer", &req.pointer, pointer_len..=pointer_len)?;
    if let Some(secs) = req.expires_in_secs {
        if secs == 0 || secs > MAX_EXPIRY_SECS {
            return Err(ApiError::bad_request(
                "expires_in_secs must be from 1 s to 10 years",
            ));
        }
    }
    let password_hash = match &req.password {
        Some(password) if password.is_empty() || password.chars().count() > 200 => {
            return Err(ApiError::bad_request(
                "a link password is 1 to 200 characters",
            ))
        }
        Some(password) => {
            let password = password.clone();
            Some(
                state
                    .hashers
                    .run(move || kdf::hash_auth_secret(password.as_bytes()))
                    .await?
                    .map_err(ApiError::internal)?,
            )
        }
        None => None,
    };
    let info = state
        .db
        .call(move |conn| -> ApiResult<LinkInfo> {
            let tx = db::immediate(conn)?;
            require(&tx, &library_id, caller.account_id, Need::Own)?;
            if objects::kind_of(&tx, &library_id, &req.root)? != Some(BlobKind::Tree) {
                return Err(ApiError::not_found(format!(
                    "{} is not a folder stored in this library",
                    req.root
                )));
            }
            if links::exists(&tx, &req.id)? {
                return Err(ApiError::new(
                    ErrorCode::AlreadyExists,
                    "a link with this id exists; choose another random id",
                ));
            }
            links::insert(
                &tx,
                &links::NewLink {
                    id: &req.id,
                    library_id: &library_id,
                    account_id: caller.account_id,
                    root: &req.root,
                    follow: req.follow,
                    pointer: &req.pointer,
                    label_sealed: &req.label_sealed,
                    password_hash: password_hash.as_deref(),
                    expires_at: req.expires_in_secs.map(|s| db::now() + s as i64),
                },
            )?;
            let info = links::list_for(&tx, caller.account_id)?
                .into_iter()
                .find(|l| l.id == req.id)
                .ok_or_else(|| ApiError::internal("new link not listed"))?;
            tx.commit()?;
            Ok(info)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<LinkList>> {
    let links = state
        .db
        .call(move |conn| Ok::<_, ApiError>(links::list_for(conn, caller.account_id)?))
        .await?;
    Ok(Json(LinkList { links }))
}

pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .db
        .call(move |conn| -> ApiResult<()> {
            match links::get(conn, &id)? {
                Some(link) if link.account_id == caller.account_id => {
                    if !links::revoke(conn, &id, caller.account_id)? {
                        return Err(ApiError::new(
                            ErrorCode::Gone,
                            "this link was revoked already",
                        ));
                    }
                    Ok(())
                }
                _ => Err(no_link()),
            }
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Re-points a `follow` link at the tree of a new snapshot (the owner's client, after a
/// commit).
pub async fn set_pointer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PointerUpdate>,
) -> ApiResult<StatusCode> {
    validate::bytes_len("pointer", &req.pointer, CHAIN_LINK_BYTES..=CHAIN_LINK_BYTES)?;
    state
        .db
        .call(move |conn| -> ApiResult<()> {
            let link = links::get(conn, &id)?
                .filter(|l| l.account_id == caller.account_id)
                .ok_or_else(no_link)?;
            if !link.follow {
                return Err(ApiError::bad_request(
                    "this link shows one snapshot; only a --follow link is re-pointed",
                ));
            }
            usable(&link)?;
            require(conn, &link.library_id, caller.account_id, Need::Own)?;
            if objects::kind_of(conn, &link.library_id, &req.root)? != Some(BlobKind::Tree) {
                return Err(ApiError::not_found(format!(
                    "{} is not a folder stored in this library",
                    req.root
                )));
            }
            links::set_pointer(conn, &id, &req.root, &req.pointer)?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A visitor opens a link: expiry, revocation and the password are checked, and a token for
/// fetching its blobs is given.
pub async fn open(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<OpenLinkRequest>,
) -> ApiResult<Json<OpenLinkResponse>> {
    if !db::is_random_id(&id) {
        return Err(no_link());
    }
    let guess = Arc::new(Guess::new(&state, "link", &id, peer.ip()));
    let started = guess.clone();
    let lookup = id.clone();
    let guessing = req.password.is_some();
    let link = state
        .db
        .call(move |conn| -> ApiResult<links::Link> {
            let link = links::get(conn, &lookup)?.ok_or_else(no_link)?;
            usable(&link)?;
            match (&link.password_hash, guessing) {
                (Some(_), false) => Err(ApiError::unauthorized(
                    "this link needs a password; ask whoever sent it",
                )),
                (Some(_), true) => started.begin(conn).map(|()| link),
                (None, _) => Ok(link),
            }
        })
        .await?;
    if let (Some(hash), Some(password)) = (link.password_hash.clone(), req.password) {
        let verified = guess
            .check(&state, move || {
                kdf::verify_auth_secret(password.as_bytes(), &hash)
            })
            .await?;
        if !verified {
            return Err(ApiError::unauthorized(
                "wrong password for this link; check it with whoever sent the link",
            ));
        }
    }
    let (token, hash) = new_token();
    let link_id = link.id.clone();
    state
        .db
        .call(move |conn| {
            links::add_session(conn, &hash, &link_id, db::now() + TOKEN_SECS)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(Json(OpenLinkResponse {
        token,
        root: link.root,
        follow: link.follow,
        pointer: link.pointer,
        expires_at: link.expires_at,
    }))
}

/// Blobs of a link's folder, for a visitor holding a token from [`open`]; only what is
/// reachable from the link's root is served.
pub async fn fetch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<LinkFetchRequest>,
) -> ApiResult<Response> {
    super::objects::check_ids(&req.ids)?;
    let token = hash_token(&req.token);
    let lookup = id.clone();
    let link = state
        .db
        .call(move |conn| -> ApiResult<links::Link> {
            if links::session(conn, &token)?.as_deref() != Some(lookup.as_str()) {
                return Err(ApiError::unauthorized(
                    "this visit of the link ended; open the link again",
                ));
            }
            let link = links::get(conn, &lookup)?.ok_or_else(no_link)?;
            usable(&link)?;
            Ok(link)
        })
        .await?;
    let reach = reachable(&state, &link).await?;
    if let Some(outside) = req.ids.iter().find(|id| !reach.contains(id)) {
        return Err(ApiError::forbidden(format!(
            "object {outside} is not inside this link's folder"
        )));
    }
    let holder = format!("link {id}");
    super::objects::serve(&state, &holder, link.library_id, req.ids).await
}

/// What a link's current root reaches, computed once per root and kept (a follow link's new
/// root is a new entry; the cache is bounded).
async fn reachable(state: &AppState, link: &links::Link) -> ApiResult<Arc<HashSet<ObjectId>>> {
    let cache_key = (link.id.clone(), link.root);
    if let Some(found) = state.reach_cache().get(&cache_key) {
        return Ok(found.clone());
    }
    let (library, root) = (link.library_id.clone(), link.root);
    let reach = Arc::new(
        state
            .db
            .call(move |conn| Ok::<_, ApiError>(links::reachable(conn, &library, &root)?))
            .await?,
    );
    let mut cache = state.reach_cache();
    if cache.len() >= 64 {
        cache.clear();
    }
    cache.insert(cache_key, reach.clone());
    Ok(reach)
}
