//! Drives the simulator through the real adb server (Debian's `adb` package), the normal
//! setup with USB phones: `adb connect`, shell (v2, with exit codes), push and pull, a tap
//! flow, and the faults. Skips with a message when `adb` is not on PATH.

mod common;

use std::time::Duration;

use common::center_of;
use youmi_phone_sim::adb_server::{adb_on_path, AdbServer, DEADLINE};
use youmi_phone_sim::{Fault, SentEvent, SimConfig, Simulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_real_adb_server() {
    if !adb_on_path() {
        return;
    }
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let serial = sim.addr().to_string();
    let s = serial.as_str();
    let adb = AdbServer::start().await;
    adb.connect(s).await;

    // The UI dump, as the executor reads it.
    let said = adb
        .ok(&["-s", s, "shell", "uiautomator", "dump", "/sdcard/d.xml"])
        .await;
    assert_eq!(said, "UI hierchary dumped to: /sdcard/d.xml\n");
    let xml = adb.ok(&["-s", s, "shell", "cat", "/sdcard/d.xml"]).await;
    assert!(xml.starts_with("<?xml version='1.0' encoding='UTF-8' standalone='yes' ?><hierarchy"));

    // Exit codes come through shell protocol v2.
    let out = adb
        .run(&["-s", s, "shell", "exit 42"], DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(42));
    let out = adb
        .run(&["-s", s, "shell", "nosuchcmd"], DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "/system/bin/sh: nosuchcmd: not found\n"
    );

    // Push, then pull back.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("photo.jpg");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&local, &bytes).unwrap();
    adb.ok(&[
        "-s",
        s,
        "push",
        local.to_str().unwrap(),
        "/sdcard/Pictures/photo.jpg",
    ])
    .await;
    assert_eq!(sim.file("/sdcard/Pictures/photo.jpg").unwrap(), bytes);
    let back = dir.path().join("back.jpg");
    adb.ok(&[
        "-s",
        s,
        "pull",
        "/sdcard/Pictures/photo.jpg",
        back.to_str().unwrap(),
    ])
    .await;
    assert_eq!(std::fs::read(&back).unwrap(), bytes);

    // A tap flow that sends a message.
    let sh = |cmd: String| {
        let adb = &adb;
        async move { adb.ok(&["-s", s, "shell", &cmd]).await }
    };
    let dump = || sh("uiautomator dump /dev/tty".to_owned());
    sh("am start -n com.tencent.wework/.launch.LaunchSplashActivity".into()).await;
    let focus = sh("dumpsys window windows | grep mCurrentFocus".into()).await;
    assert!(focus.contains("com.tencent.wework/"), "{focus}");
    let (x, y) = center_of(&dump().await, "text", "张三").unwrap();
    sh(format!("input tap {x} {y}")).await;
    let (x, y) = center_of(
        &dump().await,
        "resource-id",
        "com.tencent.wework:id/input_editor",
    )
    .unwrap();
    sh(format!("input tap {x} {y}")).await;
    sh(common::ime_broadcast("明天见")).await;
    let (x, y) = center_of(&dump().await, "text", "发送").unwrap();
    sh(format!("input tap {x} {y}")).await;
    assert_eq!(
        sim.sent(),
        vec![SentEvent::Message {
            to: "张三".into(),
            text: "明天见".into()
        }]
    );

    // adb_client through this server: it opens shell v2 but 3.2.3 drops the exit packet
    // when the stream ends (it returns `None` on EOF), so the executor wraps commands.
    let server_addr = adb.addr();
    let serial_owned = serial.clone();
    let code = common::blocking(DEADLINE, move || {
        use adb_client::ADBDeviceExt;
        let mut dev =
            adb_client::server_device::ADBServerDevice::new(serial_owned, Some(server_addr));
        let mut out = Vec::new();
        let code = dev
            .shell_command(
                &"echo hi; sh -c 'exit 5'; echo EXIT:$?",
                Some(&mut out),
                None,
            )
            .expect("shell");
        (code.is_some(), out)
    })
    .await
    .expect("no hang");
    assert_eq!(
        String::from_utf8_lossy(&code.1),
        "hi\nEXIT:5\n",
        "exit code reported: {}",
        code.0
    );

    // Faults: a dump that never goes idle.
    sim.set_fault(Fault::DumpNotIdle { times: 1 });
    let out = adb
        .run(
            &["-s", s, "shell", "uiautomator dump /sdcard/d.xml"],
            DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ERROR: could not get idle state.\n"
    );

    // A command that hangs: adb waits, our deadline ends it.
    sim.set_fault(Fault::Hang {
        pattern: "dumpsys battery".into(),
        times: 1,
    });
    let hung = adb
        .run(
            &["-s", s, "shell", "dumpsys battery"],
            Duration::from_secs(1),
        )
        .await;
    assert!(hung.is_none(), "the hanging command must not answer");

    // A risk-control popup on the next screen change.
    sim.set_fault(Fault::RiskControl {
        title: "账号存在异常".into(),
        message: "你的账号存在异常，已被限制使用部分功能".into(),
    });
    // The first BACK only hides the keyboard; the second leaves the chat.
    sh("input keyevent 4 4".into()).await;
    assert!(dump().await.contains("text=\"账号存在异常\""));

    // A dropped connection: adb ends the command in time, but adb 29 reports exit 0 for
    // a shell v2 stream that ends without its exit packet, so only the missing end marker
    // of a wrapped command tells the truth.
    sim.set_fault(Fault::DropConnection {
        pattern: "getprop".into(),
    });
    let out = adb
        .run(&["-s", s, "shell", "getprop; echo EXIT:$?"], DEADLINE)
        .await
        .expect("a dropped connection ends the command");
    // How much of the half that was written reaches the client is a race inside adb
    // (it may close the local socket before forwarding the last packet): whatever
    // arrived is a prefix of the real output, and the end marker never does.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let full = "[ro.product.model]: [YoumiSim]";
    assert!(
        full.starts_with(stdout.as_ref()) || stdout.starts_with(full),
        "{stdout}"
    );
    assert!(!stdout.contains("EXIT:"), "truncated: {stdout}");
    // The phone comes back with a new `adb connect`.
    let _ = adb.run(&["disconnect", s], DEADLINE).await;
    adb.connect(s).await;
    assert_eq!(adb.ok(&["-s", s, "shell", "echo", "back"]).await, "back\n");

    drop(adb);
    sim.shutdown().await;
}
