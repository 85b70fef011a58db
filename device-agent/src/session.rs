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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinError, JoinHandle};
use tokio::time::{self, Instant};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tracing::{debug, error, info, info_span, warn, Instrument, Span};
use youmi_protocol::agent::refusal_code;
use youmi_protocol::{
    AgentMessage, AgentSettings, AssignedTask, DeviceInfo, FinishedReport, Outcome, ServerMessage,
    TaskId, TaskPayload, UpdateState, MAX_FRAME_BYTES,
};

use crate::connection::{self, ConnEvent, ConnectionConfig, ConnectionEnd, Outbound};
use crate::credentials::Credentials;
use crate::delivery::{DeliveryMark, MarkSink};
use crate::error::AgentError;
use crate::executor::{self, Executor, Progress, TaskContext, TaskControl, TaskFailure};
use crate::journal::{AckedAttempt, Entry, FinishedAttempt, Journal, JournalError};

/// The countdown shown before each task when `countdown_popup` is on.
pub const COUNTDOWN_SECONDS: u32 = 10;
/// An unacked `finished` is sent again after this long.
const RESEND_AFTER: Duration = Duration::from_secs(10);
/// At shutdown, how long to wait for the server to ack the reports just sent.
const ACK_GRACE: Duration = Duration::from_secs(2);
/// At shutdown, how long the connection may take to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames from the connection waiting for the loop; a full queue stops the
/// connection reading, which pushes back on the server.
const EVENT_BUFFER: usize = 64;
/// Acked tasks remembered in memory to recognise a late duplicate `assign`.
const RECENT_ACKED: usize = 1024;

/// What to answer `upload_logs` with until log upload is built.
const LOGS_NOT_SUPPORTED: &str = "not supported by this agent";
/// What to answer `update` with until self-update is built.
const UPDATE_NOT_SUPPORTED: &str = "self-update is not supported by this agent";

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
        let core = Core {
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

/// What the handle asks of the agent's loop.
enum Command {
    Pause(String),
    Resume(String),
    Shutdown,
}

/// Watches and steers a running agent. Cloning it is cheap; dropping every
/// clone leaves the agent running.
#[derive(Clone)]
pub struct AgentHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    /// To the agent's loop.
    commands: mpsc::UnboundedSender<Command>,
    /// The loop publishes its status here; the channel closes when it ends.
    status: watch::Receiver<AgentStatus>,
    /// Stops the loop (and with it the connection and the running task).
    abort: AbortHandle,
    /// Set by [`AgentHandle::kill`], so the status says disconnected at once.
    killed: AtomicBool,
}

impl fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentHandle")
            .field("status", &self.status())
            .finish()
    }
}

impl AgentHandle {
    /// The agent's state now. After a shutdown or kill it shows disconnected
    /// with no current task.
    pub fn status(&self) -> AgentStatus {
        let mut status = self.inner.status.borrow().clone();
        if self.inner.killed.load(Ordering::SeqCst) || self.inner.status.has_changed().is_err() {
            status.connected = false;
            status.current_task = None;
        }
        status
    }

    /// Waits until the agent is connected (the server answered `hello`), for
    /// at most `timeout`. False if the time ran out or the agent stopped.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut status = self.inner.status.clone();
        let connected = time::timeout(timeout, status.wait_for(|status| status.connected)).await;
        matches!(connected, Ok(Ok(_))) && !self.inner.killed.load(Ordering::SeqCst)
    }

    /// Waits until the agent halts by itself and says why, or returns `None`
    /// when it stopped for another reason (shutdown, kill).
    pub async fn wait_halted(&self) -> Option<HaltReason> {
        let mut status = self.inner.status.clone();
        let seen = status
            .wait_for(|status| status.halted.is_some())
            .await
            .map(|status| status.halted.clone());
        match seen {
            Ok(halted) => halted,
            // The loop ended; its last status may still say why.
            Err(_) => status.borrow().halted.clone(),
        }
    }

    /// Pauses the queue on the phone's side (as the volume keys would): no new
    /// task starts, a running one finishes, and the server is told with
    /// `queue_changed {paused: true, reason}`.
    pub fn pause_queue(&self, reason: &str) {
        let _ = self.inner.commands.send(Command::Pause(reason.to_owned()));
    }

    /// Resumes the queue on the phone's side and tells the server.
    pub fn resume_queue(&self, reason: &str) {
        let _ = self.inner.commands.send(Command::Resume(reason.to_owned()));
    }

    /// Stops gracefully: starts nothing new, lets a running task finish and
    /// reports it, waits briefly for the server's acks, closes the socket.
    /// The journal is already on disk (every entry is fsynced); tasks still
    /// queued stay in it and run after the next start. Returns when the agent
    /// has stopped.
    pub async fn shutdown(self) {
        let _ = self.inner.commands.send(Command::Shutdown);
        let mut status = self.inner.status.clone();
        while status.changed().await.is_ok() {}
    }

    /// Stops at once, as a crash would: the loop, the connection and the
    /// running task are aborted wherever they are. The journal stays as it is
    /// on disk, and the next start recovers from it.
    pub fn kill(&self) {
        self.inner.killed.store(true, Ordering::SeqCst);
        self.inner.abort.abort();
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

/// The one task the agent works on.
enum Slot {
    Idle,
    /// The countdown is on the phone's screen; the task has not started and
    /// goes back to the queue if the queue is paused meanwhile.
    Countdown {
        task: AssignedTask,
        timer: TaskGuard<()>,
        span: Span,
    },
    /// The task is running (`started` is journaled).
    Running {
        task_id: TaskId,
        /// Kept for the report, which is acked by attempt.
        attempt: u32,
        control: TaskControl,
        run: TaskGuard<FinishedReport>,
        span: Span,
    },
}

/// What happened in the slot.
enum SlotEvent {
    CountdownOver,
    Progress(Progress),
    Done(Result<FinishedReport, JoinError>),
}

impl Slot {
    fn task_id(&self) -> Option<TaskId> {
        match self {
            Slot::Idle => None,
            Slot::Countdown { task, .. } => Some(task.id),
            Slot::Running { task_id, .. } => Some(*task_id),
        }
    }

    fn is_idle(&self) -> bool {
        matches!(self, Slot::Idle)
    }

    /// The slot's next event; never resolves while idle.
    async fn wait(&mut self) -> SlotEvent {
        match self {
            Slot::Idle => std::future::pending().await,
            Slot::Countdown { timer, .. } => {
                let _ = timer.await;
                SlotEvent::CountdownOver
            }
            Slot::Running { control, run, .. } => {
                tokio::select! {
                    biased;
                    Some(progress) = control.next_progress() => SlotEvent::Progress(progress),
                    done = run => SlotEvent::Done(done),
                }
            }
        }
    }
}

/// A finished report the server has not acked.
struct Unacked {
    report: FinishedReport,
    /// The attempt the report is for; journaled with the ack.
    attempt: u32,
    /// When it was last sent; `None` while it waits for a connection.
    last_sent: Option<Instant>,
}

/// The live connection, as the loop sees it.
struct Conn {
    id: u64,
    out: mpsc::UnboundedSender<Outbound>,
    /// `welcome` arrived on this connection.
    welcomed: bool,
}

/// A bounded map of recently acked task ids to the attempt that was acked.
#[derive(Default)]
struct RecentAcks {
    /// Oldest first, one per task id.
    order: VecDeque<TaskId>,
    attempts: HashMap<TaskId, u32>,
}

impl RecentAcks {
    /// Records an ack as the most recent one. The attempt known for a task
    /// never goes down: a lower one would let a late duplicate run again.
    fn insert(&mut self, id: TaskId, attempt: u32) {
        match self.attempts.get_mut(&id) {
            Some(known) => {
                *known = (*known).max(attempt);
                self.order.retain(|other| *other != id);
                self.order.push_back(id);
            }
            None => {
                self.attempts.insert(id, attempt);
                self.order.push_back(id);
                if self.order.len() > RECENT_ACKED {
                    if let Some(old) = self.order.pop_front() {
                        self.attempts.remove(&old);
                    }
                }
            }
        }
    }

    /// The attempt acked for the task, if it is among the recent acks.
    fn attempt(&self, id: TaskId) -> Option<u32> {
        self.attempts.get(&id).copied()
    }

    /// Forgets the task's ack: a retry of it was accepted.
    fn remove(&mut self, id: TaskId) {
        if self.attempts.remove(&id).is_some() {
            self.order.retain(|other| *other != id);
        }
    }
}

/// The agent's loop and all of its state.
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

    // ---- the connection ----

    async fn on_event(&mut self, event: ConnEvent) -> Result<(), JournalError> {
        match event {
            ConnEvent::Connected { conn, out, hello } => {
                let now = Instant::now();
                for unacked in self.unacked.values_mut() {
                    unacked.last_sent = Some(now);
                }
                let message = AgentMessage::Hello {
                    agent_version: crate::AGENT_VERSION.to_owned(),
                    device: self.device.clone(),
                    queue_paused: self.paused,
                    running: self.running_ids(),
                    finished: self.unacked.values().map(|u| u.report.clone()).collect(),
                };
                info!(
                    conn,
                    running = self.pending.len() + usize::from(!self.slot.is_idle()),
                    unacked = self.unacked.len(),
                    "sending hello"
                );
                self.conn = Some(Conn {
                    id: conn,
                    out,
                    welcomed: false,
                });
                let _ = hello.send(message);
            }
            ConnEvent::Frame { conn, message } => {
                if self.conn.as_ref().is_some_and(|c| c.id == conn) {
                    self.on_message(message).await?;
                }
            }
            ConnEvent::Disconnected { conn } => {
                if self.conn.as_ref().is_some_and(|c| c.id == conn) {
                    self.conn = None;
                    info!(conn, "disconnected; reconnecting");
                }
            }
        }
        Ok(())
    }

    /// Starts the connection task.
    fn start_connection(&mut self) {
        self.connection_task = Some(TaskGuard::spawn(connection::run(
            self.connection.clone(),
            self.events_tx.clone(),
            Arc::clone(&self.connection_numbers),
        )));
    }

    /// The connection task ended: a revoked token halts the agent; a panic
    /// (a bug) must not leave the phone offline for good, so it is restarted.
    fn on_connection_end(&mut self, end: Result<ConnectionEnd, JoinError>) {
        self.connection_task = None;
        self.conn = None;
        match end {
            Ok(ConnectionEnd::Revoked) => {
                self.halted = Some(HaltReason::Revoked);
                self.put_back_countdown("the device token was revoked");
            }
            Ok(ConnectionEnd::Stopped) => {}
            Err(error) => {
                error!(%error, "the connection task failed; starting it again");
                self.start_connection();
            }
        }
    }

    /// Sends a frame on the live connection. False without one: the caller's
    /// frame is then covered by the next `hello` or dropped (progress).
    fn send(&self, message: AgentMessage) -> bool {
        match &self.conn {
            Some(conn) => conn.out.send(Outbound::Frame(message)).is_ok(),
            None => false,
        }
    }

    async fn on_message(&mut self, message: ServerMessage) -> Result<(), JournalError> {
        match message {
            ServerMessage::Welcome {
                device_id,
                operator_account_id,
                settings,
                server_time_ms,
            } => {
                if device_id != self.device_id {
                    warn!(
                        welcome_device_id = %device_id,
                        "the server welcomed a different device id than the credentials name"
                    );
                }
                self.clock_offset_ms = server_time_ms.saturating_sub(now_ms());
                self.settings = settings;
                if let Some(conn) = &mut self.conn {
                    conn.welcomed = true;
                }
                info!(operator_account_id, "welcomed by the server");
                if !self.settings_known {
                    self.settings_known = true;
                    if !settings.start_queue_on_open && !self.paused {
                        info!("start_queue_on_open is off: the queue starts paused");
                        self.set_paused(true, "start_queue_on_open", true);
                    }
                }
            }
            ServerMessage::Assign { task } => self.on_assign(task).await?,
            ServerMessage::Ack { task_id } => self.on_ack(task_id).await?,
            ServerMessage::Cancel { task_id } => self.on_cancel(task_id).await?,
            ServerMessage::Queue {
                paused,
                resume_at_ms,
            } => {
                info!(paused, resume_at_ms, "the server changed the queue");
                self.set_paused(paused, "server", false);
            }
            ServerMessage::Settings { settings } => {
                info!(?settings, "new settings");
                self.settings = settings;
            }
            ServerMessage::UploadLogs { request_id, url } => {
                warn!(%request_id, %url, "the server asked for the logs; {LOGS_NOT_SUPPORTED}");
                self.send(AgentMessage::LogsUploaded {
                    request_id,
                    error: Some(LOGS_NOT_SUPPORTED.to_owned()),
                });
            }
            ServerMessage::Update { version, .. } => {
                warn!(%version, "the server asked for an update; {UPDATE_NOT_SUPPORTED}");
                self.send(AgentMessage::UpdateStatus {
                    version,
                    state: UpdateState::Failed,
                    message: Some(UPDATE_NOT_SUPPORTED.to_owned()),
                });
            }
            ServerMessage::Error { code, message } => {
                warn!(%code, %message, "the server reported an error");
            }
        }
        Ok(())
    }

    // ---- the delivery rules ----

    /// Whether the task id is under way here: queued, in the slot, or finished
    /// and unacked. An `assign` of such a task is a duplicate.
    fn holds(&self, id: TaskId) -> bool {
        self.slot.task_id() == Some(id)
            || self.pending.iter().any(|task| task.id == id)
            || self.unacked.contains_key(&id)
    }

    async fn on_assign(&mut self, task: AssignedTask) -> Result<(), JournalError> {
        let id = task.id;
        if self.holds(id) {
            if self.unacked.contains_key(&id) {
                debug!(
                    task_id = id,
                    attempt = task.attempt,
                    "duplicate assign of a finished task; sending its report again"
                );
                self.resend(id);
            } else {
                debug!(
                    task_id = id,
                    attempt = task.attempt,
                    "duplicate assign ignored"
                );
            }
            return Ok(());
        }
        let acked_attempt = self.acked.attempt(id);
        if let Some(acked) = acked_attempt {
            if task.attempt <= acked {
                // The server re-sends an `assign` only while it waits for
                // `accepted`, so this one was overtaken by the whole run of
                // the task. Running it again could send a message twice.
                debug!(
                    task_id = id,
                    attempt = task.attempt,
                    acked_attempt = acked,
                    "late duplicate assign of an acked task ignored"
                );
                return Ok(());
            }
        }
        if self.halted.is_some() || self.shutting_down {
            // Not accepted: the server assigns it again elsewhere or later.
            warn!(task_id = id, "not accepting a task while stopping");
            return Ok(());
        }
        if let Err(error) = TaskPayload::parse(task.kind, &task.payload) {
            // A payload this version does not understand would fail on the
            // phone anyway; refused now, the server ends the task at once and
            // the queue moves on.
            warn!(task_id = id, kind = %task.kind, %error, "refusing a task whose payload this agent does not understand");
            self.send(AgentMessage::Refused {
                task_id: id,
                code: refusal_code::PAYLOAD_NOT_UNDERSTOOD.to_owned(),
                message: error.to_string(),
            });
            return Ok(());
        }
        self.append(Entry::Accepted(task.clone())).await?;
        if let Some(acked) = acked_attempt {
            // The server retries a retryable failure under the same id with a
            // higher attempt: new work. The journal dropped the ack record
            // with the `accepted` just written; from now on the task is held,
            // which is what makes further copies of this `assign` duplicates.
            info!(
                task_id = id,
                attempt = task.attempt,
                acked_attempt = acked,
                "retry of a task whose earlier attempt was acked"
            );
            self.acked.remove(id);
        }
        self.send(AgentMessage::Accepted { task_id: id });
        if let Some(running) = self.slot.task_id() {
            warn!(
                task_id = id,
                running,
                "the server assigned a task while another one runs; it waits in the local queue"
            );
        }
        info!(task_id = id, kind = %task.kind, attempt = task.attempt, "task accepted");
        self.pending.push_back(task);
        Ok(())
    }

    async fn on_ack(&mut self, task_id: TaskId) -> Result<(), JournalError> {
        let Some(attempt) = self.unacked.get(&task_id).map(|u| u.attempt) else {
            debug!(task_id, "ack for a task with no unacked report; ignored");
            return Ok(());
        };
        self.append(Entry::Acked(AckedAttempt { task_id, attempt }))
            .await?;
        self.unacked.remove(&task_id);
        self.acked.insert(task_id, attempt);
        debug!(task_id, attempt, "report acked");
        Ok(())
    }

    async fn on_cancel(&mut self, task_id: TaskId) -> Result<(), JournalError> {
        match &self.slot {
            Slot::Running {
                task_id: running,
                control,
                span,
                ..
            } if *running == task_id => {
                span.in_scope(|| info!("cancel asked; the task stops at its next step"));
                control.cancel();
                return Ok(());
            }
            Slot::Countdown { task, span, .. } if task.id == task_id => {
                span.in_scope(|| info!("cancelled during the countdown"));
                let attempt = task.attempt;
                self.slot = Slot::Idle;
                return self
                    .finish(
                        executor::report(task_id, Err(TaskFailure::Cancelled)),
                        attempt,
                    )
                    .await;
            }
            _ => {}
        }
        if let Some(task) = self
            .pending
            .iter()
            .position(|task| task.id == task_id)
            .and_then(|index| self.pending.remove(index))
        {
            info!(task_id, "cancelled before it started");
            return self
                .finish(
                    executor::report(task_id, Err(TaskFailure::Cancelled)),
                    task.attempt,
                )
                .await;
        }
        if self.unacked.contains_key(&task_id) {
            debug!(
                task_id,
                "cancel of a finished task; sending its report again"
            );
            self.resend(task_id);
        } else {
            debug!(task_id, "cancel of an unknown task ignored");
        }
        Ok(())
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Pause(reason) => self.set_paused(true, &reason, true),
            Command::Resume(reason) => self.set_paused(false, &reason, true),
            Command::Shutdown => {
                if !self.shutting_down {
                    info!("shutting down: nothing new starts; a running task finishes");
                    self.shutting_down = true;
                    self.put_back_countdown("the agent is shutting down");
                }
            }
        }
    }

    /// Pauses or resumes the queue; `tell_server` for changes made on the
    /// phone's side, which the server learns through `queue_changed`.
    fn set_paused(&mut self, paused: bool, reason: &str, tell_server: bool) {
        if paused != self.paused {
            info!(
                paused,
                reason,
                "queue {}",
                if paused { "paused" } else { "resumed" }
            );
        }
        self.paused = paused;
        if paused {
            self.put_back_countdown("the queue was paused");
        }
        if tell_server {
            self.send(AgentMessage::QueueChanged {
                paused,
                reason: reason.to_owned(),
            });
        }
    }

    /// A task counting down has not started: it goes back to the head of the
    /// queue rather than start after a pause, shutdown or revocation.
    fn put_back_countdown(&mut self, why: &str) {
        if let Slot::Countdown { .. } = self.slot {
            if let Slot::Countdown { task, span, .. } =
                std::mem::replace(&mut self.slot, Slot::Idle)
            {
                span.in_scope(|| info!("countdown stopped: {why}; the task waits in the queue"));
                self.pending.push_front(task);
            }
        }
    }

    // ---- running tasks ----

    fn may_start(&self) -> bool {
        self.slot.is_idle()
            && !self.paused
            && self.settings_known
            && !self.shutting_down
            && self.halted.is_none()
    }

    /// Starts the next queued task if nothing runs and the queue may run.
    async fn start_next(&mut self) -> Result<(), JournalError> {
        while self.may_start() {
            let Some(task) = self.pending.pop_front() else {
                return Ok(());
            };
            let span = info_span!("task", task_id = task.id, kind = %task.kind);
            if self.expired(&task) {
                span.in_scope(|| warn!("not started: its not_after time has passed"));
                let failure = TaskFailure::failed(
                    "expired",
                    "the task was not started before its not_after time",
                    false,
                );
                self.finish(executor::report(task.id, Err(failure)), task.attempt)
                    .await?;
                continue;
            }
            if self.settings.countdown_popup {
                span.in_scope(|| info!(seconds = COUNTDOWN_SECONDS, "countdown before the task"));
                let executor = Arc::clone(&self.executor);
                let timer = TaskGuard::spawn(
                    async move {
                        executor.show_countdown(COUNTDOWN_SECONDS).await;
                        time::sleep(Duration::from_secs(u64::from(COUNTDOWN_SECONDS))).await;
                    }
                    .instrument(span.clone()),
                );
                self.slot = Slot::Countdown { task, timer, span };
            } else {
                self.begin(task, span).await?;
            }
        }
        Ok(())
    }

    /// Journals `started`, then hands the task to the executor, wrapped in
    /// do-not-disturb when the settings ask for it.
    async fn begin(&mut self, task: AssignedTask, span: Span) -> Result<(), JournalError> {
        if self.expired(&task) {
            span.in_scope(|| warn!("not started: its not_after time passed during the countdown"));
            let failure = TaskFailure::failed(
                "expired",
                "the task was not started before its not_after time",
                false,
            );
            return self
                .finish(executor::report(task.id, Err(failure)), task.attempt)
                .await;
        }
        self.append(Entry::Started(task.id)).await?;
        let task_id = task.id;
        let attempt = task.attempt;
        let (ctx, control) = TaskContext::new(task_id);
        // A retry resumes after what the earlier attempts marked sent, and
        // this attempt's marks go to the journal before each tap.
        let earlier = self
            .journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .state()
            .marks(task_id);
        if !earlier.is_empty() {
            span.in_scope(|| {
                info!(
                    marks = earlier.len(),
                    "resuming after the earlier attempts' progress"
                )
            });
        }
        let ctx = ctx
            .resuming(earlier)
            .with_sink(Arc::new(JournalMarks(Arc::clone(&self.journal))));
        let run = TaskGuard::spawn(
            execute(
                Arc::clone(&self.executor),
                task,
                ctx,
                self.settings.dnd_while_running,
                Arc::clone(&self.dnd_to_restore),
            )
            .instrument(span.clone()),
        );
        self.slot = Slot::Running {
            task_id,
            attempt,
            control,
            run,
            span,
        };
        Ok(())
    }

    async fn on_slot(&mut self, event: SlotEvent) -> Result<(), JournalError> {
        match event {
            SlotEvent::CountdownOver => {
                if let Slot::Countdown { task, span, .. } =
                    std::mem::replace(&mut self.slot, Slot::Idle)
                {
                    self.begin(task, span).await?;
                }
            }
            SlotEvent::Progress(progress) => {
                self.send(AgentMessage::Progress {
                    task_id: progress.task_id,
                    step: progress.step,
                    done: progress.done,
                    total: progress.total,
                });
            }
            SlotEvent::Done(done) => {
                let Slot::Running {
                    task_id,
                    attempt,
                    span,
                    ..
                } = std::mem::replace(&mut self.slot, Slot::Idle)
                else {
                    return Ok(());
                };
                let report = done.unwrap_or_else(|error| {
                    // `execute` catches executor panics, so this is a panic in
                    // the runner itself; the task may have done anything.
                    span.in_scope(|| error!(%error, "the task's runner failed"));
                    executor::report(
                        task_id,
                        Err(TaskFailure::failed(
                            "agent_error",
                            format!("the agent's task runner failed: {error}"),
                            false,
                        )),
                    )
                });
                self.finish(report, attempt).instrument(span).await?;
            }
        }
        Ok(())
    }

    fn expired(&self, task: &AssignedTask) -> bool {
        task.not_after_ms
            .is_some_and(|not_after| now_ms().saturating_add(self.clock_offset_ms) > not_after)
    }

    /// Journals the report of the task's `attempt`, then sends it; it stays
    /// unacked until the server acks it.
    async fn finish(&mut self, report: FinishedReport, attempt: u32) -> Result<(), JournalError> {
        let report = fit_frame(report);
        self.append(Entry::Finished(FinishedAttempt {
            report: report.clone(),
            attempt,
        }))
        .await?;
        self.tasks_finished += 1;
        let task_id = report.task_id;
        match (&report.outcome, &report.error) {
            (Outcome::Failed, Some(error)) => {
                warn!(task_id, code = %error.code, message = %error.message, "task failed")
            }
            (outcome, _) => info!(task_id, ?outcome, "task finished"),
        }
        self.send(AgentMessage::Finished(report.clone()));
        // Without a connection the report waits for the next `hello`; with
        // one, a send that failed (the socket just went) is covered by the
        // `hello` of the next connection, so it counts as sent either way.
        self.unacked.insert(
            task_id,
            Unacked {
                report,
                attempt,
                last_sent: self.conn.is_some().then(Instant::now),
            },
        );
        Ok(())
    }

    // ---- reports until acked ----

    fn resend(&mut self, task_id: TaskId) {
        let Some(report) = self.unacked.get(&task_id).map(|u| u.report.clone()) else {
            return;
        };
        if self.conn.is_none() {
            return;
        }
        self.send(AgentMessage::Finished(report));
        if let Some(unacked) = self.unacked.get_mut(&task_id) {
            unacked.last_sent = Some(Instant::now());
        }
    }

    /// Sends again every report that has waited [`RESEND_AFTER`] for its ack.
    fn resend_due(&mut self) {
        if self.conn.is_none() {
            return;
        }
        let now = Instant::now();
        let due: Vec<TaskId> = self
            .unacked
            .iter()
            .filter(|(_, u)| u.last_sent.is_none_or(|sent| now >= sent + RESEND_AFTER))
            .map(|(id, _)| *id)
            .collect();
        for task_id in due {
            debug!(task_id, "no ack yet; sending the report again");
            self.resend(task_id);
        }
    }

    /// When the loop must wake with nothing else happening: the next resend,
    /// or the end of the shutdown's wait for acks.
    fn next_wake(&self) -> Option<Instant> {
        let resend = self.conn.as_ref().and_then(|_| {
            self.unacked
                .values()
                .map(|u| {
                    u.last_sent
                        .map_or_else(Instant::now, |sent| sent + RESEND_AFTER)
                })
                .min()
        });
        match (resend, self.ack_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// At shutdown: whether to keep the connection a little longer for the
    /// acks of reports already sent on it.
    fn waiting_for_acks(&mut self) -> bool {
        let welcomed = self.conn.as_ref().is_some_and(|conn| conn.welcomed);
        if !welcomed || self.unacked.values().all(|u| u.last_sent.is_none()) {
            return false;
        }
        let deadline = *self
            .ack_deadline
            .get_or_insert_with(|| Instant::now() + ACK_GRACE);
        Instant::now() < deadline
    }

    // ---- bookkeeping ----

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

    /// Closes the connection at the end: a polite close when connected (the
    /// connection passes on late acks meanwhile), an abort otherwise.
    async fn close_connection(&mut self, events: &mut mpsc::Receiver<ConnEvent>) {
        let Some(mut task) = self.connection_task.take() else {
            return;
        };
        let Some(conn) = &self.conn else {
            return; // Dropping the guard aborts a connection still trying.
        };
        let _ = conn.out.send(Outbound::Close);
        let deadline = time::sleep(CLOSE_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut task => break,
                event = events.recv() => match event {
                    Some(ConnEvent::Frame { message: ServerMessage::Ack { task_id }, .. }) => {
                        if self.on_ack(task_id).await.is_err() {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => break,
                },
                () = &mut deadline => {
                    warn!("the connection did not close in time");
                    break;
                }
            }
        }
    }
}

/// Delivery marks go to the journal, fsynced, on a blocking thread.
#[derive(Debug)]
struct JournalMarks(Arc<Mutex<Journal>>);

impl MarkSink for JournalMarks {
    fn write<'a>(&'a self, mark: &'a DeliveryMark) -> executor::BoxFuture<'a, Result<(), String>> {
        let journal = Arc::clone(&self.0);
        let entry = Entry::Delivery(*mark);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                journal
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .append(&entry)
                    .map_err(|error| error.to_string())
            })
            .await
            .unwrap_or_else(|error| Err(error.to_string()))
        })
    }
}

/// Resolves when the connection task ends; never while there is none.
async fn wait_connection(
    task: &mut Option<TaskGuard<ConnectionEnd>>,
) -> Result<ConnectionEnd, JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

/// Runs one task on the executor, with do-not-disturb on around it when asked
/// (and restored whatever the outcome), and turns the outcome into a report.
/// `dnd_to_restore` holds the phone's own state while a restore of it has
/// failed: it is restored before a task that runs without do-not-disturb, and
/// is what a task that runs with it restores to afterwards.
async fn execute(
    executor: Arc<dyn Executor>,
    task: AssignedTask,
    ctx: TaskContext,
    do_not_disturb: bool,
    dnd_to_restore: Arc<Mutex<Option<bool>>>,
) -> FinishedReport {
    let owed = dnd_to_restore
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    let previous = if do_not_disturb {
        match executor.set_do_not_disturb(true).await {
            // Still owed a restore: the state now is ours, not the phone's.
            Ok(now) => Some(owed.unwrap_or(now)),
            Err(failure) => {
                warn!(%failure, "cannot turn do-not-disturb on; the task does not run");
                owe_dnd(&dnd_to_restore, owed);
                return executor::report(task.id, Err(failure));
            }
        }
    } else {
        if let Some(original) = owed {
            match executor.set_do_not_disturb(original).await {
                Ok(_) => info!(
                    on = original,
                    "do-not-disturb restored to the phone's own state"
                ),
                Err(failure) => {
                    warn!(%failure, on = original, "still cannot restore do-not-disturb to the phone's own state; trying again before the next task");
                    owe_dnd(&dnd_to_restore, Some(original));
                }
            }
        }
        None
    };
    info!(attempt = task.attempt, "task started");
    let result = AssertUnwindSafe(executor.execute(&task, &ctx))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            error!(panic = %what, "the executor panicked");
            Err(TaskFailure::failed(
                "executor_panicked",
                format!("the executor panicked: {what}"),
                false,
            ))
        });
    if let Some(previous) = previous {
        if let Err(failure) = executor.set_do_not_disturb(previous).await {
            warn!(%failure, on = previous, "cannot restore do-not-disturb to the phone's own state; trying again before the next task");
            owe_dnd(&dnd_to_restore, Some(previous));
        }
    }
    executor::report(task.id, result)
}

/// Remembers the phone's own do-not-disturb state for a later restore.
fn owe_dnd(dnd_to_restore: &Mutex<Option<bool>>, original: Option<bool>) {
    if let Some(original) = original {
        *dnd_to_restore
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(original);
    }
}

/// The largest report that still fits a frame, with room for the envelope.
const MAX_REPORT_BYTES: usize = MAX_FRAME_BYTES - 4096;
/// An error message longer than this is cut; it is for people, not programs.
const MAX_ERROR_MESSAGE_CHARS: usize = 4000;

/// Makes a report fit one frame: the server refuses frames over 1 MiB, and a
/// report it refuses is never acked, so it would be re-sent forever. An
/// oversized result is replaced by a note saying so; the outcome stands.
fn fit_frame(mut report: FinishedReport) -> FinishedReport {
    if let Some(error) = &mut report.error {
        if error.message.chars().count() > MAX_ERROR_MESSAGE_CHARS {
            error.message = error
                .message
                .chars()
                .take(MAX_ERROR_MESSAGE_CHARS)
                .collect();
        }
    }
    let size = serde_json::to_vec(&report).map_or(usize::MAX, |bytes| bytes.len());
    if size > MAX_REPORT_BYTES {
        warn!(
            task_id = report.task_id,
            bytes = size,
            "the task's result is too large for a frame; it is replaced by a note"
        );
        report.result = Some(serde_json::json!({
            "result_dropped": "the result was larger than a protocol frame allows",
            "bytes": size,
        }));
    }
    report
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
    use serde_json::json;
    use youmi_protocol::TaskError;

    #[test]
    fn oversized_reports_are_cut_to_fit_a_frame() {
        let big = FinishedReport {
            task_id: 1,
            outcome: Outcome::Succeeded,
            error: None,
            result: Some(json!({"dump": "x".repeat(MAX_FRAME_BYTES)})),
        };
        let fitted = fit_frame(big);
        assert_eq!(fitted.outcome, Outcome::Succeeded);
        assert!(serde_json::to_vec(&fitted).unwrap().len() < MAX_REPORT_BYTES);
        assert!(fitted.result.unwrap()["result_dropped"].is_string());

        let wordy = FinishedReport {
            task_id: 2,
            outcome: Outcome::Failed,
            error: Some(TaskError {
                code: "x".to_owned(),
                message: "y".repeat(10_000),
                retryable: false,
            }),
            result: None,
        };
        let fitted = fit_frame(wordy);
        assert_eq!(
            fitted.error.unwrap().message.chars().count(),
            MAX_ERROR_MESSAGE_CHARS
        );

        let small = FinishedReport {
            task_id: 3,
            outcome: Outcome::Succeeded,
            error: None,
            result: Some(json!({"steps": 3})),
        };
        assert_eq!(fit_frame(small.clone()), small);
    }

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
