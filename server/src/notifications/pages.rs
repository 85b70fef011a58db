//! The 通知 page of the console: the admins' notifications (risk-control
//! pauses and whatever later features add), newest first, all or only the
//! unread ones, paged; mark one or all read through the same function as the
//! API (`notifications::mark`). The header's 通知 section shows the unread
//! count on every page ([`unread_badge`]).

use std::future::Future;
use std::pin::Pin;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use youmi_protocol::api::{Notification, NotificationQuery, PageQuery};
use youmi_protocol::OperatorAccountId;

use crate::console::page::{html, is_htmx, see_other, Ctx, PageError};
use crate::console::paging::{self, Pager};
use crate::db::Db;
use crate::http::error::ApiError;
use crate::{operator_accounts, AppState};

use super::{mark, store};

/// Where the list lives; the navigation links here.
pub const PATH: &str = "/notifications";

/// The pages' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list))
        .route("/notifications/read", post(mark_all))
        .route("/notifications/{id}/read", post(mark_one))
}

/// The header badge: how many notifications are unread.
pub fn unread_badge(
    db: &Db,
) -> Pin<Box<dyn Future<Output = Result<u64, sqlx::Error>> + Send + '_>> {
    Box::pin(store::unread(db))
}

/// The list's query: the filter, the page, what the last post did.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only the unread ones.
    #[serde(default)]
    unread: bool,
    /// Page size.
    limit: Option<i64>,
    /// Notifications before this id.
    cursor: Option<i64>,
    /// `marked` after marking all read.
    notice: Option<String>,
}

/// A notification as a row shows it.
struct Item {
    notification: Notification,
    /// Its account's name, if the account still exists.
    account: Option<String>,
}

#[derive(Template)]
#[template(path = "notifications/list.html")]
struct ListPage {
    ctx: Ctx,
    items: Vec<Item>,
    unread_only: bool,
    unread: u64,
    pager: Pager,
    notice: Option<String>,
}

/// One row alone: what marking it read answers htmx with.
#[derive(Template)]
#[template(path = "notifications/row.html")]
struct Row {
    ctx: Ctx,
    item: Item,
}

impl Ctx {
    /// A notification's kind in words (its code when the catalogue has none).
    fn notification_kind(&self, kind: &str) -> String {
        match kind {
            "risk_control" => self.t("notifications.kind_risk_control").to_owned(),
            other => other.to_owned(),
        }
    }
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let request = paging::request(PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    })
    .map_err(|error| ctx.fail(&error))?;
    let filter = NotificationQuery {
        unread: query.unread,
        page: PageQuery::default(),
    };
    let page = store::list(&state.db, &filter, request)
        .await
        .map_err(|error| ctx.fail(&error.into()))?;
    let base = if query.unread {
        "/notifications?unread=true"
    } else {
        PATH
    };
    let pager = Pager::new(base, &request, &page.page);
    let items = with_names(&state, page.page.items)
        .await
        .map_err(|error| ctx.fail(&error))?;
    let notice = match query.notice.as_deref().map(str::parse::<u64>) {
        Some(Ok(marked)) => Some(ctx.tf("notifications.marked", marked)),
        _ => None,
    };
    Ok(html(
        StatusCode::OK,
        &ListPage {
            ctx,
            items,
            unread_only: query.unread,
            unread: page.unread,
            pager,
            notice,
        },
    ))
}

/// `notifications` with their accounts' names, in one query.
async fn with_names(
    state: &AppState,
    notifications: Vec<Notification>,
) -> Result<Vec<Item>, ApiError> {
    let mut ids: Vec<OperatorAccountId> = notifications
        .iter()
        .map(|n| n.operator_account_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let names = operator_accounts::store::names(&state.db, &ids).await?;
    Ok(notifications
        .into_iter()
        .map(|notification| Item {
            account: names
                .iter()
                .find(|(id, _)| *id == notification.operator_account_id)
                .map(|(_, name)| name.clone()),
            notification,
        })
        .collect())
}

async fn mark_all(State(state): State<AppState>, ctx: Ctx) -> Result<Response, PageError> {
    let marked = mark(&state, None).await.map_err(|error| ctx.fail(&error))?;
    Ok(see_other(&format!("{PATH}?notice={marked}")))
}

async fn mark_one(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let not_found = || {
        ctx.fail(&ApiError::not_found(
            "notification_not_found",
            None,
            "no such notification",
        ))
    };
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(not_found)?;
    if store::get(&state.db, id)
        .await
        .map_err(|error| ctx.fail(&error.into()))?
        .is_none()
    {
        return Err(not_found());
    }
    mark(&state, Some(&[id]))
        .await
        .map_err(|error| ctx.fail(&error))?;
    if !is_htmx(&headers) {
        return Ok(see_other(PATH));
    }
    let notification = store::get(&state.db, id)
        .await
        .map_err(|error| ctx.fail(&error.into()))?
        .ok_or_else(not_found)?;
    let mut items = with_names(&state, vec![notification])
        .await
        .map_err(|error| ctx.fail(&error))?;
    let item = items.pop().ok_or_else(not_found)?;
    Ok(html(StatusCode::OK, &Row { ctx, item }))
}
