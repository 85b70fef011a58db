//! Progress inside a task: which of its units (one message item for one
//! recipient, or the whole task for kinds that do one thing) may already
//! have reached a customer.
//!
//! The rules, which the flow runner applies and the journal keeps:
//! - before a send tap the unit is marked [`Mark::Sending`], after the tap
//!   completed [`Mark::Sent`]; each mark is fsynced in the agent's journal
//!   before the runner goes on, so a tap is never without its mark;
//! - a unit whose steps all ran is marked `Sent` as well (a flow that marks
//!   no send tap is still not repeated once done);
//! - a retry of the task (a later attempt on this agent) starts with the
//!   marks of the earlier attempts: a `Sent` unit is not done again; a
//!   `Sending` one is checked in the chat where the flow can ([`Mark::Found`]
//!   when it is there), and otherwise reported `uncertain` and not done again.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use youmi_protocol::delivery::{Delivery, DeliveryOutcome};
use youmi_protocol::task::{Contact, Item};
use youmi_protocol::{TaskId, TaskPayload};

use crate::future::BoxFuture;

/// Which unit of a task: the recipient's and the item's numbers, from 1.
/// Both absent is the whole task.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct UnitKey {
    /// The recipient's number in a `mass_send`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<u32>,
    /// The item's number in the task's `items`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
}

/// How far a unit got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// Its send tap is about to be made (or was made, unconfirmed).
    Sending,
    /// Its send tap completed, or all its steps ran.
    Sent,
    /// A later attempt found it in the chat after an unconfirmed tap.
    Found,
}

impl Mark {
    /// Whether the unit reached the customer.
    pub fn is_sent(self) -> bool {
        matches!(self, Mark::Sent | Mark::Found)
    }
}

/// One mark, as journaled: `{"task_id": 5, "attempt": 2, "recipient": 1,
/// "item": 2, "mark": "sending"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryMark {
    /// The task.
    pub task_id: TaskId,
    /// The attempt that made the tap (for `found`, the attempt whose tap was
    /// found).
    pub attempt: u32,
    /// The unit.
    #[serde(flatten)]
    pub unit: UnitKey,
    /// How far it got.
    pub mark: Mark,
}

/// Where marks go before the runner goes on: the agent's fsynced journal,
/// or memory for an executor run without an agent.
pub trait MarkSink: Send + Sync + std::fmt::Debug {
    /// Records the mark durably; an error means it could not be, and the
    /// runner must not make the tap.
    fn write<'a>(&'a self, mark: &'a DeliveryMark) -> BoxFuture<'a, Result<(), String>>;
}

/// Marks kept in memory (tests, and executors run without an agent).
#[derive(Debug, Default)]
pub struct MemoryMarks(Mutex<Vec<DeliveryMark>>);

impl MarkSink for MemoryMarks {
    fn write<'a>(&'a self, mark: &'a DeliveryMark) -> BoxFuture<'a, Result<(), String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(*mark);
        Box::pin(async { Ok(()) })
    }
}

/// The latest mark of each unit, in unit order.
pub fn latest(marks: &[DeliveryMark]) -> BTreeMap<UnitKey, DeliveryMark> {
    let mut out = BTreeMap::new();
    for mark in marks {
        out.insert(mark.unit, *mark);
    }
    out
}

/// One unit of a task, as reports list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit<'p> {
    /// Which.
    pub key: UnitKey,
    /// The item's type, or the task kind for the whole task.
    pub unit_type: &'static str,
    /// The recipient, for a mass send.
    pub to: Option<&'p Contact>,
}

/// The type of a message item, as payloads name it.
pub fn item_type(item: &Item) -> &'static str {
    match item {
        Item::Text { .. } => "text",
        Item::Image { .. } => "image",
        Item::Link { .. } => "link",
        Item::File { .. } => "file",
    }
}

/// Every unit of a task, in the order it is done: recipients x items for a
/// mass send, the items of a message, the whole task for the other kinds.
pub fn units(payload: &TaskPayload) -> Vec<Unit<'_>> {
    let numbered = |i: usize| Some(u32::try_from(i + 1).unwrap_or(u32::MAX));
    match payload {
        TaskPayload::MassSend { recipients, items } => recipients
            .iter()
            .enumerate()
            .flat_map(|(r, to)| {
                items.iter().enumerate().map(move |(i, item)| Unit {
                    key: UnitKey {
                        recipient: numbered(r),
                        item: numbered(i),
                    },
                    unit_type: item_type(item),
                    to: Some(to),
                })
            })
            .collect(),
        TaskPayload::SendMessage { items, .. } | TaskPayload::SmartMarketing { items, .. } => items
            .iter()
            .enumerate()
            .map(|(i, item)| Unit {
                key: UnitKey {
                    recipient: None,
                    item: numbered(i),
                },
                unit_type: item_type(item),
                to: None,
            })
            .collect(),
        other => vec![Unit {
            key: UnitKey::default(),
            unit_type: whole_task_type(other),
            to: None,
        }],
    }
}

/// The kind of a task whose only unit is the whole task.
fn whole_task_type(payload: &TaskPayload) -> &'static str {
    match payload {
        TaskPayload::MomentsPost { .. } => "moments_post",
        TaskPayload::FriendAdd { .. } => "friend_add",
        TaskPayload::DeleteChat { .. } => "delete_chat",
        TaskPayload::AcceptFriendRequest { .. } => "accept_friend_request",
        TaskPayload::SendMessage { .. } => "send_message",
        TaskPayload::MassSend { .. } => "mass_send",
        TaskPayload::SmartMarketing { .. } => "smart_marketing",
    }
}

/// The `deliveries` of a report: every unit of the task with its outcome.
/// A unit marked sent (or found) is `sent`, one marked sending only is
/// `uncertain`; `otherwise` says what became of an unmarked one (and why).
pub fn report(
    payload: &TaskPayload,
    marks: &BTreeMap<UnitKey, DeliveryMark>,
    otherwise: impl Fn(&Unit<'_>) -> (DeliveryOutcome, Option<String>),
) -> Vec<Delivery> {
    units(payload)
        .iter()
        .map(|unit| {
            let (outcome, attempt, checked, code) = match marks.get(&unit.key) {
                Some(mark) if mark.mark.is_sent() => (
                    DeliveryOutcome::Sent,
                    Some(mark.attempt),
                    mark.mark == Mark::Found,
                    None,
                ),
                Some(mark) => (DeliveryOutcome::Uncertain, Some(mark.attempt), false, None),
                None => {
                    let (outcome, code) = otherwise(unit);
                    (outcome, None, false, code)
                }
            };
            Delivery {
                recipient: unit.key.recipient,
                to: unit.to.cloned(),
                item: unit.key.item,
                unit_type: unit.unit_type.to_owned(),
                outcome,
                attempt,
                checked,
                code,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn marks_read_and_write_as_documented() {
        let mark = DeliveryMark {
            task_id: 5,
            attempt: 2,
            unit: UnitKey {
                recipient: Some(1),
                item: Some(2),
            },
            mark: Mark::Sending,
        };
        let value = serde_json::to_value(mark).unwrap();
        assert_eq!(
            value,
            json!({"task_id": 5, "attempt": 2, "recipient": 1, "item": 2, "mark": "sending"})
        );
        assert_eq!(serde_json::from_value::<DeliveryMark>(value).unwrap(), mark);
        let whole: DeliveryMark =
            serde_json::from_value(json!({"task_id": 6, "attempt": 1, "mark": "sent"})).unwrap();
        assert_eq!(whole.unit, UnitKey::default());
        let later = DeliveryMark {
            mark: Mark::Sent,
            ..mark
        };
        let latest = latest(&[mark, whole, later]);
        assert_eq!(latest.len(), 2);
        assert_eq!(latest[&mark.unit].mark, Mark::Sent);
        assert!(Mark::Found.is_sent() && !Mark::Sending.is_sent());
    }
}
