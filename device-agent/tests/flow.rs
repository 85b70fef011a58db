//! The built-in WeCom flows, run end to end by `FlowExecutor` on a scripted
//! phone: a small state machine of WeCom's screens, built after the phone
//! simulator's app (`phone-sim/src/phone/`: the same texts, content
//! descriptions, widget classes and navigation), that answers `dump_ui` with
//! uiautomator XML, hit-tests taps against its nodes, and records what it
//! "sent". The simulator keeps its screens private (only `ui::hierarchy_xml`
//! and ADB are public), so this phone is the test's own.
//!
//! The clock is paused: waits for elements that never come end at once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use youmi_agent::executor::{BoxFuture, Executor, Progress, TaskContext, TaskControl, TaskFailure};
use youmi_agent::flow::{FlowExecutor, FlowOptions, FlowSet, WECOM_PACKAGE};
use youmi_agent::phone::{
    CallState, Foreground, Key, Phone, PhoneError, PhoneResult, PhoneStatus, Point, UiTree,
};
use youmi_protocol::{AssignedTask, TaskKind};

const W: i32 = 1080;
const H: i32 = 2400;
const LAUNCHER: &str = "com.google.android.apps.nexuslauncher";
const PERMISSIONS: &str = "com.android.permissioncontroller";

// ---------------------------------------------------------------------------
// The scripted phone's screens.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    Messages,
    Contacts,
    Workbench,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Screen {
    Main(Tab),
    Chat {
        with: String,
        draft: String,
        panel: bool,
    },
    ContactSearch {
        query: String,
    },
    Profile {
        name: String,
    },
    AddFriend {
        query: String,
        result: Option<Option<String>>,
        requested: bool,
    },
    /// 发送添加邀请: the greeting, 备注 and 标签.
    Greeting {
        query: String,
        name: String,
        greeting: String,
        remark: String,
        tags: Vec<String>,
        remark_focus: bool,
    },
    FriendRequests,
    /// 通过验证, with the 备注 WeCom fills with the requester's name.
    Verify {
        name: String,
        remark: String,
    },
    MomentsHome,
    Composer {
        text: String,
        media: Vec<String>,
        tags: Vec<String>,
    },
    /// 可见的客户: 全部客户 or 按标签筛选.
    Visibility {
        tags: Vec<String>,
    },
    /// 选择标签; `visibility` says whether 确定 goes back to 可见的客户.
    TagPicker {
        selected: Vec<String>,
        visibility: bool,
    },
    /// The album; `chat` is who the picked pictures go to, `None` for Moments.
    Picker {
        selected: Vec<String>,
        chat: Option<String>,
    },
    FileSource {
        chat: String,
    },
    Storage {
        chat: String,
        selected: Option<String>,
    },
}

impl Screen {
    fn name(&self) -> &'static str {
        match self {
            Screen::Main(Tab::Messages) => "main:messages",
            Screen::Main(Tab::Contacts) => "main:contacts",
            Screen::Main(Tab::Workbench) => "main:workbench",
            Screen::Chat { .. } => "chat",
            Screen::ContactSearch { .. } => "contact_search",
            Screen::Profile { .. } => "profile",
            Screen::AddFriend { .. } => "add_friend",
            Screen::Greeting { .. } => "greeting",
            Screen::FriendRequests => "friend_requests",
            Screen::Verify { .. } => "verify",
            Screen::MomentsHome => "moments",
            Screen::Composer { .. } => "composer",
            Screen::Visibility { .. } => "visibility",
            Screen::TagPicker { .. } => "tag_picker",
            Screen::Picker { .. } => "picker",
            Screen::FileSource { .. } => "file_source",
            Screen::Storage { .. } => "storage",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Overlay {
    Risk(String),
    Update { forced: bool },
    Permission,
    ChatMenu(String),
    ConfirmDelete(String),
}

/// When a scripted popup appears.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trigger {
    /// On the n-th screen change from now (1 = the next).
    Change(u32),
    /// When a screen with this name opens.
    Screen(&'static str),
}

/// What the app did, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Message {
        to: String,
        text: String,
    },
    Image {
        to: String,
        name: String,
    },
    File {
        to: String,
        name: String,
    },
    Moment {
        text: String,
        media: Vec<String>,
        tags: Vec<String>,
    },
    FriendRequest {
        query: String,
        name: String,
        greeting: String,
        remark: String,
        tags: Vec<String>,
    },
    Accepted {
        name: String,
        remark: String,
    },
    ChatDeleted {
        with: String,
    },
}

/// What was done to the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    Tap(String),
    LongPress(String),
    Type(String),
    Key(u16),
    Launch,
    Push(String),
}

#[derive(Debug, Clone)]
enum Act {
    LaunchWeCom,
    Tab(Tab),
    OpenChat(String),
    Back,
    Focus,
    Send,
    OpenSearch,
    OpenProfile(String),
    MessageFrom(String),
    OpenAddFriend,
    AddFriendSearch,
    AddToContacts(String),
    SendRequest,
    OpenRequests,
    Accept(String),
    ConfirmVerify,
    FocusRemark,
    OpenTags(bool),
    ToggleTag(String),
    TagsDone,
    OpenVisibility,
    VisibilityDone,
    OpenMoments,
    OpenComposer,
    OpenPicker,
    Toggle(String),
    PickerDone,
    Post,
    ChatMenu(String),
    MenuDelete(String),
    MenuClose,
    ConfirmDelete(String),
    Dismiss,
    OpenMore,
    OpenAlbum,
    OpenFiles,
    PhoneStorage,
    PickFile(String),
    SendFile,
}

/// One view of the scripted screen.
#[derive(Debug, Clone)]
struct Node {
    class: &'static str,
    package: &'static str,
    text: String,
    desc: String,
    bounds: (i32, i32, i32, i32),
    focused: bool,
    checked: bool,
    tap: Option<Act>,
    long: Option<Act>,
    children: Vec<Node>,
}

fn node(class: &'static str, bounds: (i32, i32, i32, i32)) -> Node {
    Node {
        class,
        package: WECOM_PACKAGE,
        text: String::new(),
        desc: String::new(),
        bounds,
        focused: false,
        checked: false,
        tap: None,
        long: None,
        children: Vec::new(),
    }
}

impl Node {
    fn text(mut self, text: &str) -> Node {
        self.text = text.to_owned();
        self
    }
    fn desc(mut self, desc: &str) -> Node {
        self.desc = desc.to_owned();
        self
    }
    fn on_tap(mut self, act: Act) -> Node {
        self.tap = Some(act);
        self
    }
    fn on_long(mut self, act: Act) -> Node {
        self.long = Some(act);
        self
    }
    fn child(mut self, child: Node) -> Node {
        self.children.push(child);
        self
    }
    fn package(mut self, package: &'static str) -> Node {
        self.package = package;
        for child in &mut self.children {
            *child = child.clone().package(package);
        }
        self
    }

    fn contains(&self, x: i32, y: i32) -> bool {
        let (l, t, r, b) = self.bounds;
        x >= l && x < r && y >= t && y < b
    }

    /// The deepest node under the point with an action; later siblings are on top.
    fn hit(&self, x: i32, y: i32, long: bool) -> Option<&Node> {
        if !self.contains(x, y) {
            return None;
        }
        for child in self.children.iter().rev() {
            if let Some(hit) = child.hit(x, y, long) {
                return Some(hit);
            }
        }
        let wanted = if long {
            self.long.is_some()
        } else {
            self.tap.is_some()
        };
        wanted.then_some(self)
    }

    fn xml(&self, index: usize, hidden: &[String], out: &mut String) {
        if hidden.contains(&self.text) && !self.text.is_empty() {
            return;
        }
        let (l, t, r, b) = self.bounds;
        out.push_str(&format!(
            "<node index=\"{index}\" text=\"{}\" resource-id=\"\" class=\"{}\" package=\"{}\" content-desc=\"{}\" checkable=\"false\" checked=\"{}\" clickable=\"{}\" enabled=\"true\" focusable=\"{}\" focused=\"{}\" scrollable=\"false\" long-clickable=\"{}\" password=\"false\" selected=\"false\" bounds=\"[{l},{t}][{r},{b}]\"",
            escape(&self.text),
            self.class,
            self.package,
            escape(&self.desc),
            self.checked,
            self.tap.is_some(),
            self.tap.is_some(),
            self.focused,
            self.long.is_some(),
        ));
        if self.children.is_empty() {
            out.push_str(" />");
        } else {
            out.push('>');
            for (i, child) in self.children.iter().enumerate() {
                child.xml(i, hidden, out);
            }
            out.push_str("</node>");
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\n', "&#10;")
}

fn title_bar(title: &str, back: bool) -> Node {
    let mut bar = node("android.widget.RelativeLayout", (0, 80, W, 248));
    if back {
        bar = bar.child(back_button());
    }
    if !title.is_empty() {
        bar = bar.child(node("android.widget.TextView", (150, 110, 930, 218)).text(title));
    }
    bar
}

fn back_button() -> Node {
    node("android.widget.ImageView", (0, 100, 130, 228))
        .desc("返回")
        .on_tap(Act::Back)
}

fn entry(top: i32, label: &str, act: Act) -> Node {
    node("android.widget.RelativeLayout", (0, top, W, top + 150))
        .on_tap(act)
        .child(node("android.widget.TextView", (212, top + 40, 900, top + 110)).text(label))
}

fn field(bounds: (i32, i32, i32, i32), text: &str, focused: bool) -> Node {
    let mut n = node("android.widget.EditText", bounds)
        .text(text)
        .on_tap(Act::Focus);
    n.focused = focused;
    n
}

/// A 备注 row: its label and text field.
fn remark_row(top: i32, remark: &str, focused: bool) -> Node {
    let mut input = node("android.widget.EditText", (212, top + 20, 1044, top + 130))
        .text(remark)
        .on_tap(Act::FocusRemark);
    input.focused = focused;
    node("android.widget.RelativeLayout", (0, top, W, top + 150))
        .child(node("android.widget.TextView", (36, top + 40, 200, top + 110)).text("备注"))
        .child(input)
}

fn button(bounds: (i32, i32, i32, i32), label: &str, act: Act) -> Node {
    node("android.widget.Button", bounds)
        .text(label)
        .on_tap(act)
}

fn dialog(title: &str, message: &str, buttons: Vec<(&str, Act)>) -> Node {
    let n = buttons.len().max(1) as i32;
    let w = 920 / n;
    let mut d = node("android.widget.LinearLayout", (80, 860, 1000, 1540))
        .child(node("android.widget.TextView", (120, 900, 960, 990)).text(title))
        .child(node("android.widget.TextView", (120, 1010, 960, 1300)).text(message));
    for (i, (label, act)) in buttons.into_iter().enumerate() {
        let l = 80 + w * i as i32;
        d = d.child(button((l, 1380, l + w, 1540), label, act));
    }
    d
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

/// The scripted phone's whole state.
struct State {
    version: Option<String>,
    running: bool,
    foreground: bool,
    stack: Vec<Screen>,
    overlay: Option<Overlay>,
    focused: bool,
    chats: Vec<(String, String)>,
    contacts: Vec<String>,
    requests: Vec<(String, bool)>,
    /// The enterprise's customer tags.
    tags: Vec<String>,
    gallery: Vec<String>,
    popups: Vec<(Trigger, Overlay)>,
    hidden: Vec<String>,
    inputs: Vec<Input>,
    sent: Vec<Sent>,
    dnd: bool,
    notes: Vec<String>,
    permission_granted: bool,
    /// Called when text is typed (the cancellation test cancels from here).
    on_type: Option<Box<dyn Fn() + Send>>,
    /// The app takes BACK and does nothing with it (a screen that handles
    /// the key itself, such as a web page with no history).
    back_ignored: bool,
}

impl State {
    fn new() -> State {
        State {
            version: Some("4.1.30".to_owned()),
            running: false,
            foreground: false,
            stack: vec![Screen::Main(Tab::Messages)],
            overlay: None,
            focused: false,
            chats: vec![
                ("张三".to_owned(), "你好，请问产品还有货吗？".to_owned()),
                ("李四".to_owned(), "收到，谢谢".to_owned()),
            ],
            contacts: ["张三", "李四", "王五", "赵六"].map(str::to_owned).to_vec(),
            requests: vec![("陈七".to_owned(), true), ("周八".to_owned(), false)],
            tags: ["重要客户", "新客户", "VIP"].map(str::to_owned).to_vec(),
            gallery: Vec::new(),
            popups: Vec::new(),
            hidden: Vec::new(),
            inputs: Vec::new(),
            sent: Vec::new(),
            dnd: false,
            notes: Vec::new(),
            permission_granted: false,
            on_type: None,
            back_ignored: false,
        }
    }

    fn top(&self) -> &Screen {
        self.stack.last().unwrap_or(&Screen::Main(Tab::Messages))
    }

    fn top_mut(&mut self) -> &mut Screen {
        if self.stack.is_empty() {
            self.stack.push(Screen::Main(Tab::Messages));
        }
        let last = self.stack.len() - 1;
        &mut self.stack[last]
    }

    /// After every screen change: focus resets and scripted popups may appear.
    fn changed(&mut self) {
        self.focused = matches!(
            self.top(),
            Screen::ContactSearch { .. } | Screen::AddFriend { .. }
        );
        if self.overlay.is_some() || !self.foreground {
            return;
        }
        let screen = self.top().name();
        let mut fired = None;
        for (i, (trigger, _)) in self.popups.iter_mut().enumerate() {
            let due = match trigger {
                Trigger::Change(n) => {
                    *n -= 1;
                    *n == 0
                }
                Trigger::Screen(name) => *name == screen,
            };
            if due && fired.is_none() {
                fired = Some(i);
            }
        }
        if let Some(i) = fired {
            self.overlay = Some(self.popups.remove(i).1);
        }
    }

    fn push(&mut self, screen: Screen) {
        self.stack.push(screen);
        self.changed();
    }

    fn pop(&mut self) {
        self.stack.pop();
        self.changed();
    }

    fn launch(&mut self) {
        if !self.running {
            self.stack = vec![Screen::Main(Tab::Messages)];
        }
        self.running = true;
        self.foreground = true;
        self.changed();
    }

    fn back(&mut self) {
        if let Some(overlay) = &self.overlay {
            if !matches!(overlay, Overlay::Risk(_) | Overlay::Update { forced: true }) {
                self.overlay = None;
            }
            return;
        }
        if !self.foreground || self.back_ignored {
            return;
        }
        if self.focused && matches!(self.top(), Screen::Chat { .. }) {
            self.focused = false;
            return;
        }
        if let Screen::Chat { panel: true, .. } = self.top() {
            if let Screen::Chat { panel, .. } = self.top_mut() {
                *panel = false;
            }
            return;
        }
        if self.stack.len() <= 1 {
            self.foreground = false;
            self.focused = false;
            return;
        }
        self.pop();
    }

    fn type_text(&mut self, text: &str) {
        if !self.foreground || self.overlay.is_some() || !self.focused {
            return;
        }
        match self.top_mut() {
            Screen::Chat { draft, .. } => draft.push_str(text),
            Screen::ContactSearch { query } => query.push_str(text),
            Screen::AddFriend { query, result, .. } => {
                query.push_str(text);
                *result = None;
            }
            Screen::Greeting {
                remark_focus: false,
                greeting: t,
                ..
            }
            | Screen::Greeting {
                remark_focus: true,
                remark: t,
                ..
            }
            | Screen::Verify { remark: t, .. } => t.push_str(text),
            Screen::Composer { text: t, .. } => t.push_str(text),
            _ => {}
        }
    }

    fn delete_char(&mut self) {
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
            | Screen::Composer { text: t, .. }
            | Screen::AddFriend { query: t, .. } => {
                t.pop();
            }
            _ => {}
        }
    }

    /// Taps go to the popup when one shows: it is modal.
    fn touch_tree(&self) -> Node {
        match &self.overlay {
            Some(overlay) if self.foreground || *overlay == Overlay::Permission => {
                overlay_tree(overlay)
            }
            _ => self.tree(),
        }
    }

    fn tap(&mut self, at: Point) {
        let tree = self.touch_tree();
        match tree.hit(at.x, at.y, false) {
            Some(hit) => {
                let label = if hit.text.is_empty() {
                    hit.desc.clone()
                } else {
                    hit.text.clone()
                };
                self.inputs.push(Input::Tap(label));
                if let Some(act) = hit.tap.clone() {
                    self.run(act);
                }
            }
            None => {
                self.inputs.push(Input::Tap(format!("({},{})", at.x, at.y)));
                if matches!(self.overlay, Some(Overlay::ChatMenu(_))) {
                    self.overlay = None;
                }
            }
        }
    }

    fn long_press(&mut self, at: Point) {
        let tree = self.touch_tree();
        if let Some(hit) = tree.hit(at.x, at.y, true) {
            self.inputs.push(Input::LongPress(hit.text.clone()));
            if let Some(act) = hit.long.clone() {
                self.run(act);
            }
        }
    }

    fn chat_partner(&self) -> Option<String> {
        match self.top() {
            Screen::Chat { with, .. } => Some(with.clone()),
            _ => None,
        }
    }

    fn run(&mut self, act: Act) {
        match act {
            Act::LaunchWeCom => self.launch(),
            Act::Tab(tab) => {
                self.stack = vec![Screen::Main(tab)];
                self.changed();
            }
            Act::OpenChat(with) => {
                if !self.chats.iter().any(|(w, _)| *w == with) {
                    self.chats.insert(0, (with.clone(), String::new()));
                }
                self.push(Screen::Chat {
                    with,
                    draft: String::new(),
                    panel: false,
                });
            }
            Act::Back => self.back(),
            Act::Focus => {
                if let Screen::Greeting { remark_focus, .. } = self.top_mut() {
                    *remark_focus = false;
                }
                self.focused = true;
            }
            Act::FocusRemark => {
                if let Screen::Greeting { remark_focus, .. } = self.top_mut() {
                    *remark_focus = true;
                }
                self.focused = true;
            }
            Act::OpenTags(visibility) => {
                let selected = match self.top() {
                    Screen::Greeting { tags, .. } | Screen::Visibility { tags } => tags.clone(),
                    _ => return,
                };
                self.push(Screen::TagPicker {
                    selected,
                    visibility,
                });
            }
            Act::ToggleTag(tag) => {
                if let Screen::TagPicker { selected, .. } = self.top_mut() {
                    if let Some(i) = selected.iter().position(|t| *t == tag) {
                        selected.remove(i);
                    } else {
                        selected.push(tag);
                    }
                }
            }
            Act::TagsDone => {
                let Screen::TagPicker { selected, .. } = self.top().clone() else {
                    return;
                };
                self.stack.pop();
                if let Screen::Greeting { tags, .. } | Screen::Visibility { tags } = self.top_mut()
                {
                    *tags = selected;
                }
                self.changed();
            }
            Act::OpenVisibility => {
                if let Screen::Composer { tags, .. } = self.top().clone() {
                    self.push(Screen::Visibility { tags });
                }
            }
            Act::VisibilityDone => {
                let Screen::Visibility { tags } = self.top().clone() else {
                    return;
                };
                self.stack.pop();
                if let Screen::Composer { tags: t, .. } = self.top_mut() {
                    *t = tags;
                }
                self.changed();
            }
            Act::ConfirmVerify => {
                let Screen::Verify { name, remark } = self.top().clone() else {
                    return;
                };
                if let Some(r) = self
                    .requests
                    .iter_mut()
                    .find(|(n, done)| *n == name && !done)
                {
                    r.1 = true;
                    self.sent.push(Sent::Accepted { name, remark });
                }
                self.pop();
            }
            Act::Send => {
                let (with, text) = match self.top_mut() {
                    Screen::Chat { with, draft, .. } if !draft.is_empty() => {
                        (with.clone(), std::mem::take(draft))
                    }
                    _ => return,
                };
                self.sent.push(Sent::Message { to: with, text });
            }
            Act::OpenSearch => self.push(Screen::ContactSearch {
                query: String::new(),
            }),
            Act::OpenProfile(name) => self.push(Screen::Profile { name }),
            Act::MessageFrom(name) => self.run(Act::OpenChat(name)),
            Act::OpenAddFriend => self.push(Screen::AddFriend {
                query: String::new(),
                result: None,
                requested: false,
            }),
            Act::AddFriendSearch => {
                if let Screen::AddFriend {
                    query,
                    result,
                    requested,
                } = self.top_mut()
                {
                    let q = query.trim();
                    let phone = q.len() == 11
                        && q.starts_with('1')
                        && q.chars().all(|c| c.is_ascii_digit());
                    *result = Some(phone.then(|| format!("用户{}", &q[7..])));
                    *requested = false;
                }
            }
            Act::AddToContacts(name) => {
                let Screen::AddFriend { query, .. } = self.top().clone() else {
                    return;
                };
                self.push(Screen::Greeting {
                    query,
                    name,
                    greeting: "我是小优".to_owned(),
                    remark: String::new(),
                    tags: Vec::new(),
                    remark_focus: false,
                });
            }
            Act::SendRequest => {
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
                self.sent.push(Sent::FriendRequest {
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
            Act::OpenRequests => self.push(Screen::FriendRequests),
            Act::Accept(name) => {
                if self.requests.iter().any(|(n, done)| *n == name && !done) {
                    let remark = name.clone();
                    self.push(Screen::Verify { name, remark });
                }
            }
            Act::OpenMoments => self.push(Screen::MomentsHome),
            Act::OpenComposer => self.push(Screen::Composer {
                text: String::new(),
                media: Vec::new(),
                tags: Vec::new(),
            }),
            Act::OpenPicker => self.push(Screen::Picker {
                selected: Vec::new(),
                chat: None,
            }),
            Act::Toggle(path) => {
                if let Screen::Picker { selected, .. } = self.top_mut() {
                    if let Some(i) = selected.iter().position(|p| *p == path) {
                        selected.remove(i);
                    } else {
                        selected.push(path);
                    }
                }
            }
            Act::PickerDone => {
                let Screen::Picker { selected, chat } = self.top().clone() else {
                    return;
                };
                if let Some(to) = chat {
                    if selected.is_empty() {
                        return;
                    }
                    for path in selected {
                        self.sent.push(Sent::Image {
                            to: to.clone(),
                            name: file_name(&path),
                        });
                    }
                    self.pop();
                    return;
                }
                self.stack.pop();
                if let Screen::Composer { media, .. } = self.top_mut() {
                    *media = selected;
                }
                self.changed();
            }
            Act::Post => {
                let Screen::Composer { text, media, tags } = self.top().clone() else {
                    return;
                };
                if text.is_empty() && media.is_empty() {
                    return;
                }
                self.sent.push(Sent::Moment { text, media, tags });
                self.pop();
            }
            Act::ChatMenu(with) => self.overlay = Some(Overlay::ChatMenu(with)),
            Act::MenuDelete(with) => self.overlay = Some(Overlay::ConfirmDelete(with)),
            Act::MenuClose | Act::Dismiss => {
                if self.overlay == Some(Overlay::Permission) {
                    self.permission_granted = true;
                }
                self.overlay = None;
            }
            Act::ConfirmDelete(with) => {
                self.overlay = None;
                self.chats.retain(|(w, _)| *w != with);
                self.sent.push(Sent::ChatDeleted { with });
            }
            Act::OpenMore => {
                if let Screen::Chat { panel, .. } = self.top_mut() {
                    *panel = true;
                }
            }
            Act::OpenAlbum => {
                let chat = self.chat_partner();
                self.push(Screen::Picker {
                    selected: Vec::new(),
                    chat,
                });
            }
            Act::OpenFiles => {
                if let Some(chat) = self.chat_partner() {
                    self.push(Screen::FileSource { chat });
                }
            }
            Act::PhoneStorage => {
                if let Screen::FileSource { chat } = self.top().clone() {
                    self.push(Screen::Storage {
                        chat,
                        selected: None,
                    });
                }
            }
            Act::PickFile(path) => {
                if let Screen::Storage { selected, .. } = self.top_mut() {
                    *selected = Some(path);
                }
            }
            Act::SendFile => {
                let Screen::Storage {
                    chat,
                    selected: Some(path),
                } = self.top().clone()
                else {
                    return;
                };
                self.sent.push(Sent::File {
                    to: chat,
                    name: file_name(&path),
                });
                // Back to the chat, past the file source screen.
                self.stack.pop();
                self.stack.pop();
                if let Screen::Chat { panel, .. } = self.top_mut() {
                    *panel = false;
                }
                self.changed();
            }
        }
    }

    fn tree(&self) -> Node {
        let mut root = if self.foreground {
            self.app_tree()
        } else {
            launcher_tree()
        };
        if let Some(overlay) = &self.overlay {
            if self.foreground || *overlay == Overlay::Permission {
                root = node("android.widget.FrameLayout", (0, 0, W, H))
                    .child(root)
                    .child(overlay_tree(overlay));
            }
        }
        root
    }

    fn app_tree(&self) -> Node {
        let root = node("android.widget.FrameLayout", (0, 0, W, H));
        let content = (0, 248, W, 2208);
        match self.top() {
            Screen::Main(tab) => {
                let body = match tab {
                    Tab::Messages => {
                        let mut list = node("androidx.recyclerview.widget.RecyclerView", content);
                        for (i, (with, last)) in self.chats.iter().enumerate() {
                            let top = 248 + 200 * i as i32;
                            list = list.child(
                                node("android.widget.RelativeLayout", (0, top, W, top + 200))
                                    .on_tap(Act::OpenChat(with.clone()))
                                    .on_long(Act::ChatMenu(with.clone()))
                                    .child(
                                        node(
                                            "android.widget.TextView",
                                            (212, top + 36, 800, top + 96),
                                        )
                                        .text(with),
                                    )
                                    .child(
                                        node(
                                            "android.widget.TextView",
                                            (212, top + 110, 1000, top + 160),
                                        )
                                        .text(last),
                                    ),
                            );
                        }
                        list
                    }
                    Tab::Contacts => {
                        let mut list = node("android.widget.ListView", content)
                            .child(
                                node("android.widget.TextView", (36, 268, 1044, 368))
                                    .text("搜索")
                                    .on_tap(Act::OpenSearch),
                            )
                            .child(entry(388, "新的客户", Act::OpenRequests))
                            .child(entry(548, "添加客户", Act::OpenAddFriend));
                        for (i, name) in self.contacts.iter().enumerate() {
                            list = list.child(entry(
                                728 + 160 * i as i32,
                                name,
                                Act::OpenProfile(name.clone()),
                            ));
                        }
                        list
                    }
                    Tab::Workbench => {
                        let item = |i: i32, label: &str, act: Option<Act>| {
                            let l = 270 * i;
                            let mut n = node("android.widget.LinearLayout", (l, 300, l + 270, 550))
                                .child(
                                    node("android.widget.TextView", (l, 470, l + 270, 540))
                                        .text(label),
                                );
                            if let Some(act) = act {
                                n = n.on_tap(act);
                            }
                            n
                        };
                        node("android.widget.GridView", content)
                            .child(item(0, "客户朋友圈", Some(Act::OpenMoments)))
                            .child(item(1, "客户联系", None))
                            .child(item(2, "群发助手", None))
                            .child(item(3, "打卡", None))
                    }
                };
                let title = match tab {
                    Tab::Messages => "消息",
                    Tab::Contacts => "通讯录",
                    Tab::Workbench => "工作台",
                };
                let mut bar = node("android.widget.LinearLayout", (0, 2208, W, H));
                for (i, (t, label)) in [
                    (Tab::Messages, "消息"),
                    (Tab::Contacts, "通讯录"),
                    (Tab::Workbench, "工作台"),
                ]
                .into_iter()
                .enumerate()
                {
                    let l = 360 * i as i32;
                    bar = bar.child(
                        node("android.widget.TextView", (l, 2208, l + 360, H))
                            .text(label)
                            .desc(label)
                            .on_tap(Act::Tab(t)),
                    );
                }
                root.child(title_bar(title, false)).child(body).child(bar)
            }
            Screen::Chat { with, draft, panel } => {
                let mut list = node(
                    "androidx.recyclerview.widget.RecyclerView",
                    (0, 248, W, 1800),
                );
                for (i, sent) in self
                    .sent
                    .iter()
                    .filter_map(|s| match s {
                        Sent::Message { to, text } if to == with => Some(text),
                        _ => None,
                    })
                    .enumerate()
                {
                    let top = 268 + 150 * i as i32;
                    list = list.child(
                        node("android.widget.TextView", (400, top, 1044, top + 120)).text(sent),
                    );
                }
                let action = if draft.is_empty() {
                    node("android.widget.ImageView", (864, 2256, 1056, 2376))
                        .desc("更多功能按钮，已折叠")
                        .on_tap(Act::OpenMore)
                } else {
                    button((864, 2256, 1056, 2376), "发送", Act::Send)
                };
                let mut screen = root.child(title_bar(with, true)).child(list).child(
                    node("android.widget.LinearLayout", (0, 2232, W, H))
                        .child(field((24, 2256, 840, 2376), draft, self.focused))
                        .child(action),
                );
                if *panel {
                    screen = screen.child(
                        node("android.widget.GridView", (0, 1800, W, 2232))
                            .child(entry(1820, "图片", Act::OpenAlbum))
                            .child(entry(1990, "文件", Act::OpenFiles)),
                    );
                }
                screen
            }
            Screen::ContactSearch { query } => {
                let hits: Vec<&String> = if query.is_empty() {
                    Vec::new()
                } else {
                    self.contacts
                        .iter()
                        .filter(|c| c.contains(query.as_str()))
                        .collect()
                };
                let mut results = node("android.widget.ListView", content);
                if hits.is_empty() && !query.is_empty() {
                    results = results.child(
                        node("android.widget.TextView", (0, 300, W, 400)).text("无搜索结果"),
                    );
                }
                for (i, name) in hits.into_iter().enumerate() {
                    results = results.child(entry(
                        268 + 160 * i as i32,
                        name,
                        Act::OpenProfile(name.clone()),
                    ));
                }
                root.child(back_button())
                    .child(field((150, 100, 1044, 228), query, self.focused))
                    .child(results)
            }
            Screen::Profile { name } => root
                .child(title_bar("", true))
                .child(node("android.widget.TextView", (212, 300, 900, 380)).text(name))
                .child(button(
                    (36, 1800, 1044, 1940),
                    "发消息",
                    Act::MessageFrom(name.clone()),
                )),
            Screen::AddFriend {
                query,
                result,
                requested,
            } => {
                let mut n = root
                    .child(title_bar("添加客户", true))
                    .child(
                        node("android.widget.TextView", (36, 400, 1044, 460))
                            .text("手机号/企业微信号"),
                    )
                    .child(field((36, 268, 860, 388), query, self.focused))
                    .child(button((880, 268, 1044, 388), "搜索", Act::AddFriendSearch));
                match result {
                    None => {}
                    Some(None) => {
                        n = n.child(
                            node("android.widget.TextView", (0, 520, W, 600)).text("该用户不存在"),
                        )
                    }
                    Some(Some(name)) => {
                        n = n.child(
                            node("android.widget.TextView", (212, 520, 900, 600)).text(name),
                        );
                        n = n.child(if *requested {
                            node("android.widget.TextView", (36, 700, 1044, 840)).text("等待验证")
                        } else {
                            button(
                                (36, 700, 1044, 840),
                                "添加到通讯录",
                                Act::AddToContacts(name.clone()),
                            )
                        });
                    }
                }
                n
            }
            Screen::Greeting {
                greeting,
                remark,
                tags,
                remark_focus,
                ..
            } => root
                .child(title_bar("申请添加客户", true))
                .child(node("android.widget.TextView", (36, 300, 1044, 380)).text("发送添加邀请"))
                .child(field(
                    (36, 400, 1044, 640),
                    greeting,
                    self.focused && !remark_focus,
                ))
                .child(remark_row(680, remark, self.focused && *remark_focus))
                .child(entry(850, "标签", Act::OpenTags(false)).child(
                    node("android.widget.TextView", (540, 890, 1000, 960)).text(&tags.join("、")),
                ))
                .child(button((880, 100, 1044, 228), "发送", Act::SendRequest)),
            Screen::Verify { remark, .. } => root
                .child(title_bar("通过验证", true))
                .child(button((880, 100, 1044, 228), "完成", Act::ConfirmVerify))
                .child(remark_row(268, remark, self.focused)),
            Screen::Visibility { tags } => root
                .child(title_bar("可见的客户", true))
                .child(button((880, 100, 1044, 228), "完成", Act::VisibilityDone))
                .child(entry(268, "全部客户", Act::Back))
                .child(entry(428, "按标签筛选", Act::OpenTags(true)).child(
                    node("android.widget.TextView", (540, 468, 1000, 538)).text(&tags.join("、")),
                )),
            Screen::TagPicker { selected, .. } => {
                let mut n = root.child(title_bar("选择标签", true)).child(button(
                    (840, 2240, 1044, 2380),
                    &if selected.is_empty() {
                        "确定".to_owned()
                    } else {
                        format!("确定({})", selected.len())
                    },
                    Act::TagsDone,
                ));
                for (i, tag) in self.tags.iter().enumerate() {
                    let l = 36 + 252 * i as i32;
                    let mut chip = node("android.widget.TextView", (l, 400, l + 232, 510))
                        .text(tag)
                        .on_tap(Act::ToggleTag(tag.clone()));
                    chip.checked = selected.contains(tag);
                    n = n.child(chip);
                }
                n
            }
            Screen::FriendRequests => {
                let mut list = node("android.widget.ListView", content);
                for (i, (name, accepted)) in self.requests.iter().enumerate() {
                    let top = 268 + 200 * i as i32;
                    let state = if *accepted {
                        node("android.widget.TextView", (840, top + 50, 1044, top + 150))
                            .text("已添加")
                    } else {
                        button(
                            (840, top + 50, 1044, top + 150),
                            "通过",
                            Act::Accept(name.clone()),
                        )
                    };
                    list = list.child(
                        node("android.widget.RelativeLayout", (0, top, W, top + 200))
                            .child(
                                node("android.widget.TextView", (212, top + 30, 800, top + 90))
                                    .text(name),
                            )
                            .child(state),
                    );
                }
                root.child(title_bar("新的客户", true)).child(list)
            }
            Screen::MomentsHome => root.child(title_bar("客户朋友圈", true)).child(
                node("android.widget.ImageView", (920, 100, 1044, 228))
                    .desc("发表到客户朋友圈")
                    .on_tap(Act::OpenComposer),
            ),
            Screen::Composer { text, media, tags } => {
                let mut n = root
                    .child(title_bar("", true))
                    .child(button((880, 100, 1044, 228), "发表", Act::Post))
                    .child(field((36, 268, 1044, 700), text, self.focused));
                for (i, m) in media.iter().enumerate() {
                    let l = 36 + 330 * i as i32;
                    n = n.child(
                        node("android.widget.ImageView", (l, 740, l + 300, 1040))
                            .desc(&format!("图片{}", i + 1))
                            .text(&file_name(m)),
                    );
                }
                let l = 36 + 330 * media.len() as i32;
                let shown_to = if tags.is_empty() {
                    "全部客户".to_owned()
                } else {
                    tags.join("、")
                };
                n.child(
                    node("android.widget.ImageView", (l, 1100, l + 300, 1400))
                        .desc("添加图片")
                        .on_tap(Act::OpenPicker),
                )
                .child(entry(2050, "可见的客户", Act::OpenVisibility).child(
                    node("android.widget.TextView", (540, 2090, 1000, 2160)).text(&shown_to),
                ))
            }
            Screen::Picker { selected, chat } => {
                let verb = if chat.is_some() { "发送" } else { "完成" };
                let label = if selected.is_empty() {
                    verb.to_owned()
                } else {
                    format!("{verb}({})", selected.len())
                };
                let mut n = root.child(title_bar("图片和视频", true)).child(button(
                    (840, 100, 1044, 228),
                    &label,
                    Act::PickerDone,
                ));
                for (i, m) in self.gallery.iter().enumerate() {
                    let l = 270 * (i as i32 % 4);
                    let t = 248 + 270 * (i as i32 / 4);
                    let mut cell = node("android.widget.ImageView", (l, t, l + 266, t + 266))
                        .desc(&format!("照片, {}", file_name(m)))
                        .on_tap(Act::Toggle(m.clone()));
                    cell.checked = selected.contains(m);
                    n = n.child(cell);
                }
                n
            }
            Screen::FileSource { .. } => root
                .child(title_bar("选择文件", true))
                .child(entry(268, "微盘", Act::Back))
                .child(entry(428, "手机存储", Act::PhoneStorage)),
            Screen::Storage { selected, .. } => {
                let mut n = root.child(title_bar("手机存储", true));
                for (i, m) in self.gallery.iter().enumerate() {
                    n = n.child(entry(
                        268 + 160 * i as i32,
                        &file_name(m),
                        Act::PickFile(m.clone()),
                    ));
                }
                let label = if selected.is_some() {
                    "发送(1)"
                } else {
                    "发送"
                };
                n.child(button((840, 2240, 1044, 2380), label, Act::SendFile))
            }
        }
    }
}

fn launcher_tree() -> Node {
    node("android.widget.FrameLayout", (0, 0, W, H))
        .child(
            node("android.widget.TextView", (40, 1900, 280, 2150))
                .text("企业微信")
                .desc("企业微信")
                .on_tap(Act::LaunchWeCom),
        )
        .child(
            node("android.widget.TextView", (290, 1900, 530, 2150))
                .text("设置")
                .desc("设置"),
        )
        .package(LAUNCHER)
}

fn overlay_tree(overlay: &Overlay) -> Node {
    match overlay {
        Overlay::Risk(title) => dialog(
            title,
            "为保障账号安全，请稍后再试",
            vec![("我知道了", Act::Dismiss)],
        ),
        Overlay::Update { forced } => {
            let mut buttons = vec![("立即更新", Act::Dismiss)];
            if !forced {
                buttons.insert(0, ("以后再说", Act::Dismiss));
            }
            dialog(
                "发现新版本",
                "企业微信有新版本可用，更新后体验更多功能",
                buttons,
            )
        }
        Overlay::Permission => dialog(
            "要允许“企业微信”访问您设备上的照片和媒体内容吗？",
            "",
            vec![("允许", Act::Dismiss), ("拒绝", Act::Dismiss)],
        )
        .package(PERMISSIONS),
        Overlay::ChatMenu(with) => node("android.widget.ListView", (240, 900, 840, 1380))
            .child(
                node("android.widget.TextView", (240, 900, 840, 1060))
                    .text("标为未读")
                    .on_tap(Act::MenuClose),
            )
            .child(
                node("android.widget.TextView", (240, 1060, 840, 1220))
                    .text("置顶")
                    .on_tap(Act::MenuClose),
            )
            .child(
                node("android.widget.TextView", (240, 1220, 840, 1380))
                    .text("删除")
                    .on_tap(Act::MenuDelete(with.clone())),
            ),
        Overlay::ConfirmDelete(with) => dialog(
            "",
            "删除后，将清空该聊天的消息记录",
            vec![
                ("取消", Act::Dismiss),
                ("删除", Act::ConfirmDelete(with.clone())),
            ],
        ),
    }
}

/// The scripted phone: a [`Phone`] over [`State`].
struct ScriptedPhone {
    state: Mutex<State>,
}

impl ScriptedPhone {
    fn new() -> Arc<ScriptedPhone> {
        Arc::new(ScriptedPhone {
            state: Mutex::new(State::new()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sent(&self) -> Vec<Sent> {
        self.state().sent.clone()
    }

    fn screen(&self) -> String {
        let state = self.state();
        if state.foreground {
            state.top().name().to_owned()
        } else {
            "launcher".to_owned()
        }
    }

    fn popup(&self, trigger: Trigger, overlay: Overlay) {
        self.state().popups.push((trigger, overlay));
    }
}

fn ready<T: Send + 'static>(value: T) -> BoxFuture<'static, T> {
    Box::pin(std::future::ready(value))
}

impl Phone for ScriptedPhone {
    fn serial(&self) -> &str {
        "SCRIPTED0001"
    }

    fn dump_ui(&self) -> BoxFuture<'_, PhoneResult<UiTree>> {
        let state = self.state();
        let mut xml = String::from(
            "<?xml version='1.0' encoding='UTF-8' standalone='yes' ?><hierarchy rotation=\"0\">",
        );
        state.tree().xml(0, &state.hidden, &mut xml);
        xml.push_str("</hierarchy>");
        ready(UiTree::parse(&xml).map_err(|e| PhoneError::BadOutput {
            command: "uiautomator dump".to_owned(),
            reason: e.to_string(),
        }))
    }

    fn tap(&self, at: Point) -> BoxFuture<'_, PhoneResult<()>> {
        self.state().tap(at);
        ready(Ok(()))
    }

    fn long_press(&self, at: Point, _hold: Duration) -> BoxFuture<'_, PhoneResult<()>> {
        self.state().long_press(at);
        ready(Ok(()))
    }

    fn swipe(
        &self,
        _from: Point,
        _to: Point,
        _duration: Duration,
    ) -> BoxFuture<'_, PhoneResult<()>> {
        ready(Ok(()))
    }

    fn key(&self, key: Key) -> BoxFuture<'_, PhoneResult<()>> {
        let mut state = self.state();
        state.inputs.push(Input::Key(key.code()));
        match key {
            Key::Back => state.back(),
            Key::Home => state.foreground = false,
            Key::Delete => state.delete_char(),
            Key::Enter => {
                if matches!(state.top(), Screen::AddFriend { .. }) {
                    state.run(Act::AddFriendSearch);
                }
            }
            _ => {}
        }
        ready(Ok(()))
    }

    fn launch_app<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        if package != WECOM_PACKAGE {
            return ready(Err(PhoneError::AppNotInstalled {
                package: package.to_owned(),
            }));
        }
        let mut state = self.state();
        state.inputs.push(Input::Launch);
        state.launch();
        ready(Ok(()))
    }

    fn stop_app<'a>(&'a self, _package: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        let mut state = self.state();
        state.running = false;
        state.foreground = false;
        state.overlay = None;
        ready(Ok(()))
    }

    fn foreground_app(&self) -> BoxFuture<'_, PhoneResult<Option<Foreground>>> {
        let state = self.state();
        let package = if state.foreground {
            WECOM_PACKAGE
        } else {
            LAUNCHER
        };
        ready(Ok(Some(Foreground {
            package: package.to_owned(),
            activity: ".Main".to_owned(),
        })))
    }

    fn app_version<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<Option<String>>> {
        let version = if package == WECOM_PACKAGE {
            self.state().version.clone()
        } else {
            None
        };
        ready(Ok(version))
    }

    fn type_text<'a>(&'a self, text: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        let mut state = self.state();
        state.inputs.push(Input::Type(text.to_owned()));
        state.type_text(text);
        if let Some(hook) = &state.on_type {
            hook();
        }
        ready(Ok(()))
    }

    fn push_media<'a>(&'a self, local: &'a Path) -> BoxFuture<'a, PhoneResult<String>> {
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = format!("/sdcard/Pictures/youmi/{name}.jpg");
        let mut state = self.state();
        state.inputs.push(Input::Push(path.clone()));
        state.gallery.push(path.clone());
        ready(Ok(path))
    }

    fn clear_media(&self) -> BoxFuture<'_, PhoneResult<()>> {
        self.state()
            .gallery
            .retain(|path| !path.starts_with("/sdcard/Pictures/youmi/"));
        ready(Ok(()))
    }

    fn screenshot(&self) -> BoxFuture<'_, PhoneResult<Vec<u8>>> {
        let mut png = Vec::new();
        let image = image::RgbImage::new(2, 2);
        let result = image::DynamicImage::ImageRgb8(image)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map(|()| png)
            .map_err(|e| PhoneError::LocalFile {
                path: "screenshot".to_owned(),
                reason: e.to_string(),
            });
        ready(result)
    }

    fn do_not_disturb(&self) -> BoxFuture<'_, PhoneResult<bool>> {
        ready(Ok(self.state().dnd))
    }

    fn set_do_not_disturb(&self, on: bool) -> BoxFuture<'_, PhoneResult<()>> {
        self.state().dnd = on;
        ready(Ok(()))
    }

    fn call_state(&self) -> BoxFuture<'_, PhoneResult<CallState>> {
        ready(Ok(CallState::Idle))
    }

    fn end_call(&self) -> BoxFuture<'_, PhoneResult<()>> {
        ready(Ok(()))
    }

    fn status(&self) -> BoxFuture<'_, PhoneResult<PhoneStatus>> {
        ready(Ok(PhoneStatus::default()))
    }

    fn notify<'a>(&'a self, text: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        self.state().notes.push(text.to_owned());
        ready(Ok(()))
    }
}

// ---------------------------------------------------------------------------
// Helpers.

struct Setup {
    phone: Arc<ScriptedPhone>,
    executor: FlowExecutor,
    media: tempfile::TempDir,
    evidence: tempfile::TempDir,
}

fn setup_with(flows: FlowSet) -> Setup {
    let phone = ScriptedPhone::new();
    let media = tempfile::tempdir().unwrap();
    let evidence = tempfile::tempdir().unwrap();
    for id in ["m1", "m2", "doc1"] {
        std::fs::write(media.path().join(id), b"media bytes").unwrap();
    }
    let executor = FlowExecutor::new(
        phone.clone(),
        flows,
        FlowOptions {
            media_dir: Some(media.path().to_owned()),
            evidence_dir: Some(evidence.path().to_owned()),
            ..FlowOptions::default()
        },
    );
    Setup {
        phone,
        executor,
        media,
        evidence,
    }
}

fn setup() -> Setup {
    setup_with(FlowSet::builtin().unwrap())
}

fn task(id: i64, kind: TaskKind, payload: Value) -> AssignedTask {
    AssignedTask {
        id,
        kind,
        payload,
        attempt: 1,
        not_after_ms: None,
    }
}

async fn run(
    setup: &Setup,
    task: &AssignedTask,
) -> (Result<Option<Value>, TaskFailure>, Vec<Progress>) {
    let (ctx, mut control) = TaskContext::new(task.id);
    let result = tokio::time::timeout(
        Duration::from_secs(3600),
        setup.executor.execute(task, &ctx),
    )
    .await
    .expect("the flow ends");
    drop(ctx);
    let mut progress = Vec::new();
    while let Some(p) = control.next_progress().await {
        progress.push(p);
    }
    (result, progress)
}

/// The error and evidence of a failure with evidence.
fn evidenced(result: Result<Option<Value>, TaskFailure>) -> (youmi_protocol::TaskError, Value) {
    match result {
        Err(TaskFailure::FailedWithEvidence { error, evidence }) => (error, evidence),
        other => panic!("expected a failure with evidence, got {other:?}"),
    }
}

fn plain_failure(result: Result<Option<Value>, TaskFailure>) -> youmi_protocol::TaskError {
    match result {
        Err(TaskFailure::Failed(error)) => error,
        other => panic!("expected a plain failure, got {other:?}"),
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn message_payload(to: &str) -> Value {
    json!({
        "to": {"name": to},
        "items": [
            {"type": "text", "text": "新品到货，欢迎选购"},
            {"type": "link", "url": "https://example.com/p/1", "title": "新品目录"},
            {"type": "image", "media_id": "m1"},
            {"type": "file", "media_id": "doc1"},
        ],
    })
}

// ---------------------------------------------------------------------------
// Every task kind, end to end.

#[tokio::test(start_paused = true)]
async fn send_message_sends_every_item_type_in_order() {
    let s = setup();
    let (result, progress) =
        run(&s, &task(1, TaskKind::SendMessage, message_payload("张三"))).await;
    let result = result.unwrap().unwrap();
    assert_eq!(
        s.phone.sent(),
        vec![
            Sent::Message {
                to: "张三".into(),
                text: "新品到货，欢迎选购".into()
            },
            Sent::Message {
                to: "张三".into(),
                text: "新品目录 https://example.com/p/1".into()
            },
            Sent::Image {
                to: "张三".into(),
                name: "m1.jpg".into()
            },
            Sent::File {
                to: "张三".into(),
                name: "doc1.jpg".into()
            },
        ]
    );
    assert_eq!(result["flow_file"], "built-in wecom-4.1.toml");
    assert_eq!(result["app_version"], "4.1.30");
    // Progress: one report before every step, counting up to a fixed total.
    let total = progress[0].total;
    assert_eq!(result["steps"], json!(total));
    assert_eq!(progress.len() as u32, total);
    for (i, p) in progress.iter().enumerate() {
        assert_eq!((p.done, p.total, p.task_id), (i as u32, total, 1));
    }
    assert_eq!(progress[0].step, "open_wecom");
    assert!(progress.iter().any(|p| p.step == "pick_contact"));
    assert_eq!(progress.last().unwrap().step, "back_in_chat");
    assert_eq!(s.phone.screen(), "chat");
}

#[tokio::test(start_paused = true)]
async fn smart_marketing_sends_its_items_like_send_message() {
    let s = setup();
    let payload = json!({
        "flow_id": 7, "step": 2, "to": {"name": "李四"},
        "items": [{"type": "text", "text": "第二步：限时优惠"}],
    });
    run(&s, &task(2, TaskKind::SmartMarketing, payload))
        .await
        .0
        .unwrap();
    assert_eq!(
        s.phone.sent(),
        vec![Sent::Message {
            to: "李四".into(),
            text: "第二步：限时优惠".into()
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn mass_send_reaches_each_recipient_and_skips_unknown_ones() {
    let s = setup();
    let payload = json!({
        "recipients": [{"name": "张三"}, {"name": "无名氏"}, {"name": "李四"}, {"customer_id": 9}],
        "items": [{"type": "text", "text": "周末活动"}, {"type": "image", "media_id": "m2"}],
    });
    let (result, progress) = run(&s, &task(3, TaskKind::MassSend, payload)).await;
    let result = result.unwrap().unwrap();
    assert_eq!(
        s.phone.sent(),
        vec![
            Sent::Message {
                to: "张三".into(),
                text: "周末活动".into()
            },
            Sent::Image {
                to: "张三".into(),
                name: "m2.jpg".into()
            },
            Sent::Message {
                to: "李四".into(),
                text: "周末活动".into()
            },
            Sent::Image {
                to: "李四".into(),
                name: "m2.jpg".into()
            },
        ]
    );
    assert_eq!(result["reached"], 2);
    let skipped = result["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[0]["recipient"], json!({"name": "无名氏"}));
    assert_eq!(skipped[0]["code"], "contact_not_found");
    assert_eq!(skipped[0]["evidence"]["step"], "pick_contact");
    assert!(skipped[0]["evidence"]["screen"]
        .as_array()
        .unwrap()
        .contains(&json!("无搜索结果")));
    assert!(Path::new(skipped[0]["evidence"]["ui_dump"].as_str().unwrap()).is_file());
    assert_eq!(
        skipped[1]["code"], "missing_value",
        "a recipient without a name cannot be searched"
    );
    // The media was pushed once for both recipients.
    let pushes = s
        .phone
        .state()
        .inputs
        .iter()
        .filter(|i| matches!(i, Input::Push(_)))
        .count();
    assert_eq!(pushes, 1);
    // Skipped steps still count, so progress ends where the total says.
    let total = progress[0].total;
    assert_eq!(result["steps"], json!(total));
    assert!(progress.windows(2).all(|w| w[0].done < w[1].done));
}

#[tokio::test(start_paused = true)]
async fn a_mass_send_that_reaches_nobody_fails() {
    let s = setup();
    let payload =
        json!({"recipients": [{"name": "无名氏"}], "items": [{"type": "text", "text": "hi"}]});
    let (error, evidence) = evidenced(run(&s, &task(4, TaskKind::MassSend, payload)).await.0);
    assert_eq!(error.code, "contact_not_found");
    assert!(!error.retryable);
    assert!(
        error.message.contains("no recipient could be sent to"),
        "{}",
        error.message
    );
    assert_eq!(evidence["reached"], 0);
    assert!(s.phone.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn moments_post_with_text_and_pictures() {
    let s = setup();
    let payload = json!({"text": "新品上市", "media_ids": ["m1", "m2"]});
    run(&s, &task(5, TaskKind::MomentsPost, payload))
        .await
        .0
        .unwrap();
    assert_eq!(
        s.phone.sent(),
        vec![Sent::Moment {
            text: "新品上市".into(),
            media: vec![
                "/sdcard/Pictures/youmi/m1.jpg".into(),
                "/sdcard/Pictures/youmi/m2.jpg".into()
            ],
            tags: Vec::new(),
        }]
    );
    assert_eq!(s.phone.screen(), "moments");

    // Pictures only: no text is typed.
    let s = setup();
    run(
        &s,
        &task(6, TaskKind::MomentsPost, json!({"media_ids": ["m1"]})),
    )
    .await
    .0
    .unwrap();
    assert!(!s
        .phone
        .state()
        .inputs
        .iter()
        .any(|i| matches!(i, Input::Type(_))));
    assert_eq!(
        s.phone.sent(),
        vec![Sent::Moment {
            text: String::new(),
            media: vec!["/sdcard/Pictures/youmi/m1.jpg".into()],
            tags: Vec::new(),
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_post_for_tagged_customers_picks_the_tags_under_visible_customers() {
    let s = setup();
    let payload = json!({"text": "会员专享", "visible_to_tags": ["VIP", "重要客户"]});
    run(&s, &task(7, TaskKind::MomentsPost, payload))
        .await
        .0
        .unwrap();
    assert_eq!(
        s.phone.sent(),
        vec![Sent::Moment {
            text: "会员专享".into(),
            media: Vec::new(),
            tags: vec!["VIP".into(), "重要客户".into()],
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_tag_the_enterprise_lacks_fails_the_post_without_making_it_public() {
    let s = setup();
    let payload = json!({"text": "会员专享", "visible_to_tags": ["VIP", "钻石会员"]});
    let (error, evidence) = evidenced(run(&s, &task(7, TaskKind::MomentsPost, payload)).await.0);
    assert_eq!(error.code, "tag_not_found");
    assert!(!error.retryable);
    assert!(error.message.contains("钻石会员"), "{}", error.message);
    assert_eq!(evidence["step"], "tag_listed");
    assert!(s.phone.sent().is_empty());
    assert_eq!(s.phone.screen(), "tag_picker");
}

#[tokio::test(start_paused = true)]
async fn friend_add_replaces_the_greeting() {
    let s = setup();
    let payload = json!({
        "target": {"phone": "13800138000"},
        "greeting": "您好，我是优米客服",
        "remark": "王总-官网",
        "tags": ["新客户", "VIP"],
    });
    run(&s, &task(8, TaskKind::FriendAdd, payload))
        .await
        .0
        .unwrap();
    assert_eq!(
        s.phone.sent(),
        vec![Sent::FriendRequest {
            query: "13800138000".into(),
            name: "用户8000".into(),
            greeting: "您好，我是优米客服".into(),
            remark: "王总-官网".into(),
            tags: vec!["新客户".into(), "VIP".into()],
        }]
    );

    // Without a greeting, WeCom's own stays.
    let s = setup();
    run(
        &s,
        &task(
            9,
            TaskKind::FriendAdd,
            json!({"target": {"phone": "13900139000"}}),
        ),
    )
    .await
    .0
    .unwrap();
    assert_eq!(
        s.phone.sent(),
        vec![Sent::FriendRequest {
            query: "13900139000".into(),
            name: "用户9000".into(),
            greeting: "我是小优".into(),
            remark: String::new(),
            tags: Vec::new(),
        }]
    );

    // A tag the enterprise does not have: no request goes out.
    let s = setup();
    let payload = json!({"target": {"phone": "13900139000"}, "tags": ["老朋友"]});
    let (error, _) = evidenced(run(&s, &task(9, TaskKind::FriendAdd, payload)).await.0);
    assert_eq!(error.code, "tag_not_found");
    assert!(error.message.contains("老朋友"), "{}", error.message);
    assert!(s.phone.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn friend_add_for_nobody_fails_as_soon_as_wecom_says_so() {
    let s = setup();
    let started = tokio::time::Instant::now();
    let payload = json!({"target": {"wecom_id": "nobody!"}});
    let (error, evidence) = evidenced(run(&s, &task(10, TaskKind::FriendAdd, payload)).await.0);
    assert_eq!(error.code, "friend_not_found");
    assert!(!error.retryable);
    assert!(
        error.message.contains("WeCom finds nobody for nobody!"),
        "{}",
        error.message
    );
    assert!(evidence["screen"]
        .as_array()
        .unwrap()
        .contains(&json!("该用户不存在")));
    // fail_on ended the wait on the first read, long before the 10 s timeout.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn accept_friend_request_taps_the_button_in_the_right_row() {
    let s = setup();
    run(
        &s,
        &task(
            11,
            TaskKind::AcceptFriendRequest,
            json!({"from": {"name": "周八"}}),
        ),
    )
    .await
    .0
    .unwrap();
    // Without a remark WeCom's own, the requester's name, stays.
    assert_eq!(
        s.phone.sent(),
        vec![Sent::Accepted {
            name: "周八".into(),
            remark: "周八".into(),
        }]
    );
    assert_eq!(s.phone.screen(), "friend_requests");

    // With one, 通过验证's 备注 is replaced.
    let s = setup();
    let payload = json!({"from": {"name": "周八"}, "remark": "周八-课程咨询"});
    run(&s, &task(11, TaskKind::AcceptFriendRequest, payload))
        .await
        .0
        .unwrap();
    assert_eq!(
        s.phone.sent(),
        vec![Sent::Accepted {
            name: "周八".into(),
            remark: "周八-课程咨询".into(),
        }]
    );

    // 陈七's request was accepted before: nothing to tap in that row.
    let s = setup();
    let (error, _) = evidenced(
        run(
            &s,
            &task(
                12,
                TaskKind::AcceptFriendRequest,
                json!({"from": {"name": "陈七"}}),
            ),
        )
        .await
        .0,
    );
    assert_eq!(error.code, "friend_request_not_found");
    assert!(!error.retryable);
    assert!(
        s.phone.sent().is_empty(),
        "周八's request must not be accepted instead"
    );
}

#[tokio::test(start_paused = true)]
async fn delete_chat_long_presses_and_confirms() {
    let s = setup();
    run(
        &s,
        &task(13, TaskKind::DeleteChat, json!({"with": {"name": "李四"}})),
    )
    .await
    .0
    .unwrap();
    assert_eq!(
        s.phone.sent(),
        vec![Sent::ChatDeleted {
            with: "李四".into()
        }]
    );
    assert!(s
        .phone
        .state()
        .inputs
        .iter()
        .any(|i| matches!(i, Input::LongPress(_))));
    assert_eq!(s.phone.state().chats.len(), 1);

    let s = setup();
    let (error, _) = evidenced(
        run(
            &s,
            &task(14, TaskKind::DeleteChat, json!({"with": {"name": "王五"}})),
        )
        .await
        .0,
    );
    assert_eq!(error.code, "chat_not_found");
}

// ---------------------------------------------------------------------------
// Interrupts.

#[tokio::test(start_paused = true)]
async fn a_risk_control_warning_ends_the_task_with_evidence() {
    let s = setup();
    // Launch is the first screen change; the warning comes with the second.
    s.phone
        .popup(Trigger::Change(2), Overlay::Risk("操作频繁".into()));
    let (result, _) = run(
        &s,
        &task(15, TaskKind::SendMessage, message_payload("张三")),
    )
    .await;
    let (error, evidence) = evidenced(result);
    assert_eq!(error.code, "risk_control");
    assert!(!error.retryable);
    assert!(error.message.contains("risk-control"), "{}", error.message);
    assert!(
        error
            .message
            .contains("step 3 `open_search` of procedure open_chat"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("the screen showed:") && error.message.contains("操作频繁"),
        "{}",
        error.message
    );
    assert_eq!(evidence["step"], "open_search");
    assert_eq!(evidence["step_number"], 3);
    assert_eq!(evidence["at"], "send_message#1 > open_chat#3");
    assert!(evidence["screen"]
        .as_array()
        .unwrap()
        .contains(&json!("我知道了")));
    // The dump and the screenshot are on disk, under the task's folder.
    let dir = s.evidence.path().join("15");
    let files = files_in(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    let dump = PathBuf::from(evidence["ui_dump"].as_str().unwrap());
    let shot = PathBuf::from(evidence["screenshot"].as_str().unwrap());
    assert!(files.contains(&dump) && files.contains(&shot));
    assert!(std::fs::read_to_string(&dump).unwrap().contains("操作频繁"));
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
    assert!(s.phone.sent().is_empty());
    assert!(
        !s.phone
            .state()
            .inputs
            .iter()
            .any(|i| matches!(i, Input::Tap(t) if t == "我知道了")),
        "not dismissed"
    );
}

#[tokio::test(start_paused = true)]
async fn an_update_prompt_is_postponed_and_the_flow_goes_on() {
    let s = setup();
    s.phone.popup(
        Trigger::Screen("profile"),
        Overlay::Update { forced: false },
    );
    let payload = json!({"to": {"name": "张三"}, "items": [{"type": "text", "text": "你好"}]});
    run(&s, &task(16, TaskKind::SendMessage, payload.clone()))
        .await
        .0
        .unwrap();
    assert_eq!(
        s.phone.sent(),
        vec![Sent::Message {
            to: "张三".into(),
            text: "你好".into()
        }]
    );
    assert!(s
        .phone
        .state()
        .inputs
        .contains(&Input::Tap("以后再说".into())));

    // A forced update cannot be postponed: the task fails, for a person to update.
    let s = setup();
    s.phone
        .popup(Trigger::Screen("profile"), Overlay::Update { forced: true });
    let (error, evidence) = evidenced(run(&s, &task(17, TaskKind::SendMessage, payload)).await.0);
    assert_eq!(error.code, "app_update_prompt");
    assert!(!error.retryable);
    assert_eq!(evidence["step"], "message_contact");
    assert!(!s
        .phone
        .state()
        .inputs
        .contains(&Input::Tap("立即更新".into())));
    assert!(s.phone.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_permission_dialog_is_allowed_and_the_flow_goes_on() {
    let s = setup();
    s.phone
        .popup(Trigger::Screen("picker"), Overlay::Permission);
    let payload = json!({"text": "周年庆", "media_ids": ["m2"]});
    run(&s, &task(18, TaskKind::MomentsPost, payload))
        .await
        .0
        .unwrap();
    assert!(s.phone.state().permission_granted);
    assert_eq!(
        s.phone.sent(),
        vec![Sent::Moment {
            text: "周年庆".into(),
            media: vec!["/sdcard/Pictures/youmi/m2.jpg".into()],
            tags: Vec::new(),
        }]
    );
}

// ---------------------------------------------------------------------------
// Failures and cancellation.

#[tokio::test(start_paused = true)]
async fn an_element_that_never_appears_names_the_step() {
    let s = setup();
    s.phone.state().hidden.push("发消息".into());
    let (error, evidence) = evidenced(
        run(
            &s,
            &task(19, TaskKind::SendMessage, message_payload("张三")),
        )
        .await
        .0,
    );
    assert_eq!(error.code, "element_not_found");
    assert!(error.retryable);
    assert!(
        error
            .message
            .contains("{text=\"发消息\"} did not appear within 5.0 s"),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .contains("step 6 `message_contact` of procedure open_chat"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("张三"),
        "the screen's texts: {}",
        error.message
    );
    assert_eq!(evidence["step"], "message_contact");
    assert_eq!(evidence["flow_file"], "built-in wecom-4.1.toml");
    assert!(evidence.get("evidence_errors").is_none(), "{evidence}");
    assert!(s.phone.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn missing_media_fails_without_retry() {
    let s = setup();
    let payload = json!({"to": {"name": "张三"}, "items": [{"type": "image", "media_id": "gone"}]});
    let (error, evidence) = evidenced(run(&s, &task(20, TaskKind::SendMessage, payload)).await.0);
    assert_eq!(error.code, "media_unavailable");
    assert!(!error.retryable);
    assert_eq!(evidence["step"], "push_image");
    assert!(
        error
            .message
            .contains(&s.media.path().join("gone").display().to_string()),
        "{}",
        error.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_stops_the_flow_at_the_next_step() {
    let s = setup();
    let (ctx, control) = TaskContext::new(21);
    let control: Arc<TaskControl> = Arc::new(control);
    let cancel = control.clone();
    // The server's cancel arrives while the contact's name is being typed.
    s.phone.state().on_type = Some(Box::new(move || cancel.cancel()));
    let t = task(21, TaskKind::SendMessage, message_payload("张三"));
    let result = s.executor.execute(&t, &ctx).await;
    assert_eq!(result, Err(TaskFailure::Cancelled));
    let inputs = s.phone.state().inputs.clone();
    assert_eq!(
        inputs.last(),
        Some(&Input::Type("张三".into())),
        "nothing after the cancel: {inputs:?}"
    );
    assert!(s.phone.sent().is_empty());
    assert!(
        files_in(s.evidence.path()).is_empty(),
        "a cancel is not a failure"
    );
}

#[tokio::test(start_paused = true)]
async fn versions_no_flow_covers_are_refused() {
    let s = setup();
    s.phone.state().version = Some("3.9.0".into());
    let payload = json!({"with": {"name": "李四"}});
    let error = plain_failure(
        run(&s, &task(22, TaskKind::DeleteChat, payload.clone()))
            .await
            .0,
    );
    assert_eq!(error.code, "unsupported_app_version");
    assert!(!error.retryable);
    assert!(
        error
            .message
            .contains("com.tencent.wework 3.9.0 is installed"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("4.1.* (built-in wecom-4.1.toml)"),
        "{}",
        error.message
    );
    assert!(
        s.phone.state().inputs.is_empty(),
        "the phone is not touched"
    );

    s.phone.state().version = None;
    let error = plain_failure(run(&s, &task(23, TaskKind::DeleteChat, payload)).await.0);
    assert_eq!(error.code, "app_not_installed");
    assert!(!error.retryable);

    let error = plain_failure(
        run(&s, &task(24, TaskKind::DeleteChat, json!({"with": {}})))
            .await
            .0,
    );
    assert_eq!(error.code, "invalid_payload");
}

#[tokio::test(start_paused = true)]
async fn a_flows_directory_overrides_the_builtin_file() {
    let dir = tempfile::tempdir().unwrap();
    // A fixed delete_chat for 4.1, and a new WeCom version.
    std::fs::write(
        dir.path().join("wecom-4.1.toml"),
        r#"
format = 1
app = "com.tencent.wework"
versions = ["4.1.*"]
[flows.delete_chat]
steps = [
  { do = "launch", home = { desc = "消息" } },
  { do = "tap", name = "messages_tab", target = { desc = "消息" } },
  { do = "assert", name = "has_chat", present = { text = "{with.name}" }, code = "chat_not_found" },
  { do = "fail", name = "stop", code = "flow_failed", message = "the directory's flow ran for {with.name}" },
]
"#,
    )
    .unwrap();
    let builtin = FlowSet::builtin().unwrap().files()[0].clone();
    let text = include_str!("../flows/wecom-4.1.toml")
        .replace("versions = [\"4.1.*\"]", "versions = [\"4.2.*\"]");
    std::fs::write(dir.path().join("wecom-4.2.toml"), text).unwrap();
    let flows = FlowSet::builtin()
        .unwrap()
        .merge(FlowSet::load_dir(dir.path()).unwrap());
    assert_eq!(
        flows.files().len(),
        2,
        "the directory's 4.1 file replaced the built-in one"
    );
    assert!(flows.files().iter().all(|f| f.source() != builtin.source()));

    let s = setup_with(flows);
    let (error, evidence) = evidenced(
        run(
            &s,
            &task(25, TaskKind::DeleteChat, json!({"with": {"name": "李四"}})),
        )
        .await
        .0,
    );
    assert_eq!(error.code, "flow_failed");
    assert!(
        error.message.contains("the directory's flow ran for 李四"),
        "{}",
        error.message
    );
    assert!(evidence["flow_file"]
        .as_str()
        .unwrap()
        .ends_with("wecom-4.1.toml"));
    assert!(s.phone.sent().is_empty());

    // WeCom 4.2 now has flows, with no new agent.
    s.phone.state().version = Some("4.2.5".into());
    run(
        &s,
        &task(26, TaskKind::DeleteChat, json!({"with": {"name": "李四"}})),
    )
    .await
    .0
    .unwrap();
    assert_eq!(
        s.phone.sent(),
        vec![Sent::ChatDeleted {
            with: "李四".into()
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn do_not_disturb_and_countdown_go_through_the_phone() {
    let s = setup();
    assert!(!s.executor.set_do_not_disturb(true).await.unwrap());
    assert!(s.phone.state().dnd);
    assert!(s.executor.set_do_not_disturb(false).await.unwrap());
    assert!(!s.phone.state().dnd);
    s.executor.show_countdown(10).await;
    let notes = s.phone.state().notes.clone();
    assert_eq!(notes.len(), 1);
    assert!(notes[0].contains("10"), "{notes:?}");
}

#[tokio::test(start_paused = true)]
async fn launch_backs_out_of_a_deep_screen_to_the_main_tabs() {
    let s = setup();
    {
        let mut state = s.phone.state();
        state.running = true;
        state.foreground = true;
        state.stack = vec![
            Screen::Main(Tab::Contacts),
            Screen::ContactSearch {
                query: "李".into()
            },
            Screen::Profile {
                name: "李四".into(),
            },
            Screen::Chat {
                with: "李四".into(),
                draft: String::new(),
                panel: true,
            },
        ];
        state.focused = true;
    }
    // (delete_chat restarts WeCom instead, so another kind shows the backing out.)
    run(
        &s,
        &task(
            27,
            TaskKind::AcceptFriendRequest,
            json!({"from": {"name": "周八"}}),
        ),
    )
    .await
    .0
    .unwrap();
    assert_eq!(
        s.phone.sent(),
        vec![Sent::Accepted {
            name: "周八".into(),
            remark: "周八".into(),
        }]
    );
    let backs = s
        .phone
        .state()
        .inputs
        .iter()
        .filter(|i| **i == Input::Key(4))
        .count();
    // Bringing WeCom to the front hides the keyboard, as on the simulator;
    // then the panel, the chat, the profile and the search: four presses of BACK.
    assert_eq!(backs, 4);
}

/// The built-in flows with a 4.1 file from a directory holding `flows`.
fn flows_with(flows: &str) -> FlowSet {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wecom-4.1.toml"),
        format!("format = 1\napp = \"com.tencent.wework\"\nversions = [\"4.1.*\"]\n{flows}"),
    )
    .unwrap();
    FlowSet::builtin()
        .unwrap()
        .merge(FlowSet::load_dir(dir.path()).unwrap())
}

/// How many times the phone got BACK, and how many times WeCom was started.
fn backs_and_launches(phone: &ScriptedPhone) -> (usize, usize) {
    let state = phone.state();
    let count = |input: &Input| state.inputs.iter().filter(|i| *i == input).count();
    (count(&Input::Key(4)), count(&Input::Launch))
}

#[tokio::test(start_paused = true)]
async fn a_start_screen_that_never_shows_spends_the_launch_budget_and_no_more() {
    // The tab bar of this WeCom says 消息 in a way the file does not expect
    // (issue 11: tabs as text, the file looking for a description).
    let s = setup_with(flows_with(
        r#"
[flows.send_message]
steps = [
  { do = "launch", name = "open_wecom", home = { text = "首页" }, settle_ms = 800 },
  { do = "fail", code = "flow_failed" },
]
"#,
    ));
    let started = tokio::time::Instant::now();
    let (error, evidence) = evidenced(
        run(
            &s,
            &task(
                40,
                TaskKind::SendMessage,
                json!({"to": {"name": "张三"}, "items": [{"type": "text", "text": "你好"}]}),
            ),
        )
        .await
        .0,
    );
    assert_eq!(error.code, "start_screen_not_reached");
    assert!(error.retryable);
    // BACK on WeCom's first screen leaves it; it is started again, twice
    // (max_relaunches = 2), and the third time the budget is spent.
    let (backs, launches) = backs_and_launches(&s.phone);
    assert_eq!((backs, launches), (3, 3), "{:?}", s.phone.state().inputs);
    assert!(
        error
            .message
            .contains("the app left the front again after 2 restarts (max_relaunches = 2)"),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .contains("this attempt pressed BACK 3 times and started the app again 2 times"),
        "{}",
        error.message
    );
    // What the screen showed: WeCom's tabs, which the file did not match.
    assert!(
        error
            .message
            .contains("the last screen it backed out of showed: ")
            && error.message.contains("通讯录"),
        "{}",
        error.message
    );
    assert_eq!(evidence["step"], "open_wecom");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it did not wait out launch's timeout: {:?}",
        started.elapsed()
    );
    assert!(s.phone.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_back_budget_is_shared_by_an_attempts_launches() {
    // One launch per recipient; a recipient whose launch fails is skipped,
    // and the next recipient's launch has nothing left to spend.
    let s = setup_with(flows_with(
        r#"
[flows.mass_send]
steps = [
  { do = "for_each_recipient", procedure = "one", skip_codes = ["start_screen_not_reached"] },
]
[procedures]
one = [
  { do = "launch", name = "open_wecom", home = { text = "首页" }, settle_ms = 800, max_backs = 4, max_relaunches = 10 },
]
"#,
    ));
    let payload = json!({
        "recipients": [{"name": "张三"}, {"name": "李四"}, {"name": "王五"}],
        "items": [{"type": "text", "text": "你好"}],
    });
    let (error, evidence) = evidenced(run(&s, &task(41, TaskKind::MassSend, payload)).await.0);
    assert_eq!(error.code, "start_screen_not_reached", "{}", error.message);
    let (backs, launches) = backs_and_launches(&s.phone);
    // The first recipient's launch: four BACKs, each leaving WeCom and each
    // followed by a start; the two others start WeCom once and stop there.
    assert_eq!((backs, launches), (4, 7), "{:?}", s.phone.state().inputs);
    let skipped = evidence["skipped"]
        .as_array()
        .expect("the skipped recipients");
    assert_eq!(skipped.len(), 3, "{evidence}");
    for entry in skipped {
        let message = entry["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("4 BACK presses did not lead there (max_backs = 4)"),
            "{entry}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn launch_stops_backing_when_back_changes_nothing() {
    let s = setup_with(flows_with(
        r#"
[flows.send_message]
steps = [
  { do = "launch", name = "open_wecom", home = { label = "消息" }, settle_ms = 800 },
  { do = "fail", code = "flow_failed" },
]
"#,
    ));
    {
        let mut state = s.phone.state();
        state.running = true;
        state.foreground = true;
        state.stack = vec![
            Screen::Main(Tab::Contacts),
            Screen::Profile {
                name: "李四".into(),
            },
        ];
        state.back_ignored = true;
    }
    let (error, _) = evidenced(
        run(
            &s,
            &task(
                42,
                TaskKind::SendMessage,
                json!({"to": {"name": "李四"}, "items": [{"type": "text", "text": "你好"}]}),
            ),
        )
        .await
        .0,
    );
    assert_eq!(error.code, "start_screen_not_reached");
    assert!(
        error
            .message
            .contains("BACK changes nothing on this screen"),
        "{}",
        error.message
    );
    let (backs, launches) = backs_and_launches(&s.phone);
    assert_eq!((backs, launches), (2, 1), "{:?}", s.phone.state().inputs);
}

#[tokio::test(start_paused = true)]
async fn a_retry_resumes_after_what_earlier_attempts_sent() {
    use youmi_agent::delivery::{DeliveryMark, Mark, UnitKey};
    let s = setup();
    let payload = json!({"to": {"name": "张三"}, "items": [
        {"type": "text", "text": "第一条"},
        {"type": "text", "text": "第二条"},
        {"type": "image", "media_id": "m1"},
        {"type": "text", "text": "第四条"},
    ]});
    let mark = |item: u32, mark: Mark| DeliveryMark {
        task_id: 40,
        attempt: 1,
        unit: UnitKey {
            recipient: None,
            item: Some(item),
        },
        mark,
    };
    // Attempt 1 sent item 1, began the tap of item 2 (which never reached
    // the phone) and of the picture, then the phone went away.
    let earlier = vec![
        mark(1, Mark::Sending),
        mark(1, Mark::Sent),
        mark(2, Mark::Sending),
        mark(3, Mark::Sending),
    ];
    let retry = AssignedTask {
        attempt: 2,
        ..task(40, TaskKind::SendMessage, payload.clone())
    };
    let (ctx, _control) = TaskContext::new(40);
    let ctx = ctx.resuming(earlier.clone());
    let result = s.executor.execute(&retry, &ctx).await.unwrap().unwrap();
    // Item 2 is not in the chat: sent now. The picture cannot be checked: not
    // sent again. Item 4 is new. Item 1 is not sent again.
    assert_eq!(
        s.phone.sent(),
        vec![
            Sent::Message {
                to: "张三".into(),
                text: "第二条".into()
            },
            Sent::Message {
                to: "张三".into(),
                text: "第四条".into()
            },
        ]
    );
    let outcomes: Vec<(String, Value)> = result["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["outcome"].as_str().unwrap().to_owned(),
                d["attempt"].clone(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("sent".to_owned(), json!(1)),
            ("sent".to_owned(), json!(2)),
            ("uncertain".to_owned(), json!(1)),
            ("sent".to_owned(), json!(2)),
        ]
    );

    // A third attempt that cannot even read the app's version still reports
    // what was sent, and sends nothing.
    s.phone.state().version = Some("3.9.0".into());
    let third = AssignedTask {
        attempt: 3,
        ..task(40, TaskKind::SendMessage, payload)
    };
    let (ctx3, _control) = TaskContext::new(40);
    let ctx3 = ctx3.resuming(ctx.all_marks());
    let (error, evidence) = evidenced(s.executor.execute(&third, &ctx3).await);
    assert_eq!(error.code, "unsupported_app_version");
    let outcomes: Vec<&str> = evidence["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["sent", "sent", "uncertain", "sent"]);
    assert_eq!(s.phone.sent().len(), 2);
}
