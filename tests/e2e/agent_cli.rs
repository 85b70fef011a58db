//! The `youmi-agent` binary: `bind` stores a private token and prints no
//! secret; `run` drives the simulated phone; killed mid-task it never runs that
//! task again; SIGTERM lets a running task finish; a revoked token stops it
//! with an error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use youmi_agent::credentials::Credentials;
use youmi_protocol::TaskState;
use youmi_tests::payloads::message;
use youmi_tests::process::{agent_bind, agent_run};
use youmi_tests::TestApp;

use crate::AGENT_EXE;

/// Binds a process agent to a new account; returns the account, the state
/// directory and the record file.
async fn bound_process_agent(app: &TestApp) -> (i64, PathBuf, PathBuf, Credentials) {
    let account = app.create_account().await;
    let code = app.bind_code(account.id).await;
    let state_dir = app.db().dir().join("process-agent");
    let record = app.db().dir().join("sent.jsonl");
    let output = agent_bind(Path::new(AGENT_EXE), &app.url(), &code.code, &state_dir);
    assert!(
        output.status.success(),
        "youmi-agent bind failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let credentials = Credentials::load(&state_dir).expect("bind saved the credentials");
    assert_eq!(credentials.operator_account_id, account.id);
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        printed.contains(&credentials.device_id),
        "bind prints the device id: {printed}"
    );
    assert!(
        !printed.contains(&credentials.token),
        "bind never prints the token"
    );
    (account.id, state_dir, record, credentials)
}

/// The lines of a `--sim-record` file that name `task_id`.
fn recorded(record: &Path, task_id: i64) -> usize {
    let text = std::fs::read_to_string(record).unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("record line is not JSON ({e}): {line}"))
        })
        .filter(|value| value["task_id"].as_i64() == Some(task_id))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_process_killed_mid_task_never_runs_it_again() {
    let app = TestApp::spawn().await;
    let (account, state_dir, record, _) = bound_process_agent(&app).await;
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state_dir.join("credentials.json"))
            .expect("credentials file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }

    // A slow phone: each step takes 400 ms.
    let mut process = agent_run(Path::new(AGENT_EXE), &state_dir, &record, 400);
    let victim = app.submit(&message(account)).await;
    app.wait_task_state(victim.id, TaskState::Running, Duration::from_secs(20))
        .await;
    process.kill9();
    assert_eq!(recorded(&record, victim.id), 0, "killed before it was sent");

    // Started again on the same journal, it reports the task as interrupted.
    let _process = agent_run(Path::new(AGENT_EXE), &state_dir, &record, 20);
    let ended = app
        .wait_task_state(victim.id, TaskState::Failed, Duration::from_secs(20))
        .await;
    let error = ended.error.expect("the failure says why");
    assert_eq!(error.code, "interrupted");
    assert!(!error.retryable);
    assert_eq!(ended.attempt, 1);
    assert_eq!(recorded(&record, victim.id), 0, "never run a second time");

    // The agent goes on with new work, recorded once.
    let next = app.submit(&message(account)).await;
    app.wait_task_state(next.id, TaskState::Succeeded, Duration::from_secs(20))
        .await;
    assert_eq!(recorded(&record, next.id), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_task_finish() {
    let app = TestApp::spawn().await;
    let (account, state_dir, record, _) = bound_process_agent(&app).await;
    let mut process = agent_run(Path::new(AGENT_EXE), &state_dir, &record, 300);
    let submitted = app.submit(&message(account)).await;
    app.wait_task_state(submitted.id, TaskState::Running, Duration::from_secs(20))
        .await;

    process.terminate();
    let status = process.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "a graceful stop exits 0, not {status}");
    let done = app
        .wait_task_state(submitted.id, TaskState::Succeeded, Duration::from_secs(5))
        .await;
    assert_eq!(done.attempt, 1);
    assert_eq!(recorded(&record, submitted.id), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_process_logs_to_its_state_dir_and_uploads_that_log() {
    let app = TestApp::spawn().await;
    let (_, state_dir, record, credentials) = bound_process_agent(&app).await;
    let _process = agent_run(Path::new(AGENT_EXE), &state_dir, &record, 20);
    let device_id = credentials.device_id.clone();
    app.wait_device(
        &device_id,
        "the agent online",
        Duration::from_secs(20),
        |d| d.online,
    )
    .await;
    let log_id = app.request_logs(&[&device_id]).await.devices[0]
        .log_id
        .expect("the online agent was asked");
    youmi_tests::api::eventually("the upload", Duration::from_secs(20), || async {
        let page = app.device_logs(&device_id).await;
        page.items
            .into_iter()
            .find(|l| l.id == log_id && l.state == youmi_protocol::api::DeviceLogState::Uploaded)
    })
    .await;
    let (_, bytes) = app.download_log(log_id).await;
    let files = youmi_agent::logs::archive::read(&bytes).expect("a .tar.gz");
    let (_, log) = files
        .iter()
        .find(|(name, _)| name == "logs/agent.log")
        .expect("the agent's log is in the archive");
    let log = String::from_utf8_lossy(log);
    assert!(
        log.contains("starting") && log.contains(&device_id),
        "the binary's own lines: {log}"
    );
    assert!(state_dir.join("logs").join("agent.log").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_stops_with_an_error() {
    let app = TestApp::spawn().await;
    let (account, state_dir, record, credentials) = bound_process_agent(&app).await;
    let mut process = agent_run(Path::new(AGENT_EXE), &state_dir, &record, 20);
    app.wait_device(
        &credentials.device_id,
        "the process agent online",
        Duration::from_secs(20),
        |d| d.online,
    )
    .await;

    // Another phone is bound to the account: this one's token is revoked.
    app.bind_raw(account).await;
    let status = process.wait_exit(Duration::from_secs(20)).await;
    assert!(!status.success(), "a revoked agent exits non-zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_bind_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(AGENT_EXE);
    command
        .arg("run")
        .arg("--state-dir")
        .arg(dir.path().join("nothing-here"));
    for (key, _) in std::env::vars() {
        if key.starts_with("YOUMI_") {
            command.env_remove(key);
        }
    }
    let output = command.output().expect("run youmi-agent");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not bound"), "a clear message: {stderr}");
}
