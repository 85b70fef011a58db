//! The one error type of the HTTP API. Every handler returns it; it becomes
//! the `{"error": {"code", "message", "field"?}}` body of PROTOCOL.md with the
//! status the contract gives each kind of failure.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use youmi_controller::ControllerError;
use youmi_protocol::api::{ErrorBody, ErrorDetail};

/// A failed request, as the client is told about it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{message}")]
    BadRequest {
        /// Stable snake_case code.
        code: &'static str,
        /// Human text.
        message: String,
        /// The request field at fault.
        field: Option<String>,
    },
    /// 401: no session or device token, or an unknown or expired one.
    #[error("missing, unknown or expired token")]
    Unauthorized,
    /// 401: a login with a wrong job number or password.
    #[error("wrong job number or password")]
    InvalidCredentials,
    /// 403: the caller may not do this.
    #[error("{message}")]
    Forbidden {
        /// Stable snake_case code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 404: the thing named does not exist.
    #[error("{message}")]
    NotFound {
        /// Stable snake_case code, e.g. `task_not_found`.
        code: &'static str,
        /// Human text.
        message: String,
        /// The request field that named it.
        field: Option<String>,
    },
    /// 405: the route exists, but not with this method.
    #[error("{message}")]
    MethodNotAllowed {
        /// Human text naming the method and the path.
        message: String,
    },
    /// 409: the request conflicts with what is stored.
    #[error("{message}")]
    Conflict {
        /// Stable snake_case code.
        code: &'static str,
        /// Human text.
        message: String,
        /// The request field at fault.
        field: Option<String>,
    },
    /// 413: the body is larger than the route takes.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 413: one part of the request is larger than a limit of the protocol.
    #[error("{message}")]
    TooLarge {
        /// Stable snake_case code, e.g. `payload_too_large`.
        code: &'static str,
        /// Human text, naming the limit.
        message: String,
        /// The request field at fault.
        field: Option<String>,
    },
    /// 422: well-formed, but against a rule.
    #[error("{message}")]
    Unprocessable {
        /// Stable snake_case code.
        code: &'static str,
        /// Human text.
        message: String,
        /// The request field at fault.
        field: Option<String>,
    },
    /// 429: too many failed attempts from this address.
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    TooManyAttempts {
        /// Seconds until the next attempt is taken.
        retry_after_secs: u64,
    },
    /// 503: the server cannot take this now (full, or shutting down).
    #[error("{message}")]
    Unavailable {
        /// Stable snake_case code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 500: a database failure; logged, never shown. (A transient one
    /// becomes [`ApiError::storage_unavailable`] instead.)
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// 500: any other failure inside the server; logged, never shown.
    #[error("{0}")]
    Internal(String),
}

/// The `Retry-After` of a 503 `storage_unavailable`, in seconds.
pub const STORAGE_RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    /// 503 `storage_unavailable` with `Retry-After`: the database is failing
    /// for now (disk full, I/O errors, connection lost) or its file is gone;
    /// nothing of the request was stored.
    pub fn storage_unavailable(reason: impl Into<String>) -> Self {
        ApiError::Unavailable {
            code: "storage_unavailable",
            message: reason.into(),
        }
    }

    /// 400 with a field.
    pub fn bad_request(
        code: &'static str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// 403: the caller may not do this.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// 409 with a field: the request clashes with what is stored (a name
    /// another row has; see [`crate::http::unique::on_unique`]).
    pub fn conflict(code: &'static str, field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// 404 with a field.
    pub fn not_found(code: &'static str, field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError::NotFound {
            code,
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// 422 with a field.
    pub fn unprocessable(
        code: &'static str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Unprocessable {
            code,
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// The same error about the request field `field` (for batch entries, whose
    /// fields are prefixed with their index).
    pub fn with_field(mut self, new_field: String) -> Self {
        match &mut self {
            ApiError::BadRequest { field, .. }
            | ApiError::NotFound { field, .. }
            | ApiError::Conflict { field, .. }
            | ApiError::TooLarge { field, .. }
            | ApiError::Unprocessable { field, .. } => *field = Some(new_field),
            _ => {}
        }
        self
    }

    /// The request field at fault, if the error names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::BadRequest { field, .. }
            | ApiError::NotFound { field, .. }
            | ApiError::Conflict { field, .. }
            | ApiError::TooLarge { field, .. }
            | ApiError::Unprocessable { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge | ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Database(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::TooLarge { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::PayloadTooLarge => "body_too_large",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::Database(_) | ApiError::Internal(_) => "internal",
        }
    }
}

impl From<ControllerError> for ApiError {
    fn from(error: ControllerError) -> Self {
        match error {
            ControllerError::UnknownDevices(ids) => {
                crate::http::select::unknown_ids("device_not_found", "device_ids", "device", &ids)
            }
            ControllerError::Stopped => ApiError::Unavailable {
                code: "scheduler_stopped",
                message: "the scheduler is not running".to_owned(),
            },
            ControllerError::StorageUnavailable(reason) => ApiError::storage_unavailable(reason),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    /// A transient failure (see [`crate::storage::is_transient`]) is a 503
    /// the client may retry; any other a 500.
    fn from(error: sqlx::Error) -> Self {
        if crate::storage::is_transient(&error) {
            tracing::warn!(%error, "database unavailable while handling a request");
            ApiError::storage_unavailable("the database is unavailable for now; nothing was stored")
        } else {
            ApiError::Database(error)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Database(error) => {
                tracing::error!(%error, "database error while handling a request");
                "internal error".to_owned()
            }
            ApiError::Internal(error) => {
                tracing::error!(%error, "internal error while handling a request");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
                field: self.field().map(str::to_owned),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if self.code() == "storage_unavailable" {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(STORAGE_RETRY_AFTER_SECS),
            );
        }
        if let ApiError::TooManyAttempts { retry_after_secs } = self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn body(error: ApiError) -> (StatusCode, ErrorBody, Option<String>) {
        let response = error.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap(), retry)
    }

    #[tokio::test]
    async fn internal_errors_say_only_internal_error() {
        let (status, body, _) = body(ApiError::Internal("secret detail".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body.error.code, "internal");
        assert_eq!(body.error.message, "internal error");
    }

    #[tokio::test]
    async fn too_many_attempts_sets_retry_after() {
        let (status, body, retry) = body(ApiError::TooManyAttempts {
            retry_after_secs: 42,
        })
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body.error.code, "too_many_attempts");
        assert_eq!(retry.as_deref(), Some("42"));
    }

    #[tokio::test]
    async fn fields_are_reported() {
        let error = ApiError::unprocessable("invalid_payload", Some("payload.to"), "is required")
            .with_field("tasks[3].payload.to".into());
        let (status, body, _) = body(error).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body.error.field.as_deref(), Some("tasks[3].payload.to"));
        assert_eq!(body.error.message, "is required");
    }

    #[test]
    fn unknown_devices_are_404() {
        let error: ApiError = ControllerError::UnknownDevices(vec!["dev_x".into()]).into();
        assert_eq!(error.status(), StatusCode::NOT_FOUND);
        assert_eq!(error.code(), "device_not_found");
        assert!(error.to_string().contains("dev_x"));
    }
}
