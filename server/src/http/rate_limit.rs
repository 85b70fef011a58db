//! A small in-memory limiter of failed attempts per client address, for the
//! routes that take a guessable secret (bind codes, passwords).
//!
//! Only failures count, so a phone that binds at the first try is never slowed
//! down. The state lives in memory: a restart forgets it, which costs an
//! attacker one minute at most.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::http::error::ApiError;

/// The window failures are counted over.
const WINDOW: Duration = Duration::from_secs(60);
/// Sweep every address after this many recorded failures, so that addresses
/// which never come back do not stay in memory.
const SWEEP_EVERY: u64 = 1_024;

/// Failed attempts per address within the last minute.
#[derive(Debug)]
pub struct RateLimiter {
    /// Failures allowed per address per window.
    limit: usize,
    /// The state, behind a plain mutex: it is held for microseconds, never
    /// across an await.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// When each address failed, oldest first, within the window.
    failures: HashMap<IpAddr, VecDeque<Instant>>,
    /// Failures recorded since the last sweep.
    since_sweep: u64,
}

impl RateLimiter {
    /// A limiter that allows `per_minute` failures per address per minute.
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            limit: per_minute.max(1) as usize,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Fails with 429 `too_many_attempts` (and the seconds until the oldest
    /// failure leaves the window) when `address` used up its failures.
    pub fn check(&self, address: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(failures) = inner.failures.get_mut(&address) else {
            return Ok(());
        };
        prune(failures, now);
        if failures.len() < self.limit {
            return Ok(());
        }
        let oldest = failures.front().copied().unwrap_or(now);
        let wait = (oldest + WINDOW).saturating_duration_since(now);
        Err(ApiError::TooManyAttempts {
            retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        })
    }

    /// Counts one failed attempt of `address`.
    pub fn record_failure(&self, address: IpAddr) {
        let now = Instant::now();
        let mut inner = self.lock();
        let failures = inner.failures.entry(address).or_default();
        prune(failures, now);
        failures.push_back(now);
        // Keep no more than the limit: older entries cannot change the answer.
        while failures.len() > self.limit {
            failures.pop_front();
        }
        inner.since_sweep += 1;
        if inner.since_sweep >= SWEEP_EVERY {
            inner.since_sweep = 0;
            inner.failures.retain(|_, failures| {
                prune(failures, now);
                !failures.is_empty()
            });
        }
    }

    /// How many addresses the limiter remembers (for tests).
    pub fn tracked(&self) -> usize {
        self.lock().failures.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data behind (every
        // update is a single push or pop), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn prune(failures: &mut VecDeque<Instant>, now: Instant) {
    while failures
        .front()
        .is_some_and(|at| now.saturating_duration_since(*at) >= WINDOW)
    {
        failures.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    #[tokio::test(start_paused = true)]
    async fn blocks_after_the_limit_and_recovers() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            limiter.check(A).unwrap();
            limiter.record_failure(A);
        }
        match limiter.check(A) {
            Err(ApiError::TooManyAttempts { retry_after_secs }) => {
                assert_eq!(retry_after_secs, 60)
            }
            other => panic!("expected 429, got {other:?}"),
        }
        // Another address is not affected.
        limiter.check(B).unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        match limiter.check(A) {
            Err(ApiError::TooManyAttempts { retry_after_secs }) => {
                assert_eq!(retry_after_secs, 30)
            }
            other => panic!("expected 429, got {other:?}"),
        }
        tokio::time::advance(Duration::from_secs(31)).await;
        limiter.check(A).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn sweeps_forget_old_addresses() {
        let limiter = RateLimiter::new(10);
        limiter.record_failure(A);
        tokio::time::advance(Duration::from_secs(61)).await;
        for _ in 0..SWEEP_EVERY {
            limiter.record_failure(B);
        }
        assert_eq!(limiter.tracked(), 1);
    }
}
