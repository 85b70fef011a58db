//! Real phones over ADB, as the command line and fleet mode use them: the
//! clear errors before anything connects (no adb server, a phone that is not
//! listed or not ready, a bad flows directory), and a fleet on a private adb
//! server that starts a session per bound phone, lets a phone go when it leaves
//! the list or stops answering, and takes it back when it returns. The adb-server test is skipped,
//! with a message, when `adb` is not on PATH.

mod support;

use std::net::{SocketAddrV4, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use youmi_agent::adb::AdbConfig;
use youmi_agent::fleet::{self, FleetOptions, SetupError};
use youmi_agent::flow::FlowSet;
use youmi_agent::Credentials;
use youmi_phone_sim::adb_server::{adb_on_path, AdbServer};
use youmi_phone_sim::{Fault, SimConfig, Simulator};
use youmi_protocol::AgentMessage;

/// A fake adb server that answers every `host:devices` with `body`.
async fn fake_adb_server(body: &'static str) -> (SocketAddrV4, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = match listener.local_addr().unwrap() {
        std::net::SocketAddr::V4(addr) => addr,
        other => panic!("not IPv4: {other}"),
    };
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4 + 12];
            if socket.read_exact(&mut request).await.is_err() {
                continue;
            }
            assert_eq!(&request, b"000chost:devices");
            let answer = format!("OKAY{:04x}{body}", body.len());
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    (addr, task)
}

/// An address where nothing listens (a port that was free a moment ago).
fn dead_address() -> SocketAddrV4 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    match listener.local_addr().unwrap() {
        std::net::SocketAddr::V4(addr) => addr,
        other => panic!("not IPv4: {other}"),
    }
}

#[tokio::test]
async fn phones_are_selected_with_errors_that_say_what_to_do() {
    let (adb, _server) =
        fake_adb_server("R58M1\tdevice\n127.0.0.1:6001\tunauthorized\nXYZ\toffline\n").await;
    assert_eq!(
        fleet::select_phone(adb, Some("R58M1")).await.unwrap(),
        "R58M1"
    );
    let error = fleet::select_phone(adb, Some("NOPE")).await.unwrap_err();
    assert!(matches!(error, SetupError::NotListed { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("does not list phone NOPE")
            && text.contains("R58M1 (device), 127.0.0.1:6001 (unauthorized), XYZ (offline)"),
        "{text}"
    );
    let text = fleet::select_phone(adb, Some("127.0.0.1:6001"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("`unauthorized`") && text.contains("Allow USB debugging"),
        "{text}"
    );
    let text = fleet::select_phone(adb, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("several phones") && text.contains("--serial"),
        "{text}"
    );

    let (one, _server) = fake_adb_server("R58M1\tdevice\n").await;
    assert_eq!(fleet::select_phone(one, None).await.unwrap(), "R58M1");
    let (none, _server) = fake_adb_server("").await;
    let text = fleet::select_phone(none, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("lists no phone"), "{text}");

    let dead = dead_address();
    let error = fleet::select_phone(dead, Some("R58M1")).await.unwrap_err();
    assert!(matches!(error, SetupError::AdbServer { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains(&format!("cannot reach the adb server at {dead}"))
            && text.contains("adb start-server"),
        "{text}"
    );
}

#[test]
fn flows_directories_merge_over_the_builtin_flows_or_say_what_is_wrong() {
    let builtin = fleet::load_flows(None).unwrap();
    assert_eq!(
        builtin.files().len(),
        FlowSet::builtin().unwrap().files().len()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wecom-4.2.toml"),
        "format = 1\napp = \"com.tencent.wework\"\nversions = [\"4.2.*\"]\n[flows.delete_chat]\nsteps = [{ do = \"back\" }]\n",
    )
    .unwrap();
    let merged = fleet::load_flows(Some(dir.path())).unwrap();
    assert!(merged
        .for_version(youmi_agent::flow::WECOM_PACKAGE, "4.2.3")
        .is_some());
    assert!(merged
        .for_version(youmi_agent::flow::WECOM_PACKAGE, "4.1.30")
        .is_some());
    let empty = tempfile::tempdir().unwrap();
    let error = fleet::load_flows(Some(empty.path()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("has no flow files"), "{error}");
}

fn agent() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_youmi-agent"));
    for (key, _) in std::env::vars() {
        if key.starts_with("YOUMI_AGENT_") {
            command.env_remove(key);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs the agent binary with `args` to its end; its exit code and stderr.
async fn agent_fails(args: &[&str], state_dir: &Path) -> String {
    let output = tokio::time::timeout(
        WAIT,
        agent()
            .args(args)
            .arg("--state-dir")
            .arg(state_dir)
            .output(),
    )
    .await
    .expect("the agent exits")
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn run_on_adb_explains_what_is_missing_before_it_connects() {
    let state = tempfile::tempdir().unwrap();
    Credentials {
        server_url: "http://127.0.0.1:9".to_owned(),
        device_id: "dev-1".to_owned(),
        token: "token".to_owned(),
        operator_account_id: 1,
    }
    .save(state.path())
    .unwrap();

    let dead = dead_address().to_string();
    let stderr = agent_fails(
        &["run", "--executor", "adb", "--adb-server", &dead],
        state.path(),
    )
    .await;
    assert!(
        stderr.contains(&format!("cannot reach the adb server at {dead}")),
        "{stderr}"
    );

    let (adb, _server) = fake_adb_server("R58M1\tdevice\n").await;
    let adb = adb.to_string();
    let stderr = agent_fails(
        &[
            "run",
            "--executor",
            "adb",
            "--adb-server",
            &adb,
            "--serial",
            "OTHER",
        ],
        state.path(),
    )
    .await;
    assert!(
        stderr.contains("does not list phone OTHER (it lists: R58M1 (device))"),
        "{stderr}"
    );

    let flows = tempfile::tempdir().unwrap();
    std::fs::write(flows.path().join("broken.toml"), "format = 1\napp = ").unwrap();
    let flows_dir = flows.path().display().to_string();
    let stderr = agent_fails(
        &[
            "run",
            "--executor",
            "adb",
            "--adb-server",
            &adb,
            "--flows-dir",
            &flows_dir,
        ],
        state.path(),
    )
    .await;
    assert!(
        stderr.contains("cannot load the flows") && stderr.contains("broken.toml"),
        "{stderr}"
    );

    // The fleet checks the same before it starts.
    let fleet_dir = tempfile::tempdir().unwrap();
    let output = tokio::time::timeout(
        WAIT,
        agent()
            .args(["fleet", "--adb-server", &dead, "--fleet-dir"])
            .arg(fleet_dir.path())
            .output(),
    )
    .await
    .expect("the fleet exits")
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot reach the adb server at {dead}")),
        "{stderr}"
    );

    let stderr = agent_fails(
        &[
            "bind",
            "--fleet-dir",
            &fleet_dir.path().display().to_string(),
            "--serial",
            "OTHER",
            "--adb-server",
            &adb,
            "--server",
            "http://127.0.0.1:9",
            "--code",
            "ABCD2345",
        ],
        state.path(),
    )
    .await;
    assert!(
        stderr.contains("cannot bind phone OTHER") && stderr.contains("does not list phone OTHER"),
        "{stderr}"
    );
}

/// The hello of the next connection.
async fn hello_of(conn: &mut FakeConn) -> youmi_protocol::DeviceInfo {
    match conn.recv().await {
        AgentMessage::Hello { device, .. } => device,
        other => panic!("expected hello, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_runs_the_bound_phones_and_follows_the_list() {
    if !adb_on_path() {
        return;
    }
    init_logs();
    let mut server = FakeServer::start().await;
    let adb = AdbServer::start().await;
    let bound = Simulator::start(SimConfig {
        serial: "FLEETBOUND".to_owned(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let unbound = Simulator::start(SimConfig {
        serial: "FLEETLOOSE".to_owned(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let bound_serial = bound.addr().to_string();
    adb.connect(&bound_serial).await;
    adb.connect(&unbound.addr().to_string()).await;

    let fleet_dir = tempfile::tempdir().unwrap();
    server
        .credentials()
        .save(&fleet::phone_state_dir(fleet_dir.path(), &bound_serial))
        .unwrap();

    let mut options = FleetOptions::new(fleet_dir.path().to_owned(), FlowSet::builtin().unwrap());
    options.adb_server = adb.addr();
    options.scan_interval = ms(200);
    options.stop_grace = ms(5000);
    options.adb = AdbConfig {
        probe_interval: ms(200),
        probe_timeout: ms(1000),
        command_timeout: Duration::from_secs(5),
        ..AdbConfig::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let fleet = tokio::spawn(fleet::run(options, async move {
        let _ = stop_rx.await;
    }));

    // Only the bound phone connects, described by what it says about itself.
    let mut conn = server.next_conn().await;
    let device = hello_of(&mut conn).await;
    assert_eq!(
        (device.serial.as_str(), device.model.as_str()),
        ("FLEETBOUND", "YoumiSim")
    );
    conn.welcome(plain_settings());

    // Unplugged, its session stops; plugged in again, a new one starts.
    adb.ok(&["disconnect", &bound_serial]).await;
    conn.closed().await;
    adb.connect(&bound_serial).await;
    let mut conn = server.next_conn().await;
    assert_eq!(hello_of(&mut conn).await.serial, "FLEETBOUND");
    conn.welcome(plain_settings());

    // Listed but no longer answering the probe (only the probe's `echo; echo`
    // hangs): its session stops; answering again, it gets a new one.
    bound.set_fault(Fault::Hang {
        pattern: "echo; echo".into(),
        times: 1_000_000,
    });
    conn.closed().await;
    bound.clear_faults();
    let mut conn = server.next_conn().await;
    assert_eq!(hello_of(&mut conn).await.serial, "FLEETBOUND");
    conn.welcome(plain_settings());
    assert_eq!(server.attempts(), 3, "the unbound phone never connected");

    // Stopping the fleet closes the session.
    stop_tx.send(()).unwrap();
    within_wait("the fleet stops", fleet)
        .await
        .unwrap()
        .unwrap();
    conn.closed().await;
    assert_eq!(server.attempts(), 3);
    drop(adb);
    bound.shutdown().await;
    unbound.shutdown().await;
}

async fn within_wait<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {WAIT:?}"))
}
