//! The phone's own state (issue 11, section 5): do-not-disturb goes back to
//! what the phone had even after a restore failed, and the agent selects
//! ADBKeyBoard again when someone switched keyboards between two tasks.

use std::time::Duration;

use serde_json::json;
use youmi_agent::adb::AdbConfig;
use youmi_phone_sim::{Fault, SimConfig, ADB_KEYBOARD_IME};
use youmi_protocol::{TaskKind, TaskState};
use youmi_tests::phones::{adb_server, PhoneAgent, Route};
use youmi_tests::TestApp;

const DEADLINE: Duration = Duration::from_secs(90);

fn sim(serial: &str) -> SimConfig {
    SimConfig {
        serial: serial.to_owned(),
        ..SimConfig::default()
    }
}

/// Short command deadlines, so a scripted hang ends in seconds.
fn impatient() -> AdbConfig {
    AdbConfig {
        command_timeout: Duration::from_secs(2),
        dump_timeout: Duration::from_secs(15),
        transfer_timeout: Duration::from_secs(30),
        ..AdbConfig::default()
    }
}

fn hello(name: &str) -> serde_json::Value {
    json!({ "to": { "name": name }, "items": [{ "type": "text", "text": "您好" }] })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_disturb_goes_back_to_the_phones_own_state_after_a_failed_restore() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let p = PhoneAgent::start(&app, Route::Server(&adb), sim("E2E-DND"), impatient()).await;
    assert_eq!(p.sim.zen_mode(), 0, "the phone's own state: off");
    // The restore after the first task never answers.
    p.sim.set_fault(Fault::Hang {
        pattern: "set_dnd off".into(),
        times: 1,
    });
    let first = p
        .run(&app, TaskKind::SendMessage, hello("张三"), DEADLINE)
        .await;
    assert_eq!(first.state, TaskState::Succeeded, "{first:?}");
    assert_ne!(p.sim.zen_mode(), 0, "the restore failed: still on");
    // The next task restores the phone's own state after it, not the state
    // the failed restore left behind.
    let second = p
        .run(&app, TaskKind::SendMessage, hello("李四"), DEADLINE)
        .await;
    assert_eq!(second.state, TaskState::Succeeded, "{second:?}");
    assert_eq!(p.sim.zen_mode(), 0, "back to off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_selects_adbkeyboard_again_when_someone_switched_keyboards() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let p = PhoneAgent::start(&app, Route::Server(&adb), sim("E2E-IME"), impatient()).await;
    let first = p
        .run(&app, TaskKind::SendMessage, hello("张三"), DEADLINE)
        .await;
    assert_eq!(first.state, TaskState::Succeeded, "{first:?}");
    for name in ["李四", "王五"] {
        p.sim.switch_to_stock_keyboard();
        let task = p
            .run(&app, TaskKind::SendMessage, hello(name), DEADLINE)
            .await;
        assert_eq!(task.state, TaskState::Succeeded, "{task:?}");
        assert_eq!(task.attempt, 1, "no failed attempt first: {task:?}");
        assert_eq!(p.sim.input_method(), ADB_KEYBOARD_IME);
    }
}
