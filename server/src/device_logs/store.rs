//! SQL of the device logs: a row per request sent to an agent, claimed once
//! by its upload, then uploaded or failed.

use sqlx::any::AnyRow;
use sqlx::Row;
use youmi_protocol::api::{DeviceLog, DeviceLogState};

use crate::db::Db;
use crate::http::page::PageRequest;

const COLUMNS: &str = "l.id, l.request_id, l.device_id, d.operator_account_id, a.name, \
     l.state, l.requested_at_ms, l.uploaded_at_ms, l.size_bytes, l.error";
const FROM: &str = "device_logs l JOIN devices d ON d.id = l.device_id \
     JOIN operator_accounts a ON a.id = d.operator_account_id";

/// A log entry as the console shows it: the API's view and the account's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLog {
    /// What the API shows.
    pub log: DeviceLog,
    /// The name of the operator account the device serves.
    pub account_name: String,
}

fn stored_log(row: &AnyRow) -> Result<StoredLog, sqlx::Error> {
    let state: String = row.try_get("state")?;
    let state = DeviceLogState::parse(&state).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "state".to_owned(),
        source: format!("unknown log state `{state}`").into(),
    })?;
    let size: Option<i64> = row.try_get("size_bytes")?;
    Ok(StoredLog {
        log: DeviceLog {
            id: row.try_get("id")?,
            request_id: row.try_get("request_id")?,
            device_id: row.try_get("device_id")?,
            operator_account_id: row.try_get("operator_account_id")?,
            state,
            requested_at_ms: row.try_get("requested_at_ms")?,
            uploaded_at_ms: row.try_get("uploaded_at_ms")?,
            size_bytes: size.map(|size| size.max(0) as u64),
            error: row.try_get("error")?,
        },
        account_name: row.try_get("name")?,
    })
}

/// Stores one request per device (in one transaction) and returns each one's
/// id, in order.
#[tracing::instrument(skip_all, fields(devices = requests.len()))]
pub async fn create(
    db: &Db,
    requests: &[(String, String)],
    requested_by: i64,
    now_ms: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let mut ids = Vec::with_capacity(requests.len());
    for (device_id, request_id) in requests {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO device_logs (request_id, device_id, requested_by, requested_at_ms, state) \
             VALUES ($1, $2, $3, $4, 'requested') RETURNING id",
        )
        .bind(request_id)
        .bind(device_id)
        .bind(requested_by)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        ids.push(id);
    }
    tx.commit().await?;
    Ok(ids)
}

/// Deletes requests that were never sent (the device went offline first).
#[tracing::instrument(skip_all)]
pub async fn forget(db: &Db, ids: &[i64]) -> Result<(), sqlx::Error> {
    for id in ids {
        sqlx::query("DELETE FROM device_logs WHERE id = $1 AND state = 'requested'")
            .bind(id)
            .execute(&db.write)
            .await?;
    }
    Ok(())
}

/// Why an upload may not claim a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unclaimable {
    /// No request has this id.
    Unknown,
    /// The request was made of another device.
    OtherDevice,
    /// An upload already claimed it.
    Used,
}

/// Claims the request `request_id` of `device_id` for an upload, once: the
/// request's id, or why not.
#[tracing::instrument(skip_all)]
pub async fn claim(
    db: &Db,
    request_id: &str,
    device_id: &str,
) -> Result<Result<i64, Unclaimable>, sqlx::Error> {
    let claimed: Option<i64> = sqlx::query_scalar(
        "UPDATE device_logs SET state = 'uploading' \
         WHERE request_id = $1 AND device_id = $2 AND state = 'requested' RETURNING id",
    )
    .bind(request_id)
    .bind(device_id)
    .fetch_optional(&db.write)
    .await?;
    if let Some(id) = claimed {
        return Ok(Ok(id));
    }
    let owner: Option<String> =
        sqlx::query_scalar("SELECT device_id FROM device_logs WHERE request_id = $1")
            .bind(request_id)
            .fetch_optional(&db.read)
            .await?;
    Ok(Err(match owner {
        None => Unclaimable::Unknown,
        Some(owner) if owner != device_id => Unclaimable::OtherDevice,
        Some(_) => Unclaimable::Used,
    }))
}

/// The upload of `id` is stored: `size` bytes.
#[tracing::instrument(skip_all)]
pub async fn uploaded(db: &Db, id: i64, size: u64, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE device_logs SET state = 'uploaded', uploaded_at_ms = $1, size_bytes = $2 \
         WHERE id = $3",
    )
    .bind(now_ms)
    .bind(i64::try_from(size).unwrap_or(i64::MAX))
    .bind(id)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Fails the uploads that were arriving when the server stopped (their files
/// are partial) and returns their ids.
#[tracing::instrument(skip_all)]
pub async fn fail_interrupted(db: &Db) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE device_logs SET state = 'failed', \
         error = 'the server stopped during the upload' \
         WHERE state = 'uploading' RETURNING id",
    )
    .fetch_all(&db.write)
    .await
}

/// The upload of `id` failed on the server's side (too large, cut off).
#[tracing::instrument(skip_all)]
pub async fn failed(db: &Db, id: i64, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE device_logs SET state = 'failed', error = $1 WHERE id = $2")
        .bind(error)
        .bind(id)
        .execute(&db.write)
        .await?;
    Ok(())
}

/// The agent of `device_id` reported that it could not upload `request_id`:
/// a request that has no stored upload fails with its reason.
#[tracing::instrument(skip_all)]
pub async fn agent_failed(
    db: &Db,
    device_id: &str,
    request_id: &str,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE device_logs SET state = 'failed', error = COALESCE(error, $1) \
         WHERE request_id = $2 AND device_id = $3 AND state <> 'uploaded'",
    )
    .bind(error)
    .bind(request_id)
    .bind(device_id)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// One log entry.
#[tracing::instrument(skip_all)]
pub async fn get(db: &Db, id: i64) -> Result<Option<StoredLog>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE l.id = $1");
    sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&db.read)
        .await?
        .as_ref()
        .map(stored_log)
        .transpose()
}

/// One page of log entries, newest first, of one device or of all.
#[tracing::instrument(skip_all, fields(limit = page.limit))]
pub async fn list(
    db: &Db,
    device_id: Option<&str>,
    page: &PageRequest,
) -> Result<Vec<StoredLog>, sqlx::Error> {
    let mut conditions = Vec::new();
    let mut next = 1;
    if device_id.is_some() {
        conditions.push(format!("l.device_id = ${next}"));
        next += 1;
    }
    if page.cursor.is_some() {
        conditions.push(format!("l.id < ${next}"));
        next += 1;
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!("SELECT {COLUMNS} FROM {FROM} {filter} ORDER BY l.id DESC LIMIT ${next}");
    let mut statement = sqlx::query(&sql);
    if let Some(device_id) = device_id {
        statement = statement.bind(device_id);
    }
    if let Some(cursor) = page.cursor {
        statement = statement.bind(cursor);
    }
    let rows = statement.bind(page.rows()).fetch_all(&db.read).await?;
    rows.iter().map(stored_log).collect()
}
