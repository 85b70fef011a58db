//! [`TaskPayload::parse_text`] and its fast path: a payload read from its JSON
//! text straight into plain structures, with no tree of [`serde_json::Value`]s.
//! Parsing a batch of 100,000 payloads into values, and checking them there,
//! took about 1 s of the `fanout` benchmark's 2.4 s submit call.
//!
//! It only ever says "this payload is good, and here it is" or "ask the
//! value-based check" ([`TaskPayload::parse`]): that one names the field of a
//! payload that fails, and decides any case this one does not take (a field of
//! another kind with an odd type, a duplicate key). A test checks the two agree
//! on every mutation of good payloads of every kind.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::task::{fail, limits, Contact, FriendTarget, Item, PayloadError, TaskKind, TaskPayload};

/// Declares a struct of optional fields read from a JSON object only: serde's
/// derived structs also take an array of their fields in order, which the
/// value-based check refuses. Unknown keys are skipped; a key given twice is
/// left to the value-based check.
macro_rules! object_only {
    ($name:ident { $($field:ident : $ty:ty = $key:literal),* $(,)? }) => {
        #[derive(Default)]
        struct $name {
            $($field: Option<$ty>,)*
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ObjectVisitor<'de>(PhantomData<&'de ()>);

                impl<'de> Visitor<'de> for ObjectVisitor<'de> {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("an object")
                    }

                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        let mut seen = Vec::new();
                        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                            if seen.contains(&key) {
                                return Err(de::Error::custom("duplicate key"));
                            }
                            match key.as_ref() {
                                $($key => out.$field = map.next_value::<Option<$ty>>()?,)*
                                _ => {
                                    map.next_value::<IgnoredAny>()?;
                                }
                            }
                            seen.push(key);
                        }
                        Ok(out)
                    }
                }

                deserializer.deserialize_map(ObjectVisitor(PhantomData))
            }
        }
    };
}

object_only!(RawContact {
    customer_id: i64 = "customer_id",
    external_id: String = "external_id",
    name: String = "name",
});

object_only!(RawItem {
    kind: String = "type",
    text: String = "text",
    media_id: String = "media_id",
    url: String = "url",
    title: String = "title",
    description: String = "description",
});

object_only!(RawTarget {
    phone: String = "phone",
    wecom_id: String = "wecom_id",
});

object_only!(RawPayload {
    to: RawContact = "to",
    items: Vec<RawItem> = "items",
    recipients: Vec<RawContact> = "recipients",
    text: String = "text",
    media_ids: Vec<String> = "media_ids",
    visible_to_tags: Vec<String> = "visible_to_tags",
    target: RawTarget = "target",
    greeting: String = "greeting",
    remark: String = "remark",
    tags: Vec<String> = "tags",
    flow_id: i64 = "flow_id",
    step: u32 = "step",
    with: RawContact = "with",
    from: RawContact = "from",
});

impl TaskPayload {
    /// [`TaskPayload::parse`] of the payload in the JSON text `text`, without
    /// building a tree of values when the payload is good (see
    /// [`parse`]). Text that is not JSON fails at `payload`.
    pub fn parse_text(kind: TaskKind, text: &str) -> Result<TaskPayload, PayloadError> {
        if let Some(payload) = parse(kind, text) {
            return Ok(payload);
        }
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => TaskPayload::parse(kind, &value),
            Err(error) => fail("payload", format!("is not JSON: {error}")),
        }
    }
}

/// The payload in `text`, if it is one this path can vouch for.
pub(crate) fn parse(kind: TaskKind, text: &str) -> Option<TaskPayload> {
    serde_json::from_str::<RawPayload>(text)
        .ok()?
        .into_payload(kind)
}

/// A string the value-based check takes: not blank, at most `max` characters.
fn fits(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max
}

fn required(s: Option<String>, max: usize) -> Option<String> {
    s.filter(|s| fits(s, max))
}

/// `Some(None)` when absent, `None` when present and unfit.
fn optional(s: Option<String>) -> Option<Option<String>> {
    match s {
        None => Some(None),
        Some(s) if fits(&s, limits::MAX_FIELD_CHARS) => Some(Some(s)),
        Some(_) => None,
    }
}

fn list(values: Vec<String>, min: usize, max: usize) -> Option<Vec<String>> {
    let fit = (min..=max).contains(&values.len())
        && values.iter().all(|s| fits(s, limits::MAX_FIELD_CHARS));
    fit.then_some(values)
}

/// `Some(None)` when absent, `None` when present and unfit.
fn optional_list(values: Option<Vec<String>>) -> Option<Option<Vec<String>>> {
    match values {
        None => Some(None),
        Some(values) => list(values, 0, limits::MAX_TAGS).map(Some),
    }
}

impl RawContact {
    fn into_contact(self) -> Option<Contact> {
        let customer_id = match self.customer_id {
            None => None,
            Some(id) if id > 0 => Some(id),
            Some(_) => return None,
        };
        let contact = Contact {
            customer_id,
            external_id: optional(self.external_id)?,
            name: optional(self.name)?,
        };
        (contact != Contact::default()).then_some(contact)
    }
}

impl RawItem {
    fn into_item(self) -> Option<Item> {
        let kind = required(self.kind, limits::MAX_FIELD_CHARS)?;
        Some(match kind.as_str() {
            "text" => Item::Text {
                text: required(self.text, limits::MAX_TEXT_CHARS)?,
            },
            "image" => Item::Image {
                media_id: required(self.media_id, limits::MAX_FIELD_CHARS)?,
            },
            "file" => Item::File {
                media_id: required(self.media_id, limits::MAX_FIELD_CHARS)?,
            },
            "link" => {
                let url = required(self.url, limits::MAX_TEXT_CHARS)?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return None;
                }
                Item::Link {
                    url,
                    title: required(self.title, limits::MAX_FIELD_CHARS)?,
                    description: optional(self.description)?,
                }
            }
            _ => return None,
        })
    }
}

fn contact(raw: Option<RawContact>) -> Option<Contact> {
    raw?.into_contact()
}

fn items(raw: Option<Vec<RawItem>>) -> Option<Vec<Item>> {
    let raw = raw?;
    if !(1..=limits::MAX_ITEMS).contains(&raw.len()) {
        return None;
    }
    raw.into_iter().map(RawItem::into_item).collect()
}

impl RawPayload {
    fn into_payload(self, kind: TaskKind) -> Option<TaskPayload> {
        Some(match kind {
            TaskKind::SendMessage => TaskPayload::SendMessage {
                to: contact(self.to)?,
                items: items(self.items)?,
            },
            TaskKind::MassSend => {
                let raw = self.recipients?;
                if !(1..=limits::MAX_RECIPIENTS).contains(&raw.len()) {
                    return None;
                }
                TaskPayload::MassSend {
                    recipients: raw
                        .into_iter()
                        .map(RawContact::into_contact)
                        .collect::<Option<_>>()?,
                    items: items(self.items)?,
                }
            }
            TaskKind::MomentsPost => {
                let text = self.text.unwrap_or_default();
                if text.chars().count() > limits::MAX_TEXT_CHARS {
                    return None;
                }
                let media_ids = match self.media_ids {
                    None => Vec::new(),
                    Some(values) => list(values, 0, limits::MAX_MEDIA)?,
                };
                if text.trim().is_empty() && media_ids.is_empty() {
                    return None;
                }
                TaskPayload::MomentsPost {
                    text,
                    media_ids,
                    visible_to_tags: optional_list(self.visible_to_tags)?,
                }
            }
            TaskKind::FriendAdd => {
                let raw = self.target?;
                let target = FriendTarget {
                    phone: optional(raw.phone)?,
                    wecom_id: optional(raw.wecom_id)?,
                };
                if target == FriendTarget::default() {
                    return None;
                }
                TaskPayload::FriendAdd {
                    target,
                    greeting: optional(self.greeting)?,
                    remark: optional(self.remark)?,
                    tags: optional_list(self.tags)?,
                }
            }
            TaskKind::SmartMarketing => TaskPayload::SmartMarketing {
                flow_id: self.flow_id.filter(|id| *id > 0)?,
                step: self.step?,
                to: contact(self.to)?,
                items: items(self.items)?,
            },
            TaskKind::DeleteChat => TaskPayload::DeleteChat {
                with: contact(self.with)?,
            },
            TaskKind::AcceptFriendRequest => TaskPayload::AcceptFriendRequest {
                from: contact(self.from)?,
                remark: optional(self.remark)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_payloads_take_the_fast_path() {
        let good = [
            (
                TaskKind::SendMessage,
                r#"{"to":{"name":"Ann"},"items":[{"type":"text","text":"hi"}]}"#,
            ),
            (
                TaskKind::MassSend,
                r#"{"recipients":[{"customer_id":1},{"external_id":"wm"}],"items":[{"type":"link","url":"https://a","title":"t"}]}"#,
            ),
            (TaskKind::MomentsPost, r#"{"media_ids":["m"]}"#),
            (
                TaskKind::FriendAdd,
                r#"{"target":{"phone":"1"},"tags":["a"],"extra":{"x":[1]}}"#,
            ),
            (
                TaskKind::SmartMarketing,
                r#"{"flow_id":1,"step":0,"to":{"name":"A"},"items":[{"type":"image","media_id":"m"}]}"#,
            ),
            (TaskKind::DeleteChat, r#"{"with":{"name":"A"}}"#),
            (
                TaskKind::AcceptFriendRequest,
                r#"{"from":{"name":"A"},"remark":null}"#,
            ),
        ];
        for (kind, text) in good {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                parse(kind, text),
                Some(TaskPayload::parse(kind, &value).unwrap()),
                "{kind}: {text}"
            );
        }
        // An array where an object goes is left to the value-based check.
        assert_eq!(
            parse(TaskKind::DeleteChat, r#"{"with":[1,"wm","A"]}"#),
            None
        );
    }
}
