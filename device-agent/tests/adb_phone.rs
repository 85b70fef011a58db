//! `AdbPhone` against the phone simulator: directly over TCP (every `Phone`
//! method, the faults, the online probe, hardware keys) and through a private
//! real adb server (a representative subset). The real-server test is skipped,
//! with a message, when `adb` is not on PATH.
//!
//! The tests take turns (one lock): two of them measure the process's CPU time to
//! prove that no abandoned connection keeps a thread spinning, which other tests
//! running alongside would blur.

use std::time::{Duration, Instant};

use youmi_agent::adb::{AdbConfig, AdbPhone, MEDIA_DIR};
use youmi_agent::phone::{CallState, Key, Phone, PhoneError, Selector, UiTree};
use youmi_phone_sim::adb_server::{adb_on_path, throwaway_key_in, AdbServer};
use youmi_phone_sim::{Fault, SentEvent, SimConfig, SimHandle, Simulator, WECOM_PACKAGE};

/// The most any single step may take before the test calls it a hang.
const DEADLINE: Duration = Duration::from_secs(30);

/// The tests take turns; see the module docs.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Awaits `future`, failing the test if it takes longer than [`DEADLINE`].
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {DEADLINE:?}"))
}

/// Short timings so that faults resolve quickly; still far above what a healthy
/// call takes, even in a debug build on a busy machine.
fn quick() -> AdbConfig {
    AdbConfig {
        command_timeout: Duration::from_secs(10),
        dump_timeout: Duration::from_secs(10),
        dump_patience: Duration::from_secs(4),
        dump_retry_pause: Duration::from_millis(20),
        dump_retry_pause_max: Duration::from_millis(200),
        transfer_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(5),
        probe_interval: Duration::from_millis(100),
        probe_timeout: Duration::from_secs(2),
    }
}

/// A simulator and a phone connected to it directly over TCP.
struct Direct {
    sim: SimHandle,
    phone: AdbPhone,
    _dir: tempfile::TempDir,
}

async fn direct(sim_config: SimConfig, config: AdbConfig) -> Direct {
    let sim = Simulator::start(sim_config)
        .await
        .expect("simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let phone = AdbPhone::over_tcp(sim.addr(), &throwaway_key_in(dir.path()).unwrap(), config)
        .await
        .expect("key accepted");
    Direct {
        sim,
        phone,
        _dir: dir,
    }
}

async fn dump(phone: &impl Phone) -> UiTree {
    within("dump_ui", phone.dump_ui())
        .await
        .expect("the screen is readable")
}

/// Taps the node `selector` finds on the current screen.
async fn tap_on(phone: &impl Phone, selector: &Selector) {
    let tree = dump(phone).await;
    let node = tree
        .find(selector)
        .unwrap_or_else(|| panic!("no {selector} on screen: {:?}", tree.texts()));
    within("tap", phone.tap(node.bounds.center()))
        .await
        .expect("tap");
}

/// CPU time this process has used (user + system), from /proc on Linux.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, in USER_HZ (100) ticks.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Asserts that the process stays mostly idle for a second: a thread left spinning
/// on a dead socket would use a whole core.
async fn assert_no_busy_thread(after: &str) {
    let Some(start_cpu) = cpu_time() else {
        println!("no /proc/self/stat: the CPU check after {after} did not run");
        return;
    };
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let used = cpu_time().unwrap_or(start_cpu) - start_cpu;
    let ratio = used.as_secs_f64() / start.elapsed().as_secs_f64();
    println!("CPU use after {after}: {:.0}%", ratio * 100.0);
    assert!(
        ratio < 0.5,
        "after {after}, the process used {used:?} of CPU in {:?}: a thread is spinning",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_phone_method_over_tcp() {
    let _turn = TURN.lock().await;
    let Direct { sim, phone, _dir } = direct(SimConfig::default(), quick()).await;
    assert_eq!(phone.serial(), sim.addr().to_string());

    let info = within("device_info", phone.device_info()).await.unwrap();
    assert_eq!(
        (
            info.model.as_str(),
            info.android_version.as_str(),
            info.serial.as_str()
        ),
        ("YoumiSim", "13", "YOUMISIM0001")
    );

    // Launch, foreground, version.
    let home = within("foreground_app", phone.foreground_app())
        .await
        .unwrap()
        .expect("the launcher has focus");
    assert_ne!(home.package, WECOM_PACKAGE);
    within("launch_app", phone.launch_app(WECOM_PACKAGE))
        .await
        .unwrap();
    let focus = within("foreground_app", phone.foreground_app())
        .await
        .unwrap()
        .expect("an app has focus");
    assert_eq!(focus.package, WECOM_PACKAGE);
    assert!(!focus.activity.is_empty());
    assert_eq!(
        within("launch_app", phone.launch_app("com.example.missing")).await,
        Err(PhoneError::AppNotInstalled {
            package: "com.example.missing".into()
        })
    );
    assert_eq!(
        within("app_version", phone.app_version(WECOM_PACKAGE))
            .await
            .unwrap()
            .as_deref(),
        Some("4.1.30")
    );
    assert_eq!(
        within("app_version", phone.app_version("com.example.missing"))
            .await
            .unwrap(),
        None
    );

    // Open a chat, type, send.
    tap_on(&phone, &Selector::text("张三")).await;
    tap_on(
        &phone,
        &Selector::resource_id("com.tencent.wework:id/input_editor"),
    )
    .await;
    within("type_text", phone.type_text("明天见，O'Brien 👋"))
        .await
        .unwrap();
    tap_on(&phone, &Selector::text("发送")).await;
    assert_eq!(
        sim.sent(),
        vec![SentEvent::Message {
            to: "张三".into(),
            text: "明天见，O'Brien 👋".into()
        }]
    );

    // Back to the chat list (the first BACK hides the keyboard), then a long press
    // opens a chat's menu; a swipe goes through.
    for _ in 0..2 {
        within("key", phone.key(Key::Back)).await.unwrap();
    }
    let tree = dump(&phone).await;
    let chat = tree.find(&Selector::text("李四")).expect("the chat list");
    within(
        "long_press",
        phone.long_press(chat.bounds.center(), Duration::from_millis(800)),
    )
    .await
    .unwrap();
    assert!(dump(&phone).await.contains_text("删除"), "the chat menu");
    within("key", phone.key(Key::Back)).await.unwrap();
    let (from, to) = (chat.bounds.center(), tree.nodes[0].bounds.center());
    within("swipe", phone.swipe(from, to, Duration::from_millis(300)))
        .await
        .unwrap();

    // Media.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("photo 1.jpg");
    let bytes: Vec<u8> = (0..150_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(&local, &bytes).unwrap();
    let remote = within("push_media", phone.push_media(&local))
        .await
        .unwrap();
    assert_eq!(remote, format!("{MEDIA_DIR}/photo_1.jpg"));
    assert_eq!(sim.file(&remote).as_deref(), Some(bytes.as_slice()));
    assert_eq!(sim.gallery(), vec![remote.clone()]);
    let missing = dir.path().join("nope.jpg");
    assert!(matches!(
        within("push_media", phone.push_media(&missing)).await,
        Err(PhoneError::LocalFile { .. })
    ));

    // Screenshot.
    let png = within("screenshot", phone.screenshot()).await.unwrap();
    let image = image::load_from_memory(&png).expect("a PNG");
    assert_eq!((image.width(), image.height()), (1080, 2400));

    // Do not disturb.
    assert!(!within("dnd", phone.do_not_disturb()).await.unwrap());
    within("set dnd", phone.set_do_not_disturb(true))
        .await
        .unwrap();
    assert_ne!(sim.zen_mode(), 0);
    assert!(within("dnd", phone.do_not_disturb()).await.unwrap());
    within("set dnd", phone.set_do_not_disturb(false))
        .await
        .unwrap();
    assert_eq!(sim.zen_mode(), 0);

    // Calls.
    assert_eq!(
        within("call_state", phone.call_state()).await.unwrap(),
        CallState::Idle
    );
    sim.ring("13800138000");
    assert_eq!(
        within("call_state", phone.call_state()).await.unwrap(),
        CallState::Ringing(Some("13800138000".into()))
    );
    within("end_call", phone.end_call()).await.unwrap();
    assert_eq!(
        within("call_state", phone.call_state()).await.unwrap(),
        CallState::Idle
    );

    // Status and a notification.
    sim.set_battery_level(42);
    let status = within("status", phone.status()).await.unwrap();
    assert_eq!(status.battery, Some(42));
    assert_eq!(status.charging, Some(true));
    assert_eq!(status.screen_on, Some(true));
    assert_eq!(status.foreground_app.as_deref(), Some(WECOM_PACKAGE));
    within(
        "notify",
        phone.notify("任务将在 5 秒后开始，请勿操作'手机'"),
    )
    .await
    .unwrap();

    // Exit codes.
    assert_eq!(
        within("shell", phone.shell("echo hi")).await.unwrap(),
        "hi\n"
    );
    assert_eq!(
        within("shell", phone.shell("sh -c 'exit 3'")).await,
        Err(PhoneError::CommandFailed {
            command: "sh -c 'exit 3'".into(),
            code: 3,
            stderr: String::new()
        })
    );
    match within("shell", phone.shell("frobnicate")).await {
        Err(PhoneError::CommandFailed {
            code: 127, stderr, ..
        }) => {
            assert!(stderr.contains("not found"), "{stderr}")
        }
        other => panic!("unexpected {other:?}"),
    }

    within("stop_app", phone.stop_app(WECOM_PACKAGE))
        .await
        .unwrap();
    let after = within("foreground_app", phone.foreground_app())
        .await
        .unwrap();
    assert_ne!(after.map(|f| f.package).as_deref(), Some(WECOM_PACKAGE));
    drop(phone);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_needs_the_adb_keyboard() {
    let _turn = TURN.lock().await;
    let Direct { sim, phone, _dir } = direct(
        SimConfig {
            ime_installed: false,
            ..SimConfig::default()
        },
        quick(),
    )
    .await;
    assert_eq!(
        within("type_text", phone.type_text("hello")).await,
        Err(PhoneError::ImeMissing)
    );
    // Nothing to type needs no keyboard.
    within("type_text", phone.type_text("")).await.unwrap();
    drop(phone);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_screen_is_read_again_until_the_patience_runs_out() {
    let _turn = TURN.lock().await;
    let config = quick();
    let Direct { sim, phone, _dir } = direct(SimConfig::default(), config.clone()).await;
    // Eight unreadable dumps in a row, over more than a second of pauses
    // (20 + 40 + 80 + 160 + 200 x 4 ms): a slow, animating phone.
    sim.set_fault(Fault::DumpNotIdle { times: 8 });
    assert!(
        !dump(&phone).await.nodes.is_empty(),
        "the ninth read gets the screen"
    );
    sim.set_fault(Fault::DumpNotIdle { times: u32::MAX });
    let started = Instant::now();
    match within("dump_ui", phone.dump_ui()).await {
        Err(PhoneError::UiDump { reads, over, last }) => {
            assert_eq!(last, "ERROR: could not get idle state.");
            assert!(over >= config.dump_patience, "{over:?}");
            assert!(
                started.elapsed() >= config.dump_patience,
                "{:?}",
                started.elapsed()
            );
            // Pauses of 20, 40, 80, 160 ms and then 200 ms: about twenty
            // reads fit in the patience (fewer when dumps are slow), never
            // more than one per pause.
            assert!((5..=200).contains(&reads), "{reads} reads");
            let error = PhoneError::UiDump { reads, over, last };
            assert!(
                error
                    .to_string()
                    .contains(&format!("{reads} reads failed over")),
                "{error}"
            );
            assert_eq!(error.code(), "screen_unreadable");
            assert!(error.retryable());
        }
        other => panic!("expected an unreadable screen, got {other:?}"),
    }
    sim.clear_faults();
    assert!(
        !dump(&phone).await.nodes.is_empty(),
        "and then it works again"
    );
    drop(phone);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_that_keeps_hanging_is_not_read_again_past_the_patience() {
    let _turn = TURN.lock().await;
    let config = AdbConfig {
        dump_timeout: Duration::from_millis(1500),
        dump_patience: Duration::from_secs(2),
        ..quick()
    };
    let Direct { sim, phone, _dir } = direct(SimConfig::default(), config).await;
    sim.set_fault(Fault::Hang {
        pattern: "uiautomator dump".into(),
        times: u32::MAX,
    });
    // Every dump hangs until its deadline: it is read again while the
    // patience lasts, and then the read ends (`within` would fail a read
    // that went on for good).
    assert!(matches!(
        within("dump_ui", phone.dump_ui()).await,
        Err(PhoneError::Timeout { .. })
    ));
    sim.clear_faults();
    assert!(
        !dump(&phone).await.nodes.is_empty(),
        "the next read, on a fresh connection, works"
    );
    drop(phone);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_command_times_out_and_the_next_call_works() {
    let _turn = TURN.lock().await;
    let config = AdbConfig {
        command_timeout: Duration::from_secs(1),
        ..quick()
    };
    let Direct { sim, phone, _dir } = direct(SimConfig::default(), config).await;
    // A first call opens the connection that the hang then kills.
    within("status", phone.status()).await.unwrap();
    sim.set_fault(Fault::Hang {
        pattern: "dumpsys battery".into(),
        times: 1,
    });
    assert_eq!(
        within("status", phone.status()).await,
        Err(PhoneError::Timeout {
            command: "dumpsys battery".into(),
            after: Duration::from_secs(1)
        })
    );
    sim.set_battery_level(77);
    let status = within("status", phone.status()).await.unwrap();
    assert_eq!(status.battery, Some(77));

    // A call whose caller gives up (its future is dropped) is abandoned as well:
    // the next call neither waits for the hang nor times out behind it.
    sim.set_fault(Fault::Hang {
        pattern: "dumpsys battery".into(),
        times: 1,
    });
    let slow = AdbConfig {
        command_timeout: Duration::from_secs(20),
        ..quick()
    };
    let patient = AdbPhone::over_tcp(sim.addr(), &throwaway_key_in(_dir.path()).unwrap(), slow)
        .await
        .unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(300), patient.status()).await;
    assert!(cancelled.is_err(), "the hang answers nothing");
    assert_eq!(
        within("shell", patient.shell("echo next")).await.unwrap(),
        "next\n"
    );
    drop(patient);
    assert_no_busy_thread("an abandoned call").await;
    drop(phone);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_fails_the_call_without_a_busy_thread() {
    let _turn = TURN.lock().await;
    let Direct { sim, phone, _dir } = direct(SimConfig::default(), quick()).await;
    sim.set_fault(Fault::DropConnection {
        pattern: "getprop".into(),
    });
    match within("device_info", phone.device_info()).await {
        Err(PhoneError::Unreachable { serial, reason }) => {
            assert_eq!(serial, sim.addr().to_string());
            assert!(
                reason.contains("phone closed the connection")
                    || reason.contains("connection to the phone failed"),
                "{reason}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_no_busy_thread("a dropped connection").await;
    let info = within("device_info", phone.device_info()).await.unwrap();
    assert_eq!(info.model, "YoumiSim");

    // Dropped between calls: the next call may still find out (a retryable
    // error, never a hang); the one after that works.
    sim.drop_connections();
    match within("shell", phone.shell("echo again")).await {
        Ok(out) => assert_eq!(out, "again\n"),
        Err(error) => assert!(matches!(error, PhoneError::Unreachable { .. }), "{error:?}"),
    }
    assert_eq!(
        within("shell", phone.shell("echo back")).await.unwrap(),
        "back\n"
    );
    assert_no_busy_thread("connections dropped between calls").await;
    drop(phone);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_notices_a_phone_that_went_away() {
    let _turn = TURN.lock().await;
    let Direct { sim, phone, _dir } = direct(SimConfig::default(), quick()).await;
    let mut online = phone.online();
    within("online", online.wait_for(|up| *up))
        .await
        .expect("the probe runs");
    sim.shutdown().await;
    within("offline", online.wait_for(|up| !*up))
        .await
        .expect("the probe runs");
    // Commands fail fast too, with a reason.
    assert!(matches!(
        within("shell", phone.shell("echo")).await,
        Err(PhoneError::Unreachable { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardware_keys_are_reported_until_dropped() {
    let _turn = TURN.lock().await;
    let Direct { sim, phone, _dir } = direct(SimConfig::default(), quick()).await;
    let mut keys = phone.key_presses().expect("the watcher starts");
    // Presses before `getevent` runs are not seen (as on a phone), so keep pressing
    // until one arrives.
    let first = within("a key press", async {
        loop {
            sim.press_hardware_key(25);
            if let Ok(key) = tokio::time::timeout(Duration::from_millis(200), keys.next()).await {
                break key;
            }
        }
    })
    .await;
    assert_eq!(first, Some(Key::Code(25)));
    sim.press_hardware_key(26);
    let mut next = within("a key press", keys.next()).await;
    // Extra volume-down presses from the loop above may still be queued.
    while next == Some(Key::Code(25)) {
        next = within("a key press", keys.next()).await;
    }
    assert_eq!(next, Some(Key::Code(26)));
    drop(keys);
    assert_no_busy_thread("the key watcher stopped").await;
    drop(phone);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_file_is_refused() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("adbkey");
    std::fs::write(&key, "not a key").unwrap();
    let addr = "127.0.0.1:5555".parse().unwrap();
    assert!(matches!(
        AdbPhone::over_tcp(addr, &key, quick()).await,
        Err(PhoneError::LocalFile { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_real_adb_server() {
    let _turn = TURN.lock().await;
    if !adb_on_path() {
        return;
    }
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let serial = sim.addr().to_string();
    let server = AdbServer::start().await;
    server.connect(&serial).await;
    let config = AdbConfig {
        command_timeout: Duration::from_secs(2),
        ..quick()
    };
    let phone = AdbPhone::through_server(server.addr(), &serial, config);
    assert_eq!(phone.serial(), serial);

    // A tap flow that sends a message.
    within("launch_app", phone.launch_app(WECOM_PACKAGE))
        .await
        .unwrap();
    tap_on(&phone, &Selector::text("张三")).await;
    tap_on(
        &phone,
        &Selector::resource_id("com.tencent.wework:id/input_editor"),
    )
    .await;
    within("type_text", phone.type_text("服务器见"))
        .await
        .unwrap();
    tap_on(&phone, &Selector::text("发送")).await;
    assert_eq!(
        sim.sent(),
        vec![SentEvent::Message {
            to: "张三".into(),
            text: "服务器见".into()
        }]
    );

    // Exit codes, with stderr kept apart by the shell protocol.
    assert_eq!(
        within("shell", phone.shell("echo hi")).await.unwrap(),
        "hi\n"
    );
    assert_eq!(
        within("shell", phone.shell("nosuchcmd")).await,
        Err(PhoneError::CommandFailed {
            command: "nosuchcmd".into(),
            code: 127,
            stderr: "/system/bin/sh: nosuchcmd: not found".into()
        })
    );

    // A busy screen, through the server: the complaint is on stderr.
    sim.set_fault(Fault::DumpNotIdle { times: u32::MAX });
    match within("dump_ui", phone.dump_ui()).await {
        Err(PhoneError::UiDump { last, .. }) => {
            assert_eq!(last, "ERROR: could not get idle state.")
        }
        other => panic!("expected an unreadable screen, got {other:?}"),
    }
    sim.clear_faults();

    // A hang: the deadline ends it, the next call works.
    sim.set_fault(Fault::Hang {
        pattern: "dumpsys battery".into(),
        times: 1,
    });
    assert!(matches!(
        within("status", phone.status()).await,
        Err(PhoneError::Timeout { .. })
    ));
    assert_eq!(
        within("status", phone.status()).await.unwrap().battery,
        Some(85)
    );

    // A dropped connection: adb ends the stream without the exit marker.
    sim.set_fault(Fault::DropConnection {
        pattern: "getprop".into(),
    });
    assert!(matches!(
        within("device_info", phone.device_info()).await,
        Err(PhoneError::Truncated { .. })
    ));
    assert_no_busy_thread("a dropped connection through the server").await;
    // Once the server has the phone again, the same `AdbPhone` works.
    let _ = server.adb(&["disconnect", &serial]).await;
    server.connect(&serial).await;
    assert_eq!(
        within("device_info", phone.device_info())
            .await
            .unwrap()
            .model,
        "YoumiSim"
    );

    drop(phone);
    drop(server);
    sim.shutdown().await;
}
