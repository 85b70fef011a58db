//! Faults that end or stall connections, and streaming output, driven with a minimal raw
//! client (see `common::RawAdb` for why not adb_client). Each step has a deadline.

mod common;

use std::time::Duration;

use common::{decode_v2, RawAdb};
use tokio::time::timeout;
use youmi_phone_sim::{Fault, SimConfig, Simulator};

const DEADLINE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn shell_v2_carries_stdout_stderr_and_exit_code() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let (mut c, banner) = RawAdb::connect(sim.addr()).await.unwrap();
    assert!(banner.starts_with("device::"), "{banner}");
    assert!(banner.contains("ro.product.model=YoumiSim;"), "{banner}");
    assert!(banner.contains("features=shell_v2,"), "{banner}");
    let (l, r) = c
        .open("shell,v2,raw:echo out; nosuch; exit 7")
        .await
        .unwrap()
        .unwrap();
    let (raw, clean) = timeout(DEADLINE, c.read_stream(l, r))
        .await
        .unwrap()
        .unwrap();
    assert!(clean);
    let (out, err, code) = decode_v2(&raw);
    assert_eq!(out, b"out\n");
    assert_eq!(err, b"/system/bin/sh: nosuch: not found\n");
    assert_eq!(code, Some(7));
    assert!(
        c.open("framebuffer:").await.unwrap().is_none(),
        "unknown services are refused"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_hanging_command_stays_silent_until_the_client_closes_it() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    sim.set_fault(Fault::Hang {
        pattern: "dumpsys battery".into(),
        times: 1,
    });
    let (mut c, _) = RawAdb::connect(sim.addr()).await.unwrap();
    let (l, r) = c
        .open("shell,v2,raw:dumpsys battery")
        .await
        .unwrap()
        .unwrap();
    assert!(
        timeout(Duration::from_millis(500), c.read_stream(l, r))
            .await
            .is_err(),
        "no answer"
    );
    // The client gives up: it closes the stream, and the connection still works.
    c.send(b"CLSE", l, r, &[]).await.unwrap();
    let (l, r) = c
        .open("shell,v2,raw:dumpsys battery | grep level")
        .await
        .unwrap()
        .unwrap();
    let (raw, _) = timeout(DEADLINE, c.read_stream(l, r))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decode_v2(&raw).0, b"  level: 85\n", "the fault fired once");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_ends_mid_stream() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    sim.set_fault(Fault::DropConnection {
        pattern: "uiautomator".into(),
    });
    let (mut c, _) = RawAdb::connect(sim.addr()).await.unwrap();
    let (l, r) = c
        .open("shell:uiautomator dump /dev/tty")
        .await
        .unwrap()
        .unwrap();
    let (partial, clean) = timeout(DEADLINE, c.read_stream(l, r))
        .await
        .unwrap()
        .unwrap();
    assert!(!clean, "no CLSE: the socket went away");
    assert!(!partial.is_empty(), "part of the output came first");
    assert!(!String::from_utf8_lossy(&partial).contains("UI hierchary dumped"));
    // The phone itself is still there for a new connection.
    let (mut c, _) = RawAdb::connect(sim.addr()).await.unwrap();
    let (l, r) = c.open("shell:echo back").await.unwrap().unwrap();
    let (out, _) = timeout(DEADLINE, c.read_stream(l, r))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, b"back\n");
    sim.shutdown().await;
}

#[tokio::test]
async fn drop_connections_closes_every_socket() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let (mut c, _) = RawAdb::connect(sim.addr()).await.unwrap();
    let (l, r) = c.open("shell:sleep 100").await.unwrap().unwrap();
    sim.drop_connections();
    let (_, clean) = timeout(DEADLINE, c.read_stream(l, r))
        .await
        .unwrap()
        .unwrap();
    assert!(!clean);
    sim.shutdown().await;
}

#[tokio::test]
async fn getevent_streams_hardware_keys_until_closed() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let (mut c, _) = RawAdb::connect(sim.addr()).await.unwrap();
    let (l, r) = c.open("shell:getevent -lt").await.unwrap().unwrap();
    let mut seen = String::new();
    // The device announcement, then nothing until a key is pressed.
    let m = timeout(DEADLINE, c.recv()).await.unwrap().unwrap().unwrap();
    seen.push_str(&String::from_utf8_lossy(&m.data));
    c.send(b"OKAY", l, r, &[]).await.unwrap();
    assert!(timeout(Duration::from_millis(300), c.recv()).await.is_err());
    sim.press_hardware_key(25);
    while !seen.contains("KEY_VOLUMEDOWN       UP") {
        let m = timeout(DEADLINE, c.recv()).await.unwrap().unwrap().unwrap();
        assert_eq!(&m.cmd, b"WRTE");
        seen.push_str(&String::from_utf8_lossy(&m.data));
        c.send(b"OKAY", l, r, &[]).await.unwrap();
    }
    assert!(
        seen.contains("/dev/input/event0: EV_KEY       KEY_VOLUMEDOWN       DOWN"),
        "{seen}"
    );
    c.send(b"CLSE", l, r, &[]).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn the_wecom_version_changes_when_the_app_is_updated() {
    let sim = Simulator::start(SimConfig {
        wecom_version: "3.0.0".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (mut c, _) = RawAdb::connect(sim.addr()).await.unwrap();
    assert_eq!(version_name(&mut c).await, "versionName=3.0.0");
    sim.set_wecom_version("4.1.32");
    assert_eq!(version_name(&mut c).await, "versionName=4.1.32");
    sim.shutdown().await;
}

/// The `versionName` line `dumpsys package` prints for WeCom.
async fn version_name(c: &mut RawAdb) -> String {
    let (l, r) = c
        .open("shell:dumpsys package com.tencent.wework | grep versionName")
        .await
        .unwrap()
        .unwrap();
    let (out, _) = timeout(DEADLINE, c.read_stream(l, r))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(out).unwrap().trim().to_owned()
}
