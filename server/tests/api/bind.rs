//! Bind codes, their QR image, binding a phone and its rate limit.

use reqwest::Method;
use serde_json::json;

use crate::common::{device_info, TestApp};

const ALPHABET: &str = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";

#[tokio::test]
async fn a_code_binds_one_phone_once() {
    let app = TestApp::spawn().await;
    let account = app.account("bind").await;
    let created = app
        .post(
            &format!("/api/v1/operator-accounts/{account}/bind-codes"),
            json!({}),
        )
        .await;
    let body = created.expect(201).clone();
    let code = body["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 10);
    assert!(code.chars().all(|c| ALPHABET.contains(c)), "{code}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let expires_at = body["expires_at"].as_i64().unwrap();
    assert!((now + 590_000..=now + 610_000).contains(&expires_at));

    let qr = app
        .client
        .get(app.url(&format!(
            "/api/v1/operator-accounts/{account}/bind-codes/{code}/qr.png"
        )))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(qr.status().as_u16(), 200);
    assert_eq!(qr.headers()["content-type"], "image/png");
    let png = qr.bytes().await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // Codes are case-insensitive for the phone.
    let bound = app
        .call(
            Method::POST,
            "/agent/v1/bind",
            Some(json!({"code": code.to_lowercase(), "device": device_info()})),
            None,
        )
        .await;
    let bound = bound.expect(200).clone();
    let device_id = bound["device_id"].as_str().unwrap();
    assert!(device_id.starts_with("dev_") && device_id.len() == 20);
    assert_eq!(bound["operator_account_id"], account);
    assert!(bound["token"].as_str().unwrap().len() >= 43);

    let again = app
        .call(
            Method::POST,
            "/agent/v1/bind",
            Some(json!({"code": code, "device": device_info()})),
            None,
        )
        .await;
    again.expect_error(404, "bind_code_invalid");
    assert_eq!(
        again.body["error"]["message"],
        "unknown, used or expired bind code"
    );
    app.get(&format!(
        "/api/v1/operator-accounts/{account}/bind-codes/{code}/qr.png"
    ))
    .await
    .expect_error(404, "bind_code_not_found");

    let shown = app
        .get(&format!("/api/v1/operator-accounts/{account}"))
        .await;
    assert_eq!(shown.expect(200)["device_id"], device_id);
    app.finish().await;
}

#[tokio::test]
async fn codes_for_unknown_or_disabled_accounts_are_refused() {
    let app = TestApp::spawn().await;
    app.post("/api/v1/operator-accounts/424242/bind-codes", json!({}))
        .await
        .expect_error(404, "operator_account_not_found");
    let account = app.account("disabled").await;
    let code = app.bind_code(account).await.code;
    app.post(
        &format!("/api/v1/operator-accounts/{account}/disable"),
        json!({}),
    )
    .await
    .expect(200);
    app.post(
        &format!("/api/v1/operator-accounts/{account}/bind-codes"),
        json!({}),
    )
    .await
    .expect_error(422, "operator_account_disabled");
    let refused = app
        .call(
            Method::POST,
            "/agent/v1/bind",
            Some(json!({"code": code, "device": device_info()})),
            None,
        )
        .await;
    refused.expect_error(422, "operator_account_disabled");
    // The code was not used up: it works once the account is enabled again.
    app.post(
        &format!("/api/v1/operator-accounts/{account}/enable"),
        json!({}),
    )
    .await
    .expect(200);
    app.call(
        Method::POST,
        "/agent/v1/bind",
        Some(json!({"code": code, "device": device_info()})),
        None,
    )
    .await
    .expect(200);
    app.finish().await;
}

#[tokio::test]
async fn expired_codes_do_not_bind() {
    let app = TestApp::spawn_with(|config| config.bind_code_ttl_secs = 0).await;
    let account = app.account("expired").await;
    let code = app.bind_code(account).await.code;
    app.call(
        Method::POST,
        "/agent/v1/bind",
        Some(json!({"code": code, "device": device_info()})),
        None,
    )
    .await
    .expect_error(404, "bind_code_invalid");
    app.finish().await;
}

#[tokio::test]
async fn failed_binds_are_rate_limited() {
    let app = TestApp::spawn_with(|config| config.failed_attempts_per_minute = 3).await;
    let account = app.account("limited").await;
    let good = app.bind_code(account).await.code;
    for guess in ["AAAAAAAAAA", "BBBBBBBBBB", ""] {
        app.call(
            Method::POST,
            "/agent/v1/bind",
            Some(json!({"code": guess, "device": device_info()})),
            None,
        )
        .await
        .expect_error(404, "bind_code_invalid");
    }
    let limited = app
        .call(
            Method::POST,
            "/agent/v1/bind",
            Some(json!({"code": good, "device": device_info()})),
            None,
        )
        .await;
    limited.expect_error(429, "too_many_attempts");
    assert!(limited.headers.contains_key("retry-after"));
    app.finish().await;
}

#[tokio::test]
async fn bad_bind_bodies_are_400() {
    let app = TestApp::spawn().await;
    app.call(
        Method::POST,
        "/agent/v1/bind",
        Some(json!({"device": device_info()})),
        None,
    )
    .await
    .expect_error(400, "bad_json");
    let long = app
        .call(
            Method::POST,
            "/agent/v1/bind",
            Some(json!({"code": "ABCDEFGHJK", "device": {"serial": "x".repeat(200)}})),
            None,
        )
        .await;
    long.expect_error(400, "bad_device_info");
    assert_eq!(long.field(), "device.serial");
    app.finish().await;
}

#[tokio::test]
async fn rebinding_revokes_the_old_phone_and_keeps_its_settings_and_pause() {
    let app = TestApp::spawn().await;
    let account = app.account("swap").await;
    let (old_device, old_token) = app.bind(account).await;
    app.admin(
        Method::PUT,
        "/api/v1/devices/settings",
        Some(json!({"device_ids": [old_device], "settings": {"countdown_popup": true}})),
    )
    .await
    .expect(200);
    app.post("/api/v1/devices/pause", json!({"device_ids": [old_device]}))
        .await
        .expect(200);

    let (new_device, new_token) = app.bind(account).await;
    assert_ne!(old_device, new_device);
    match app.ws(&old_token).await {
        Err(youmi_tests::ConnectError::Http { status, .. }) => assert_eq!(status, 401),
        Ok(_) => panic!("a revoked token connected"),
        Err(other) => panic!("expected 401, got {other:?}"),
    }
    app.ws(&new_token).await.expect("the new phone connects");

    let devices = app.get("/api/v1/devices").await;
    let devices = devices.expect(200)["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(devices[0]["device_id"], new_device);
    assert_eq!(devices[0]["queue_paused"], true);
    assert_eq!(devices[0]["settings"]["countdown_popup"], true);
    app.finish().await;
}

#[tokio::test]
async fn concurrent_binds_of_one_account_leave_one_phone() {
    let app = TestApp::spawn_with(|config| config.failed_attempts_per_minute = 100).await;
    let account = app.account("race").await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(app.bind_code(account).await.code);
    }
    let binds = codes.into_iter().map(|code| {
        let http = app.client.clone();
        let url = app.url("/agent/v1/bind");
        async move {
            http.post(url)
                .json(&json!({"code": code, "device": device_info()}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(binds).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let devices = app.get("/api/v1/devices").await;
    let devices = devices.expect(200)["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 1, "{devices:?}");
    let shown = app
        .get(&format!("/api/v1/operator-accounts/{account}"))
        .await;
    assert_eq!(shown.expect(200)["device_id"], devices[0]["device_id"]);
    app.finish().await;
}
