//! SQL of the task API: look-ups for checks, one task, a page of tasks. Tasks
//! are written only by the scheduler (through `scheduler_store`).

use std::collections::HashSet;

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;
use youmi_protocol::api::{TaskPage, TaskQuery, TaskView};
use youmi_protocol::TaskId;

use crate::db::{flag, Db};
use crate::http::page::PageRequest;
use crate::scheduler_store::{parse_error, parse_kind, parse_state, small};

/// Values per `IN (...)` list: well within every backend's parameter limit.
const IN_CHUNK: usize = 1_000;

const COLUMNS: &str = "id, operator_account_id, kind, state, attempt, priority, payload, \
     not_before_ms, not_after_ms, device_id, error, result, cancel_requested, created_at_ms, \
     updated_at_ms, finished_at_ms";

fn json_column(row: &AnyRow, column: &str) -> Result<Option<Value>, sqlx::Error> {
    row.try_get::<Option<String>, _>(column)?
        .map(|text| {
            serde_json::from_str(&text).map_err(|error| sqlx::Error::Decode(Box::new(error)))
        })
        .transpose()
}

fn task_view(row: &AnyRow) -> Result<TaskView, sqlx::Error> {
    Ok(TaskView {
        id: row.try_get("id")?,
        operator_account_id: row.try_get("operator_account_id")?,
        kind: parse_kind(&row.try_get::<String, _>("kind")?)?,
        state: parse_state(&row.try_get::<String, _>("state")?)?,
        attempt: small(row, "attempt")?,
        priority: small(row, "priority")?,
        payload: json_column(row, "payload")?.unwrap_or(Value::Null),
        not_before: row.try_get("not_before_ms")?,
        not_after: row.try_get("not_after_ms")?,
        device_id: row.try_get("device_id")?,
        error: parse_error(row.try_get("error")?)?,
        result: json_column(row, "result")?,
        cancel_requested: flag(row, "cancel_requested")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
    })
}

/// One task.
#[tracing::instrument(skip_all, fields(task_id = id))]
pub async fn get(db: &Db, id: TaskId) -> Result<Option<TaskView>, sqlx::Error> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM tasks WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.read)
        .await?
        .map(|row| task_view(&row))
        .transpose()
}

/// One page of tasks, newest first.
#[tracing::instrument(skip_all, fields(limit = page.limit))]
pub async fn list(db: &Db, query: &TaskQuery, page: PageRequest) -> Result<TaskPage, sqlx::Error> {
    let mut conditions = Vec::new();
    let mut next = 1;
    let mut placeholder = || {
        let p = format!("${next}");
        next += 1;
        p
    };
    if query.operator_account_id.is_some() {
        conditions.push(format!("operator_account_id = {}", placeholder()));
    }
    if let Some(state) = query.state {
        conditions.push(format!("state = {}", placeholder()));
        // Lets the database use its partial index of unfinished tasks: there
        // is no index on `state` (migrations 0004). Equivalent on every row,
        // as `load_snapshot` explains.
        conditions.push(
            if state.is_terminal() {
                "finished_at_ms IS NOT NULL"
            } else {
                "finished_at_ms IS NULL"
            }
            .to_owned(),
        );
    }
    if query.kind.is_some() {
        conditions.push(format!("kind = {}", placeholder()));
    }
    if query.created_after.is_some() {
        conditions.push(format!("created_at_ms >= {}", placeholder()));
    }
    if page.cursor.is_some() {
        conditions.push(format!("id < {}", placeholder()));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM tasks {filter} ORDER BY id DESC LIMIT {}",
        placeholder()
    );
    let mut statement = sqlx::query(&sql);
    if let Some(id) = query.operator_account_id {
        statement = statement.bind(id);
    }
    if let Some(state) = query.state {
        statement = statement.bind(state.as_str());
    }
    if let Some(kind) = query.kind {
        statement = statement.bind(kind.as_str());
    }
    if let Some(after) = query.created_after {
        statement = statement.bind(after);
    }
    if let Some(cursor) = page.cursor {
        statement = statement.bind(cursor);
    }
    let rows = statement.bind(page.rows()).fetch_all(&db.read).await?;
    let tasks = rows.iter().map(task_view).collect::<Result<Vec<_>, _>>()?;
    Ok(page.page(tasks, |task| task.id))
}

/// Which of `ids` name bound, unrevoked devices.
#[tracing::instrument(skip_all, fields(devices = ids.len()))]
pub async fn existing_devices(db: &Db, ids: &[String]) -> Result<HashSet<String>, sqlx::Error> {
    let mut found = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT id FROM devices WHERE revoked_at_ms IS NULL AND id IN ({})",
            db.backend.in_list(chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(&db.read).await? {
            found.insert(row.try_get("id")?);
        }
    }
    Ok(found)
}

/// Which of `ids` name tasks.
#[tracing::instrument(skip_all, fields(tasks = ids.len()))]
pub async fn existing_tasks(db: &Db, ids: &[TaskId]) -> Result<HashSet<TaskId>, sqlx::Error> {
    let mut found = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT id FROM tasks WHERE id IN ({})",
            db.backend.in_list(chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&db.read).await? {
            found.insert(row.try_get("id")?);
        }
    }
    Ok(found)
}
