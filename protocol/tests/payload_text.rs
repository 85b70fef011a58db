//! `TaskPayload::parse_text` (read from the JSON text, typed) must decide every
//! payload exactly as `TaskPayload::parse` (over a `serde_json::Value`) does:
//! each good payload of each kind, and every mutation of it at every place.

use serde_json::{json, Value};
use youmi_protocol::{TaskKind, TaskPayload};

fn good(kind: TaskKind) -> Value {
    let to = json!({"customer_id": 7, "external_id": "wm_1", "name": "Ann"});
    let items = json!([
        {"type": "text", "text": "hello"},
        {"type": "image", "media_id": "m1"},
        {"type": "file", "media_id": "f1"},
        {"type": "link", "url": "https://example.com", "title": "T", "description": "D"}
    ]);
    match kind {
        TaskKind::SendMessage => json!({"to": to, "items": items}),
        TaskKind::MassSend => json!({"recipients": [to, {"name": "Bob"}], "items": items}),
        TaskKind::MomentsPost => {
            json!({"text": "post", "media_ids": ["m1", "m2"], "visible_to_tags": ["vip"]})
        }
        TaskKind::FriendAdd => json!({
            "target": {"phone": "13800000000", "wecom_id": "w1"},
            "greeting": "hi", "remark": "r", "tags": ["a", "b"]
        }),
        TaskKind::SmartMarketing => json!({"flow_id": 3, "step": 2, "to": to, "items": items}),
        TaskKind::DeleteChat => json!({"with": to}),
        TaskKind::AcceptFriendRequest => json!({"from": to, "remark": "r"}),
    }
}

/// Values to put in place of any value, chosen to cross every rule: types,
/// blank and long strings, signs and sizes of numbers, empty and long lists,
/// objects where lists go and the other way round.
fn replacements() -> Vec<Value> {
    let long_field = "x".repeat(501);
    let long_text = "x".repeat(5_001);
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(1),
        json!(-1),
        json!(1.5),
        json!(2.0),
        json!(u64::MAX),
        json!(4_294_967_296_u64),
        json!(""),
        json!("   "),
        json!("x"),
        json!("text"),
        json!("link"),
        json!("image"),
        json!("http://a"),
        json!("ftp://a"),
        json!(long_field),
        json!(long_text),
        json!([]),
        json!(["x"]),
        json!([""]),
        json!(["x", 1]),
        json!({}),
        json!({"name": "Ann"}),
        json!({"customer_id": 0}),
        json!({"phone": "1"}),
        json!({"type": "text", "text": "t"}),
        json!([{"type": "text", "text": "t"}]),
        json!(["Ann", "x", 7]),
        Value::Array(vec![json!("x"); 10]),
        Value::Array(vec![json!({"type": "text", "text": "t"}); 21]),
        Value::Array(vec![json!("x"); 101]),
    ]
}

/// Every place in `value`, as a path of object keys and array indexes.
fn places(value: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(path.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(Step::Key(key.clone()));
                places(child, path, out);
                path.pop();
            }
        }
        Value::Array(values) => {
            for (i, child) in values.iter().enumerate() {
                path.push(Step::Index(i));
                places(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn at<'a>(value: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(value, |value, step| match step {
        Step::Key(key) => &mut value[key.as_str()],
        Step::Index(i) => &mut value[*i],
    })
}

fn parent_map<'a>(
    value: &'a mut Value,
    path: &[Step],
) -> Option<(&'a mut serde_json::Map<String, Value>, String)> {
    let (last, parent) = path.split_last()?;
    match (at(value, parent), last) {
        (Value::Object(map), Step::Key(key)) => Some((map, key.clone())),
        _ => None,
    }
}

fn check(kind: TaskKind, value: &Value, checked: &mut usize) {
    let by_value = TaskPayload::parse(kind, value);
    let by_text = TaskPayload::parse_text(kind, &value.to_string());
    assert_eq!(by_text, by_value, "{kind}: {value}");
    *checked += 1;
}

#[test]
fn the_text_path_decides_every_mutation_as_the_value_path() {
    let mut checked = 0;
    let mut accepted = 0;
    for kind in TaskKind::ALL {
        for base in [good(kind), json!({})] {
            let mut paths = Vec::new();
            places(&base, &mut Vec::new(), &mut paths);
            for path in &paths {
                for replacement in replacements() {
                    let mut value = base.clone();
                    *at(&mut value, path) = replacement;
                    check(kind, &value, &mut checked);
                    if TaskPayload::parse(kind, &value).is_ok() {
                        accepted += 1;
                    }
                }
                // The key removed, and an unknown key beside it.
                let mut value = base.clone();
                if let Some((map, key)) = parent_map(&mut value, path) {
                    map.remove(&key);
                    check(kind, &value, &mut checked);
                }
                let mut value = base.clone();
                if let Some((map, key)) = parent_map(&mut value, path) {
                    map.remove(&key);
                    map.insert("unknown".into(), json!([1, {"a": null}]));
                    check(kind, &value, &mut checked);
                }
            }
            // Every other kind's good payload, as this kind.
            for other in TaskKind::ALL {
                check(kind, &good(other), &mut checked);
            }
        }
    }
    // The corpus crosses both outcomes, many times over.
    assert!(checked > 2_000, "{checked}");
    assert!(accepted > 100, "{accepted}");
}

#[test]
fn what_only_the_text_shows_is_decided_as_the_value_path_does() {
    let kind = TaskKind::SendMessage;
    // An array in place of an object: serde would read it as the fields in order.
    let text = r#"{"to": [7, "wm_1", "Ann"], "items": [{"type": "text", "text": "t"}]}"#;
    let error = TaskPayload::parse_text(kind, text).unwrap_err();
    assert_eq!(error.field, "payload.to");
    // A key given twice: the last one counts, as in a parsed value.
    let text =
        r#"{"to": {"name": 5}, "to": {"name": "Ann"}, "items": [{"type": "text", "text": "t"}]}"#;
    let value: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        TaskPayload::parse_text(kind, text),
        TaskPayload::parse(kind, &value)
    );
    assert!(TaskPayload::parse_text(kind, text).is_ok());
    // Escapes in keys and strings, and spaces between tokens.
    let text = "{ \"t\\u006f\" : {\"name\": \"A\\u006en\"},\n \"items\": [{\"type\": \"text\", \"text\": \"t\"}] }";
    let value: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        TaskPayload::parse_text(kind, text),
        TaskPayload::parse(kind, &value)
    );
    assert!(TaskPayload::parse_text(kind, text).is_ok());
    // Not JSON at all.
    assert_eq!(
        TaskPayload::parse_text(kind, "{").unwrap_err().field,
        "payload"
    );
}
