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
    /// WeCom's version, the screen and do-not-disturb, as last reported.
    pub report: Reported,
}

/// What the heartbeats last reported of the phone (`None`: never said).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reported {
    /// The installed WeCom's version.
    pub wecom_version: Option<String>,
    /// Whether the screen is on.
    pub screen_on: Option<bool>,
    /// Whether do-not-disturb is on.
    pub dnd: Option<bool>,
}

fn optional_flag(row: &AnyRow, column: &str) -> Result<Option<bool>, sqlx::Error> {
    Ok(row
        .try_get::<Option<i64>, _>(column)?
        .map(|value| value != 0))
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
        report: Reported {
            wecom_version: row.try_get("wecom_version")?,
            screen_on: optional_flag(row, "screen_on")?,
            dnd: optional_flag(row, "dnd")?,
        },
    })
}

/// Every bound, unrevoked device, oldest binding first.
#[tracing::instrument(skip_all)]
pub async fn list(db: &Db) -> Result<Vec<StoredDevice>, sqlx::Error> {
    sqlx::query(
        "SELECT id, operator_account_id, serial, model, android_version, agent_version, \
         settings, queue_paused, pause_reason, resume_at_ms, last_seen_ms, bound_at_ms, \
         wecom_version, screen_on, dnd \
         FROM devices WHERE revoked_at_ms IS NULL ORDER BY bound_at_ms, id",
    )
    .fetch_all(&db.read)
    .await?
    .iter()
    .map(stored_device)
    .collect()
}

/// A bound device with its account's name: a row of the devices page.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedDevice {
    /// The stored device.
    pub device: StoredDevice,
    /// The name of the account it serves.
    pub account_name: String,
}

/// Every bound, unrevoked device with its account's name, in one query
/// (the devices page filters, sorts and pages these with the live state).
#[tracing::instrument(skip_all)]
pub async fn listed(db: &Db) -> Result<Vec<ListedDevice>, sqlx::Error> {
    sqlx::query(
        "SELECT d.id, d.operator_account_id, d.serial, d.model, d.android_version, \
         d.agent_version, d.settings, d.queue_paused, d.pause_reason, d.resume_at_ms, \
         d.last_seen_ms, d.bound_at_ms, d.wecom_version, d.screen_on, d.dnd, \
         a.name AS account_name \
         FROM devices d JOIN operator_accounts a ON a.id = d.operator_account_id \
         WHERE d.revoked_at_ms IS NULL ORDER BY d.bound_at_ms, d.id",
    )
    .fetch_all(&db.read)
    .await?
    .iter()
    .map(|row| {
        Ok(ListedDevice {
            device: stored_device(row)?,
            account_name: row.try_get("account_name")?,
        })
    })
    .collect()
}
