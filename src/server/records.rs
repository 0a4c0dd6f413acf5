//! Session records (privacy promise P5): for each authenticated request, the session's
//! address, one more request, the bytes in and out and the time taken. Nothing about what
//! the request did. Counts gather in memory and are written every few seconds, so that
//! recording costs no database write per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::db::{self, sessions, Db, DbError};

/// Filled by the `Caller` extractor with the session a request authenticated as.
#[derive(Clone, Default)]
pub struct SessionSlot(Arc<Mutex<Option<String>>>);

impl SessionSlot {
    pub fn set(&self, session_id: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(session_id.to_owned());
    }

    pub(crate) fn take(&self) -> Option<String> {
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
    pub(crate) fn add(&self, session_id: String, address: String, up: u64, down: u64, ms: u64) {
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
