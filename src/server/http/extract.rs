//! Request extractors that turn every malformed input into a JSON error a person can act on:
//! [`ApiJson`] for bodies, [`Caller`] for the bearer token.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::db::sessions;
use crate::error::ApiError;
use crate::records::SessionSlot;
use crate::state::AppState;

/// A JSON body of at most `MAX_JSON_BYTES`; malformed, mistyped or oversized bodies become
/// 400 or 413 with the reason.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
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
        let stall = state.config.limits.request_timeout;
        let body = read_limited(req, crate::api::routes::MAX_JSON_BYTES, stall).await?;
        serde_json::from_slice(&body)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
    }
}

/// An upload body of at most `MAX_BATCH_BYTES`, read only after the caller was found
/// allowed to write (the handler checks first, then calls this), and its share of the
/// server's upload memory (`limits.upload_memory`), held until dropped: taken from the
/// account's own share first, so one account's stalled uploads hold at most a quarter of it,
/// and before a byte of the body is read.
pub async fn upload_body(
    state: &AppState,
    account_id: i64,
    req: Request,
) -> Result<(Bytes, crate::memory::Held), ApiError> {
    let limit = crate::api::routes::MAX_BATCH_BYTES;
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(limit as u64)
        .min(limit as u64);
    let held = state
        .uploads
        .acquire(&format!("account {account_id}"), announced)
        .await;
    let stall = state.config.limits.request_timeout;
    let body = read_limited(req, limit, stall).await?;
    Ok((body, held))
}

/// The least rate a body must keep once `request_timeout` has passed since it began, on
/// average: a body dripping a byte at a time is cut off, a slow line (64 kbit/s) is not.
const MIN_BODY_RATE: f64 = 8.0 * 1024.0;

/// Past a body's limit, up to this much more is read and dropped before answering 413, so
/// a client still sending gets the answer instead of a reset connection.
const DRAIN_BYTES: usize = 16 << 20;

/// Reads a body of at most `limit` bytes; a larger one is answered 413 with a message, and
/// one that stops arriving for `stall` is answered 408.
async fn read_limited(
    req: Request,
    limit: usize,
    stall: std::time::Duration,
) -> Result<Bytes, ApiError> {
    use axum::body::HttpBody;
    use http_body_util::BodyExt;
    let mut body = req.into_body();
    let mut data = Vec::with_capacity((body.size_hint().lower() as usize).min(limit));
    let mut seen = 0usize;
    let started = tokio::time::Instant::now();
    loop {
        // The next part must come within `stall`, and before the body falls below the
        // least rate (measured from `stall` after it began).
        let slowest =
            started + stall + std::time::Duration::from_secs_f64(seen as f64 / MIN_BODY_RATE);
        let deadline = (tokio::time::Instant::now() + stall).min(slowest);
        let Ok(next) = tokio::time::timeout_at(deadline, body.frame()).await else {
            return Err(ApiError::timeout(if deadline == slowest {
                format!(
                    "the request body arrived slower than {} KiB/s; send it again on a \
                     faster connection, or less at once",
                    MIN_BODY_RATE as u64 / 1024
                )
            } else {
                format!(
                    "the request body stopped arriving for {} s; send it again",
                    stall.as_secs()
                )
            }));
        };
        let Some(frame) = next else { break };
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

/// The cookie a web client authenticates with. `__Host-` makes browsers accept it only
/// from this exact origin over HTTPS, with `Path=/`; it carries the opaque token alone.
pub const SESSION_COOKIE: &str = "__Host-ibackup_session";

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(token: &str, max_age: std::time::Duration) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    )
}

/// The `Set-Cookie` value that makes a browser forget its session cookie (at sign-out).
pub fn cleared_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// How a request carried its session token.
#[derive(PartialEq)]
enum Carrier {
    Bearer,
    Cookie,
}

/// The token from `Authorization: Bearer` or else from the session cookie.
fn presented_token(parts: &Parts) -> Result<(String, Carrier), ApiError> {
    if let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let text = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("use `Authorization: Bearer TOKEN`"))?;
        let token = text
            .strip_prefix("Bearer ")
            .ok_or_else(|| ApiError::unauthorized("use `Authorization: Bearer TOKEN`"))?;
        return Ok((token.trim().to_owned(), Carrier::Bearer));
    }
    for header in parts.headers.get_all(axum::http::header::COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                if name == SESSION_COOKIE {
                    return Ok((value.trim().to_owned(), Carrier::Cookie));
                }
            }
        }
    }
    Err(ApiError::unauthorized("not logged in; run `ibackup login`"))
}

/// A browser sends the cookie along with requests other sites make it send, so a change
/// authenticated by the cookie alone must show it comes from this server's own pages:
/// an `Origin` naming this server (its public URL, or the host the request was sent to),
/// or, without `Origin`, `Sec-Fetch-Site: same-origin`. Neither is a refusal.
fn check_same_origin(parts: &Parts, public_url: &str) -> Result<(), ApiError> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let same = match header("origin") {
        Some(origin) => {
            let public = url::Url::parse(public_url)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default();
            origin == public
                || header("host").is_some_and(|host| origin == format!("https://{host}"))
        }
        None => header("sec-fetch-site") == Some("same-origin"),
    };
    if same {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "a change sent with the session cookie must come from this server's own web \
             pages (Origin or Sec-Fetch-Site); programs send `Authorization: Bearer TOKEN`",
        ))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, carrier) = presented_token(parts)?;
        if carrier == Carrier::Cookie && !parts.method.is_safe() {
            check_same_origin(parts, &state.config.public_url)?;
        }
        let hash = hash_token(&token);
        let found = state
            .db
            .read(move |conn| sessions::lookup(conn, &hash))
            .await?;
        let session = found.ok_or_else(|| {
            ApiError::unauthorized("session expired or logged out; run `ibackup login`")
        })?;
        let now = crate::db::now();
        let config = &state.config;
        let idle = now - session.last_seen > config.idle_timeout.as_secs() as i64;
        let too_old = now - session.created_at > config.absolute_timeout.as_secs() as i64;
        if idle || too_old {
            // The session ended: its key share goes now, as at a revocation.
            let ended = session.id.clone();
            state
                .db
                .call(move |conn| sessions::drop_share(conn, &ended))
                .await?;
            return Err(ApiError::unauthorized(
                "session expired; run `ibackup login` to start a new one",
            ));
        }
        if let Some(slot) = parts.extensions.get::<SessionSlot>() {
            slot.set(&session.id);
        }
        Ok(Self {
            account_id: session.account_id,
            session_id: session.id,
        })
    }
}
