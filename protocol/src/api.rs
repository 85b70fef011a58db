//! Bodies of the core HTTP API (`/api/v1/...`) that clients and admins call.
//!
//! Times are Unix milliseconds in fields ending `_ms`; the contract's own
//! `not_before` and `expires_at` are milliseconds too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::{CallStatus, DeviceInfo, TaskError};
use crate::settings::{AgentSettings, SettingsPatch};
use crate::task::{TaskKind, TaskState};
use crate::{OperatorAccountId, TaskId};

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable snake_case code.
    pub code: String,
    /// Human text.
    pub message: String,
    /// The request field at fault, where there is one (e.g. `payload.to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `POST /api/v1/auth/login` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    /// The employee's job number.
    pub job_no: String,
    /// The password.
    pub password: String,
}

/// An employee, as the API shows one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Employee {
    /// Database id.
    pub id: i64,
    /// Job number, the login name.
    pub job_no: String,
    /// Display name.
    pub name: String,
    /// Whether the employee is an administrator.
    pub is_admin: bool,
}

/// `POST /api/v1/auth/login` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The session token for `Authorization: Bearer`.
    pub token: String,
    /// When the token stops working.
    pub expires_at_ms: i64,
    /// Who logged in.
    pub employee: Employee,
}

/// An operator account, as the API shows one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAccount {
    /// Database id.
    pub id: OperatorAccountId,
    /// Display name.
    pub name: String,
    /// The WeCom user id of the account.
    pub wecom_user_id: String,
    /// Free text for the admins.
    #[serde(default)]
    pub remark: String,
    /// Disabled accounts take no tasks and dispatch none.
    pub disabled: bool,
    /// The phone bound to the account now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// When the account was created.
    pub created_at_ms: i64,
    /// When the account was last changed.
    pub updated_at_ms: i64,
}

/// `POST /api/v1/operator-accounts` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOperatorAccount {
    /// Display name.
    pub name: String,
    /// The WeCom user id; unique.
    pub wecom_user_id: String,
    /// Free text for the admins.
    #[serde(default)]
    pub remark: String,
}

/// `PATCH /api/v1/operator-accounts/{id}` request: any subset of the fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOperatorAccount {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New WeCom user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom_user_id: Option<String>,
    /// New remark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// Disable (true) or enable (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// `GET /api/v1/operator-accounts` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAccountList {
    /// Every account, by id.
    pub operator_accounts: Vec<OperatorAccount>,
}

/// `POST /api/v1/operator-accounts/{id}/bind-codes` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindCode {
    /// The one-time code.
    pub code: String,
    /// When it stops working, Unix milliseconds.
    pub expires_at: i64,
}

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
    /// Page size, 1-500; default 50.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wide_int::option_text"
    )]
    pub limit: Option<i64>,
    /// Tasks with ids below this one (the `next_cursor` of the previous page).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wide_int::option_text"
    )]
    pub cursor: Option<TaskId>,
}

/// `GET /api/v1/tasks` answer, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPage {
    /// This page's tasks.
    pub tasks: Vec<TaskView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<TaskId>,
}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelResult {
    /// Tasks that were waiting and are now cancelled.
    pub cancelled: u64,
    /// Tasks on a phone that were told to stop; their `finished` says how they ended.
    pub cancelling: u64,
}

/// A device, as `GET /api/v1/devices` shows one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    /// The device's id.
    pub device_id: String,
    /// The account it serves.
    pub operator_account_id: OperatorAccountId,
    /// The phone, as the agent last described it.
    pub device: DeviceInfo,
    /// Whether an agent is connected and alive (heard from in the last 90 s).
    pub online: bool,
    /// Whether the queue is paused.
    pub queue_paused: bool,
    /// Why it was paused (`api`, `volume_key`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    /// When a paused queue resumes by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_at_ms: Option<i64>,
    /// The task on the phone now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_task_id: Option<TaskId>,
    /// When the agent was last heard from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_ms: Option<i64>,
    /// Battery level from the last heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery: Option<u8>,
    /// The phone's call state from the last heartbeat (`idle`, `ringing`,
    /// `active`); absent when the agent does not report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallStatus>,
    /// Tasks waiting in the account's queue.
    pub queued_tasks: u64,
    /// The agent settings.
    pub settings: AgentSettings,
    /// When the phone was bound.
    pub bound_at_ms: i64,
}

/// `GET /api/v1/devices` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceList {
    /// Every bound device.
    pub devices: Vec<DeviceView>,
}

/// Which devices an admin action applies to: the listed ones, or all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSelection {
    /// These devices.
    #[serde(default)]
    pub device_ids: Vec<String>,
    /// Every bound device.
    #[serde(default)]
    pub all: bool,
}

/// `PUT /api/v1/devices/settings` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    /// These devices.
    #[serde(default)]
    pub device_ids: Vec<String>,
    /// Every bound device.
    #[serde(default)]
    pub all: bool,
    /// The keys to change.
    pub settings: SettingsPatch,
}

/// Answer of the device admin actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affected {
    /// How many devices the action reached.
    pub affected: u64,
}

/// One notification for the admins (`GET /api/v1/notifications`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Its id; ids grow with time.
    pub id: i64,
    /// What happened, e.g. `risk_control`.
    pub kind: String,
    /// The operator account concerned.
    pub operator_account_id: OperatorAccountId,
    /// The device concerned.
    pub device_id: String,
    /// The task that revealed it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// What to tell the admins.
    pub message: String,
    /// When it happened, Unix milliseconds.
    pub created_at_ms: i64,
    /// When an admin marked it read; absent while unread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at_ms: Option<i64>,
}

/// `GET /api/v1/notifications` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationQuery {
    /// Only unread notifications.
    #[serde(default)]
    pub unread: bool,
    /// Page size, 1-500; default 50.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wide_int::option_text"
    )]
    pub limit: Option<i64>,
    /// Notifications with ids below this one (the `next_cursor` of the previous page).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wide_int::option_text"
    )]
    pub cursor: Option<i64>,
}

/// `GET /api/v1/notifications` answer, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationPage {
    /// This page's notifications.
    pub notifications: Vec<Notification>,
    /// How many notifications are unread in all.
    pub unread: u64,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<i64>,
}

/// `POST /api/v1/notifications/read` request: some ids, or all, never neither nor both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkRead {
    /// The notifications to mark read.
    #[serde(default)]
    pub ids: Vec<i64>,
    /// Mark every notification read.
    #[serde(default)]
    pub all: bool,
}

/// `POST /api/v1/notifications/read` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedRead {
    /// How many notifications went from unread to read.
    pub marked: u64,
}

/// `GET /health/live` and `GET /health/ready` answer (outside `/api/v1`, no
/// token). `status` is `ok`, or `unavailable` with the check that failed
/// (`migrations`, `database` or `writer`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// The check that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
