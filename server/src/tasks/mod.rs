//! The task API: submit one or a batch (all or nothing), get one, list with
//! filters and paging, cancel by ids, accounts, devices and kinds. Tasks are
//! created only through the scheduler, which numbers and stores them.

pub mod store;

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde_json::value::RawValue;
use youmi_controller::{CancelFilter, NewTask, SubmitError};
use youmi_protocol::agent::{assign_frame_len_bound, json_shape};
use youmi_protocol::api::{
    CancelResult, CancelTasks, SubmitBatch, SubmitTask, SubmittedBatch, SubmittedTask, TaskPage,
    TaskQuery, TaskView,
};
use youmi_protocol::{
    OperatorAccountId, TaskId, TaskPayload, TaskState, MAX_ASSIGN_FRAME_BYTES, MAX_PAYLOAD_DEPTH,
};

use crate::http::check;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, Json, Path, Query};
use crate::http::page::PageRequest;
use crate::http::select::all_found;
use crate::http::BATCH_BODY_LIMIT;
use crate::{operator_accounts, AppState};

/// Most tasks in one batch.
pub const MAX_BATCH: usize = 100_000;
/// Priority of a task that gives none.
pub const DEFAULT_PRIORITY: u8 = 5;
/// Highest priority.
pub const MAX_PRIORITY: u8 = 9;

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tasks", post(submit).get(list))
        .route(
            "/api/v1/tasks/batch",
            post(submit_batch).layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT)),
        )
        .route("/api/v1/tasks/cancel", post(cancel))
        .route("/api/v1/tasks/{id}", get(show))
}

/// A task as this server reads it: the payload is kept as the JSON text it
/// came as, and checked from there (`TaskPayload::parse_text`).
pub type IncomingTask = SubmitTask<Box<RawValue>>;

/// A batch as this server reads it, its payloads kept as text like
/// [`IncomingTask`]'s.
pub type IncomingBatch = SubmitBatch<Box<RawValue>>;

/// Checks one task against every rule that needs no database and turns it
/// into what the scheduler takes. Error fields are relative to the task.
pub fn check_task(task: &IncomingTask) -> Result<NewTask, ApiError> {
    // The payload is stored as the client sent it (compact), so that fields a
    // newer agent understands pass through; `parse_text` vouches for the rest.
    let text = task.payload.get();
    // What is accepted must be deliverable: an agent reads assigns of at most
    // these depth and size (protocol crate), so nothing deeper or larger is
    // queued to jam its phone's queue.
    let shape = json_shape(text);
    let depth = shape.depth;
    if depth > MAX_PAYLOAD_DEPTH {
        return Err(ApiError::unprocessable(
            "payload_too_deep",
            Some("payload"),
            format!("the payload nests {depth} levels deep; the limit is {MAX_PAYLOAD_DEPTH}"),
        ));
    }
    TaskPayload::parse_text(task.kind, text).map_err(|error| {
        ApiError::unprocessable("invalid_payload", Some(&error.field), error.to_string())
    })?;
    check::id("operator_account_id", task.operator_account_id)?;
    let priority = match task.priority {
        None => DEFAULT_PRIORITY,
        Some(priority) => u8::try_from(priority)
            .ok()
            .filter(|priority| *priority <= MAX_PRIORITY)
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_priority",
                    Some("priority"),
                    format!("priority must be 0-{MAX_PRIORITY}, not {priority}"),
                )
            })?,
    };
    for (field, value) in [
        ("not_before", task.not_before),
        ("not_after", task.not_after),
    ] {
        if value.is_some_and(|ms| ms < 0) {
            return Err(ApiError::unprocessable(
                "invalid_time",
                Some(field),
                format!("{field} must be Unix milliseconds, not negative"),
            ));
        }
    }
    if let (Some(not_before), Some(not_after)) = (task.not_before, task.not_after) {
        if not_after <= not_before {
            return Err(ApiError::unprocessable(
                "invalid_time",
                Some("not_after"),
                "not_after must be later than not_before",
            ));
        }
    }
    let payload = if shape.compact {
        text.to_owned()
    } else {
        serde_json::from_str::<serde_json::Value>(text)
            .and_then(|value| serde_json::to_string(&value))
            .map_err(|error| ApiError::Internal(format!("payload serialization: {error}")))?
    };
    let frame = assign_frame_len_bound(task.kind, payload.len());
    if frame > MAX_ASSIGN_FRAME_BYTES {
        return Err(ApiError::TooLarge {
            code: "payload_too_large",
            message: format!(
                "the task's assign frame would be {frame} bytes; the limit is {MAX_ASSIGN_FRAME_BYTES} (payload {} bytes)",
                payload.len()
            ),
            field: Some("payload".to_owned()),
        });
    }
    Ok(NewTask {
        operator_account_id: task.operator_account_id,
        kind: task.kind,
        payload: Arc::from(payload),
        priority,
        not_before_ms: task.not_before,
        not_after_ms: task.not_after,
        intercepted: None,
    })
}

/// The answer to a submission the scheduler refused: the first task whose
/// account does not exist or is disabled (the scheduler checks them in the
/// same trip that queues the tasks), or why it could not take any.
/// `field_of(i)` names task `i` in errors.
fn submit_error(error: SubmitError, field_of: impl Fn(usize) -> String) -> ApiError {
    match error {
        SubmitError::UnknownAccount { index, account } => operator_accounts::not_found(account)
            .with_field(format!("{}operator_account_id", field_of(index))),
        SubmitError::AccountDisabled { index, account } => ApiError::unprocessable(
            "operator_account_disabled",
            Some(&format!("{}operator_account_id", field_of(index))),
            format!("operator account {account} is disabled"),
        ),
        SubmitError::Controller(error) => error.into(),
    }
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn submit(
    State(state): State<AppState>,
    user: AuthUser,
    Json(task): Json<IncomingTask>,
) -> Result<(StatusCode, Json<SubmittedTask>), ApiError> {
    let task = check_task(&task)?;
    let ids = (state.controller.submit(vec![task]).await)
        .map_err(|error| submit_error(error, |_| String::new()))?;
    let id = ids
        .first()
        .copied()
        .ok_or_else(|| ApiError::Internal("the scheduler returned no task id".to_owned()))?;
    tracing::info!(task_id = id, "task submitted");
    Ok((
        StatusCode::CREATED,
        Json(SubmittedTask {
            id,
            state: TaskState::Queued,
        }),
    ))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id, tasks))]
async fn submit_batch(
    State(state): State<AppState>,
    user: AuthUser,
    Json(batch): Json<IncomingBatch>,
) -> Result<(StatusCode, Json<SubmittedBatch>), ApiError> {
    tracing::Span::current().record("tasks", batch.tasks.len());
    if batch.tasks.is_empty() || batch.tasks.len() > MAX_BATCH {
        return Err(ApiError::unprocessable(
            "invalid_batch",
            Some("tasks"),
            format!(
                "a batch holds 1 to {MAX_BATCH} tasks, not {}",
                batch.tasks.len()
            ),
        ));
    }
    let field_of = |index: usize| format!("tasks[{index}].");
    let tasks = batch
        .tasks
        .iter()
        .enumerate()
        .map(|(index, task)| {
            check_task(task).map_err(|error| {
                let field = format!("{}{}", field_of(index), error.field().unwrap_or(""));
                error.with_field(field.trim_end_matches('.').to_owned())
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    drop(batch);
    let ids =
        (state.controller.submit(tasks).await).map_err(|error| submit_error(error, field_of))?;
    tracing::info!(tasks = ids.len(), "batch submitted");
    Ok((StatusCode::CREATED, Json(SubmittedBatch { ids })))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id, task_id = id))]
async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<TaskId>,
) -> Result<Json<TaskView>, ApiError> {
    store::get(&state.db, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("task_not_found", None, format!("no task with id {id}")))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<TaskQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    let page = PageRequest::new(query.page)?;
    if let Some(id) = query.operator_account_id {
        check::id("operator_account_id", id)?;
    }
    Ok(Json(store::list(&state.db, &query, page).await?))
}

/// A filter of the cancel request: absent is fine, present must name something.
fn non_empty<T>(values: Option<Vec<T>>, field: &str) -> Result<Option<Vec<T>>, ApiError> {
    match values {
        Some(values) if values.is_empty() => Err(ApiError::bad_request(
            "empty_filter",
            Some(field),
            format!("{field} must not be empty; leave it out to not filter by it"),
        )),
        other => Ok(other),
    }
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    Json(request): Json<CancelTasks>,
) -> Result<Json<CancelResult>, ApiError> {
    Ok(Json(cancel_tasks(&state, request).await?))
}

/// Cancels the tasks `request` names, after checking it (every filter given
/// non-empty and naming things that exist): the one logic of
/// `POST /api/v1/tasks/cancel` and the console's 清除任务.
pub async fn cancel_tasks(
    state: &AppState,
    request: CancelTasks,
) -> Result<CancelResult, ApiError> {
    let task_ids = non_empty(request.task_ids, "task_ids")?;
    let account_ids = non_empty(request.operator_account_ids, "operator_account_ids")?;
    let device_ids = non_empty(request.device_ids, "device_ids")?;
    let kinds = non_empty(request.kinds, "kinds")?;
    if let Some(ids) = &task_ids {
        check::ids("task_ids", ids)?;
    }
    if let Some(ids) = &account_ids {
        check::ids("operator_account_ids", ids)?;
    }
    for (index, id) in device_ids.iter().flatten().enumerate() {
        check::text(&format!("device_ids[{index}]"), id)?;
    }
    if task_ids.is_none() && account_ids.is_none() && device_ids.is_none() && kinds.is_none() {
        return Err(ApiError::bad_request(
            "empty_filter",
            None,
            "give at least one of task_ids, operator_account_ids, device_ids, kinds",
        ));
    }
    let task_ids: Option<HashSet<TaskId>> = task_ids.map(|ids| ids.into_iter().collect());
    let account_ids: Option<HashSet<OperatorAccountId>> =
        account_ids.map(|ids| ids.into_iter().collect());
    let device_ids: Option<HashSet<String>> = device_ids.map(|ids| ids.into_iter().collect());
    if let Some(ids) = &task_ids {
        let ids: Vec<TaskId> = ids.iter().copied().collect();
        let found = store::existing_tasks(&state.db, &ids).await?;
        all_found("task_not_found", "task_ids", "task", ids, |id| {
            found.contains(id)
        })?;
    }
    if let Some(ids) = &account_ids {
        let found = state
            .controller
            .accounts(ids.iter().copied().collect())
            .await?;
        let (code, field) = ("operator_account_not_found", "operator_account_ids");
        all_found(code, field, "operator account", ids.iter().copied(), |id| {
            found.contains_key(id)
        })?;
    }
    if let Some(ids) = &device_ids {
        let ids: Vec<String> = ids.iter().cloned().collect();
        let found = store::existing_devices(&state.db, &ids).await?;
        all_found("device_not_found", "device_ids", "device", ids, |id| {
            found.contains(id)
        })?;
    }
    let result = state
        .controller
        .cancel(CancelFilter {
            task_ids,
            operator_account_ids: account_ids,
            device_ids,
            kinds: kinds.map(|kinds| kinds.into_iter().collect()),
        })
        .await?;
    tracing::info!(
        cancelled = result.cancelled,
        cancelling = result.cancelling,
        "tasks cancelled"
    );
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use youmi_protocol::TaskKind;

    fn task(payload: serde_json::Value) -> IncomingTask {
        SubmitTask {
            operator_account_id: 1,
            kind: TaskKind::SendMessage,
            payload: RawValue::from_string(payload.to_string()).unwrap(),
            priority: None,
            not_before: None,
            not_after: None,
        }
    }

    fn good() -> serde_json::Value {
        json!({"to": {"name": "Ann"}, "items": [{"type": "text", "text": "hi"}], "extra": 1})
    }

    #[test]
    fn a_good_task_keeps_its_payload_and_gets_the_default_priority() {
        let new = check_task(&task(good())).unwrap();
        assert_eq!(new.priority, DEFAULT_PRIORITY);
        assert!(!new.payload.contains(' '), "not compact: {}", new.payload);
        let stored: serde_json::Value = serde_json::from_str(&new.payload).unwrap();
        assert_eq!(stored, good());
        assert_eq!(new.intercepted, None);
    }

    #[test]
    fn a_payload_sent_with_spaces_is_stored_compact() {
        let mut t = task(good());
        t.payload = RawValue::from_string(
            "{ \"to\": {\"name\": \"Ann Lee\"},\n \"items\": [{\"type\": \"text\", \"text\": \"a b\"}] }"
                .to_owned(),
        )
        .unwrap();
        let new = check_task(&t).unwrap();
        assert_eq!(
            &*new.payload,
            r#"{"items":[{"text":"a b","type":"text"}],"to":{"name":"Ann Lee"}}"#
        );
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let error = check_task(&task(json!({"to": {}, "items": []}))).unwrap_err();
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.code(), "invalid_payload");
        assert_eq!(error.field(), Some("payload.to"));
    }

    #[test]
    fn priority_and_times_are_checked() {
        let mut t = task(good());
        t.priority = Some(10);
        assert_eq!(check_task(&t).unwrap_err().field(), Some("priority"));
        let mut t = task(good());
        t.not_before = Some(-1);
        assert_eq!(check_task(&t).unwrap_err().field(), Some("not_before"));
        let mut t = task(good());
        t.not_before = Some(10);
        t.not_after = Some(10);
        assert_eq!(check_task(&t).unwrap_err().field(), Some("not_after"));
        t.not_after = Some(11);
        assert!(check_task(&t).is_ok());
    }
}
