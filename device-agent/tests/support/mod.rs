//! A tiny fake Youmi server for driving the real agent in tests: a WebSocket
//! endpoint that checks the bearer token (tokio-tungstenite's
//! `accept_hdr_async`) and hands each connection to the test, and a minimal
//! HTTP endpoint for the bind route.

// Each test binary uses a different part of this harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;
use youmi_agent::{
    Agent, AgentHandle, AgentOptions, Credentials, SimulatedPhone, SimulatedPhoneConfig,
};
use youmi_protocol::{
    AgentMessage, AgentSettings, AssignedTask, DeviceInfo, ServerMessage, TaskId, TaskKind,
};

/// The device token the fake server accepts.
pub const TOKEN: &str = "test-device-token";
/// The device id the fake server gave.
pub const DEVICE_ID: &str = "dev-test";
/// How long a test waits for something that should happen (longer than the
/// 10 s countdown, which paused-clock tests wait through).
pub const WAIT: Duration = Duration::from_secs(30);

/// Keeps a paused clock honest over real sockets.
///
/// With a paused clock, tokio moves time to the next timer whenever the
/// runtime has nothing to run, even when what it waits for is a socket that is
/// about to become readable (socket readiness does not count as a wake-up). So
/// every round trip over a socket would leap to the next timer, whatever it is
/// (a test's timeout, a heartbeat, a resend). A timer every virtual
/// millisecond bounds each leap to 1 ms, so durations measured over sockets
/// stay accurate to a few milliseconds. Dropping it stops it.
pub struct FineClock(JoinHandle<()>);

impl FineClock {
    pub fn start() -> FineClock {
        FineClock(tokio::spawn(async {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }))
    }
}

impl Drop for FineClock {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Logs to the test output when `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_test_writer()
            .try_init();
    }
}

pub fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

pub fn device() -> DeviceInfo {
    DeviceInfo {
        serial: "sim-1".to_owned(),
        model: "SimulatedPhone".to_owned(),
        android_version: "14".to_owned(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// Options with quick reconnects, so tests do not wait on backoff.
pub fn options(dir: &Path) -> AgentOptions {
    let mut options = AgentOptions::new(dir.to_owned(), device());
    options.backoff_initial = ms(20);
    options.backoff_max = ms(100);
    options
}

pub fn phone(step: Duration) -> Arc<SimulatedPhone> {
    phone_with(step, 0.0)
}

pub fn phone_with(step: Duration, failure_rate: f64) -> Arc<SimulatedPhone> {
    Arc::new(SimulatedPhone::new(SimulatedPhoneConfig {
        step_latency: step,
        failure_rate,
        seed: 1,
        record_file: None,
    }))
}

pub fn spawn_agent(server: &FakeServer, dir: &Path, phone: &Arc<SimulatedPhone>) -> AgentHandle {
    Agent::spawn(server.credentials(), options(dir), phone.clone()).expect("agent starts")
}

/// A `send_message` task.
pub fn message_task(id: TaskId) -> AssignedTask {
    AssignedTask {
        id,
        kind: TaskKind::SendMessage,
        payload: json!({"to": {"name": "Ann"}, "items": [{"type": "text", "text": format!("hello {id}")}]}),
        attempt: 1,
        not_after_ms: None,
    }
}

pub fn assign(task: AssignedTask) -> ServerMessage {
    ServerMessage::Assign { task }
}

/// Settings without do-not-disturb, so phone events show only task starts.
pub fn plain_settings() -> AgentSettings {
    AgentSettings {
        dnd_while_running: false,
        ..AgentSettings::default()
    }
}

/// The fake server.
pub struct FakeServer {
    pub addr: SocketAddr,
    conns: mpsc::UnboundedReceiver<FakeConn>,
    attempts: Arc<AtomicUsize>,
    revoked: Arc<AtomicBool>,
    accept_loop: JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl FakeServer {
    pub async fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (conns_tx, conns) = mpsc::unbounded_channel();
        let attempts = Arc::new(AtomicUsize::new(0));
        let revoked = Arc::new(AtomicBool::new(false));
        let accept_loop = tokio::spawn({
            let attempts = attempts.clone();
            let revoked = revoked.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let refuse = revoked.load(Ordering::SeqCst);
                    // The callback's type is tungstenite's, large error and all.
                    #[allow(clippy::result_large_err)]
                    let check = move |request: &Request, response: Response| {
                        let expected = format!("Bearer {TOKEN}");
                        let given = request
                            .headers()
                            .get("authorization")
                            .and_then(|value| value.to_str().ok());
                        if refuse || given != Some(expected.as_str()) {
                            let mut refusal = ErrorResponse::new(Some("bad token".to_owned()));
                            *refusal.status_mut() = StatusCode::UNAUTHORIZED;
                            return Err(refusal);
                        }
                        Ok(response)
                    };
                    let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, check).await
                    else {
                        continue;
                    };
                    let (frames_tx, frames) = mpsc::unbounded_channel();
                    let (out, mut out_rx) = mpsc::unbounded_channel::<Option<Message>>();
                    tokio::spawn(async move {
                        let mut socket = socket;
                        loop {
                            tokio::select! {
                                frame = socket.next() => match frame {
                                    Some(Ok(Message::Text(text))) => {
                                        let frame = match serde_json::from_str(text.as_str()) {
                                            Ok(message) => Frame::Message(message),
                                            Err(_) => Frame::Unparsable(text.as_str().to_owned()),
                                        };
                                        let _ = frames_tx.send(frame);
                                    }
                                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                                        let _ = frames_tx.send(Frame::Closed);
                                        return;
                                    }
                                    Some(Ok(_)) => {}
                                },
                                out = out_rx.recv() => match out {
                                    Some(Some(message)) => {
                                        if socket.send(message).await.is_err() {
                                            let _ = frames_tx.send(Frame::Closed);
                                            return;
                                        }
                                    }
                                    // The test dropped the connection: drop the socket.
                                    Some(None) | None => return,
                                },
                            }
                        }
                    });
                    let _ = conns_tx.send(FakeConn { frames, out });
                }
            }
        });
        FakeServer {
            addr,
            conns,
            attempts,
            revoked,
            accept_loop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn credentials(&self) -> Credentials {
        Credentials {
            server_url: self.url(),
            device_id: DEVICE_ID.to_owned(),
            token: TOKEN.to_owned(),
            operator_account_id: 1,
        }
    }

    /// From now on every connection is refused with 401.
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }

    /// Connection attempts so far, refused ones included.
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    pub async fn next_conn(&mut self) -> FakeConn {
        tokio::time::timeout(WAIT, self.conns.recv())
            .await
            .expect("the agent connects")
            .expect("the server runs")
    }
}

/// What the fake server read from the agent.
#[derive(Debug)]
pub enum Frame {
    Message(AgentMessage),
    Unparsable(String),
    Closed,
}

/// One accepted agent connection.
pub struct FakeConn {
    frames: mpsc::UnboundedReceiver<Frame>,
    out: mpsc::UnboundedSender<Option<Message>>,
}

impl FakeConn {
    /// The next frame, heartbeats included.
    pub async fn recv_any(&mut self) -> AgentMessage {
        match tokio::time::timeout(WAIT, self.frames.recv()).await {
            Ok(Some(Frame::Message(message))) => message,
            Ok(Some(Frame::Unparsable(text))) => panic!("the agent sent a bad frame: {text}"),
            Ok(Some(Frame::Closed)) | Ok(None) => panic!("the connection closed"),
            Err(_) => panic!("no frame from the agent within {WAIT:?}"),
        }
    }

    /// The next frame that is not a heartbeat.
    pub async fn recv(&mut self) -> AgentMessage {
        loop {
            match self.recv_any().await {
                AgentMessage::Heartbeat { .. } => continue,
                message => return message,
            }
        }
    }

    /// The next frame that is neither a heartbeat nor progress.
    pub async fn recv_skipping_progress(&mut self) -> AgentMessage {
        loop {
            match self.recv().await {
                AgentMessage::Progress { .. } => continue,
                message => return message,
            }
        }
    }

    /// Asserts that nothing but heartbeats arrives for `duration`.
    pub async fn silent_for(&mut self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        loop {
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Err(_) => return,
                Ok(Some(Frame::Message(AgentMessage::Heartbeat { .. }))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Waits for the agent to close the connection.
    pub async fn closed(&mut self) {
        loop {
            match tokio::time::timeout(WAIT, self.frames.recv()).await {
                Ok(Some(Frame::Closed)) | Ok(None) => return,
                Ok(Some(_)) => continue,
                Err(_) => panic!("the connection stayed open"),
            }
        }
    }

    pub fn send(&self, message: &ServerMessage) {
        let text = serde_json::to_string(message).unwrap();
        let _ = self.out.send(Some(Message::text(text)));
    }

    pub fn send_text(&self, text: String) {
        let _ = self.out.send(Some(Message::text(text)));
    }

    pub fn welcome(&self, settings: AgentSettings) {
        self.send(&ServerMessage::Welcome {
            device_id: DEVICE_ID.to_owned(),
            operator_account_id: 1,
            settings,
            server_time_ms: now_ms(),
        });
    }

    /// Drops the socket without a close frame, as a crashed server would.
    pub fn drop_connection(self) {
        let _ = self.out.send(None);
    }

    /// Reads `hello`, answers `welcome`, and returns what hello said.
    pub async fn handshake(&mut self, settings: AgentSettings) -> Hello {
        let hello = match self.recv().await {
            AgentMessage::Hello {
                agent_version,
                device,
                queue_paused,
                running,
                finished,
            } => Hello {
                agent_version,
                device,
                queue_paused,
                running,
                finished,
            },
            other => panic!("expected hello first, got {other:?}"),
        };
        self.welcome(settings);
        hello
    }
}

/// The fields of a `hello`.
#[derive(Debug)]
pub struct Hello {
    pub agent_version: String,
    pub device: DeviceInfo,
    pub queue_paused: bool,
    pub running: Vec<TaskId>,
    pub finished: Vec<youmi_protocol::FinishedReport>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits until `check` holds, polling.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(ms(10)).await;
    }
}

/// A minimal HTTP server that answers every request with one canned
/// response and keeps the requests' bodies.
pub struct FakeHttp {
    pub addr: SocketAddr,
    pub bodies: Arc<Mutex<Vec<String>>>,
    pub paths: Arc<Mutex<Vec<String>>>,
    server: JoinHandle<()>,
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeHttp {
    pub async fn start(status: u16, body: &str) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let body = body.to_owned();
        let server = tokio::spawn({
            let bodies = bodies.clone();
            let paths = paths.clone();
            async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    // Read the head, then as much body as Content-Length says.
                    let (head_end, length) = loop {
                        let Ok(read) = stream.read(&mut buffer).await else {
                            break (0, 0);
                        };
                        if read == 0 {
                            break (0, 0);
                        }
                        request.extend_from_slice(&buffer[..read]);
                        if let Some(end) = find(&request, b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|line| line.strip_prefix("content-length:"))
                                .and_then(|value| value.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while request.len() < head_end + length {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(read) => request.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                    paths.lock().unwrap().push(path);
                    bodies
                        .lock()
                        .unwrap()
                        .push(text.get(head_end..).unwrap_or("").to_owned());
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                }
            }
        });
        FakeHttp {
            addr,
            bodies,
            paths,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
