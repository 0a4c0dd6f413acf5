//! Password hashing (Argon2id: sign-up, login, password change, link passwords) on a
//! bounded number of blocking threads. Each hash takes tens of milliseconds of a core and
//! 19 MiB, so a flood of logins or sign-ups must not take every core and thread: at most
//! `limits.hashers` run at once, at most `limits.hash_queue` wait, and past that the
//! answer is "busy" at once, with nothing done.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::config::Limits;
use super::error::{ApiError, ApiResult};

pub struct Hashers {
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

/// Counts a waiting caller until dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hashers {
    pub fn new(limits: &Limits) -> Self {
        Self {
            running: Arc::new(Semaphore::new(limits.hashers.max(1))),
            waiting: AtomicUsize::new(0),
            queue: limits.hash_queue,
        }
    }

    /// Runs `hash` when a hasher is free, or answers busy when too many wait already.
    pub async fn run<R: Send + 'static>(
        &self,
        hash: impl FnOnce() -> R + Send + 'static,
    ) -> ApiResult<R> {
        let waiting = Waiting(&self.waiting);
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.queue {
            return Err(ApiError::busy("checking passwords"));
        }
        let permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        drop(waiting);
        // The permit goes with the work, so a caller that gives up does not free it early.
        tokio::task::spawn_blocking(move || {
            let result = hash();
            drop(permit);
            result
        })
        .await
        .map_err(ApiError::internal)
    }
}
