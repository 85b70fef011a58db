//! The 任务 pages of the console: the task list, filtered by operator
//! account, kind, state and how recently it was submitted, paged; a task's
//! detail (payload, attempts, device, error code and message, and what the
//! agent reported, with the evidence it kept for a failed step); cancel. The
//! list reads through the API's store query and cancel goes through
//! `tasks::cancel_tasks`, the API's own logic.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use youmi_protocol::api::{CancelTasks, OperatorAccount, PageQuery, TaskQuery, TaskView};
use youmi_protocol::{TaskId, TaskKind, TaskState};

use crate::console::page::{html, see_other, Ctx, PageError};
use crate::console::paging::{self, Pager};
use crate::db::now_ms;
use crate::http::error::ApiError;
use crate::{operator_accounts, AppState};

use super::{cancel_tasks, store};

/// Where the list lives; the navigation links here.
pub const PATH: &str = "/tasks";

/// The windows of "submitted within", in hours; 0 is no limit.
pub const WINDOWS: [u32; 5] = [0, 1, 24, 24 * 7, 24 * 30];

/// The pages' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list))
        .route("/tasks/{id}", get(show))
        .route("/tasks/{id}/cancel", post(cancel))
}

/// The list's filters and page, as the filter form sends them (an empty
/// select is no filter).
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    account: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    state: String,
    /// Submitted within this many hours; empty or 0 for any time.
    #[serde(default)]
    within: String,
    limit: Option<i64>,
    cursor: Option<i64>,
}

/// The filters read from a [`ListQuery`].
#[derive(Debug, Default)]
struct Filters {
    account: Option<i64>,
    kind: Option<TaskKind>,
    state: Option<TaskState>,
    within: u32,
}

impl Filters {
    /// The filters of `query`; a value that is none of the choices is refused.
    fn read(query: &ListQuery) -> Result<Filters, ApiError> {
        let bad = |field: &str| {
            ApiError::bad_request(
                "invalid_filter",
                Some(field),
                format!("{field} is not one of the choices"),
            )
        };
        let account = match query.account.trim() {
            "" => None,
            text => Some(
                text.parse::<i64>()
                    .ok()
                    .filter(|id| *id >= 1)
                    .ok_or_else(|| bad("account"))?,
            ),
        };
        let kind = match query.kind.trim() {
            "" => None,
            text => Some(text.parse::<TaskKind>().map_err(|_| bad("kind"))?),
        };
        let state = match query.state.trim() {
            "" => None,
            text => Some(text.parse::<TaskState>().map_err(|_| bad("state"))?),
        };
        let within = match query.within.trim() {
            "" => 0,
            text => text
                .parse::<u32>()
                .ok()
                .filter(|hours| WINDOWS.contains(hours))
                .ok_or_else(|| bad("within"))?,
        };
        Ok(Filters {
            account,
            kind,
            state,
            within,
        })
    }

    /// The list's path with these filters, for the pager's links.
    fn path(&self) -> String {
        let mut parts = Vec::new();
        if let Some(account) = self.account {
            parts.push(format!("account={account}"));
        }
        if let Some(kind) = self.kind {
            parts.push(format!("kind={}", kind.as_str()));
        }
        if let Some(state) = self.state {
            parts.push(format!("state={}", state.as_str()));
        }
        if self.within > 0 {
            parts.push(format!("within={}", self.within));
        }
        if parts.is_empty() {
            PATH.to_owned()
        } else {
            format!("{PATH}?{}", parts.join("&"))
        }
    }
}

/// A task as a row or the detail shows it.
struct Item {
    task: TaskView,
    /// Its account's name, if the account still exists.
    account: Option<String>,
}

/// One choice of a filter's select.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// The filter form's selects, each with its choices and the one picked.
struct Selects {
    accounts: Vec<Choice>,
    kinds: Vec<Choice>,
    states: Vec<Choice>,
    windows: Vec<Choice>,
}

impl Selects {
    fn new(ctx: &Ctx, filters: &Filters, accounts: &[OperatorAccount]) -> Selects {
        let any = |selected: bool| Choice {
            value: String::new(),
            label: ctx.t("tasks.any").to_owned(),
            selected,
        };
        let mut account_choices = vec![any(filters.account.is_none())];
        account_choices.extend(accounts.iter().map(|account| Choice {
            value: account.id.to_string(),
            label: format!("{} #{}", account.name, account.id),
            selected: filters.account == Some(account.id),
        }));
        let mut kinds = vec![any(filters.kind.is_none())];
        kinds.extend(TaskKind::ALL.iter().map(|kind| Choice {
            value: kind.as_str().to_owned(),
            label: ctx.task_kind(kind).to_owned(),
            selected: filters.kind == Some(*kind),
        }));
        let mut states = vec![any(filters.state.is_none())];
        states.extend(TaskState::ALL.iter().map(|state| Choice {
            value: state.as_str().to_owned(),
            label: ctx.task_state(state).to_owned(),
            selected: filters.state == Some(*state),
        }));
        let windows = WINDOWS
            .iter()
            .map(|hours| Choice {
                value: hours.to_string(),
                label: ctx.window(*hours),
                selected: filters.within == *hours,
            })
            .collect();
        Selects {
            accounts: account_choices,
            kinds,
            states,
            windows,
        }
    }
}

#[derive(Template)]
#[template(path = "tasks/list.html")]
struct ListPage {
    ctx: Ctx,
    items: Vec<Item>,
    selects: Selects,
    pager: Pager,
}

#[derive(Template)]
#[template(path = "tasks/detail.html")]
struct DetailPage {
    ctx: Ctx,
    item: Item,
    payload: String,
    result: Option<String>,
    /// What the last post did, in words.
    notice: Option<String>,
}

impl Ctx {
    /// A task kind in the page's words.
    fn task_kind(&self, kind: &TaskKind) -> &'static str {
        self.t(match kind {
            TaskKind::SendMessage => "tasks.kind_send_message",
            TaskKind::MassSend => "tasks.kind_mass_send",
            TaskKind::MomentsPost => "tasks.kind_moments_post",
            TaskKind::FriendAdd => "tasks.kind_friend_add",
            TaskKind::SmartMarketing => "tasks.kind_smart_marketing",
            TaskKind::DeleteChat => "tasks.kind_delete_chat",
            TaskKind::AcceptFriendRequest => "tasks.kind_accept_friend_request",
        })
    }

    /// A task state in the page's words.
    fn task_state(&self, state: &TaskState) -> &'static str {
        self.t(match state {
            TaskState::Queued => "tasks.state_queued",
            TaskState::Dispatched => "tasks.state_dispatched",
            TaskState::Running => "tasks.state_running",
            TaskState::Succeeded => "tasks.state_succeeded",
            TaskState::Failed => "tasks.state_failed",
            TaskState::Cancelled => "tasks.state_cancelled",
            TaskState::Intercepted => "tasks.state_intercepted",
            TaskState::Expired => "tasks.state_expired",
        })
    }

    /// The badge style of a state.
    fn state_style(&self, state: &TaskState) -> &'static str {
        match state {
            TaskState::Succeeded => "on",
            TaskState::Failed | TaskState::Expired | TaskState::Intercepted => "bad",
            TaskState::Queued | TaskState::Dispatched | TaskState::Running => "busy",
            TaskState::Cancelled => "off",
        }
    }

    /// The "submitted within" choice of `hours` in words.
    fn window(&self, hours: u32) -> String {
        match hours {
            0 => self.t("tasks.within_any").to_owned(),
            1 => self.t("tasks.within_hour").to_owned(),
            hours => self.tf("tasks.within_days", hours / 24),
        }
    }
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let filters = Filters::read(&query).map_err(|error| ctx.fail(&error))?;
    let request = paging::request(PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    })
    .map_err(|error| ctx.fail(&error))?;
    let filter = TaskQuery {
        operator_account_id: filters.account,
        state: filters.state,
        kind: filters.kind,
        created_after: (filters.within > 0)
            .then(|| now_ms() - i64::from(filters.within) * 3_600_000),
        page: PageQuery::default(),
    };
    let page = store::list(&state.db, &filter, request)
        .await
        .map_err(|error| ctx.fail(&error.into()))?;
    let pager = Pager::new(&filters.path(), &request, &page);
    let accounts = operator_accounts::store::list(&state.db)
        .await
        .map_err(|error| ctx.fail(&error.into()))?;
    let selects = Selects::new(&ctx, &filters, &accounts);
    let items = page
        .items
        .into_iter()
        .map(|task| Item {
            account: accounts
                .iter()
                .find(|a| a.id == task.operator_account_id)
                .map(|a| a.name.clone()),
            task,
        })
        .collect();
    Ok(html(
        StatusCode::OK,
        &ListPage {
            ctx,
            items,
            selects,
            pager,
        },
    ))
}

/// A task id from the path; one that is no id names no task.
fn task_id(ctx: &Ctx, text: &str) -> Result<TaskId, PageError> {
    text.parse::<TaskId>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| ctx.fail(&not_found()))
}

fn not_found() -> ApiError {
    ApiError::not_found("task_not_found", None, "no such task")
}

/// The notice of `?cancel=` after a cancel post.
#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    cancel: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let id = task_id(&ctx, &id)?;
    let task = store::get(&state.db, id)
        .await
        .map_err(|error| ctx.fail(&error.into()))?
        .ok_or_else(|| ctx.fail(&not_found()))?;
    let account = operator_accounts::store::get(&state.db, task.operator_account_id)
        .await
        .map_err(|error| ctx.fail(&error.into()))?
        .map(|account| account.name);
    let pretty = |value: &serde_json::Value| {
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    };
    let notice = match query.cancel.as_deref() {
        Some("cancelled") => Some(ctx.t("tasks.cancelled_now").to_owned()),
        Some("cancelling") => Some(ctx.t("tasks.cancelling_now").to_owned()),
        Some("ended") => Some(ctx.t("tasks.cancel_too_late").to_owned()),
        _ => None,
    };
    Ok(html(
        StatusCode::OK,
        &DetailPage {
            payload: pretty(&task.payload),
            result: task.result.as_ref().map(pretty),
            item: Item { task, account },
            ctx,
            notice,
        },
    ))
}

async fn cancel(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = task_id(&ctx, &id)?;
    let result = cancel_tasks(
        &state,
        CancelTasks {
            task_ids: Some(vec![id]),
            ..CancelTasks::default()
        },
    )
    .await
    .map_err(|error| ctx.fail(&error))?;
    let outcome = if result.cancelled > 0 {
        "cancelled"
    } else if result.cancelling > 0 {
        "cancelling"
    } else {
        "ended"
    };
    Ok(see_other(&format!("/tasks/{id}?cancel={outcome}")))
}
