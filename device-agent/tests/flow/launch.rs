//! The `launch` step: backing out of a deep screen to WeCom's main tabs, and
//! the budget of BACK presses and restarts that a start screen the flow cannot
//! recognise, or a screen BACK does nothing on, may cost.

use std::time::Duration;

use serde_json::json;
use youmi_agent::flow::FlowSet;
use youmi_phone_sim::{Fault, Input, LocalPhone};
use youmi_protocol::TaskKind;

use super::{accepted, fails, setup, setup_with, succeeds, text_to};

/// Taps the middle of the last view on screen labelled `label` (by text or
/// content description: the tab bar is drawn after the title), as a person
/// getting the phone to a screen would.
fn tap_on(sim: &LocalPhone, label: &str) {
    let screen = sim.screen();
    let mut found = None;
    screen.tree.walk(&mut |node| {
        if node.text == label || node.content_desc == label {
            found = Some(node.bounds);
        }
    });
    let b = found.unwrap_or_else(|| panic!("no {label:?} on {}: {}", screen.name, screen.xml));
    sim.tap((b.left + b.right) / 2, (b.top + b.bottom) / 2);
}

/// How many times the phone got BACK, and how many times WeCom was started,
/// after its first `since` inputs.
fn backs_and_launches(sim: &LocalPhone, since: usize) -> (usize, usize) {
    let inputs = sim.inputs();
    let count = |input: &Input| {
        inputs
            .iter()
            .skip(since)
            .filter(|e| e.input == *input)
            .count()
    };
    (count(&Input::Key(4)), count(&Input::Launch))
}

/// The built-in flows with a 4.1 file from a directory holding `flows`.
fn flows_with(flows: &str) -> FlowSet {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wecom-4.1.toml"),
        format!("format = 1\napp = \"com.tencent.wework\"\nversions = [\"4.1.*\"]\n{flows}"),
    )
    .unwrap();
    FlowSet::builtin()
        .unwrap()
        .merge(FlowSet::load_dir(dir.path()).unwrap())
}

#[tokio::test(start_paused = true)]
async fn launch_backs_out_of_a_deep_screen_to_the_main_tabs() {
    let s = setup();
    // 通讯录 > 搜索 "李" > 李四 > 发消息, with the chat's more-functions panel open.
    s.sim.launch_wecom().unwrap();
    tap_on(&s.sim, "通讯录");
    tap_on(&s.sim, "搜索");
    s.sim.type_text("李").unwrap();
    tap_on(&s.sim, "李四");
    tap_on(&s.sim, "发消息");
    tap_on(&s.sim, "更多功能按钮，已折叠");
    assert_eq!(s.sim.screen().name, "chat:李四");
    let before = s.sim.inputs().len();
    // (delete_chat restarts WeCom instead, so another kind shows the backing out.)
    let from = json!({"from": {"name": "周八"}});
    succeeds(&s, 27, TaskKind::AcceptFriendRequest, from).await;
    assert_eq!(s.sim.sent(), vec![accepted("周八", "周八")]);
    // The panel, the chat, the profile and the search: four presses of BACK.
    let (backs, _) = backs_and_launches(&s.sim, before);
    assert_eq!(backs, 4, "{:?}", s.sim.inputs());
}

#[tokio::test(start_paused = true)]
async fn a_start_screen_that_never_shows_spends_the_launch_budget_and_no_more() {
    // The tab bar of this WeCom says 消息 in a way the file does not expect
    // (issue 11: tabs as text, the file looking for a description).
    let s = setup_with(flows_with(
        r#"
[flows.send_message]
steps = [
  { do = "launch", name = "open_wecom", home = { text = "首页" }, settle_ms = 800 },
  { do = "fail", code = "flow_failed" },
]
"#,
    ));
    let started = tokio::time::Instant::now();
    let (error, evidence) = fails(&s, 40, TaskKind::SendMessage, text_to("张三", "你好")).await;
    assert_eq!(error.code, "start_screen_not_reached");
    assert!(error.retryable);
    // BACK on WeCom's first screen leaves it; it is started again, twice
    // (max_relaunches = 2), and the third time the budget is spent.
    let (backs, launches) = backs_and_launches(&s.sim, 0);
    assert_eq!((backs, launches), (3, 3), "{:?}", s.sim.inputs());
    assert!(
        error
            .message
            .contains("the app left the front again after 2 restarts (max_relaunches = 2)"),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .contains("this attempt pressed BACK 3 times and started the app again 2 times"),
        "{}",
        error.message
    );
    // What the screen showed: WeCom's tabs, which the file did not match.
    assert!(
        error
            .message
            .contains("the last screen it backed out of showed: ")
            && error.message.contains("通讯录"),
        "{}",
        error.message
    );
    assert_eq!(evidence["step"], "open_wecom");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it did not wait out launch's timeout: {:?}",
        started.elapsed()
    );
    assert!(s.sim.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_back_budget_is_shared_by_an_attempts_launches() {
    // One launch per recipient; a recipient whose launch fails is skipped,
    // and the next recipient's launch has nothing left to spend.
    let s = setup_with(flows_with(
        r#"
[flows.mass_send]
steps = [
  { do = "for_each_recipient", procedure = "one", skip_codes = ["start_screen_not_reached"] },
]
[procedures]
one = [
  { do = "launch", name = "open_wecom", home = { text = "首页" }, settle_ms = 800, max_backs = 4, max_relaunches = 10 },
]
"#,
    ));
    let payload = json!({
        "recipients": [{"name": "张三"}, {"name": "李四"}, {"name": "王五"}],
        "items": [{"type": "text", "text": "你好"}],
    });
    let (error, evidence) = fails(&s, 41, TaskKind::MassSend, payload).await;
    assert_eq!(error.code, "start_screen_not_reached", "{}", error.message);
    let (backs, launches) = backs_and_launches(&s.sim, 0);
    // The first recipient's launch: four BACKs, each leaving WeCom and each
    // followed by a start; the two others start WeCom once and stop there.
    assert_eq!((backs, launches), (4, 7), "{:?}", s.sim.inputs());
    let skipped = evidence["skipped"]
        .as_array()
        .expect("the skipped recipients");
    assert_eq!(skipped.len(), 3, "{evidence}");
    for entry in skipped {
        let message = entry["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("4 BACK presses did not lead there (max_backs = 4)"),
            "{entry}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn launch_stops_backing_when_back_changes_nothing() {
    let s = setup_with(flows_with(
        r#"
[flows.send_message]
steps = [
  { do = "launch", name = "open_wecom", home = { label = "消息" }, settle_ms = 800 },
  { do = "fail", code = "flow_failed" },
]
"#,
    ));
    // 通讯录 > 李四, a screen that takes BACK and does nothing with it.
    s.sim.launch_wecom().unwrap();
    tap_on(&s.sim, "通讯录");
    tap_on(&s.sim, "李四");
    assert_eq!(s.sim.screen().name, "profile:李四");
    s.sim.set_fault(Fault::BackIgnored);
    let before = s.sim.inputs().len();
    let (error, _) = fails(&s, 42, TaskKind::SendMessage, text_to("李四", "你好")).await;
    assert_eq!(error.code, "start_screen_not_reached");
    assert!(
        error
            .message
            .contains("BACK changes nothing on this screen"),
        "{}",
        error.message
    );
    let (backs, launches) = backs_and_launches(&s.sim, before);
    assert_eq!((backs, launches), (2, 1), "{:?}", s.sim.inputs());
}
