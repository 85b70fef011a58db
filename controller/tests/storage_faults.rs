//! Storage faults as the controller meets them: a store whose commits fail
//! transiently (retried without limit, nothing told before the commit, new
//! writes refused meanwhile, carrying on once it works) or permanently (the
//! controller stops).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use youmi_controller::{
    AccountRecord, Change, Controller, ControllerConfig, ControllerError, DeviceRecord, DeviceSink,
    NewTask, SinkClosed, Snapshot, StorageStatus, Store, StoreError, SubmitError, TaskOwner,
    TokioClock,
};
use youmi_protocol::{
    AgentMessage, AgentSettings, DeviceInfo, FinishedReport, Outcome, ServerMessage, TaskKind,
    TaskState,
};

/// How the next commits fail.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    Transient,
    Permanent,
}

/// A store that keeps committed changes and fails as told.
#[derive(Clone)]
struct FaultyStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    committed: Vec<Change>,
    fault: Fault,
    /// Commits tried, failed or not.
    attempts: u64,
}

impl FaultyStore {
    fn new() -> FaultyStore {
        FaultyStore {
            inner: Arc::new(Mutex::new(Inner {
                committed: Vec::new(),
                fault: Fault::None,
                attempts: 0,
            })),
        }
    }

    fn set(&self, fault: Fault) {
        self.inner.lock().unwrap().fault = fault;
    }

    fn attempts(&self) -> u64 {
        self.inner.lock().unwrap().attempts
    }

    fn inserted(&self) -> Vec<i64> {
        self.committed(|change| match change {
            Change::TaskInserted { id, .. } => Some(*id),
            _ => None,
        })
    }

    fn finished(&self) -> Vec<i64> {
        self.committed(|change| match change {
            Change::TaskFinished { id, .. } => Some(*id),
            _ => None,
        })
    }

    fn dispatched(&self) -> Vec<i64> {
        self.committed(|change| match change {
            Change::TaskDispatched { id, .. } => Some(*id),
            _ => None,
        })
    }

    fn committed(&self, pick: impl Fn(&Change) -> Option<i64>) -> Vec<i64> {
        let inner = self.inner.lock().unwrap();
        inner.committed.iter().filter_map(pick).collect()
    }
}

impl Store for FaultyStore {
    async fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap();
        inner.attempts += 1;
        match inner.fault {
            Fault::None => {
                inner.committed.extend_from_slice(changes);
                Ok(())
            }
            Fault::Transient => Err(StoreError::transient("disk I/O error")),
            Fault::Permanent => Err(StoreError::permanent("no such table: tasks")),
        }
    }

    /// The task's owner as the committed changes have it.
    async fn task_owner(&self, id: i64) -> Result<Option<TaskOwner>, StoreError> {
        let inner = self.inner.lock().unwrap();
        let mut owner = None;
        for change in &inner.committed {
            match change {
                Change::TaskInserted { id: task, .. } if *task == id => {
                    owner = Some(TaskOwner {
                        device_id: None,
                        state: TaskState::Queued,
                    })
                }
                Change::TaskDispatched {
                    id: task,
                    device_id,
                    ..
                } if *task == id => {
                    owner = Some(TaskOwner {
                        device_id: Some(device_id.clone()),
                        state: TaskState::Dispatched,
                    })
                }
                Change::TaskFinished {
                    id: task, state, ..
                } if *task == id => {
                    if let Some(owner) = owner.as_mut() {
                        owner.state = *state;
                    }
                }
                _ => {}
            }
        }
        Ok(owner)
    }
}

struct Sink(mpsc::UnboundedSender<ServerMessage>);

impl DeviceSink for Sink {
    fn send(&self, message: ServerMessage) -> Result<(), SinkClosed> {
        self.0.send(message).map_err(|_| SinkClosed)
    }

    fn close(&self, _code: &str, _reason: &str) {}
}

/// Lets the scheduler and the writer run.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn start() -> (Controller, FaultyStore) {
    let store = FaultyStore::new();
    let snapshot = Snapshot {
        accounts: vec![AccountRecord {
            id: 1,
            disabled: false,
        }],
        devices: vec![DeviceRecord {
            device_id: "d1".into(),
            operator_account_id: 1,
            settings: AgentSettings::default(),
            paused: false,
            pause_reason: None,
            resume_at_ms: None,
            last_seen_ms: None,
        }],
        tasks: Vec::new(),
        next_task_id: 1,
    };
    let controller = Controller::start(
        snapshot,
        store.clone(),
        TokioClock::starting_at(1_000_000),
        ControllerConfig::default(),
    );
    (controller, store)
}

fn task() -> NewTask {
    NewTask {
        operator_account_id: 1,
        kind: TaskKind::SendMessage,
        payload: json!({"to": {"name": "Li"}, "items": [{"type": "text", "text": "hi"}]})
            .to_string()
            .into(),
        priority: 5,
        not_before_ms: None,
        not_after_ms: None,
        intercepted: None,
    }
}

/// Connects and greets device `d1`, consuming the welcome.
async fn online(controller: &Controller) -> mpsc::UnboundedReceiver<ServerMessage> {
    let (frames_tx, mut frames) = mpsc::unbounded_channel();
    controller
        .connect("d1".into(), 1, Arc::new(Sink(frames_tx)))
        .await
        .unwrap();
    controller
        .agent_message(
            "d1".into(),
            1,
            AgentMessage::Hello {
                agent_version: "test".into(),
                device: DeviceInfo::default(),
                queue_paused: false,
                running: vec![],
                finished: vec![],
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        frames.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    frames
}

/// Waits until the writer has tried `count` more commits; panics if it stops
/// trying (an hour of the paused clock is far more than its backoff).
async fn attempts_after(store: &FaultyStore, count: u64) {
    let target = store.attempts() + count;
    for _ in 0..360_000 {
        if store.attempts() >= target {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the writer stopped trying: {} attempts", store.attempts());
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_is_retried_until_it_commits_and_nothing_is_told_before() {
    let (controller, store) = start();
    let mut frames = online(&controller).await;
    store.set(Fault::Transient);

    let submitting = tokio::spawn({
        let controller = controller.clone();
        async move { controller.submit(vec![task()]).await }
    });
    // Far more failures than the attempts a permanent failure gets.
    attempts_after(&store, 10).await;
    settle().await;
    assert!(!submitting.is_finished(), "no answer before the commit");
    assert!(store.inserted().is_empty());
    assert!(frames.try_recv().is_err(), "no assign before the commit");
    let StorageStatus::Degraded { reason, .. } = controller.storage_status() else {
        panic!("degraded: {:?}", controller.storage_status());
    };
    assert!(reason.contains("disk I/O error"), "{reason}");
    // New writes are refused before the scheduler queues them, after the
    // accounts' check: a bad account is told so whatever the store's state.
    assert!(matches!(
        controller.submit(vec![task()]).await,
        Err(SubmitError::Controller(
            ControllerError::StorageUnavailable(_)
        ))
    ));
    let mut unknown = task();
    unknown.operator_account_id = 9;
    assert_eq!(
        controller.submit(vec![task(), unknown]).await,
        Err(SubmitError::UnknownAccount {
            index: 1,
            account: 9
        })
    );

    store.set(Fault::None);
    let ids = submitting.await.unwrap().unwrap();
    assert_eq!(store.inserted(), ids, "only the first submit is stored");
    assert_eq!(controller.storage_status(), StorageStatus::Ok);
    match frames.recv().await {
        Some(ServerMessage::Assign { task }) => assert_eq!(task.id, ids[0]),
        other => panic!("expected the assign, got {other:?}"),
    }
    assert_eq!(store.dispatched(), ids);
    // And the controller carries on: new submits are taken again.
    assert_eq!(
        controller.submit(vec![task()]).await.unwrap(),
        vec![ids[0] + 1]
    );
}

#[tokio::test(start_paused = true)]
async fn an_ack_waits_for_a_store_that_fails_transiently() {
    let (controller, store) = start();
    let mut frames = online(&controller).await;
    let ids = controller.submit(vec![task()]).await.unwrap();
    assert!(matches!(
        frames.recv().await,
        Some(ServerMessage::Assign { .. })
    ));

    store.set(Fault::Transient);
    controller
        .agent_message(
            "d1".into(),
            1,
            AgentMessage::Finished(FinishedReport {
                task_id: ids[0],
                outcome: Outcome::Succeeded,
                error: None,
                result: None,
            }),
        )
        .await
        .unwrap();
    attempts_after(&store, 5).await;
    settle().await;
    assert!(frames.try_recv().is_err(), "no ack before the commit");
    assert!(store.finished().is_empty());
    assert!(!controller.storage_status().is_ok());

    store.set(Fault::None);
    assert_eq!(
        frames.recv().await,
        Some(ServerMessage::Ack { task_id: ids[0] })
    );
    assert_eq!(store.finished(), ids);
    assert_eq!(controller.storage_status(), StorageStatus::Ok);
}

#[tokio::test(start_paused = true)]
async fn a_report_sent_again_while_the_first_waits_for_the_store_is_acked() {
    let (controller, store) = start();
    let mut first = online(&controller).await;
    let ids = controller.submit(vec![task()]).await.unwrap();
    assert!(matches!(
        first.recv().await,
        Some(ServerMessage::Assign { .. })
    ));
    let report = FinishedReport {
        task_id: ids[0],
        outcome: Outcome::Succeeded,
        error: None,
        result: None,
    };

    // The report arrives while the store fails, and the agent reconnects
    // before its ack: its hello reports the task again.
    store.set(Fault::Transient);
    controller
        .agent_message("d1".into(), 1, AgentMessage::Finished(report.clone()))
        .await
        .unwrap();
    attempts_after(&store, 3).await;
    let (frames_tx, mut second) = mpsc::unbounded_channel();
    controller
        .connect("d1".into(), 2, Arc::new(Sink(frames_tx)))
        .await
        .unwrap();
    controller
        .agent_message(
            "d1".into(),
            2,
            AgentMessage::Hello {
                agent_version: "test".into(),
                device: DeviceInfo::default(),
                queue_paused: false,
                running: vec![],
                finished: vec![report],
            },
        )
        .await
        .unwrap();
    attempts_after(&store, 3).await;
    settle().await;

    // Once the store works, the copy is acked on the new connection: the
    // task is this device's and ended, not "not your task".
    store.set(Fault::None);
    assert!(matches!(
        second.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    assert_eq!(
        second.recv().await,
        Some(ServerMessage::Ack { task_id: ids[0] })
    );
    assert_eq!(store.finished(), ids);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_stops_the_controller_after_transient_ones() {
    let (controller, store) = start();
    store.set(Fault::Transient);
    let submitting = tokio::spawn({
        let controller = controller.clone();
        async move { controller.submit(vec![task()]).await }
    });
    attempts_after(&store, 6).await;
    assert!(!matches!(
        controller.storage_status(),
        StorageStatus::Failed { .. }
    ));

    store.set(Fault::Permanent);
    assert!(controller.failed().await.contains("no such table"));
    assert_eq!(
        submitting.await.unwrap(),
        Err(SubmitError::Controller(ControllerError::Stopped))
    );
    assert!(matches!(
        controller.storage_status(),
        StorageStatus::Failed { .. }
    ));
    assert!(store.inserted().is_empty());
}
