//! Phones that speak ADB for the end-to-end tests: the phone simulator
//! (`youmi-phone-sim`, a fake Android phone with a WeCom-like app), a private
//! adb server ([`AdbServer`]) that `adb connect`s to it, and [`PhoneAgent`], an
//! in-process agent that runs the built-in WeCom flows on the simulator through
//! [`AdbPhone`], bound to the server under test through the real bind API.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use youmi_agent::adb::{list_phones, AdbConfig, AdbPhone};
use youmi_agent::credentials::Credentials;
use youmi_agent::flow::{FlowExecutor, FlowOptions, FlowSet, WECOM_PACKAGE};
use youmi_agent::{Agent, AgentHandle, AgentOptions};
use youmi_phone_sim::{SimConfig, SimHandle, Simulator};
use youmi_protocol::api::{SubmitTask, TaskView};
use youmi_protocol::{OperatorAccountId, TaskId, TaskKind};

use crate::app::TestApp;
use crate::process::free_port;

/// The longest any one adb command, bind or connect may take before the test
/// calls it a hang.
const ADB_DEADLINE: Duration = Duration::from_secs(20);
/// How long one `adb connect` may take to show the phone as ready.
const READY_WAIT: Duration = Duration::from_secs(10);
/// `adb connect`s tried before a test gives up on a phone.
const CONNECT_TRIES: u32 = 3;

/// Whether the `adb` program can be run. When it cannot, this prints the line
/// that tells a reader of the test output that the real-adb tests were skipped.
pub fn adb_on_path() -> bool {
    let found = std::process::Command::new("adb")
        .arg("version")
        .output()
        .is_ok();
    if !found {
        println!("SKIPPED: adb not on PATH");
    }
    found
}

/// An adb server of the test's own: a free port and its own HOME, so that it
/// neither meets the user's server and keys nor outlives the test (it is
/// killed when dropped).
pub struct AdbServer {
    /// The port it listens on.
    port: u16,
    /// Its HOME: its RSA key and nothing of the user's.
    home: TempDir,
}

impl AdbServer {
    /// Starts the server; panics if it does not start within the deadline.
    pub async fn start() -> AdbServer {
        let server = AdbServer {
            port: free_port(),
            home: tempfile::tempdir().expect("a HOME for adb"),
        };
        let out = server.adb(&["start-server"]).await;
        assert!(
            out.status.success(),
            "adb start-server: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server
    }

    /// Where agents reach it.
    pub fn addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new([127, 0, 0, 1].into(), self.port)
    }

    /// Runs `adb -P PORT ARGS` with this server's HOME; panics if it does not
    /// finish within the deadline.
    pub async fn adb(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new("adb");
        command
            .arg("-P")
            .arg(self.port.to_string())
            .args(args)
            .env("HOME", self.home.path())
            .env("ANDROID_USER_HOME", self.home.path().join(".android"))
            .env_remove("ANDROID_SERIAL")
            .env_remove("ADB_SERVER_SOCKET")
            .kill_on_drop(true);
        tokio::time::timeout(ADB_DEADLINE, command.output())
            .await
            .unwrap_or_else(|_| panic!("adb {args:?} did not finish within {ADB_DEADLINE:?}"))
            .expect("adb runs")
    }

    /// `adb connect SERIAL`, then waits until the server lists the phone as
    /// ready for commands. On a loaded machine adb sometimes leaves a phone
    /// `offline` after the handshake; like a person would, it then
    /// disconnects and connects again, up to [`CONNECT_TRIES`] times.
    pub async fn connect(&self, serial: &str) {
        for attempt in 1..=CONNECT_TRIES {
            let out = self.adb(&["connect", serial]).await;
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                said.contains("connected to"),
                "adb connect {serial}: {said}"
            );
            let ready = tokio::time::timeout(READY_WAIT, async {
                loop {
                    let phones = list_phones(self.addr(), Duration::from_secs(5))
                        .await
                        .expect("the adb server answers");
                    if phones.iter().any(|p| p.serial == serial && p.is_ready()) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
            if ready.is_ok() {
                return;
            }
            eprintln!("{serial} not ready in adb after connect attempt {attempt}; reconnecting");
            let _ = self.adb(&["disconnect", serial]).await;
        }
        panic!("{serial} did not come online in adb after {CONNECT_TRIES} connects");
    }

    /// What a person does when adb lost a phone: `adb disconnect`, then
    /// `adb connect` again.
    pub async fn reconnect(&self, serial: &str) {
        // A server that already dropped the phone says so and fails; that is fine.
        let _ = self.adb(&["disconnect", serial]).await;
        self.connect(serial).await;
    }

    /// `adb -s SERIAL shell COMMAND`, as a person at the computer would type it;
    /// panics unless it succeeds. Returns what it printed.
    pub async fn shell(&self, serial: &str, command: &str) -> String {
        let out = self.adb(&["-s", serial, "shell", command]).await;
        assert!(
            out.status.success(),
            "adb shell {command}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for AdbServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("adb")
            .arg("-P")
            .arg(self.port.to_string())
            .arg("kill-server")
            .env("HOME", self.home.path())
            .env("ANDROID_USER_HOME", self.home.path().join(".android"))
            .output();
    }
}

/// How a [`PhoneAgent`] reaches its phone.
#[derive(Clone, Copy)]
pub enum Route<'a> {
    /// Through this adb server, which `adb connect`s to the simulator first.
    Server(&'a AdbServer),
    /// Straight to the simulator over TCP, as to a phone in wireless debugging.
    Tcp,
}

/// An operator account with its phone: a simulator, and an in-process agent
/// running the built-in flows on it through [`AdbPhone`], bound to the server
/// under test.
pub struct PhoneAgent {
    /// The operator account the phone is bound to.
    pub account: OperatorAccountId,
    /// The simulated phone: what it sent, its screen, its faults.
    pub sim: SimHandle,
    /// The phone's serial as adb and the agent know it (`HOST:PORT`).
    pub serial: String,
    /// What the bind returned.
    pub credentials: Credentials,
    /// The running agent.
    pub handle: AgentHandle,
    /// Where the agent takes media files from (the file name is the media id).
    pub media_dir: PathBuf,
    /// Where the agent saves a failed step's UI dump and screenshot.
    pub evidence_dir: PathBuf,
    /// Holds the media and evidence directories and the TCP key until the test ends.
    _files: TempDir,
}

impl PhoneAgent {
    /// A new operator account on `app`, a simulator started with `sim`, and an
    /// agent reaching it by `route` with the deadlines of `adb`, bound through
    /// `POST /agent/v1/bind` with the phone's own description, and connected.
    pub async fn start(
        app: &TestApp,
        route: Route<'_>,
        sim: SimConfig,
        adb: AdbConfig,
    ) -> PhoneAgent {
        let account = app.create_account().await.id;
        let sim = Simulator::start(sim).await.expect("the simulator starts");
        let serial = sim.addr().to_string();
        let files = tempfile::tempdir().expect("a directory for media and evidence");
        let phone = match route {
            Route::Server(server) => {
                server.connect(&serial).await;
                AdbPhone::through_server(server.addr(), &serial, adb)
            }
            Route::Tcp => {
                let key = throwaway_key(files.path());
                AdbPhone::over_tcp(sim.addr(), &key, adb)
                    .await
                    .expect("the key is accepted")
            }
        };
        let device = tokio::time::timeout(ADB_DEADLINE, phone.device_info())
            .await
            .expect("the phone describes itself in time")
            .expect("the phone describes itself");
        let code = app.bind_code(account).await;
        let credentials = youmi_agent::bind(&app.agent_url(), &code.code, device.clone())
            .await
            .expect("the agent binds");
        assert_eq!(credentials.operator_account_id, account);

        let media_dir = files.path().join("media");
        let evidence_dir = files.path().join("evidence");
        std::fs::create_dir_all(&media_dir).expect("the media directory");
        let executor = FlowExecutor::new(
            Arc::new(phone),
            FlowSet::builtin().expect("the built-in flows load"),
            FlowOptions {
                app: WECOM_PACKAGE.to_owned(),
                media_dir: Some(media_dir.clone()),
                evidence_dir: Some(evidence_dir.clone()),
            },
        );
        let mut options = AgentOptions::new(app.state_dir(), device);
        options.heartbeat_interval = Duration::from_secs(2);
        options.backoff_initial = Duration::from_millis(50);
        options.backoff_max = Duration::from_millis(300);
        let handle = Agent::spawn(credentials.clone(), options, Arc::new(executor))
            .expect("spawn the agent");
        assert!(
            handle.wait_connected(ADB_DEADLINE).await,
            "the agent did not connect"
        );
        PhoneAgent {
            account,
            sim,
            serial,
            credentials,
            handle,
            media_dir,
            evidence_dir,
            _files: files,
        }
    }

    /// The device id the server gave the phone.
    pub fn device_id(&self) -> &str {
        &self.credentials.device_id
    }

    /// Puts a media file where the agent finds it under `media_id`.
    pub fn add_media(&self, media_id: &str, bytes: &[u8]) {
        std::fs::write(self.media_dir.join(media_id), bytes).expect("write a media file");
    }

    /// Submits a task of `kind` with `payload` for this account.
    pub async fn submit(&self, app: &TestApp, kind: TaskKind, payload: Value) -> TaskId {
        app.submit(&SubmitTask {
            operator_account_id: self.account,
            kind,
            payload,
            priority: None,
            not_before: None,
            not_after: None,
        })
        .await
        .id
    }

    /// Submits a task and waits until it ends (retries included), at most
    /// `deadline`: a task still unfinished then is a hang, and fails the test.
    pub async fn run(
        &self,
        app: &TestApp,
        kind: TaskKind,
        payload: Value,
        deadline: Duration,
    ) -> TaskView {
        let id = self.submit(app, kind, payload).await;
        app.wait_terminal(id, deadline).await
    }
}

/// A copy of the simulator's throwaway RSA key in `dir`: generating a 2048-bit
/// key in a debug build takes long, and the simulator does not check keys.
fn throwaway_key(dir: &Path) -> PathBuf {
    let key = dir.join("adbkey");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../phone-sim/tests/fixtures/throwaway_adbkey.pem"
        ),
        &key,
    )
    .expect("copy the throwaway key");
    key
}
