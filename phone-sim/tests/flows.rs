//! The other WeCom flows, driven with shell commands over a raw ADB connection: add a
//! friend, accept a friend request, post to Moments with a picked photo, delete a chat.

mod common;

use common::{center_of, ime_broadcast, RawAdb};
use youmi_phone_sim::{SentEvent, SimConfig, SimHandle, Simulator};

struct Shell {
    c: RawAdb,
}

impl Shell {
    async fn new(sim: &SimHandle) -> Self {
        Self {
            c: RawAdb::connect(sim.addr()).await.unwrap().0,
        }
    }

    async fn sh(&mut self, cmd: &str) -> String {
        let (l, r) = self.c.open(&format!("shell:{cmd}")).await.unwrap().unwrap();
        let fut = self.c.read_stream(l, r);
        let (out, clean) = tokio::time::timeout(std::time::Duration::from_secs(5), fut)
            .await
            .expect("answers in time")
            .unwrap();
        assert!(clean);
        String::from_utf8(out).unwrap()
    }

    async fn tap(&mut self, attr: &str, value: &str) {
        let xml = self.sh("uiautomator dump /dev/tty").await;
        let (x, y) = center_of(&xml, attr, value)
            .unwrap_or_else(|| panic!("no {attr}={value} on screen: {xml}"));
        self.sh(&format!("input tap {x} {y}")).await;
    }
}

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
    p.tap("text", "发送").await;
    assert_eq!(
        sim.sent(),
        vec![SentEvent::FriendRequestSent {
            query: "13800138000".into(),
            name: "用户8000".into(),
            greeting: "我是小优，来自官网".into(),
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
    // Tap the "通过" in 陈七's row: the first accept button.
    let (x, y) = center_of(&xml, "resource-id", "com.tencent.wework:id/accept_button").unwrap();
    p.sh(&format!("input tap {x} {y}")).await;
    assert_eq!(
        sim.sent(),
        vec![SentEvent::FriendRequestAccepted {
            name: "陈七".into()
        }]
    );
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
    p.tap("text", "发表").await;
    assert_eq!(
        sim.sent(),
        vec![SentEvent::MomentPost {
            text: "新品上市".into(),
            media: vec!["/sdcard/DCIM/Camera/p1.jpg".into()],
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
