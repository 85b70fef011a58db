//! Simulated agents: light protocol v1 clients, one tokio task per connection,
//! that say `hello`, send heartbeats, and answer every `assign` at once with
//! `accepted` and `finished` (succeeded), like a phone that takes no time. They
//! keep no journal: the benchmark measures the server, not the agent.
//!
//! The same harness drives the real server and the bare endpoint of
//! [`crate::raw`], so the two figures of `dispatch` differ only in the server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use indicatif::ProgressBar;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use youmi_protocol::{
    AgentMessage, DeviceInfo, FinishedReport, Outcome, ServerMessage, TaskId, MAX_FRAME_BYTES,
};

/// How often a connected agent sends a heartbeat, as the real agent does.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);
/// How long one agent may take to connect and be welcomed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Read chunk of each client socket. Clients are many in the idle scenario,
/// and tungstenite's default (128 KiB each) would not fit 15,000 of them.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Frames are written once this much is queued or on a flush, so that
/// `accepted` and `finished` leave in one write.
const WRITE_BUFFER_BYTES: usize = 4 * 1024;

/// What one agent needs to connect.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// `ws://127.0.0.1:PORT/...`.
    pub url: String,
    /// The device token; the bare endpoint takes none.
    pub token: Option<String>,
    /// The phone, as told in `hello`.
    pub device: DeviceInfo,
}

/// Something an agent saw, reported only while probing latency.
#[derive(Debug, Clone, Copy)]
pub enum AgentEvent {
    /// An `assign` arrived at this instant.
    Assigned(TaskId, Instant),
    /// The task's `ack` arrived: its result is stored.
    Acked(TaskId),
}

/// Counters every agent of a fleet shares. Atomics only on the hot path: the
/// client process must not become the bottleneck it is measuring.
#[derive(Debug, Default)]
pub struct Stats {
    /// Agents welcomed by the server.
    pub connected: AtomicU64,
    /// `assign` frames received (re-sends included).
    pub assigns: AtomicU64,
    /// `ack` frames received.
    pub acks: AtomicU64,
    /// When the first `assign` of the fleet arrived.
    first_assign: OnceLock<Instant>,
    /// The number of acks that completes the run being measured.
    target: AtomicU64,
    /// When the ack that reached `target` arrived.
    done: OnceLock<Instant>,
    /// Wakes the waiter when `done` is set.
    done_notify: Notify,
    /// Whether agents report each assign and ack on `events`.
    probing: AtomicBool,
    /// Where agents report while probing.
    events: Mutex<Option<mpsc::UnboundedSender<AgentEvent>>>,
}

impl Stats {
    /// Sets how many acks complete the run; the instant of that ack is kept.
    pub fn expect_acks(&self, total: u64) {
        self.target.store(total, Ordering::Release);
    }

    /// When the first `assign` arrived, if one did.
    pub fn first_assign(&self) -> Option<Instant> {
        self.first_assign.get().copied()
    }

    /// When the expected number of acks was reached, if it was.
    pub fn done(&self) -> Option<Instant> {
        self.done.get().copied()
    }

    /// Starts reporting every assign and ack on the returned channel.
    pub fn start_probing(&self) -> mpsc::UnboundedReceiver<AgentEvent> {
        let (sender, receiver) = mpsc::unbounded_channel();
        *self
            .events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(sender);
        self.probing.store(true, Ordering::Release);
        receiver
    }

    fn report(&self, event: AgentEvent) {
        if !self.probing.load(Ordering::Acquire) {
            return;
        }
        if let Some(sender) = self
            .events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
        {
            let _ = sender.send(event);
        }
    }

    fn on_assign(&self, task_id: TaskId, at: Instant) {
        self.assigns.fetch_add(1, Ordering::Relaxed);
        self.first_assign.get_or_init(|| at);
        self.report(AgentEvent::Assigned(task_id, at));
    }

    fn on_ack(&self, task_id: TaskId) {
        let acks = self.acks.fetch_add(1, Ordering::AcqRel) + 1;
        if acks == self.target.load(Ordering::Acquire) {
            let _ = self.done.set(Instant::now());
            self.done_notify.notify_one();
        }
        self.report(AgentEvent::Acked(task_id));
    }
}

/// A set of connected agents.
pub struct Fleet {
    /// One task per agent; one that ends early is an error of the run.
    agents: JoinSet<anyhow::Result<()>>,
    /// Tells every agent to close its connection.
    shutdown: watch::Sender<bool>,
    /// What the agents saw.
    pub stats: Arc<Stats>,
}

impl Fleet {
    /// Connects every agent of `specs`, at most `concurrency` handshakes at a
    /// time, and returns once each was welcomed and sent its first heartbeat.
    pub async fn connect(
        specs: Vec<AgentSpec>,
        concurrency: usize,
        bar: &ProgressBar,
    ) -> anyhow::Result<Fleet> {
        let total = specs.len() as u64;
        let stats = Arc::new(Stats::default());
        let (shutdown, stop) = watch::channel(false);
        let gate = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut agents = JoinSet::new();
        for spec in specs {
            let stats = stats.clone();
            let gate = gate.clone();
            let stop = stop.clone();
            agents.spawn(async move {
                let permit = gate.acquire_owned().await?;
                let ws = tokio::time::timeout(CONNECT_TIMEOUT, connect(&spec))
                    .await
                    .map_err(|_| anyhow!("{} was not welcomed within 60 s", spec.device.serial))?
                    .with_context(|| format!("{} could not connect", spec.device.serial))?;
                drop(permit);
                stats.connected.fetch_add(1, Ordering::Relaxed);
                serve(ws, &stats, stop).await
            });
        }
        let mut fleet = Fleet {
            agents,
            shutdown,
            stats,
        };
        loop {
            let connected = fleet.stats.connected.load(Ordering::Relaxed);
            bar.set_position(connected);
            if connected == total {
                break;
            }
            fleet.check()?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(fleet)
    }

    /// An error if any agent stopped: connections only end when told to.
    pub fn check(&mut self) -> anyhow::Result<()> {
        match self.agents.try_join_next() {
            None => Ok(()),
            Some(Ok(Ok(()))) => bail!("a simulated agent stopped before the run ended"),
            Some(Ok(Err(error))) => Err(error.context("a simulated agent failed")),
            Some(Err(error)) => bail!("a simulated agent's task failed: {error}"),
        }
    }

    /// Waits until the acks set by [`Stats::expect_acks`] arrived, showing
    /// them on `bar`. Fails if an agent fails, if `also` (called about ten
    /// times a second) fails, or when `timeout` passes.
    pub async fn wait_done(
        &mut self,
        bar: &ProgressBar,
        timeout: Duration,
        mut also: impl FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            bar.set_position(self.stats.acks.load(Ordering::Relaxed));
            if let Some(done) = self.stats.done() {
                return Ok(done);
            }
            self.check()?;
            also()?;
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {} s with {} of {} tasks acked",
                    timeout.as_secs(),
                    self.stats.acks.load(Ordering::Relaxed),
                    self.stats.target.load(Ordering::Relaxed)
                );
            }
            let _ = tokio::time::timeout(
                Duration::from_millis(100),
                self.stats.done_notify.notified(),
            )
            .await;
        }
    }

    /// Closes every connection and waits for the agents to stop.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let closing = async { while self.agents.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(30), closing)
            .await
            .is_err()
        {
            self.agents.abort_all();
        }
    }
}

type Socket = WebSocketStream<TcpStream>;

/// Opens the WebSocket, says hello, waits for `welcome` and sends a heartbeat.
async fn connect(spec: &AgentSpec) -> anyhow::Result<Socket> {
    let mut request = spec
        .url
        .as_str()
        .into_client_request()
        .with_context(|| format!("bad websocket url {}", spec.url))?;
    if let Some(token) = &spec.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the device token is not a valid header value")?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .ok_or_else(|| anyhow!("no host in {}", spec.url))?;
    let stream = TcpStream::connect(&authority)
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    // Without it, Nagle's algorithm and delayed ACKs stall every small frame.
    stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .context("the websocket handshake failed")?;
    send(
        &mut ws,
        &AgentMessage::Hello {
            agent_version: spec.device.agent_version.clone(),
            device: spec.device.clone(),
            queue_paused: false,
            running: Vec::new(),
            finished: Vec::new(),
        },
    )
    .await?;
    loop {
        let frame = ws
            .next()
            .await
            .ok_or_else(|| anyhow!("the server closed the connection before `welcome`"))?
            .context("reading `welcome` failed")?;
        match frame {
            Message::Text(text) => match serde_json::from_str::<ServerMessage>(text.as_str()) {
                Ok(ServerMessage::Welcome { .. }) => break,
                Ok(ServerMessage::Error { code, message }) => {
                    bail!("the server refused `hello`: {code}: {message}")
                }
                Ok(other) => bail!("expected `welcome`, got {other:?}"),
                Err(error) => bail!("the server sent a frame that is not protocol v1: {error}"),
            },
            Message::Close(frame) => bail!("the server closed the connection: {frame:?}"),
            _ => {}
        }
    }
    send(&mut ws, &heartbeat()).await?;
    Ok(ws)
}

fn heartbeat() -> AgentMessage {
    AgentMessage::Heartbeat {
        battery: Some(100),
        charging: Some(true),
        screen_on: Some(true),
        foreground_app: None,
        call: None,
        wecom_version: Some("4.1.22".to_owned()),
        dnd: Some(false),
    }
}

async fn send(ws: &mut Socket, message: &AgentMessage) -> anyhow::Result<()> {
    ws.send(Message::text(encode(message)?))
        .await
        .context("the websocket send failed")
}

fn encode(message: &AgentMessage) -> anyhow::Result<String> {
    serde_json::to_string(message).context("cannot encode a protocol frame")
}

/// The agent's life after `welcome`: heartbeats, and every task accepted and
/// finished at once, until told to stop.
async fn serve(
    mut ws: Socket,
    stats: &Stats,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut heartbeats =
        tokio::time::interval_at(Instant::now() + HEARTBEAT_EVERY, HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            frame = ws.next() => {
                let frame = frame
                    .ok_or_else(|| anyhow!("the server closed the connection"))?
                    .context("the websocket read failed")?;
                match frame {
                    Message::Text(text) => on_frame(&mut ws, stats, text.as_str()).await?,
                    Message::Close(frame) => bail!("the server closed the connection: {frame:?}"),
                    _ => {}
                }
            }
            _ = heartbeats.tick() => send(&mut ws, &heartbeat()).await?,
            () = stopped(&mut stop) => {
                let _ = ws.close(None).await;
                return Ok(());
            }
        }
    }
}

/// Resolves once the fleet is told to stop (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it right here.
    let _ = stop.wait_for(|stop| *stop).await.is_ok();
}

async fn on_frame(ws: &mut Socket, stats: &Stats, text: &str) -> anyhow::Result<()> {
    let message = serde_json::from_str::<ServerMessage>(text)
        .with_context(|| format!("the server sent a frame that is not protocol v1: {text}"))?;
    match message {
        ServerMessage::Assign { task } => {
            stats.on_assign(task.id, Instant::now());
            let finished = AgentMessage::Finished(FinishedReport {
                task_id: task.id,
                outcome: Outcome::Succeeded,
                error: None,
                result: None,
            });
            ws.feed(Message::text(encode(&AgentMessage::Accepted {
                task_id: task.id,
            })?))
            .await
            .context("the websocket send failed")?;
            ws.feed(Message::text(encode(&finished)?))
                .await
                .context("the websocket send failed")?;
            ws.flush().await.context("the websocket send failed")?;
        }
        ServerMessage::Ack { task_id } => stats.on_ack(task_id),
        ServerMessage::Error { code, message } => {
            bail!("the server sent an error: {code}: {message}")
        }
        // Queue, settings and the rest change nothing for a phone that takes
        // no time; a `cancel` always arrives after the task was finished.
        _ => {}
    }
    Ok(())
}
