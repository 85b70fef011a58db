//! Cancelling tasks: waiting ones end at once and are never assigned; running
//! ones are stopped through `cancel` and end as the phone reports; filters by
//! task, account, device and kind.

use std::time::Duration;

use youmi_protocol::api::{CancelResult, CancelTasks};
use youmi_protocol::{Outcome, ServerMessage, TaskKind, TaskState};
use youmi_tests::payloads::{message, task};
use youmi_tests::{AgentSpec, RawAgent, TestApp};

const SECS_5: Duration = Duration::from_secs(5);

fn by_ids(ids: &[i64]) -> CancelTasks {
    CancelTasks {
        task_ids: Some(ids.to_vec()),
        ..CancelTasks::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_task_is_cancelled_at_once_and_never_assigned() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let bound = app.bind_raw(account.id).await;
    let doomed = app.submit(&message(account.id)).await;
    let kept = app.submit(&message(account.id)).await;

    let result = app.cancel(&by_ids(&[doomed.id])).await;
    assert_eq!(
        result,
        CancelResult {
            cancelled: 1,
            cancelling: 0,
            devices: Vec::new(),
        }
    );
    // No waiting: the answer means it is done.
    let view = app.task(doomed.id).await;
    assert_eq!(view.state, TaskState::Cancelled);
    assert!(view.finished_at_ms.is_some());

    let (mut agent, _) = RawAgent::connect_hello(&app.ws_url(), &bound.token).await;
    let assigned = agent.recv_assign(SECS_5).await;
    assert_eq!(assigned.id, kept.id, "the cancelled task is skipped");
    agent.accept(kept.id).await;
    agent.finish(kept.id, Outcome::Succeeded).await;
    agent.expect_no_assign(Duration::from_millis(400)).await;

    // Cancelling again, or cancelling a finished task, changes nothing.
    let again = app.cancel(&by_ids(&[doomed.id, kept.id])).await;
    assert_eq!(
        again,
        CancelResult {
            cancelled: 0,
            cancelling: 0,
            devices: Vec::new(),
        }
    );
    assert_eq!(app.task(doomed.id).await.state, TaskState::Cancelled);
    assert_eq!(app.task(kept.id).await.state, TaskState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_is_stopped_on_the_phone() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let agent = app
        .bind_agent_with(
            account.id,
            AgentSpec {
                step_latency: Duration::from_millis(400),
                ..AgentSpec::default()
            },
        )
        .await;
    let running = app.submit(&message(account.id)).await;
    app.wait_task_state(running.id, TaskState::Running, SECS_5)
        .await;

    let result = app.cancel(&by_ids(&[running.id])).await;
    assert_eq!(
        result,
        CancelResult {
            cancelled: 0,
            cancelling: 1,
            devices: Vec::new(),
        }
    );
    let view = app
        .wait_task_state(running.id, TaskState::Cancelled, SECS_5)
        .await;
    assert!(view.cancel_requested);
    assert!(
        agent.phone.sent().iter().all(|r| r.task_id != running.id),
        "a cancelled task is not sent"
    );

    // The queue goes on with the next task.
    let next = app.submit(&message(account.id)).await;
    app.wait_task_state(next.id, TaskState::Succeeded, Duration::from_secs(10))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_gets_cancel_and_reports_the_outcome() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (_, mut agent, _) = app.raw_agent(account.id).await;
    let submitted = app.submit(&message(account.id)).await;
    let assigned = agent.recv_assign(SECS_5).await;
    agent.accept(assigned.id).await;
    app.wait_task_state(submitted.id, TaskState::Running, SECS_5)
        .await;

    let result = app.cancel(&by_ids(&[submitted.id])).await;
    assert_eq!(result.cancelling, 1);
    agent
        .recv_where(SECS_5, |m| match m {
            ServerMessage::Cancel { task_id } if *task_id == submitted.id => Some(()),
            _ => None,
        })
        .await;
    // Still running until the phone says how it ended.
    assert_eq!(app.task(submitted.id).await.state, TaskState::Running);
    agent.finish(submitted.id, Outcome::Cancelled).await;
    let view = app.task(submitted.id).await;
    assert_eq!(view.state, TaskState::Cancelled);
    assert!(view.cancel_requested);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_finished_before_the_cancel_keeps_its_outcome() {
    let app = TestApp::spawn().await;
    let account = app.create_account().await;
    let (_, mut agent, _) = app.raw_agent(account.id).await;
    let submitted = app.submit(&message(account.id)).await;
    let assigned = agent.recv_assign(SECS_5).await;
    agent.accept(assigned.id).await;
    app.wait_task_state(submitted.id, TaskState::Running, SECS_5)
        .await;
    app.cancel(&by_ids(&[submitted.id])).await;
    // The phone had already sent the message: it reports success.
    agent.finish(submitted.id, Outcome::Succeeded).await;
    assert_eq!(app.task(submitted.id).await.state, TaskState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_by_account_device_and_kind() {
    let app = TestApp::spawn().await;
    let first = app.create_account().await;
    let second = app.create_account().await;
    let third = app.create_account().await;
    // Bound, never connected: everything stays queued.
    let first_device = app.bind_raw(first.id).await;
    app.bind_raw(second.id).await;
    app.bind_raw(third.id).await;

    let first_messages = app
        .submit_batch(vec![message(first.id), message(first.id)])
        .await;
    let first_post = app.submit(&task(first.id, TaskKind::MomentsPost)).await.id;
    let second_tasks = app
        .submit_batch(vec![
            message(second.id),
            task(second.id, TaskKind::FriendAdd),
        ])
        .await;
    let third_tasks = app
        .submit_batch(vec![
            message(third.id),
            task(third.id, TaskKind::MomentsPost),
            task(third.id, TaskKind::DeleteChat),
        ])
        .await;

    // By kind: the Moments posts of every account.
    let result = app
        .cancel(&CancelTasks {
            kinds: Some(vec![TaskKind::MomentsPost]),
            ..CancelTasks::default()
        })
        .await;
    assert_eq!(result.cancelled, 2);
    assert_eq!(app.task(first_post).await.state, TaskState::Cancelled);
    assert_eq!(app.task(third_tasks[1]).await.state, TaskState::Cancelled);

    // By account.
    let result = app
        .cancel(&CancelTasks {
            operator_account_ids: Some(vec![second.id]),
            ..CancelTasks::default()
        })
        .await;
    assert_eq!(result.cancelled, 2);

    // Filters combine: this account's messages only.
    let result = app
        .cancel(&CancelTasks {
            operator_account_ids: Some(vec![third.id]),
            kinds: Some(vec![TaskKind::SendMessage]),
            ..CancelTasks::default()
        })
        .await;
    assert_eq!(result.cancelled, 1);
    assert_eq!(app.task(third_tasks[0]).await.state, TaskState::Cancelled);
    assert_eq!(app.task(third_tasks[2]).await.state, TaskState::Queued);

    // By device: what is queued for the first account's phone.
    let result = app
        .cancel(&CancelTasks {
            device_ids: Some(vec![first_device.device_id.clone()]),
            ..CancelTasks::default()
        })
        .await;
    assert_eq!(result.cancelled, 2);

    for id in first_messages.iter().chain(&second_tasks) {
        assert_eq!(app.task(*id).await.state, TaskState::Cancelled, "task {id}");
    }
    // The one task no filter matched is untouched.
    assert_eq!(app.task(third_tasks[2]).await.state, TaskState::Queued);
}
