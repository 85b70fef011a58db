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

#[tokio::test]
async fn actions_answer_what_they_came_to_on_each_device() {
    let app = TestApp::spawn().await;
    let online_account = app.account("online").await;
    let offline_account = app.account("offline").await;
    let (online, mut agent) = app.connected_agent(online_account).await;
    let (offline, _token) = app.bind(offline_account).await;
    let outcomes = |answer: &serde_json::Value| -> Vec<(String, String, Option<String>)> {
        let mut outcomes: Vec<_> = answer["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["device_id"].as_str().unwrap().to_owned(),
                    d["outcome"].as_str().unwrap().to_owned(),
                    d["reason"].as_str().map(str::to_owned),
                )
            })
            .collect();
        outcomes.sort();
        outcomes
    };
    let expect = |rows: &[(&str, &str, Option<&str>)]| {
        let mut rows: Vec<_> = rows
            .iter()
            .map(|(id, outcome, reason)| {
                (
                    (*id).to_owned(),
                    (*outcome).to_owned(),
                    reason.map(str::to_owned),
                )
            })
            .collect();
        rows.sort();
        rows
    };

    // Online: done; offline: stored for later.
    let paused = app
        .post("/api/v1/devices/pause", json!({"all": true}))
        .await;
    let paused = paused.expect(200);
    assert_eq!(paused["affected"], 2);
    assert_eq!(
        outcomes(paused),
        expect(&[(&online, "done", None), (&offline, "offline", None)])
    );
    agent.recv(crate::common::FRAME_WAIT).await;
    // Paused already: unchanged, and why.
    let again = app
        .post("/api/v1/devices/pause", json!({"device_ids": [online]}))
        .await;
    assert_eq!(
        outcomes(again.expect(200)),
        expect(&[(&online, "unchanged", Some("already_paused"))])
    );
    // An unknown id among known ones changes nothing.
    app.post(
        "/api/v1/devices/resume",
        json!({"device_ids": [online, "dev_missing"]}),
    )
    .await
    .expect_error(404, "device_not_found");
    let list = app.get("/api/v1/devices").await;
    assert!(list.expect(200)["devices"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["queue_paused"] == true));
    let same = app
        .admin(
            Method::PUT,
            "/api/v1/devices/settings",
            Some(json!({"device_ids": [online], "settings": {"open_on_boot": true}})),
        )
        .await;
    assert_eq!(
        outcomes(same.expect(200)),
        expect(&[(&online, "unchanged", Some("same_settings"))])
    );

    // Cancel by device and kind answers each device's counts.
    for (account, kind) in [
        (online_account, "mass_send"),
        (online_account, "mass_send"),
        (online_account, "send_message"),
        (offline_account, "mass_send"),
    ] {
        let payload = match kind {
            "mass_send" => {
                json!({"recipients": [{"name": "a"}], "items": [{"type": "text", "text": "hi"}]})
            }
            _ => json!({"to": {"name": "a"}, "items": [{"type": "text", "text": "hi"}]}),
        };
        app.post(
            "/api/v1/tasks",
            json!({"operator_account_id": account, "kind": kind, "payload": payload}),
        )
        .await
        .expect(201);
    }
    let cancelled = app
        .post(
            "/api/v1/tasks/cancel",
            json!({"device_ids": [online, offline], "kinds": ["mass_send"]}),
        )
        .await;
    let cancelled = cancelled.expect(200);
    assert_eq!(cancelled["cancelled"], 3);
    let mut devices: Vec<(String, u64)> = cancelled["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["cancelling"], 0);
            (
                d["device_id"].as_str().unwrap().to_owned(),
                d["cancelled"].as_u64().unwrap(),
            )
        })
        .collect();
    devices.sort();
    let mut want = vec![(online.clone(), 2), (offline.clone(), 1)];
    want.sort();
    assert_eq!(devices, want);
    // Without a device filter the answer has no per-device part.
    let by_kind = app
        .post("/api/v1/tasks/cancel", json!({"kinds": ["send_message"]}))
        .await;
    let by_kind = by_kind.expect(200);
    assert_eq!(by_kind["cancelled"], 1);
    assert!(by_kind.get("devices").is_none());
    app.finish().await;
}

#[tokio::test]
async fn what_heartbeats_report_is_listed_and_kept_after_a_restart() {
    let app = TestApp::spawn().await;
    let account = app.account("reports").await;
    let (device_id, mut agent) = app.connected_agent(account).await;
    let listed = |answer: &serde_json::Value| answer["devices"][0].clone();
    let device = listed(app.get("/api/v1/devices").await.expect(200));
    assert!(device.get("wecom_version").is_none(), "{device}");
    assert!(device.get("dnd").is_none(), "{device}");
    agent
        .send(&youmi_protocol::AgentMessage::Heartbeat {
            battery: Some(77),
            charging: None,
            screen_on: Some(true),
            foreground_app: None,
            call: None,
            wecom_version: Some("4.1.22".into()),
            dnd: Some(false),
        })
        .await;
    let device = youmi_tests::eventually(
        "the heartbeat's report in the list",
        crate::common::FRAME_WAIT,
        || async {
            let device = listed(app.get("/api/v1/devices").await.expect(200));
            (device["wecom_version"] == "4.1.22").then_some(device)
        },
    )
    .await;
    assert_eq!(device["device_id"], device_id.as_str());
    assert_eq!(
        (
            &device["wecom_version"],
            &device["screen_on"],
            &device["dnd"]
        ),
        (&json!("4.1.22"), &json!(true), &json!(false))
    );
    // Stored with the device: a restarted server still shows them.
    drop(agent);
    let db = app.stop().await;
    let config = crate::common::config(&db);
    let app = TestApp::start(db, config).await;
    let device = listed(app.get("/api/v1/devices").await.expect(200));
    assert_eq!(device["online"], false);
    assert_eq!(
        (
            &device["wecom_version"],
            &device["screen_on"],
            &device["dnd"]
        ),
        (&json!("4.1.22"), &json!(true), &json!(false))
    );
    app.finish().await;
}
