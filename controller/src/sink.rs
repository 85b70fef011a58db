//! The scheduler's way out to one connected device.

use std::sync::Arc;

use youmi_protocol::{AssignedTask, ServerMessage, TaskId, TaskKind};

/// A connected device's outbound channel, as the scheduler sees it.
///
/// The gateway implements it over a small bounded channel to the connection's
/// writer task. Both methods return at once: the scheduler never waits on a
/// socket.
pub trait DeviceSink: Send + Sync + 'static {
    /// Queues a frame for the device. An error means the connection is gone or
    /// too slow to keep up; the scheduler then treats the device as disconnected.
    fn send(&self, message: ServerMessage) -> Result<(), SinkClosed>;

    /// Queues an `assign` frame. The default builds the [`ServerMessage`]; a
    /// sink that writes JSON can write the payload text as it is instead
    /// ([`youmi_protocol::agent::assign_frame`]), which saves parsing and
    /// re-writing every payload on the hot path.
    fn send_assign(&self, assign: Assign) -> Result<(), SinkClosed> {
        self.send(assign.to_message())
    }

    /// Sends an `error` frame with `code` and `reason`, then closes the connection.
    fn close(&self, code: &str, reason: &str);
}

/// The connection behind a [`DeviceSink`] is gone or its buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the device connection is closed or full")]
pub struct SinkClosed;

/// A task to hand to a device, with its payload still as the JSON text it was
/// stored as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assign {
    /// The task.
    pub id: TaskId,
    /// Its kind.
    pub kind: TaskKind,
    /// 1 for the first run, counting up on retries.
    pub attempt: u32,
    /// Do not start it after this time (Unix milliseconds).
    pub not_after_ms: Option<i64>,
    /// The payload as JSON text, checked at submission.
    pub payload: Arc<str>,
}

impl Assign {
    /// The `assign` message. The text was checked at submission; should it
    /// not parse (a hand-edited database), the agent gets it as a string
    /// rather than the scheduler stopping.
    pub fn to_message(&self) -> ServerMessage {
        let payload = serde_json::from_str(&self.payload)
            .unwrap_or_else(|_| serde_json::Value::String(self.payload.to_string()));
        ServerMessage::Assign {
            task: AssignedTask {
                id: self.id,
                kind: self.kind,
                payload,
                attempt: self.attempt,
                not_after_ms: self.not_after_ms,
            },
        }
    }

    /// The `assign` frame as JSON text, with the payload written as it is.
    pub fn to_json(&self) -> String {
        youmi_protocol::agent::assign_frame(
            self.id,
            self.kind,
            self.attempt,
            self.not_after_ms,
            &self.payload,
        )
        .unwrap_or_else(|_| serde_json::to_string(&self.to_message()).unwrap_or_default())
    }
}
