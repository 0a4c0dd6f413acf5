//! Request extractors that turn every malformed input into a JSON error a person can act on:
//! [`ApiJson`] for bodies, [`Caller`] for the bearer token.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::app::AppState;
use super::db::sessions;
use super::error::ApiError;

/// A JSON body; malformed, mistyped or oversized bodies become 400 or 413 with the reason.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large("request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::bad_request("send the body as JSON with `Content-Type: application/json`")
        }
        _ => ApiError::bad_request(format!("invalid request body: {}", rejection.body_text())),
    }
}

/// A raw body, with a size limit turned into 413.
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection @ BytesRejection::FailedToBufferBody(_))
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::too_large(format!(
                    "request body is larger than {} bytes; send smaller batches",
                    crate::api::routes::MAX_BATCH_BYTES
                )))
            }
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
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
