//! The SQL store under the scheduler, on its own: migrations, group commits
//! of every kind of change, the snapshot a restart is rebuilt from.

use std::sync::Arc;

use youmi_controller::{Change, NewTask, Store, TaskOwner};
use youmi_protocol::{AgentSettings, AutoResume, DeviceInfo, TaskError, TaskKind, TaskState};
use youmi_server::db::Db;
use youmi_server::scheduler_store::{load_snapshot, SqlStore};

use crate::common::TestDb;

async fn open() -> (TestDb, Db) {
    let test_db = TestDb::create().await;
    let db = Db::open(test_db.url()).await.expect("open");
    db.migrate().await.expect("migrate");
    // Migrations that already ran are skipped.
    db.migrate().await.expect("migrate again");
    (test_db, db)
}

async fn seed(db: &Db) -> (i64, String) {
    let account = youmi_server::operator_accounts::store::insert(db, "A", "wx_a", "", 1)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO devices (id, operator_account_id, token_hash, settings, queue_paused, \
         bound_at_ms) VALUES ($1, $2, $3, $4, 0, $5)",
    )
    .bind("dev_store")
    .bind(account.id)
    .bind("hash")
    .bind(serde_json::to_string(&AgentSettings::default()).unwrap())
    .bind(1_i64)
    .execute(&db.write)
    .await
    .unwrap();
    (account.id, "dev_store".to_owned())
}

fn task(account: i64, text: &str) -> Arc<NewTask> {
    Arc::new(NewTask {
        operator_account_id: account,
        kind: TaskKind::SendMessage,
        payload: Arc::from(format!(
            r#"{{"to":{{"name":"Ann"}},"items":[{{"type":"text","text":"{text}"}}]}}"#
        )),
        priority: 7,
        not_before_ms: Some(10),
        not_after_ms: None,
        intercepted: None,
    })
}

#[tokio::test]
async fn commits_land_in_the_snapshot() {
    let (test_db, db) = open().await;
    let (account, device) = seed(&db).await;
    let store = SqlStore::new(db.clone());

    // 1,234 inserts: two full chunks and a partial one, in one transaction.
    let mut changes: Vec<Change> = (1..=1_234)
        .map(|id| Change::TaskInserted {
            id,
            task: task(account, &format!("t{id}")),
            at_ms: 100,
        })
        .collect();
    changes.push(Change::TaskInserted {
        id: 1_235,
        task: Arc::new(NewTask {
            intercepted: Some(TaskError {
                code: "keyword".into(),
                message: "monitored keyword".into(),
                retryable: false,
            }),
            ..(*task(account, "bad word")).clone()
        }),
        at_ms: 100,
    });
    changes.extend([
        Change::TaskDispatched {
            id: 1,
            device_id: device.clone(),
            attempt: 1,
            at_ms: 200,
        },
        Change::TaskRunning { id: 1, at_ms: 210 },
        Change::TaskCancelRequested { id: 1, at_ms: 215 },
        Change::TaskDispatched {
            id: 2,
            device_id: device.clone(),
            attempt: 1,
            at_ms: 220,
        },
        Change::TaskRequeued {
            id: 2,
            not_before_ms: Some(5_000),
            error: Some(TaskError {
                code: "flaky".into(),
                message: "try again".into(),
                retryable: true,
            }),
            result: Some(
                r#"{"deliveries":[{"item":1,"type":"text","outcome":"sent","attempt":1}]}"#.into(),
            ),
            at_ms: 230,
        },
        Change::TaskDispatched {
            id: 3,
            device_id: device.clone(),
            attempt: 1,
            at_ms: 240,
        },
        Change::TaskFinished {
            id: 3,
            state: TaskState::Succeeded,
            error: None,
            result: Some(r#"{"ok":true}"#.into()),
            at_ms: 250,
        },
        Change::QueuePaused {
            device_id: device.clone(),
            paused: true,
            reason: Some("volume_key".into()),
            resume_at_ms: Some(9_999),
        },
        Change::SettingsChanged {
            device_id: device.clone(),
            settings: AgentSettings {
                auto_resume_after_min: AutoResume::try_from(3).unwrap(),
                ..AgentSettings::default()
            },
        },
        Change::DeviceSeen {
            device_id: device.clone(),
            at_ms: 300,
            info: Some(DeviceInfo {
                serial: "S1".into(),
                model: "Pixel".into(),
                android_version: "14".into(),
                agent_version: "1.2.3".into(),
            }),
        },
        Change::DeviceSeen {
            device_id: device.clone(),
            at_ms: 310,
            info: None,
        },
    ]);
    store.commit(&changes).await.expect("commit");

    // The start-up load and the task list find unfinished tasks by a NULL
    // `finished_at_ms` (PostgreSQL's only index for them): it must be NULL on
    // exactly the tasks that have not ended.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tasks \
         WHERE (finished_at_ms IS NULL) <> (state IN ('queued', 'dispatched', 'running'))",
    )
    .fetch_one(&db.read)
    .await
    .unwrap();
    assert_eq!(mismatched, 0);

    let snapshot = load_snapshot(&db).await.expect("snapshot");
    assert_eq!(snapshot.next_task_id, 1_236);
    assert_eq!(snapshot.accounts.len(), 1);
    assert_eq!(snapshot.accounts[0].id, account);
    // Task 3 finished and 1,235 was intercepted: neither is loaded.
    assert_eq!(snapshot.tasks.len(), 1_233);
    let running = snapshot.tasks.iter().find(|t| t.id == 1).unwrap();
    assert_eq!(running.state, TaskState::Running);
    assert_eq!(running.device_id.as_deref(), Some(device.as_str()));
    assert!(running.cancel_requested);
    assert_eq!(running.attempt, 1);
    assert_eq!(running.priority, 7);
    let requeued = snapshot.tasks.iter().find(|t| t.id == 2).unwrap();
    assert_eq!(requeued.state, TaskState::Queued);
    assert_eq!(requeued.device_id, None);
    assert_eq!(requeued.not_before_ms, Some(5_000));
    let last = snapshot.tasks.iter().find(|t| t.id == 1_234).unwrap();
    assert!(last.payload.contains("t1234"));
    assert_eq!(last.not_before_ms, Some(10));

    assert_eq!(snapshot.devices.len(), 1);
    let stored = &snapshot.devices[0];
    assert!(stored.paused);
    assert_eq!(stored.pause_reason.as_deref(), Some("volume_key"));
    assert_eq!(stored.resume_at_ms, Some(9_999));
    assert_eq!(stored.settings.auto_resume_after_min.minutes(), 3);
    assert_eq!(stored.last_seen_ms, Some(310));

    assert_eq!(
        store.task_owner(3).await.unwrap(),
        Some(TaskOwner {
            device_id: Some(device.clone()),
            state: TaskState::Succeeded,
        })
    );
    assert_eq!(
        store.task_owner(1_235).await.unwrap().map(|o| o.state),
        Some(TaskState::Intercepted)
    );
    assert_eq!(store.task_owner(99_999).await.unwrap(), None);

    let view = youmi_server::tasks::store::get(&db, 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.result, Some(serde_json::json!({"ok": true})));
    assert_eq!(view.finished_at_ms, Some(250));
    let view = youmi_server::tasks::store::get(&db, 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.error.unwrap().code, "flaky");
    // A retryable failure's result is kept while the task waits to run again.
    assert_eq!(
        view.result.unwrap()["deliveries"][0]["outcome"],
        serde_json::json!("sent")
    );

    db.close().await;
    test_db.remove().await;
}

#[tokio::test]
async fn a_failed_commit_changes_nothing() {
    let (test_db, db) = open().await;
    let (account, _) = seed(&db).await;
    let store = SqlStore::new(db.clone());
    // The second insert names an account that does not exist (a foreign key
    // violation): the whole batch must roll back.
    let changes = vec![
        Change::TaskInserted {
            id: 1,
            task: task(account, "a"),
            at_ms: 1,
        },
        Change::TaskInserted {
            id: 2,
            task: task(account + 1_000_000, "b"),
            at_ms: 1,
        },
    ];
    assert!(store.commit(&changes).await.is_err());
    let snapshot = load_snapshot(&db).await.unwrap();
    assert!(snapshot.tasks.is_empty());
    assert_eq!(snapshot.next_task_id, 1);
    db.close().await;
    test_db.remove().await;
}
