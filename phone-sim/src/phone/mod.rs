//! The simulated phone: the WeCom-like app's screens, navigation, input, files, settings,
//! scripted faults and the record of what was sent.
//!
//! # Layout
//! - this file: the phone's constants, the types the simulator's users see (inputs,
//!   what was sent, notifications) and [`Phone`], the whole mutable state.
//! - `faults`: the scripted faults and popups, and when each one is due.
//! - `state`: the screens, chats, requests and files it holds; storage, calls, faults
//!   and records.
//! - `system`: what Android does around the app, the calls the shell's commands and
//!   [`crate::LocalPhone`] share: inputs dispatched and logged, starting WeCom,
//!   typing through ADBKeyBoard, the media scanner, storage listing and removal,
//!   notifications, do-not-disturb, screen dumps and screenshots.
//! - `navigation`: focus, the screen stack, launching, HOME, BACK and scrolling.
//! - `actions`: what taps, long presses, keys and typing do.
//! - `screens`: the UI tree of every screen; `widgets`: the pieces they are drawn from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ui::Rect;
pub use crate::ui::Tab;

mod actions;
mod faults;
mod navigation;
mod screens;
mod state;
mod system;
mod widgets;

pub use faults::{DialogFault, DialogStyle, DialogWhen, Fault, Popup};

pub(crate) use state::SimFile;
use state::{Chat, FriendRequest, Overlay, Screen};

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

impl SentEvent {
    /// A [`SentEvent::Message`] of `text` to `to`.
    pub fn message(to: &str, text: &str) -> Self {
        SentEvent::Message {
            to: to.to_owned(),
            text: text.to_owned(),
        }
    }
}

/// One input the phone received, with what was on screen when it came: the
/// simulator's action log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputEvent {
    /// The input.
    pub input: Input,
    /// The screen's name (see [`crate::ScreenSnapshot::name`]) just before it.
    pub screen: String,
    /// For a tap or a long press, what it landed on as a person would name it: the
    /// text of the view that took it (or the first text inside it), else its
    /// content description. `None` for other inputs and for touches that hit
    /// nothing.
    pub hit: Option<String>,
}

/// A notification an app posted (`cmd notification post TAG TEXT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The tag; a post with the same tag replaces the one shown.
    pub tag: String,
    /// The text.
    pub text: String,
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

/// The phone's whole mutable state; guarded by one mutex in [`crate::Simulator`].
#[derive(Debug)]
pub(crate) struct Phone {
    pub model: String,
    /// WeCom's `versionName`; `None` when it is not installed.
    pub wecom_version: Option<String>,
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
    /// Every notification posted, oldest first.
    notifications: Vec<Notification>,
    /// What runs when a text is typed (see [`crate::LocalPhone::when_typed`]).
    typed_hooks: Vec<state::TypedHook>,
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
