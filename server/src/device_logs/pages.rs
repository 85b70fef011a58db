//! The 设备日志 page of the console: the uploaded logs (device, account,
//! time, size, download), filtered by device, and a form that asks one
//! device's agent for its logs. The request goes through
//! [`super::request_uploads`] and the download through [`super::download`],
//! the API's own functions; a refused request is the page again with the
//! reason next to the field, nothing asked.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use youmi_protocol::api::{DeviceSelection, LogRequestOutcome, PageQuery};

use crate::console::page::{html, see_other, Ctx, PageError};
use crate::console::paging::{self, Pager};
use crate::devices::store::{self as device_store, StoredDevice};
use crate::http::error::ApiError;
use crate::http::extract::AuthUser;
use crate::AppState;

use super::store::StoredLog;

/// Where the page lives; the navigation links here.
pub const PATH: &str = "/device-logs";

/// The page's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list).post(request))
        .route("/device-logs/{id}/file", get(file))
}

/// The page's query: the filter, the page and what the last post did.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only this device's logs; empty is all.
    device_id: Option<String>,
    /// Page size.
    limit: Option<i64>,
    /// Entries before this id.
    cursor: Option<i64>,
    /// `requested` or `offline`, after a request.
    notice: Option<String>,
}

/// The request form's one field.
#[derive(Debug, Default, Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    device_id: String,
}

#[derive(Template)]
#[template(path = "device_logs/list.html")]
struct ListPage {
    ctx: Ctx,
    logs: Vec<StoredLog>,
    /// Every bound device, for the form and the filter.
    devices: Vec<StoredDevice>,
    /// The device the list is filtered by, `""` for all.
    filter: String,
    /// The device picked in the request form.
    picked: String,
    pager: Pager,
    /// What the last post did, in words.
    notice: Option<(&'static str, &'static str)>,
    /// Why the request form was refused.
    error: Option<String>,
}

impl ListPage {
    /// A file size for people: bytes, KiB or MiB.
    fn size(&self, bytes: &Option<u64>) -> String {
        match *bytes {
            None => String::new(),
            Some(b) if b < 1024 => format!("{b} B"),
            Some(b) if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
            Some(b) => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        }
    }

    /// The state's label key.
    fn state_key(&self, log: &StoredLog) -> &'static str {
        match log.log.state.as_str() {
            "requested" => "logs.state_requested",
            "uploading" => "logs.state_uploading",
            "uploaded" => "logs.state_uploaded",
            _ => "logs.state_failed",
        }
    }
}

/// The list as `query` asks for it, with `picked` and `error` for the form.
async fn render(
    state: &AppState,
    ctx: Ctx,
    query: ListQuery,
    picked: String,
    error: Option<&ApiError>,
) -> Result<Response, PageError> {
    let request = paging::request(PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    })
    .map_err(|error| ctx.fail(&error))?;
    let filter = query.device_id.unwrap_or_default();
    let device = Some(filter.as_str()).filter(|id| !id.is_empty());
    let rows = super::page(state, device, &request)
        .await
        .map_err(|error| ctx.fail(&error))?;
    let devices = device_store::list(&state.db)
        .await
        .map_err(|error| ctx.fail(&error.into()))?;
    let page = request.page(rows, |row| row.log.id);
    let base = match device {
        Some(id) => format!("{PATH}?device_id={id}"),
        None => PATH.to_owned(),
    };
    let pager = Pager::new(&base, &request, &page);
    let notice = match query.notice.as_deref() {
        Some("requested") => Some(("success", ctx.t("logs.requested"))),
        Some("offline") => Some(("warning", ctx.t("logs.offline"))),
        _ => None,
    };
    let status = error.map_or(StatusCode::OK, |error| match error.status() {
        StatusCode::BAD_REQUEST => StatusCode::UNPROCESSABLE_ENTITY,
        other => other,
    });
    // This form picks one device: no device is "pick one", not the batch
    // pages' "tick some".
    let error = error.map(|error| match error.code() {
        "empty_selection" => ctx.t("error.pick_device").to_owned(),
        _ => ctx.catalogue().api_error(error),
    });
    Ok(html(
        status,
        &ListPage {
            ctx,
            logs: page.items,
            devices,
            filter,
            picked,
            pager,
            notice,
            error,
        },
    ))
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    render(&state, ctx, query, String::new(), None).await
}

async fn request(
    State(state): State<AppState>,
    user: AuthUser,
    ctx: Ctx,
    Form(form): Form<RequestForm>,
) -> Result<Response, PageError> {
    let device_id = form.device_id.trim().to_owned();
    let device_ids = if device_id.is_empty() {
        Vec::new()
    } else {
        vec![device_id.clone()]
    };
    let selection = DeviceSelection {
        device_ids,
        all: false,
    };
    match super::request_uploads(&state, selection, user.employee.id).await {
        Ok(answer) => {
            let requested = answer
                .devices
                .iter()
                .any(|device| device.result == LogRequestOutcome::Requested);
            let notice = if requested { "requested" } else { "offline" };
            Ok(see_other(&format!("{PATH}?notice={notice}")))
        }
        Err(error) if error.status().is_client_error() => {
            render(&state, ctx, ListQuery::default(), device_id, Some(&error)).await
        }
        Err(error) => Err(ctx.fail(&error)),
    }
}

async fn file(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = id.parse::<i64>().map_err(|_| {
        ctx.fail(&ApiError::not_found(
            "device_log_not_found",
            None,
            "no such log",
        ))
    })?;
    super::download(&state, id)
        .await
        .map_err(|error| ctx.fail(&error))
}
