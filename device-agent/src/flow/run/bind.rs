//! The loop variables a step runs with ([`Binding`]): the recipient, item,
//! media and tag in effect, the lists they come from, and the value lookup
//! that fills templates, conditions and selectors from them.

use youmi_protocol::task::{Contact, Item};
use youmi_protocol::TaskPayload;

use crate::delivery::UnitKey;
use crate::flow::failure::{Failure, Stop};
use crate::flow::file::{Condition, Near, SelectorTemplate, Step};
use crate::phone::Selector;

use super::Run;

/// The loop variables in effect.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Binding<'p> {
    /// The mass-send recipient, and its index.
    pub(super) recipient: Option<(usize, &'p Contact)>,
    /// The message item, and its index.
    pub(super) item: Option<(usize, &'p Item)>,
    /// The Moments media id, and its index.
    pub(super) media: Option<(usize, &'p str)>,
    /// The tag (`tags` or `visible_to_tags`), and its index.
    pub(super) tag: Option<(usize, &'p str)>,
}

impl<'a> Run<'a> {
    pub(super) fn recipients(&self) -> &'a [Contact] {
        match self.payload {
            TaskPayload::MassSend { recipients, .. } => recipients,
            _ => &[],
        }
    }

    pub(super) fn items(&self) -> &'a [Item] {
        match self.payload {
            TaskPayload::SendMessage { items, .. }
            | TaskPayload::MassSend { items, .. }
            | TaskPayload::SmartMarketing { items, .. } => items,
            _ => &[],
        }
    }

    pub(super) fn media_ids(&self) -> &'a [String] {
        match self.payload {
            TaskPayload::MomentsPost { media_ids, .. } => media_ids,
            _ => &[],
        }
    }

    /// The tags a `for_each_tag` loop goes over: a new friend's `tags`, or the
    /// tags a Moments post is limited to.
    pub(super) fn tags(&self) -> &'a [String] {
        match self.payload {
            TaskPayload::FriendAdd {
                tags: Some(tags), ..
            }
            | TaskPayload::MomentsPost {
                visible_to_tags: Some(tags),
                ..
            } => tags,
            _ => &[],
        }
    }

    /// Whether a step's condition holds.
    pub(super) fn holds(&self, step: &Step, binding: Binding<'a>) -> bool {
        match &step.condition {
            None => true,
            Some(Condition::If(name)) => self
                .value(name, binding)
                .is_some_and(|value| !value.is_empty()),
            Some(Condition::Unless(name)) => self
                .value(name, binding)
                .is_none_or(|value| value.is_empty()),
        }
    }

    /// A template variable's value; `None` when the task has none.
    fn value(&self, name: &str, binding: Binding<'a>) -> Option<String> {
        fn contact_field(contact: &Contact, field: &str) -> Option<String> {
            match field {
                "name" => contact.name.clone(),
                "external_id" => contact.external_id.clone(),
                "customer_id" => contact.customer_id.map(|id| id.to_string()),
                _ => None,
            }
        }
        let (head, field) = name.split_once('.').unwrap_or((name, ""));
        let payload = self.payload;
        match (head, payload) {
            ("task", _) if field == "id" => Some(self.task.id.to_string()),
            ("app", _) if field == "version" => Some(self.version.to_owned()),
            ("to", _) if binding.recipient.is_some() => {
                binding.recipient.and_then(|(_, c)| contact_field(c, field))
            }
            (
                "to",
                TaskPayload::SendMessage { to, .. } | TaskPayload::SmartMarketing { to, .. },
            ) => contact_field(to, field),
            ("with", TaskPayload::DeleteChat { with }) => contact_field(with, field),
            ("from", TaskPayload::AcceptFriendRequest { from, .. }) => contact_field(from, field),
            ("marketing", TaskPayload::SmartMarketing { flow_id, step, .. }) => match field {
                "flow_id" => Some(flow_id.to_string()),
                "step" => Some(step.to_string()),
                _ => None,
            },
            ("recipient", TaskPayload::MassSend { recipients, .. }) => match field {
                "count" => Some(recipients.len().to_string()),
                "number" => binding.recipient.map(|(i, _)| (i + 1).to_string()),
                _ => None,
            },
            ("text", TaskPayload::MomentsPost { text, .. }) => Some(text.clone()),
            ("media_ids", TaskPayload::MomentsPost { media_ids, .. }) => Some(media_ids.join(",")),
            (
                "visible_to_tags",
                TaskPayload::MomentsPost {
                    visible_to_tags, ..
                },
            ) => visible_to_tags.as_ref().map(|tags| tags.join(",")),
            ("target", TaskPayload::FriendAdd { target, .. }) => match field {
                "phone" => target.phone.clone(),
                "wecom_id" => target.wecom_id.clone(),
                "query" => target.phone.clone().or_else(|| target.wecom_id.clone()),
                _ => None,
            },
            ("greeting", TaskPayload::FriendAdd { greeting, .. }) => greeting.clone(),
            (
                "remark",
                TaskPayload::FriendAdd { remark, .. }
                | TaskPayload::AcceptFriendRequest { remark, .. },
            ) => remark.clone(),
            ("tags", TaskPayload::FriendAdd { tags, .. }) => tags.as_ref().map(|t| t.join(",")),
            ("item", _) => {
                let (i, item) = binding.item?;
                match (field, item) {
                    ("number", _) => Some((i + 1).to_string()),
                    ("type", item) => Some(item_type(item).to_owned()),
                    ("text", Item::Text { text }) => Some(text.clone()),
                    ("url", Item::Link { url, .. }) => Some(url.clone()),
                    ("title", Item::Link { title, .. }) => Some(title.clone()),
                    ("description", Item::Link { description, .. }) => description.clone(),
                    ("media_id", Item::Image { media_id } | Item::File { media_id }) => {
                        Some(media_id.clone())
                    }
                    ("device_path", Item::Image { media_id } | Item::File { media_id }) => {
                        self.pushed.get(media_id).cloned()
                    }
                    ("device_name", Item::Image { media_id } | Item::File { media_id }) => {
                        self.pushed.get(media_id).map(|p| file_name(p).to_owned())
                    }
                    _ => None,
                }
            }
            ("tag", _) => {
                let (i, tag) = binding.tag?;
                match field {
                    "name" => Some(tag.to_owned()),
                    "number" => Some((i + 1).to_string()),
                    _ => None,
                }
            }
            ("media", _) => {
                let (i, id) = binding.media?;
                match field {
                    "id" => Some(id.to_owned()),
                    "number" => Some((i + 1).to_string()),
                    "device_path" => self.pushed.get(id).cloned(),
                    "device_name" => self.pushed.get(id).map(|p| file_name(p).to_owned()),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// A lookup for templates: a missing value fails the step.
    pub(super) fn lookup(
        &self,
        binding: Binding<'a>,
    ) -> impl Fn(&str) -> Result<String, Stop> + '_ {
        move |name: &str| {
            self.value(name, binding).ok_or_else(|| {
                Failure::new(
                    "missing_value",
                    format!("the task gives no value for `{{{name}}}`, which this step needs"),
                    false,
                )
                .into()
            })
        }
    }

    pub(super) fn selector(
        &self,
        template: &SelectorTemplate,
        binding: Binding<'a>,
    ) -> Result<Selector, Stop> {
        template.render(&self.lookup(binding))
    }

    pub(super) fn near(
        &self,
        near: &Option<Near>,
        binding: Binding<'a>,
    ) -> Result<Option<(Selector, u32)>, Stop> {
        near.as_ref()
            .map(|n| Ok((self.selector(&n.anchor, binding)?, n.depth)))
            .transpose()
    }
}

pub(super) fn item_type(item: &Item) -> &'static str {
    crate::delivery::item_type(item)
}

/// A loop index as a number from 1.
pub(super) fn number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// The unit a binding is in: its recipient and item, by number.
pub(super) fn unit_key(binding: Binding<'_>) -> UnitKey {
    UnitKey {
        recipient: binding.recipient.map(|(r, _)| number(r)),
        item: binding.item.map(|(i, _)| number(i)),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
