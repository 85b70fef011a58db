//! The other WeCom flows, driven with shell commands over a raw ADB connection: add a
//! friend (with a remark and tags), accept a friend request (with a remark), post to
//! Moments with a picked photo (to customers with a tag), delete a chat.

mod common;

use common::{center_of, ime_broadcast, Shell};
use youmi_phone_sim::{SentEvent, SimConfig, Simulator};

#[tokio::test]
async fn add_friend_by_phone_number() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    p.sh("am start -n com.tencent.wework/.launch.LaunchSplashActivity")
        .await;
    p.tap("text", "通讯录").await;
    p.tap("text", "添加客户").await;
    // The search field has focus on arrival, as in WeCom.
    p.sh("input text 13800138000").await;
    p.tap("text", "搜索").await;
    p.tap("text", "添加到通讯录").await;
    p.tap("resource-id", "com.tencent.wework:id/verify_message")
        .await;
    p.sh(&ime_broadcast("，来自官网")).await;
    // 备注: its own field, found through its label's row.
    p.tap("resource-id", "com.tencent.wework:id/remark_input")
        .await;
    p.sh(&ime_broadcast("王总")).await;
    // 标签 opens the picker of the enterprise's tags; 确定 hands them back.
    p.tap("text", "标签").await;
    assert_eq!(sim.screen().name, "tag_picker");
    let xml = p.dump().await;
    for tag in ["重要客户", "新客户", "VIP"] {
        assert!(xml.contains(&format!("text=\"{tag}\"")), "{xml}");
    }
    p.tap("text", "VIP").await;
    p.tap("text", "重要客户").await;
    p.tap("text", "确定(2)").await;
    let xml = p.dump().await;
    assert!(xml.contains("text=\"VIP、重要客户\""), "{xml}");
    assert!(xml.contains("text=\"我是小优，来自官网\""), "{xml}");
    p.tap("text", "发送").await;
    assert_eq!(
        sim.sent(),
        vec![SentEvent::FriendRequestSent {
            query: "13800138000".into(),
            name: "用户8000".into(),
            greeting: "我是小优，来自官网".into(),
            remark: "王总".into(),
            tags: vec!["VIP".into(), "重要客户".into()],
        }]
    );
    assert!(p
        .sh("uiautomator dump /dev/tty")
        .await
        .contains("text=\"等待验证\""));
    // An unknown id finds nobody.
    p.sh("input keyevent 4").await;
    p.tap("text", "添加客户").await;
    p.sh("input text !!").await;
    p.sh("input keyevent 66").await;
    assert!(p
        .sh("uiautomator dump /dev/tty")
        .await
        .contains("text=\"该用户不存在\""));
    sim.shutdown().await;
}

#[tokio::test]
async fn accept_a_friend_request_then_find_the_contact() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    p.sh("monkey -p com.tencent.wework -c android.intent.category.LAUNCHER 1")
        .await;
    p.tap("text", "通讯录").await;
    p.tap("text", "新的客户").await;
    let xml = p.sh("uiautomator dump /dev/tty").await;
    // Tap the "通过" in 陈七's row: the first accept button. 通过验证 asks for the 备注,
    // filled with the requester's name, and nothing is accepted before 完成.
    let (x, y) = center_of(&xml, "resource-id", "com.tencent.wework:id/accept_button").unwrap();
    p.sh(&format!("input tap {x} {y}")).await;
    assert_eq!(sim.screen().name, "friend_verify:陈七");
    assert!(sim.sent().is_empty());
    p.tap("resource-id", "com.tencent.wework:id/remark_input")
        .await;
    p.sh("am broadcast -a ADB_CLEAR_TEXT").await;
    p.sh(&ime_broadcast("陈七-课程")).await;
    p.tap("text", "完成").await;
    assert_eq!(sim.screen().name, "friend_requests");
    // 周八's request, accepted with the 备注 left alone.
    p.tap("text", "通过").await;
    p.tap("text", "完成").await;
    assert_eq!(
        sim.sent(),
        vec![
            SentEvent::FriendRequestAccepted {
                name: "陈七".into(),
                remark: "陈七-课程".into(),
            },
            SentEvent::FriendRequestAccepted {
                name: "周八".into(),
                remark: "周八".into(),
            },
        ]
    );
    assert!(!p.dump().await.contains("text=\"通过\""));
    p.sh("input keyevent BACK").await;
    p.tap("text", "搜索").await;
    p.sh(&ime_broadcast("陈")).await;
    p.tap("text", "陈七").await;
    assert_eq!(sim.screen().name, "profile:陈七");
    sim.shutdown().await;
}

#[tokio::test]
async fn moments_post_with_a_pushed_photo() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    p.sh("echo fakejpeg > /sdcard/DCIM/Camera/p1.jpg").await;
    p.sh("am broadcast -a android.intent.action.MEDIA_SCANNER_SCAN_FILE -d file:///sdcard/DCIM/Camera/p1.jpg").await;
    p.sh("am start -n com.tencent.wework/.launch.LaunchSplashActivity")
        .await;
    p.tap("text", "工作台").await;
    p.tap("text", "客户朋友圈").await;
    p.tap("content-desc", "发表到客户朋友圈").await;
    p.tap("resource-id", "com.tencent.wework:id/moments_input")
        .await;
    p.sh(&ime_broadcast("新品上市")).await;
    p.tap("content-desc", "添加图片").await;
    p.tap("content-desc", "照片, p1.jpg").await;
    p.tap("text", "完成(1)").await;
    // 可见的客户 > 按标签筛选 > a tag > 确定 > 完成.
    assert!(p.dump().await.contains("text=\"全部客户\""));
    p.tap("text", "可见的客户").await;
    p.tap("text", "按标签筛选").await;
    p.tap("text", "新客户").await;
    p.tap("text", "确定(1)").await;
    assert_eq!(sim.screen().name, "moments_visibility");
    p.tap("text", "完成").await;
    let xml = p.dump().await;
    assert!(
        xml.contains("text=\"新客户\"") && !xml.contains("全部客户"),
        "{xml}"
    );
    p.tap("text", "发表").await;
    assert_eq!(
        sim.sent(),
        vec![SentEvent::MomentPost {
            text: "新品上市".into(),
            media: vec!["/sdcard/DCIM/Camera/p1.jpg".into()],
            visible_to_tags: vec!["新客户".into()],
        }]
    );
    assert_eq!(sim.screen().name, "moments");
    sim.shutdown().await;
}

#[tokio::test]
async fn delete_a_chat_with_a_long_press() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    p.sh("am start -n com.tencent.wework/.launch.LaunchSplashActivity")
        .await;
    let xml = p.sh("uiautomator dump /dev/tty").await;
    let (x, y) = center_of(&xml, "text", "李四").unwrap();
    p.sh(&format!("input swipe {x} {y} {x} {y} 800")).await;
    p.tap("text", "删除").await;
    assert!(sim.sent().is_empty(), "a confirmation comes first");
    p.tap("resource-id", "com.tencent.wework:id/dialog_confirm")
        .await;
    assert_eq!(
        sim.sent(),
        vec![SentEvent::ChatDeleted {
            with: "李四".into()
        }]
    );
    assert!(!p
        .sh("uiautomator dump /dev/tty")
        .await
        .contains("text=\"李四\""));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_tag_picker_lists_only_the_configured_tags() {
    let sim = Simulator::start(SimConfig {
        tags: vec!["老客户".into(), "已成交".into()],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut p = Shell::new(&sim).await;
    p.sh("am start -n com.tencent.wework/.launch.LaunchSplashActivity")
        .await;
    p.tap("text", "工作台").await;
    p.tap("text", "客户朋友圈").await;
    p.tap("content-desc", "发表到客户朋友圈").await;
    p.tap("text", "可见的客户").await;
    // 按标签筛选 with no tag picked cannot be confirmed.
    p.tap("text", "按标签筛选").await;
    p.tap("text", "确定").await;
    p.tap("text", "完成").await;
    assert_eq!(sim.screen().name, "moments_visibility");
    p.tap("text", "按标签筛选").await;
    let xml = p.dump().await;
    assert!(xml.contains("text=\"老客户\"") && xml.contains("text=\"已成交\""));
    // A tag the enterprise does not have is simply not there to pick.
    assert!(!xml.contains("VIP") && !xml.contains("重要客户"), "{xml}");
    // Tapping a picked tag again unpicks it.
    p.tap("text", "老客户").await;
    p.tap("text", "已成交").await;
    p.tap("text", "老客户").await;
    p.tap("text", "确定(1)").await;
    p.tap("text", "完成").await;
    p.tap("resource-id", "com.tencent.wework:id/moments_input")
        .await;
    p.sh(&ime_broadcast("限时优惠")).await;
    p.tap("text", "发表").await;
    assert_eq!(
        sim.sent(),
        vec![SentEvent::MomentPost {
            text: "限时优惠".into(),
            media: Vec::new(),
            visible_to_tags: vec!["已成交".into()],
        }]
    );
    sim.shutdown().await;
}
