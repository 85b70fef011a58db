//! Every error answer of the real server has the JSON error body, including
//! those axum makes by itself: a wrong method on every route, bodies too large,
//! without or with the wrong content type, bad JSON, bad paths and queries.

use reqwest::header::{ALLOW, CONTENT_TYPE};
use reqwest::Method;
use youmi_protocol::api::ErrorBody;

use crate::common::TestApp;

/// Every route of the server and the methods it takes.
const ROUTES: &[(&str, &[&str])] = &[
    ("/api/v1/auth/login", &["POST"]),
    ("/api/v1/auth/logout", &["POST"]),
    ("/api/v1/auth/me", &["GET", "HEAD"]),
    ("/api/v1/operator-accounts", &["GET", "HEAD", "POST"]),
    ("/api/v1/operator-accounts/1", &["GET", "HEAD", "PATCH"]),
    ("/api/v1/operator-accounts/1/disable", &["POST"]),
    ("/api/v1/operator-accounts/1/enable", &["POST"]),
    ("/api/v1/operator-accounts/1/bind-codes", &["POST"]),
    (
        "/api/v1/operator-accounts/1/bind-codes/ABCD/qr.png",
        &["GET", "HEAD"],
    ),
    ("/agent/v1/bind", &["POST"]),
    ("/agent/v1/ws", &["GET", "HEAD"]),
    ("/api/v1/tasks", &["GET", "HEAD", "POST"]),
    ("/api/v1/tasks/batch", &["POST"]),
    ("/api/v1/tasks/cancel", &["POST"]),
    ("/api/v1/tasks/1", &["GET", "HEAD"]),
    ("/api/v1/devices", &["GET", "HEAD"]),
    ("/api/v1/devices/pause", &["POST"]),
    ("/api/v1/devices/resume", &["POST"]),
    ("/api/v1/devices/settings", &["PUT"]),
    ("/api/v1/notifications", &["GET", "HEAD"]),
    ("/api/v1/notifications/read", &["POST"]),
];

/// Sends a raw request and checks that the answer is `status` with the JSON
/// error body; returns the body.
async fn raw(app: &TestApp, request: reqwest::RequestBuilder, status: u16) -> ErrorBody {
    let response = request.send().await.expect("an answer");
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}: {text}"
    );
    let body: ErrorBody = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(!body.error.code.is_empty() && !body.error.message.is_empty());
    let _ = app;
    body
}

#[tokio::test]
async fn a_wrong_method_on_any_route_is_a_json_405() {
    let app = TestApp::spawn().await;
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    for (path, allowed) in ROUTES {
        for method in methods.iter().filter(|m| !allowed.contains(m)) {
            // With and without a session: the method is wrong either way.
            for token in [None, Some(app.token.as_str())] {
                let mut request = app.client.request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    app.url(path),
                );
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.unwrap();
                assert_eq!(response.status().as_u16(), 405, "{method} {path}");
                let allow = response.headers()[ALLOW].to_str().unwrap().to_owned();
                for method in *allowed {
                    assert!(allow.contains(method), "{method} {path}: allow {allow}");
                }
                let body: ErrorBody = response.json().await.unwrap();
                assert_eq!(body.error.code, "method_not_allowed", "{method} {path}");
                assert!(body.error.message.contains(path), "{}", body.error.message);
            }
        }
    }
    app.finish().await;
}

#[tokio::test]
async fn errors_axum_makes_by_itself_are_json() {
    let app = TestApp::spawn().await;
    let post = |path: &str| app.client.post(app.url(path)).bearer_auth(&app.token);
    let accounts = "/api/v1/operator-accounts";
    // Too large, before and after the body is read.
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(3 << 20));
    let body = raw(&app, post(accounts).body(big), 413).await;
    assert_eq!(body.error.code, "body_too_large");
    // Without a content type, or with another one, JSON is still read as JSON.
    let body = raw(&app, post(accounts).body("{"), 400).await;
    assert_eq!(body.error.code, "bad_json");
    let request = post(accounts)
        .header(CONTENT_TYPE, "text/plain")
        .body("[1]");
    assert_eq!(raw(&app, request, 400).await.error.code, "bad_json");
    let request = post(accounts)
        .header(CONTENT_TYPE, "application/json")
        .body(vec![0xff, 0xfe]);
    assert_eq!(raw(&app, request, 400).await.error.code, "bad_json");
    // Bad paths and queries.
    for path in [
        "/api/v1/tasks/abc",
        "/api/v1/tasks/1.5",
        "/api/v1/tasks/99999999999999999999",
        "/api/v1/tasks/%FF",
        "/api/v1/operator-accounts/x",
    ] {
        let request = app.client.get(app.url(path)).bearer_auth(&app.token);
        assert_eq!(
            raw(&app, request, 400).await.error.code,
            "bad_path",
            "{path}"
        );
    }
    for query in ["state=nope", "limit=abc", "kind=1", "unknown=1", "cursor=x"] {
        let request = app
            .client
            .get(app.url(&format!("/api/v1/tasks?{query}")))
            .bearer_auth(&app.token);
        assert_eq!(
            raw(&app, request, 400).await.error.code,
            "bad_query",
            "{query}"
        );
    }
    // The WebSocket route without an upgrade, and an unknown route.
    let request = app.client.get(app.url("/agent/v1/ws"));
    raw(&app, request, 401).await;
    let request = app.client.get(app.url("/nothing"));
    raw(&app, request, 404).await;
    app.finish().await;
}
