//! What the scheduler reads at start-up and writes as it goes, behind the
//! [`Store`] trait. The server implements it over SQL; tests over memory.

use std::future::Future;
use std::sync::Arc;

use youmi_protocol::{
    AgentSettings, DeviceInfo, OperatorAccountId, TaskError, TaskId, TaskKind, TaskState,
};

/// An operator account, as far as scheduling cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// The account.
    pub id: OperatorAccountId,
    /// Disabled accounts dispatch nothing.
    pub disabled: bool,
}

/// A bound (not revoked) device, as far as scheduling cares.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    /// The device.
    pub device_id: String,
    /// The account whose queue it runs.
    pub operator_account_id: OperatorAccountId,
    /// Its agent settings.
    pub settings: AgentSettings,
    /// Whether its queue is paused.
    pub paused: bool,
    /// Why it was paused.
    pub pause_reason: Option<String>,
    /// When a paused queue resumes by itself.
    pub resume_at_ms: Option<i64>,
    /// When the agent was last heard from.
    pub last_seen_ms: Option<i64>,
}

/// A task that has not ended, as far as scheduling cares.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    /// The task.
    pub id: TaskId,
    /// The account whose queue holds it.
    pub operator_account_id: OperatorAccountId,
    /// What it does.
    pub kind: TaskKind,
    /// Its payload as JSON text, already checked against the kind.
    pub payload: Arc<str>,
    /// 0-9, higher first.
    pub priority: u8,
    /// Not before this time.
    pub not_before_ms: Option<i64>,
    /// Expires if not started by this time.
    pub not_after_ms: Option<i64>,
    /// `queued`, `dispatched` or `running`.
    pub state: TaskState,
    /// How many times it was handed to a phone.
    pub attempt: u32,
    /// The device it was handed to, for `dispatched` and `running`.
    pub device_id: Option<String>,
    /// Whether a cancel was asked for while it was on a phone.
    pub cancel_requested: bool,
}

/// Everything the scheduler needs to rebuild its queues after a restart.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every operator account.
    pub accounts: Vec<AccountRecord>,
    /// Every bound, unrevoked device.
    pub devices: Vec<DeviceRecord>,
    /// Every task that has not ended.
    pub tasks: Vec<TaskRecord>,
    /// The id the next submitted task gets.
    pub next_task_id: TaskId,
}

/// A new task, as [`crate::Controller::submit`] takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// The account whose queue takes it.
    pub operator_account_id: OperatorAccountId,
    /// What it does.
    pub kind: TaskKind,
    /// Its payload as JSON text, already checked against the kind.
    pub payload: Arc<str>,
    /// 0-9, higher first.
    pub priority: u8,
    /// Not before this time.
    pub not_before_ms: Option<i64>,
    /// Expires if not started by this time.
    pub not_after_ms: Option<i64>,
    /// Why it is stored as `intercepted` instead of queued, if it is.
    pub intercepted: Option<TaskError>,
}

/// One durable state change. The scheduler hands these to [`Store::commit`] in
/// batches, in the order they happened, and acts on the outside world (frames to
/// agents, answers to the API) only after the batch that holds them committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A task was submitted (queued or intercepted).
    TaskInserted {
        /// Its id, given by the scheduler.
        id: TaskId,
        /// The task.
        task: Arc<NewTask>,
        /// Submission time.
        at_ms: i64,
    },
    /// A task was handed to a device.
    TaskDispatched {
        /// The task.
        id: TaskId,
        /// The device.
        device_id: String,
        /// The attempt number, counting from 1.
        attempt: u32,
        /// When.
        at_ms: i64,
    },
    /// The device accepted the task.
    TaskRunning {
        /// The task.
        id: TaskId,
        /// When.
        at_ms: i64,
    },
    /// A task went back to its queue: it was never accepted, or it failed in a way
    /// worth another try.
    TaskRequeued {
        /// The task.
        id: TaskId,
        /// When it may run again.
        not_before_ms: Option<i64>,
        /// The failure that sent it back, if any.
        error: Option<TaskError>,
        /// The failed attempt's result (its evidence and per-item outcomes),
        /// as JSON text; `None` leaves the stored result as it is.
        result: Option<String>,
        /// When.
        at_ms: i64,
    },
    /// A cancel was asked for while the task was on a phone.
    TaskCancelRequested {
        /// The task.
        id: TaskId,
        /// When.
        at_ms: i64,
    },
    /// A task ended.
    TaskFinished {
        /// The task.
        id: TaskId,
        /// A terminal state.
        state: TaskState,
        /// Why it failed.
        error: Option<TaskError>,
        /// What it produced, as JSON text.
        result: Option<String>,
        /// When.
        at_ms: i64,
    },
    /// A device's queue was paused or resumed.
    QueuePaused {
        /// The device.
        device_id: String,
        /// The new state.
        paused: bool,
        /// Why it was paused.
        reason: Option<String>,
        /// When it resumes by itself.
        resume_at_ms: Option<i64>,
    },
    /// A device's settings changed.
    SettingsChanged {
        /// The device.
        device_id: String,
        /// The whole new settings object.
        settings: AgentSettings,
    },
    /// Something the admins must see, such as a queue paused for risk control.
    Notified {
        /// What happened: a stable snake_case kind, e.g. `risk_control`.
        kind: String,
        /// The operator account concerned.
        account: OperatorAccountId,
        /// The device concerned.
        device_id: String,
        /// The task that revealed it, if any.
        task_id: Option<TaskId>,
        /// What to tell the admins.
        message: String,
        /// When.
        at_ms: i64,
    },
    /// A heartbeat reported the phone differently from before (WeCom's
    /// version, the screen, do-not-disturb); kept for the device list.
    DeviceReported {
        /// The device.
        device_id: String,
        /// The installed WeCom's version.
        wecom_version: Option<String>,
        /// Whether the screen is on.
        screen_on: Option<bool>,
        /// Whether do-not-disturb is on.
        dnd: Option<bool>,
    },
    /// A device said hello or went away; what it reported is kept for the device list.
    DeviceSeen {
        /// The device.
        device_id: String,
        /// When it was last heard from.
        at_ms: i64,
        /// What it said about itself in `hello`.
        info: Option<DeviceInfo>,
    },
}

/// Who a task belongs to, for frames about tasks the scheduler no longer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOwner {
    /// The device it was last handed to.
    pub device_id: Option<String>,
    /// Where it stands.
    pub state: TaskState,
}

/// A failure of the durable store.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store: {message}")]
pub struct StoreError {
    /// What failed.
    pub message: String,
    /// Whether the same commit may succeed later (an I/O error, a full disk,
    /// a lost connection, a read-only moment): the writer retries it without
    /// limit. Any other failure stops the controller after a few attempts.
    pub transient: bool,
}

impl StoreError {
    /// A failure that may be gone when the same commit is tried again.
    pub fn transient(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
            transient: true,
        }
    }

    /// A failure that retrying will not cure.
    pub fn permanent(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
            transient: false,
        }
    }

    /// Whether the writer should retry it without limit.
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

/// The scheduler's durable memory.
pub trait Store: Send + Sync + 'static {
    /// Writes `changes` in one transaction, in order, all or nothing. After a
    /// failure nothing of it is written, and the next call starts afresh (a
    /// connection left in a failed transaction is closed, not reused).
    fn commit(&self, changes: &[Change]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Looks up a task the scheduler does not hold (it ended, or never existed).
    fn task_owner(
        &self,
        id: TaskId,
    ) -> impl Future<Output = Result<Option<TaskOwner>, StoreError>> + Send;
}

impl<S: Store> Store for Arc<S> {
    fn commit(&self, changes: &[Change]) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).commit(changes)
    }

    fn task_owner(
        &self,
        id: TaskId,
    ) -> impl Future<Output = Result<Option<TaskOwner>, StoreError>> + Send {
        (**self).task_owner(id)
    }
}
