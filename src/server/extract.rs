//! Request extractors that turn every malformed input into a JSON error a person can act on:
//! [`ApiJson`] for bodies, [`Caller`] for the bearer token.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::app::AppState;
use super::db::sessions;
use super::error::ApiError;

/// A JSON body of at most `MAX_JSON_BYTES`; malformed, mistyped or oversized bodies become
/// 400 or 413 with the reason.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim() == "application/json" || v.trim().ends_with("+json"))
            .unwrap_or(false);
        if !json {
            return Err(ApiError::bad_request(
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let body = read_limited(req, crate::api::routes::MAX_JSON_BYTES).await?;
        serde_json::from_slice(&body)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
    }
}

/// A raw body of at most `MAX_BATCH_BYTES`.
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        read_limited(req, crate::api::routes::MAX_BATCH_BYTES)
            .await
            .map(Self)
    }
}

/// Past a body's limit, up to this much more is read and dropped before answering 413, so
/// a client still sending gets the answer instead of a reset connection.
const DRAIN_BYTES: usize = 16 << 20;

/// Reads a body of at most `limit` bytes; a larger one is answered 413 with a message.
async fn read_limited(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    use axum::body::HttpBody;
    use http_body_util::BodyExt;
    let mut body = req.into_body();
    let mut data = Vec::with_capacity((body.size_hint().lower() as usize).min(limit));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        if let Ok(chunk) = frame.into_data() {
            seen += chunk.len();
            if seen <= limit {
                data.extend_from_slice(&chunk);
            } else if seen > limit + DRAIN_BYTES {
                break;
            }
        }
    }
    if seen > limit {
        return Err(ApiError::too_large(format!(
            "request body is larger than {limit} bytes; send less at once"
        )));
    }
    Ok(Bytes::from(data))
}

/// The account behind a valid `Authorization: Bearer TOKEN` header.
pub struct Caller {
    pub account_id: i64,
    pub session_id: String,
}

/// Tokens are 256 random bits, so a fast hash is enough to store them safely.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh session token and its hash.
pub fn new_token() -> (String, [u8; 32]) {
    let token = crate::api::b64::encode(&rand::random::<[u8; 32]>())
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_owned();
    let hash = hash_token(&token);
    (token, hash)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("not logged in; run `ibackup login`"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| ApiError::unauthorized("use `Authorization: Bearer TOKEN`"))?;
        let hash = hash_token(token.trim());
        let found = state
            .db
            .call(move |conn| sessions::lookup(conn, &hash))
            .await?;
        let (session_id, account_id) = found.ok_or_else(|| {
            ApiError::unauthorized("session expired or logged out; run `ibackup login`")
        })?;
        Ok(Self {
            account_id,
            session_id,
        })
    }
}
