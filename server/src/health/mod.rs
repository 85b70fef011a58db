//! Health for the people who run the server, and the guard that refuses
//! writes while storage fails.
//!
//! - `GET /health/live`: 200 while the process serves HTTP.
//! - `GET /health/ready`: 200 only when the migrations are applied, the
//!   database can be written (on SQLite: its file is the one opened and
//!   opens for writing; on PostgreSQL: reachable, not read-only) and the
//!   scheduler's writer is neither failing, stalled nor stopped; else 503
//!   naming the check that failed and why.
//! - [`refuse_writes`]: every request that may write (any method but GET,
//!   HEAD, OPTIONS) gets 503 `storage_unavailable` with `Retry-After` while
//!   the file is gone or the writer's store is degraded, before any handler
//!   or the scheduler changes anything.
//!
//! Both routes are outside `/api/v1`, take no token and answer a few bytes.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sqlx::Row;
use youmi_controller::StorageStatus;
use youmi_protocol::api::Health;

use crate::db::{Backend, Db};
use crate::http::error::ApiError;
use crate::AppState;

/// How long the readiness probe waits for a database connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `/health/live` and `/health/ready`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

async fn live() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        failed: None,
        reason: None,
    })
}

async fn ready(State(state): State<AppState>) -> Response {
    let failure = match migrations_applied(&state.db).await {
        Err(reason) => Some(("migrations", reason)),
        Ok(()) => match database_writable(&state.db).await {
            Err(reason) => Some(("database", reason)),
            Ok(()) => state
                .controller
                .storage_status()
                .problem()
                .map(|reason| ("writer", reason)),
        },
    };
    match failure {
        None => (
            StatusCode::OK,
            Json(Health {
                status: "ok".to_owned(),
                failed: None,
                reason: None,
            }),
        )
            .into_response(),
        Some((check, reason)) => {
            tracing::debug!(check, %reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable".to_owned(),
                    failed: Some(check.to_owned()),
                    reason: Some(reason),
                }),
            )
                .into_response()
        }
    }
}

/// The newest migration of this build is recorded as applied.
async fn migrations_applied(db: &Db) -> Result<(), String> {
    let newest = db.migrator().iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> = tokio::time::timeout(
        PROBE_TIMEOUT,
        sqlx::query("SELECT MAX(version) AS version FROM _sqlx_migrations").fetch_one(&db.read),
    )
    .await
    .map_err(|_| "the database did not answer in time".to_owned())?
    .and_then(|row| row.try_get("version"))
    .map_err(|error| format!("cannot read the applied migrations: {error}"))?;
    if applied.unwrap_or(0) < newest {
        return Err(format!(
            "migration {newest} is not applied (newest applied: {})",
            applied.unwrap_or(0)
        ));
    }
    Ok(())
}

/// The database takes writes, as far as can be told without writing.
async fn database_writable(db: &Db) -> Result<(), String> {
    db.check_file()?;
    match db.backend {
        Backend::Sqlite => {
            if let Some(file) = &db.file {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(file.path())
                    .map_err(|error| {
                        format!(
                            "cannot open the SQLite database {} for writing: {error}",
                            file.path().display()
                        )
                    })?;
            }
            Ok(())
        }
        Backend::Postgres => {
            let read_only: String = tokio::time::timeout(
                PROBE_TIMEOUT,
                sqlx::query_scalar("SELECT current_setting('transaction_read_only')")
                    .fetch_one(&db.write),
            )
            .await
            .map_err(|_| "no database connection within 2 s".to_owned())?
            .map_err(|error| format!("the database does not answer: {error}"))?;
            if read_only == "on" {
                return Err("the database is read-only".to_owned());
            }
            Ok(())
        }
    }
}

/// Refuses requests that may write while storage is failing (see the module
/// doc); reads go through.
pub async fn refuse_writes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method();
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return next.run(request).await;
    }
    if let Err(reason) = state.db.check_file() {
        return ApiError::storage_unavailable(reason).into_response();
    }
    match state.controller.storage_status() {
        StorageStatus::Ok => next.run(request).await,
        StorageStatus::Failed { .. } => {
            ApiError::from(youmi_controller::ControllerError::Stopped).into_response()
        }
        other => ApiError::storage_unavailable(other.problem().unwrap_or_default()).into_response(),
    }
}
