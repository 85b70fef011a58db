//! The task slot: one task at a time, counting down then running, started
//! only when the queue may start one; `started` and `finished` journaled
//! around it.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::execute::{execute, fit_frame, JournalMarks};
use super::reports::Unacked;
use super::{now_ms, Core, TaskGuard, COUNTDOWN_SECONDS};

use tokio::task::JoinError;
use tokio::time::{self, Instant};
use tracing::{error, info, info_span, warn, Instrument, Span};
use youmi_protocol::{AgentMessage, AssignedTask, FinishedReport, Outcome, TaskId};

use crate::executor::{self, Progress, TaskContext, TaskControl, TaskFailure};
use crate::journal::{Entry, FinishedAttempt, JournalError};

/// The one task the agent works on.
pub(super) enum Slot {
    Idle,
    /// The countdown is on the phone's screen; the task has not started and
    /// goes back to the queue if the queue is paused meanwhile.
    Countdown {
        task: AssignedTask,
        timer: TaskGuard<()>,
        span: Span,
    },
    /// The task is running (`started` is journaled).
    Running {
        task_id: TaskId,
        /// Kept for the report, which is acked by attempt.
        attempt: u32,
        control: TaskControl,
        run: TaskGuard<FinishedReport>,
        span: Span,
    },
}

/// What happened in the slot.
pub(super) enum SlotEvent {
    CountdownOver,
    Progress(Progress),
    Done(Result<FinishedReport, JoinError>),
}

impl Slot {
    pub(super) fn task_id(&self) -> Option<TaskId> {
        match self {
            Slot::Idle => None,
            Slot::Countdown { task, .. } => Some(task.id),
            Slot::Running { task_id, .. } => Some(*task_id),
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        matches!(self, Slot::Idle)
    }

    /// The slot's next event; never resolves while idle.
    pub(super) async fn wait(&mut self) -> SlotEvent {
        match self {
            Slot::Idle => std::future::pending().await,
            Slot::Countdown { timer, .. } => {
                let _ = timer.await;
                SlotEvent::CountdownOver
            }
            Slot::Running { control, run, .. } => {
                tokio::select! {
                    biased;
                    Some(progress) = control.next_progress() => SlotEvent::Progress(progress),
                    done = run => SlotEvent::Done(done),
                }
            }
        }
    }
}

impl Core {
    fn may_start(&self) -> bool {
        self.slot.is_idle()
            && !self.paused
            && self.settings_known
            && !self.shutting_down
            && self.halted.is_none()
    }

    /// Starts the next queued task if nothing runs and the queue may run.
    pub(super) async fn start_next(&mut self) -> Result<(), JournalError> {
        while self.may_start() {
            let Some(task) = self.pending.pop_front() else {
                return Ok(());
            };
            let span = info_span!("task", task_id = task.id, kind = %task.kind);
            if self.expired(&task) {
                span.in_scope(|| warn!("not started: its not_after time has passed"));
                let failure = TaskFailure::failed(
                    "expired",
                    "the task was not started before its not_after time",
                    false,
                );
                self.finish(executor::report(task.id, Err(failure)), task.attempt)
                    .await?;
                continue;
            }
            if self.settings.countdown_popup {
                span.in_scope(|| info!(seconds = COUNTDOWN_SECONDS, "countdown before the task"));
                let executor = Arc::clone(&self.executor);
                let timer = TaskGuard::spawn(
                    async move {
                        executor.show_countdown(COUNTDOWN_SECONDS).await;
                        time::sleep(Duration::from_secs(u64::from(COUNTDOWN_SECONDS))).await;
                    }
                    .instrument(span.clone()),
                );
                self.slot = Slot::Countdown { task, timer, span };
            } else {
                self.begin(task, span).await?;
            }
        }
        Ok(())
    }

    /// Journals `started`, then hands the task to the executor, wrapped in
    /// do-not-disturb when the settings ask for it.
    async fn begin(&mut self, task: AssignedTask, span: Span) -> Result<(), JournalError> {
        if self.expired(&task) {
            span.in_scope(|| warn!("not started: its not_after time passed during the countdown"));
            let failure = TaskFailure::failed(
                "expired",
                "the task was not started before its not_after time",
                false,
            );
            return self
                .finish(executor::report(task.id, Err(failure)), task.attempt)
                .await;
        }
        self.append(Entry::Started(task.id)).await?;
        let task_id = task.id;
        let attempt = task.attempt;
        let (ctx, control) = TaskContext::new(task_id);
        // A retry resumes after what the earlier attempts marked sent, and
        // this attempt's marks go to the journal before each tap.
        let earlier = self
            .journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .state()
            .marks(task_id);
        if !earlier.is_empty() {
            span.in_scope(|| {
                info!(
                    marks = earlier.len(),
                    "resuming after the earlier attempts' progress"
                )
            });
        }
        let ctx = ctx
            .resuming(earlier)
            .with_sink(Arc::new(JournalMarks(Arc::clone(&self.journal))));
        let run = TaskGuard::spawn(
            execute(
                Arc::clone(&self.executor),
                task,
                ctx,
                self.settings.dnd_while_running,
                Arc::clone(&self.dnd_to_restore),
            )
            .instrument(span.clone()),
        );
        self.slot = Slot::Running {
            task_id,
            attempt,
            control,
            run,
            span,
        };
        Ok(())
    }

    pub(super) async fn on_slot(&mut self, event: SlotEvent) -> Result<(), JournalError> {
        match event {
            SlotEvent::CountdownOver => {
                if let Slot::Countdown { task, span, .. } =
                    std::mem::replace(&mut self.slot, Slot::Idle)
                {
                    self.begin(task, span).await?;
                }
            }
            SlotEvent::Progress(progress) => {
                self.send(AgentMessage::Progress {
                    task_id: progress.task_id,
                    step: progress.step,
                    done: progress.done,
                    total: progress.total,
                });
            }
            SlotEvent::Done(done) => {
                let Slot::Running {
                    task_id,
                    attempt,
                    span,
                    ..
                } = std::mem::replace(&mut self.slot, Slot::Idle)
                else {
                    return Ok(());
                };
                let report = done.unwrap_or_else(|error| {
                    // `execute` catches executor panics, so this is a panic in
                    // the runner itself; the task may have done anything.
                    span.in_scope(|| error!(%error, "the task's runner failed"));
                    executor::report(
                        task_id,
                        Err(TaskFailure::failed(
                            "agent_error",
                            format!("the agent's task runner failed: {error}"),
                            false,
                        )),
                    )
                });
                self.finish(report, attempt).instrument(span).await?;
            }
        }
        Ok(())
    }

    fn expired(&self, task: &AssignedTask) -> bool {
        task.not_after_ms
            .is_some_and(|not_after| now_ms().saturating_add(self.clock_offset_ms) > not_after)
    }

    /// Journals the report of the task's `attempt`, then sends it; it stays
    /// unacked until the server acks it.
    pub(super) async fn finish(
        &mut self,
        report: FinishedReport,
        attempt: u32,
    ) -> Result<(), JournalError> {
        let report = fit_frame(report);
        self.append(Entry::Finished(FinishedAttempt {
            report: report.clone(),
            attempt,
        }))
        .await?;
        self.tasks_finished += 1;
        let task_id = report.task_id;
        match (&report.outcome, &report.error) {
            (Outcome::Failed, Some(error)) => {
                warn!(task_id, code = %error.code, message = %error.message, "task failed")
            }
            (outcome, _) => info!(task_id, ?outcome, "task finished"),
        }
        self.send(AgentMessage::Finished(report.clone()));
        // Without a connection the report waits for the next `hello`; with
        // one, a send that failed (the socket just went) is covered by the
        // `hello` of the next connection, so it counts as sent either way.
        self.unacked.insert(
            task_id,
            Unacked {
                report,
                attempt,
                last_sent: self.conn.is_some().then(Instant::now),
            },
        );
        Ok(())
    }
}
