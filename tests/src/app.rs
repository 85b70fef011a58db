//! [`TestApp`]: the real server started in-process on port 0 with a fresh
//! database, a logged-in admin client ([`Api`], reached through `Deref`), and
//! helpers that bind raw and in-process agents to it.

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use youmi_agent::credentials::Credentials;
use youmi_agent::simulator::{SimulatedPhone, SimulatedPhoneConfig};
use youmi_agent::{Agent, AgentHandle, AgentOptions};
use youmi_protocol::{BindResponse, DeviceInfo, OperatorAccountId};
use youmi_server::config::Config;
use youmi_server::Server;

use crate::api::{unique, Api, ADMIN_PASSWORD};
use crate::db::TestDb;
use crate::proxy::Proxy;
use crate::raw::{RawAgent, Welcome};

/// Sets up tracing once per process when `TEST_LOG` is set; tests are quiet
/// otherwise.
pub fn init_test_logging() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init()
                .ok();
        }
    });
}

/// How an in-process agent with a simulated phone behaves.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// How long each simulated step takes.
    pub step_latency: Duration,
    /// Share of steps that fail.
    pub failure_rate: f64,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Whether binding waits for the first `welcome`.
    pub wait_connected: bool,
}

impl Default for AgentSpec {
    fn default() -> Self {
        AgentSpec {
            step_latency: Duration::from_millis(5),
            failure_rate: 0.0,
            heartbeat: Duration::from_secs(1),
            wait_connected: true,
        }
    }
}

/// An in-process agent bound to a test server.
pub struct TestAgent {
    /// What the bind returned.
    pub credentials: Credentials,
    /// The running agent.
    pub handle: AgentHandle,
    /// The simulated phone it drives: what it "sent".
    pub phone: Arc<SimulatedPhone>,
    /// Its journal lives here.
    pub state_dir: PathBuf,
    /// How it was set up.
    spec: AgentSpec,
}

impl TestAgent {
    /// Binds an agent to `account` at `server_url` with a code, in `state_dir`,
    /// and starts it (waiting for `welcome` when the spec says so).
    pub async fn bind(
        api: &Api,
        server_url: &str,
        account: OperatorAccountId,
        state_dir: PathBuf,
        spec: AgentSpec,
    ) -> TestAgent {
        let code = api.bind_code(account).await;
        let credentials = youmi_agent::bind(
            server_url,
            &code.code,
            sim_device(&format!("sim-{}", unique())),
        )
        .await
        .expect("agent bind");
        assert_eq!(credentials.operator_account_id, account);
        let agent = TestAgent::start(credentials, state_dir, spec);
        if agent.spec.wait_connected {
            assert!(
                agent.handle.wait_connected(Duration::from_secs(10)).await,
                "the agent did not connect"
            );
        }
        agent
    }

    /// Starts an agent with these credentials on `state_dir`.
    pub fn start(credentials: Credentials, state_dir: PathBuf, spec: AgentSpec) -> TestAgent {
        let (handle, phone) = spawn_agent(&credentials, &state_dir, &spec);
        TestAgent {
            credentials,
            handle,
            phone,
            state_dir,
            spec,
        }
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.credentials.device_id
    }
}

fn spawn_agent(
    credentials: &Credentials,
    state_dir: &Path,
    spec: &AgentSpec,
) -> (AgentHandle, Arc<SimulatedPhone>) {
    let phone = Arc::new(SimulatedPhone::new(SimulatedPhoneConfig {
        step_latency: spec.step_latency,
        failure_rate: spec.failure_rate,
        seed: 7,
        record_file: None,
    }));
    let mut options =
        AgentOptions::new(state_dir.to_path_buf(), sim_device(&credentials.device_id));
    options.heartbeat_interval = spec.heartbeat;
    // Short backoff: tests cut connections and restart servers on purpose.
    options.backoff_initial = Duration::from_millis(50);
    options.backoff_max = Duration::from_millis(300);
    let handle = Agent::spawn(credentials.clone(), options, phone.clone())
        .expect("spawn the in-process agent");
    (handle, phone)
}

fn sim_device(serial: &str) -> DeviceInfo {
    DeviceInfo {
        serial: serial.to_owned(),
        model: "E2E Simulated Phone".to_owned(),
        android_version: "14".to_owned(),
        agent_version: "e2e".to_owned(),
    }
}

/// The configuration of a test server on `db`: port 0, the admin's password
/// [`ADMIN_PASSWORD`], its data under the database's directory, short retries.
pub fn test_config(db: &TestDb) -> Config {
    let mut config = Config::defaults();
    config.database_url = Some(db.url().to_owned());
    config.data_dir = db.dir().join("data");
    config.listen = "127.0.0.1:0".parse().expect("listen address");
    config.admin_password = Some(ADMIN_PASSWORD.to_owned());
    config.public_url = None;
    config.retry_delay_ms = 200;
    config
}

/// The server under test, with a fresh database and a logged-in admin.
pub struct TestApp {
    /// The admin's API client; its base URL follows restarts.
    api: Api,
    /// The running server; `None` only inside [`TestApp::restart`].
    server: Option<Server>,
    /// The configuration, kept to start the same server again.
    pub config: Config,
    /// Where the server listens now.
    addr: SocketAddr,
    /// Agents connect through this, so tests can cut their connections and
    /// restart the server on another port.
    proxy: Proxy,
    /// Agent state directories, kept until the test ends.
    state_dirs: Mutex<Vec<TempDir>>,
    /// Dropped last: the database outlives the server.
    db: TestDb,
}

impl Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestApp {
    /// A server with the test defaults.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// A server whose configuration `adjust` changes first (shorter timers).
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        init_test_logging();
        let db = TestDb::create().await;
        let mut config = test_config(&db);
        adjust(&mut config);
        Self::start(db, config).await
    }

    /// A server with `config` on `db` (one that an earlier server left, say).
    pub async fn start(db: TestDb, config: Config) -> TestApp {
        init_test_logging();
        let server = Server::start(config.clone())
            .await
            .expect("start the server under test");
        let addr = server.local_addr();
        let proxy = Proxy::start(addr).await;
        let api = Api::login_admin(format!("http://{addr}")).await;
        TestApp {
            api,
            server: Some(server),
            config,
            addr,
            proxy,
            state_dirs: Mutex::new(Vec::new()),
            db,
        }
    }

    /// The admin's API client.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// The test database.
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    /// `http://host:port` of the server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL agents use: through the proxy.
    pub fn agent_url(&self) -> String {
        format!("http://{}", self.proxy.addr())
    }

    /// `http://host:port/metrics` of the server's metrics listener, when
    /// `config.metrics_listen` turned it on.
    pub fn metrics_url(&self) -> Option<String> {
        let addr = self.server.as_ref()?.metrics_addr()?;
        Some(format!("http://{addr}/metrics"))
    }

    /// The agent WebSocket URL, straight to the server.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/agent/v1/ws", self.addr)
    }

    /// The proxy in front of the server, for cutting agent connections.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Stops the server gracefully and starts it again on the same database
    /// (on a new port; agents follow through the proxy). The admin's session
    /// is kept: sessions live in the database.
    pub async fn restart(&mut self) {
        let server = self.server.take().expect("server running");
        server.shutdown().await.expect("graceful shutdown");
        let server = Server::start(self.config.clone())
            .await
            .expect("start the server again on the same database");
        self.addr = server.local_addr();
        self.api.base_url = format!("http://{}", self.addr);
        self.proxy.set_target(self.addr);
        self.server = Some(server);
    }

    /// Shuts the server down gracefully.
    pub async fn shutdown(self) {
        self.stop().await;
    }

    /// Shuts the server down gracefully and hands back its database, to
    /// start another server on it with [`TestApp::start`].
    pub async fn stop(mut self) -> TestDb {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("graceful shutdown");
        }
        self.db
    }

    /// Shuts the server down and removes its database.
    pub async fn finish(self) {
        self.stop().await.remove().await;
    }

    /// A new directory for an agent's state, removed when the test ends.
    pub fn state_dir(&self) -> PathBuf {
        let dir = tempfile::Builder::new()
            .prefix("agent-")
            .tempdir_in(self.db.dir())
            .expect("agent state dir");
        let path = dir.path().to_path_buf();
        self.state_dirs.lock().expect("state dirs lock").push(dir);
        path
    }

    /// Binds a raw agent to `account`, connects it straight to the server and
    /// says hello.
    pub async fn raw_agent(&self, account: OperatorAccountId) -> (BindResponse, RawAgent, Welcome) {
        let bound = self.bind_raw(account).await;
        let (agent, welcome) = RawAgent::connect_hello(&self.ws_url(), &bound.token).await;
        assert_eq!(
            welcome.device_id, bound.device_id,
            "welcome names the bound device"
        );
        assert_eq!(welcome.operator_account_id, account);
        (bound, agent, welcome)
    }

    /// Binds an in-process agent with a simulated phone to `account` (through
    /// the agent library's `bind`, via the proxy) and waits until it is
    /// connected.
    pub async fn bind_agent(
        &self,
        account: OperatorAccountId,
    ) -> (Credentials, AgentHandle, Arc<SimulatedPhone>) {
        let agent = self.bind_agent_with(account, AgentSpec::default()).await;
        (agent.credentials, agent.handle, agent.phone)
    }

    /// Like [`TestApp::bind_agent`] with a chosen phone and timing.
    pub async fn bind_agent_with(&self, account: OperatorAccountId, spec: AgentSpec) -> TestAgent {
        TestAgent::bind(
            &self.api,
            &self.agent_url(),
            account,
            self.state_dir(),
            spec,
        )
        .await
    }
}
