//! The connection as the loop sees it: starting and restarting the
//! connection task, its events (connected, frames, closed), the server's
//! frames, and closing it at shutdown.

use std::sync::Arc;
use std::time::Duration;

use super::handle::Command;
use super::{now_ms, Core, HaltReason, TaskGuard};

use tokio::sync::mpsc;
use tokio::task::JoinError;
use tokio::time::{self, Instant};
use tracing::{error, info, warn, Instrument};
use youmi_protocol::{AgentMessage, ServerMessage, UpdateState};

use crate::connection::{self, ConnEvent, ConnectionEnd, Outbound};
use crate::journal::JournalError;

/// At shutdown, how long the connection may take to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// What to answer `update` with until self-update is built.
const UPDATE_NOT_SUPPORTED: &str = "self-update is not supported by this agent";

/// The live connection, as the loop sees it.
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) out: mpsc::UnboundedSender<Outbound>,
    /// `welcome` arrived on this connection.
    pub(super) welcomed: bool,
}

impl Core {
    /// Uploads the logs in a task of its own, which a running task never
    /// waits for; its end comes back to the loop as a command, which answers
    /// the server with `logs_uploaded`.
    fn upload_logs(&mut self, request_id: String, url: String) {
        info!(%request_id, "the server asked for the logs; uploading them");
        let logs = self.logs.clone();
        let commands = self.commands_tx.clone();
        let upload = async move {
            let sources = crate::logs::sources(&logs.state_dir);
            let result =
                crate::logs::upload::upload(&logs.client, &url, &logs.token, sources).await;
            let error = match result {
                Ok(summary) => {
                    info!(
                        %request_id,
                        bytes = summary.bytes,
                        files = summary.included.len(),
                        left_out = summary.left_out.len(),
                        "logs uploaded"
                    );
                    None
                }
                Err(error) => {
                    warn!(%request_id, %error, "the logs could not be uploaded");
                    Some(error.to_string())
                }
            };
            let _ = commands.send(Command::LogsUploaded { request_id, error });
        };
        tokio::spawn(upload.in_current_span());
    }

    pub(super) async fn on_event(&mut self, event: ConnEvent) -> Result<(), JournalError> {
        match event {
            ConnEvent::Connected { conn, out, hello } => {
                let now = Instant::now();
                for unacked in self.unacked.values_mut() {
                    unacked.last_sent = Some(now);
                }
                let message = AgentMessage::Hello {
                    agent_version: crate::AGENT_VERSION.to_owned(),
                    device: self.device.clone(),
                    queue_paused: self.paused,
                    running: self.running_ids(),
                    finished: self.unacked.values().map(|u| u.report.clone()).collect(),
                };
                info!(
                    conn,
                    running = self.pending.len() + usize::from(!self.slot.is_idle()),
                    unacked = self.unacked.len(),
                    "sending hello"
                );
                self.conn = Some(Conn {
                    id: conn,
                    out,
                    welcomed: false,
                });
                let _ = hello.send(message);
            }
            ConnEvent::Frame { conn, message } => {
                if self.conn.as_ref().is_some_and(|c| c.id == conn) {
                    self.on_message(message).await?;
                }
            }
            ConnEvent::Disconnected { conn } => {
                if self.conn.as_ref().is_some_and(|c| c.id == conn) {
                    self.conn = None;
                    info!(conn, "disconnected; reconnecting");
                }
            }
        }
        Ok(())
    }

    /// Starts the connection task.
    pub(super) fn start_connection(&mut self) {
        self.connection_task = Some(TaskGuard::spawn(connection::run(
            self.connection.clone(),
            self.events_tx.clone(),
            Arc::clone(&self.connection_numbers),
        )));
    }

    /// The connection task ended: a revoked token halts the agent; a panic
    /// (a bug) must not leave the phone offline for good, so it is restarted.
    pub(super) fn on_connection_end(&mut self, end: Result<ConnectionEnd, JoinError>) {
        self.connection_task = None;
        self.conn = None;
        match end {
            Ok(ConnectionEnd::Revoked) => {
                self.halted = Some(HaltReason::Revoked);
                self.put_back_countdown("the device token was revoked");
            }
            Ok(ConnectionEnd::Stopped) => {}
            Err(error) => {
                error!(%error, "the connection task failed; starting it again");
                self.start_connection();
            }
        }
    }

    /// Sends a frame on the live connection. False without one: the caller's
    /// frame is then covered by the next `hello` or dropped (progress).
    pub(super) fn send(&self, message: AgentMessage) -> bool {
        match &self.conn {
            Some(conn) => conn.out.send(Outbound::Frame(message)).is_ok(),
            None => false,
        }
    }

    async fn on_message(&mut self, message: ServerMessage) -> Result<(), JournalError> {
        match message {
            ServerMessage::Welcome {
                device_id,
                operator_account_id,
                settings,
                server_time_ms,
            } => {
                if device_id != self.device_id {
                    warn!(
                        welcome_device_id = %device_id,
                        "the server welcomed a different device id than the credentials name"
                    );
                }
                self.clock_offset_ms = server_time_ms.saturating_sub(now_ms());
                self.settings = settings;
                if let Some(conn) = &mut self.conn {
                    conn.welcomed = true;
                }
                info!(operator_account_id, "welcomed by the server");
                if !self.settings_known {
                    self.settings_known = true;
                    if !settings.start_queue_on_open && !self.paused {
                        info!("start_queue_on_open is off: the queue starts paused");
                        self.set_paused(true, "start_queue_on_open", true);
                    }
                }
            }
            ServerMessage::Assign { task } => self.on_assign(task).await?,
            ServerMessage::Ack { task_id } => self.on_ack(task_id).await?,
            ServerMessage::Cancel { task_id } => self.on_cancel(task_id).await?,
            ServerMessage::Queue {
                paused,
                resume_at_ms,
            } => {
                info!(paused, resume_at_ms, "the server changed the queue");
                self.set_paused(paused, "server", false);
            }
            ServerMessage::Settings { settings } => {
                info!(?settings, "new settings");
                self.settings = settings;
            }
            ServerMessage::UploadLogs { request_id, url } => self.upload_logs(request_id, url),
            ServerMessage::Update { version, .. } => {
                warn!(%version, "the server asked for an update; {UPDATE_NOT_SUPPORTED}");
                self.send(AgentMessage::UpdateStatus {
                    version,
                    state: UpdateState::Failed,
                    message: Some(UPDATE_NOT_SUPPORTED.to_owned()),
                });
            }
            ServerMessage::Error { code, message } => {
                warn!(%code, %message, "the server reported an error");
            }
        }
        Ok(())
    }

    /// Closes the connection at the end: a polite close when connected (the
    /// connection passes on late acks meanwhile), an abort otherwise.
    pub(super) async fn close_connection(&mut self, events: &mut mpsc::Receiver<ConnEvent>) {
        let Some(mut task) = self.connection_task.take() else {
            return;
        };
        let Some(conn) = &self.conn else {
            return; // Dropping the guard aborts a connection still trying.
        };
        let _ = conn.out.send(Outbound::Close);
        let deadline = time::sleep(CLOSE_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut task => break,
                event = events.recv() => match event {
                    Some(ConnEvent::Frame { message: ServerMessage::Ack { task_id }, .. }) => {
                        if self.on_ack(task_id).await.is_err() {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => break,
                },
                () = &mut deadline => {
                    warn!("the connection did not close in time");
                    break;
                }
            }
        }
    }
}

/// Resolves when the connection task ends; never while there is none.
pub(super) async fn wait_connection(
    task: &mut Option<TaskGuard<ConnectionEnd>>,
) -> Result<ConnectionEnd, JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}
