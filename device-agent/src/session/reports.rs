//! Reports until acked: an unacked `finished` is re-sent every
//! [`RESEND_AFTER`] and in each `hello`, and shutdown waits a little for
//! the acks of the reports just sent.

use std::time::Duration;

use super::{Core, ACK_GRACE};

use tokio::time::Instant;
use tracing::debug;
use youmi_protocol::{AgentMessage, FinishedReport, TaskId};

/// An unacked `finished` is sent again after this long.
const RESEND_AFTER: Duration = Duration::from_secs(10);

/// A finished report the server has not acked.
pub(super) struct Unacked {
    pub(super) report: FinishedReport,
    /// The attempt the report is for; journaled with the ack.
    pub(super) attempt: u32,
    /// When it was last sent; `None` while it waits for a connection.
    pub(super) last_sent: Option<Instant>,
}

impl Core {
    pub(super) fn resend(&mut self, task_id: TaskId) {
        let Some(report) = self.unacked.get(&task_id).map(|u| u.report.clone()) else {
            return;
        };
        if self.conn.is_none() {
            return;
        }
        self.send(AgentMessage::Finished(report));
        if let Some(unacked) = self.unacked.get_mut(&task_id) {
            unacked.last_sent = Some(Instant::now());
        }
    }

    /// Sends again every report that has waited [`RESEND_AFTER`] for its ack.
    pub(super) fn resend_due(&mut self) {
        if self.conn.is_none() {
            return;
        }
        let now = Instant::now();
        let due: Vec<TaskId> = self
            .unacked
            .iter()
            .filter(|(_, u)| u.last_sent.is_none_or(|sent| now >= sent + RESEND_AFTER))
            .map(|(id, _)| *id)
            .collect();
        for task_id in due {
            debug!(task_id, "no ack yet; sending the report again");
            self.resend(task_id);
        }
    }

    /// When the loop must wake with nothing else happening: the next resend,
    /// or the end of the shutdown's wait for acks.
    pub(super) fn next_wake(&self) -> Option<Instant> {
        let resend = self.conn.as_ref().and_then(|_| {
            self.unacked
                .values()
                .map(|u| {
                    u.last_sent
                        .map_or_else(Instant::now, |sent| sent + RESEND_AFTER)
                })
                .min()
        });
        match (resend, self.ack_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// At shutdown: whether to keep the connection a little longer for the
    /// acks of reports already sent on it.
    pub(super) fn waiting_for_acks(&mut self) -> bool {
        let welcomed = self.conn.as_ref().is_some_and(|conn| conn.welcomed);
        if !welcomed || self.unacked.values().all(|u| u.last_sent.is_none()) {
            return false;
        }
        let deadline = *self
            .ack_deadline
            .get_or_insert_with(|| Instant::now() + ACK_GRACE);
        Instant::now() < deadline
    }
}
