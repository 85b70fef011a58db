//! A small in-memory limiter of failed attempts per client address, for the
//! routes that take a guessable secret (bind codes, passwords).
//!
//! Only failures count, so a phone that binds at the first try is never slowed
//! down. An attempt takes its slot before the slow work (the password hash,
//! the code lookup) with [`RateLimiter::begin`]: while it runs it counts as
//! pending, then becomes a failure or gives its slot back. So however many
//! requests race, at most `limit` are ever checked within the window. The
//! state lives in memory: a restart forgets it, which costs an attacker one
//! minute at most.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::http::error::ApiError;

/// The window failures are counted over.
const WINDOW: Duration = Duration::from_secs(60);
/// Sweep every address after this many attempts, so that addresses whose
/// failures aged out do not stay in memory.
const SWEEP_EVERY: u64 = 1_024;
/// What a client refused because of attempts still running is told to wait:
/// they end within a second or so, as a success or a failure.
const PENDING_RETRY_SECS: u64 = 1;

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
    /// What each address has used up, for addresses with any.
    addresses: HashMap<IpAddr, Slots>,
    /// Attempts begun since the last sweep.
    since_sweep: u64,
}

/// The slots of one address.
#[derive(Debug, Default)]
struct Slots {
    /// When it failed, oldest first, within the window.
    failures: VecDeque<Instant>,
    /// Attempts begun and not yet ended: each holds a slot until it ends.
    pending: usize,
}

impl Slots {
    fn is_empty(&self) -> bool {
        self.failures.is_empty() && self.pending == 0
    }
}

/// One attempt that holds a slot of its address. It becomes a failure with
/// [`Attempt::failed`]; dropped otherwise (success, or an error that says
/// nothing about the secret), it gives the slot back.
#[derive(Debug)]
#[must_use = "an attempt gives its slot back when dropped"]
pub struct Attempt<'a> {
    limiter: &'a RateLimiter,
    address: IpAddr,
}

impl Attempt<'_> {
    /// Counts this attempt as a failure of its address.
    pub fn failed(self) {
        let now = Instant::now();
        let limit = self.limiter.limit;
        let mut inner = self.limiter.lock();
        let slots = inner.addresses.entry(self.address).or_default();
        slots.pending = slots.pending.saturating_sub(1);
        prune(&mut slots.failures, now);
        slots.failures.push_back(now);
        // Keep no more than the limit: older entries cannot change the answer.
        while slots.failures.len() > limit {
            slots.failures.pop_front();
        }
        drop(inner);
        // The pending slot is spent; dropping must not release it again.
        std::mem::forget(self);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut inner = self.limiter.lock();
        if let Some(slots) = inner.addresses.get_mut(&self.address) {
            slots.pending = slots.pending.saturating_sub(1);
            if slots.is_empty() {
                inner.addresses.remove(&self.address);
            }
        }
    }
}

impl RateLimiter {
    /// A limiter that allows `per_minute` failures per address per minute.
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            limit: per_minute.max(1) as usize,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Takes a slot of `address` for one attempt, or fails with 429
    /// `too_many_attempts` when its failures and running attempts fill the
    /// limit, with the seconds until a slot may free up.
    pub fn begin(&self, address: IpAddr) -> Result<Attempt<'_>, ApiError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.since_sweep += 1;
        if inner.since_sweep >= SWEEP_EVERY {
            inner.since_sweep = 0;
            inner.addresses.retain(|_, slots| {
                prune(&mut slots.failures, now);
                !slots.is_empty()
            });
        }
        let slots = inner.addresses.entry(address).or_default();
        prune(&mut slots.failures, now);
        if slots.failures.len() + slots.pending < self.limit {
            slots.pending += 1;
            return Ok(Attempt {
                limiter: self,
                address,
            });
        }
        let retry_after_secs = if slots.failures.len() >= self.limit {
            let oldest = slots.failures.front().copied().unwrap_or(now);
            let wait = (oldest + WINDOW).saturating_duration_since(now);
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        } else {
            PENDING_RETRY_SECS
        };
        Err(ApiError::TooManyAttempts { retry_after_secs })
    }

    /// How many addresses the limiter remembers (for tests).
    pub fn tracked(&self) -> usize {
        self.lock().addresses.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data behind (every
        // update is a single push, pop or count), so a poisoned lock is still
        // usable.
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

    fn retry_after(result: Result<Attempt<'_>, ApiError>) -> u64 {
        match result {
            Err(ApiError::TooManyAttempts { retry_after_secs }) => retry_after_secs,
            other => panic!("expected 429, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn blocks_after_the_limit_and_recovers() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            limiter.begin(A).unwrap().failed();
        }
        assert_eq!(retry_after(limiter.begin(A)), 60);
        // Another address is not affected.
        drop(limiter.begin(B).unwrap());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(retry_after(limiter.begin(A)), 30);
        tokio::time::advance(Duration::from_secs(31)).await;
        limiter.begin(A).unwrap().failed();
    }

    #[tokio::test(start_paused = true)]
    async fn running_attempts_hold_their_slots() {
        for limit in 1..=12 {
            let limiter = RateLimiter::new(limit);
            let running: Vec<_> = (0..limit).map(|_| limiter.begin(A).unwrap()).collect();
            // However many more come while those run, none is let in.
            for _ in 0..3 * limit {
                assert_eq!(retry_after(limiter.begin(A)), PENDING_RETRY_SECS);
            }
            // One that succeeds gives its slot back; the others fail.
            let mut running = running.into_iter();
            drop(running.next());
            running.for_each(Attempt::failed);
            let last = limiter.begin(A).unwrap();
            assert_eq!(retry_after(limiter.begin(A)), PENDING_RETRY_SECS);
            last.failed();
            assert_eq!(retry_after(limiter.begin(A)), 60);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn successes_leave_nothing_behind() {
        let limiter = RateLimiter::new(2);
        for _ in 0..100 {
            drop(limiter.begin(A).unwrap());
        }
        assert_eq!(limiter.tracked(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn sweeps_forget_old_addresses() {
        let limiter = RateLimiter::new(10);
        limiter.begin(A).unwrap().failed();
        tokio::time::advance(Duration::from_secs(61)).await;
        for _ in 0..SWEEP_EVERY {
            drop(limiter.begin(B).unwrap());
        }
        assert_eq!(limiter.tracked(), 0);
    }
}
