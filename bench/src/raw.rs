//! The hidden `__raw-server` command: a bare axum WebSocket endpoint with no
//! scheduler and no database. After `hello` and `welcome`, each connection
//! waits for `POST /start`, then plays its share of tasks as fast as it can,
//! four frames each: `assign` out, `accepted` and `finished` in, `ack` out. Its
//! rate is the transport's limit on this machine, what `dispatch` compares the
//! real server against. Its buffers and TCP_NODELAY match the real gateway's.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use youmi_protocol::{
    AgentMessage, AgentSettings, AssignedTask, ServerMessage, TaskKind, MAX_FRAME_BYTES,
};

use crate::child::{on_stdin_closed, LISTENING};

/// The WebSocket route of the bare endpoint.
pub const WS_PATH: &str = "/ws";
/// The route that starts the exchanges.
pub const START_PATH: &str = "/start";
/// The real gateway's read buffer, kept equal for a fair comparison.
const READ_BUFFER_BYTES: usize = 2 * 1024;
/// As the gateway's: frames fed before a flush go out in one write.
const WRITE_BUFFER_BYTES: usize = 4 * 1024;

/// `POST /start` body: how many tasks each connection plays. Connections are
/// numbered in the order they said hello; the first `extra` play one more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Tasks every connection plays.
    pub per_connection: u64,
    /// How many connections play one task more.
    pub extra: u64,
}

impl Plan {
    /// `tasks` spread over `connections` as evenly as the real run spreads
    /// them over accounts.
    pub fn spread(tasks: u64, connections: u64) -> Plan {
        let connections = connections.max(1);
        Plan {
            per_connection: tasks / connections,
            extra: tasks % connections,
        }
    }

    /// The share of connection number `index`.
    fn share(self, index: u64) -> u64 {
        self.per_connection + u64::from(index < self.extra)
    }
}

/// What every connection shares.
struct RawState {
    /// Hello order of the next connection.
    next_index: AtomicU64,
    /// Id of the next task, unique across connections like the real ones.
    next_task: AtomicI64,
    /// The plan, once `/start` gave it.
    start: watch::Sender<Option<Plan>>,
}

/// Serves the bare endpoint until stdin closes.
pub async fn run() -> anyhow::Result<()> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("cannot listen on a loopback port")?;
    let addr = listener
        .local_addr()
        .context("cannot read the listener's address")?;
    let state = Arc::new(RawState {
        next_index: AtomicU64::new(0),
        next_task: AtomicI64::new(1),
        start: watch::channel(None).0,
    });
    let app = Router::new()
        .route(WS_PATH, get(upgrade))
        .route(START_PATH, post(start))
        .with_state(state);
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
    });
    println!("{LISTENING}{addr}");
    // Nothing here needs a graceful end: there is no state to save.
    on_stdin_closed(|| std::process::exit(0));
    axum::serve(listener, app)
        .await
        .context("the bare endpoint failed")
}

async fn start(State(state): State<Arc<RawState>>, Json(plan): Json<Plan>) -> StatusCode {
    state.start.send_replace(Some(plan));
    StatusCode::NO_CONTENT
}

async fn upgrade(State(state): State<Arc<RawState>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            if let Err(error) = play(state, socket).await {
                tracing::warn!(error = format!("{error:#}"), "bare connection failed");
            }
        })
}

/// Reads the next agent frame, skipping heartbeats and control frames; `None`
/// once the peer closed.
async fn next_message(socket: &mut WebSocket) -> anyhow::Result<Option<AgentMessage>> {
    while let Some(frame) = socket.next().await {
        match frame.context("the websocket read failed")? {
            Message::Text(text) => {
                let message: AgentMessage =
                    serde_json::from_str(text.as_str()).context("a frame is not protocol v1")?;
                if !matches!(message, AgentMessage::Heartbeat { .. }) {
                    return Ok(Some(message));
                }
            }
            Message::Close(_) => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> anyhow::Result<()> {
    feed(socket, message).await?;
    socket.flush().await.context("the websocket send failed")
}

/// Buffers a frame for the next flush, as the gateway queues an `ack` and the
/// next `assign` of one commit for one write.
async fn feed(socket: &mut WebSocket, message: &ServerMessage) -> anyhow::Result<()> {
    let text = serde_json::to_string(message).context("cannot encode a frame")?;
    socket
        .feed(Message::Text(text.into()))
        .await
        .context("the websocket send failed")
}

async fn play(state: Arc<RawState>, mut socket: WebSocket) -> anyhow::Result<()> {
    let Some(AgentMessage::Hello { .. }) = next_message(&mut socket).await? else {
        anyhow::bail!("the first frame was not `hello`");
    };
    let index = state.next_index.fetch_add(1, Ordering::Relaxed);
    send(
        &mut socket,
        &ServerMessage::Welcome {
            device_id: format!("raw-{index}"),
            operator_account_id: i64::try_from(index).unwrap_or(i64::MAX),
            settings: AgentSettings::default(),
            server_time_ms: 0,
        },
    )
    .await?;
    let mut start = state.start.subscribe();
    let plan = match start.wait_for(Option::is_some).await {
        Ok(plan) => (*plan).unwrap_or(Plan {
            per_connection: 0,
            extra: 0,
        }),
        Err(_) => return Ok(()),
    };
    // The same payload the real run submits, as the server would store it.
    let payload = crate::api::chat_task(0, 0).payload;
    // Each `ack` leaves with the next `assign`, in one write, as at best the
    // real gateway's do (one commit stores a result and dispatches the next).
    let mut ack = None;
    for _ in 0..plan.share(index) {
        let id = state.next_task.fetch_add(1, Ordering::Relaxed);
        if let Some(ack) = ack.take() {
            feed(&mut socket, &ack).await?;
        }
        send(
            &mut socket,
            &ServerMessage::Assign {
                task: AssignedTask {
                    id,
                    kind: TaskKind::SendMessage,
                    payload: payload.clone(),
                    attempt: 1,
                    not_after_ms: None,
                },
            },
        )
        .await?;
        let (mut accepted, mut finished) = (false, false);
        while !(accepted && finished) {
            match next_message(&mut socket).await? {
                Some(AgentMessage::Accepted { task_id }) if task_id == id => accepted = true,
                Some(AgentMessage::Finished(report)) if report.task_id == id => finished = true,
                Some(other) => anyhow::bail!("unexpected frame during task {id}: {other:?}"),
                None => return Ok(()),
            }
        }
        ack = Some(ServerMessage::Ack { task_id: id });
    }
    if let Some(ack) = ack {
        send(&mut socket, &ack).await?;
    }
    // Stay connected, as an idle phone does, until the client leaves.
    while next_message(&mut socket).await?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_spreads_every_task() {
        let plan = Plan::spread(10, 4);
        let shares: Vec<u64> = (0..4).map(|i| plan.share(i)).collect();
        assert_eq!(shares, vec![3, 3, 2, 2]);
        assert_eq!(shares.iter().sum::<u64>(), 10);
        assert_eq!(Plan::spread(5, 0).share(0), 5);
    }
}
