//! Devices: the list with live state, pause, resume, settings (`/api/v1/devices...`).

use serde::{Deserialize, Serialize};

use super::page::{Listed, Page};
use crate::agent::{CallStatus, DeviceInfo};
use crate::settings::{AgentSettings, SettingsPatch};
use crate::{OperatorAccountId, TaskId};

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
    /// The installed WeCom's version, as the heartbeats last said (absent:
    /// never reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom_version: Option<String>,
    /// Whether the screen is on, as the heartbeats last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_on: Option<bool>,
    /// Whether do-not-disturb is on, as the heartbeats last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnd: Option<bool>,
}

impl Listed for DeviceView {
    const FIELD: &'static str = "devices";
}

/// `GET /api/v1/devices` answer: every bound device as one page
/// (`{"devices": [...]}`; not paged, so never a `next_cursor`).
pub type DeviceList = Page<DeviceView>;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affected {
    /// How many devices the action reached.
    pub affected: u64,
    /// What the action came to on each device it named (every bound device
    /// for `all`), by device id. Absent from answers of servers that
    /// predate it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceOutcome>,
}

/// What an admin action came to on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceOutcome {
    /// The device.
    pub device_id: String,
    /// How it went.
    pub outcome: Outcome,
    /// Why, for `unchanged` and `refused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How an admin action went on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done, and the phone (online) was told.
    Done,
    /// Done on the server; the phone is offline and is told when it
    /// connects again.
    Offline,
    /// Nothing to do: it was so already (`reason` says how).
    Unchanged,
    /// The action does not apply to this phone (`reason` says why).
    Refused,
}
