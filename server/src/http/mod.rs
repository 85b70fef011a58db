//! The feature kit: what every feature's HTTP side is made of, and the rule
//! that every error answer, even one axum makes by itself, has the JSON error
//! body ([`json_errors`]). It imports no feature; features import it, and
//! `app` assembles their routers.
//!
//! # Layout
//! - [`error`]: the one error type ([`ApiError`]); [`unique`]: a
//!   unique-constraint violation as the answer a feature chooses.
//! - [`extract`]: JSON, query and path extractors whose rejections are
//!   [`ApiError`]s, and [`AuthUser`](extract::AuthUser).
//! - [`guard`]: the session guard of `/api/v1`, public routes listed.
//! - [`page`]: page sizes, cursors and the page of a list.
//! - [`select`]: "these ids or all", and the report of unknown ids.
//! - [`check`]: ids and storable text; [`field`]: the rules of text fields
//!   (required, optional, length) as typed errors the console also shows.
//! - [`rate_limit`]: the failed-attempt limiter.

pub mod check;
pub mod error;
pub mod extract;
pub mod field;
pub mod guard;
pub mod page;
pub mod rate_limit;
pub mod select;
pub mod unique;

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use youmi_protocol::api::{ErrorBody, ErrorDetail};

use crate::http::error::ApiError;

/// The largest request body of any route but the batch submit.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;
/// The largest batch submit body: 100,000 tasks of a few hundred bytes each.
pub const BATCH_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The answer of a path no route has: 404 `route_not_found`.
pub async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::not_found(
        "route_not_found",
        None,
        format!("no route for {}", uri.path()),
    )
}

/// A known path with a method it does not take (axum adds the `Allow` header).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        message: format!("{method} is not allowed on {}", uri.path()),
    }
}

/// The longest body of a non-JSON error that is kept as the message.
const MAX_PLAIN_ERROR: usize = 1_024;

/// Gives any error answer that is not JSON yet (a rejection axum or a layer
/// made by itself) the JSON error body, keeping its status and other headers
/// (`Allow`, `Retry-After`); its plain text becomes the message.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    // The console's own error pages are HTML, made for a person; they stay.
    let has_body_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| {
            let value = value.as_bytes();
            value.starts_with(b"application/json") || value.starts_with(b"text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || has_body_type {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, MAX_PLAIN_ERROR)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let reason = status.canonical_reason().unwrap_or("error");
    let code = match status.as_u16() {
        405 => "method_not_allowed".to_owned(),
        413 => "body_too_large".to_owned(),
        500..=599 => "internal".to_owned(),
        // The reason phrase in snake_case: `unsupported_media_type`.
        _ => reason
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|word| !word.is_empty())
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join("_"),
    };
    tracing::debug!(%status, text = text.as_deref().unwrap_or(""), "an error answer made outside the handlers");
    // As for the handlers' own internal errors, a 5xx tells nothing inside.
    let message = match text {
        Some(text) if !status.is_server_error() => text,
        _ => reason.to_ascii_lowercase(),
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message,
            field: None,
        },
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut response = Response::from_parts(parts, Body::from(bytes));
    *response.status_mut() = status;
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::DefaultBodyLimit;
    use axum::http::{Request, StatusCode};
    use axum::middleware;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    /// A router whose only route uses axum's own extractor and answers, the
    /// kind of answers that are plain text unless `json_errors` steps in.
    fn plain_router() -> Router {
        Router::new()
            .route(
                "/echo",
                post(|axum::Json(value): axum::Json<serde_json::Value>| async move {
                    axum::Json(value)
                }),
            )
            .route(
                "/status/{code}",
                post(|axum::extract::Path(code): axum::extract::Path<u16>| async move {
                    (
                        StatusCode::from_u16(code).unwrap(),
                        [(header::RETRY_AFTER, "7")],
                        "Some Plain Text",
                    )
                }),
            )
            .layer(DefaultBodyLimit::max(16))
            .layer(middleware::map_response(json_errors))
    }

    async fn send(request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, ErrorBody) {
        let response = plain_router().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&bytes)));
        (status, headers, body)
    }

    #[tokio::test]
    async fn axums_own_rejections_get_the_json_body() {
        let post = |content_type: Option<&str>, body: &'static str| {
            let mut request = Request::post("/echo");
            if let Some(content_type) = content_type {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            request.body(Body::from(body)).unwrap()
        };
        for (request, status) in [
            (post(None, "{}"), 415),
            (post(Some("text/plain"), "{}"), 415),
            (post(Some("application/json"), "{"), 400),
            (post(Some("application/json"), "[]"), 200),
            (
                post(Some("application/json"), r#"{"a": "0123456789abcdef"}"#),
                413,
            ),
        ] {
            let response = plain_router().oneshot(request).await.unwrap();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            if status != 200 {
                let body: ErrorBody = serde_json::from_value(value).unwrap();
                assert!(!body.error.message.is_empty());
                assert!(!body.error.code.is_empty());
            }
        }
    }

    #[tokio::test]
    async fn every_error_status_keeps_its_status_and_headers() {
        for code in 400..=599u16 {
            let request = Request::post(format!("/status/{code}"))
                .body(Body::empty())
                .unwrap();
            let (status, headers, body) = send(request).await;
            assert_eq!(status.as_u16(), code);
            assert_eq!(headers[header::RETRY_AFTER], "7");
            assert!(!body.error.code.is_empty(), "{code}");
            assert!(
                body.error
                    .code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{code}: {}",
                body.error.code
            );
            if code >= 500 {
                assert_eq!(body.error.code, "internal");
                assert!(!body.error.message.contains("Plain"), "{code}");
            } else {
                assert_eq!(body.error.message, "Some Plain Text");
            }
        }
    }
}
