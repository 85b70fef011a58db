//! The API tests' harness: the real server on port 0 on a fresh database of
//! the one test harness (`youmi_tests::TestDb`), an HTTP client logged in as
//! the first admin that answers raw JSON (these tests look at bodies, headers
//! and error codes), and a raw WebSocket agent.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use youmi_protocol::{AgentMessage, DeviceInfo, ServerMessage};
use youmi_server::config::Config;
use youmi_server::Server;

/// The first admin's password in every test.
pub const ADMIN_PASSWORD: &str = "test-admin-password";
/// How long a test waits for a frame that should come.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// One test's own database: the one harness's (`youmi_tests::TestDb`), on
/// PostgreSQL when `YOUMI_TEST_DATABASE_URL` is set, else on SQLite.
pub use youmi_tests::TestDb;

/// The configuration of a test server on `db`.
pub fn config(db: &TestDb) -> Config {
    let mut config = Config::defaults();
    config.database_url = Some(db.url().to_owned());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = db.dir().to_path_buf();
    config.admin_password = Some(ADMIN_PASSWORD.to_owned());
    config.public_url = None;
    config.failed_attempts_per_minute = 5;
    config
}

/// Quiet unless `TEST_LOG` is set.
pub fn init_logging() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_test_writer()
                .try_init()
                .ok();
        }
    });
}

/// A running server, its database and an admin client.
pub struct TestApp {
    /// The server; `None` once stopped.
    pub server: Option<Server>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its database.
    pub db: Option<TestDb>,
    /// A plain HTTP client.
    pub http: reqwest::Client,
    /// The admin's session token.
    pub token: String,
}

/// A response: status, headers and the body as JSON (`Null` when empty or not JSON).
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: Value,
}

impl Answer {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The error field of an error body.
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }

    /// Asserts the status and the error code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "body: {}",
            self.body
        );
    }

    /// Asserts the status.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }
}

impl TestApp {
    /// Starts a server on a fresh database and logs in as the admin.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`TestApp::spawn`], with the configuration changed by `tweak`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        init_logging();
        let db = TestDb::create().await;
        let mut config = config(&db);
        tweak(&mut config);
        Self::start(db, config).await
    }

    /// Starts a server with `config` on `db`.
    pub async fn start(db: TestDb, config: Config) -> TestApp {
        let server = Server::start(config).await.expect("the server starts");
        let addr = server.local_addr();
        let mut app = TestApp {
            server: Some(server),
            addr,
            db: Some(db),
            http: reqwest::Client::new(),
            token: String::new(),
        };
        let login = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                Some(json!({"job_no": "admin", "password": ADMIN_PASSWORD})),
                None,
            )
            .await;
        app.token = login.expect(200)["token"].as_str().unwrap().to_owned();
        app
    }

    /// Stops the server gracefully and hands back its database.
    pub async fn stop(&mut self) -> TestDb {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("graceful shutdown");
        }
        self.db.take().expect("the database")
    }

    /// Stops the server and removes its database.
    pub async fn finish(mut self) {
        let db = self.stop().await;
        db.remove().await;
    }

    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request with an optional JSON body and bearer token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the request is answered");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("the body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A request as the admin.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call(method, path, body, Some(&self.token)).await
    }

    /// GET as the admin.
    pub async fn get(&self, path: &str) -> Answer {
        self.admin(Method::GET, path, None).await
    }

    /// POST as the admin.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.admin(Method::POST, path, Some(body)).await
    }

    /// Creates an operator account and returns its id.
    pub async fn account(&self, name: &str) -> i64 {
        let answer = self
            .post(
                "/api/v1/operator-accounts",
                json!({"name": name, "wecom_user_id": format!("wx_{name}")}),
            )
            .await;
        answer.expect(201)["id"].as_i64().unwrap()
    }

    /// Creates a bind code for `account`.
    pub async fn bind_code(&self, account: i64) -> String {
        let answer = self
            .post(
                &format!("/api/v1/operator-accounts/{account}/bind-codes"),
                json!({}),
            )
            .await;
        answer.expect(201)["code"].as_str().unwrap().to_owned()
    }

    /// Binds a phone to `account`: returns (device id, token).
    pub async fn bind(&self, account: i64) -> (String, String) {
        let code = self.bind_code(account).await;
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
    pub async fn ws(&self, token: &str) -> Result<RawAgent, tokio_tungstenite::tungstenite::Error> {
        let mut request = format!("ws://{}/agent/v1/ws", self.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(RawAgent { socket })
    }

    /// Binds a phone to `account`, connects and says hello; returns the agent
    /// after the welcome.
    pub async fn connected_agent(&self, account: i64) -> (String, RawAgent) {
        let (device_id, token) = self.bind(account).await;
        let mut agent = self.ws(&token).await.expect("the agent connects");
        agent.hello().await;
        match agent.recv().await {
            ServerMessage::Welcome {
                device_id: welcomed,
                operator_account_id,
                ..
            } => {
                assert_eq!(welcomed, device_id);
                assert_eq!(operator_account_id, account);
            }
            other => panic!("expected welcome, got {other:?}"),
        }
        (device_id, agent)
    }
}

/// A phone description.
pub fn device_info() -> DeviceInfo {
    DeviceInfo {
        serial: "SIM-0001".into(),
        model: "Simulated".into(),
        android_version: "14".into(),
        agent_version: "0.1.0-test".into(),
    }
}

/// A raw agent: JSON frames over a real WebSocket.
pub struct RawAgent {
    /// The socket.
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl RawAgent {
    /// Sends a frame.
    pub async fn send(&mut self, message: &AgentMessage) {
        self.send_text(&serde_json::to_string(message).unwrap())
            .await;
    }

    /// Sends a text frame as it is.
    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::text(text))
            .await
            .expect("the frame is sent");
    }

    /// Says hello with nothing held from before.
    pub async fn hello(&mut self) {
        let info = device_info();
        self.send(&AgentMessage::Hello {
            agent_version: info.agent_version.clone(),
            device: info,
            queue_paused: false,
            running: vec![],
            finished: vec![],
        })
        .await;
    }

    /// The next server frame, skipping pings; panics after [`FRAME_WAIT`].
    pub async fn recv(&mut self) -> ServerMessage {
        loop {
            let frame = tokio::time::timeout(FRAME_WAIT, self.socket.next())
                .await
                .expect("a frame within the wait")
                .expect("the socket is open")
                .expect("a readable frame");
            match frame {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("a server message: {e}: {text}"))
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Waits for the server to close the socket; returns the close frame's code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(FRAME_WAIT, self.socket.next())
                .await
                .expect("the close within the wait")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}
