//! What became of each thing a task was to deliver: the `deliveries` list of a
//! `finished` report's `result`.
//!
//! A unit is one message item for one recipient (`mass_send`: recipients x
//! items; `send_message` and `smart_marketing`: their items), or the whole
//! task for kinds that do one thing (`moments_post` is one post). Every unit
//! of the task is listed, on success and on failure, in the task's order, and
//! the list counts what earlier attempts of the same task did: an item sent by
//! attempt 1 is `sent` with `"attempt": 1` in attempt 2's report.

use serde::{Deserialize, Serialize};

use crate::task::Contact;

/// One unit's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The recipient's number in a `mass_send`'s `recipients`, from 1; absent
    /// for the other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<u32>,
    /// The recipient as the task named it (`mass_send` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Contact>,
    /// The item's number in the task's `items`, from 1; absent when the unit
    /// is the whole task (a Moments post, a friend request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// The item's type (`text`, `image`, `link`, `file`), or the task kind
    /// when the unit is the whole task.
    #[serde(rename = "type")]
    pub unit_type: String,
    /// What became of it.
    pub outcome: DeliveryOutcome,
    /// For `sent` and `uncertain`: the attempt whose send tap it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// For `sent`: true when a later attempt found it in the chat rather than
    /// seeing its send tap complete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub checked: bool,
    /// For `failed` and `skipped`: the error code of why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// What became of one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// It reached the customer: its send tap completed, now or in an earlier
    /// attempt, or a later attempt found it in the chat. Never sent again.
    Sent,
    /// It was not sent: the attempt failed before its send tap (`code` says
    /// why). A retry sends it.
    Failed,
    /// It was not tried: its recipient was skipped (`code`, e.g.
    /// `contact_not_found`), or the flow does not send it.
    Skipped,
    /// Its send tap may have happened but was never confirmed, and the flow
    /// cannot tell from the chat: it is not sent again; a person should look.
    Uncertain,
}

impl DeliveryOutcome {
    /// The snake_case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Sent => "sent",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::Skipped => "skipped",
            DeliveryOutcome::Uncertain => "uncertain",
        }
    }
}
