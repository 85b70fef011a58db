//! Cross-site request forgery: every console request that may change
//! something (any method but GET, HEAD, OPTIONS) carries a token tied to the
//! visitor's session, in the form field [`FIELD`] or, for htmx requests, the
//! header [`HEADER`] (the layout sets it on `<body hx-headers>`). A request
//! without it, or with another, is refused before any handler runs. The
//! token is derived from the session's secret, which only the HttpOnly cookie
//! holds, so another site can neither read nor compute it.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, Method};
use sha2::{Digest, Sha256};

use crate::http::BODY_LIMIT;

/// The form field of the token.
pub const FIELD: &str = "_csrf";
/// The header of the token.
pub const HEADER: &str = "x-csrf-token";

/// The token of this page's forms, left in the request by the console's
/// guard for the page to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfToken(pub String);

/// The token that goes with the cookie secret `secret` (a session token or
/// a visitor's token): SHA-256 of a label and the secret, in hex.
pub fn token_for(secret: &str) -> CsrfToken {
    let digest = Sha256::new()
        .chain_update(b"youmi console csrf\n")
        .chain_update(secret.as_bytes())
        .finalize();
    CsrfToken(digest.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Whether `method` never changes anything, so needs no token.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The request back, when it carries `expected` in its header or in its
/// URL-encoded form body (read whole, up to the body limit, and put back);
/// `None` when it does not. A body of another type must use the header.
pub async fn check(request: Request, expected: &CsrfToken) -> Option<Request> {
    if let Some(sent) = request.headers().get(HEADER) {
        return same(sent.as_bytes(), expected).then_some(request);
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| {
            value
                .as_bytes()
                .starts_with(b"application/x-www-form-urlencoded")
        });
    if !is_form {
        return None;
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, BODY_LIMIT).await.ok()?;
    // The token is hex, so its value needs no percent-decoding: an encoded
    // one could not be right anyway.
    let sent = bytes
        .split(|byte| *byte == b'&')
        .find_map(|pair| pair.strip_prefix(FIELD.as_bytes())?.strip_prefix(b"="))?;
    same(sent, expected).then(|| Request::from_parts(parts, Body::from(bytes.clone())))
}

/// Compares without stopping at the first difference, so that the time
/// taken tells nothing of how much of a guess was right.
fn same(sent: &[u8], expected: &CsrfToken) -> bool {
    let expected = expected.0.as_bytes();
    sent.len() == expected.len()
        && sent
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(content_type: &str, header: Option<&str>, body: &str) -> Request {
        let mut request = Request::post("/x").header(header::CONTENT_TYPE, content_type);
        if let Some(token) = header {
            request = request.header(HEADER, token);
        }
        request.body(Body::from(body.to_owned())).unwrap()
    }

    #[tokio::test]
    async fn the_token_is_taken_from_the_header_or_the_form_and_nothing_else() {
        let token = token_for("secret");
        assert_eq!(token.0.len(), 64);
        assert_ne!(token, token_for("other"));
        let form = "application/x-www-form-urlencoded";
        let good = format!("name=a&_csrf={}&x=1", token.0);
        let request = check(post(form, None, &good), &token).await.unwrap();
        let body = to_bytes(request.into_body(), 1 << 16).await.unwrap();
        assert_eq!(body, good.as_bytes(), "the body is put back whole");
        assert!(check(post(form, None, "name=a"), &token).await.is_none());
        assert!(check(post(form, None, "_csrf=abc"), &token).await.is_none());
        let other = format!("_csrf={}", token_for("other").0);
        assert!(check(post(form, None, &other), &token).await.is_none());
        let near = format!("x_csrf={}", token.0);
        assert!(check(post(form, None, &near), &token).await.is_none());
        assert!(check(post("text/plain", None, &good), &token)
            .await
            .is_none());
        assert!(
            check(post("application/json", Some(&token.0), "{}"), &token)
                .await
                .is_some()
        );
        assert!(check(post(form, Some("wrong"), &good), &token)
            .await
            .is_none());
    }
}
