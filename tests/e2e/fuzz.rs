//! Generated hostile input against the real server (issue 10, section 2):
//! agent frames built from the protocol's types and from raw bytes, and task
//! payloads of every shape, through the decoder, the payload check, the
//! scheduler and the store, on SQLite or PostgreSQL. Whatever comes in: no
//! panic, no 500, no exit; the frame or request gets a typed error, the
//! connection stays usable, and what was stored loads again after a restart.
//!
//! The cases are drawn from a seed printed at the start; set
//! `YOUMI_FUZZ_SEED` to replay a run and `YOUMI_FUZZ_CASES` to draw more.

use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use reqwest::StatusCode;
use serde_json::{json, Value};
use youmi_protocol::api::ErrorBody;
use youmi_protocol::{
    AgentMessage, DeviceInfo, FinishedReport, Outcome, ServerMessage, TaskError, TaskKind,
    UpdateState,
};
use youmi_tests::{Incoming, RawAgent, TestApp};

const SECS_5: Duration = Duration::from_secs(5);

/// The run's random source: a seed from `YOUMI_FUZZ_SEED`, or a new one,
/// printed so that a failing run can be replayed.
fn runner() -> TestRunner {
    let seed: u64 = std::env::var("YOUMI_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("fuzz seed: YOUMI_FUZZ_SEED={seed}");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        RunnerConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

fn cases(default: usize) -> usize {
    std::env::var("YOUMI_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Draws `count` values of the strategy `make` builds, on a thread with a
/// large stack: strategies of nested types recurse deeply in debug builds.
fn draw<S, F>(count: usize, make: F) -> Vec<S::Value>
where
    S: Strategy,
    S::Value: Send + 'static,
    F: FnOnce() -> S + Send + 'static,
{
    std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(move || {
            let mut runner = runner();
            let strategy = make();
            (0..count)
                .map(|_| {
                    strategy
                        .new_tree(&mut runner)
                        .expect("a value can be drawn")
                        .current()
                })
                .collect()
        })
        .expect("a thread to draw cases on")
        .join()
        .expect("drawing cases")
}

// ---- strategies -------------------------------------------------------------

/// Text with what breaks storage and encoders: NUL, quotes, backslashes,
/// control characters, surrogate-range neighbours, any char, sometimes long.
fn text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => any::<char>(),
        1 => Just('\0'),
        1 => Just('"'),
        1 => Just('\\'),
        1 => Just('\u{1}'),
        1 => Just('\u{FFFD}'),
        1 => Just('\u{10FFFF}'),
        2 => proptest::char::range('a', 'z'),
        1 => proptest::char::range('\u{4e00}', '\u{4e20}'),
    ];
    prop_oneof![
        8 => proptest::collection::vec(ch.clone(), 0..24).prop_map(String::from_iter),
        1 => proptest::collection::vec(ch, 200..1_000).prop_map(String::from_iter),
    ]
}

/// A short object key, hostile characters included.
fn key() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => any::<char>(),
        1 => Just('\0'),
        1 => Just('"'),
    ];
    proptest::collection::vec(ch, 0..8).prop_map(String::from_iter)
}

fn task_id() -> impl Strategy<Value = i64> {
    prop_oneof![0..20i64, any::<i64>(), Just(i64::MAX), Just(i64::MIN)]
}

/// Any JSON value, nested up to a few levels, with hostile strings and numbers.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn device_info() -> impl Strategy<Value = DeviceInfo> {
    (text(), text(), text(), text()).prop_map(|(serial, model, android_version, agent_version)| {
        DeviceInfo {
            serial,
            model,
            android_version,
            agent_version,
        }
    })
}

fn report() -> impl Strategy<Value = FinishedReport> {
    let outcome = prop_oneof![
        Just(Outcome::Succeeded),
        Just(Outcome::Failed),
        Just(Outcome::Cancelled)
    ];
    let error = proptest::option::of((text(), text(), any::<bool>()).prop_map(
        |(code, message, retryable)| TaskError {
            code,
            message,
            retryable,
        },
    ));
    (
        task_id(),
        outcome,
        error,
        proptest::option::of(json_value()),
    )
        .prop_map(|(task_id, outcome, error, result)| FinishedReport {
            task_id,
            outcome,
            error,
            result,
        })
}

/// Every agent message, with hostile fields.
fn agent_message() -> impl Strategy<Value = AgentMessage> {
    prop_oneof![
        (
            text(),
            device_info(),
            any::<bool>(),
            proptest::collection::vec(task_id(), 0..4),
            proptest::collection::vec(report(), 0..3)
        )
            .prop_map(|(agent_version, device, queue_paused, running, finished)| {
                AgentMessage::Hello {
                    agent_version,
                    device,
                    queue_paused,
                    running,
                    finished,
                }
            }),
        task_id().prop_map(|task_id| AgentMessage::Accepted { task_id }),
        (task_id(), text(), any::<u32>(), any::<u32>()).prop_map(|(task_id, step, done, total)| {
            AgentMessage::Progress {
                task_id,
                step,
                done,
                total,
            }
        }),
        report().prop_map(AgentMessage::Finished),
        (any::<bool>(), text())
            .prop_map(|(paused, reason)| AgentMessage::QueueChanged { paused, reason }),
        (
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(text())
        )
            .prop_map(
                |(battery, charging, foreground_app)| AgentMessage::Heartbeat {
                    battery,
                    charging,
                    screen_on: None,
                    foreground_app,
                    call: None,
                    wecom_version: None,
                    dnd: None,
                }
            ),
        (text(), json_value()).prop_map(|(kind, data)| AgentMessage::Event { kind, data }),
        (text(), proptest::option::of(text())).prop_map(|(version, message)| {
            AgentMessage::UpdateStatus {
                version,
                state: UpdateState::Failed,
                message,
            }
        }),
        (text(), proptest::option::of(text()))
            .prop_map(|(request_id, error)| AgentMessage::LogsUploaded { request_id, error }),
        (task_id(), text(), text()).prop_map(|(task_id, code, message)| AgentMessage::Refused {
            task_id,
            code,
            message
        }),
    ]
}

/// A text frame: a protocol message, one with its bytes damaged, or junk.
fn frame_text() -> impl Strategy<Value = String> {
    let message = || agent_message().prop_map(|m| serde_json::to_string(&m).unwrap());
    prop_oneof![
        6 => message(),
        // A message cut short, or with a byte changed.
        2 => (message(), any::<prop::sample::Index>()).prop_map(|(text, at)| {
            let mut end = at.index(text.len().max(1));
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].to_owned()
        }),
        2 => (message(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(text, at, byte)| {
            let mut bytes = text.into_bytes();
            let i = at.index(bytes.len().max(1)).min(bytes.len().saturating_sub(1));
            if let Some(b) = bytes.get_mut(i) {
                *b = byte;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }),
        // Raw bytes.
        1 => proptest::collection::vec(any::<u8>(), 0..200)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        // Nested past any reader's limit.
        1 => (1usize..3_000).prop_map(|depth| format!(
            r#"{{"type":"event","kind":"x","data":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )),
        // Known types with fields of the wrong type.
        1 => (text(), json_value()).prop_map(|(kind, value)| json!({
            "type": kind, "task_id": value, "device": value, "running": value, "finished": value,
        }).to_string()),
    ]
}

// ---- frames -------------------------------------------------------------------

/// Sends a probe the server always answers (an unknown type gets
/// `bad_message`) and reads up to its answer. `false` if the connection
/// closed instead; it must then have said why with an `error` frame.
async fn still_served(agent: &mut RawAgent, last: &str) -> bool {
    agent.send_text(r#"{"type":"fuzz_probe"}"#).await;
    let mut errors = Vec::new();
    loop {
        match agent.next(SECS_5).await {
            Incoming::Message(ServerMessage::Error { code, message }) => {
                assert!(!code.is_empty(), "an error frame without a code: {message}");
                if code == "bad_message" && message.contains("fuzz_probe") {
                    return true;
                }
                errors.push(code);
            }
            Incoming::Message(_) => {}
            Incoming::Closed(reason) => {
                assert!(
                    !errors.is_empty(),
                    "the connection closed ({reason:?}) without an error frame after: {last}"
                );
                return false;
            }
            Incoming::Timeout => panic!("the server stopped answering after: {last}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_agent_frames_never_stop_the_server() {
    let mut app = TestApp::spawn().await;
    let account = app.create_account().await;
    let bound = app.bind_raw(account.id).await;
    let total = cases(150);
    let drawn = draw(total * 4, frame_text);
    let (mut agent, _) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    let mut reconnects = 0;
    for (case, frames) in drawn.chunks(4).enumerate() {
        for frame in frames {
            agent.send_text(frame.clone()).await;
        }
        if case % 8 == 0 {
            agent.send_binary(frames[0].clone().into_bytes()).await;
        }
        if !still_served(&mut agent, &frames.join("\n")).await {
            reconnects += 1;
            agent = RawAgent::connect_hello(&app.ws_url(), &bound.token).await.0;
        }
    }
    eprintln!("{total} rounds of 4 frames; {reconnects} reconnects");
    // A frame with text that cannot be stored is named, and changes nothing.
    let hello = AgentMessage::Hello {
        agent_version: "1".into(),
        device: DeviceInfo {
            serial: "R58\0M".into(),
            ..DeviceInfo::default()
        },
        queue_paused: false,
        running: vec![],
        finished: vec![],
    };
    agent.send(&hello).await;
    // (Answers to the last fuzzed frames may come first.)
    let message = agent
        .recv_where(SECS_5, |m| match m {
            ServerMessage::Error { code, message } if code == "bad_text" => Some(message.clone()),
            _ => None,
        })
        .await;
    assert!(message.contains("device.serial"), "{message}");

    // The server still works, and what the frames stored loads again.
    let devices = app.get("/api/v1/devices").await;
    assert_eq!(devices.status(), StatusCode::OK);
    drop(agent);
    app.restart().await;
    let (mut agent, _) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    assert_eq!(app.devices().await.len(), 1);
    app.resume(&[bound.device_id.as_str()]).await;
    let task = app
        .submit(&youmi_tests::payloads::message(account.id))
        .await;
    let assigned = agent.recv_assign(SECS_5).await;
    assert_eq!(assigned.id, task.id);
}

// ---- payloads -----------------------------------------------------------------

/// Where two JSON values first differ, briefly.
fn first_difference(sent: &Value, stored: &Value, path: &str) -> Option<String> {
    let short = |v: &Value| v.to_string().chars().take(80).collect::<String>();
    match (sent, stored) {
        (Value::Object(a), Value::Object(b)) => {
            if a.len() != b.len() {
                return Some(format!("{path}: {} keys sent, {} stored", a.len(), b.len()));
            }
            a.iter().find_map(|(key, value)| match b.get(key) {
                None => Some(format!("{path}: key {key:?} lost")),
                Some(other) => first_difference(value, other, &format!("{path}.{key:?}")),
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]"))),
        (a, b) if a == b => None,
        (a, b) => Some(format!("{path}: sent {}, stored {}", short(a), short(b))),
    }
}

/// A payload near the shape of `kind`, with hostile values put in.
fn near_payload() -> impl Strategy<Value = (String, Value)> {
    let kind = prop_oneof![
        8 => proptest::sample::select(TaskKind::ALL.to_vec()).prop_map(|k| k.to_string()),
        1 => text(),
    ];
    let to = prop_oneof![
        text().prop_map(|name| json!({ "name": name })),
        json_value().prop_map(|v| json!({ "external_id": v })),
        json_value(),
    ];
    let item = prop_oneof![
        text().prop_map(|t| json!({ "type": "text", "text": t })),
        text().prop_map(|m| json!({ "type": "image", "media_id": m })),
        json_value(),
    ];
    (
        kind,
        to.clone(),
        proptest::collection::vec(item, 0..4),
        proptest::collection::vec(to, 0..4),
        json_value(),
    )
        .prop_map(|(kind, to, items, recipients, extra)| {
            let payload = json!({
                "to": to, "with": to, "from": to, "target": to,
                "items": items, "recipients": recipients,
                "text": "post", "media_ids": [], "flow_id": 1, "step": 1, "extra": extra,
            });
            (kind, payload)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_payloads_get_a_typed_answer_and_round_trip() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let total = cases(100);
    let drawn = draw(total * 3, || {
        prop_oneof![
            3 => near_payload(),
            1 => (text(), json_value()),
        ]
    });
    let mut accepted = 0;
    for (case, batch) in drawn.chunks(3).enumerate() {
        let bodies: Vec<Value> = batch
            .iter()
            .map(|(kind, payload)| {
                json!({"operator_account_id": account.id, "kind": kind, "payload": payload, "priority": case % 10})
            })
            .collect();
        // One at a time.
        let mut singles = Vec::new();
        for body in &bodies {
            let response = app.post_json("/api/v1/tasks", body).await;
            let status = response.status();
            let text = response.text().await.unwrap();
            match status {
                StatusCode::CREATED => {
                    let id = serde_json::from_str::<Value>(&text).unwrap()["id"]
                        .as_i64()
                        .unwrap();
                    let stored = app.task(id).await;
                    if let Some(diff) =
                        first_difference(&body["payload"], &stored.payload, "payload")
                    {
                        panic!("the payload does not round-trip: {diff}");
                    }
                    accepted += 1;
                    singles.push(true);
                }
                StatusCode::BAD_REQUEST
                | StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::UNPROCESSABLE_ENTITY => {
                    let error: ErrorBody = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{status} without an error body ({e}): {text}"));
                    assert!(!error.error.code.is_empty());
                    singles.push(false);
                }
                other => panic!("{other} for {body}: {text}"),
            }
        }
        // The same three as a batch: all or nothing, agreeing with the singles.
        let response = app
            .post_json("/api/v1/tasks/batch", &json!({ "tasks": bodies }))
            .await;
        let status = response.status();
        let text = response.text().await.unwrap();
        if singles.iter().all(|ok| *ok) {
            assert_eq!(status, StatusCode::CREATED, "{text}");
        } else {
            assert!(
                matches!(status.as_u16(), 400 | 413 | 422),
                "batch answered {status}: {text}"
            );
            let error: ErrorBody = serde_json::from_str(&text).unwrap();
            let field = error.error.field.unwrap_or_default();
            assert!(field.starts_with("tasks[") || status == 400, "{text}");
        }
    }
    eprintln!("{total} rounds of 3 payloads; {accepted} accepted one by one");
    assert!(app.get("/api/v1/tasks?limit=1").await.status().is_success());
}
