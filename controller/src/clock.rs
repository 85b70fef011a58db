//! Wall-clock time for the scheduler, behind a trait so tests can pause it.

use std::time::{SystemTime, UNIX_EPOCH};

/// The scheduler's source of wall-clock time, in Unix milliseconds.
///
/// Timers themselves run on tokio's clock; [`TokioClock`] derives wall time from
/// it, so a test that pauses and advances tokio time moves both together.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// Wall time as the operating system tells it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        unix_ms(SystemTime::now())
    }
}

/// Wall time that follows tokio's clock from a fixed starting point, so that
/// `tokio::time::pause()` and `advance()` move it.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    /// Wall time at `start`.
    start_ms: i64,
    /// The tokio instant the clock was made.
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `start_ms` now and advances with tokio time.
    pub fn starting_at(start_ms: i64) -> Self {
        TokioClock {
            start_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.start_ms + self.start.elapsed().as_millis() as i64
    }
}

/// Converts a [`SystemTime`] to Unix milliseconds.
pub fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
