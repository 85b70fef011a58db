//! Valid task payloads of every kind, and task submissions built from them.

use serde_json::{json, Value};
use youmi_protocol::api::SubmitTask;
use youmi_protocol::{OperatorAccountId, TaskKind};

/// A payload that fits `kind`, with `n` worked into it so tasks differ.
pub fn sample_payload(kind: TaskKind, n: u64) -> Value {
    let to = json!({ "name": format!("customer {n}") });
    let items = json!([{ "type": "text", "text": format!("hello {n}") }]);
    match kind {
        TaskKind::SendMessage => json!({ "to": to, "items": items }),
        TaskKind::MassSend => json!({
            "recipients": [to, { "external_id": format!("wm_{n}") }],
            "items": items,
        }),
        TaskKind::MomentsPost => json!({ "text": format!("post {n}"), "media_ids": [] }),
        TaskKind::FriendAdd => json!({
            "target": { "phone": format!("1380000{n:04}") },
            "greeting": "hello",
        }),
        TaskKind::SmartMarketing => json!({
            "flow_id": 7,
            "step": 1,
            "to": to,
            "items": items,
        }),
        TaskKind::DeleteChat => json!({ "with": to }),
        TaskKind::AcceptFriendRequest => json!({ "from": to, "remark": format!("r{n}") }),
    }
}

/// A task of `kind` for `account` with a sample payload and default priority.
pub fn task(account: OperatorAccountId, kind: TaskKind) -> SubmitTask {
    SubmitTask {
        operator_account_id: account,
        kind,
        payload: sample_payload(kind, account.unsigned_abs()),
        priority: None,
        not_before: None,
        not_after: None,
    }
}

/// A `send_message` task for `account`.
pub fn message(account: OperatorAccountId) -> SubmitTask {
    task(account, TaskKind::SendMessage)
}

/// A `send_message` task for `account` with a priority.
pub fn message_with_priority(account: OperatorAccountId, priority: u8) -> SubmitTask {
    SubmitTask {
        priority: Some(i64::from(priority)),
        ..message(account)
    }
}
