//! The phone driven in process (`LocalPhone`) is the phone ADB drives: a served
//! simulator's handle and a shell over a raw ADB connection take turns on one
//! phone and see each other's doing; and a phone with no socket at all.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{ime_broadcast, Shell};
use youmi_phone_sim::{
    Input, LocalError, LocalPhone, Notification, SentEvent, SimConfig, Simulator,
};

/// Taps, in process, the last view on screen whose text is `text`.
fn tap_last(phone: &LocalPhone, text: &str) {
    let mut bounds = None;
    phone.screen().tree.walk(&mut |n| {
        if n.text == text {
            bounds = Some(n.bounds);
        }
    });
    let b = bounds.unwrap_or_else(|| panic!("no {text:?} on {}", phone.screen().xml));
    phone.tap((b.left + b.right) / 2, (b.top + b.bottom) / 2);
}

#[tokio::test]
async fn in_process_calls_and_shell_commands_drive_one_phone() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    sim.launch_wecom().unwrap();
    let xml = sim.dump().unwrap();
    assert_eq!(
        p.dump().await,
        format!("{xml}UI hierchary dumped to: /dev/tty\n")
    );
    p.tap("content-desc", "通讯录").await;
    assert_eq!(sim.screen().name, "main:contacts");
    tap_last(&sim, "搜索");
    sim.type_text("张").unwrap();
    assert!(p.dump().await.contains("text=\"张\""));
    p.sh(&ime_broadcast("三")).await;
    // The search result, below the field that says 张三 too.
    tap_last(&sim, "张三");
    p.tap("text", "发消息").await;
    p.tap("class", "android.widget.EditText").await;
    sim.type_text("你好").unwrap();
    p.tap("text", "发送").await;
    assert_eq!(sim.sent(), vec![SentEvent::message("张三", "你好")]);
    let (package, activity) = sim.foreground();
    assert!(p
        .sh("dumpsys window | grep mCurrentFocus")
        .await
        .contains(&format!("{package}/{activity}")));
    // BACK hides the keyboard, then leaves the chat.
    sim.key(4);
    p.sh("input keyevent 4").await;
    assert_eq!(sim.screen().name, "profile:张三");
    let inputs: Vec<Input> = sim.inputs().into_iter().map(|e| e.input).collect();
    assert_eq!(inputs.first(), Some(&Input::Launch));
    assert_eq!(
        inputs
            .iter()
            .filter(|i| matches!(i, Input::Text(_)))
            .collect::<Vec<_>>(),
        [
            &Input::Text("张".into()),
            &Input::Text("三".into()),
            &Input::Text("你好".into())
        ]
    );

    // Storage and the media scanner.
    sim.push_file("/sdcard/DCIM/Youmi/a.jpg", vec![0xFF, 0xD8, 0xFF])
        .unwrap();
    sim.scan_media("/sdcard/DCIM/Youmi/a.jpg");
    assert_eq!(p.sh("ls /sdcard/DCIM/Youmi").await, "a.jpg\n");
    assert_eq!(sim.gallery(), ["/sdcard/DCIM/Youmi/a.jpg"]);
    p.sh("rm -f /sdcard/DCIM/Youmi/a.jpg").await;
    assert_eq!(sim.list_dir("/sdcard/DCIM/Youmi"), Some(Vec::new()));
    assert!(sim.gallery().is_empty());
    assert_eq!(sim.list_dir("/sdcard/nowhere"), None);

    // Do-not-disturb and notifications.
    sim.set_dnd("on").unwrap();
    assert_eq!(p.sh("settings get global zen_mode").await, "1\n");
    p.sh("cmd notification set_dnd off").await;
    assert_eq!(sim.zen_mode(), 0);
    assert_eq!(
        sim.set_dnd("sometimes"),
        Err(LocalError::DndMode("sometimes".into()))
    );
    p.sh("cmd notification post -S bigtext -t 'Youmi' youmi '3 秒后开始'")
        .await;
    sim.notify("youmi", "开始");
    assert_eq!(
        sim.notifications(),
        [
            Notification {
                tag: "youmi".into(),
                text: "3 秒后开始".into()
            },
            Notification {
                tag: "youmi".into(),
                text: "开始".into()
            }
        ]
    );
    sim.shutdown().await;
}

#[test]
fn a_local_phone_needs_no_socket_nor_runtime() {
    let phone = Simulator::local(SimConfig {
        ime_installed: false,
        ..SimConfig::default()
    });
    assert_eq!(phone.serial(), "YOUMISIM0001");
    phone.launch_wecom().unwrap();
    assert_eq!(phone.screen().name, "main:messages");
    assert!(phone.screenshot().unwrap().starts_with(b"\x89PNG"));
    assert_eq!(phone.type_text("你好"), Err(LocalError::NoKeyboard));
    // Held long enough on a chat it is a long press (its menu); moved, a swipe.
    let row = phone.screen().tree.find_text("李四").unwrap().bounds;
    phone.swipe(
        (row.left + 10, row.top + 10),
        (row.left + 10, row.top + 12),
        Duration::from_millis(100),
    );
    assert_eq!(
        phone.screen().name,
        "main:messages",
        "too short to do anything"
    );
    phone.long_press(row.left + 10, row.top + 10, Duration::from_millis(800));
    assert_eq!(phone.screen().name, "main:messages+chat_menu");
    let last = phone.inputs().pop().unwrap();
    assert_eq!(
        last.input,
        Input::LongPress {
            x: row.left + 10,
            y: row.top + 10
        }
    );
    assert_eq!(last.hit.as_deref(), Some("李四"));
    phone.key(4);
    phone.force_stop_wecom();
    assert_eq!(phone.screen().name, "launcher");
    phone.uninstall_wecom();
    assert_eq!(phone.wecom_version(), None);
    assert_eq!(phone.launch_wecom(), Err(LocalError::NotInstalled));
}

#[tokio::test]
async fn a_hook_runs_once_when_its_text_is_typed() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let count = runs.clone();
    sim.when_typed("张三", move || {
        count.fetch_add(1, Ordering::SeqCst);
    });
    p.sh("am start -n com.tencent.wework/.launch.LaunchSplashActivity")
        .await;
    p.tap("content-desc", "通讯录").await;
    p.tap("text", "搜索").await;
    p.sh(&ime_broadcast("李四")).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "another text");
    p.sh(&ime_broadcast("张三")).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    sim.type_text("张三").unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1, "once");
    sim.shutdown().await;
}
