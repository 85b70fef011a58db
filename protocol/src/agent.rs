//! The agent WebSocket frames (`GET /agent/v1/ws`) and the bind route
//! (`POST /agent/v1/bind`).
//!
//! Every frame is one JSON object in a text frame, tagged by its `type` field in
//! snake_case.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::settings::AgentSettings;
use crate::task::TaskKind;
use crate::{OperatorAccountId, TaskId};

/// What an agent tells the server about the phone it drives, at bind time and in
/// every `hello`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The phone's serial number as adb reports it (or a simulator's name).
    #[serde(default)]
    pub serial: String,
    /// The phone's model, for the admin's device list.
    #[serde(default)]
    pub model: String,
    /// The Android version string of the phone.
    #[serde(default)]
    pub android_version: String,
    /// The version of the agent program.
    #[serde(default)]
    pub agent_version: String,
}

/// `POST /agent/v1/bind` request: a one-time bind code and the phone that uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindRequest {
    /// The bind code an admin created for an operator account.
    pub code: String,
    /// The phone being bound.
    pub device: DeviceInfo,
}

/// `POST /agent/v1/bind` answer. The token is shown once; the server keeps only
/// its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindResponse {
    /// The new device's identifier.
    pub device_id: String,
    /// The device token, presented as `Authorization: Bearer` on the WebSocket.
    pub token: String,
    /// The operator account the phone now serves.
    pub operator_account_id: OperatorAccountId,
}

/// How a task ended on the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The task did what it was asked.
    Succeeded,
    /// The task could not be done; see the error.
    Failed,
    /// The task was stopped by a `cancel` before it was done.
    Cancelled,
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    /// A stable snake_case code, e.g. `lost`, `contact_not_found`.
    pub code: String,
    /// Human text for the operator.
    pub message: String,
    /// Whether running the task again may succeed and is safe.
    #[serde(default)]
    pub retryable: bool,
}

/// The end of one task, as the agent reports it (and re-sends until acked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedReport {
    /// The task that ended.
    pub task_id: TaskId,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed, for `failed` (and optionally `cancelled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
    /// What the task produced, free-form per kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// State of an agent self-update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// The release is being downloaded.
    Downloading,
    /// The release was verified and installed.
    Installed,
    /// The update did not work; see the message.
    Failed,
}

/// A frame from the agent to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// First frame after connecting: what the agent holds from before.
    Hello {
        /// The agent program's version.
        agent_version: String,
        /// The phone, as at bind time (it may have been updated since).
        device: DeviceInfo,
        /// Whether the phone's queue is paused right now.
        #[serde(default)]
        queue_paused: bool,
        /// Tasks the agent accepted and has not finished.
        #[serde(default)]
        running: Vec<TaskId>,
        /// Finished tasks whose `ack` the agent has not received.
        #[serde(default)]
        finished: Vec<FinishedReport>,
    },
    /// The agent journaled the task; the server never sends it to anyone else.
    Accepted {
        /// The accepted task.
        task_id: TaskId,
    },
    /// Optional progress of a running task.
    Progress {
        /// The running task.
        task_id: TaskId,
        /// The step's name.
        step: String,
        /// Steps done so far.
        done: u32,
        /// Steps in all.
        total: u32,
    },
    /// The task's end; re-sent until acked.
    Finished(FinishedReport),
    /// The queue was paused or resumed on the phone.
    QueueChanged {
        /// The new state.
        paused: bool,
        /// Why, e.g. `volume_key`.
        #[serde(default)]
        reason: String,
    },
    /// Sign of life, every 30 seconds.
    Heartbeat {
        /// Battery level, 0-100.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        battery: Option<u8>,
        /// Whether the phone is charging.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        charging: Option<bool>,
        /// Whether the screen is on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        screen_on: Option<bool>,
        /// The package in the foreground.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        foreground_app: Option<String>,
    },
    /// Something the agent saw on the phone, for the CRM.
    Event {
        /// `incoming_message`, `friend_request`, `relationship_changed`, ...
        kind: String,
        /// The event's fields, per kind.
        #[serde(default)]
        data: Value,
    },
    /// Progress of a self-update.
    UpdateStatus {
        /// The release being installed.
        version: String,
        /// Where the update stands.
        state: UpdateState,
        /// Detail, for `failed`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Answer to `upload_logs`.
    LogsUploaded {
        /// The request being answered.
        request_id: String,
        /// Why the upload did not work, if it did not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// A task as the server hands it to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignedTask {
    /// The task's id.
    pub id: TaskId,
    /// What to do.
    pub kind: TaskKind,
    /// The kind's payload (see [`crate::task`]).
    pub payload: Value,
    /// 1 for the first run, counting up on retries.
    pub attempt: u32,
    /// Do not start the task after this time (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after_ms: Option<i64>,
}

/// A frame from the server to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to `hello`.
    Welcome {
        /// The agent's device id.
        device_id: String,
        /// The operator account the phone serves.
        operator_account_id: OperatorAccountId,
        /// The whole settings object.
        settings: AgentSettings,
        /// The server's clock, Unix milliseconds.
        server_time_ms: i64,
    },
    /// Run this task.
    Assign {
        /// The task.
        task: AssignedTask,
    },
    /// The result is stored; the agent may forget the task.
    Ack {
        /// The stored task.
        task_id: TaskId,
    },
    /// Stop this task at the next safe step.
    Cancel {
        /// The task to stop.
        task_id: TaskId,
    },
    /// The server paused or resumed the device's queue.
    Queue {
        /// The new state.
        paused: bool,
        /// When a paused queue resumes by itself, Unix milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_at_ms: Option<i64>,
    },
    /// New agent settings, applied at once.
    Settings {
        /// The whole settings object.
        settings: AgentSettings,
    },
    /// POST the log file to `url` with the bearer token.
    UploadLogs {
        /// Echoed in `logs_uploaded`.
        request_id: String,
        /// Where to send the file.
        url: String,
    },
    /// Download, verify, install, reconnect.
    Update {
        /// The release.
        version: String,
        /// Where to download it, with the bearer token.
        url: String,
        /// Its SHA-256, hex.
        sha256: String,
    },
    /// Something the agent sent could not be used.
    Error {
        /// Stable snake_case code, e.g. `bad_message`.
        code: String,
        /// Human text.
        message: String,
    },
}

/// Error codes the server uses in [`ServerMessage::Error`].
pub mod error_code {
    /// The frame was not JSON, or not a known message.
    pub const BAD_MESSAGE: &str = "bad_message";
    /// `accepted`, `progress` or `finished` named a task that is not this device's.
    pub const NOT_YOUR_TASK: &str = "not_your_task";
    /// The frame was larger than [`crate::MAX_FRAME_BYTES`].
    pub const FRAME_TOO_LARGE: &str = "frame_too_large";
    /// A newer connection with the same device token took over.
    pub const REPLACED: &str = "replaced";
    /// The device's token was revoked (another phone was bound to the account).
    pub const REVOKED: &str = "revoked";
    /// The first frame must be `hello`.
    pub const HELLO_REQUIRED: &str = "hello_required";
    /// A task the server knew as running was not in the agent's `hello`.
    pub const LOST: &str = "lost";
    /// A task failure (agent to server): WeCom showed a risk-control warning. The
    /// server pauses the account's queue at once, never retries the task by itself,
    /// and notifies the admins; an operator resumes the queue by hand.
    pub const RISK_CONTROL: &str = "risk_control";
}

/// The `assign` frame for a task whose payload is JSON text, written as it is,
/// without parsing it into a [`Value`] and writing that out again. It is the
/// frame serializing [`ServerMessage::Assign`] gives, except that the payload
/// keeps its own spacing and key order (a [`Value`] sorts keys). A payload
/// that is not JSON is an error.
pub fn assign_frame(
    id: TaskId,
    kind: TaskKind,
    attempt: u32,
    not_after_ms: Option<i64>,
    payload: &str,
) -> Result<String, serde_json::Error> {
    /// [`AssignedTask`] with the payload as raw JSON; the field order and the
    /// skipped field match, which a test checks.
    #[derive(Serialize)]
    struct RawTask<'a> {
        id: TaskId,
        kind: TaskKind,
        payload: &'a serde_json::value::RawValue,
        attempt: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        not_after_ms: Option<i64>,
    }
    #[derive(Serialize)]
    #[serde(tag = "type", rename = "assign")]
    struct RawAssign<'a> {
        task: RawTask<'a>,
    }
    let payload: &serde_json::value::RawValue = serde_json::from_str(payload)?;
    serde_json::to_string(&RawAssign {
        task: RawTask {
            id,
            kind,
            payload,
            attempt,
            not_after_ms,
        },
    })
}
