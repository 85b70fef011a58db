//! What ends a task early and what it leaves behind (a missing element or
//! file, a cancel, a WeCom version no flow covers), flows from a directory,
//! do-not-disturb and the countdown, and a retry that resumes after what the
//! earlier attempts sent.

use std::sync::Arc;

use serde_json::{json, Value};
use youmi_agent::executor::{Executor, TaskContext, TaskControl, TaskFailure};
use youmi_agent::flow::FlowSet;
use youmi_phone_sim::{Fault, Input, SentEvent};
use youmi_protocol::{AssignedTask, TaskKind};

use super::{
    evidenced, fails, files_in, message_payload, plain_failure, run, setup, setup_with, succeeds,
    task,
};

#[tokio::test(start_paused = true)]
async fn an_element_that_never_appears_names_the_step() {
    let s = setup();
    s.sim.set_fault(Fault::MissingText {
        text: "发消息".into(),
    });
    let (error, evidence) = fails(&s, 19, TaskKind::SendMessage, message_payload("张三")).await;
    assert_eq!(error.code, "element_not_found");
    assert!(error.retryable);
    assert!(
        error
            .message
            .contains("{text=\"发消息\"} did not appear within 5.0 s"),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .contains("step 6 `message_contact` of procedure open_chat"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("张三"),
        "the screen's texts: {}",
        error.message
    );
    assert_eq!(evidence["step"], "message_contact");
    assert_eq!(evidence["flow_file"], "built-in wecom-4.1.toml");
    assert!(evidence.get("evidence_errors").is_none(), "{evidence}");
    assert!(s.sim.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn missing_media_fails_without_retry() {
    let s = setup();
    let payload = json!({"to": {"name": "张三"}, "items": [{"type": "image", "media_id": "gone"}]});
    let (error, evidence) = fails(&s, 20, TaskKind::SendMessage, payload).await;
    assert_eq!(error.code, "media_unavailable");
    assert!(!error.retryable);
    assert_eq!(evidence["step"], "push_image");
    assert!(
        error
            .message
            .contains(&s.media.path().join("gone").display().to_string()),
        "{}",
        error.message
    );
    assert!(s.phone.pushed().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_cancel_stops_the_flow_at_the_next_step() {
    let s = setup();
    let (ctx, control) = TaskContext::new(21);
    let control: Arc<TaskControl> = Arc::new(control);
    let cancel = control.clone();
    // The server's cancel arrives while the contact's name is being typed.
    s.sim.when_typed("张三", move || cancel.cancel());
    let t = task(21, TaskKind::SendMessage, message_payload("张三"));
    let result = s.executor.execute(&t, &ctx).await;
    assert_eq!(result, Err(TaskFailure::Cancelled));
    let inputs = s.sim.inputs();
    assert_eq!(
        inputs.last().map(|e| &e.input),
        Some(&Input::Text("张三".into())),
        "nothing after the cancel: {inputs:?}"
    );
    assert!(s.sim.sent().is_empty());
    assert!(
        files_in(s.evidence.path()).is_empty(),
        "a cancel is not a failure"
    );
}

#[tokio::test(start_paused = true)]
async fn versions_no_flow_covers_are_refused() {
    let s = setup();
    s.sim.set_wecom_version("3.9.0");
    let payload = json!({"with": {"name": "李四"}});
    let error = plain_failure(
        run(&s, &task(22, TaskKind::DeleteChat, payload.clone()))
            .await
            .0,
    );
    assert_eq!(error.code, "unsupported_app_version");
    assert!(!error.retryable);
    assert!(
        error
            .message
            .contains("com.tencent.wework 3.9.0 is installed"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("4.1.* (built-in wecom-4.1.toml)"),
        "{}",
        error.message
    );
    assert!(s.sim.inputs().is_empty(), "the phone is not touched");

    s.sim.uninstall_wecom();
    let error = plain_failure(run(&s, &task(23, TaskKind::DeleteChat, payload)).await.0);
    assert_eq!(error.code, "app_not_installed");
    assert!(!error.retryable);

    let error = plain_failure(
        run(&s, &task(24, TaskKind::DeleteChat, json!({"with": {}})))
            .await
            .0,
    );
    assert_eq!(error.code, "invalid_payload");
}

#[tokio::test(start_paused = true)]
async fn a_flows_directory_overrides_the_builtin_file() {
    let dir = tempfile::tempdir().unwrap();
    // A fixed delete_chat for 4.1, and a new WeCom version.
    std::fs::write(
        dir.path().join("wecom-4.1.toml"),
        r#"
format = 1
app = "com.tencent.wework"
versions = ["4.1.*"]
[flows.delete_chat]
steps = [
  { do = "launch", home = { desc = "消息" } },
  { do = "tap", name = "messages_tab", target = { desc = "消息" } },
  { do = "assert", name = "has_chat", present = { text = "{with.name}" }, code = "chat_not_found" },
  { do = "fail", name = "stop", code = "flow_failed", message = "the directory's flow ran for {with.name}" },
]
"#,
    )
    .unwrap();
    let builtin = FlowSet::builtin().unwrap().files()[0].clone();
    let text = include_str!("../../flows/wecom-4.1.toml")
        .replace("versions = [\"4.1.*\"]", "versions = [\"4.2.*\"]");
    std::fs::write(dir.path().join("wecom-4.2.toml"), text).unwrap();
    let flows = FlowSet::builtin()
        .unwrap()
        .merge(FlowSet::load_dir(dir.path()).unwrap());
    assert_eq!(
        flows.files().len(),
        2,
        "the directory's 4.1 file replaced the built-in one"
    );
    assert!(flows.files().iter().all(|f| f.source() != builtin.source()));

    let s = setup_with(flows);
    let with = json!({"with": {"name": "李四"}});
    let (error, evidence) = fails(&s, 25, TaskKind::DeleteChat, with.clone()).await;
    assert_eq!(error.code, "flow_failed");
    assert!(
        error.message.contains("the directory's flow ran for 李四"),
        "{}",
        error.message
    );
    assert!(evidence["flow_file"]
        .as_str()
        .unwrap()
        .ends_with("wecom-4.1.toml"));
    assert!(s.sim.sent().is_empty());

    // WeCom 4.2 now has flows, with no new agent.
    s.sim.set_wecom_version("4.2.5");
    succeeds(&s, 26, TaskKind::DeleteChat, with).await;
    let deleted = SentEvent::ChatDeleted {
        with: "李四".into(),
    };
    assert_eq!(s.sim.sent(), vec![deleted]);
}

#[tokio::test(start_paused = true)]
async fn do_not_disturb_and_countdown_go_through_the_phone() {
    let s = setup();
    assert!(!s.executor.set_do_not_disturb(true).await.unwrap());
    assert_eq!(s.sim.zen_mode(), 1);
    assert!(s.executor.set_do_not_disturb(false).await.unwrap());
    assert_eq!(s.sim.zen_mode(), 0);
    s.executor.show_countdown(10).await;
    let notes = s.sim.notifications();
    assert_eq!(notes.len(), 1);
    assert!(notes[0].text.contains("10"), "{notes:?}");
}

#[tokio::test(start_paused = true)]
async fn a_retry_resumes_after_what_earlier_attempts_sent() {
    use youmi_agent::delivery::{DeliveryMark, Mark, UnitKey};
    let s = setup();
    let payload = json!({"to": {"name": "张三"}, "items": [
        {"type": "text", "text": "第一条"},
        {"type": "text", "text": "第二条"},
        {"type": "image", "media_id": "m1"},
        {"type": "text", "text": "第四条"},
    ]});
    let mark = |item: u32, mark: Mark| DeliveryMark {
        task_id: 40,
        attempt: 1,
        unit: UnitKey {
            recipient: None,
            item: Some(item),
        },
        mark,
    };
    // Attempt 1 sent item 1, began the tap of item 2 (which never reached
    // the phone) and of the picture, then the phone went away.
    let earlier = vec![
        mark(1, Mark::Sending),
        mark(1, Mark::Sent),
        mark(2, Mark::Sending),
        mark(3, Mark::Sending),
    ];
    let retry = AssignedTask {
        attempt: 2,
        ..task(40, TaskKind::SendMessage, payload.clone())
    };
    let (ctx, _control) = TaskContext::new(40);
    let ctx = ctx.resuming(earlier.clone());
    let result = s.executor.execute(&retry, &ctx).await.unwrap().unwrap();
    // Item 2 is not in the chat: sent now. The picture cannot be checked: not
    // sent again. Item 4 is new. Item 1 is not sent again.
    assert_eq!(
        s.sim.sent(),
        vec![
            SentEvent::message("张三", "第二条"),
            SentEvent::message("张三", "第四条")
        ]
    );
    let outcomes: Vec<(String, Value)> = result["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["outcome"].as_str().unwrap().to_owned(),
                d["attempt"].clone(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("sent".to_owned(), json!(1)),
            ("sent".to_owned(), json!(2)),
            ("uncertain".to_owned(), json!(1)),
            ("sent".to_owned(), json!(2)),
        ]
    );

    // A third attempt that cannot even read the app's version still reports
    // what was sent, and sends nothing.
    s.sim.set_wecom_version("3.9.0");
    let third = AssignedTask {
        attempt: 3,
        ..task(40, TaskKind::SendMessage, payload)
    };
    let (ctx3, _control) = TaskContext::new(40);
    let ctx3 = ctx3.resuming(ctx.all_marks());
    let (error, evidence) = evidenced(s.executor.execute(&third, &ctx3).await);
    assert_eq!(error.code, "unsupported_app_version");
    let outcomes: Vec<&str> = evidence["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["sent", "sent", "uncertain", "sent"]);
    assert_eq!(s.sim.sent().len(), 2);
}
