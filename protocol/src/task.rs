//! Task kinds, task states and the payload of each kind.
//!
//! [`TaskPayload::parse`] checks a payload against its kind and names the first
//! field that does not fit, e.g. `payload.items[1].text`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a task does on the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// 聊天任务: send items to one contact.
    SendMessage,
    /// 群发: one account's share of a mass-send batch.
    MassSend,
    /// 发朋友圈: post to Moments.
    MomentsPost,
    /// 加粉: add a friend by phone number or WeCom id.
    FriendAdd,
    /// 智能营销: one step of a marketing flow.
    SmartMarketing,
    /// 删除聊天记录: delete the chat with a contact.
    DeleteChat,
    /// 通过好友申请: accept a friend request.
    AcceptFriendRequest,
}

impl TaskKind {
    /// Every kind, in a stable order.
    pub const ALL: [TaskKind; 7] = [
        TaskKind::SendMessage,
        TaskKind::MassSend,
        TaskKind::MomentsPost,
        TaskKind::FriendAdd,
        TaskKind::SmartMarketing,
        TaskKind::DeleteChat,
        TaskKind::AcceptFriendRequest,
    ];

    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::SendMessage => "send_message",
            TaskKind::MassSend => "mass_send",
            TaskKind::MomentsPost => "moments_post",
            TaskKind::FriendAdd => "friend_add",
            TaskKind::SmartMarketing => "smart_marketing",
            TaskKind::DeleteChat => "delete_chat",
            TaskKind::AcceptFriendRequest => "accept_friend_request",
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown task kind `{s}`"))
    }
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting in its account's queue.
    Queued,
    /// Sent to the device, not yet accepted.
    Dispatched,
    /// Accepted by the agent.
    Running,
    /// Done.
    Succeeded,
    /// Could not be done.
    Failed,
    /// Withdrawn before or while it ran.
    Cancelled,
    /// Refused because its text contains a monitored keyword.
    Intercepted,
    /// Its `not_after` passed before it could start.
    Expired,
}

impl TaskState {
    /// Every state, in lifecycle order.
    pub const ALL: [TaskState; 8] = [
        TaskState::Queued,
        TaskState::Dispatched,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
        TaskState::Intercepted,
        TaskState::Expired,
    ];

    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Dispatched => "dispatched",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Intercepted => "intercepted",
            TaskState::Expired => "expired",
        }
    }

    /// Whether the task has ended and will not change again.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            TaskState::Queued | TaskState::Dispatched | TaskState::Running
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown task state `{s}`"))
    }
}

/// A customer or group chat to talk to: at least one of the three names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The CRM's customer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<i64>,
    /// WeCom's external user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The name (or remark) shown on the phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An uploaded image.
    Image {
        /// The uploaded file's id.
        media_id: String,
    },
    /// An uploaded file.
    File {
        /// The uploaded file's id.
        media_id: String,
    },
    /// A link card.
    Link {
        /// Where it points.
        url: String,
        /// The card's title.
        title: String,
        /// The card's description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

/// Whom a friend-add looks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendTarget {
    /// A phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// A WeChat or WeCom id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom_id: Option<String>,
}

/// The payload of a task, one variant per [`TaskKind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TaskPayload {
    /// `send_message`.
    SendMessage {
        /// The recipient.
        to: Contact,
        /// What to send, in order.
        items: Vec<Item>,
    },
    /// `mass_send`.
    MassSend {
        /// Every recipient of this account's share.
        recipients: Vec<Contact>,
        /// What to send to each.
        items: Vec<Item>,
    },
    /// `moments_post`.
    MomentsPost {
        /// The post's text.
        text: String,
        /// Uploaded images or a video.
        media_ids: Vec<String>,
        /// Only customers with these tags see it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visible_to_tags: Option<Vec<String>>,
    },
    /// `friend_add`.
    FriendAdd {
        /// Whom to add.
        target: FriendTarget,
        /// The greeting sent with the request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        greeting: Option<String>,
        /// The remark to give the new friend.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remark: Option<String>,
        /// Tags to give the new friend.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tags: Option<Vec<String>>,
    },
    /// `smart_marketing`.
    SmartMarketing {
        /// The marketing flow.
        flow_id: i64,
        /// The step of the flow.
        step: u32,
        /// The recipient.
        to: Contact,
        /// What to send.
        items: Vec<Item>,
    },
    /// `delete_chat`.
    DeleteChat {
        /// Whose chat to delete.
        with: Contact,
    },
    /// `accept_friend_request`.
    AcceptFriendRequest {
        /// Whose request to accept.
        from: Contact,
        /// The remark to give the new friend.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remark: Option<String>,
    },
}

/// A payload that does not fit its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    /// The first field that does not fit, e.g. `payload.items[0].text`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for PayloadError {}

/// Limits that keep one task to a size a phone can work through.
pub mod limits {
    /// Items in one message.
    pub const MAX_ITEMS: usize = 20;
    /// Recipients in one account's share of a mass send.
    pub const MAX_RECIPIENTS: usize = 5_000;
    /// Characters in one text.
    pub const MAX_TEXT_CHARS: usize = 5_000;
    /// Media in one Moments post.
    pub const MAX_MEDIA: usize = 9;
    /// Characters in any other string field.
    pub const MAX_FIELD_CHARS: usize = 500;
    /// Entries in a list of tags (`tags`, `visible_to_tags`).
    pub const MAX_TAGS: usize = 100;
}

type Check<T> = Result<T, PayloadError>;

pub(crate) fn fail<T>(field: &str, message: impl Into<String>) -> Check<T> {
    Err(PayloadError {
        field: field.to_owned(),
        message: message.into(),
    })
}

fn object<'a>(value: &'a Value, field: &str) -> Check<&'a Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        _ => fail(field, "must be an object"),
    }
}

fn string_within(value: &Value, field: &str, max_chars: usize) -> Check<String> {
    match value {
        Value::String(s) if s.trim().is_empty() => fail(field, "must not be empty"),
        Value::String(s) if s.chars().count() > max_chars => {
            fail(field, format!("must be at most {max_chars} characters"))
        }
        Value::String(s) => Ok(s.clone()),
        _ => fail(field, "must be a string"),
    }
}

fn required<'a>(map: &'a Map<String, Value>, key: &str, parent: &str) -> Check<&'a Value> {
    match map.get(key) {
        Some(Value::Null) | None => fail(&format!("{parent}.{key}"), "is required"),
        Some(value) => Ok(value),
    }
}

fn required_string(map: &Map<String, Value>, key: &str, parent: &str, max: usize) -> Check<String> {
    string_within(required(map, key, parent)?, &format!("{parent}.{key}"), max)
}

fn optional_string(map: &Map<String, Value>, key: &str, parent: &str) -> Check<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            string_within(value, &format!("{parent}.{key}"), limits::MAX_FIELD_CHARS).map(Some)
        }
    }
}

fn array<'a>(value: &'a Value, field: &str, min: usize, max: usize) -> Check<&'a [Value]> {
    match value {
        Value::Array(values) if values.len() < min => {
            fail(field, format!("must have at least {min} entries"))
        }
        Value::Array(values) if values.len() > max => {
            fail(field, format!("must have at most {max} entries"))
        }
        Value::Array(values) => Ok(values),
        _ => fail(field, "must be an array"),
    }
}

fn string_list(value: &Value, field: &str, min: usize, max: usize) -> Check<Vec<String>> {
    array(value, field, min, max)?
        .iter()
        .enumerate()
        .map(|(i, v)| string_within(v, &format!("{field}[{i}]"), limits::MAX_FIELD_CHARS))
        .collect()
}

fn optional_string_list(
    map: &Map<String, Value>,
    key: &str,
    parent: &str,
) -> Check<Option<Vec<String>>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            string_list(value, &format!("{parent}.{key}"), 0, limits::MAX_TAGS).map(Some)
        }
    }
}

fn contact(value: &Value, field: &str) -> Check<Contact> {
    let map = object(value, field)?;
    let customer_id = match map.get("customer_id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|id| id > 0) => n.as_i64(),
        Some(_) => {
            return fail(
                &format!("{field}.customer_id"),
                "must be a positive integer",
            )
        }
    };
    let contact = Contact {
        customer_id,
        external_id: optional_string(map, "external_id", field)?,
        name: optional_string(map, "name", field)?,
    };
    if contact == Contact::default() {
        return fail(
            field,
            "must name at least one of customer_id, external_id, name",
        );
    }
    Ok(contact)
}

fn item(value: &Value, field: &str) -> Check<Item> {
    let map = object(value, field)?;
    let kind = required_string(map, "type", field, limits::MAX_FIELD_CHARS)?;
    Ok(match kind.as_str() {
        "text" => Item::Text {
            text: required_string(map, "text", field, limits::MAX_TEXT_CHARS)?,
        },
        "image" => Item::Image {
            media_id: required_string(map, "media_id", field, limits::MAX_FIELD_CHARS)?,
        },
        "file" => Item::File {
            media_id: required_string(map, "media_id", field, limits::MAX_FIELD_CHARS)?,
        },
        "link" => {
            let url = required_string(map, "url", field, limits::MAX_TEXT_CHARS)?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return fail(&format!("{field}.url"), "must be an http or https URL");
            }
            Item::Link {
                url,
                title: required_string(map, "title", field, limits::MAX_FIELD_CHARS)?,
                description: optional_string(map, "description", field)?,
            }
        }
        other => {
            return fail(
                &format!("{field}.type"),
                format!("must be text, image, file or link, not `{other}`"),
            )
        }
    })
}

fn items(map: &Map<String, Value>, parent: &str) -> Check<Vec<Item>> {
    let field = format!("{parent}.items");
    array(
        required(map, "items", parent)?,
        &field,
        1,
        limits::MAX_ITEMS,
    )?
    .iter()
    .enumerate()
    .map(|(i, v)| item(v, &format!("{field}[{i}]")))
    .collect()
}

fn required_contact(map: &Map<String, Value>, key: &str, parent: &str) -> Check<Contact> {
    contact(required(map, key, parent)?, &format!("{parent}.{key}"))
}

impl TaskPayload {
    /// Checks `value` against `kind` and returns the typed payload, or names the
    /// first field that does not fit. Unknown extra fields are allowed, so newer
    /// clients can add optional fields.
    pub fn parse(kind: TaskKind, value: &Value) -> Result<TaskPayload, PayloadError> {
        const P: &str = "payload";
        let map = object(value, P)?;
        Ok(match kind {
            TaskKind::SendMessage => TaskPayload::SendMessage {
                to: required_contact(map, "to", P)?,
                items: items(map, P)?,
            },
            TaskKind::MassSend => {
                let field = "payload.recipients";
                let recipients = array(
                    required(map, "recipients", P)?,
                    field,
                    1,
                    limits::MAX_RECIPIENTS,
                )?
                .iter()
                .enumerate()
                .map(|(i, v)| contact(v, &format!("{field}[{i}]")))
                .collect::<Check<Vec<_>>>()?;
                TaskPayload::MassSend {
                    recipients,
                    items: items(map, P)?,
                }
            }
            TaskKind::MomentsPost => {
                let text = match map.get("text") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) if s.chars().count() <= limits::MAX_TEXT_CHARS => {
                        s.clone()
                    }
                    Some(Value::String(_)) => {
                        return fail(
                            "payload.text",
                            format!("must be at most {} characters", limits::MAX_TEXT_CHARS),
                        )
                    }
                    Some(_) => return fail("payload.text", "must be a string"),
                };
                let media_ids = match map.get("media_ids") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(v) => string_list(v, "payload.media_ids", 0, limits::MAX_MEDIA)?,
                };
                if text.trim().is_empty() && media_ids.is_empty() {
                    return fail("payload.text", "a post needs text or media_ids");
                }
                TaskPayload::MomentsPost {
                    text,
                    media_ids,
                    visible_to_tags: optional_string_list(map, "visible_to_tags", P)?,
                }
            }
            TaskKind::FriendAdd => {
                let target_map = object(required(map, "target", P)?, "payload.target")?;
                let target = FriendTarget {
                    phone: optional_string(target_map, "phone", "payload.target")?,
                    wecom_id: optional_string(target_map, "wecom_id", "payload.target")?,
                };
                if target == FriendTarget::default() {
                    return fail("payload.target", "must name phone or wecom_id");
                }
                TaskPayload::FriendAdd {
                    target,
                    greeting: optional_string(map, "greeting", P)?,
                    remark: optional_string(map, "remark", P)?,
                    tags: optional_string_list(map, "tags", P)?,
                }
            }
            TaskKind::SmartMarketing => {
                let flow_id = match required(map, "flow_id", P)? {
                    Value::Number(n) if n.as_i64().is_some_and(|id| id > 0) => {
                        n.as_i64().unwrap_or_default()
                    }
                    _ => return fail("payload.flow_id", "must be a positive integer"),
                };
                let step = match required(map, "step", P)? {
                    Value::Number(n) => match n.as_u64().and_then(|s| u32::try_from(s).ok()) {
                        Some(step) => step,
                        None => return fail("payload.step", "must be a non-negative integer"),
                    },
                    _ => return fail("payload.step", "must be a non-negative integer"),
                };
                TaskPayload::SmartMarketing {
                    flow_id,
                    step,
                    to: required_contact(map, "to", P)?,
                    items: items(map, P)?,
                }
            }
            TaskKind::DeleteChat => TaskPayload::DeleteChat {
                with: required_contact(map, "with", P)?,
            },
            TaskKind::AcceptFriendRequest => TaskPayload::AcceptFriendRequest {
                from: required_contact(map, "from", P)?,
                remark: optional_string(map, "remark", P)?,
            },
        })
    }

    /// Every text this payload would send or post, for keyword interception.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            TaskPayload::SendMessage { items, .. }
            | TaskPayload::MassSend { items, .. }
            | TaskPayload::SmartMarketing { items, .. } => items
                .iter()
                .filter_map(|item| match item {
                    Item::Text { text } => Some(text.as_str()),
                    Item::Link { title, .. } => Some(title.as_str()),
                    _ => None,
                })
                .collect(),
            TaskPayload::MomentsPost { text, .. } => vec![text.as_str()],
            TaskPayload::FriendAdd { greeting, .. } => {
                greeting.iter().map(String::as_str).collect()
            }
            TaskPayload::DeleteChat { .. } | TaskPayload::AcceptFriendRequest { .. } => Vec::new(),
        }
    }
}
