//! The middleware that counts each session's requests, bytes and time for its record (the
//! timing and size the policy allows, nothing of what was asked).

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::records::SessionSlot;
use crate::state::AppState;

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
