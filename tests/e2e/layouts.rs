//! The built-in flows on the simulator's layout variants (issue 11, section
//! 4): a WeCom whose labels are visible text rather than content
//! descriptions (the flows match labels by either, and take the tab bar's
//! match over a title's), and one whose chat list is longer than the screen
//! (the flows scroll to a chat below the fold). Every task kind succeeds on
//! each, at the first attempt.

use std::time::Duration;

use serde_json::{json, Value};
use youmi_agent::adb::AdbConfig;
use youmi_phone_sim::{Labels, SimConfig};
use youmi_protocol::{TaskKind, TaskState};
use youmi_tests::phones::{adb_server, PhoneAgent, Route};
use youmi_tests::TestApp;

const DEADLINE: Duration = Duration::from_secs(90);

fn jpeg(tag: &str) -> Vec<u8> {
    [
        &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10][..],
        b"JFIF\0",
        tag.as_bytes(),
    ]
    .concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_kind_runs_when_labels_are_text() {
    every_task_kind_runs_on(SimConfig {
        serial: "E2E-LABELS-TEXT".to_owned(),
        labels: Labels::Text,
        ..SimConfig::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_kind_runs_when_the_chat_list_is_long_and_labels_are_text() {
    every_task_kind_runs_on(SimConfig {
        serial: "E2E-LONG-LIST-TEXT".to_owned(),
        labels: Labels::Text,
        filler_chats: 30,
        ..SimConfig::default()
    })
    .await;
}

async fn every_task_kind_runs_on(sim: SimConfig) {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let config = AdbConfig {
        command_timeout: Duration::from_secs(15),
        dump_timeout: Duration::from_secs(15),
        transfer_timeout: Duration::from_secs(30),
        ..AdbConfig::default()
    };
    let p = PhoneAgent::start(&app, Route::Server(&adb), sim, config).await;
    p.add_media("photo", &jpeg("a picture"));
    p.add_media("poster", &jpeg("a poster"));
    let tasks: Vec<(TaskKind, Value)> = vec![
        (
            TaskKind::SendMessage,
            json!({ "to": { "name": "张三" }, "items": [
                { "type": "text", "text": "你好" },
                { "type": "image", "media_id": "photo" },
            ] }),
        ),
        (
            TaskKind::MassSend,
            json!({ "recipients": [{ "name": "张三" }, { "name": "王五" }],
                    "items": [{ "type": "text", "text": "周末大促" }] }),
        ),
        (
            TaskKind::SmartMarketing,
            json!({ "flow_id": 7, "step": 1, "to": { "name": "李四" },
                    "items": [{ "type": "text", "text": "活动今晚结束" }] }),
        ),
        (
            TaskKind::MomentsPost,
            json!({ "text": "新品上市", "media_ids": ["poster"], "visible_to_tags": ["VIP"] }),
        ),
        (TaskKind::DeleteChat, json!({ "with": { "name": "李四" } })),
        (
            TaskKind::FriendAdd,
            json!({ "target": { "phone": "13800138000" }, "greeting": "你好", "remark": "王总", "tags": ["VIP"] }),
        ),
        (
            TaskKind::AcceptFriendRequest,
            json!({ "from": { "name": "陈七" }, "remark": "陈七-课程" }),
        ),
    ];
    for (kind, payload) in tasks {
        let task = p.run(&app, kind, payload, DEADLINE).await;
        assert_eq!(task.state, TaskState::Succeeded, "{kind}: {task:?}");
        assert_eq!(task.attempt, 1, "{kind}: no retry needed: {task:?}");
    }
    assert!(
        !p.sim.sent().is_empty(),
        "the simulator recorded what the tasks sent"
    );
}
