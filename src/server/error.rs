//! The server's error policy.
//!
//! Handlers return [`ApiError`]; [`status`] is the one place where an error code becomes an
//! HTTP status. Every error reaches the client as a JSON [`ErrorBody`] whose message says what
//! to do. Internal failures are logged here with their cause and reach the client as a
//! generic 500, never with paths, SQL or secrets.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::{ErrorBody, ErrorCode};
use crate::crypto::ObjectId;
use crate::units::format_size;

use super::db::DbError;
use super::storage::StorageError;

#[derive(Debug)]
pub struct ApiError(pub ErrorBody);

pub fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest | ErrorCode::MissingReferences => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized | ErrorCode::InvalidCredentials => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::AlreadyExists
        | ErrorCode::HeadMoved
        | ErrorCode::UsageAboveLimit
        | ErrorCode::StaleEpoch => StatusCode::CONFLICT,
        ErrorCode::Gone => StatusCode::GONE,
        ErrorCode::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
        ErrorCode::AccountInactive => StatusCode::FORBIDDEN,
        ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Busy | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Timeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::Internal | ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ErrorBody::new(code, message))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, message)
    }

    /// The owner's quota would be passed. `owner` names the owner when the caller is a
    /// member of someone else's library (storage is charged to the owner).
    pub fn quota_exceeded(used: u64, limit: u64, owner: Option<&str>) -> Self {
        let message = match owner {
            None => format!(
                "quota exceeded: {} of {} used; delete old snapshots or choose a larger plan",
                format_size(used),
                format_size(limit)
            ),
            Some(owner) => format!(
                "quota exceeded: this library is stored on {owner}'s plan, which has {} of {} \
                 used; ask {owner} to free space or choose a larger plan",
                format_size(used),
                format_size(limit)
            ),
        };
        let mut body = ErrorBody::new(ErrorCode::QuotaExceeded, message);
        body.used = Some(used);
        body.limit = Some(limit);
        Self(body)
    }

    pub fn head_moved(head: Option<ObjectId>) -> Self {
        let mut body = ErrorBody::new(
            ErrorCode::HeadMoved,
            "the library changed since you read it; merge with the new head and retry",
        );
        body.head = head;
        Self(body)
    }

    pub fn stale_epoch(epoch: u32) -> Self {
        Self::new(
            ErrorCode::StaleEpoch,
            format!(
                "the library's key was rotated (it is at epoch {epoch} now); reload the \
                 library and try again"
            ),
        )
    }

    pub fn too_many_attempts(wait_secs: u64) -> Self {
        Self::too_many_requests(
            format!("too many failed attempts; wait {wait_secs} s and try again"),
            wait_secs,
        )
    }

    pub fn too_many_requests(message: impl Into<String>, wait_secs: u64) -> Self {
        let mut body = ErrorBody::new(ErrorCode::TooManyRequests, message);
        body.retry_after = Some(wait_secs);
        Self(body)
    }

    /// Nothing was done: the server is at a limit (password hashing, uploads) and the same
    /// request can be sent again after `retry_after` seconds.
    pub fn busy(what: &str) -> Self {
        let mut body = ErrorBody::new(
            ErrorCode::Busy,
            format!("the server is busy with {what}; nothing was done, try again in a second"),
        );
        body.retry_after = Some(1);
        Self(body)
    }

    /// Nothing was done: a store behind the server is out of reach. `cause` is logged,
    /// not sent.
    pub fn unavailable(what: &str, cause: impl std::fmt::Display) -> Self {
        tracing::warn!("{what} unavailable: {cause}");
        let mut body = ErrorBody::new(
            ErrorCode::Unavailable,
            format!(
                "the server's {what} is unavailable; nothing was done, try again in a while \
                 (the operator is told in the server log)"
            ),
        );
        body.retry_after = Some(2);
        Self(body)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Timeout, message)
    }

    /// Logs `cause` and answers with a message that reveals nothing of it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {cause}");
        Self::new(
            ErrorCode::Internal,
            "internal server error; the server log has details",
        )
    }
}

/// The database out of reach is said as such (503, retry); other failures are internal
/// errors, logged.
impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(cause) => Self::unavailable("metadata database", cause),
            other => Self::internal(other),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(error: rusqlite::Error) -> Self {
        Self::internal(error)
    }
}

/// The blob store out of reach is said as such (503, retry); damage and other failures are
/// internal errors, logged.
impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable(cause) => Self::unavailable("blob store", cause),
            other => Self::internal(other),
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(error: std::io::Error) -> Self {
        Self::internal(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (status(self.0.error), Json(self.0)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// What the server's own work reports (starting, the maintenance pass, operator commands),
/// as opposed to what a request is answered ([`ApiError`]). The binaries print it.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Collection(#[from] super::gc::GcError),
    #[error(transparent)]
    Verify(#[from] super::verify::VerifyError),
    #[error(transparent)]
    Mail(#[from] super::mail::MailError),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// What the operator asked cannot be done as asked; the message says what to do.
    #[error("{0}")]
    Refused(String),
}

impl ServerError {
    /// An I/O failure, saying what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

impl From<rusqlite::Error> for ServerError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Db(error.into())
    }
}

pub type ServerResult<T> = Result<T, ServerError>;
