//! The flow format's constructs for layouts a file was not written against
//! (issue 11, section 4), run by the real agent on the simulator through
//! Debian's adb server: scrolling to a chat below the fold (the built-in
//! `delete_chat`, on a chat list longer than the screen), and a flow file of
//! this test's own that branches on what the screen shows, picks among
//! several matches with `nth` and `inside`, stops on any of several
//! `fail_on` selectors and computes text with a template expression.

use std::time::Duration;

use serde_json::json;
use youmi_agent::adb::AdbConfig;
use youmi_agent::flow::{FlowFile, FlowSet};
use youmi_phone_sim::{Input, SentEvent, SimConfig};
use youmi_protocol::{TaskKind, TaskState};
use youmi_tests::phones::{adb_server, PhoneAgent, Route};
use youmi_tests::TestApp;

const DEADLINE: Duration = Duration::from_secs(120);

fn adb_config() -> AdbConfig {
    AdbConfig {
        command_timeout: Duration::from_secs(15),
        dump_timeout: Duration::from_secs(15),
        transfer_timeout: Duration::from_secs(30),
        ..AdbConfig::default()
    }
}

fn swipes(p: &PhoneAgent, since: usize) -> usize {
    p.sim.inputs()[since..]
        .iter()
        .filter(|event| matches!(event.input, Input::Swipe { .. }))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_below_the_fold_is_scrolled_to_and_a_missing_one_ends_at_the_list_end() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    // 25 chats above 张三 and 李四: the list is almost three screens long.
    let sim = SimConfig {
        serial: "E2E-LONG-LIST".to_owned(),
        filler_chats: 25,
        ..SimConfig::default()
    };
    let p = PhoneAgent::start(&app, Route::Server(&adb), sim, adb_config()).await;

    let task = p
        .run(
            &app,
            TaskKind::DeleteChat,
            json!({ "with": { "name": "李四" } }),
            DEADLINE,
        )
        .await;
    assert_eq!(task.state, TaskState::Succeeded, "{task:?}");
    assert_eq!(task.attempt, 1, "{task:?}");
    let scrolled = swipes(&p, 0);
    assert!(
        (1..=20).contains(&scrolled),
        "李四 is below the fold: the flow scrolled {scrolled} times"
    );
    assert!(
        p.sim.sent().iter().any(|event| matches!(
            event,
            SentEvent::ChatDeleted { with } if with == "李四"
        )),
        "{:?}",
        p.sim.sent()
    );

    // A chat that is not there: the list is scrolled to its end, not 20
    // times over, and the task fails with the flow's own code.
    let since = p.sim.inputs().len();
    let task = p
        .run(
            &app,
            TaskKind::DeleteChat,
            json!({ "with": { "name": "无名" } }),
            DEADLINE,
        )
        .await;
    assert_eq!(task.state, TaskState::Failed, "{task:?}");
    let error = task.error.as_ref().expect("the failure");
    assert_eq!(error.code, "chat_not_found", "{error:?}");
    assert!(!error.retryable, "{error:?}");
    assert!(
        error.message.contains("the end of the list was reached"),
        "{}",
        error.message
    );
    // 26 rows of 200 px in a list 1,960 px high: 3,240 px below the first
    // screen; a swipe moves 1,200 px, so three reach the end and a fourth
    // moves nothing, which ends the scrolling.
    let scrolled = swipes(&p, since);
    assert_eq!(scrolled, 4, "the list's end stops the scrolling");
}

/// A send_message flow for exactly the simulator's WeCom version, written
/// with the constructs a file for an unseen layout needs.
const CONSTRUCTS: &str = r#"
format = 1
app = "com.tencent.wework"
versions = ["4.1.30"]
description = "send_message through branch, nth, inside, several fail_on and an expression"

[flows.send_message]
steps = [
  { do = "launch", name = "open_wecom", home = { label = "消息" }, settle_ms = 800, restart = true },
  { do = "tap", name = "contacts_tab", target = { label = "通讯录", inside = { resource_id = "com.tencent.wework:id/tab_bar" } } },
  { do = "tap", name = "open_search", target = { text = "搜索" } },
  { do = "type", name = "type_name", text = "{to.name}" },
  { do = "branch", name = "which_result", cases = [
      { present = { text = "无搜索结果" }, call = "nobody" },
      { present = { text = "{to.name}", class = "android.widget.TextView" }, call = "open" },
    ], timeout_ms = 5000 },
  { do = "for_each_item", text = "send_text", image = "unsupported", link = "unsupported", file = "unsupported" },
]

[procedures]
nobody = [{ do = "fail", name = "no_such_contact", code = "contact_not_found", message = "no contact named {to.name}" }]
# The search field holds the name too: the result is the last match.
open = [
  { do = "tap", name = "pick_contact", target = { text = "{to.name}", nth = -1 } },
  { do = "tap", name = "message_contact", target = { text = "发消息" }, fail_on = [{ text = "该用户不存在" }, { text = "无搜索结果" }] },
  { do = "wait_for", name = "chat_open", target = { class = "android.widget.EditText" } },
]
send_text = [
  { do = "clear", name = "focus_input", target = { class = "android.widget.EditText" } },
  { do = "type", name = "type_text", text = "{item.text} #{item.number * 10 + 1}" },
  { do = "tap", name = "send", target = { text = "发送", class = "android.widget.Button" }, sends = true },
  { do = "wait_for", name = "sent", target = { text = "发送", class = "android.widget.Button" }, gone = true },
]
unsupported = [{ do = "fail", code = "flow_failed", message = "text only" }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_file_with_branch_nth_inside_fail_on_and_expressions_runs() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let sim = SimConfig {
        serial: "E2E-CONSTRUCTS".to_owned(),
        ..SimConfig::default()
    };
    let file = FlowFile::parse("constructs.toml", CONSTRUCTS).expect("the file loads");
    let flows = FlowSet::builtin()
        .expect("the built-in flows load")
        .merge(FlowSet::from_files(vec![file]).expect("one file"));
    let p = PhoneAgent::start_with_flows(&app, Route::Server(&adb), sim, adb_config(), flows).await;

    let task = p
        .run(
            &app,
            TaskKind::SendMessage,
            json!({ "to": { "name": "王五" }, "items": [
                { "type": "text", "text": "你好" },
                { "type": "text", "text": "再见" },
            ] }),
            DEADLINE,
        )
        .await;
    assert_eq!(task.state, TaskState::Succeeded, "{task:?}");
    let texts: Vec<String> = p
        .sim
        .sent()
        .iter()
        .filter_map(|event| match event {
            SentEvent::Message { to, text } if to == "王五" => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["你好 #11", "再见 #21"], "{:?}", p.sim.sent());

    // Nobody by that name: the branch takes the `nobody` case at once.
    let task = p
        .run(
            &app,
            TaskKind::SendMessage,
            json!({ "to": { "name": "无名" }, "items": [{ "type": "text", "text": "你好" }] }),
            DEADLINE,
        )
        .await;
    assert_eq!(task.state, TaskState::Failed, "{task:?}");
    let error = task.error.as_ref().expect("the failure");
    assert_eq!(error.code, "contact_not_found", "{error:?}");
    assert!(
        error.message.contains("no contact named 无名"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("no_such_contact"),
        "the failure names the step: {}",
        error.message
    );
}
