//! The controller's metrics: their names (the one place code and docs take
//! them from), what each means, and the handles the scheduler and the writer
//! update as things happen.
//!
//! Metrics go through the [`metrics`] facade. The handles are registered once,
//! when the controller starts, with the recorder of
//! [`ControllerConfig::metrics`](crate::ControllerConfig::metrics), or the
//! process's global one when there is none; from then on an update is an atomic
//! add on a handle, with no name or label to look up or allocate. With no
//! recorder at all every handle is a no-op, and an update is one branch.
//!
//! `docs/operations.md` documents every metric in one table.

use std::fmt;
use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Recorder, Unit};
use youmi_protocol::{TaskKind, TaskState};

/// Gauge: devices whose agent is connected and said `hello`.
pub const AGENTS_CONNECTED: &str = "youmi_agents_connected";
/// Gauge: tasks that have not ended, by `state` (`queued`, `dispatched`,
/// `running`) and `kind`.
pub const TASKS: &str = "youmi_tasks";
/// Counter: assigns handed to a phone, first sends only.
pub const TASKS_DISPATCHED_TOTAL: &str = "youmi_tasks_dispatched_total";
/// Counter: tasks that ended, by terminal `state`.
pub const TASKS_FINISHED_TOTAL: &str = "youmi_tasks_finished_total";
/// Histogram: seconds from the start of a batch's commit to its success,
/// retries included.
pub const STORE_COMMIT_SECONDS: &str = "youmi_store_commit_seconds";
/// Counter: commit attempts that failed.
pub const STORE_WRITE_ERRORS_TOTAL: &str = "youmi_store_write_errors_total";
/// Counter: assigns sent again because the agent did not accept them in time.
pub const ASSIGN_RESENDS_TOTAL: &str = "youmi_assign_resends_total";
/// Counter: assigns an agent refused.
pub const ASSIGN_REFUSALS_TOTAL: &str = "youmi_assign_refusals_total";
/// Counter: tasks failed `undeliverable` after too many re-sends.
pub const TASKS_UNDELIVERABLE_TOTAL: &str = "youmi_tasks_undeliverable_total";

/// The states of a task that has not ended, in the order of [`Metrics::tasks`].
const OPEN_STATES: [TaskState; 3] = [TaskState::Queued, TaskState::Dispatched, TaskState::Running];

/// The states a task ends in, in the order of [`Metrics::finished`].
const TERMINAL_STATES: [TaskState; 5] = [
    TaskState::Succeeded,
    TaskState::Failed,
    TaskState::Cancelled,
    TaskState::Intercepted,
    TaskState::Expired,
];

/// A recorder for the controller's metrics, given in its configuration: a
/// server that exports its own metrics keeps them apart from any other
/// server in the process (tests run many).
#[derive(Clone)]
pub struct MetricsRecorder(pub Arc<dyn Recorder + Send + Sync>);

impl fmt::Debug for MetricsRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsRecorder")
    }
}

/// Runs `start` with `recorder` as the recorder of the calling thread, so
/// that the handles it registers report there; without one, they report to
/// the global recorder.
pub(crate) fn with_recorder<T>(recorder: Option<&MetricsRecorder>, start: impl FnOnce() -> T) -> T {
    match recorder {
        Some(MetricsRecorder(recorder)) => metrics::with_local_recorder(&**recorder, start),
        None => start(),
    }
}

/// Says what each of the controller's metrics means, to the current recorder.
fn describe() {
    metrics::describe_gauge!(
        AGENTS_CONNECTED,
        "Devices whose agent is connected and said hello."
    );
    metrics::describe_gauge!(
        TASKS,
        "Tasks that have not ended, by state (queued, dispatched, running) and kind."
    );
    metrics::describe_counter!(
        TASKS_DISPATCHED_TOTAL,
        "Tasks handed to a phone (first sends of an assign; re-sends are counted apart)."
    );
    metrics::describe_counter!(TASKS_FINISHED_TOTAL, "Tasks that ended, by terminal state.");
    metrics::describe_histogram!(
        STORE_COMMIT_SECONDS,
        Unit::Seconds,
        "Seconds from the start of a commit of the scheduler's changes to its success, retries included."
    );
    metrics::describe_counter!(
        STORE_WRITE_ERRORS_TOTAL,
        "Commit attempts of the scheduler's changes that failed."
    );
    metrics::describe_counter!(
        ASSIGN_RESENDS_TOTAL,
        "Assigns sent again because the agent did not accept them in time."
    );
    metrics::describe_counter!(ASSIGN_REFUSALS_TOTAL, "Assigns an agent refused.");
    metrics::describe_counter!(
        TASKS_UNDELIVERABLE_TOTAL,
        "Tasks failed undeliverable: their assign was re-sent too often without being accepted."
    );
}

/// The scheduler's handles. Every label value is a `&'static str`, and every
/// combination is registered at start, so a scrape shows zeros rather than
/// nothing, and an update never builds a label.
pub(crate) struct Metrics {
    /// [`AGENTS_CONNECTED`]; kept by [`Online`] guards.
    agents_connected: Gauge,
    /// [`TASKS`], by open state ([`OPEN_STATES`]) then kind (`TaskKind as usize`);
    /// kept by [`TaskGauge`]s.
    tasks: [[Gauge; TaskKind::ALL.len()]; OPEN_STATES.len()],
    /// [`TASKS_DISPATCHED_TOTAL`].
    pub(crate) tasks_dispatched: Counter,
    /// [`TASKS_FINISHED_TOTAL`], by [`TERMINAL_STATES`].
    finished: [Counter; TERMINAL_STATES.len()],
    /// [`ASSIGN_RESENDS_TOTAL`].
    pub(crate) assign_resends: Counter,
    /// [`ASSIGN_REFUSALS_TOTAL`].
    pub(crate) assign_refusals: Counter,
    /// [`TASKS_UNDELIVERABLE_TOTAL`].
    pub(crate) tasks_undeliverable: Counter,
}

impl Metrics {
    /// Describes the controller's metrics and registers the scheduler's
    /// handles with the current recorder.
    pub(crate) fn register() -> Arc<Metrics> {
        describe();
        Arc::new(Metrics {
            agents_connected: metrics::gauge!(AGENTS_CONNECTED),
            tasks: OPEN_STATES.map(|state| {
                TaskKind::ALL.map(|kind| {
                    metrics::gauge!(TASKS, "state" => state.as_str(), "kind" => kind.as_str())
                })
            }),
            tasks_dispatched: metrics::counter!(TASKS_DISPATCHED_TOTAL),
            finished: TERMINAL_STATES
                .map(|state| metrics::counter!(TASKS_FINISHED_TOTAL, "state" => state.as_str())),
            assign_resends: metrics::counter!(ASSIGN_RESENDS_TOTAL),
            assign_refusals: metrics::counter!(ASSIGN_REFUSALS_TOTAL),
            tasks_undeliverable: metrics::counter!(TASKS_UNDELIVERABLE_TOTAL),
        })
    }

    /// Counts a task that ended in `state`.
    pub(crate) fn task_finished(&self, state: TaskState) {
        if let Some(index) = TERMINAL_STATES.iter().position(|&s| s == state) {
            self.finished[index].increment(1);
        }
    }

    /// The gauge of tasks of `kind` in `state`; a no-op for a terminal state.
    fn tasks_gauge(&self, kind: TaskKind, state: TaskState) -> Option<&Gauge> {
        let state = OPEN_STATES.iter().position(|&s| s == state)?;
        self.tasks[state].get(kind as usize)
    }

    /// Counts one more connected agent until the guard is dropped.
    pub(crate) fn online(self: &Arc<Metrics>) -> Online {
        self.agents_connected.increment(1.0);
        Online {
            metrics: self.clone(),
        }
    }

    /// Counts a task of `kind` in `state` until it moves
    /// ([`TaskGauge::set`]) or the gauge is dropped (the task ended).
    pub(crate) fn task_gauge(self: &Arc<Metrics>, kind: TaskKind, state: TaskState) -> TaskGauge {
        if let Some(gauge) = self.tasks_gauge(kind, state) {
            gauge.increment(1.0);
        }
        TaskGauge {
            metrics: self.clone(),
            kind,
            state,
        }
    }
}

/// One connected agent in [`AGENTS_CONNECTED`], for as long as it lives: it
/// goes with the connection, however the connection ends.
pub(crate) struct Online {
    metrics: Arc<Metrics>,
}

impl Drop for Online {
    fn drop(&mut self) {
        self.metrics.agents_connected.decrement(1.0);
    }
}

/// One task in [`TASKS`], under its current state, for as long as it lives:
/// it goes with the task, however the task leaves the scheduler.
pub(crate) struct TaskGauge {
    metrics: Arc<Metrics>,
    kind: TaskKind,
    state: TaskState,
}

impl TaskGauge {
    /// Moves the task to `state`.
    pub(crate) fn set(&mut self, state: TaskState) {
        if state == self.state {
            return;
        }
        if let Some(gauge) = self.metrics.tasks_gauge(self.kind, self.state) {
            gauge.decrement(1.0);
        }
        if let Some(gauge) = self.metrics.tasks_gauge(self.kind, state) {
            gauge.increment(1.0);
        }
        self.state = state;
    }
}

impl Drop for TaskGauge {
    fn drop(&mut self) {
        if let Some(gauge) = self.metrics.tasks_gauge(self.kind, self.state) {
            gauge.decrement(1.0);
        }
    }
}

/// The writer's handles.
pub(crate) struct WriterMetrics {
    /// [`STORE_COMMIT_SECONDS`].
    pub(crate) commit_seconds: Histogram,
    /// [`STORE_WRITE_ERRORS_TOTAL`].
    pub(crate) write_errors: Counter,
}

impl WriterMetrics {
    /// Registers the writer's handles with the current recorder.
    pub(crate) fn register() -> WriterMetrics {
        WriterMetrics {
            commit_seconds: metrics::histogram!(STORE_COMMIT_SECONDS),
            write_errors: metrics::counter!(STORE_WRITE_ERRORS_TOTAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Metrics::tasks`] is indexed by `kind as usize`.
    #[test]
    fn task_kinds_are_listed_in_declaration_order() {
        for (index, kind) in TaskKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, index, "{kind:?}");
        }
    }
}
