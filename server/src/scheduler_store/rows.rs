//! The task changes of one commit, folded into one final row per task and
//! written with multi-row statements.
//!
//! A task usually changes three times between two commits under load
//! (dispatched, running, finished), and a task submitted and run within one
//! commit also changes after its insert. Writing each change as its own
//! statement made the store hand hundreds of thousands of statements, one by
//! one, to the database: the benchmarks' bottleneck. Here the changes are
//! folded first (the last value of each column wins, as it would have had the
//! statements run in order), then every task inserted in the commit goes in
//! with its final values through multi-row `INSERT`s, and every other task
//! changed in it through multi-row `UPDATE ... FROM (VALUES ...)`s (tasks that
//! end apart from the others), up to 500 rows a statement, in a few lengths
//! whose texts are built once ([`sqlite_chunks`], [`sqlite_sql`]). On
//! PostgreSQL both are instead one constant statement over the
//! 500 rows as one JSON parameter (`json_to_recordset`): planned once per
//! connection rather than for every batch of 6,500 parameters, it took the
//! dispatch benchmark from 9,640 to 11,340 tasks/s. The two forms stand side
//! by side here, and a test checks they name the same columns.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, OnceLock};

use sqlx::{Any, Transaction};
use youmi_controller::{Change, NewTask};
use youmi_protocol::{TaskError, TaskId, TaskState};

use crate::db::Backend;

/// Rows per multi-row statement. At 16 parameters a row this stays far below
/// SQLite's 32,766 and PostgreSQL's 65,535 parameters per statement.
pub(super) const CHUNK: usize = 500;

/// Splits `rows` into statements of [`CHUNK`] rows, then the rest into
/// statements of a power of two rows each (300 rows: 256, 32, 8 and 4).
///
/// SQLite's statements carry their rows as placeholders, so each row count is
/// its own statement text, which SQLite must parse and plan before it runs.
/// Cut at any length, the last statement of nearly every commit had a text
/// not seen before: the dispatch benchmark spent 2.5 % of the server's CPU
/// parsing them. With these lengths there are at most ten texts per kind of
/// statement, and each stays in the connection's statement cache.
pub(super) fn sqlite_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let len = if rows.len() >= CHUNK {
            CHUNK
        } else {
            1 << rows.len().ilog2()
        };
        let (chunk, rest) = rows.split_at(len);
        rows = rest;
        Some(chunk)
    })
}

/// The final values a commit gives one task's columns; `None` leaves a column
/// as it is. Nullable columns are `Option<Option<_>>`: set (to a value or to
/// NULL) or left alone.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct TaskRow {
    /// The task, when this commit inserts it.
    pub inserted: Option<Arc<NewTask>>,
    /// When it was submitted, for an inserted task.
    pub created_at_ms: i64,
    pub state: Option<TaskState>,
    pub device_id: Option<String>,
    pub attempt: Option<u32>,
    pub not_before_ms: Option<Option<i64>>,
    pub error: Option<Option<String>>,
    pub result: Option<Option<String>>,
    pub cancel_requested: bool,
    pub finished_at_ms: Option<i64>,
    pub updated_at_ms: i64,
}

/// The task rows of a commit, in the order each task first changed, and the
/// device changes, in order.
#[derive(Debug, Default)]
pub(super) struct Folded<'a> {
    pub tasks: Vec<(TaskId, TaskRow)>,
    pub devices: Vec<&'a Change>,
}

fn error_json(error: &TaskError) -> Result<String, sqlx::Error> {
    serde_json::to_string(error).map_err(|error| sqlx::Error::Encode(Box::new(error)))
}

/// Folds a commit's changes into one row per task.
pub(super) fn fold(changes: &[Change]) -> Result<Folded<'_>, sqlx::Error> {
    let mut folded = Folded::default();
    let mut index: HashMap<TaskId, usize> = HashMap::new();
    let mut row = |id: TaskId, folded: &mut Folded| -> usize {
        *index.entry(id).or_insert_with(|| {
            folded.tasks.push((id, TaskRow::default()));
            folded.tasks.len() - 1
        })
    };
    for change in changes {
        match change {
            Change::TaskInserted { id, task, at_ms } => {
                let i = row(*id, &mut folded);
                let row = &mut folded.tasks[i].1;
                row.inserted = Some(task.clone());
                row.created_at_ms = *at_ms;
                row.updated_at_ms = *at_ms;
                if let Some(error) = &task.intercepted {
                    row.state = Some(TaskState::Intercepted);
                    row.error = Some(Some(error_json(error)?));
                    row.finished_at_ms = Some(*at_ms);
                }
            }
            Change::TaskDispatched {
                id,
                device_id,
                attempt,
                at_ms,
            } => {
                let i = row(*id, &mut folded);
                let row = &mut folded.tasks[i].1;
                row.state = Some(TaskState::Dispatched);
                row.device_id = Some(device_id.clone());
                row.attempt = Some(*attempt);
                row.updated_at_ms = *at_ms;
            }
            Change::TaskRunning { id, at_ms } => {
                let i = row(*id, &mut folded);
                let row = &mut folded.tasks[i].1;
                row.state = Some(TaskState::Running);
                row.updated_at_ms = *at_ms;
            }
            Change::TaskRequeued {
                id,
                not_before_ms,
                error,
                result,
                at_ms,
            } => {
                let i = row(*id, &mut folded);
                let row = &mut folded.tasks[i].1;
                row.state = Some(TaskState::Queued);
                row.not_before_ms = Some(*not_before_ms);
                row.error = Some(error.as_ref().map(error_json).transpose()?);
                if let Some(result) = result {
                    row.result = Some(Some(result.clone()));
                }
                row.updated_at_ms = *at_ms;
            }
            Change::TaskCancelRequested { id, at_ms } => {
                let i = row(*id, &mut folded);
                let row = &mut folded.tasks[i].1;
                row.cancel_requested = true;
                row.updated_at_ms = *at_ms;
            }
            Change::TaskFinished {
                id,
                state,
                error,
                result,
                at_ms,
            } => {
                let i = row(*id, &mut folded);
                let row = &mut folded.tasks[i].1;
                row.state = Some(*state);
                row.error = Some(error.as_ref().map(error_json).transpose()?);
                row.result = Some(result.clone());
                row.finished_at_ms = Some(*at_ms);
                row.updated_at_ms = *at_ms;
            }
            Change::QueuePaused { .. }
            | Change::SettingsChanged { .. }
            | Change::DeviceSeen { .. }
            | Change::DeviceReported { .. }
            | Change::Notified { .. } => folded.devices.push(change),
        }
    }
    Ok(folded)
}

/// Writes `count` placeholders, in the backend's style, separated by commas.
/// SQLite gets anonymous `?`: it looks numbered ones up by a linear scan per
/// bound parameter, which makes an 8,000-parameter statement quadratic.
fn placeholders(sql: &mut String, backend: Backend, next: &mut usize, count: usize) {
    for i in 0..count {
        if i > 0 {
            sql.push_str(", ");
        }
        *next += 1;
        match backend {
            Backend::Sqlite => sql.push('?'),
            Backend::Postgres => {
                let _ = write!(sql, "${next}");
            }
        }
    }
}

/// Columns of a task insert, in the order they are bound.
const INSERT_COLUMNS: &str = "id, operator_account_id, kind, payload, priority, not_before_ms, \
     not_after_ms, state, attempt, device_id, cancel_requested, error, result, \
     created_at_ms, updated_at_ms, finished_at_ms";
const INSERT_PARAMS: usize = 16;

/// PostgreSQL's task insert: one constant statement over the rows as one JSON
/// parameter, like [`POSTGRES_UPDATE_SQL`].
const POSTGRES_INSERT_SQL: &str = "INSERT INTO tasks (id, operator_account_id, kind, payload, \
     priority, not_before_ms, not_after_ms, state, attempt, device_id, cancel_requested, error, \
     result, created_at_ms, updated_at_ms, finished_at_ms) \
     SELECT id, operator_account_id, kind, payload, priority, not_before_ms, not_after_ms, state, \
     attempt, device_id, cancel_requested, error, result, created_at_ms, updated_at_ms, \
     finished_at_ms FROM json_to_recordset($1::json) AS r(id bigint, operator_account_id bigint, \
     kind text, payload text, priority bigint, not_before_ms bigint, not_after_ms bigint, \
     state text, attempt bigint, device_id text, cancel_requested bigint, error text, \
     result text, created_at_ms bigint, updated_at_ms bigint, finished_at_ms bigint)";

/// One new task, as [`POSTGRES_INSERT_SQL`] reads it.
#[derive(serde::Serialize)]
struct JsonInsert<'a> {
    id: TaskId,
    operator_account_id: i64,
    kind: &'a str,
    payload: &'a str,
    priority: i64,
    not_before_ms: Option<i64>,
    not_after_ms: Option<i64>,
    state: &'a str,
    attempt: i64,
    device_id: Option<&'a str>,
    cancel_requested: i64,
    error: Option<&'a str>,
    result: Option<&'a str>,
    created_at_ms: i64,
    updated_at_ms: i64,
    finished_at_ms: Option<i64>,
}

/// The rows of a PostgreSQL task insert, as its one JSON parameter.
fn json_inserts(rows: &[(TaskId, TaskRow)]) -> Result<String, sqlx::Error> {
    let inserts: Vec<JsonInsert<'_>> = rows
        .iter()
        .map(|(id, row)| {
            let task = row
                .inserted
                .as_ref()
                .expect("only inserted rows are inserted");
            JsonInsert {
                id: *id,
                operator_account_id: task.operator_account_id,
                kind: task.kind.as_str(),
                payload: &task.payload,
                priority: i64::from(task.priority),
                not_before_ms: row.not_before_ms.unwrap_or(task.not_before_ms),
                not_after_ms: task.not_after_ms,
                state: row.state.unwrap_or(TaskState::Queued).as_str(),
                attempt: i64::from(row.attempt.unwrap_or(0)),
                device_id: row.device_id.as_deref(),
                cancel_requested: i64::from(row.cancel_requested),
                error: row.error.as_ref().and_then(|e| e.as_deref()),
                result: row.result.as_ref().and_then(|r| r.as_deref()),
                created_at_ms: row.created_at_ms,
                updated_at_ms: row.updated_at_ms,
                finished_at_ms: row.finished_at_ms,
            }
        })
        .collect();
    serde_json::to_string(&inserts).map_err(|error| sqlx::Error::Encode(Box::new(error)))
}

/// The multi-row `INSERT` of `rows` tasks on SQLite.
pub(super) fn insert_sql(rows: usize, backend: Backend) -> String {
    let mut sql = String::with_capacity(200 + rows * 100);
    let _ = write!(sql, "INSERT INTO tasks ({INSERT_COLUMNS}) VALUES ");
    let mut next = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        placeholders(&mut sql, backend, &mut next, INSERT_PARAMS);
        sql.push(')');
    }
    sql
}

/// The columns of the `VALUES` rows of a task update, in the order they are
/// bound. Nullable columns come with a `set_` flag, so that "leave it" and
/// "set it to NULL" differ. VALUES columns are named `column1`, `column2`, ...
/// by SQLite and PostgreSQL alike, which the select below relies on.
const UPDATE_VALUE_COLUMNS: [&str; 13] = [
    "id",
    "state",
    "device_id",
    "attempt",
    "set_not_before",
    "not_before_ms",
    "set_error",
    "error",
    "set_result",
    "result",
    "cancel_requested",
    "finished_at_ms",
    "updated_at_ms",
];

/// What a task update sets, from the new values `v` (see [`UPDATE_VALUE_COLUMNS`]).
/// Each backend's statement puts its own `UPDATE` before it.
const UPDATE_SET: &str = "SET \
     state = COALESCE(v.state, tasks.state), \
     device_id = COALESCE(v.device_id, tasks.device_id), \
     attempt = COALESCE(v.attempt, tasks.attempt), \
     not_before_ms = CASE WHEN v.set_not_before = 1 THEN v.not_before_ms ELSE tasks.not_before_ms END, \
     error = CASE WHEN v.set_error = 1 THEN v.error ELSE tasks.error END, \
     result = CASE WHEN v.set_result = 1 THEN v.result ELSE tasks.result END, \
     cancel_requested = CASE WHEN v.cancel_requested = 1 THEN 1 ELSE tasks.cancel_requested END, \
     updated_at_ms = v.updated_at_ms ";

/// The part of [`UPDATE_SET`] that ends tasks.
///
/// SQLite maintains an index in an `UPDATE` when the statement sets a column
/// the index names, whatever the values; `finished_at_ms` is the condition of
/// the partial index of unfinished tasks. So on SQLite the rows of tasks that
/// end go in statements with this part and the others in statements without
/// it, and only ending a task touches that index (dispatch benchmark: see
/// migration 0004). PostgreSQL compares the values and needs no such split.
const UPDATE_SET_FINISHED: &str =
    ", finished_at_ms = COALESCE(v.finished_at_ms, tasks.finished_at_ms) ";

/// PostgreSQL's task update: one constant statement (planned once per
/// connection) over the rows as one JSON parameter. Its `VALUES` form with 13
/// parameters a row spent about 4 ms planning each 500 rows.
const POSTGRES_UPDATE_SQL: &str = "FROM json_to_recordset($1::json) AS v(\
     id bigint, state text, device_id text, attempt bigint, set_not_before bigint, \
     not_before_ms bigint, set_error bigint, error text, set_result bigint, result text, \
     cancel_requested bigint, finished_at_ms bigint, updated_at_ms bigint) \
     WHERE tasks.id = v.id";

/// One task's new values, as [`POSTGRES_UPDATE_SQL`] reads them.
#[derive(serde::Serialize)]
struct JsonUpdate<'a> {
    id: TaskId,
    state: Option<&'a str>,
    device_id: Option<&'a str>,
    attempt: Option<i64>,
    set_not_before: i64,
    not_before_ms: Option<i64>,
    set_error: i64,
    error: Option<&'a str>,
    set_result: i64,
    result: Option<&'a str>,
    cancel_requested: i64,
    finished_at_ms: Option<i64>,
    updated_at_ms: i64,
}

/// The rows of a PostgreSQL task update, as its one JSON parameter.
fn json_updates(rows: &[(TaskId, TaskRow)]) -> Result<String, sqlx::Error> {
    let updates: Vec<JsonUpdate<'_>> = rows
        .iter()
        .map(|(id, row)| JsonUpdate {
            id: *id,
            state: row.state.map(TaskState::as_str),
            device_id: row.device_id.as_deref(),
            attempt: row.attempt.map(i64::from),
            set_not_before: i64::from(row.not_before_ms.is_some()),
            not_before_ms: row.not_before_ms.flatten(),
            set_error: i64::from(row.error.is_some()),
            error: row.error.as_ref().and_then(|e| e.as_deref()),
            set_result: i64::from(row.result.is_some()),
            result: row.result.as_ref().and_then(|r| r.as_deref()),
            cancel_requested: i64::from(row.cancel_requested),
            finished_at_ms: row.finished_at_ms,
            updated_at_ms: row.updated_at_ms,
        })
        .collect();
    serde_json::to_string(&updates).map_err(|error| sqlx::Error::Encode(Box::new(error)))
}

/// The multi-row `UPDATE` of `rows` tasks on SQLite (PostgreSQL would take it
/// too): `UPDATE ... FROM (VALUES ...)`, in SQLite since 3.33.
///
/// `ends` says whether the rows end their tasks: only then does the statement
/// set `finished_at_ms` ([`UPDATE_SET_FINISHED`]).
pub(super) fn update_sql(rows: usize, backend: Backend, ends: bool) -> String {
    let mut sql = String::with_capacity(900 + rows * 80);
    sql.push_str(match backend {
        // No row of these updates can break a constraint (COALESCE keeps the
        // NOT NULL columns set), and a failed statement rolls the whole
        // commit back anyway. Saying so (`OR FAIL` instead of the default
        // `ABORT`) spares SQLite the statement journal it keeps to undo part
        // of a statement: a copy of every page each update touches.
        Backend::Sqlite => "UPDATE OR FAIL tasks ",
        Backend::Postgres => "UPDATE tasks ",
    });
    sql.push_str(UPDATE_SET);
    if ends {
        sql.push_str(UPDATE_SET_FINISHED);
    }
    sql.push_str("FROM (SELECT ");
    for (i, column) in UPDATE_VALUE_COLUMNS.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "column{} AS {column}", i + 1);
    }
    sql.push_str(" FROM (VALUES ");
    let mut next = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        placeholders(&mut sql, backend, &mut next, UPDATE_VALUE_COLUMNS.len());
        sql.push(')');
    }
    sql.push_str(") AS value_rows) AS v WHERE tasks.id = v.id");
    sql
}

/// A multi-row statement of SQLite's, by what it writes.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Insert,
    /// An update of tasks that do not end.
    Update,
    /// An update of tasks that end.
    UpdateEnding,
}

/// The SQLite text of a `shape` statement over `rows` rows, one of the
/// lengths [`sqlite_chunks`] cuts. Built once per length: a 500-row text has
/// 8,000 placeholders, and building it for every statement, only for sqlx to
/// find it in its cache, took 1 % of the server's CPU.
fn sqlite_sql(shape: Shape, rows: usize) -> &'static str {
    /// One text per shape and length: 500 rows, or 2^i rows in slot i.
    static TEXTS: [[OnceLock<String>; 10]; 3] = [const { [const { OnceLock::new() }; 10] }; 3];
    assert!(
        rows == CHUNK || (rows.is_power_of_two() && rows < CHUNK),
        "{rows} rows is not a length sqlite_chunks cuts"
    );
    let slot = if rows == CHUNK {
        9
    } else {
        rows.ilog2() as usize
    };
    TEXTS[shape as usize][slot].get_or_init(|| match shape {
        Shape::Insert => insert_sql(rows, Backend::Sqlite),
        Shape::Update => update_sql(rows, Backend::Sqlite, false),
        Shape::UpdateEnding => update_sql(rows, Backend::Sqlite, true),
    })
}

/// Inserts tasks with their final values.
pub(super) async fn insert(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    rows: &[(TaskId, TaskRow)],
) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        for chunk in rows.chunks(CHUNK) {
            sqlx::query(POSTGRES_INSERT_SQL)
                .bind(json_inserts(chunk)?)
                .execute(&mut **tx)
                .await?;
        }
        return Ok(());
    }
    for chunk in sqlite_chunks(rows) {
        let mut query = sqlx::query(sqlite_sql(Shape::Insert, chunk.len()));
        for (id, row) in chunk {
            let task = row
                .inserted
                .as_ref()
                .expect("only inserted rows are inserted");
            let not_before = row.not_before_ms.unwrap_or(task.not_before_ms);
            query = query
                .bind(*id)
                .bind(task.operator_account_id)
                .bind(task.kind.as_str())
                .bind(&*task.payload)
                .bind(i64::from(task.priority))
                .bind(not_before)
                .bind(task.not_after_ms)
                .bind(row.state.unwrap_or(TaskState::Queued).as_str())
                .bind(i64::from(row.attempt.unwrap_or(0)))
                .bind(row.device_id.as_deref())
                .bind(i64::from(row.cancel_requested))
                .bind(row.error.as_ref().and_then(|e| e.as_deref()))
                .bind(row.result.as_ref().and_then(|r| r.as_deref()))
                .bind(row.created_at_ms)
                .bind(row.updated_at_ms)
                .bind(row.finished_at_ms);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Applies the final values of tasks inserted by earlier commits.
pub(super) async fn update(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    rows: &[(TaskId, TaskRow)],
) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        let sql = format!("UPDATE tasks {UPDATE_SET}{UPDATE_SET_FINISHED}{POSTGRES_UPDATE_SQL}");
        for chunk in rows.chunks(CHUNK) {
            sqlx::query(&sql)
                .bind(json_updates(chunk)?)
                .execute(&mut **tx)
                .await?;
        }
        return Ok(());
    }
    let (ending, other): (Vec<_>, Vec<_>) = rows
        .iter()
        .partition(|(_, row)| row.finished_at_ms.is_some());
    for (rows, shape) in [(other, Shape::Update), (ending, Shape::UpdateEnding)] {
        for chunk in sqlite_chunks(&rows) {
            let mut query = sqlx::query(sqlite_sql(shape, chunk.len()));
            for (id, row) in chunk {
                query = query
                    .bind(*id)
                    .bind(row.state.map(TaskState::as_str))
                    .bind(row.device_id.as_deref())
                    .bind(row.attempt.map(i64::from))
                    .bind(i64::from(row.not_before_ms.is_some()))
                    .bind(row.not_before_ms.flatten())
                    .bind(i64::from(row.error.is_some()))
                    .bind(row.error.as_ref().and_then(|e| e.as_deref()))
                    .bind(i64::from(row.result.is_some()))
                    .bind(row.result.as_ref().and_then(|r| r.as_deref()))
                    .bind(i64::from(row.cancel_requested))
                    .bind(row.finished_at_ms)
                    .bind(row.updated_at_ms);
            }
            query.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use youmi_protocol::TaskKind;

    use super::*;

    fn new_task() -> Arc<NewTask> {
        Arc::new(NewTask {
            operator_account_id: 1,
            kind: TaskKind::SendMessage,
            payload: "{}".into(),
            priority: 5,
            not_before_ms: Some(50),
            not_after_ms: None,
            intercepted: None,
        })
    }

    #[test]
    fn sqlite_statements_have_few_distinct_lengths() {
        let lengths = |n: usize| -> Vec<usize> {
            let rows = vec![0u8; n];
            sqlite_chunks(&rows).map(<[u8]>::len).collect()
        };
        assert!(lengths(0).is_empty());
        assert_eq!(lengths(1), vec![1]);
        assert_eq!(lengths(300), vec![256, 32, 8, 4]);
        assert_eq!(lengths(1_300), vec![500, 500, 256, 32, 8, 4]);
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..=2 * CHUNK {
            let lengths = lengths(n);
            assert_eq!(lengths.iter().sum::<usize>(), n, "every row, once");
            seen.extend(lengths);
        }
        assert_eq!(
            seen.len(),
            10,
            "500 and the powers of two below it: {seen:?}"
        );
    }

    #[test]
    fn the_last_change_of_each_column_wins_and_untouched_columns_stay_unset() {
        let changes = vec![
            Change::TaskInserted {
                id: 1,
                task: new_task(),
                at_ms: 10,
            },
            Change::TaskDispatched {
                id: 2,
                device_id: "d".into(),
                attempt: 1,
                at_ms: 11,
            },
            Change::TaskDispatched {
                id: 1,
                device_id: "d".into(),
                attempt: 1,
                at_ms: 12,
            },
            Change::TaskRunning { id: 1, at_ms: 13 },
            Change::QueuePaused {
                device_id: "d".into(),
                paused: true,
                reason: None,
                resume_at_ms: None,
            },
            Change::TaskRequeued {
                id: 2,
                not_before_ms: None,
                error: None,
                result: None,
                at_ms: 14,
            },
            Change::TaskFinished {
                id: 1,
                state: TaskState::Succeeded,
                error: None,
                result: Some("{}".into()),
                at_ms: 15,
            },
        ];
        let folded = fold(&changes).unwrap();
        assert_eq!(folded.devices.len(), 1);
        let ids: Vec<TaskId> = folded.tasks.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![1, 2], "in order of first change");
        let one = &folded.tasks[0].1;
        assert!(one.inserted.is_some());
        assert_eq!(one.state, Some(TaskState::Succeeded));
        assert_eq!(
            (one.attempt, one.device_id.as_deref()),
            (Some(1), Some("d"))
        );
        assert_eq!(one.result, Some(Some("{}".into())));
        assert_eq!(
            (one.created_at_ms, one.updated_at_ms, one.finished_at_ms),
            (10, 15, Some(15))
        );
        assert_eq!(
            one.not_before_ms, None,
            "the insert's own not_before is kept"
        );
        let two = &folded.tasks[1].1;
        assert!(two.inserted.is_none());
        assert_eq!(two.state, Some(TaskState::Queued));
        assert_eq!(two.not_before_ms, Some(None), "set to NULL, not left alone");
        assert_eq!(two.error, Some(None));
        assert_eq!(two.result, None, "left alone");
    }

    /// The column list of a `json_to_recordset(...) AS x(name type, ...)`.
    fn record_columns(sql: &str) -> Vec<String> {
        let start = sql.rfind(" AS ").expect("a record definition") + 4;
        let open = start + sql[start..].find('(').expect("(") + 1;
        let close = open + sql[open..].find(')').expect(")");
        sql[open..close]
            .split(',')
            .map(|column| column.split_whitespace().next().unwrap().to_owned())
            .collect()
    }

    fn keys(json: &str) -> Vec<String> {
        let rows: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(json).unwrap();
        rows[0].keys().cloned().collect()
    }

    #[test]
    fn postgres_json_rows_carry_every_column_the_statements_read() {
        let changes = [
            Change::TaskInserted {
                id: 7,
                task: new_task(),
                at_ms: 10,
            },
            Change::TaskDispatched {
                id: 7,
                device_id: "d".into(),
                attempt: 1,
                at_ms: 11,
            },
        ];
        let mut folded = fold(&changes).unwrap();
        let mut insert_columns = record_columns(POSTGRES_INSERT_SQL);
        let mut insert_keys = keys(&json_inserts(&folded.tasks).unwrap());
        insert_columns.sort();
        insert_keys.sort();
        assert_eq!(insert_keys, insert_columns);

        folded.tasks[0].1.inserted = None;
        let mut update_columns = record_columns(POSTGRES_UPDATE_SQL);
        let mut update_keys = keys(&json_updates(&folded.tasks).unwrap());
        update_columns.sort();
        update_keys.sort();
        assert_eq!(update_keys, update_columns);
        let mut values_columns: Vec<String> =
            UPDATE_VALUE_COLUMNS.iter().map(|c| c.to_string()).collect();
        values_columns.sort();
        assert_eq!(update_columns, values_columns, "both update forms agree");
        let json = json_updates(&folded.tasks).unwrap();
        assert!(json.contains(r#""state":"dispatched""#), "{json}");
        assert!(json.contains(r#""device_id":"d""#), "{json}");
    }

    #[test]
    fn statements_have_one_placeholder_per_bound_value() {
        let insert = insert_sql(2, Backend::Postgres);
        assert!(insert.contains("$16), ($17,") && insert.ends_with("$32)"));
        assert_eq!(
            insert_sql(3, Backend::Sqlite).matches('?').count(),
            3 * INSERT_PARAMS
        );
        let update = update_sql(2, Backend::Postgres, true);
        assert!(update.contains("column13 AS updated_at_ms") && update.contains("$26)"));
        for ends in [false, true] {
            let update = update_sql(4, Backend::Sqlite, ends);
            assert_eq!(update.matches('?').count(), 4 * UPDATE_VALUE_COLUMNS.len());
            assert_eq!(update.contains("finished_at_ms = "), ends, "{update}");
        }
    }
}
