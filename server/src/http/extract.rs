//! Extractors shared by every feature: JSON bodies, query strings and path
//! parameters whose rejections are [`ApiError`]s (so a bad request gets the
//! same JSON error body as everything else), and [`AuthUser`], the caller
//! that the `/api/v1` guard (`http::guard`) found behind the session token.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use youmi_protocol::api::Employee;

use crate::http::error::ApiError;

/// A JSON body. Bad JSON, or JSON that does not fit `T`, is a 400 `bad_json`
/// whose message is serde's and whose field is the path to the value at fault
/// (e.g. `tasks[3].kind`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::PayloadTooLarge
                    } else {
                        ApiError::bad_request("bad_body", None, rejection.body_text())
                    }
                })?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Parses `bytes` as JSON into `T`, naming the path of the first value that
/// does not fit. A body that parses takes serde_json's plain path; only one
/// that does not is parsed again with its path tracked, a wrapper around every
/// value that showed in the profile of 1,000-task batch submissions.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        // The path is `.` at the root, and ends in `?` where the parser lost
        // track (inside malformed JSON); name only what is known.
        let path = error.path().to_string();
        let known = path.trim_end_matches('?').trim_end_matches('.');
        let field = (!known.is_empty()).then(|| known.to_owned());
        ApiError::BadRequest {
            code: "bad_json",
            message: error.into_inner().to_string(),
            field,
        }
    })?;
    deserializer.end().map_err(|error| {
        ApiError::bad_request("bad_json", None, format!("trailing data: {error}"))
    })?;
    Ok(value)
}

/// A query string. One that does not fit `T` is a 400 `bad_query`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| {
                ApiError::bad_request("bad_query", None, strip_prefix(rejection.body_text()))
            })
    }
}

/// Path parameters. One that does not fit `T` (a task id that is not a
/// number) is a 400 `bad_path`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| {
                ApiError::bad_request("bad_path", None, strip_prefix(rejection.body_text()))
            })
    }
}

/// axum's rejection texts start with a capitalised sentence; the API's
/// messages are lower-case, so keep only what follows the first colon.
fn strip_prefix(text: String) -> String {
    match text.split_once(": ") {
        Some((_, rest)) => rest.to_owned(),
        None => text,
    }
}

/// The employee behind the request's bearer session token, as the guard of
/// `/api/v1` (`http::guard`) found it; a handler takes it to know who calls.
/// A handler that takes it on a route the guard lets through without a
/// session (a public one) is a mistake of the server, answered 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// Who is calling.
    pub employee: Employee,
    /// The hash of the session token, so that logout can end this session.
    pub session: String,
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<AuthUser>().cloned().ok_or_else(|| {
            ApiError::Internal(
                "a handler takes the session's employee on a route the guard does not cover"
                    .to_owned(),
            )
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The stored form of a session or device token: its SHA-256, in hex. A
/// database leak then gives away no usable token.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request as HttpRequest;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Outer {
        #[allow(dead_code)]
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    struct Inner {
        #[allow(dead_code)]
        n: u8,
    }

    #[test]
    fn json_errors_name_the_path() {
        let error = parse_json::<Outer>(br#"{"items":[{"n":1},{"n":300}]}"#).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error.code(), "bad_json");
        assert_eq!(error.field(), Some("items[1].n"));
        let error = parse_json::<Outer>(b"{").unwrap_err();
        assert_eq!(error.code(), "bad_json");
        assert_eq!(error.field(), None);
        let error = parse_json::<Outer>(br#"{"items":[]} x"#).unwrap_err();
        assert_eq!(error.code(), "bad_json");
    }

    #[test]
    fn bearer_tokens_are_parsed() {
        let (parts, _) = HttpRequest::builder()
            .header("authorization", "Bearer abc")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(bearer_token(&parts.headers), Some("abc"));
        let (parts, _) = HttpRequest::builder()
            .header("authorization", "Basic abc")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(bearer_token(&parts.headers), None);
        let (parts, _) = HttpRequest::builder().body(()).unwrap().into_parts();
        assert_eq!(bearer_token(&parts.headers), None);
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
