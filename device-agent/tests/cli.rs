//! The `youmi-agent` binary as a user runs it: `bind`, then `run` until a
//! signal, with clear errors when something is missing or refused.

mod support;

use std::process::Stdio;

use support::*;
use tokio::process::Command;
use youmi_agent::{Credentials, SimulatedPhone};
use youmi_protocol::{AgentMessage, Outcome, ServerMessage};

fn agent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_youmi-agent"));
    // Flags in the tests say everything; nothing leaks in from the caller's
    // environment.
    for (key, _) in std::env::vars() {
        if key.starts_with("YOUMI_AGENT_") {
            command.env_remove(key);
        }
    }
    command
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn finish(child: tokio::process::Child) -> (Option<i32>, String, String) {
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the agent exits")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn run_before_bind_says_to_bind_first() {
    let dir = tempfile::tempdir().unwrap();
    let child = agent()
        .args(["run", "--state-dir"])
        .arg(dir.path())
        .spawn()
        .unwrap();
    let (code, _, stderr) = finish(child).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("not bound"), "{stderr}");
    assert!(stderr.contains("youmi-agent bind"), "{stderr}");
}

#[tokio::test]
async fn bind_saves_private_credentials_and_never_prints_the_token() {
    let http = FakeHttp::start(
        200,
        r#"{"device_id":"dev-9","token":"tok-very-secret","operator_account_id":3}"#,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let child = agent()
        .args([
            "bind",
            "--server",
            &http.url(),
            "--code",
            "ABCD2345",
            "--serial",
            "sim-9",
        ])
        .arg("--state-dir")
        .arg(&state)
        .spawn()
        .unwrap();
    let (code, stdout, stderr) = finish(child).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("device_id: dev-9"), "{stdout}");
    assert!(stdout.contains("operator_account_id: 3"), "{stdout}");
    assert!(!stdout.contains("tok-very-secret") && !stderr.contains("tok-very-secret"));

    assert_eq!(http.paths.lock().unwrap().as_slice(), ["/agent/v1/bind"]);
    let body: serde_json::Value = serde_json::from_str(&http.bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(body["code"], "ABCD2345");
    assert_eq!(body["device"]["serial"], "sim-9");
    assert_eq!(body["device"]["agent_version"], env!("CARGO_PKG_VERSION"));

    let credentials = Credentials::load(&state).unwrap();
    assert_eq!(credentials.token, "tok-very-secret");
    assert_eq!(credentials.device_id, "dev-9");
    assert_eq!(credentials.operator_account_id, 3);
    assert_eq!(credentials.server_url, http.url());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(Credentials::path(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_refused_bind_shows_the_servers_reason() {
    let http = FakeHttp::start(
        410,
        r#"{"error":{"code":"bind_code_expired","message":"this bind code has expired"}}"#,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let child = agent()
        .args(["bind", "--server", &http.url(), "--code", "ABCD2345"])
        .arg("--state-dir")
        .arg(dir.path())
        .spawn()
        .unwrap();
    let (code, _, stderr) = finish(child).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("bind_code_expired"), "{stderr}");
    assert!(stderr.contains("this bind code has expired"), "{stderr}");
    assert!(!Credentials::path(dir.path()).exists());
}

#[tokio::test]
async fn bad_flags_are_refused_before_anything_runs() {
    let child = agent()
        .args(["run", "--sim-failure-rate", "3"])
        .spawn()
        .unwrap();
    let (code, _, stderr) = finish(child).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("between 0 and 1"), "{stderr}");
    let child = agent()
        .args(["bind", "--server", "localhost:8080", "--code", "ABCD2345"])
        .arg("--state-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .spawn()
        .unwrap();
    let (code, _, stderr) = finish(child).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("invalid server url"), "{stderr}");
}

#[tokio::test]
async fn run_executes_tasks_records_them_and_stops_on_sigterm() {
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    server.credentials().save(dir.path()).unwrap();
    let record = dir.path().join("sent.jsonl");
    let child = agent()
        .args([
            "run",
            "--sim-step-ms",
            "10",
            "--sim-seed",
            "3",
            "--heartbeat-secs",
            "1",
        ])
        .arg("--state-dir")
        .arg(dir.path())
        .arg("--sim-record")
        .arg(&record)
        .spawn()
        .unwrap();
    let mut conn = server.next_conn().await;
    let hello = conn.handshake(plain_settings()).await;
    assert_eq!(hello.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(hello.device.model, "SimulatedPhone");
    for id in [1, 2] {
        conn.send(&assign(message_task(id)));
        assert_eq!(conn.recv().await, AgentMessage::Accepted { task_id: id });
        match conn.recv_skipping_progress().await {
            AgentMessage::Finished(report) => {
                assert_eq!((report.task_id, report.outcome), (id, Outcome::Succeeded));
            }
            other => panic!("expected finished, got {other:?}"),
        }
        conn.send(&ServerMessage::Ack { task_id: id });
    }
    // Heartbeats flow at the interval asked for.
    assert!(matches!(
        conn.recv_any().await,
        AgentMessage::Heartbeat { .. }
    ));
    let sent = SimulatedPhone::read_record_file(&record).unwrap();
    let ids: Vec<_> = sent.iter().map(|record| record.task_id).collect();
    assert_eq!(ids, vec![1, 2]);

    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    conn.closed().await;
    let (code, _, stderr) = finish(child).await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test]
async fn run_with_a_revoked_token_exits_non_zero_and_says_why() {
    let server = FakeServer::start().await;
    server.revoke();
    let dir = tempfile::tempdir().unwrap();
    server.credentials().save(dir.path()).unwrap();
    let child = agent()
        .arg("run")
        .arg("--state-dir")
        .arg(dir.path())
        .spawn()
        .unwrap();
    let (code, _, stderr) = finish(child).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("revoked"), "{stderr}");
    assert!(stderr.contains("youmi-agent bind"), "{stderr}");
    assert_eq!(server.attempts(), 1);
}
