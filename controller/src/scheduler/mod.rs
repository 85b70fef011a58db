//! The scheduler task: the state it owns (queues, devices, tasks in flight),
//! its loop, and the way out of it (changes to the writer, effects after the
//! commit). The rules live in the files beside this one.
//!
//! One task owns all the state, so no lock is ever held across I/O: commands
//! arrive on a channel, each turn of the loop handles every command waiting,
//! fires due timers, and hands the resulting [`Batch`] to the writer, or, while
//! the writer is busy, keeps it to add the next turns to. Nothing it decides
//! reaches an agent or a caller before the writer committed it.
//!
//! # Layout
//! One `impl Scheduler` per file, each for one kind of rule:
//! - `dispatch`: submission (accounts checked in the same turn), one queue per
//!   operator account ordered by priority then id ([`Queue`]), one task in
//!   flight per device and the dispatch gate ([`Scheduler::try_dispatch`]),
//!   expiry, and how a task leaves a phone without a report
//!   ([`Scheduler::take_off_phone`], [`Scheduler::fail_undeliverable`]);
//! - `agent_frames`: a device's connection and what its agent says: `hello`
//!   and resynchronisation (never re-run after `accepted`, `lost` when no
//!   longer reported), `accepted`, `refused`, `finished` (idempotent, acked
//!   after commit, retries of retryable failures: [`Scheduler::finish_from`]);
//! - `devices`: binding, the admin actions on devices, pause, resume and
//!   auto-resume ([`Scheduler::set_paused`]), the risk-control pause, settings,
//!   and the device list;
//! - `cancel`: cancellation by ids, accounts, devices and kinds;
//! - `timers`: what each [`TimerKey`] does when due: `assign` re-sends, delayed
//!   tasks (`not_before`, retries), auto-resume, the offline check.

mod agent_frames;
mod cancel;
mod devices;
mod dispatch;
mod timers;

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use youmi_protocol::api::CancelResult;
use youmi_protocol::{
    AgentMessage, AgentSettings, CallStatus, OperatorAccountId, ServerMessage, SettingsPatch,
    TaskId, TaskKind, TaskState,
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
    SubmitError,
};
use timers::TimerKey;

/// One request to the scheduler task.
pub(crate) enum Command {
    /// New tasks, their accounts checked in the same turn that queues them.
    Submit {
        tasks: Vec<NewTask>,
        /// Why the handle found the store not taking writes, if it did: the
        /// submission is refused with it, after the accounts' check, so that a
        /// task naming a bad account is told so whatever the store's state.
        refused: Option<ControllerError>,
        reply: oneshot::Sender<Result<Vec<TaskId>, SubmitError>>,
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
    /// One frame to each of these devices, if online; answers which went out.
    SendFrames {
        frames: Vec<(String, ServerMessage)>,
        reply: oneshot::Sender<Vec<bool>>,
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

/// What a device's heartbeats report beside the battery and calls (each
/// kept until a heartbeat says otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Report {
    wecom_version: Option<String>,
    screen_on: Option<bool>,
    dnd: Option<bool>,
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
    /// What the heartbeats last reported of WeCom, the screen and
    /// do-not-disturb.
    report: Report,
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
    /// The change feed: bumped after a turn that may have changed a device.
    changed: watch::Sender<u64>,
    /// Whether this turn may have changed a device.
    dirty: bool,
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
    ) -> watch::Receiver<u64> {
        let store = Arc::new(store);
        let lookup_store = store.clone();
        let lookup: OwnerLookup = Arc::new(move |id| {
            let store = lookup_store.clone();
            Box::pin(async move { store.task_owner(id).await })
        });
        let writer = Writer::start(store, signals, config.writer_thread);
        let (changed, changes) = watch::channel(0);
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
            changed,
            dirty: false,
        };
        scheduler.restore(snapshot);
        tokio::spawn(async move {
            scheduler.run(receiver).await;
            tracing::debug!("scheduler stopped");
        });
        changes
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
            if self
                .timers
                .first()
                .is_some_and(|(due, _)| *due <= self.now())
            {
                self.dirty = true;
            }
            self.fire_timers();
            if std::mem::take(&mut self.dirty) {
                self.changed.send_modify(|turns| *turns += 1);
            }
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
        // Questions change nothing; every other command may.
        if !matches!(command, Command::Devices { .. } | Command::Accounts { .. }) {
            self.dirty = true;
        }
        match command {
            Command::Submit {
                tasks,
                refused,
                reply,
            } => self.on_submit(tasks, refused, reply),
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
                self.on_account_changed(account);
                self.reply(reply, ());
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
            Command::SendFrames { frames, reply } => {
                let sent = self.send_frames(frames);
                self.reply(reply, sent);
            }
            Command::Accounts { ids, reply } => {
                let _ = reply.send(self.known_accounts(ids));
            }
            Command::OwnerLookedUp {
                device_id,
                connection,
                task_id,
                owner,
            } => self.on_owner_looked_up(&device_id, connection, task_id, owner),
        }
    }

    // The way out: changes for the writer, and what waits for their commit.

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

    // What every rule asks of the state.

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
}
