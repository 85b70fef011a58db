//! What the agent can do to a phone, independent of how it reaches it: the
//! [`Phone`] trait (read the screen, tap, type, launch apps, ...), its typed
//! [`PhoneError`], and the parsed screen ([`UiTree`]) that flows search with
//! [`Selector`]s.
//!
//! [`crate::adb::AdbPhone`] implements it over ADB (through the adb server or
//! directly over TCP); the flow engine in [`crate::flow`] is written against
//! the trait only, so its rules are tested on the phone simulator in process too
//! (`device-agent/tests/flow`).

pub mod ui;

use std::path::Path;
use std::time::Duration;

pub use ui::{Bounds, Point, Selector, UiNode, UiTree};

use crate::future::BoxFuture;

/// The result of one phone operation.
pub type PhoneResult<T> = Result<T, PhoneError>;

/// A hardware or navigation key, as `input keyevent` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// KEYCODE_BACK (4).
    Back,
    /// KEYCODE_HOME (3).
    Home,
    /// KEYCODE_ENTER (66).
    Enter,
    /// KEYCODE_DEL (67): one character back.
    Delete,
    /// KEYCODE_WAKEUP (224).
    WakeUp,
    /// KEYCODE_ENDCALL (6).
    EndCall,
    /// Any other Android key code.
    Code(u16),
}

impl Key {
    /// The Android key code.
    pub fn code(self) -> u16 {
        match self {
            Key::Back => 4,
            Key::Home => 3,
            Key::Enter => 66,
            Key::Delete => 67,
            Key::WakeUp => 224,
            Key::EndCall => 6,
            Key::Code(code) => code,
        }
    }
}

/// The app in the foreground.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreground {
    /// Its package, e.g. `com.tencent.wework`.
    pub package: String,
    /// Its activity, as the window manager names it (may be relative: `.launch.X`).
    pub activity: String,
}

/// The phone's state for the heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhoneStatus {
    /// Battery level, 0-100.
    pub battery: Option<u8>,
    /// Whether it is charging.
    pub charging: Option<bool>,
    /// Whether the screen is on.
    pub screen_on: Option<bool>,
    /// The package in the foreground.
    pub foreground_app: Option<String>,
    /// Whether a call rings or is under way (see [`crate::calls`]).
    pub call: Option<youmi_protocol::CallStatus>,
    /// The installed WeCom's version (the flow executor fills it in).
    pub wecom_version: Option<String>,
    /// Whether do-not-disturb is on (the flow executor fills it in).
    pub dnd: Option<bool>,
}

/// The telephony state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallState {
    /// No call.
    Idle,
    /// A call is ringing; the number if the phone shows it.
    Ringing(Option<String>),
    /// A call is in progress.
    OffHook,
}

/// What can go wrong on a phone. Every variant says whether trying the same
/// thing again later may work ([`PhoneError::retryable`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The phone cannot be reached (adb server down, TCP refused, connection dropped).
    #[error("phone {serial} is unreachable: {reason}")]
    Unreachable {
        /// The phone.
        serial: String,
        /// What failed.
        reason: String,
    },
    /// A command did not finish before its deadline; it was abandoned.
    #[error("`{command}` did not finish within {after:?}")]
    Timeout {
        /// The command.
        command: String,
        /// The deadline it had.
        after: Duration,
    },
    /// A command ran and failed.
    #[error("`{command}` exited with {code}: {stderr}")]
    CommandFailed {
        /// The command.
        command: String,
        /// Its exit code.
        code: i32,
        /// What it printed on stderr (or stdout, when it printed nothing there), trimmed.
        stderr: String,
    },
    /// The output ended before the command's end marker: the stream was cut.
    #[error("the output of `{command}` was cut off")]
    Truncated {
        /// The command.
        command: String,
    },
    /// `uiautomator dump` kept failing (e.g. "could not get idle state" on a
    /// screen that never stops animating), read after read, for longer than
    /// the agent waits.
    #[error("could not read the screen: {reads} reads failed over {:.1} s, the last with: {last}", .over.as_secs_f64())]
    UiDump {
        /// How many dumps failed.
        reads: u32,
        /// From the first read to the last failure.
        over: Duration,
        /// The last failure.
        last: String,
    },
    /// The ADBKeyBoard IME, which typing Unicode text needs, is not installed or not enabled.
    #[error("the ADBKeyBoard input method is not installed or not the default on the phone (install com.android.adbkeyboard and `ime set com.android.adbkeyboard/.AdbIME`)")]
    ImeMissing,
    /// An app that is needed is not installed.
    #[error("{package} is not installed on the phone")]
    AppNotInstalled {
        /// The package.
        package: String,
    },
    /// A command answered something this agent cannot understand.
    #[error("unexpected output from `{command}`: {reason}")]
    BadOutput {
        /// The command.
        command: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A local file (media to push, a screenshot to save) could not be used.
    #[error("{path}: {reason}")]
    LocalFile {
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
}

impl PhoneError {
    /// Whether doing the same again later may succeed (a connection problem,
    /// a busy screen), as opposed to something a person must fix first.
    pub fn retryable(&self) -> bool {
        match self {
            PhoneError::Unreachable { .. }
            | PhoneError::Timeout { .. }
            | PhoneError::Truncated { .. }
            | PhoneError::UiDump { .. } => true,
            PhoneError::CommandFailed { .. }
            | PhoneError::ImeMissing
            | PhoneError::AppNotInstalled { .. }
            | PhoneError::BadOutput { .. }
            | PhoneError::LocalFile { .. } => false,
        }
    }

    /// The stable snake_case code a task failure caused by this error carries.
    pub fn code(&self) -> &'static str {
        match self {
            PhoneError::Unreachable { .. } => "phone_unreachable",
            PhoneError::Timeout { .. } => "phone_timeout",
            PhoneError::CommandFailed { .. } => "phone_command_failed",
            PhoneError::Truncated { .. } => "phone_unreachable",
            PhoneError::UiDump { .. } => "screen_unreadable",
            PhoneError::ImeMissing => "ime_missing",
            PhoneError::AppNotInstalled { .. } => "app_not_installed",
            PhoneError::BadOutput { .. } => "phone_bad_output",
            PhoneError::LocalFile { .. } => "local_file",
        }
    }
}

/// One phone, as flows and the agent's runner use it. Every method has its own
/// deadline inside the implementation: none hangs forever, whatever the phone does.
pub trait Phone: Send + Sync + 'static {
    /// The phone's serial (as adb lists it, or `HOST:PORT` over TCP).
    fn serial(&self) -> &str;

    /// Reads the screen's UI tree (`uiautomator dump`), retrying busy screens.
    fn dump_ui(&self) -> BoxFuture<'_, PhoneResult<UiTree>>;

    /// Taps a point.
    fn tap(&self, at: Point) -> BoxFuture<'_, PhoneResult<()>>;

    /// Presses and holds a point (a long press) for `hold`.
    fn long_press(&self, at: Point, hold: Duration) -> BoxFuture<'_, PhoneResult<()>>;

    /// Swipes from one point to another over `duration`.
    fn swipe(&self, from: Point, to: Point, duration: Duration) -> BoxFuture<'_, PhoneResult<()>>;

    /// Presses a key.
    fn key(&self, key: Key) -> BoxFuture<'_, PhoneResult<()>>;

    /// Starts an app at its launcher activity.
    fn launch_app<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<()>>;

    /// Force-stops an app.
    fn stop_app<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<()>>;

    /// The app in the foreground, if any window has focus.
    fn foreground_app(&self) -> BoxFuture<'_, PhoneResult<Option<Foreground>>>;

    /// The installed version (`versionName`) of a package; `None` if it is not installed.
    fn app_version<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<Option<String>>>;

    /// Types Unicode text into the focused field through the ADBKeyBoard IME.
    fn type_text<'a>(&'a self, text: &'a str) -> BoxFuture<'a, PhoneResult<()>>;

    /// Copies a local media file into the phone's gallery and has the media
    /// scanner index it; returns the path on the phone.
    fn push_media<'a>(&'a self, local: &'a Path) -> BoxFuture<'a, PhoneResult<String>>;

    /// Removes every file pushed before and has the media scanner forget them,
    /// so that the album holds only what is pushed next, in order.
    fn clear_media(&self) -> BoxFuture<'_, PhoneResult<()>>;

    /// Takes a screenshot, as PNG bytes.
    fn screenshot(&self) -> BoxFuture<'_, PhoneResult<Vec<u8>>>;

    /// Whether do-not-disturb is on.
    fn do_not_disturb(&self) -> BoxFuture<'_, PhoneResult<bool>>;

    /// Turns do-not-disturb on or off.
    fn set_do_not_disturb(&self, on: bool) -> BoxFuture<'_, PhoneResult<()>>;

    /// The telephony state.
    fn call_state(&self) -> BoxFuture<'_, PhoneResult<CallState>>;

    /// Hangs up (or rejects) the current call.
    fn end_call(&self) -> BoxFuture<'_, PhoneResult<()>>;

    /// Battery, charging, screen and foreground app, for the heartbeat.
    fn status(&self) -> BoxFuture<'_, PhoneResult<PhoneStatus>>;

    /// Shows a short message to a person at the phone (a toast or a
    /// notification), e.g. the countdown before a task.
    fn notify<'a>(&'a self, text: &'a str) -> BoxFuture<'a, PhoneResult<()>>;
}
