//! Binding phones: bind codes are single-use, expire, and are refused with a
//! clear error; the QR image renders; repeated failures are rate-limited.

use std::time::Duration;

use reqwest::StatusCode;
use youmi_protocol::api::ErrorBody;
use youmi_protocol::DeviceInfo;
use youmi_tests::{expect_error, expect_json, now_ms, TestApp};

/// The characters a bind code may use: no 0/O, 1/I/L that read alike.
fn is_unambiguous(c: char) -> bool {
    c.is_ascii_alphanumeric() && !"0O1IlL".contains(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_code_works_once() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let code = app.bind_code(account.id).await;

    assert!(code.code.len() >= 8, "bind code too short: {}", code.code);
    assert!(
        code.code.chars().all(is_unambiguous),
        "bind code uses ambiguous characters: {}",
        code.code
    );
    let ttl = code.expires_at - now_ms();
    assert!(
        (9 * 60_000..=10 * 60_000 + 5_000).contains(&ttl),
        "a bind code lives about 10 minutes, this one {ttl} ms"
    );

    let device = DeviceInfo {
        serial: "bind-test".to_owned(),
        model: "Pixel Test".to_owned(),
        android_version: "14".to_owned(),
        agent_version: "e2e".to_owned(),
    };
    let credentials = youmi_agent::bind(&app.url(), &code.code, device.clone())
        .await
        .expect("the first bind with a fresh code works");
    assert_eq!(credentials.operator_account_id, account.id);
    assert!(!credentials.device_id.is_empty());
    assert!(credentials.token.len() >= 20, "device token too short");

    // The same code a second time: refused, through the agent library and raw.
    match youmi_agent::bind(&app.url(), &code.code, device).await {
        Err(youmi_agent::AgentError::Server { status, code, .. }) => {
            assert_eq!(status, 404);
            assert_eq!(code, "bind_code_invalid");
        }
        other => panic!("a used bind code must be refused, got {other:?}"),
    }
    expect_error(
        app.bind_request(&code.code).await,
        StatusCode::NOT_FOUND,
        "bind_code_invalid",
    )
    .await;

    // The account now has exactly that phone, and the device list shows it.
    assert_eq!(
        app.account(account.id).await.device_id.as_deref(),
        Some(credentials.device_id.as_str())
    );
    let devices = app.devices().await;
    assert_eq!(devices.len(), 1, "one bind, one device: {devices:?}");
    assert_eq!(devices[0].device_id, credentials.device_id);
    assert_eq!(devices[0].operator_account_id, account.id);
    assert_eq!(devices[0].device.model, "Pixel Test");
    assert!(!devices[0].online, "bound but never connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_expired_codes_are_refused() {
    let app = TestApp::spawn_with(|config| config.bind_code_ttl_secs = 1).await;
    let account = app.create_account().await;
    let expiring = app.bind_code(account.id).await;

    for unknown in ["ABCDEFGHJK", "", "not a code at all"] {
        let response = app.bind_request(unknown).await;
        assert!(
            response.status().is_client_error(),
            "code {unknown:?} answered {}",
            response.status()
        );
        let body: ErrorBody = response.json().await.expect("error body");
        assert!(!body.error.message.is_empty());
    }
    expect_error(
        app.bind_request("ABCDEFGHJK").await,
        StatusCode::NOT_FOUND,
        "bind_code_invalid",
    )
    .await;

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    expect_error(
        app.bind_request(&expiring.code).await,
        StatusCode::NOT_FOUND,
        "bind_code_invalid",
    )
    .await;

    // Nothing was bound.
    assert!(app.devices().await.is_empty());
    assert_eq!(app.account(account.id).await.device_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_binds_are_rate_limited() {
    let app = TestApp::spawn_with(|config| config.failed_attempts_per_minute = 3).await;
    for attempt in 0..3 {
        expect_error(
            app.bind_request(&format!("WRONGCODE{attempt}")).await,
            StatusCode::NOT_FOUND,
            "bind_code_invalid",
        )
        .await;
    }
    let response = app.bind_request("WRONGCODE9").await;
    assert!(
        response
            .headers()
            .contains_key(reqwest::header::RETRY_AFTER),
        "a 429 says when to retry: {:?}",
        response.headers()
    );
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    assert!(app.devices().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bind_code_renders_as_a_qr_png() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let code = app.bind_code(account.id).await;

    let response = app
        .get(&format!(
            "/api/v1/operator-accounts/{}/bind-codes/{}/qr.png",
            account.id, code.code
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "image/png");
    let bytes = response.bytes().await.expect("png bytes");
    let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .expect("the QR answer decodes as a PNG");
    assert!(image.width() >= 21, "a QR code is at least 21 modules wide");
    assert_eq!(image.width(), image.height(), "a QR code is square");

    // Rendering does not use the code up.
    let bound: youmi_protocol::BindResponse =
        expect_json(app.bind_request(&code.code).await, StatusCode::OK).await;
    assert_eq!(bound.operator_account_id, account.id);

    // An unknown code has no image.
    let response = app
        .get(&format!(
            "/api/v1/operator-accounts/{}/bind-codes/ABCDEFGHJK/qr.png",
            account.id
        ))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: ErrorBody = response.json().await.expect("error body");
    assert!(!body.error.code.is_empty());
}
