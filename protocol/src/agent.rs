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

/// The phone's call state, as a heartbeat reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// No call.
    Idle,
    /// A call is ringing.
    Ringing,
    /// A call is under way (answered, or being dialled).
    Active,
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
        /// Whether a phone call rings or is under way (a running task waits
        /// for it to end). Never the caller's number. Absent: not known (an
        /// agent older than the field, or a phone whose calls it cannot read).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<CallStatus>,
        /// The installed WeCom's version (`4.1.22`). Absent: not known (an
        /// agent older than the field, or WeCom not installed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wecom_version: Option<String>,
        /// Whether the phone's do-not-disturb mode is on. Absent: not known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dnd: Option<bool>,
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
    /// The agent cannot take an `assign`: it is too large, not readable, of a
    /// kind or with a payload this agent's version does not understand. Nothing
    /// was journaled or run; the server ends the task `failed` with this reason.
    Refused {
        /// The task that was refused.
        task_id: TaskId,
        /// Why, one of [`refusal_code`].
        code: String,
        /// Human text for the operator.
        #[serde(default)]
        message: String,
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

impl AgentMessage {
    /// Checks every text of the frame against the storage rule
    /// ([`crate::text::check_storable`]), naming the first field at fault.
    pub fn check_text(&self) -> Result<(), crate::text::TextError> {
        use crate::text::check_storable as check;
        match self {
            AgentMessage::Hello {
                agent_version,
                device,
                finished,
                ..
            } => {
                check("agent_version", agent_version)?;
                check("device.serial", &device.serial)?;
                check("device.model", &device.model)?;
                check("device.android_version", &device.android_version)?;
                check("device.agent_version", &device.agent_version)?;
                for report in finished {
                    report.check_text("finished[].")?;
                }
                Ok(())
            }
            AgentMessage::Accepted { .. } => Ok(()),
            AgentMessage::Progress { step, .. } => check("step", step),
            AgentMessage::Finished(report) => report.check_text(""),
            AgentMessage::QueueChanged { reason, .. } => check("reason", reason),
            AgentMessage::Heartbeat {
                foreground_app,
                wecom_version,
                ..
            } => {
                check("foreground_app", foreground_app.as_deref().unwrap_or(""))?;
                check("wecom_version", wecom_version.as_deref().unwrap_or(""))
            }
            AgentMessage::Event { kind, data } => {
                check("kind", kind)?;
                check_value("data", data)
            }
            AgentMessage::UpdateStatus {
                version, message, ..
            } => {
                check("version", version)?;
                check("message", message.as_deref().unwrap_or(""))
            }
            AgentMessage::LogsUploaded { request_id, error } => {
                check("request_id", request_id)?;
                check("error", error.as_deref().unwrap_or(""))
            }
            AgentMessage::Refused { code, message, .. } => {
                check("code", code)?;
                check("message", message)
            }
        }
    }
}

impl FinishedReport {
    fn check_text(&self, prefix: &str) -> Result<(), crate::text::TextError> {
        if let Some(error) = &self.error {
            crate::text::check_storable(&format!("{prefix}error.code"), &error.code)?;
            crate::text::check_storable(&format!("{prefix}error.message"), &error.message)?;
        }
        match &self.result {
            Some(result) => check_value(&format!("{prefix}result"), result),
            None => Ok(()),
        }
    }
}

/// Checks every key and string of a JSON value against the storage rule.
fn check_value(field: &str, value: &Value) -> Result<(), crate::text::TextError> {
    match value {
        Value::String(text) => crate::text::check_storable(field, text),
        Value::Array(items) => items.iter().try_for_each(|item| check_value(field, item)),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            crate::text::check_storable(field, key)?;
            check_value(field, item)
        }),
        _ => Ok(()),
    }
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
    /// A task failure (server): the `assign` was sent the most times, or for the
    /// longest time, that the server allows without the agent accepting it.
    pub const UNDELIVERABLE: &str = "undeliverable";
    /// A task failure (server): the agent refused the `assign`; the message
    /// carries the agent's code and text.
    pub const REFUSED: &str = "refused";
    /// A frame held text that cannot be stored (a NUL character); the frame
    /// was dropped and the connection stays open.
    pub const BAD_TEXT: &str = "bad_text";
}

/// Why an agent refuses an `assign` ([`AgentMessage::Refused`]).
pub mod refusal_code {
    /// The frame is larger than [`crate::MAX_ASSIGN_FRAME_BYTES`].
    pub const TOO_LARGE: &str = "assign_too_large";
    /// The frame is not a readable `assign` (not JSON, nested too deep, a
    /// field of the wrong type).
    pub const UNREADABLE: &str = "assign_unreadable";
    /// The task's kind is not one this agent knows.
    pub const UNKNOWN_KIND: &str = "unknown_kind";
    /// The payload does not pass this agent's check of its kind.
    pub const PAYLOAD_NOT_UNDERSTOOD: &str = "payload_not_understood";
}

/// An upper bound of the length of the `assign` frame of a task of `kind`
/// whose payload's JSON text is `payload_len` bytes, whatever its id, attempt
/// and `not_after_ms`. The server refuses a task whose bound is over
/// [`crate::MAX_ASSIGN_FRAME_BYTES`].
pub fn assign_frame_len_bound(kind: TaskKind, payload_len: usize) -> usize {
    let widest = assign_frame(i64::MIN, kind, u32::MAX, Some(i64::MIN), "0")
        .map(|frame| frame.len())
        .unwrap_or(256);
    widest - 1 + payload_len
}

/// What one pass over JSON text, outside its strings, finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonShape {
    /// How deeply arrays and objects nest (a scalar is 0, `[]` is 1).
    pub depth: usize,
    /// No whitespace between tokens.
    pub compact: bool,
}

/// Reads the [`JsonShape`] of JSON text without recursion, so that any depth
/// can be measured. Text that is not JSON gets the shape its brackets give.
pub fn json_shape(text: &str) -> JsonShape {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut compact = true;
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b' ' | b'\n' | b'\r' | b'\t' => compact = false,
            _ => {}
        }
    }
    JsonShape {
        depth: deepest,
        compact,
    }
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

/// The task id of a frame that looks like an `assign` but cannot be read as
/// one (too deep, a field of the wrong type, an unknown kind), so that an
/// agent can refuse it by id. It reads the text without recursion: `type`
/// must be `"assign"` at the top level and `task.id` an integer. `None` when
/// the text does not say both.
pub fn assign_task_id(text: &str) -> Option<TaskId> {
    /// One open array or object.
    struct Level {
        object: bool,
        /// The object's latest key.
        key: Option<String>,
        /// The object is the top level's `task`.
        is_task: bool,
    }
    let bytes = text.as_bytes();
    let mut levels: Vec<Level> = Vec::new();
    let mut is_assign = false;
    let mut id = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len() && bytes[end] != b'"' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                let value = text.get(start..end.min(bytes.len()))?;
                i = end + 1;
                let mut next = i;
                while next < bytes.len() && bytes[next].is_ascii_whitespace() {
                    next += 1;
                }
                let top = levels.last_mut()?;
                if top.object && bytes.get(next) == Some(&b':') {
                    top.key = Some(value.to_owned());
                    i = next + 1;
                } else if levels.len() == 1
                    && levels[0].key.as_deref() == Some("type")
                    && value == "assign"
                {
                    is_assign = true;
                }
                continue;
            }
            open @ (b'{' | b'[') => {
                let is_task =
                    open == b'{' && levels.len() == 1 && levels[0].key.as_deref() == Some("task");
                levels.push(Level {
                    object: open == b'{',
                    key: None,
                    is_task,
                });
            }
            b'}' | b']' => {
                levels.pop();
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                if levels.len() == 2 && levels[1].is_task && levels[1].key.as_deref() == Some("id")
                {
                    id = text[start..i].parse().ok();
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if is_assign {
        id
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_of_an_unreadable_assign_is_found() {
        let deep = format!("{}1{}", "[".repeat(500), "]".repeat(500));
        let frame = format!(
            r#"{{"type":"assign","task":{{"kind":"send_message","payload":{deep},"id":77,"attempt":1}}}}"#
        );
        assert!(serde_json::from_str::<ServerMessage>(&frame).is_err());
        assert_eq!(assign_task_id(&frame), Some(77));
        let unknown_kind = r#"{ "task" : { "id" : 5, "kind" : "teleport", "payload" : {"id": 9} }, "type" : "assign" }"#;
        assert_eq!(assign_task_id(unknown_kind), Some(5));
        assert_eq!(assign_task_id(r#"{"type":"ack","task":{"id":5}}"#), None);
        assert_eq!(
            assign_task_id(r#"{"type":"assign","task":{"payload":{"id":5}}}"#),
            None
        );
        assert_eq!(assign_task_id(r#"{"type":"assign","id":5}"#), None);
        assert_eq!(
            assign_task_id(r#"{"type":"as\"sign","task":{"id":5}}"#),
            None
        );
        assert_eq!(assign_task_id("not json"), None);
        assert_eq!(assign_task_id(r#"{"type":"assign","task":{"id":"#), None);
    }

    #[test]
    fn the_shape_is_read_outside_strings() {
        let shape = |text| json_shape(text);
        assert_eq!(
            shape("1"),
            JsonShape {
                depth: 0,
                compact: true
            }
        );
        assert_eq!(
            shape(r#"{"a":[1,{"b":"[[ [["}]}"#),
            JsonShape {
                depth: 3,
                compact: true
            }
        );
        assert_eq!(
            shape(r#"["\"[", [[]]]"#),
            JsonShape {
                depth: 3,
                compact: false
            }
        );
        assert!(shape(r#"{"a":"x \" y","b":[1,2]}"#).compact);
        assert!(!shape(r#"{"a":"x \" y", "b":[1,2]}"#).compact);
        assert!(!shape("{\n}").compact);
    }

    #[test]
    fn the_frame_bound_holds_for_extreme_numbers() {
        for kind in TaskKind::ALL {
            let kind = &kind;
            let payload = r#"{"to":{"name":"x"}}"#;
            let frame = assign_frame(i64::MIN, *kind, u32::MAX, Some(i64::MIN), payload).unwrap();
            assert!(frame.len() <= assign_frame_len_bound(*kind, payload.len()));
            let small = assign_frame(1, *kind, 1, None, payload).unwrap();
            assert!(small.len() <= assign_frame_len_bound(*kind, payload.len()));
        }
    }
}
