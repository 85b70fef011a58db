//! The 通知 page: risk-control pauses listed with their account, the unread
//! count in the header, marking one read in place and all read at once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use youmi_protocol::api::NotificationPage;
use youmi_protocol::{AgentMessage, FinishedReport, Outcome, ServerMessage, TaskError};
use youmi_tests::{expect_json, payloads, TestApp};

use crate::harness::Browser;

const FRAME_WAIT: Duration = Duration::from_secs(10);

/// A risk-control failure on a new account's phone: the server pauses the
/// queue and leaves a notification.
async fn risk_control_on_new_account(app: &TestApp, warning: &str) {
    let account = app.create_account().await;
    let (_, mut agent, _) = app.raw_agent(account.id).await;
    let task = app.submit(&payloads::message(account.id)).await;
    let assigned = agent.recv_assign(FRAME_WAIT).await;
    assert_eq!(assigned.id, task.id);
    agent.accept(task.id).await;
    agent
        .send(&AgentMessage::Finished(FinishedReport {
            task_id: task.id,
            outcome: Outcome::Failed,
            error: Some(TaskError {
                code: "risk_control".into(),
                message: warning.into(),
                retryable: false,
            }),
            result: Some(json!({"step": "send_message[4] tap"})),
        }))
        .await;
    agent
        .recv_where(FRAME_WAIT, |message| match message {
            ServerMessage::Ack { task_id } if *task_id == task.id => Some(()),
            _ => None,
        })
        .await;
}

async fn unread(app: &TestApp) -> u64 {
    let page: NotificationPage =
        expect_json(app.get("/api/v1/notifications").await, StatusCode::OK).await;
    page.unread
}

#[tokio::test]
async fn notifications_are_listed_counted_in_the_header_and_marked_read() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::start(&app, "notifications").await else {
        return;
    };
    risk_control_on_new_account(&app, "账号存在异常，请稍后再试").await;
    risk_control_on_new_account(&app, "操作过于频繁").await;
    assert_eq!(unread(&app).await, 2);

    // Every page's header counts the unread ones.
    browser.goto("/").await;
    browser.log_in().await;
    browser.wait_location("/operator-accounts").await;
    let badge = browser.text("[data-badge='/notifications']").await;
    assert!(badge.trim().ends_with('2'), "{badge:?}");

    // The list: newest first, the kind in words, the account by name.
    browser.click("nav.sections a[href='/notifications']").await;
    browser.wait_location("/notifications").await;
    assert_eq!(browser.count("#notifications tbody tr").await, 2);
    assert_eq!(browser.count("#notifications tr.is-unread").await, 2);
    let first = browser.text("#notifications tbody tr:first-child").await;
    assert!(first.contains("风控提醒"), "{first}");
    assert!(first.contains("操作过于频繁"), "{first}");
    assert!(first.contains("Operator"), "the account's name: {first}");
    browser.screenshot("list").await;

    // One marked read in place (htmx): the row says so, the count drops.
    browser
        .click("#notifications tbody tr:first-child [data-action=mark-read]")
        .await;
    browser
        .wait_text("#notifications tbody tr:first-child .badge.off", "已读")
        .await;
    assert_eq!(unread(&app).await, 1);

    // The unread filter shows the other one only.
    browser.click("#filter-unread").await;
    browser.wait_location("/notifications?unread=true").await;
    assert_eq!(browser.count("#notifications tbody tr").await, 1);
    let left = browser.text("#notifications tbody tr").await;
    assert!(left.contains("账号存在异常"), "{left}");

    // All read at once: a notice, no badge, nothing unread.
    browser.click("#mark-all").await;
    browser.wait_text("#flash", "已将 1 条通知标为已读").await;
    assert_eq!(browser.count("[data-badge='/notifications']").await, 0);
    assert_eq!(unread(&app).await, 0);
    assert_eq!(browser.count("#mark-all").await, 0);
    browser.screenshot("all-read").await;

    // Nothing unread is said so.
    browser.goto("/notifications?unread=true").await;
    browser.wait_text(".empty", "没有未读通知。").await;
    browser.close().await;
    app.shutdown().await;
}
