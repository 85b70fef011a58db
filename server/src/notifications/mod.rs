//! Notifications for the admins: things a person must look at, such as an
//! operator account's queue paused because WeCom showed a risk-control
//! warning. The scheduler writes them in the same commit as what caused them;
//! this feature lists them and marks them read.

pub mod store;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use youmi_protocol::api::{MarkRead, MarkedRead, NotificationPage, NotificationQuery};

use crate::db::now_ms;
use crate::http::check;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, Json, Query};
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
    let limit = check::page_limit(query.limit)?;
    check::cursor(query.cursor)?;
    Ok(Json(store::list(&state.db, &query, limit).await?))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn mark_read(
    State(state): State<AppState>,
    user: AuthUser,
    Json(request): Json<MarkRead>,
) -> Result<Json<MarkedRead>, ApiError> {
    let ids = match (request.ids.is_empty(), request.all) {
        (true, false) => {
            return Err(ApiError::bad_request(
                "empty_selection",
                Some("ids"),
                "give ids or \"all\": true",
            ))
        }
        (false, true) => {
            return Err(ApiError::bad_request(
                "ambiguous_selection",
                Some("all"),
                "give ids or \"all\": true, not both",
            ))
        }
        (true, true) => None,
        (false, false) => {
            if request.ids.len() > MAX_MARK {
                return Err(ApiError::bad_request(
                    "too_many_ids",
                    Some("ids"),
                    format!("at most {MAX_MARK} ids at once; use \"all\": true for more"),
                ));
            }
            check::ids("ids", &request.ids)?;
            Some(request.ids)
        }
    };
    let now = now_ms();
    let marked = store::mark_read(&state.db, ids.as_deref(), now).await?;
    tracing::info!(marked, "notifications marked read");
    Ok(Json(MarkedRead { marked }))
}
