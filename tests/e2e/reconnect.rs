//! Connections that break: a task is never re-run because of a reconnect and is
//! finished exactly once; a task the agent forgot fails as `lost`; `finished`
//! is idempotent; an unaccepted assign is re-sent; a second connection replaces
//! the first; a new bind revokes the old phone; silence makes a device offline.

use std::time::Duration;

use youmi_protocol::{AgentMessage, Outcome, TaskState};
use youmi_tests::payloads::message;
use youmi_tests::raw::report;
use youmi_tests::{AgentSpec, ConnectError, RawAgent, TestApp};

const SECS_5: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_while_running_does_not_rerun_the_task() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let agent = app
        .bind_agent_with(
            account.id,
            AgentSpec {
                step_latency: Duration::from_millis(250),
                ..AgentSpec::default()
            },
        )
        .await;
    let submitted = app.submit(&message(account.id)).await;
    app.wait_task_state(submitted.id, TaskState::Running, SECS_5)
        .await;

    // The network drops every agent connection mid-task.
    app.proxy().cut();

    let done = app
        .wait_task_state(submitted.id, TaskState::Succeeded, Duration::from_secs(10))
        .await;
    assert_eq!(done.attempt, 1, "never handed out a second time");
    let sent: Vec<_> = agent
        .phone
        .sent()
        .into_iter()
        .filter(|r| r.task_id == submitted.id)
        .collect();
    assert_eq!(sent.len(), 1, "sent exactly once: {sent:?}");
    assert!(
        agent.handle.wait_connected(SECS_5).await,
        "the agent reconnected"
    );
    assert_eq!(agent.handle.status().tasks_finished, 1);

    // And the reconnected agent takes new work.
    let next = app.submit(&message(account.id)).await;
    app.wait_task_state(next.id, TaskState::Succeeded, Duration::from_secs(10))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_reported_running_in_hello_is_waited_for() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (bound, mut agent, _) = app.raw_agent(account.id).await;
    let submitted = app.submit(&message(account.id)).await;
    let second = app.submit(&message(account.id)).await;
    assert_eq!(agent.recv_assign(SECS_5).await.id, submitted.id);
    agent.accept(submitted.id).await;
    app.wait_task_state(submitted.id, TaskState::Running, SECS_5)
        .await;
    drop(agent);

    let (mut agent, _) =
        RawAgent::connect_with(&app.ws_url(), &bound.token, vec![submitted.id], Vec::new()).await;
    // Neither re-sent nor replaced by the next task while it still runs.
    agent.expect_no_assign(Duration::from_millis(600)).await;
    assert_eq!(app.task(submitted.id).await.state, TaskState::Running);

    agent.finish(submitted.id, Outcome::Succeeded).await;
    let done = app.task(submitted.id).await;
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.attempt, 1);
    assert_eq!(agent.recv_assign(SECS_5).await.id, second.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_reported_in_hello_is_stored_and_acked() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (bound, mut agent, _) = app.raw_agent(account.id).await;
    let submitted = app.submit(&message(account.id)).await;
    agent.recv_assign(SECS_5).await;
    agent.accept(submitted.id).await;
    app.wait_task_state(submitted.id, TaskState::Running, SECS_5)
        .await;
    drop(agent);

    let mut agent = RawAgent::connect(&app.ws_url(), Some(&bound.token))
        .await
        .expect("reconnect");
    agent
        .send(&AgentMessage::Hello {
            agent_version: "raw-0".to_owned(),
            device: youmi_tests::raw::raw_device("raw"),
            queue_paused: false,
            running: Vec::new(),
            finished: vec![report(submitted.id, Outcome::Succeeded)],
        })
        .await;
    agent.recv_ack(submitted.id, SECS_5).await;
    let done = app.task(submitted.id).await;
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.result, Some(serde_json::json!({ "raw": true })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_the_agent_no_longer_reports_is_lost() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (bound, mut agent, _) = app.raw_agent(account.id).await;
    let submitted = app.submit(&message(account.id)).await;
    agent.recv_assign(SECS_5).await;
    agent.accept(submitted.id).await;
    app.wait_task_state(submitted.id, TaskState::Running, SECS_5)
        .await;
    drop(agent);

    let (mut agent, _) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    let lost = app
        .wait_task_state(submitted.id, TaskState::Failed, SECS_5)
        .await;
    let error = lost.error.expect("a lost task says why");
    assert_eq!(error.code, "lost");
    assert!(
        !error.retryable,
        "a lost task may have been sent: never retried"
    );
    // It is not handed out again.
    agent.expect_no_assign(Duration::from_millis(500)).await;
    assert_eq!(app.task(submitted.id).await.attempt, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_is_idempotent() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (_, mut agent, _) = app.raw_agent(account.id).await;
    let submitted = app.submit(&message(account.id)).await;
    agent.recv_assign(SECS_5).await;
    agent.accept(submitted.id).await;
    agent.finish(submitted.id, Outcome::Succeeded).await;
    let first = app.task(submitted.id).await;
    assert_eq!(first.state, TaskState::Succeeded);

    // A late copy, even a contradicting one, is acked and changes nothing.
    agent.finish(submitted.id, Outcome::Succeeded).await;
    agent.finish(submitted.id, Outcome::Failed).await;
    let after = app.task(submitted.id).await;
    assert_eq!(after.state, TaskState::Succeeded);
    assert_eq!(after.result, first.result);
    assert_eq!(after.error, None);
    assert_eq!(after.finished_at_ms, first.finished_at_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unaccepted_assign_is_sent_again() {
    let app = TestApp::spawn_with(|config| config.assign_resend_ms = 300).await;
    let account = app.create_account().await;
    let (_, mut agent, _) = app.raw_agent(account.id).await;
    let submitted = app.submit(&message(account.id)).await;

    let first = agent.recv_assign(SECS_5).await;
    assert_eq!(first.id, submitted.id);
    assert_eq!(app.task(submitted.id).await.state, TaskState::Dispatched);
    // Not accepted: the same task comes again.
    let again = agent.recv_assign(Duration::from_secs(3)).await;
    assert_eq!(again.id, submitted.id);
    assert_eq!(again.payload, first.payload);

    agent.accept(submitted.id).await;
    app.wait_task_state(submitted.id, TaskState::Running, SECS_5)
        .await;
    // Accepted: no more copies, however long it runs.
    agent.expect_no_assign(Duration::from_millis(900)).await;
    agent.finish(submitted.id, Outcome::Succeeded).await;
    assert_eq!(app.task(submitted.id).await.state, TaskState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_with_the_same_token_wins() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (bound, mut older, _) = app.raw_agent(account.id).await;

    let (mut newer, welcome) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    assert_eq!(welcome.device_id, bound.device_id);
    let errors = older.wait_closed(SECS_5).await;
    assert_eq!(
        errors,
        vec!["replaced".to_owned()],
        "the older connection is told why"
    );

    let submitted = app.submit(&message(account.id)).await;
    assert_eq!(newer.recv_assign(SECS_5).await.id, submitted.id);
    newer.accept(submitted.id).await;
    newer.finish(submitted.id, Outcome::Succeeded).await;
    assert!(app.device(&bound.device_id).await.online);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_bind_revokes_the_old_phone_and_takes_its_queue() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (old, mut old_agent, _) = app.raw_agent(account.id).await;
    app.pause(&[&old.device_id]).await;
    let tasks = app
        .submit_batch(vec![message(account.id), message(account.id)])
        .await;
    old_agent.expect_no_assign(Duration::from_millis(200)).await;

    let new = app.bind_raw(account.id).await;
    assert_ne!(new.device_id, old.device_id);
    assert_ne!(new.token, old.token);

    // The old phone is disconnected and its token no longer opens a socket.
    let errors = old_agent.wait_closed(SECS_5).await;
    assert!(
        errors.iter().all(|code| code == "revoked"),
        "the old phone is told its token was revoked: {errors:?}"
    );
    match RawAgent::connect(&app.ws_url(), Some(&old.token)).await {
        Err(ConnectError::Http { status, .. }) => assert_eq!(status, 401),
        Err(other) => panic!("expected 401 for a revoked token, got {other:?}"),
        Ok(_) => panic!("a revoked token opened a socket"),
    }

    // The device list has the new phone only, holding the queue.
    let devices = app.devices().await;
    assert!(
        devices.iter().all(|d| d.device_id != old.device_id),
        "the revoked phone is gone: {devices:?}"
    );
    let view = app.device(&new.device_id).await;
    assert_eq!(view.operator_account_id, account.id);
    assert_eq!(view.queued_tasks, 2);
    assert_eq!(
        app.account(account.id).await.device_id.as_deref(),
        Some(new.device_id.as_str())
    );

    let (mut new_agent, _) = RawAgent::connect_hello(&app.ws_url(), &new.token).await;
    app.resume(&[&new.device_id]).await;
    for &id in &tasks {
        assert_eq!(new_agent.recv_assign(SECS_5).await.id, id);
        new_agent.accept(id).await;
        new_agent.finish(id, Outcome::Succeeded).await;
        let done = app.task(id).await;
        assert_eq!(done.state, TaskState::Succeeded);
        assert_eq!(done.device_id.as_deref(), Some(new.device_id.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_goes_offline() {
    let app = TestApp::spawn_with(|config| config.offline_after_ms = 500).await;
    let account = app.create_account().await;
    let (bound, mut agent, _) = app.raw_agent(account.id).await;
    agent.heartbeat(80).await;
    app.wait_device(&bound.device_id, "online after hello", SECS_5, |d| d.online)
        .await;

    // No heartbeat from now on.
    let view = app
        .wait_device(
            &bound.device_id,
            "offline after silence",
            Duration::from_secs(12),
            |d| !d.online,
        )
        .await;
    assert!(
        view.last_heartbeat_ms.is_some(),
        "the last sign of life is kept"
    );

    // An offline device gets no work.
    let submitted = app.submit(&message(account.id)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.task(submitted.id).await.state, TaskState::Queued);
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_device_online() {
    let app = TestApp::spawn_with(|config| config.offline_after_ms = 600).await;
    let account = app.create_account().await;
    let agent = app
        .bind_agent_with(
            account.id,
            AgentSpec {
                heartbeat: Duration::from_millis(100),
                ..AgentSpec::default()
            },
        )
        .await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let view = app.device(agent.device_id()).await;
        assert!(
            view.online,
            "a device with heartbeats stays online: {view:?}"
        );
    }
    let submitted = app.submit(&message(account.id)).await;
    app.wait_task_state(submitted.id, TaskState::Succeeded, SECS_5)
        .await;
}

/// `welcome` names the device and carries its settings, on every connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_carries_the_device_and_settings() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (bound, agent, welcome) = app.raw_agent(account.id).await;
    assert_eq!(welcome.settings, youmi_protocol::AgentSettings::default());
    assert!((welcome.server_time_ms - youmi_tests::now_ms()).abs() < 60_000);
    agent.close().await;
    let (_agent, again) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    assert_eq!(again.device_id, bound.device_id);
}
