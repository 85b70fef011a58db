//! The simulated phone: the WeCom-like app's screens, navigation, input, files, settings,
//! scripted faults and the record of what was sent.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use crate::ui::Tab;
use crate::ui::{Action, Node, Rect, TagPurpose};

/// The WeCom package name.
pub const WECOM_PACKAGE: &str = "com.tencent.wework";
/// The ADBKeyBoard IME component, as `ime list -s` prints it.
pub const ADB_KEYBOARD_IME: &str = "com.android.adbkeyboard/.AdbIME";
/// The stock keyboard every phone has.
pub const STOCK_IME: &str =
    "com.google.android.inputmethod.latin/com.android.inputmethod.latin.LatinIME";
const LAUNCHER_PACKAGE: &str = "com.google.android.apps.nexuslauncher";
const PERMISSION_PACKAGE: &str = "com.android.permissioncontroller";

/// Screen width in pixels (`wm size`).
pub const SCREEN_W: i32 = 1080;
/// Screen height in pixels (`wm size`).
pub const SCREEN_H: i32 = 2400;
/// Where the chat list is on the 消息 tab.
const CHAT_LIST: Rect = Rect::new(0, 248, SCREEN_W, 2208);
/// The height of one chat row.
const CHAT_ROW: i32 = 200;

/// One outcome the simulated app "sent", recorded so tests can assert what a task did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SentEvent {
    /// A chat message was sent.
    Message {
        /// The contact's display name.
        to: String,
        /// The message text.
        text: String,
    },
    /// A Moments post was published.
    MomentPost {
        /// The post's text.
        text: String,
        /// Device paths of the attached media, in the order picked.
        media: Vec<String>,
        /// The tags of 可见的客户 > 按标签筛选, in the order picked; empty when every
        /// customer sees the post.
        #[serde(default)]
        visible_to_tags: Vec<String>,
    },
    /// A friend request was sent from the add-friend search.
    FriendRequestSent {
        /// What was searched (phone number or WeCom id).
        query: String,
        /// The name the search found.
        name: String,
        /// The greeting text.
        greeting: String,
        /// The 备注 field of 发送添加邀请, empty when left alone.
        #[serde(default)]
        remark: String,
        /// The tags picked in the 标签 row, in the order picked.
        #[serde(default)]
        tags: Vec<String>,
    },
    /// A pending friend request was accepted.
    FriendRequestAccepted {
        /// The requester's name.
        name: String,
        /// The 备注 field of 通过验证 when 完成 was tapped; WeCom fills it with the
        /// requester's name, so that is what an untouched field records.
        #[serde(default)]
        remark: String,
    },
    /// A chat was deleted from the chat list.
    ChatDeleted {
        /// The contact's display name.
        with: String,
    },
    /// A picture from the album was sent in a chat (more-functions panel > 图片).
    Image {
        /// The contact's display name.
        to: String,
        /// The picture's device path, as the media scan registered it.
        path: String,
    },
    /// A file from the phone's storage was sent in a chat (more-functions panel > 文件 >
    /// 手机存储).
    File {
        /// The contact's display name.
        to: String,
        /// The file's device path.
        path: String,
    },
}

/// A fault scripted into the simulator, before start or at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next `times` `uiautomator dump` calls print "ERROR: could not get idle state."
    /// and exit 0, as a real phone does on an animating screen.
    DumpNotIdle {
        /// How many dumps fail.
        times: u32,
    },
    /// The next `times` shell commands that contain `pattern` never answer (the stream
    /// stays open and silent until the client closes it).
    Hang {
        /// Substring of the command line.
        pattern: String,
        /// How many commands hang.
        times: u32,
    },
    /// The next shell command that contains `pattern` closes the TCP connection after
    /// sending part of its output.
    DropConnection {
        /// Substring of the command line.
        pattern: String,
    },
    /// A risk-control dialog appears on the next screen change.
    RiskControl {
        /// Dialog title, e.g. "操作频繁" or "账号存在异常".
        title: String,
        /// Dialog body.
        message: String,
    },
    /// The "发现新版本" update prompt appears on the next screen change.
    UpdatePrompt,
    /// A system permission dialog (photos and media) appears on the next screen change.
    PermissionDialog,
    /// A dialog with any title, message and buttons (a risk-control warning in other
    /// words, a notice WeCom has not shown before), drawn as WeCom or as Android draws
    /// it, shown at a scripted point of a flow.
    Dialog(DialogFault),
    /// A call from `number` starts ringing right after the next text typed that
    /// contains `containing` ("" for any text), as when someone calls while the
    /// agent types: the ring begins between two of the agent's commands, at a
    /// known point of the flow.
    RingWhenTyped {
        /// The caller's number.
        number: String,
        /// What the typed text contains.
        containing: String,
    },
}

/// A scripted dialog: what it says, its buttons, how it is drawn and when it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogFault {
    /// The title; empty for none.
    pub title: String,
    /// The message.
    pub message: String,
    /// The buttons, left to right (确定, 我知道了, OK ...); a tap on any closes the
    /// dialog. Empty: a dialog with no button at all.
    pub buttons: Vec<String>,
    /// How it is drawn.
    pub style: DialogStyle,
    /// When it shows.
    pub when: DialogWhen,
    /// Whether BACK closes it (WeCom's risk warnings are not cancelable; most
    /// notices are).
    pub cancelable: bool,
}

impl DialogFault {
    /// A WeCom-drawn, cancelable dialog that shows on the next screen change.
    pub fn new(title: &str, message: &str, buttons: &[&str]) -> Self {
        Self {
            title: title.to_owned(),
            message: message.to_owned(),
            buttons: buttons.iter().map(|b| (*b).to_owned()).collect(),
            style: DialogStyle::InApp,
            when: DialogWhen::NextChange,
            cancelable: true,
        }
    }
}

/// How a scripted dialog is drawn, and so how `uiautomator dump` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogStyle {
    /// As WeCom draws its own: a panel over the app's screen, in the app's window
    /// (the dump shows the screen and the panel on top).
    InApp,
    /// As Android's `AlertDialog`: a window of its own (`android:id/alertTitle`,
    /// `android:id/message`, `android:id/button1`...), the only window the dump shows.
    Window,
}

/// When a scripted dialog shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogWhen {
    /// On the next screen change (a launch of WeCom is one).
    NextChange,
    /// On the n-th screen change from now (1 is the next).
    Change(u32),
    /// Right after the app sends something (a message, a post, a request...).
    AfterSend,
}

/// One input the phone received, with what was on screen when it came: the
/// simulator's action log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputEvent {
    /// The input.
    pub input: Input,
    /// The screen's name (see [`crate::ScreenSnapshot::name`]) just before it.
    pub screen: String,
}

/// An input, as the shell received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `input tap X Y`.
    Tap {
        /// Pixels from the left.
        x: i32,
        /// Pixels from the top.
        y: i32,
    },
    /// A long press (`input swipe` on one spot).
    LongPress {
        /// Pixels from the left.
        x: i32,
        /// Pixels from the top.
        y: i32,
    },
    /// `input keyevent CODE` (4 is BACK).
    Key(u32),
    /// Text typed (`input text` or ADBKeyBoard).
    Text(String),
    /// WeCom started (`am start`).
    Launch,
    /// WeCom force-stopped.
    ForceStop,
    /// A swipe that moved (not a long press): lists scroll.
    Swipe {
        /// Where it started.
        from: (i32, i32),
        /// Where it ended.
        to: (i32, i32),
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Screen {
    Main(Tab),
    Chat {
        with: String,
        draft: String,
        /// The more-functions panel (图片, 文件, ...) is open below the input bar.
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
    /// 发送添加邀请: the greeting, and the new customer's 备注 and 标签.
    Greeting {
        query: String,
        name: String,
        greeting: String,
        remark: String,
        tags: Vec<String>,
        /// Typing goes to the 备注 field rather than the greeting.
        remark_focus: bool,
    },
    FriendRequests,
    /// 通过验证: accepting `name`'s request, with the 备注 to give them.
    Verify {
        name: String,
        remark: String,
    },
    MomentsHome,
    Composer {
        text: String,
        media: Vec<String>,
        /// 可见的客户: empty for 全部客户, else the tags a customer needs.
        tags: Vec<String>,
    },
    /// 可见的客户: everyone, or the customers with the picked tags.
    Visibility {
        by_tags: bool,
        tags: Vec<String>,
    },
    /// 选择标签: the enterprise's tags, for a friend request or a post's visibility.
    TagPicker {
        selected: Vec<String>,
        purpose: TagPurpose,
    },
    /// The album. `chat` names the contact the picked pictures go to; `None` is the
    /// Moments composer's picker.
    Picker {
        selected: Vec<String>,
        chat: Option<String>,
    },
    /// 选择文件: where a file for `chat` comes from.
    FileSource {
        chat: String,
    },
    /// 手机存储: the files in the phone's storage, newest first.
    Storage {
        chat: String,
        selected: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Overlay {
    Risk { title: String, message: String },
    Dialog(DialogFault),
    Update,
    Permission,
    ChatMenu(String),
    ConfirmDelete(String),
}

#[derive(Debug, Clone)]
struct Chat {
    with: String,
    /// Oldest first; `true` marks the operator's own messages.
    messages: Vec<(bool, Bubble)>,
}

/// One message in a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bubble {
    Text(String),
    /// A picture, by device path.
    Image(String),
    /// A file, by device path.
    File(String),
}

impl Bubble {
    /// What the chat list shows as the last message, as WeCom abbreviates media.
    fn preview(&self) -> String {
        match self {
            Bubble::Text(text) => text.clone(),
            Bubble::Image(_) => "[图片]".to_owned(),
            Bubble::File(path) => format!("[文件] {}", file_name(path)),
        }
    }
}

#[derive(Debug, Clone)]
struct FriendRequest {
    name: String,
    greeting: String,
    accepted: bool,
}

/// A file in the simulated storage.
#[derive(Debug, Clone)]
pub(crate) struct SimFile {
    pub data: Vec<u8>,
    pub mode: u32,
    pub mtime: u32,
    /// Write order: the file picker lists the newest first, and `mtime` has only
    /// whole seconds.
    pub seq: u64,
}

/// The phone's whole mutable state; guarded by one mutex in [`crate::Simulator`].
#[derive(Debug)]
pub(crate) struct Phone {
    pub model: String,
    pub wecom_version: String,
    pub ime_installed: bool,
    pub default_ime: String,
    /// The layout variant of labels ([`crate::Labels`]).
    pub labels: crate::Labels,
    pub zen_mode: u8,
    pub battery_level: u8,
    pub incoming_call: Option<String>,
    /// The call was answered: `mCallState=2` (off-hook) rather than 1.
    pub call_answered: bool,
    running: bool,
    foreground: bool,
    stack: Vec<Screen>,
    overlay: Option<Overlay>,
    focused: bool,
    chats: Vec<Chat>,
    /// How far the chat list is scrolled, in pixels from its top.
    chat_scroll: i32,
    contacts: Vec<String>,
    requests: Vec<FriendRequest>,
    pub media: Vec<String>,
    pub files: BTreeMap<String, SimFile>,
    /// The `seq` the next written file gets.
    next_seq: u64,
    pub dirs: Vec<String>,
    pub faults: Vec<Fault>,
    sent: Vec<SentEvent>,
    /// Every input, oldest first.
    inputs: Vec<InputEvent>,
    record: Option<PathBuf>,
    operator_name: String,
    /// The enterprise's customer tags, in the order the picker lists them.
    tags: Vec<String>,
}

pub(crate) fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl Phone {
    pub fn new(config: &crate::SimConfig) -> Self {
        let dirs = [
            "/",
            "/sdcard",
            "/sdcard/DCIM",
            "/sdcard/DCIM/Camera",
            "/sdcard/Pictures",
            "/sdcard/Download",
            "/data",
            "/data/local",
            "/data/local/tmp",
            "/storage",
            "/storage/emulated",
            "/storage/emulated/0",
        ];
        Self {
            model: "YoumiSim".to_owned(),
            wecom_version: config.wecom_version.clone(),
            ime_installed: config.ime_installed,
            labels: config.labels,
            default_ime: if config.ime_installed {
                ADB_KEYBOARD_IME.to_owned()
            } else {
                STOCK_IME.to_owned()
            },
            zen_mode: 0,
            battery_level: 85,
            incoming_call: None,
            call_answered: false,
            running: false,
            foreground: false,
            stack: vec![Screen::Main(Tab::Messages)],
            overlay: None,
            focused: false,
            chats: (1..=config.filler_chats)
                .map(|n| Chat {
                    with: format!("客户{n:03}"),
                    messages: vec![(false, Bubble::Text("好的".to_owned()))],
                })
                .chain([
                    Chat {
                        with: "张三".to_owned(),
                        messages: vec![(
                            false,
                            Bubble::Text("你好，请问产品还有货吗？".to_owned()),
                        )],
                    },
                    Chat {
                        with: "李四".to_owned(),
                        messages: vec![(false, Bubble::Text("收到，谢谢".to_owned()))],
                    },
                ])
                .collect(),
            chat_scroll: 0,
            contacts: ["张三", "李四", "王五", "赵六"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            requests: vec![
                FriendRequest {
                    name: "陈七".to_owned(),
                    greeting: "我是陈七，想了解一下课程".to_owned(),
                    accepted: false,
                },
                FriendRequest {
                    name: "周八".to_owned(),
                    greeting: "你好".to_owned(),
                    accepted: false,
                },
            ],
            media: Vec::new(),
            files: BTreeMap::new(),
            next_seq: 1,
            dirs: dirs.into_iter().map(str::to_owned).collect(),
            faults: config.faults.clone(),
            sent: Vec::new(),
            inputs: Vec::new(),
            record: config.record.clone(),
            operator_name: "小优".to_owned(),
            tags: config.tags.clone(),
        }
    }

    /// Normalises `/storage/emulated/0/...` and `/sdcard/...` to one key, as the real
    /// phone's FUSE mount makes them the same files.
    pub fn norm_path(path: &str) -> String {
        let p = path.trim_end_matches('/');
        let p = if p.is_empty() { "/" } else { p };
        if let Some(rest) = p.strip_prefix("/storage/emulated/0") {
            format!("/sdcard{rest}")
        } else if let Some(rest) = p.strip_prefix("/storage/self/primary") {
            format!("/sdcard{rest}")
        } else {
            p.to_owned()
        }
    }

    pub fn is_dir(&self, path: &str) -> bool {
        let p = Self::norm_path(path);
        self.dirs.contains(&p)
    }

    pub fn write_file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> Result<(), String> {
        let p = Self::norm_path(path);
        let parent = p.rsplit_once('/').map(|(a, _)| a).unwrap_or("");
        let parent = if parent.is_empty() { "/" } else { parent };
        if !self.is_dir(parent) {
            // `adb push` creates missing parents (fixed_push_mkdir), so do the same.
            let mut acc = String::new();
            for part in parent.split('/').filter(|s| !s.is_empty()) {
                acc.push('/');
                acc.push_str(part);
                if !self.dirs.contains(&acc) {
                    self.dirs.push(acc.clone());
                }
            }
        }
        if self.is_dir(&p) {
            return Err(format!("{path}: Is a directory"));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.files.insert(
            p,
            SimFile {
                data,
                mode: 0o100000 | (mode & 0o7777),
                mtime: now_secs(),
                seq,
            },
        );
        Ok(())
    }

    pub fn file(&self, path: &str) -> Option<&SimFile> {
        self.files.get(&Self::norm_path(path))
    }

    pub fn sent(&self) -> Vec<SentEvent> {
        self.sent.clone()
    }

    fn record(&mut self, event: SentEvent) {
        tracing::info!(?event, "sent");
        if let Some(path) = &self.record {
            let line = serde_json::to_string(&event).unwrap_or_default();
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
            if let Err(e) = written {
                tracing::warn!(error = %e, path = %path.display(), "cannot append to the record file");
            }
        }
        self.sent.push(event);
    }

    /// Every input so far, oldest first.
    pub fn inputs(&self) -> Vec<InputEvent> {
        self.inputs.clone()
    }

    /// Logs an input, with the screen it came to.
    pub fn log_input(&mut self, input: Input) {
        let screen = self.screen_name();
        let typed = match &input {
            Input::Text(text) => Some(text.clone()),
            _ => None,
        };
        self.inputs.push(InputEvent { input, screen });
        if let Some(text) = typed {
            let rings = |f: &Fault| matches!(f, Fault::RingWhenTyped { containing, .. } if text.contains(containing.as_str()));
            if let Some(Fault::RingWhenTyped { number, .. }) = self.take_fault(rings) {
                tracing::info!(%number, %text, "a call rings (scripted when this text was typed)");
                self.ring(&number);
            }
        }
    }

    /// A call from `number` starts ringing.
    pub fn ring(&mut self, number: &str) {
        self.incoming_call = Some(number.to_owned());
        self.call_answered = false;
    }

    /// The call ends (hung up on either side).
    pub fn end_call(&mut self) {
        self.incoming_call = None;
        self.call_answered = false;
    }

    /// `mCallState`: 0 idle, 1 ringing, 2 off-hook.
    pub fn call_state(&self) -> u8 {
        match (&self.incoming_call, self.call_answered) {
            (None, _) => 0,
            (Some(_), false) => 1,
            (Some(_), true) => 2,
        }
    }

    /// Takes one use of a counted fault matching `pick`, removing it when used up.
    pub fn take_fault(&mut self, pick: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let i = self.faults.iter().position(pick)?;
        let fault = self.faults[i].clone();
        let remove = match &mut self.faults[i] {
            Fault::DumpNotIdle { times } | Fault::Hang { times, .. } => {
                *times = times.saturating_sub(1);
                *times == 0
            }
            _ => true,
        };
        if remove {
            self.faults.remove(i);
        }
        Some(fault)
    }

    // ----- foreground and navigation -----

    /// The focused window's package and activity, for `dumpsys window`.
    pub fn focus_component(&self) -> (String, String) {
        if matches!(self.overlay, Some(Overlay::Permission)) {
            return (
                PERMISSION_PACKAGE.to_owned(),
                "com.android.permissioncontroller.permission.ui.GrantPermissionsActivity"
                    .to_owned(),
            );
        }
        if !self.foreground {
            return (
                LAUNCHER_PACKAGE.to_owned(),
                "com.google.android.apps.nexuslauncher.NexusLauncherActivity".to_owned(),
            );
        }
        let activity = match self.top() {
            Screen::Main(_) => "com.tencent.wework.launch.WwMainActivity",
            Screen::Chat { .. } => "com.tencent.wework.msg.controller.MessageListActivity",
            Screen::ContactSearch { .. } => {
                "com.tencent.wework.contact.controller.ContactSearchActivity"
            }
            Screen::Profile { .. } => "com.tencent.wework.contact.controller.ContactDetailActivity",
            Screen::AddFriend { .. } | Screen::Greeting { .. } => {
                "com.tencent.wework.customerservice.controller.AddCustomerActivity"
            }
            Screen::FriendRequests => {
                "com.tencent.wework.customerservice.controller.NewCustomerListActivity"
            }
            Screen::Verify { .. } => {
                "com.tencent.wework.customerservice.controller.VerifyCustomerActivity"
            }
            Screen::MomentsHome | Screen::Composer { .. } | Screen::Visibility { .. } => {
                "com.tencent.wework.moments.controller.CustomerMomentsActivity"
            }
            Screen::TagPicker { .. } => {
                "com.tencent.wework.customerservice.controller.CustomerTagSelectActivity"
            }
            Screen::Picker { .. } => "com.tencent.wework.common.picker.MediaPickerActivity",
            Screen::FileSource { .. } => {
                "com.tencent.wework.filemanager.controller.FileSelectSourceActivity"
            }
            Screen::Storage { .. } => {
                "com.tencent.wework.filemanager.controller.LocalFileSelectActivity"
            }
        };
        (WECOM_PACKAGE.to_owned(), activity.to_owned())
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

    /// A one-line name of what is showing, for tests and logs.
    pub fn screen_name(&self) -> String {
        let base = if !self.foreground {
            "launcher".to_owned()
        } else {
            match self.top() {
                Screen::Main(Tab::Messages) => "main:messages".to_owned(),
                Screen::Main(Tab::Contacts) => "main:contacts".to_owned(),
                Screen::Main(Tab::Workbench) => "main:workbench".to_owned(),
                Screen::Chat { with, .. } => format!("chat:{with}"),
                Screen::ContactSearch { .. } => "contact_search".to_owned(),
                Screen::Profile { name } => format!("profile:{name}"),
                Screen::AddFriend { .. } => "add_friend".to_owned(),
                Screen::Greeting { name, .. } => format!("friend_greeting:{name}"),
                Screen::FriendRequests => "friend_requests".to_owned(),
                Screen::Verify { name, .. } => format!("friend_verify:{name}"),
                Screen::MomentsHome => "moments".to_owned(),
                Screen::Composer { .. } => "moments_composer".to_owned(),
                Screen::Visibility { .. } => "moments_visibility".to_owned(),
                Screen::TagPicker { .. } => "tag_picker".to_owned(),
                Screen::Picker { chat: None, .. } => "media_picker".to_owned(),
                Screen::Picker {
                    chat: Some(with), ..
                } => format!("chat_album:{with}"),
                Screen::FileSource { .. } => "file_source".to_owned(),
                Screen::Storage { .. } => "phone_storage".to_owned(),
            }
        };
        match &self.overlay {
            None => base,
            Some(Overlay::Risk { .. }) => format!("{base}+risk_control"),
            Some(Overlay::Dialog(_)) => format!("{base}+dialog"),
            Some(Overlay::Update) => format!("{base}+update_prompt"),
            Some(Overlay::Permission) => format!("{base}+permission_dialog"),
            Some(Overlay::ChatMenu(_)) => format!("{base}+chat_menu"),
            Some(Overlay::ConfirmDelete(_)) => format!("{base}+confirm_delete"),
        }
    }

    /// Called after every screen change: scripted popups appear now, and focus resets.
    fn changed(&mut self) {
        self.focused = matches!(
            self.top(),
            Screen::ContactSearch { .. } | Screen::AddFriend { .. }
        ) && self.foreground;
        if self.overlay.is_some() || !self.foreground {
            return;
        }
        if let Some(f) = self.take_fault(|f| {
            matches!(
                f,
                Fault::RiskControl { .. }
                    | Fault::UpdatePrompt
                    | Fault::PermissionDialog
                    | Fault::Dialog(DialogFault {
                        when: DialogWhen::NextChange | DialogWhen::Change(0 | 1),
                        ..
                    })
            )
        }) {
            self.overlay = Some(match f {
                Fault::RiskControl { title, message } => Overlay::Risk { title, message },
                Fault::UpdatePrompt => Overlay::Update,
                Fault::Dialog(dialog) => Overlay::Dialog(dialog),
                _ => Overlay::Permission,
            });
            return;
        }
        for fault in &mut self.faults {
            if let Fault::Dialog(DialogFault {
                when: DialogWhen::Change(n),
                ..
            }) = fault
            {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Called after the app sent something: a dialog scripted for that moment shows.
    fn after_send(&mut self) {
        if self.overlay.is_some() || !self.foreground {
            return;
        }
        if let Some(Fault::Dialog(dialog)) = self.take_fault(|f| {
            matches!(
                f,
                Fault::Dialog(DialogFault {
                    when: DialogWhen::AfterSend,
                    ..
                })
            )
        }) {
            self.overlay = Some(Overlay::Dialog(dialog));
        }
    }

    fn push(&mut self, screen: Screen) {
        self.stack.push(screen);
        self.changed();
    }

    pub fn launch(&mut self) {
        if !self.running {
            self.stack = vec![Screen::Main(Tab::Messages)];
        }
        self.running = true;
        self.foreground = true;
        self.changed();
    }

    pub fn force_stop(&mut self) {
        self.running = false;
        self.foreground = false;
        self.overlay = None;
        self.focused = false;
        self.stack = vec![Screen::Main(Tab::Messages)];
        self.chat_scroll = 0;
    }

    /// A swipe from one point to another: on the chat list it scrolls the
    /// list by the distance moved (within its ends); elsewhere every list fits
    /// on screen and nothing moves.
    pub fn swipe(&mut self, from: (i32, i32), to: (i32, i32)) {
        let on_list = matches!(self.top(), Screen::Main(Tab::Messages))
            && self.overlay.is_none()
            && CHAT_LIST.contains(from.0, from.1);
        if on_list {
            self.chat_scroll = (self.chat_scroll + from.1 - to.1).clamp(0, self.max_chat_scroll());
        }
    }

    /// How far the chat list can scroll: its rows' height past the screen.
    fn max_chat_scroll(&self) -> i32 {
        let rows = i32::try_from(self.chats.len()).unwrap_or(i32::MAX);
        rows.saturating_mul(CHAT_ROW)
            .saturating_sub(CHAT_LIST.bottom - CHAT_LIST.top)
            .max(0)
    }

    pub fn home(&mut self) {
        self.foreground = false;
        self.focused = false;
        if matches!(
            self.overlay,
            Some(Overlay::ChatMenu(_)) | Some(Overlay::ConfirmDelete(_))
        ) {
            self.overlay = None;
        }
    }

    pub fn back(&mut self) {
        if let Some(o) = &self.overlay {
            // WeCom's risk-control dialog is not cancelable; the others are, unless
            // a scripted dialog says otherwise.
            let cancelable = match o {
                Overlay::Risk { .. } => false,
                Overlay::Dialog(dialog) => dialog.cancelable,
                _ => true,
            };
            if cancelable {
                self.overlay = None;
            }
            return;
        }
        if !self.foreground {
            return;
        }
        if self.focused && matches!(self.top(), Screen::Chat { .. }) {
            // The first BACK only hides the keyboard.
            self.focused = false;
            return;
        }
        if let Screen::Chat {
            panel: panel @ true,
            ..
        } = self.top_mut()
        {
            // ... or the more-functions panel.
            *panel = false;
            return;
        }
        if self.stack.len() <= 1 {
            self.foreground = false;
            self.focused = false;
            return;
        }
        self.stack.pop();
        self.changed();
    }

    pub fn enter(&mut self) {
        if self.focused {
            if let Screen::AddFriend { .. } = self.top() {
                self.run(Action::AddFriendSearch);
            }
        }
    }

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
            Some(o) if self.foreground || matches!(o, Overlay::Permission) => overlay_tree(o),
            _ => self.tree(),
        }
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

    fn run(&mut self, action: Action) {
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

    /// Pictures and videos the media scan registered, newest first, as the album shows
    /// them: other files are in the media store too, but not in the album.
    fn album(&self) -> Vec<&String> {
        self.media
            .iter()
            .rev()
            .filter(|path| is_album_media(path))
            .collect()
    }

    /// The files in the phone's shared storage, newest first, as 手机存储 lists them;
    /// hidden files are left out.
    fn storage_files(&self) -> Vec<(&String, &SimFile)> {
        let mut files: Vec<(&String, &SimFile)> = self
            .files
            .iter()
            .filter(|(path, _)| path.starts_with("/sdcard/") && !file_name(path).starts_with('.'))
            .collect();
        files.sort_by_key(|(_, file)| std::cmp::Reverse(file.seq));
        files
    }

    // ----- the UI tree -----

    /// The view hierarchy of what is on screen now, in the phone's layout
    /// variant of labels: dumps and taps see the same tree.
    pub fn tree(&self) -> Node {
        let mut tree = self.drawn_tree();
        if self.labels == crate::Labels::Text {
            labels_as_text(&mut tree);
        }
        tree
    }

    /// The view hierarchy as WeCom 4.1 draws it.
    fn drawn_tree(&self) -> Node {
        let full = Rect::new(0, 0, SCREEN_W, SCREEN_H);
        let mut root = if self.foreground {
            self.app_tree()
        } else {
            launcher_tree()
        };
        if let Some(overlay) = &self.overlay {
            if let (true, Overlay::Dialog(dialog)) = (self.foreground, overlay) {
                if dialog.style == DialogStyle::Window {
                    // A dialog window is the active window: the dump shows it alone.
                    return overlay_tree(overlay);
                }
            }
            if self.foreground || matches!(overlay, Overlay::Permission) {
                root = Node::new("android.widget.FrameLayout", &root.package.clone(), full)
                    .child(root)
                    .child(overlay_tree(overlay));
            }
        }
        root
    }

    fn app_tree(&self) -> Node {
        let p = WECOM_PACKAGE;
        let full = Rect::new(0, 0, SCREEN_W, SCREEN_H);
        let root = Node::new("android.widget.FrameLayout", p, full);
        let content = Rect::new(0, 248, SCREEN_W, 2208);
        match self.top() {
            Screen::Main(tab) => {
                let body = match tab {
                    Tab::Messages => {
                        // Only the rows in view are in the dump, as a RecyclerView
                        // has no views for the rest; a row cut by an edge is clipped.
                        let scroll = self.chat_scroll.min(self.max_chat_scroll());
                        let rows = self.chats.iter().enumerate().filter_map(|(i, c)| {
                            let top = CHAT_LIST.top + CHAT_ROW * i as i32 - scroll;
                            if top + CHAT_ROW <= CHAT_LIST.top || top >= CHAT_LIST.bottom {
                                return None;
                            }
                            let last = c.messages.last().map(|m| m.1.preview()).unwrap_or_default();
                            let row = Node::new(
                                "android.widget.RelativeLayout",
                                p,
                                Rect::new(0, top, SCREEN_W, top + CHAT_ROW),
                            )
                            .id("conversation_item")
                            .on_tap(Action::OpenChat(c.with.clone()))
                            .on_long_press(Action::ChatMenu(c.with.clone()))
                            .child(
                                Node::new(
                                    "android.widget.ImageView",
                                    p,
                                    Rect::new(36, top + 30, 176, top + 170),
                                )
                                .id("photo"),
                            )
                            .child(
                                Node::new(
                                    "android.widget.TextView",
                                    p,
                                    Rect::new(212, top + 36, 800, top + 96),
                                )
                                .id("title")
                                .text(&c.with),
                            )
                            .child(
                                Node::new(
                                    "android.widget.TextView",
                                    p,
                                    Rect::new(212, top + 110, 1000, top + 160),
                                )
                                .id("content")
                                .text(&last),
                            );
                            clipped(row, CHAT_LIST)
                        });
                        let mut list =
                            Node::new("androidx.recyclerview.widget.RecyclerView", p, content)
                                .id("conversation_list")
                                .children(rows);
                        list.scrollable = self.max_chat_scroll() > 0;
                        list
                    }
                    Tab::Contacts => {
                        let mut list = vec![
                            Node::new("android.widget.TextView", p, Rect::new(36, 268, 1044, 368))
                                .id("search_bar")
                                .text("搜索")
                                .on_tap(Action::OpenContactSearch),
                            entry(p, 388, "新的客户", Action::OpenFriendRequests),
                            entry(p, 548, "添加客户", Action::OpenAddFriend),
                        ];
                        for (i, name) in self.contacts.iter().enumerate() {
                            let top = 728 + 160 * i as i32;
                            list.push(
                                entry(p, top, name, Action::OpenProfile(name.clone()))
                                    .id("contact_item"),
                            );
                        }
                        Node::new("android.widget.ListView", p, content)
                            .id("contact_list")
                            .children(list)
                    }
                    Tab::Workbench => Node::new("android.widget.GridView", p, content)
                        .id("workbench_grid")
                        .child(grid_item(p, 0, "客户朋友圈", Some(Action::OpenMoments)))
                        .child(grid_item(p, 1, "客户联系", None))
                        .child(grid_item(p, 2, "群发助手", None))
                        .child(grid_item(p, 3, "打卡", None)),
                };
                let title = match tab {
                    Tab::Messages => "消息",
                    Tab::Contacts => "通讯录",
                    Tab::Workbench => "工作台",
                };
                let tabs = [
                    (Tab::Messages, "消息"),
                    (Tab::Contacts, "通讯录"),
                    (Tab::Workbench, "工作台"),
                ];
                let bar = Node::new(
                    "android.widget.LinearLayout",
                    p,
                    Rect::new(0, 2208, SCREEN_W, SCREEN_H),
                )
                .id("tab_bar")
                .children(tabs.iter().enumerate().map(|(i, (t, label))| {
                    let l = 360 * i as i32;
                    let mut n = Node::new(
                        "android.widget.TextView",
                        p,
                        Rect::new(l, 2208, l + 360, SCREEN_H),
                    )
                    .id("tab_item")
                    .text(label)
                    .desc(label)
                    .on_tap(Action::Tab(*t));
                    n.checked = None;
                    if t == tab {
                        n.focused = false;
                    }
                    n
                }));
                root.child(title_bar(p, title, false))
                    .child(body)
                    .child(bar)
            }
            Screen::Chat { with, draft, panel } => {
                // With the more-functions panel open the input bar moves up above it.
                let bar_top = if *panel { PANEL_TOP - 168 } else { 2232 };
                let messages = self
                    .chats
                    .iter()
                    .find(|c| c.with == *with)
                    .map(|c| c.messages.as_slice())
                    .unwrap_or(&[]);
                // The list shows the latest messages that fit, as it scrolls to the end.
                let fit = ((bar_top - 268) / 150).max(0) as usize;
                let shown = &messages[messages.len().saturating_sub(fit)..];
                let bubbles = shown.iter().enumerate().map(|(i, (mine, bubble))| {
                    let top = 268 + 150 * i as i32;
                    let r = if *mine {
                        Rect::new(400, top, 1044, top + 120)
                    } else {
                        Rect::new(36, top, 680, top + 120)
                    };
                    match bubble {
                        Bubble::Text(text) => Node::new("android.widget.TextView", p, r)
                            .id("chat_bubble")
                            .text(text),
                        Bubble::Image(_) => Node::new("android.widget.ImageView", p, r)
                            .id("chat_image")
                            .desc("图片"),
                        Bubble::File(path) => {
                            let size = self.file(path).map_or(0, |f| f.data.len());
                            Node::new("android.widget.LinearLayout", p, r)
                                .id("chat_file")
                                .child(
                                    Node::new(
                                        "android.widget.TextView",
                                        p,
                                        Rect::new(r.left + 24, top + 10, r.right - 24, top + 60),
                                    )
                                    .id("file_name")
                                    .text(file_name(path)),
                                )
                                .child(
                                    Node::new(
                                        "android.widget.TextView",
                                        p,
                                        Rect::new(r.left + 24, top + 64, r.right - 24, top + 110),
                                    )
                                    .id("file_size")
                                    .text(&human_size(size)),
                                )
                        }
                    }
                });
                let list = Node::new(
                    "androidx.recyclerview.widget.RecyclerView",
                    p,
                    Rect::new(0, 248, SCREEN_W, bar_top),
                )
                .id("message_list")
                .children(bubbles);
                let (field_top, field_bottom) = (bar_top + 24, bar_top + 144);
                let mut input = Node::new(
                    "android.widget.EditText",
                    p,
                    Rect::new(24, field_top, 840, field_bottom),
                )
                .id("input_editor")
                .text(draft)
                .on_tap(Action::FocusInput);
                input.focusable = true;
                input.focused = self.focused;
                let button_rect = Rect::new(864, field_top, 1056, field_bottom);
                let button = if draft.is_empty() {
                    Node::new("android.widget.ImageView", p, button_rect)
                        .id("more_button")
                        .desc(if *panel {
                            "更多功能按钮，已展开"
                        } else {
                            "更多功能按钮，已折叠"
                        })
                        .on_tap(Action::TogglePanel)
                } else {
                    Node::new("android.widget.Button", p, button_rect)
                        .id("send_button")
                        .text("发送")
                        .on_tap(Action::Send)
                };
                let mut screen = root.child(title_bar(p, with, true)).child(list).child(
                    Node::new(
                        "android.widget.LinearLayout",
                        p,
                        Rect::new(0, bar_top, SCREEN_W, bar_top + 168),
                    )
                    .id("input_panel")
                    .child(input)
                    .child(button),
                );
                if *panel {
                    screen = screen.child(more_panel(p));
                }
                screen
            }
            Screen::ContactSearch { query } => {
                let mut field =
                    Node::new("android.widget.EditText", p, Rect::new(150, 100, 1044, 228))
                        .id("search_input")
                        .text(query)
                        .on_tap(Action::FocusInput);
                field.focusable = true;
                field.focused = self.focused;
                let hits: Vec<&String> = if query.is_empty() {
                    Vec::new()
                } else {
                    self.contacts
                        .iter()
                        .filter(|c| c.contains(query.as_str()))
                        .collect()
                };
                let mut results =
                    Node::new("android.widget.ListView", p, content).id("search_result");
                if hits.is_empty() && !query.is_empty() {
                    results = results.child(
                        Node::new(
                            "android.widget.TextView",
                            p,
                            Rect::new(0, 300, SCREEN_W, 400),
                        )
                        .text("无搜索结果"),
                    );
                }
                for (i, name) in hits.into_iter().enumerate() {
                    let top = 268 + 160 * i as i32;
                    results = results.child(
                        entry(p, top, name, Action::OpenProfile(name.clone())).id("search_item"),
                    );
                }
                root.child(back_button(p)).child(field).child(results)
            }
            Screen::Profile { name } => root
                .child(title_bar(p, "", true))
                .child(
                    Node::new("android.widget.TextView", p, Rect::new(212, 300, 900, 380))
                        .id("contact_name")
                        .text(name),
                )
                .child(
                    Node::new("android.widget.Button", p, Rect::new(36, 1800, 1044, 1940))
                        .id("send_message_button")
                        .text("发消息")
                        .on_tap(Action::MessageFromProfile(name.clone())),
                ),
            Screen::AddFriend {
                query,
                result,
                requested,
            } => {
                let mut field =
                    Node::new("android.widget.EditText", p, Rect::new(36, 268, 860, 388))
                        .id("search_input")
                        .text(query)
                        .on_tap(Action::FocusInput);
                field.focusable = true;
                field.focused = self.focused;
                let mut n = root
                    .child(title_bar(p, "添加客户", true))
                    .child(
                        Node::new("android.widget.TextView", p, Rect::new(36, 400, 1044, 460))
                            .text("手机号/企业微信号"),
                    )
                    .child(field)
                    .child(
                        Node::new("android.widget.Button", p, Rect::new(880, 268, 1044, 388))
                            .id("search_button")
                            .text("搜索")
                            .on_tap(Action::AddFriendSearch),
                    );
                match result {
                    None => {}
                    Some(None) => {
                        n = n.child(
                            Node::new(
                                "android.widget.TextView",
                                p,
                                Rect::new(0, 520, SCREEN_W, 600),
                            )
                            .text("该用户不存在"),
                        )
                    }
                    Some(Some(name)) => {
                        n = n.child(
                            Node::new("android.widget.TextView", p, Rect::new(212, 520, 900, 600))
                                .id("result_name")
                                .text(name),
                        );
                        n = n.child(if *requested {
                            Node::new("android.widget.TextView", p, Rect::new(36, 700, 1044, 840))
                                .text("等待验证")
                        } else {
                            Node::new("android.widget.Button", p, Rect::new(36, 700, 1044, 840))
                                .id("add_button")
                                .text("添加到通讯录")
                                .on_tap(Action::AddToContacts(name.clone()))
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
            } => {
                let mut field =
                    Node::new("android.widget.EditText", p, Rect::new(36, 400, 1044, 640))
                        .id("verify_message")
                        .text(greeting)
                        .on_tap(Action::FocusInput);
                field.focusable = true;
                field.focused = self.focused && !*remark_focus;
                root.child(title_bar(p, "申请添加客户", true))
                    .child(
                        Node::new("android.widget.TextView", p, Rect::new(36, 300, 1044, 380))
                            .text("发送添加邀请"),
                    )
                    .child(field)
                    .child(remark_row(p, 680, remark, self.focused && *remark_focus))
                    .child(
                        entry(p, 850, "标签", Action::OpenTags(TagPurpose::Request))
                            .id("tag_row")
                            .child(value_text(p, 850, &tags.join("、"))),
                    )
                    .child(
                        Node::new("android.widget.Button", p, Rect::new(880, 100, 1044, 228))
                            .id("send_request_button")
                            .text("发送")
                            .on_tap(Action::SendFriendRequest),
                    )
            }
            Screen::FriendRequests => {
                let rows = self.requests.iter().enumerate().map(|(i, r)| {
                    let top = 268 + 200 * i as i32;
                    let row = Node::new(
                        "android.widget.RelativeLayout",
                        p,
                        Rect::new(0, top, SCREEN_W, top + 200),
                    )
                    .id("request_item")
                    .child(
                        Node::new(
                            "android.widget.TextView",
                            p,
                            Rect::new(212, top + 30, 800, top + 90),
                        )
                        .id("request_name")
                        .text(&r.name),
                    )
                    .child(
                        Node::new(
                            "android.widget.TextView",
                            p,
                            Rect::new(212, top + 110, 800, top + 170),
                        )
                        .id("request_greeting")
                        .text(&r.greeting),
                    );
                    if r.accepted {
                        row.child(
                            Node::new(
                                "android.widget.TextView",
                                p,
                                Rect::new(840, top + 50, 1044, top + 150),
                            )
                            .text("已添加"),
                        )
                    } else {
                        row.child(
                            Node::new(
                                "android.widget.Button",
                                p,
                                Rect::new(840, top + 50, 1044, top + 150),
                            )
                            .id("accept_button")
                            .text("通过")
                            .on_tap(Action::Accept(r.name.clone())),
                        )
                    }
                });
                root.child(title_bar(p, "新的客户", true)).child(
                    Node::new("android.widget.ListView", p, content)
                        .id("request_list")
                        .children(rows),
                )
            }
            Screen::Verify { remark, .. } => root
                .child(title_bar(p, "通过验证", true))
                .child(
                    Node::new("android.widget.Button", p, Rect::new(880, 100, 1044, 228))
                        .id("confirm_button")
                        .text("完成")
                        .on_tap(Action::ConfirmVerify),
                )
                .child(remark_row(p, 268, remark, self.focused)),
            Screen::Visibility { by_tags, tags } => {
                let mut all = entry(p, 268, "全部客户", Action::VisibleToAll).id("visible_all");
                let mut by = entry(
                    p,
                    428,
                    "按标签筛选",
                    Action::OpenTags(TagPurpose::Visibility),
                )
                .id("visible_by_tag")
                .child(value_text(p, 428, &tags.join("、")));
                all.checked = Some(!*by_tags);
                by.checked = Some(*by_tags);
                root.child(title_bar(p, "可见的客户", true))
                    .child(
                        Node::new("android.widget.Button", p, Rect::new(880, 100, 1044, 228))
                            .id("confirm_button")
                            .text("完成")
                            .on_tap(Action::VisibilityDone),
                    )
                    .child(all)
                    .child(by)
            }
            Screen::TagPicker { selected, .. } => {
                // The enterprise's tags as chips, four to a row, under their group.
                let chips = self.tags.iter().enumerate().map(|(i, tag)| {
                    let l = 36 + 252 * (i as i32 % 4);
                    let t = 400 + 130 * (i as i32 / 4);
                    let mut chip = Node::new(
                        "android.widget.TextView",
                        p,
                        Rect::new(l, t, l + 232, t + 110),
                    )
                    .id("tag_item")
                    .text(tag)
                    .on_tap(Action::ToggleTag(tag.clone()));
                    chip.checked = Some(selected.contains(tag));
                    chip
                });
                let mut list = Node::new("android.widget.ScrollView", p, content)
                    .id("tag_list")
                    .child(
                        Node::new("android.widget.TextView", p, Rect::new(36, 290, 1044, 370))
                            .id("tag_group")
                            .text("企业标签"),
                    )
                    .children(chips);
                if self.tags.is_empty() {
                    list = list.child(
                        Node::new(
                            "android.widget.TextView",
                            p,
                            Rect::new(0, 400, SCREEN_W, 500),
                        )
                        .text("暂无标签"),
                    );
                }
                root.child(title_bar(p, "选择标签", true))
                    .child(list)
                    .child(
                        Node::new("android.widget.Button", p, Rect::new(840, 2240, 1044, 2380))
                            .id("confirm_button")
                            .text(&if selected.is_empty() {
                                "确定".to_owned()
                            } else {
                                format!("确定({})", selected.len())
                            })
                            .on_tap(Action::TagsDone),
                    )
            }
            Screen::MomentsHome => root.child(title_bar(p, "客户朋友圈", true)).child(
                Node::new(
                    "android.widget.ImageView",
                    p,
                    Rect::new(920, 100, 1044, 228),
                )
                .id("post_entry")
                .desc("发表到客户朋友圈")
                .on_tap(Action::OpenComposer),
            ),
            Screen::Composer { text, media, tags } => {
                let mut field =
                    Node::new("android.widget.EditText", p, Rect::new(36, 268, 1044, 700))
                        .id("moments_input")
                        .text(text)
                        .on_tap(Action::FocusInput);
                field.focusable = true;
                field.focused = self.focused;
                let mut n = root
                    .child(title_bar(p, "", true))
                    .child(
                        Node::new("android.widget.Button", p, Rect::new(880, 100, 1044, 228))
                            .id("publish_button")
                            .text("发表")
                            .on_tap(Action::PostMoment),
                    )
                    .child(field);
                for (i, m) in media.iter().enumerate() {
                    let l = 36 + 330 * (i as i32 % 3);
                    let t = 740 + 330 * (i as i32 / 3);
                    n = n.child(
                        Node::new(
                            "android.widget.ImageView",
                            p,
                            Rect::new(l, t, l + 300, t + 300),
                        )
                        .id("media_thumb")
                        .desc(&format!("图片{}", i + 1))
                        .text(file_name(m)),
                    );
                }
                let i = media.len() as i32;
                let l = 36 + 330 * (i % 3);
                let t = 740 + 330 * (i / 3);
                let shown_to = if tags.is_empty() {
                    "全部客户".to_owned()
                } else {
                    tags.join("、")
                };
                n.child(
                    entry(p, 2050, "可见的客户", Action::OpenVisibility)
                        .id("visible_row")
                        .child(value_text(p, 2050, &shown_to)),
                )
                .child(
                    Node::new(
                        "android.widget.ImageView",
                        p,
                        Rect::new(l, t, l + 300, t + 300),
                    )
                    .id("add_media")
                    .desc("添加图片")
                    .on_tap(Action::OpenPicker),
                )
            }
            Screen::Picker { selected, chat } => {
                // From a chat the album sends at once; for Moments it hands the
                // pictures back to the composer.
                let verb = if chat.is_some() { "发送" } else { "完成" };
                let mut n = root.child(title_bar(p, "图片和视频", true)).child(
                    Node::new("android.widget.Button", p, Rect::new(840, 100, 1044, 228))
                        .id("done_button")
                        .text(&if selected.is_empty() {
                            verb.to_owned()
                        } else {
                            format!("{verb}({})", selected.len())
                        })
                        .on_tap(Action::PickerDone),
                );
                // The grid shows the rows that fit above the bottom bar.
                let fit = 4 * ((2208 - 248) / 270) as usize;
                for (i, m) in self.album().into_iter().take(fit).enumerate() {
                    let l = 270 * (i as i32 % 4);
                    let t = 248 + 270 * (i as i32 / 4);
                    let mut cell = Node::new(
                        "android.widget.ImageView",
                        p,
                        Rect::new(l, t, l + 266, t + 266),
                    )
                    .id("media_item")
                    .desc(&format!("照片, {}", file_name(m)))
                    .on_tap(Action::ToggleMedia(m.clone()));
                    cell.checked = Some(selected.contains(m));
                    n = n.child(cell);
                }
                if chat.is_some() {
                    let mut original = Node::new(
                        "android.widget.CheckBox",
                        p,
                        Rect::new(400, 2240, 680, 2380),
                    )
                    .id("original_checkbox")
                    .text("原图");
                    original.checked = Some(false);
                    n = n.child(
                        Node::new(
                            "android.widget.RelativeLayout",
                            p,
                            Rect::new(0, 2208, SCREEN_W, SCREEN_H),
                        )
                        .id("bottom_bar")
                        .child(
                            Node::new("android.widget.TextView", p, Rect::new(36, 2240, 236, 2380))
                                .id("preview_button")
                                .text("预览"),
                        )
                        .child(original),
                    );
                }
                n
            }
            Screen::FileSource { .. } => root.child(title_bar(p, "选择文件", true)).child(
                Node::new("android.widget.ListView", p, content)
                    .id("source_list")
                    .child(row(p, 268, "微盘文件").id("source_item"))
                    .child(row(p, 428, "聊天中的文件").id("source_item"))
                    .child(entry(p, 588, "手机存储", Action::OpenPhoneStorage).id("source_item")),
            ),
            Screen::Storage { selected, .. } => {
                let fit = ((2208 - 268) / 160) as usize;
                let files = self.storage_files();
                let empty = files.is_empty();
                let rows = files
                    .into_iter()
                    .take(fit)
                    .enumerate()
                    .map(|(i, (path, file))| {
                        let top = 268 + 160 * i as i32;
                        let mut check = Node::new(
                            "android.widget.CheckBox",
                            p,
                            Rect::new(930, top + 40, 1010, top + 120),
                        )
                        .id("file_checkbox");
                        check.checked = Some(selected.as_ref() == Some(path));
                        Node::new(
                            "android.widget.RelativeLayout",
                            p,
                            Rect::new(0, top, SCREEN_W, top + 150),
                        )
                        .id("file_item")
                        .on_tap(Action::PickFile(path.clone()))
                        .child(
                            Node::new(
                                "android.widget.ImageView",
                                p,
                                Rect::new(36, top + 25, 136, top + 125),
                            )
                            .id("file_icon"),
                        )
                        .child(
                            Node::new(
                                "android.widget.TextView",
                                p,
                                Rect::new(172, top + 20, 900, top + 80),
                            )
                            .id("file_name")
                            .text(file_name(path)),
                        )
                        .child(
                            Node::new(
                                "android.widget.TextView",
                                p,
                                Rect::new(172, top + 86, 900, top + 136),
                            )
                            .id("file_size")
                            .text(&human_size(file.data.len())),
                        )
                        .child(check)
                    });
                let mut list = Node::new(
                    "android.widget.ListView",
                    p,
                    Rect::new(0, 248, SCREEN_W, 2208),
                )
                .id("file_list")
                .children(rows);
                if empty {
                    list = list.child(
                        Node::new(
                            "android.widget.TextView",
                            p,
                            Rect::new(0, 300, SCREEN_W, 400),
                        )
                        .text("暂无文件"),
                    );
                }
                root.child(title_bar(p, "手机存储", true))
                    .child(list)
                    .child(
                        Node::new("android.widget.Button", p, Rect::new(840, 2240, 1044, 2380))
                            .id("send_button")
                            .text(if selected.is_some() {
                                "发送(1)"
                            } else {
                                "发送"
                            })
                            .on_tap(Action::SendFile),
                    )
            }
        }
    }
}

/// Where the chat's more-functions panel starts; it fills the screen below.
const PANEL_TOP: i32 = 1728;

/// The chat's more-functions panel, as WeCom lays it out: two rows of four. Only 图片
/// and 文件 lead anywhere in the simulator.
fn more_panel(p: &str) -> Node {
    let items = [
        ("图片", Some(Action::OpenAlbum)),
        ("拍摄", None),
        ("视频通话", None),
        ("位置", None),
        ("红包", None),
        ("文件", Some(Action::OpenFiles)),
        ("名片", None),
        ("微盘", None),
    ];
    Node::new(
        "android.widget.GridView",
        p,
        Rect::new(0, PANEL_TOP, SCREEN_W, SCREEN_H),
    )
    .id("more_panel")
    .children(items.into_iter().enumerate().map(|(i, (label, action))| {
        let l = 270 * (i as i32 % 4);
        let t = PANEL_TOP + 336 * (i as i32 / 4);
        let mut item = Node::new(
            "android.widget.LinearLayout",
            p,
            Rect::new(l, t, l + 270, t + 336),
        )
        .id("panel_item")
        .child(
            Node::new(
                "android.widget.ImageView",
                p,
                Rect::new(l + 75, t + 40, l + 195, t + 160),
            )
            .id("panel_icon"),
        )
        .child(
            Node::new(
                "android.widget.TextView",
                p,
                Rect::new(l, t + 180, l + 270, t + 240),
            )
            .id("panel_label")
            .text(label),
        );
        if let Some(action) = action {
            item = item.on_tap(action);
        }
        item
    }))
}

/// Whether the album shows the file: pictures and videos, by extension, as the media
/// store files them.
fn is_album_media(path: &str) -> bool {
    let ext = file_name(path)
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    matches!(
        ext.as_str(),
        "jpg" | "jpeg" | "png" | "gif" | "webp" | "bmp" | "heic" | "mp4" | "3gp" | "mov"
    )
}

/// A file size as WeCom's file views show it: `512B`, `12.5K`, `3.1M`.
fn human_size(bytes: usize) -> String {
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1}K", b / 1024.0)
    } else {
        format!("{:.1}M", b / (1024.0 * 1024.0))
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

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `node` cut to `area`, as a list draws a row its edge cuts: its bounds
/// and its children's shrink to what is in view, and children wholly out of
/// view go. `None` when nothing of it is in view.
fn clipped(mut node: Node, area: Rect) -> Option<Node> {
    let b = node.bounds;
    let cut = Rect::new(
        b.left.max(area.left),
        b.top.max(area.top),
        b.right.min(area.right),
        b.bottom.min(area.bottom),
    );
    if cut.right <= cut.left || cut.bottom <= cut.top {
        return None;
    }
    node.bounds = cut;
    node.children = std::mem::take(&mut node.children)
        .into_iter()
        .filter_map(|child| clipped(child, area))
        .collect();
    Some(node)
}

fn title_bar(p: &str, title: &str, back: bool) -> Node {
    let mut bar = Node::new(
        "android.widget.RelativeLayout",
        p,
        Rect::new(0, 80, SCREEN_W, 248),
    )
    .id("title_bar");
    if back {
        bar = bar.child(back_button(p));
    }
    if !title.is_empty() {
        bar = bar.child(
            Node::new("android.widget.TextView", p, Rect::new(150, 110, 930, 218))
                .id("title_text")
                .text(title),
        );
    }
    bar
}

fn back_button(p: &str) -> Node {
    Node::new("android.widget.ImageView", p, Rect::new(0, 100, 130, 228))
        .id("back_button")
        .desc("返回")
        .on_tap(Action::Back)
}

fn entry(p: &str, top: i32, label: &str, action: Action) -> Node {
    row(p, top, label).on_tap(action)
}

/// A list row with a label; [`entry`] makes it lead somewhere.
fn row(p: &str, top: i32, label: &str) -> Node {
    Node::new(
        "android.widget.RelativeLayout",
        p,
        Rect::new(0, top, SCREEN_W, top + 150),
    )
    .child(
        Node::new(
            "android.widget.TextView",
            p,
            Rect::new(212, top + 40, 900, top + 110),
        )
        .text(label),
    )
}

/// A 备注 row: the label and its text field, which the flow finds through the label.
fn remark_row(p: &str, top: i32, remark: &str, focused: bool) -> Node {
    let mut field = Node::new(
        "android.widget.EditText",
        p,
        Rect::new(212, top + 20, 1044, top + 130),
    )
    .id("remark_input")
    .text(remark)
    .on_tap(Action::FocusRemark);
    field.focusable = true;
    field.focused = focused;
    Node::new(
        "android.widget.RelativeLayout",
        p,
        Rect::new(0, top, SCREEN_W, top + 150),
    )
    .id("remark_row")
    .child(
        Node::new(
            "android.widget.TextView",
            p,
            Rect::new(36, top + 40, 200, top + 110),
        )
        .text("备注"),
    )
    .child(field)
}

/// The value a settings row shows on its right, such as the picked tags.
fn value_text(p: &str, top: i32, value: &str) -> Node {
    Node::new(
        "android.widget.TextView",
        p,
        Rect::new(540, top + 40, 1000, top + 110),
    )
    .id("row_value")
    .text(value)
}

fn grid_item(p: &str, i: i32, label: &str, action: Option<Action>) -> Node {
    let l = 270 * (i % 4);
    let t = 300 + 270 * (i / 4);
    let mut n = Node::new(
        "android.widget.LinearLayout",
        p,
        Rect::new(l, t, l + 270, t + 250),
    )
    .child(
        Node::new(
            "android.widget.TextView",
            p,
            Rect::new(l, t + 170, l + 270, t + 240),
        )
        .text(label),
    );
    if let Some(a) = action {
        n = n.on_tap(a);
    }
    n
}

fn launcher_tree() -> Node {
    let p = LAUNCHER_PACKAGE;
    let icon = |i: i32, label: &str, action: Option<Action>| {
        let l = 40 + 250 * i;
        let mut n = Node::new(
            "android.widget.TextView",
            p,
            Rect::new(l, 1900, l + 240, 2150),
        )
        .text(label)
        .desc(label);
        if let Some(a) = action {
            n = n.on_tap(a);
        }
        n
    };
    Node::new(
        "android.widget.FrameLayout",
        p,
        Rect::new(0, 0, SCREEN_W, SCREEN_H),
    )
    .child(
        Node::new("android.view.View", p, Rect::new(0, 1850, SCREEN_W, 2200))
            .id("workspace")
            .child(icon(0, "企业微信", Some(Action::LaunchWeCom)))
            .child(icon(1, "设置", None))
            .child(icon(2, "相册", None))
            .child(icon(3, "电话", None)),
    )
}

fn overlay_tree(overlay: &Overlay) -> Node {
    let dialog = |p: &str, title: &str, message: &str, buttons: Vec<(&str, &str, Action)>| {
        let n = buttons.len() as i32;
        let w = (1000 - 80) / n.max(1);
        let mut d = Node::new(
            "android.widget.LinearLayout",
            p,
            Rect::new(80, 860, 1000, 1540),
        )
        .id("dialog_root")
        .child(
            Node::new("android.widget.TextView", p, Rect::new(120, 900, 960, 990))
                .id("dialog_title")
                .text(title),
        )
        .child(
            Node::new(
                "android.widget.TextView",
                p,
                Rect::new(120, 1010, 960, 1300),
            )
            .id("dialog_message")
            .text(message),
        );
        for (i, (id, label, action)) in buttons.into_iter().enumerate() {
            let l = 80 + w * i as i32;
            d = d.child(
                Node::new("android.widget.Button", p, Rect::new(l, 1380, l + w, 1540))
                    .id(id)
                    .text(label)
                    .on_tap(action),
            );
        }
        d
    };
    let p = WECOM_PACKAGE;
    match overlay {
        Overlay::Dialog(fault) if fault.style == DialogStyle::Window => alert_dialog(fault),
        Overlay::Dialog(fault) => dialog(
            p,
            &fault.title,
            &fault.message,
            fault
                .buttons
                .iter()
                .enumerate()
                .map(|(i, label)| {
                    (
                        ["dialog_cancel", "dialog_neutral", "dialog_confirm"][i.min(2)],
                        label.as_str(),
                        Action::DismissOverlay,
                    )
                })
                .collect(),
        ),
        Overlay::Risk { title, message } => dialog(
            p,
            title,
            message,
            vec![("dialog_confirm", "我知道了", Action::DismissOverlay)],
        ),
        Overlay::Update => dialog(
            p,
            "发现新版本",
            "企业微信有新版本可用，更新后体验更多功能",
            vec![
                ("dialog_cancel", "以后再说", Action::DismissOverlay),
                ("dialog_confirm", "立即更新", Action::DismissOverlay),
            ],
        ),
        Overlay::Permission => dialog(
            PERMISSION_PACKAGE,
            "要允许“企业微信”访问您设备上的照片和媒体内容吗？",
            "",
            vec![
                (
                    "com.android.permissioncontroller:id/permission_allow_button",
                    "允许",
                    Action::DismissOverlay,
                ),
                (
                    "com.android.permissioncontroller:id/permission_deny_button",
                    "拒绝",
                    Action::DismissOverlay,
                ),
            ],
        ),
        Overlay::ChatMenu(with) => {
            Node::new("android.widget.ListView", p, Rect::new(240, 900, 840, 1380))
                .id("popup_menu")
                .child(
                    Node::new("android.widget.TextView", p, Rect::new(240, 900, 840, 1060))
                        .text("标为未读")
                        .on_tap(Action::MenuClose),
                )
                .child(
                    Node::new(
                        "android.widget.TextView",
                        p,
                        Rect::new(240, 1060, 840, 1220),
                    )
                    .text("置顶")
                    .on_tap(Action::MenuClose),
                )
                .child(
                    Node::new(
                        "android.widget.TextView",
                        p,
                        Rect::new(240, 1220, 840, 1380),
                    )
                    .text("删除")
                    .on_tap(Action::MenuDelete(with.clone())),
                )
        }
        Overlay::ConfirmDelete(with) => dialog(
            p,
            "",
            "删除后，将清空该聊天的消息记录",
            vec![
                ("dialog_cancel", "取消", Action::DismissOverlay),
                (
                    "dialog_confirm",
                    "删除",
                    Action::ConfirmDelete(with.clone()),
                ),
            ],
        ),
    }
}

/// A dialog as Android's `AlertDialog` draws it, in a window of its own: the
/// framework's ids, the buttons right-aligned (`button1` is the positive one, the
/// rightmost).
fn alert_dialog(fault: &DialogFault) -> Node {
    let p = WECOM_PACKAGE;
    let (top, bottom) = (852, 1548);
    let mut panel = Node::new(
        "android.widget.LinearLayout",
        p,
        Rect::new(84, top, 996, bottom),
    )
    .id("android:id/parentPanel");
    if !fault.title.is_empty() {
        panel = panel.child(
            Node::new("android.widget.TextView", p, Rect::new(140, 900, 940, 980))
                .id("android:id/alertTitle")
                .text(&fault.title),
        );
    }
    panel = panel.child(
        Node::new(
            "android.widget.TextView",
            p,
            Rect::new(140, 1000, 940, 1320),
        )
        .id("android:id/message")
        .text(&fault.message),
    );
    let ids = [
        "android:id/button1",
        "android:id/button2",
        "android:id/button3",
    ];
    for (i, label) in fault.buttons.iter().enumerate() {
        // button1 rightmost, then button2 to its left, then button3.
        let right = 940 - 260 * i as i32;
        panel = panel.child(
            Node::new(
                "android.widget.Button",
                p,
                Rect::new(right - 240, 1400, right, 1500),
            )
            .id(ids[i.min(2)])
            .text(label)
            .on_tap(Action::DismissOverlay),
        );
    }
    Node::new(
        "android.widget.FrameLayout",
        p,
        Rect::new(84, top, 996, bottom),
    )
    .child(panel)
}

/// Makes every label visible text only: a description alone moves into the
/// text, and one that repeats the text goes (WeCom's tabs carry both).
fn labels_as_text(node: &mut Node) {
    if node.text.is_empty() && !node.content_desc.is_empty() {
        node.text = std::mem::take(&mut node.content_desc);
    } else if node.text == node.content_desc {
        node.content_desc.clear();
    }
    for child in &mut node.children {
        labels_as_text(child);
    }
}
