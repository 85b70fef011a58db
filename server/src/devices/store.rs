//! SQL of the device list: what the database knows about bound phones. The
//! live part (online, current task, battery) comes from the scheduler.

use sqlx::any::AnyRow;
use sqlx::Row;
use youmi_protocol::{AgentSettings, DeviceInfo, OperatorAccountId};

use crate::db::{flag, Db};
use crate::scheduler_store::parse_settings;

/// A bound device as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDevice {
    /// The device.
    pub device_id: String,
    /// The account it serves.
    pub operator_account_id: OperatorAccountId,
    /// The phone, as last described.
    pub info: DeviceInfo,
    /// The stored settings.
    pub settings: AgentSettings,
    /// The stored pause state.
    pub queue_paused: bool,
    /// Why it was paused.
    pub pause_reason: Option<String>,
    /// When it resumes by itself.
    pub resume_at_ms: Option<i64>,
    /// When the agent was last heard from, as of the last commit.
    pub last_seen_ms: Option<i64>,
    /// When it was bound.
    pub bound_at_ms: i64,
}

fn stored_device(row: &AnyRow) -> Result<StoredDevice, sqlx::Error> {
    Ok(StoredDevice {
        device_id: row.try_get("id")?,
        operator_account_id: row.try_get("operator_account_id")?,
        info: DeviceInfo {
            serial: row.try_get("serial")?,
            model: row.try_get("model")?,
            android_version: row.try_get("android_version")?,
            agent_version: row.try_get("agent_version")?,
        },
        settings: parse_settings(&row.try_get::<String, _>("settings")?)?,
        queue_paused: flag(row, "queue_paused")?,
        pause_reason: row.try_get("pause_reason")?,
        resume_at_ms: row.try_get("resume_at_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
        bound_at_ms: row.try_get("bound_at_ms")?,
    })
}

/// Every bound, unrevoked device, oldest binding first.
#[tracing::instrument(skip_all)]
pub async fn list(db: &Db) -> Result<Vec<StoredDevice>, sqlx::Error> {
    sqlx::query(
        "SELECT id, operator_account_id, serial, model, android_version, agent_version, \
         settings, queue_paused, pause_reason, resume_at_ms, last_seen_ms, bound_at_ms \
         FROM devices WHERE revoked_at_ms IS NULL ORDER BY bound_at_ms, id",
    )
    .fetch_all(&db.read)
    .await?
    .iter()
    .map(stored_device)
    .collect()
}
