//! [`SimulatedPhone`]: an [`Executor`] that pretends to be a phone, for tests,
//! the demo and load runs.
//!
//! Each task kind is a few named steps. A step reports progress through the
//! [`TaskContext`] (which is where a cancel stops the task), takes
//! `step_latency`, and fails with probability `failure_rate` (code
//! `simulated_failure`, retryable). A task that gets through all its steps is
//! "sent": recorded in memory and, when `record_file` is set, appended to that
//! file as one JSON line, so tests that run the real `youmi-agent` binary can
//! see what it sent. Do-not-disturb changes and countdowns are recorded as
//! [`PhoneEvent`]s, so tests can check that the runner honours the settings.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use youmi_protocol::{AssignedTask, TaskId, TaskKind, TaskPayload};

use crate::executor::{BoxFuture, Executor, TaskContext, TaskFailure};

/// How a [`SimulatedPhone`] behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedPhoneConfig {
    /// How long each step takes.
    pub step_latency: Duration,
    /// The chance, from 0 to 1, that a step fails. Values outside are clamped
    /// (and NaN counts as 0).
    pub failure_rate: f64,
    /// Seeds the failures, so a run can be repeated.
    pub seed: u64,
    /// Append every sent task to this file as one JSON line.
    pub record_file: Option<PathBuf>,
}

impl Default for SimulatedPhoneConfig {
    fn default() -> Self {
        SimulatedPhoneConfig {
            step_latency: Duration::from_millis(200),
            failure_rate: 0.0,
            seed: 0,
            record_file: None,
        }
    }
}

/// A task the simulated phone "sent".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentRecord {
    /// The task.
    pub task_id: TaskId,
    /// Its kind.
    pub kind: TaskKind,
    /// Its payload, as assigned.
    pub payload: Value,
    /// When it was sent, Unix milliseconds.
    pub at_ms: i64,
}

/// Something the runner asked of the simulated phone besides running a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneEvent {
    /// Do-not-disturb was set to this value.
    DoNotDisturb(bool),
    /// A countdown of this many seconds was shown.
    Countdown(u32),
    /// This task began to execute.
    TaskStarted(TaskId),
}

/// A phone that only pretends. See the module documentation.
#[derive(Debug)]
pub struct SimulatedPhone {
    /// Latency and failure rate.
    config: SimulatedPhoneConfig,
    /// Draws the failures; one generator for the phone, so a seed fixes a run.
    rng: Mutex<StdRng>,
    /// The phone's do-not-disturb mode.
    do_not_disturb: Mutex<bool>,
    /// What was sent, in order.
    sent: Mutex<Vec<SentRecord>>,
    /// What the runner asked, in order.
    events: Mutex<Vec<PhoneEvent>>,
    /// The open record file, opened on the first record.
    record: Mutex<Option<File>>,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (every
/// critical section here is a single push or swap).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimulatedPhone {
    /// A simulated phone with do-not-disturb off.
    pub fn new(mut config: SimulatedPhoneConfig) -> Self {
        config.failure_rate = if config.failure_rate.is_nan() {
            0.0
        } else {
            config.failure_rate.clamp(0.0, 1.0)
        };
        SimulatedPhone {
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            config,
            do_not_disturb: Mutex::new(false),
            sent: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            record: Mutex::new(None),
        }
    }

    /// Every task sent so far, in order.
    pub fn sent(&self) -> Vec<SentRecord> {
        lock(&self.sent).clone()
    }

    /// Every do-not-disturb change, countdown and task start, in order.
    pub fn events(&self) -> Vec<PhoneEvent> {
        lock(&self.events).clone()
    }

    /// Whether do-not-disturb is on now.
    pub fn do_not_disturb(&self) -> bool {
        *lock(&self.do_not_disturb)
    }

    /// The named steps of a kind, in order.
    pub fn steps(kind: TaskKind) -> &'static [&'static str] {
        match kind {
            TaskKind::SendMessage => &["open_chat", "type_items", "send"],
            TaskKind::MassSend => &["open_mass_send", "pick_recipients", "type_items", "send"],
            TaskKind::MomentsPost => &["open_moments", "compose", "attach_media", "publish"],
            TaskKind::FriendAdd => &["search_contact", "open_profile", "send_request"],
            TaskKind::SmartMarketing => &["open_chat", "type_items", "send"],
            TaskKind::DeleteChat => &["open_chat", "delete_history", "confirm"],
            TaskKind::AcceptFriendRequest => &["open_requests", "accept", "set_remark"],
        }
    }

    /// Reads a record file written by simulated phones (one [`SentRecord`] per
    /// line). A torn last line, from a process killed mid-write, is skipped.
    pub fn read_record_file(path: &Path) -> io::Result<Vec<SentRecord>> {
        let file = File::open(path)?;
        let lines: Vec<String> = BufReader::new(file).lines().collect::<io::Result<_>>()?;
        let count = lines.len();
        let mut records = Vec::with_capacity(count);
        for (index, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(record) => records.push(record),
                Err(_) if index + 1 == count => {}
                Err(error) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("line {} of {}: {error}", index + 1, path.display()),
                    ))
                }
            }
        }
        Ok(records)
    }

    fn event(&self, event: PhoneEvent) {
        lock(&self.events).push(event);
    }

    fn step_fails(&self) -> bool {
        self.config.failure_rate > 0.0 && lock(&self.rng).gen_bool(self.config.failure_rate)
    }

    async fn run(
        &self,
        task: &AssignedTask,
        ctx: &TaskContext,
    ) -> Result<Option<Value>, TaskFailure> {
        self.event(PhoneEvent::TaskStarted(task.id));
        TaskPayload::parse(task.kind, &task.payload)
            .map_err(|error| TaskFailure::failed("invalid_payload", error.to_string(), false))?;
        let steps = Self::steps(task.kind);
        let total = steps.len() as u32;
        for (done, step) in (0u32..).zip(steps) {
            ctx.step(step, done, total).await?;
            tokio::time::sleep(self.config.step_latency).await;
            if self.step_fails() {
                return Err(TaskFailure::failed(
                    "simulated_failure",
                    format!("step {step} failed on the simulated phone"),
                    true,
                ));
            }
        }
        let record = SentRecord {
            task_id: task.id,
            kind: task.kind,
            payload: task.payload.clone(),
            at_ms: now_ms(),
        };
        self.write_record(&record).map_err(|error| {
            tracing::error!(%error, "cannot write the simulator's record file");
            TaskFailure::failed(
                "record_failed",
                format!("the simulated phone could not record what it sent: {error}"),
                false,
            )
        })?;
        lock(&self.sent).push(record);
        Ok(Some(json!({ "steps": total })))
    }

    /// Appends the record to the record file, if there is one, as a single
    /// write so that several agents can share one file.
    fn write_record(&self, record: &SentRecord) -> io::Result<()> {
        let Some(path) = &self.config.record_file else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut file = lock(&self.record);
        if file.is_none() {
            *file = Some(OpenOptions::new().create(true).append(true).open(path)?);
        }
        let file = file.as_mut().expect("opened above");
        file.write_all(&line)?;
        file.flush()
    }
}

impl Executor for SimulatedPhone {
    fn execute<'a>(
        &'a self,
        task: &'a AssignedTask,
        ctx: &'a TaskContext,
    ) -> BoxFuture<'a, Result<Option<Value>, TaskFailure>> {
        Box::pin(self.run(task, ctx))
    }

    fn set_do_not_disturb<'a>(&'a self, on: bool) -> BoxFuture<'a, Result<bool, TaskFailure>> {
        Box::pin(async move {
            let previous = std::mem::replace(&mut *lock(&self.do_not_disturb), on);
            self.event(PhoneEvent::DoNotDisturb(on));
            Ok(previous)
        })
    }

    fn show_countdown<'a>(&'a self, seconds: u32) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.event(PhoneEvent::Countdown(seconds)) })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Progress;

    fn task(id: TaskId, kind: TaskKind, payload: Value) -> AssignedTask {
        AssignedTask {
            id,
            kind,
            payload,
            attempt: 1,
            not_after_ms: None,
        }
    }

    fn message(id: TaskId) -> AssignedTask {
        task(
            id,
            TaskKind::SendMessage,
            json!({"to": {"name": "Ann"}, "items": [{"type": "text", "text": "hello"}]}),
        )
    }

    fn phone(failure_rate: f64, record_file: Option<PathBuf>) -> SimulatedPhone {
        SimulatedPhone::new(SimulatedPhoneConfig {
            step_latency: Duration::from_millis(1),
            failure_rate,
            seed: 7,
            record_file,
        })
    }

    #[tokio::test]
    async fn a_task_runs_its_steps_and_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("sent.jsonl");
        let phone = phone(0.0, Some(record.clone()));
        let (ctx, mut control) = TaskContext::new(1);
        let result = phone.execute(&message(1), &ctx).await.unwrap();
        assert_eq!(result, Some(json!({"steps": 3})));
        let mut steps = Vec::new();
        while let Some(Progress {
            step, done, total, ..
        }) = control.try_progress()
        {
            steps.push((step, done, total));
        }
        assert_eq!(
            steps,
            vec![
                ("open_chat".to_owned(), 0, 3),
                ("type_items".to_owned(), 1, 3),
                ("send".to_owned(), 2, 3)
            ]
        );
        let sent = phone.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].task_id, 1);
        assert_eq!(sent[0].kind, TaskKind::SendMessage);
        assert_eq!(SimulatedPhone::read_record_file(&record).unwrap(), sent);
        assert_eq!(phone.events(), vec![PhoneEvent::TaskStarted(1)]);
    }

    #[tokio::test]
    async fn every_kind_has_steps_and_runs() {
        let payloads = [
            (
                TaskKind::MassSend,
                json!({"recipients": [{"name": "A"}], "items": [{"type": "text", "text": "x"}]}),
            ),
            (TaskKind::MomentsPost, json!({"text": "sunny day"})),
            (
                TaskKind::FriendAdd,
                json!({"target": {"phone": "13800000000"}}),
            ),
            (
                TaskKind::SmartMarketing,
                json!({"flow_id": 1, "step": 0, "to": {"name": "A"}, "items": [{"type": "text", "text": "x"}]}),
            ),
            (TaskKind::DeleteChat, json!({"with": {"name": "A"}})),
            (
                TaskKind::AcceptFriendRequest,
                json!({"from": {"name": "A"}}),
            ),
        ];
        let phone = phone(0.0, None);
        for (id, (kind, payload)) in (1..).zip(payloads) {
            let (ctx, _control) = TaskContext::new(id);
            let result = phone.execute(&task(id, kind, payload), &ctx).await.unwrap();
            let steps = SimulatedPhone::steps(kind).len();
            assert!(steps >= 3, "{kind}");
            assert_eq!(result, Some(json!({ "steps": steps })));
        }
        assert_eq!(phone.sent().len(), 6);
    }

    #[tokio::test]
    async fn a_certain_failure_is_retryable_and_sends_nothing() {
        let phone = phone(1.0, None);
        let (ctx, _control) = TaskContext::new(1);
        match phone.execute(&message(1), &ctx).await {
            Err(TaskFailure::Failed(error)) => {
                assert_eq!(error.code, "simulated_failure");
                assert!(error.retryable);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(phone.sent().is_empty());
    }

    #[tokio::test]
    async fn the_same_seed_fails_the_same_tasks() {
        async fn outcomes(seed: u64) -> Vec<bool> {
            let phone = SimulatedPhone::new(SimulatedPhoneConfig {
                step_latency: Duration::ZERO,
                failure_rate: 0.3,
                seed,
                record_file: None,
            });
            let mut outcomes = Vec::new();
            for id in 0..40 {
                let (ctx, _control) = TaskContext::new(id);
                outcomes.push(phone.execute(&message(id), &ctx).await.is_ok());
            }
            outcomes
        }
        let first = outcomes(11).await;
        assert_eq!(first, outcomes(11).await);
        assert!(first.contains(&true) && first.contains(&false), "{first:?}");
    }

    #[tokio::test]
    async fn a_payload_that_does_not_fit_fails_without_retry() {
        let phone = phone(0.0, None);
        let (ctx, _control) = TaskContext::new(1);
        let bad = task(1, TaskKind::SendMessage, json!({"items": []}));
        match phone.execute(&bad, &ctx).await {
            Err(TaskFailure::Failed(error)) => {
                assert_eq!(error.code, "invalid_payload");
                assert!(error.message.contains("payload.to"), "{}", error.message);
                assert!(!error.retryable);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_cancelled_task_stops_at_the_next_step() {
        let phone = phone(0.0, None);
        let (ctx, control) = TaskContext::new(1);
        control.cancel();
        assert_eq!(
            phone.execute(&message(1), &ctx).await,
            Err(TaskFailure::Cancelled)
        );
        assert!(phone.sent().is_empty());
    }

    #[tokio::test]
    async fn do_not_disturb_and_countdowns_are_recorded() {
        let phone = phone(0.0, None);
        assert!(!phone.set_do_not_disturb(true).await.unwrap());
        assert!(phone.do_not_disturb());
        assert!(phone.set_do_not_disturb(false).await.unwrap());
        phone.show_countdown(10).await;
        assert_eq!(
            phone.events(),
            vec![
                PhoneEvent::DoNotDisturb(true),
                PhoneEvent::DoNotDisturb(false),
                PhoneEvent::Countdown(10)
            ]
        );
    }

    #[test]
    fn failure_rates_out_of_range_are_clamped() {
        for (given, used) in [(-1.0, 0.0), (2.0, 1.0), (f64::NAN, 0.0), (0.25, 0.25)] {
            let phone = SimulatedPhone::new(SimulatedPhoneConfig {
                failure_rate: given,
                ..SimulatedPhoneConfig::default()
            });
            assert_eq!(phone.config.failure_rate, used);
        }
    }
}
