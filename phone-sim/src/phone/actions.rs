//! What taps, long presses, keys and typing do: the text field in focus, and each
//! [`Action`] a node carries, run against the phone's state (sends, friend requests,
//! tags, Moments, deletions).

use super::screens::overlay_tree;
use super::state::{Bubble, Chat, Overlay, Screen};
use super::{Phone, SentEvent};

use crate::ui::{Action, Node, TagPurpose};

impl Phone {
    /// Types text into the focused field; returns false when nothing has focus.
    pub fn type_text(&mut self, text: &str) -> bool {
        if !self.foreground || self.overlay.is_some() || !self.focused {
            return false;
        }
        match self.top_mut() {
            Screen::Chat { draft, .. } => draft.push_str(text),
            Screen::ContactSearch { query } => query.push_str(text),
            Screen::AddFriend { query, result, .. } => {
                query.push_str(text);
                *result = None;
            }
            Screen::Greeting {
                greeting,
                remark,
                remark_focus,
                ..
            } => {
                if *remark_focus {
                    remark.push_str(text)
                } else {
                    greeting.push_str(text)
                }
            }
            Screen::Verify { remark, .. } => remark.push_str(text),
            Screen::Composer { text: t, .. } => t.push_str(text),
            _ => return false,
        }
        true
    }

    /// What taps are tested against: a popup is modal, so only it takes taps.
    fn touch_tree(&self) -> Node {
        match &self.overlay {
            Some(o) if self.foreground || matches!(o, Overlay::Permission) => {
                self.as_shown(overlay_tree(o))
            }
            _ => self.tree(),
        }
    }

    /// What a tap (or a long press) at the point lands on, as a person would name
    /// it: the text of the view that takes it, or the first text inside it, else
    /// its content description (see [`super::InputEvent::hit`]).
    pub(super) fn label_at(&self, x: i32, y: i32, long: bool) -> Option<String> {
        let root = self.touch_tree();
        let hit = root.hit(x, y, long)?;
        let mut text = None;
        hit.walk(&mut |n| {
            if text.is_none() && !n.text.is_empty() {
                text = Some(n.text.clone());
            }
        });
        text.or_else(|| (!hit.content_desc.is_empty()).then(|| hit.content_desc.clone()))
    }

    /// Removes the last character of the focused field (KEYCODE_DEL).
    pub fn delete_char(&mut self) {
        self.edit_focused(|t| {
            t.pop();
        });
    }

    /// Empties the focused field (ADBKeyBoard's `ADB_CLEAR_TEXT`).
    pub fn clear_text(&mut self) {
        self.edit_focused(String::clear);
    }

    fn edit_focused(&mut self, f: impl FnOnce(&mut String)) {
        if !self.foreground || self.overlay.is_some() || !self.focused {
            return;
        }
        match self.top_mut() {
            Screen::Chat { draft: t, .. }
            | Screen::ContactSearch { query: t }
            | Screen::Greeting {
                remark_focus: false,
                greeting: t,
                ..
            }
            | Screen::Greeting {
                remark_focus: true,
                remark: t,
                ..
            }
            | Screen::Verify { remark: t, .. }
            | Screen::Composer { text: t, .. } => f(t),
            Screen::AddFriend { query, result, .. } => {
                f(query);
                *result = None;
            }
            _ => {}
        }
    }

    pub fn tap(&mut self, x: i32, y: i32) {
        let root = self.touch_tree();
        let action = root.hit(x, y, false).and_then(|n| n.action.clone());
        match action {
            Some(a) => self.run_and_watch(a),
            None => {
                if matches!(self.overlay, Some(Overlay::ChatMenu(_))) {
                    self.overlay = None;
                }
            }
        }
    }

    pub fn long_press(&mut self, x: i32, y: i32) {
        let root = self.touch_tree();
        if let Some(a) = root.hit(x, y, true).and_then(|n| n.long_action.clone()) {
            self.run_and_watch(a);
        }
    }

    /// Runs a touched node's action, then shows a dialog scripted for right
    /// after a send if the action sent something.
    fn run_and_watch(&mut self, action: Action) {
        let before = self.sent.len();
        self.run(action);
        if self.sent.len() > before {
            self.after_send();
        }
    }

    pub(super) fn run(&mut self, action: Action) {
        tracing::debug!(?action, "tap");
        match action {
            Action::LaunchWeCom => self.launch(),
            Action::Tab(t) => {
                self.stack = vec![Screen::Main(t)];
                self.changed();
            }
            Action::OpenChat(with) => {
                if !self.chats.iter().any(|c| c.with == with) {
                    self.chats.insert(
                        0,
                        Chat {
                            with: with.clone(),
                            messages: Vec::new(),
                        },
                    );
                }
                self.push(Screen::Chat {
                    with,
                    draft: String::new(),
                    panel: false,
                });
            }
            Action::Back => self.back(),
            Action::FocusInput => {
                // The keyboard takes the more-functions panel's place.
                match self.top_mut() {
                    Screen::Chat { panel, .. } => *panel = false,
                    Screen::Greeting { remark_focus, .. } => *remark_focus = false,
                    _ => {}
                }
                self.focused = true;
            }
            Action::FocusRemark => {
                if let Screen::Greeting { remark_focus, .. } = self.top_mut() {
                    *remark_focus = true;
                }
                self.focused = true;
            }
            Action::OpenTags(purpose) => {
                let selected = match self.top() {
                    Screen::Greeting { tags, .. } | Screen::Visibility { tags, .. } => tags.clone(),
                    _ => return,
                };
                self.push(Screen::TagPicker { selected, purpose });
            }
            Action::ToggleTag(tag) => {
                if let Screen::TagPicker { selected, .. } = self.top_mut() {
                    if let Some(i) = selected.iter().position(|t| *t == tag) {
                        selected.remove(i);
                    } else {
                        selected.push(tag);
                    }
                }
            }
            Action::TagsDone => {
                let Screen::TagPicker { selected, purpose } = self.top().clone() else {
                    return;
                };
                self.stack.pop();
                match (purpose, self.top_mut()) {
                    (TagPurpose::Request, Screen::Greeting { tags, .. }) => *tags = selected,
                    (TagPurpose::Visibility, Screen::Visibility { by_tags, tags }) => {
                        *by_tags = true;
                        *tags = selected;
                    }
                    _ => {}
                }
                self.changed();
            }
            Action::OpenVisibility => {
                let Screen::Composer { tags, .. } = self.top() else {
                    return;
                };
                let tags = tags.clone();
                self.push(Screen::Visibility {
                    by_tags: !tags.is_empty(),
                    tags,
                });
            }
            Action::VisibleToAll => {
                if let Screen::Visibility { by_tags, tags } = self.top_mut() {
                    *by_tags = false;
                    tags.clear();
                }
            }
            Action::VisibilityDone => {
                let Screen::Visibility { by_tags, tags } = self.top().clone() else {
                    return;
                };
                // 按标签筛选 with no tag picked is no choice: WeCom keeps 完成 disabled.
                if by_tags && tags.is_empty() {
                    return;
                }
                self.stack.pop();
                if let Screen::Composer { tags: t, .. } = self.top_mut() {
                    *t = tags;
                }
                self.changed();
            }
            Action::ConfirmVerify => {
                let Screen::Verify { name, remark } = self.top().clone() else {
                    return;
                };
                self.stack.pop();
                self.accept(name, remark);
                self.changed();
            }
            Action::TogglePanel => {
                if let Screen::Chat { panel, .. } = self.top_mut() {
                    *panel = !*panel;
                    // The panel takes the keyboard's place.
                    self.focused = false;
                }
            }
            Action::OpenAlbum => {
                let Screen::Chat { with, .. } = self.top().clone() else {
                    return;
                };
                self.push(Screen::Picker {
                    selected: Vec::new(),
                    chat: Some(with),
                });
            }
            Action::OpenFiles => {
                let Screen::Chat { with, .. } = self.top().clone() else {
                    return;
                };
                self.push(Screen::FileSource { chat: with });
            }
            Action::OpenPhoneStorage => {
                let Screen::FileSource { chat } = self.top().clone() else {
                    return;
                };
                self.push(Screen::Storage {
                    chat,
                    selected: None,
                });
            }
            Action::PickFile(path) => {
                if let Screen::Storage { selected, .. } = self.top_mut() {
                    // One file at a time; tapping the picked one again unpicks it.
                    *selected = if selected.as_ref() == Some(&path) {
                        None
                    } else {
                        Some(path)
                    };
                }
            }
            Action::SendFile => {
                let Screen::Storage {
                    chat,
                    selected: Some(path),
                } = self.top().clone()
                else {
                    return;
                };
                // Back to the chat, past 选择文件, with the panel folded.
                self.stack.truncate(self.stack.len().saturating_sub(2));
                if let Screen::Chat { panel, .. } = self.top_mut() {
                    *panel = false;
                }
                self.deliver(&chat, Bubble::File(path.clone()));
                self.record(SentEvent::File { to: chat, path });
                self.changed();
            }
            Action::Send => {
                let (with, text) = match self.top_mut() {
                    Screen::Chat { with, draft, .. } if !draft.is_empty() => {
                        (with.clone(), std::mem::take(draft))
                    }
                    _ => return,
                };
                self.deliver(&with, Bubble::Text(text.clone()));
                self.record(SentEvent::Message { to: with, text });
            }
            Action::OpenContactSearch => self.push(Screen::ContactSearch {
                query: String::new(),
            }),
            Action::OpenProfile(name) => self.push(Screen::Profile { name }),
            Action::MessageFromProfile(name) => self.run(Action::OpenChat(name)),
            Action::OpenAddFriend => self.push(Screen::AddFriend {
                query: String::new(),
                result: None,
                requested: false,
            }),
            Action::AddFriendSearch => {
                if let Screen::AddFriend {
                    query,
                    result,
                    requested,
                } = self.top_mut()
                {
                    *result = Some(lookup_user(query));
                    *requested = false;
                }
            }
            Action::AddToContacts(name) => {
                let query = match self.top() {
                    Screen::AddFriend { query, .. } => query.clone(),
                    _ => return,
                };
                let greeting = format!("我是{}", self.operator_name);
                self.push(Screen::Greeting {
                    query,
                    name,
                    greeting,
                    remark: String::new(),
                    tags: Vec::new(),
                    remark_focus: false,
                });
            }
            Action::SendFriendRequest => {
                let Screen::Greeting {
                    query,
                    name,
                    greeting,
                    remark,
                    tags,
                    ..
                } = self.top().clone()
                else {
                    return;
                };
                self.record(SentEvent::FriendRequestSent {
                    query,
                    name,
                    greeting,
                    remark,
                    tags,
                });
                self.stack.pop();
                if let Screen::AddFriend { requested, .. } = self.top_mut() {
                    *requested = true;
                }
                self.changed();
            }
            Action::OpenFriendRequests => self.push(Screen::FriendRequests),
            Action::Accept(name) => {
                if self.requests.iter().any(|r| r.name == name && !r.accepted) {
                    // WeCom fills 备注 with the requester's name.
                    let remark = name.clone();
                    self.push(Screen::Verify { name, remark });
                }
            }
            Action::OpenMoments => self.push(Screen::MomentsHome),
            Action::OpenComposer => self.push(Screen::Composer {
                text: String::new(),
                media: Vec::new(),
                tags: Vec::new(),
            }),
            Action::OpenPicker => {
                let selected = match self.top() {
                    Screen::Composer { media, .. } => media.clone(),
                    _ => Vec::new(),
                };
                self.push(Screen::Picker {
                    selected,
                    chat: None,
                });
            }
            Action::ToggleMedia(path) => {
                if let Screen::Picker { selected, .. } = self.top_mut() {
                    if let Some(i) = selected.iter().position(|p| *p == path) {
                        selected.remove(i);
                    } else if selected.len() < 9 {
                        selected.push(path);
                    }
                }
            }
            Action::PickerDone => {
                let Screen::Picker { selected, chat } = self.top().clone() else {
                    return;
                };
                if let Some(to) = chat {
                    // 发送 stays disabled until a picture is picked.
                    if selected.is_empty() {
                        return;
                    }
                    self.stack.pop();
                    if let Screen::Chat { panel, .. } = self.top_mut() {
                        *panel = false;
                    }
                    for path in selected {
                        self.deliver(&to, Bubble::Image(path.clone()));
                        self.record(SentEvent::Image {
                            to: to.clone(),
                            path,
                        });
                    }
                    self.changed();
                    return;
                }
                self.stack.pop();
                if let Screen::Composer { media, .. } = self.top_mut() {
                    *media = selected;
                }
                self.changed();
            }
            Action::PostMoment => {
                let Screen::Composer { text, media, tags } = self.top().clone() else {
                    return;
                };
                if text.is_empty() && media.is_empty() {
                    return;
                }
                self.record(SentEvent::MomentPost {
                    text,
                    media,
                    visible_to_tags: tags,
                });
                self.stack.pop();
                self.changed();
            }
            Action::ChatMenu(with) => self.overlay = Some(Overlay::ChatMenu(with)),
            Action::MenuDelete(with) => self.overlay = Some(Overlay::ConfirmDelete(with)),
            Action::MenuClose | Action::DismissOverlay => self.overlay = None,
            Action::ConfirmDelete(with) => {
                self.overlay = None;
                self.chats.retain(|c| c.with != with);
                self.record(SentEvent::ChatDeleted { with });
            }
        }
    }

    /// Marks `name`'s pending request accepted, adds them to the contacts and records
    /// the 备注 they were given.
    fn accept(&mut self, name: String, remark: String) {
        let Some(r) = self
            .requests
            .iter_mut()
            .find(|r| r.name == name && !r.accepted)
        else {
            return;
        };
        r.accepted = true;
        if !self.contacts.contains(&name) {
            self.contacts.push(name.clone());
        }
        self.record(SentEvent::FriendRequestAccepted { name, remark });
    }

    /// Appends the operator's message to the chat with `with`, which moves to the top
    /// of the chat list.
    fn deliver(&mut self, with: &str, bubble: Bubble) {
        if let Some(i) = self.chats.iter().position(|c| c.with == with) {
            let mut chat = self.chats.remove(i);
            chat.messages.push((true, bubble));
            self.chats.insert(0, chat);
        }
    }
}

/// What the add-friend search finds: 11-digit mobile numbers and WeCom/WeChat ids.
fn lookup_user(query: &str) -> Option<String> {
    let q = query.trim();
    let phone = q.len() == 11 && q.starts_with('1') && q.chars().all(|c| c.is_ascii_digit());
    let id = (6..=20).contains(&q.len())
        && q.starts_with(|c: char| c.is_ascii_alphabetic())
        && q.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if phone {
        Some(format!("用户{}", &q[7..]))
    } else if id {
        Some(format!("用户{q}"))
    } else {
        None
    }
}
