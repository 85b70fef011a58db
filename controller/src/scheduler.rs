//! The scheduler task: owns every queue, device and in-flight task, and applies
//! the delivery rules of agent protocol v1.
//!
//! One task owns all the state, so no lock is ever held across I/O: commands
//! arrive on a channel, each turn of the loop handles every command waiting,
//! fires due timers, and hands the resulting [`Batch`] to the writer, or, while
//! the writer is busy, keeps it to add the next turns to. Nothing it decides
//! reaches an agent or a caller before the writer committed it.
//!
//! The rules, and where they are:
//! - one queue per operator account, ordered by priority then id: [`Queue`];
//! - one task in flight per device, and the dispatch gate (account enabled,
//!   device said hello, queue not paused): [`Scheduler::try_dispatch`];
//! - `assign` re-sent when not accepted in time: [`TimerKey::Resend`];
//! - never re-run after `accepted`; `lost` when `hello` no longer reports a
//!   running task: [`Scheduler::on_hello`];
//! - `finished` idempotent, acked after commit: [`Scheduler::on_finished`];
//! - pause, resume and auto-resume: [`Scheduler::set_paused`];
//! - offline after silence: [`TimerKey::OfflineCheck`];
//! - cancellation: [`Scheduler::on_cancel`];
//! - retries of retryable failures and `not_before`: the delayed set of [`Queue`].

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use youmi_protocol::agent::error_code;
use youmi_protocol::api::CancelResult;
use youmi_protocol::{
    AgentMessage, AgentSettings, CallStatus, DeviceInfo, FinishedReport, OperatorAccountId,
    Outcome, ServerMessage, SettingsPatch, TaskError, TaskId, TaskKind, TaskState,
};

use crate::clock::Clock;
use crate::metrics::{Metrics, Online, TaskGauge};
use crate::sink::{Assign, DeviceSink};
use crate::storage::StorageSignals;
use crate::store::{
    AccountRecord, Change, DeviceRecord, NewTask, Snapshot, Store, StoreError, TaskOwner,
};
use crate::writer::{Batch, Effect, Writer, WriterStopped, MAX_PENDING_CHANGES};
use crate::{
    CancelFilter, ConnectionId, ControllerConfig, ControllerError, DeviceStatus, DeviceTarget,
};

/// One request to the scheduler task.
pub(crate) enum Command {
    Submit {
        tasks: Vec<NewTask>,
        reply: oneshot::Sender<Vec<TaskId>>,
    },
    Connect {
        device_id: String,
        connection: ConnectionId,
        sink: Arc<dyn DeviceSink>,
    },
    Messages {
        device_id: String,
        connection: ConnectionId,
        messages: Vec<AgentMessage>,
    },
    Disconnect {
        device_id: String,
        connection: ConnectionId,
    },
    DeviceBound {
        device: DeviceRecord,
        replaced: Option<String>,
        reply: oneshot::Sender<()>,
    },
    AccountChanged {
        account: AccountRecord,
        reply: oneshot::Sender<()>,
    },
    Pause {
        target: DeviceTarget,
        reason: String,
        reply: oneshot::Sender<Result<u64, ControllerError>>,
    },
    Resume {
        target: DeviceTarget,
        reply: oneshot::Sender<Result<u64, ControllerError>>,
    },
    UpdateSettings {
        target: DeviceTarget,
        patch: SettingsPatch,
        reply: oneshot::Sender<Result<u64, ControllerError>>,
    },
    Cancel {
        filter: CancelFilter,
        reply: oneshot::Sender<CancelResult>,
    },
    Devices {
        reply: oneshot::Sender<Vec<DeviceStatus>>,
    },
    /// Which of these accounts exist, and whether each is disabled.
    Accounts {
        ids: Vec<OperatorAccountId>,
        reply: oneshot::Sender<HashMap<OperatorAccountId, bool>>,
    },
    /// The answer to a store lookup of a `finished` report for a task the
    /// scheduler no longer holds.
    OwnerLookedUp {
        device_id: String,
        connection: ConnectionId,
        task_id: TaskId,
        owner: Result<Option<TaskOwner>, StoreError>,
    },
}

/// Looks a task up in the store, for reports about tasks that already ended.
type OwnerLookup = Arc<
    dyn Fn(TaskId) -> Pin<Box<dyn Future<Output = Result<Option<TaskOwner>, StoreError>> + Send>>
        + Send
        + Sync,
>;

/// A task that has not ended.
struct Task {
    account: OperatorAccountId,
    kind: TaskKind,
    /// The payload's JSON text, shared with the store's copy.
    payload: Arc<str>,
    priority: u8,
    /// The key of the task in its queue's delayed set while it waits for this time.
    not_before: Option<i64>,
    not_after: Option<i64>,
    /// `Queued`, `Dispatched` or `Running`.
    state: TaskState,
    attempt: u32,
    /// The device the task was handed to, while dispatched or running.
    device: Option<String>,
    cancel_requested: bool,
    /// Times this attempt's `assign` was handed to a device without being
    /// accepted: re-sends and new dispatches after a reconnect.
    sends: u32,
    /// When the current dispatch was sent first.
    dispatched_at: Option<i64>,
    /// Counts the task in the metrics under its state while it lives.
    gauge: TaskGauge,
}

impl Task {
    /// Moves the task to `state`, and its count in the metrics with it.
    fn set_state(&mut self, state: TaskState) {
        self.state = state;
        self.gauge.set(state);
    }

    /// The `assign` for this task's current attempt.
    fn assign(&self, id: TaskId) -> Assign {
        Assign {
            id,
            kind: self.kind,
            attempt: self.attempt,
            not_after_ms: self.not_after,
            payload: self.payload.clone(),
        }
    }
}

/// The queue of one operator account.
#[derive(Default)]
struct Queue {
    /// Tasks that may run now: highest priority first, then oldest first.
    ready: BTreeSet<(Reverse<u8>, TaskId)>,
    /// Tasks waiting for their `not_before`, earliest first.
    delayed: BTreeSet<(i64, TaskId)>,
    /// The task on the phone: dispatched or running. At most one.
    in_flight: Option<TaskId>,
    /// The account's current device.
    device: Option<String>,
    /// A disabled account dispatches nothing.
    disabled: bool,
}

/// The current connection of a device.
struct Connection {
    id: ConnectionId,
    sink: Arc<dyn DeviceSink>,
    /// Nothing is dispatched before the agent said `hello`.
    greeted: bool,
    /// Counts the device as connected in the metrics once it said `hello`.
    online: Option<Online>,
}

/// A bound device.
struct Device {
    account: OperatorAccountId,
    settings: AgentSettings,
    paused: bool,
    pause_reason: Option<String>,
    resume_at: Option<i64>,
    last_seen: Option<i64>,
    battery: Option<u8>,
    /// The call state of the last heartbeat; `None` when it did not say.
    call: Option<CallStatus>,
    connection: Option<Connection>,
}

impl Device {
    /// Connected and greeted: frames may go to it.
    fn greeted_sink(&self) -> Option<Arc<dyn DeviceSink>> {
        self.connection
            .as_ref()
            .filter(|c| c.greeted)
            .map(|c| c.sink.clone())
    }
}

/// What a timer is for. Timers are checked when they fire, not cancelled, so a
/// timer whose reason has gone away simply does nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    /// Look for devices that went silent.
    OfflineCheck,
    /// Move due tasks of this account from delayed to ready.
    Delayed(OperatorAccountId),
    /// Resume this device's queue if its auto-resume time has come.
    AutoResume(String),
    /// Re-send this task's `assign` if it is still not accepted.
    Resend(TaskId),
}

pub(crate) struct Scheduler<C: Clock> {
    clock: C,
    config: ControllerConfig,
    writer: Writer,
    lookup: OwnerLookup,
    /// For the store lookups this task spawns; weak, so that the channel closes
    /// when the last [`crate::Controller`] handle is dropped.
    commands: mpsc::WeakSender<Command>,
    tasks: HashMap<TaskId, Task>,
    queues: HashMap<OperatorAccountId, Queue>,
    devices: HashMap<String, Device>,
    timers: BTreeSet<(i64, TimerKey)>,
    next_task_id: TaskId,
    /// This turn's changes and effects.
    batch: Batch,
    /// The handles of the scheduler's metrics.
    metrics: Arc<Metrics>,
}

/// Commands handled in one turn at most, so that timers and commits keep up.
const MAX_COMMANDS_PER_TURN: usize = 1024;

impl<C: Clock> Scheduler<C> {
    pub(crate) fn start<S: Store>(
        snapshot: Snapshot,
        store: S,
        clock: C,
        config: ControllerConfig,
        commands: &mpsc::Sender<Command>,
        receiver: mpsc::Receiver<Command>,
        signals: Arc<StorageSignals>,
    ) {
        let store = Arc::new(store);
        let lookup_store = store.clone();
        let lookup: OwnerLookup = Arc::new(move |id| {
            let store = lookup_store.clone();
            Box::pin(async move { store.task_owner(id).await })
        });
        let writer = Writer::start(store, signals, config.writer_thread);
        let mut scheduler = Scheduler {
            clock,
            config,
            writer,
            lookup,
            commands: commands.downgrade(),
            tasks: HashMap::new(),
            queues: HashMap::new(),
            devices: HashMap::new(),
            timers: BTreeSet::new(),
            next_task_id: snapshot.next_task_id.max(1),
            batch: Batch::default(),
            metrics: Metrics::register(),
        };
        scheduler.restore(snapshot);
        tokio::spawn(async move {
            scheduler.run(receiver).await;
            tracing::debug!("scheduler stopped");
        });
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Rebuilds queues, pauses and timers from the database after a start.
    fn restore(&mut self, snapshot: Snapshot) {
        let now = self.now();
        for account in snapshot.accounts {
            self.queues.entry(account.id).or_default().disabled = account.disabled;
        }
        for record in snapshot.devices {
            self.insert_device(record);
        }
        let mut orphans = Vec::new();
        for record in snapshot.tasks {
            let task = Task {
                account: record.operator_account_id,
                kind: record.kind,
                payload: record.payload,
                priority: record.priority,
                not_before: None,
                not_after: record.not_after_ms,
                state: record.state,
                attempt: record.attempt,
                device: record.device_id,
                cancel_requested: record.cancel_requested,
                sends: 0,
                dispatched_at: None,
                gauge: self.metrics.task_gauge(record.kind, record.state),
            };
            let id = record.id;
            let mut task = task;
            if task.state == TaskState::Dispatched {
                task.dispatched_at = Some(now);
            }
            let queue = self.queues.entry(task.account).or_default();
            match task.state {
                TaskState::Dispatched | TaskState::Running => {
                    // A task on a phone that is no longer the account's device
                    // (it was replaced while the server was down), or a second
                    // one where only one may be, is resolved below.
                    if queue.in_flight.is_none()
                        && task.device.is_some()
                        && task.device == queue.device
                    {
                        queue.in_flight = Some(id);
                        if task.state == TaskState::Dispatched {
                            self.timers
                                .insert((now + self.config.assign_resend_ms, TimerKey::Resend(id)));
                        }
                    } else {
                        orphans.push(id);
                    }
                    self.tasks.insert(id, task);
                }
                _ => {
                    self.tasks.insert(id, task);
                    self.enqueue(id, record.not_before_ms, now);
                }
            }
        }
        for id in orphans {
            self.take_off_phone(
                id,
                "the task's phone was replaced while the server was down",
                now,
            );
        }
        self.timers
            .insert((now + self.config.offline_check_ms, TimerKey::OfflineCheck));
        let accounts: Vec<_> = self.queues.keys().copied().collect();
        for account in accounts {
            self.try_dispatch(account);
        }
        tracing::info!(
            tasks = self.tasks.len(),
            devices = self.devices.len(),
            accounts = self.queues.len(),
            "scheduler restored from the database"
        );
    }

    fn insert_device(&mut self, record: DeviceRecord) {
        if let Some(resume_at) = record.resume_at_ms.filter(|_| record.paused) {
            self.timers
                .insert((resume_at, TimerKey::AutoResume(record.device_id.clone())));
        }
        self.queues
            .entry(record.operator_account_id)
            .or_default()
            .device = Some(record.device_id.clone());
        self.devices.insert(
            record.device_id,
            Device {
                account: record.operator_account_id,
                settings: record.settings,
                paused: record.paused,
                pause_reason: record.pause_reason,
                resume_at: record.resume_at_ms,
                last_seen: record.last_seen_ms,
                battery: None,
                call: None,
                connection: None,
            },
        );
    }

    async fn run(&mut self, mut receiver: mpsc::Receiver<Command>) {
        loop {
            let next_timer = self.timers.first().map(|(due, _)| *due);
            let sleep =
                next_timer.map(|due| Duration::from_millis((due - self.now()).max(0) as u64));
            let pending = !self.batch.is_empty();
            tokio::select! {
                command = receiver.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                _ = tokio::time::sleep(sleep.unwrap_or_default()), if sleep.is_some() => {}
                // The writer is free again: hand it what gathered meanwhile.
                permit = self.writer.ready(), if pending => match permit {
                    Ok(permit) => {
                        permit.send(std::mem::take(&mut self.batch));
                    }
                    Err(WriterStopped) => break,
                },
            }
            for _ in 1..MAX_COMMANDS_PER_TURN {
                match receiver.try_recv() {
                    Ok(command) => self.handle(command),
                    Err(_) => break,
                }
            }
            self.fire_timers();
            if self.hand_over().await.is_err() {
                break;
            }
        }
        // The last handle is gone: what gathered still goes to the writer,
        // which commits it before it stops.
        if !self.batch.is_empty() {
            let _ = self.writer.submit(std::mem::take(&mut self.batch)).await;
        }
    }

    /// Hands this turn's batch to the writer if it can take it now. If not, the
    /// batch stays to gather the next turns too, until it is too big to wait.
    async fn hand_over(&mut self) -> Result<(), WriterStopped> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        match self.writer.try_submit(batch)? {
            None => Ok(()),
            Some(batch) if batch.changes.len() >= MAX_PENDING_CHANGES => {
                self.writer.submit(batch).await
            }
            Some(batch) => {
                self.batch = batch;
                Ok(())
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Submit { tasks, reply } => self.on_submit(tasks, reply),
            Command::Connect {
                device_id,
                connection,
                sink,
            } => self.on_connect(device_id, connection, sink),
            Command::Messages {
                device_id,
                connection,
                messages,
            } => {
                for message in messages {
                    self.on_message(&device_id, connection, message);
                }
            }
            Command::Disconnect {
                device_id,
                connection,
            } => self.on_disconnect(&device_id, connection),
            Command::DeviceBound {
                device,
                replaced,
                reply,
            } => self.on_device_bound(device, replaced, reply),
            Command::AccountChanged { account, reply } => {
                let queue = self.queues.entry(account.id).or_default();
                queue.disabled = account.disabled;
                tracing::info!(
                    account = account.id,
                    disabled = account.disabled,
                    "operator account changed"
                );
                self.reply(reply, ());
                self.try_dispatch(account.id);
            }
            Command::Pause {
                target,
                reason,
                reply,
            } => self.for_each_device(target, reply, |scheduler, id| {
                scheduler.set_paused(id, true, Some(reason.clone()), true)
            }),
            Command::Resume { target, reply } => {
                self.for_each_device(target, reply, |scheduler, id| {
                    scheduler.set_paused(id, false, None, true)
                })
            }
            Command::UpdateSettings {
                target,
                patch,
                reply,
            } => self.for_each_device(target, reply, |scheduler, id| {
                scheduler.update_settings(id, &patch)
            }),
            Command::Cancel { filter, reply } => {
                let result = self.on_cancel(&filter);
                self.reply(reply, result);
            }
            Command::Devices { reply } => {
                let _ = reply.send(self.device_statuses());
            }
            Command::Accounts { ids, reply } => {
                let known = ids
                    .into_iter()
                    .filter_map(|id| Some((id, self.queues.get(&id)?.disabled)))
                    .collect();
                let _ = reply.send(known);
            }
            Command::OwnerLookedUp {
                device_id,
                connection,
                task_id,
                owner,
            } => self.on_owner_looked_up(&device_id, connection, task_id, owner),
        }
    }

    // ----- effects -----

    fn change(&mut self, change: Change) {
        self.batch.changes.push(change);
    }

    fn effect(&mut self, effect: Effect) {
        self.batch.effects.push(effect);
    }

    /// Answers a caller once this turn's changes are committed.
    fn reply<T: Send + 'static>(&mut self, reply: oneshot::Sender<T>, value: T) {
        self.effect(Box::new(move || {
            let _ = reply.send(value);
        }));
    }

    /// Sends a frame once this turn's changes are committed. A sink that cannot
    /// take it is closed; the agent reconnects and its `hello` puts things right.
    fn send(&mut self, sink: Arc<dyn DeviceSink>, message: ServerMessage) {
        self.effect(Box::new(move || {
            if sink.send(message).is_err() {
                sink.close("overloaded", "the connection could not keep up");
            }
        }));
    }

    /// Sends `assign` once this turn's changes are committed, as [`Scheduler::send`].
    fn send_assign(&mut self, sink: Arc<dyn DeviceSink>, assign: Assign) {
        self.effect(Box::new(move || {
            if sink.send_assign(assign).is_err() {
                sink.close("overloaded", "the connection could not keep up");
            }
        }));
    }

    /// Sends a frame to a device if it is connected and greeted.
    fn send_to(&mut self, device_id: &str, message: ServerMessage) {
        if let Some(sink) = self.devices.get(device_id).and_then(Device::greeted_sink) {
            self.send(sink, message);
        }
    }

    fn send_error(&mut self, sink: Arc<dyn DeviceSink>, code: &str, message: String) {
        let code = code.to_owned();
        self.send(sink, ServerMessage::Error { code, message });
    }

    // ----- queues and dispatch -----

    /// Puts a queued task into its account's queue: ready, or delayed until
    /// `not_before`.
    fn enqueue(&mut self, id: TaskId, not_before: Option<i64>, now: i64) {
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        task.set_state(TaskState::Queued);
        task.device = None;
        let queue = self.queues.entry(task.account).or_default();
        match not_before.filter(|&at| at > now) {
            Some(at) => {
                task.not_before = Some(at);
                queue.delayed.insert((at, id));
                self.timers.insert((at, TimerKey::Delayed(task.account)));
            }
            None => {
                task.not_before = None;
                queue.ready.insert((Reverse(task.priority), id));
            }
        }
    }

    /// Hands the account's next ready task to its device, if the gate is open:
    /// the account is enabled, its device is connected and greeted, the queue is
    /// not paused, and nothing else is on the phone.
    fn try_dispatch(&mut self, account: OperatorAccountId) {
        let now = self.now();
        let Some(queue) = self.queues.get(&account) else {
            return;
        };
        if queue.disabled || queue.in_flight.is_some() {
            return;
        }
        let Some(device_id) = queue.device.clone() else {
            return;
        };
        let Some(device) = self.devices.get(&device_id) else {
            return;
        };
        if device.paused || !self.is_fresh(device, now) {
            return;
        }
        let Some(sink) = device.greeted_sink() else {
            return;
        };
        loop {
            let Some(queue) = self.queues.get_mut(&account) else {
                return;
            };
            let Some((_, id)) = queue.ready.pop_first() else {
                return;
            };
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            if task.not_after.is_some_and(|deadline| deadline < now) {
                self.tasks.remove(&id);
                self.metrics.task_finished(TaskState::Expired);
                tracing::info!(task_id = id, "task expired before it could start");
                self.change(Change::TaskFinished {
                    id,
                    state: TaskState::Expired,
                    error: None,
                    result: None,
                    at_ms: now,
                });
                continue;
            }
            if task.sends >= self.config.assign_max_sends {
                let sends = task.sends;
                self.fail_undeliverable(id, &format!("its assign was sent {sends} times"), now);
                continue;
            }
            queue.in_flight = Some(id);
            task.set_state(TaskState::Dispatched);
            task.attempt += 1;
            task.sends += 1;
            task.dispatched_at = Some(now);
            task.device = Some(device_id.clone());
            let assign = task.assign(id);
            let attempt = task.attempt;
            tracing::debug!(task_id = id, device_id = %device_id, attempt, "dispatching");
            self.change(Change::TaskDispatched {
                id,
                device_id: device_id.clone(),
                attempt,
                at_ms: now,
            });
            self.metrics.tasks_dispatched.increment(1);
            self.send_assign(sink, assign);
            self.timers
                .insert((now + self.config.assign_resend_ms, TimerKey::Resend(id)));
            return;
        }
    }

    fn on_submit(&mut self, tasks: Vec<NewTask>, reply: oneshot::Sender<Vec<TaskId>>) {
        let now = self.now();
        let mut ids = Vec::with_capacity(tasks.len());
        let mut accounts = HashSet::new();
        for new in tasks {
            let id = self.next_task_id;
            self.next_task_id += 1;
            ids.push(id);
            let new = Arc::new(new);
            self.change(Change::TaskInserted {
                id,
                task: new.clone(),
                at_ms: now,
            });
            if new.intercepted.is_some() {
                self.metrics.task_finished(TaskState::Intercepted);
                continue;
            }
            self.tasks.insert(
                id,
                Task {
                    account: new.operator_account_id,
                    kind: new.kind,
                    payload: new.payload.clone(),
                    priority: new.priority,
                    not_before: None,
                    not_after: new.not_after_ms,
                    state: TaskState::Queued,
                    attempt: 0,
                    device: None,
                    cancel_requested: false,
                    sends: 0,
                    dispatched_at: None,
                    gauge: self.metrics.task_gauge(new.kind, TaskState::Queued),
                },
            );
            self.enqueue(id, new.not_before_ms, now);
            accounts.insert(new.operator_account_id);
        }
        self.reply(reply, ids);
        for account in accounts {
            self.try_dispatch(account);
        }
    }

    /// Takes a dispatched or running task off its phone without a report from
    /// it: back to the queue if it was never accepted (nothing ran), failed with
    /// `lost` if it was (it may have run; it is never run again on its own).
    fn take_off_phone(&mut self, id: TaskId, why: &str, now: i64) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let account = task.account;
        if let Some(queue) = self.queues.get_mut(&account) {
            if queue.in_flight == Some(id) {
                queue.in_flight = None;
            }
        }
        match (task.state, task.cancel_requested) {
            (TaskState::Dispatched, false) => {
                tracing::info!(
                    task_id = id,
                    reason = why,
                    "task was never accepted; queued again"
                );
                self.change(Change::TaskRequeued {
                    id,
                    not_before_ms: None,
                    error: None,
                    result: None,
                    at_ms: now,
                });
                self.enqueue(id, None, now);
            }
            (TaskState::Dispatched, true) => {
                self.end_task(id, TaskState::Cancelled, None, None, now)
            }
            _ => {
                tracing::warn!(task_id = id, reason = why, "running task lost");
                let error = TaskError {
                    code: error_code::LOST.to_owned(),
                    message: why.to_owned(),
                    retryable: false,
                };
                self.end_task(id, TaskState::Failed, Some(error), None, now);
            }
        }
    }

    /// Records a task's end and forgets it.
    fn end_task(
        &mut self,
        id: TaskId,
        state: TaskState,
        error: Option<TaskError>,
        result: Option<String>,
        now: i64,
    ) {
        let Some(task) = self.tasks.remove(&id) else {
            return;
        };
        if let Some(queue) = self.queues.get_mut(&task.account) {
            if queue.in_flight == Some(id) {
                queue.in_flight = None;
            }
        }
        tracing::debug!(task_id = id, state = %state, "task ended");
        self.metrics.task_finished(state);
        self.change(Change::TaskFinished {
            id,
            state,
            error,
            result,
            at_ms: now,
        });
    }

    /// Fails a task whose `assign` the agent never accepted, within the bounds
    /// of [`ControllerConfig::assign_max_sends`] and
    /// [`ControllerConfig::assign_deliver_ms`]. The device is told to drop it,
    /// in case it holds it after all. The caller moves the queue on.
    fn fail_undeliverable(&mut self, id: TaskId, why: &str, now: i64) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let device = task.device.clone();
        let on_phone = task.state == TaskState::Dispatched;
        tracing::warn!(task_id = id, device_id = ?device, reason = why, "the agent never accepted the task; failing it as undeliverable");
        self.metrics.tasks_undeliverable.increment(1);
        let error = TaskError {
            code: error_code::UNDELIVERABLE.to_owned(),
            message: format!("the agent never accepted the task: {why}"),
            retryable: false,
        };
        self.end_task(id, TaskState::Failed, Some(error), None, now);
        if let (true, Some(device)) = (on_phone, device) {
            self.send_to(&device, ServerMessage::Cancel { task_id: id });
        }
    }

    // ----- connections and agent frames -----

    fn on_connect(
        &mut self,
        device_id: String,
        connection: ConnectionId,
        sink: Arc<dyn DeviceSink>,
    ) {
        let now = self.now();
        let Some(device) = self.devices.get_mut(&device_id) else {
            // The device was revoked between the token check and now.
            sink.close(error_code::REVOKED, "this device is no longer bound");
            return;
        };
        device.last_seen = Some(now);
        let previous = device.connection.replace(Connection {
            id: connection,
            sink,
            greeted: false,
            online: None,
        });
        if let Some(previous) = previous {
            tracing::info!(device_id = %device_id, "a newer connection replaced the device's previous one");
            previous.sink.close(
                error_code::REPLACED,
                "a newer connection of this device took over",
            );
        }
    }

    fn on_disconnect(&mut self, device_id: &str, connection: ConnectionId) {
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        if device.connection.as_ref().map(|c| c.id) != Some(connection) {
            return;
        }
        device.connection = None;
        let last_seen = device.last_seen.unwrap_or_else(|| self.clock.now_ms());
        tracing::info!(device_id, "device disconnected");
        self.change(Change::DeviceSeen {
            device_id: device_id.to_owned(),
            at_ms: last_seen,
            info: None,
        });
    }

    fn on_message(&mut self, device_id: &str, connection: ConnectionId, message: AgentMessage) {
        let now = self.now();
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        let Some(current) = device.connection.as_ref().filter(|c| c.id == connection) else {
            // A frame from a connection that was replaced or timed out.
            return;
        };
        let sink = current.sink.clone();
        let greeted = current.greeted;
        device.last_seen = Some(now);
        if !greeted && !matches!(message, AgentMessage::Hello { .. }) {
            self.send(
                sink,
                ServerMessage::Error {
                    code: error_code::HELLO_REQUIRED.to_owned(),
                    message: "the first frame must be hello".to_owned(),
                },
            );
            return;
        }
        match message {
            AgentMessage::Hello {
                agent_version,
                device: info,
                queue_paused,
                running,
                finished,
            } => self.on_hello(
                device_id,
                connection,
                sink,
                agent_version,
                info,
                queue_paused,
                running,
                finished,
            ),
            AgentMessage::Accepted { task_id } => self.on_accepted(device_id, sink, task_id),
            AgentMessage::Finished(report) => {
                self.finish_from(device_id, connection, &sink, report)
            }
            AgentMessage::Progress {
                task_id,
                step,
                done,
                total,
            } => {
                if self.owns(device_id, task_id) {
                    tracing::debug!(task_id, step, done, total, "progress");
                } else {
                    self.send_error(
                        sink,
                        error_code::NOT_YOUR_TASK,
                        format!("task {task_id} is not on this device"),
                    );
                }
            }
            AgentMessage::QueueChanged { paused, reason } => {
                let reason = if reason.trim().is_empty() {
                    "agent".to_owned()
                } else {
                    reason
                };
                self.set_paused(device_id, paused, Some(reason), false);
            }
            AgentMessage::Heartbeat { battery, call, .. } => {
                if let Some(device) = self.devices.get_mut(device_id) {
                    device.battery = battery.or(device.battery);
                    // Unlike the battery, an old call state is not kept: a
                    // call that rang a heartbeat ago may be over.
                    device.call = call;
                    let account = device.account;
                    // A device that was silent long enough to be held back is
                    // back; its queue may move again.
                    self.try_dispatch(account);
                }
            }
            AgentMessage::Event { kind, .. } => tracing::info!(device_id, kind, "agent event"),
            AgentMessage::UpdateStatus {
                version,
                state,
                message,
            } => {
                tracing::info!(device_id, version, ?state, message, "agent update status")
            }
            AgentMessage::LogsUploaded { request_id, error } => {
                tracing::info!(device_id, request_id, error, "agent log upload")
            }
            AgentMessage::Refused {
                task_id,
                code,
                message,
            } => self.on_refused(device_id, task_id, code, message),
        }
    }

    /// Whether the device was heard from within the offline limit. A silent
    /// device is offline at once, for dispatch and for the device list alike,
    /// even before the next offline check closes its connection.
    fn is_fresh(&self, device: &Device, now: i64) -> bool {
        device
            .last_seen
            .is_some_and(|seen| now - seen <= self.config.offline_after_ms)
    }

    /// Whether `task_id` is on this device's phone now.
    fn owns(&self, device_id: &str, task_id: TaskId) -> bool {
        self.tasks.get(&task_id).is_some_and(|task| {
            matches!(task.state, TaskState::Dispatched | TaskState::Running)
                && task.device.as_deref() == Some(device_id)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn on_hello(
        &mut self,
        device_id: &str,
        connection: ConnectionId,
        sink: Arc<dyn DeviceSink>,
        agent_version: String,
        mut info: DeviceInfo,
        queue_paused: bool,
        running: Vec<TaskId>,
        finished: Vec<FinishedReport>,
    ) {
        let now = self.now();
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        if let Some(connection) = device.connection.as_mut() {
            connection.greeted = true;
            connection
                .online
                .get_or_insert_with(|| self.metrics.online());
        }
        let account = device.account;
        let settings = device.settings;
        let server_paused = device.paused;
        tracing::info!(
            device_id,
            agent_version,
            queue_paused,
            running = running.len(),
            finished = finished.len(),
            "hello"
        );
        if info.agent_version.is_empty() {
            info.agent_version = agent_version;
        }
        self.change(Change::DeviceSeen {
            device_id: device_id.to_owned(),
            at_ms: now,
            info: Some(info),
        });
        // The welcome goes out before anything else this turn sends the device.
        self.send(
            sink.clone(),
            ServerMessage::Welcome {
                device_id: device_id.to_owned(),
                operator_account_id: account,
                settings,
                server_time_ms: now,
            },
        );
        if queue_paused && !server_paused {
            self.set_paused(device_id, true, Some("agent".to_owned()), false);
        } else if server_paused && !queue_paused {
            let resume_at = self.devices.get(device_id).and_then(|d| d.resume_at);
            self.send(
                sink.clone(),
                ServerMessage::Queue {
                    paused: true,
                    resume_at_ms: resume_at,
                },
            );
        }

        // Settle the task the server believes is on this phone.
        let reported_finished: HashSet<TaskId> = finished.iter().map(|r| r.task_id).collect();
        let in_flight = self
            .queues
            .get(&account)
            .and_then(|q| q.in_flight)
            .filter(|&id| self.owns(device_id, id));
        if let Some(id) = in_flight.filter(|id| !reported_finished.contains(id)) {
            if running.contains(&id) {
                let task = self.tasks.get_mut(&id).expect("owned task exists");
                if task.state == TaskState::Dispatched {
                    task.set_state(TaskState::Running);
                    self.change(Change::TaskRunning { id, at_ms: now });
                }
                if self.tasks.get(&id).is_some_and(|t| t.cancel_requested) {
                    self.send(sink.clone(), ServerMessage::Cancel { task_id: id });
                }
            } else {
                self.take_off_phone(id, "the agent no longer reports the task", now);
            }
        }
        for report in finished {
            self.finish_from(device_id, connection, &sink, report);
        }
        // Anything else the agent runs is not wanted here any more.
        for id in running {
            if Some(id) != in_flight && !self.owns(device_id, id) {
                tracing::warn!(
                    task_id = id,
                    device_id,
                    "agent runs a task the server does not expect; cancelling it"
                );
                self.send(sink.clone(), ServerMessage::Cancel { task_id: id });
            }
        }
        self.try_dispatch(account);
    }

    fn on_accepted(&mut self, device_id: &str, sink: Arc<dyn DeviceSink>, task_id: TaskId) {
        if !self.owns(device_id, task_id) {
            self.send_error(
                sink,
                error_code::NOT_YOUR_TASK,
                format!("task {task_id} is not on this device"),
            );
            return;
        }
        let task = self.tasks.get_mut(&task_id).expect("owned task exists");
        if task.state == TaskState::Dispatched {
            task.set_state(TaskState::Running);
            let now = self.now();
            tracing::debug!(task_id, device_id, "accepted");
            self.change(Change::TaskRunning {
                id: task_id,
                at_ms: now,
            });
        }
    }

    /// The agent could not take an `assign`: the task fails with its reason at
    /// once (it never ran), and the queue moves on. A refusal of a task that
    /// is not waiting for this device's `accepted` changes nothing.
    fn on_refused(&mut self, device_id: &str, task_id: TaskId, code: String, message: String) {
        let waiting = self.owns(device_id, task_id)
            && self
                .tasks
                .get(&task_id)
                .is_some_and(|t| t.state == TaskState::Dispatched);
        if !waiting {
            tracing::warn!(
                task_id,
                device_id,
                code,
                "refusal of a task that is not waiting for this device; ignored"
            );
            return;
        }
        let now = self.now();
        let account = self.tasks.get(&task_id).map(|t| t.account);
        tracing::warn!(
            task_id,
            device_id,
            code,
            message,
            "the agent refused the task"
        );
        self.metrics.assign_refusals.increment(1);
        let code = if code.trim().is_empty() {
            error_code::REFUSED.to_owned()
        } else {
            code
        };
        let message = if message.trim().is_empty() {
            format!("the agent refused the task ({code})")
        } else {
            message
        };
        let error = TaskError {
            code,
            message,
            retryable: false,
        };
        self.end_task(task_id, TaskState::Failed, Some(error), None, now);
        if let Some(account) = account {
            self.try_dispatch(account);
        }
    }

    /// Stores a `finished` report (the first one wins) and acks it after the
    /// commit. A report for a task the scheduler no longer holds is looked up in
    /// the store: acked again if it was this device's, refused otherwise.
    fn finish_from(
        &mut self,
        device_id: &str,
        connection: ConnectionId,
        sink: &Arc<dyn DeviceSink>,
        report: FinishedReport,
    ) {
        let id = report.task_id;
        if self.owns(device_id, id) {
            let now = self.now();
            let task = self.tasks.get(&id).expect("owned task exists");
            let account = task.account;
            let attempt = task.attempt;
            // WeCom warned the account: stop using it until a person looks.
            let risk_control = report.outcome == Outcome::Failed
                && report
                    .error
                    .as_ref()
                    .is_some_and(|e| e.code == error_code::RISK_CONTROL);
            let retry = report.outcome == Outcome::Failed
                && !risk_control
                && report.error.as_ref().is_some_and(|e| e.retryable)
                && !task.cancel_requested
                && attempt < self.config.max_attempts;
            if risk_control {
                let message = report
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                self.risk_control_pause(device_id, account, id, message, now);
            }
            if retry {
                let not_before = now + self.config.retry_delay_ms * i64::from(attempt);
                tracing::info!(
                    task_id = id,
                    attempt,
                    not_before,
                    "retryable failure; task queued again"
                );
                if let Some(queue) = self.queues.get_mut(&account) {
                    queue.in_flight = None;
                }
                if let Some(task) = self.tasks.get_mut(&id) {
                    // A new attempt: its assign has not been sent yet.
                    task.sends = 0;
                }
                // The failed attempt's result (which items it sent) is kept
                // and shown while the task waits for its next attempt.
                self.change(Change::TaskRequeued {
                    id,
                    not_before_ms: Some(not_before),
                    error: report.error,
                    result: report.result.map(|value| value.to_string()),
                    at_ms: now,
                });
                self.enqueue(id, Some(not_before), now);
            } else {
                let state = match report.outcome {
                    Outcome::Succeeded => TaskState::Succeeded,
                    Outcome::Failed => TaskState::Failed,
                    Outcome::Cancelled => TaskState::Cancelled,
                };
                let result = report.result.map(|value| value.to_string());
                self.end_task(id, state, report.error, result, now);
            }
            self.send(sink.clone(), ServerMessage::Ack { task_id: id });
            self.try_dispatch(account);
        } else if self.tasks.contains_key(&id) {
            self.send_error(
                sink.clone(),
                error_code::NOT_YOUR_TASK,
                format!("task {id} is not on this device"),
            );
        } else {
            // Ended already (a copy of a stored report), or never existed. Only
            // the store knows which; ask it off the scheduler's task, once this
            // turn's changes are committed: the end of the first report may
            // still be on its way to the store (a reconnect while the store
            // fails), and the store must not be asked before it holds it.
            let lookup = self.lookup.clone();
            let commands = self.commands.clone();
            let device_id = device_id.to_owned();
            let runtime = tokio::runtime::Handle::current();
            self.effect(Box::new(move || {
                runtime.spawn(async move {
                    let owner = lookup(id).await;
                    if let Some(commands) = commands.upgrade() {
                        let _ = commands
                            .send(Command::OwnerLookedUp {
                                device_id,
                                connection,
                                task_id: id,
                                owner,
                            })
                            .await;
                    }
                });
            }));
        }
    }

    fn on_owner_looked_up(
        &mut self,
        device_id: &str,
        connection: ConnectionId,
        task_id: TaskId,
        owner: Result<Option<TaskOwner>, StoreError>,
    ) {
        let Some(sink) = self
            .devices
            .get(device_id)
            .and_then(|d| d.connection.as_ref())
            .filter(|c| c.id == connection)
            .map(|c| c.sink.clone())
        else {
            return;
        };
        match owner {
            Ok(Some(owner))
                if owner.state.is_terminal() && owner.device_id.as_deref() == Some(device_id) =>
            {
                tracing::debug!(task_id, device_id, "copy of a stored result; acked again");
                self.send(sink, ServerMessage::Ack { task_id });
            }
            Ok(_) => self.send_error(
                sink,
                error_code::NOT_YOUR_TASK,
                format!("task {task_id} is not on this device"),
            ),
            Err(error) => {
                // The agent re-sends unacked reports, so it will ask again.
                tracing::warn!(task_id, %error, "could not look up a reported task");
            }
        }
    }

    // ----- devices: binding, pause, settings -----

    fn on_device_bound(
        &mut self,
        record: DeviceRecord,
        replaced: Option<String>,
        reply: oneshot::Sender<()>,
    ) {
        let now = self.now();
        let account = record.operator_account_id;
        let previous = self.queues.get(&account).and_then(|q| q.device.clone());
        for old in replaced.into_iter().chain(previous).collect::<HashSet<_>>() {
            if old == record.device_id {
                continue;
            }
            if let Some(device) = self.devices.remove(&old) {
                tracing::info!(device_id = %old, new_device_id = %record.device_id, "device replaced by a new bind");
                if let Some(connection) = device.connection {
                    connection.sink.close(
                        error_code::REVOKED,
                        "another phone was bound to this operator account",
                    );
                }
            }
            let in_flight: Vec<TaskId> = self
                .tasks
                .iter()
                .filter(|(_, t)| {
                    t.device.as_deref() == Some(old.as_str())
                        && !t.state.is_terminal()
                        && t.state != TaskState::Queued
                })
                .map(|(&id, _)| id)
                .collect();
            for id in in_flight {
                self.take_off_phone(id, "the phone was replaced by a new bind", now);
            }
        }
        tracing::info!(device_id = %record.device_id, account, "device bound");
        self.insert_device(record);
        self.reply(reply, ());
        self.try_dispatch(account);
    }

    /// Applies an admin action to every device of `target` and answers how
    /// many it reached, or which ids are unknown (then nothing changes).
    fn for_each_device(
        &mut self,
        target: DeviceTarget,
        reply: oneshot::Sender<Result<u64, ControllerError>>,
        mut action: impl FnMut(&mut Self, &str),
    ) {
        let result = self.resolve(target).map(|ids| {
            for id in &ids {
                action(self, id);
            }
            ids.len() as u64
        });
        self.reply(reply, result);
    }

    fn resolve(&self, target: DeviceTarget) -> Result<Vec<String>, ControllerError> {
        match target {
            DeviceTarget::All => {
                let mut ids: Vec<String> = self.devices.keys().cloned().collect();
                ids.sort();
                Ok(ids)
            }
            DeviceTarget::Ids(ids) => {
                let mut unique = Vec::new();
                let mut seen = HashSet::new();
                let mut missing = Vec::new();
                for id in ids {
                    if !self.devices.contains_key(&id) {
                        missing.push(id);
                    } else if seen.insert(id.clone()) {
                        unique.push(id);
                    }
                }
                if missing.is_empty() {
                    Ok(unique)
                } else {
                    Err(ControllerError::UnknownDevices(missing))
                }
            }
        }
    }

    /// Pauses the account's queue because WeCom showed a risk-control warning:
    /// no auto-resume (an operator resumes by hand), and a notification for the
    /// admins in the same commit.
    fn risk_control_pause(
        &mut self,
        device_id: &str,
        account: OperatorAccountId,
        task_id: TaskId,
        message: String,
        now: i64,
    ) {
        tracing::warn!(
            device_id,
            account,
            task_id,
            message,
            "risk control: queue paused until an operator resumes it"
        );
        let reason = Some(error_code::RISK_CONTROL.to_owned());
        self.set_queue(device_id, true, reason, true, false);
        let text = if message.is_empty() {
            format!("task {task_id}: WeCom showed a risk-control warning; the queue is paused until an operator resumes it")
        } else {
            format!("task {task_id}: WeCom showed a risk-control warning ({message}); the queue is paused until an operator resumes it")
        };
        self.change(Change::Notified {
            kind: error_code::RISK_CONTROL.to_owned(),
            account,
            device_id: device_id.to_owned(),
            task_id: Some(task_id),
            message: text,
            at_ms: now,
        });
    }

    /// Pauses or resumes a device's queue. A pause arms the auto-resume timer
    /// from the device's settings; `echo` tells the agent (not needed when the
    /// agent itself reported the change).
    fn set_paused(&mut self, device_id: &str, paused: bool, reason: Option<String>, echo: bool) {
        self.set_queue(device_id, paused, reason, echo, true);
    }

    /// [`Scheduler::set_paused`], with the auto-resume timer armed only if `auto_resume`.
    fn set_queue(
        &mut self,
        device_id: &str,
        paused: bool,
        reason: Option<String>,
        echo: bool,
        auto_resume: bool,
    ) {
        let now = self.now();
        let unit = self.config.auto_resume_unit_ms;
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        let account = device.account;
        device.paused = paused;
        if paused {
            let minutes = if auto_resume {
                i64::from(device.settings.auto_resume_after_min.minutes())
            } else {
                0
            };
            device.resume_at = (minutes > 0).then(|| now + minutes * unit);
            device.pause_reason = reason;
        } else {
            device.resume_at = None;
            device.pause_reason = None;
        }
        let resume_at = device.resume_at;
        let reason = device.pause_reason.clone();
        tracing::info!(device_id, paused, reason, resume_at, "queue state changed");
        self.change(Change::QueuePaused {
            device_id: device_id.to_owned(),
            paused,
            reason,
            resume_at_ms: resume_at,
        });
        if let Some(at) = resume_at {
            self.timers
                .insert((at, TimerKey::AutoResume(device_id.to_owned())));
        }
        if echo {
            self.send_to(
                device_id,
                ServerMessage::Queue {
                    paused,
                    resume_at_ms: resume_at,
                },
            );
        }
        if !paused {
            self.try_dispatch(account);
        }
    }

    fn update_settings(&mut self, device_id: &str, patch: &SettingsPatch) {
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        device.settings = patch.apply(device.settings);
        let settings = device.settings;
        self.change(Change::SettingsChanged {
            device_id: device_id.to_owned(),
            settings,
        });
        self.send_to(device_id, ServerMessage::Settings { settings });
    }

    // ----- cancellation -----

    fn on_cancel(&mut self, filter: &CancelFilter) -> CancelResult {
        let now = self.now();
        let device_accounts: Option<HashSet<OperatorAccountId>> =
            filter.device_ids.as_ref().map(|ids| {
                ids.iter()
                    .filter_map(|id| self.devices.get(id))
                    .map(|d| d.account)
                    .collect()
            });
        let candidates: Vec<TaskId> = match (
            &filter.task_ids,
            &filter.operator_account_ids,
            &device_accounts,
        ) {
            (Some(ids), _, _) => ids
                .iter()
                .copied()
                .filter(|id| self.tasks.contains_key(id))
                .collect(),
            (None, Some(accounts), _) | (None, None, Some(accounts)) => accounts
                .iter()
                .filter_map(|account| self.queues.get(account))
                .flat_map(|q| {
                    q.ready
                        .iter()
                        .map(|(_, id)| *id)
                        .chain(q.delayed.iter().map(|(_, id)| *id))
                        .chain(q.in_flight)
                })
                .collect(),
            (None, None, None) => self.tasks.keys().copied().collect(),
        };
        let mut result = CancelResult {
            cancelled: 0,
            cancelling: 0,
        };
        // Accounts whose task on the phone ended here: their queues move on.
        let mut touched = HashSet::new();
        for id in candidates {
            let Some(task) = self.tasks.get(&id) else {
                continue;
            };
            let matches = filter
                .operator_account_ids
                .as_ref()
                .is_none_or(|a| a.contains(&task.account))
                && filter.kinds.as_ref().is_none_or(|k| k.contains(&task.kind))
                && match (&filter.device_ids, &device_accounts) {
                    (Some(devices), Some(accounts)) => {
                        task.device.as_ref().is_some_and(|d| devices.contains(d))
                            || (task.state == TaskState::Queued && accounts.contains(&task.account))
                    }
                    _ => true,
                };
            if !matches {
                continue;
            }
            let account_of = task.account;
            match task.state {
                TaskState::Queued => {
                    let key_ready = (Reverse(task.priority), id);
                    let key_delayed = task.not_before.map(|at| (at, id));
                    if let Some(queue) = self.queues.get_mut(&task.account) {
                        queue.ready.remove(&key_ready);
                        if let Some(key) = key_delayed {
                            queue.delayed.remove(&key);
                        }
                    }
                    self.end_task(id, TaskState::Cancelled, None, None, now);
                    result.cancelled += 1;
                }
                TaskState::Dispatched => {
                    // Not accepted: the phone has not started it, so it ends
                    // now. The agent is told to drop it, in case its
                    // `accepted` is on the way.
                    let device = task.device.clone();
                    self.end_task(id, TaskState::Cancelled, None, None, now);
                    if let Some(device) = device {
                        self.send_to(&device, ServerMessage::Cancel { task_id: id });
                    }
                    result.cancelled += 1;
                    touched.insert(account_of);
                }
                _ => {
                    result.cancelling += 1;
                    if task.cancel_requested {
                        continue;
                    }
                    let device = task.device.clone();
                    self.tasks
                        .get_mut(&id)
                        .expect("task exists")
                        .cancel_requested = true;
                    self.change(Change::TaskCancelRequested { id, at_ms: now });
                    if let Some(device) = device {
                        self.send_to(&device, ServerMessage::Cancel { task_id: id });
                    }
                }
            }
        }
        tracing::info!(
            cancelled = result.cancelled,
            cancelling = result.cancelling,
            "cancel"
        );
        for account in touched {
            self.try_dispatch(account);
        }
        result
    }

    // ----- timers -----

    fn fire_timers(&mut self) {
        let now = self.now();
        while let Some((due, _)) = self.timers.first() {
            if *due > now {
                break;
            }
            let (_, key) = self.timers.pop_first().expect("a first timer exists");
            match key {
                TimerKey::OfflineCheck => {
                    self.close_silent_devices(now);
                    self.timers
                        .insert((now + self.config.offline_check_ms, TimerKey::OfflineCheck));
                }
                TimerKey::Delayed(account) => {
                    let Some(queue) = self.queues.get_mut(&account) else {
                        continue;
                    };
                    let mut due_ids = Vec::new();
                    while let Some(&(at, id)) = queue.delayed.first() {
                        if at > now {
                            break;
                        }
                        queue.delayed.pop_first();
                        due_ids.push(id);
                    }
                    for id in due_ids {
                        self.enqueue(id, None, now);
                    }
                    self.try_dispatch(account);
                }
                TimerKey::AutoResume(device_id) => {
                    let due_now = self
                        .devices
                        .get(&device_id)
                        .is_some_and(|d| d.paused && d.resume_at.is_some_and(|at| at <= now));
                    if due_now {
                        tracing::info!(device_id, "auto-resume");
                        self.set_paused(&device_id, false, None, true);
                    }
                }
                TimerKey::Resend(id) => {
                    let Some(task) = self
                        .tasks
                        .get(&id)
                        .filter(|t| t.state == TaskState::Dispatched)
                    else {
                        continue;
                    };
                    let Some(device_id) = task.device.clone() else {
                        continue;
                    };
                    // An offline device is not counted against: its `hello`
                    // queues the task again and a new dispatch starts over.
                    let Some(sink) = self.devices.get(&device_id).and_then(Device::greeted_sink)
                    else {
                        self.timers
                            .insert((now + self.config.assign_resend_ms, TimerKey::Resend(id)));
                        continue;
                    };
                    let account = task.account;
                    let sends = task.sends;
                    let waited = now - task.dispatched_at.unwrap_or(now);
                    let why = if sends >= self.config.assign_max_sends {
                        Some(format!("its assign was sent {sends} times"))
                    } else if waited >= self.config.assign_deliver_ms {
                        Some(format!(
                            "its assign went unanswered for {} s",
                            waited / 1_000
                        ))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        self.fail_undeliverable(id, &why, now);
                        self.try_dispatch(account);
                        continue;
                    }
                    let assign = task.assign(id);
                    tracing::debug!(
                        task_id = id,
                        device_id,
                        sends,
                        "assign not accepted in time; sending it again"
                    );
                    if let Some(task) = self.tasks.get_mut(&id) {
                        task.sends += 1;
                    }
                    self.metrics.assign_resends.increment(1);
                    self.send_assign(sink, assign);
                    self.timers
                        .insert((now + self.config.assign_resend_ms, TimerKey::Resend(id)));
                }
            }
        }
    }

    /// Closes the connections of devices not heard from within the offline limit.
    fn close_silent_devices(&mut self, now: i64) {
        let limit = self.config.offline_after_ms;
        let silent: Vec<(String, ConnectionId)> = self
            .devices
            .iter()
            .filter_map(|(id, d)| {
                let connection = d.connection.as_ref()?;
                (now - d.last_seen.unwrap_or(now) > limit).then(|| (id.clone(), connection.id))
            })
            .collect();
        for (device_id, connection) in silent {
            tracing::warn!(
                device_id,
                "no frame from the device within the offline limit; closing its connection"
            );
            if let Some(c) = self
                .devices
                .get(&device_id)
                .and_then(|d| d.connection.as_ref())
            {
                c.sink
                    .close("idle_timeout", "no heartbeat within the offline limit");
            }
            self.on_disconnect(&device_id, connection);
        }
    }

    // ----- queries -----

    fn device_statuses(&self) -> Vec<DeviceStatus> {
        let now = self.now();
        let mut statuses: Vec<DeviceStatus> = self
            .devices
            .iter()
            .map(|(id, d)| {
                let queue = self.queues.get(&d.account);
                let online =
                    d.connection.as_ref().is_some_and(|c| c.greeted) && self.is_fresh(d, now);
                DeviceStatus {
                    device_id: id.clone(),
                    operator_account_id: d.account,
                    online,
                    paused: d.paused,
                    pause_reason: d.pause_reason.clone(),
                    resume_at_ms: d.resume_at,
                    current_task_id: queue
                        .and_then(|q| q.in_flight)
                        .filter(|&t| self.owns(id, t)),
                    last_seen_ms: d.last_seen,
                    battery: d.battery,
                    call: d.call,
                    queued_tasks: queue.map_or(0, |q| (q.ready.len() + q.delayed.len()) as u64),
                    settings: d.settings,
                }
            })
            .collect();
        statuses.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        statuses
    }
}
