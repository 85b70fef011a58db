//! Screens WeCom and Android show unasked, scripted as the simulator's popups:
//! a risk-control warning ends the task with evidence, an update prompt is
//! postponed (a forced one ends the task), a permission dialog is allowed.

use std::path::PathBuf;

use serde_json::json;
use youmi_phone_sim::{DialogWhen, Fault, Popup, SentEvent};
use youmi_protocol::TaskKind;

use super::{
    fails, files_in, hit, message_payload, on_phone, setup, succeeds, text_to, touched_on,
};

#[tokio::test(start_paused = true)]
async fn a_risk_control_warning_ends_the_task_with_evidence() {
    let s = setup();
    // Launch is the first screen change; the warning comes with the second.
    s.sim.set_fault(Fault::Popup {
        popup: Popup::RiskControl {
            title: "操作频繁".into(),
            message: "为保障账号安全，请稍后再试".into(),
        },
        when: DialogWhen::Change(2),
    });
    let (error, evidence) = fails(&s, 15, TaskKind::SendMessage, message_payload("张三")).await;
    assert_eq!(error.code, "risk_control");
    assert!(!error.retryable);
    assert!(error.message.contains("risk-control"), "{}", error.message);
    assert!(
        error
            .message
            .contains("step 3 `open_search` of procedure open_chat"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("the screen showed:") && error.message.contains("操作频繁"),
        "{}",
        error.message
    );
    assert_eq!(evidence["step"], "open_search");
    assert_eq!(evidence["step_number"], 3);
    assert_eq!(evidence["at"], "send_message#1 > open_chat#3");
    assert!(evidence["screen"]
        .as_array()
        .unwrap()
        .contains(&json!("我知道了")));
    // The dump and the screenshot are on disk, under the task's folder.
    let dir = s.evidence.path().join("15");
    let files = files_in(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    let dump = PathBuf::from(evidence["ui_dump"].as_str().unwrap());
    let shot = PathBuf::from(evidence["screenshot"].as_str().unwrap());
    assert!(files.contains(&dump) && files.contains(&shot));
    assert!(std::fs::read_to_string(&dump).unwrap().contains("操作频繁"));
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
    assert!(s.sim.sent().is_empty());
    assert!(
        !s.sim.inputs().iter().any(|e| hit(e, "我知道了")),
        "not dismissed: {:?}",
        s.sim.inputs()
    );
    assert_eq!(s.sim.screen().name, "main:contacts+risk_control");
}

#[tokio::test(start_paused = true)]
async fn an_update_prompt_is_postponed_and_the_flow_goes_on() {
    let s = setup();
    s.sim.set_fault(Fault::Popup {
        popup: Popup::UpdatePrompt { forced: false },
        when: DialogWhen::Screen("profile"),
    });
    let payload = text_to("张三", "你好");
    succeeds(&s, 16, TaskKind::SendMessage, payload.clone()).await;
    assert_eq!(s.sim.sent(), vec![SentEvent::message("张三", "你好")]);
    assert!(
        touched_on(&s.sim, "profile:张三+update_prompt", "以后再说"),
        "{:?}",
        s.sim.inputs()
    );

    // A forced update cannot be postponed: the task fails, for a person to update.
    let s = setup();
    s.sim.set_fault(Fault::Popup {
        popup: Popup::UpdatePrompt { forced: true },
        when: DialogWhen::Screen("profile"),
    });
    let (error, evidence) = fails(&s, 17, TaskKind::SendMessage, payload).await;
    assert_eq!(error.code, "app_update_prompt");
    assert!(!error.retryable);
    assert_eq!(evidence["step"], "message_contact");
    assert!(!s.sim.inputs().iter().any(|e| hit(e, "立即更新")));
    assert!(s.sim.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_permission_dialog_is_allowed_and_the_flow_goes_on() {
    let s = setup();
    s.sim.set_fault(Fault::Popup {
        popup: Popup::PermissionDialog,
        when: DialogWhen::Screen("media_picker"),
    });
    let payload = json!({"text": "周年庆", "media_ids": ["m2"]});
    succeeds(&s, 18, TaskKind::MomentsPost, payload).await;
    assert!(
        touched_on(&s.sim, "media_picker+permission_dialog", "允许"),
        "{:?}",
        s.sim.inputs()
    );
    assert_eq!(
        s.sim.sent(),
        vec![SentEvent::MomentPost {
            text: "周年庆".into(),
            media: vec![on_phone("m2.jpg")],
            visible_to_tags: Vec::new(),
        }]
    );
}
