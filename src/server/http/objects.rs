//! Object storage routes: which ids are missing, batch upload, batch fetch.
//!
//! An upload is accepted whole or not at all. The server checks what it can without keys:
//! sizes, kinds, the envelope version, that new objects are sealed under the library's
//! newest key epoch (so a member removed by a rotation cannot read what is written later,
//! even by a writer that has not noticed the rotation yet), that every referenced object is
//! already stored (or earlier in the same batch), and the owner's quota. New blobs go to one
//! pack file, written durably before the rows that point at it are committed.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::answer;
use super::extract::{upload_body, ApiJson, Caller};
use super::libraries::{require, Need};
use crate::api::routes::{MAX_BATCH_BYTES, MAX_IDS_PER_REQUEST};
use crate::api::types::{IdList, MissingResponse, UploadObject, UploadResponse};
use crate::api::{frame, ErrorCode};
use crate::config::ServerConfig;
use crate::crypto::blob::{blob_epoch, max_sealed_len, BLOB_VERSION, MIN_BLOB_LEN};
use crate::crypto::{BlobKind, ObjectId};
use crate::db::uploads::{self, OverQuota, Refused, Upload};
use crate::db::{self, libraries, objects, retention};
use crate::error::{ApiError, ApiResult};
use crate::model::chunker::MAX_CHUNK;
use crate::state::AppState;

/// Largest tree or snapshot blob.
const MAX_METADATA_BLOB: usize = 32 << 20;
const MAX_OBJECTS_PER_UPLOAD: usize = 100_000;

pub fn check_ids(ids: &[ObjectId]) -> ApiResult<()> {
    if ids.len() > MAX_IDS_PER_REQUEST {
        return Err(ApiError::too_large(format!(
            "{} ids in one request; send at most {MAX_IDS_PER_REQUEST}",
            ids.len()
        )));
    }
    Ok(())
}

pub async fn missing(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
    ApiJson(req): ApiJson<IdList>,
) -> ApiResult<Json<MissingResponse>> {
    check_ids(&req.ids)?;
    let missing = state
        .db
        .call(move |conn| -> ApiResult<_> {
            require(conn, &library_id, caller.account_id, Need::Read)?;
            let missing = objects::missing(conn, &library_id, &req.ids)?;
            // What a client is told exists, it will reference without uploading: collection
            // must spare it for the grace period (docs/DECISIONS.md, collection).
            let absent: HashSet<&ObjectId> = missing.iter().collect();
            let present: Vec<ObjectId> = req
                .ids
                .iter()
                .filter(|id| !absent.contains(id))
                .copied()
                .collect();
            let tx = db::immediate(conn)?;
            // One transaction: a commit per id would be an fsync per id.
            retention::touch(&tx, &library_id, &present)?;
            tx.commit()?;
            Ok(missing)
        })
        .await?;
    Ok(Json(MissingResponse { missing }))
}

/// Checks one declared object against what the server can know about it.
fn check_object(object: &UploadObject, blob: &[u8]) -> ApiResult<()> {
    let max = match object.kind {
        BlobKind::Chunk => max_sealed_len(MAX_CHUNK as usize),
        BlobKind::Tree | BlobKind::Snapshot => max_sealed_len(MAX_METADATA_BLOB),
    };
    if blob.len() < MIN_BLOB_LEN || blob.len() > max {
        return Err(ApiError::bad_request(format!(
            "object {} is {} bytes; a {:?} blob is {MIN_BLOB_LEN} to {max} bytes",
            object.id,
            blob.len(),
            object.kind
        )));
    }
    if blob[0] != BLOB_VERSION {
        return Err(ApiError::bad_request(format!(
            "object {} has envelope version {}; this server stores version {BLOB_VERSION}",
            object.id, blob[0]
        )));
    }
    if let Some(meta) = &object.snapshot {
        if meta.tag_macs.len() > 32
            || !meta
                .tag_macs
                .iter()
                .all(|m| super::retention::is_tag_mac(m))
        {
            return Err(ApiError::bad_request(
                "a snapshot carries at most 32 tag hashes of 32 hex digits",
            ));
        }
    }
    let shape_ok = match object.kind {
        BlobKind::Chunk => object.refs.is_empty() && object.snapshot.is_none(),
        BlobKind::Tree => object.snapshot.is_none(),
        BlobKind::Snapshot => object.refs.len() == 1 && object.snapshot.is_some(),
    };
    if !shape_ok {
        return Err(ApiError::bad_request(format!(
            "object {}: a chunk has no refs, a tree no snapshot metadata, and a snapshot \
             exactly one ref (its tree) and its metadata",
            object.id
        )));
    }
    Ok(())
}

pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
    request: axum::extract::Request,
) -> ApiResult<Json<UploadResponse>> {
    // Who may write is known before a byte of the body is read or memory is held for it.
    let lib = library_id.clone();
    state
        .db
        .read(move |conn| require(conn, &lib, caller.account_id, Need::Write).map(drop))
        .await?;
    let (body, _upload_memory) = upload_body(&state, caller.account_id, request).await?;
    let (header, blobs) =
        frame::decode_upload(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if header.objects.len() > MAX_OBJECTS_PER_UPLOAD {
        return Err(ApiError::too_large(format!(
            "{} objects in one upload; send at most {MAX_OBJECTS_PER_UPLOAD}",
            header.objects.len()
        )));
    }
    for (object, blob) in header.objects.iter().zip(&blobs) {
        check_object(object, blob)?;
    }

    // 1. Decide what is new and check references and quota before writing anything.
    let objects_meta = header.objects.clone();
    let lib = library_id.clone();
    let config = state.config.clone();
    let epochs: Vec<u32> = blobs.iter().map(|b| blob_epoch(b).unwrap_or(0)).collect();
    let (new_indices, owner_id, epoch) = state
        .db
        .call(move |conn| -> ApiResult<_> {
            let granted = require(conn, &lib, caller.account_id, Need::Write)?;
            let epoch = libraries::epoch(conn, &lib)?;
            let ids: Vec<ObjectId> = objects_meta.iter().map(|o| o.id).collect();
            let absent: HashSet<ObjectId> =
                objects::missing(conn, &lib, &ids)?.into_iter().collect();
            let mut earlier: HashMap<ObjectId, BlobKind> = HashMap::new();
            let mut new_indices = Vec::new();
            let mut new_bytes = 0u64;
            for (index, object) in objects_meta.iter().enumerate() {
                for r in &object.refs {
                    let kind = match earlier.get(r) {
                        Some(kind) => Some(*kind),
                        None => objects::kind_of(conn, &lib, r)?,
                    };
                    let fits = match (object.kind, kind) {
                        (_, None) => false,
                        (BlobKind::Snapshot, Some(kind)) => kind == BlobKind::Tree,
                        (_, Some(kind)) => kind != BlobKind::Snapshot,
                    };
                    if !fits {
                        return Err(ApiError::new(
                            ErrorCode::MissingReferences,
                            format!(
                                "object {} references {r}, which is not stored (or is the \
                                 wrong kind); upload what it references first",
                                object.id
                            ),
                        ));
                    }
                }
                if absent.contains(&object.id) && !earlier.contains_key(&object.id) {
                    if epochs[index] != epoch {
                        return Err(ApiError::stale_epoch(epoch));
                    }
                    new_indices.push(index);
                    new_bytes += u64::from(object.len);
                }
                earlier.insert(object.id, object.kind);
            }
            check_quota(
                conn,
                &config,
                granted.owner_id,
                caller.account_id,
                new_bytes,
            )?;
            Ok((new_indices, granted.owner_id, epoch))
        })
        .await?;
    let already_present = (header.objects.len() - new_indices.len()) as u64;
    if new_indices.is_empty() {
        return Ok(Json(UploadResponse {
            stored: 0,
            stored_bytes: 0,
            already_present,
        }));
    }

    // 2. Write the new blobs as one pack, durably.
    let pack_id = db::random_id();
    let mut placed = Vec::with_capacity(new_indices.len());
    let mut offset = 0u64;
    for &index in &new_indices {
        let size = blobs[index].len() as u64;
        let location = objects::Location {
            pack_id: pack_id.clone(),
            offset,
            size,
            checksum: crc32c::crc32c(blobs[index]),
        };
        offset += size;
        placed.push((header.objects[index].clone(), location));
    }
    let pack_size = offset;
    // When every object is new (the usual case) the pack is the body's blob region as is.
    let pack: axum::body::Bytes = if new_indices.len() == header.objects.len() {
        let data_start = body.len() - blobs.iter().map(|b| b.len()).sum::<usize>();
        body.slice(data_start..)
    } else {
        let mut pack = Vec::with_capacity(pack_size as usize);
        for &index in &new_indices {
            pack.extend_from_slice(blobs[index]);
        }
        pack.into()
    };
    let store = state.blobs.clone();
    let (lib, pid) = (library_id.clone(), pack_id.clone());
    tokio::task::spawn_blocking(move || store.write_pack(&lib, &pid, pack))
        .await
        .map_err(ApiError::internal)??;

    // 3. Record it all in one transaction; on any refusal, drop the pack again.
    let library = library_id.clone();
    let pack = pack_id.clone();
    let config = state.config.clone();
    let all = header.objects;
    let committed = state
        .db
        .call(move |conn| -> ApiResult<UploadResponse> {
            let upload = Upload {
                library: &library,
                pack_id: &pack,
                pack_size,
                epoch,
                owner_id,
                all: &all,
                placed: &placed,
            };
            let recorded = uploads::record(conn, &config, &upload)
                .map_err(|refused| refusal(refused, caller.account_id == owner_id))?;
            Ok(UploadResponse {
                stored: recorded.stored,
                stored_bytes: recorded.stored_bytes,
                already_present: already_present + recorded.raced,
            })
        })
        .await;
    if committed.is_err() {
        let store = state.blobs.clone();
        let _ = tokio::task::spawn_blocking(move || store.delete_pack(&library_id, &pack_id)).await;
    }
    Ok(Json(committed?))
}

/// What the caller is told of an upload the database refused.
fn refusal(refused: Refused, caller_owns: bool) -> ApiError {
    match refused {
        Refused::Collected(gone) => ApiError::new(
            ErrorCode::MissingReferences,
            format!(
                "object {gone} was collected while this upload ran; nothing was recorded: run \
                 the backup again (it uploads what is missing now)"
            ),
        ),
        Refused::StaleEpoch(epoch) => ApiError::stale_epoch(epoch),
        Refused::OverQuota(over) => quota_error(over, caller_owns),
        Refused::Db(error) => error.into(),
    }
}

/// Storage is charged to the library's owner, whoever uploads; a member is told whose
/// quota is full.
fn quota_error(over: OverQuota, caller_owns: bool) -> ApiError {
    let named = (!caller_owns).then_some(over.owner_email.as_str());
    ApiError::quota_exceeded(over.used, over.limit, named)
}

/// Checks the quota before anything is written (the transaction that records checks again).
fn check_quota(
    conn: &crate::db::Conn,
    config: &ServerConfig,
    owner_id: i64,
    caller_id: i64,
    adding: u64,
) -> ApiResult<()> {
    match uploads::over_quota(conn, config, owner_id, adding)? {
        Some(over) => Err(quota_error(over, caller_id == owner_id)),
        None => Ok(()),
    }
}

pub async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(library_id): Path<String>,
    ApiJson(req): ApiJson<IdList>,
) -> ApiResult<Response> {
    check_ids(&req.ids)?;
    let lib = library_id.clone();
    state
        .db
        .read(move |conn| require(conn, &lib, caller.account_id, Need::Read).map(drop))
        .await?;
    let holder = format!("account {}", caller.account_id);
    serve(&state, &holder, library_id, req.ids).await
}

/// Answers with the blobs of `ids` as frames (`u32` length, blob), after the caller's right
/// to them was checked (a member's, or a link visitor's). The answer is read from the packs
/// and sent a piece at a time (`answer`), each piece counted against `limits.fetch_memory`
/// for `holder` (the account, or the link) until it is sent or the connection ends; a client
/// that stops reading is cut off by the connection's write deadline (`serve_connection`),
/// which gives them back.
pub async fn serve(
    state: &AppState,
    holder: &str,
    library_id: String,
    ids: Vec<ObjectId>,
) -> ApiResult<Response> {
    let lib = library_id.clone();
    let wanted = state
        .db
        .read(move |conn| -> ApiResult<Vec<answer::Location>> {
            let locations = objects::locate(conn, &lib, &ids)?;
            let mut wanted = Vec::with_capacity(locations.len());
            let mut total = 0u64;
            for (id, location) in ids.iter().zip(locations) {
                let location = location.ok_or_else(|| {
                    ApiError::not_found(format!("object {id} is not stored in this library"))
                })?;
                total += location.size + 4;
                wanted.push((location.pack_id, location.offset, location.size));
            }
            if total > MAX_BATCH_BYTES as u64 {
                return Err(ApiError::too_large(format!(
                    "these objects total {total} bytes; ask for at most {MAX_BATCH_BYTES} at once"
                )));
            }
            Ok(wanted)
        })
        .await?;
    let body = answer::stream(
        state.blobs.clone(),
        state.answers.clone(),
        holder.to_owned(),
        library_id,
        wanted,
    )
    .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        axum::body::Body::new(body),
    )
        .into_response())
}
