//! Session records (privacy promise P5): for each authenticated request, the session's
//! address, one more request, the bytes in and out and the time taken. Nothing about what
//! the request did. Counts gather in memory and are written every few seconds, so that
//! recording costs no database write per request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::app::AppState;
use super::db::{self, sessions, Db, DbError};

/// Filled by the `Caller` extractor with the session a request authenticated as.
#[derive(Clone, Default)]
pub struct SessionSlot(Arc<Mutex<Option<String>>>);

impl SessionSlot {
    pub fn set(&self, session_id: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(session_id.to_owned());
    }

    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

struct Pending {
    address: String,
    requests: u64,
    bytes_up: u64,
    bytes_down: u64,
    transfer_ms: u64,
    last_seen: i64,
}

/// Bounds memory if flushing stalls: past this many sessions, new ones are not counted
/// until the next flush.
const MAX_PENDING: usize = 100_000;

#[derive(Default)]
pub struct SessionRecords {
    pending: Mutex<HashMap<String, Pending>>,
}

impl SessionRecords {
    fn add(&self, session_id: String, address: String, up: u64, down: u64, ms: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let full = pending.len() >= MAX_PENDING;
        match pending.get_mut(&session_id) {
            Some(entry) => {
                entry.address = address;
                entry.requests += 1;
                entry.bytes_up += up;
                entry.bytes_down += down;
                entry.transfer_ms += ms;
                entry.last_seen = db::now();
            }
            None if !full => {
                pending.insert(
                    session_id,
                    Pending {
                        address,
                        requests: 1,
                        bytes_up: up,
                        bytes_down: down,
                        transfer_ms: ms,
                        last_seen: db::now(),
                    },
                );
            }
            None => {}
        }
    }

    /// Writes what gathered since the last flush.
    pub async fn flush(self: &Arc<Self>, database: &Db) -> Result<(), DbError> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if taken.is_empty() {
            return Ok(());
        }
        database
            .call(move |conn| {
                let tx = conn.transaction()?;
                for (id, p) in &taken {
                    sessions::add_usage(
                        &tx,
                        id,
                        &sessions::Usage {
                            address: &p.address,
                            requests: p.requests,
                            bytes_up: p.bytes_up,
                            bytes_down: p.bytes_down,
                            transfer_ms: p.transfer_ms,
                            last_seen: p.last_seen,
                        },
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }
}

/// Middleware: measures each request and, if it authenticated, counts it for its session.
pub async fn track(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let slot = SessionSlot::default();
    request.extensions_mut().insert(slot.clone());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let bytes_up = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(session_id) = slot.take() {
        let bytes_down = response.body().size_hint().exact().unwrap_or(0);
        let ms = started.elapsed().as_millis() as u64;
        let address = peer.map(|ip| ip.to_string()).unwrap_or_default();
        state
            .records
            .add(session_id, address, bytes_up, bytes_down, ms);
    }
    response
}
