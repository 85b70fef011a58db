//! Pausing and resuming a device's queue: from the API, from the phone, by
//! itself after the auto-resume setting, and across a server restart.

use std::time::{Duration, Instant};

use serde_json::json;
use youmi_protocol::api::Affected;
use youmi_protocol::{AgentMessage, Outcome, ServerMessage, TaskState};
use youmi_tests::payloads::message;
use youmi_tests::{expect_json, now_ms, AgentSpec, RawAgent, TestApp};

const SECS_5: Duration = Duration::from_secs(5);

/// Waits for `queue {paused}` from the server.
async fn recv_queue(agent: &mut RawAgent, paused: bool) -> Option<i64> {
    agent
        .recv_where(SECS_5, |m| match m {
            ServerMessage::Queue {
                paused: p,
                resume_at_ms,
            } if *p == paused => Some(*resume_at_ms),
            _ => None,
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_through_the_api() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (bound, mut agent, _) = app.raw_agent(account.id).await;
    let device = bound.device_id.as_str();

    assert_eq!(app.pause(&[device]).await.affected, 1);
    recv_queue(&mut agent, true).await;
    let view = app.device(device).await;
    assert!(view.queue_paused);
    assert!(
        view.pause_reason.as_deref().is_some_and(|r| !r.is_empty()),
        "a pause says why: {view:?}"
    );

    let submitted = app.submit(&message(account.id)).await;
    agent.expect_no_assign(Duration::from_millis(600)).await;
    assert_eq!(app.task(submitted.id).await.state, TaskState::Queued);
    assert_eq!(app.device(device).await.queued_tasks, 1);

    assert_eq!(app.resume(&[device]).await.affected, 1);
    let assigned = agent.recv_assign(SECS_5).await;
    assert_eq!(assigned.id, submitted.id);
    // The agent is told that its queue runs again (before or after the work).
    if !agent
        .skipped
        .iter()
        .any(|m| matches!(m, ServerMessage::Queue { paused: false, .. }))
    {
        recv_queue(&mut agent, false).await;
    }
    assert!(!app.device(device).await.queue_paused);
    agent.accept(assigned.id).await;
    agent.finish(assigned.id, Outcome::Succeeded).await;
    app.wait_task_state(submitted.id, TaskState::Succeeded, SECS_5)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_all_and_resume_all() {
    let app = TestApp::spawn().await;
    let first = app.create_account().await;
    let second = app.create_account().await;
    let (a, mut agent_a, _) = app.raw_agent(first.id).await;
    let (b, mut agent_b, _) = app.raw_agent(second.id).await;

    let paused: Affected = expect_json(
        app.post_json("/api/v1/devices/pause", &json!({ "all": true }))
            .await,
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(paused.affected, 2);
    recv_queue(&mut agent_a, true).await;
    recv_queue(&mut agent_b, true).await;
    assert!(app.device(&a.device_id).await.queue_paused);
    assert!(app.device(&b.device_id).await.queue_paused);

    let task_a = app.submit(&message(first.id)).await;
    let task_b = app.submit(&message(second.id)).await;
    agent_a.expect_no_assign(Duration::from_millis(300)).await;
    agent_b.expect_no_assign(Duration::from_millis(100)).await;

    let resumed: Affected = expect_json(
        app.post_json("/api/v1/devices/resume", &json!({ "all": true }))
            .await,
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(resumed.affected, 2);
    assert_eq!(agent_a.recv_assign(SECS_5).await.id, task_a.id);
    assert_eq!(agent_b.recv_assign(SECS_5).await.id, task_b.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_from_the_phone() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let agent = app.bind_agent_with(account.id, AgentSpec::default()).await;
    let device = agent.device_id().to_owned();

    // The volume key on the phone pauses the queue: the server learns it.
    agent.handle.pause_queue("volume_key");
    youmi_tests::eventually("the agent pauses", SECS_5, || async {
        agent.handle.status().queue_paused.then_some(())
    })
    .await;
    let view = app
        .wait_device(&device, "the phone's pause", SECS_5, |d| d.queue_paused)
        .await;
    assert_eq!(view.pause_reason.as_deref(), Some("volume_key"));

    let submitted = app.submit(&message(account.id)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.task(submitted.id).await.state, TaskState::Queued);
    assert!(agent.phone.sent().is_empty());

    agent.handle.resume_queue("volume_key");
    app.wait_task_state(submitted.id, TaskState::Succeeded, SECS_5)
        .await;
    assert!(!app.device(&device).await.queue_paused);
    assert_eq!(agent.phone.sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_queue_changed_pauses_and_resumes() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (bound, mut agent, _) = app.raw_agent(account.id).await;

    agent
        .send(&AgentMessage::QueueChanged {
            paused: true,
            reason: "volume_key".to_owned(),
        })
        .await;
    app.wait_device(&bound.device_id, "queue_changed paused", SECS_5, |d| {
        d.queue_paused && d.pause_reason.as_deref() == Some("volume_key")
    })
    .await;
    let submitted = app.submit(&message(account.id)).await;
    agent.expect_no_assign(Duration::from_millis(500)).await;

    agent
        .send(&AgentMessage::QueueChanged {
            paused: false,
            reason: "volume_key".to_owned(),
        })
        .await;
    assert_eq!(agent.recv_assign(SECS_5).await.id, submitted.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_queue_resumes_by_itself() {
    // One "minute" of auto_resume_after_min lasts 300 ms here.
    let app = TestApp::spawn_with(|config| config.auto_resume_unit_ms = 300).await;
    let account = app.create_account().await;
    let (bound, mut agent, _) = app.raw_agent(account.id).await;
    let device = bound.device_id.as_str();

    let changed: Affected = expect_json(
        app.put_json(
            "/api/v1/devices/settings",
            &json!({ "device_ids": [device], "settings": { "auto_resume_after_min": 1 } }),
        )
        .await,
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(changed.affected, 1);

    let paused_at = Instant::now();
    app.pause(&[device]).await;
    let resume_at = recv_queue(&mut agent, true).await;
    assert!(resume_at.is_some(), "the pause says when it ends");
    let view = app.device(device).await;
    assert!(view.queue_paused);
    assert_eq!(view.resume_at_ms, resume_at);

    let submitted = app.submit(&message(account.id)).await;
    let assigned = agent.recv_assign(SECS_5).await;
    assert_eq!(assigned.id, submitted.id);
    let waited = paused_at.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "resumed after {waited:?}, before the auto-resume delay"
    );
    let view = app.device(device).await;
    assert!(!view.queue_paused);
    assert_eq!(view.resume_at_ms, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_survives_a_server_restart() {
    let mut app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (bound, agent, _) = app.raw_agent(account.id).await;
    let device = bound.device_id.clone();
    app.pause(&[&device]).await;
    agent.close().await;

    app.restart().await;

    let view = app.device(&device).await;
    assert!(view.queue_paused, "the pause is in the database: {view:?}");
    let submitted = app.submit(&message(account.id)).await;
    let (mut agent, _) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    agent.expect_no_assign(Duration::from_millis(600)).await;
    assert_eq!(app.task(submitted.id).await.state, TaskState::Queued);

    app.resume(&[&device]).await;
    assert_eq!(agent.recv_assign(SECS_5).await.id, submitted.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auto_resume_timer_survives_a_server_restart() {
    let mut app = TestApp::spawn_with(|config| config.auto_resume_unit_ms = 2_000).await;
    let account = app.create_account().await;
    let (bound, agent, _) = app.raw_agent(account.id).await;
    let device = bound.device_id.clone();
    app.put_json(
        "/api/v1/devices/settings",
        &json!({ "device_ids": [&device], "settings": { "auto_resume_after_min": 1 } }),
    )
    .await;
    app.pause(&[&device]).await;
    let resume_at = app
        .device(&device)
        .await
        .resume_at_ms
        .expect("an auto-resuming pause has a resume time");
    agent.close().await;
    let submitted = app.submit(&message(account.id)).await;

    app.restart().await;
    let (mut agent, _) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    let left = resume_at - now_ms() - 200;
    if left > 0 {
        // Still paused until the time the database holds.
        assert!(app.device(&device).await.queue_paused);
        agent
            .expect_no_assign(Duration::from_millis(left as u64))
            .await;
    }
    // Rebuilt from the database, the timer fires.
    assert_eq!(agent.recv_assign(SECS_5).await.id, submitted.id);
    assert!(now_ms() >= resume_at, "resumed before its time");
    assert!(!app.device(&device).await.queue_paused);
}
