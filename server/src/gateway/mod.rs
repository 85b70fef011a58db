//! `GET /agent/v1/ws`: the agents' WebSocket. The token is checked before the
//! upgrade; then each connection is a reader (this task) feeding frames to the
//! controller and a writer task draining a small bounded channel, which is the
//! connection's [`DeviceSink`]. Buffers are small on purpose: a server holds
//! many idle phones.

pub mod store;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::stream::SplitSink;
use futures_util::{FutureExt, Sink, SinkExt, StreamExt};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;
use youmi_controller::{Assign, ConnectionId, DeviceSink, SinkClosed};
use youmi_protocol::agent::error_code;
use youmi_protocol::{AgentMessage, ServerMessage, MAX_FRAME_BYTES};

use crate::http::error::ApiError;
use crate::http::extract::{bearer_token, token_hash};
use crate::{device_logs, AppState};

use self::store::TokenDevice;

/// Frames waiting for a connection's writer. A phone that falls this far
/// behind is treated as gone by the scheduler rather than buffered for.
pub const OUTBOUND_CAPACITY: usize = 64;
/// The read buffer of each connection: agent frames are small, and a bigger
/// one grows the buffer while it is read. With jemalloc, 4 KiB cost an idle
/// connection 11,383 bytes of server memory, over the benchmarks' 10 KiB;
/// 2 KiB cost 9,299 (`idle --agents 15000`).
const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Frames queued for one connection are written together up to this many
/// bytes (a frame that alone is bigger goes out at once). The buffer keeps
/// its capacity, so this also bounds what an idle connection holds on to.
const WRITE_BUFFER_BYTES: usize = 4 * 1024;
/// At most this many queued frames go out in one write.
const FRAMES_PER_WRITE: usize = 16;
/// At most this many frames the socket already holds are read at once; the
/// agent messages among them go to the scheduler in one command. Pings and
/// bad frames count too, so a peer that keeps sending cannot keep the reader
/// from its other duties.
const FRAMES_PER_READ: usize = 16;
/// How long a closing connection waits for its last frames to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The gateway's shared state: the connection cap, connection ids and the
/// server's shutdown signal.
#[derive(Debug)]
pub struct Gateway {
    /// One permit per open connection.
    connections: Arc<Semaphore>,
    /// The next connection's id; ids are never reused, so a late disconnect of
    /// a replaced connection cannot be mistaken for its successor's.
    next_connection: AtomicU64,
    /// Turns true when the server shuts down: every connection then closes.
    shutdown: watch::Receiver<bool>,
    /// A connection that sends nothing for this long is closed. Agents send a
    /// heartbeat every 30 s, so only dead peers hit it.
    idle_timeout: Duration,
}

impl Gateway {
    /// A gateway for at most `max_connections` agents at once.
    pub fn new(
        max_connections: usize,
        idle_timeout: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Gateway {
            connections: Arc::new(Semaphore::new(max_connections.max(1))),
            next_connection: AtomicU64::new(1),
            shutdown,
            idle_timeout,
        }
    }
}

impl Gateway {
    /// The server's shutdown signal (true once it shuts down), for other
    /// long-lived answers (the console's live feed) to end with it.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    Router::new().route("/agent/v1/ws", get(upgrade))
}

#[tracing::instrument(skip_all)]
async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // The token first: a client without a valid one learns nothing else.
    let token = bearer_token(&headers).ok_or(ApiError::Unauthorized)?;
    let device = store::device_for_token(&state.db, &token_hash(token))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::bad_request(
            "websocket_required",
            None,
            format!(
                "this route takes a websocket upgrade: {}",
                rejection.body_text()
            ),
        )
    })?;
    let permit = state
        .gateway
        .connections
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Unavailable {
            code: "too_many_connections",
            message: "the server holds as many agent connections as it may".to_owned(),
        })?;
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| {
            let connection = state
                .gateway
                .next_connection
                .fetch_add(1, Ordering::Relaxed);
            let span = tracing::info_span!(
                "agent",
                device_id = %device.device_id,
                connection
            );
            serve_connection(state, device, connection, permit, socket).instrument(span)
        }))
}

/// A close the scheduler (or the reader) asked for, handed to the writer.
#[derive(Debug, Default)]
struct CloseRequest {
    /// Set once a close was asked for; later frames are refused.
    closing: AtomicBool,
    /// The `error` frame to send before the Close frame.
    reason: Mutex<Option<(String, String)>>,
    /// Wakes the writer.
    notify: Notify,
}

impl CloseRequest {
    fn request(&self, code: &str, message: &str) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        *self
            .reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((code.to_owned(), message.to_owned()));
        // `notify_one` keeps a permit if the writer is not waiting yet.
        self.notify.notify_one();
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    fn take(&self) -> Option<(String, String)> {
        self.reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// The scheduler's way to one connection: a bounded channel to the writer.
#[derive(Debug)]
struct ConnectionSink {
    /// Serialized frames for the writer.
    frames: mpsc::Sender<String>,
    /// Shared with the writer and the reader.
    close: Arc<CloseRequest>,
}

impl DeviceSink for ConnectionSink {
    fn send(&self, message: ServerMessage) -> Result<(), SinkClosed> {
        if self.close.is_closing() {
            return Err(SinkClosed);
        }
        let text = serde_json::to_string(&message).map_err(|_| SinkClosed)?;
        self.frames.try_send(text).map_err(|_| SinkClosed)
    }

    fn send_assign(&self, assign: Assign) -> Result<(), SinkClosed> {
        if self.close.is_closing() {
            return Err(SinkClosed);
        }
        self.frames
            .try_send(assign.to_json())
            .map_err(|_| SinkClosed)
    }

    fn close(&self, code: &str, reason: &str) {
        self.close.request(code, reason);
    }
}

fn error_frame(code: &str, message: &str) -> String {
    serde_json::to_string(&ServerMessage::Error {
        code: code.to_owned(),
        message: message.to_owned(),
    })
    .unwrap_or_default()
}

/// A Close frame whose reason fits the protocol's 123 bytes.
fn close_frame(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}

async fn serve_connection(
    state: AppState,
    device: TokenDevice,
    connection: ConnectionId,
    _permit: OwnedSemaphorePermit,
    socket: WebSocket,
) {
    tracing::info!("agent connected");
    let (sender, mut receiver) = socket.split();
    let (frames, outbound) = mpsc::channel(OUTBOUND_CAPACITY);
    let close = Arc::new(CloseRequest::default());
    let mut writer = tokio::spawn(
        write_frames(
            sender,
            outbound,
            close.clone(),
            state.gateway.shutdown.clone(),
        )
        .in_current_span(),
    );
    let sink = Arc::new(ConnectionSink {
        frames: frames.clone(),
        close: close.clone(),
    });
    let controller = state.controller.clone();
    let device_id = device.device_id;
    let mut writer_done = false;
    if controller
        .connect(device_id.clone(), connection, sink)
        .await
        .is_err()
    {
        close.request("unavailable", "the scheduler is not running");
    } else {
        // One timer for the idle timeout, moved only when it fires: arming a
        // timer per frame costs more than reading the clock per frame.
        let idle_timeout = state.gateway.idle_timeout;
        let mut last_frame = Instant::now();
        let idle_check = tokio::time::sleep_until(last_frame + idle_timeout);
        tokio::pin!(idle_check);
        loop {
            let frame = tokio::select! {
                biased;
                _ = &mut writer => {
                    // The writer ended: the server closed the connection or the
                    // socket failed. Either way, nothing more is read.
                    writer_done = true;
                    break;
                }
                () = &mut idle_check => {
                    let due = last_frame + idle_timeout;
                    if Instant::now() >= due {
                        tracing::info!("closing an idle connection");
                        close.request("idle_timeout", "no frame from the agent for too long");
                        break;
                    }
                    idle_check.as_mut().reset(due);
                    continue;
                }
                frame = receiver.next() => frame,
            };
            last_frame = Instant::now();
            // This frame and those the socket already holds, in order. The
            // agent messages among them go to the scheduler in one command: a
            // quick task's `accepted` and `finished` arrive in one write, and
            // told together they cost one hop and are stored in one turn.
            let mut frame = frame;
            let mut pending = Vec::new();
            let mut stop = false;
            for read in 1.. {
                match read_frame(frame, &frames, &close) {
                    Read::Message(message) => pending.push(message),
                    Read::Handled => {}
                    Read::Stop => {
                        stop = true;
                        break;
                    }
                }
                if read >= FRAMES_PER_READ {
                    break;
                }
                match receiver.next().now_or_never() {
                    Some(next) => frame = next,
                    None => break,
                }
            }
            device_logs::note_reports(&state.db, &device_id, &pending);
            if !pending.is_empty()
                && controller
                    .agent_messages(device_id.clone(), connection, pending)
                    .await
                    .is_err()
            {
                close.request("unavailable", "the scheduler is not running");
                break;
            }
            if stop {
                break;
            }
        }
    }
    let _ = controller.disconnect(device_id, connection).await;
    if !writer_done {
        // Let the writer send what is queued (and a Close frame), but not wait
        // on a peer that stopped reading.
        drop(frames);
        if !close.is_closing() {
            close.request("", "");
        }
        if tokio::time::timeout(CLOSE_GRACE, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }
    tracing::info!("agent disconnected");
}

/// Resolves when the server shuts down (or its shutdown sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it right here.
    let _ = shutdown.wait_for(|stopping| *stopping).await.is_ok();
}

/// What one frame from the agent leaves for the reader to do.
enum Read {
    /// A protocol message for the scheduler.
    Message(AgentMessage),
    /// Nothing more: the frame was answered here, or needs no answer.
    Handled,
    /// The connection is over: closed, failed, or over a limit.
    Stop,
}

/// Reads one frame: a protocol message to pass on, or what the gateway
/// answers itself (an `error` for a frame that is not protocol v1, a close
/// for one over the size limit).
fn read_frame(
    frame: Option<Result<Message, axum::Error>>,
    frames: &mpsc::Sender<String>,
    close: &CloseRequest,
) -> Read {
    let message = match frame {
        None => return Read::Stop,
        Some(Err(error)) => {
            if is_capacity_error(error) {
                tracing::info!("agent sent a frame over the limit");
                close.request(error_code::FRAME_TOO_LARGE, "frames are limited to 1 MiB");
            } else {
                tracing::debug!("agent socket read failed");
            }
            return Read::Stop;
        }
        Some(Ok(message)) => message,
    };
    match message {
        Message::Text(text) => match serde_json::from_str::<AgentMessage>(text.as_str()) {
            Ok(message) => match message.check_text() {
                Ok(()) => Read::Message(message),
                Err(error) => {
                    tracing::info!(%error, "agent frame with text that cannot be stored; dropped");
                    answer(frames, error_code::BAD_TEXT, &error.to_string())
                }
            },
            Err(error) => {
                tracing::debug!(%error, "bad frame from the agent");
                answer(frames, error_code::BAD_MESSAGE, &error.to_string())
            }
        },
        Message::Binary(_) => answer(
            frames,
            error_code::BAD_MESSAGE,
            "binary frames are not part of the protocol; send JSON text frames",
        ),
        Message::Close(_) => Read::Stop,
        Message::Ping(_) | Message::Pong(_) => Read::Handled,
    }
}

/// Answers a frame the gateway drops with an `error` frame; the connection
/// stays open.
fn answer(frames: &mpsc::Sender<String>, code: &str, message: &str) -> Read {
    if frames.try_send(error_frame(code, message)).is_err() {
        tracing::debug!("outbound buffer full; error frame dropped");
    }
    Read::Handled
}

fn is_capacity_error(error: axum::Error) -> bool {
    let inner = error.into_inner();
    matches!(
        inner.downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

async fn write_frames(
    mut sender: SplitSink<WebSocket, Message>,
    mut outbound: mpsc::Receiver<String>,
    close: Arc<CloseRequest>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            _ = close.notify.notified() => {
                // An empty code is the reader's own close: no error frame.
                let (code, message) = close.take().unwrap_or_default();
                if !code.is_empty() {
                    let _ = sender.send(Message::Text(error_frame(&code, &message).into())).await;
                }
                let status = if code == error_code::FRAME_TOO_LARGE {
                    close_code::SIZE
                } else if code == error_code::REPLACED || code == error_code::REVOKED || code.is_empty() {
                    close_code::NORMAL
                } else {
                    close_code::POLICY
                };
                let _ = sender.send(close_frame(status, &code)).await;
                break;
            }
            () = stopped(&mut shutdown) => {
                let _ = sender.send(close_frame(close_code::AWAY, "server shutting down")).await;
                break;
            }
            frame = outbound.recv() => match frame {
                Some(text) => {
                    if write_queued(&mut sender, &mut outbound, text).await.is_err() {
                        break;
                    }
                }
                None => {
                    let _ = sender.send(close_frame(close_code::NORMAL, "")).await;
                    break;
                }
            },
        }
    }
    // Mark the connection closed for the scheduler's sink.
    close.closing.store(true, Ordering::Release);
}

/// Writes `first` and the frames already queued behind it with one flush: a
/// commit that stores one task's result and dispatches the next queues `ack`
/// and `assign` together, and one write (one segment on the wire) carries both.
async fn write_queued<S>(
    sender: &mut S,
    outbound: &mut mpsc::Receiver<String>,
    first: String,
) -> Result<(), S::Error>
where
    S: Sink<Message> + Unpin,
{
    sender.feed(Message::Text(first.into())).await?;
    for _ in 1..FRAMES_PER_WRITE {
        match outbound.try_recv() {
            Ok(text) => sender.feed(Message::Text(text.into())).await?,
            Err(_) => break,
        }
    }
    sender.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        let Message::Close(Some(frame)) = close_frame(1000, &long) else {
            panic!("not a close frame");
        };
        assert!(frame.reason.as_str().len() <= 123);
        assert!(frame.reason.as_str().chars().all(|c| c == 'é'));
    }

    /// A sink that records what is written to it and each flush.
    #[derive(Default)]
    struct Recorder {
        events: Vec<String>,
    }

    impl Sink<Message> for Recorder {
        type Error = std::convert::Infallible;

        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn start_send(
            mut self: std::pin::Pin<&mut Self>,
            item: Message,
        ) -> Result<(), Self::Error> {
            if let Message::Text(text) = item {
                self.events.push(text.as_str().to_owned());
            }
            Ok(())
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            self.events.push("flush".to_owned());
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn queued_frames_go_out_with_one_flush_up_to_the_bound() {
        let (frames, mut outbound) = mpsc::channel(64);
        let mut sink = Recorder::default();
        // Alone in the queue: written and flushed at once.
        write_queued(&mut sink, &mut outbound, "a".to_owned())
            .await
            .unwrap();
        assert_eq!(sink.events, ["a", "flush"]);
        // An `ack` and the next `assign` queued by one commit: one flush.
        sink.events.clear();
        frames.try_send("assign".to_owned()).unwrap();
        write_queued(&mut sink, &mut outbound, "ack".to_owned())
            .await
            .unwrap();
        assert_eq!(sink.events, ["ack", "assign", "flush"]);
        // A long queue is flushed every FRAMES_PER_WRITE frames.
        sink.events.clear();
        for i in 1..=FRAMES_PER_WRITE + 1 {
            frames.try_send(i.to_string()).unwrap();
        }
        write_queued(&mut sink, &mut outbound, "0".to_owned())
            .await
            .unwrap();
        assert_eq!(sink.events.len(), FRAMES_PER_WRITE + 1);
        assert_eq!(sink.events.last().map(String::as_str), Some("flush"));
        assert_eq!(outbound.len(), 2);
    }

    #[tokio::test]
    async fn the_sink_refuses_frames_after_close_and_when_full() {
        let (frames, mut outbound) = mpsc::channel(2);
        let close = Arc::new(CloseRequest::default());
        let sink = ConnectionSink {
            frames,
            close: close.clone(),
        };
        let ack = ServerMessage::Ack { task_id: 1 };
        sink.send(ack.clone()).unwrap();
        sink.send(ack.clone()).unwrap();
        assert_eq!(sink.send(ack.clone()), Err(SinkClosed));
        assert_eq!(
            outbound.recv().await.unwrap(),
            r#"{"type":"ack","task_id":1}"#
        );
        sink.close(error_code::REPLACED, "a newer connection took over");
        assert_eq!(sink.send(ack), Err(SinkClosed));
        assert_eq!(
            close.take(),
            Some((
                error_code::REPLACED.to_owned(),
                "a newer connection took over".to_owned()
            ))
        );
    }
}
