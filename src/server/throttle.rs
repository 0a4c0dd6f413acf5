//! Throttling of password guesses and sign-ups.
//!
//! A guess (a login, a recovery, a link password) is counted under three keys: the target
//! and the address together, the address alone, and the target alone. After a few failures
//! under a key each further attempt must wait longer (1 s, 2 s, 4 s ... up to a minute):
//!
//! - the pair slows one address guessing one account's password;
//! - the address slows one address spraying many accounts;
//! - the target slows many addresses guessing one account, but only for addresses that
//!   already failed on it, so the owner still gets in from an address that has not.
//!
//! There is no lockout. The check and the count are one database step, taken before the
//! password is hashed (the attempt counts as failed until it succeeds), so parallel guesses
//! cannot all slip past the check before any failure is recorded. Unknown addresses are
//! throttled the same way, so the answer reveals nothing. Keys are keyed hashes, not
//! addresses or e-mails. Counts are forgotten a day after their last failure.

use std::net::IpAddr;
use std::sync::Arc;

use crate::db::Conn;

use super::db::throttle;
use super::error::{ApiError, ApiResult};
use super::state::AppState;

/// Failures allowed under a pair or a target before any wait.
pub const FREE_FAILURES: u32 = 5;
/// Failures allowed from one address, over all targets, before any wait.
pub const FREE_FROM_ADDRESS: u32 = 50;
/// Longest wait between attempts, in seconds.
pub const MAX_WAIT_SECS: i64 = 60;
/// Counts untouched this long are deleted by maintenance.
pub const FORGET_AFTER_SECS: i64 = 86_400;

/// Milliseconds since the Unix epoch (waits are short, so seconds would round them away).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seconds to wait after `failures` failures when `free` are allowed.
pub fn wait_after(failures: u32, free: u32) -> i64 {
    if failures < free {
        0
    } else {
        1i64.checked_shl(failures - free)
            .unwrap_or(MAX_WAIT_SECS)
            .min(MAX_WAIT_SECS)
    }
}

/// What an address is counted as: IPv4 addresses whole, IPv6 by their /64 (one host
/// usually holds a whole /64).
pub fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn key(state: &AppState, parts: &[&str]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_keyed(&state.secret);
    hasher.update(b"throttle\0");
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    *hasher.finalize().as_bytes()
}

/// One password guess against one target from one address.
pub struct Guess {
    pair: [u8; 32],
    address: [u8; 32],
    target: [u8; 32],
}

impl Guess {
    /// A guess in `scope` (`login`, `recovery`, `link`) at `target` (an e-mail, a link id).
    pub fn new(state: &AppState, scope: &str, target: &str, from: IpAddr) -> Self {
        let address = network(from);
        Self {
            pair: key(state, &[scope, target, &address]),
            address: key(state, &["address", &address]),
            target: key(state, &[scope, target]),
        }
    }

    /// Refuses the guess if it comes too soon; otherwise counts it as a failure until
    /// [`Guess::finish`] says it succeeded. One step, so parallel guesses queue here.
    pub fn begin(&self, conn: &mut Conn) -> ApiResult<()> {
        let tx = conn.transaction()?;
        let at = now_ms();
        let pair = throttle::get(&tx, &self.pair)?;
        let mut ready = ready_at(pair, FREE_FAILURES);
        ready = ready.max(ready_at(
            throttle::get(&tx, &self.address)?,
            FREE_FROM_ADDRESS,
        ));
        if pair.is_some_and(|(failures, _)| failures > 0) {
            ready = ready.max(ready_at(throttle::get(&tx, &self.target)?, FREE_FAILURES));
        }
        let keys = [&self.pair, &self.address, &self.target];
        count_or_refuse(tx, at, ready, &keys, ApiError::too_many_attempts)
    }

    /// Records the outcome: a success clears the pair and the target (the owner proved
    /// the secret) and takes back the address's advance count; a failure stays counted.
    pub fn finish(&self, conn: &Conn, success: bool) -> ApiResult<()> {
        if success {
            throttle::clear(conn, &self.pair)?;
            throttle::clear(conn, &self.target)?;
            throttle::remove_failure(conn, &self.address)?;
        }
        Ok(())
    }

    /// Takes back the advance count of a guess that was never checked (the server was too
    /// busy to hash it).
    pub fn abandon(&self, conn: &Conn) -> ApiResult<()> {
        for key in [&self.pair, &self.address, &self.target] {
            throttle::remove_failure(conn, key)?;
        }
        Ok(())
    }

    /// Checks the guess with `check` (the slow hash), then records the outcome.
    pub async fn check(
        self: Arc<Self>,
        state: &AppState,
        check: impl FnOnce() -> bool + Send + 'static,
    ) -> ApiResult<bool> {
        let outcome = state.hashers.run(check).await;
        let checked = outcome.as_ref().ok().copied();
        state
            .db
            .call(move |conn| match checked {
                Some(success) => self.finish(conn, success),
                None => self.abandon(conn),
            })
            .await?;
        outcome
    }
}

/// When the next attempt may come, in ms.
fn ready_at(count: Option<(u32, i64)>, free: u32) -> i64 {
    count.map_or(i64::MIN, |(failures, last)| {
        last + wait_after(failures, free) * 1000
    })
}

/// The one step every throttle takes: refuses an attempt that comes before `ready` (with
/// `refuse` of the seconds to wait), or counts it under `keys`, in the transaction `tx`.
fn count_or_refuse(
    tx: crate::db::Tx<'_>,
    at: i64,
    ready: i64,
    keys: &[&[u8; 32]],
    refuse: impl FnOnce(u64) -> ApiError,
) -> ApiResult<()> {
    if at < ready {
        return Err(refuse(wait_secs(ready - at)));
    }
    for key in keys {
        throttle::add_failure(&tx, *key, at)?;
    }
    tx.commit()?;
    Ok(())
}

/// A wait in ms as the whole seconds a client is told (at least 1).
fn wait_secs(ms: i64) -> u64 {
    (ms.max(1) as u64).div_ceil(1000)
}

/// A sign-up from one address: a few are free, then each must wait longer.
pub struct Signup {
    key: [u8; 32],
    free: u32,
}

impl Signup {
    pub fn new(state: &AppState, from: IpAddr) -> Self {
        Self {
            key: key(state, &["signup", &network(from)]),
            free: state.config.limits.free_signups_per_address,
        }
    }

    /// Counts the sign-up, or refuses it when too many came from there lately.
    pub fn count(&self, conn: &mut Conn) -> ApiResult<()> {
        let tx = conn.transaction()?;
        let at = now_ms();
        let ready = ready_at(throttle::get(&tx, &self.key)?, self.free);
        count_or_refuse(tx, at, ready, &[&self.key], |wait| {
            ApiError::too_many_requests(
                format!("too many sign-ups from your network lately; wait {wait} s and try again"),
                wait,
            )
        })
    }
}

/// Contact lookups of one account: a few a day are free, then each must wait longer (up to
/// a minute). A lookup tells whether an address has an account, as sharing needs; the
/// wait keeps an account from testing a long list of addresses (issue 26).
pub struct Lookup {
    key: [u8; 32],
}

/// Contact lookups an account makes before each must wait.
pub const FREE_LOOKUPS: u32 = 20;

impl Lookup {
    pub fn new(state: &AppState, account_id: i64) -> Self {
        Self {
            key: key(state, &["lookup", &account_id.to_string()]),
        }
    }

    /// Counts the lookup, or refuses it when the account made too many lately.
    pub fn count(&self, conn: &mut Conn) -> ApiResult<()> {
        let tx = conn.transaction()?;
        let at = now_ms();
        let ready = ready_at(throttle::get(&tx, &self.key)?, FREE_LOOKUPS);
        count_or_refuse(tx, at, ready, &[&self.key], |wait| {
            ApiError::too_many_requests(
                format!(
                    "you looked up many addresses lately; wait {wait} s and try again (lookups \
                     are limited so no account can test which addresses have accounts)"
                ),
                wait,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_stop_growing() {
        assert_eq!(wait_after(0, FREE_FAILURES), 0);
        assert_eq!(wait_after(FREE_FAILURES - 1, FREE_FAILURES), 0);
        assert_eq!(wait_after(FREE_FAILURES, FREE_FAILURES), 1);
        assert_eq!(wait_after(FREE_FAILURES + 3, FREE_FAILURES), 8);
        assert_eq!(wait_after(FREE_FAILURES + 40, FREE_FAILURES), MAX_WAIT_SECS);
        assert_eq!(wait_after(u32::MAX, FREE_FAILURES), MAX_WAIT_SECS);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(network(mapped), "192.0.2.7");
    }
}
