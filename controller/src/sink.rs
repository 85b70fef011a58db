//! The scheduler's way out to one connected device.

use youmi_protocol::ServerMessage;

/// A connected device's outbound channel, as the scheduler sees it.
///
/// The gateway implements it over a small bounded channel to the connection's
/// writer task. Both methods return at once: the scheduler never waits on a
/// socket.
pub trait DeviceSink: Send + Sync + 'static {
    /// Queues a frame for the device. An error means the connection is gone or
    /// too slow to keep up; the scheduler then treats the device as disconnected.
    fn send(&self, message: ServerMessage) -> Result<(), SinkClosed>;

    /// Sends an `error` frame with `code` and `reason`, then closes the connection.
    fn close(&self, code: &str, reason: &str);
}

/// The connection behind a [`DeviceSink`] is gone or its buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the device connection is closed or full")]
pub struct SinkClosed;
