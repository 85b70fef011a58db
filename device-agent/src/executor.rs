//! The seam between the agent and the phone: an [`Executor`] does the work of
//! one task, and a [`TaskContext`] is how it reports progress and learns that
//! the task was cancelled.
//!
//! The agent (the runner in [`crate::session`]) decides *when* a task runs and
//! applies the settings that shape every execution (the countdown before a
//! task, do-not-disturb while it runs); an executor only knows *how* to do each
//! kind of task on its phone. This issue ships [`crate::SimulatedPhone`]; an
//! ADB executor comes later and plugs in here.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use youmi_protocol::{AssignedTask, FinishedReport, Outcome, TaskError, TaskId};

use crate::delivery::{DeliveryMark, MarkSink, MemoryMarks};
pub use crate::future::BoxFuture;
use crate::phone::PhoneStatus;

/// Drives one phone. The agent calls it for one task at a time.
pub trait Executor: Send + Sync + 'static {
    /// Runs `task` on the phone. Between steps the executor calls
    /// [`TaskContext::step`], which reports progress and returns
    /// [`TaskFailure::Cancelled`] once the server cancelled the task; the
    /// executor returns that error as it is. On success it returns the task's
    /// result object, if the kind has one.
    fn execute<'a>(
        &'a self,
        task: &'a AssignedTask,
        ctx: &'a TaskContext,
    ) -> BoxFuture<'a, Result<Option<Value>, TaskFailure>>;

    /// Turns the phone's do-not-disturb mode on or off and returns whether it
    /// was on before, so the agent can restore it after the task.
    fn set_do_not_disturb<'a>(&'a self, on: bool) -> BoxFuture<'a, Result<bool, TaskFailure>>;

    /// Shows a countdown of `seconds` on the phone's screen, so a person at the
    /// phone sees a task coming. It returns once the countdown is shown; the
    /// agent does the waiting.
    fn show_countdown<'a>(&'a self, seconds: u32) -> BoxFuture<'a, ()>;

    /// The phone's battery, charging, screen and foreground app, for the
    /// heartbeat. What is not known stays `None`; the default knows nothing
    /// (a simulated phone has no battery). The connection gives it a short
    /// deadline, so an implementation may simply ask the phone.
    fn status(&self) -> BoxFuture<'_, PhoneStatus> {
        Box::pin(async { PhoneStatus::default() })
    }
}

/// Why a task did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskFailure {
    /// The server cancelled the task and the executor stopped at a step boundary.
    #[error("the task was cancelled")]
    Cancelled,
    /// The task could not be done; the error goes to the server as it is.
    #[error("{} ({})", .0.message, .0.code)]
    Failed(TaskError),
    /// The task could not be done, and the executor kept evidence of why:
    /// the step that failed, what the screen showed, where its UI dump and
    /// screenshot were saved. The error goes to the server as it is and the
    /// evidence becomes the `finished` report's `result`, so an operator can
    /// see what happened without going to the phone.
    #[error("{} ({})", .error.message, .error.code)]
    FailedWithEvidence {
        /// Why it failed.
        error: TaskError,
        /// A JSON object describing the failure.
        evidence: Value,
    },
}

impl TaskFailure {
    /// A failure with a stable snake_case `code`, a human `message`, and
    /// whether running the task again is safe and may succeed.
    pub fn failed(code: &str, message: impl Into<String>, retryable: bool) -> Self {
        TaskFailure::Failed(TaskError {
            code: code.to_owned(),
            message: message.into(),
            retryable,
        })
    }

    /// The error the server gets; `None` for a cancellation.
    pub fn error(&self) -> Option<&TaskError> {
        match self {
            TaskFailure::Cancelled => None,
            TaskFailure::Failed(error) | TaskFailure::FailedWithEvidence { error, .. } => {
                Some(error)
            }
        }
    }
}

impl From<TaskError> for TaskFailure {
    fn from(error: TaskError) -> Self {
        TaskFailure::Failed(error)
    }
}

/// The `finished` report for what an execution returned.
pub(crate) fn report(
    task_id: TaskId,
    result: Result<Option<Value>, TaskFailure>,
) -> FinishedReport {
    let (outcome, error, result) = match result {
        Ok(result) => (Outcome::Succeeded, None, result),
        Err(TaskFailure::Cancelled) => (Outcome::Cancelled, None, None),
        Err(TaskFailure::Failed(error)) => (Outcome::Failed, Some(error), None),
        Err(TaskFailure::FailedWithEvidence { error, evidence }) => {
            (Outcome::Failed, Some(error), Some(evidence))
        }
    };
    FinishedReport {
        task_id,
        outcome,
        error,
        result,
    }
}

/// One step of a running task, as `progress` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The running task.
    pub task_id: TaskId,
    /// The step about to be done, e.g. `open_chat`.
    pub step: String,
    /// Steps done so far.
    pub done: u32,
    /// Steps in all.
    pub total: u32,
}

/// How many progress reports may wait for the connection. Progress is
/// optional in the protocol, so a slow connection loses reports rather than
/// slowing the phone down.
const PROGRESS_BUFFER: usize = 32;

/// What an executor sees of the agent while it runs one task.
#[derive(Debug)]
pub struct TaskContext {
    /// The task being run.
    task_id: TaskId,
    /// Becomes true when the server cancels the task.
    cancelled: watch::Receiver<bool>,
    /// Where progress reports go.
    progress: mpsc::Sender<Progress>,
    /// What earlier attempts of the task marked (see [`crate::delivery`]).
    earlier: Vec<DeliveryMark>,
    /// Where this attempt's marks go: the agent's journal.
    sink: Arc<dyn MarkSink>,
    /// The marks written through this context, in order.
    written: Mutex<Vec<DeliveryMark>>,
}

/// The agent's side of a [`TaskContext`]: cancel the task, read its progress.
#[derive(Debug)]
pub struct TaskControl {
    /// Flips the context's cancellation flag.
    cancel: watch::Sender<bool>,
    /// The context's progress reports.
    progress: mpsc::Receiver<Progress>,
}

impl TaskContext {
    /// A context for `task_id` and the control that goes with it. The agent
    /// makes one per task; tests of an executor make their own.
    pub fn new(task_id: TaskId) -> (TaskContext, TaskControl) {
        let (cancel, cancelled) = watch::channel(false);
        let (progress_tx, progress_rx) = mpsc::channel(PROGRESS_BUFFER);
        (
            TaskContext {
                task_id,
                cancelled,
                progress: progress_tx,
                earlier: Vec::new(),
                sink: Arc::new(MemoryMarks::default()),
                written: Mutex::new(Vec::new()),
            },
            TaskControl {
                cancel,
                progress: progress_rx,
            },
        )
    }

    /// The task being run.
    pub fn task_id(&self) -> TaskId {
        self.task_id
    }

    /// This context for a later attempt of a task: `earlier` are the marks
    /// the earlier attempts left (the agent reads them from its journal), so
    /// that the run resumes after what is known sent.
    pub fn resuming(mut self, earlier: Vec<DeliveryMark>) -> TaskContext {
        self.earlier = earlier;
        self
    }

    /// This context with its marks going to `sink` (the agent's journal)
    /// instead of memory.
    pub fn with_sink(mut self, sink: Arc<dyn MarkSink>) -> TaskContext {
        self.sink = sink;
        self
    }

    /// The marks of earlier attempts.
    pub fn earlier_marks(&self) -> &[DeliveryMark] {
        &self.earlier
    }

    /// Records a mark durably before the runner goes on; an error means it
    /// could not be recorded, and the runner must not make the tap.
    pub async fn mark(&self, mark: DeliveryMark) -> Result<(), String> {
        self.sink.write(&mark).await?;
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(mark);
        Ok(())
    }

    /// The marks written through this context, in order.
    pub fn marks(&self) -> Vec<DeliveryMark> {
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The earlier attempts' marks and this one's: what the next attempt
    /// resumes from.
    pub fn all_marks(&self) -> Vec<DeliveryMark> {
        let mut all = self.earlier.clone();
        all.extend(self.marks());
        all
    }

    /// Marks the start of step `name` (`done` of `total` steps are behind):
    /// sends a `progress` frame, or returns [`TaskFailure::Cancelled`] if the
    /// task was cancelled, in which case the executor should stop at once.
    pub async fn step(&self, name: &str, done: u32, total: u32) -> Result<(), TaskFailure> {
        if self.is_cancelled() {
            return Err(TaskFailure::Cancelled);
        }
        let _dropped_when_full = self.progress.try_send(Progress {
            task_id: self.task_id,
            step: name.to_owned(),
            done,
            total,
        });
        // Let the agent forward the report (and notice a cancel) before the
        // executor goes on with a step that may not yield for a while.
        tokio::task::yield_now().await;
        Ok(())
    }

    /// Whether the server cancelled the task.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    /// Resolves when the task is cancelled, so an executor can stop a long
    /// wait (a search that does not come back, say) early. It never resolves
    /// if the agent goes away without cancelling.
    pub async fn cancelled(&self) {
        let mut cancelled = self.cancelled.clone();
        if cancelled.wait_for(|flag| *flag).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl TaskControl {
    /// Cancels the task: its next [`TaskContext::step`] returns
    /// [`TaskFailure::Cancelled`].
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
    }

    /// The next progress report; `None` once the context is gone and every
    /// report was read.
    pub async fn next_progress(&mut self) -> Option<Progress> {
        self.progress.recv().await
    }

    /// A progress report that is already waiting, if any.
    pub fn try_progress(&mut self) -> Option<Progress> {
        self.progress.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn steps_report_progress_until_cancelled() {
        let (ctx, mut control) = TaskContext::new(4);
        assert_eq!(ctx.task_id(), 4);
        ctx.step("open_chat", 0, 2).await.unwrap();
        assert_eq!(
            control.next_progress().await,
            Some(Progress {
                task_id: 4,
                step: "open_chat".to_owned(),
                done: 0,
                total: 2
            })
        );
        assert!(!ctx.is_cancelled());
        control.cancel();
        assert!(ctx.is_cancelled());
        ctx.cancelled().await;
        assert_eq!(ctx.step("send", 1, 2).await, Err(TaskFailure::Cancelled));
        assert_eq!(control.try_progress(), None, "no progress after a cancel");
    }

    #[tokio::test]
    async fn progress_is_dropped_rather_than_blocking() {
        let (ctx, mut control) = TaskContext::new(1);
        for done in 0..(PROGRESS_BUFFER as u32 + 10) {
            ctx.step("type_items", done, 100).await.unwrap();
        }
        let mut received = 0;
        while control.try_progress().is_some() {
            received += 1;
        }
        assert_eq!(received, PROGRESS_BUFFER);
    }

    #[test]
    fn results_map_to_reports() {
        let ok = report(1, Ok(Some(json!({"steps": 3}))));
        assert_eq!(ok.outcome, Outcome::Succeeded);
        assert_eq!(ok.result, Some(json!({"steps": 3})));
        let cancelled = report(2, Err(TaskFailure::Cancelled));
        assert_eq!(cancelled.outcome, Outcome::Cancelled);
        assert!(cancelled.error.is_none());
        let failed = report(
            3,
            Err(TaskFailure::failed("contact_not_found", "no Ann", false)),
        );
        assert_eq!(failed.outcome, Outcome::Failed);
        assert_eq!(failed.error.unwrap().code, "contact_not_found");
        assert!(failed.result.is_none());
        let evidenced = TaskFailure::FailedWithEvidence {
            error: TaskError {
                code: "risk_control".to_owned(),
                message: "操作频繁".to_owned(),
                retryable: false,
            },
            evidence: json!({"step": "open_chat", "screen": ["操作频繁"]}),
        };
        assert_eq!(evidenced.error().unwrap().code, "risk_control");
        assert_eq!(evidenced.to_string(), "操作频繁 (risk_control)");
        let report = report(4, Err(evidenced));
        assert_eq!(report.outcome, Outcome::Failed);
        assert_eq!(report.error.unwrap().code, "risk_control");
        assert_eq!(report.result.unwrap()["step"], "open_chat");
        assert!(TaskFailure::Cancelled.error().is_none());
    }
}
