//! Throttling of password guesses, per e-mail address for logins and per link for link
//! passwords: after a few failures each further attempt must wait longer (1 s, 2 s, 4 s ...
//! up to a minute). There is no lockout, so an attacker cannot shut
//! a user out, only slow every guess. Unknown addresses are throttled the same way, so the
//! answer reveals nothing. Keys are keyed hashes of the address, not the address.

use rusqlite::Connection;

use super::app::AppState;
use super::db::{now, privacy};
use super::error::{ApiError, ApiResult};

/// Failures allowed before any wait.
pub const FREE_FAILURES: u32 = 5;
/// Longest wait between attempts, in seconds.
pub const MAX_WAIT_SECS: i64 = 60;

pub fn key(state: &AppState, email: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_keyed(&state.secret);
    hasher.update(b"login throttle\0");
    hasher.update(email.as_bytes());
    *hasher.finalize().as_bytes()
}

/// Seconds to wait after `failures` failures.
pub fn wait_after(failures: u32) -> i64 {
    if failures < FREE_FAILURES {
        0
    } else {
        1i64.checked_shl(failures - FREE_FAILURES)
            .unwrap_or(MAX_WAIT_SECS)
            .min(MAX_WAIT_SECS)
    }
}

/// Refuses the attempt if it comes too soon after the last failure.
pub fn check(conn: &Connection, key: &[u8]) -> ApiResult<()> {
    if let Some((failures, last)) = privacy::throttle(conn, key)? {
        let ready_at = last + wait_after(failures);
        let now = now();
        if now < ready_at {
            return Err(ApiError::too_many_attempts((ready_at - now) as u64));
        }
    }
    Ok(())
}

pub fn record(conn: &Connection, key: &[u8], success: bool) -> ApiResult<()> {
    if success {
        privacy::throttle_clear(conn, key)?;
    } else {
        privacy::throttle_failure(conn, key)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_stop_growing() {
        assert_eq!(wait_after(0), 0);
        assert_eq!(wait_after(FREE_FAILURES - 1), 0);
        assert_eq!(wait_after(FREE_FAILURES), 1);
        assert_eq!(wait_after(FREE_FAILURES + 3), 8);
        assert_eq!(wait_after(FREE_FAILURES + 40), MAX_WAIT_SECS);
        assert_eq!(wait_after(u32::MAX), MAX_WAIT_SECS);
    }
}
