//! Server crashes and restarts: the real server killed with SIGKILL (twice) in
//! the middle of 250 tasks on 10 phones loses nothing and sends nothing twice;
//! a graceful restart keeps queued and running work.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;
use youmi_protocol::{TaskKind, TaskState};
use youmi_tests::payloads::{message, task};
use youmi_tests::{AgentSpec, Api, ServerProcess, TestAgent, TestApp, TestDb};

use crate::SERVER_EXE;

const PHONES: usize = 10;
const TASKS: usize = 250;

/// Counts the tasks that have not ended yet (queued, dispatched or running).
async fn unfinished(api: &Api) -> usize {
    let mut count = 0;
    for state in [TaskState::Queued, TaskState::Dispatched, TaskState::Running] {
        count += api.tasks_in_state(state, 500).await.len();
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_kill9_mid_run_loses_nothing_and_sends_nothing_twice() {
    let db = TestDb::create().await;
    let (mut server, token) = ServerProcess::start(Path::new(SERVER_EXE), &db, &[]).await;
    let mut api = Api::new(server.url(), token);

    let mut agents = Vec::new();
    let mut accounts = Vec::new();
    for n in 0..PHONES {
        let account = api.create_account().await;
        let state_dir = db.dir().join(format!("agent-{n}"));
        std::fs::create_dir_all(&state_dir).expect("agent state dir");
        let agent = TestAgent::bind(
            &api,
            &server.url(),
            account.id,
            state_dir,
            AgentSpec {
                step_latency: Duration::from_millis(15),
                ..AgentSpec::default()
            },
        )
        .await;
        accounts.push(account.id);
        agents.push(agent);
    }

    let submissions = (0..TASKS)
        .map(|i| task(accounts[i % PHONES], TaskKind::ALL[i % TaskKind::ALL.len()]))
        .collect();
    let ids = api.submit_batch(submissions).await;
    assert_eq!(ids.len(), TASKS);

    // Kill the server twice while every phone is busy: a quarter and two
    // thirds of the way in.
    let sent_so_far = || agents.iter().map(|a| a.phone.sent().len()).sum::<usize>();
    for mark in [TASKS / 4, TASKS * 2 / 3] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while sent_so_far() < mark {
            assert!(
                Instant::now() < deadline,
                "the run stalled before {mark} tasks"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.kill9();
        let at_kill = sent_so_far();
        assert!(at_kill < TASKS, "the kill came after the run ended");
        eprintln!("e2e: killed the server with {at_kill} of {TASKS} tasks sent");
        api.token = server.restart().await;
    }

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = unfinished(&api).await;
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} tasks still unfinished 90 s after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every task is there and ended; none was sent twice; each success was sent once.
    let mut states = HashMap::new();
    for &account in &accounts {
        for view in api.account_tasks(account).await {
            states.insert(view.id, (view.state, view.error));
        }
    }
    let expected: HashSet<i64> = ids.iter().copied().collect();
    let stored: HashSet<i64> = states.keys().copied().collect();
    assert_eq!(stored, expected, "every submitted task is still there");

    let mut sent_count: HashMap<i64, usize> = HashMap::new();
    for agent in &agents {
        for record in agent.phone.sent() {
            *sent_count.entry(record.task_id).or_default() += 1;
        }
    }
    let twice: Vec<_> = sent_count.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "tasks sent more than once: {twice:?}");

    let not_succeeded: Vec<_> = states
        .iter()
        .filter(|(_, (state, _))| *state != TaskState::Succeeded)
        .collect();
    assert!(
        not_succeeded.is_empty(),
        "with a phone that never fails every task succeeds; these did not: {not_succeeded:?}"
    );
    let sent_ids: HashSet<i64> = sent_count.keys().copied().collect();
    assert_eq!(sent_ids, expected, "every success was really sent");

    for agent in &agents {
        assert!(agent.handle.status().connected, "every agent reconnected");
    }
    server.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_keeps_queued_and_running_work() {
    let mut app = TestApp::spawn().await;
    let account = app.create_account().await;
    let agent = app
        .bind_agent_with(
            account.id,
            AgentSpec {
                step_latency: Duration::from_millis(100),
                ..AgentSpec::default()
            },
        )
        .await;
    let ids = app
        .submit_batch((0..6).map(|_| message(account.id)).collect())
        .await;
    app.wait_task_state(ids[0], TaskState::Running, Duration::from_secs(5))
        .await;

    app.restart().await;

    for &id in &ids {
        app.wait_task_state(id, TaskState::Succeeded, Duration::from_secs(20))
            .await;
    }
    let sent: Vec<i64> = agent.phone.sent().iter().map(|r| r.task_id).collect();
    let mut unique = sent.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(sent.len(), unique.len(), "nothing sent twice: {sent:?}");
    assert_eq!(unique.len(), ids.len());
}
