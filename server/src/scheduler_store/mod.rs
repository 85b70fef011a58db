//! The scheduler's durable memory over SQL: [`SqlStore`] implements the
//! controller's [`Store`] trait, and [`load_snapshot`] reads back what the
//! scheduler needs after a restart.
//!
//! Every batch of changes is one transaction on the write pool (group commit).
//! The task changes in it are folded into one final row per task and written
//! with multi-row statements ([`rows`]); device changes, which are few, are one
//! `UPDATE` each. So a batch of 100,000 tasks costs a few hundred statements
//! and one fsync, whether they were submitted or ran.

mod rows;

use std::sync::Arc;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tokio::sync::oneshot;
use youmi_controller::{
    AccountRecord, Change, DeviceRecord, Snapshot, Store, StoreError, TaskOwner, TaskRecord,
};
use youmi_protocol::{AgentSettings, TaskError, TaskId, TaskKind, TaskState};

use crate::db::{flag, int_flag, Db};

/// The controller's [`Store`] over the server's database.
#[derive(Debug)]
pub struct SqlStore {
    /// The database; every statement goes to its write pool.
    db: Db,
    /// Dropped with the store. The controller's writer owns the store and drops
    /// it when it has stopped, so the receiver tells a graceful shutdown that
    /// the last batch is committed.
    released: Option<oneshot::Sender<()>>,
}

impl SqlStore {
    /// A store over `db`.
    pub fn new(db: Db) -> Self {
        SqlStore { db, released: None }
    }

    /// A receiver that completes (with an error) once the store is dropped.
    pub fn release_signal(&mut self) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        self.released = Some(sender);
        receiver
    }

    #[tracing::instrument(skip_all, fields(changes = changes.len()))]
    async fn commit_changes(&self, changes: &[Change]) -> Result<(), sqlx::Error> {
        if changes.is_empty() {
            return Ok(());
        }
        let folded = rows::fold(changes)?;
        let (inserted, updated): (Vec<_>, Vec<_>) = folded
            .tasks
            .into_iter()
            .partition(|(_, row)| row.inserted.is_some());
        let mut tx = self.db.begin_write().await?;
        rows::insert(&mut tx, self.db.backend, &inserted).await?;
        rows::update(&mut tx, self.db.backend, &updated).await?;
        for change in folded.devices {
            apply_device_change(&mut tx, change).await?;
        }
        // The last moment to find the file gone before acknowledging what
        // would otherwise go into an unlinked file.
        self.db
            .check_file()
            .map_err(|reason| sqlx::Error::Io(std::io::Error::other(reason)))?;
        tx.commit().await
    }
}

impl Store for SqlStore {
    /// Refused, as transient, while the SQLite file is not the one opened.
    /// A failed commit leaves no connection in a transaction: the write pool
    /// closes such connections ([`crate::db`]).
    async fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        self.db.check_file().map_err(StoreError::transient)?;
        self.commit_changes(changes).await.map_err(store_error)
    }

    async fn task_owner(&self, id: TaskId) -> Result<Option<TaskOwner>, StoreError> {
        task_owner(&self.db, id).await.map_err(store_error)
    }
}

/// The controller's error for a database error: transient or not as
/// [`crate::storage::is_transient`] says.
fn store_error(error: sqlx::Error) -> StoreError {
    if crate::storage::is_transient(&error) {
        StoreError::transient(error.to_string())
    } else {
        StoreError::permanent(error.to_string())
    }
}

#[tracing::instrument(skip_all, fields(task_id = id))]
async fn task_owner(db: &Db, id: TaskId) -> Result<Option<TaskOwner>, sqlx::Error> {
    let row = sqlx::query("SELECT device_id, state FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.read)
        .await?;
    row.map(|row| {
        Ok(TaskOwner {
            device_id: row.try_get("device_id")?,
            state: parse_state(&row.try_get::<String, _>("state")?)?,
        })
    })
    .transpose()
}

/// Writes one device change (or notification); task changes go through [`rows`].
async fn apply_device_change(
    tx: &mut Transaction<'static, Any>,
    change: &Change,
) -> Result<(), sqlx::Error> {
    let query = match change {
        Change::TaskInserted { .. }
        | Change::TaskDispatched { .. }
        | Change::TaskRunning { .. }
        | Change::TaskRequeued { .. }
        | Change::TaskCancelRequested { .. }
        | Change::TaskFinished { .. } => {
            unreachable!("task changes are folded into rows")
        }
        Change::QueuePaused {
            device_id,
            paused,
            reason,
            resume_at_ms,
        } => sqlx::query(
            "UPDATE devices SET queue_paused = $1, pause_reason = $2, resume_at_ms = $3 \
             WHERE id = $4",
        )
        .bind(int_flag(*paused))
        .bind(reason.as_deref().map(storable))
        .bind(*resume_at_ms)
        .bind(device_id.as_str()),
        Change::Notified {
            kind,
            account,
            device_id,
            task_id,
            message,
            at_ms,
        } => sqlx::query(
            "INSERT INTO notifications \
             (kind, operator_account_id, device_id, task_id, message, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(kind.as_str())
        .bind(*account)
        .bind(device_id.as_str())
        .bind(*task_id)
        .bind(storable(message))
        .bind(*at_ms),
        Change::SettingsChanged {
            device_id,
            settings,
        } => sqlx::query("UPDATE devices SET settings = $1 WHERE id = $2")
            .bind(
                serde_json::to_string(settings)
                    .map_err(|error| sqlx::Error::Encode(Box::new(error)))?,
            )
            .bind(device_id.as_str()),
        Change::DeviceReported {
            device_id,
            wecom_version,
            screen_on,
            dnd,
        } => sqlx::query(
            "UPDATE devices SET wecom_version = $1, screen_on = $2, dnd = $3 WHERE id = $4",
        )
        .bind(wecom_version.as_deref().map(storable))
        .bind(screen_on.map(i64::from))
        .bind(dnd.map(i64::from))
        .bind(device_id.as_str()),
        Change::DeviceSeen {
            device_id,
            at_ms,
            info: None,
        } => sqlx::query("UPDATE devices SET last_seen_ms = $1 WHERE id = $2")
            .bind(*at_ms)
            .bind(device_id.as_str()),
        Change::DeviceSeen {
            device_id,
            at_ms,
            info: Some(info),
        } => sqlx::query(
            "UPDATE devices SET last_seen_ms = $1, serial = $2, model = $3, \
             android_version = $4, agent_version = $5 WHERE id = $6",
        )
        .bind(*at_ms)
        .bind(storable(&info.serial))
        .bind(storable(&info.model))
        .bind(storable(&info.android_version))
        .bind(storable(&info.agent_version))
        .bind(device_id.as_str()),
    };
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Text from an agent as it can be stored: the gateway refuses frames with
/// text that cannot be ([`youmi_protocol::text`]), so this only guards the
/// commit, which many devices share, against one device's bad text.
fn storable(text: &str) -> String {
    youmi_protocol::text::make_storable(text).into_owned()
}

/// Reads the settings column; a value that does not parse is a decode error.
pub fn parse_settings(text: &str) -> Result<AgentSettings, sqlx::Error> {
    serde_json::from_str(text).map_err(|error| sqlx::Error::Decode(Box::new(error)))
}

/// Reads a task state column.
pub fn parse_state(text: &str) -> Result<TaskState, sqlx::Error> {
    text.parse()
        .map_err(|error: String| sqlx::Error::Decode(error.into()))
}

/// Reads a task kind column.
pub fn parse_kind(text: &str) -> Result<TaskKind, sqlx::Error> {
    text.parse()
        .map_err(|error: String| sqlx::Error::Decode(error.into()))
}

/// Reads an error column (JSON of a [`TaskError`]).
pub fn parse_error(text: Option<String>) -> Result<Option<TaskError>, sqlx::Error> {
    text.map(|text| {
        serde_json::from_str(&text).map_err(|error| sqlx::Error::Decode(Box::new(error)))
    })
    .transpose()
}

/// Reads a small non-negative integer column.
pub fn small<T: TryFrom<i64>>(row: &AnyRow, column: &str) -> Result<T, sqlx::Error> {
    let value: i64 = row.try_get(column)?;
    T::try_from(value).map_err(|_| {
        sqlx::Error::Decode(format!("column {column}: {value} is out of range").into())
    })
}

fn device_record(row: &AnyRow) -> Result<DeviceRecord, sqlx::Error> {
    Ok(DeviceRecord {
        device_id: row.try_get("id")?,
        operator_account_id: row.try_get("operator_account_id")?,
        settings: parse_settings(&row.try_get::<String, _>("settings")?)?,
        paused: flag(row, "queue_paused")?,
        pause_reason: row.try_get("pause_reason")?,
        resume_at_ms: row.try_get("resume_at_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
    })
}

fn task_record(row: &AnyRow) -> Result<TaskRecord, sqlx::Error> {
    let state = parse_state(&row.try_get::<String, _>("state")?)?;
    let device_id: Option<String> = row.try_get("device_id")?;
    Ok(TaskRecord {
        id: row.try_get("id")?,
        operator_account_id: row.try_get("operator_account_id")?,
        kind: parse_kind(&row.try_get::<String, _>("kind")?)?,
        payload: Arc::from(row.try_get::<String, _>("payload")?),
        priority: small(row, "priority")?,
        not_before_ms: row.try_get("not_before_ms")?,
        not_after_ms: row.try_get("not_after_ms")?,
        state,
        attempt: small(row, "attempt")?,
        // A queued task may remember the device of an earlier attempt; the
        // scheduler wants a device only for tasks that are on one.
        device_id: if state == TaskState::Queued {
            None
        } else {
            device_id
        },
        cancel_requested: flag(row, "cancel_requested")?,
    })
}

/// Everything the scheduler needs to rebuild its queues: every account, every
/// bound device, every task that has not ended, and the next task id.
///
/// A task has not ended exactly while its `finished_at_ms` is NULL (only
/// [`Change::TaskFinished`] and an intercepted insert set it, and an ended
/// task never runs again). Both conditions are given: the partial index of
/// unfinished tasks (migrations 0004) serves the first, and the second keeps
/// out a task whose row would break that invariant.
#[tracing::instrument(skip_all)]
pub async fn load_snapshot(db: &Db) -> Result<Snapshot, sqlx::Error> {
    let accounts = sqlx::query("SELECT id, disabled FROM operator_accounts ORDER BY id")
        .fetch_all(&db.read)
        .await?
        .iter()
        .map(|row| {
            Ok(AccountRecord {
                id: row.try_get("id")?,
                disabled: flag(row, "disabled")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let devices = sqlx::query(
        "SELECT id, operator_account_id, settings, queue_paused, pause_reason, resume_at_ms, \
         last_seen_ms FROM devices WHERE revoked_at_ms IS NULL ORDER BY id",
    )
    .fetch_all(&db.read)
    .await?
    .iter()
    .map(device_record)
    .collect::<Result<Vec<_>, _>>()?;
    let tasks = sqlx::query(
        "SELECT id, operator_account_id, kind, payload, priority, not_before_ms, not_after_ms, \
         state, attempt, device_id, cancel_requested FROM tasks \
         WHERE finished_at_ms IS NULL AND state IN ('queued', 'dispatched', 'running') \
         ORDER BY id",
    )
    .fetch_all(&db.read)
    .await?
    .iter()
    .map(task_record)
    .collect::<Result<Vec<_>, _>>()?;
    let max_id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM tasks")
        .fetch_one(&db.read)
        .await?;
    tracing::info!(
        accounts = accounts.len(),
        devices = devices.len(),
        tasks = tasks.len(),
        "loaded the scheduler's state"
    );
    Ok(Snapshot {
        accounts,
        devices,
        tasks,
        next_task_id: max_id.unwrap_or(0).max(0) + 1,
    })
}
