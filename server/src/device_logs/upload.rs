//! The agents' log upload, `POST /agent/v1/logs/{request_id}` with the
//! device token: the body is streamed to a file under the data directory
//! (never held whole), at most [`MAX_LOG_UPLOAD_BYTES`] (413 above, the
//! partial file removed), and only for a request made of this device and
//! not yet used.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use youmi_protocol::api::MAX_LOG_UPLOAD_BYTES;

use crate::db::now_ms;
use crate::gateway::store::device_for_token;
use crate::http::error::ApiError;
use crate::http::extract::{bearer_token, token_hash, Path};
use crate::AppState;

use super::store::{self, Unclaimable};
use super::{file_path, LOG_DIR};

/// The route's path pattern.
const PATH: &str = "/agent/v1/logs/{request_id}";

/// The route; it counts the body's bytes itself, so the kit's body limit is off.
pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(receive).layer(DefaultBodyLimit::disable()))
}

/// The path an agent posts the upload of `request_id` to.
pub fn path_of(request_id: &str) -> String {
    PATH.replace("{request_id}", request_id)
}

fn too_large() -> ApiError {
    ApiError::TooLarge {
        code: "log_too_large",
        message: format!("a log upload holds at most {MAX_LOG_UPLOAD_BYTES} bytes"),
        field: None,
    }
}

/// Why an upload stopped before it was stored.
enum Cut {
    /// Over the cap.
    TooLarge,
    /// The body broke off, or the file could not be written.
    Failed(String),
}

#[tracing::instrument(skip_all, fields(request_id = %request_id))]
async fn receive(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    // The token first: a caller without a valid one learns nothing else.
    let token = bearer_token(&headers).ok_or(ApiError::Unauthorized)?;
    let device = device_for_token(&state.db, &token_hash(token))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let id = match store::claim(&state.db, &request_id, &device.device_id).await? {
        Ok(id) => id,
        Err(Unclaimable::Unknown) => {
            return Err(ApiError::not_found(
                "log_request_not_found",
                None,
                "no log request has this id",
            ))
        }
        Err(Unclaimable::OtherDevice) => {
            return Err(ApiError::forbidden(
                "not_your_log_request",
                "this log request was made of another device",
            ))
        }
        Err(Unclaimable::Used) => {
            return Err(ApiError::conflict(
                "log_request_used",
                None,
                "this log request already had its upload",
            ))
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let path = file_path(&state.settings.data_dir, id);
    let result = if declared.is_some_and(|size| size > MAX_LOG_UPLOAD_BYTES) {
        Err(Cut::TooLarge)
    } else {
        save(body, &path).await
    };
    match result {
        Ok(size) => {
            store::uploaded(&state.db, id, size, now_ms()).await?;
            tracing::info!(device_id = %device.device_id, id, size, "log uploaded");
            Ok(StatusCode::CREATED)
        }
        Err(cut) => {
            let _ = tokio::fs::remove_file(&path).await;
            let (error, reason) = match cut {
                Cut::TooLarge => (
                    too_large(),
                    "the upload was larger than the server takes".to_owned(),
                ),
                Cut::Failed(reason) => (
                    ApiError::bad_request("log_upload_failed", None, reason.clone()),
                    reason,
                ),
            };
            tracing::warn!(device_id = %device.device_id, id, %reason, "log upload refused");
            store::failed(&state.db, id, &reason).await?;
            Err(error)
        }
    }
}

/// Writes the body to `path` chunk by chunk, counting; stops past the cap.
async fn save(body: Body, path: &std::path::Path) -> Result<u64, Cut> {
    let failed =
        |what: &str, error: &dyn std::fmt::Display| Cut::Failed(format!("{what}: {error}"));
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| failed(&format!("cannot create {LOG_DIR}"), &e))?;
    }
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| failed("cannot create the file", &e))?;
    let mut stream = body.into_data_stream();
    let mut size: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| failed("the upload broke off", &e))?;
        size += chunk.len() as u64;
        if size > MAX_LOG_UPLOAD_BYTES {
            return Err(Cut::TooLarge);
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| failed("cannot write the file", &e))?;
    }
    file.sync_all()
        .await
        .map_err(|e| failed("cannot write the file", &e))?;
    Ok(size)
}
