//! Phone calls during a task (issue 11, section 5), through the real adb on the
//! phone simulator: a call that rings while the agent types pauses the task
//! (nothing reaches the screen until it ends, and the device view shows it
//! ringing, then under way once answered), a call that outlasts the agent's bound fails the attempt with
//! `call_in_progress`, and with `auto_hang_up` on the call is hung up and the
//! task goes on. The message is sent once in every case.
//!
//! The simulator rings at a known point of the flow (`Fault::RingWhenTyped`:
//! right after the message's text is typed, before the send tap), so each test
//! knows which inputs came before the call.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use youmi_agent::adb::AdbConfig;
use youmi_agent::watch::WatchOptions;
use youmi_phone_sim::{Fault, Input, InputEvent, SentEvent, SimConfig};
use youmi_protocol::task_error::CALL_IN_PROGRESS;
use youmi_protocol::{CallStatus, TaskKind, TaskState};
use youmi_tests::phones::{adb_server, AdbServer, CallOptions, PhoneAgent, Route};
use youmi_tests::{eventually, TestApp};

/// Far above what any task or wait here needs: only a hang reaches it.
const DEADLINE: Duration = Duration::from_secs(90);

/// The message each test sends, and the text whose typing makes the phone ring.
const TEXT: &str = "您好，通话测试";

/// The caller.
const CALLER: &str = "13800001234";

fn sim(serial: &str) -> SimConfig {
    SimConfig {
        serial: serial.to_owned(),
        ..SimConfig::default()
    }
}

fn patient() -> AdbConfig {
    AdbConfig {
        command_timeout: Duration::from_secs(15),
        dump_timeout: Duration::from_secs(15),
        ..AdbConfig::default()
    }
}

/// The watcher's timings, quick so that a hang-up comes soon.
fn watch() -> WatchOptions {
    WatchOptions {
        call_poll: Duration::from_millis(200),
        ..WatchOptions::default()
    }
}

fn hello() -> Value {
    json!({ "to": { "name": "张三" }, "items": [{ "type": "text", "text": TEXT }] })
}

/// Rings when the message (not the contact search) is typed.
fn ring_when_typed() -> Fault {
    Fault::RingWhenTyped {
        number: CALLER.to_owned(),
        containing: TEXT.to_owned(),
    }
}

/// Where in the input log the message was typed: the call rang right after it.
fn typed_at(inputs: &[InputEvent]) -> usize {
    inputs
        .iter()
        .position(|event| event.input == Input::Text(TEXT.to_owned()))
        .unwrap_or_else(|| panic!("the message was never typed: {inputs:?}"))
}

/// A phone on `app` through `adb`, its agent waiting up to `call_wait` for
/// a call to end, with the watcher running when `watched`.
async fn phone(
    app: &TestApp,
    adb: &AdbServer,
    serial: &str,
    call_wait: Duration,
    watched: bool,
) -> PhoneAgent {
    PhoneAgent::start_with(
        app,
        Route::Server(adb),
        sim(serial),
        patient(),
        CallOptions {
            call_wait,
            watch: watched.then(watch),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_pauses_the_task_until_it_ends_and_the_device_view_shows_it() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let p = phone(&app, &adb, "E2E-CALL-WAIT", DEADLINE, true).await;
    let device = p.device_id().to_owned();
    app.wait_device(&device, "the idle phone's call state", DEADLINE, |d| {
        d.call == Some(CallStatus::Idle)
    })
    .await;

    p.sim.set_fault(ring_when_typed());
    let id = p.submit(&app, TaskKind::SendMessage, hello()).await;
    eventually("the phone to ring", DEADLINE, || async {
        (p.sim.call_state() == 1).then_some(())
    })
    .await;
    // The heartbeat tells the server, and the device list shows it.
    let view = app
        .wait_device(&device, "the device view to show the call", DEADLINE, |d| {
            d.call == Some(CallStatus::Ringing)
        })
        .await;
    assert!(view.online);
    assert_eq!(view.current_task_id, Some(id));
    let listed = app.get("/api/v1/devices").await.text().await.unwrap();
    assert!(listed.contains(r#""call":"ringing""#), "{listed}");
    assert!(
        !listed.contains(CALLER),
        "the number is never sent: {listed}"
    );

    // Nothing reached the phone since the call began: the send tap waits.
    let inputs = p.sim.inputs();
    let typed = typed_at(&inputs);
    assert_eq!(
        &inputs[typed + 1..],
        &[],
        "inputs while the call rang: {:?}",
        &inputs[typed + 1..]
    );
    assert!(p.sim.sent().is_empty(), "not sent while the call rings");
    assert_eq!(app.task(id).await.state, TaskState::Running);
    assert_eq!(p.sim.call_state(), 1, "the agent did not hang up");

    // The person at the phone answers: the call is under way, and the task
    // still waits.
    p.sim.answer_call();
    app.wait_device(
        &device,
        "the device view to show the call under way",
        DEADLINE,
        |d| d.call == Some(CallStatus::Active),
    )
    .await;
    assert_eq!(p.sim.inputs().len(), typed + 1, "{:?}", p.sim.inputs());
    assert!(p.sim.sent().is_empty(), "not sent during the call");

    // The call ends: the task reads the screen again and sends, once.
    p.sim.end_call();
    let task = app.wait_terminal(id, DEADLINE).await;
    assert_eq!(task.state, TaskState::Succeeded, "{task:?}");
    assert_eq!(task.attempt, 1, "{task:?}");
    assert_eq!(
        p.sim.sent(),
        vec![SentEvent::Message {
            to: "张三".into(),
            text: TEXT.into(),
        }]
    );
    let after = p.sim.inputs();
    assert!(
        !after.iter().any(|e| e.input == Input::Key(6)),
        "the agent never hung up: {after:?}"
    );
    app.wait_device(
        &device,
        "the device view to show the call over",
        DEADLINE,
        |d| d.call == Some(CallStatus::Idle),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_longer_than_the_bound_fails_the_attempt_with_call_in_progress() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    // No watcher: the runner reads the call state by itself.
    let p = phone(&app, &adb, "E2E-CALL-LONG", Duration::from_secs(2), false).await;
    p.sim.set_fault(ring_when_typed());
    let id = p.submit(&app, TaskKind::SendMessage, hello()).await;
    let failed = eventually(
        "the first attempt to fail with call_in_progress",
        DEADLINE,
        || async {
            let task = app.task(id).await;
            let failed = task
                .error
                .as_ref()
                .is_some_and(|e| e.code == CALL_IN_PROGRESS);
            failed.then_some(task)
        },
    )
    .await;
    let error = failed.error.as_ref().expect("an error");
    assert!(error.retryable, "{error:?}");
    assert!(error.message.contains("ringing"), "{}", error.message);
    assert!(
        error.message.contains("`send`"),
        "the step it waited at is named: {}",
        error.message
    );
    let inputs = p.sim.inputs();
    let typed = typed_at(&inputs);
    assert_eq!(
        &inputs[typed + 1..],
        &[],
        "inputs while the call rang: {:?}",
        &inputs[typed + 1..]
    );
    assert!(p.sim.sent().is_empty());
    assert_eq!(
        p.sim.call_state(),
        1,
        "still ringing: the agent never hangs up"
    );

    // Once the call ends, a retry sends the message, once.
    p.sim.end_call();
    let task = app.wait_terminal(id, DEADLINE).await;
    if task.state == TaskState::Succeeded {
        assert!(task.attempt > 1, "{task:?}");
        assert_eq!(
            p.sim.sent(),
            vec![SentEvent::Message {
                to: "张三".into(),
                text: TEXT.into(),
            }]
        );
    } else {
        // Every attempt may have met the ringing before the call ended; what
        // matters then is that nothing was sent.
        assert_eq!(
            task.error.as_ref().map(|e| e.code.as_str()),
            Some(CALL_IN_PROGRESS),
            "{task:?}"
        );
        assert!(p.sim.sent().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auto_hang_up_on_the_call_is_hung_up_and_the_task_goes_on() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let p = phone(&app, &adb, "E2E-CALL-HANGUP", DEADLINE, true).await;
    let response = app
        .put_json(
            "/api/v1/devices/settings",
            &json!({ "device_ids": [p.device_id()], "settings": { "auto_hang_up": true } }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    eventually("the agent to have auto_hang_up on", DEADLINE, || async {
        p.handle.status().settings.auto_hang_up.then_some(())
    })
    .await;

    p.sim.set_fault(ring_when_typed());
    let task = p.run(&app, TaskKind::SendMessage, hello(), DEADLINE).await;
    assert_eq!(task.state, TaskState::Succeeded, "{task:?}");
    assert_eq!(task.attempt, 1, "{task:?}");
    assert_eq!(p.sim.call_state(), 0, "hung up");
    assert_eq!(
        p.sim.sent(),
        vec![SentEvent::Message {
            to: "张三".into(),
            text: TEXT.into(),
        }]
    );
    // Between the typing (when it rang) and the hang-up, nothing touched
    // the screen: the first input after the typing is the hang-up key.
    let inputs = p.sim.inputs();
    let typed = typed_at(&inputs);
    assert_eq!(
        inputs.get(typed + 1).map(|e| &e.input),
        Some(&Input::Key(6)),
        "{inputs:?}"
    );
}
