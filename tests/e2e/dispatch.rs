//! Dispatch: a submitted task runs on the phone and succeeds; one task at a time
//! per device, higher priority first, then submission order; `not_before` holds
//! a task back; retryable failures run again.

use std::time::Duration;

use youmi_agent::simulator::PhoneEvent;
use youmi_protocol::api::SubmitTask;
use youmi_protocol::{AgentMessage, Outcome, TaskError, TaskKind, TaskState};
use youmi_tests::payloads::{message, message_with_priority, task};
use youmi_tests::raw::report;
use youmi_tests::{now_ms, RawAgent, TestApp};

const SECS_5: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_task_runs_on_the_phone() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (credentials, handle, phone) = app.bind_agent(account.id).await;

    let submission = message(account.id);
    let submitted = app.submit(&submission).await;
    assert_eq!(submitted.state, TaskState::Queued);

    let done = app
        .wait_task_state(submitted.id, TaskState::Succeeded, SECS_5)
        .await;
    assert_eq!(done.attempt, 1);
    assert_eq!(done.kind, TaskKind::SendMessage);
    assert_eq!(done.operator_account_id, account.id);
    assert_eq!(
        done.device_id.as_deref(),
        Some(credentials.device_id.as_str())
    );
    assert_eq!(done.payload, submission.payload);
    assert!(done.error.is_none());
    assert!(done.result.is_some(), "the phone's result is stored");
    assert!(done.finished_at_ms.is_some());

    let sent = phone.sent();
    assert_eq!(sent.len(), 1, "the phone sent exactly one thing: {sent:?}");
    assert_eq!(sent[0].task_id, submitted.id);
    assert_eq!(sent[0].kind, TaskKind::SendMessage);
    assert_eq!(sent[0].payload, submission.payload);

    // Do-not-disturb is on by default while a task runs, and restored after.
    let events = phone.events();
    assert!(
        events.contains(&PhoneEvent::TaskStarted(submitted.id)),
        "{events:?}"
    );
    assert!(
        events.contains(&PhoneEvent::DoNotDisturb(true)),
        "{events:?}"
    );
    assert_eq!(
        events.last(),
        Some(&PhoneEvent::DoNotDisturb(false)),
        "DND restored after the task: {events:?}"
    );
    assert_eq!(handle.status().tasks_finished, 1);
    assert_eq!(handle.status().current_task, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_kind_runs() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (_, _handle, phone) = app.bind_agent(account.id).await;

    let ids = app
        .submit_batch(
            TaskKind::ALL
                .iter()
                .map(|&kind| task(account.id, kind))
                .collect(),
        )
        .await;
    assert_eq!(ids.len(), TaskKind::ALL.len());
    for (&id, kind) in ids.iter().zip(TaskKind::ALL) {
        let done = app.wait_task_state(id, TaskState::Succeeded, SECS_5).await;
        assert_eq!(done.kind, kind);
    }
    let sent = phone.sent();
    assert_eq!(sent.len(), ids.len(), "{sent:?}");
    for (&id, kind) in ids.iter().zip(TaskKind::ALL) {
        let record = sent
            .iter()
            .find(|r| r.task_id == id)
            .unwrap_or_else(|| panic!("task {id} was not sent: {sent:?}"));
        assert_eq!(record.kind, kind);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_at_a_time_in_priority_order() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let bound = app.bind_raw(account.id).await;

    // Queue everything while the phone is offline, so the order is the
    // scheduler's choice and not the order of arrival.
    let priorities = [5u8, 9, 5, 1, 9, 0, 5];
    let mut submitted = Vec::new();
    for &priority in &priorities {
        let id = app
            .submit(&message_with_priority(account.id, priority))
            .await
            .id;
        submitted.push((priority, id));
    }
    let mut expected = submitted.clone();
    expected.sort_by_key(|&(priority, id)| (std::cmp::Reverse(priority), id));

    let (mut agent, _) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    for &(priority, id) in &expected {
        let assigned = agent.recv_assign(SECS_5).await;
        assert_eq!(
            assigned.id, id,
            "expected task {id} (priority {priority}) next, order {expected:?}"
        );
        assert_eq!(assigned.kind, TaskKind::SendMessage);
        assert_eq!(assigned.attempt, 1);
        // Nothing else while this one is neither accepted nor finished.
        agent.expect_no_assign(Duration::from_millis(250)).await;
        agent.accept(id).await;
        app.wait_task_state(id, TaskState::Running, SECS_5).await;
        agent.expect_no_assign(Duration::from_millis(150)).await;
        agent.finish(id, Outcome::Succeeded).await;
    }
    agent.expect_no_assign(Duration::from_millis(200)).await;
    for &(_, id) in &submitted {
        let task = app.task(id).await;
        assert_eq!(task.state, TaskState::Succeeded);
        assert_eq!(task.result, Some(serde_json::json!({ "raw": true })));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_before_holds_a_task_back() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (_, mut agent, _) = app.raw_agent(account.id).await;

    let not_before = now_ms() + 900;
    let later = app
        .submit(&SubmitTask {
            priority: Some(9),
            not_before: Some(not_before),
            ..message(account.id)
        })
        .await;
    let now = app.submit(&message(account.id)).await;

    // The lower-priority task that may run now goes first.
    let first = agent.recv_assign(SECS_5).await;
    assert_eq!(first.id, now.id, "the delayed task must wait");
    agent.accept(first.id).await;
    agent.finish(first.id, Outcome::Succeeded).await;

    let wait = (not_before - now_ms() - 150).max(0) as u64;
    agent.expect_no_assign(Duration::from_millis(wait)).await;
    assert_eq!(app.task(later.id).await.state, TaskState::Queued);
    let second = agent.recv_assign(SECS_5).await;
    let at = now_ms();
    assert_eq!(second.id, later.id);
    assert!(
        at >= not_before,
        "assigned {} ms before its not_before",
        not_before - at
    );
    agent.accept(second.id).await;
    agent.finish(second.id, Outcome::Succeeded).await;
    app.wait_task_state(later.id, TaskState::Succeeded, SECS_5)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_run_again_and_then_fail() {
    let app = TestApp::spawn_with(|config| {
        config.max_attempts = 2;
        config.retry_delay_ms = 100;
    })
    .await;
    let account = app.create_account().await;
    let (_, mut agent, _) = app.raw_agent(account.id).await;
    let submitted = app.submit(&message(account.id)).await;
    let error = TaskError {
        code: "contact_not_found".to_owned(),
        message: "the contact was not found".to_owned(),
        retryable: true,
    };

    let mut attempts = Vec::new();
    for _ in 0..2 {
        let assigned = agent.recv_assign(SECS_5).await;
        assert_eq!(assigned.id, submitted.id);
        attempts.push(assigned.attempt);
        agent.accept(assigned.id).await;
        agent
            .send(&AgentMessage::Finished(youmi_protocol::FinishedReport {
                error: Some(error.clone()),
                ..report(assigned.id, Outcome::Failed)
            }))
            .await;
        agent.recv_ack(assigned.id, SECS_5).await;
    }
    assert!(attempts[1] > attempts[0], "attempts count up: {attempts:?}");
    let failed = app
        .wait_task_state(submitted.id, TaskState::Failed, SECS_5)
        .await;
    assert_eq!(failed.error, Some(error), "the last failure is kept");
    assert_eq!(failed.attempt, 2);
    agent.expect_no_assign(Duration::from_millis(400)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_agent_runs_the_retry_of_a_task_it_already_finished() {
    let app = TestApp::spawn_with(|config| {
        config.max_attempts = 2;
        config.retry_delay_ms = 100;
    })
    .await;
    let account = app.create_account().await;
    // Every step fails, retryably: the first attempt fails and is acked, so
    // the agent has seen the task id before when its retry arrives.
    let agent = app
        .bind_agent_with(
            account.id,
            youmi_tests::AgentSpec {
                failure_rate: 1.0,
                ..Default::default()
            },
        )
        .await;
    let submitted = app.submit(&message(account.id)).await;
    let failed = app
        .wait_task_state(submitted.id, TaskState::Failed, SECS_5)
        .await;
    assert_eq!(failed.attempt, 2, "the retry ran on the phone");
    let starts = agent
        .phone
        .events()
        .into_iter()
        .filter(|event| *event == PhoneEvent::TaskStarted(submitted.id))
        .count();
    assert_eq!(starts, 2, "one run per attempt, no more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_arrive_in_one_write_are_each_handled_in_order() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let bound = app.bind_raw(account.id).await;
    let first = app.submit(&message(account.id)).await;
    let second = app.submit(&message(account.id)).await;
    let (mut agent, _) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    assert_eq!(agent.recv_assign(SECS_5).await.id, first.id);

    // Accepted, a frame that is not protocol v1, finished and a heartbeat, in
    // one TCP write: the gateway reads them together.
    let frame = |message: &AgentMessage| serde_json::to_string(message).unwrap();
    agent
        .send_texts_in_one_write(&[
            frame(&AgentMessage::Accepted { task_id: first.id }),
            "{\"type\": \"no such frame\"}".to_owned(),
            frame(&AgentMessage::Finished(report(
                first.id,
                Outcome::Succeeded,
            ))),
            frame(&AgentMessage::Heartbeat {
                battery: Some(42),
                charging: None,
                screen_on: None,
                foreground_app: None,
                call: None,
                wecom_version: None,
                dnd: None,
            }),
        ])
        .await;
    let (code, _) = agent.recv_error(SECS_5).await;
    assert_eq!(code, "bad_message");
    agent.recv_ack(first.id, SECS_5).await;
    assert_eq!(app.task(first.id).await.state, TaskState::Succeeded);
    // The next task follows, and a report for a task that is not this
    // device's is still refused when it comes in the same write as good ones.
    assert_eq!(agent.recv_assign(SECS_5).await.id, second.id);
    agent
        .send_texts_in_one_write(&[
            frame(&AgentMessage::Accepted { task_id: second.id }),
            frame(&AgentMessage::Accepted {
                task_id: first.id + 1_000,
            }),
            frame(&AgentMessage::Finished(report(
                second.id,
                Outcome::Succeeded,
            ))),
        ])
        .await;
    let (code, _) = agent.recv_error(SECS_5).await;
    assert_eq!(code, "not_your_task");
    agent.recv_ack(second.id, SECS_5).await;
    assert_eq!(app.task(second.id).await.state, TaskState::Succeeded);
}
