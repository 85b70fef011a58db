//! The API tests' shorthands over the one test harness (`youmi_tests`): its
//! server on port 0 on a fresh database, its admin client answering raw JSON
//! (these tests look at bodies, headers and error codes as they are), and its
//! raw WebSocket agent.

use std::ops::Deref;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use youmi_protocol::DeviceInfo;
use youmi_server::config::Config;
use youmi_tests::{Api, ConnectError, RawAgent};

/// How long a test waits for a frame that should come.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// One test's own database: the one harness's (`youmi_tests::TestDb`), on
/// PostgreSQL when `YOUMI_TEST_DATABASE_URL` is set, else on SQLite.
pub use youmi_tests::{Answer, TestDb, ADMIN_PASSWORD};

/// The configuration of a test server on `db`: the harness's, with a login
/// rate limit low enough to reach in a test.
pub fn config(db: &TestDb) -> Config {
    let mut config = youmi_tests::test_config(db);
    low_login_limit(&mut config);
    config
}

/// Five failed logins a minute: a limit a test can reach.
fn low_login_limit(config: &mut Config) {
    config.failed_attempts_per_minute = 5;
}

/// The harness's logging: quiet unless `TEST_LOG` is set.
pub fn init_logging() {
    youmi_tests::app::init_test_logging();
}

/// The harness's server on port 0 (`youmi_tests::TestApp`, which derefs to the
/// admin's [`youmi_tests::Api`]), with shorthands that answer raw JSON: these
/// tests look at bodies, headers and error codes as they are.
pub struct TestApp(youmi_tests::TestApp);

impl Deref for TestApp {
    type Target = youmi_tests::TestApp;

    fn deref(&self) -> &youmi_tests::TestApp {
        &self.0
    }
}

impl TestApp {
    /// Starts a server on a fresh database and logs in as the admin.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`TestApp::spawn`], with the configuration changed by `tweak`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let app = youmi_tests::TestApp::spawn_with(|config| {
            low_login_limit(config);
            tweak(config);
        })
        .await;
        TestApp(app)
    }

    /// Starts a server with `config` on `db`.
    pub async fn start(db: TestDb, config: Config) -> TestApp {
        TestApp(youmi_tests::TestApp::start(db, config).await)
    }

    /// Stops the server gracefully and hands back its database.
    pub async fn stop(self) -> TestDb {
        self.0.stop().await
    }

    /// Stops the server and removes its database.
    pub async fn finish(self) {
        self.0.finish().await
    }

    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0.url())
    }

    /// A request with an optional JSON body and bearer token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Answer {
        let client = Api::with_client(
            self.client.clone(),
            self.0.url(),
            token.unwrap_or_default().to_owned(),
        );
        client.call(method, path, body).await
    }

    /// A request as the admin.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.api().call(method, path, body).await
    }

    /// GET as the admin.
    pub async fn get(&self, path: &str) -> Answer {
        self.admin(Method::GET, path, None).await
    }

    /// POST as the admin.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.admin(Method::POST, path, Some(body)).await
    }

    /// Creates an operator account named `name` and returns its id.
    pub async fn account(&self, name: &str) -> i64 {
        let answer = self
            .post(
                "/api/v1/operator-accounts",
                json!({"name": name, "wecom_user_id": format!("wx_{name}")}),
            )
            .await;
        answer.expect(201)["id"].as_i64().unwrap()
    }

    /// Binds a phone to `account`: returns (device id, token).
    pub async fn bind(&self, account: i64) -> (String, String) {
        let code = self.bind_code(account).await.code;
        let answer = self
            .call(
                Method::POST,
                "/agent/v1/bind",
                Some(json!({"code": code, "device": device_info()})),
                None,
            )
            .await;
        let body = answer.expect(200);
        (
            body["device_id"].as_str().unwrap().to_owned(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Opens the agent WebSocket with `token`.
    pub async fn ws(&self, token: &str) -> Result<RawAgent, ConnectError> {
        RawAgent::connect(&self.ws_url(), Some(token)).await
    }

    /// Binds a phone to `account`, connects and says hello; returns the agent
    /// after the welcome.
    pub async fn connected_agent(&self, account: i64) -> (String, RawAgent) {
        let (device_id, token) = self.bind(account).await;
        let (agent, welcome) = RawAgent::connect_hello(&self.ws_url(), &token).await;
        assert_eq!(welcome.device_id, device_id);
        assert_eq!(welcome.operator_account_id, account);
        (device_id, agent)
    }
}

/// A phone description.
pub fn device_info() -> DeviceInfo {
    youmi_tests::raw::raw_device("SIM-0001")
}
