//! Tasks: submit one or a batch, show, list, cancel (`/api/v1/tasks...`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::page::{Listed, Page, PageQuery};
use crate::agent::TaskError;
use crate::task::{TaskKind, TaskState};
use crate::{OperatorAccountId, TaskId};

/// One task to submit, alone or in a batch. A client builds the payload as a
/// [`Value`]; the server reads it as the JSON text it came as
/// (`Box<serde_json::value::RawValue>`), which it checks without building a
/// tree of values ([`crate::TaskPayload::parse_text`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitTask<P = Value> {
    /// The account whose queue takes the task.
    #[serde(deserialize_with = "crate::wide_int::required")]
    pub operator_account_id: OperatorAccountId,
    /// What to do.
    pub kind: TaskKind,
    /// The kind's payload.
    pub payload: P,
    /// 0-9, higher first; default 5. Read as any integer, so that the
    /// server can refuse one out of range by name.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wide_int::option"
    )]
    pub priority: Option<i64>,
    /// Not before this time, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// Expire the task if it has not started by this time, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
}

/// `POST /api/v1/tasks` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedTask {
    /// The new task's id.
    pub id: TaskId,
    /// `queued`, or `intercepted` when a monitored keyword stopped it.
    pub state: TaskState,
}

/// `POST /api/v1/tasks/batch` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitBatch<P = Value> {
    /// The tasks, taken all or none.
    pub tasks: Vec<SubmitTask<P>>,
}

/// `POST /api/v1/tasks/batch` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedBatch {
    /// The new tasks' ids, in the order submitted.
    pub ids: Vec<TaskId>,
}

/// A task, as `GET /api/v1/tasks/{id}` and the list show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    /// The task's id.
    pub id: TaskId,
    /// The account whose queue holds it.
    pub operator_account_id: OperatorAccountId,
    /// What it does.
    pub kind: TaskKind,
    /// Where it stands.
    pub state: TaskState,
    /// How many times it was handed to a phone.
    pub attempt: u32,
    /// 0-9, higher first.
    pub priority: u8,
    /// The kind's payload.
    pub payload: Value,
    /// Not before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// Expires if not started by this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
    /// The device it was last handed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
    /// What it produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Whether a cancel was asked for while it ran.
    #[serde(default)]
    pub cancel_requested: bool,
    /// When it was submitted.
    pub created_at_ms: i64,
    /// When it last changed.
    pub updated_at_ms: i64,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
}

/// `GET /api/v1/tasks` query: filters and a page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    /// Only this account's tasks.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wide_int::option_text"
    )]
    pub operator_account_id: Option<OperatorAccountId>,
    /// Only tasks in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    /// Only tasks of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TaskKind>,
    /// Only tasks submitted at or after this time, Unix milliseconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wide_int::option_text"
    )]
    pub created_after: Option<i64>,
    /// The page: `limit` and `cursor`.
    #[serde(flatten)]
    pub page: PageQuery,
}

impl Listed for TaskView {
    const FIELD: &'static str = "tasks";
}

/// `GET /api/v1/tasks` answer, newest first: `{"tasks": [...], "next_cursor"?}`.
pub type TaskPage = Page<TaskView>;

/// `POST /api/v1/tasks/cancel` request. A task is cancelled when it matches every
/// filter given; at least one filter must be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelTasks {
    /// These tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_ids: Option<Vec<TaskId>>,
    /// Tasks of these accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_account_ids: Option<Vec<OperatorAccountId>>,
    /// Tasks queued for or running on these devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_ids: Option<Vec<String>>,
    /// Tasks of these kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<TaskKind>>,
}

/// `POST /api/v1/tasks/cancel` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelResult {
    /// Tasks that were waiting and are now cancelled.
    pub cancelled: u64,
    /// Tasks on a phone that were told to stop; their `finished` says how they ended.
    pub cancelling: u64,
    /// With a `device_ids` filter: the counts of each device named, by
    /// device id (absent without that filter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceCancelled>,
}

/// The tasks of one device that a cancel ended or asked to stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCancelled {
    /// The device.
    pub device_id: String,
    /// Its waiting tasks now cancelled.
    pub cancelled: u64,
    /// Its running task told to stop (0 or 1).
    pub cancelling: u64,
}
