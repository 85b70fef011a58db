//! Scripted dialogs (`Fault::Dialog`): any title, message and buttons, drawn as WeCom
//! draws its own or as Android's AlertDialog window, shown on a screen change, on the
//! n-th, or right after a send; and the action log that records what was pressed
//! while one was up. Driven with shell commands over a raw ADB connection.

mod common;

use common::{ime_broadcast, Shell};
use youmi_phone_sim::{DialogFault, DialogStyle, DialogWhen, Fault, Input, SimConfig, Simulator};

impl Shell {
    async fn launch(&mut self) {
        self.sh("am start -n com.tencent.wework/.launch.LaunchSplashActivity")
            .await;
    }
}

#[tokio::test]
async fn a_wecom_dialog_with_any_buttons_shows_over_the_screen() {
    for buttons in [vec!["确定"], vec!["取消", "好的"], vec![]] {
        let sim = Simulator::start(SimConfig::default()).await.unwrap();
        let mut p = Shell::new(&sim).await;
        sim.set_fault(Fault::Dialog(DialogFault::new(
            "提示",
            "操作过于频繁，请稍后再试",
            &buttons,
        )));
        p.launch().await;
        assert_eq!(sim.screen().name, "main:messages+dialog");
        let xml = p.dump().await;
        assert!(xml.contains("text=\"操作过于频繁，请稍后再试\""), "{xml}");
        assert!(
            xml.contains("content-desc=\"消息\""),
            "the screen under it: {xml}"
        );
        for button in &buttons {
            assert!(xml.contains(&format!("text=\"{button}\"")), "{xml}");
        }
        let buttons_shown = xml.matches("class=\"android.widget.Button\"").count();
        assert_eq!(buttons_shown, buttons.len(), "{xml}");
        // The screen under it takes no taps; a button closes it, and BACK too.
        p.tap("content-desc", "通讯录").await;
        assert_eq!(sim.screen().name, "main:messages+dialog");
        match buttons.last() {
            Some(button) => p.tap("text", button).await,
            None => {
                p.sh("input keyevent 4").await;
            }
        }
        assert_eq!(sim.screen().name, "main:messages");
    }
}

#[tokio::test]
async fn an_alert_dialog_window_is_dumped_alone() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    sim.set_fault(Fault::Dialog(DialogFault {
        style: DialogStyle::Window,
        cancelable: false,
        ..DialogFault::new("", "账号存在异常", &["OK", "Cancel"])
    }));
    p.launch().await;
    let xml = p.dump().await;
    assert!(
        xml.contains("<hierarchy rotation=\"0\"><node index=\"0\" text=\"\" resource-id=\"\" class=\"android.widget.FrameLayout\" package=\"com.tencent.wework\" content-desc=\"\" checkable=\"false\" checked=\"false\" clickable=\"false\" enabled=\"true\" focusable=\"false\" focused=\"false\" scrollable=\"false\" long-clickable=\"false\" password=\"false\" selected=\"false\" bounds=\"[84,852][996,1548]\">"),
        "the dialog's window is the dump's root: {xml}"
    );
    assert!(!xml.contains("content-desc=\"消息\""), "{xml}");
    assert!(!xml.contains("android:id/alertTitle"), "no title: {xml}");
    assert!(xml.contains("resource-id=\"android:id/message\" class=\"android.widget.TextView\" package=\"com.tencent.wework\" content-desc=\"\""), "{xml}");
    assert!(xml.contains("resource-id=\"android:id/button1\""), "{xml}");
    // Not cancelable: BACK leaves it up; its button closes it.
    p.sh("input keyevent 4").await;
    assert_eq!(sim.screen().name, "main:messages+dialog");
    p.tap("resource-id", "android:id/button1").await;
    assert_eq!(sim.screen().name, "main:messages");
}

#[tokio::test]
async fn a_dialog_shows_on_the_nth_change_or_after_a_send() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    sim.set_fault(Fault::Dialog(DialogFault {
        when: DialogWhen::Change(3),
        ..DialogFault::new("提示", "请先完成实名认证", &["去认证"])
    }));
    p.launch().await; // 1
    p.tap("content-desc", "通讯录").await; // 2
    assert!(!sim.screen().name.contains("+dialog"));
    p.tap("content-desc", "消息").await; // 3
    assert_eq!(sim.screen().name, "main:messages+dialog");
    p.tap("text", "去认证").await;

    sim.set_fault(Fault::Dialog(DialogFault {
        when: DialogWhen::AfterSend,
        ..DialogFault::new("", "发送过于频繁", &["知道了"])
    }));
    p.tap("text", "张三").await;
    p.tap("class", "android.widget.EditText").await;
    p.sh(&ime_broadcast("你好")).await;
    assert!(!sim.screen().name.contains("+dialog"));
    p.tap("text", "发送").await;
    assert_eq!(sim.sent().len(), 1);
    assert_eq!(sim.screen().name, "chat:张三+dialog");

    // The action log has every input with the screen it came to.
    p.sh("input keyevent 4").await;
    let log = sim.inputs();
    assert_eq!(log.first().map(|e| &e.input), Some(&Input::Launch));
    assert!(log
        .iter()
        .any(|e| e.input == Input::Text("你好".into()) && e.screen == "chat:张三"));
    let last = log.last().unwrap();
    assert_eq!(last.input, Input::Key(4));
    assert_eq!(last.screen, "chat:张三+dialog");
}
