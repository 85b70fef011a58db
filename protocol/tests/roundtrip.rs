//! Every message of agent protocol v1 survives a trip through JSON, with its
//! `type` tag spelled as the contract says.

use serde_json::{json, Value};
use youmi_protocol::agent::UpdateState;
use youmi_protocol::{
    AgentMessage, AgentSettings, AssignedTask, AutoResume, CallStatus, DeviceInfo, FinishedReport,
    Outcome, ServerMessage, SettingsPatch, TaskError, TaskKind,
};

fn device() -> DeviceInfo {
    DeviceInfo {
        serial: "R58M".into(),
        model: "SM-G9910".into(),
        android_version: "13".into(),
        agent_version: "0.1.0".into(),
    }
}

fn report() -> FinishedReport {
    FinishedReport {
        task_id: 7,
        outcome: Outcome::Failed,
        error: Some(TaskError {
            code: "ui_timeout".into(),
            message: "no chat screen".into(),
            retryable: true,
        }),
        result: Some(json!({"screen": "home"})),
    }
}

fn round_trip_agent(message: AgentMessage, tag: &str) {
    let value = serde_json::to_value(&message).unwrap();
    assert_eq!(value["type"], tag);
    let text = serde_json::to_string(&message).unwrap();
    assert_eq!(
        serde_json::from_str::<AgentMessage>(&text).unwrap(),
        message
    );
}

fn round_trip_server(message: ServerMessage, tag: &str) {
    let value = serde_json::to_value(&message).unwrap();
    assert_eq!(value["type"], tag);
    let text = serde_json::to_string(&message).unwrap();
    assert_eq!(
        serde_json::from_str::<ServerMessage>(&text).unwrap(),
        message
    );
}

#[test]
fn agent_messages_round_trip() {
    round_trip_agent(
        AgentMessage::Hello {
            agent_version: "0.1.0".into(),
            device: device(),
            queue_paused: true,
            running: vec![1, 2],
            finished: vec![report()],
        },
        "hello",
    );
    round_trip_agent(AgentMessage::Accepted { task_id: 3 }, "accepted");
    round_trip_agent(
        AgentMessage::Progress {
            task_id: 3,
            step: "send".into(),
            done: 1,
            total: 2,
        },
        "progress",
    );
    round_trip_agent(AgentMessage::Finished(report()), "finished");
    round_trip_agent(
        AgentMessage::Finished(FinishedReport {
            task_id: 4,
            outcome: Outcome::Cancelled,
            error: None,
            result: None,
        }),
        "finished",
    );
    round_trip_agent(
        AgentMessage::QueueChanged {
            paused: false,
            reason: "volume_key".into(),
        },
        "queue_changed",
    );
    round_trip_agent(
        AgentMessage::Heartbeat {
            battery: Some(50),
            charging: Some(false),
            screen_on: Some(true),
            foreground_app: Some("x".into()),
            call: Some(CallStatus::Ringing),
            wecom_version: None,
            dnd: None,
        },
        "heartbeat",
    );
    round_trip_agent(
        AgentMessage::Heartbeat {
            battery: None,
            charging: None,
            screen_on: None,
            foreground_app: None,
            call: None,
            wecom_version: None,
            dnd: None,
        },
        "heartbeat",
    );
    round_trip_agent(
        AgentMessage::Event {
            kind: "incoming_message".into(),
            data: json!({"text": "hi"}),
        },
        "event",
    );
    round_trip_agent(
        AgentMessage::UpdateStatus {
            version: "0.2.0".into(),
            state: UpdateState::Downloading,
            message: None,
        },
        "update_status",
    );
    round_trip_agent(
        AgentMessage::LogsUploaded {
            request_id: "r1".into(),
            error: Some("disk".into()),
        },
        "logs_uploaded",
    );
}

#[test]
fn heartbeats_carry_the_call_state_but_never_a_number() {
    for (status, word) in [
        (CallStatus::Idle, "idle"),
        (CallStatus::Ringing, "ringing"),
        (CallStatus::Active, "active"),
    ] {
        let beat = AgentMessage::Heartbeat {
            battery: Some(80),
            charging: None,
            screen_on: None,
            foreground_app: None,
            call: Some(status),
            wecom_version: None,
            dnd: None,
        };
        let value = serde_json::to_value(&beat).unwrap();
        assert_eq!(
            value,
            json!({"type": "heartbeat", "battery": 80, "call": word})
        );
        assert_eq!(serde_json::from_value::<AgentMessage>(value).unwrap(), beat);
    }
    // An agent older than the field sends none: it parses, as not known,
    // and a heartbeat that does not know is sent without it.
    let old: AgentMessage =
        serde_json::from_str(r#"{"type": "heartbeat", "battery": 55, "screen_on": true}"#).unwrap();
    assert_eq!(
        old,
        AgentMessage::Heartbeat {
            battery: Some(55),
            charging: None,
            screen_on: Some(true),
            foreground_app: None,
            call: None,
            wecom_version: None,
            dnd: None,
        }
    );
    let text = serde_json::to_string(&old).unwrap();
    assert!(!text.contains("call"), "{text}");
    // Only the three states are read; a number in their place is refused.
    assert!(serde_json::from_str::<AgentMessage>(
        r#"{"type": "heartbeat", "call": "13800138000"}"#
    )
    .is_err());
}

#[test]
fn server_messages_round_trip() {
    let settings = AgentSettings {
        countdown_popup: true,
        ..AgentSettings::default()
    };
    round_trip_server(
        ServerMessage::Welcome {
            device_id: "dev_1".into(),
            operator_account_id: 9,
            settings,
            server_time_ms: 1,
        },
        "welcome",
    );
    round_trip_server(
        ServerMessage::Assign {
            task: AssignedTask {
                id: 5,
                kind: TaskKind::FriendAdd,
                payload: json!({"target": {"phone": "13800000000"}}),
                attempt: 2,
                not_after_ms: Some(99),
            },
        },
        "assign",
    );
    round_trip_server(ServerMessage::Ack { task_id: 5 }, "ack");
    round_trip_server(ServerMessage::Cancel { task_id: 5 }, "cancel");
    round_trip_server(
        ServerMessage::Queue {
            paused: true,
            resume_at_ms: Some(10),
        },
        "queue",
    );
    round_trip_server(
        ServerMessage::Queue {
            paused: false,
            resume_at_ms: None,
        },
        "queue",
    );
    round_trip_server(ServerMessage::Settings { settings }, "settings");
    round_trip_server(
        ServerMessage::UploadLogs {
            request_id: "r".into(),
            url: "http://x".into(),
        },
        "upload_logs",
    );
    round_trip_server(
        ServerMessage::Update {
            version: "1".into(),
            url: "http://x".into(),
            sha256: "ab".into(),
        },
        "update",
    );
    round_trip_server(
        ServerMessage::Error {
            code: "bad_message".into(),
            message: "no".into(),
        },
        "error",
    );
}

#[test]
fn unknown_types_and_bad_fields_are_refused() {
    assert!(serde_json::from_str::<AgentMessage>(r#"{"type":"hullo"}"#).is_err());
    assert!(serde_json::from_str::<AgentMessage>(r#"{"type":"accepted"}"#).is_err());
    assert!(serde_json::from_str::<AgentMessage>(
        r#"{"type":"finished","task_id":1,"outcome":"maybe"}"#
    )
    .is_err());
    assert!(serde_json::from_str::<AgentMessage>("not json").is_err());
}

#[test]
fn settings_fill_defaults_and_refuse_bad_values() {
    let settings: AgentSettings = serde_json::from_str("{}").unwrap();
    assert_eq!(settings, AgentSettings::default());
    assert!(settings.dnd_while_running && settings.open_on_boot && !settings.countdown_popup);
    for minutes in [0, 1, 3, 5, 10] {
        let value: AgentSettings =
            serde_json::from_value(json!({ "auto_resume_after_min": minutes })).unwrap();
        assert_eq!(value.auto_resume_after_min.minutes(), minutes);
    }
    for bad in [2, 4, 60] {
        assert!(
            serde_json::from_value::<AgentSettings>(json!({ "auto_resume_after_min": bad }))
                .is_err()
        );
    }
    assert!(
        serde_json::from_value::<SettingsPatch>(json!({"countdown": true})).is_err(),
        "unknown keys are refused"
    );
    let patch: SettingsPatch =
        serde_json::from_value(json!({"auto_resume_after_min": 5, "auto_hang_up": true})).unwrap();
    let merged = patch.apply(AgentSettings::default());
    assert_eq!(
        merged.auto_resume_after_min,
        AutoResume::try_from(5).unwrap()
    );
    assert!(merged.auto_hang_up && merged.dnd_while_running);
    assert_eq!(
        serde_json::to_value(patch).unwrap(),
        json!({"auto_resume_after_min": 5, "auto_hang_up": true})
    );
}

#[test]
fn hello_fields_default_when_absent() {
    let hello: AgentMessage =
        serde_json::from_value(json!({"type": "hello", "agent_version": "1", "device": {}}))
            .unwrap();
    match hello {
        AgentMessage::Hello {
            queue_paused,
            running,
            finished,
            ..
        } => {
            assert!(!queue_paused && running.is_empty() && finished.is_empty())
        }
        other => panic!("{other:?}"),
    }
    let value: Value = serde_json::to_value(AgentMessage::Accepted { task_id: 1 }).unwrap();
    assert_eq!(value, json!({"type": "accepted", "task_id": 1}));
}

#[test]
fn assign_frames_from_payload_text_match_the_message() {
    use youmi_protocol::agent::assign_frame;
    use youmi_protocol::{AssignedTask, TaskKind};
    // Keys in sorted order, as a `Value` writes them, so the texts compare.
    let payloads = [
        r#"{"items":[{"text":"hi \"there\"\n","type":"text"}],"to":{"name":"张三"}}"#,
        r#"{"items":[],"recipients":[]}"#,
    ];
    for payload in payloads {
        for not_after_ms in [None, Some(1_795_000_000_000)] {
            let message = ServerMessage::Assign {
                task: AssignedTask {
                    id: 42,
                    kind: TaskKind::SendMessage,
                    payload: serde_json::from_str(payload).unwrap(),
                    attempt: 2,
                    not_after_ms,
                },
            };
            let frame = assign_frame(42, TaskKind::SendMessage, 2, not_after_ms, payload).unwrap();
            assert_eq!(frame, serde_json::to_string(&message).unwrap());
            assert_eq!(
                serde_json::from_str::<ServerMessage>(&frame).unwrap(),
                message
            );
        }
    }
    // Any other key order is kept, and means the same.
    let unsorted = r#"{"to":{"name":"Ann"},"items":[]}"#;
    let frame = assign_frame(7, TaskKind::SendMessage, 1, None, unsorted).unwrap();
    assert!(frame.contains(unsorted), "{frame}");
    match serde_json::from_str::<ServerMessage>(&frame).unwrap() {
        ServerMessage::Assign { task } => {
            assert_eq!(
                task.payload,
                serde_json::from_str::<serde_json::Value>(unsorted).unwrap()
            )
        }
        other => panic!("not an assign: {other:?}"),
    }
    assert!(assign_frame(1, TaskKind::SendMessage, 1, None, "{not json").is_err());
}

#[test]
fn heartbeats_carry_wecom_version_and_dnd_when_known() {
    let beat = AgentMessage::Heartbeat {
        battery: None,
        charging: None,
        screen_on: Some(false),
        foreground_app: None,
        call: None,
        wecom_version: Some("4.1.22".into()),
        dnd: Some(true),
    };
    let value = serde_json::to_value(&beat).unwrap();
    assert_eq!(
        value,
        json!({"type": "heartbeat", "screen_on": false, "wecom_version": "4.1.22", "dnd": true})
    );
    assert_eq!(serde_json::from_value::<AgentMessage>(value).unwrap(), beat);
    // An agent older than the fields sends neither: not known.
    let old: AgentMessage = serde_json::from_str(r#"{"type": "heartbeat", "battery": 9}"#).unwrap();
    assert!(matches!(
        old,
        AgentMessage::Heartbeat {
            wecom_version: None,
            dnd: None,
            ..
        }
    ));
}
