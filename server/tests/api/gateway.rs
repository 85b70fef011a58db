//! The agent WebSocket: the handshake, frames both ways, bad frames, limits.

use reqwest::Method;
use serde_json::json;
use youmi_protocol::{AgentMessage, FinishedReport, Outcome, ServerMessage};

use youmi_tests::Incoming;

use crate::common::TestApp;

#[tokio::test]
async fn bad_tokens_are_refused_before_the_upgrade() {
    let app = TestApp::spawn().await;
    match app.ws("not-a-token").await {
        Err(youmi_tests::ConnectError::Http { status, body }) => {
            assert_eq!(status, 401);
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
        }
        Ok(_) => panic!("a bad token connected"),
        Err(other) => panic!("expected 401, got {other:?}"),
    }
    // No token at all, as plain HTTP.
    app.call(Method::GET, "/agent/v1/ws", None, None)
        .await
        .expect_error(401, "unauthorized");
    // A good token on a request that is not an upgrade.
    let account = app.account("plain").await;
    let (_, token) = app.bind(account).await;
    app.call(Method::GET, "/agent/v1/ws", None, Some(&token))
        .await
        .expect_error(400, "websocket_required");
    // A session token is not a device token.
    let session = app.token.clone();
    assert!(app.ws(&session).await.is_err());
    app.finish().await;
}

#[tokio::test]
async fn a_submitted_task_is_assigned_after_hello_and_acked_when_finished() {
    let app = TestApp::spawn().await;
    let account = app.account("runner").await;
    let (device_id, mut agent) = app.connected_agent(account).await;

    let submitted = app
        .post(
            "/api/v1/tasks",
            json!({
                "operator_account_id": account,
                "kind": "send_message",
                "payload": {"to": {"name": "Ann"}, "items": [{"type": "text", "text": "hello"}]}
            }),
        )
        .await;
    let submitted = submitted.expect(201).clone();
    assert_eq!(submitted["state"], "queued");
    let task_id = submitted["id"].as_i64().unwrap();

    let task = match agent.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Assign { task } => task,
        other => panic!("expected assign, got {other:?}"),
    };
    assert_eq!(task.id, task_id);
    assert_eq!(task.attempt, 1);
    assert_eq!(task.payload["items"][0]["text"], "hello");

    agent.send(&AgentMessage::Accepted { task_id }).await;
    agent
        .send(&AgentMessage::Finished(FinishedReport {
            task_id,
            outcome: Outcome::Succeeded,
            error: None,
            result: Some(json!({"sent": 1})),
        }))
        .await;
    match agent.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Ack { task_id: acked } => assert_eq!(acked, task_id),
        other => panic!("expected ack, got {other:?}"),
    }
    let view = app.get(&format!("/api/v1/tasks/{task_id}")).await;
    let view = view.expect(200);
    assert_eq!(view["state"], "succeeded");
    assert_eq!(view["device_id"], device_id.as_str());
    assert_eq!(view["result"]["sent"], 1);
    assert!(view["finished_at_ms"].as_i64().is_some());
    app.finish().await;
}

#[tokio::test]
async fn bad_frames_are_answered_and_the_connection_stays() {
    let app = TestApp::spawn().await;
    let account = app.account("noisy").await;
    let (_, mut agent) = app.connected_agent(account).await;

    agent.send_text("{not json").await;
    match agent.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, "bad_message"),
        other => panic!("expected an error, got {other:?}"),
    }
    agent.send_text(r#"{"type":"teleport","to":"mars"}"#).await;
    match agent.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Error { code, message } => {
            assert_eq!(code, "bad_message");
            assert!(message.contains("teleport"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    agent.send_binary(vec![1u8, 2, 3]).await;
    match agent.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, "bad_message"),
        other => panic!("expected an error, got {other:?}"),
    }
    // Still connected: a task still arrives.
    let submitted = app
        .post(
            "/api/v1/tasks",
            json!({
                "operator_account_id": account,
                "kind": "delete_chat",
                "payload": {"with": {"external_id": "wm_1"}}
            }),
        )
        .await;
    let task_id = submitted.expect(201)["id"].as_i64().unwrap();
    match agent.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Assign { task } => assert_eq!(task.id, task_id),
        other => panic!("expected assign, got {other:?}"),
    }
    app.finish().await;
}

#[tokio::test]
async fn frames_over_one_mebibyte_end_the_connection_with_1009() {
    let app = TestApp::spawn().await;
    let account = app.account("big").await;
    let (_, mut agent) = app.connected_agent(account).await;
    for size in [
        youmi_protocol::MAX_FRAME_BYTES + 1,
        3 * youmi_protocol::MAX_FRAME_BYTES,
    ] {
        let huge = format!(
            r#"{{"type":"event","kind":"incoming_message","data":{{"text":"{}"}}}}"#,
            "x".repeat(size)
        );
        // The send itself may fail once the server hangs up.
        agent.try_send_text(huge).await;
        let mut error_frame = false;
        loop {
            match agent.next(crate::common::FRAME_WAIT).await {
                Incoming::Message(ServerMessage::Error { code, .. }) => {
                    assert_eq!(code, "frame_too_large");
                    error_frame = true;
                }
                Incoming::Message(_) => {}
                Incoming::Closed(_) => break,
                Incoming::Timeout => panic!("the server did not react to the frame"),
            }
        }
        assert!(error_frame, "an error frame names the reason first");
        assert_eq!(agent.close_code, Some(1009), "a close frame with 1009");
        if size == youmi_protocol::MAX_FRAME_BYTES + 1 {
            let (_, again) = app.connected_agent(account).await;
            agent = again;
        }
    }
    app.finish().await;
}

#[tokio::test]
async fn a_second_connection_replaces_the_first() {
    let app = TestApp::spawn().await;
    let account = app.account("twice").await;
    let (_, token) = app.bind(account).await;
    let mut first = app.ws(&token).await.unwrap();
    first.hello(vec![], vec![]).await;
    let mut second = app.ws(&token).await.unwrap();
    match first.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, "replaced"),
        other => panic!("expected the replaced error, got {other:?}"),
    }
    first.wait_closed(crate::common::FRAME_WAIT).await;
    second.hello(vec![], vec![]).await;
    app.finish().await;
}

#[tokio::test]
async fn connections_are_capped() {
    let app = TestApp::spawn_with(|config| config.max_agent_connections = 1).await;
    let one = app.account("one").await;
    let two = app.account("two").await;
    let (_, first) = app.bind(one).await;
    let (_, second) = app.bind(two).await;
    let _held = app.ws(&first).await.unwrap();
    match app.ws(&second).await {
        Err(youmi_tests::ConnectError::Http { status, .. }) => assert_eq!(status, 503),
        Ok(_) => panic!("the cap let a second connection in"),
        Err(other) => panic!("expected 503, got {other:?}"),
    }
    app.finish().await;
}

#[tokio::test]
async fn shutdown_closes_agent_sockets() {
    let app = TestApp::spawn().await;
    let account = app.account("bye").await;
    let (_, mut agent) = app.connected_agent(account).await;
    let db = app.stop().await;
    agent.wait_closed(crate::common::FRAME_WAIT).await;
    assert_eq!(agent.close_code, Some(1001));
    db.remove().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_and_frames_keep_one_open() {
    let app = TestApp::spawn_with(|config| config.agent_idle_timeout_secs = 1).await;
    let chatty_account = app.account("chatty").await;
    let silent_account = app.account("silent").await;
    let (_, mut chatty) = app.connected_agent(chatty_account).await;
    let (_, mut silent) = app.connected_agent(silent_account).await;
    let heartbeat = AgentMessage::Heartbeat {
        battery: None,
        charging: None,
        screen_on: None,
        foreground_app: None,
        call: None,
        wecom_version: None,
        dnd: None,
    };
    // Three idle periods, with a frame every third of one.
    for _ in 0..9 {
        tokio::time::sleep(std::time::Duration::from_millis(330)).await;
        chatty.send(&heartbeat).await;
    }
    match silent.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, "idle_timeout"),
        other => panic!("expected the idle error, got {other:?}"),
    }
    silent.wait_closed(crate::common::FRAME_WAIT).await;
    assert_eq!(silent.close_code, Some(1008));
    // The chatty one is still served.
    chatty
        .send(&AgentMessage::Accepted { task_id: 999_999 })
        .await;
    match chatty.recv(crate::common::FRAME_WAIT).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, "not_your_task"),
        other => panic!("expected an error frame, got {other:?}"),
    }
    app.finish().await;
}
