//! Notifications for the admins: things a person must look at, such as an
//! operator account's queue paused because WeCom showed a risk-control
//! warning. The scheduler writes them in the same commit as what caused them;
//! this feature lists them and marks them read.

pub mod pages;
pub mod store;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use youmi_protocol::api::{MarkRead, MarkedRead, NotificationPage, NotificationQuery};

use crate::db::now_ms;
use crate::http::check;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, Json, Query};
use crate::http::page::PageRequest;
use crate::http::select::Selection;
use crate::AppState;

/// Most ids one mark-read request may name.
pub const MAX_MARK: usize = 1_000;

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/notifications", get(list))
        .route("/api/v1/notifications/read", post(mark_read))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<NotificationQuery>,
) -> Result<Json<NotificationPage>, ApiError> {
    let page = PageRequest::new(query.page)?;
    Ok(Json(store::list(&state.db, &query, page).await?))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn mark_read(
    State(state): State<AppState>,
    user: AuthUser,
    Json(request): Json<MarkRead>,
) -> Result<Json<MarkedRead>, ApiError> {
    let ids = match Selection::new("ids", request.ids, request.all)? {
        Selection::All => None,
        Selection::Ids(ids) => {
            if ids.len() > MAX_MARK {
                return Err(ApiError::bad_request(
                    "too_many_ids",
                    Some("ids"),
                    format!("at most {MAX_MARK} ids at once; use \"all\": true for more"),
                ));
            }
            check::ids("ids", &ids)?;
            Some(ids)
        }
    };
    let marked = mark(&state, ids.as_deref()).await?;
    Ok(Json(MarkedRead { marked }))
}

/// Marks `ids` (or, with `None`, every notification) read; how many were
/// unread. The API and the page both mark through here.
pub async fn mark(state: &AppState, ids: Option<&[i64]>) -> Result<u64, ApiError> {
    let marked = store::mark_read(&state.db, ids, now_ms()).await?;
    tracing::info!(marked, "notifications marked read");
    Ok(marked)
}
