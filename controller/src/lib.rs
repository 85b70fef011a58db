//! The Youmi scheduler: one durable task queue per operator account, one task in
//! flight per device, pause and auto-resume, cancellation, `not_before`, retries,
//! offline detection and the delivery rules of agent protocol v1.
//!
//! It knows nothing of HTTP, WebSockets or SQL. It talks to the world through
//! three narrow traits: a [`Store`] that commits its state changes, a [`Clock`],
//! and one [`DeviceSink`] per connected device. That keeps every rule testable
//! with an in-memory store and a paused tokio clock.
//!
//! # Layout
//! - [`Controller`]: the cloneable handle the server calls; each call is one
//!   command to the scheduler task.
//! - `scheduler`: the task that owns all queue state and applies the rules,
//!   one file per kind of rule.
//! - `writer`: the group-commit writer between the scheduler and the store.
//! - [`store`]: the records it loads at start-up and the [`Change`]s it writes.
//! - [`sink`]: [`DeviceSink`], the way out to a connected device.
//! - [`clock`]: [`Clock`], wall time that tests can pause.
//! - [`storage`]: [`StorageStatus`], how the store is doing.
//! - [`metrics`]: the names of the controller's metrics and their handles.
//!
//! # Durability
//! The scheduler changes its memory first, then hands the change to the writer,
//! which commits batches of changes in one transaction each (group commit). Every
//! effect on the outside world (a frame to an agent, an answer to the API) waits
//! for the commit of the changes it depends on, so the database always knows at
//! least what any agent or client was told. A commit that fails transiently
//! (I/O, a full disk, a lost connection) is retried without limit, the same
//! batch on a fresh transaction, and meanwhile [`Controller::storage_status`]
//! says `Degraded` and the calls that would change state are refused with
//! [`ControllerError::StorageUnavailable`]; when a commit succeeds again
//! everything carries on. A commit that keeps failing otherwise stops the
//! controller and [`Controller::failed`] reports it: the process should exit
//! and rebuild from the database, rather than run on with memory that the
//! database does not back.

pub mod clock;
pub mod metrics;
mod scheduler;
pub mod sink;
pub mod storage;
pub mod store;
mod writer;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, oneshot, watch};
use youmi_protocol::api::CancelResult;
use youmi_protocol::{
    AgentMessage, AgentSettings, CallStatus, OperatorAccountId, ServerMessage, SettingsPatch,
    TaskId, TaskKind,
};

pub use clock::{Clock, SystemClock, TokioClock};
pub use metrics::MetricsRecorder;
pub use sink::{Assign, DeviceSink, SinkClosed};
pub use storage::StorageStatus;
pub use store::{
    AccountRecord, Change, DeviceRecord, NewTask, Snapshot, Store, StoreError, TaskOwner,
    TaskRecord,
};
pub use writer::WRITER_THREAD;

/// Timing and retry rules of the scheduler.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Re-send an `assign` that was not accepted within this time (protocol: 10 s).
    pub assign_resend_ms: i64,
    /// A task whose `assign` was sent this many times (re-sends and new
    /// dispatches after a reconnect together) without being accepted fails
    /// `undeliverable`, and the queue moves on.
    pub assign_max_sends: u32,
    /// A task dispatched this long ago and still not accepted, while its
    /// device stayed connected, fails `undeliverable` at its next re-send.
    pub assign_deliver_ms: i64,
    /// A connected device silent for this long is offline (90 s: three heartbeats).
    pub offline_after_ms: i64,
    /// How often to close the connections of silent devices. Dispatch and the
    /// device list treat a silent device as offline at once; this only bounds
    /// how long its socket stays open.
    pub offline_check_ms: i64,
    /// The length of one "minute" of `auto_resume_after_min`. It is 60,000 in
    /// production; tests and demos shorten it.
    pub auto_resume_unit_ms: i64,
    /// A task whose failure is retryable runs at most this many times.
    pub max_attempts: u32,
    /// Delay before a retry, multiplied by the attempt number.
    pub retry_delay_ms: i64,
    /// Commands waiting for the scheduler before callers wait for room.
    pub command_buffer: usize,
    /// Run the writer, and with it every commit of the store, on an OS thread
    /// of its own (`youmi-writer`, with a single-threaded tokio runtime)
    /// rather than as a task of the caller's runtime. There its turns do not
    /// queue behind the runtime's other tasks (a thousand agent connections,
    /// say) between one statement and the next. Only for a store whose I/O is
    /// not bound to the caller's runtime, such as SQLite's, which runs on
    /// threads of its own: sockets stay with the runtime that opened them.
    pub writer_thread: bool,
    /// The recorder of the controller's [`metrics`]; with none, they go to the
    /// process's global recorder (and with no global recorder, nowhere).
    pub metrics: Option<MetricsRecorder>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            assign_resend_ms: 10_000,
            assign_max_sends: 6,
            assign_deliver_ms: 120_000,
            offline_after_ms: 90_000,
            offline_check_ms: 5_000,
            auto_resume_unit_ms: 60_000,
            max_attempts: 3,
            retry_delay_ms: 30_000,
            command_buffer: 4_096,
            writer_thread: false,
            metrics: None,
        }
    }
}

/// Identifies one WebSocket connection, so that a late `disconnect` of a
/// replaced connection does not take down its successor.
pub type ConnectionId = u64;

/// Which devices an admin action applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceTarget {
    /// Every bound device.
    All,
    /// These devices; an unknown id fails the whole action.
    Ids(Vec<String>),
}

/// Which tasks to cancel: those that match every filter given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelFilter {
    /// These tasks.
    pub task_ids: Option<HashSet<TaskId>>,
    /// Tasks of these accounts.
    pub operator_account_ids: Option<HashSet<OperatorAccountId>>,
    /// Tasks queued for or running on these devices.
    pub device_ids: Option<HashSet<String>>,
    /// Tasks of these kinds.
    pub kinds: Option<HashSet<TaskKind>>,
}

/// What the scheduler knows about a device right now.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStatus {
    /// The device.
    pub device_id: String,
    /// The account it serves.
    pub operator_account_id: OperatorAccountId,
    /// Connected, said hello, and heard from within the offline limit.
    pub online: bool,
    /// Whether its queue is paused.
    pub paused: bool,
    /// Why.
    pub pause_reason: Option<String>,
    /// When it resumes by itself.
    pub resume_at_ms: Option<i64>,
    /// The task on the phone (dispatched or running).
    pub current_task_id: Option<TaskId>,
    /// That task's kind.
    pub current_task_kind: Option<TaskKind>,
    /// When the agent was last heard from.
    pub last_seen_ms: Option<i64>,
    /// Battery level from the last heartbeat.
    pub battery: Option<u8>,
    /// The call state from the last heartbeat, when it said one.
    pub call: Option<CallStatus>,
    /// Tasks waiting in the account's queue (ready or delayed).
    pub queued_tasks: u64,
    /// The installed WeCom's version, as the heartbeats last said.
    pub wecom_version: Option<String>,
    /// Whether the screen is on, as the heartbeats last said.
    pub screen_on: Option<bool>,
    /// Whether do-not-disturb is on, as the heartbeats last said.
    pub dnd: Option<bool>,
    /// Its agent settings.
    pub settings: AgentSettings,
}

/// Why a controller call did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    /// Some device ids are not bound devices.
    #[error("unknown device ids: {}", .0.join(", "))]
    UnknownDevices(Vec<String>),
    /// The controller stopped (its store failed, or the server is shutting down).
    #[error("the scheduler is not running")]
    Stopped,
    /// The store is failing (or stalled); the call was refused before it
    /// changed anything. Worth trying again later.
    #[error("{0}")]
    StorageUnavailable(String),
}

/// Why a submission queued nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The task at `index` (the first, in order, with a bad account) names an
    /// operator account that does not exist.
    #[error("operator account {account} does not exist")]
    UnknownAccount {
        /// The task's place in the submission.
        index: usize,
        /// The account it names.
        account: OperatorAccountId,
    },
    /// The task at `index` names a disabled operator account.
    #[error("operator account {account} is disabled")]
    AccountDisabled {
        /// The task's place in the submission.
        index: usize,
        /// The account it names.
        account: OperatorAccountId,
    },
    /// The controller could not take it (stopped, or the store not taking writes).
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

/// The scheduler's handle: cheap to clone, one per request or connection.
#[derive(Clone)]
pub struct Controller {
    /// Commands to the scheduler task.
    commands: mpsc::Sender<scheduler::Command>,
    /// Set to the reason when the scheduler or its writer stopped on an error.
    failure: watch::Receiver<Option<String>>,
    /// How the store is doing. Weak, so that the writer dropping it (it
    /// stopped) is seen as a stop.
    storage: Weak<storage::StorageSignals>,
    /// The device-state change feed ([`Controller::device_changes`]).
    changes: watch::Receiver<u64>,
}

impl Controller {
    /// Starts the scheduler from `snapshot` and returns its handle. It runs until
    /// every handle is dropped or the store fails.
    pub fn start<S: Store, C: Clock>(
        snapshot: Snapshot,
        store: S,
        clock: C,
        config: ControllerConfig,
    ) -> Controller {
        let (commands, receiver) = mpsc::channel(config.command_buffer.max(16));
        let signals = Arc::new(storage::StorageSignals::new());
        let failure = signals.failure.subscribe();
        let storage = Arc::downgrade(&signals);
        // The scheduler and the writer register their metrics as they start.
        let recorder = config.metrics.clone();
        let changes = metrics::with_recorder(recorder.as_ref(), || {
            scheduler::Scheduler::start(
                snapshot, store, clock, config, &commands, receiver, signals,
            )
        });
        Controller {
            commands,
            failure,
            storage,
            changes,
        }
    }

    /// How the store is doing now: `Ok` unless commits fail (`Degraded`), one
    /// runs too long (`Stalled`) or the controller stopped (`Failed`).
    pub fn storage_status(&self) -> StorageStatus {
        match self.storage.upgrade() {
            Some(signals) => signals.current(),
            None => StorageStatus::Failed {
                reason: "the scheduler stopped".to_owned(),
            },
        }
    }

    /// Refuses a call that would change state while the store is not taking
    /// writes: it would wait for the store, and its changes would pile up in
    /// memory meanwhile.
    fn writable(&self) -> Result<(), ControllerError> {
        match self.storage_status() {
            StorageStatus::Ok => Ok(()),
            StorageStatus::Failed { .. } => Err(ControllerError::Stopped),
            other => Err(ControllerError::StorageUnavailable(
                other.problem().unwrap_or_default(),
            )),
        }
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> scheduler::Command,
    ) -> Result<T, ControllerError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| ControllerError::Stopped)?;
        answer.await.map_err(|_| ControllerError::Stopped)
    }

    async fn tell(&self, command: scheduler::Command) -> Result<(), ControllerError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| ControllerError::Stopped)
    }

    /// Queues new tasks, all or none, and returns their ids once they are
    /// committed: one trip to the scheduler, which checks in the same turn
    /// that every task's account exists and is enabled (it knows every
    /// account: it loads them all at start and is told of each one created
    /// or changed, [`Controller::account_changed`], before the API answers).
    /// Refused while the store is not taking writes, after the accounts'
    /// check: a bad account is reported whatever the store's state.
    pub async fn submit(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, SubmitError> {
        let refused = self.writable().err();
        self.call(|reply| scheduler::Command::Submit {
            tasks,
            refused,
            reply,
        })
        .await?
    }

    /// A device's WebSocket was opened; nothing is dispatched to it before `hello`.
    /// An older connection of the same device is closed with `replaced`.
    pub async fn connect(
        &self,
        device_id: String,
        connection: ConnectionId,
        sink: Arc<dyn DeviceSink>,
    ) -> Result<(), ControllerError> {
        self.tell(scheduler::Command::Connect {
            device_id,
            connection,
            sink,
        })
        .await
    }

    /// A frame from a device's connection.
    pub async fn agent_message(
        &self,
        device_id: String,
        connection: ConnectionId,
        message: AgentMessage,
    ) -> Result<(), ControllerError> {
        self.agent_messages(device_id, connection, vec![message])
            .await
    }

    /// Frames from a device's connection, in the order they came, handled in
    /// one turn of the scheduler.
    pub async fn agent_messages(
        &self,
        device_id: String,
        connection: ConnectionId,
        messages: Vec<AgentMessage>,
    ) -> Result<(), ControllerError> {
        self.tell(scheduler::Command::Messages {
            device_id,
            connection,
            messages,
        })
        .await
    }

    /// A device's connection closed.
    pub async fn disconnect(
        &self,
        device_id: String,
        connection: ConnectionId,
    ) -> Result<(), ControllerError> {
        self.tell(scheduler::Command::Disconnect {
            device_id,
            connection,
        })
        .await
    }

    /// A phone was bound to an account; `replaced` is the account's previous device,
    /// whose token is now revoked. The account's queue moves to the new device.
    pub async fn device_bound(
        &self,
        device: DeviceRecord,
        replaced: Option<String>,
    ) -> Result<(), ControllerError> {
        self.call(|reply| scheduler::Command::DeviceBound {
            device,
            replaced,
            reply,
        })
        .await
    }

    /// An account was created, disabled or enabled.
    pub async fn account_changed(&self, account: AccountRecord) -> Result<(), ControllerError> {
        self.call(|reply| scheduler::Command::AccountChanged { account, reply })
            .await
    }

    /// Pauses the queues of `target` (reason shown in the device list) and answers
    /// how many devices it reached, once committed.
    pub async fn pause(
        &self,
        target: DeviceTarget,
        reason: String,
    ) -> Result<u64, ControllerError> {
        self.writable()?;
        self.call(|reply| scheduler::Command::Pause {
            target,
            reason,
            reply,
        })
        .await?
    }

    /// Resumes the queues of `target`.
    pub async fn resume(&self, target: DeviceTarget) -> Result<u64, ControllerError> {
        self.writable()?;
        self.call(|reply| scheduler::Command::Resume { target, reply })
            .await?
    }

    /// Merges `patch` into the settings of `target` and pushes them to the agents.
    pub async fn update_settings(
        &self,
        target: DeviceTarget,
        patch: SettingsPatch,
    ) -> Result<u64, ControllerError> {
        self.writable()?;
        self.call(|reply| scheduler::Command::UpdateSettings {
            target,
            patch,
            reply,
        })
        .await?
    }

    /// Cancels waiting tasks at once and asks phones to stop running ones.
    pub async fn cancel(&self, filter: CancelFilter) -> Result<CancelResult, ControllerError> {
        self.writable()?;
        self.call(|reply| scheduler::Command::Cancel { filter, reply })
            .await
    }

    /// Which of `ids` name operator accounts, and whether each is disabled.
    ///
    /// The scheduler knows every account: it loads them all at start and is
    /// told of each one created or changed ([`Controller::account_changed`])
    /// before the API answers, so asking it needs no database query.
    /// [`Controller::submit`] makes the same check itself, in its own trip.
    pub async fn accounts(
        &self,
        ids: Vec<OperatorAccountId>,
    ) -> Result<HashMap<OperatorAccountId, bool>, ControllerError> {
        self.call(|reply| scheduler::Command::Accounts { ids, reply })
            .await
    }

    /// What the scheduler knows about every device.
    pub async fn devices(&self) -> Result<Vec<DeviceStatus>, ControllerError> {
        self.call(|reply| scheduler::Command::Devices { reply })
            .await
    }

    /// Sends each frame to its device if it is online (as the device list
    /// says), and answers, in order, which went out. For one-off requests
    /// that change no scheduling state, such as `upload_logs`.
    pub async fn send_frames(
        &self,
        frames: Vec<(String, ServerMessage)>,
    ) -> Result<Vec<bool>, ControllerError> {
        self.call(|reply| scheduler::Command::SendFrames { frames, reply })
            .await
    }

    /// The device-state change feed: its value grows after every turn of the
    /// scheduler that may have changed a device's state (a connection, a
    /// frame, a binding, a pause or resume, settings, a cancel, a task
    /// dispatched or finished, a timer). A watch coalesces a burst into one
    /// wake-up; [`Controller::devices`] then says what the state is.
    pub fn device_changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Resolves when the scheduler stopped on a store failure, with the reason.
    pub async fn failed(&self) -> String {
        let mut failure = self.failure.clone();
        loop {
            if let Some(reason) = failure.borrow_and_update().clone() {
                return reason;
            }
            if failure.changed().await.is_err() {
                return "the scheduler stopped".to_owned();
            }
        }
    }
}
