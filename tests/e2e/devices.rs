//! The device list (online, queue state, current task, last heartbeat) and
//! agent settings pushed from the API.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use youmi_agent::simulator::PhoneEvent;
use youmi_protocol::api::{Affected, ErrorBody};
use youmi_protocol::{AgentSettings, AutoResume, Outcome, ServerMessage, TaskState};
use youmi_tests::payloads::message;
use youmi_tests::{expect_error, expect_json, now_ms, RawAgent, TestApp};

const SECS_5: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_list_shows_what_the_phone_does() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let bound = app.bind_raw(account.id).await;

    let view = app.device(&bound.device_id).await;
    assert!(!view.online, "bound, not connected");
    assert_eq!(view.operator_account_id, account.id);
    assert!(view.bound_at_ms > 0 && view.bound_at_ms <= now_ms());
    assert_eq!(view.current_task_id, None);
    assert_eq!(view.settings, AgentSettings::default());

    let (mut agent, _) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    let before = now_ms();
    agent.heartbeat(77).await;
    let view = app
        .wait_device(&bound.device_id, "the heartbeat", SECS_5, |d| {
            d.battery == Some(77)
        })
        .await;
    assert!(view.online);
    assert!(!view.queue_paused);
    assert_eq!(view.device.model, "E2E Raw Phone");
    assert_eq!(view.device.agent_version, "raw-0");
    let heartbeat = view.last_heartbeat_ms.expect("last heartbeat shown");
    assert!(
        heartbeat >= before - 1_000 && heartbeat <= now_ms() + 1_000,
        "last heartbeat {heartbeat} is not about now ({before})"
    );

    let tasks = app
        .submit_batch(vec![message(account.id), message(account.id)])
        .await;
    let assigned = agent.recv_assign(SECS_5).await;
    assert_eq!(assigned.id, tasks[0]);
    agent.accept(assigned.id).await;
    app.wait_task_state(tasks[0], TaskState::Running, SECS_5)
        .await;
    let view = app.device(&bound.device_id).await;
    assert_eq!(view.current_task_id, Some(tasks[0]));
    assert_eq!(view.queued_tasks, 1);

    agent.finish(tasks[0], Outcome::Succeeded).await;
    let next = agent.recv_assign(SECS_5).await;
    agent.accept(next.id).await;
    agent.finish(next.id, Outcome::Succeeded).await;
    let view = app
        .wait_device(&bound.device_id, "an idle phone", SECS_5, |d| {
            d.current_task_id.is_none()
        })
        .await;
    assert_eq!(view.queued_tasks, 0);

    agent.close().await;
    app.wait_device(&bound.device_id, "offline after close", SECS_5, |d| {
        !d.online
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_reach_the_agent() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (bound, mut agent, _) = app.raw_agent(account.id).await;

    let changed: Affected = expect_json(
        app.put_json(
            "/api/v1/devices/settings",
            &json!({
                "device_ids": [&bound.device_id],
                "settings": { "countdown_popup": true, "auto_resume_after_min": 3 },
            }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed.affected, 1);

    let expected = AgentSettings {
        countdown_popup: true,
        auto_resume_after_min: AutoResume::try_from(3).expect("3 minutes"),
        ..AgentSettings::default()
    };
    let pushed = agent
        .recv_where(SECS_5, |m| match m {
            ServerMessage::Settings { settings } => Some(*settings),
            _ => None,
        })
        .await;
    assert_eq!(pushed, expected, "the whole object, merged");
    assert_eq!(app.device(&bound.device_id).await.settings, expected);

    // A later change merges into what is there.
    app.put_json(
        "/api/v1/devices/settings",
        &json!({ "device_ids": [&bound.device_id], "settings": { "dnd_while_running": false } }),
    )
    .await;
    let pushed = agent
        .recv_where(SECS_5, |m| match m {
            ServerMessage::Settings { settings } => Some(*settings),
            _ => None,
        })
        .await;
    let expected = AgentSettings {
        dnd_while_running: false,
        ..expected
    };
    assert_eq!(pushed, expected);

    // The next connection is welcomed with them.
    agent.close().await;
    let (_agent, welcome) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    assert_eq!(welcome.settings, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_honours_do_not_disturb_off() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (credentials, handle, phone) = app.bind_agent(account.id).await;
    app.put_json(
        "/api/v1/devices/settings",
        &json!({
            "device_ids": [&credentials.device_id],
            "settings": { "dnd_while_running": false },
        }),
    )
    .await;
    youmi_tests::eventually("the agent applies the settings", SECS_5, || async {
        (!handle.status().settings.dnd_while_running).then_some(())
    })
    .await;

    let submitted = app.submit(&message(account.id)).await;
    app.wait_task_state(submitted.id, TaskState::Succeeded, SECS_5)
        .await;
    let events = phone.events();
    assert!(
        events.contains(&PhoneEvent::TaskStarted(submitted.id)),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, PhoneEvent::DoNotDisturb(_))),
        "DND is left alone when the setting is off: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_settings_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (bound, mut agent, _) = app.raw_agent(account.id).await;
    let device = bound.device_id.as_str();

    let refused = [
        json!({ "device_ids": [device], "settings": { "auto_resume_after_min": 2 } }),
        json!({ "device_ids": [device], "settings": { "auto_resume_after_min": -1 } }),
        json!({ "device_ids": [device], "settings": { "countdown_popup": "yes" } }),
        json!({ "device_ids": [device], "settings": { "dark_mode": true } }),
        json!({ "device_ids": [device], "settings": {} }),
        json!({ "device_ids": [device] }),
        json!({ "device_ids": [device], "settings": { "open_on_boot": false }, "colour": 1 }),
    ];
    for body in refused {
        let response = app.put_json("/api/v1/devices/settings", &body).await;
        let status = response.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{body} answered {status}"
        );
        let error: ErrorBody = response.json().await.expect("error body");
        assert!(!error.error.message.is_empty(), "{body}: {error:?}");
    }
    expect_error(
        app.put_json(
            "/api/v1/devices/settings",
            &json!({ "device_ids": [], "settings": { "open_on_boot": false } }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "empty_selection",
    )
    .await;
    expect_error(
        app.put_json(
            "/api/v1/devices/settings",
            &json!({ "device_ids": [device, "dev_nosuchdevice0"], "settings": { "open_on_boot": false } }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "device_not_found",
    )
    .await;

    // Nothing changed, and nothing was pushed.
    assert_eq!(app.device(device).await.settings, AgentSettings::default());
    let pushed = agent.next(Duration::from_millis(300)).await;
    assert_eq!(pushed, youmi_tests::Incoming::Timeout, "no settings frame");
}
