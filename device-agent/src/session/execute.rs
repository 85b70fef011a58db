//! One execution on the executor: do-not-disturb on around it (and the
//! phone's own state restored, or owed to the next task), delivery marks to
//! the journal, and the report made to fit one frame.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt;
use tracing::{error, info, warn};
use youmi_protocol::{AssignedTask, FinishedReport, MAX_FRAME_BYTES};

use crate::delivery::{DeliveryMark, MarkSink};
use crate::executor::{self, Executor, TaskContext, TaskFailure};
use crate::journal::{Entry, Journal};

/// The largest report that still fits a frame, with room for the envelope.
const MAX_REPORT_BYTES: usize = MAX_FRAME_BYTES - 4096;
/// An error message longer than this is cut; it is for people, not programs.
const MAX_ERROR_MESSAGE_CHARS: usize = 4000;

/// Delivery marks go to the journal, fsynced, on a blocking thread.
#[derive(Debug)]
pub(super) struct JournalMarks(pub(super) Arc<Mutex<Journal>>);

impl MarkSink for JournalMarks {
    fn write<'a>(&'a self, mark: &'a DeliveryMark) -> executor::BoxFuture<'a, Result<(), String>> {
        let journal = Arc::clone(&self.0);
        let entry = Entry::Delivery(*mark);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                journal
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .append(&entry)
                    .map_err(|error| error.to_string())
            })
            .await
            .unwrap_or_else(|error| Err(error.to_string()))
        })
    }
}

/// Runs one task on the executor, with do-not-disturb on around it when asked
/// (and restored whatever the outcome), and turns the outcome into a report.
/// `dnd_to_restore` holds the phone's own state while a restore of it has
/// failed: it is restored before a task that runs without do-not-disturb, and
/// is what a task that runs with it restores to afterwards.
pub(super) async fn execute(
    executor: Arc<dyn Executor>,
    task: AssignedTask,
    ctx: TaskContext,
    do_not_disturb: bool,
    dnd_to_restore: Arc<Mutex<Option<bool>>>,
) -> FinishedReport {
    let owed = dnd_to_restore
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    let previous = if do_not_disturb {
        match executor.set_do_not_disturb(true).await {
            // Still owed a restore: the state now is ours, not the phone's.
            Ok(now) => Some(owed.unwrap_or(now)),
            Err(failure) => {
                warn!(%failure, "cannot turn do-not-disturb on; the task does not run");
                owe_dnd(&dnd_to_restore, owed);
                return executor::report(task.id, Err(failure));
            }
        }
    } else {
        if let Some(original) = owed {
            match executor.set_do_not_disturb(original).await {
                Ok(_) => info!(
                    on = original,
                    "do-not-disturb restored to the phone's own state"
                ),
                Err(failure) => {
                    warn!(%failure, on = original, "still cannot restore do-not-disturb to the phone's own state; trying again before the next task");
                    owe_dnd(&dnd_to_restore, Some(original));
                }
            }
        }
        None
    };
    info!(attempt = task.attempt, "task started");
    let result = AssertUnwindSafe(executor.execute(&task, &ctx))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            error!(panic = %what, "the executor panicked");
            Err(TaskFailure::failed(
                "executor_panicked",
                format!("the executor panicked: {what}"),
                false,
            ))
        });
    if let Some(previous) = previous {
        if let Err(failure) = executor.set_do_not_disturb(previous).await {
            warn!(%failure, on = previous, "cannot restore do-not-disturb to the phone's own state; trying again before the next task");
            owe_dnd(&dnd_to_restore, Some(previous));
        }
    }
    executor::report(task.id, result)
}

/// Remembers the phone's own do-not-disturb state for a later restore.
fn owe_dnd(dnd_to_restore: &Mutex<Option<bool>>, original: Option<bool>) {
    if let Some(original) = original {
        *dnd_to_restore
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(original);
    }
}

/// Makes a report fit one frame: the server refuses frames over 1 MiB, and a
/// report it refuses is never acked, so it would be re-sent forever. An
/// oversized result is replaced by a note saying so; the outcome stands.
pub(super) fn fit_frame(mut report: FinishedReport) -> FinishedReport {
    if let Some(error) = &mut report.error {
        if error.message.chars().count() > MAX_ERROR_MESSAGE_CHARS {
            error.message = error
                .message
                .chars()
                .take(MAX_ERROR_MESSAGE_CHARS)
                .collect();
        }
    }
    let size = serde_json::to_vec(&report).map_or(usize::MAX, |bytes| bytes.len());
    if size > MAX_REPORT_BYTES {
        warn!(
            task_id = report.task_id,
            bytes = size,
            "the task's result is too large for a frame; it is replaced by a note"
        );
        report.result = Some(serde_json::json!({
            "result_dropped": "the result was larger than a protocol frame allows",
            "bytes": size,
        }));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use youmi_protocol::{Outcome, TaskError};

    #[test]
    fn oversized_reports_are_cut_to_fit_a_frame() {
        let big = FinishedReport {
            task_id: 1,
            outcome: Outcome::Succeeded,
            error: None,
            result: Some(json!({"dump": "x".repeat(MAX_FRAME_BYTES)})),
        };
        let fitted = fit_frame(big);
        assert_eq!(fitted.outcome, Outcome::Succeeded);
        assert!(serde_json::to_vec(&fitted).unwrap().len() < MAX_REPORT_BYTES);
        assert!(fitted.result.unwrap()["result_dropped"].is_string());

        let wordy = FinishedReport {
            task_id: 2,
            outcome: Outcome::Failed,
            error: Some(TaskError {
                code: "x".to_owned(),
                message: "y".repeat(10_000),
                retryable: false,
            }),
            result: None,
        };
        let fitted = fit_frame(wordy);
        assert_eq!(
            fitted.error.unwrap().message.chars().count(),
            MAX_ERROR_MESSAGE_CHARS
        );

        let small = FinishedReport {
            task_id: 3,
            outcome: Outcome::Succeeded,
            error: None,
            result: Some(json!({"steps": 3})),
        };
        assert_eq!(fit_frame(small.clone()), small);
    }
}
