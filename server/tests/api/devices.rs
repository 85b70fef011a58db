//! The device API: list, pause, resume, settings.

use reqwest::Method;
use serde_json::json;
use youmi_protocol::ServerMessage;

use crate::common::{device_info, TestApp};

#[tokio::test]
async fn devices_are_listed_paused_resumed_and_configured() {
    let app = TestApp::spawn().await;
    let account = app.account("phone").await;
    let (device_id, mut agent) = app.connected_agent(account).await;

    let list = app.get("/api/v1/devices").await;
    let devices = list.expect(200)["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 1);
    let device = &devices[0];
    assert_eq!(device["device_id"], device_id.as_str());
    assert_eq!(device["operator_account_id"], account);
    assert_eq!(device["online"], true);
    assert_eq!(device["queue_paused"], false);
    assert_eq!(device["device"]["model"], device_info().model.as_str());
    assert_eq!(device["settings"]["open_on_boot"], true);
    assert_eq!(device["queued_tasks"], 0);

    app.post("/api/v1/devices/pause", json!({}))
        .await
        .expect_error(400, "empty_selection");
    app.post(
        "/api/v1/devices/pause",
        json!({"device_ids": ["dev_x"], "all": true}),
    )
    .await
    .expect_error(400, "ambiguous_selection");
    let unknown = app
        .post(
            "/api/v1/devices/pause",
            json!({"device_ids": ["dev_missing"]}),
        )
        .await;
    unknown.expect_error(404, "device_not_found");
    assert!(unknown.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("dev_missing"));

    let paused = app
        .post("/api/v1/devices/pause", json!({"device_ids": [device_id]}))
        .await;
    assert_eq!(paused.expect(200)["affected"], 1);
    match agent.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Queue { paused, .. } => assert!(paused),
        other => panic!("expected queue, got {other:?}"),
    }
    let list = app.get("/api/v1/devices").await;
    let device = list.expect(200)["devices"][0].clone();
    assert_eq!(device["queue_paused"], true);
    assert_eq!(device["pause_reason"], "admin");

    let resumed = app
        .post("/api/v1/devices/resume", json!({"all": true}))
        .await;
    assert_eq!(resumed.expect(200)["affected"], 1);
    match agent.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Queue { paused, .. } => assert!(!paused),
        other => panic!("expected queue, got {other:?}"),
    }

    app.admin(
        Method::PUT,
        "/api/v1/devices/settings",
        Some(json!({"all": true, "settings": {}})),
    )
    .await
    .expect_error(400, "empty_patch");
    app.admin(
        Method::PUT,
        "/api/v1/devices/settings",
        Some(json!({"all": true, "settings": {"auto_resume_after_min": 7}})),
    )
    .await
    .expect_error(400, "bad_json");
    app.admin(
        Method::PUT,
        "/api/v1/devices/settings",
        Some(json!({"all": true, "settings": {"volume": 3}})),
    )
    .await
    .expect_error(400, "bad_json");
    let set = app
        .admin(
            Method::PUT,
            "/api/v1/devices/settings",
            Some(json!({"device_ids": [device_id], "settings": {"auto_resume_after_min": 5}})),
        )
        .await;
    assert_eq!(set.expect(200)["affected"], 1);
    match agent.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Settings { settings } => {
            assert_eq!(settings.auto_resume_after_min.minutes(), 5)
        }
        other => panic!("expected settings, got {other:?}"),
    }
    let list = app.get("/api/v1/devices").await;
    assert_eq!(
        list.expect(200)["devices"][0]["settings"]["auto_resume_after_min"],
        5
    );
    app.finish().await;
}
