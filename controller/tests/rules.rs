//! The scheduling rules, driven through the public handle with an in-memory
//! store, fake device sinks and a paused tokio clock.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use youmi_controller::{
    AccountRecord, CancelFilter, Change, Controller, ControllerConfig, DeviceRecord, DeviceSink,
    DeviceTarget, NewTask, SinkClosed, Snapshot, Store, StoreError, SubmitError, TaskOwner,
    TaskRecord, TokioClock, WRITER_THREAD,
};
use youmi_protocol::{
    AgentMessage, AgentSettings, AutoResume, CallStatus, DeviceInfo, FinishedReport, Outcome,
    ServerMessage, SettingsPatch, TaskError, TaskKind, TaskState,
};

/// A store that keeps every committed change and the last state of each task.
#[derive(Clone, Default)]
struct MemoryStore {
    inner: Arc<Mutex<MemoryInner>>,
    /// Every commit waits for a read lock: a test holds the write lock to make
    /// commits slow.
    gate: Arc<tokio::sync::RwLock<()>>,
}

#[derive(Default)]
struct MemoryInner {
    changes: Vec<Change>,
    tasks: HashMap<i64, TaskOwner>,
    fail: bool,
    /// The thread of every commit, by name.
    commit_threads: HashSet<Option<String>>,
}

impl MemoryStore {
    fn state(&self, id: i64) -> Option<TaskState> {
        self.inner.lock().unwrap().tasks.get(&id).map(|t| t.state)
    }

    fn changes(&self) -> Vec<Change> {
        self.inner.lock().unwrap().changes.clone()
    }

    fn dispatches(&self, id: i64) -> usize {
        self.changes()
            .iter()
            .filter(|c| matches!(c, Change::TaskDispatched { id: i, .. } if *i == id))
            .count()
    }
}

impl Store for MemoryStore {
    async fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        let _open = self.gate.read().await;
        let mut inner = self.inner.lock().unwrap();
        inner
            .commit_threads
            .insert(std::thread::current().name().map(str::to_owned));
        if inner.fail {
            return Err(StoreError::permanent("disk full"));
        }
        for change in changes {
            let (id, state, device) = match change {
                Change::TaskInserted { id, task, .. } => (
                    *id,
                    if task.intercepted.is_some() {
                        TaskState::Intercepted
                    } else {
                        TaskState::Queued
                    },
                    None,
                ),
                Change::TaskDispatched { id, device_id, .. } => {
                    (*id, TaskState::Dispatched, Some(device_id.clone()))
                }
                Change::TaskRunning { id, .. } => (*id, TaskState::Running, None),
                Change::TaskRequeued { id, .. } => (*id, TaskState::Queued, None),
                Change::TaskFinished { id, state, .. } => (*id, *state, None),
                _ => {
                    inner.changes.push(change.clone());
                    continue;
                }
            };
            let entry = inner.tasks.entry(id).or_insert(TaskOwner {
                device_id: None,
                state,
            });
            entry.state = state;
            if device.is_some() {
                entry.device_id = device;
            }
            inner.changes.push(change.clone());
        }
        Ok(())
    }

    async fn task_owner(&self, id: i64) -> Result<Option<TaskOwner>, StoreError> {
        Ok(self.inner.lock().unwrap().tasks.get(&id).cloned())
    }
}

/// A device connection that records what the scheduler sent and whether it closed it.
struct FakeSink {
    frames: mpsc::UnboundedSender<ServerMessage>,
    closed: Mutex<Option<String>>,
}

impl DeviceSink for FakeSink {
    fn send(&self, message: ServerMessage) -> Result<(), SinkClosed> {
        self.frames.send(message).map_err(|_| SinkClosed)
    }

    fn close(&self, code: &str, _reason: &str) {
        *self.closed.lock().unwrap() = Some(code.to_owned());
    }
}

struct Phone {
    device_id: String,
    connection: u64,
    sink: Arc<FakeSink>,
    frames: mpsc::UnboundedReceiver<ServerMessage>,
}

impl Phone {
    async fn recv(&mut self) -> ServerMessage {
        tokio::time::timeout(Duration::from_secs(1), self.frames.recv())
            .await
            .expect("a frame within a second")
            .expect("sink open")
    }

    /// Lets the scheduler and writer run, then says whether a frame is waiting.
    async fn nothing_more(&mut self) -> bool {
        settle().await;
        self.frames.try_recv().is_err()
    }

    fn closed_with(&self) -> Option<String> {
        self.sink.closed.lock().unwrap().clone()
    }

    async fn send(&self, controller: &Controller, message: AgentMessage) {
        controller
            .agent_message(self.device_id.clone(), self.connection, message)
            .await
            .unwrap();
        settle().await;
    }

    /// Advances the clock by `seconds`, heartbeating every 30 s as an agent does.
    async fn live_for(&self, controller: &Controller, seconds: u64) {
        let mut left = seconds;
        while left > 0 {
            let step = left.min(30);
            tokio::time::advance(Duration::from_secs(step)).await;
            left -= step;
            self.send(controller, heartbeat()).await;
        }
    }

    async fn expect_assign(&mut self) -> i64 {
        match self.recv().await {
            ServerMessage::Assign { task } => task.id,
            other => panic!("expected assign, got {other:?}"),
        }
    }

    async fn finish(
        &self,
        controller: &Controller,
        task_id: i64,
        outcome: Outcome,
        error: Option<TaskError>,
    ) {
        self.send(
            controller,
            AgentMessage::Finished(FinishedReport {
                task_id,
                outcome,
                error,
                result: None,
            }),
        )
        .await;
    }
}

/// Lets spawned tasks run without moving the paused clock by much.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn config() -> ControllerConfig {
    ControllerConfig::default()
}

fn device(id: &str, account: i64) -> DeviceRecord {
    DeviceRecord {
        device_id: id.to_owned(),
        operator_account_id: account,
        settings: AgentSettings::default(),
        paused: false,
        pause_reason: None,
        resume_at_ms: None,
        last_seen_ms: None,
    }
}

fn snapshot(devices: &[(&str, i64)]) -> Snapshot {
    let accounts: HashSet<i64> = devices.iter().map(|(_, a)| *a).collect();
    Snapshot {
        accounts: accounts
            .into_iter()
            .map(|id| AccountRecord {
                id,
                disabled: false,
            })
            .collect(),
        devices: devices.iter().map(|(d, a)| device(d, *a)).collect(),
        tasks: Vec::new(),
        next_task_id: 1,
    }
}

fn start(snapshot: Snapshot, config: ControllerConfig) -> (Controller, MemoryStore) {
    let store = MemoryStore::default();
    let controller = Controller::start(
        snapshot,
        store.clone(),
        TokioClock::starting_at(1_000_000),
        config,
    );
    (controller, store)
}

fn task(account: i64, priority: u8) -> NewTask {
    NewTask {
        operator_account_id: account,
        kind: TaskKind::SendMessage,
        payload: json!({"to": {"name": "Li"}, "items": [{"type": "text", "text": "hi"}]})
            .to_string()
            .into(),
        priority,
        not_before_ms: None,
        not_after_ms: None,
        intercepted: None,
    }
}

async fn connect(controller: &Controller, device_id: &str, connection: u64) -> Phone {
    let (frames_tx, frames) = mpsc::unbounded_channel();
    let sink = Arc::new(FakeSink {
        frames: frames_tx,
        closed: Mutex::new(None),
    });
    controller
        .connect(device_id.to_owned(), connection, sink.clone())
        .await
        .unwrap();
    Phone {
        device_id: device_id.to_owned(),
        connection,
        sink,
        frames,
    }
}

fn heartbeat() -> AgentMessage {
    AgentMessage::Heartbeat {
        battery: None,
        charging: None,
        screen_on: None,
        foreground_app: None,
        call: None,
        wecom_version: None,
        dnd: None,
    }
}

fn hello(queue_paused: bool, running: Vec<i64>, finished: Vec<FinishedReport>) -> AgentMessage {
    AgentMessage::Hello {
        agent_version: "test".into(),
        device: DeviceInfo::default(),
        queue_paused,
        running,
        finished,
    }
}

/// Connects and greets a device, consuming the welcome.
async fn online(controller: &Controller, device_id: &str, connection: u64) -> Phone {
    let mut phone = connect(controller, device_id, connection).await;
    phone.send(controller, hello(false, vec![], vec![])).await;
    assert!(matches!(phone.recv().await, ServerMessage::Welcome { .. }));
    phone
}

/// With `writer_thread`, every commit runs on the writer's own thread, and a
/// task still goes from submit to `ack` with each step committed first.
#[tokio::test]
async fn the_writer_can_run_on_a_thread_of_its_own() {
    let (controller, store) = start(
        snapshot(&[("d1", 1)]),
        ControllerConfig {
            writer_thread: true,
            ..config()
        },
    );
    let mut phone = online(&controller, "d1", 1).await;
    let ids = controller.submit(vec![task(1, 5)]).await.unwrap();
    assert!(store.state(ids[0]).is_some(), "stored before the answer");
    assert_eq!(phone.expect_assign().await, ids[0]);
    assert_eq!(store.state(ids[0]), Some(TaskState::Dispatched));
    phone
        .finish(&controller, ids[0], Outcome::Succeeded, None)
        .await;
    assert_eq!(phone.recv().await, ServerMessage::Ack { task_id: ids[0] });
    assert_eq!(store.state(ids[0]), Some(TaskState::Succeeded));
    assert_eq!(
        store.inner.lock().unwrap().commit_threads,
        HashSet::from([Some(WRITER_THREAD.to_owned())])
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_is_dispatched_before_hello_and_one_task_at_a_time() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    let ids = controller
        .submit(vec![task(1, 5), task(1, 5)])
        .await
        .unwrap();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(
        store.state(1),
        Some(TaskState::Queued),
        "committed before the answer"
    );

    let mut phone = connect(&controller, "d1", 1).await;
    assert!(phone.nothing_more().await, "no frame before hello");
    phone.send(&controller, hello(false, vec![], vec![])).await;
    match phone.recv().await {
        ServerMessage::Welcome {
            device_id,
            operator_account_id,
            ..
        } => {
            assert_eq!((device_id.as_str(), operator_account_id), ("d1", 1))
        }
        other => panic!("expected welcome, got {other:?}"),
    }
    assert_eq!(phone.expect_assign().await, 1);
    assert!(
        phone.nothing_more().await,
        "no second assign while the first has no finished"
    );
    assert_eq!(store.state(1), Some(TaskState::Dispatched));

    phone
        .send(&controller, AgentMessage::Accepted { task_id: 1 })
        .await;
    phone.finish(&controller, 1, Outcome::Succeeded, None).await;
    assert_eq!(phone.recv().await, ServerMessage::Ack { task_id: 1 });
    assert_eq!(
        store.state(1),
        Some(TaskState::Succeeded),
        "stored before the ack"
    );
    assert_eq!(phone.expect_assign().await, 2);
}

#[tokio::test(start_paused = true)]
async fn higher_priority_first_then_submission_order() {
    let (controller, _store) = start(snapshot(&[("d1", 1)]), config());
    controller
        .submit(vec![task(1, 1), task(1, 9), task(1, 5), task(1, 9)])
        .await
        .unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        let id = phone.expect_assign().await;
        order.push(id);
        phone
            .finish(&controller, id, Outcome::Succeeded, None)
            .await;
        assert_eq!(phone.recv().await, ServerMessage::Ack { task_id: id });
    }
    assert_eq!(order, vec![2, 4, 3, 1]);
}

#[tokio::test(start_paused = true)]
async fn assign_is_resent_until_accepted_then_never() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    controller.submit(vec![task(1, 5)]).await.unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    assert_eq!(phone.expect_assign().await, 1);
    tokio::time::advance(Duration::from_millis(9_000)).await;
    assert!(phone.nothing_more().await, "not before 10 s");
    tokio::time::advance(Duration::from_millis(1_100)).await;
    assert_eq!(phone.expect_assign().await, 1, "re-sent after 10 s");
    phone
        .send(&controller, AgentMessage::Accepted { task_id: 1 })
        .await;
    settle().await;
    assert_eq!(store.state(1), Some(TaskState::Running));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(phone.nothing_more().await, "never re-sent after accepted");
    assert_eq!(store.dispatches(1), 1, "a re-send is the same dispatch");
}

#[tokio::test(start_paused = true)]
async fn reconnect_keeps_a_running_task_and_loses_an_unreported_one() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    controller
        .submit(vec![task(1, 5), task(1, 5)])
        .await
        .unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    assert_eq!(phone.expect_assign().await, 1);
    phone
        .send(&controller, AgentMessage::Accepted { task_id: 1 })
        .await;
    controller.disconnect("d1".into(), 1).await.unwrap();

    // Back with the task still running: it stays running and is not re-sent.
    let mut phone = connect(&controller, "d1", 2).await;
    phone.send(&controller, hello(false, vec![1], vec![])).await;
    assert!(matches!(phone.recv().await, ServerMessage::Welcome { .. }));
    assert!(phone.nothing_more().await);
    assert_eq!(store.state(1), Some(TaskState::Running));

    // Back again without it: the task is failed as lost, never run again.
    controller.disconnect("d1".into(), 2).await.unwrap();
    let mut phone = connect(&controller, "d1", 3).await;
    phone.send(&controller, hello(false, vec![], vec![])).await;
    assert!(matches!(phone.recv().await, ServerMessage::Welcome { .. }));
    assert_eq!(phone.expect_assign().await, 2, "the queue moves on");
    assert_eq!(store.state(1), Some(TaskState::Failed));
    let lost = store.changes().into_iter().any(|c| {
        matches!(c, Change::TaskFinished { id: 1, error: Some(ref e), .. } if e.code == "lost" && !e.retryable)
    });
    assert!(lost, "failed with code lost");
    assert_eq!(store.dispatches(1), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dispatched_task_the_agent_never_saw_is_sent_again_after_reconnect() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    controller.submit(vec![task(1, 5)]).await.unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    assert_eq!(phone.expect_assign().await, 1);
    controller.disconnect("d1".into(), 1).await.unwrap();
    let mut phone = connect(&controller, "d1", 2).await;
    phone.send(&controller, hello(false, vec![], vec![])).await;
    assert!(matches!(phone.recv().await, ServerMessage::Welcome { .. }));
    match phone.recv().await {
        ServerMessage::Assign { task } => assert_eq!((task.id, task.attempt), (1, 2)),
        other => panic!("expected assign, got {other:?}"),
    }
    assert_eq!(store.dispatches(1), 2);
}

#[tokio::test(start_paused = true)]
async fn finished_is_idempotent_and_reports_in_hello_are_stored() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    controller.submit(vec![task(1, 5)]).await.unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    assert_eq!(phone.expect_assign().await, 1);
    phone
        .send(&controller, AgentMessage::Accepted { task_id: 1 })
        .await;
    controller.disconnect("d1".into(), 1).await.unwrap();

    // The result arrives in the next hello.
    let mut phone = connect(&controller, "d1", 2).await;
    let report = FinishedReport {
        task_id: 1,
        outcome: Outcome::Succeeded,
        error: None,
        result: Some(json!({"n": 1})),
    };
    phone
        .send(&controller, hello(false, vec![], vec![report.clone()]))
        .await;
    assert!(matches!(phone.recv().await, ServerMessage::Welcome { .. }));
    assert_eq!(phone.recv().await, ServerMessage::Ack { task_id: 1 });
    assert_eq!(store.state(1), Some(TaskState::Succeeded));

    // A later copy, with another outcome, is acked and changes nothing.
    let before = store.changes().len();
    phone.finish(&controller, 1, Outcome::Failed, None).await;
    assert_eq!(phone.recv().await, ServerMessage::Ack { task_id: 1 });
    assert_eq!(store.state(1), Some(TaskState::Succeeded));
    assert_eq!(store.changes().len(), before);
}

#[tokio::test(start_paused = true)]
async fn frames_about_other_devices_tasks_are_refused_and_change_nothing() {
    let (controller, store) = start(snapshot(&[("d1", 1), ("d2", 2)]), config());
    controller.submit(vec![task(1, 5)]).await.unwrap();
    let mut one = online(&controller, "d1", 1).await;
    let mut two = online(&controller, "d2", 2).await;
    assert_eq!(one.expect_assign().await, 1);
    for message in [
        AgentMessage::Accepted { task_id: 1 },
        AgentMessage::Finished(FinishedReport {
            task_id: 1,
            outcome: Outcome::Succeeded,
            error: None,
            result: None,
        }),
        AgentMessage::Finished(FinishedReport {
            task_id: 999,
            outcome: Outcome::Succeeded,
            error: None,
            result: None,
        }),
    ] {
        two.send(&controller, message).await;
        match two.recv().await {
            ServerMessage::Error { code, .. } => assert_eq!(code, "not_your_task"),
            other => panic!("expected an error, got {other:?}"),
        }
    }
    assert_eq!(store.state(1), Some(TaskState::Dispatched));
}

#[tokio::test(start_paused = true)]
async fn frames_before_hello_are_refused() {
    let (controller, _store) = start(snapshot(&[("d1", 1)]), config());
    let mut phone = connect(&controller, "d1", 1).await;
    phone
        .send(&controller, AgentMessage::Accepted { task_id: 1 })
        .await;
    match phone.recv().await {
        ServerMessage::Error { code, .. } => assert_eq!(code, "hello_required"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn pause_holds_dispatch_and_auto_resume_releases_it() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    let patch = SettingsPatch {
        auto_resume_after_min: Some(AutoResume::try_from(3).unwrap()),
        ..Default::default()
    };
    assert_eq!(
        controller
            .update_settings(DeviceTarget::All, patch)
            .await
            .unwrap(),
        1
    );
    let mut phone = online(&controller, "d1", 1).await;
    assert_eq!(
        controller
            .pause(DeviceTarget::Ids(vec!["d1".into()]), "admin".into())
            .await
            .unwrap(),
        1
    );
    match phone.recv().await {
        ServerMessage::Queue {
            paused: true,
            resume_at_ms: Some(at),
        } => {
            assert!(
                (1_180_000..1_180_100).contains(&at),
                "three minutes after the pause, not {at}"
            )
        }
        other => panic!("expected queue paused, got {other:?}"),
    }
    controller.submit(vec![task(1, 5)]).await.unwrap();
    phone.live_for(&controller, 179).await;
    assert!(phone.nothing_more().await, "paused: nothing dispatched");
    let status = &controller.devices().await.unwrap()[0];
    assert!(status.paused);
    assert_eq!(status.pause_reason.as_deref(), Some("admin"));
    phone.live_for(&controller, 2).await;
    assert_eq!(
        phone.recv().await,
        ServerMessage::Queue {
            paused: false,
            resume_at_ms: None
        }
    );
    assert_eq!(phone.expect_assign().await, 1);
    let paused_changes = store
        .changes()
        .into_iter()
        .filter(|c| matches!(c, Change::QueuePaused { .. }))
        .count();
    assert_eq!(paused_changes, 2, "pause and resume are both stored");
}

#[tokio::test(start_paused = true)]
async fn the_agent_can_pause_and_never_means_never() {
    let (controller, _store) = start(snapshot(&[("d1", 1)]), config());
    let mut phone = online(&controller, "d1", 1).await;
    phone
        .send(
            &controller,
            AgentMessage::QueueChanged {
                paused: true,
                reason: "volume_key".into(),
            },
        )
        .await;
    controller.submit(vec![task(1, 5)]).await.unwrap();
    phone.live_for(&controller, 3600).await;
    assert!(phone.nothing_more().await, "auto-resume is off by default");
    assert_eq!(
        controller.devices().await.unwrap()[0]
            .pause_reason
            .as_deref(),
        Some("volume_key")
    );
    phone
        .send(
            &controller,
            AgentMessage::QueueChanged {
                paused: false,
                reason: "volume_key".into(),
            },
        )
        .await;
    assert_eq!(phone.expect_assign().await, 1);
}

#[tokio::test(start_paused = true)]
async fn pause_and_settings_name_unknown_devices() {
    let (controller, _store) = start(snapshot(&[("d1", 1)]), config());
    let error = controller
        .pause(
            DeviceTarget::Ids(vec!["d1".into(), "nope".into()]),
            "admin".into(),
        )
        .await;
    assert_eq!(
        error,
        Err(youmi_controller::ControllerError::UnknownDevices(vec![
            "nope".into()
        ]))
    );
    assert!(
        !controller.devices().await.unwrap()[0].paused,
        "nothing changed"
    );
}

#[tokio::test(start_paused = true)]
async fn settings_are_pushed_to_the_agent() {
    let (controller, _store) = start(snapshot(&[("d1", 1)]), config());
    let mut phone = online(&controller, "d1", 1).await;
    let patch = SettingsPatch {
        countdown_popup: Some(true),
        ..Default::default()
    };
    controller
        .update_settings(DeviceTarget::Ids(vec!["d1".into()]), patch)
        .await
        .unwrap();
    match phone.recv().await {
        ServerMessage::Settings { settings } => {
            assert!(settings.countdown_popup);
            assert!(settings.dnd_while_running, "other keys keep their values");
        }
        other => panic!("expected settings, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn one_off_frames_reach_online_devices_only() {
    let (controller, _store) = start(snapshot(&[("d1", 1), ("d2", 2)]), config());
    let mut phone = online(&controller, "d1", 1).await;
    let frame = |request_id: &str| ServerMessage::UploadLogs {
        request_id: request_id.into(),
        url: format!("http://server/agent/v1/logs/{request_id}"),
    };
    let sent = controller
        .send_frames(vec![
            ("d1".into(), frame("r1")),
            ("d2".into(), frame("r2")),
            ("nope".into(), frame("r3")),
        ])
        .await
        .unwrap();
    assert_eq!(
        sent,
        vec![true, false, false],
        "d2 never connected; nope is unknown"
    );
    assert_eq!(phone.recv().await, frame("r1"));
    assert!(phone.nothing_more().await, "one frame each, nothing else");
}

#[tokio::test(start_paused = true)]
async fn silent_devices_go_offline_after_90_seconds() {
    let (controller, _store) = start(snapshot(&[("d1", 1)]), config());
    let phone = online(&controller, "d1", 1).await;
    tokio::time::advance(Duration::from_secs(60)).await;
    phone
        .send(
            &controller,
            AgentMessage::Heartbeat {
                battery: Some(80),
                charging: None,
                screen_on: None,
                foreground_app: None,
                call: None,
                wecom_version: None,
                dnd: None,
            },
        )
        .await;
    tokio::time::advance(Duration::from_secs(80)).await;
    settle().await;
    let status = &controller.devices().await.unwrap()[0];
    assert!(status.online, "a heartbeat 80 s ago keeps it online");
    assert_eq!(status.battery, Some(80));
    tokio::time::advance(Duration::from_secs(20)).await;
    settle().await;
    assert!(!controller.devices().await.unwrap()[0].online);
    assert_eq!(phone.closed_with().as_deref(), Some("idle_timeout"));
}

#[tokio::test(start_paused = true)]
async fn the_call_state_of_the_last_heartbeat_is_shown_and_an_old_one_is_not_kept() {
    let (controller, _store) = start(snapshot(&[("d1", 1)]), config());
    let phone = online(&controller, "d1", 1).await;
    let beat = |battery: Option<u8>, call: Option<CallStatus>| AgentMessage::Heartbeat {
        battery,
        charging: None,
        screen_on: None,
        foreground_app: None,
        call,
        wecom_version: None,
        dnd: None,
    };
    assert_eq!(controller.devices().await.unwrap()[0].call, None);
    phone
        .send(&controller, beat(Some(70), Some(CallStatus::Ringing)))
        .await;
    settle().await;
    let status = &controller.devices().await.unwrap()[0];
    assert_eq!(status.call, Some(CallStatus::Ringing));
    assert_eq!(status.battery, Some(70));
    // A heartbeat without the field (an older agent, or a phone whose calls
    // cannot be read) says nothing of calls: the ringing is not kept.
    phone.send(&controller, beat(None, None)).await;
    settle().await;
    let status = &controller.devices().await.unwrap()[0];
    assert_eq!(status.call, None);
    assert_eq!(status.battery, Some(70), "the battery is kept");
    assert!(status.online);
}

#[tokio::test(start_paused = true)]
async fn what_heartbeats_report_is_kept_stored_when_it_changes_and_moves_the_change_feed() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    let mut changes = controller.device_changes();
    changes.borrow_and_update();
    let phone = online(&controller, "d1", 1).await;
    assert!(changes.has_changed().unwrap(), "a connection is a change");
    changes.borrow_and_update();
    let beat = |wecom_version: Option<&str>, dnd: Option<bool>| AgentMessage::Heartbeat {
        battery: None,
        charging: None,
        screen_on: Some(true),
        foreground_app: None,
        call: None,
        wecom_version: wecom_version.map(str::to_owned),
        dnd,
    };
    for _ in 0..3 {
        phone
            .send(&controller, beat(Some("4.1.22"), Some(false)))
            .await;
        settle().await;
    }
    // A heartbeat that says nothing of them keeps what was said.
    phone.send(&controller, beat(None, None)).await;
    settle().await;
    let status = &controller.devices().await.unwrap()[0];
    assert_eq!(
        (
            status.wecom_version.as_deref(),
            status.screen_on,
            status.dnd
        ),
        (Some("4.1.22"), Some(true), Some(false))
    );
    assert!(changes.has_changed().unwrap(), "heartbeats are changes");
    changes.borrow_and_update();
    // Asking changes nothing.
    controller.devices().await.unwrap();
    settle().await;
    assert!(!changes.has_changed().unwrap());
    phone
        .send(&controller, beat(Some("4.1.23"), Some(true)))
        .await;
    settle().await;
    let reported: Vec<(Option<String>, Option<bool>)> = store
        .changes()
        .iter()
        .filter_map(|change| match change {
            Change::DeviceReported {
                wecom_version, dnd, ..
            } => Some((wecom_version.clone(), *dnd)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reported,
        [
            (Some("4.1.22".to_owned()), Some(false)),
            (Some("4.1.23".to_owned()), Some(true))
        ],
        "stored once per change, not per heartbeat"
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_withdraws_queued_tasks_and_stops_running_ones() {
    let (controller, store) = start(snapshot(&[("d1", 1), ("d2", 2)]), config());
    let mut moments = task(1, 5);
    moments.kind = TaskKind::MomentsPost;
    controller
        .submit(vec![task(1, 5), task(1, 5), moments, task(2, 5)])
        .await
        .unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    assert_eq!(phone.expect_assign().await, 1);
    phone
        .send(&controller, AgentMessage::Accepted { task_id: 1 })
        .await;

    // By kind: only the Moments post on account 1.
    let filter = CancelFilter {
        kinds: Some([TaskKind::MomentsPost].into()),
        ..Default::default()
    };
    let result = controller.cancel(filter).await.unwrap();
    assert_eq!((result.cancelled, result.cancelling), (1, 0));
    assert_eq!(store.state(3), Some(TaskState::Cancelled));

    // By device: the running task is told to stop, the queued one is withdrawn.
    let filter = CancelFilter {
        device_ids: Some(["d1".to_owned()].into()),
        ..Default::default()
    };
    let result = controller.cancel(filter).await.unwrap();
    assert_eq!((result.cancelled, result.cancelling), (1, 1));
    assert_eq!(phone.recv().await, ServerMessage::Cancel { task_id: 1 });
    assert_eq!(store.state(2), Some(TaskState::Cancelled));
    assert_eq!(
        store.state(4),
        Some(TaskState::Queued),
        "the other account is untouched"
    );

    // The phone had already sent it: its outcome wins.
    phone.finish(&controller, 1, Outcome::Succeeded, None).await;
    assert_eq!(phone.recv().await, ServerMessage::Ack { task_id: 1 });
    assert_eq!(store.state(1), Some(TaskState::Succeeded));
    assert!(
        phone.nothing_more().await,
        "cancelled tasks are never assigned"
    );
}

#[tokio::test(start_paused = true)]
async fn not_before_and_not_after_are_honoured() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    let mut later = task(1, 9);
    later.not_before_ms = Some(1_000_000 + 30_000);
    let mut stale = task(1, 5);
    stale.not_after_ms = Some(1_000_000 - 1);
    let mut phone = online(&controller, "d1", 1).await;
    controller.submit(vec![later, stale]).await.unwrap();
    settle().await;
    assert_eq!(store.state(2), Some(TaskState::Expired));
    assert!(phone.nothing_more().await);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(phone.expect_assign().await, 1);
}

#[tokio::test(start_paused = true)]
async fn retryable_failures_are_retried_with_delay_up_to_the_limit() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    controller.submit(vec![task(1, 5)]).await.unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    let flaky = TaskError {
        code: "ui_timeout".into(),
        message: "screen did not load".into(),
        retryable: true,
    };
    for attempt in 1..=3u32 {
        match phone.recv().await {
            ServerMessage::Assign { task } => assert_eq!(task.attempt, attempt),
            other => panic!("expected assign, got {other:?}"),
        }
        phone
            .finish(&controller, 1, Outcome::Failed, Some(flaky.clone()))
            .await;
        assert_eq!(phone.recv().await, ServerMessage::Ack { task_id: 1 });
        tokio::time::advance(Duration::from_millis(30_000 * u64::from(attempt) + 10)).await;
    }
    assert!(phone.nothing_more().await, "three attempts at most");
    assert_eq!(store.state(1), Some(TaskState::Failed));
}

#[tokio::test(start_paused = true)]
async fn a_newer_connection_replaces_the_older() {
    let (controller, _store) = start(snapshot(&[("d1", 1)]), config());
    let old = online(&controller, "d1", 1).await;
    let mut new = online(&controller, "d1", 2).await;
    assert_eq!(old.closed_with().as_deref(), Some("replaced"));
    // The old connection's late disconnect does not take the new one down.
    controller.disconnect("d1".into(), 1).await.unwrap();
    controller.submit(vec![task(1, 5)]).await.unwrap();
    assert_eq!(new.expect_assign().await, 1);
}

#[tokio::test(start_paused = true)]
async fn a_new_bind_moves_the_queue_and_revokes_the_old_phone() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    controller
        .submit(vec![task(1, 5), task(1, 5)])
        .await
        .unwrap();
    let mut old = online(&controller, "d1", 1).await;
    assert_eq!(old.expect_assign().await, 1);
    old.send(&controller, AgentMessage::Accepted { task_id: 1 })
        .await;
    controller
        .device_bound(device("d2", 1), Some("d1".into()))
        .await
        .unwrap();
    assert_eq!(old.closed_with().as_deref(), Some("revoked"));
    settle().await;
    assert_eq!(
        store.state(1),
        Some(TaskState::Failed),
        "the running task is lost with the old phone"
    );
    let mut new = online(&controller, "d2", 2).await;
    assert_eq!(new.expect_assign().await, 2);
    let statuses = controller.devices().await.unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].device_id, "d2");
}

#[tokio::test(start_paused = true)]
async fn disabled_accounts_dispatch_nothing_until_enabled() {
    let (controller, _store) = start(snapshot(&[("d1", 1)]), config());
    // Queued while the account was enabled (a disabled one takes no new
    // tasks), then disabled before its phone came online.
    controller.submit(vec![task(1, 5)]).await.unwrap();
    controller
        .account_changed(AccountRecord {
            id: 1,
            disabled: true,
        })
        .await
        .unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    assert!(phone.nothing_more().await);
    controller
        .account_changed(AccountRecord {
            id: 1,
            disabled: false,
        })
        .await
        .unwrap();
    assert_eq!(phone.expect_assign().await, 1);
}

#[tokio::test(start_paused = true)]
async fn the_scheduler_answers_which_accounts_exist_and_which_are_disabled() {
    let mut snap = snapshot(&[("d1", 1)]);
    snap.accounts.push(AccountRecord {
        id: 2,
        disabled: true,
    });
    let (controller, _store) = start(snap, config());
    let known = controller.accounts(vec![1, 2, 3]).await.unwrap();
    assert_eq!(known, HashMap::from([(1, false), (2, true)]));
    controller
        .account_changed(AccountRecord {
            id: 3,
            disabled: false,
        })
        .await
        .unwrap();
    controller
        .account_changed(AccountRecord {
            id: 1,
            disabled: true,
        })
        .await
        .unwrap();
    let known = controller.accounts(vec![1, 3, 4]).await.unwrap();
    assert_eq!(known, HashMap::from([(1, true), (3, false)]));
}

/// One trip: the scheduler checks every task's account in the turn that would
/// queue them and names the first task at fault; then nothing is queued, and
/// no id is used up.
#[tokio::test(start_paused = true)]
async fn a_submission_naming_an_unknown_or_disabled_account_queues_nothing() {
    let mut snap = snapshot(&[("d1", 1)]);
    snap.accounts.push(AccountRecord {
        id: 2,
        disabled: true,
    });
    let (controller, store) = start(snap, config());
    let mut phone = online(&controller, "d1", 1).await;
    assert_eq!(
        controller
            .submit(vec![task(1, 5), task(3, 5), task(2, 5)])
            .await,
        Err(SubmitError::UnknownAccount {
            index: 1,
            account: 3
        })
    );
    assert_eq!(
        controller
            .submit(vec![task(1, 5), task(1, 5), task(2, 5), task(3, 5)])
            .await,
        Err(SubmitError::AccountDisabled {
            index: 2,
            account: 2
        })
    );
    assert!(phone.nothing_more().await, "nothing was dispatched");
    assert!(
        !store
            .changes()
            .iter()
            .any(|c| matches!(c, Change::TaskInserted { .. })),
        "nothing was stored"
    );

    controller
        .account_changed(AccountRecord {
            id: 2,
            disabled: false,
        })
        .await
        .unwrap();
    assert_eq!(
        controller.submit(vec![task(2, 5), task(1, 5)]).await,
        Ok(vec![1, 2])
    );
    assert_eq!(phone.expect_assign().await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_restart_rebuilds_queues_pauses_and_timers() {
    let mut snap = snapshot(&[("d1", 1), ("d2", 2)]);
    snap.devices[1].paused = true;
    snap.devices[1].pause_reason = Some("admin".into());
    snap.devices[1].resume_at_ms = Some(1_000_000 + 5_000);
    let record = |id: i64, account: i64, state: TaskState, device: Option<&str>| TaskRecord {
        id,
        operator_account_id: account,
        kind: TaskKind::SendMessage,
        payload: r#"{"to":{"name":"Li"},"items":[{"type":"text","text":"hi"}]}"#.into(),
        priority: 5,
        not_before_ms: None,
        not_after_ms: None,
        state,
        attempt: u32::from(device.is_some()),
        device_id: device.map(str::to_owned),
        cancel_requested: false,
    };
    snap.tasks = vec![
        record(7, 1, TaskState::Running, Some("d1")),
        record(8, 1, TaskState::Queued, None),
        record(9, 2, TaskState::Queued, None),
    ];
    snap.next_task_id = 10;
    let (controller, store) = start(snap, config());

    let mut one = connect(&controller, "d1", 1).await;
    one.send(&controller, hello(false, vec![7], vec![])).await;
    assert!(matches!(one.recv().await, ServerMessage::Welcome { .. }));
    assert!(one.nothing_more().await, "task 7 is still on the phone");
    one.finish(&controller, 7, Outcome::Succeeded, None).await;
    assert_eq!(one.recv().await, ServerMessage::Ack { task_id: 7 });
    assert_eq!(one.expect_assign().await, 8);

    let mut two = online(&controller, "d2", 2).await;
    match two.recv().await {
        ServerMessage::Queue { paused: true, .. } => {}
        other => panic!("the stored pause is told to the agent, got {other:?}"),
    }
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(
        two.recv().await,
        ServerMessage::Queue {
            paused: false,
            resume_at_ms: None
        }
    );
    assert_eq!(two.expect_assign().await, 9);
    assert_eq!(controller.submit(vec![task(1, 5)]).await.unwrap(), vec![10]);
    assert_eq!(store.state(7), Some(TaskState::Succeeded));
}

#[tokio::test(start_paused = true)]
async fn a_failing_store_stops_the_controller() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    store.inner.lock().unwrap().fail = true;
    let submitted = controller.submit(vec![task(1, 5)]).await;
    assert_eq!(
        submitted,
        Err(SubmitError::Controller(
            youmi_controller::ControllerError::Stopped
        ))
    );
    assert!(controller.failed().await.contains("disk full"));
}

#[tokio::test(start_paused = true)]
async fn a_silent_device_gets_no_task_even_before_its_connection_is_closed() {
    let mut config = config();
    config.offline_check_ms = 3_600_000;
    let (controller, store) = start(snapshot(&[("d1", 1)]), config);
    let mut phone = online(&controller, "d1", 1).await;
    tokio::time::advance(Duration::from_secs(91)).await;
    controller.submit(vec![task(1, 5)]).await.unwrap();
    assert!(
        phone.nothing_more().await,
        "silent for 91 s: offline, so no assign"
    );
    assert!(!controller.devices().await.unwrap()[0].online);
    assert_eq!(store.state(1), Some(TaskState::Queued));
    phone.send(&controller, heartbeat()).await;
    assert_eq!(
        phone.expect_assign().await,
        1,
        "heard from again: the queue moves"
    );
}

#[tokio::test(start_paused = true)]
async fn risk_control_pauses_with_no_auto_resume_and_no_retry() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    let patch = SettingsPatch {
        auto_resume_after_min: Some(AutoResume::try_from(1).unwrap()),
        ..Default::default()
    };
    controller
        .update_settings(DeviceTarget::All, patch)
        .await
        .unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    controller
        .submit(vec![task(1, 5), task(1, 5)])
        .await
        .unwrap();
    assert_eq!(phone.expect_assign().await, 1);
    let warned = TaskError {
        code: "risk_control".into(),
        message: "操作频繁".into(),
        retryable: true,
    };
    phone
        .finish(&controller, 1, Outcome::Failed, Some(warned))
        .await;
    let mut seen = vec![phone.recv().await, phone.recv().await];
    seen.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(
        seen,
        vec![
            ServerMessage::Ack { task_id: 1 },
            ServerMessage::Queue {
                paused: true,
                resume_at_ms: None
            },
        ]
    );
    phone.live_for(&controller, 600).await;
    assert!(phone.nothing_more().await, "no retry, no auto-resume");
    assert_eq!(store.state(1), Some(TaskState::Failed));
    assert_eq!(store.state(2), Some(TaskState::Queued));
    let status = &controller.devices().await.unwrap()[0];
    assert_eq!(status.pause_reason.as_deref(), Some("risk_control"));
    let notes: Vec<Change> = store
        .changes()
        .into_iter()
        .filter(|c| matches!(c, Change::Notified { .. }))
        .collect();
    assert_eq!(notes.len(), 1);
    match &notes[0] {
        Change::Notified {
            kind,
            account,
            device_id,
            task_id,
            message,
            ..
        } => {
            assert_eq!(kind, "risk_control");
            assert_eq!(*account, 1);
            assert_eq!(device_id, "d1");
            assert_eq!(*task_id, Some(1));
            assert!(message.contains("操作频繁"), "{message}");
        }
        other => panic!("expected a notification, got {other:?}"),
    }
    controller
        .resume(DeviceTarget::Ids(vec!["d1".into()]))
        .await
        .unwrap();
    assert_eq!(
        phone.recv().await,
        ServerMessage::Queue {
            paused: false,
            resume_at_ms: None
        }
    );
    assert_eq!(phone.expect_assign().await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_slow_commit_holds_up_the_scheduler_only_once_its_next_batch_is_full() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    let held = store.gate.clone().write_owned().await;
    // Many small turns while one commit hangs, as agents' frames arrive under
    // load: they gather into one batch instead of queueing one batch a turn.
    let mut submits = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let controller = controller.clone();
        submits.spawn(async move { controller.submit(vec![task(1, 5)]).await });
        settle().await;
    }
    tokio::time::timeout(Duration::from_secs(1), controller.devices())
        .await
        .expect("the scheduler answers while a commit hangs")
        .unwrap();
    assert!(
        submits.try_join_next().is_none(),
        "no submission is answered before its commit"
    );

    // Past 20,000 gathered changes the scheduler waits for the writer.
    let big = {
        let controller = controller.clone();
        tokio::spawn(async move { controller.submit(vec![task(1, 5); 20_000]).await })
    };
    settle().await;
    assert!(
        tokio::time::timeout(Duration::from_secs(1), controller.devices())
            .await
            .is_err(),
        "the scheduler waits once its next batch is full"
    );

    drop(held);
    while let Some(submitted) = submits.join_next().await {
        assert_eq!(submitted.unwrap().unwrap().len(), 1);
    }
    assert_eq!(big.await.unwrap().unwrap().len(), 20_000);
    let inserted = store
        .changes()
        .iter()
        .filter(|change| matches!(change, Change::TaskInserted { .. }))
        .count();
    assert_eq!(inserted, 20_200);
}

#[tokio::test(start_paused = true)]
async fn what_gathered_during_a_slow_commit_is_committed_when_the_last_handle_goes() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    let mut phone = online(&controller, "d1", 1).await;
    controller.submit(vec![task(1, 5)]).await.unwrap();
    let id = phone.expect_assign().await;
    let held = store.gate.clone().write_owned().await;
    // One batch commits (and hangs), one waits, and the disconnect's change
    // stays with the scheduler.
    phone
        .send(&controller, AgentMessage::Accepted { task_id: id })
        .await;
    settle().await;
    phone
        .finish(&controller, id, Outcome::Succeeded, None)
        .await;
    settle().await;
    controller.disconnect("d1".into(), 1).await.unwrap();
    settle().await;
    drop(controller);
    settle().await;

    drop(held);
    settle().await;
    assert_eq!(store.state(id), Some(TaskState::Succeeded));
    let seen = store
        .changes()
        .iter()
        .filter(|change| matches!(change, Change::DeviceSeen { info: None, .. }))
        .count();
    assert_eq!(seen, 1, "the disconnect is committed");
}

/// The error a task ended with, from the committed changes.
fn ended_with(store: &MemoryStore, id: i64) -> Option<TaskError> {
    store
        .changes()
        .into_iter()
        .rev()
        .find_map(|change| match change {
            Change::TaskFinished {
                id: ended, error, ..
            } if ended == id => error,
            _ => None,
        })
}

#[tokio::test(start_paused = true)]
async fn a_refused_assign_fails_with_the_agents_reason_and_the_queue_moves_on() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    controller
        .submit(vec![task(1, 5), task(1, 5)])
        .await
        .unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    assert_eq!(phone.expect_assign().await, 1);
    phone
        .send(
            &controller,
            AgentMessage::Refused {
                task_id: 1,
                code: "payload_not_understood".into(),
                message: "items[0].type: unknown variant".into(),
            },
        )
        .await;
    assert_eq!(phone.expect_assign().await, 2, "the next task goes at once");
    assert_eq!(store.state(1), Some(TaskState::Failed));
    let error = ended_with(&store, 1).expect("an error");
    assert_eq!(error.code, "payload_not_understood");
    assert!(error.message.contains("unknown variant"), "{error:?}");
    assert!(!error.retryable);

    // A refusal of a task that is not waiting for this device changes nothing.
    phone
        .send(&controller, AgentMessage::Accepted { task_id: 2 })
        .await;
    phone
        .send(
            &controller,
            AgentMessage::Refused {
                task_id: 2,
                code: "assign_unreadable".into(),
                message: String::new(),
            },
        )
        .await;
    assert_eq!(store.state(2), Some(TaskState::Running));
    assert!(phone.nothing_more().await);
}

#[tokio::test(start_paused = true)]
async fn an_assign_never_accepted_fails_undeliverable_after_so_many_sends() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    controller
        .submit(vec![task(1, 5), task(1, 5)])
        .await
        .unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    let max = config().assign_max_sends as usize;
    for _ in 0..max {
        assert_eq!(phone.expect_assign().await, 1);
        phone.live_for(&controller, 10).await;
    }
    // The next send is due: the task fails instead, the device is told to
    // drop it, and the queue moves on.
    let mut seen = vec![phone.recv().await, phone.recv().await];
    seen.sort_by_key(|m| format!("{m:?}"));
    assert!(
        matches!(seen[0], ServerMessage::Assign { ref task } if task.id == 2),
        "{seen:?}"
    );
    assert_eq!(seen[1], ServerMessage::Cancel { task_id: 1 });
    assert_eq!(store.state(1), Some(TaskState::Failed));
    assert_eq!(ended_with(&store, 1).unwrap().code, "undeliverable");
}

#[tokio::test(start_paused = true)]
async fn an_assign_never_accepted_fails_undeliverable_after_so_long() {
    let config = ControllerConfig {
        assign_max_sends: 1_000,
        assign_deliver_ms: 35_000,
        ..config()
    };
    let (controller, store) = start(snapshot(&[("d1", 1)]), config);
    controller.submit(vec![task(1, 5)]).await.unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    for _ in 0..4 {
        assert_eq!(phone.expect_assign().await, 1);
        phone.live_for(&controller, 10).await;
    }
    assert_eq!(phone.recv().await, ServerMessage::Cancel { task_id: 1 });
    assert_eq!(store.state(1), Some(TaskState::Failed));
    let error = ended_with(&store, 1).unwrap();
    assert_eq!(error.code, "undeliverable");
    assert!(error.message.contains("40 s"), "{error:?}");
}

/// An agent that drops its connection whenever it gets a certain assign (the
/// reconnect loop of old agents) cannot hold its queue for ever: every new
/// dispatch counts as a send.
#[tokio::test(start_paused = true)]
async fn a_reconnect_loop_over_one_assign_ends_with_undeliverable() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    controller
        .submit(vec![task(1, 5), task(1, 5)])
        .await
        .unwrap();
    let max = config().assign_max_sends;
    let mut connection = 1;
    let mut phone = online(&controller, "d1", connection).await;
    for _ in 0..max {
        assert_eq!(phone.expect_assign().await, 1);
        controller
            .disconnect("d1".into(), connection)
            .await
            .unwrap();
        connection += 1;
        phone = online(&controller, "d1", connection).await;
    }
    assert_eq!(phone.expect_assign().await, 2, "task 1 gave way");
    assert_eq!(store.state(1), Some(TaskState::Failed));
    assert_eq!(ended_with(&store, 1).unwrap().code, "undeliverable");
}

#[tokio::test(start_paused = true)]
async fn a_resend_bound_is_not_spent_while_the_device_is_offline() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    controller.submit(vec![task(1, 5)]).await.unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    assert_eq!(phone.expect_assign().await, 1);
    controller.disconnect("d1".into(), 1).await.unwrap();
    tokio::time::advance(Duration::from_secs(600)).await;
    settle().await;
    assert_eq!(store.state(1), Some(TaskState::Dispatched));
    let mut phone = online(&controller, "d1", 2).await;
    assert_eq!(
        phone.expect_assign().await,
        1,
        "sent again after the reconnect"
    );
    phone
        .send(&controller, AgentMessage::Accepted { task_id: 1 })
        .await;
    assert_eq!(store.state(1), Some(TaskState::Running));
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_task_not_yet_accepted_takes_effect_at_once() {
    let (controller, store) = start(snapshot(&[("d1", 1)]), config());
    controller
        .submit(vec![task(1, 5), task(1, 5)])
        .await
        .unwrap();
    let mut phone = online(&controller, "d1", 1).await;
    assert_eq!(phone.expect_assign().await, 1);
    let filter = CancelFilter {
        task_ids: Some([1].into()),
        ..Default::default()
    };
    let result = controller.cancel(filter).await.unwrap();
    assert_eq!((result.cancelled, result.cancelling), (1, 0));
    assert_eq!(store.state(1), Some(TaskState::Cancelled));
    assert_eq!(phone.recv().await, ServerMessage::Cancel { task_id: 1 });
    assert_eq!(phone.expect_assign().await, 2, "the queue moves on");
    // A late `accepted` of the cancelled task is refused; its report, if the
    // agent ran it anyway, is acked as a copy of a stored result.
    phone
        .send(&controller, AgentMessage::Accepted { task_id: 1 })
        .await;
    assert!(
        matches!(phone.recv().await, ServerMessage::Error { ref code, .. } if code == "not_your_task")
    );
    assert_eq!(store.state(1), Some(TaskState::Cancelled));
}
