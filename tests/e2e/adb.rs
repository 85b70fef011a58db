//! The agent on phones over ADB, end to end: a task submitted to the real
//! server's API runs as its built-in WeCom flow in an in-process agent, through
//! a private real adb server (or straight over TCP) on the phone simulator, and
//! each test checks what the simulator recorded. Every task kind, and every
//! fault a phone throws: a risk-control warning, an update prompt, busy
//! screens, a hanging command, dropped connections, a WeCom version no flow
//! file covers, no ADBKeyBoard. Each fault ends in its error code without
//! hanging, and the agent carries on with the next task.
//!
//! Phones that do not depend on each other run at the same time, one operator
//! account each, on one server. The tests print "SKIPPED: adb not on PATH" and
//! pass when `adb` is missing.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use youmi_agent::adb::AdbConfig;
use youmi_phone_sim::{
    DialogFault, DialogStyle, DialogWhen, Fault, Input, InputEvent, SentEvent, SimConfig,
};
use youmi_protocol::api::{NotificationPage, TaskView};
use youmi_protocol::{TaskId, TaskKind, TaskState};
use youmi_tests::phones::{adb_server, AdbServer, PhoneAgent, Route};
use youmi_tests::{eventually, expect_json, TestApp};

/// The longest one task may take, retries included, before the test calls it
/// a hang. Far above what any task here needs.
const DEADLINE: Duration = Duration::from_secs(90);

/// Where the agent pushes media on the phone.
const MEDIA: &str = "/sdcard/DCIM/Youmi";

/// Deadlines for phones that behave: well above what a call to the simulator
/// takes on a busy machine, so that only a real hang would reach them.
fn patient() -> AdbConfig {
    AdbConfig {
        command_timeout: Duration::from_secs(15),
        dump_timeout: Duration::from_secs(15),
        dump_patience: Duration::from_secs(1),
        dump_retry_pause: Duration::from_millis(50),
        dump_retry_pause_max: Duration::from_millis(400),
        transfer_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        probe_interval: Duration::from_secs(1),
        probe_timeout: Duration::from_secs(3),
    }
}

/// Short deadlines, for the phone whose command hangs: the hang ends in a
/// couple of seconds rather than the default 15.
fn impatient() -> AdbConfig {
    AdbConfig {
        command_timeout: Duration::from_secs(2),
        ..patient()
    }
}

/// A default simulator with its own serial, so that the server's device list
/// tells the phones apart.
fn phone(serial: &str) -> SimConfig {
    SimConfig {
        serial: serial.to_owned(),
        ..SimConfig::default()
    }
}

/// A `send_message` payload: one text to `name`.
fn text_to(name: &str, text: &str) -> Value {
    json!({ "to": { "name": name }, "items": [{ "type": "text", "text": text }] })
}

/// The simulator's record of a text sent to `to`.
fn message(to: &str, text: &str) -> SentEvent {
    SentEvent::Message {
        to: to.to_owned(),
        text: text.to_owned(),
    }
}

/// Asserts that the task succeeded on its first attempt with the built-in 4.1 flows.
fn assert_succeeded_at_once(task: &TaskView) {
    assert_eq!(task.state, TaskState::Succeeded, "{task:?}");
    assert_eq!(task.attempt, 1, "no retry was needed: {task:?}");
    assert!(task.error.is_none(), "{task:?}");
    let result = task.result.as_ref().expect("a result");
    assert_eq!(result["flow_file"], "built-in wecom-4.1.toml", "{result}");
    assert_eq!(result["app_version"], "4.1.30", "{result}");
}

/// Asserts that the task failed with `code` on its first attempt and was not retried.
fn assert_failed_for_good(task: &TaskView, code: &str) {
    assert_eq!(task.state, TaskState::Failed, "{task:?}");
    let error = task.error.as_ref().expect("a failure says why");
    assert_eq!(error.code, code, "{task:?}");
    assert!(!error.retryable, "{task:?}");
    assert_eq!(task.attempt, 1, "not retried: {task:?}");
}

/// Waits until the task's first attempt has failed with `code`, retryable, and
/// the server took it back for another attempt (the failure stays on the task
/// while it waits and runs again).
async fn first_attempt_failed(app: &TestApp, id: TaskId, code: &str) -> TaskView {
    eventually(
        &format!("task {id} to fail its first attempt with {code}"),
        DEADLINE,
        || async {
            let task = app.task(id).await;
            assert!(
                !task.state.is_terminal(),
                "task {id} ended before a retry: {task:?}"
            );
            let failed = task
                .error
                .as_ref()
                .is_some_and(|e| e.code == code && e.retryable);
            failed.then_some(task)
        },
    )
    .await
}

/// A private adb server, or `None` (with the SKIPPED line) when adb is missing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_kind_reaches_the_phone() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (chats, mass, moments, friends) = tokio::join!(
        PhoneAgent::start(&app, Route::Server(&adb), phone("E2E-CHATS"), patient()),
        PhoneAgent::start(&app, Route::Server(&adb), phone("E2E-MASS"), patient()),
        PhoneAgent::start(&app, Route::Server(&adb), phone("E2E-MOMENTS"), patient()),
        // One phone is reached straight over TCP, without the adb server.
        PhoneAgent::start(&app, Route::Tcp, phone("E2E-FRIENDS"), patient()),
    );
    tokio::join!(
        messages_of_every_item_type(&app, &chats),
        a_mass_send(&app, &mass),
        a_moments_post_and_a_deleted_chat(&app, &moments),
        friends_over_tcp(&app, &friends),
    );
}

/// `send_message` with a text, an image, a file and a link, then `smart_marketing`.
async fn messages_of_every_item_type(app: &TestApp, p: &PhoneAgent) {
    p.add_media("photo1.jpg", b"\xff\xd8\xff\xe0 a picture");
    p.add_media("catalog.pdf", b"%PDF-1.4 a price list");
    let task = p
        .run(
            app,
            TaskKind::SendMessage,
            json!({
                "to": { "name": "张三" },
                "items": [
                    { "type": "text", "text": "你好，这是本周的报价" },
                    { "type": "image", "media_id": "photo1.jpg" },
                    { "type": "file", "media_id": "catalog.pdf" },
                    { "type": "link", "url": "https://example.com/p/1", "title": "新品介绍" },
                ],
            }),
            DEADLINE,
        )
        .await;
    assert_succeeded_at_once(&task);
    assert_eq!(
        p.sim.sent(),
        vec![
            message("张三", "你好，这是本周的报价"),
            SentEvent::Image {
                to: "张三".into(),
                path: format!("{MEDIA}/photo1.jpg"),
            },
            SentEvent::File {
                to: "张三".into(),
                path: format!("{MEDIA}/catalog.pdf"),
            },
            message("张三", "新品介绍 https://example.com/p/1"),
        ]
    );
    assert_eq!(
        p.sim.file(&format!("{MEDIA}/catalog.pdf")).as_deref(),
        Some(&b"%PDF-1.4 a price list"[..]),
        "the file arrived whole"
    );

    let task = p
        .run(
            app,
            TaskKind::SmartMarketing,
            json!({
                "flow_id": 7,
                "step": 2,
                "to": { "name": "李四" },
                "items": [{ "type": "text", "text": "活动今晚结束" }],
            }),
            DEADLINE,
        )
        .await;
    assert_succeeded_at_once(&task);
    assert_eq!(p.sim.sent()[4..], [message("李四", "活动今晚结束")]);
}

/// `mass_send` of a text and a picture to three customers.
async fn a_mass_send(app: &TestApp, p: &PhoneAgent) {
    p.add_media("sale.png", b"\x89PNG a poster");
    let task = p
        .run(
            app,
            TaskKind::MassSend,
            json!({
                "recipients": [{ "name": "张三" }, { "name": "李四" }, { "name": "王五" }],
                "items": [
                    { "type": "text", "text": "周末大促" },
                    { "type": "image", "media_id": "sale.png" },
                ],
            }),
            DEADLINE,
        )
        .await;
    assert_succeeded_at_once(&task);
    let result = task.result.expect("a result");
    assert_eq!(result["reached"], 3, "{result}");
    assert_eq!(result["skipped"], json!([]), "{result}");
    let expected: Vec<SentEvent> = ["张三", "李四", "王五"]
        .into_iter()
        .flat_map(|to| {
            [
                message(to, "周末大促"),
                SentEvent::Image {
                    to: to.into(),
                    path: format!("{MEDIA}/sale.png"),
                },
            ]
        })
        .collect();
    assert_eq!(p.sim.sent(), expected);
}

/// `moments_post` with a text and two pictures for the customers with two
/// tags, then `delete_chat`, then a post for a tag the enterprise lacks, which
/// fails with `tag_not_found` and posts nothing.
async fn a_moments_post_and_a_deleted_chat(app: &TestApp, p: &PhoneAgent) {
    p.add_media("m1.jpg", b"\xff\xd8\xff first");
    p.add_media("m2.jpg", b"\xff\xd8\xff second");
    let task = p
        .run(
            app,
            TaskKind::MomentsPost,
            json!({
                "text": "新品上市，欢迎咨询",
                "media_ids": ["m1.jpg", "m2.jpg"],
                "visible_to_tags": ["VIP", "重要客户"],
            }),
            DEADLINE,
        )
        .await;
    assert_succeeded_at_once(&task);
    assert_eq!(
        p.sim.sent(),
        vec![SentEvent::MomentPost {
            text: "新品上市，欢迎咨询".into(),
            media: vec![format!("{MEDIA}/m1.jpg"), format!("{MEDIA}/m2.jpg")],
            visible_to_tags: vec!["VIP".into(), "重要客户".into()],
        }]
    );

    let task = p
        .run(
            app,
            TaskKind::DeleteChat,
            json!({ "with": { "name": "李四" } }),
            DEADLINE,
        )
        .await;
    assert_succeeded_at_once(&task);
    assert_eq!(
        p.sim.sent()[1..],
        [SentEvent::ChatDeleted {
            with: "李四".into()
        }]
    );

    let task = p
        .run(
            app,
            TaskKind::MomentsPost,
            json!({ "text": "会员专享", "media_ids": [], "visible_to_tags": ["VIP", "钻石会员"] }),
            DEADLINE,
        )
        .await;
    assert_failed_for_good(&task, "tag_not_found");
    let error = task.error.as_ref().expect("a failure says why");
    assert!(error.message.contains("钻石会员"), "{task:?}");
    assert_eq!(
        p.sim.sent().len(),
        2,
        "nothing was posted: {:?}",
        p.sim.sent()
    );
}

/// `friend_add` with a remark and tags, and `accept_friend_request` with a
/// remark, on a phone reached without the adb server.
async fn friends_over_tcp(app: &TestApp, p: &PhoneAgent) {
    let task = p
        .run(
            app,
            TaskKind::FriendAdd,
            json!({
                "target": { "phone": "13800138000" },
                "greeting": "你好，我是优米的小优",
                "remark": "王总-展会",
                "tags": ["新客户", "VIP"],
            }),
            DEADLINE,
        )
        .await;
    assert_succeeded_at_once(&task);
    let task = p
        .run(
            app,
            TaskKind::AcceptFriendRequest,
            json!({ "from": { "name": "陈七" }, "remark": "陈七-课程" }),
            DEADLINE,
        )
        .await;
    assert_succeeded_at_once(&task);
    assert_eq!(
        p.sim.sent(),
        vec![
            SentEvent::FriendRequestSent {
                query: "13800138000".into(),
                name: "用户8000".into(),
                greeting: "你好，我是优米的小优".into(),
                remark: "王总-展会".into(),
                tags: vec!["新客户".into(), "VIP".into()],
            },
            SentEvent::FriendRequestAccepted {
                name: "陈七".into(),
                remark: "陈七-课程".into(),
            },
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risk_control_warning_fails_the_task_and_stops_the_account() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let p = PhoneAgent::start(&app, Route::Server(&adb), phone("E2E-RISK"), patient()).await;
    let device = p.device_id().to_owned();
    // An auto-resume setting, which a risk-control pause must ignore.
    let response = app
        .put_json(
            "/api/v1/devices/settings",
            &json!({ "device_ids": [device], "settings": { "auto_resume_after_min": 1 } }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    p.sim.set_fault(Fault::RiskControl {
        title: "账号存在异常".into(),
        message: "该账号存在异常行为，部分功能已被限制".into(),
    });
    let task = p
        .run(
            &app,
            TaskKind::SendMessage,
            text_to("张三", "你好"),
            DEADLINE,
        )
        .await;
    assert_failed_for_good(&task, "risk_control");
    assert!(p.sim.sent().is_empty(), "nothing was sent");

    // The evidence: the screen's texts, its UI dump and a screenshot on disk.
    let result = task.result.as_ref().expect("the failure's evidence");
    let screen = result["screen"].to_string();
    assert!(screen.contains("账号存在异常"), "{result}");
    for key in ["ui_dump", "screenshot"] {
        let path = result[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {result}"));
        assert!(
            path.starts_with(&p.evidence_dir.display().to_string()),
            "{path}"
        );
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(!bytes.is_empty(), "{path} is empty");
    }
    let ui_dump = std::fs::read_to_string(result["ui_dump"].as_str().expect("a path"))
        .expect("the UI dump is text");
    assert!(ui_dump.contains("text=\"我知道了\""), "{ui_dump}");

    // The queue is paused for good, and the admins are told.
    let view = app
        .wait_device(&device, "the risk-control pause", DEADLINE, |d| {
            d.queue_paused
        })
        .await;
    assert_eq!(
        view.pause_reason.as_deref(),
        Some("risk_control"),
        "{view:?}"
    );
    assert_eq!(view.resume_at_ms, None, "no auto-resume: {view:?}");
    let page: NotificationPage =
        expect_json(app.get("/api/v1/notifications").await, StatusCode::OK).await;
    let notice = page
        .page
        .items
        .iter()
        .find(|n| n.task_id == Some(task.id))
        .unwrap_or_else(|| panic!("no notification for task {}: {page:?}", task.id));
    assert_eq!(notice.kind, "risk_control");
    assert_eq!(notice.device_id, device);
    assert_eq!(notice.operator_account_id, p.account);
    assert!(
        notice.message.contains("账号存在异常"),
        "{}",
        notice.message
    );
    assert!(page.unread >= 1);

    // A new task waits while the queue is paused.
    let next = p
        .submit(&app, TaskKind::SendMessage, text_to("张三", "我们恢复了"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.task(next).await.state, TaskState::Queued);

    // A person reads the warning on the phone, closes it, and resumes the queue.
    let button = p
        .sim
        .screen()
        .tree
        .find_text("我知道了")
        .map(|n| n.bounds)
        .expect("the warning is still on screen");
    let (x, y) = (
        (button.left + button.right) / 2,
        (button.top + button.bottom) / 2,
    );
    adb.shell(&p.serial, &format!("input tap {x} {y}")).await;
    assert_eq!(app.resume(&[device.as_str()]).await.affected, 1);
    let done = app
        .wait_task_state(next, TaskState::Succeeded, DEADLINE)
        .await;
    assert_succeeded_at_once(&done);
    assert_eq!(p.sim.sent(), vec![message("张三", "我们恢复了")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_faults_end_in_their_error_and_the_agent_carries_on() {
    let Some(adb) = adb_server().await else {
        return;
    };
    // Retries wait 1.5 s (and 3 s): long enough to see the failed attempt in the
    // API, and for a person to reconnect adb before the attempts run out.
    let app = TestApp::spawn_with(|config| config.retry_delay_ms = 1500).await;
    let server = Route::Server(&adb);
    let (popups, never_idle, hang, dropped, dropped_tcp, old_wecom, no_keyboard) = tokio::join!(
        PhoneAgent::start(&app, server, phone("E2E-POPUPS"), patient()),
        PhoneAgent::start(&app, server, phone("E2E-NEVER-IDLE"), patient()),
        PhoneAgent::start(&app, server, phone("E2E-HANG"), impatient()),
        PhoneAgent::start(&app, server, phone("E2E-DROP"), patient()),
        PhoneAgent::start(&app, Route::Tcp, phone("E2E-DROP-TCP"), patient()),
        PhoneAgent::start(
            &app,
            server,
            SimConfig {
                wecom_version: "3.0.0".into(),
                ..phone("E2E-OLD-WECOM")
            },
            patient()
        ),
        PhoneAgent::start(
            &app,
            server,
            SimConfig {
                ime_installed: false,
                ..phone("E2E-NO-IME")
            },
            patient()
        ),
    );
    tokio::join!(
        an_update_prompt_and_a_busy_screen(&app, &popups),
        a_screen_that_never_settles(&app, &never_idle),
        a_hanging_command(&app, &hang),
        a_dropped_connection_through_adb(&app, &adb, &dropped),
        a_dropped_connection_over_tcp(&app, &dropped_tcp),
        a_wecom_version_without_flows(&app, &old_wecom),
        no_adb_keyboard(&app, &no_keyboard),
    );
}

/// The update prompt is dismissed and a screen that is busy once is read
/// again: both tasks succeed.
async fn an_update_prompt_and_a_busy_screen(app: &TestApp, p: &PhoneAgent) {
    p.sim.set_fault(Fault::UpdatePrompt);
    let task = p
        .run(app, TaskKind::SendMessage, text_to("张三", "一"), DEADLINE)
        .await;
    assert_succeeded_at_once(&task);
    assert!(
        !p.sim.screen().name.contains("update_prompt"),
        "the prompt was dismissed: {}",
        p.sim.screen().name
    );

    p.sim.set_fault(Fault::DumpNotIdle { times: 1 });
    let task = p
        .run(app, TaskKind::SendMessage, text_to("李四", "二"), DEADLINE)
        .await;
    assert_succeeded_at_once(&task);
    assert_eq!(
        p.sim.sent(),
        vec![message("张三", "一"), message("李四", "二")]
    );
}

/// A screen that never settles cannot be read: every attempt fails with
/// `screen_unreadable`, which is retryable, after reading it again for the
/// patience (1 s here), until the attempts run out.
async fn a_screen_that_never_settles(app: &TestApp, p: &PhoneAgent) {
    p.sim.set_fault(Fault::DumpNotIdle { times: u32::MAX });
    let task = p
        .run(
            app,
            TaskKind::SendMessage,
            text_to("张三", "你好"),
            DEADLINE,
        )
        .await;
    assert_eq!(task.state, TaskState::Failed, "{task:?}");
    let error = task.error.as_ref().expect("a failure says why");
    assert_eq!(error.code, "screen_unreadable", "{task:?}");
    assert!(error.retryable, "{task:?}");
    assert_eq!(task.attempt, 3, "every attempt was used: {task:?}");
    assert!(
        error.message.contains("could not get idle state"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("reads failed over"),
        "the message says how many reads failed over how long: {}",
        error.message
    );
    assert!(p.sim.sent().is_empty());

    p.sim.clear_faults();
    let task = p
        .run(
            app,
            TaskKind::SendMessage,
            text_to("张三", "好了"),
            DEADLINE,
        )
        .await;
    assert_succeeded_at_once(&task);
    assert_eq!(p.sim.sent(), vec![message("张三", "好了")]);
}

/// A command that never answers ends at its deadline with `phone_timeout`;
/// the server runs the task again, and it succeeds.
async fn a_hanging_command(app: &TestApp, p: &PhoneAgent) {
    p.sim.set_fault(Fault::Hang {
        pattern: "input tap".into(),
        times: 1,
    });
    let id = p
        .submit(app, TaskKind::SendMessage, text_to("张三", "在吗"))
        .await;
    first_attempt_failed(app, id, "phone_timeout").await;
    let task = app
        .wait_task_state(id, TaskState::Succeeded, DEADLINE)
        .await;
    assert_eq!(task.attempt, 2, "{task:?}");
    assert_eq!(p.sim.sent(), vec![message("张三", "在吗")], "sent once");
}

/// The phone drops the connection through the adb server in the middle of a
/// command: the attempt fails with `phone_unreachable`; once adb has the phone
/// again (a person runs `adb connect`), the retry sends the message, once.
async fn a_dropped_connection_through_adb(app: &TestApp, adb: &AdbServer, p: &PhoneAgent) {
    p.sim.set_fault(Fault::DropConnection {
        pattern: "input tap".into(),
    });
    let id = p
        .submit(app, TaskKind::SendMessage, text_to("张三", "信号不好"))
        .await;
    first_attempt_failed(app, id, "phone_unreachable").await;
    adb.reconnect(&p.serial).await;
    let task = app.wait_terminal(id, DEADLINE).await;
    assert_eq!(task.state, TaskState::Succeeded, "{task:?}");
    assert!(task.attempt >= 2, "{task:?}");
    assert_eq!(p.sim.sent(), vec![message("张三", "信号不好")], "sent once");
}

/// Over TCP the agent opens a new connection by itself: the attempt that lost
/// its connection fails with `phone_unreachable`, and the retry succeeds.
async fn a_dropped_connection_over_tcp(app: &TestApp, p: &PhoneAgent) {
    p.sim.set_fault(Fault::DropConnection {
        pattern: "input tap".into(),
    });
    let id = p
        .submit(app, TaskKind::SendMessage, text_to("李四", "重新连上了"))
        .await;
    first_attempt_failed(app, id, "phone_unreachable").await;
    let task = app
        .wait_task_state(id, TaskState::Succeeded, DEADLINE)
        .await;
    assert_eq!(task.attempt, 2, "{task:?}");
    assert_eq!(
        p.sim.sent(),
        vec![message("李四", "重新连上了")],
        "sent once"
    );
}

/// WeCom 3.0.0 has no flow file: `unsupported_app_version`, naming the
/// version, not retried. After WeCom is updated, the next task succeeds.
async fn a_wecom_version_without_flows(app: &TestApp, p: &PhoneAgent) {
    let task = p
        .run(
            app,
            TaskKind::SendMessage,
            text_to("张三", "你好"),
            DEADLINE,
        )
        .await;
    assert_failed_for_good(&task, "unsupported_app_version");
    let message_text = &task.error.as_ref().expect("an error").message;
    assert!(message_text.contains("3.0.0"), "{message_text}");
    assert!(message_text.contains("4.1.*"), "{message_text}");
    assert!(p.sim.sent().is_empty());

    p.sim.set_wecom_version("4.1.30");
    let task = p
        .run(
            app,
            TaskKind::SendMessage,
            text_to("张三", "更新好了"),
            DEADLINE,
        )
        .await;
    assert_succeeded_at_once(&task);
    assert_eq!(p.sim.sent(), vec![message("张三", "更新好了")]);
}

/// Without ADBKeyBoard nothing can be typed: `ime_missing`, not retried. A
/// task that types nothing still works.
async fn no_adb_keyboard(app: &TestApp, p: &PhoneAgent) {
    let task = p
        .run(
            app,
            TaskKind::SendMessage,
            text_to("张三", "你好"),
            DEADLINE,
        )
        .await;
    assert_failed_for_good(&task, "ime_missing");
    assert!(p.sim.sent().is_empty());

    let task = p
        .run(
            app,
            TaskKind::DeleteChat,
            json!({ "with": { "name": "李四" } }),
            DEADLINE,
        )
        .await;
    assert_succeeded_at_once(&task);
    assert_eq!(
        p.sim.sent(),
        vec![SentEvent::ChatDeleted {
            with: "李四".into()
        }]
    );
}

/// The task kinds, each with a payload its flow can run on a default simulator.
fn every_kind() -> Vec<(TaskKind, Value)> {
    vec![
        (TaskKind::SendMessage, text_to("张三", "你好")),
        (
            TaskKind::SmartMarketing,
            json!({ "flow_id": 1, "step": 1, "to": { "name": "李四" }, "items": [{ "type": "text", "text": "活动" }] }),
        ),
        (
            TaskKind::MassSend,
            json!({ "recipients": [{ "name": "张三" }, { "name": "王五" }], "items": [{ "type": "text", "text": "大促" }] }),
        ),
        (
            TaskKind::MomentsPost,
            json!({ "text": "新品上市", "media_ids": [] }),
        ),
        (
            TaskKind::FriendAdd,
            json!({ "target": { "phone": "13800138000" }, "greeting": "你好" }),
        ),
        (
            TaskKind::AcceptFriendRequest,
            json!({ "from": { "name": "陈七" } }),
        ),
        (TaskKind::DeleteChat, json!({ "with": { "name": "李四" } })),
    ]
}

/// Where in a flow a scripted dialog shows: before the start screen (WeCom's
/// launch is the first screen change), between steps (the second), and right
/// after the send tap.
const PLACES: [DialogWhen; 3] = [
    DialogWhen::NextChange,
    DialogWhen::Change(2),
    DialogWhen::AfterSend,
];

/// The buttons a risk warning may have, none included.
const RISK_BUTTONS: [&[&str]; 6] = [
    &["确定"],
    &["我知道了"],
    &["好的"],
    &["知道了"],
    &["OK"],
    &[],
];

/// Titles, and warnings that say one of the agent's risk phrases in words of their own.
const RISK_TITLES: [&str; 4] = ["提示", "", "账号安全提醒", "Warning"];
const RISK_MESSAGES: [&str; 8] = [
    "操作过于频繁，请稍后再试",
    "你的操作频繁，请休息一下",
    "该账号存在异常行为，部分功能已被限制",
    "账号异常，请联系管理员",
    "检测到违规内容",
    "你已被限制使用此功能",
    "发送消息功能暂时被限制",
    "当前账号存在风险",
];

/// The presses of BACK that reached the phone while a dialog was up, from
/// the simulator's action log, leaving out its first `since` inputs.
fn backs_on_a_dialog(p: &PhoneAgent, since: usize) -> Vec<InputEvent> {
    p.sim
        .inputs()
        .into_iter()
        .skip(since)
        .filter(|e| e.input == Input::Key(4) && e.screen.contains("+dialog"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risk_warning_of_any_shape_stops_every_kind_and_pauses_the_queue() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let kinds = every_kind();
    let phones = futures_util::future::join_all(kinds.iter().map(|(kind, _)| {
        PhoneAgent::start(
            &app,
            Route::Server(&adb),
            phone(&format!("E2E-RISK-{}", kind.as_str().to_uppercase())),
            patient(),
        )
    }))
    .await;
    // Every kind meets a warning at every place; the buttons, titles,
    // phrases and the way the dialog is drawn vary across the runs, so that
    // each value of each is met.
    let runs = kinds
        .iter()
        .zip(&phones)
        .enumerate()
        .map(|(k, ((kind, payload), p))| {
            let (app, adb) = (&app, &adb);
            async move {
                for (w, when) in PLACES.into_iter().enumerate() {
                    let i = k * PLACES.len() + w;
                    let dialog = DialogFault {
                        title: RISK_TITLES[i % RISK_TITLES.len()].into(),
                        message: RISK_MESSAGES[i % RISK_MESSAGES.len()].into(),
                        buttons: RISK_BUTTONS[i % RISK_BUTTONS.len()]
                            .iter()
                            .map(|b| (*b).to_owned())
                            .collect(),
                        style: [DialogStyle::InApp, DialogStyle::Window][i % 2],
                        when,
                        cancelable: true,
                    };
                    let what = format!("{kind} with {dialog:?}");
                    let sent_before = p.sim.sent().len();
                    let inputs_before = p.sim.inputs().len();
                    p.sim.set_fault(Fault::Dialog(dialog.clone()));
                    let task = p.run(app, *kind, payload.clone(), DEADLINE).await;
                    assert_eq!(task.state, TaskState::Failed, "{what}: {task:?}");
                    let error = task.error.as_ref().expect("a failure says why");
                    assert_eq!(error.code, "risk_control", "{what}: {task:?}");
                    assert_eq!(task.attempt, 1, "{what}: not retried: {task:?}");
                    assert!(
                        error.message.contains(&dialog.message),
                        "{what}: {}",
                        error.message
                    );
                    let sent = p.sim.sent().len() - sent_before;
                    let expected = usize::from(when == DialogWhen::AfterSend);
                    assert_eq!(sent, expected, "{what}: {:?}", p.sim.sent());
                    assert!(
                        backs_on_a_dialog(p, inputs_before).is_empty(),
                        "{what}: {:?}",
                        p.sim.inputs()
                    );
                    let view = app
                        .wait_device(p.device_id(), "the risk-control pause", DEADLINE, |d| {
                            d.queue_paused
                        })
                        .await;
                    assert_eq!(view.pause_reason.as_deref(), Some("risk_control"), "{what}");
                    // A person closes the warning and resumes the queue.
                    assert!(p.sim.screen().name.ends_with("+dialog"), "{what}");
                    adb.shell(&p.serial, "input keyevent 4").await;
                    assert_eq!(app.resume(&[p.device_id()]).await.affected, 1, "{what}");
                }
            }
        });
    futures_util::future::join_all(runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_dialog_stops_the_task_without_back_and_chat_words_do_not() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (p, chat) = tokio::join!(
        PhoneAgent::start(&app, Route::Server(&adb), phone("E2E-UNKNOWN"), patient()),
        PhoneAgent::start(
            &app,
            Route::Server(&adb),
            phone("E2E-CHAT-WORDS"),
            patient()
        ),
    );
    let unknown = async {
        // A deep screen first, so that a launch that backed out of anything
        // would press BACK on the dialog (which BACK would close).
        let task = p
            .run(&app, TaskKind::SendMessage, text_to("张三", "一"), DEADLINE)
            .await;
        assert_succeeded_at_once(&task);
        let variants = [
            (DialogWhen::NextChange, DialogStyle::InApp, vec!["去认证"]),
            (
                DialogWhen::Change(2),
                DialogStyle::Window,
                vec!["OK", "Cancel"],
            ),
            (DialogWhen::AfterSend, DialogStyle::InApp, vec![]),
        ];
        for (n, (when, style, buttons)) in variants.into_iter().enumerate() {
            let dialog = DialogFault {
                title: format!("提示{n}"),
                message: "请先完成实名认证后再使用".into(),
                buttons: buttons.into_iter().map(str::to_owned).collect(),
                style,
                when,
                cancelable: true,
            };
            let what = format!("{dialog:?}");
            p.sim.set_fault(Fault::Dialog(dialog.clone()));
            let inputs_before = p.sim.inputs().len();
            let task = p
                .run(&app, TaskKind::SendMessage, text_to("李四", "二"), DEADLINE)
                .await;
            assert_failed_for_good(&task, "unexpected_dialog");
            let error = task.error.as_ref().expect("a failure says why");
            for text in [dialog.title.as_str(), &dialog.message]
                .into_iter()
                .chain(dialog.buttons.iter().map(String::as_str))
            {
                assert!(error.message.contains(text), "{what}: {}", error.message);
            }
            let result = task.result.as_ref().expect("the failure's evidence");
            for key in ["ui_dump", "screenshot"] {
                let path = result[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("no {key} in {result}"));
                assert!(std::fs::metadata(path).is_ok_and(|m| m.len() > 0), "{path}");
            }
            assert!(
                backs_on_a_dialog(&p, inputs_before).is_empty(),
                "{what}: {:?}",
                p.sim.inputs()
            );
            assert!(p.sim.screen().name.ends_with("+dialog"), "{what}: left up");
            // Not a risk warning: the queue runs on, once a person closes it.
            adb.shell(&p.serial, "input keyevent 4").await;
        }
        let device = app.device(p.device_id()).await;
        assert!(!device.queue_paused, "{device:?}");
    };
    let words = async {
        // A customer's message, and the operator's, that say risk phrases:
        // in the chat, and as the chat list's preview.
        for text in [
            "你们是不是操作过于频繁了？",
            "账号存在异常的问题已经解决，存在风险的是违规链接",
        ] {
            let task = chat
                .run(&app, TaskKind::SendMessage, text_to("张三", text), DEADLINE)
                .await;
            assert_succeeded_at_once(&task);
        }
        let task = chat
            .run(
                &app,
                TaskKind::DeleteChat,
                json!({ "with": { "name": "张三" } }),
                DEADLINE,
            )
            .await;
        assert_succeeded_at_once(&task);
    };
    tokio::join!(unknown, words);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_a_mass_send_never_sends_anything_twice() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn_with(|config| config.retry_delay_ms = 1500).await;
    let server = Route::Server(&adb);
    let (stalled, dropped) = tokio::join!(
        PhoneAgent::start(&app, server, phone("E2E-TWICE-STALL"), impatient()),
        PhoneAgent::start(&app, server, phone("E2E-TWICE-DROP"), patient()),
    );
    tokio::join!(
        a_stall_at_the_second_recipient(&app, &stalled),
        a_drop_at_the_second_recipient(&app, &adb, &dropped),
    );
}

/// A text to 张三, 李四 and 王五.
fn to_three() -> Value {
    json!({
        "recipients": [{ "name": "张三" }, { "name": "李四" }, { "name": "王五" }],
        "items": [{ "type": "text", "text": "周末大促" }],
    })
}

/// The chat's send button, as the simulator lays it out: its tap is the
/// `input tap` of every text's send.
const SEND_TAP: &str = "input tap 960 2316";

/// Arms `fault` once the phone has sent to 张三, so that it hits the send tap
/// of the second recipient (opening 李四's chat takes the flow seconds).
async fn arm_after_the_first_recipient(p: &PhoneAgent, fault: Fault) {
    eventually("the first recipient to get the text", DEADLINE, || async {
        p.sim
            .sent()
            .contains(&message("张三", "周末大促"))
            .then_some(())
    })
    .await;
    p.sim.set_fault(fault);
}

/// The `deliveries` of a task's stored result.
fn deliveries_of(task: &TaskView) -> Vec<Value> {
    let result = task.result.as_ref().expect("a result");
    result["deliveries"]
        .as_array()
        .unwrap_or_else(|| panic!("no deliveries in {result}"))
        .clone()
}

/// The phone stalls on the send tap of the second recipient: the tap never
/// happens and the attempt fails with `phone_timeout`. The retry does not
/// send to 张三 again, finds no text in 李四's chat and sends it, then 王五.
async fn a_stall_at_the_second_recipient(app: &TestApp, p: &PhoneAgent) {
    let id = p.submit(app, TaskKind::MassSend, to_three()).await;
    arm_after_the_first_recipient(
        p,
        Fault::Hang {
            pattern: SEND_TAP.into(),
            times: 1,
        },
    )
    .await;
    let failed = first_attempt_failed(app, id, "phone_timeout").await;
    // The failed attempt's outcomes are stored and shown while it waits,
    // and the failure names the recipient rather than a step number only.
    let failed_list = deliveries_of(&failed);
    let outcomes: Vec<&str> = failed_list
        .iter()
        .map(|d| d["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(outcomes, ["sent", "uncertain", "failed"], "{failed:?}");
    let message_text = &failed.error.as_ref().expect("an error").message;
    assert!(
        message_text.contains("recipient 2 (李四), item 1 (text)"),
        "{message_text}"
    );
    let task = app.wait_terminal(id, DEADLINE).await;
    assert_eq!(task.state, TaskState::Succeeded, "{task:?}");
    assert_eq!(task.attempt, 2, "{task:?}");
    assert_eq!(
        p.sim.sent(),
        vec![
            message("张三", "周末大促"),
            message("李四", "周末大促"),
            message("王五", "周末大促"),
        ],
        "each once"
    );
    let result = task.result.as_ref().expect("a result");
    assert_eq!(result["reached"], 3, "{result}");
    let list = deliveries_of(&task);
    let attempts: Vec<(&str, i64)> = list
        .iter()
        .map(|d| {
            (
                d["outcome"].as_str().unwrap_or_default(),
                d["attempt"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [("sent", 1), ("sent", 2), ("sent", 2)],
        "{result}"
    );
    assert_eq!(list[1]["to"]["name"], "李四", "{result}");
}

/// The connection drops during the send tap of the second recipient: the tap
/// happened, unconfirmed. Once adb has the phone again, the retry finds the
/// text in 李四's chat and does not send it again.
async fn a_drop_at_the_second_recipient(app: &TestApp, adb: &AdbServer, p: &PhoneAgent) {
    let id = p.submit(app, TaskKind::MassSend, to_three()).await;
    arm_after_the_first_recipient(
        p,
        Fault::DropConnection {
            pattern: SEND_TAP.into(),
        },
    )
    .await;
    first_attempt_failed(app, id, "phone_unreachable").await;
    adb.reconnect(&p.serial).await;
    let task = app.wait_terminal(id, DEADLINE).await;
    assert_eq!(task.state, TaskState::Succeeded, "{task:?}");
    assert_eq!(
        p.sim.sent(),
        vec![
            message("张三", "周末大促"),
            message("李四", "周末大促"),
            message("王五", "周末大促"),
        ],
        "each once"
    );
    let list = deliveries_of(&task);
    assert!(list.iter().all(|d| d["outcome"] == "sent"), "{list:?}");
    assert_eq!(list[1]["attempt"], 1, "{list:?}");
    assert_eq!(list[1]["checked"], true, "found in the chat: {list:?}");
}
