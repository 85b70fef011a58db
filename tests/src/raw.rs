//! A hand-driven agent: a bare WebSocket client that speaks protocol v1 frames
//! exactly as the test tells it to, so tests can observe and provoke what a
//! well-behaved agent never would (unaccepted assigns, lost tasks, bad frames).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;
use youmi_protocol::{
    AgentMessage, AgentSettings, AssignedTask, DeviceInfo, FinishedReport, Outcome, ServerMessage,
    TaskId,
};

/// How a WebSocket connection attempt failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The server answered the upgrade request with this HTTP status and body.
    Http {
        /// The status, e.g. 401.
        status: u16,
        /// The body, e.g. `{"error":{"code":"unauthorized",...}}`.
        body: String,
    },
    /// The connection failed below HTTP.
    Other(String),
}

/// What came in on the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A frame that parsed as a server message.
    Message(ServerMessage),
    /// The connection ended; the close frame's reason if there was one.
    Closed(Option<String>),
    /// Nothing arrived in time.
    Timeout,
}

/// The `welcome` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    /// The device id the server knows this token by.
    pub device_id: String,
    /// The account the device serves.
    pub operator_account_id: i64,
    /// The whole settings object.
    pub settings: AgentSettings,
    /// The server's clock.
    pub server_time_ms: i64,
}

/// A raw protocol client.
pub struct RawAgent {
    /// The socket.
    ws: WebSocketStream<TcpStream>,
    /// Frames that helpers such as [`RawAgent::recv_assign`] skipped over, in
    /// order, so a test can still look at them.
    pub skipped: Vec<ServerMessage>,
    /// The code of the server's close frame, once one came.
    pub close_code: Option<u16>,
}

/// The device description raw agents send.
pub fn raw_device(serial: &str) -> DeviceInfo {
    DeviceInfo {
        serial: serial.to_owned(),
        model: "E2E Raw Phone".to_owned(),
        android_version: "14".to_owned(),
        agent_version: "raw-0".to_owned(),
    }
}

impl RawAgent {
    /// Opens `ws_url` with `Authorization: Bearer <token>` (no header for `None`).
    pub async fn connect(ws_url: &str, token: Option<&str>) -> Result<RawAgent, ConnectError> {
        let mut request = ws_url
            .into_client_request()
            .map_err(|e| ConnectError::Other(format!("bad websocket url {ws_url}: {e}")))?;
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| ConnectError::Other(format!("bad token header: {e}")))?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| ConnectError::Other(format!("no host in {ws_url}")))?;
        let stream = TcpStream::connect(&authority)
            .await
            .map_err(|e| ConnectError::Other(format!("connect {authority}: {e}")))?;
        stream.set_nodelay(true).ok();
        match tokio_tungstenite::client_async(request, stream).await {
            Ok((ws, _)) => Ok(RawAgent {
                ws,
                skipped: Vec::new(),
                close_code: None,
            }),
            Err(tungstenite::Error::Http(response)) => Err(ConnectError::Http {
                status: response.status().as_u16(),
                body: response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            }),
            Err(e) => Err(ConnectError::Other(e.to_string())),
        }
    }

    /// Connects and says hello with nothing running or finished; panics unless
    /// the server welcomes it.
    pub async fn connect_hello(ws_url: &str, token: &str) -> (RawAgent, Welcome) {
        Self::connect_with(ws_url, token, Vec::new(), Vec::new()).await
    }

    /// Connects and says hello reporting `running` and `finished`.
    pub async fn connect_with(
        ws_url: &str,
        token: &str,
        running: Vec<TaskId>,
        finished: Vec<FinishedReport>,
    ) -> (RawAgent, Welcome) {
        let mut agent = match Self::connect(ws_url, Some(token)).await {
            Ok(agent) => agent,
            Err(e) => panic!("raw agent could not connect to {ws_url}: {e:?}"),
        };
        let welcome = agent.hello(running, finished).await;
        (agent, welcome)
    }

    /// Sends `hello` and waits for `welcome`.
    pub async fn hello(&mut self, running: Vec<TaskId>, finished: Vec<FinishedReport>) -> Welcome {
        self.send(&AgentMessage::Hello {
            agent_version: "raw-0".to_owned(),
            device: raw_device("raw"),
            queue_paused: false,
            running,
            finished,
        })
        .await;
        match self.recv(Duration::from_secs(5)).await {
            ServerMessage::Welcome {
                device_id,
                operator_account_id,
                settings,
                server_time_ms,
            } => Welcome {
                device_id,
                operator_account_id,
                settings,
                server_time_ms,
            },
            other => panic!("expected welcome after hello, got {other:?}"),
        }
    }

    /// Sends one protocol frame.
    pub async fn send(&mut self, message: &AgentMessage) {
        let text = serde_json::to_string(message).expect("serialize agent message");
        self.send_text(text).await;
    }

    /// Sends any text frame, well-formed or not.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("raw agent send");
    }

    /// Sends text frames, well-formed or not, in one write: as an agent does
    /// that answers an `assign` with `accepted` and `finished` at once.
    pub async fn send_texts_in_one_write(&mut self, texts: &[String]) {
        for text in texts {
            self.ws
                .feed(Message::text(text.clone()))
                .await
                .expect("raw agent send");
        }
        self.ws.flush().await.expect("raw agent send");
    }

    /// Sends a text frame and reports whether the socket took it (a closed
    /// connection refuses it).
    pub async fn try_send_text(&mut self, text: impl Into<String>) -> bool {
        self.ws.send(Message::text(text.into())).await.is_ok()
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::binary(bytes))
            .await
            .expect("raw agent send binary");
    }

    /// The next server frame, the end of the connection, or a timeout. A text
    /// frame that is not a valid server message fails the test: the server must
    /// only send protocol frames.
    pub async fn next(&mut self, timeout: Duration) -> Incoming {
        let deadline = Instant::now() + timeout;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Incoming::Timeout,
                Ok(None) => return Incoming::Closed(None),
                Ok(Some(Err(_))) => return Incoming::Closed(None),
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                Message::Text(text) => {
                    let message: ServerMessage = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| {
                            panic!("server sent a frame that is not protocol v1 ({e}): {text}")
                        });
                    return Incoming::Message(message);
                }
                Message::Close(frame) => {
                    self.close_code = frame.as_ref().map(|f| u16::from(f.code));
                    return Incoming::Closed(frame.map(|f| f.reason.as_str().to_owned()));
                }
                Message::Binary(bytes) => {
                    panic!("server sent a binary frame of {} bytes", bytes.len())
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
        }
    }

    /// The next server message; panics on timeout or a closed connection.
    pub async fn recv(&mut self, timeout: Duration) -> ServerMessage {
        match self.next(timeout).await {
            Incoming::Message(message) => message,
            other => panic!("expected a server frame within {timeout:?}, got {other:?}"),
        }
    }

    /// The first message that `pick` accepts, skipping (and keeping in
    /// [`RawAgent::skipped`]) the others; panics on timeout or close.
    pub async fn recv_where<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Incoming::Message(message) => match pick(&message) {
                    Some(value) => return value,
                    None => self.skipped.push(message),
                },
                other => panic!(
                    "the awaited frame did not come within {timeout:?}: {other:?}; skipped {:?}",
                    self.skipped
                ),
            }
        }
    }

    /// The next `assign`, skipping other frames.
    pub async fn recv_assign(&mut self, timeout: Duration) -> AssignedTask {
        self.recv_where(timeout, |m| match m {
            ServerMessage::Assign { task } => Some(task.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for `ack {task_id}`, skipping other frames.
    pub async fn recv_ack(&mut self, task_id: TaskId, timeout: Duration) {
        self.recv_where(timeout, |m| match m {
            ServerMessage::Ack { task_id: id } if *id == task_id => Some(()),
            _ => None,
        })
        .await
    }

    /// The next `error` frame's code, skipping other frames.
    pub async fn recv_error(&mut self, timeout: Duration) -> (String, String) {
        self.recv_where(timeout, |m| match m {
            ServerMessage::Error { code, message } => Some((code.clone(), message.clone())),
            _ => None,
        })
        .await
    }

    /// Fails the test if an `assign` arrives within `window`; other frames are
    /// kept in [`RawAgent::skipped`]. The connection must stay open.
    pub async fn expect_no_assign(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Incoming::Timeout => return,
                Incoming::Message(ServerMessage::Assign { task }) => {
                    panic!("no assign was expected within {window:?}, got {task:?}")
                }
                Incoming::Message(other) => self.skipped.push(other),
                Incoming::Closed(reason) => {
                    panic!("the connection closed while waiting ({reason:?})")
                }
            }
        }
    }

    /// Waits for the server to end the connection and returns the `error` codes
    /// it sent before closing, in order. Panics if it stays open.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut errors = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Incoming::Closed(_) => return errors,
                Incoming::Timeout => {
                    panic!("the connection stayed open for {timeout:?}; errors so far {errors:?}")
                }
                Incoming::Message(ServerMessage::Error { code, .. }) => errors.push(code),
                Incoming::Message(other) => self.skipped.push(other),
            }
        }
    }

    /// Sends `accepted` for `task_id`.
    pub async fn accept(&mut self, task_id: TaskId) {
        self.send(&AgentMessage::Accepted { task_id }).await;
    }

    /// Sends `finished` with `outcome` (and a result for a success) and waits for
    /// the `ack`.
    pub async fn finish(&mut self, task_id: TaskId, outcome: Outcome) {
        self.send(&AgentMessage::Finished(report(task_id, outcome)))
            .await;
        self.recv_ack(task_id, Duration::from_secs(5)).await;
    }

    /// Sends a heartbeat with a battery level.
    pub async fn heartbeat(&mut self, battery: u8) {
        self.send(&AgentMessage::Heartbeat {
            battery: Some(battery),
            charging: Some(false),
            screen_on: Some(true),
            foreground_app: Some("com.tencent.wework".to_owned()),
            call: None,
            wecom_version: None,
            dnd: None,
        })
        .await;
    }

    /// Closes the connection cleanly.
    pub async fn close(mut self) {
        self.ws.close(None).await.ok();
    }
}

/// A finished report: successes carry `{"raw": true}` as result, failures an
/// error with code `raw_failure`.
pub fn report(task_id: TaskId, outcome: Outcome) -> FinishedReport {
    FinishedReport {
        task_id,
        outcome,
        error: (outcome == Outcome::Failed).then(|| youmi_protocol::TaskError {
            code: "raw_failure".to_owned(),
            message: "the raw agent reported a failure".to_owned(),
            retryable: false,
        }),
        result: (outcome == Outcome::Succeeded).then(|| serde_json::json!({ "raw": true })),
    }
}
