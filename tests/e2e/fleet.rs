//! Fleet mode end to end: the real `youmi-agent fleet` binary drives 50 phone
//! simulators through a private adb server, each phone bound to its own
//! operator account with the real `youmi-agent bind --fleet-dir`, against the
//! real server. Every account's message is sent by its own phone; a phone
//! unplugged goes offline and its next task waits (and runs when it is back);
//! a phone plugged in at run time is picked up; SIGTERM takes every phone
//! offline and a new fleet brings them back; a phone that hangs does not hold
//! another one's task back. Skipped, with a message, without `adb`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;
use youmi_agent::fleet;
use youmi_phone_sim::{Fault, SentEvent, SimConfig, SimHandle, Simulator};
use youmi_protocol::api::{DeviceLogState, SubmitTask};
use youmi_protocol::{OperatorAccountId, TaskId, TaskKind, TaskState};
use youmi_tests::phones::{adb_on_path, AdbServer};
use youmi_tests::process::ChildGuard;
use youmi_tests::{eventually, TestApp};

use crate::AGENT_EXE;

/// How many phones the fleet starts with.
const PHONES: usize = 50;
/// How many `adb connect` and `youmi-agent bind` runs go at once: enough to
/// keep both cores busy, few enough not to drown them.
const AT_ONCE: usize = 10;
/// The longest anything that should happen may take before it counts as a hang.
const DEADLINE: Duration = Duration::from_secs(120);

/// One phone of the fleet: its simulator and the account it is bound to.
struct FleetPhone {
    /// The number it was started with; its hardware serial is `FLEET` and this.
    number: usize,
    /// The simulated phone.
    sim: SimHandle,
    /// Its serial on the adb server (`127.0.0.1:PORT`).
    serial: String,
    /// The account bound to it.
    account: OperatorAccountId,
    /// The device id the bind gave.
    device_id: String,
}

/// A simulator whose hardware serial is `hardware_serial`.
async fn simulator(hardware_serial: String) -> SimHandle {
    Simulator::start(SimConfig {
        serial: hardware_serial,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts")
}

/// The agent binary with nothing of the caller's `YOUMI_*` settings.
fn agent_command() -> Command {
    let mut command = Command::new(AGENT_EXE);
    for (key, _) in std::env::vars() {
        if key.starts_with("YOUMI_") {
            command.env_remove(key);
        }
    }
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "info");
    }
    command.stdin(Stdio::null());
    command
}

/// Binds the phone `serial` into `fleet_dir` for a new account, with the real
/// `youmi-agent bind --fleet-dir`; returns the account and the device id.
async fn bind_into_fleet(
    app: &TestApp,
    adb: &AdbServer,
    fleet_dir: &Path,
    serial: &str,
) -> (OperatorAccountId, String) {
    let account = app.create_account().await.id;
    let code = app.bind_code(account).await;
    let mut command = tokio::process::Command::from(agent_command());
    command
        .arg("bind")
        .arg("--fleet-dir")
        .arg(fleet_dir)
        .args(["--serial", serial])
        .args(["--adb-server", &adb.addr().to_string()])
        .args(["--server", &app.url()])
        .args(["--code", &code.code])
        .kill_on_drop(true);
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .expect("youmi-agent bind finishes")
        .expect("youmi-agent bind runs");
    assert!(
        output.status.success(),
        "youmi-agent bind --fleet-dir for {serial}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("phone: YoumiSim"), "{stdout}");
    let credentials = youmi_agent::Credentials::load(&fleet::phone_state_dir(fleet_dir, serial))
        .expect("the bind saved the phone's credentials in its own directory");
    assert_eq!(credentials.operator_account_id, account);
    (account, credentials.device_id)
}

/// Starts `count` simulators from number `first` on, connects them to the adb
/// server and binds each into the fleet for an account of its own.
async fn fleet_phones(
    app: &TestApp,
    adb: &AdbServer,
    fleet_dir: &Path,
    first: usize,
    count: usize,
) -> Vec<FleetPhone> {
    let mut phones = Vec::new();
    let numbers: Vec<usize> = (first..first + count).collect();
    for batch in numbers.chunks(AT_ONCE) {
        let started = join_all(batch.iter().map(|n| async move {
            let sim = simulator(format!("FLEET{n:03}")).await;
            let serial = sim.addr().to_string();
            adb.connect(&serial).await;
            let (account, device_id) = bind_into_fleet(app, adb, fleet_dir, &serial).await;
            FleetPhone {
                number: *n,
                sim,
                serial,
                account,
                device_id,
            }
        }))
        .await;
        phones.extend(started);
    }
    phones
}

/// The text each phone's message carries.
fn text_for(phone: &FleetPhone, round: u32) -> String {
    format!("fleet {} round {round}", phone.sim.addr().port())
}

/// Submits a `send_message` to 张三 from `phone`'s account.
async fn send(app: &TestApp, phone: &FleetPhone, round: u32) -> TaskId {
    app.submit(&SubmitTask {
        operator_account_id: phone.account,
        kind: TaskKind::SendMessage,
        payload: json!({
            "to": {"name": "张三"},
            "items": [{"type": "text", "text": text_for(phone, round)}],
        }),
        priority: None,
        not_before: None,
        not_after: None,
    })
    .await
    .id
}

/// Waits for the task to succeed; panics if it ends otherwise.
async fn succeeds(app: &TestApp, task: TaskId) {
    let view = app.wait_terminal(task, DEADLINE).await;
    assert_eq!(view.state, TaskState::Succeeded, "{view:?}");
}

/// What `phone` sent, as the simulator recorded it.
fn messages(phone: &FleetPhone) -> Vec<String> {
    phone
        .sim
        .sent()
        .into_iter()
        .map(|event| match event {
            SentEvent::Message { to, text } => {
                assert_eq!(to, "张三");
                text
            }
            other => panic!("only messages were sent, not {other:?}"),
        })
        .collect()
}

/// Waits until every device of `phones` is online (or, with `false`, offline).
async fn wait_online(app: &TestApp, phones: &[&FleetPhone], online: bool) {
    youmi_tests::eventually(
        &format!("{} phones online: {online}", phones.len()),
        DEADLINE,
        || async {
            let devices = app.devices().await;
            phones
                .iter()
                .all(|phone| {
                    devices
                        .iter()
                        .any(|d| d.device_id == phone.device_id && d.online == online)
                })
                .then_some(())
        },
    )
    .await;
}

/// The real `youmi-agent fleet`, scanning every second.
fn start_fleet(adb: &AdbServer, fleet_dir: &PathBuf) -> ChildGuard {
    let mut command = agent_command();
    command
        .arg("fleet")
        .arg("--fleet-dir")
        .arg(fleet_dir)
        .args(["--adb-server", &adb.addr().to_string()])
        .args(["--scan-secs", "1", "--heartbeat-secs", "2"]);
    ChildGuard::spawn("youmi-agent fleet", command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fleet_process_drives_fifty_phones_and_follows_the_hub() {
    if !adb_on_path() {
        return;
    }
    let app = TestApp::spawn().await;
    let adb = AdbServer::start().await;
    let fleet_dir = app.db().dir().join("fleet");
    let phones = fleet_phones(&app, &adb, &fleet_dir, 0, PHONES).await;
    phones[0].sim.set_battery_level(42);
    let mut fleet = start_fleet(&adb, &fleet_dir);
    wait_online(&app, &phones.iter().collect::<Vec<_>>(), true).await;

    // The server knows each phone by what it said about itself through adb.
    let devices = app.devices().await;
    for phone in &phones {
        let view = devices
            .iter()
            .find(|d| d.device_id == phone.device_id)
            .expect("every bound phone is listed");
        assert_eq!(view.device.model, "YoumiSim");
        assert_eq!(view.device.serial, format!("FLEET{:03}", phone.number));
    }
    // Heartbeats carry each phone's battery.
    app.wait_device(
        &phones[0].device_id,
        "the battery from the phone",
        DEADLINE,
        |d| d.battery == Some(42),
    )
    .await;

    // One message per account, each sent by its own phone.
    let tasks = join_all(phones.iter().map(|phone| send(&app, phone, 1))).await;
    for task in &tasks {
        succeeds(&app, *task).await;
    }
    for phone in &phones {
        assert_eq!(messages(phone), vec![text_for(phone, 1)]);
    }

    // Each phone's log is its own: an upload from one phone holds its lines,
    // not another's.
    let (first, second) = (&phones[0], &phones[1]);
    let log_id = app.request_logs(&[&first.device_id]).await.devices[0]
        .log_id
        .expect("an online phone is asked");
    eventually("the fleet phone's upload", DEADLINE, || async {
        let page = app.device_logs(&first.device_id).await;
        page.items
            .into_iter()
            .find(|l| l.id == log_id && l.state == DeviceLogState::Uploaded)
    })
    .await;
    let (_, bytes) = app.download_log(log_id).await;
    let files = youmi_agent::logs::archive::read(&bytes).expect("a .tar.gz");
    let (_, log) = files
        .iter()
        .find(|(name, _)| name == "logs/agent.log")
        .expect("the phone's log is in the archive");
    let log = String::from_utf8_lossy(log);
    assert!(log.contains(&first.serial), "its own lines: {log}");
    assert!(
        !log.contains(&second.serial),
        "no other phone's lines: {log}"
    );

    // Unplugged: offline, and its next task waits.
    let unplugged = &phones[1];
    adb.adb(&["disconnect", &unplugged.serial]).await;
    wait_online(&app, &[unplugged], false).await;
    let waiting = send(&app, unplugged, 2).await;

    // Plugged in at run time and bound while the fleet runs: picked up.
    let added = fleet_phones(&app, &adb, &fleet_dir, PHONES, 1).await;
    let added = &added[0];
    wait_online(&app, &[added], true).await;
    succeeds(&app, send(&app, added, 1).await).await;
    assert_eq!(messages(added), vec![text_for(added, 1)]);

    // All the while the unplugged phone's task waited; plugged in again, it runs.
    assert_eq!(app.task(waiting).await.state, TaskState::Queued);
    assert_eq!(messages(unplugged), vec![text_for(unplugged, 1)]);
    adb.connect(&unplugged.serial).await;
    succeeds(&app, waiting).await;
    assert_eq!(
        messages(unplugged),
        vec![text_for(unplugged, 1), text_for(unplugged, 2)]
    );

    // SIGTERM stops every session: every phone goes offline. A new fleet on
    // the same directory brings them all back.
    fleet.terminate();
    let status = fleet.wait_exit(DEADLINE).await;
    assert!(status.success(), "a graceful stop exits 0, not {status}");
    let mut everyone: Vec<&FleetPhone> = phones.iter().collect();
    everyone.push(added);
    wait_online(&app, &everyone, false).await;
    let _fleet = start_fleet(&adb, &fleet_dir);
    wait_online(&app, &everyone, true).await;

    // A phone that hangs on every screen read does not hold another back.
    let (stuck, other) = (&phones[2], &phones[3]);
    stuck.sim.set_fault(Fault::Hang {
        pattern: "uiautomator".into(),
        times: 1000,
    });
    let stuck_task = send(&app, stuck, 2).await;
    app.wait_task_state(stuck_task, TaskState::Running, DEADLINE)
        .await;
    succeeds(&app, send(&app, other, 2).await).await;
    assert_eq!(
        messages(other),
        vec![text_for(other, 1), text_for(other, 2)]
    );
    assert_ne!(app.task(stuck_task).await.state, TaskState::Succeeded);
    assert_eq!(messages(stuck), vec![text_for(stuck, 1)]);
}
