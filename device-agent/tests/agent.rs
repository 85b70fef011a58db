//! The real agent against a fake server over real WebSockets: the delivery
//! rules of protocol v1 as the server relies on them.

mod support;

use std::fs;
use std::sync::Arc;

use serde_json::json;
use support::*;
use youmi_agent::journal;
use youmi_agent::{Agent, HaltReason, PhoneEvent};
use youmi_protocol::{
    AgentMessage, AgentSettings, FinishedReport, Outcome, ServerMessage, UpdateState,
};

fn finished(message: AgentMessage) -> FinishedReport {
    match message {
        AgentMessage::Finished(report) => report,
        other => panic!("expected finished, got {other:?}"),
    }
}

/// Whether the journal in `dir` records the ack of the task's attempt.
fn journal_has_ack(dir: &std::path::Path, task_id: i64, attempt: u32) -> bool {
    fs::read_to_string(dir.join(journal::FILE_NAME))
        .unwrap()
        .contains(&format!(
            "{{\"acked\":{{\"task_id\":{task_id},\"attempt\":{attempt}}}}}"
        ))
}

fn task_starts(events: &[PhoneEvent]) -> usize {
    events
        .iter()
        .filter(|event| matches!(event, PhoneEvent::TaskStarted(_)))
        .count()
}

#[tokio::test]
async fn hello_comes_first_then_welcome_connects_and_heartbeats_flow() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.heartbeat_interval = ms(100);
    let agent = Agent::spawn(server.credentials(), options, phone(ms(10))).unwrap();
    let mut conn = server.next_conn().await;
    match conn.recv_any().await {
        AgentMessage::Hello {
            agent_version,
            device,
            queue_paused,
            running,
            finished,
        } => {
            assert_eq!(agent_version, env!("CARGO_PKG_VERSION"));
            assert_eq!(device, support::device());
            assert!(!queue_paused);
            assert!(running.is_empty());
            assert!(finished.is_empty());
        }
        other => panic!("expected hello first, got {other:?}"),
    }
    assert!(!agent.status().connected, "connected only after welcome");
    let settings = AgentSettings {
        countdown_popup: true,
        ..AgentSettings::default()
    };
    conn.welcome(settings);
    assert!(agent.wait_connected(WAIT).await);
    assert_eq!(agent.status().settings, settings);
    match conn.recv_any().await {
        AgentMessage::Heartbeat {
            battery,
            charging,
            screen_on,
            foreground_app,
            call,
            wecom_version: None,
            dnd: None,
        } => {
            assert_eq!((battery, charging, screen_on), (None, None, None));
            assert!(foreground_app.is_none());
            assert!(call.is_none(), "a simulated phone has no calls");
        }
        other => panic!("expected a heartbeat, got {other:?}"),
    }
    let status = agent.clone();
    agent.shutdown().await;
    conn.closed().await;
    assert!(!status.status().connected);
    assert!(status.status().halted.is_none());
}

#[tokio::test]
async fn an_assigned_task_is_journaled_before_accepted_and_then_runs() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(20));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;
    assert!(agent.wait_connected(WAIT).await);

    conn.send(&assign(message_task(1)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 1 });
    // The promise was on disk before it was made.
    let journal = fs::read_to_string(dir.path().join(journal::FILE_NAME)).unwrap();
    let first: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    assert_eq!(first["accepted"]["id"], 1);

    let mut steps = Vec::new();
    let report = loop {
        match conn.recv().await {
            AgentMessage::Progress {
                task_id,
                step,
                done,
                total,
            } => {
                assert_eq!((task_id, total), (1, 3));
                steps.push((step, done));
            }
            other => break finished(other),
        }
    };
    assert_eq!(
        steps,
        vec![
            ("open_chat".to_owned(), 0),
            ("type_items".to_owned(), 1),
            ("send".to_owned(), 2)
        ]
    );
    assert_eq!(report.task_id, 1);
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(report.result, Some(json!({"steps": 3})));
    assert_eq!(phone.sent().len(), 1);
    // The journal holds the whole story, finished last.
    let journal = fs::read_to_string(dir.path().join(journal::FILE_NAME)).unwrap();
    let kinds: Vec<String> = journal
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value.as_object().unwrap().keys().next().unwrap().clone()
        })
        .collect();
    assert_eq!(kinds, vec!["accepted", "started", "finished"]);
    assert_eq!(agent.status().tasks_finished, 1);

    conn.send(&ServerMessage::Ack { task_id: 1 });
    eventually("the ack to reach the journal", || {
        journal_has_ack(dir.path(), 1, 1)
    })
    .await;
    agent.shutdown().await;
}

#[tokio::test]
async fn duplicate_assigns_are_dropped_or_answered_with_the_report() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(100));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;

    conn.send(&assign(message_task(5)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 5 });
    // A re-sent assign while the task runs: nothing, not a second accepted.
    conn.send(&assign(message_task(5)));
    let report = finished(conn.recv_skipping_progress().await);
    assert_eq!(report.outcome, Outcome::Succeeded);
    // A re-sent assign of a finished, unacked task: its report again.
    conn.send(&assign(message_task(5)));
    assert_eq!(finished(conn.recv().await), report);
    conn.send(&ServerMessage::Ack { task_id: 5 });
    // After the ack the task is still known: a late assign does nothing.
    conn.send(&assign(message_task(5)));
    conn.silent_for(ms(400)).await;
    assert_eq!(phone.sent().len(), 1, "the message was sent once");
    assert_eq!(task_starts(&phone.events()), 1);
    agent.shutdown().await;
}

#[tokio::test]
async fn a_retry_with_a_higher_attempt_runs_again_after_the_ack() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Every run fails retryably, as the server's retry expects.
    let failing = phone_with(ms(10), 1.0);
    let agent = spawn_agent(&server, dir.path(), &failing);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;
    let attempt = |attempt| {
        assign(youmi_protocol::AssignedTask {
            attempt,
            ..message_task(5)
        })
    };

    conn.send(&attempt(1));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 5 });
    let first = finished(conn.recv_skipping_progress().await);
    assert_eq!(first.outcome, Outcome::Failed);
    assert!(first.error.as_ref().unwrap().retryable);
    conn.send(&ServerMessage::Ack { task_id: 5 });
    // A late copy of the acked attempt is still a duplicate...
    conn.send(&attempt(1));
    conn.silent_for(ms(300)).await;
    // ...but the next attempt is the server's retry: new work.
    conn.send(&attempt(2));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 5 });
    let second = finished(conn.recv_skipping_progress().await);
    assert_eq!(second.task_id, 5);
    assert_eq!(task_starts(&failing.events()), 2, "one run per attempt");
    // While the retry's report is unacked, its assign gets the report again.
    conn.send(&attempt(2));
    assert_eq!(finished(conn.recv().await), second);
    conn.send(&ServerMessage::Ack { task_id: 5 });
    eventually("the retry's ack to reach the journal", || {
        journal_has_ack(dir.path(), 5, 2)
    })
    .await;
    // After its ack, neither attempt runs again.
    conn.send(&attempt(2));
    conn.send(&attempt(1));
    conn.silent_for(ms(300)).await;
    assert_eq!(task_starts(&failing.events()), 2);
    agent.shutdown().await;

    // After a restart the acked attempt is still known: its copy is
    // dropped, and a further retry runs.
    let phone = phone(ms(10));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    let hello = conn.handshake(plain_settings()).await;
    assert!(hello.finished.is_empty() && hello.running.is_empty());
    conn.send(&attempt(2));
    conn.silent_for(ms(300)).await;
    assert!(phone.events().is_empty());
    conn.send(&attempt(3));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 5 });
    let third = finished(conn.recv_skipping_progress().await);
    assert_eq!((third.task_id, third.outcome), (5, Outcome::Succeeded));
    assert_eq!(phone.sent().len(), 1);
    agent.shutdown().await;
}

#[tokio::test]
async fn an_interrupted_attempt_is_acked_as_that_attempt() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let attempt = |attempt| {
        assign(youmi_protocol::AssignedTask {
            attempt,
            ..message_task(6)
        })
    };
    let first_phone = phone(ms(300));
    let agent = spawn_agent(&server, dir.path(), &first_phone);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;
    conn.send(&attempt(2));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 6 });
    assert!(matches!(conn.recv().await, AgentMessage::Progress { .. }));
    agent.kill();
    conn.closed().await;

    // The report made at start-up is for the attempt that was under way.
    let phone = phone(ms(10));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    let hello = conn.handshake(plain_settings()).await;
    assert_eq!(hello.finished.len(), 1);
    assert_eq!(hello.finished[0].task_id, 6);
    conn.send(&ServerMessage::Ack { task_id: 6 });
    eventually("the ack to reach the journal", || {
        journal_has_ack(dir.path(), 6, 2)
    })
    .await;
    conn.send(&attempt(2));
    conn.silent_for(ms(300)).await;
    assert!(
        phone.events().is_empty(),
        "the interrupted attempt never runs again"
    );
    conn.send(&attempt(3));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 6 });
    let report = finished(conn.recv_skipping_progress().await);
    assert_eq!((report.task_id, report.outcome), (6, Outcome::Succeeded));
    assert_eq!(task_starts(&phone.events()), 1);
    agent.shutdown().await;
}

#[tokio::test]
async fn a_second_assign_while_one_runs_waits_in_the_local_queue() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(50));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;

    conn.send(&assign(message_task(1)));
    conn.send(&assign(message_task(2)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 1 });
    assert_eq!(
        conn.recv_skipping_progress().await,
        AgentMessage::Accepted { task_id: 2 }
    );
    let first = finished(conn.recv_skipping_progress().await);
    let second = finished(conn.recv_skipping_progress().await);
    assert_eq!((first.task_id, second.task_id), (1, 2));
    assert_eq!(
        phone.events(),
        vec![PhoneEvent::TaskStarted(1), PhoneEvent::TaskStarted(2)],
        "one at a time, in order"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn cancel_stops_a_running_task_at_its_next_step() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(300));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(AgentSettings::default()).await;

    conn.send(&assign(message_task(3)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 3 });
    assert!(matches!(
        conn.recv().await,
        AgentMessage::Progress { done: 0, .. }
    ));
    conn.send(&ServerMessage::Cancel { task_id: 3 });
    let report = finished(conn.recv_skipping_progress().await);
    assert_eq!(report.task_id, 3);
    assert_eq!(report.outcome, Outcome::Cancelled);
    assert!(phone.sent().is_empty(), "nothing was sent");
    // Do-not-disturb (on by default) was restored after the cancel too.
    assert_eq!(
        phone.events(),
        vec![
            PhoneEvent::DoNotDisturb(true),
            PhoneEvent::TaskStarted(3),
            PhoneEvent::DoNotDisturb(false)
        ]
    );
    assert!(!phone.do_not_disturb());

    // Cancel of a finished task: its report again. Of an unknown one: nothing.
    conn.send(&ServerMessage::Cancel { task_id: 3 });
    assert_eq!(finished(conn.recv().await), report);
    conn.send(&ServerMessage::Cancel { task_id: 999 });
    conn.silent_for(ms(300)).await;
    agent.shutdown().await;
}

#[tokio::test]
async fn a_paused_queue_accepts_but_holds_tasks_and_cancel_finishes_them_at_once() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(10));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;

    conn.send(&ServerMessage::Queue {
        paused: true,
        resume_at_ms: None,
    });
    conn.send(&assign(message_task(1)));
    conn.send(&assign(message_task(2)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 1 });
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 2 });
    conn.silent_for(ms(300)).await;
    assert!(phone.events().is_empty(), "nothing started while paused");
    assert!(agent.status().queue_paused);

    // A queued task that is cancelled ends at once, without running.
    conn.send(&ServerMessage::Cancel { task_id: 2 });
    let report = finished(conn.recv().await);
    assert_eq!((report.task_id, report.outcome), (2, Outcome::Cancelled));

    conn.send(&ServerMessage::Queue {
        paused: false,
        resume_at_ms: None,
    });
    let report = finished(conn.recv_skipping_progress().await);
    assert_eq!((report.task_id, report.outcome), (1, Outcome::Succeeded));
    assert_eq!(phone.events(), vec![PhoneEvent::TaskStarted(1)]);
    agent.shutdown().await;
}

#[tokio::test]
async fn pausing_on_the_phone_tells_the_server_and_holds_tasks() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(10));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;

    agent.pause_queue("volume_key");
    assert_eq!(
        conn.recv().await,
        AgentMessage::QueueChanged {
            paused: true,
            reason: "volume_key".to_owned()
        }
    );
    assert!(agent.status().queue_paused);
    conn.send(&assign(message_task(1)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 1 });
    conn.silent_for(ms(300)).await;
    assert!(phone.events().is_empty());

    agent.resume_queue("volume_key");
    assert_eq!(
        conn.recv().await,
        AgentMessage::QueueChanged {
            paused: false,
            reason: "volume_key".to_owned()
        }
    );
    let report = finished(conn.recv_skipping_progress().await);
    assert_eq!(report.outcome, Outcome::Succeeded);
    agent.shutdown().await;
}

#[tokio::test]
async fn start_queue_on_open_off_pauses_the_queue_at_start() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(10));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(AgentSettings {
        start_queue_on_open: false,
        ..plain_settings()
    })
    .await;
    assert_eq!(
        conn.recv().await,
        AgentMessage::QueueChanged {
            paused: true,
            reason: "start_queue_on_open".to_owned()
        }
    );
    conn.send(&assign(message_task(1)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 1 });
    conn.silent_for(ms(300)).await;
    assert!(phone.events().is_empty());
    assert!(agent.status().queue_paused);
    agent.shutdown().await;
}

#[tokio::test]
async fn an_unacked_report_survives_restarts_until_acked() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let report = {
        let agent = spawn_agent(&server, dir.path(), &phone(ms(5)));
        let mut conn = server.next_conn().await;
        conn.handshake(plain_settings()).await;
        conn.send(&assign(message_task(8)));
        assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 8 });
        let report = finished(conn.recv_skipping_progress().await);
        // No ack: the server "crashed" before storing it.
        agent.shutdown().await;
        report
    };

    let phone = phone(ms(5));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    let hello = conn.handshake(plain_settings()).await;
    assert_eq!(hello.finished, vec![report]);
    assert!(hello.running.is_empty());
    conn.send(&ServerMessage::Ack { task_id: 8 });
    eventually("the ack to reach the journal", || {
        journal_has_ack(dir.path(), 8, 1)
    })
    .await;
    agent.shutdown().await;
    assert!(phone.events().is_empty(), "the task did not run again");

    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    let hello = conn.handshake(plain_settings()).await;
    assert!(hello.finished.is_empty(), "acked reports are forgotten");
    // ...but a late duplicate assign of it is still recognised.
    conn.send(&assign(message_task(8)));
    conn.silent_for(ms(300)).await;
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_unacked_report_is_sent_again_every_ten_seconds() {
    init_logs();
    let _clock = FineClock::start();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(&server, dir.path(), &phone(ms(5)));
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;
    conn.send(&assign(message_task(4)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 4 });
    let report = finished(conn.recv_skipping_progress().await);
    let first = tokio::time::Instant::now();
    assert_eq!(finished(conn.recv().await), report);
    let second = tokio::time::Instant::now();
    assert!(second - first >= ms(10_000), "{:?}", second - first);
    assert!(second - first < ms(11_000), "{:?}", second - first);
    assert_eq!(finished(conn.recv().await), report);
    conn.send(&ServerMessage::Ack { task_id: 4 });
    // Acked: silence (heartbeats aside) for well over the resend interval.
    conn.silent_for(ms(60_000)).await;
    agent.shutdown().await;
}

#[tokio::test]
async fn a_task_under_way_at_a_crash_is_reported_interrupted_and_not_run_again() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first_phone = phone(ms(300));
    let agent = spawn_agent(&server, dir.path(), &first_phone);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;
    conn.send(&assign(message_task(6)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 6 });
    assert!(matches!(conn.recv().await, AgentMessage::Progress { .. }));
    agent.kill();
    assert!(!agent.status().connected);
    conn.closed().await;

    let phone = phone(ms(10));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    let hello = conn.handshake(plain_settings()).await;
    assert!(hello.running.is_empty());
    assert_eq!(hello.finished.len(), 1);
    let report = &hello.finished[0];
    assert_eq!((report.task_id, report.outcome), (6, Outcome::Failed));
    let error = report.error.as_ref().unwrap();
    assert_eq!(error.code, journal::INTERRUPTED);
    assert!(!error.retryable);
    // A re-sent assign does not run it either: the report goes again.
    conn.send(&assign(message_task(6)));
    assert_eq!(&finished(conn.recv().await), report);
    conn.silent_for(ms(200)).await;
    assert!(phone.events().is_empty());
    assert!(first_phone.sent().is_empty() && phone.sent().is_empty());
    agent.shutdown().await;
}

#[tokio::test]
async fn a_queued_task_survives_a_restart_and_runs_after_it() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    {
        let agent = spawn_agent(&server, dir.path(), &phone(ms(10)));
        let mut conn = server.next_conn().await;
        conn.handshake(plain_settings()).await;
        conn.send(&ServerMessage::Queue {
            paused: true,
            resume_at_ms: None,
        });
        conn.send(&assign(message_task(9)));
        assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 9 });
        agent.shutdown().await;
    }
    let phone = phone(ms(10));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    let hello = conn.handshake(plain_settings()).await;
    assert_eq!(hello.running, vec![9], "still held, so reported running");
    assert!(hello.finished.is_empty());
    let report = finished(conn.recv_skipping_progress().await);
    assert_eq!((report.task_id, report.outcome), (9, Outcome::Succeeded));
    assert_eq!(phone.sent().len(), 1);
    agent.shutdown().await;
}

#[tokio::test]
async fn after_a_dropped_connection_hello_reports_the_running_task() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(200));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;
    conn.send(&assign(message_task(2)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 2 });
    conn.drop_connection();

    let mut conn = server.next_conn().await;
    let hello = conn.handshake(plain_settings()).await;
    assert_eq!(hello.running, vec![2]);
    assert!(agent.wait_connected(WAIT).await);
    let report = finished(conn.recv_skipping_progress().await);
    assert_eq!((report.task_id, report.outcome), (2, Outcome::Succeeded));
    assert_eq!(
        phone.sent().len(),
        1,
        "not run again because of the reconnect"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn a_revoked_token_stops_the_agent_without_retrying() {
    init_logs();
    let server = FakeServer::start().await;
    server.revoke();
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(&server, dir.path(), &phone(ms(10)));
    let halted = tokio::time::timeout(WAIT, agent.wait_halted())
        .await
        .expect("the agent halts");
    assert_eq!(halted, Some(HaltReason::Revoked));
    // With 20-100 ms backoff, a retrying agent would have tried many times.
    tokio::time::sleep(ms(500)).await;
    assert_eq!(server.attempts(), 1);
    let status = agent.status();
    assert!(!status.connected);
    assert_eq!(status.halted, Some(HaltReason::Revoked));
    assert!(HaltReason::Revoked.to_string().contains("youmi-agent bind"));
    agent.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_is_refused_by_the_bearer_check() {
    init_logs();
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut credentials = server.credentials();
    credentials.token = "not-the-token".to_owned();
    let agent = Agent::spawn(credentials, options(dir.path()), phone(ms(10))).unwrap();
    let halted = tokio::time::timeout(WAIT, agent.wait_halted())
        .await
        .unwrap();
    assert_eq!(halted, Some(HaltReason::Revoked));
}

#[tokio::test]
async fn the_agent_reconnects_until_the_server_is_there() {
    init_logs();
    // Take a free port, then start the server on it a little later.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut credentials = support::FakeServer::start().await.credentials();
    credentials.server_url = format!("http://127.0.0.1:{port}");
    let agent = Agent::spawn(credentials, options(dir.path()), phone(ms(10))).unwrap();
    tokio::time::sleep(ms(300)).await;
    assert!(!agent.status().connected);
    // A plain listener on that port that upgrades like the fake server would
    // is more than this test needs: it is enough that the agent keeps trying.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("the agent tries again")
        .unwrap();
    drop(stream);
    agent.kill();
}

#[tokio::test]
async fn frames_over_one_mebibyte_are_ignored_and_the_connection_stays() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(&server, dir.path(), &phone(ms(10)));
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;
    assert!(agent.wait_connected(WAIT).await);
    let huge = format!(
        r#"{{"type":"error","code":"x","message":"{}"}}"#,
        "a".repeat(youmi_protocol::MAX_FRAME_BYTES + 1)
    );
    conn.send_text(huge);
    // Not an assign: nothing to refuse; the same connection takes the next task.
    conn.send(&assign(message_task(3)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 3 });
    assert_eq!(server.attempts(), 1, "never reconnected");
    agent.shutdown().await;
}

#[tokio::test]
async fn bad_frames_are_ignored_and_settings_apply() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(10));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;
    conn.send_text("{not json".to_owned());
    conn.send_text(r#"{"type":"no_such_message"}"#.to_owned());
    conn.send(&ServerMessage::Error {
        code: "bad_message".to_owned(),
        message: "what was that".to_owned(),
    });
    let settings = AgentSettings {
        dnd_while_running: true,
        auto_hang_up: true,
        ..AgentSettings::default()
    };
    conn.send(&ServerMessage::Settings { settings });
    eventually("the settings to apply", || {
        agent.status().settings == settings
    })
    .await;
    // The connection is still good, and the new settings shape the next task.
    conn.send(&assign(message_task(1)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 1 });
    finished(conn.recv_skipping_progress().await);
    assert_eq!(phone.events()[0], PhoneEvent::DoNotDisturb(true));
    agent.shutdown().await;
}

#[tokio::test]
async fn a_failed_log_upload_is_reported_and_update_is_not_supported() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(&server, dir.path(), &phone(ms(10)));
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;
    // Nothing listens there: the upload fails, and the server is told why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/logs", closed.local_addr().unwrap());
    drop(closed);
    conn.send(&ServerMessage::UploadLogs {
        request_id: "r1".to_owned(),
        url,
    });
    match conn.recv().await {
        AgentMessage::LogsUploaded {
            request_id,
            error: Some(error),
        } => {
            assert_eq!(request_id, "r1");
            assert!(error.starts_with("cannot send the logs"), "{error}");
        }
        other => panic!("expected a failed logs_uploaded, got {other:?}"),
    }
    conn.send(&ServerMessage::Update {
        version: "9.9.9".to_owned(),
        url: "http://example.invalid/agent".to_owned(),
        sha256: "00".to_owned(),
    });
    assert_eq!(
        conn.recv().await,
        AgentMessage::UpdateStatus {
            version: "9.9.9".to_owned(),
            state: UpdateState::Failed,
            message: Some("self-update is not supported by this agent".to_owned())
        }
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn a_task_past_its_not_after_time_fails_as_expired_without_running() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(10));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;
    let mut task = message_task(11);
    task.not_after_ms = Some(now_ms() - 1_000);
    conn.send(&assign(task));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 11 });
    let report = finished(conn.recv().await);
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.error.unwrap().code, "expired");
    assert!(phone.events().is_empty());
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn countdown_and_do_not_disturb_wrap_each_task() {
    init_logs();
    let _clock = FineClock::start();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(100));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(AgentSettings {
        countdown_popup: true,
        dnd_while_running: true,
        ..AgentSettings::default()
    })
    .await;
    conn.send(&assign(message_task(1)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 1 });
    let accepted_at = tokio::time::Instant::now();
    assert!(matches!(
        conn.recv().await,
        AgentMessage::Progress { done: 0, .. }
    ));
    let waited = tokio::time::Instant::now() - accepted_at;
    assert!(
        waited >= ms(10_000),
        "the countdown lasts 10 s, waited {waited:?}"
    );
    assert!(waited < ms(10_500), "{waited:?}");
    let report = finished(conn.recv_skipping_progress().await);
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(
        phone.events(),
        vec![
            PhoneEvent::Countdown(10),
            PhoneEvent::DoNotDisturb(true),
            PhoneEvent::TaskStarted(1),
            PhoneEvent::DoNotDisturb(false)
        ]
    );
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_cancel_or_pause_during_the_countdown_keeps_the_task_from_starting() {
    init_logs();
    let _clock = FineClock::start();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(100));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(AgentSettings {
        countdown_popup: true,
        ..plain_settings()
    })
    .await;

    conn.send(&assign(message_task(1)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 1 });
    eventually("the countdown to show", || {
        phone.events() == vec![PhoneEvent::Countdown(10)]
    })
    .await;
    assert_eq!(agent.status().current_task, Some(1));
    conn.send(&ServerMessage::Cancel { task_id: 1 });
    let report = finished(conn.recv().await);
    assert_eq!((report.task_id, report.outcome), (1, Outcome::Cancelled));
    conn.send(&ServerMessage::Ack { task_id: 1 });

    // A pause during the countdown puts the task back; it starts, with a
    // fresh countdown, after the resume.
    conn.send(&assign(message_task(2)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 2 });
    eventually("the second countdown", || phone.events().len() == 2).await;
    conn.send(&ServerMessage::Queue {
        paused: true,
        resume_at_ms: None,
    });
    conn.silent_for(ms(30_000)).await;
    assert_eq!(task_starts(&phone.events()), 0);
    conn.send(&ServerMessage::Queue {
        paused: false,
        resume_at_ms: None,
    });
    let report = finished(conn.recv_skipping_progress().await);
    assert_eq!((report.task_id, report.outcome), (2, Outcome::Succeeded));
    assert_eq!(
        phone.events(),
        vec![
            PhoneEvent::Countdown(10),
            PhoneEvent::Countdown(10),
            PhoneEvent::Countdown(10),
            PhoneEvent::TaskStarted(2)
        ]
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn do_not_disturb_is_restored_after_a_failure() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone_with(ms(10), 1.0);
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(AgentSettings::default()).await;
    conn.send(&assign(message_task(1)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 1 });
    let report = finished(conn.recv_skipping_progress().await);
    assert_eq!(report.outcome, Outcome::Failed);
    let error = report.error.unwrap();
    assert_eq!(error.code, "simulated_failure");
    assert!(error.retryable);
    assert_eq!(
        phone.events().last(),
        Some(&PhoneEvent::DoNotDisturb(false))
    );
    assert!(!phone.do_not_disturb());
    agent.shutdown().await;
}

#[tokio::test]
async fn shutdown_waits_for_the_running_task_and_its_ack() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(100));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;
    conn.send(&assign(message_task(1)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 1 });
    let stopping = tokio::spawn(agent.clone().shutdown());
    // The running task finishes and is reported; the agent takes no new task.
    let report = finished(conn.recv_skipping_progress().await);
    assert_eq!(report.outcome, Outcome::Succeeded);
    conn.send(&assign(message_task(2)));
    conn.send(&ServerMessage::Ack { task_id: 1 });
    conn.closed().await;
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
    assert_eq!(task_starts(&phone.events()), 1);
    assert!(!agent.status().connected);
    // The ack made it to the journal, and task 2 was never accepted.
    let phone = phone_for_restart();
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    let hello = conn.handshake(plain_settings()).await;
    assert!(hello.finished.is_empty());
    assert!(hello.running.is_empty());
    agent.shutdown().await;
}

fn phone_for_restart() -> Arc<youmi_agent::SimulatedPhone> {
    phone(ms(10))
}

#[tokio::test]
async fn a_bad_server_url_or_token_is_an_error_at_spawn() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start().await;
    let mut credentials = server.credentials();
    credentials.server_url = "ftp://example.com".to_owned();
    let error = Agent::spawn(credentials, options(dir.path()), phone(ms(1))).unwrap_err();
    assert!(error.to_string().contains("http or https"), "{error}");
    let mut credentials = server.credentials();
    credentials.token = "line\nbreak".to_owned();
    let error = Agent::spawn(credentials, options(dir.path()), phone(ms(1))).unwrap_err();
    assert!(error.to_string().contains("token"), "{error}");
}

#[tokio::test]
async fn a_damaged_journal_is_an_error_at_spawn() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(journal::FILE_NAME),
        "{garbage\n{\"acked\":1}\n",
    )
    .unwrap();
    let server = FakeServer::start().await;
    let error = Agent::spawn(server.credentials(), options(dir.path()), phone(ms(1))).unwrap_err();
    assert!(error.to_string().contains("damaged at line 1"), "{error}");
}

/// An executor that panics mid-task, to see the runner contain it.
struct PanickingPhone {
    do_not_disturb: std::sync::Mutex<Vec<bool>>,
}

impl youmi_agent::Executor for PanickingPhone {
    fn execute<'a>(
        &'a self,
        _task: &'a youmi_protocol::AssignedTask,
        ctx: &'a youmi_agent::TaskContext,
    ) -> youmi_agent::BoxFuture<'a, Result<Option<serde_json::Value>, youmi_agent::TaskFailure>>
    {
        Box::pin(async move {
            ctx.step("open_chat", 0, 2).await?;
            panic!("the accessibility tree was empty");
        })
    }

    fn set_do_not_disturb<'a>(
        &'a self,
        on: bool,
    ) -> youmi_agent::BoxFuture<'a, Result<bool, youmi_agent::TaskFailure>> {
        Box::pin(async move {
            self.do_not_disturb.lock().unwrap().push(on);
            Ok(false)
        })
    }

    fn show_countdown<'a>(&'a self, _seconds: u32) -> youmi_agent::BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

#[tokio::test]
async fn an_executor_panic_fails_the_task_and_the_agent_goes_on() {
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let executor = Arc::new(PanickingPhone {
        do_not_disturb: std::sync::Mutex::new(Vec::new()),
    });
    let agent = Agent::spawn(server.credentials(), options(dir.path()), executor.clone()).unwrap();
    let mut conn = server.next_conn().await;
    conn.handshake(AgentSettings::default()).await;
    for id in [1, 2] {
        conn.send(&assign(message_task(id)));
        assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: id });
        let report = finished(conn.recv_skipping_progress().await);
        assert_eq!((report.task_id, report.outcome), (id, Outcome::Failed));
        let error = report.error.unwrap();
        assert_eq!(error.code, "executor_panicked");
        assert!(
            error.message.contains("accessibility tree"),
            "{}",
            error.message
        );
        assert!(!error.retryable);
    }
    assert_eq!(
        *executor.do_not_disturb.lock().unwrap(),
        vec![true, false, true, false],
        "do-not-disturb is restored after a panic too"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn an_https_server_gets_tls_and_a_failed_handshake_is_retried() {
    init_logs();
    // A listener that is no TLS server: every handshake fails, and the agent
    // must keep trying rather than die in its TLS setup.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = FakeServer::start().await;
    let mut credentials = server.credentials();
    credentials.server_url = format!("https://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::spawn(credentials, options(dir.path()), phone(ms(1))).unwrap();
    for _ in 0..3 {
        let (mut stream, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .expect("the agent tries (again)")
            .unwrap();
        // The first bytes are a TLS ClientHello (record type 22), not HTTP.
        let mut first = [0u8; 1];
        tokio::io::AsyncReadExt::read_exact(&mut stream, &mut first)
            .await
            .unwrap();
        assert_eq!(first[0], 22);
    }
    assert!(!agent.status().connected);
    assert!(agent.status().halted.is_none());
    agent.kill();
}

#[test]
fn the_default_heartbeat_keeps_a_device_online() {
    // The server marks a device offline after 90 s of silence: three
    // heartbeats at the protocol's 30 s.
    let options = youmi_agent::AgentOptions::new("state".into(), support::device());
    assert_eq!(
        options.heartbeat_interval,
        std::time::Duration::from_secs(30)
    );
}

/// Assign frames an agent cannot take, of many shapes: each is refused by
/// its task id with the right code, nothing is journaled or run, and the
/// connection stays up for the next task.
#[tokio::test]
async fn assigns_the_agent_cannot_take_are_refused_on_the_same_connection() {
    use youmi_protocol::agent::refusal_code;
    init_logs();
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(ms(5));
    let agent = spawn_agent(&server, dir.path(), &phone);
    let mut conn = server.next_conn().await;
    conn.handshake(plain_settings()).await;

    let frame = |id: i64, kind: &str, payload: String| {
        format!(
            r#"{{"type":"assign","task":{{"id":{id},"kind":"{kind}","payload":{payload},"attempt":1}}}}"#
        )
    };
    let good = r#"{"to":{"name":"Ann"},"items":[{"type":"text","text":"hi"}]}"#;
    let mut cases: Vec<(String, &str)> = Vec::new();
    let mut id = 100;
    // Over the size limit, by a little and by a lot.
    for extra in [1usize, 1_000, 3 * 1024 * 1024] {
        let text = "x".repeat(youmi_protocol::MAX_ASSIGN_FRAME_BYTES + extra);
        let payload =
            format!(r#"{{"to":{{"name":"Ann"}},"items":[{{"type":"text","text":"{text}"}}]}}"#);
        id += 1;
        cases.push((frame(id, "send_message", payload), refusal_code::TOO_LARGE));
    }
    // Nested past what the JSON reader takes.
    for depth in [127usize, 128, 200, 5_000] {
        let payload = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        id += 1;
        cases.push((frame(id, "send_message", payload), refusal_code::UNREADABLE));
    }
    // Kinds this agent does not know.
    for kind in ["teleport", "SEND_MESSAGE", "", "send message"] {
        id += 1;
        cases.push((frame(id, kind, good.to_owned()), refusal_code::UNKNOWN_KIND));
    }
    // Fields of the wrong type around a readable id.
    id += 1;
    cases.push((
        format!(r#"{{"type":"assign","task":{{"id":{id},"kind":"send_message","payload":{good},"attempt":"one"}}}}"#),
        refusal_code::UNREADABLE,
    ));
    // Payloads that do not pass the kind's check.
    for payload in [
        json!({}),
        json!({"to": {"name": "Ann"}, "items": []}),
        json!({"to": {"name": "Ann"}, "items": [{"type": "hologram"}]}),
        json!([1, 2, 3]),
        json!("text"),
    ] {
        id += 1;
        cases.push((
            frame(id, "send_message", payload.to_string()),
            refusal_code::PAYLOAD_NOT_UNDERSTOOD,
        ));
    }

    for (text, code) in &cases {
        let expected_id =
            youmi_protocol::agent::assign_task_id(text).expect("the case names an id");
        conn.send_text(text.clone());
        match conn.recv().await {
            AgentMessage::Refused {
                task_id,
                code: got,
                message,
            } => {
                assert_eq!(task_id, expected_id);
                assert_eq!(got, *code, "{message}");
                assert!(!message.is_empty());
            }
            other => panic!("expected a refusal of {expected_id}, got {other:?}"),
        }
    }
    // Frames that are not assigns at all are ignored, with no answer.
    for junk in ["{", "[]", r#"{"type":"teleport"}"#, r#"{"type":"ack"}"#] {
        conn.send_text(junk.to_owned());
    }
    conn.silent_for(ms(200)).await;

    // The same connection takes the next good task.
    conn.send(&assign(message_task(7)));
    assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: 7 });
    let report = finished(conn.recv_skipping_progress().await);
    assert_eq!((report.task_id, report.outcome), (7, Outcome::Succeeded));
    assert_eq!(server.attempts(), 1, "never reconnected");
    assert_eq!(task_starts(&phone.events()), 1, "only the good task ran");
    agent.shutdown().await;
}
