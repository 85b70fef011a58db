//! SQL of binding a phone: consume the code, revoke the account's previous
//! device, insert the new one, all in one transaction.

use sqlx::Row;
use youmi_controller::DeviceRecord;
use youmi_protocol::{AgentSettings, DeviceInfo, OperatorAccountId};

use crate::db::{flag, int_flag, Db};
use crate::scheduler_store::parse_settings;

/// How a bind attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum BindOutcome {
    /// The code is unknown, used or expired; nothing changed.
    InvalidCode,
    /// The code's account is disabled; nothing changed (the code stays usable
    /// once the account is enabled again).
    AccountDisabled(OperatorAccountId),
    /// The phone is bound.
    Bound {
        /// The new device, as the scheduler takes it.
        record: DeviceRecord,
        /// The account's previous device, now revoked.
        replaced: Option<String>,
    },
}

/// The new device's identity.
#[derive(Debug, Clone, Copy)]
pub struct NewDevice<'a> {
    /// Its id.
    pub device_id: &'a str,
    /// The SHA-256 hex of its token.
    pub token_hash: &'a str,
    /// What the agent said about the phone.
    pub info: &'a DeviceInfo,
}

/// Binds a phone with `code`, if the code is live and its account enabled.
#[tracing::instrument(skip_all, fields(device_id = device.device_id))]
pub async fn bind(
    db: &Db,
    code: &str,
    device: NewDevice<'_>,
    now_ms: i64,
) -> Result<BindOutcome, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    // The single UPDATE is what makes a code single-use: of two binds racing
    // with one code, only one sees `used_at_ms IS NULL`.
    let account_id: Option<i64> = sqlx::query_scalar(
        "UPDATE bind_codes SET used_at_ms = $1 \
         WHERE code = $2 AND used_at_ms IS NULL AND expires_at_ms > $1 \
         RETURNING operator_account_id",
    )
    .bind(now_ms)
    .bind(code)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(account_id) = account_id else {
        tx.rollback().await?;
        return Ok(BindOutcome::InvalidCode);
    };
    // A no-op UPDATE rather than a SELECT: it locks the account's row, so two
    // binds of one account (with two codes) run one after the other and the
    // second revokes the first's phone. SQLite's single writer serialises them
    // anyway; PostgreSQL needs the lock.
    let disabled = sqlx::query(
        "UPDATE operator_accounts SET disabled = disabled WHERE id = $1 RETURNING disabled",
    )
    .bind(account_id)
    .fetch_one(&mut *tx)
    .await
    .and_then(|row| flag(&row, "disabled"))?;
    if disabled {
        tx.rollback().await?;
        return Ok(BindOutcome::AccountDisabled(account_id));
    }
    let previous = sqlx::query(
        "SELECT id, settings, queue_paused, pause_reason, resume_at_ms FROM devices \
         WHERE operator_account_id = $1 AND revoked_at_ms IS NULL",
    )
    .bind(account_id)
    .fetch_optional(&mut *tx)
    .await?;
    // The new phone takes over the old one's settings and pause, so that a
    // phone swap does not silently restart a queue an admin had stopped.
    let (replaced, settings, paused, pause_reason, resume_at_ms) = match previous {
        Some(row) => {
            let id: String = row.try_get("id")?;
            sqlx::query("UPDATE devices SET revoked_at_ms = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            (
                Some(id),
                parse_settings(&row.try_get::<String, _>("settings")?)?,
                flag(&row, "queue_paused")?,
                row.try_get::<Option<String>, _>("pause_reason")?,
                row.try_get::<Option<i64>, _>("resume_at_ms")?,
            )
        }
        None => (None, AgentSettings::default(), false, None, None),
    };
    let settings_json =
        serde_json::to_string(&settings).map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    sqlx::query(
        "INSERT INTO devices (id, operator_account_id, token_hash, serial, model, \
         android_version, agent_version, settings, queue_paused, pause_reason, resume_at_ms, \
         last_seen_ms, bound_at_ms, revoked_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12, NULL)",
    )
    .bind(device.device_id)
    .bind(account_id)
    .bind(device.token_hash)
    .bind(&device.info.serial)
    .bind(&device.info.model)
    .bind(&device.info.android_version)
    .bind(&device.info.agent_version)
    .bind(settings_json)
    .bind(int_flag(paused))
    .bind(pause_reason.clone())
    .bind(resume_at_ms)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(BindOutcome::Bound {
        record: DeviceRecord {
            device_id: device.device_id.to_owned(),
            operator_account_id: account_id,
            settings,
            paused,
            pause_reason,
            resume_at_ms,
            last_seen_ms: None,
        },
        replaced,
    })
}
