//! Risk control: a `risk_control` failure pauses the account's queue with no
//! auto-resume, is never retried, and leaves a notification for the admins.

use reqwest::Method;
use serde_json::json;
use youmi_protocol::{AgentMessage, FinishedReport, Outcome, ServerMessage, TaskError};

use crate::common::TestApp;

async fn submit(app: &TestApp, account: i64, text: &str) -> i64 {
    let submitted = app
        .post(
            "/api/v1/tasks",
            json!({
                "operator_account_id": account,
                "kind": "send_message",
                "payload": {"to": {"name": "Ann"}, "items": [{"type": "text", "text": text}]}
            }),
        )
        .await;
    submitted.expect(201)["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_risk_control_failure_pauses_the_queue_until_resumed_by_hand() {
    let app = TestApp::spawn().await;
    let account = app.account("warned").await;
    let (device_id, mut agent) = app.connected_agent(account).await;
    // Auto-resume is on; a risk-control pause must ignore it.
    app.admin(
        Method::PUT,
        "/api/v1/devices/settings",
        Some(json!({"all": true, "settings": {"auto_resume_after_min": 1}})),
    )
    .await
    .expect(200);
    assert!(matches!(
        agent.recv(crate::common::FRAME_WAIT).await,
        ServerMessage::Settings { .. }
    ));

    let first = submit(&app, account, "one").await;
    let second = submit(&app, account, "two").await;
    match agent.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Assign { task } => assert_eq!(task.id, first),
        other => panic!("expected assign, got {other:?}"),
    }
    agent.send(&AgentMessage::Accepted { task_id: first }).await;
    agent
        .send(&AgentMessage::Finished(FinishedReport {
            task_id: first,
            outcome: Outcome::Failed,
            // Even a failure the agent calls retryable is not retried.
            error: Some(TaskError {
                code: "risk_control".into(),
                message: "账号存在异常".into(),
                retryable: true,
            }),
            result: Some(json!({"step": "send_message[4] tap"})),
        }))
        .await;
    let mut acked = false;
    let mut paused = false;
    while !(acked && paused) {
        match agent.recv(crate::common::FRAME_WAIT).await {
            ServerMessage::Ack { task_id } => {
                assert_eq!(task_id, first);
                acked = true;
            }
            ServerMessage::Queue {
                paused: true,
                resume_at_ms,
            } => {
                assert_eq!(resume_at_ms, None, "no auto-resume after risk control");
                paused = true;
            }
            other => panic!("expected ack and queue, got {other:?}"),
        }
    }

    let view = app.get(&format!("/api/v1/tasks/{first}")).await;
    let view = view.expect(200);
    assert_eq!(view["state"], "failed");
    assert_eq!(view["attempt"], 1);
    assert_eq!(view["error"]["code"], "risk_control");
    let view = app.get(&format!("/api/v1/tasks/{second}")).await;
    assert_eq!(view.expect(200)["state"], "queued");

    let list = app.get("/api/v1/devices").await;
    let device = list.expect(200)["devices"][0].clone();
    assert_eq!(device["queue_paused"], true);
    assert_eq!(device["pause_reason"], "risk_control");
    assert_eq!(device["resume_at_ms"], serde_json::Value::Null);
    assert_eq!(device["queued_tasks"], 1);

    let page = app.get("/api/v1/notifications?unread=true").await;
    let page = page.expect(200).clone();
    assert_eq!(page["unread"], 1);
    let notes = page["notifications"].as_array().unwrap();
    assert_eq!(notes.len(), 1);
    let note = &notes[0];
    assert_eq!(note["kind"], "risk_control");
    assert_eq!(note["operator_account_id"], account);
    assert_eq!(note["device_id"], device_id.as_str());
    assert_eq!(note["task_id"], first);
    assert!(note["message"].as_str().unwrap().contains("账号存在异常"));
    assert!(note.get("read_at_ms").is_none());

    // The page's query: a cursor past the note shows it and no next page, a
    // cursor at it shows nothing; a limit that is no number is a bad query.
    let id = note["id"].as_i64().unwrap();
    let page = app
        .get(&format!(
            "/api/v1/notifications?unread=true&limit=1&cursor={}",
            id + 1
        ))
        .await;
    assert_eq!(page.expect(200)["notifications"][0]["id"], id);
    assert!(page.body.get("next_cursor").is_none(), "{}", page.body);
    let page = app.get(&format!("/api/v1/notifications?cursor={id}")).await;
    assert_eq!(page.expect(200)["notifications"], json!([]));
    assert_eq!(page.body["unread"], 1);
    app.get("/api/v1/notifications?limit=abc")
        .await
        .expect_error(400, "bad_query");

    // Bad input changes nothing.
    app.post("/api/v1/notifications/read", json!({}))
        .await
        .expect_error(400, "empty_selection");
    app.post(
        "/api/v1/notifications/read",
        json!({"ids": [1], "all": true}),
    )
    .await
    .expect_error(400, "ambiguous_selection");
    let many: Vec<i64> = (1..=1001).collect();
    app.post("/api/v1/notifications/read", json!({ "ids": many }))
        .await
        .expect_error(400, "too_many_ids");
    app.get("/api/v1/notifications?limit=0")
        .await
        .expect_error(422, "invalid_limit");
    let marked = app
        .post(
            "/api/v1/notifications/read",
            json!({"ids": [note["id"], 999_999]}),
        )
        .await;
    assert_eq!(marked.expect(200)["marked"], 1);
    let again = app
        .post("/api/v1/notifications/read", json!({"all": true}))
        .await;
    assert_eq!(again.expect(200)["marked"], 0);
    let page = app.get("/api/v1/notifications").await;
    let page = page.expect(200).clone();
    assert_eq!(page["unread"], 0);
    assert!(page["notifications"][0]["read_at_ms"].as_i64().is_some());
    assert_eq!(
        app.get("/api/v1/notifications?unread=true")
            .await
            .expect(200)["notifications"],
        json!([])
    );

    // An operator resumes by hand; the queue goes on.
    app.post("/api/v1/devices/resume", json!({"device_ids": [device_id]}))
        .await
        .expect(200);
    let mut assigned = false;
    while !assigned {
        match agent.recv(crate::common::FRAME_WAIT).await {
            ServerMessage::Queue { paused: false, .. } => {}
            ServerMessage::Assign { task } => {
                assert_eq!(task.id, second);
                assigned = true;
            }
            other => panic!("expected resume and assign, got {other:?}"),
        }
    }
    app.finish().await;
}

#[tokio::test]
async fn notifications_need_a_session() {
    let app = TestApp::spawn().await;
    let answer = app
        .call(Method::GET, "/api/v1/notifications", None, None)
        .await;
    answer.expect_error(401, "unauthorized");
    app.finish().await;
}
