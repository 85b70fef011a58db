//! A fake Android phone for tests: it speaks the ADB transport protocol over TCP as adbd
//! does (so `adb connect`, the adb server and `adb_client::ADBTcpDevice` all work against
//! it) and emulates a small WeCom-like app behind the shell commands a real phone answers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), youmi_phone_sim::SimError> {
//! use youmi_phone_sim::{Fault, SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default()).await?;
//! println!("adb connect {}", sim.addr());
//! sim.set_fault(Fault::DumpNotIdle { times: 1 });
//! // ... drive it, then:
//! assert!(sim.sent().is_empty());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The same phone runs in process, without a socket or a runtime, for tests of code
//! written against a phone trait rather than ADB ([`Simulator::local`], [`LocalPhone`]):
//!
//! ```
//! use youmi_phone_sim::{SimConfig, Simulator};
//! let phone = Simulator::local(SimConfig::default());
//! phone.launch_wecom().unwrap();
//! assert!(phone.dump().unwrap().contains("content-desc=\"通讯录\""));
//! ```
//!
//! # Layout
//! - `adb`: the transport (message headers, CNXN, OPEN/OKAY/WRTE/CLSE) and the services
//!   `shell:` (raw), `shell,v2:` (shell protocol with exit codes), `exec:` and `sync:`.
//! - `shell`: a small `sh` (`;`, `&&`, `||`, `|`, quotes, `$?`, `2>&1`, `sh -c`) and the
//!   Android commands: `input`, `am`, `monkey`, `uiautomator dump`, `dumpsys`, `settings`,
//!   `cmd notification`, `ime`, `screencap`, `getevent`, `getprop` and a few coreutils.
//! - `phone`: the app's screens and navigation, text fields and focus, storage, settings,
//!   scripted faults and the record of what was sent; and the calls that Android's
//!   commands make on it, which the shell and [`LocalPhone`] share.
//! - `local`: [`LocalPhone`], the phone driven and inspected in process, each call the
//!   model call of the matching shell command; a [`SimHandle`] dereferences to one.
//! - `ui`: view-hierarchy nodes, hit testing and the `uiautomator` XML.
//! - `render`: `screencap -p` as a PNG of boxes.
//! - [`adb_server`]: test support for driving the simulator through the real `adb`
//!   program: a private adb server on a free port with its own HOME, killed when dropped.
//!
//! # What the executor can rely on
//! - Foreground app: `dumpsys window windows` (or `dumpsys window`) prints an
//!   `mCurrentFocus=Window{... u0 PACKAGE/ACTIVITY}` line; `dumpsys activity activities`
//!   prints `mResumedActivity`. `| grep mCurrentFocus` works.
//! - Exit codes: `shell,v2` streams carry them; on raw `shell:` wrap the command as
//!   `CMD; echo EXIT:$?`.
//! - `uiautomator dump` writes `/sdcard/window_dump.xml` (or the given path; `/dev/tty`
//!   prints it) and says `UI hierchary dumped to: PATH`, with Android's own spelling.
//! - Typing: `am broadcast -a ADB_INPUT_B64 --es msg BASE64` types into the focused field
//!   only when ADBKeyBoard is installed and is the default IME; a chat's input field gets
//!   focus when tapped.
//! - Long press (`input swipe X Y X Y 800`) on a chat in the chat list opens its menu
//!   ("删除" deletes after a confirmation).
//! - Pictures and files in a chat: the "更多功能按钮，已折叠" button opens the
//!   more-functions panel; its "图片" opens the album (the pictures and videos that a
//!   `MEDIA_SCANNER_SCAN_FILE` broadcast registered, newest first, each described
//!   "照片, NAME"; "发送(N)" sends), and "文件" > "手机存储" lists the files in storage,
//!   newest first, by name (tap one, then "发送(1)"). Each sent one is a
//!   [`SentEvent::Image`] or [`SentEvent::File`] with its device path.
//! - Remarks and tags: 发送添加邀请 (after 添加到通讯录) has the greeting, a "备注" row with
//!   its own text field and a "标签" row; 新的客户's "通过" opens 通过验证, whose 备注 is
//!   filled with the requester's name, and "完成" accepts. The composer's "可见的客户" row
//!   opens a screen with "全部客户" and "按标签筛选". "标签" and "按标签筛选" open
//!   选择标签, which lists [`SimConfig::tags`] (and only those) as chips; "确定(N)" hands
//!   the picked ones back. [`SentEvent::FriendRequestSent`],
//!   [`SentEvent::FriendRequestAccepted`] and [`SentEvent::MomentPost`] record them.
//! - Notifications: `cmd notification post [FLAGS] TAG TEXT` posts one
//!   ([`LocalPhone::notifications`]); `cmd notification set_dnd MODE` and
//!   `settings get global zen_mode` set and read do-not-disturb.
//! - Starting WeCom: `monkey -p com.tencent.wework -c android.intent.category.LAUNCHER 1`
//!   or `am start -n COMPONENT` (`-S` force-stops it first), each an [`Input::Launch`]
//!   in the action log; `pm path` and `dumpsys package` know it only while it is
//!   installed ([`LocalPhone::uninstall_wecom`]).
//! - The action log ([`LocalPhone::inputs`]): every input with the screen it came to
//!   and, for a touch, what it hit ([`InputEvent::hit`]).
//!
//! # In process
//! [`LocalPhone`] offers what the executor does over ADB, each call through the same
//! model call as its shell command: the screen as uiautomator XML
//! ([`LocalPhone::dump`]) and as a PNG, taps, long presses, swipes, key events,
//! starting and stopping WeCom, the foreground window, WeCom's version, typing as
//! ADBKeyBoard does, pushing a file and the media scanner's broadcast, listing and
//! removing files, do-not-disturb, notifications and calls; and for tests, the
//! record, faults, and a hook on typed text ([`LocalPhone::when_typed`]).

mod adb;
pub mod adb_server;
mod local;
mod phone;
mod render;
mod shell;
pub mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

pub use local::{LocalError, LocalPhone};
pub use phone::{
    DialogFault, DialogStyle, DialogWhen, Fault, Input, InputEvent, Notification, Popup, SentEvent,
    Tab, ADB_KEYBOARD_IME, SCREEN_H, SCREEN_W, WECOM_PACKAGE,
};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free port (see [`SimHandle::addr`]).
    pub listen: SocketAddr,
    /// The WeCom `versionName` that `dumpsys package` reports.
    pub wecom_version: String,
    /// Whether the ADBKeyBoard IME is installed (and the default input method).
    pub ime_installed: bool,
    /// Append every [`SentEvent`] as one JSON line to this file.
    pub record: Option<PathBuf>,
    /// Faults armed from the start.
    pub faults: Vec<Fault>,
    /// The serial number `getprop ro.serialno` reports.
    pub serial: String,
    /// The enterprise's customer tags (企业标签) that the tag picker lists, so that a test
    /// can make a task name a tag the enterprise does not have.
    pub tags: Vec<String>,
    /// Where the app puts its labels (tabs, icon buttons): a layout variant, for
    /// flows that must not depend on it.
    pub labels: Labels,
    /// How many chats with other customers sit above the scripted ones in the chat
    /// list (a layout variant: with more than a screenful, the scripted chats are
    /// below the fold, and a flow must scroll to them).
    pub filler_chats: u32,
}

/// Where the simulated WeCom puts the labels of tabs and icon buttons.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Labels {
    /// As WeCom 4.1 draws them: tabs and icon buttons carry a content
    /// description, buttons with words carry text.
    #[default]
    AsDrawn,
    /// Every label is visible text only: a node with a description and no
    /// text shows the description as its text, and a description that
    /// repeats the text (the tabs') is gone.
    Text,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            wecom_version: "4.1.30".to_owned(),
            ime_installed: true,
            record: None,
            faults: Vec::new(),
            serial: "YOUMISIM0001".to_owned(),
            tags: ["重要客户", "新客户", "VIP"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            labels: Labels::AsDrawn,
            filler_chats: 0,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// State shared by every connection and the handle.
pub(crate) struct Shared {
    phone: Mutex<phone::Phone>,
    /// Hardware key presses that `getevent` streams report.
    keys: broadcast::Sender<u16>,
    /// Tells every connection to close its socket (a run-time dropped connection).
    drops: broadcast::Sender<()>,
    /// Boot time, the origin of `getevent` timestamps.
    started: Instant,
    serial: String,
}

impl Shared {
    fn new(config: &SimConfig) -> Self {
        Self {
            phone: Mutex::new(phone::Phone::new(config)),
            keys: broadcast::channel(64).0,
            drops: broadcast::channel(4).0,
            started: Instant::now(),
            serial: config.serial.clone(),
        }
    }

    /// The phone's state. A panic while holding the lock cannot leave the simulated phone
    /// in a state worse than a test failure, so a poisoned lock is simply taken over.
    pub(crate) fn phone(&self) -> MutexGuard<'_, phone::Phone> {
        self.phone.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Entry point: starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Binds the listening socket and serves ADB connections on the current tokio
    /// runtime until [`SimHandle::shutdown`] or the handle is dropped.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let phone = Simulator::local(config);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(adb::serve(listener, phone.shared.clone(), stop_rx));
        tracing::info!(%addr, "phone simulator listening");
        Ok(SimHandle {
            addr,
            phone,
            stop: stop_tx,
            task: Some(task),
        })
    }

    /// A phone driven in process only, with no socket and no runtime: the same
    /// phone [`Simulator::start`] serves (`config.listen` is not used).
    pub fn local(config: SimConfig) -> LocalPhone {
        LocalPhone {
            shared: Arc::new(Shared::new(&config)),
        }
    }
}

/// A running simulator: a [`LocalPhone`] (which it dereferences to, for the
/// record, faults and in-process calls) served over ADB. Dropping it stops the
/// server too.
pub struct SimHandle {
    addr: SocketAddr,
    phone: LocalPhone,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

impl std::ops::Deref for SimHandle {
    type Target = LocalPhone;

    fn deref(&self) -> &LocalPhone {
        &self.phone
    }
}

/// What the phone shows, for assertions.
#[derive(Debug, Clone)]
pub struct ScreenSnapshot {
    /// A short name such as `main:messages`, `chat:张三` or `launcher+risk_control`.
    pub name: String,
    /// The foreground window as `package/activity`.
    pub focus: String,
    /// The view hierarchy.
    pub tree: ui::Node,
    /// The hierarchy as `uiautomator dump` writes it.
    pub xml: String,
}

impl SimHandle {
    /// The address to `adb connect` to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open ADB connection now, as a phone that drops off Wi-Fi would.
    pub fn drop_connections(&self) {
        let _ = self.phone.shared.drops.send(());
    }

    /// Stops listening and closes every connection.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
