//! The WebSocket side of the agent: connect, hand the socket's frames to the
//! agent's loop, write what it sends, heartbeat, and reconnect with capped
//! exponential backoff and full jitter.
//!
//! This task holds no task state. The agent's loop (in [`crate::session`])
//! owns all of it and builds the `hello`; a connection only asks for it, so a
//! reconnect cannot race with a task finishing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, info_span, warn, Instrument};
use url::{Host, Url};
use youmi_protocol::agent::{assign_task_id, refusal_code};
use youmi_protocol::{AgentMessage, ServerMessage, TaskKind, MAX_ASSIGN_FRAME_BYTES};

use crate::executor::{BoxFuture, Executor};
use crate::phone::PhoneStatus;

/// Connecting (TCP, TLS and the upgrade) may take this long before the
/// attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// A server silent for this many heartbeat intervals (not even a pong) is
/// taken for gone, so a half-open TCP connection does not keep the phone
/// offline until the kernel gives up on it.
const SILENT_INTERVALS: u32 = 3;
/// How long a closing connection waits for the server's last frames and its
/// close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The socket's read buffer. Phones are many and quiet; frames are small.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// The largest frame the socket reads. It is far above the protocol's
/// limit ([`youmi_protocol::MAX_FRAME_BYTES`]) so that a frame over that limit reaches
/// [`refusal`] and is refused or ignored by itself: the socket never fails,
/// and the connection is never dropped, over one bad frame.
const TRANSPORT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// How long a heartbeat waits for the phone's state (battery, screen, ...).
/// A phone that is busy or stuck must not hold the heartbeat back for long,
/// or the server would take a live agent for offline; past this, the
/// heartbeat goes out without the state.
const STATUS_DEADLINE: Duration = Duration::from_secs(2);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the connection tells the agent's loop.
pub(crate) enum ConnEvent {
    /// A socket is up. The loop answers with the `hello` to send first, and
    /// from then on writes its frames to `out`.
    Connected {
        conn: u64,
        out: mpsc::UnboundedSender<Outbound>,
        hello: oneshot::Sender<AgentMessage>,
    },
    /// A frame from the server.
    Frame { conn: u64, message: ServerMessage },
    /// The socket is gone; the connection will try again.
    Disconnected { conn: u64 },
}

/// Why the connection task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionEnd {
    /// The server refused the token with 401: it was revoked. Retrying would
    /// only be refused again.
    Revoked,
    /// The agent asked it to close, or the agent's loop is gone.
    Stopped,
}

/// What the agent's loop asks a live connection to do.
pub(crate) enum Outbound {
    /// Send this frame.
    Frame(AgentMessage),
    /// Close the socket and stop (the agent is shutting down).
    Close,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionConfig {
    /// `ws://` or `wss://` address of `/agent/v1/ws`.
    pub url: Url,
    /// `Bearer <token>`, checked when the agent started.
    pub authorization: HeaderValue,
    /// For the connection span.
    pub device_id: String,
    /// How often to send a heartbeat.
    pub heartbeat_interval: Duration,
    /// The first reconnect pause's upper bound.
    pub backoff_initial: Duration,
    /// The cap on reconnect pauses.
    pub backoff_max: Duration,
    /// Where each heartbeat's phone state comes from.
    pub phone_state: PhoneState,
}

/// The executor, asked for the phone's state at each heartbeat. A newtype so
/// that [`ConnectionConfig`] stays `Debug` (executors need not be).
#[derive(Clone)]
pub(crate) struct PhoneState(pub(crate) Arc<dyn Executor>);

impl std::fmt::Debug for PhoneState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneState(..)")
    }
}

impl PhoneState {
    /// The phone's state, or nothing known once `deadline` passed.
    fn read(&self, deadline: Duration) -> BoxFuture<'static, PhoneStatus> {
        let executor = Arc::clone(&self.0);
        Box::pin(async move {
            match time::timeout(deadline, executor.status()).await {
                Ok(status) => status,
                Err(_) => {
                    debug!(
                        ?deadline,
                        "the phone's state was not read in time; the heartbeat goes without it"
                    );
                    PhoneStatus::default()
                }
            }
        })
    }
}

/// Capped exponential backoff with full jitter: the n-th pause is drawn
/// uniformly from zero to `min(max, initial * 2^n)`, so a fleet of phones that
/// lost the server at the same moment does not come back at the same moment.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: StdRng,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            attempt: 0,
            rng: StdRng::from_entropy(),
        }
    }

    /// The upper bound of the next pause.
    pub(crate) fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next pause; each call raises the ceiling until it reaches `max`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.gen_range(0..=nanos))
    }

    /// Back to the first pause, after a connection that got as far as `welcome`.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("the server refused the device token (401)")]
    Unauthorized,
    #[error("the server answered the upgrade with {0}")]
    Status(StatusCode),
    #[error("{0}")]
    Failed(String),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// How one connection ended.
enum End {
    /// The socket was lost: try again after a pause.
    Lost,
    /// Stop for good: the agent is shutting down, or its loop is gone.
    Stop,
    /// The token was refused.
    Revoked,
}

/// Connects, serves and reconnects until the token is refused or the agent
/// stops. `numbers` numbers the connections (for logs, and to tell a late
/// event of an old connection from the current one); it outlives this task,
/// so a restarted task goes on counting.
pub(crate) async fn run(
    config: ConnectionConfig,
    events: mpsc::Sender<ConnEvent>,
    numbers: Arc<AtomicU64>,
) -> ConnectionEnd {
    let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    loop {
        let conn = numbers.fetch_add(1, Ordering::Relaxed) + 1;
        let span = info_span!("connection", device_id = %config.device_id, conn);
        let end = async {
            match time::timeout(CONNECT_TIMEOUT, connect(&config)).await {
                Ok(Ok(socket)) => {
                    info!(url = %config.url, "connected");
                    serve(conn, socket, &config, &mut backoff, &events).await
                }
                Ok(Err(ConnectError::Unauthorized)) => {
                    tracing::error!(
                        "the server refused the device token (401): it was revoked, \
                         probably because another phone was bound to this operator account; \
                         not retrying"
                    );
                    End::Revoked
                }
                Ok(Err(error)) => {
                    warn!(url = %config.url, %error, "cannot connect");
                    End::Lost
                }
                Err(_) => {
                    warn!(url = %config.url, error = %ConnectError::TimedOut(CONNECT_TIMEOUT), "cannot connect");
                    End::Lost
                }
            }
        }
        .instrument(span)
        .await;
        match end {
            End::Stop => return ConnectionEnd::Stopped,
            End::Revoked => return ConnectionEnd::Revoked,
            End::Lost => {}
        }
        let delay = backoff.next_delay();
        debug!(?delay, "reconnecting after a pause");
        time::sleep(delay).await;
    }
}

/// TCP (with `TCP_NODELAY`: frames are small and latency matters more than
/// packet count), TLS for `wss://`, then the upgrade with the bearer token.
async fn connect(config: &ConnectionConfig) -> Result<Socket, ConnectError> {
    let url = &config.url;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| ConnectError::Failed("the server address has no port".to_owned()))?;
    let tcp = match url.host() {
        Some(Host::Domain(domain)) => TcpStream::connect((domain, port)).await,
        Some(Host::Ipv4(ip)) => TcpStream::connect((ip, port)).await,
        Some(Host::Ipv6(ip)) => TcpStream::connect((ip, port)).await,
        None => {
            return Err(ConnectError::Failed(
                "the server address has no host".to_owned(),
            ))
        }
    }
    .map_err(|error| ConnectError::Failed(error.to_string()))?;
    tcp.set_nodelay(true)
        .map_err(|error| ConnectError::Failed(format!("cannot set TCP_NODELAY: {error}")))?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|error| ConnectError::Failed(error.to_string()))?;
    request
        .headers_mut()
        .insert(AUTHORIZATION, config.authorization.clone());
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(TRANSPORT_MAX_BYTES))
        .max_frame_size(Some(TRANSPORT_MAX_BYTES));
    match tokio_tungstenite::client_async_tls_with_config(request, tcp, Some(ws_config), None).await
    {
        Ok((socket, _response)) => Ok(socket),
        Err(WsError::Http(response)) if response.status() == StatusCode::UNAUTHORIZED => {
            Err(ConnectError::Unauthorized)
        }
        Err(WsError::Http(response)) => Err(ConnectError::Status(response.status())),
        Err(error) => Err(ConnectError::Failed(error.to_string())),
    }
}

/// Runs one connection: `hello` first, then frames both ways and heartbeats,
/// until the socket goes or the agent asks to close.
async fn serve(
    conn: u64,
    mut socket: Socket,
    config: &ConnectionConfig,
    backoff: &mut Backoff,
    events: &mpsc::Sender<ConnEvent>,
) -> End {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let (hello_tx, hello_rx) = oneshot::channel();
    let connected = ConnEvent::Connected {
        conn,
        out: out_tx,
        hello: hello_tx,
    };
    if events.send(connected).await.is_err() {
        return End::Stop;
    }
    let Ok(hello) = hello_rx.await else {
        return End::Stop;
    };
    let mut end = match send(&mut socket, &hello).await {
        Ok(()) => None,
        Err(error) => {
            warn!(%error, "cannot send hello");
            Some(End::Lost)
        }
    };
    let interval = config.heartbeat_interval;
    let mut heartbeat = time::interval_at(Instant::now() + interval, interval);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    // The phone's state being read for the heartbeat that is due; the socket
    // keeps being served meanwhile.
    let mut beat: Option<BoxFuture<'static, PhoneStatus>> = None;
    let status_deadline = STATUS_DEADLINE.min(interval);
    while end.is_none() {
        tokio::select! {
            frame = socket.next() => {
                last_heard = Instant::now();
                end = match frame {
                    Some(Ok(Message::Text(text))) => {
                        match read_frame(text.as_str()) {
                            Err(Some(refused)) => match send(&mut socket, &refused.into_message()).await {
                                Ok(()) => None,
                                Err(error) => {
                                    warn!(%error, "connection lost while sending a refusal");
                                    Some(End::Lost)
                                }
                            },
                            Err(None) => None,
                            Ok(message) => {
                                if matches!(message, ServerMessage::Welcome { .. }) {
                                    backoff.reset();
                                }
                                let event = ConnEvent::Frame { conn, message };
                                events.send(event).await.err().map(|_| End::Stop)
                            }
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        warn!("ignoring a binary frame from the server");
                        None
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let reason = frame.as_ref().map(|f| f.reason.as_str()).unwrap_or("");
                        info!(reason, "the server closed the connection");
                        Some(End::Lost)
                    }
                    Some(Ok(_ping_pong_or_raw)) => None,
                    Some(Err(WsError::Capacity(error))) => {
                        warn!(%error, "the server sent a frame over {TRANSPORT_MAX_BYTES} bytes; the socket cannot go on");
                        Some(End::Lost)
                    }
                    Some(Err(error)) => {
                        warn!(%error, "connection lost");
                        Some(End::Lost)
                    }
                    None => {
                        info!("connection closed");
                        Some(End::Lost)
                    }
                };
            }
            outbound = out_rx.recv() => {
                end = match outbound {
                    Some(Outbound::Frame(message)) => match send(&mut socket, &message).await {
                        Ok(()) => None,
                        Err(error) => {
                            warn!(%error, "connection lost while sending");
                            Some(End::Lost)
                        }
                    },
                    Some(Outbound::Close) | None => {
                        close(conn, &mut socket, events).await;
                        Some(End::Stop)
                    }
                };
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= interval * SILENT_INTERVALS {
                    warn!(silent_for = ?last_heard.elapsed(), "the server has gone silent; reconnecting");
                    end = Some(End::Lost);
                } else if beat.is_none() {
                    beat = Some(config.phone_state.read(status_deadline));
                }
            }
            status = async {
                match beat.as_mut() {
                    Some(read) => read.await,
                    None => std::future::pending().await,
                }
            }, if beat.is_some() => {
                beat = None;
                let message = AgentMessage::Heartbeat {
                    battery: status.battery,
                    charging: status.charging,
                    screen_on: status.screen_on,
                    foreground_app: status.foreground_app,
                    call: status.call,
                    wecom_version: status.wecom_version,
                    dnd: status.dnd,
                };
                // The ping makes a live server answer (a pong) even when it
                // has nothing to say, which keeps `last_heard` fresh.
                let sent = match send(&mut socket, &message).await {
                    Ok(()) => socket.send(Message::Ping(Vec::new().into())).await,
                    Err(error) => Err(error),
                };
                if let Err(error) = sent {
                    warn!(%error, "connection lost while sending a heartbeat");
                    end = Some(End::Lost);
                }
            }
        }
    }
    let end = end.unwrap_or(End::Lost);
    if let End::Lost = end {
        if events.send(ConnEvent::Disconnected { conn }).await.is_err() {
            return End::Stop;
        }
    }
    end
}

/// An `assign` this agent cannot take, to be answered with `refused`.
struct Refusal {
    task_id: youmi_protocol::TaskId,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn into_message(self) -> AgentMessage {
        AgentMessage::Refused {
            task_id: self.task_id,
            code: self.code.to_owned(),
            message: self.message,
        }
    }
}

/// Reads one text frame from the server. A frame that is not a message this
/// agent can take is `Err`: with the refusal to send when it is an `assign`
/// (so the server fails the task at once instead of sending it again), with
/// nothing when it is anything else (it is logged and ignored). Either way
/// the connection goes on.
fn read_frame(text: &str) -> Result<ServerMessage, Option<Refusal>> {
    let refuse = |code: &'static str, message: String| {
        let task_id = assign_task_id(text);
        match task_id {
            Some(task_id) => warn!(task_id, code, %message, "refusing an assign"),
            None => warn!(code, %message, "ignoring a frame from the server"),
        }
        task_id.map(|task_id| Refusal {
            task_id,
            code,
            message,
        })
    };
    if text.len() > MAX_ASSIGN_FRAME_BYTES {
        return Err(refuse(
            refusal_code::TOO_LARGE,
            format!(
                "the frame is {} bytes; this agent takes at most {MAX_ASSIGN_FRAME_BYTES}",
                text.len()
            ),
        ));
    }
    serde_json::from_str::<ServerMessage>(text).map_err(|error| {
        let unknown_kind = error.to_string().contains("unknown variant")
            && serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|frame| {
                    let kind = frame.get("task")?.get("kind")?.as_str()?.to_owned();
                    Some(kind.parse::<TaskKind>().is_err())
                })
                .unwrap_or(false);
        let code = if unknown_kind {
            refusal_code::UNKNOWN_KIND
        } else {
            refusal_code::UNREADABLE
        };
        refuse(
            code,
            format!("not a protocol v1 message this agent reads: {error}"),
        )
    })
}

/// Sends one frame as JSON text.
async fn send(socket: &mut Socket, message: &AgentMessage) -> Result<(), WsError> {
    let text = serde_json::to_string(message).map_err(|error| {
        WsError::Io(std::io::Error::other(format!(
            "cannot encode a frame: {error}"
        )))
    })?;
    socket.send(Message::text(text)).await
}

/// Closes the socket politely and passes on what the server still sends
/// before it answers the close (typically the `ack` of a report sent last).
async fn close(conn: u64, socket: &mut Socket, events: &mpsc::Sender<ConnEvent>) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "agent shutting down".into(),
    };
    if let Err(error) = socket.close(Some(frame)).await {
        debug!(%error, "closing the socket");
        return;
    }
    let drain = async {
        while let Some(Ok(frame)) = socket.next().await {
            if let Message::Text(text) = frame {
                if let Ok(message) = serde_json::from_str::<ServerMessage>(text.as_str()) {
                    if events
                        .send(ConnEvent::Frame { conn, message })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let _ = time::timeout(CLOSE_GRACE, drain).await;
    info!("connection closed by the agent");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_stays_within_bounds() {
        let initial = Duration::from_millis(500);
        let max = Duration::from_secs(30);
        let mut backoff = Backoff::new(initial, max);
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            let ceiling = backoff.ceiling();
            ceilings.push(ceiling);
            for _ in 0..50 {
                // Draw at this ceiling without moving on.
                let saved = backoff.attempt;
                let delay = backoff.next_delay();
                backoff.attempt = saved;
                assert!(delay <= ceiling, "{delay:?} > {ceiling:?}");
            }
            backoff.next_delay();
        }
        assert_eq!(ceilings[0], initial);
        assert_eq!(ceilings[1], initial * 2);
        assert_eq!(ceilings[3], initial * 8);
        assert_eq!(ceilings[7], max, "500 ms * 2^7 = 64 s is capped at 30 s");
        assert_eq!(ceilings[11], max);
        assert!(ceilings.windows(2).all(|pair| pair[0] <= pair[1]));
        // The attempt count can grow without bound and the ceiling still holds.
        backoff.attempt = u32::MAX;
        assert_eq!(backoff.ceiling(), max);
        assert!(backoff.next_delay() <= max);
        backoff.reset();
        assert_eq!(backoff.ceiling(), initial);
    }

    #[test]
    fn full_jitter_spreads_delays_over_the_whole_range() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..200).map(|_| backoff.next_delay()).collect();
        assert!(delays.iter().any(|d| *d < Duration::from_millis(250)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(750)));
    }
}
