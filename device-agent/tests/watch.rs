//! The agent of a real phone ([`PhoneAgent`]) against the phone simulator over
//! TCP and a fake server: the heartbeat carries the phone's state (and still
//! goes out when the phone hangs), a double press of volume-down toggles the
//! queue while `volume_key_toggle` is on, incoming calls are hung up while
//! `auto_hang_up` is on, both following the settings the server pushes, and
//! the countdown and do-not-disturb work on the phone.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::*;
use youmi_agent::adb::{AdbConfig, AdbPhone};
use youmi_agent::fleet::{PhoneAgent, PhoneAgentConfig};
use youmi_agent::flow::{FlowExecutor, FlowOptions, FlowSet};
use youmi_agent::phone::{CallState, Phone};
use youmi_agent::watch::{WatchOptions, VOLUME_DOWN, VOLUME_KEY_REASON};
use youmi_agent::Executor;
use youmi_phone_sim::adb_server::throwaway_key_in;
use youmi_phone_sim::{Fault, SentEvent, SimConfig, SimHandle, Simulator, WECOM_PACKAGE};
use youmi_protocol::{
    AgentMessage, AgentSettings, AssignedTask, CallStatus, Outcome, ServerMessage, TaskKind,
};

/// Deadlines short enough for a hang to end soon, long enough for a busy machine.
fn quick() -> AdbConfig {
    AdbConfig {
        command_timeout: Duration::from_secs(5),
        dump_timeout: Duration::from_secs(5),
        dump_retry_pause: Duration::from_millis(20),
        probe_interval: Duration::from_millis(100),
        probe_timeout: Duration::from_secs(2),
        ..AdbConfig::default()
    }
}

/// Awaits `future`, failing the test if it takes longer than [`WAIT`].
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {WAIT:?}"))
}

struct Rig {
    sim: SimHandle,
    phone: Arc<AdbPhone>,
    server: FakeServer,
    dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    rig_with(quick()).await
}

async fn rig_with(config: AdbConfig) -> Rig {
    init_logs();
    let sim = Simulator::start(SimConfig {
        serial: "WATCHSIM01".to_owned(),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let phone = AdbPhone::over_tcp(sim.addr(), &throwaway_key_in(dir.path()).unwrap(), config)
        .await
        .expect("key accepted");
    Rig {
        sim,
        phone: Arc::new(phone),
        server: FakeServer::start().await,
        dir,
    }
}

fn settings(change: impl FnOnce(&mut AgentSettings)) -> AgentSettings {
    let mut settings = AgentSettings {
        dnd_while_running: false,
        ..AgentSettings::default()
    };
    change(&mut settings);
    settings
}

/// The next `queue_changed`, skipping heartbeats; `None` if nothing else
/// arrives within `wait`.
async fn queue_change(conn: &mut FakeConn, wait: Duration) -> Option<(bool, String)> {
    match tokio::time::timeout(wait, conn.recv()).await {
        Ok(AgentMessage::QueueChanged { paused, reason }) => Some((paused, reason)),
        Ok(other) => panic!("expected queue_changed, got {other:?}"),
        Err(_) => None,
    }
}

/// Presses volume-down twice in quick succession until the agent reports a
/// queue change: the key stream may not be open yet when the first pair comes.
async fn double_press_until_toggled(sim: &SimHandle, conn: &mut FakeConn) -> (bool, String) {
    within("a double press toggles the queue", async {
        loop {
            sim.press_hardware_key(VOLUME_DOWN);
            sim.press_hardware_key(VOLUME_DOWN);
            if let Some(change) = queue_change(conn, Duration::from_secs(3)).await {
                return change;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_side_settings_follow_the_server() {
    let Rig {
        sim,
        phone,
        mut server,
        dir,
    } = rig().await;
    sim.set_battery_level(42);
    let device = within("device_info", phone.device_info()).await.unwrap();
    let mut config = PhoneAgentConfig::new(FlowSet::builtin().unwrap());
    config.heartbeat_interval = ms(300);
    config.watch = WatchOptions {
        double_press_window: ms(600),
        call_poll: ms(100),
        settings_poll: ms(50),
    };
    let agent = PhoneAgent::spawn(
        phone.clone(),
        device,
        server.credentials(),
        &dir.path().join("state"),
        &config,
    )
    .unwrap();
    let mut conn = server.next_conn().await;
    let hello = conn
        .handshake(settings(|s| s.volume_key_toggle = true))
        .await;
    assert_eq!(hello.device.model, "YoumiSim");
    assert_eq!(hello.device.serial, "WATCHSIM01");

    // The heartbeat carries the phone's state.
    within("a heartbeat with the phone's state", async {
        loop {
            if let AgentMessage::Heartbeat {
                battery,
                charging,
                screen_on,
                foreground_app,
                call,
                wecom_version,
                dnd,
            } = conn.recv_any().await
            {
                if battery == Some(42) {
                    assert_eq!(charging, Some(true));
                    assert_eq!(screen_on, Some(true));
                    assert!(foreground_app.is_some());
                    assert_eq!(call, Some(CallStatus::Idle));
                    // What the devices page shows beside it.
                    assert!(wecom_version.is_some_and(|v| !v.is_empty()));
                    assert_eq!(dnd, Some(false));
                    return;
                }
            }
        }
    })
    .await;

    // A double press pauses the queue, another resumes it; the server is told.
    assert_eq!(
        double_press_until_toggled(&sim, &mut conn).await,
        (true, VOLUME_KEY_REASON.to_owned())
    );
    assert!(agent.handle().status().queue_paused);
    sim.press_hardware_key(VOLUME_DOWN);
    sim.press_hardware_key(VOLUME_DOWN);
    assert_eq!(
        queue_change(&mut conn, WAIT).await,
        Some((false, VOLUME_KEY_REASON.to_owned()))
    );
    assert!(!agent.handle().status().queue_paused);

    // Two presses far apart are not a double press; nor is volume-up.
    sim.press_hardware_key(VOLUME_DOWN);
    tokio::time::sleep(ms(1500)).await;
    sim.press_hardware_key(VOLUME_DOWN);
    sim.press_hardware_key(24);
    sim.press_hardware_key(24);
    conn.silent_for(ms(1000)).await;
    assert!(!agent.handle().status().queue_paused);

    // The server turns the volume key off and auto hang-up on.
    let pushed = settings(|s| s.auto_hang_up = true);
    conn.send(&ServerMessage::Settings { settings: pushed });
    eventually("the new settings are in force", || {
        agent.handle().status().settings == pushed
    })
    .await;
    sim.ring("13800001234");
    within("the call is hung up", async {
        while phone.call_state().await.unwrap() != CallState::Idle {
            tokio::time::sleep(ms(20)).await;
        }
    })
    .await;
    // Give the key watcher time to let go of the stream, then press.
    tokio::time::sleep(ms(300)).await;
    sim.press_hardware_key(VOLUME_DOWN);
    sim.press_hardware_key(VOLUME_DOWN);
    conn.silent_for(ms(1000)).await;
    assert!(!agent.handle().status().queue_paused);

    // With auto hang-up off, a call keeps ringing.
    let pushed = settings(|_| {});
    conn.send(&ServerMessage::Settings { settings: pushed });
    eventually("the new settings are in force", || {
        agent.handle().status().settings == pushed
    })
    .await;
    sim.ring("13800005678");
    // The heartbeat says it rings, without the number.
    within("a heartbeat that shows the call", async {
        loop {
            if let AgentMessage::Heartbeat { call, .. } = conn.recv_any().await {
                if call == Some(CallStatus::Ringing) {
                    return;
                }
            }
        }
    })
    .await;
    assert_eq!(
        phone.call_state().await.unwrap(),
        CallState::Ringing(Some("13800005678".into())),
        "still ringing: auto hang-up is off"
    );
    phone.end_call().await.unwrap();
    within("a heartbeat that shows the call over", async {
        loop {
            if let AgentMessage::Heartbeat { call, .. } = conn.recv_any().await {
                if call == Some(CallStatus::Idle) {
                    return;
                }
            }
        }
    })
    .await;

    within("the agent stops", agent.stop(ms(5000))).await;
    conn.closed().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_phone_does_not_hold_the_heartbeat_back() {
    let Rig {
        sim,
        phone,
        mut server,
        dir,
    } = rig_with(AdbConfig {
        // The phone's own deadline is past the test's: only the heartbeat's
        // short one can get a heartbeat out while the phone hangs.
        command_timeout: WAIT * 2,
        ..quick()
    })
    .await;
    sim.set_battery_level(57);
    let device = within("device_info", phone.device_info()).await.unwrap();
    let mut config = PhoneAgentConfig::new(FlowSet::builtin().unwrap());
    config.heartbeat_interval = ms(300);
    let agent = PhoneAgent::spawn(
        phone.clone(),
        device,
        server.credentials(),
        dir.path(),
        &config,
    )
    .unwrap();
    let mut conn = server.next_conn().await;
    conn.handshake(settings(|_| {})).await;

    // The battery never answers once: that heartbeat goes without the state,
    // and the next ones have it again.
    sim.set_fault(Fault::Hang {
        pattern: "dumpsys battery".into(),
        times: 1,
    });
    let mut without_state = 0;
    within("heartbeats through a hang", async {
        loop {
            if let AgentMessage::Heartbeat { battery, .. } = conn.recv_any().await {
                match battery {
                    None => without_state += 1,
                    Some(57) if without_state > 0 => return,
                    Some(_) => {}
                }
            }
        }
    })
    .await;
    assert!(without_state >= 1);
    within("the agent stops", agent.stop(ms(5000))).await;
    sim.shutdown().await;
}

fn message_to(id: i64, name: &str, text: &str) -> AssignedTask {
    AssignedTask {
        id,
        kind: TaskKind::SendMessage,
        payload: json!({"to": {"name": name}, "items": [{"type": "text", "text": text}]}),
        attempt: 1,
        not_after_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_countdown_and_do_not_disturb_work_on_the_phone() {
    let Rig {
        sim,
        phone,
        mut server,
        dir,
    } = rig().await;

    // What the runner calls, straight on the executor.
    let executor = FlowExecutor::new(
        phone.clone(),
        FlowSet::builtin().unwrap(),
        FlowOptions::default(),
    );
    within("the countdown", executor.show_countdown(10)).await;
    within(
        "a notification",
        phone.notify("优米将在 10 秒后开始操作这台手机，请勿触碰屏幕"),
    )
    .await
    .expect("the phone takes the countdown's notification");
    assert_eq!(
        within("dnd on", executor.set_do_not_disturb(true)).await,
        Ok(false)
    );
    assert_ne!(sim.zen_mode(), 0);
    assert_eq!(
        within("dnd off", executor.set_do_not_disturb(false)).await,
        Ok(true)
    );
    assert_eq!(sim.zen_mode(), 0);
    let status = within("status", executor.status()).await;
    assert_eq!(status.battery, Some(85));

    // A task with do-not-disturb: on while it runs, off again after.
    let device = within("device_info", phone.device_info()).await.unwrap();
    let agent = PhoneAgent::spawn(
        phone.clone(),
        device,
        server.credentials(),
        dir.path(),
        &PhoneAgentConfig::new(FlowSet::builtin().unwrap()),
    )
    .unwrap();
    let mut conn = server.next_conn().await;
    conn.handshake(AgentSettings {
        dnd_while_running: true,
        ..AgentSettings::default()
    })
    .await;
    conn.send(&assign(message_to(7, "张三", "勿扰中发送")));
    let mut zen_seen = false;
    let report = within("the task finishes", async {
        loop {
            zen_seen |= sim.zen_mode() != 0;
            let next = tokio::time::timeout(ms(10), conn.recv_skipping_progress()).await;
            if let Ok(AgentMessage::Finished(report)) = next {
                return report;
            }
        }
    })
    .await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert!(zen_seen, "do-not-disturb was on while the task ran");
    assert_eq!(sim.zen_mode(), 0, "and off again after");
    assert_eq!(
        sim.sent(),
        vec![SentEvent::Message {
            to: "张三".into(),
            text: "勿扰中发送".into()
        }]
    );
    let focus = phone.foreground_app().await.unwrap().unwrap();
    assert_eq!(focus.package, WECOM_PACKAGE);

    within("the agent stops", agent.stop(ms(5000))).await;
    sim.shutdown().await;
}
