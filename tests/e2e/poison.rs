//! Tasks an agent cannot take never jam a phone's queue (issue 10, section 1):
//! what submission accepts can be delivered, an agent's refusal fails the task
//! at once, an assign never accepted is bounded, and cancelling a task not yet
//! accepted ends it at once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use youmi_protocol::api::{CancelTasks, ErrorBody};
use youmi_protocol::{
    AgentMessage, ServerMessage, TaskKind, TaskState, MAX_ASSIGN_FRAME_BYTES, MAX_PAYLOAD_DEPTH,
};
use youmi_tests::payloads::message;
use youmi_tests::{Incoming, TestApp};

const SECS_5: Duration = Duration::from_secs(5);

/// A `send_message` body whose payload carries an extra field nested `depth`
/// levels deep in all (the payload object itself is level 1).
fn deep_body(account: i64, depth: usize) -> String {
    let inner = depth - 1;
    format!(
        r#"{{"operator_account_id":{account},"kind":"send_message","payload":{{"to":{{"name":"Ann"}},"items":[{{"type":"text","text":"hi"}}],"extra":{}0{}}}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

/// A `mass_send` payload of about `bytes` bytes of JSON text.
fn mass_send_payload(bytes: usize) -> Value {
    let per = 400;
    let count = bytes / (per + 12);
    let recipients: Vec<Value> = (0..count)
        .map(|i| json!({ "name": format!("{i:0>width$}", width = per) }))
        .collect();
    json!({ "recipients": recipients, "items": [{ "type": "text", "text": "hi" }] })
}

async fn error_of(response: reqwest::Response) -> (StatusCode, ErrorBody) {
    let status = response.status();
    let body = response.text().await.unwrap();
    let error = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{status} without an error body ({e}): {body}"));
    (status, error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_submission_accepts_can_be_delivered() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;

    // Depth: every depth from the limit to past what a JSON reader takes, on
    // the single route and in a batch. Never a 500, never accepted past the limit.
    for depth in (MAX_PAYLOAD_DEPTH - 2..=MAX_PAYLOAD_DEPTH + 3)
        .chain([64, 125, 126, 127, 128, 129, 300, 5_000])
    {
        let body = deep_body(account.id, depth);
        let single = app.post_text("/api/v1/tasks", &body).await;
        let batch = app
            .post_text("/api/v1/tasks/batch", &format!(r#"{{"tasks":[{body}]}}"#))
            .await;
        for (route, response) in [("single", single), ("batch", batch)] {
            let status = response.status();
            if depth <= MAX_PAYLOAD_DEPTH {
                assert_eq!(status, StatusCode::CREATED, "{route} depth {depth}");
                continue;
            }
            let (status, error) = error_of(response).await;
            assert!(
                status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
                "{route} depth {depth}: {status} {error:?}"
            );
            if status == StatusCode::UNPROCESSABLE_ENTITY && depth < 120 {
                assert_eq!(
                    error.error.code, "payload_too_deep",
                    "{route} depth {depth}"
                );
                assert!(error.error.message.contains(&MAX_PAYLOAD_DEPTH.to_string()));
            }
        }
    }

    // Size: around the assign frame's limit, on both routes.
    for bytes in [
        MAX_ASSIGN_FRAME_BYTES - 8_000,
        MAX_ASSIGN_FRAME_BYTES + 8_000,
        MAX_ASSIGN_FRAME_BYTES + 400_000,
    ] {
        let payload = mass_send_payload(bytes);
        let len = payload.to_string().len();
        let single =
            json!({"operator_account_id": account.id, "kind": "mass_send", "payload": payload});
        let batch = json!({ "tasks": [single.clone()] });
        for (route, response) in [
            ("single", app.post_json("/api/v1/tasks", &single).await),
            ("batch", app.post_json("/api/v1/tasks/batch", &batch).await),
        ] {
            if len + 200 < MAX_ASSIGN_FRAME_BYTES {
                assert_eq!(
                    response.status(),
                    StatusCode::CREATED,
                    "{route} {len} bytes"
                );
                continue;
            }
            let (status, error) = error_of(response).await;
            assert_eq!(
                status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{route} {len} bytes: {error:?}"
            );
            assert_eq!(error.error.code, "payload_too_large");
            assert!(error
                .error
                .message
                .contains(&MAX_ASSIGN_FRAME_BYTES.to_string()));
            assert!(error
                .error
                .field
                .as_deref()
                .unwrap_or("")
                .ends_with("payload"));
        }
    }

    // Everything accepted reaches a phone whole, in frames within the limit.
    let (_bound, mut agent, _) = app.raw_agent(account.id).await;
    let accepted = app.account_tasks(account.id).await;
    assert_eq!(
        accepted.len(),
        2 * (MAX_PAYLOAD_DEPTH - 2..=MAX_PAYLOAD_DEPTH).count() + 2
    );
    for _ in 0..accepted.len() {
        let task = agent.recv_assign(SECS_5).await;
        let frame = serde_json::to_string(&ServerMessage::Assign { task: task.clone() }).unwrap();
        assert!(frame.len() <= MAX_ASSIGN_FRAME_BYTES);
        agent.accept(task.id).await;
        agent
            .finish(task.id, youmi_protocol::Outcome::Succeeded)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_task_fails_with_the_agents_reason_and_the_queue_moves_on() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let first = app.submit(&message(account.id)).await;
    let second = app.submit(&message(account.id)).await;
    let (_bound, mut agent, _) = app.raw_agent(account.id).await;
    assert_eq!(agent.recv_assign(SECS_5).await.id, first.id);
    agent
        .send(&AgentMessage::Refused {
            task_id: first.id,
            code: "payload_not_understood".into(),
            message: "items[0].type: this agent knows text, image, file".into(),
        })
        .await;
    assert_eq!(
        agent.recv_assign(SECS_5).await.id,
        second.id,
        "the queue moves on at once"
    );
    let task = app.task(first.id).await;
    assert_eq!(task.state, TaskState::Failed);
    let error = task.error.expect("the agent's reason");
    assert_eq!(error.code, "payload_not_understood");
    assert!(error.message.contains("this agent knows"), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assign_never_accepted_fails_undeliverable_and_the_queue_moves_on() {
    let app = TestApp::spawn_with(|config| {
        config.assign_resend_ms = 100;
        config.assign_max_sends = 4;
    })
    .await;
    let account = app.create_account().await;
    let first = app.submit(&message(account.id)).await;
    let second = app.submit(&message(account.id)).await;
    let (_bound, mut agent, _) = app.raw_agent(account.id).await;
    for _ in 0..4 {
        assert_eq!(agent.recv_assign(SECS_5).await.id, first.id);
    }
    // The fifth send would be due: the task fails, the phone is told to drop
    // it, and the next task goes.
    let mut cancelled = false;
    let next = loop {
        match agent.recv(SECS_5).await {
            ServerMessage::Cancel { task_id } if task_id == first.id => cancelled = true,
            ServerMessage::Assign { task } => break task,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(next.id, second.id);
    let task = app.task(first.id).await;
    assert_eq!(task.state, TaskState::Failed);
    assert_eq!(task.error.unwrap().code, "undeliverable");
    if !cancelled {
        let more = agent.recv(SECS_5).await;
        assert_eq!(more, ServerMessage::Cancel { task_id: first.id });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_task_not_yet_accepted_takes_effect_at_once() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let first = app.submit(&message(account.id)).await;
    let second = app.submit(&message(account.id)).await;
    let (_bound, mut agent, _) = app.raw_agent(account.id).await;
    assert_eq!(agent.recv_assign(SECS_5).await.id, first.id);
    let result = app
        .cancel(&CancelTasks {
            task_ids: Some(vec![first.id]),
            ..Default::default()
        })
        .await;
    assert_eq!((result.cancelled, result.cancelling), (1, 0));
    assert_eq!(app.task(first.id).await.state, TaskState::Cancelled);
    assert_eq!(
        agent.recv(SECS_5).await,
        ServerMessage::Cancel { task_id: first.id }
    );
    assert_eq!(agent.recv_assign(SECS_5).await.id, second.id);
    // Cancelling by kind does the same for the next one, also not accepted.
    let result = app
        .cancel(&CancelTasks {
            kinds: Some(vec![TaskKind::SendMessage]),
            ..Default::default()
        })
        .await;
    assert_eq!((result.cancelled, result.cancelling), (1, 0));
    assert_eq!(app.task(second.id).await.state, TaskState::Cancelled);
    assert!(matches!(
        agent.next(Duration::from_millis(300)).await,
        Incoming::Message(ServerMessage::Cancel { .. })
    ));
}
