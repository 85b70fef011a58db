//! [`AgentHandle`]: how the program that started an agent watches it (its
//! status, connected, halted) and steers it (pause, resume, shutdown, kill)
//! through the loop's command channel.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{AgentStatus, HaltReason};

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::{self};

/// What the handle asks of the agent's loop.
pub(super) enum Command {
    Pause(String),
    Resume(String),
    Shutdown,
    /// A log upload ended: answer the server's `upload_logs`.
    LogsUploaded {
        request_id: String,
        error: Option<String>,
    },
}

/// Watches and steers a running agent. Cloning it is cheap; dropping every
/// clone leaves the agent running.
#[derive(Clone)]
pub struct AgentHandle {
    pub(super) inner: Arc<HandleInner>,
}

pub(super) struct HandleInner {
    /// To the agent's loop.
    pub(super) commands: mpsc::UnboundedSender<Command>,
    /// The loop publishes its status here; the channel closes when it ends.
    pub(super) status: watch::Receiver<AgentStatus>,
    /// Stops the loop (and with it the connection and the running task).
    pub(super) abort: AbortHandle,
    /// Set by [`AgentHandle::kill`], so the status says disconnected at once.
    pub(super) killed: AtomicBool,
}

impl fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentHandle")
            .field("status", &self.status())
            .finish()
    }
}

impl AgentHandle {
    /// The agent's state now. After a shutdown or kill it shows disconnected
    /// with no current task.
    pub fn status(&self) -> AgentStatus {
        let mut status = self.inner.status.borrow().clone();
        if self.inner.killed.load(Ordering::SeqCst) || self.inner.status.has_changed().is_err() {
            status.connected = false;
            status.current_task = None;
        }
        status
    }

    /// Waits until the agent is connected (the server answered `hello`), for
    /// at most `timeout`. False if the time ran out or the agent stopped.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut status = self.inner.status.clone();
        let connected = time::timeout(timeout, status.wait_for(|status| status.connected)).await;
        matches!(connected, Ok(Ok(_))) && !self.inner.killed.load(Ordering::SeqCst)
    }

    /// Waits until the agent halts by itself and says why, or returns `None`
    /// when it stopped for another reason (shutdown, kill).
    pub async fn wait_halted(&self) -> Option<HaltReason> {
        let mut status = self.inner.status.clone();
        let seen = status
            .wait_for(|status| status.halted.is_some())
            .await
            .map(|status| status.halted.clone());
        match seen {
            Ok(halted) => halted,
            // The loop ended; its last status may still say why.
            Err(_) => status.borrow().halted.clone(),
        }
    }

    /// Pauses the queue on the phone's side (as the volume keys would): no new
    /// task starts, a running one finishes, and the server is told with
    /// `queue_changed {paused: true, reason}`.
    pub fn pause_queue(&self, reason: &str) {
        let _ = self.inner.commands.send(Command::Pause(reason.to_owned()));
    }

    /// Resumes the queue on the phone's side and tells the server.
    pub fn resume_queue(&self, reason: &str) {
        let _ = self.inner.commands.send(Command::Resume(reason.to_owned()));
    }

    /// Stops gracefully: starts nothing new, lets a running task finish and
    /// reports it, waits briefly for the server's acks, closes the socket.
    /// The journal is already on disk (every entry is fsynced); tasks still
    /// queued stay in it and run after the next start. Returns when the agent
    /// has stopped.
    pub async fn shutdown(self) {
        let _ = self.inner.commands.send(Command::Shutdown);
        let mut status = self.inner.status.clone();
        while status.changed().await.is_ok() {}
    }

    /// Stops at once, as a crash would: the loop, the connection and the
    /// running task are aborted wherever they are. The journal stays as it is
    /// on disk, and the next start recovers from it.
    pub fn kill(&self) {
        self.inner.killed.store(true, Ordering::SeqCst);
        self.inner.abort.abort();
    }
}
