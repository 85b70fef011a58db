//! The 任务 pages: the list filtered by account, kind and state, a failed
//! task's detail with its error and what the agent reported, and cancel.

use std::time::Duration;

use serde_json::json;
use youmi_protocol::api::TaskView;
use youmi_protocol::{
    AgentMessage, FinishedReport, Outcome, ServerMessage, TaskError, TaskKind, TaskState,
};
use youmi_tests::{payloads, TestApp};

use crate::harness::Browser;

const FRAME_WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn tasks_are_filtered_shown_with_their_error_and_cancelled() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::start(&app, "tasks").await else {
        return;
    };
    // One account's phone fails a task with evidence; another's queue holds
    // a chat task and a mass send that no phone takes.
    let busy = app.create_account().await;
    let (_, mut agent, _) = app.raw_agent(busy.id).await;
    let failed = app.submit(&payloads::message(busy.id)).await;
    assert_eq!(agent.recv_assign(FRAME_WAIT).await.id, failed.id);
    agent.accept(failed.id).await;
    agent
        .send(&AgentMessage::Finished(FinishedReport {
            task_id: failed.id,
            outcome: Outcome::Failed,
            error: Some(TaskError {
                code: "element_not_found".into(),
                message: "step open_chat[2]: 搜索 never appeared".into(),
                retryable: false,
            }),
            result: Some(json!({"evidence": {"ui_dump": "evidence/7/ui.xml"}})),
        }))
        .await;
    agent
        .recv_where(FRAME_WAIT, |message| match message {
            ServerMessage::Ack { task_id } if *task_id == failed.id => Some(()),
            _ => None,
        })
        .await;
    let idle = app.create_account().await;
    let chat = app.submit(&payloads::message(idle.id)).await;
    let mass = app
        .submit(&payloads::task(idle.id, TaskKind::MassSend))
        .await;

    browser.goto("/tasks").await;
    browser.log_in().await;
    browser.wait_location("/tasks").await;
    assert_eq!(browser.count("#tasks tbody tr").await, 3);
    browser.screenshot("list").await;

    // Filters: the idle account's mass sends only.
    browser
        .script(&format!(
            "document.getElementById('filter-account').value = '{}';\
             document.getElementById('filter-kind').value = 'mass_send';",
            idle.id
        ))
        .await;
    browser.click("#apply-filters").await;
    browser
        .wait_location(&format!(
            "/tasks?account={}&kind=mass_send&state=&within=0",
            idle.id
        ))
        .await;
    assert_eq!(browser.count("#tasks tbody tr").await, 1);
    assert_eq!(browser.count(&format!("#task-{}", mass.id)).await, 1);
    browser.goto("/tasks?state=failed").await;
    assert_eq!(browser.count("#tasks tbody tr").await, 1);
    assert!(browser
        .text(&format!("#task-{}", failed.id))
        .await
        .contains("element_not_found"));
    // A filter value that is no choice: the error page, in words.
    browser.goto("/tasks?kind=teleport").await;
    browser
        .wait_text("#error-message", "筛选条件不是可选的值")
        .await;

    // The failed one's detail: error, payload, what the agent reported.
    browser.goto(&format!("/tasks/{}", failed.id)).await;
    assert_eq!(browser.text("#task-state").await, "失败");
    assert!(browser
        .text("#task-error")
        .await
        .contains("搜索 never appeared"));
    assert!(browser.text("#task-payload").await.contains("\"items\""));
    assert!(browser
        .text("#task-result")
        .await
        .contains("evidence/7/ui.xml"));
    assert_eq!(
        browser.count("#cancel-task").await,
        0,
        "an ended task has no cancel"
    );
    browser.screenshot("failed").await;

    // Cancel a queued one from its page: only that one.
    browser.goto(&format!("/tasks/{}", chat.id)).await;
    browser.click("#cancel-task").await;
    browser.wait_text("#flash", "任务已取消").await;
    assert_eq!(browser.text("#task-state").await, "已取消");
    let chat_now: TaskView = app.task(chat.id).await;
    assert_eq!(chat_now.state, TaskState::Cancelled);
    assert_eq!(app.task(mass.id).await.state, TaskState::Queued);
    browser.screenshot("cancelled").await;

    // An unknown task: the not-found page.
    browser.goto("/tasks/999999").await;
    browser.wait_text("#error-message", "任务不存在").await;
    browser.close().await;
    app.shutdown().await;
}
