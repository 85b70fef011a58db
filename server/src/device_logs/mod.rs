//! Device logs (seed 7.1, 上传日志): admins ask agents to upload their logs,
//! agents upload them to the server with their device token, and admins list
//! and download what arrived. The rules live here, once, for the API and the
//! console: who may be asked (bound devices, online now: [`request_uploads`]),
//! where a file lives ([`file_path`]), and what a download answers
//! ([`download`]). The agents' route is [`upload`], the pages [`pages`].
//!
//! A request is a row (`requested`), claimed once by its device's upload
//! (`uploading`), then `uploaded` or `failed`. The file is a `.tar.gz` that
//! the agent builds (`docs/api/device_logs.md`).

pub mod pages;
pub mod store;
pub mod upload;

use std::collections::HashSet;
use std::path::{Path as FsPath, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::Stream;
use tokio::io::AsyncReadExt;
use youmi_controller::DeviceTarget;
use youmi_protocol::api::{
    DeviceLogPage, DeviceLogQuery, DeviceSelection, LogRequestOutcome, LogRequestResult,
    LogsRequested,
};
use youmi_protocol::{AgentMessage, ServerMessage};

use crate::db::{now_ms, Db};
use crate::http::check;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, Json, Path, Query};
use crate::http::page::PageRequest;
use crate::http::select::all_found;
use crate::{devices, secrets, AppState};

use self::store::StoredLog;

/// The folder of the uploaded logs, under the data directory.
pub const LOG_DIR: &str = "device-logs";

/// Routes of this feature: the admins' API and the agents' upload.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/devices/upload-logs", post(request))
        .route("/api/v1/device-logs", get(list))
        .route("/api/v1/device-logs/{id}/file", get(file))
        .merge(upload::router())
}

/// Where the file of log entry `id` lives.
pub fn file_path(data_dir: &FsPath, id: i64) -> PathBuf {
    data_dir.join(LOG_DIR).join(format!("{id}.tar.gz"))
}

/// At start: the uploads that a stop cut off fail, and their partial files go.
pub async fn clean_up_interrupted(db: &Db, data_dir: &FsPath) -> Result<(), sqlx::Error> {
    for id in store::fail_interrupted(db).await? {
        tracing::warn!(id, "a log upload was cut off by the server's stop");
        let _ = tokio::fs::remove_file(file_path(data_dir, id)).await;
    }
    Ok(())
}

/// Asks the agents of the selected devices to upload their logs: each
/// online device gets a request (stored first, then sent), each offline one
/// is reported `offline`; an unknown id fails the whole request (404) and
/// nothing is asked.
pub async fn request_uploads(
    state: &AppState,
    selection: DeviceSelection,
    requested_by: i64,
) -> Result<LogsRequested, ApiError> {
    let target = devices::target(selection.device_ids, selection.all)?;
    let statuses = state.controller.devices().await?;
    let known: HashSet<&str> = statuses.iter().map(|s| s.device_id.as_str()).collect();
    let online: HashSet<&str> = statuses
        .iter()
        .filter(|s| s.online)
        .map(|s| s.device_id.as_str())
        .collect();
    let selected: Vec<String> = match target {
        DeviceTarget::All => statuses.iter().map(|s| s.device_id.clone()).collect(),
        DeviceTarget::Ids(ids) => {
            all_found(
                "device_not_found",
                "device_ids",
                "device",
                ids.iter().cloned(),
                |id| known.contains(id.as_str()),
            )?;
            let mut seen = HashSet::new();
            ids.into_iter()
                .filter(|id| seen.insert(id.clone()))
                .collect()
        }
    };
    let asked: Vec<(String, String)> = selected
        .iter()
        .filter(|id| online.contains(id.as_str()))
        .map(|id| (id.clone(), secrets::log_request_id()))
        .collect();
    let log_ids = store::create(&state.db, &asked, requested_by, now_ms()).await?;
    let frames = asked
        .iter()
        .map(|(device_id, request_id)| {
            let url = format!(
                "{}{}",
                state.settings.public_url,
                upload::path_of(request_id)
            );
            let frame = ServerMessage::UploadLogs {
                request_id: request_id.clone(),
                url,
            };
            (device_id.clone(), frame)
        })
        .collect();
    let sent = state.controller.send_frames(frames).await?;
    let mut requested = Vec::new();
    let mut unsent = Vec::new();
    for (((device_id, _), log_id), sent) in asked.iter().zip(log_ids).zip(sent) {
        if sent {
            requested.push((device_id.as_str(), log_id));
        } else {
            unsent.push(log_id);
        }
    }
    // A device that went offline between the look and the send was never
    // asked: its request goes, and it is reported offline.
    store::forget(&state.db, &unsent).await?;
    let devices: Vec<LogRequestResult> = selected
        .iter()
        .map(|device_id| {
            let log_id = requested
                .iter()
                .find(|(id, _)| id == device_id)
                .map(|&(_, log_id)| log_id);
            LogRequestResult {
                device_id: device_id.clone(),
                result: match log_id {
                    Some(_) => LogRequestOutcome::Requested,
                    None => LogRequestOutcome::Offline,
                },
                log_id,
            }
        })
        .collect();
    let affected = requested.len() as u64;
    tracing::info!(affected, selected = devices.len(), "log uploads requested");
    Ok(LogsRequested { affected, devices })
}

/// Records the failures agents report in `logs_uploaded` (a success needs
/// nothing: the upload itself was stored). Written in a task of its own, so
/// that the agent's connection never waits on it.
pub fn note_reports(db: &Db, device_id: &str, messages: &[AgentMessage]) {
    for message in messages {
        let AgentMessage::LogsUploaded {
            request_id,
            error: Some(error),
        } = message
        else {
            continue;
        };
        tracing::warn!(
            device_id,
            request_id,
            error,
            "the agent could not upload its logs"
        );
        let (db, device_id, request_id, error) = (
            db.clone(),
            device_id.to_owned(),
            request_id.clone(),
            error.clone(),
        );
        tokio::spawn(async move {
            if let Err(failure) = store::agent_failed(&db, &device_id, &request_id, &error).await {
                tracing::error!(%failure, "cannot record a failed log upload");
            }
        });
    }
}

/// The page of log entries a query asks for, checked as the API checks it.
pub async fn page(
    state: &AppState,
    device_id: Option<&str>,
    request: &PageRequest,
) -> Result<Vec<StoredLog>, ApiError> {
    if let Some(device_id) = device_id {
        check::text("device_id", device_id)?;
    }
    Ok(store::list(&state.db, device_id, request).await?)
}

/// The download of log entry `id`: its file, named after the device and the
/// time, or 404 when there is no such entry or nothing was uploaded.
pub async fn download(state: &AppState, id: i64) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::not_found(
            "device_log_not_found",
            None,
            format!("no uploaded log with id {id}"),
        )
    };
    let entry = store::get(&state.db, id).await?.ok_or_else(not_found)?;
    if entry.log.uploaded_at_ms.is_none() {
        return Err(not_found());
    }
    let file = tokio::fs::File::open(file_path(&state.settings.data_dir, id))
        .await
        .map_err(|error| {
            tracing::error!(id, %error, "an uploaded log's file cannot be opened");
            not_found()
        })?;
    let name = format!("youmi-log-{}-{}.tar.gz", entry.log.device_id, entry.log.id);
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let body = Body::from_stream(chunks(file));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    if let Some(size) = entry.log.size_bytes {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    Ok(response)
}

/// A file read as a stream of chunks, so that a download never holds the
/// whole file.
fn chunks(file: tokio::fs::File) -> impl Stream<Item = std::io::Result<Bytes>> {
    const CHUNK: usize = 64 * 1024;
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buffer = vec![0u8; CHUNK];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(Bytes::from(buffer)), Some(file)))
            }
            Err(error) => Some((Err(error), None)),
        }
    })
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn request(
    State(state): State<AppState>,
    user: AuthUser,
    Json(selection): Json<DeviceSelection>,
) -> Result<Json<LogsRequested>, ApiError> {
    Ok(Json(
        request_uploads(&state, selection, user.employee.id).await?,
    ))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<DeviceLogQuery>,
) -> Result<Json<DeviceLogPage>, ApiError> {
    let request = PageRequest::new(query.page)?;
    let rows = page(&state, query.device_id.as_deref(), &request).await?;
    let logs = rows.into_iter().map(|row| row.log).collect();
    Ok(Json(request.page(logs, |log| log.id)))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn file(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    download(&state, id).await
}
