//! The running agent: [`Agent::spawn`] starts it, [`AgentHandle`] watches and
//! steers it.
//!
//! One task, the agent's loop, owns all state: the journal, the local queue
//! of accepted tasks, the task slot (counting down or running), the unacked
//! reports, settings and the pause flag. Everything else talks to it through
//! channels: the connection (frames in, frames out, `hello` on request), the
//! handle (pause, resume, shutdown), and the task it runs (progress, the end).
//! With one owner there is no lock to hold across I/O and no race between a
//! reconnect and a task that finishes at the same moment.
//!
//! The delivery rules of protocol v1, as this loop applies them:
//! - an `assign` is journaled (fsynced) before `accepted` is sent, and one
//!   task runs at a time: a second `assign` waits in the local queue;
//! - an `assign` of a task that is queued, in the slot, or finished and
//!   unacked is a duplicate: it is dropped (or answered with the unacked
//!   report). An `assign` of a recently acked task is told apart by its
//!   `attempt`: the acked attempt or a lower one is a late duplicate and is
//!   dropped; a higher one is the server's retry of a retryable failure, new
//!   work that is accepted and run. The acked attempts are journaled, so this
//!   holds across restarts;
//! - `started` is journaled before the executor touches the phone, and a task
//!   that was under way when the agent died is never run again;
//! - while a task runs, its progress per recipient and item is journaled
//!   before and after each send tap ([`crate::delivery`]); a retry (a later
//!   attempt) starts with those marks and resumes after what is known sent;
//! - `finished` is journaled before it is sent, re-sent every 10 s and in each
//!   `hello` until acked, and forgotten on `ack`;
//! - a paused queue starts nothing; a running task finishes;
//! - the countdown and do-not-disturb settings wrap every execution.
//!
//! # Layout
//! - this file: [`Agent::spawn`], the options, the status, and the loop's
//!   state (`Core`) with its `select!`.
//! - `handle`: [`AgentHandle`] and the commands it sends the loop.
//! - `conn`: the connection task and the server's frames, as the loop sees them.
//! - `queue`: the delivery rules for `assign`, `ack` and `cancel`, and the pause.
//! - `slot`: the one task slot (countdown, running) and starting the next task.
//! - `execute`: one execution, with do-not-disturb around it and a report that fits a frame.
//! - `reports`: re-sending `finished` reports until they are acked.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{self, Instant};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tracing::{error, info, info_span, warn, Instrument};
use youmi_protocol::{AgentSettings, AssignedTask, DeviceInfo, TaskId};

use crate::connection::{self, ConnEvent, ConnectionConfig, ConnectionEnd};
use crate::credentials::Credentials;
use crate::error::AgentError;
use crate::executor::Executor;
use crate::journal::{Entry, Journal, JournalError};

mod conn;
mod execute;
mod handle;
mod queue;
mod reports;
mod slot;

use conn::{wait_connection, Conn};
pub use handle::AgentHandle;
use handle::{Command, HandleInner};
use queue::RecentAcks;
use reports::Unacked;
use slot::Slot;

/// The countdown shown before each task when `countdown_popup` is on.
pub const COUNTDOWN_SECONDS: u32 = 10;
/// At shutdown, how long to wait for the server to ack the reports just sent.
const ACK_GRACE: Duration = Duration::from_secs(2);
/// Frames from the connection waiting for the loop; a full queue stops the
/// connection reading, which pushes back on the server.
const EVENT_BUFFER: usize = 64;

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Where `credentials.json` and `journal.jsonl` live; one directory per phone.
    pub state_dir: PathBuf,
    /// The phone, as sent in each `hello`.
    pub device: DeviceInfo,
    /// How often to send a heartbeat (the protocol says every 30 s; the server
    /// takes a device for offline after 90 s of silence).
    pub heartbeat_interval: Duration,
    /// The first reconnect pause's upper bound.
    pub backoff_initial: Duration,
    /// The cap on reconnect pauses.
    pub backoff_max: Duration,
}

impl AgentOptions {
    /// Options with the protocol's defaults: heartbeat every 30 s, reconnect
    /// backoff from 500 ms up to 30 s.
    pub fn new(state_dir: PathBuf, device: DeviceInfo) -> Self {
        AgentOptions {
            state_dir,
            device,
            heartbeat_interval: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }

    /// Refuses values the loop cannot work with: a zero heartbeat interval
    /// (no interval to tick on) and a zero backoff (a reconnect loop that
    /// spins while the server is down).
    fn check(&self) -> Result<(), AgentError> {
        let invalid = |reason: &str| Err(AgentError::InvalidOptions(reason.to_owned()));
        if self.heartbeat_interval.is_zero() {
            return invalid("heartbeat_interval must be more than zero");
        }
        if self.backoff_initial.is_zero() {
            return invalid("backoff_initial must be more than zero");
        }
        if self.backoff_max < self.backoff_initial {
            return invalid("backoff_max must be at least backoff_initial");
        }
        Ok(())
    }
}

/// Why an agent stopped by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaltReason {
    /// The server refused the device token with 401: the token was revoked,
    /// usually because another phone was bound to the same operator account.
    /// The agent no longer connects or starts tasks.
    Revoked,
    /// The journal could not be written, so the agent could not keep its
    /// promises; it stopped. The text says why.
    Journal(String),
}

impl fmt::Display for HaltReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HaltReason::Revoked => f.write_str(
                "the server refused this device's token (401): it was revoked, probably \
                 because another phone was bound to the same operator account; bind this \
                 phone again with `youmi-agent bind`",
            ),
            HaltReason::Journal(reason) => write!(f, "the agent stopped: {reason}"),
        }
    }
}

/// A snapshot of a running agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStatus {
    /// The server answered `hello` with `welcome` on the current connection.
    pub connected: bool,
    /// The local queue is paused: no task starts.
    pub queue_paused: bool,
    /// The task counting down or running.
    pub current_task: Option<TaskId>,
    /// The settings in force (defaults until the first `welcome`).
    pub settings: AgentSettings,
    /// Tasks this process finished, whatever the outcome.
    pub tasks_finished: u64,
    /// Why the agent stopped by itself, if it did.
    pub halted: Option<HaltReason>,
}

/// Starts agents. See [`Agent::spawn`].
#[derive(Debug)]
pub struct Agent;

impl Agent {
    /// Spawns the agent on the current tokio runtime: connect, `hello`, run
    /// tasks, reconnect, for as long as it is not shut down, killed or
    /// halted. The journal in `options.state_dir` is opened and recovered
    /// before this returns, so a damaged journal or a bad server address is
    /// an error here rather than a silent stop later.
    pub fn spawn(
        credentials: Credentials,
        options: AgentOptions,
        executor: Arc<dyn Executor>,
    ) -> Result<AgentHandle, AgentError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AgentError::NoRuntime)?;
        options.check()?;
        let base = crate::server_base(&credentials.server_url)?;
        let authorization = HeaderValue::from_str(&format!("Bearer {}", credentials.token))
            .map_err(|_| AgentError::InvalidToken)?;
        let span = info_span!("agent", device_id = %credentials.device_id);
        let (journal, recovery) = Journal::open(&options.state_dir)?;
        let state = journal.state();
        let pending: VecDeque<AssignedTask> = state.pending().iter().cloned().collect();
        let unacked: BTreeMap<TaskId, Unacked> = state
            .unacked()
            .iter()
            .map(|finished| {
                let unacked = Unacked {
                    report: finished.report.clone(),
                    attempt: finished.attempt,
                    last_sent: None,
                };
                (finished.report.task_id, unacked)
            })
            .collect();
        let mut acked = RecentAcks::default();
        for done in state.recently_acked() {
            acked.insert(done.task_id, done.attempt);
        }
        span.in_scope(|| {
            if recovery.torn_tail {
                warn!("the journal's last line was torn by a crash and was dropped");
            }
            for task_id in &recovery.interrupted {
                warn!(
                    task_id,
                    "this task was running when the agent stopped; it is reported as interrupted, not run again"
                );
            }
            info!(
                pending = pending.len(),
                unacked = unacked.len(),
                journal = %journal.path().display(),
                "journal recovered"
            );
        });

        let settings = AgentSettings::default();
        let status = AgentStatus {
            connected: false,
            queue_paused: false,
            current_task: None,
            settings,
            tasks_finished: 0,
            halted: None,
        };
        let (status_tx, status_rx) = watch::channel(status);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        let connection = ConnectionConfig {
            url: crate::websocket_url(&base),
            authorization,
            device_id: credentials.device_id.clone(),
            heartbeat_interval: options.heartbeat_interval,
            backoff_initial: options.backoff_initial,
            backoff_max: options.backoff_max,
            phone_state: connection::PhoneState(Arc::clone(&executor)),
        };
        let logs = LogUploads {
            state_dir: options.state_dir.clone(),
            token: credentials.token.clone(),
            client: reqwest::Client::new(),
        };
        let core = Core {
            logs,
            commands_tx: commands_tx.clone(),
            device_id: credentials.device_id,
            device: options.device,
            executor,
            journal: Arc::new(Mutex::new(journal)),
            status: status_tx,
            events_tx,
            settings,
            settings_known: false,
            paused: false,
            pending,
            slot: Slot::Idle,
            unacked,
            acked,
            conn: None,
            clock_offset_ms: 0,
            shutting_down: false,
            ack_deadline: None,
            halted: None,
            tasks_finished: 0,
            connection,
            connection_task: None,
            connection_numbers: Arc::new(AtomicU64::new(0)),
            dnd_to_restore: Arc::new(Mutex::new(None)),
        };
        let join = runtime.spawn(core.run(commands_rx, events_rx).instrument(span));
        Ok(AgentHandle {
            inner: Arc::new(HandleInner {
                commands: commands_tx,
                status: status_rx,
                abort: join.abort_handle(),
                killed: AtomicBool::new(false),
            }),
        })
    }
}

/// A task that is aborted when dropped, so that dropping the agent's loop
/// (a kill) takes its connection and running task with it.
struct TaskGuard<T>(JoinHandle<T>);

impl<T: Send + 'static> TaskGuard<T> {
    fn spawn(future: impl std::future::Future<Output = T> + Send + 'static) -> Self {
        TaskGuard(tokio::spawn(future))
    }
}

impl<T> Drop for TaskGuard<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for TaskGuard<T> {
    type Output = Result<T, JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// The agent's loop and all of its state.
/// What the agent's log uploads need.
#[derive(Clone)]
struct LogUploads {
    /// The state directory, whose `logs/` and `evidence/` go up.
    state_dir: PathBuf,
    /// The device token the upload carries.
    token: String,
    /// Reused across uploads.
    client: reqwest::Client,
}

struct Core {
    /// For logs.
    device_id: String,
    /// Sent in `hello`.
    device: DeviceInfo,
    /// Does the work.
    executor: Arc<dyn Executor>,
    /// Shared only with the blocking thread that appends to it; the loop
    /// awaits each append, so the lock is never contended.
    journal: Arc<Mutex<Journal>>,
    /// Published after every step of the loop.
    status: watch::Sender<AgentStatus>,
    /// Cloned into the connection task.
    events_tx: mpsc::Sender<ConnEvent>,
    /// In force; defaults until the first `welcome`.
    settings: AgentSettings,
    /// A `welcome` arrived since this process started. Until then no task
    /// starts: the settings that shape it (countdown, do-not-disturb, start
    /// queue on open) are not known yet.
    settings_known: bool,
    /// The queue is paused (by the server, by the phone, or at start).
    paused: bool,
    /// Accepted, not started, in order.
    pending: VecDeque<AssignedTask>,
    /// The task being worked on.
    slot: Slot,
    /// Finished and not acked, by task id.
    unacked: BTreeMap<TaskId, Unacked>,
    /// Recently acked, with their attempts, to tell late duplicates from retries.
    acked: RecentAcks,
    /// The live connection, if any.
    conn: Option<Conn>,
    /// Server time minus local time, from `welcome`, for `not_after_ms`.
    clock_offset_ms: i64,
    /// A shutdown was asked for: start nothing, finish the running task.
    shutting_down: bool,
    /// At shutdown, when to stop waiting for acks.
    ack_deadline: Option<Instant>,
    /// Why the agent stopped by itself.
    halted: Option<HaltReason>,
    /// Tasks finished by this process.
    tasks_finished: u64,
    /// How to connect; kept to restart the connection task.
    connection: ConnectionConfig,
    /// The connection task; aborted when the loop ends.
    connection_task: Option<TaskGuard<ConnectionEnd>>,
    /// Numbers connections; shared with the connection task and kept here so
    /// that a restarted task goes on counting, and a late event of an old
    /// connection is not taken for one of the new.
    connection_numbers: Arc<AtomicU64>,
    /// What a log upload needs: where the logs are, the token, a client.
    logs: LogUploads,
    /// To the loop itself, for the end of a log upload.
    commands_tx: mpsc::UnboundedSender<Command>,
    /// The phone's own do-not-disturb state, while a restore of it failed: the
    /// next task restores it (and keeps it as the state to restore to), so a
    /// dropped connection cannot leave the phone in do-not-disturb for good.
    dnd_to_restore: Arc<Mutex<Option<bool>>>,
}

impl Core {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::Receiver<ConnEvent>,
    ) {
        self.start_connection();
        if let Err(failure) = self.serve(&mut commands, &mut events).await {
            error!(
                error = %failure,
                "the journal cannot be written; the agent stops rather than run tasks it cannot record"
            );
            self.halted = Some(HaltReason::Journal(failure.to_string()));
        }
        // Only a journal failure gets here with a task in the slot; it is
        // aborted like a crash, and the journal already says what it said.
        self.slot = Slot::Idle;
        self.close_connection(&mut events).await;
        self.conn = None;
        self.publish();
        info!("agent stopped");
    }

    /// The loop proper; returns on shutdown, or with the journal's error.
    async fn serve(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        events: &mut mpsc::Receiver<ConnEvent>,
    ) -> Result<(), JournalError> {
        loop {
            self.start_next().await?;
            self.publish();
            if self.shutting_down && self.slot.is_idle() && !self.waiting_for_acks() {
                return Ok(());
            }
            let wake_at = self.next_wake();
            tokio::select! {
                Some(command) = commands.recv() => self.on_command(command),
                Some(event) = events.recv() => self.on_event(event).await?,
                event = self.slot.wait() => self.on_slot(event).await?,
                end = wait_connection(&mut self.connection_task) => self.on_connection_end(end),
                () = time::sleep_until(wake_at.unwrap_or_else(far_future)), if wake_at.is_some() => {
                    self.resend_due();
                }
            }
        }
    }

    /// Accepted tasks that have not finished, for `hello`.
    fn running_ids(&self) -> Vec<TaskId> {
        self.slot
            .task_id()
            .into_iter()
            .chain(self.pending.iter().map(|task| task.id))
            .collect()
    }

    /// Appends to the journal on a blocking thread (the fsync may take a
    /// while) and waits for it.
    async fn append(&self, entry: Entry) -> Result<(), JournalError> {
        let journal = Arc::clone(&self.journal);
        tokio::task::spawn_blocking(move || {
            journal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .append(&entry)
        })
        .await
        .unwrap_or_else(|error| Err(JournalError::Writer(error.to_string())))
    }

    fn publish(&self) {
        let status = AgentStatus {
            connected: self.conn.as_ref().is_some_and(|conn| conn.welcomed),
            queue_paused: self.paused,
            current_task: self.slot.task_id(),
            settings: self.settings,
            tasks_finished: self.tasks_finished,
            halted: self.halted.clone(),
        };
        self.status.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A time the loop never reaches; only used for a disabled timer branch.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_that_cannot_work_are_refused() {
        let good = AgentOptions::new(PathBuf::from("/tmp/x"), DeviceInfo::default());
        assert!(good.check().is_ok());
        assert_eq!(good.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(good.backoff_initial, Duration::from_millis(500));
        assert_eq!(good.backoff_max, Duration::from_secs(30));
        let mut zero_heartbeat = good.clone();
        zero_heartbeat.heartbeat_interval = Duration::ZERO;
        let error = zero_heartbeat.check().unwrap_err().to_string();
        assert!(error.contains("heartbeat_interval"), "{error}");
        let mut zero_backoff = good.clone();
        zero_backoff.backoff_initial = Duration::ZERO;
        assert!(zero_backoff.check().is_err());
        let mut inverted = good;
        inverted.backoff_max = Duration::from_millis(100);
        assert!(inverted.check().is_err());
    }
}
