//! Task payloads are checked against their kind, and errors name the field.

use serde_json::{json, Value};
use youmi_protocol::task::{Contact, Item, TaskPayload};
use youmi_protocol::{TaskKind, TaskState};

fn field_of(kind: TaskKind, payload: Value) -> String {
    TaskPayload::parse(kind, &payload)
        .expect_err("should be refused")
        .field
}

#[test]
fn a_valid_payload_of_every_kind_parses() {
    let to = json!({"name": "Li Lei"});
    let items = json!([{"type": "text", "text": "hi"}, {"type": "image", "media_id": "m1"}, {"type": "file", "media_id": "f1"},
        {"type": "link", "url": "https://e.com", "title": "t"}]);
    let cases = [
        (TaskKind::SendMessage, json!({"to": to, "items": items})),
        (
            TaskKind::MassSend,
            json!({"recipients": [to, {"customer_id": 3}], "items": items}),
        ),
        (
            TaskKind::MomentsPost,
            json!({"text": "new", "media_ids": ["m1"], "visible_to_tags": ["vip"]}),
        ),
        (TaskKind::MomentsPost, json!({"media_ids": ["m1"]})),
        (
            TaskKind::FriendAdd,
            json!({"target": {"phone": "13800000000"}, "greeting": "hi", "tags": ["a"]}),
        ),
        (
            TaskKind::AcceptFriendRequest,
            json!({"from": {"external_id": "wm1"}, "remark": "new"}),
        ),
        (TaskKind::DeleteChat, json!({"with": to})),
        (
            TaskKind::SmartMarketing,
            json!({"flow_id": 4, "step": 0, "to": to, "items": items}),
        ),
    ];
    for (kind, payload) in cases {
        TaskPayload::parse(kind, &payload).unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
    let parsed =
        TaskPayload::parse(TaskKind::SendMessage, &json!({"to": to, "items": items})).unwrap();
    match &parsed {
        TaskPayload::SendMessage { to, items } => {
            assert_eq!(
                to,
                &Contact {
                    name: Some("Li Lei".into()),
                    ..Default::default()
                }
            );
            assert_eq!(items[0], Item::Text { text: "hi".into() });
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(parsed.texts(), vec!["hi", "t"]);
}

#[test]
fn errors_name_the_first_field_that_does_not_fit() {
    assert_eq!(field_of(TaskKind::SendMessage, json!("text")), "payload");
    assert_eq!(
        field_of(
            TaskKind::SendMessage,
            json!({"items": [{"type": "text", "text": "x"}]})
        ),
        "payload.to"
    );
    assert_eq!(
        field_of(TaskKind::SendMessage, json!({"to": {}, "items": []})),
        "payload.to"
    );
    assert_eq!(
        field_of(
            TaskKind::SendMessage,
            json!({"to": {"name": "a"}, "items": []})
        ),
        "payload.items"
    );
    assert_eq!(
        field_of(
            TaskKind::SendMessage,
            json!({"to": {"name": "a"}, "items": [{"type": "text", "text": "ok"}, {"type": "text"}]})
        ),
        "payload.items[1].text"
    );
    assert_eq!(
        field_of(
            TaskKind::SendMessage,
            json!({"to": {"name": "a"}, "items": [{"type": "video"}]})
        ),
        "payload.items[0].type"
    );
    assert_eq!(
        field_of(
            TaskKind::SendMessage,
            json!({"to": {"name": "a"}, "items": [{"type": "link", "url": "ftp://x", "title": "t"}]})
        ),
        "payload.items[0].url"
    );
    assert_eq!(
        field_of(
            TaskKind::SendMessage,
            json!({"to": {"customer_id": -1}, "items": []})
        ),
        "payload.to.customer_id"
    );
    assert_eq!(
        field_of(
            TaskKind::MassSend,
            json!({"recipients": [{"name": "a"}, {"nick": "b"}], "items": []})
        ),
        "payload.recipients[1]"
    );
    assert_eq!(
        field_of(TaskKind::MomentsPost, json!({"text": " "})),
        "payload.text"
    );
    assert_eq!(
        field_of(
            TaskKind::MomentsPost,
            json!({"text": "x", "media_ids": [1]})
        ),
        "payload.media_ids[0]"
    );
    assert_eq!(
        field_of(TaskKind::FriendAdd, json!({"target": {}})),
        "payload.target"
    );
    assert_eq!(
        field_of(TaskKind::SmartMarketing, json!({"flow_id": "x"})),
        "payload.flow_id"
    );
    assert_eq!(
        field_of(TaskKind::SmartMarketing, json!({"flow_id": 1, "step": -1})),
        "payload.step"
    );
    assert_eq!(
        field_of(TaskKind::DeleteChat, json!({"with": null})),
        "payload.with"
    );
    assert_eq!(
        field_of(TaskKind::AcceptFriendRequest, json!({"from": {"name": ""}})),
        "payload.from.name"
    );
}

#[test]
fn limits_hold() {
    let long = "x".repeat(youmi_protocol::task::limits::MAX_TEXT_CHARS + 1);
    assert_eq!(
        field_of(
            TaskKind::SendMessage,
            json!({"to": {"name": "a"}, "items": [{"type": "text", "text": long}]})
        ),
        "payload.items[0].text"
    );
    let many: Vec<Value> = (0..21)
        .map(|_| json!({"type": "text", "text": "x"}))
        .collect();
    assert_eq!(
        field_of(
            TaskKind::SendMessage,
            json!({"to": {"name": "a"}, "items": many})
        ),
        "payload.items"
    );
}

#[test]
fn kinds_and_states_have_stable_names() {
    for kind in TaskKind::ALL {
        assert_eq!(kind.as_str().parse::<TaskKind>().unwrap(), kind);
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
    }
    for state in TaskState::ALL {
        assert_eq!(state.as_str().parse::<TaskState>().unwrap(), state);
        assert_eq!(serde_json::to_value(state).unwrap(), json!(state.as_str()));
    }
    assert!("lost".parse::<TaskState>().is_err());
    assert!(TaskState::Expired.is_terminal() && !TaskState::Dispatched.is_terminal());
}
