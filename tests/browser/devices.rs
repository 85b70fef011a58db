//! RPA助手管理 in the browser: a phone bound through the console's bind
//! code comes online on the open page without a reload; the batch actions
//! (pause, clear by kind, settings, resume) run after a confirmation with
//! the count, show each phone's result, and change what the API and the
//! agent then hold; bad input shows its message and changes nothing.

use std::time::Duration;

use serde_json::Value;
use youmi_protocol::api::SubmitTask;
use youmi_protocol::{DeviceInfo, TaskKind, TaskState};
use youmi_tests::payloads::sample_payload;
use youmi_tests::{eventually, AgentSpec, TestAgent, TestApp};

use crate::harness::{Browser, WAIT};

/// Queues `count` tasks of `kind` on `account`.
async fn queue(app: &TestApp, account: i64, kind: TaskKind, count: u64) {
    for n in 0..count {
        app.submit(&SubmitTask {
            operator_account_id: account,
            kind,
            payload: sample_payload(kind, n),
            priority: None,
            not_before: None,
            not_after: None,
        })
        .await;
    }
}

/// The states of `account`'s tasks of `kind`.
async fn states(app: &TestApp, account: i64, kind: TaskKind) -> Vec<TaskState> {
    app.account_tasks(account)
        .await
        .into_iter()
        .filter(|task| task.kind == kind)
        .map(|task| task.state)
        .collect()
}

/// Posts the batch form's `action`: its confirmation shows `count`.
async fn run_batch(browser: &Browser, action: &str, count: &str) {
    browser.click(&format!("#batch-{action}")).await;
    browser.wait_contains("#batch-count", count).await;
}

/// Confirms the batch shown; the results say it was done on `device`.
async fn confirm_done(browser: &Browser, device: &str) {
    browser.click("#batch-confirm-button").await;
    browser
        .wait_contains(
            &format!("#batch-results tr[data-device='{device}']"),
            "已完成",
        )
        .await;
}

#[tokio::test]
async fn a_phone_binds_comes_online_live_and_batches_pause_clear_and_configure_it() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::start(&app, "devices").await else {
        return;
    };
    browser.resize(1480, 1000).await;
    let account = app.create_account().await;
    let code = browser.bind_code(account.id).await;

    // The page open, its feed connected, no phone yet.
    browser.click("nav.sections a[href='/devices']").await;
    browser.wait_location("/devices").await;
    assert_eq!(browser.text("h1").await, "RPA助手管理");
    eventually("the live feed to connect", WAIT, || async {
        let live = browser
            .script("return document.getElementById('devices-page').getAttribute('data-live');")
            .await;
        (live == Value::String("on".into())).then_some(())
    })
    .await;
    assert!(browser
        .text("#devices-empty")
        .await
        .contains("还没有绑定的设备"));
    browser.screenshot("empty").await;
    browser
        .script("window.notReloaded = true; return true;")
        .await;

    // A phone binds with the console's code: its row appears, online.
    let credentials = youmi_agent::bind(
        &app.agent_url(),
        &code,
        DeviceInfo {
            serial: "R58N123ABC".into(),
            model: "Galaxy A54".into(),
            android_version: "14".into(),
            agent_version: "0.1.0".into(),
        },
    )
    .await
    .expect("bind with the console's code");
    let agent = TestAgent::start(credentials, app.state_dir(), AgentSpec::default());
    let device = agent.device_id().to_owned();
    let row = format!("#device-{device}");
    browser
        .wait_text(&format!("{row} [data-cell=online]"), "在线")
        .await;
    // The serial is the bind's until the agent's hello names its own (the
    // in-process agent says its device id); the row shows whichever the
    // list read.
    let row_text = browser.text(&row).await;
    assert!(
        row_text.contains("R58N123ABC") || row_text.contains(&device),
        "{row_text}"
    );
    assert!(browser.text(&row).await.contains(&account.name));
    assert_eq!(
        browser.script("return window.notReloaded === true;").await,
        Value::Bool(true),
        "the row came without a reload"
    );
    browser.screenshot("online").await;

    // 关闭任务队列 on the ticked row: the count, then the result; the row
    // turns paused by itself.
    browser
        .click(&format!("{row} input[name=device_ids]"))
        .await;
    assert_eq!(browser.text("#selected-count").await, "1");
    run_batch(&browser, "pause", "1 台设备").await;
    browser.screenshot("pause-confirm").await;
    confirm_done(&browser, &device).await;
    browser
        .wait_contains(&format!("{row} [data-cell=queue]"), "已暂停")
        .await;
    assert!(app.device(&device).await.queue_paused);
    browser.screenshot("paused").await;

    // Tasks queue while paused; the count follows live.
    queue(&app, account.id, TaskKind::SendMessage, 2).await;
    queue(&app, account.id, TaskKind::MassSend, 3).await;
    browser
        .wait_text(&format!("{row} [data-cell=queued]"), "5")
        .await;

    // 清除任务 of every device the filter matches, mass sends only: chat
    // tasks stay.
    browser.goto("/devices?online=1").await;
    browser.click("#scope-filter").await;
    run_batch(&browser, "cancel", "1 台设备").await;
    browser.click("#kind-mass_send").await;
    browser.screenshot("clear-confirm").await;
    browser.click("#batch-confirm-button").await;
    browser
        .wait_contains("#batch-results", "已取消 3 个排队任务")
        .await;
    browser.screenshot("cleared").await;
    assert_eq!(
        states(&app, account.id, TaskKind::MassSend).await,
        [TaskState::Cancelled; 3]
    );
    assert_eq!(
        states(&app, account.id, TaskKind::SendMessage).await,
        [TaskState::Queued; 2]
    );
    browser
        .wait_text(&format!("{row} [data-cell=queued]"), "2")
        .await;

    // Bad input changes nothing: nothing ticked; an unknown device; no kind
    // chosen; a value the settings do not take.
    browser.goto("/devices").await;
    browser.click("#batch-resume").await;
    browser.wait_contains("#flash", "请先勾选设备").await;
    browser
        .script("const input = document.createElement('input'); input.type = 'hidden'; input.name = 'device_ids'; input.value = 'dev_nobody'; document.getElementById('batch-form').appendChild(input); return true;")
        .await;
    browser.click("#batch-resume").await;
    browser.wait_contains("#flash", "设备不存在或已解绑").await;
    browser.screenshot("refused").await;
    browser.goto("/devices").await;
    browser
        .click(&format!("{row} input[name=device_ids]"))
        .await;
    run_batch(&browser, "cancel", "1 台设备").await;
    browser.click("#batch-confirm-button").await;
    browser
        .wait_contains("#flash", "请至少选择一类要清除的任务")
        .await;
    run_batch(&browser, "settings", "1 台设备").await;
    browser
        .script("document.getElementById('auto-resume-5').value = '7'; document.getElementById('auto-resume-5').checked = true; return true;")
        .await;
    browser.click("#batch-confirm-button").await;
    browser.wait_contains("#flash", "设置的取值无效").await;
    assert!(app.device(&device).await.queue_paused);
    assert_eq!(
        states(&app, account.id, TaskKind::SendMessage).await,
        [TaskState::Queued; 2]
    );
    assert_eq!(
        app.device(&device)
            .await
            .settings
            .auto_resume_after_min
            .minutes(),
        0
    );

    // 应用设置: auto-resume after 5 minutes and the volume key toggle; the
    // agent gets them.
    browser.goto("/devices").await;
    browser
        .click(&format!("{row} input[name=device_ids]"))
        .await;
    run_batch(&browser, "settings", "1 台设备").await;
    browser.click("#auto-resume-5").await;
    browser
        .script("document.getElementById('set-volume_key_toggle').value = '1'; return true;")
        .await;
    browser.screenshot("settings-confirm").await;
    confirm_done(&browser, &device).await;
    eventually("the agent to get the settings", WAIT, || async {
        let settings = agent.handle.status().settings;
        (settings.auto_resume_after_min.minutes() == 5 && settings.volume_key_toggle).then_some(())
    })
    .await;
    browser.screenshot("settings-done").await;

    // 开启任务队列: the chat tasks run, and the row shows it live.
    run_batch(&browser, "resume", "1 台设备").await;
    browser.click("#batch-confirm-button").await;
    browser
        .wait_contains(&format!("{row} [data-cell=queue]"), "运行中")
        .await;
    eventually("the chat tasks to run", Duration::from_secs(20), || async {
        let states = states(&app, account.id, TaskKind::SendMessage).await;
        (states == [TaskState::Succeeded; 2]).then_some(())
    })
    .await;
    browser
        .wait_text(&format!("{row} [data-cell=queued]"), "0")
        .await;
    browser.screenshot("resumed").await;

    // 上传日志: the phone is asked and its upload is recorded.
    run_batch(&browser, "upload_logs", "1 台设备").await;
    confirm_done(&browser, &device).await;
    eventually("the log upload to be recorded", WAIT, || async {
        (!app.device_logs(&device).await.items.is_empty()).then_some(())
    })
    .await;
    agent.handle.shutdown().await;
    browser
        .wait_text(&format!("{row} [data-cell=online]"), "离线")
        .await;
    // Offline, it is not asked, and the result says why.
    run_batch(&browser, "upload_logs", "1 台设备").await;
    browser.click("#batch-confirm-button").await;
    browser
        .wait_contains(
            &format!("#batch-results tr[data-device='{device}']"),
            "设备离线，未请求上传",
        )
        .await;
    assert_eq!(app.device_logs(&device).await.items.len(), 1);
    // The same page in English.
    browser.click("a.lang[hreflang=en]").await;
    browser.wait_text("h1", "Device agents").await;
    assert_eq!(
        browser.text(&format!("{row} [data-cell=queue]")).await,
        "Running"
    );
    browser.screenshot("english").await;
    browser.close().await;
    app.shutdown().await;
}
