//! Phone calls and tasks: a task never touches a phone while a call rings or
//! is under way, and the heartbeat says whether one does.
//!
//! [`Calls`] is what the agent knows of one phone's calls, shared by three
//! readers and writers:
//! - the flow runner reads the call state from the phone before each step
//!   that touches it (a tap, a key, typing, a launch), and while a call rings
//!   or is under way it waits ([`Calls::wait_until_free`]) without touching
//!   the screen, up to a bound, then reads the screen afresh;
//! - the watcher ([`crate::watch`]) reads it every second while a task runs
//!   (unless the runner just did) and whenever `auto_hang_up` is on, and
//!   hangs up a ringing call when that setting asks;
//! - the heartbeat reports the latest state, and reads it itself when no read
//!   is recent (a phone with no task is read once per heartbeat).
//!
//! Why the runner reads before each step rather than trusting the watcher's
//! last read: a watcher, however often it polls, leaves a window in which a
//! tap lands on the incoming-call screen (and may answer the call). One read
//! is a `dumpsys telephony.registry` filtered on the phone, tens of
//! milliseconds beside the screen read of a second or so that each step
//! makes anyway.
//!
//! A phone whose call state cannot be read (no telephony service, an answer
//! without `mCallState`) counts as idle; that is logged once per phone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};
use youmi_protocol::CallStatus;

use crate::phone::{CallState, Phone, PhoneError};

/// How long the runner waits, by default, for a call to end before the task
/// fails with `call_in_progress`. Most calls end within a few minutes; a task
/// held longer than this is better failed (it is retried) than left holding
/// the phone's queue while the person talks.
pub const DEFAULT_CALL_WAIT: Duration = Duration::from_secs(5 * 60);

/// How often the call state is read while the runner waits for a call to end.
pub const CALL_WAIT_POLL: Duration = Duration::from_secs(1);

/// The call state as the heartbeat reports it: without the number.
pub fn status_of(state: &CallState) -> CallStatus {
    match state {
        CallState::Idle => CallStatus::Idle,
        CallState::Ringing(_) => CallStatus::Ringing,
        CallState::OffHook => CallStatus::Active,
    }
}

/// One read of the call state and when it was made.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The state.
    status: CallStatus,
    /// When it was read.
    at: Instant,
}

/// What the agent knows of one phone's calls; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Calls {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The latest read, by whoever made it.
    latest: Mutex<Option<Seen>>,
    /// Whether `auto_hang_up` is on, as the watcher last saw the settings:
    /// only for what the runner says while it waits.
    auto_hang_up: AtomicBool,
    /// The phone's call state could not be read once already: not logged again.
    unreadable_logged: AtomicBool,
}

/// A call that went on for longer than the runner waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTooLong {
    /// The call's state when the wait ended.
    pub status: CallStatus,
    /// How long the runner waited.
    pub waited: Duration,
}

impl Calls {
    /// Nothing known yet.
    pub fn new() -> Calls {
        Calls::default()
    }

    /// Reads the phone's call state and keeps it as the latest. `None` when
    /// the phone did not answer (it is unreachable, or the command timed
    /// out): the caller's next command will say so. A phone that answers
    /// without a call state (no telephony) counts as idle.
    pub async fn read(&self, phone: &dyn Phone) -> Option<CallState> {
        let state = match phone.call_state().await {
            Ok(state) => state,
            Err(error @ (PhoneError::BadOutput { .. } | PhoneError::CommandFailed { .. })) => {
                if !self.inner.unreadable_logged.swap(true, Ordering::Relaxed) {
                    warn!(%error, "the phone's call state cannot be read (no telephony?): it counts as idle, and tasks do not wait for calls on this phone");
                }
                CallState::Idle
            }
            Err(error) => {
                debug!(%error, "the phone's call state was not read");
                return None;
            }
        };
        self.publish(&state);
        Some(state)
    }

    /// Keeps `state`, just read, as the latest.
    pub fn publish(&self, state: &CallState) {
        let seen = Seen {
            status: status_of(state),
            at: Instant::now(),
        };
        *self.latest_guard() = Some(seen);
    }

    /// The latest state read, however old.
    pub fn latest(&self) -> Option<CallStatus> {
        self.latest_guard().map(|seen| seen.status)
    }

    /// The latest state, if it was read at most `max_age` ago.
    pub fn latest_within(&self, max_age: Duration) -> Option<CallStatus> {
        self.latest_guard()
            .filter(|seen| seen.at.elapsed() <= max_age)
            .map(|seen| seen.status)
    }

    /// Records whether `auto_hang_up` is on (the watcher follows the settings).
    pub fn set_auto_hang_up(&self, on: bool) {
        self.inner.auto_hang_up.store(on, Ordering::Relaxed);
    }

    /// Whether `auto_hang_up` was on when the watcher last looked.
    pub fn auto_hang_up(&self) -> bool {
        self.inner.auto_hang_up.load(Ordering::Relaxed)
    }

    /// Reads the call state and, while a call rings or is under way, waits
    /// (reading it again every `poll`, touching nothing else) until it ends.
    /// Returns how long it waited (zero when no call was on), or
    /// [`CallTooLong`] once the call outlasted `bound`. The caller reads the
    /// screen again after a wait: the call may have changed it.
    pub async fn wait_until_free(
        &self,
        phone: &dyn Phone,
        bound: Duration,
        poll: Duration,
    ) -> Result<Duration, CallTooLong> {
        let start = Instant::now();
        let mut waiting: Option<CallStatus> = None;
        loop {
            let status = self
                .read(phone)
                .await
                .map_or(CallStatus::Idle, |state| status_of(&state));
            let waited = start.elapsed();
            if status == CallStatus::Idle {
                if waiting.is_none() {
                    return Ok(Duration::ZERO);
                }
                info!(
                    waited_ms = waited.as_millis() as u64,
                    "the call ended: reading the screen again and going on"
                );
                return Ok(waited);
            }
            if waiting != Some(status) {
                let hang_up = self.auto_hang_up();
                match status {
                    CallStatus::Ringing if hang_up => info!(
                        bound_s = bound.as_secs(),
                        "a call is ringing and auto_hang_up is on: waiting for it to be hung up before touching the phone"
                    ),
                    _ => info!(
                        call = ?status,
                        auto_hang_up = hang_up,
                        bound_s = bound.as_secs(),
                        "a call is ringing or under way: the task waits, without touching the phone, until it ends"
                    ),
                }
                waiting = Some(status);
            }
            if waited >= bound {
                return Err(CallTooLong { status, waited });
            }
            tokio::time::sleep(poll.min(bound - waited)).await;
        }
    }

    fn latest_guard(&self) -> std::sync::MutexGuard<'_, Option<Seen>> {
        self.inner
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
