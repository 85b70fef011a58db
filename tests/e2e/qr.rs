//! Binding by QR: an admin creates a bind code, downloads its QR image from the
//! server, and `youmi-agent bind --qr FILE` binds the phone with it; the QR
//! code works once, like the code it holds.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;
use youmi_agent::credentials::Credentials;
use youmi_tests::TestApp;

use crate::AGENT_EXE;

/// Downloads the QR image of `code` as the admin and writes it to `path`.
async fn download_qr(app: &TestApp, account: i64, code: &str, path: &Path) {
    let response = app
        .get(&format!(
            "/api/v1/operator-accounts/{account}/bind-codes/{code}/qr.png"
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK, "the qr image is served");
    let bytes = response.bytes().await.expect("qr image bytes");
    std::fs::write(path, &bytes).expect("save the qr image");
}

/// Runs `youmi-agent bind --qr image --state-dir state_dir` to completion.
fn bind_with_qr(image: &Path, state_dir: &Path) -> Output {
    let mut command = Command::new(AGENT_EXE);
    command
        .args(["bind", "--serial", "qr-phone", "--qr"])
        .arg(image)
        .arg("--state-dir")
        .arg(state_dir)
        .stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("YOUMI_") {
            command.env_remove(key);
        }
    }
    command.output().expect("run youmi-agent bind --qr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_binds_from_the_servers_qr_image() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let code = app.bind_code(account.id).await;
    let image = app.db().dir().join("bind-qr.png");
    download_qr(&app, account.id, &code.code, &image).await;

    let state_dir = app.db().dir().join("qr-agent");
    let output = bind_with_qr(&image, &state_dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "youmi-agent bind --qr failed: {stderr}"
    );
    let credentials = Credentials::load(&state_dir).expect("bind saved the credentials");
    assert_eq!(credentials.operator_account_id, account.id);
    // The server address came from the picture: the server's public URL.
    assert_eq!(credentials.server_url, app.url());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&credentials.device_id),
        "bind prints the device id: {stdout}"
    );

    let devices = app.devices().await;
    assert_eq!(devices.len(), 1, "one bind, one device: {devices:?}");
    assert_eq!(devices[0].device_id, credentials.device_id);
    assert_eq!(devices[0].operator_account_id, account.id);
    assert_eq!(devices[0].device.serial, "qr-phone");

    // The picture holds a one-time code: a second phone cannot use it.
    let output = bind_with_qr(&image, &app.db().dir().join("second-agent"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a used qr code must be refused");
    assert!(stderr.contains("bind_code_invalid"), "the reason: {stderr}");
    assert_eq!(app.devices().await.len(), 1, "no second device");
}
