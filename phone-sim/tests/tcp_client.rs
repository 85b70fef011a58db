//! Drives the simulator directly over TCP with `adb_client::ADBTcpDevice`, the way the
//! executor talks to a phone in wireless-debugging mode.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use adb_client::tcp::ADBTcpDevice;
use adb_client::ADBDeviceExt;
use common::{blocking, center_of, ime_broadcast};
use youmi_phone_sim::{Fault, SentEvent, SimConfig, SimHandle, Simulator};

const DEADLINE: Duration = Duration::from_secs(10);

struct Phone {
    dev: ADBTcpDevice,
    _key_dir: tempfile::TempDir,
}

impl Phone {
    fn connect(addr: SocketAddr) -> Self {
        let key_dir = tempfile::tempdir().unwrap();
        // A fixed throwaway key: without one adb_client generates a 2048-bit RSA key per
        // connection, which takes seconds in a debug build. The simulator asks for no
        // authentication (a phone with `ro.adb.secure=0`), so the key is never used.
        let key: PathBuf = key_dir.path().join("adbkey");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/throwaway_adbkey.pem"
            ),
            &key,
        )
        .unwrap();
        let dev = ADBTcpDevice::new_with_custom_private_key(addr, key).expect("connect");
        Self {
            dev,
            _key_dir: key_dir,
        }
    }

    fn sh(&mut self, cmd: &str) -> String {
        let mut out = Vec::new();
        self.dev
            .shell_command(&cmd, Some(&mut out), None)
            .unwrap_or_else(|e| panic!("shell {cmd}: {e}"));
        String::from_utf8(out).expect("utf-8 output")
    }

    fn dump(&mut self) -> String {
        let said = self.sh("uiautomator dump /sdcard/d.xml");
        assert_eq!(said, "UI hierchary dumped to: /sdcard/d.xml\n");
        self.sh("cat /sdcard/d.xml")
    }

    fn tap_text(&mut self, attr: &str, value: &str) {
        let xml = self.dump();
        let (x, y) = center_of(&xml, attr, value)
            .unwrap_or_else(|| panic!("no node with {attr}={value} in {xml}"));
        self.sh(&format!("input tap {x} {y}"));
    }
}

async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config).await.expect("simulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_basics_and_exit_codes_on_raw_shell() {
    let sim = start(SimConfig::default()).await;
    let addr = sim.addr();
    let outputs = blocking(DEADLINE, move || {
        let mut p = Phone::connect(addr);
        vec![
            p.sh("echo hello"),
            p.sh("getprop ro.product.model"),
            p.sh("false; echo EXIT:$?"),
            p.sh("frobnicate --now; echo EXIT:$?"),
            p.sh("sh -c 'exit 3'; echo EXIT:$?"),
            p.sh("dumpsys package com.tencent.wework | grep versionName"),
            p.sh("settings get global zen_mode"),
            p.sh("cmd notification set_dnd on && settings get global zen_mode"),
            p.sh("dumpsys battery | grep level"),
        ]
    })
    .await
    .expect("no hang");
    assert_eq!(outputs[0], "hello\n");
    assert_eq!(outputs[1], "YoumiSim\n");
    assert_eq!(outputs[2], "EXIT:1\n");
    assert_eq!(
        outputs[3],
        "/system/bin/sh: frobnicate: not found\nEXIT:127\n"
    );
    assert_eq!(outputs[4], "EXIT:3\n");
    assert_eq!(outputs[5], "    versionName=4.1.30\n");
    assert_eq!(outputs[6], "0\n");
    assert_eq!(outputs[7], "1\n");
    assert_eq!(outputs[8], "  level: 85\n");
    assert_eq!(sim.zen_mode(), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_message_flow_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("sent.jsonl");
    let sim = start(SimConfig {
        record: Some(record.clone()),
        ..SimConfig::default()
    })
    .await;
    let addr = sim.addr();
    let focus = blocking(DEADLINE, move || {
        let mut p = Phone::connect(addr);
        let before = p.sh("dumpsys window windows | grep mCurrentFocus");
        p.sh("am start -n com.tencent.wework/.launch.LaunchSplashActivity");
        let after = p.sh("dumpsys window windows | grep mCurrentFocus");
        p.tap_text("text", "通讯录");
        p.tap_text("text", "王五");
        p.tap_text("text", "发消息");
        // Typing before the field has focus goes nowhere, as on a phone.
        p.sh(&ime_broadcast("lost"));
        p.tap_text("resource-id", "com.tencent.wework:id/input_editor");
        p.sh(&ime_broadcast("你好，王五 👋"));
        p.tap_text("text", "发送");
        let xml = p.dump();
        assert!(xml.contains("text=\"你好，王五 👋\""), "{xml}");
        (before, after)
    })
    .await
    .expect("no hang");
    assert!(focus.0.contains("mCurrentFocus=Window{"), "{}", focus.0);
    assert!(focus.0.contains("nexuslauncher"), "{}", focus.0);
    assert!(
        focus
            .1
            .contains("com.tencent.wework/com.tencent.wework.launch.WwMainActivity"),
        "{}",
        focus.1
    );
    let want = SentEvent::Message {
        to: "王五".into(),
        text: "你好，王五 👋".into(),
    };
    assert_eq!(sim.sent(), vec![want.clone()]);
    let line = std::fs::read_to_string(&record).unwrap();
    let parsed: SentEvent = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(parsed, want);
    assert_eq!(sim.screen().name, "chat:王五");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ime_the_broadcast_types_nothing() {
    let sim = start(SimConfig {
        ime_installed: false,
        ..SimConfig::default()
    })
    .await;
    let addr = sim.addr();
    let (imes, typed) = blocking(DEADLINE, move || {
        let mut p = Phone::connect(addr);
        let imes = p.sh("ime list -s");
        p.sh("monkey -p com.tencent.wework -c android.intent.category.LAUNCHER 1");
        p.tap_text("text", "张三");
        p.tap_text("resource-id", "com.tencent.wework:id/input_editor");
        p.sh(&ime_broadcast("hello"));
        let xml = p.dump();
        (imes, xml.contains("text=\"发送\""))
    })
    .await
    .expect("no hang");
    assert!(!imes.contains("adbkeyboard"), "{imes}");
    assert!(!typed, "nothing typed, so no send button");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_stat_pull_and_media_scan() {
    let sim = start(SimConfig::default()).await;
    let addr = sim.addr();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sent = payload.clone();
    let (stat, pulled, scan) = blocking(DEADLINE, move || {
        let mut p = Phone::connect(addr);
        p.dev
            .push(&mut &sent[..], &"/sdcard/DCIM/Camera/a.jpg")
            .expect("push");
        let stat = p.dev.stat(&"/sdcard/DCIM/Camera/a.jpg").expect("stat");
        let mut pulled = Vec::new();
        p.dev
            .pull(&"/sdcard/DCIM/Camera/a.jpg", &mut pulled)
            .expect("pull");
        let scan = p.sh("am broadcast -a android.intent.action.MEDIA_SCANNER_SCAN_FILE -d file:///sdcard/DCIM/Camera/a.jpg");
        (stat, pulled, scan)
    })
    .await
    .expect("no hang");
    assert_eq!(stat.file_size as usize, payload.len());
    assert_eq!(stat.file_perm & 0o170000, 0o100000, "a regular file");
    assert_eq!(pulled, payload);
    assert!(scan.ends_with("Broadcast completed: result=0\n"), "{scan}");
    assert_eq!(sim.file("/sdcard/DCIM/Camera/a.jpg").unwrap(), payload);
    assert_eq!(sim.gallery(), vec!["/sdcard/DCIM/Camera/a.jpg".to_owned()]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screencap_is_a_png_of_the_screen() {
    let sim = start(SimConfig::default()).await;
    let addr = sim.addr();
    let png = blocking(DEADLINE, move || {
        let mut p = Phone::connect(addr);
        let mut out = Vec::new();
        p.dev
            .shell_command(&"screencap -p", Some(&mut out), None)
            .expect("screencap");
        out
    })
    .await
    .expect("no hang");
    let img = image::load_from_memory(&png).expect("a decodable png");
    assert_eq!((img.width(), img.height()), (1080, 2400));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_that_never_goes_idle() {
    let sim = start(SimConfig {
        faults: vec![Fault::DumpNotIdle { times: 2 }],
        ..SimConfig::default()
    })
    .await;
    let addr = sim.addr();
    let outs = blocking(DEADLINE, move || {
        let mut p = Phone::connect(addr);
        (0..3)
            .map(|_| p.sh("uiautomator dump /sdcard/d.xml; echo EXIT:$?"))
            .collect::<Vec<_>>()
    })
    .await
    .expect("no hang");
    assert_eq!(outs[0], "ERROR: could not get idle state.\nEXIT:0\n");
    assert_eq!(outs[1], outs[0]);
    assert_eq!(outs[2], "UI hierchary dumped to: /sdcard/d.xml\nEXIT:0\n");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn popups_appear_on_the_next_screen_change() {
    let sim = start(SimConfig::default()).await;
    let addr = sim.addr();
    sim.set_fault(Fault::UpdatePrompt);
    let xml = blocking(DEADLINE, move || {
        let mut p = Phone::connect(addr);
        p.sh("am start -n com.tencent.wework/.launch.LaunchSplashActivity");
        p.dump()
    })
    .await
    .expect("no hang");
    assert!(xml.contains("text=\"发现新版本\""), "{xml}");
    assert!(xml.contains("text=\"以后再说\""));
    assert_eq!(sim.screen().name, "main:messages+update_prompt");

    sim.set_fault(Fault::RiskControl {
        title: "操作频繁".into(),
        message: "你的操作过于频繁，请稍后再试".into(),
    });
    let xml = blocking(DEADLINE, move || {
        let mut p = Phone::connect(addr);
        p.tap_text("text", "以后再说");
        // Taps under a popup do nothing: it is modal.
        p.tap_text("text", "通讯录");
        let after_tab = p.dump();
        p.sh("input keyevent 4");
        (after_tab, p.dump())
    })
    .await
    .expect("no hang");
    assert!(xml.0.contains("text=\"操作频繁\""), "{}", xml.0);
    assert!(
        xml.1.contains("text=\"操作频繁\""),
        "back does not dismiss risk control"
    );
    assert_eq!(sim.screen().name, "main:contacts+risk_control");
    sim.shutdown().await;
}
