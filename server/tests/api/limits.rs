//! The failed-attempt limits of login and bind hold however requests race:
//! many wrong guesses sent at once get exactly `limit` answers, and every
//! other one is a 429 with `Retry-After`.

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{device_info, Answer, TestApp};

/// How many guesses go out at once.
const PARALLEL: usize = 50;

/// Sends `PARALLEL` copies of `body` to `path` at once; returns the answers
/// that were not 429, after checking that every 429 says when to come back.
async fn burst(app: &TestApp, path: &str, body: Value) -> Vec<Answer> {
    let answers =
        join_all((0..PARALLEL).map(|_| app.call(Method::POST, path, Some(body.clone()), None)))
            .await;
    let mut checked = Vec::new();
    for answer in answers {
        if answer.status.as_u16() == 429 {
            answer.expect_error(429, "too_many_attempts");
            let retry: u64 = answer.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "retry-after {retry}");
        } else {
            checked.push(answer);
        }
    }
    checked
}

#[tokio::test]
async fn parallel_wrong_logins_are_checked_exactly_limit_times() {
    for limit in [1, 4, 10] {
        let app = TestApp::spawn_with(|config| config.failed_attempts_per_minute = limit).await;
        let checked = burst(
            &app,
            "/api/v1/auth/login",
            json!({"job_no": "admin", "password": "wrong"}),
        )
        .await;
        assert_eq!(checked.len(), limit as usize, "limit {limit}");
        for answer in &checked {
            answer.expect_error(401, "invalid_credentials");
        }
        // The window is full: the right password waits too.
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"job_no": "admin", "password": crate::common::ADMIN_PASSWORD})),
            None,
        )
        .await
        .expect_error(429, "too_many_attempts");
        app.finish().await;
    }
}

#[tokio::test]
async fn parallel_wrong_binds_are_checked_exactly_limit_times() {
    for limit in [1, 4, 10] {
        let app = TestApp::spawn_with(|config| config.failed_attempts_per_minute = limit).await;
        let account = app.account("guessed").await;
        let good = app.bind_code(account).await.code;
        let checked = burst(
            &app,
            "/agent/v1/bind",
            json!({"code": "WRONGCODE1", "device": device_info()}),
        )
        .await;
        assert_eq!(checked.len(), limit as usize, "limit {limit}");
        for answer in &checked {
            answer.expect_error(404, "bind_code_invalid");
        }
        app.call(
            Method::POST,
            "/agent/v1/bind",
            Some(json!({"code": good, "device": device_info()})),
            None,
        )
        .await
        .expect_error(429, "too_many_attempts");
        app.finish().await;
    }
}

#[tokio::test]
async fn successful_logins_in_parallel_use_up_nothing() {
    let app = TestApp::spawn_with(|config| config.failed_attempts_per_minute = 2).await;
    // Each right login holds a slot only while it runs, so with a limit of 2
    // some of a burst may wait, but none counts as a failure afterwards.
    burst(
        &app,
        "/api/v1/auth/login",
        json!({"job_no": "admin", "password": crate::common::ADMIN_PASSWORD}),
    )
    .await
    .iter()
    .for_each(|answer| {
        answer.expect(200);
    });
    for _ in 0..2 {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"job_no": "admin", "password": "wrong"})),
            None,
        )
        .await
        .expect_error(401, "invalid_credentials");
    }
    app.finish().await;
}
