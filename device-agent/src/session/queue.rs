//! The delivery rules for what the server sends: an `assign` is journaled
//! before `accepted` and a duplicate is told apart by its attempt; `ack` and
//! `cancel`; and the queue's pause, from the server, the phone or the handle.

use std::collections::{HashMap, VecDeque};

use super::handle::Command;
use super::slot::Slot;
use super::Core;

use tracing::{debug, info, warn};
use youmi_protocol::agent::refusal_code;
use youmi_protocol::{AgentMessage, AssignedTask, TaskId, TaskPayload};

use crate::executor::{self, TaskFailure};
use crate::journal::{AckedAttempt, Entry, JournalError};

/// Acked tasks remembered in memory to recognise a late duplicate `assign`.
const RECENT_ACKED: usize = 1024;

/// A bounded map of recently acked task ids to the attempt that was acked.
#[derive(Default)]
pub(super) struct RecentAcks {
    /// Oldest first, one per task id.
    order: VecDeque<TaskId>,
    attempts: HashMap<TaskId, u32>,
}

impl RecentAcks {
    /// Records an ack as the most recent one. The attempt known for a task
    /// never goes down: a lower one would let a late duplicate run again.
    pub(super) fn insert(&mut self, id: TaskId, attempt: u32) {
        match self.attempts.get_mut(&id) {
            Some(known) => {
                *known = (*known).max(attempt);
                self.order.retain(|other| *other != id);
                self.order.push_back(id);
            }
            None => {
                self.attempts.insert(id, attempt);
                self.order.push_back(id);
                if self.order.len() > RECENT_ACKED {
                    if let Some(old) = self.order.pop_front() {
                        self.attempts.remove(&old);
                    }
                }
            }
        }
    }

    /// The attempt acked for the task, if it is among the recent acks.
    pub(super) fn attempt(&self, id: TaskId) -> Option<u32> {
        self.attempts.get(&id).copied()
    }

    /// Forgets the task's ack: a retry of it was accepted.
    fn remove(&mut self, id: TaskId) {
        if self.attempts.remove(&id).is_some() {
            self.order.retain(|other| *other != id);
        }
    }
}

impl Core {
    /// Whether the task id is under way here: queued, in the slot, or finished
    /// and unacked. An `assign` of such a task is a duplicate.
    pub(super) fn holds(&self, id: TaskId) -> bool {
        self.slot.task_id() == Some(id)
            || self.pending.iter().any(|task| task.id == id)
            || self.unacked.contains_key(&id)
    }

    pub(super) async fn on_assign(&mut self, task: AssignedTask) -> Result<(), JournalError> {
        let id = task.id;
        if self.holds(id) {
            if self.unacked.contains_key(&id) {
                debug!(
                    task_id = id,
                    attempt = task.attempt,
                    "duplicate assign of a finished task; sending its report again"
                );
                self.resend(id);
            } else {
                debug!(
                    task_id = id,
                    attempt = task.attempt,
                    "duplicate assign ignored"
                );
            }
            return Ok(());
        }
        let acked_attempt = self.acked.attempt(id);
        if let Some(acked) = acked_attempt {
            if task.attempt <= acked {
                // The server re-sends an `assign` only while it waits for
                // `accepted`, so this one was overtaken by the whole run of
                // the task. Running it again could send a message twice.
                debug!(
                    task_id = id,
                    attempt = task.attempt,
                    acked_attempt = acked,
                    "late duplicate assign of an acked task ignored"
                );
                return Ok(());
            }
        }
        if self.halted.is_some() || self.shutting_down {
            // Not accepted: the server assigns it again elsewhere or later.
            warn!(task_id = id, "not accepting a task while stopping");
            return Ok(());
        }
        if let Err(error) = TaskPayload::parse(task.kind, &task.payload) {
            // A payload this version does not understand would fail on the
            // phone anyway; refused now, the server ends the task at once and
            // the queue moves on.
            warn!(task_id = id, kind = %task.kind, %error, "refusing a task whose payload this agent does not understand");
            self.send(AgentMessage::Refused {
                task_id: id,
                code: refusal_code::PAYLOAD_NOT_UNDERSTOOD.to_owned(),
                message: error.to_string(),
            });
            return Ok(());
        }
        self.append(Entry::Accepted(task.clone())).await?;
        if let Some(acked) = acked_attempt {
            // The server retries a retryable failure under the same id with a
            // higher attempt: new work. The journal dropped the ack record
            // with the `accepted` just written; from now on the task is held,
            // which is what makes further copies of this `assign` duplicates.
            info!(
                task_id = id,
                attempt = task.attempt,
                acked_attempt = acked,
                "retry of a task whose earlier attempt was acked"
            );
            self.acked.remove(id);
        }
        self.send(AgentMessage::Accepted { task_id: id });
        if let Some(running) = self.slot.task_id() {
            warn!(
                task_id = id,
                running,
                "the server assigned a task while another one runs; it waits in the local queue"
            );
        }
        info!(task_id = id, kind = %task.kind, attempt = task.attempt, "task accepted");
        self.pending.push_back(task);
        Ok(())
    }

    pub(super) async fn on_ack(&mut self, task_id: TaskId) -> Result<(), JournalError> {
        let Some(attempt) = self.unacked.get(&task_id).map(|u| u.attempt) else {
            debug!(task_id, "ack for a task with no unacked report; ignored");
            return Ok(());
        };
        self.append(Entry::Acked(AckedAttempt { task_id, attempt }))
            .await?;
        self.unacked.remove(&task_id);
        self.acked.insert(task_id, attempt);
        debug!(task_id, attempt, "report acked");
        Ok(())
    }

    pub(super) async fn on_cancel(&mut self, task_id: TaskId) -> Result<(), JournalError> {
        match &self.slot {
            Slot::Running {
                task_id: running,
                control,
                span,
                ..
            } if *running == task_id => {
                span.in_scope(|| info!("cancel asked; the task stops at its next step"));
                control.cancel();
                return Ok(());
            }
            Slot::Countdown { task, span, .. } if task.id == task_id => {
                span.in_scope(|| info!("cancelled during the countdown"));
                let attempt = task.attempt;
                self.slot = Slot::Idle;
                return self
                    .finish(
                        executor::report(task_id, Err(TaskFailure::Cancelled)),
                        attempt,
                    )
                    .await;
            }
            _ => {}
        }
        if let Some(task) = self
            .pending
            .iter()
            .position(|task| task.id == task_id)
            .and_then(|index| self.pending.remove(index))
        {
            info!(task_id, "cancelled before it started");
            return self
                .finish(
                    executor::report(task_id, Err(TaskFailure::Cancelled)),
                    task.attempt,
                )
                .await;
        }
        if self.unacked.contains_key(&task_id) {
            debug!(
                task_id,
                "cancel of a finished task; sending its report again"
            );
            self.resend(task_id);
        } else {
            debug!(task_id, "cancel of an unknown task ignored");
        }
        Ok(())
    }

    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::Pause(reason) => self.set_paused(true, &reason, true),
            Command::Resume(reason) => self.set_paused(false, &reason, true),
            Command::LogsUploaded { request_id, error } => {
                self.send(AgentMessage::LogsUploaded { request_id, error });
            }
            Command::Shutdown => {
                if !self.shutting_down {
                    info!("shutting down: nothing new starts; a running task finishes");
                    self.shutting_down = true;
                    self.put_back_countdown("the agent is shutting down");
                }
            }
        }
    }

    /// Pauses or resumes the queue; `tell_server` for changes made on the
    /// phone's side, which the server learns through `queue_changed`.
    pub(super) fn set_paused(&mut self, paused: bool, reason: &str, tell_server: bool) {
        if paused != self.paused {
            info!(
                paused,
                reason,
                "queue {}",
                if paused { "paused" } else { "resumed" }
            );
        }
        self.paused = paused;
        if paused {
            self.put_back_countdown("the queue was paused");
        }
        if tell_server {
            self.send(AgentMessage::QueueChanged {
                paused,
                reason: reason.to_owned(),
            });
        }
    }

    /// A task counting down has not started: it goes back to the head of the
    /// queue rather than start after a pause, shutdown or revocation.
    pub(super) fn put_back_countdown(&mut self, why: &str) {
        if let Slot::Countdown { .. } = self.slot {
            if let Slot::Countdown { task, span, .. } =
                std::mem::replace(&mut self.slot, Slot::Idle)
            {
                span.in_scope(|| info!("countdown stopped: {why}; the task waits in the queue"));
                self.pending.push_front(task);
            }
        }
    }
}
