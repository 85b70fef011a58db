//! Faults that put the app in a given state at a given point, over a raw ADB
//! connection: WeCom's and Android's popups on the screen they are scripted
//! for, a button the app does not draw, a screen that ignores BACK, and WeCom
//! uninstalled.

mod common;

use common::Shell;
use youmi_phone_sim::{DialogWhen, Fault, Input, Popup, SimConfig, Simulator};

const START: &str = "monkey -p com.tencent.wework -c android.intent.category.LAUNCHER 1";

#[tokio::test]
async fn popups_show_on_the_screen_they_are_scripted_for() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    sim.set_fault(Fault::Popup {
        popup: Popup::UpdatePrompt { forced: true },
        when: DialogWhen::Screen("profile"),
    });
    sim.set_fault(Fault::Popup {
        popup: Popup::PermissionDialog,
        when: DialogWhen::Screen("main:workbench"),
    });
    p.sh(START).await;
    p.tap("content-desc", "通讯录").await;
    assert_eq!(sim.screen().name, "main:contacts", "not yet");
    p.tap("text", "李四").await;
    assert_eq!(sim.screen().name, "profile:李四+update_prompt");
    let xml = p.dump().await;
    assert!(xml.contains("text=\"发现新版本\""), "{xml}");
    assert!(xml.contains("text=\"立即更新\""), "{xml}");
    assert!(!xml.contains("text=\"以后再说\""), "forced: {xml}");
    // A forced update takes no BACK; its button closes it.
    p.sh("input keyevent 4").await;
    assert_eq!(sim.screen().name, "profile:李四+update_prompt");
    p.tap("text", "立即更新").await;
    assert_eq!(sim.screen().name, "profile:李四");

    p.sh("input keyevent 4").await;
    p.tap("content-desc", "工作台").await;
    assert_eq!(sim.screen().name, "main:workbench+permission_dialog");
    assert!(
        p.sh("dumpsys window | grep mCurrentFocus")
            .await
            .contains("com.android.permissioncontroller/"),
        "the dialog's window has focus"
    );
    p.tap("text", "允许").await;
    assert_eq!(sim.screen().name, "main:workbench");
    let last = sim.inputs().pop().unwrap();
    assert_eq!(last.screen, "main:workbench+permission_dialog");
    assert_eq!(last.hit.as_deref(), Some("允许"));
}

#[tokio::test]
async fn a_missing_button_and_a_screen_that_ignores_back() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    p.sh(START).await;
    p.tap("content-desc", "通讯录").await;
    p.tap("text", "张三").await;
    let xml = p.dump().await;
    assert!(xml.contains("text=\"发消息\""), "{xml}");
    sim.set_fault(Fault::MissingText {
        text: "发消息".into(),
    });
    assert!(!p.dump().await.contains("text=\"发消息\""));
    // Where it was drawn, a tap reaches nothing.
    let (x, y) = common::center_of(&xml, "text", "发消息").unwrap();
    p.sh(&format!("input tap {x} {y}")).await;
    assert_eq!(sim.screen().name, "profile:张三");
    assert_eq!(sim.inputs().last().unwrap().hit, None);

    sim.set_fault(Fault::BackIgnored);
    p.sh("input keyevent 4").await;
    assert_eq!(sim.screen().name, "profile:张三");
    sim.clear_faults();
    assert!(p.dump().await.contains("text=\"发消息\""));
    p.sh("input keyevent 4").await;
    assert_eq!(sim.screen().name, "main:contacts");
}

#[tokio::test]
async fn an_uninstalled_wecom_cannot_be_started_until_it_is_installed_again() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    sim.uninstall_wecom();
    assert_eq!(
        p.sh("pm path com.tencent.wework; echo EXIT:$?").await,
        "EXIT:1\n"
    );
    assert!(!p
        .sh("dumpsys package com.tencent.wework")
        .await
        .contains("versionName"));
    assert!(p.sh(START).await.contains("monkey aborted"));
    assert!(p
        .sh("am start -n com.tencent.wework/.launch.LaunchSplashActivity")
        .await
        .contains("does not exist"));
    assert!(
        !p.dump().await.contains("企业微信"),
        "no icon on the home screen"
    );
    assert_eq!(sim.screen().name, "launcher");
    assert!(sim.inputs().is_empty());

    sim.set_wecom_version("4.1.30");
    assert!(p.sh(START).await.contains("Events injected: 1"));
    assert_eq!(sim.screen().name, "main:messages");
    assert_eq!(
        sim.inputs().iter().map(|e| &e.input).collect::<Vec<_>>(),
        [&Input::Launch]
    );
}
