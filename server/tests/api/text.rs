//! Text at the API edge: every text of a request that is stored or reaches a
//! query goes through one rule on both databases. Property test: generated
//! strings full of NUL and other odd characters against the real server. A
//! NUL is always a 422 `invalid_text` naming the field; other text is taken
//! (or refused by the field's own rules) and read back as it was sent; no
//! answer is ever a 500.

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{device_info, Answer, TestApp};

/// Characters that storage, SQL or a URL might treat specially.
fn odd_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => Just('\0'),
        1 => prop::sample::select(vec![
            '\u{1}', '\u{7f}', '\u{80}', '\u{FEFF}', '\u{FFFD}', '\u{FFFF}', '\u{10FFFF}',
            '\u{200B}', '\u{D7FF}', 'ß', 'İ', 'Σ', 'ς', '李', '\n', '\t', ' ', '\'', '"', '\\',
            '%', '_', '/', '?', '#', '&', '=', '+',
        ]),
        4 => any::<char>(),
        4 => prop::char::range('a', 'z'),
    ]
}

/// A string of up to 24 such characters.
fn odd_text() -> impl Strategy<Value = String> {
    prop::collection::vec(odd_char(), 0..24).prop_map(|chars| chars.into_iter().collect())
}

/// Asserts the answer: 422 `invalid_text` naming `field` when `text` holds a
/// NUL, else anything but that and never a 5xx.
#[track_caller]
fn judged(answer: &Answer, text: &str, field: &str) -> bool {
    assert!(
        answer.status.as_u16() < 500,
        "{field} = {text:?}: {}",
        answer.body
    );
    if text.contains('\0') {
        answer.expect_error(422, "invalid_text");
        assert_eq!(answer.field(), field, "{text:?}");
        false
    } else {
        assert_ne!(answer.code(), "invalid_text", "{field} = {text:?}");
        true
    }
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// Checks one generated text in every place the API takes text.
async fn check_text(app: &TestApp, account: i64, text: &str) {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let accounts = "/api/v1/operator-accounts";

    // Operator accounts: each field on create, then on update.
    for field in ["name", "wecom_user_id", "remark"] {
        let mut body = json!({"name": format!("n{n}"), "wecom_user_id": format!("w{n}{field}")});
        // A suffix keeps the WeCom user id unique across cases.
        let sent = if field == "wecom_user_id" {
            format!("{text}#{n}")
        } else {
            text.to_owned()
        };
        body[field] = json!(sent);
        let created = app.post(accounts, body).await;
        if judged(&created, &sent, field) && created.status.as_u16() == 201 {
            assert_eq!(created.body[field], sent.trim());
            let id = created.body["id"].as_i64().unwrap();
            let stored = app.get(&format!("{accounts}/{id}")).await;
            assert_eq!(stored.expect(200)[field], sent.trim(), "{sent:?}");
        }
        let updated = app
            .admin(
                Method::PATCH,
                &format!("{accounts}/{account}"),
                Some(json!({ field: sent })),
            )
            .await;
        if judged(&updated, &sent, field) && updated.status.as_u16() == 200 {
            let stored = app.get(&format!("{accounts}/{account}")).await;
            assert_eq!(stored.expect(200)[field], sent.trim(), "{sent:?}");
        }
    }

    // Login: job number and password (a wrong one, or a 422).
    for field in ["job_no", "password"] {
        let mut body = json!({"job_no": "admin", "password": "wrong"});
        body[field] = json!(text);
        let answer = app
            .call(Method::POST, "/api/v1/auth/login", Some(body), None)
            .await;
        if judged(&answer, text, field) {
            answer.expect_error(401, "invalid_credentials");
        }
    }

    // Bind: the code, and each device field with a good code.
    let answer = app
        .call(
            Method::POST,
            "/agent/v1/bind",
            Some(json!({"code": text, "device": device_info()})),
            None,
        )
        .await;
    if judged(&answer, text, "code") {
        answer.expect_error(404, "bind_code_invalid");
    }
    for field in ["serial", "model", "android_version", "agent_version"] {
        let code = app.bind_code(account).await.code;
        let mut device = serde_json::to_value(device_info()).unwrap();
        device[field] = json!(text);
        let answer = app
            .call(
                Method::POST,
                "/agent/v1/bind",
                Some(json!({"code": code, "device": device})),
                None,
            )
            .await;
        if judged(&answer, text, &format!("device.{field}")) {
            let device_id = answer.expect(200)["device_id"].as_str().unwrap().to_owned();
            let listed = app.get("/api/v1/devices").await;
            let listed: Vec<Value> = listed.expect(200)["devices"].as_array().unwrap().clone();
            let stored = listed
                .iter()
                .find(|d| d["device_id"] == device_id.as_str())
                .expect("the new device is listed");
            assert_eq!(stored["device"][field], text, "{field}");
        }
    }

    // A bind code in a path.
    let encoded: String = url_path_segment(text);
    let answer = app
        .get(&format!("{accounts}/{account}/bind-codes/{encoded}/qr.png"))
        .await;
    if judged(&answer, text, "code") {
        assert_eq!(answer.status.as_u16(), 404, "{text:?}: {}", answer.body);
    }

    // Device ids that reach a query or the scheduler.
    let cancel = app
        .post("/api/v1/tasks/cancel", json!({"device_ids": [text]}))
        .await;
    if judged(&cancel, text, "device_ids[0]") {
        assert!(
            matches!(cancel.status.as_u16(), 200 | 404),
            "{}",
            cancel.body
        );
    }
    let pause = app
        .post(
            "/api/v1/devices/pause",
            json!({"device_ids": ["dev_x", text]}),
        )
        .await;
    if judged(&pause, text, "device_ids[1]") {
        assert!(matches!(pause.status.as_u16(), 400 | 404), "{}", pause.body);
    }
}

/// `text` percent-encoded as one path segment.
fn url_path_segment(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[test]
fn text_with_nul_is_422_and_other_text_is_stored_as_sent() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::spawn_with(|config| {
        // Wrong logins and bind codes are part of every case.
        config.failed_attempts_per_minute = 1_000_000;
    }));
    let account = runtime.block_on(app.account("texts"));
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&odd_text(), |text| {
        runtime.block_on(check_text(&app, account, &text));
        Ok(())
    });
    for text in ["\0", "a\0", "\0b", " \0 ", "", " ", "ß", "\u{10FFFF}"] {
        runtime.block_on(check_text(&app, account, text));
    }
    runtime.block_on(app.finish());
    result.unwrap();
}
