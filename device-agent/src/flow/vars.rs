//! The template variables a flow can use, and where: which ones each task
//! kind gives, and which ones the loops over recipients, message items,
//! Moments media and tags add. The loader checks every template against these lists;
//! the runner gives the values (see `run.rs`).

use youmi_protocol::TaskKind;

/// Every flow has these: the task's id and the installed app version.
pub(crate) const COMMON: &[&str] = &["task.id", "app.version"];

/// The contact fields of a payload's `to`, `with` or `from`.
fn contact(prefix: &str) -> [&'static str; 3] {
    match prefix {
        "to" => ["to.name", "to.external_id", "to.customer_id"],
        "with" => ["with.name", "with.external_id", "with.customer_id"],
        _ => ["from.name", "from.external_id", "from.customer_id"],
    }
}

/// Inside `for_each_recipient`: the recipient, and its 1-based number.
pub(crate) const RECIPIENT: &[&str] = &[
    "to.name",
    "to.external_id",
    "to.customer_id",
    "recipient.number",
];

/// Inside `for_each_item`, for every item type.
pub(crate) const ITEM: &[&str] = &["item.type", "item.number"];
/// Inside the procedure for text items.
pub(crate) const ITEM_TEXT: &[&str] = &["item.text"];
/// Inside the procedure for link items.
pub(crate) const ITEM_LINK: &[&str] = &["item.url", "item.title", "item.description"];
/// Inside the procedures for image and file items; the device path and name
/// have values once a `push_media` step has copied the file to the phone.
pub(crate) const ITEM_MEDIA: &[&str] = &["item.media_id", "item.device_path", "item.device_name"];
/// Inside `for_each_media` (Moments); as for items, the device path and name
/// come from `push_media`.
pub(crate) const MEDIA: &[&str] = &[
    "media.id",
    "media.device_path",
    "media.device_name",
    "media.number",
];

/// Inside `for_each_tag`: the tag, and its 1-based number.
pub(crate) const TAG: &[&str] = &["tag.name", "tag.number"];

/// The variables a task kind's payload gives at the top of its flow.
pub(crate) fn of_kind(kind: TaskKind) -> Vec<&'static str> {
    let mut vars: Vec<&'static str> = COMMON.to_vec();
    match kind {
        TaskKind::SendMessage => vars.extend(contact("to")),
        TaskKind::SmartMarketing => {
            vars.extend(contact("to"));
            vars.extend(["marketing.flow_id", "marketing.step"]);
        }
        TaskKind::MassSend => vars.push("recipient.count"),
        TaskKind::MomentsPost => vars.extend(["text", "media_ids", "visible_to_tags"]),
        TaskKind::FriendAdd => vars.extend([
            "target.phone",
            "target.wecom_id",
            "target.query",
            "greeting",
            "remark",
            "tags",
        ]),
        TaskKind::DeleteChat => vars.extend(contact("with")),
        TaskKind::AcceptFriendRequest => {
            vars.extend(contact("from"));
            vars.push("remark");
        }
    }
    vars
}

/// What a task kind can loop over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Collections {
    /// `for_each_recipient`: mass sends.
    pub recipients: bool,
    /// `for_each_item`: kinds that send message items.
    pub items: bool,
    /// `for_each_media`: Moments posts.
    pub media: bool,
    /// `for_each_tag`: a new friend's `tags`, a Moments post's `visible_to_tags`.
    pub tags: bool,
}

/// The loops a task kind's flow may use.
pub(crate) fn collections(kind: TaskKind) -> Collections {
    match kind {
        TaskKind::SendMessage | TaskKind::SmartMarketing => Collections {
            items: true,
            ..Collections::default()
        },
        TaskKind::MassSend => Collections {
            recipients: true,
            items: true,
            ..Collections::default()
        },
        TaskKind::MomentsPost => Collections {
            media: true,
            tags: true,
            ..Collections::default()
        },
        TaskKind::FriendAdd => Collections {
            tags: true,
            ..Collections::default()
        },
        TaskKind::DeleteChat | TaskKind::AcceptFriendRequest => Collections::default(),
    }
}

/// Every variable name any flow can use, for checking procedures that no
/// flow calls.
pub(crate) fn all() -> Vec<&'static str> {
    let mut vars: Vec<&'static str> = TaskKind::ALL.into_iter().flat_map(of_kind).collect();
    for list in [
        RECIPIENT, ITEM, ITEM_TEXT, ITEM_LINK, ITEM_MEDIA, MEDIA, TAG,
    ] {
        vars.extend_from_slice(list);
    }
    vars.sort_unstable();
    vars.dedup();
    vars
}
