//! Every JSON example in `docs/protocol.md` and in each feature's file of
//! `docs/api/` parses as the type its code block names and serializes back to
//! the same fields, so the documents and the types cannot drift apart.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use youmi_protocol::{api, AgentMessage, BindRequest, BindResponse, ServerMessage};

/// `docs/protocol.md` and every file of `docs/api/`, each with its name; a
/// feature's new file is read without being listed here.
fn documents() -> Vec<(String, String)> {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut paths = vec![docs.join("protocol.md")];
    let mut features: Vec<_> = std::fs::read_dir(docs.join("api"))
        .expect("docs/api")
        .map(|entry| entry.expect("docs/api entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    assert!(!features.is_empty(), "docs/api holds no feature file");
    features.sort();
    paths.extend(features);
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), text)
        })
        .collect()
}

/// The `(tag, json)` of every code block fenced as ```` ```json <tag> ````.
fn examples() -> Vec<(String, String)> {
    let mut examples = Vec::new();
    for (name, text) in documents() {
        examples.extend(examples_in(&name, &text));
    }
    examples
}

fn examples_in(name: &str, text: &str) -> Vec<(String, String)> {
    let mut examples = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(tag) = line.strip_prefix("```json") else {
            continue;
        };
        let tag = tag.trim();
        assert!(!tag.is_empty(), "a json block in {name} names no type");
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        examples.push((tag.to_owned(), body.join("\n")));
    }
    examples
}

/// Every field of `original` appears in `reserialized` with the same value.
fn assert_contains(original: &Value, reserialized: &Value, path: &str) {
    match (original, reserialized) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let other = b
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}.{key} is lost in a round trip"));
                assert_contains(value, other, &format!("{path}.{key}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path} changes length in a round trip");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_contains(x, y, &format!("{path}[{i}]"));
            }
        }
        (a, b) => assert_eq!(a, b, "{path} changes in a round trip"),
    }
}

fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(tag: &str, json: &str) {
    let original: Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("`{tag}` example is not JSON: {e}\n{json}"));
    let parsed: T = serde_json::from_value(original.clone())
        .unwrap_or_else(|e| panic!("`{tag}` example does not parse: {e}\n{json}"));
    let reserialized = serde_json::to_value(&parsed).unwrap();
    assert_contains(&original, &reserialized, tag);
    let again: T = serde_json::from_value(reserialized).unwrap();
    assert_eq!(parsed, again, "`{tag}` example changes in a round trip");
}

#[test]
fn every_example_in_the_protocol_doc_parses_as_its_type() {
    let examples = examples();
    assert!(
        examples.len() >= 40,
        "only {} examples found",
        examples.len()
    );
    for (tag, json) in &examples {
        match tag.as_str() {
            "agent" => check::<AgentMessage>(tag, json),
            "server" => check::<ServerMessage>(tag, json),
            "bind_request" => check::<BindRequest>(tag, json),
            "bind_response" => check::<BindResponse>(tag, json),
            "error" => check::<api::ErrorBody>(tag, json),
            "login_request" => check::<api::LoginRequest>(tag, json),
            "login_response" => check::<api::LoginResponse>(tag, json),
            "create_operator_account" => check::<api::CreateOperatorAccount>(tag, json),
            "operator_account" => check::<api::OperatorAccount>(tag, json),
            "update_operator_account" => check::<api::UpdateOperatorAccount>(tag, json),
            "bind_code" => check::<api::BindCode>(tag, json),
            "submit_task" => check::<api::SubmitTask>(tag, json),
            "submitted_task" => check::<api::SubmittedTask>(tag, json),
            "submit_batch" => check::<api::SubmitBatch>(tag, json),
            "submitted_batch" => check::<api::SubmittedBatch>(tag, json),
            "task" => check::<api::TaskView>(tag, json),
            "task_page" => check::<api::TaskPage>(tag, json),
            "cancel_tasks" => check::<api::CancelTasks>(tag, json),
            "cancel_result" => check::<api::CancelResult>(tag, json),
            "device_list" => check::<api::DeviceList>(tag, json),
            "device_selection" => check::<api::DeviceSelection>(tag, json),
            "update_settings" => check::<api::UpdateSettings>(tag, json),
            "affected" => check::<api::Affected>(tag, json),
            "logs_requested" => check::<api::LogsRequested>(tag, json),
            "device_log_page" => check::<api::DeviceLogPage>(tag, json),
            "notification_page" => check::<api::NotificationPage>(tag, json),
            "mark_read" => check::<api::MarkRead>(tag, json),
            "marked_read" => check::<api::MarkedRead>(tag, json),
            "health" => check::<api::Health>(tag, json),
            "deliveries" => check::<Vec<youmi_protocol::delivery::Delivery>>(tag, json),
            other => panic!("the docs have a json block of unknown type `{other}`"),
        }
    }
}

#[test]
fn every_message_type_has_an_example() {
    let examples = examples();
    let types = |tag: &str| -> Vec<String> {
        examples
            .iter()
            .filter(|(t, _)| t == tag)
            .map(|(_, json)| {
                serde_json::from_str::<Value>(json).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let agent = types("agent");
    for t in [
        "hello",
        "accepted",
        "progress",
        "finished",
        "queue_changed",
        "heartbeat",
        "event",
        "update_status",
        "logs_uploaded",
    ] {
        assert!(
            agent.iter().any(|a| a == t),
            "no example of agent message `{t}`"
        );
    }
    let server = types("server");
    for t in [
        "welcome",
        "assign",
        "ack",
        "cancel",
        "queue",
        "settings",
        "upload_logs",
        "update",
        "error",
    ] {
        assert!(
            server.iter().any(|s| s == t),
            "no example of server message `{t}`"
        );
    }
}

#[test]
fn payload_examples_in_the_doc_fit_their_kind() {
    for (tag, json) in examples() {
        if tag != "submit_task" && tag != "submit_batch" {
            continue;
        }
        let value: Value = serde_json::from_str(&json).unwrap();
        let tasks = match value.get("tasks") {
            Some(tasks) => tasks.as_array().unwrap().clone(),
            None => vec![value],
        };
        for task in tasks {
            let task: api::SubmitTask = serde_json::from_value(task).unwrap();
            youmi_protocol::TaskPayload::parse(task.kind, &task.payload).unwrap();
        }
    }
}
