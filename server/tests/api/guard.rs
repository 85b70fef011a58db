//! The session guard of `/api/v1`: every route under it, as the router
//! itself lists them, answers 401 without a live session token, unless it is
//! in the public list (`app::PUBLIC`).

use reqwest::Method;
use serde_json::json;
use youmi_server::app;

use crate::common::TestApp;

/// `path` with each `{param}` filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |end| start + end + 1);
        out.push('1');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn is_public(method: &Method, path: &str) -> bool {
    app::PUBLIC
        .iter()
        .any(|(m, p)| m.as_str() == method.as_str() && *p == path)
}

#[tokio::test]
async fn every_api_route_but_the_public_ones_needs_a_session() {
    let app = TestApp::spawn().await;
    let paths = app::paths();
    // The list comes from the router; if it could not be read, fail rather
    // than pass on no routes.
    for known in [
        "/api/v1/tasks/{id}",
        "/api/v1/auth/me",
        "/health/live",
        "/agent/v1/ws",
    ] {
        assert!(paths.iter().any(|p| p == known), "{known} not in {paths:?}");
    }
    for (_, path) in app::PUBLIC {
        assert!(paths.iter().any(|p| p == path), "public {path} is no route");
    }
    let api: Vec<&String> = paths.iter().filter(|p| p.starts_with("/api/v1/")).collect();
    for path in &api {
        let mut guarded = 0;
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if is_public(&method, path) {
                continue;
            }
            for token in [None, Some("not-a-session-token")] {
                let answer = app
                    .call(method.clone(), &concrete(path), Some(json!({})), token)
                    .await;
                match answer.status.as_u16() {
                    // The path does not take this method.
                    405 => {}
                    401 => {
                        answer.expect_error(401, "unauthorized");
                        assert_eq!(
                            answer.headers["www-authenticate"], "Bearer",
                            "{method} {path}"
                        );
                        guarded += 1;
                    }
                    other => panic!(
                        "{method} {path} answered {other} without a session: {}",
                        answer.body
                    ),
                }
            }
        }
        let public = app::PUBLIC.iter().any(|(_, p)| p == path);
        assert!(guarded > 0 || public, "{path} takes no method at all");
    }
    // The public route is reached without a token: its own answer, not 401.
    let login = app
        .call(Method::POST, "/api/v1/auth/login", Some(json!({})), None)
        .await;
    login.expect_error(400, "bad_json");
    app.finish().await;
}

fn is_console_public(method: &Method, path: &str) -> bool {
    app::CONSOLE_PUBLIC
        .iter()
        .any(|(m, p)| m.as_str() == method.as_str() && *p == path)
}

/// The console's pages, as the router lists them, send a visitor without a
/// live session cookie to `/login` (a GET comes back to where it was),
/// whatever the method, unless `app::CONSOLE_PUBLIC` lists them; nothing of
/// theirs runs.
#[tokio::test]
async fn every_console_page_but_the_public_ones_sends_a_visitor_to_login() {
    let app = TestApp::spawn().await;
    let paths = app::paths();
    let console: Vec<&String> = paths
        .iter()
        .filter(|p| {
            !["/api/", "/agent/", "/health/"]
                .iter()
                .any(|prefix| p.starts_with(prefix))
        })
        // axum's own catch-all of a merged router is no route of ours.
        .filter(|p| !p.contains("__private__"))
        .collect();
    for known in [
        "/",
        "/login",
        "/logout",
        "/operator-accounts",
        "/assets/{file}",
    ] {
        assert!(
            console.iter().any(|p| *p == known),
            "{known} not in {console:?}"
        );
    }
    for (_, path) in app::CONSOLE_PUBLIC {
        assert!(paths.iter().any(|p| p == path), "public {path} is no route");
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in &console {
        let mut guarded = 0;
        for method in [Method::GET, Method::POST] {
            if is_console_public(&method, path) {
                continue;
            }
            for cookie in [None, Some("youmi_session=not-a-session-token")] {
                let mut request = client
                    .request(method.clone(), app.url(&concrete(path)))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("name=x&wecom_user_id=y");
                if let Some(cookie) = cookie {
                    request = request.header("cookie", cookie);
                }
                let answer = request.send().await.unwrap();
                match answer.status().as_u16() {
                    405 => {}
                    303 => {
                        let location = answer.headers()["location"].to_str().unwrap();
                        let back = concrete(path);
                        let expected = if method == Method::GET && back != "/" {
                            format!("/login?next={}", back.replace('?', "%3F"))
                        } else {
                            "/login".to_owned()
                        };
                        assert_eq!(location, expected, "{method} {path}");
                        guarded += 1;
                    }
                    other => panic!("{method} {path} answered {other} without a session"),
                }
            }
        }
        let public = app::CONSOLE_PUBLIC.iter().any(|(_, p)| p == *path);
        assert!(guarded > 0 || public, "{path} takes no method at all");
    }
    // Nothing the posts asked for happened.
    let accounts = app
        .call(
            Method::GET,
            "/api/v1/operator-accounts",
            None,
            Some(&app.token),
        )
        .await;
    assert_eq!(accounts.expect(200)["operator_accounts"], json!([]));
    app.finish().await;
}
