//! Metrics: `/metrics` on a listener of its own, off by default, never on the
//! API's port; what it counts moves by the right amounts as agents connect,
//! tasks run, assigns are re-sent and the API answers.

use std::time::Duration;

use youmi_controller::metrics::{
    AGENTS_CONNECTED, ASSIGN_REFUSALS_TOTAL, ASSIGN_RESENDS_TOTAL, STORE_COMMIT_SECONDS,
    STORE_WRITE_ERRORS_TOTAL, TASKS, TASKS_DISPATCHED_TOTAL, TASKS_FINISHED_TOTAL,
    TASKS_UNDELIVERABLE_TOTAL,
};
use youmi_protocol::api::{CancelResult, CancelTasks, SubmitTask};
use youmi_protocol::{Outcome, TaskKind, TaskState};
use youmi_server::config::Config;
use youmi_server::prometheus::HTTP_RESPONSES_TOTAL;
use youmi_server::Server;
use youmi_tests::payloads::{message, task};
use youmi_tests::{eventually, now_ms, Scrape, TestApp, TestDb, ADMIN_PASSWORD};

const SECS_5: Duration = Duration::from_secs(5);
const SECS_10: Duration = Duration::from_secs(10);

const OPEN_STATES: [&str; 3] = ["queued", "dispatched", "running"];

/// A server with `/metrics` on a port of its own.
async fn spawn_with_metrics(adjust: impl FnOnce(&mut Config)) -> (TestApp, String) {
    let app = TestApp::spawn_with(|config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().expect("metrics address"));
        adjust(config);
    })
    .await;
    let url = app.metrics_url().expect("metrics are on");
    (app, url)
}

/// Asserts that no task is counted as waiting or on a phone.
fn assert_no_open_tasks(scrape: &Scrape) {
    for state in OPEN_STATES {
        for kind in TaskKind::ALL {
            assert_eq!(
                scrape.value(TASKS, &[("state", state), ("kind", kind.as_str())]),
                0.0,
                "{state} {kind:?}"
            );
        }
    }
}

/// Waits until the scrape says `count` agents are connected.
async fn wait_agents(url: &str, count: f64) {
    eventually("the connected agents' count", SECS_10, || async {
        let scrape = Scrape::fetch(url).await;
        (scrape.value(AGENTS_CONNECTED, &[]) == count).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_agents_tasks_and_responses() {
    let (app, url) = spawn_with_metrics(|_| {}).await;

    // Every series is there from the start, at zero.
    let start = Scrape::fetch(&url).await;
    assert_eq!(start.value(AGENTS_CONNECTED, &[]), 0.0);
    assert_no_open_tasks(&start);
    assert_eq!(start.value(TASKS_DISPATCHED_TOTAL, &[]), 0.0);
    for state in ["succeeded", "failed", "cancelled", "intercepted", "expired"] {
        assert_eq!(
            start.value(TASKS_FINISHED_TOTAL, &[("state", state)]),
            0.0,
            "{state}"
        );
    }
    for counter in [
        ASSIGN_RESENDS_TOTAL,
        ASSIGN_REFUSALS_TOTAL,
        TASKS_UNDELIVERABLE_TOTAL,
        STORE_WRITE_ERRORS_TOTAL,
    ] {
        assert_eq!(start.value(counter, &[]), 0.0, "{counter}");
    }

    let account = app.create_account().await;
    let (_, agent, phone) = app.bind_agent(account.id).await;
    wait_agents(&url, 1.0).await;

    // A task held back by `not_before` waits as queued, and a cancel ends it.
    let held = app
        .submit(&SubmitTask {
            not_before: Some(now_ms() + 3_600_000),
            ..message(account.id)
        })
        .await;
    let waiting = Scrape::fetch(&url).await;
    assert_eq!(
        waiting.value(TASKS, &[("state", "queued"), ("kind", "send_message")]),
        1.0
    );
    let cancelled = app
        .cancel(&CancelTasks {
            task_ids: Some(vec![held.id]),
            ..CancelTasks::default()
        })
        .await;
    assert_eq!(
        cancelled,
        CancelResult {
            cancelled: 1,
            cancelling: 0,
            devices: Vec::new(),
        }
    );

    let kinds = [
        TaskKind::SendMessage,
        TaskKind::SendMessage,
        TaskKind::MomentsPost,
        TaskKind::FriendAdd,
    ];
    let mut ids = Vec::new();
    for kind in kinds {
        ids.push(app.submit(&task(account.id, kind)).await.id);
    }
    for &id in &ids {
        app.wait_task_state(id, TaskState::Succeeded, SECS_10).await;
    }
    assert_eq!(phone.sent().len(), kinds.len(), "each task ran once");

    // Two 404s: a path no route has, and a task that does not exist.
    let unknown = app.get("/api/v1/no-such-route").await;
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);
    let missing = app.get("/api/v1/tasks/999999999").await;
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
    // The API's port does not serve /metrics: a third 404.
    let on_api = reqwest::get(format!("{}/metrics", app.url()))
        .await
        .expect("GET /metrics on the API's port");
    assert_eq!(on_api.status(), reqwest::StatusCode::NOT_FOUND);

    let end = Scrape::fetch(&url).await;
    assert_no_open_tasks(&end);
    assert_eq!(end.value(TASKS_DISPATCHED_TOTAL, &[]), kinds.len() as f64);
    assert_eq!(
        end.value(TASKS_FINISHED_TOTAL, &[("state", "succeeded")]),
        kinds.len() as f64
    );
    assert_eq!(
        end.value(TASKS_FINISHED_TOTAL, &[("state", "cancelled")]),
        1.0
    );
    assert_eq!(end.value(TASKS_FINISHED_TOTAL, &[("state", "failed")]), 0.0);
    assert_eq!(end.value(ASSIGN_RESENDS_TOTAL, &[]), 0.0);
    assert_eq!(end.value(STORE_WRITE_ERRORS_TOTAL, &[]), 0.0);

    // Every commit is in the histogram's buckets.
    let commits = end.value(&format!("{STORE_COMMIT_SECONDS}_count"), &[]);
    assert!(commits >= 1.0, "commits: {commits}");
    assert_eq!(
        end.value(&format!("{STORE_COMMIT_SECONDS}_bucket"), &[("le", "+Inf")]),
        commits
    );

    // Five tasks created, 404s by route template.
    assert_eq!(
        end.value(
            HTTP_RESPONSES_TOTAL,
            &[("status", "201"), ("route", "/api/v1/tasks")]
        ),
        5.0
    );
    assert_eq!(
        end.value(
            HTTP_RESPONSES_TOTAL,
            &[("status", "404"), ("route", "/api/v1/tasks/{id}")]
        ),
        1.0
    );
    assert_eq!(
        end.value(
            HTTP_RESPONSES_TOTAL,
            &[("status", "404"), ("route", "unmatched")]
        ),
        2.0
    );
    assert!(
        end.get(
            HTTP_RESPONSES_TOTAL,
            &[("status", "200"), ("route", "/api/v1/tasks/{id}")]
        )
        .is_some_and(|count| count >= 1.0),
        "the waits read tasks"
    );

    agent.shutdown().await;
    wait_agents(&url, 0.0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_resent_assigns() {
    let (app, url) = spawn_with_metrics(|config| config.assign_resend_ms = 300).await;
    let account = app.create_account().await;
    let (_, mut raw, _) = app.raw_agent(account.id).await;
    wait_agents(&url, 1.0).await;

    let submitted = app.submit(&message(account.id)).await;
    let first = raw.recv_assign(SECS_5).await;
    assert_eq!(first.id, submitted.id);
    // Not accepted: the same assign comes again.
    let again = raw.recv_assign(SECS_5).await;
    assert_eq!((again.id, again.attempt), (first.id, first.attempt));

    let waiting = Scrape::fetch(&url).await;
    assert!(waiting.value(ASSIGN_RESENDS_TOTAL, &[]) >= 1.0);
    assert_eq!(waiting.value(TASKS_DISPATCHED_TOTAL, &[]), 1.0);
    assert_eq!(
        waiting.value(TASKS, &[("state", "dispatched"), ("kind", "send_message")]),
        1.0
    );

    raw.accept(first.id).await;
    eventually("the task running", SECS_5, || async {
        let scrape = Scrape::fetch(&url).await;
        (scrape.value(TASKS, &[("state", "running"), ("kind", "send_message")]) == 1.0)
            .then_some(())
    })
    .await;
    // Waits for the ack, which follows the commit.
    raw.finish(first.id, Outcome::Succeeded).await;

    let end = Scrape::fetch(&url).await;
    assert_no_open_tasks(&end);
    assert_eq!(
        end.value(TASKS_DISPATCHED_TOTAL, &[]),
        1.0,
        "re-sends apart"
    );
    assert_eq!(
        end.value(TASKS_FINISHED_TOTAL, &[("state", "succeeded")]),
        1.0
    );

    raw.close().await;
    wait_agents(&url, 0.0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_by_default() {
    assert_eq!(Config::defaults().metrics_listen, None);
    let app = TestApp::spawn().await;
    assert_eq!(app.metrics_url(), None);
    let on_api = reqwest::get(format!("{}/metrics", app.url()))
        .await
        .expect("GET /metrics on the API's port");
    assert_eq!(on_api.status(), reqwest::StatusCode::NOT_FOUND);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_refuse_the_api_port() {
    let db = TestDb::create().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut config = Config::defaults();
    config.database_url = Some(db.url().to_owned());
    config.data_dir = db.dir().join("data");
    config.admin_password = Some(ADMIN_PASSWORD.to_owned());
    config.listen = format!("127.0.0.1:{port}").parse().expect("address");
    config.metrics_listen = Some(format!("0.0.0.0:{port}").parse().expect("address"));
    let error = match Server::start(config).await {
        Ok(_) => panic!("the server started with /metrics on the API's port"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("must not use the API's port"), "{error}");
}

#[test]
fn the_scrape_parser_reads_names_labels_and_values() {
    let scrape = Scrape::parse(
        "# HELP a_total A.\n# TYPE a_total counter\na_total 3\n\
         b{route=\"/x/{id}\",status=\"404\"} 1\nc{q=\"a\\\"b\"} +Inf\n",
    );
    assert_eq!(scrape.value("a_total", &[]), 3.0);
    assert_eq!(
        scrape.value("b", &[("route", "/x/{id}"), ("status", "404")]),
        1.0
    );
    assert_eq!(scrape.get("b", &[("status", "404")]), None);
    assert_eq!(scrape.value("c", &[("q", "a\"b")]), f64::INFINITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_refusals_and_undeliverable_tasks() {
    let (app, url) = spawn_with_metrics(|config| {
        config.assign_resend_ms = 100;
        config.assign_max_sends = 2;
    })
    .await;
    let account = app.create_account().await;
    let (_, mut raw, _) = app.raw_agent(account.id).await;
    let refused = app.submit(&message(account.id)).await;
    let ignored = app.submit(&message(account.id)).await;
    assert_eq!(raw.recv_assign(SECS_5).await.id, refused.id);
    raw.send(&youmi_protocol::AgentMessage::Refused {
        task_id: refused.id,
        code: "unknown_kind".into(),
        message: "this agent does not know the kind".into(),
    })
    .await;
    // The next one is never accepted: after two sends it is undeliverable.
    assert_eq!(raw.recv_assign(SECS_5).await.id, ignored.id);
    app.wait_task_state(ignored.id, TaskState::Failed, SECS_10)
        .await;
    let scrape = Scrape::fetch(&url).await;
    assert_eq!(scrape.value(ASSIGN_REFUSALS_TOTAL, &[]), 1.0);
    assert_eq!(scrape.value(TASKS_UNDELIVERABLE_TOTAL, &[]), 1.0);
    assert_eq!(
        scrape.value(TASKS_FINISHED_TOTAL, &[("state", "failed")]),
        2.0
    );
    assert_no_open_tasks(&scrape);
    app.shutdown().await;
}
