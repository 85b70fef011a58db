//! Login, sessions, the first admin and the login rate limit.

use reqwest::Method;
use serde_json::json;

use crate::common::{TestApp, ADMIN_PASSWORD};

#[tokio::test]
async fn the_first_admin_logs_in_and_out() {
    let app = TestApp::spawn().await;
    let me = app.get("/api/v1/auth/me").await;
    let me = me.expect(200);
    assert_eq!(me["job_no"], "admin");
    assert_eq!(me["name"], "Administrator");
    assert_eq!(me["is_admin"], true);

    let login = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"job_no": "admin", "password": ADMIN_PASSWORD})),
            None,
        )
        .await;
    let body = login.expect(200);
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(body["expires_at_ms"].as_i64().unwrap() > 0);
    assert_eq!(body["employee"]["job_no"], "admin");

    let logout = app
        .call(Method::POST, "/api/v1/auth/logout", None, Some(&token))
        .await;
    assert_eq!(logout.status.as_u16(), 204);
    app.call(Method::GET, "/api/v1/auth/me", None, Some(&token))
        .await
        .expect_error(401, "unauthorized");
    // The other session is untouched.
    app.get("/api/v1/auth/me").await.expect(200);

    // The harness's second client of the same employee: a session of its own.
    let second = app.login_as("admin", ADMIN_PASSWORD).await;
    assert_ne!(second.token, app.token);
    second
        .call(Method::POST, "/api/v1/auth/logout", None)
        .await
        .expect(204);
    second
        .call(Method::GET, "/api/v1/auth/me", None)
        .await
        .expect_error(401, "unauthorized");
    app.get("/api/v1/auth/me").await.expect(200);
    app.finish().await;
}

#[tokio::test]
async fn wrong_passwords_and_unknown_job_numbers_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let wrong = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"job_no": "admin", "password": "nope"})),
            None,
        )
        .await;
    wrong.expect_error(401, "invalid_credentials");
    let unknown = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"job_no": "nobody", "password": "nope"})),
            None,
        )
        .await;
    unknown.expect_error(401, "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
    app.finish().await;
}

#[tokio::test]
async fn routes_need_a_valid_session() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/operator-accounts",
        "/api/v1/tasks",
        "/api/v1/devices",
        "/api/v1/auth/me",
    ] {
        let answer = app.call(Method::GET, path, None, None).await;
        answer.expect_error(401, "unauthorized");
        let answer = app.call(Method::GET, path, None, Some("made-up")).await;
        answer.expect_error(401, "unauthorized");
    }
    let answer = app
        .call(Method::POST, "/api/v1/tasks", Some(json!({})), None)
        .await;
    answer.expect_error(401, "unauthorized");
    app.finish().await;
}

#[tokio::test]
async fn bad_bodies_and_unknown_routes_get_json_errors() {
    let app = TestApp::spawn().await;
    let answer = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"job_no": "admin"})),
            None,
        )
        .await;
    answer.expect_error(400, "bad_json");
    assert!(answer.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("password"));
    app.get("/api/v1/nothing-here")
        .await
        .expect_error(404, "route_not_found");
    app.finish().await;
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_address() {
    let app = TestApp::spawn_with(|config| config.failed_attempts_per_minute = 3).await;
    for _ in 0..3 {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"job_no": "admin", "password": "wrong"})),
            None,
        )
        .await
        .expect_error(401, "invalid_credentials");
    }
    // Even the right password waits now.
    let limited = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"job_no": "admin", "password": ADMIN_PASSWORD})),
            None,
        )
        .await;
    limited.expect_error(429, "too_many_attempts");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    app.finish().await;
}

#[tokio::test]
async fn a_random_admin_password_is_made_when_none_is_configured() {
    let db = crate::common::TestDb::create().await;
    let mut config = crate::common::config(&db);
    config.admin_password = None;
    let server = youmi_server::Server::start(config).await.unwrap();
    let http = reqwest::Client::new();
    // The configured test password does not work: a random one was made.
    let answer = http
        .post(format!("http://{}/api/v1/auth/login", server.local_addr()))
        .json(&json!({"job_no": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    server.shutdown().await.unwrap();
    // A second start on the same database creates no second admin and keeps
    // the first one's password.
    let mut config = crate::common::config(&db);
    config.admin_password = Some("another".into());
    let server = youmi_server::Server::start(config).await.unwrap();
    let answer = http
        .post(format!("http://{}/api/v1/auth/login", server.local_addr()))
        .json(&json!({"job_no": "admin", "password": "another"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    server.shutdown().await.unwrap();
    db.remove().await;
}

#[tokio::test]
async fn bodies_over_two_mebibytes_are_refused() {
    let app = TestApp::spawn().await;
    let remark = "x".repeat(3 * 1024 * 1024);
    let answer = app
        .post(
            "/api/v1/operator-accounts",
            json!({"name": "big", "wecom_user_id": "wx_big", "remark": remark}),
        )
        .await;
    answer.expect_error(413, "body_too_large");
    app.finish().await;
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/auth/me").await.expect(200);
    // Age every session past its expiry, as if the TTL had run out.
    let db = youmi_server::db::Db::open(app.db().url())
        .await
        .expect("open the server's database");
    sqlx::query("UPDATE sessions SET expires_at_ms = $1")
        .bind(youmi_server::db::now_ms() - 1)
        .execute(&db.write)
        .await
        .expect("age the sessions");
    db.close().await;
    app.get("/api/v1/auth/me")
        .await
        .expect_error(401, "unauthorized");
    app.finish().await;
}
