//! Error bodies. Every non-2xx response carries `{"error": CODE, "message": TEXT}`, where the
//! message tells a person what went wrong and what to do. The server maps codes to HTTP
//! status in one place (`server::error`).

use serde::{Deserialize, Serialize};

use crate::crypto::ObjectId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    InvalidCredentials,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    AlreadyExists,
    HeadMoved,
    MissingReferences,
    PayloadTooLarge,
    QuotaExceeded,
    /// A charge was declined, or a paid plan has no card.
    PaymentRequired,
    /// The subscription was canceled: data can be read, not changed.
    AccountInactive,
    /// A smaller plan than what is stored.
    UsageAboveLimit,
    /// Too many failed attempts; `retry_after` says when to try again.
    TooManyRequests,
    /// New objects sealed under an older key epoch than the library's newest: reload the
    /// library's keys and seal again.
    StaleEpoch,
    /// A link that expired or was revoked.
    Gone,
    /// The server is at a limit and did nothing; send the same request again after
    /// `retry_after` seconds.
    Busy,
    /// A request body stalled.
    Timeout,
    /// A store behind the server (blobs, database) is out of reach; nothing was done. Send
    /// the same request again after `retry_after` seconds.
    Unavailable,
    Internal,
    /// A code this client does not know yet (sent by a newer server).
    #[serde(other)]
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
    /// With `quota_exceeded`: bytes in use and the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// With `head_moved`: the library's current head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<ObjectId>,
    /// With `too_many_requests`: seconds to wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ErrorBody {
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
            used: None,
            limit: None,
            head: None,
            retry_after: None,
        }
    }
}
