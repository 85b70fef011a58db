//! The phone-side settings (应用设置) that need someone watching the phone
//! while the agent runs: a double press of volume-down pauses or resumes the
//! queue (`volume_key_toggle`), and incoming calls are hung up
//! (`auto_hang_up`). The same watch keeps the phone's call state fresh in
//! [`Calls`] while a task runs, whatever the setting (see [`crate::calls`]).
//!
//! A [`Watcher`] runs next to one agent session and follows the settings in
//! force ([`AgentHandle::status`]), so a change the server pushes takes effect
//! within [`WatchOptions::settings_poll`] without a restart. The two other
//! phone-side settings need no watching: the countdown and do-not-disturb wrap
//! every task and are applied by the session's runner through
//! [`crate::Executor::show_countdown`] and
//! [`crate::Executor::set_do_not_disturb`].
//!
//! The hardware keys are read from `getevent` on a connection of their own
//! ([`AdbPhone::key_presses`]), opened only while `volume_key_toggle` is on, so
//! a fleet of phones with the setting off keeps no stream open per phone.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{self, Instant, MissedTickBehavior};
use tracing::{debug, info, warn, Instrument};

use crate::adb::{AdbPhone, KeyPresses};
use crate::calls::Calls;
use crate::phone::{CallState, Key, Phone};
use crate::session::AgentHandle;

/// The Android key code of volume-down, as [`KeyPresses`] reports it.
pub const VOLUME_DOWN: u16 = 25;

/// The reason the server is given (in `queue_changed`) for a pause or resume
/// made with the volume key; the admin's device list shows it.
pub const VOLUME_KEY_REASON: &str = "volume_key";

/// How the watcher times things. The defaults are the product's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// Two volume-down presses at most this far apart are a double press. A
    /// person's deliberate double press takes 200-400 ms; two separate presses
    /// to turn the volume down are usually further apart.
    pub double_press_window: Duration,
    /// How often the call state is read while a task runs or `auto_hang_up`
    /// is on (the heartbeat reads it otherwise). A ringing call is ended
    /// within this time, before most people would pick it up, and the
    /// heartbeat shows a call that began during a long wait for the screen.
    /// A read the runner made within this time is not repeated.
    pub call_poll: Duration,
    /// How often the settings in force are looked at again.
    pub settings_poll: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            double_press_window: Duration::from_millis(600),
            call_poll: Duration::from_secs(1),
            settings_poll: Duration::from_millis(500),
        }
    }
}

/// Tells a double press from single ones: feed it every press of the key, it
/// says which press completes a double press. A third press right after a
/// double press starts a new pair rather than completing another.
#[derive(Debug, Clone)]
pub struct DoublePress {
    /// The longest gap between the two presses of a pair.
    window: Duration,
    /// The first press of a pair that may still be completed.
    pending: Option<Instant>,
}

impl DoublePress {
    /// A detector for presses at most `window` apart.
    pub fn new(window: Duration) -> DoublePress {
        DoublePress {
            window,
            pending: None,
        }
    }

    /// A press at `at`; true when it is the second press of a double press.
    pub fn press(&mut self, at: Instant) -> bool {
        match self.pending.take() {
            Some(first) if at.saturating_duration_since(first) <= self.window => true,
            _ => {
                self.pending = Some(at);
                false
            }
        }
    }

    /// Forgets a first press, e.g. when the key stream was interrupted.
    pub fn reset(&mut self) {
        self.pending = None;
    }
}

/// The watcher of one phone's keys and calls. It stops when dropped (or when
/// the agent's loop is gone).
#[derive(Debug)]
pub struct Watcher {
    /// The volume-key task.
    keys: JoinHandle<()>,
    /// The incoming-call task.
    calls: JoinHandle<()>,
}

impl Watcher {
    /// Starts watching `phone` for the session `agent`, on the current tokio
    /// runtime, keeping its call state in `calls` (shared with the phone's
    /// executor). The current span (a phone's, in fleet mode) is kept for its logs.
    pub fn spawn(
        phone: Arc<AdbPhone>,
        agent: AgentHandle,
        options: WatchOptions,
        calls: Calls,
    ) -> Watcher {
        let span = tracing::Span::current();
        let keys = tokio::spawn(
            watch_keys(Arc::clone(&phone), agent.clone(), options).instrument(span.clone()),
        );
        let calls = tokio::spawn(watch_calls(phone, agent, options, calls).instrument(span));
        Watcher { keys, calls }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.keys.abort();
        self.calls.abort();
    }
}

/// Whether the agent stopped by itself (a revoked token, a journal failure):
/// its queue no longer matters, and the watcher ends.
fn agent_halted(agent: &AgentHandle) -> bool {
    agent.status().halted.is_some()
}

/// The next press from `presses`; never resolves without a stream.
async fn next_press(presses: &mut Option<KeyPresses>) -> Option<Key> {
    match presses {
        Some(presses) => presses.next().await,
        None => std::future::pending().await,
    }
}

/// Follows `volume_key_toggle`: while it is on, reads the hardware keys and
/// toggles the queue on each double press of volume-down.
async fn watch_keys(phone: Arc<AdbPhone>, agent: AgentHandle, options: WatchOptions) {
    let mut presses: Option<KeyPresses> = None;
    let mut detector = DoublePress::new(options.double_press_window);
    let mut check = time::interval(options.settings_poll);
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = check.tick() => {
                if agent_halted(&agent) {
                    return;
                }
                let wanted = agent.status().settings.volume_key_toggle;
                if wanted && presses.is_none() {
                    match phone.key_presses() {
                        Ok(stream) => {
                            info!("volume_key_toggle is on: a double press of volume-down pauses or resumes the queue");
                            presses = Some(stream);
                        }
                        Err(error) => warn!(%error, "cannot watch the volume keys; trying again"),
                    }
                } else if !wanted && presses.is_some() {
                    info!("volume_key_toggle is off: no longer watching the volume keys");
                    presses = None;
                    detector.reset();
                }
            }
            key = next_press(&mut presses) => match key {
                Some(Key::Code(VOLUME_DOWN)) => {
                    if detector.press(Instant::now()) {
                        toggle_queue(&agent);
                    }
                }
                Some(other) => debug!(key = other.code(), "a hardware key that does nothing here"),
                None => {
                    // The stream's thread ended; the next check opens a new one.
                    presses = None;
                    detector.reset();
                }
            },
        }
    }
}

/// Pauses a running queue or resumes a paused one, as the volume key asks.
fn toggle_queue(agent: &AgentHandle) {
    if agent.status().queue_paused {
        info!("volume-down pressed twice: resuming the queue");
        agent.resume_queue(VOLUME_KEY_REASON);
    } else {
        info!("volume-down pressed twice: pausing the queue");
        agent.pause_queue(VOLUME_KEY_REASON);
    }
}

/// Reads the call state every [`WatchOptions::call_poll`] while a task runs
/// (unless the runner read it meanwhile) or `auto_hang_up` is on, keeps it in
/// `calls`, and follows `auto_hang_up`: while it is on, a ringing call is ended.
async fn watch_calls(
    phone: Arc<AdbPhone>,
    agent: AgentHandle,
    options: WatchOptions,
    calls: Calls,
) {
    let mut poll = time::interval(options.call_poll);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        poll.tick().await;
        if agent_halted(&agent) {
            return;
        }
        let status = agent.status();
        let hang_up = status.settings.auto_hang_up;
        calls.set_auto_hang_up(hang_up);
        let busy = status.current_task.is_some();
        let fresh = calls.latest_within(options.call_poll).is_some();
        if !hang_up && (!busy || fresh) {
            continue;
        }
        match calls.read(phone.as_ref()).await {
            Some(CallState::Ringing(number)) => {
                if !hang_up {
                    continue;
                }
                // Reading the call state can take a while through adb: a
                // call that began after the server turned auto hang-up off
                // must keep ringing, so the setting is read again here.
                if !agent.status().settings.auto_hang_up {
                    continue;
                }
                let caller = number.as_deref().map(mask_number).unwrap_or_default();
                match phone.end_call().await {
                    Ok(()) => info!(%caller, "hung up an incoming call (auto_hang_up is on)"),
                    Err(error) => warn!(%caller, %error, "cannot hang up an incoming call"),
                }
            }
            Some(CallState::Idle | CallState::OffHook) | None => {}
        }
    }
}

/// A caller's number for the logs: its last four digits, the rest masked, so
/// logs that leave the phone do not carry customers' numbers.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.trim().chars().collect();
    let keep = chars.len().min(4);
    let hidden = chars.len() - keep;
    let mut masked = "*".repeat(hidden);
    masked.extend(&chars[hidden..]);
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[tokio::test(start_paused = true)]
    async fn two_presses_within_the_window_are_a_double_press() {
        let mut detector = DoublePress::new(ms(600));
        assert!(!detector.press(Instant::now()), "a first press alone");
        time::advance(ms(350)).await;
        assert!(detector.press(Instant::now()), "the second, 350 ms later");

        // A third press right after starts a new pair.
        time::advance(ms(100)).await;
        assert!(!detector.press(Instant::now()));
        time::advance(ms(600)).await;
        assert!(detector.press(Instant::now()), "600 ms apart still counts");
    }

    #[tokio::test(start_paused = true)]
    async fn presses_further_apart_are_single_presses() {
        let mut detector = DoublePress::new(ms(600));
        assert!(!detector.press(Instant::now()));
        time::advance(ms(601)).await;
        assert!(!detector.press(Instant::now()), "too late for a pair");
        // That late press is the first of a new pair.
        time::advance(ms(200)).await;
        assert!(detector.press(Instant::now()));

        // A reset forgets a first press.
        assert!(!detector.press(Instant::now()));
        detector.reset();
        time::advance(ms(100)).await;
        assert!(!detector.press(Instant::now()));
    }

    #[test]
    fn caller_numbers_are_masked_but_the_last_four_digits() {
        assert_eq!(mask_number("13800001234"), "*******1234");
        assert_eq!(mask_number("110"), "110");
        assert_eq!(mask_number(""), "");
        assert_eq!(mask_number(" +8613800001234 "), "**********1234");
    }
}
