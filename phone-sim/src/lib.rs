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
//! # Layout
//! - `adb`: the transport (message headers, CNXN, OPEN/OKAY/WRTE/CLSE) and the services
//!   `shell:` (raw), `shell,v2:` (shell protocol with exit codes), `exec:` and `sync:`.
//! - `shell`: a small `sh` (`;`, `&&`, `||`, `|`, quotes, `$?`, `2>&1`, `sh -c`) and the
//!   Android commands: `input`, `am`, `monkey`, `uiautomator dump`, `dumpsys`, `settings`,
//!   `cmd notification`, `ime`, `screencap`, `getevent`, `getprop` and a few coreutils.
//! - `phone`: the app's screens and navigation, text fields and focus, storage, settings,
//!   scripted faults and the record of what was sent.
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

mod adb;
pub mod adb_server;
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

pub use phone::{
    DialogFault, DialogStyle, DialogWhen, Fault, Input, InputEvent, SentEvent, Tab,
    ADB_KEYBOARD_IME, SCREEN_H, SCREEN_W, WECOM_PACKAGE,
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
        let shared = Arc::new(Shared {
            phone: Mutex::new(phone::Phone::new(&config)),
            keys: broadcast::channel(64).0,
            drops: broadcast::channel(4).0,
            started: Instant::now(),
            serial: config.serial.clone(),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(adb::serve(listener, shared.clone(), stop_rx));
        tracing::info!(%addr, "phone simulator listening");
        Ok(SimHandle {
            addr,
            shared,
            stop: stop_tx,
            task: Some(task),
        })
    }
}

/// A running simulator. Dropping it stops the server too.
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
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

    /// Everything the app sent so far, oldest first.
    pub fn sent(&self) -> Vec<SentEvent> {
        self.shared.phone().sent()
    }

    /// Every input the phone received (taps, keys, text, launches), oldest first,
    /// each with the screen it came to: the action log.
    pub fn inputs(&self) -> Vec<InputEvent> {
        self.shared.phone().inputs()
    }

    /// Arms a fault; see [`Fault`] for when each one fires.
    pub fn set_fault(&self, fault: Fault) {
        tracing::info!(?fault, "fault armed");
        self.shared.phone().faults.push(fault);
    }

    /// Disarms every fault that has not fired yet.
    pub fn clear_faults(&self) {
        self.shared.phone().faults.clear();
    }

    /// Closes every open ADB connection now, as a phone that drops off Wi-Fi would.
    pub fn drop_connections(&self) {
        let _ = self.shared.drops.send(());
    }

    /// Presses a hardware key (24 volume up, 25 volume down, 26 power): open `getevent`
    /// streams report it. `input keyevent` does not, as on a real phone.
    pub fn press_hardware_key(&self, keycode: u16) {
        let _ = self.shared.keys.send(keycode);
    }

    /// Starts ringing an incoming call from `number` (`dumpsys telephony.registry` shows
    /// `mCallState=1` until `input keyevent 6` hangs up).
    pub fn ring(&self, number: &str) {
        self.shared.phone().ring(number);
    }

    /// Answers the ringing call, as the person at the phone would: `mCallState=2`
    /// (off-hook) until the call ends. Nothing happens without a call.
    pub fn answer_call(&self) {
        let mut phone = self.shared.phone();
        if phone.incoming_call.is_some() {
            phone.call_answered = true;
        }
    }

    /// Ends the call from the other side (the caller gives up, or hangs up after
    /// talking): `mCallState=0` again.
    pub fn end_call(&self) {
        self.shared.phone().end_call();
    }

    /// `mCallState` as `dumpsys telephony.registry` reports it: 0 idle, 1
    /// ringing, 2 off-hook.
    pub fn call_state(&self) -> u8 {
        self.shared.phone().call_state()
    }

    /// Sets the battery level `dumpsys battery` reports.
    pub fn set_battery_level(&self, level: u8) {
        self.shared.phone().battery_level = level.min(100);
    }

    /// Changes the WeCom `versionName` that `dumpsys package` reports from now on, as
    /// updating (or downgrading) the app by hand would.
    pub fn set_wecom_version(&self, version: &str) {
        self.shared.phone().wecom_version = version.to_owned();
    }

    /// Switches the input method to the phone's stock keyboard, as a person
    /// who picked another keyboard would; the agent must select ADBKeyBoard again.
    pub fn switch_to_stock_keyboard(&self) {
        self.shared.phone().default_ime = phone::STOCK_IME.to_owned();
    }

    /// The input method in use.
    pub fn input_method(&self) -> String {
        self.shared.phone().default_ime.clone()
    }

    /// What is on screen now.
    pub fn screen(&self) -> ScreenSnapshot {
        let phone = self.shared.phone();
        let tree = phone.tree();
        let (pkg, act) = phone.focus_component();
        ScreenSnapshot {
            name: phone.screen_name(),
            focus: format!("{pkg}/{act}"),
            xml: ui::hierarchy_xml(&tree),
            tree,
        }
    }

    /// The do-not-disturb mode as `settings get global zen_mode` reports it (0 off,
    /// 1 priority, 2 none, 3 alarms).
    pub fn zen_mode(&self) -> u8 {
        self.shared.phone().zen_mode
    }

    /// The bytes of a file in the phone's storage, if it exists.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.shared.phone().file(path).map(|f| f.data.clone())
    }

    /// Media files known to the gallery (registered by a media-scan broadcast).
    pub fn gallery(&self) -> Vec<String> {
        self.shared.phone().media.clone()
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
