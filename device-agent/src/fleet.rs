//! Real phones over ADB: the agent of one phone ([`PhoneAgent`], what
//! `youmi-agent run --executor adb` runs), and fleet mode ([`run`], what
//! `youmi-agent fleet` runs): one process that drives every phone an adb server
//! lists, for a rack of phones on a USB hub.
//!
//! # Fleet mode
//! Every [`FleetOptions::scan_interval`] the adb server is asked for its phones.
//! Each phone that is ready and bound gets a session of its own: its own agent
//! (own credentials, journal and queue, in `FLEET_DIR/<serial>`, see
//! [`phone_state_dir`]), its own [`Watcher`], and its own OS thread with its
//! own tokio runtime, so that nothing one phone does, hangs included, can hold
//! another back. Phones are bound one by one with
//! `youmi-agent bind --fleet-dir DIR --serial SERIAL --code CODE` ([`bind_phone`]);
//! a listed phone without credentials is logged once, with that command.
//!
//! A phone that leaves the list, or stops answering the probe
//! ([`AdbPhone::online`]), has its session shut down, so the server shows it
//! offline and assigns it nothing; when it comes back, a new session starts on
//! the same journal. A session whose token was revoked is not started again
//! until the phone is bound again.
//!
//! # What the server sees
//! Each session sends the phone's model, Android version and hardware serial
//! (read through adb) in `hello`, and the phone's battery, charging, screen,
//! foreground app and call state in each heartbeat.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time;
use tracing::{error, info, info_span, warn, Instrument};
use youmi_protocol::DeviceInfo;

use crate::adb::{list_phones, AdbConfig, AdbPhone, ListedPhone, DEFAULT_SERVER};
use crate::calls::{Calls, DEFAULT_CALL_WAIT};
use crate::error::AgentError;
use crate::flow::{FlowExecutor, FlowOptions, FlowSet, LoadError};
use crate::phone::{Phone, PhoneError};
use crate::session::{Agent, AgentHandle, AgentOptions, HaltReason};
use crate::watch::{WatchOptions, Watcher};
use crate::Credentials;

/// How long asking the adb server for its phones may take.
const LIST_DEADLINE: Duration = Duration::from_secs(5);

/// How long a phone's runtime may take to wind down after its session ended
/// (a journal write under way, say).
const RUNTIME_GRACE: Duration = Duration::from_secs(5);

/// The name of the folder, inside a phone's state directory, that keeps the
/// UI dump and screenshot of each failed step.
pub const EVIDENCE_DIR: &str = "evidence";

/// The name of the RSA key file, inside the state directory, that a phone in
/// wireless debugging (`--adb-tcp`) knows the agent by.
pub const ADB_KEY_FILE: &str = "adbkey";

/// What keeps a phone from being used, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The adb server does not answer.
    #[error("cannot reach the adb server at {server}: {reason} (start it with `adb start-server`, or give its address with --adb-server)")]
    AdbServer {
        /// Where it was looked for.
        server: SocketAddrV4,
        /// What failed.
        reason: String,
    },
    /// The adb server does not list the phone asked for.
    #[error("the adb server at {server} does not list phone {serial} (it lists: {listed}); check the cable, or `adb connect` it, then `adb devices`")]
    NotListed {
        /// The adb server.
        server: SocketAddrV4,
        /// The serial asked for.
        serial: String,
        /// What it lists instead, for the message.
        listed: String,
    },
    /// The phone is listed but cannot take commands.
    #[error("phone {serial} is `{state}` on the adb server, not ready: {hint}")]
    NotReady {
        /// The phone.
        serial: String,
        /// Its state, as adb prints it.
        state: String,
        /// What usually fixes it.
        hint: &'static str,
    },
    /// No phone was named and the adb server lists none.
    #[error("the adb server at {server} lists no phone: plug one in with USB debugging on, or `adb connect` it")]
    NoPhone {
        /// The adb server.
        server: SocketAddrV4,
    },
    /// No phone was named and the adb server lists several.
    #[error(
        "the adb server at {server} lists several phones ({listed}): choose one with --serial"
    )]
    SeveralPhones {
        /// The adb server.
        server: SocketAddrV4,
        /// Their serials and states.
        listed: String,
    },
    /// The phone did not answer what the agent needs to know about it.
    #[error("cannot read phone {serial}: {source}")]
    Phone {
        /// The phone.
        serial: String,
        /// What failed.
        #[source]
        source: PhoneError,
    },
    /// A serial that cannot name a state directory (empty).
    #[error("a phone serial cannot be empty")]
    EmptySerial,
    /// Binding, or loading the credentials, failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// What usually makes a phone in `state` ready.
fn readiness_hint(state: &str) -> &'static str {
    match state {
        "unauthorized" => "unlock the phone and accept the \"Allow USB debugging?\" prompt",
        "offline" => "reconnect the cable, or restart adb on the phone (toggle USB debugging)",
        "authorizing" | "connecting" => "wait a moment, the phone is being connected",
        state if state.starts_with("no permissions") => {
            "the adb server may not open the USB device: add a udev rule for the phone, or run the adb server as a user who may"
        }
        _ => "check `adb devices` and the phone's screen",
    }
}

/// `serial (state), ...` for messages, or `nothing`.
fn describe_list(phones: &[ListedPhone]) -> String {
    if phones.is_empty() {
        return "nothing".to_owned();
    }
    phones
        .iter()
        .map(|phone| format!("{} ({})", phone.serial, phone.state))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Asks the adb server at `server` for its phones.
pub async fn phones(server: SocketAddrV4) -> Result<Vec<ListedPhone>, SetupError> {
    list_phones(server, LIST_DEADLINE)
        .await
        .map_err(|error| SetupError::AdbServer {
            server,
            reason: match error {
                PhoneError::Unreachable { reason, .. } => reason,
                other => other.to_string(),
            },
        })
}

/// The phone to drive through the adb server at `server`: `serial` if given
/// (which must be listed and ready), else the one phone listed. Each way it
/// fails has its own [`SetupError`], which says what to do.
pub async fn select_phone(
    server: SocketAddrV4,
    serial: Option<&str>,
) -> Result<String, SetupError> {
    let listed = phones(server).await?;
    let phone = match serial {
        Some(serial) => listed
            .iter()
            .find(|phone| phone.serial == serial)
            .ok_or_else(|| SetupError::NotListed {
                server,
                serial: serial.to_owned(),
                listed: describe_list(&listed),
            })?,
        None => match listed.as_slice() {
            [] => return Err(SetupError::NoPhone { server }),
            [only] => only,
            _ => {
                return Err(SetupError::SeveralPhones {
                    server,
                    listed: describe_list(&listed),
                })
            }
        },
    };
    if !phone.is_ready() {
        return Err(SetupError::NotReady {
            serial: phone.serial.clone(),
            state: phone.state.clone(),
            hint: readiness_hint(&phone.state),
        });
    }
    Ok(phone.serial.clone())
}

/// The phone's model, Android version and hardware serial, as the server
/// shows them.
pub async fn read_device(phone: &AdbPhone) -> Result<DeviceInfo, SetupError> {
    phone
        .device_info()
        .await
        .map_err(|source| SetupError::Phone {
            serial: phone.serial().to_owned(),
            source,
        })
}

/// The built-in flows, with the files of `dir` (if given) merged over them.
pub fn load_flows(dir: Option<&Path>) -> Result<FlowSet, LoadError> {
    let builtin = FlowSet::builtin()?;
    match dir {
        Some(dir) => Ok(builtin.merge(FlowSet::load_dir(dir)?)),
        None => Ok(builtin),
    }
}

/// A serial as a directory name: letters, digits, `.`, `-` and `_` stay, and
/// every other byte is written `%XX`, so different serials never share a
/// directory (`127.0.0.1:5555` becomes `127.0.0.1%3A5555`). A name of dots
/// only is escaped too, so it can never be `.` or `..`.
pub fn phone_dir_name(serial: &str) -> String {
    let dots_only = serial.bytes().all(|byte| byte == b'.');
    let mut name = String::with_capacity(serial.len());
    for byte in serial.bytes() {
        let plain = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_')
            || (byte == b'.' && !dots_only);
        if plain {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name
}

/// The state directory of the phone `serial` (as the adb server lists it) in
/// the fleet directory `fleet_dir`.
pub fn phone_state_dir(fleet_dir: &Path, serial: &str) -> PathBuf {
    fleet_dir.join(phone_dir_name(serial))
}

/// A phone bound into a fleet directory.
#[derive(Debug, Clone)]
pub struct BoundPhone {
    /// What the server gave; saved in [`BoundPhone::state_dir`].
    pub credentials: Credentials,
    /// The phone's state directory.
    pub state_dir: PathBuf,
    /// The phone as the bind request described it (read from the phone).
    pub device: DeviceInfo,
}

/// Binds the phone `serial` of the adb server at `adb_server` with a bind
/// `code` at `server_url`, and saves the credentials in the phone's state
/// directory under `fleet_dir`. The phone's model, Android version and serial
/// are read from it first, so a phone that does not answer is not bound.
pub async fn bind_phone(
    fleet_dir: &Path,
    adb_server: SocketAddrV4,
    serial: &str,
    server_url: &str,
    code: &str,
) -> Result<BoundPhone, SetupError> {
    if serial.trim().is_empty() {
        return Err(SetupError::EmptySerial);
    }
    let serial = select_phone(adb_server, Some(serial)).await?;
    let phone = AdbPhone::through_server(adb_server, &serial, AdbConfig::default());
    let device = read_device(&phone).await?;
    let credentials = crate::bind(server_url, code, device.clone()).await?;
    let state_dir = phone_state_dir(fleet_dir, &serial);
    credentials.save(&state_dir)?;
    Ok(BoundPhone {
        credentials,
        state_dir,
        device,
    })
}

/// How the agent of one real phone runs; shared by `run --executor adb` and
/// every session of a fleet.
#[derive(Debug, Clone)]
pub struct PhoneAgentConfig {
    /// The flow files tasks run with.
    pub flows: FlowSet,
    /// Where message and Moments media are, one file per media id.
    pub media_dir: Option<PathBuf>,
    /// How often the agent sends a heartbeat.
    pub heartbeat_interval: Duration,
    /// The phone-side settings' timings.
    pub watch: WatchOptions,
    /// How long a task waits for a phone call to end before it fails with
    /// `call_in_progress` (see [`crate::calls`]).
    pub call_wait: Duration,
}

impl PhoneAgentConfig {
    /// The protocol's heartbeat (30 s), the product's watch timings, no media.
    pub fn new(flows: FlowSet) -> PhoneAgentConfig {
        PhoneAgentConfig {
            flows,
            media_dir: None,
            heartbeat_interval: Duration::from_secs(30),
            watch: WatchOptions::default(),
            call_wait: DEFAULT_CALL_WAIT,
        }
    }
}

/// The agent of one real phone: the session with the server, running tasks
/// through the flows on the phone, and the watcher of the phone-side settings.
#[derive(Debug)]
pub struct PhoneAgent {
    /// The session.
    handle: AgentHandle,
    /// The volume keys and calls; stopped with the session.
    watcher: Watcher,
}

impl PhoneAgent {
    /// Starts the agent of `phone`, described to the server as `device`, with
    /// its journal and evidence in `state_dir`, on the current tokio runtime.
    pub fn spawn(
        phone: Arc<AdbPhone>,
        device: DeviceInfo,
        credentials: Credentials,
        state_dir: &Path,
        config: &PhoneAgentConfig,
    ) -> Result<PhoneAgent, AgentError> {
        let options = FlowOptions {
            media_dir: config.media_dir.clone(),
            evidence_dir: Some(state_dir.join(EVIDENCE_DIR)),
            call_wait: config.call_wait,
            ..FlowOptions::default()
        };
        let driver: Arc<dyn Phone> = phone.clone();
        let calls = Calls::new();
        let executor = Arc::new(
            FlowExecutor::new(driver, config.flows.clone(), options).with_calls(calls.clone()),
        );
        let mut agent_options = AgentOptions::new(state_dir.to_owned(), device);
        agent_options.heartbeat_interval = config.heartbeat_interval;
        let handle = Agent::spawn(credentials, agent_options, executor)?;
        let watcher = Watcher::spawn(phone, handle.clone(), config.watch, calls);
        Ok(PhoneAgent { handle, watcher })
    }

    /// The session, to watch and steer it.
    pub fn handle(&self) -> &AgentHandle {
        &self.handle
    }

    /// Stops gracefully (a running task finishes and is reported) for at most
    /// `grace`, then at once: a task still running then is reported as
    /// interrupted by the next session on the same state directory.
    pub async fn stop(self, grace: Duration) {
        let PhoneAgent { handle, watcher } = self;
        drop(watcher);
        if time::timeout(grace, handle.clone().shutdown())
            .await
            .is_err()
        {
            warn!(
                ?grace,
                "the session did not stop in time; stopping it at once (a running task is reported as interrupted)"
            );
            handle.kill();
            handle.shutdown().await;
        }
    }
}

/// How a fleet runs.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// One state directory per phone lives here ([`phone_state_dir`]).
    pub fleet_dir: PathBuf,
    /// The adb server whose phones are driven.
    pub adb_server: SocketAddrV4,
    /// How often the adb server is asked for its phones: a phone plugged in
    /// is picked up, and one unplugged is let go, within this time.
    pub scan_interval: Duration,
    /// Deadlines of the commands sent to the phones, and how often each is probed.
    pub adb: AdbConfig,
    /// How every phone's agent runs.
    pub agent: PhoneAgentConfig,
    /// How long a session may take to stop gracefully (a running task
    /// finishing) when its phone goes away or the fleet stops.
    pub stop_grace: Duration,
}

impl FleetOptions {
    /// Options with the defaults: the local adb server, a scan every 5 s, and
    /// 30 s for a session to stop.
    pub fn new(fleet_dir: PathBuf, flows: FlowSet) -> FleetOptions {
        FleetOptions {
            fleet_dir,
            adb_server: DEFAULT_SERVER,
            scan_interval: Duration::from_secs(5),
            adb: AdbConfig::default(),
            agent: PhoneAgentConfig::new(flows),
            stop_grace: Duration::from_secs(30),
        }
    }
}

/// Drives every phone the adb server lists, until `shutdown` resolves; then
/// stops every session gracefully (each within [`FleetOptions::stop_grace`])
/// and returns. It fails only at the start, when the adb server cannot be
/// reached; later, a scan that fails is logged and the sessions go on.
pub async fn run(
    options: FleetOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SetupError> {
    // The first scan is a check: a wrong address should stop the fleet with
    // a clear message, not fill the log with warnings.
    let first = phones(options.adb_server).await?;
    info!(
        fleet_dir = %options.fleet_dir.display(),
        adb_server = %options.adb_server,
        scan_secs = options.scan_interval.as_secs_f64(),
        "fleet started"
    );
    let mut fleet = Fleet::new(options);
    fleet.reconcile(Ok(first));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = time::sleep(fleet.options.scan_interval) => {}
        }
        let listed = phones(fleet.options.adb_server).await;
        fleet.reconcile(listed);
    }
    fleet.stop_all().await;
    Ok(())
}

/// Why a phone's worker ended.
#[derive(Debug)]
enum WorkerEnd {
    /// It was asked to stop.
    Stopped,
    /// The session stopped by itself (a revoked token, a journal failure).
    Halted(HaltReason),
    /// The session could not start.
    Failed(String),
}

/// A phone with a worker thread.
struct Member {
    /// Tells the worker to stop its session and end.
    stop: watch::Sender<bool>,
    /// Says how the worker ended.
    done: oneshot::Receiver<WorkerEnd>,
    /// The token the session runs with, to tell a re-bind from a halted session.
    token: String,
}

/// What was said about a phone once, so that a scan does not say it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Notice {
    /// Listed, but not ready, in this state.
    NotReady(String),
    /// Listed and ready, but not bound.
    Unbound,
    /// Its credentials cannot be read, for this reason.
    BadCredentials(String),
}

/// The fleet's state, owned by the scan loop.
struct Fleet {
    /// How it runs.
    options: FleetOptions,
    /// Phones with a running session (or one waiting for its phone to answer).
    members: HashMap<String, Member>,
    /// Phones whose workers were told to stop and have not ended yet; such a
    /// phone gets no new session until its last one has let go of its journal.
    leaving: HashMap<String, oneshot::Receiver<WorkerEnd>>,
    /// What was said about each listed phone.
    notices: HashMap<String, HashSet<Notice>>,
    /// Phones whose session halted, with the token it had: started again only
    /// once they are bound again (a new token).
    halted: HashMap<String, String>,
    /// The last scan's failure, so that a dead adb server is logged once.
    scan_error: Option<String>,
}

impl Fleet {
    fn new(options: FleetOptions) -> Fleet {
        Fleet {
            options,
            members: HashMap::new(),
            leaving: HashMap::new(),
            notices: HashMap::new(),
            halted: HashMap::new(),
            scan_error: None,
        }
    }

    /// Says `notice` about `serial` unless it was already said; true if new.
    fn first_time(&mut self, serial: &str, notice: Notice) -> bool {
        self.notices
            .entry(serial.to_owned())
            .or_default()
            .insert(notice)
    }

    /// The command that binds `serial` into this fleet.
    fn bind_command(&self, serial: &str) -> String {
        let mut command = format!(
            "youmi-agent bind --fleet-dir {} --serial {}",
            shell_word(&self.options.fleet_dir.display().to_string()),
            shell_word(serial)
        );
        if self.options.adb_server != DEFAULT_SERVER {
            command.push_str(&format!(" --adb-server {}", self.options.adb_server));
        }
        command.push_str(" --server URL --code CODE");
        command
    }

    /// One scan: collects ended workers, then starts and stops sessions to
    /// match the phones listed.
    fn reconcile(&mut self, listed: Result<Vec<ListedPhone>, SetupError>) {
        self.collect_ended();
        let listed = match listed {
            Ok(listed) => {
                if self.scan_error.take().is_some() {
                    info!(adb_server = %self.options.adb_server, "the adb server answers again");
                }
                listed
            }
            Err(error) => {
                let text = error.to_string();
                if self.scan_error.as_deref() != Some(text.as_str()) {
                    warn!(%error, "cannot list the phones; the sessions go on as they are");
                    self.scan_error = Some(text);
                }
                return;
            }
        };
        let ready: HashSet<&str> = listed
            .iter()
            .filter(|phone| phone.is_ready())
            .map(|phone| phone.serial.as_str())
            .collect();

        // Phones that left the list (or are no longer ready) lose their session.
        let gone: Vec<String> = self
            .members
            .keys()
            .filter(|serial| !ready.contains(serial.as_str()))
            .cloned()
            .collect();
        for serial in gone {
            if let Some(member) = self.members.remove(&serial) {
                info_span!("phone", %serial).in_scope(|| {
                    info!("phone removed: the adb server no longer lists it as ready; stopping its session");
                });
                member.stop.send_replace(true);
                self.leaving.insert(serial, member.done);
            }
        }
        // Forget what was said about phones that left, so a phone plugged in
        // again is talked about again.
        self.notices
            .retain(|serial, _| listed.iter().any(|phone| &phone.serial == serial));

        for phone in &listed {
            let serial = phone.serial.as_str();
            if !phone.is_ready() {
                if self.first_time(serial, Notice::NotReady(phone.state.clone())) {
                    info_span!("phone", %serial).in_scope(|| {
                        warn!(state = %phone.state, hint = readiness_hint(&phone.state), "phone listed but not ready");
                    });
                }
                continue;
            }
            if self.members.contains_key(serial) || self.leaving.contains_key(serial) {
                continue;
            }
            self.admit(serial);
        }
    }

    /// Starts a session for the ready phone `serial`, if it is bound.
    fn admit(&mut self, serial: &str) {
        let span = info_span!("phone", %serial);
        let state_dir = phone_state_dir(&self.options.fleet_dir, serial);
        let credentials = match Credentials::load(&state_dir) {
            Ok(credentials) => credentials,
            Err(AgentError::NotBound { .. }) => {
                if self.first_time(serial, Notice::Unbound) {
                    let command = self.bind_command(serial);
                    span.in_scope(|| {
                        warn!(state_dir = %state_dir.display(), "phone is not bound; bind it with: {command}");
                    });
                }
                return;
            }
            Err(error) => {
                if self.first_time(serial, Notice::BadCredentials(error.to_string())) {
                    span.in_scope(|| error!(%error, "cannot use the phone's credentials"));
                }
                return;
            }
        };
        if self.halted.get(serial) == Some(&credentials.token) {
            // Said when it halted; it waits for new credentials.
            return;
        }
        self.halted.remove(serial);
        let token = credentials.token.clone();
        let device_id = credentials.device_id.clone();
        match spawn_worker(serial, state_dir, credentials, &self.options, span.clone()) {
            Ok((stop, done)) => {
                span.in_scope(|| info!(%device_id, "phone added"));
                self.members
                    .insert(serial.to_owned(), Member { stop, done, token });
            }
            Err(error) => {
                span.in_scope(|| error!(%error, "cannot start a thread for the phone; trying again at the next scan"));
            }
        }
    }

    /// Takes in the workers that ended: by themselves (a halted or failed
    /// session), or after being told to stop.
    fn collect_ended(&mut self) {
        self.leaving
            .retain(|_, done| matches!(done.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
        let mut ended = Vec::new();
        for (serial, member) in &mut self.members {
            match member.done.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => {}
                Ok(end) => ended.push((serial.clone(), Some(end))),
                Err(oneshot::error::TryRecvError::Closed) => ended.push((serial.clone(), None)),
            }
        }
        for (serial, end) in ended {
            let Some(member) = self.members.remove(&serial) else {
                continue;
            };
            let span = info_span!("phone", %serial);
            let command = self.bind_command(&serial);
            match end {
                Some(WorkerEnd::Stopped) => {}
                Some(WorkerEnd::Halted(reason)) => {
                    span.in_scope(|| {
                        error!(%reason, "the phone's session stopped by itself; it starts again once the phone is bound again ({command}) or the fleet restarts");
                    });
                    self.halted.insert(serial, member.token);
                }
                Some(WorkerEnd::Failed(reason)) => {
                    span.in_scope(|| {
                        error!(%reason, "the phone's session cannot start; it is tried again once the phone is bound again ({command}) or the fleet restarts");
                    });
                    self.halted.insert(serial, member.token);
                }
                None => {
                    span.in_scope(|| {
                        error!("the phone's worker thread died; starting it again at the next scan")
                    });
                }
            }
        }
    }

    /// Tells every worker to stop and waits for all of them.
    async fn stop_all(mut self) {
        let count = self.members.len();
        info!(sessions = count, "stopping every session");
        for member in self.members.values() {
            member.stop.send_replace(true);
        }
        let waits = self
            .members
            .drain()
            .map(|(_, member)| member.done)
            .chain(self.leaving.drain().map(|(_, done)| done));
        for done in waits {
            // A worker that died has closed its channel; either way it is over.
            let _ = done.await;
        }
        info!("fleet stopped");
    }
}

/// `word` quoted for a POSIX shell when it needs it, for the bind hint.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_./:%@+=,".contains(&byte));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Starts the worker thread of the phone `serial`, with a tokio runtime of its
/// own; returns its stop switch and its end.
fn spawn_worker(
    serial: &str,
    state_dir: PathBuf,
    credentials: Credentials,
    options: &FleetOptions,
    span: tracing::Span,
) -> std::io::Result<(watch::Sender<bool>, oneshot::Receiver<WorkerEnd>)> {
    let (stop_tx, stop) = watch::channel(false);
    let (done_tx, done) = oneshot::channel();
    let session = Session {
        serial: serial.to_owned(),
        state_dir,
        credentials,
        adb_server: options.adb_server,
        adb: options.adb.clone(),
        agent: options.agent.clone(),
        stop_grace: options.stop_grace,
    };
    std::thread::Builder::new()
        .name(format!("phone-{serial}"))
        .spawn(move || {
            let end = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    let end = runtime.block_on(session.serve(stop).instrument(span));
                    runtime.shutdown_timeout(RUNTIME_GRACE);
                    end
                }
                Err(error) => {
                    WorkerEnd::Failed(format!("cannot start the phone's runtime: {error}"))
                }
            };
            let _ = done_tx.send(end);
        })?;
    Ok((stop_tx, done))
}

/// What one phone's worker needs.
struct Session {
    /// The phone, as the adb server lists it.
    serial: String,
    /// Its credentials, journal and evidence.
    state_dir: PathBuf,
    /// Loaded by the scan that admitted the phone.
    credentials: Credentials,
    /// Where the phone is reached.
    adb_server: SocketAddrV4,
    /// Deadlines of the phone's commands.
    adb: AdbConfig,
    /// How the agent runs.
    agent: PhoneAgentConfig,
    /// How long the session may take to stop gracefully.
    stop_grace: Duration,
}

/// Resolves once the fleet asks the worker to stop (or is gone).
async fn stop_asked(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Resolves once the probe says the phone is `online` (never if the probe is gone).
async fn phone_is(online: &mut watch::Receiver<bool>, wanted: bool) {
    if online.wait_for(|online| *online == wanted).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Session {
    /// Runs the phone's session while the phone answers, waits while it does
    /// not, until told to stop or the session halts.
    async fn serve(self, mut stop: watch::Receiver<bool>) -> WorkerEnd {
        let phone = Arc::new(AdbPhone::through_server(
            self.adb_server,
            &self.serial,
            self.adb.clone(),
        ));
        let mut online = phone.online();
        loop {
            tokio::select! {
                () = stop_asked(&mut stop) => return WorkerEnd::Stopped,
                () = phone_is(&mut online, true) => {}
            }
            let device = tokio::select! {
                () = stop_asked(&mut stop) => return WorkerEnd::Stopped,
                device = read_device(&phone) => device,
            };
            let device = match device {
                Ok(device) => device,
                Err(error) => {
                    warn!(%error, "cannot read the phone's model and serial; trying again");
                    tokio::select! {
                        () = stop_asked(&mut stop) => return WorkerEnd::Stopped,
                        () = time::sleep(self.adb.probe_interval) => continue,
                    }
                }
            };
            let agent = match PhoneAgent::spawn(
                Arc::clone(&phone),
                device.clone(),
                self.credentials.clone(),
                &self.state_dir,
                &self.agent,
            ) {
                Ok(agent) => agent,
                Err(error) => return WorkerEnd::Failed(error.to_string()),
            };
            info!(
                device_id = %self.credentials.device_id,
                model = %device.model,
                android_version = %device.android_version,
                hardware_serial = %device.serial,
                "session started"
            );
            let end = tokio::select! {
                () = stop_asked(&mut stop) => Some(WorkerEnd::Stopped),
                () = phone_is(&mut online, false) => None,
                halted = agent.handle().wait_halted() => {
                    Some(halted.map_or(WorkerEnd::Stopped, WorkerEnd::Halted))
                }
            };
            if end.is_none() {
                info!("the phone stopped answering; its session stops until it answers again");
            }
            agent.stop(self.stop_grace).await;
            info!("session stopped");
            if let Some(end) = end {
                return end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_become_distinct_safe_directory_names() {
        assert_eq!(phone_dir_name("R58M123ABC"), "R58M123ABC");
        assert_eq!(phone_dir_name("127.0.0.1:5555"), "127.0.0.1%3A5555");
        assert_eq!(phone_dir_name("emulator-5554"), "emulator-5554");
        assert_eq!(phone_dir_name("a/b\\c d"), "a%2Fb%5Cc%20d");
        assert_eq!(phone_dir_name("50%"), "50%25");
        assert_eq!(phone_dir_name(".."), "%2E%2E");
        assert_eq!(phone_dir_name("."), "%2E");
        assert_eq!(phone_dir_name("a..b"), "a..b");
        assert_eq!(phone_dir_name("序列"), "%E5%BA%8F%E5%88%97");
        // Two serials that differ only where one is escaped stay apart.
        assert_ne!(phone_dir_name("a:b"), phone_dir_name("a%3Ab"));
        assert_ne!(phone_dir_name("a:b"), phone_dir_name("a_b"));
        assert_eq!(
            phone_state_dir(Path::new("/srv/fleet"), "10.0.0.7:5555"),
            PathBuf::from("/srv/fleet/10.0.0.7%3A5555")
        );
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("/srv/fleet"), "/srv/fleet");
        assert_eq!(shell_word("127.0.0.1:5555"), "127.0.0.1:5555");
        assert_eq!(shell_word("my fleet"), "'my fleet'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn the_bind_hint_names_the_fleet_and_a_non_default_adb_server() {
        let flows = FlowSet::default();
        let mut options = FleetOptions::new(PathBuf::from("/srv/my fleet"), flows);
        let fleet = Fleet::new(options.clone());
        assert_eq!(
            fleet.bind_command("R58M1"),
            "youmi-agent bind --fleet-dir '/srv/my fleet' --serial R58M1 --server URL --code CODE"
        );
        options.adb_server = "127.0.0.1:5038".parse().unwrap();
        let fleet = Fleet::new(options);
        assert_eq!(
            fleet.bind_command("127.0.0.1:6001"),
            "youmi-agent bind --fleet-dir '/srv/my fleet' --serial 127.0.0.1:6001 --adb-server 127.0.0.1:5038 --server URL --code CODE"
        );
    }

    #[test]
    fn not_ready_states_come_with_a_hint() {
        assert!(readiness_hint("unauthorized").contains("Allow USB debugging"));
        assert!(readiness_hint("no permissions (user in plugdev group)").contains("udev"));
        assert!(readiness_hint("offline").contains("reconnect"));
        assert!(readiness_hint("sideload").contains("adb devices"));
        let listed = vec![
            ListedPhone {
                serial: "A".to_owned(),
                state: "device".to_owned(),
            },
            ListedPhone {
                serial: "B".to_owned(),
                state: "unauthorized".to_owned(),
            },
        ];
        assert_eq!(describe_list(&listed), "A (device), B (unauthorized)");
        assert_eq!(describe_list(&[]), "nothing");
    }
}
