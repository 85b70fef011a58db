//! [`AdbPhone`]: the [`Phone`] trait over ADB, with adb_client 3.2.3 underneath.
//!
//! A phone is reached either through the adb server ([`AdbPhone::through_server`],
//! by serial: USB phones, or TCP phones the server `adb connect`ed) or directly
//! over TCP ([`AdbPhone::over_tcp`], wireless debugging), authenticating with an
//! RSA key kept in a file and created there once. Every method sends the same shell
//! commands a person would type after `adb shell` (`input tap`, `uiautomator dump`,
//! `dumpsys ...`), so a real phone and the `youmi-phone-sim` simulator answer alike.
//!
//! # Blocking calls, deadlines and fresh connections
//! adb_client is blocking, so each phone has a dedicated thread that owns its
//! connection and runs one call at a time (`link`); the async side gives every call
//! its own deadline ([`AdbConfig`]) with `tokio::time::timeout`. At the deadline the
//! call is abandoned, the caller gets [`PhoneError::Timeout`], and the connection is
//! cut off and replaced: a connection that hung once is never used again.
//!
//! # What adb_client 3.2.3 gets wrong, and how this module copes
//! - **No read timeout.** Its transports read with no deadline (the TCP transport
//!   sets `Duration::from_secs(u64::MAX)`), and nothing outside the library can
//!   reach its socket to interrupt a read. adb_client therefore never talks to the
//!   peer directly: it connects to a loopback relay (`relay`) that owns the real
//!   socket, and the relay ends a stuck connection when a deadline passes.
//! - **A busy loop on a closed socket.** `TcpTransport::read_message_with_timeout`
//!   (`src/message_devices/tcp/tcp_transport.rs`) fills its 24-byte header, and then
//!   the payload, with `loop { total_read += raw_connection.read(&mut buf[total_read..])?;
//!   if total_read == len { break } }`: at end of stream `read` returns `Ok(0)`
//!   forever, so a phone that closes the connection, or one that reset it (later
//!   reads return 0 too), or a socket shut down locally, leaves the thread spinning
//!   on a core for good. `ADBSession`'s `Drop` (`src/message_devices/adb_session.rs`)
//!   drains with the same function, so even dropping a session spins. The relay
//!   never hands adb_client an end of stream on that transport: when the phone goes
//!   away or a call is abandoned, it completes the message under way and sends an
//!   invalid header, which adb_client rejects with an error (the session's drain in
//!   `Drop` then times out on the silent socket); the socket closes only after
//!   adb_client closed its end. Through the adb server, adb_client's reader stops
//!   on end of stream, and the relay simply closes.
//! - **No exit code.** `shell_command` returns `None` over TCP (raw `shell:`) and
//!   drops the shell-protocol exit packet through the adb server. Every command is
//!   sent as `CMD; echo __YOUMI_EXIT__:$?` and the marker is parsed: a missing marker
//!   is [`PhoneError::Truncated`], a non-zero status [`PhoneError::CommandFailed`].
//! - **Raw shell merges stderr into stdout** over TCP: error texts hold both there.
//! - **A new RSA key per connection** when the key file is missing (and 2048-bit
//!   key generation is slow): [`AdbPhone::over_tcp`] creates the file first.
//! - **`ADBServer::devices` starts `adb start-server`** on the default port for any
//!   loopback address: [`list_phones`] speaks the adb server's request itself.
//!
//! Over TLS (`STLS`, Android 11+ pairing), an encrypted `close_notify` from the phone
//! could still make adb_client spin; reach such phones through the adb server.

mod key;
mod link;
mod relay;
mod server;
mod shell;

use std::io::Write;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::{mpsc, watch};
use youmi_protocol::DeviceInfo;

pub use server::{list_phones, ListedPhone, DEFAULT_SERVER};

use crate::future::BoxFuture;
use crate::phone::{
    CallState, Foreground, Key, Phone, PhoneError, PhoneResult, PhoneStatus, Point, UiTree,
};
use link::{CallError, Link, Route};
use relay::Relay;
use shell::Output;

/// Where pushed media goes: a folder of its own under the camera roll, which
/// every gallery app shows. It is emptied before a task pushes its first file
/// (`Phone::clear_media`), so its album holds that task's media only.
pub const MEDIA_DIR: &str = "/sdcard/DCIM/Youmi";

/// The most characters typed by one ADBKeyBoard broadcast: Chinese text is three
/// bytes a character and base64 adds a third, and old adbd takes 4 KiB per command.
const TYPE_CHUNK: usize = 300;

/// Why one `uiautomator dump` gave no screen, when reading again may help.
enum DumpFailure {
    /// It answered something that is not a dump: its complaint.
    Unreadable(String),
    /// It did not answer before its deadline.
    Hung(PhoneError),
}

impl std::fmt::Display for DumpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DumpFailure::Unreadable(last) => f.write_str(last),
            DumpFailure::Hung(error) => write!(f, "{error}"),
        }
    }
}

/// Deadlines and timings. The defaults suit a phone on USB or on a LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdbConfig {
    /// Deadline of one ordinary shell command (a tap, a `dumpsys`, a broadcast).
    pub command_timeout: Duration,
    /// Deadline of one `uiautomator dump`, which takes seconds on a busy screen.
    pub dump_timeout: Duration,
    /// How long a screen that cannot be read ("could not get idle state" while
    /// something animates, or output that is not a dump) is read again before
    /// [`PhoneError::UiDump`]. Slow phones with animated screens fail several
    /// dumps in a row (three within 1.3 s were seen) and then read fine.
    pub dump_patience: Duration,
    /// The first pause before reading again; each later pause doubles, up to
    /// [`AdbConfig::dump_retry_pause_max`].
    pub dump_retry_pause: Duration,
    /// The longest pause between two reads.
    pub dump_retry_pause_max: Duration,
    /// Deadline of a file push or a screenshot, which move megabytes.
    pub transfer_timeout: Duration,
    /// How long opening a TCP connection (to the phone or the adb server) may take.
    pub connect_timeout: Duration,
    /// How often [`AdbPhone::online`] probes the phone, and how long
    /// [`AdbPhone::key_presses`] waits before reconnecting.
    pub probe_interval: Duration,
    /// Deadline of one probe: a phone that cannot `echo` in this time is offline.
    pub probe_timeout: Duration,
}

impl Default for AdbConfig {
    fn default() -> Self {
        AdbConfig {
            command_timeout: Duration::from_secs(15),
            dump_timeout: Duration::from_secs(20),
            dump_patience: Duration::from_secs(10),
            dump_retry_pause: Duration::from_millis(200),
            dump_retry_pause_max: Duration::from_millis(1600),
            transfer_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            probe_interval: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(5),
        }
    }
}

/// A phone over ADB. Cheap to keep around: it connects on the first call and
/// reconnects after a failure by itself.
pub struct AdbPhone {
    /// The serial adb lists (or `HOST:PORT` over TCP), for errors, logs and [`Phone::serial`].
    serial: String,
    /// Deadlines.
    config: AdbConfig,
    /// How the phone is reached, shared with the probe and the key watcher, which
    /// open connections of their own so that they never wait behind a long command.
    route: Arc<Route>,
    /// The connection commands use.
    link: Link,
    /// The online probe, started by the first [`AdbPhone::online`].
    probe: OnceLock<Probe>,
}

impl std::fmt::Debug for AdbPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdbPhone")
            .field("serial", &self.serial)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

/// The running online probe.
struct Probe {
    /// What it last found.
    online: watch::Receiver<bool>,
    /// Its task, stopped when the phone is dropped.
    task: tokio::task::JoinHandle<()>,
}

impl AdbPhone {
    /// A phone the adb server at `server` (usually [`DEFAULT_SERVER`]) knows as `serial`.
    pub fn through_server(server: SocketAddrV4, serial: &str, config: AdbConfig) -> AdbPhone {
        let route = Route::Server {
            server,
            serial: serial.to_owned(),
        };
        AdbPhone::new(serial.to_owned(), route, config)
    }

    /// A phone in wireless debugging at `phone`, reached without the adb server.
    /// It authenticates the agent by the RSA key in `key_file`, which is created
    /// (0600) if it does not exist, so that the phone sees the same key every time.
    pub async fn over_tcp(
        phone: SocketAddr,
        key_file: &Path,
        config: AdbConfig,
    ) -> PhoneResult<AdbPhone> {
        let path = key_file.to_path_buf();
        tokio::task::spawn_blocking(move || key::ensure_key(&path))
            .await
            .map_err(|error| PhoneError::LocalFile {
                path: key_file.display().to_string(),
                reason: format!("the key check stopped: {error}"),
            })??;
        let route = Route::Tcp {
            phone,
            key: key_file.to_path_buf(),
        };
        Ok(AdbPhone::new(phone.to_string(), route, config))
    }

    fn new(serial: String, route: Route, config: AdbConfig) -> AdbPhone {
        let route = Arc::new(route);
        AdbPhone {
            link: Link::new(route.clone(), serial.clone(), config.connect_timeout),
            serial,
            config,
            route,
            probe: OnceLock::new(),
        }
    }

    /// The deadlines this phone uses.
    pub fn config(&self) -> &AdbConfig {
        &self.config
    }

    /// Runs a command line in the phone's `sh` with the ordinary deadline and
    /// returns what it printed. A non-zero exit is [`PhoneError::CommandFailed`]
    /// with its status and stderr (over TCP, raw shell mixes stderr into stdout).
    /// The command is passed as is: quote what comes from elsewhere.
    pub async fn shell(&self, command: &str) -> PhoneResult<String> {
        self.run(command).await.map(|out| out.text())
    }

    /// Model, Android version and serial (`getprop`), as the bind request and the
    /// admin's device list show them. The serial is the hardware one
    /// (`ro.serialno`) when the phone has it, which stays the same when its
    /// address changes.
    pub async fn device_info(&self) -> PhoneResult<DeviceInfo> {
        let command =
            "getprop ro.product.model; getprop ro.build.version.release; getprop ro.serialno";
        let text = self.run(command).await?.text();
        let mut lines = text.lines().map(str::trim);
        let model = lines.next().unwrap_or_default().to_owned();
        let android_version = lines.next().unwrap_or_default().to_owned();
        let serial = match lines.next() {
            Some(serial) if !serial.is_empty() => serial.to_owned(),
            _ => self.serial.clone(),
        };
        Ok(DeviceInfo {
            serial,
            model,
            android_version,
            agent_version: crate::AGENT_VERSION.to_owned(),
        })
    }

    /// Hardware key presses (volume, power, ...) as they happen, read from
    /// `getevent -lq` on a connection and a thread of their own. The watcher
    /// reconnects after [`AdbConfig::probe_interval`] when its connection fails, and
    /// stops when the returned [`KeyPresses`] is dropped.
    pub fn key_presses(&self) -> PhoneResult<KeyPresses> {
        let (keys_tx, keys) = mpsc::channel(64);
        let stop = Arc::new(Stop::default());
        let watcher = KeyWatcher {
            route: self.route.clone(),
            serial: self.serial.clone(),
            connect_timeout: self.config.connect_timeout,
            retry: self.config.probe_interval,
            keys: keys_tx,
            stop: stop.clone(),
        };
        std::thread::Builder::new()
            .name(format!("adb-keys-{}", self.serial))
            .spawn(move || watcher.run())
            .map_err(|error| {
                link::unreachable(&self.serial, format!("cannot start a thread: {error}"))
            })?;
        Ok(KeyPresses { keys, stop })
    }

    /// Whether the phone answers, as a probe finds every
    /// [`AdbConfig::probe_interval`]: it runs `echo` with
    /// [`AdbConfig::probe_timeout`] on a connection of its own. The adb server takes
    /// a minute or more to notice a TCP phone that went away; this notices within
    /// one interval. `false` until the first probe answers. The probe starts with
    /// the first call (which must be inside a tokio runtime) and stops when the
    /// phone is dropped.
    pub fn online(&self) -> watch::Receiver<bool> {
        self.probe.get_or_init(|| self.start_probe()).online.clone()
    }

    fn start_probe(&self) -> Probe {
        let (online_tx, online) = watch::channel(false);
        let link = Link::new(
            self.route.clone(),
            self.serial.clone(),
            self.config.connect_timeout,
        );
        let interval = self.config.probe_interval;
        let deadline = self.config.probe_timeout;
        let serial = self.serial.clone();
        let task = tokio::spawn(async move {
            loop {
                let answer = shell_call(&link, "echo", "echo", deadline).await;
                let reachable = matches!(&answer, Ok(out) if out.code == 0);
                online_tx.send_if_modified(|online| {
                    if *online == reachable {
                        return false;
                    }
                    *online = reachable;
                    match &answer {
                        Ok(_) => tracing::info!(%serial, "the phone is online"),
                        Err(error) => tracing::info!(%serial, %error, "the phone is offline"),
                    }
                    true
                });
                tokio::time::sleep(interval).await;
            }
        });
        Probe { online, task }
    }

    /// Runs `command` with the ordinary deadline; a non-zero exit is an error.
    async fn run(&self, command: &str) -> PhoneResult<Output> {
        let out = shell_call(&self.link, command, command, self.config.command_timeout).await?;
        if out.code != 0 {
            return Err(out.failure(command));
        }
        Ok(out)
    }

    /// Runs a command ending in `grep`, whose status 1 only means "no line matched".
    async fn run_grep(&self, command: &str) -> PhoneResult<Output> {
        let out = shell_call(&self.link, command, command, self.config.command_timeout).await?;
        if out.code > 1 {
            return Err(out.failure(command));
        }
        Ok(out)
    }

    /// Reads the screen. A dump that is not XML (the screen was never idle)
    /// or that hung is read again after a pause that doubles each time, for
    /// up to [`AdbConfig::dump_patience`] from the first read; a hung dump
    /// takes its whole [`AdbConfig::dump_timeout`], so the last read may end
    /// up to that much past the patience. Any other failure ends it at once.
    async fn read_screen(&self) -> PhoneResult<UiTree> {
        let command = "uiautomator dump /dev/tty";
        let patience = self.config.dump_patience;
        let started = tokio::time::Instant::now();
        let mut pause = self.config.dump_retry_pause;
        let mut reads: u32 = 0;
        loop {
            let failure =
                match shell_call(&self.link, command, command, self.config.dump_timeout).await {
                    Ok(out) => match UiTree::parse(&out.text()) {
                        Ok(tree) => {
                            if reads > 0 {
                                tracing::debug!(
                                    failed = reads,
                                    after_ms = started.elapsed().as_millis() as u64,
                                    "the screen could be read again"
                                );
                            }
                            return Ok(tree);
                        }
                        Err(error) => {
                            // Through the adb server the complaint is on stderr.
                            let stderr = String::from_utf8_lossy(&out.stderr);
                            let last = match stderr.trim().lines().next() {
                                Some(line) => line.to_owned(),
                                None => error.0,
                            };
                            DumpFailure::Unreadable(last)
                        }
                    },
                    Err(error @ PhoneError::Timeout { .. }) => DumpFailure::Hung(error),
                    Err(error) => return Err(error),
                };
            reads += 1;
            let elapsed = started.elapsed();
            if elapsed >= patience {
                tracing::warn!(
                    reads,
                    over_ms = elapsed.as_millis() as u64,
                    reason = %failure,
                    "the screen could not be read within the patience"
                );
                return Err(match failure {
                    DumpFailure::Hung(error) => error,
                    DumpFailure::Unreadable(last) => PhoneError::UiDump {
                        reads,
                        over: elapsed,
                        last,
                    },
                });
            }
            tracing::debug!(reads, reason = %failure, "the screen could not be read; reading it again");
            tokio::time::sleep(pause.min(patience - elapsed)).await;
            pause = (pause * 2).min(self.config.dump_retry_pause_max.max(pause));
        }
    }

    async fn input(&self, command: String) -> PhoneResult<()> {
        self.run(&command).await.map(|_| ())
    }

    /// A swipe, with the deadline stretched by its own duration.
    async fn swipe_for(&self, from: Point, to: Point, duration: Duration) -> PhoneResult<()> {
        let millis = duration.as_millis().max(1);
        let command = format!(
            "input swipe {} {} {} {} {millis}",
            from.x, from.y, to.x, to.y
        );
        let deadline = self.config.command_timeout + duration;
        let out = shell_call(&self.link, &command, &command, deadline).await?;
        if out.code != 0 {
            return Err(out.failure(&command));
        }
        Ok(())
    }

    async fn launch(&self, package: &str) -> PhoneResult<()> {
        let missing = || PhoneError::AppNotInstalled {
            package: package.to_owned(),
        };
        if !shell::is_package_name(package) {
            return Err(missing());
        }
        let path = format!("pm path {package}");
        let out = shell_call(&self.link, &path, &path, self.config.command_timeout).await?;
        if out.code != 0 || !out.text().contains("package:") {
            return Err(missing());
        }
        let command = format!("monkey -p {package} -c android.intent.category.LAUNCHER 1");
        let out = shell_call(&self.link, &command, &command, self.config.command_timeout).await?;
        if out.code != 0 || out.all_text().contains("monkey aborted") {
            let mut failure = out.failure(&command);
            if let PhoneError::CommandFailed { code, .. } = &mut failure {
                // monkey exits 0 on some phones after aborting.
                if *code == 0 {
                    *code = 1;
                }
            }
            return Err(failure);
        }
        Ok(())
    }

    async fn foreground(&self) -> PhoneResult<Option<Foreground>> {
        let window = self
            .run_grep("dumpsys window windows | grep mCurrentFocus")
            .await?;
        if let Some(focus) = shell::current_focus(&window.text()) {
            return Ok(Some(focus));
        }
        let activities = self
            .run_grep("dumpsys activity activities | grep ResumedActivity")
            .await?;
        Ok(shell::resumed_activity(&activities.text()))
    }

    async fn version(&self, package: &str) -> PhoneResult<Option<String>> {
        if !shell::is_package_name(package) {
            return Ok(None);
        }
        let out = self.run(&format!("dumpsys package {package}")).await?;
        Ok(shell::version_name(&out.text(), package))
    }

    /// Makes sure ADBKeyBoard is the input method before text is typed: checked
    /// every time (a person may switch keyboards between two tasks), and
    /// selected when it is installed but not in use. Only a phone without it
    /// fails, with `ime_missing`.
    async fn ensure_keyboard(&self) -> PhoneResult<()> {
        let check = "settings get secure default_input_method; ime list -a -s";
        if shell::keyboard_ready(&self.run(check).await?.text()) {
            return Ok(());
        }
        let installed = self.run("ime list -a -s").await?.text();
        if !shell::keyboard_installed(&installed) {
            return Err(PhoneError::ImeMissing);
        }
        let ime = shell::ADB_KEYBOARD_IME;
        tracing::warn!(
            ime,
            "ADBKeyBoard is installed but not the input method; selecting it"
        );
        self.run(&format!("ime enable {ime}")).await?;
        self.run(&format!("ime set {ime}")).await?;
        if shell::keyboard_ready(&self.run(check).await?.text()) {
            Ok(())
        } else {
            Err(PhoneError::ImeMissing)
        }
    }

    async fn type_chunks(&self, text: &str) -> PhoneResult<()> {
        if text.is_empty() {
            return Ok(());
        }
        self.ensure_keyboard().await?;
        for chunk in shell::chunks(text, TYPE_CHUNK) {
            let encoded = base64::engine::general_purpose::STANDARD.encode(chunk);
            let command = format!("am broadcast -a ADB_INPUT_B64 --es msg {encoded}");
            // What is typed is a customer's message: logs and errors name its size only.
            let label = format!(
                "am broadcast -a ADB_INPUT_B64 ({} characters)",
                chunk.chars().count()
            );
            let out = shell_call(&self.link, &command, &label, self.config.command_timeout).await?;
            if out.code != 0 {
                return Err(out.failure(&label));
            }
            if !out.text().contains("Broadcast completed") {
                return Err(PhoneError::BadOutput {
                    command: label,
                    reason: "no \"Broadcast completed\" line".to_owned(),
                });
            }
        }
        Ok(())
    }

    async fn push(&self, local: &Path) -> PhoneResult<String> {
        let local_error = |reason: String| PhoneError::LocalFile {
            path: local.display().to_string(),
            reason,
        };
        let meta = tokio::fs::metadata(local)
            .await
            .map_err(|error| local_error(error.to_string()))?;
        if !meta.is_file() {
            return Err(local_error("not a regular file".to_owned()));
        }
        let head = read_head(local)
            .await
            .map_err(|error| local_error(error.to_string()))?;
        let name = local
            .file_name()
            .map(|name| crate::media::pushed_name(&name.to_string_lossy(), &head))
            .and_then(|name| shell::media_name(&name))
            .ok_or_else(|| local_error("the file name has no usable characters".to_owned()))?;
        let remote = format!("{MEDIA_DIR}/{name}");
        let what = format!("push {remote}");
        let (path, target) = (local.to_path_buf(), remote.clone());
        self.link
            .call(&what, self.config.transfer_timeout, move |device| {
                let mut file = std::fs::File::open(&path).map_err(|error| {
                    CallError::Phone(PhoneError::LocalFile {
                        path: path.display().to_string(),
                        reason: error.to_string(),
                    })
                })?;
                device.push(&mut file, &target).map_err(CallError::Adb)
            })
            .await?;
        let uri = shell::quote(&format!("file://{remote}"));
        self.run(&format!(
            "am broadcast -a android.intent.action.MEDIA_SCANNER_SCAN_FILE -d {uri}"
        ))
        .await?;
        Ok(remote)
    }

    /// Empties [`MEDIA_DIR`] and has the media scanner forget what it held, so
    /// that the album holds only what the next task pushes, in push order.
    async fn clear_pushed_media(&self) -> PhoneResult<()> {
        let list = format!("ls {} 2>/dev/null", shell::quote(MEDIA_DIR));
        let listed = shell_call(&self.link, &list, &list, self.config.command_timeout).await?;
        if listed.code != 0 {
            // No folder yet: nothing was pushed.
            tracing::debug!(code = listed.code, "no pushed media to clear");
            return Ok(());
        }
        for name in listed
            .text()
            .lines()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            let path = format!("{MEDIA_DIR}/{name}");
            self.run(&format!("rm -f {}", shell::quote(&path))).await?;
            let uri = shell::quote(&format!("file://{path}"));
            self.run(&format!(
                "am broadcast -a android.intent.action.MEDIA_SCANNER_SCAN_FILE -d {uri}"
            ))
            .await?;
        }
        Ok(())
    }

    async fn capture(&self) -> PhoneResult<Vec<u8>> {
        // Over raw shell stderr shares the stream, and a linker warning would land
        // inside the PNG.
        let command = "screencap -p 2>/dev/null";
        let out = shell_call(&self.link, command, command, self.config.transfer_timeout).await?;
        if out.code != 0 {
            return Err(out.failure(command));
        }
        let png = out.stdout;
        // Decoding the whole image proves it arrived complete; it takes a while, so
        // not on the async runtime.
        let checked = tokio::task::spawn_blocking(move || {
            image::load_from_memory_with_format(&png, image::ImageFormat::Png).map(|_| png)
        })
        .await;
        let bad = |reason: String| PhoneError::BadOutput {
            command: command.to_owned(),
            reason,
        };
        match checked {
            Ok(Ok(png)) => Ok(png),
            Ok(Err(error)) => Err(bad(format!("not a PNG image: {error}"))),
            Err(error) => Err(bad(format!("the PNG check stopped: {error}"))),
        }
    }

    async fn dnd(&self) -> PhoneResult<bool> {
        let command = "settings get global zen_mode";
        let text = self.run(command).await?.text();
        shell::zen_mode_on(&text).ok_or_else(|| PhoneError::BadOutput {
            command: command.to_owned(),
            reason: format!("{:?} is not a zen mode", text.trim()),
        })
    }

    async fn calls(&self) -> PhoneResult<CallState> {
        // Filtered on the phone: the whole registry dump runs to many
        // kilobytes on recent Android, and the runner reads this before
        // every step that touches the phone.
        let command = "dumpsys telephony.registry | grep -E 'mCallState=|mCallIncomingNumber='";
        let text = self.run_grep(command).await?.text();
        shell::call_state(&text).ok_or_else(|| PhoneError::BadOutput {
            command: command.to_owned(),
            reason: "no mCallState line".to_owned(),
        })
    }

    async fn phone_status(&self) -> PhoneResult<PhoneStatus> {
        let battery = shell::battery(&self.run("dumpsys battery").await?.text());
        let power = self
            .run_grep("dumpsys power | grep -E 'mWakefulness=|Display Power: state='")
            .await?;
        let foreground = self.foreground().await?;
        Ok(PhoneStatus {
            battery: battery.level,
            charging: battery.charging,
            screen_on: shell::screen_on(&power.text()),
            foreground_app: foreground.map(|app| app.package),
            // The call state is the agent's to keep (`crate::calls`), read
            // with the phone's other commands in mind.
            call: None,
            // The flow executor reads these through the phone's own calls.
            wecom_version: None,
            dnd: None,
        })
    }
}

impl Drop for AdbPhone {
    fn drop(&mut self) {
        if let Some(probe) = self.probe.get() {
            probe.task.abort();
        }
    }
}

/// Runs a shell command on `link`, wrapped with the exit marker. `label` names it
/// in logs and errors (it differs from `command` when the command holds a secret).
async fn shell_call(
    link: &Link,
    command: &str,
    label: &str,
    deadline: Duration,
) -> PhoneResult<Output> {
    let wrapped = shell::wrap(command);
    let name = label.to_owned();
    link.call(label, deadline, move |device| {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        device
            .shell_command(&wrapped, Some(&mut stdout), Some(&mut stderr))
            .map_err(CallError::Adb)?;
        Output::parse(stdout, stderr)
            .ok_or(CallError::Phone(PhoneError::Truncated { command: name }))
    })
    .await
}

impl Phone for AdbPhone {
    fn serial(&self) -> &str {
        &self.serial
    }

    fn dump_ui(&self) -> BoxFuture<'_, PhoneResult<UiTree>> {
        Box::pin(self.read_screen())
    }

    fn tap(&self, at: Point) -> BoxFuture<'_, PhoneResult<()>> {
        Box::pin(self.input(format!("input tap {} {}", at.x, at.y)))
    }

    fn long_press(&self, at: Point, hold: Duration) -> BoxFuture<'_, PhoneResult<()>> {
        Box::pin(self.swipe_for(at, at, hold))
    }

    fn swipe(&self, from: Point, to: Point, duration: Duration) -> BoxFuture<'_, PhoneResult<()>> {
        Box::pin(self.swipe_for(from, to, duration))
    }

    fn key(&self, key: Key) -> BoxFuture<'_, PhoneResult<()>> {
        Box::pin(self.input(format!("input keyevent {}", key.code())))
    }

    fn launch_app<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        Box::pin(self.launch(package))
    }

    fn stop_app<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        Box::pin(async move {
            if !shell::is_package_name(package) {
                return Err(PhoneError::AppNotInstalled {
                    package: package.to_owned(),
                });
            }
            self.input(format!("am force-stop {package}")).await
        })
    }

    fn foreground_app(&self) -> BoxFuture<'_, PhoneResult<Option<Foreground>>> {
        Box::pin(self.foreground())
    }

    fn app_version<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<Option<String>>> {
        Box::pin(self.version(package))
    }

    fn type_text<'a>(&'a self, text: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        Box::pin(self.type_chunks(text))
    }

    fn push_media<'a>(&'a self, local: &'a Path) -> BoxFuture<'a, PhoneResult<String>> {
        Box::pin(self.push(local))
    }

    fn clear_media(&self) -> BoxFuture<'_, PhoneResult<()>> {
        Box::pin(self.clear_pushed_media())
    }

    fn screenshot(&self) -> BoxFuture<'_, PhoneResult<Vec<u8>>> {
        Box::pin(self.capture())
    }

    fn do_not_disturb(&self) -> BoxFuture<'_, PhoneResult<bool>> {
        Box::pin(self.dnd())
    }

    fn set_do_not_disturb(&self, on: bool) -> BoxFuture<'_, PhoneResult<()>> {
        let mode = if on { "on" } else { "off" };
        Box::pin(self.input(format!("cmd notification set_dnd {mode}")))
    }

    fn call_state(&self) -> BoxFuture<'_, PhoneResult<CallState>> {
        Box::pin(self.calls())
    }

    fn end_call(&self) -> BoxFuture<'_, PhoneResult<()>> {
        Box::pin(self.input(format!("input keyevent {}", Key::EndCall.code())))
    }

    fn status(&self) -> BoxFuture<'_, PhoneResult<PhoneStatus>> {
        Box::pin(self.phone_status())
    }

    fn notify<'a>(&'a self, text: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        // `cmd notification post` (Android 10+): a notification with a fixed tag, so
        // that each one replaces the last (a countdown updates in place).
        Box::pin(self.input(format!(
            "cmd notification post -S bigtext -t {} youmi {}",
            shell::quote("Youmi"),
            shell::quote(text)
        )))
    }
}

/// Hardware key presses from [`AdbPhone::key_presses`]; dropping it stops the watcher.
#[derive(Debug)]
pub struct KeyPresses {
    /// Presses as the watcher parses them.
    keys: mpsc::Receiver<Key>,
    /// Tells the watcher to stop.
    stop: Arc<Stop>,
}

impl KeyPresses {
    /// The next key pressed (volume down is `Key::Code(25)`). `None` only if the
    /// watcher thread stopped, which it does not do on its own.
    pub async fn next(&mut self) -> Option<Key> {
        self.keys.recv().await
    }
}

impl Drop for KeyPresses {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// How a [`KeyPresses`] stops its watcher thread.
#[derive(Debug, Default)]
struct Stop {
    /// Set when the receiver is dropped.
    stopped: AtomicBool,
    /// The watcher's current connection, poisoned on stop to end its endless read.
    relay: Mutex<Option<Arc<Relay>>>,
    /// Wakes the watcher from its pause between connections.
    pause: Mutex<()>,
    /// Signalled with `pause` on stop.
    wake: Condvar,
}

impl Stop {
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(relay) = self
            .relay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            relay.poison("the key watcher was stopped");
        }
        let _guard = self.pause.lock().unwrap_or_else(PoisonError::into_inner);
        self.wake.notify_all();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    fn set_relay(&self, relay: Option<Arc<Relay>>) {
        *self.relay.lock().unwrap_or_else(PoisonError::into_inner) = relay;
    }

    /// Sleeps for `pause` unless stopped first.
    fn sleep(&self, pause: Duration) {
        let guard = self.pause.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self
            .wake
            .wait_timeout_while(guard, pause, |_| !self.is_stopped());
    }
}

/// The thread behind [`KeyPresses`].
struct KeyWatcher {
    /// Where the phone is; the watcher opens connections of its own.
    route: Arc<Route>,
    /// The phone's serial, for logs.
    serial: String,
    /// How long opening a TCP connection may take.
    connect_timeout: Duration,
    /// The pause before reconnecting after the connection ended.
    retry: Duration,
    /// Where presses go.
    keys: mpsc::Sender<Key>,
    /// Set by the receiver's drop.
    stop: Arc<Stop>,
}

impl KeyWatcher {
    fn run(self) {
        while !self.stop.is_stopped() && !self.keys.is_closed() {
            let opened = link::open(&self.route, &self.serial, self.connect_timeout, |relay| {
                self.stop.set_relay(Some(relay.clone()));
            });
            match opened {
                // A stop between opening and publishing the relay would be missed
                // by the read below, so check once more.
                Ok(mut live) if !self.stop.is_stopped() => {
                    let mut sink = KeySink {
                        keys: &self.keys,
                        line: Vec::new(),
                    };
                    let ended = live
                        .device
                        .shell_command(&"getevent -lq", Some(&mut sink), None);
                    tracing::debug!(serial = %self.serial, ?ended, "getevent ended");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(serial = %self.serial, %error, "cannot watch keys");
                }
            }
            self.stop.set_relay(None);
            self.stop.sleep(self.retry);
        }
    }
}

/// The longest `getevent` line kept.
const MAX_EVENT_LINE: usize = 1024;

/// Parses `getevent -l` output line by line into key presses.
struct KeySink<'a> {
    /// Where presses go.
    keys: &'a mpsc::Sender<Key>,
    /// The line being received (output arrives in arbitrary pieces).
    line: Vec<u8>,
}

impl Write for KeySink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for byte in buf {
            if *byte != b'\n' {
                // A line is short; anything longer is not getevent's, and is dropped.
                if self.line.len() < MAX_EVENT_LINE {
                    self.line.push(*byte);
                }
                continue;
            }
            let line = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            if let Some(code) = shell::key_press(&line) {
                self.keys
                    .blocking_send(shell::key_for_code(code))
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The first bytes of a local file, for [`crate::media::sniff`].
async fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await?;
    let mut head = Vec::with_capacity(crate::media::HEAD_BYTES);
    file.take(crate::media::HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .await?;
    Ok(head)
}
