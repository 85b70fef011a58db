//! Every task kind, end to end: what reached the simulator's record, the
//! result and the progress reports.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use youmi_phone_sim::{Input, SentEvent};
use youmi_protocol::TaskKind;

use super::{accepted, fails, hit, message_payload, on_phone, run, setup, succeeds, task};

#[tokio::test(start_paused = true)]
async fn send_message_sends_every_item_type_in_order() {
    let s = setup();
    let (result, progress) =
        run(&s, &task(1, TaskKind::SendMessage, message_payload("张三"))).await;
    let result = result.unwrap().unwrap();
    assert_eq!(
        s.sim.sent(),
        vec![
            SentEvent::message("张三", "新品到货，欢迎选购"),
            SentEvent::message("张三", "新品目录 https://example.com/p/1"),
            SentEvent::Image {
                to: "张三".into(),
                path: on_phone("m1.jpg")
            },
            SentEvent::File {
                to: "张三".into(),
                path: on_phone("doc1.pdf")
            },
        ]
    );
    assert_eq!(result["flow_file"], "built-in wecom-4.1.toml");
    assert_eq!(result["app_version"], "4.1.30");
    // Progress: one report before every step, counting up to a fixed total.
    let total = progress[0].total;
    assert_eq!(result["steps"], json!(total));
    assert_eq!(progress.len() as u32, total);
    for (i, p) in progress.iter().enumerate() {
        assert_eq!((p.done, p.total, p.task_id), (i as u32, total, 1));
    }
    assert_eq!(progress[0].step, "open_wecom");
    assert!(progress.iter().any(|p| p.step == "pick_contact"));
    assert_eq!(progress.last().unwrap().step, "back_in_chat");
    assert_eq!(s.sim.screen().name, "chat:张三");
}

#[tokio::test(start_paused = true)]
async fn smart_marketing_sends_its_items_like_send_message() {
    let s = setup();
    let payload = json!({
        "flow_id": 7, "step": 2, "to": {"name": "李四"},
        "items": [{"type": "text", "text": "第二步：限时优惠"}],
    });
    succeeds(&s, 2, TaskKind::SmartMarketing, payload).await;
    assert_eq!(
        s.sim.sent(),
        vec![SentEvent::message("李四", "第二步：限时优惠")]
    );
}

#[tokio::test(start_paused = true)]
async fn mass_send_reaches_each_recipient_and_skips_unknown_ones() {
    let s = setup();
    let payload = json!({
        "recipients": [{"name": "张三"}, {"name": "无名氏"}, {"name": "李四"}, {"customer_id": 9}],
        "items": [{"type": "text", "text": "周末活动"}, {"type": "image", "media_id": "m2"}],
    });
    let (result, progress) = run(&s, &task(3, TaskKind::MassSend, payload)).await;
    let result = result.unwrap().unwrap();
    let picture = |to: &str| SentEvent::Image {
        to: to.to_owned(),
        path: on_phone("m2.jpg"),
    };
    assert_eq!(
        s.sim.sent(),
        vec![
            SentEvent::message("张三", "周末活动"),
            picture("张三"),
            SentEvent::message("李四", "周末活动"),
            picture("李四"),
        ]
    );
    assert_eq!(result["reached"], 2);
    let skipped = result["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[0]["recipient"], json!({"name": "无名氏"}));
    assert_eq!(skipped[0]["code"], "contact_not_found");
    assert_eq!(skipped[0]["evidence"]["step"], "pick_contact");
    assert!(skipped[0]["evidence"]["screen"]
        .as_array()
        .unwrap()
        .contains(&json!("无搜索结果")));
    assert!(Path::new(skipped[0]["evidence"]["ui_dump"].as_str().unwrap()).is_file());
    assert_eq!(
        skipped[1]["code"], "missing_value",
        "a recipient without a name cannot be searched"
    );
    // The media was pushed once for both recipients.
    assert_eq!(s.phone.pushed(), vec![on_phone("m2.jpg")]);
    // Skipped steps still count, so progress ends where the total says.
    let total = progress[0].total;
    assert_eq!(result["steps"], json!(total));
    assert!(progress.windows(2).all(|w| w[0].done < w[1].done));
}

#[tokio::test(start_paused = true)]
async fn a_mass_send_that_reaches_nobody_fails() {
    let s = setup();
    let payload =
        json!({"recipients": [{"name": "无名氏"}], "items": [{"type": "text", "text": "hi"}]});
    let (error, evidence) = fails(&s, 4, TaskKind::MassSend, payload).await;
    assert_eq!(error.code, "contact_not_found");
    assert!(!error.retryable);
    assert!(
        error.message.contains("no recipient could be sent to"),
        "{}",
        error.message
    );
    assert_eq!(evidence["reached"], 0);
    assert!(s.sim.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn moments_post_with_text_and_pictures() {
    let s = setup();
    let payload = json!({"text": "新品上市", "media_ids": ["m1", "m2"]});
    succeeds(&s, 5, TaskKind::MomentsPost, payload).await;
    assert_eq!(
        s.sim.sent(),
        vec![SentEvent::MomentPost {
            text: "新品上市".into(),
            media: vec![on_phone("m1.jpg"), on_phone("m2.jpg")],
            visible_to_tags: Vec::new(),
        }]
    );
    assert_eq!(s.sim.screen().name, "moments");

    // Pictures only: no text is typed.
    let s = setup();
    succeeds(&s, 6, TaskKind::MomentsPost, json!({"media_ids": ["m1"]})).await;
    assert!(!s
        .sim
        .inputs()
        .iter()
        .any(|e| matches!(e.input, Input::Text(_))));
    assert_eq!(
        s.sim.sent(),
        vec![SentEvent::MomentPost {
            text: String::new(),
            media: vec![on_phone("m1.jpg")],
            visible_to_tags: Vec::new(),
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_post_for_tagged_customers_picks_the_tags_under_visible_customers() {
    let s = setup();
    let payload = json!({"text": "会员专享", "visible_to_tags": ["VIP", "重要客户"]});
    succeeds(&s, 7, TaskKind::MomentsPost, payload).await;
    assert_eq!(
        s.sim.sent(),
        vec![SentEvent::MomentPost {
            text: "会员专享".into(),
            media: Vec::new(),
            visible_to_tags: vec!["VIP".into(), "重要客户".into()],
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_tag_the_enterprise_lacks_fails_the_post_without_making_it_public() {
    let s = setup();
    let payload = json!({"text": "会员专享", "visible_to_tags": ["VIP", "钻石会员"]});
    let (error, evidence) = fails(&s, 7, TaskKind::MomentsPost, payload).await;
    assert_eq!(error.code, "tag_not_found");
    assert!(!error.retryable);
    assert!(error.message.contains("钻石会员"), "{}", error.message);
    assert_eq!(evidence["step"], "tag_listed");
    assert!(s.sim.sent().is_empty());
    assert_eq!(s.sim.screen().name, "tag_picker");
}

#[tokio::test(start_paused = true)]
async fn friend_add_replaces_the_greeting() {
    let s = setup();
    let payload = json!({
        "target": {"phone": "13800138000"},
        "greeting": "您好，我是优米客服",
        "remark": "王总-官网",
        "tags": ["新客户", "VIP"],
    });
    succeeds(&s, 8, TaskKind::FriendAdd, payload).await;
    assert_eq!(
        s.sim.sent(),
        vec![SentEvent::FriendRequestSent {
            query: "13800138000".into(),
            name: "用户8000".into(),
            greeting: "您好，我是优米客服".into(),
            remark: "王总-官网".into(),
            tags: vec!["新客户".into(), "VIP".into()],
        }]
    );

    // Without a greeting, WeCom's own stays.
    let s = setup();
    let payload = json!({"target": {"phone": "13900139000"}});
    succeeds(&s, 9, TaskKind::FriendAdd, payload).await;
    assert_eq!(
        s.sim.sent(),
        vec![SentEvent::FriendRequestSent {
            query: "13900139000".into(),
            name: "用户9000".into(),
            greeting: "我是小优".into(),
            remark: String::new(),
            tags: Vec::new(),
        }]
    );

    // A tag the enterprise does not have: no request goes out.
    let s = setup();
    let payload = json!({"target": {"phone": "13900139000"}, "tags": ["老朋友"]});
    let (error, _) = fails(&s, 9, TaskKind::FriendAdd, payload).await;
    assert_eq!(error.code, "tag_not_found");
    assert!(error.message.contains("老朋友"), "{}", error.message);
    assert!(s.sim.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn friend_add_for_nobody_fails_as_soon_as_wecom_says_so() {
    let s = setup();
    let started = tokio::time::Instant::now();
    let payload = json!({"target": {"wecom_id": "nobody!"}});
    let (error, evidence) = fails(&s, 10, TaskKind::FriendAdd, payload).await;
    assert_eq!(error.code, "friend_not_found");
    assert!(!error.retryable);
    assert!(
        error.message.contains("WeCom finds nobody for nobody!"),
        "{}",
        error.message
    );
    assert!(evidence["screen"]
        .as_array()
        .unwrap()
        .contains(&json!("该用户不存在")));
    // fail_on ended the wait on the first read, long before the 10 s timeout.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn accept_friend_request_taps_the_button_in_the_right_row() {
    let s = setup();
    let from = json!({"from": {"name": "周八"}});
    succeeds(&s, 11, TaskKind::AcceptFriendRequest, from).await;
    // Without a remark WeCom's own, the requester's name, stays.
    assert_eq!(s.sim.sent(), vec![accepted("周八", "周八")]);
    assert_eq!(s.sim.screen().name, "friend_requests");

    // With one, 通过验证's 备注 is replaced.
    let s = setup();
    let payload = json!({"from": {"name": "周八"}, "remark": "周八-课程咨询"});
    succeeds(&s, 11, TaskKind::AcceptFriendRequest, payload).await;
    assert_eq!(s.sim.sent(), vec![accepted("周八", "周八-课程咨询")]);

    // 陈七's request is accepted first; then there is nothing to tap in that row.
    let s = setup();
    let from = json!({"from": {"name": "陈七"}});
    succeeds(&s, 12, TaskKind::AcceptFriendRequest, from.clone()).await;
    let (error, _) = fails(&s, 13, TaskKind::AcceptFriendRequest, from).await;
    assert_eq!(error.code, "friend_request_not_found");
    assert!(!error.retryable);
    assert_eq!(
        s.sim.sent(),
        vec![accepted("陈七", "陈七")],
        "周八's request must not be accepted instead"
    );
}

#[tokio::test(start_paused = true)]
async fn delete_chat_long_presses_and_confirms() {
    let s = setup();
    succeeds(
        &s,
        13,
        TaskKind::DeleteChat,
        json!({"with": {"name": "李四"}}),
    )
    .await;
    let deleted = SentEvent::ChatDeleted {
        with: "李四".into(),
    };
    assert_eq!(s.sim.sent(), vec![deleted]);
    assert!(s
        .sim
        .inputs()
        .iter()
        .any(|e| hit(e, "李四") && matches!(e.input, Input::LongPress { .. })));
    let chats = s.sim.screen();
    assert_eq!(chats.name, "main:messages");
    assert!(chats.tree.find_text("李四").is_none(), "{}", chats.xml);
    assert!(chats.tree.find_text("张三").is_some(), "{}", chats.xml);

    let s = setup();
    let (error, _) = fails(
        &s,
        14,
        TaskKind::DeleteChat,
        json!({"with": {"name": "王五"}}),
    )
    .await;
    assert_eq!(error.code, "chat_not_found");
}
