//! Device logs: asking agents to upload their logs, the uploads' list and
//! their files (`/api/v1/devices/upload-logs`, `/api/v1/device-logs...`).

use serde::{Deserialize, Serialize};

use super::page::{Listed, Page, PageQuery};
use crate::OperatorAccountId;

/// The most bytes one log upload may hold; a larger one is refused with 413.
pub const MAX_LOG_UPLOAD_BYTES: u64 = 20 * 1024 * 1024;

/// Where a log request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceLogState {
    /// Sent to the agent; its upload has not arrived.
    Requested,
    /// The agent's upload is arriving now.
    Uploading,
    /// The file is stored and can be downloaded.
    Uploaded,
    /// The upload failed (too large, cut off, or the agent reported an error).
    Failed,
}

impl DeviceLogState {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceLogState::Requested => "requested",
            DeviceLogState::Uploading => "uploading",
            DeviceLogState::Uploaded => "uploaded",
            DeviceLogState::Failed => "failed",
        }
    }

    /// The state named `name` on the wire.
    pub fn parse(name: &str) -> Option<Self> {
        [
            DeviceLogState::Requested,
            DeviceLogState::Uploading,
            DeviceLogState::Uploaded,
            DeviceLogState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

/// One log request and, once it arrived, its upload (`GET /api/v1/device-logs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLog {
    /// Its id; ids grow with time. The file is `/api/v1/device-logs/{id}/file`.
    pub id: i64,
    /// The id the agent was given in `upload_logs`.
    pub request_id: String,
    /// The device asked.
    pub device_id: String,
    /// The operator account the device serves.
    pub operator_account_id: OperatorAccountId,
    /// Where it stands.
    pub state: DeviceLogState,
    /// When an admin asked, Unix milliseconds.
    pub requested_at_ms: i64,
    /// When the upload was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_at_ms: Option<i64>,
    /// The stored file's size in bytes (a `.tar.gz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Listed for DeviceLog {
    const FIELD: &'static str = "device_logs";
}

/// `GET /api/v1/device-logs` answer, newest first.
pub type DeviceLogPage = Page<DeviceLog>;

/// `GET /api/v1/device-logs` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLogQuery {
    /// Only this device's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The page: `limit` and `cursor`.
    #[serde(flatten)]
    pub page: PageQuery,
}

/// What a log request did for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogRequestOutcome {
    /// The agent was asked; its upload shows in the list when it arrives.
    Requested,
    /// The device is offline; nothing was asked.
    Offline,
}

/// One device's part of a log request's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequestResult {
    /// The device.
    pub device_id: String,
    /// What happened.
    pub result: LogRequestOutcome,
    /// The log entry that waits for the upload (`requested` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_id: Option<i64>,
}

/// `POST /api/v1/devices/upload-logs` answer: how many agents were asked,
/// and each device's outcome, in the order of the selection (by id for `all`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsRequested {
    /// How many agents were asked (the devices `requested`).
    pub affected: u64,
    /// One entry per selected device.
    pub devices: Vec<LogRequestResult>,
}
