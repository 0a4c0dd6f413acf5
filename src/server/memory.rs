//! Bounds on the bodies a server holds in memory: uploads being read and fetch answers
//! being sent. Each bound is server-wide and per holder (an account, or a link for its
//! visitors), so one holder that stops sending or reading cannot take all of it and stall
//! everyone else (issue 26). A holder may take a quarter of the bound, and always at least
//! one batch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::routes::MAX_BATCH_BYTES;

/// Permits are KiB.
fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .max(1)
}

pub struct MemoryBound {
    all: Arc<Semaphore>,
    per_holder: u32,
    holders: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A share of a bound, given back when dropped.
pub struct Held {
    _holder: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

impl MemoryBound {
    pub fn new(bytes: u64) -> Self {
        let total = kib(bytes);
        let per_holder = (total / 4).max(kib(MAX_BATCH_BYTES as u64)).min(total);
        Self {
            all: Arc::new(Semaphore::new(total as usize)),
            per_holder,
            holders: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for `bytes` of the bound for `holder`: first from the holder's own share, then
    /// from the server's, so a holder waiting on itself takes nothing from the others.
    pub async fn acquire(&self, holder: &str, bytes: u64) -> Held {
        let share = kib(bytes).min(self.per_holder);
        let own = {
            let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
            if holders.len() > 4096 {
                // Shares nobody holds or waits for are dropped; they are made again.
                holders.retain(|_, s| Arc::strong_count(s) > 1);
            }
            holders
                .entry(holder.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_holder as usize)))
                .clone()
        };
        let holder = own
            .acquire_many_owned(share)
            .await
            .expect("the bound's semaphores are never closed");
        let all = self
            .all
            .clone()
            .acquire_many_owned(share)
            .await
            .expect("the bound's semaphores are never closed");
        Held {
            _holder: holder,
            _all: all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_cannot_take_the_whole_bound() {
        let bound = MemoryBound::new(256 << 20);
        let batch = MAX_BATCH_BYTES as u64;
        let first = bound.acquire("a:1", batch).await;
        // A second batch of the same holder waits for the first...
        let second = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            bound.acquire("a:1", batch),
        )
        .await;
        assert!(second.is_err(), "one holder took more than its share");
        // ...while another holder gets its own at once.
        let other = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            bound.acquire("a:2", batch),
        )
        .await;
        assert!(other.is_ok(), "another holder waited on the first");
        drop(first);
        bound.acquire("a:1", batch).await;
    }
}
