//! Log upload (seed 7.1) with a real in-process agent: an admin asks, the
//! agent packs its log and the evidence of failed steps and uploads them,
//! and the admin lists and downloads the archive, while the agent's queue
//! goes on running tasks.

use std::time::Duration;

use youmi_agent::logs::archive;
use youmi_agent::logs::{self, LogLimits, RotatingFile};
use youmi_protocol::api::{DeviceLogState, LogRequestOutcome};
use youmi_protocol::TaskState;
use youmi_tests::api::eventually;
use youmi_tests::payloads::message;
use youmi_tests::{AgentSpec, TestApp};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_uploads_its_log_and_evidence_which_admins_download() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let spec = AgentSpec {
        step_latency: Duration::from_millis(50),
        ..AgentSpec::default()
    };
    let agent = app.bind_agent_with(account.id, spec).await;
    let device_id = agent.device_id().to_owned();

    // The agent's log, as the binary's log layer writes it, and the evidence
    // of a failed step, where the flow engine keeps it.
    let mut log = RotatingFile::open(&logs::log_dir(&agent.state_dir), LogLimits::default())
        .expect("the agent's log");
    log.append(b"2026-12-07T10:00:00Z  WARN agent: task 41 failed: unexpected_dialog\n")
        .unwrap();
    let evidence = agent.state_dir.join("evidence").join("41");
    std::fs::create_dir_all(&evidence).unwrap();
    std::fs::write(evidence.join("ui.xml"), "<hierarchy rotation=\"0\"/>").unwrap();

    // A task runs meanwhile; the upload does not wait for it, nor it for the upload.
    let task = app.submit(&message(account.id)).await;
    let answer = app.request_logs(&[&device_id]).await;
    assert_eq!(answer.affected, 1);
    assert_eq!(answer.devices[0].result, LogRequestOutcome::Requested);
    let log_id = answer.devices[0].log_id.expect("a log entry");

    let entry = eventually("the upload", WAIT, || async {
        let page = app.device_logs(&device_id).await;
        page.items
            .into_iter()
            .find(|l| l.id == log_id && l.state == DeviceLogState::Uploaded)
    })
    .await;
    assert_eq!(entry.device_id, device_id);
    assert_eq!(entry.operator_account_id, account.id);
    let (disposition, bytes) = app.download_log(log_id).await;
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert_eq!(Some(bytes.len() as u64), entry.size_bytes);

    let files = archive::read(&bytes).expect("a .tar.gz");
    let file = |name: &str| {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, content)| String::from_utf8_lossy(content).into_owned())
            .unwrap_or_else(|| panic!("{name} is not in the archive: {files:?}"))
    };
    assert!(file("logs/agent.log").contains("task 41 failed: unexpected_dialog"));
    assert_eq!(file("evidence/41/ui.xml"), "<hierarchy rotation=\"0\"/>");
    assert!(file("manifest.txt").contains("evidence/41/ui.xml"));

    assert_eq!(
        app.wait_terminal(task.id, WAIT).await.state,
        TaskState::Succeeded
    );
    app.finish().await;
}
