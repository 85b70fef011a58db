//! Integers out of their field's range are a 422 naming the field, on both
//! sides of the range and however far out (beyond `i64` too), on the single
//! and the batch route and in queries; a value that is not an integer stays a
//! 400. Property test: generated numbers against the real server.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::json;

use crate::common::{Answer, TestApp};

/// A JSON integer as text: small ones around the ranges, any `i64`, and ones
/// too long for any integer type.
fn integer_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (-3i64..=12).prop_map(|n| n.to_string()),
        (-3i64..=503).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "-?[1-9][0-9]{19,40}",
    ]
}

/// The number the text names, saturated to `i128`.
fn value_of(text: &str) -> i128 {
    text.parse::<i128>().unwrap_or(if text.starts_with('-') {
        i128::MIN
    } else {
        i128::MAX
    })
}

/// A POST of raw JSON text as the admin.
async fn post_text(app: &TestApp, path: &str, body: String) -> Answer {
    let response = app
        .client
        .request(Method::POST, app.url(path))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

fn task_text(account: &str, priority: &str) -> String {
    format!(
        r#"{{"operator_account_id": {account}, "kind": "send_message", "priority": {priority}, "payload": {{"to": {{"name": "Ann"}}, "items": [{{"type": "text", "text": "hi"}}]}}}}"#
    )
}

/// Checks one generated integer against every ranged field.
async fn check_integer(app: &TestApp, account: i64, text: &str) {
    let value = value_of(text);
    let account = account.to_string();

    // Priority, alone and as the second task of a batch.
    let single = post_text(app, "/api/v1/tasks", task_text(&account, text)).await;
    let batch = post_text(
        app,
        "/api/v1/tasks/batch",
        format!(
            r#"{{"tasks": [{}, {}]}}"#,
            task_text(&account, "1"),
            task_text(&account, text)
        ),
    )
    .await;
    if (0..=9).contains(&value) {
        single.expect(201);
        batch.expect(201);
    } else {
        single.expect_error(422, "invalid_priority");
        assert_eq!(single.field(), "priority");
        batch.expect_error(422, "invalid_priority");
        assert_eq!(batch.field(), "tasks[1].priority");
    }

    // The account id of a task.
    let named = post_text(app, "/api/v1/tasks", task_text(text, "1")).await;
    if value < 1 {
        named.expect_error(422, "invalid_id");
        assert_eq!(named.field(), "operator_account_id");
    } else if value.to_string() == account {
        named.expect(201);
    } else {
        named.expect_error(404, "operator_account_not_found");
    }

    // Page sizes and cursors of both lists.
    for list in ["/api/v1/tasks", "/api/v1/notifications"] {
        let page = app.get(&format!("{list}?limit={text}")).await;
        if (1..=500).contains(&value) {
            page.expect(200);
        } else {
            page.expect_error(422, "invalid_limit");
            assert_eq!(page.field(), "limit");
        }
        let page = app.get(&format!("{list}?cursor={text}")).await;
        if value >= 1 {
            page.expect(200);
        } else {
            page.expect_error(422, "invalid_cursor");
            assert_eq!(page.field(), "cursor");
        }
    }
    let filtered = app
        .get(&format!("/api/v1/tasks?operator_account_id={text}"))
        .await;
    if value >= 1 {
        filtered.expect(200);
    } else {
        filtered.expect_error(422, "invalid_id");
    }

    // Ids in bodies.
    let cancel = app
        .post(
            "/api/v1/tasks/cancel",
            json!({ "task_ids": [value_as_json(text)] }),
        )
        .await;
    let read = app
        .post(
            "/api/v1/notifications/read",
            json!({ "ids": [value_as_json(text)] }),
        )
        .await;
    if value < 1 {
        cancel.expect_error(422, "invalid_id");
        assert_eq!(cancel.field(), "task_ids[0]");
        read.expect_error(422, "invalid_id");
        assert_eq!(read.field(), "ids[0]");
    } else if value <= i128::from(i64::MAX) {
        assert_ne!(cancel.status.as_u16(), 422, "{}", cancel.body);
        assert_ne!(read.status.as_u16(), 422, "{}", read.body);
    }
}

/// The number as a JSON value, where it fits one `serde_json` keeps exact.
fn value_as_json(text: &str) -> serde_json::Value {
    match (text.parse::<i64>(), text.parse::<u64>()) {
        (Ok(n), _) => json!(n),
        (_, Ok(n)) => json!(n),
        _ => json!(if text.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        }),
    }
}

#[test]
fn integers_out_of_range_are_422_naming_the_field() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::spawn());
    let account = runtime.block_on(app.account("ranges"));
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&integer_text(), |text| {
        runtime.block_on(check_integer(&app, account, &text));
        Ok(())
    });
    // The edges themselves, whatever was generated.
    for text in [
        "-1",
        "0",
        "1",
        "9",
        "10",
        "255",
        "256",
        "500",
        "501",
        "-9223372036854775808",
    ] {
        runtime.block_on(check_integer(&app, account, text));
    }
    runtime.block_on(app.finish());
    result.unwrap();
}

#[tokio::test]
async fn values_that_are_not_integers_stay_400() {
    let app = TestApp::spawn().await;
    let account = app.account("not_numbers").await.to_string();
    for priority in ["5.5", "5.0", "\"5\"", "true", "[]", "{}"] {
        post_text(&app, "/api/v1/tasks", task_text(&account, priority))
            .await
            .expect_error(400, "bad_json");
    }
    post_text(&app, "/api/v1/tasks", task_text(&account, "null"))
        .await
        .expect(201);
    for query in [
        "limit=abc",
        "limit=5.5",
        "cursor=1e3",
        "limit=",
        "cursor=--1",
    ] {
        app.get(&format!("/api/v1/tasks?{query}"))
            .await
            .expect_error(400, "bad_query");
    }
    app.finish().await;
}
