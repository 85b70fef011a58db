//! Every bad input of issue 2 gets a clear error and changes nothing.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use youmi_protocol::api::{ErrorBody, SubmitTask};
use youmi_protocol::{AgentMessage, Outcome, TaskKind, TaskState};
use youmi_tests::payloads::{message, task};
use youmi_tests::raw::report;
use youmi_tests::{expect_error, ConnectError, RawAgent, TestApp};

const SECS_5: Duration = Duration::from_secs(5);

/// Asserts that `response` is an error with `status`, naming `field`.
async fn expect_field_error(
    response: reqwest::Response,
    status: StatusCode,
    field: &str,
) -> String {
    let got = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(got, status, "expected {status} naming {field}, got: {body}");
    let error: ErrorBody =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not an error body ({e}): {body}"));
    assert_eq!(
        error.error.field.as_deref(),
        Some(field),
        "the error names the field: {body}"
    );
    assert!(!error.error.message.is_empty());
    error.error.code
}

// ---- the agent WebSocket ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_device_token_is_refused_before_the_upgrade() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let bound = app.bind_raw(account.id).await;

    let employee_token = app.token.clone();
    for token in [
        None,
        Some("not-a-token"),
        Some(""),
        Some(employee_token.as_str()),
    ] {
        match RawAgent::connect(&app.ws_url(), token).await {
            Err(ConnectError::Http { status, body }) => {
                assert_eq!(status, 401, "token {token:?}: {body}");
                let error: ErrorBody = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("401 without an error body ({e}): {body}"));
                assert!(!error.error.code.is_empty());
            }
            Err(other) => panic!("token {token:?}: expected 401, got {other:?}"),
            Ok(_) => panic!("token {token:?} opened the agent socket"),
        }
    }
    // The device's own token still works.
    RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_one_mebibyte_is_refused() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (bound, mut agent, _) = app.raw_agent(account.id).await;
    let queued = app.submit(&message(account.id)).await;
    let assigned = agent.recv_assign(SECS_5).await;
    agent.accept(assigned.id).await;
    app.wait_task_state(queued.id, TaskState::Running, SECS_5)
        .await;

    let huge = AgentMessage::Heartbeat {
        battery: Some(1),
        charging: None,
        screen_on: None,
        foreground_app: Some("x".repeat(youmi_protocol::MAX_FRAME_BYTES + 1024)),
        call: None,
        wecom_version: None,
        dnd: None,
    };
    let text = serde_json::to_string(&huge).expect("serialize");
    if agent.try_send_text(text).await {
        agent.wait_closed(SECS_5).await;
    }

    // Nothing changed: the heartbeat was not taken, the task still runs, and
    // the phone can come back and finish it.
    let view = app.device(&bound.device_id).await;
    assert_ne!(
        view.battery,
        Some(1),
        "the oversized heartbeat was not applied"
    );
    assert_eq!(app.task(queued.id).await.state, TaskState::Running);
    let (mut agent, _) =
        RawAgent::connect_with(&app.ws_url(), &bound.token, vec![queued.id], Vec::new()).await;
    agent.finish(queued.id, Outcome::Succeeded).await;
    assert_eq!(app.task(queued.id).await.state, TaskState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_and_unknown_types_are_answered_and_the_connection_kept() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (bound, mut agent, _) = app.raw_agent(account.id).await;

    for bad in [
        "{not json".to_owned(),
        "[]".to_owned(),
        json!({ "type": "dance", "steps": 3 }).to_string(),
        json!({ "type": "accepted" }).to_string(),
        json!({ "task_id": 1 }).to_string(),
        json!({ "type": "heartbeat", "battery": "full" }).to_string(),
    ] {
        agent.send_text(bad.clone()).await;
        let (code, message) = agent.recv_error(SECS_5).await;
        assert_eq!(code, "bad_message", "answer to {bad}");
        assert!(!message.is_empty());
    }
    agent.send_binary(vec![1, 2, 3]).await;
    let (code, _) = agent.recv_error(SECS_5).await;
    assert_eq!(code, "bad_message", "answer to a binary frame");

    // The connection is still good: a heartbeat lands, work arrives.
    agent.heartbeat(42).await;
    app.wait_device(
        &bound.device_id,
        "the heartbeat after bad frames",
        SECS_5,
        |d| d.battery == Some(42) && d.online,
    )
    .await;
    let submitted = app.submit(&message(account.id)).await;
    assert_eq!(agent.recv_assign(SECS_5).await.id, submitted.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_about_another_devices_task_are_refused() {
    let app = TestApp::spawn().await;
    let owner_account = app.create_account().await;
    let other_account = app.create_account().await;
    let (_, mut owner, _) = app.raw_agent(owner_account.id).await;
    let (_, mut other, _) = app.raw_agent(other_account.id).await;

    let running = app.submit(&message(owner_account.id)).await;
    let waiting = app.submit(&message(owner_account.id)).await;
    assert_eq!(owner.recv_assign(SECS_5).await.id, running.id);
    owner.accept(running.id).await;
    app.wait_task_state(running.id, TaskState::Running, SECS_5)
        .await;
    let before = app.task(running.id).await;

    let intrusions = [
        AgentMessage::Accepted {
            task_id: running.id,
        },
        AgentMessage::Finished(report(running.id, Outcome::Failed)),
        AgentMessage::Accepted {
            task_id: waiting.id,
        },
        AgentMessage::Finished(report(waiting.id, Outcome::Succeeded)),
        AgentMessage::Accepted { task_id: 999_999 },
        AgentMessage::Finished(report(999_999, Outcome::Succeeded)),
    ];
    for intrusion in &intrusions {
        other.send(intrusion).await;
        let (code, _) = other.recv_error(SECS_5).await;
        assert_eq!(code, "not_your_task", "answer to {intrusion:?}");
    }
    assert!(
        !other
            .skipped
            .iter()
            .any(|m| matches!(m, youmi_protocol::ServerMessage::Ack { .. })),
        "nothing was acked: {:?}",
        other.skipped
    );

    // Nothing changed.
    let after = app.task(running.id).await;
    assert_eq!(after.state, TaskState::Running);
    assert_eq!(after.device_id, before.device_id);
    assert_eq!(after.attempt, before.attempt);
    assert_eq!(app.task(waiting.id).await.state, TaskState::Queued);
    owner.finish(running.id, Outcome::Succeeded).await;
    assert_eq!(app.task(running.id).await.state, TaskState::Succeeded);
    assert_eq!(owner.recv_assign(SECS_5).await.id, waiting.id);
}

// ---- the HTTP API -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_that_do_not_fit_their_kind_are_refused() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let text = json!([{ "type": "text", "text": "hi" }]);
    let to = json!({ "name": "Li Lei" });
    let cases: Vec<(TaskKind, Value, &str)> = vec![
        (TaskKind::SendMessage, json!({}), "payload.to"),
        (TaskKind::SendMessage, json!("hi"), "payload"),
        (
            TaskKind::SendMessage,
            json!({ "to": {}, "items": text }),
            "payload.to",
        ),
        (
            TaskKind::SendMessage,
            json!({ "to": { "customer_id": -3 }, "items": text }),
            "payload.to.customer_id",
        ),
        (
            TaskKind::SendMessage,
            json!({ "to": to, "items": [] }),
            "payload.items",
        ),
        (
            TaskKind::SendMessage,
            json!({ "to": to, "items": [{ "type": "video" }] }),
            "payload.items[0].type",
        ),
        (
            TaskKind::SendMessage,
            json!({ "to": to, "items": [{ "type": "text", "text": "ok" }, { "type": "text", "text": "" }] }),
            "payload.items[1].text",
        ),
        (
            TaskKind::SendMessage,
            json!({ "to": to, "items": [{ "type": "link", "url": "ftp://x", "title": "t" }] }),
            "payload.items[0].url",
        ),
        (
            TaskKind::MassSend,
            json!({ "recipients": [], "items": text }),
            "payload.recipients",
        ),
        (TaskKind::MomentsPost, json!({}), "payload.text"),
        (
            TaskKind::FriendAdd,
            json!({ "target": {} }),
            "payload.target",
        ),
        (
            TaskKind::SmartMarketing,
            json!({ "flow_id": 0, "step": 1, "to": to, "items": text }),
            "payload.flow_id",
        ),
        (TaskKind::DeleteChat, json!({}), "payload.with"),
        (
            TaskKind::AcceptFriendRequest,
            json!({ "from": 5 }),
            "payload.from",
        ),
    ];
    for (kind, payload, field) in cases {
        let body = SubmitTask {
            payload,
            ..task(account.id, kind)
        };
        let code = expect_field_error(
            app.post_json("/api/v1/tasks", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            field,
        )
        .await;
        assert_eq!(code, "invalid_payload", "{kind} naming {field}");
    }

    // Task fields outside the payload.
    let now = youmi_tests::now_ms();
    for (body, field) in [
        (
            SubmitTask {
                priority: Some(10),
                ..message(account.id)
            },
            "priority",
        ),
        (
            SubmitTask {
                not_before: Some(-5),
                ..message(account.id)
            },
            "not_before",
        ),
        (
            SubmitTask {
                not_before: Some(now + 60_000),
                not_after: Some(now + 1_000),
                ..message(account.id)
            },
            "not_after",
        ),
    ] {
        expect_field_error(
            app.post_json("/api/v1/tasks", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            field,
        )
        .await;
    }

    // A batch is taken whole or not at all, and names the task at fault.
    let mut bad = message(account.id);
    bad.payload = json!({ "items": text });
    let code = expect_field_error(
        app.post_json(
            "/api/v1/tasks/batch",
            &json!({ "tasks": [message(account.id), bad] }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "tasks[1].payload.to",
    )
    .await;
    assert_eq!(code, "invalid_payload");

    // Not JSON, or the wrong shape: 400.
    expect_error(
        app.post_text("/api/v1/tasks", "{").await,
        StatusCode::BAD_REQUEST,
        "bad_json",
    )
    .await;
    expect_error(
        app.post_json(
            "/api/v1/tasks",
            &json!({ "kind": "send_message", "payload": {} }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad_json",
    )
    .await;
    let response = app
        .post_json(
            "/api/v1/tasks",
            &json!({ "operator_account_id": account.id, "kind": "teleport", "payload": {} }),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "an unknown kind"
    );
    let error: ErrorBody = response.json().await.expect("error body");
    assert!(
        error.error.field.as_deref() == Some("kind") || error.error.message.contains("kind"),
        "the error names the kind: {error:?}"
    );
    expect_error(
        app.post_json("/api/v1/tasks/batch", &json!({ "tasks": "all of them" }))
            .await,
        StatusCode::BAD_REQUEST,
        "bad_json",
    )
    .await;

    // Nothing was created.
    assert!(app.account_tasks(account.id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_operator_accounts_are_404() {
    let app = TestApp::spawn().await;
    let ghost = 999_999;
    expect_error(
        app.post_json("/api/v1/tasks", &message(ghost)).await,
        StatusCode::NOT_FOUND,
        "operator_account_not_found",
    )
    .await;
    let account = app.create_account().await;
    expect_error(
        app.post_json(
            "/api/v1/tasks/batch",
            &json!({ "tasks": [message(account.id), message(ghost)] }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "operator_account_not_found",
    )
    .await;
    for (method, path) in [
        (Method::GET, format!("/api/v1/operator-accounts/{ghost}")),
        (
            Method::POST,
            format!("/api/v1/operator-accounts/{ghost}/bind-codes"),
        ),
        (
            Method::POST,
            format!("/api/v1/operator-accounts/{ghost}/disable"),
        ),
        (
            Method::POST,
            format!("/api/v1/operator-accounts/{ghost}/enable"),
        ),
    ] {
        let response = app
            .request(method.clone(), &path)
            .send()
            .await
            .expect("request");
        expect_error(
            response,
            StatusCode::NOT_FOUND,
            "operator_account_not_found",
        )
        .await;
    }
    expect_error(
        app.patch_json(
            &format!("/api/v1/operator-accounts/{ghost}"),
            &json!({ "remark": "x" }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "operator_account_not_found",
    )
    .await;
    expect_error(
        app.post_json(
            "/api/v1/tasks/cancel",
            &json!({ "operator_account_ids": [ghost] }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "operator_account_not_found",
    )
    .await;
    assert!(
        app.account_tasks(account.id).await.is_empty(),
        "the batch was refused whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_takes_and_dispatches_no_tasks() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let bound = app.bind_raw(account.id).await;
    let queued = app.submit(&message(account.id)).await;
    let spare_code = app.bind_code(account.id).await;

    let response = app
        .post_empty(&format!("/api/v1/operator-accounts/{}/disable", account.id))
        .await;
    assert!(
        response.status().is_success(),
        "disable: {}",
        response.status()
    );
    assert!(app.account(account.id).await.disabled);

    expect_error(
        app.post_json("/api/v1/tasks", &message(account.id)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "operator_account_disabled",
    )
    .await;
    expect_error(
        app.bind_request(&spare_code.code).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "operator_account_disabled",
    )
    .await;
    // The queued task waits; the phone gets nothing while the account is disabled.
    let (mut agent, _) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    agent.expect_no_assign(Duration::from_millis(500)).await;
    assert_eq!(app.task(queued.id).await.state, TaskState::Queued);
    assert_eq!(app.account_tasks(account.id).await.len(), 1);

    let response = app
        .post_empty(&format!("/api/v1/operator-accounts/{}/enable", account.id))
        .await;
    assert!(
        response.status().is_success(),
        "enable: {}",
        response.status()
    );
    assert!(!app.account(account.id).await.disabled);
    assert_eq!(agent.recv_assign(SECS_5).await.id, queued.id);
    app.submit(&message(account.id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_account_input_is_checked() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    expect_error(
        app.post_json(
            "/api/v1/operator-accounts",
            &json!({ "name": "Another", "wecom_user_id": account.wecom_user_id }),
        )
        .await,
        StatusCode::CONFLICT,
        "wecom_user_id_taken",
    )
    .await;
    for body in [
        json!({ "name": "   ", "wecom_user_id": "fresh_1" }),
        json!({ "name": "Ok", "wecom_user_id": "" }),
        json!({ "name": "x".repeat(65), "wecom_user_id": "fresh_2" }),
    ] {
        let response = app.post_json("/api/v1/operator-accounts", &body).await;
        let status = response.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{body} answered {status}"
        );
    }
    expect_error(
        app.post_text("/api/v1/operator-accounts", "{\"name\":")
            .await,
        StatusCode::BAD_REQUEST,
        "bad_json",
    )
    .await;
    let list: youmi_protocol::api::OperatorAccountList =
        youmi_tests::expect_json(app.get("/api/v1/operator-accounts").await, StatusCode::OK).await;
    assert_eq!(list.items.len(), 1, "nothing else was created");

    // PATCH changes what it names, and nothing else.
    let patched: youmi_protocol::api::OperatorAccount = youmi_tests::expect_json(
        app.patch_json(
            &format!("/api/v1/operator-accounts/{}", account.id),
            &json!({ "remark": "night shift" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched.remark, "night shift");
    assert_eq!(patched.name, account.name);
    let response = app
        .patch_json(
            &format!("/api/v1/operator-accounts/{}", account.id),
            &json!({ "nickname": "x" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "unknown field");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_404() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    expect_error(
        app.get("/api/v1/tasks/999999").await,
        StatusCode::NOT_FOUND,
        "task_not_found",
    )
    .await;
    for path in ["/api/v1/devices/pause", "/api/v1/devices/resume"] {
        expect_error(
            app.post_json(path, &json!({ "device_ids": ["dev_nosuchdevice0"] }))
                .await,
            StatusCode::NOT_FOUND,
            "device_not_found",
        )
        .await;
        expect_error(
            app.post_json(path, &json!({ "device_ids": [] })).await,
            StatusCode::BAD_REQUEST,
            "empty_selection",
        )
        .await;
    }
    expect_error(
        app.post_json(
            "/api/v1/tasks/cancel",
            &json!({ "device_ids": ["dev_nosuchdevice0"] }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "device_not_found",
    )
    .await;
    expect_error(
        app.post_json("/api/v1/tasks/cancel", &json!({})).await,
        StatusCode::BAD_REQUEST,
        "empty_filter",
    )
    .await;
    expect_error(
        app.post_json("/api/v1/tasks/cancel", &json!({ "task_ids": [] }))
            .await,
        StatusCode::BAD_REQUEST,
        "empty_filter",
    )
    .await;
    // Cancelling ids that do not exist is an error too, and names the field.
    let detail = expect_error(
        app.post_json("/api/v1/tasks/cancel", &json!({ "task_ids": [999_999] }))
            .await,
        StatusCode::NOT_FOUND,
        "task_not_found",
    )
    .await;
    assert_eq!(detail.field.as_deref(), Some("task_ids"));
    assert!(app.devices().await.is_empty());
    assert!(app.account_tasks(account.id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_a_valid_bearer_token() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let device = app.bind_raw(account.id).await;
    let routes = [
        (Method::GET, "/api/v1/tasks".to_owned()),
        (Method::GET, "/api/v1/tasks/1".to_owned()),
        (Method::POST, "/api/v1/tasks".to_owned()),
        (Method::POST, "/api/v1/tasks/batch".to_owned()),
        (Method::POST, "/api/v1/tasks/cancel".to_owned()),
        (Method::GET, "/api/v1/devices".to_owned()),
        (Method::POST, "/api/v1/devices/pause".to_owned()),
        (Method::PUT, "/api/v1/devices/settings".to_owned()),
        (Method::GET, "/api/v1/operator-accounts".to_owned()),
        (Method::POST, "/api/v1/operator-accounts".to_owned()),
        (
            Method::GET,
            format!("/api/v1/operator-accounts/{}", account.id),
        ),
        (
            Method::POST,
            format!("/api/v1/operator-accounts/{}/bind-codes", account.id),
        ),
    ];
    let bad_headers = [
        None,
        Some("Bearer nope".to_owned()),
        Some("Bearer ".to_owned()),
        Some(format!("Basic {}", app.token)),
        // A device token is not a session token.
        Some(format!("Bearer {}", device.token)),
    ];
    for (method, path) in &routes {
        for header in &bad_headers {
            let mut request = app
                .client
                .request(method.clone(), format!("{}{path}", app.url()))
                .json(&json!({}));
            if let Some(header) = header {
                request = request.header(reqwest::header::AUTHORIZATION, header);
            }
            let response = request.send().await.expect("request");
            let detail = expect_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
            assert!(detail.field.is_none(), "{method} {path}");
        }
    }

    // Wrong passwords and unknown employees get the same answer.
    for (job_no, password) in [
        ("admin", "wrong password"),
        ("nobody", "e2e-admin-password-0"),
    ] {
        let response = app
            .client
            .post(format!("{}/api/v1/auth/login", app.url()))
            .json(&json!({ "job_no": job_no, "password": password }))
            .send()
            .await
            .expect("login request");
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // Nothing was created by the refused requests.
    assert!(app.account_tasks(account.id).await.is_empty());
    assert_eq!(app.devices().await.len(), 1);
}
