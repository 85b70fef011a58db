//! Phones that speak ADB for the end-to-end tests: the phone simulator
//! (`youmi-phone-sim`, a fake Android phone with a WeCom-like app), a private
//! adb server ([`AdbServer`]) that `adb connect`s to it, and [`PhoneAgent`], an
//! in-process agent that runs the built-in WeCom flows on the simulator through
//! [`AdbPhone`], bound to the server under test through the real bind API.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use youmi_agent::adb::{AdbConfig, AdbPhone};
use youmi_agent::calls::{Calls, DEFAULT_CALL_WAIT};
use youmi_agent::credentials::Credentials;
use youmi_agent::flow::{FlowExecutor, FlowOptions, FlowSet, WECOM_PACKAGE};
use youmi_agent::watch::{WatchOptions, Watcher};
use youmi_agent::{Agent, AgentHandle, AgentOptions};
pub use youmi_phone_sim::adb_server::{adb_on_path, AdbServer};
use youmi_phone_sim::adb_server::{throwaway_key_in, DEADLINE as ADB_DEADLINE};
use youmi_phone_sim::{SimConfig, SimHandle, Simulator};
use youmi_protocol::api::{SubmitTask, TaskView};
use youmi_protocol::{OperatorAccountId, TaskId, TaskKind};

use crate::app::TestApp;

/// An adb server of the test's own, or `None` where adb is not installed
/// (the phone tests then pass without running; CI installs adb).
pub async fn adb_server() -> Option<AdbServer> {
    if !adb_on_path() {
        return None;
    }
    Some(AdbServer::start().await)
}

/// How a [`PhoneAgent`] reaches its phone.
#[derive(Clone, Copy)]
pub enum Route<'a> {
    /// Through this adb server, which `adb connect`s to the simulator first.
    Server(&'a AdbServer),
    /// Straight to the simulator over TCP, as to a phone in wireless debugging.
    Tcp,
}

/// How the agent of a [`PhoneAgent`] treats phone calls.
#[derive(Debug, Clone, Copy)]
pub struct CallOptions {
    /// How long a task waits for a call to end before `call_in_progress`.
    pub call_wait: Duration,
    /// The phone's watcher (auto hang-up, the call state while a task runs),
    /// with these timings; `None`: no watcher, as before issue 11.
    pub watch: Option<WatchOptions>,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            call_wait: DEFAULT_CALL_WAIT,
            watch: None,
        }
    }
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
    /// What the agent knows of the phone's calls.
    pub calls: Calls,
    /// The phone's watcher, when [`CallOptions::watch`] asked for one.
    _watcher: Option<Watcher>,
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
        PhoneAgent::start_with(app, route, sim, adb, CallOptions::default()).await
    }

    /// As [`PhoneAgent::start`], with the agent running `flows` (a flow
    /// file of the test's own, say, merged over the built-in ones).
    pub async fn start_with_flows(
        app: &TestApp,
        route: Route<'_>,
        sim: SimConfig,
        adb: AdbConfig,
        flows: FlowSet,
    ) -> PhoneAgent {
        PhoneAgent::start_full(app, route, sim, adb, CallOptions::default(), flows).await
    }

    /// As [`PhoneAgent::start`], with `calls` saying how the agent treats
    /// phone calls.
    pub async fn start_with(
        app: &TestApp,
        route: Route<'_>,
        sim: SimConfig,
        adb: AdbConfig,
        calls: CallOptions,
    ) -> PhoneAgent {
        let flows = FlowSet::builtin().expect("the built-in flows load");
        PhoneAgent::start_full(app, route, sim, adb, calls, flows).await
    }

    async fn start_full(
        app: &TestApp,
        route: Route<'_>,
        sim: SimConfig,
        adb: AdbConfig,
        calls: CallOptions,
        flows: FlowSet,
    ) -> PhoneAgent {
        let call_options = calls;
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
                let key = throwaway_key_in(files.path()).expect("write the throwaway key");
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
        let phone = Arc::new(phone);
        let calls = Calls::new();
        let executor = FlowExecutor::new(
            phone.clone(),
            flows,
            FlowOptions {
                app: WECOM_PACKAGE.to_owned(),
                media_dir: Some(media_dir.clone()),
                evidence_dir: Some(evidence_dir.clone()),
                call_wait: call_options.call_wait,
            },
        )
        .with_calls(calls.clone());
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
        let watcher = call_options
            .watch
            .map(|watch| Watcher::spawn(phone, handle.clone(), watch, calls.clone()));
        PhoneAgent {
            account,
            sim,
            serial,
            credentials,
            handle,
            media_dir,
            evidence_dir,
            calls,
            _watcher: watcher,
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
