//! Queues and dispatch: submission (every task's account known and enabled,
//! checked in the turn that queues them), the queue order (priority, then
//! id; `not_before` in the delayed set), the dispatch gate (account enabled,
//! device greeted and fresh, queue not paused, nothing in flight), expiry
//! past `not_after`, and how a task leaves a phone without a report.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::oneshot;
use youmi_protocol::agent::error_code;
use youmi_protocol::{OperatorAccountId, ServerMessage, TaskError, TaskId, TaskState};

use super::{Scheduler, Task, TimerKey};
use crate::clock::Clock;
use crate::store::{AccountRecord, Change, NewTask};
use crate::{ControllerError, SubmitError};

impl<C: Clock> Scheduler<C> {
    /// Puts a queued task into its account's queue: ready, or delayed until
    /// `not_before`.
    pub(super) fn enqueue(&mut self, id: TaskId, not_before: Option<i64>, now: i64) {
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        task.set_state(TaskState::Queued);
        task.device = None;
        let queue = self.queues.entry(task.account).or_default();
        match not_before.filter(|&at| at > now) {
            Some(at) => {
                task.not_before = Some(at);
                queue.delayed.insert((at, id));
                self.timers.insert((at, TimerKey::Delayed(task.account)));
            }
            None => {
                task.not_before = None;
                queue.ready.insert((Reverse(task.priority), id));
            }
        }
    }

    /// Hands the account's next ready task to its device, if the gate is open:
    /// the account is enabled, its device is connected and greeted, the queue is
    /// not paused, and nothing else is on the phone.
    pub(super) fn try_dispatch(&mut self, account: OperatorAccountId) {
        let now = self.now();
        let Some(queue) = self.queues.get(&account) else {
            return;
        };
        if queue.disabled || queue.in_flight.is_some() {
            return;
        }
        let Some(device_id) = queue.device.clone() else {
            return;
        };
        let Some(device) = self.devices.get(&device_id) else {
            return;
        };
        if device.paused || !self.is_fresh(device, now) {
            return;
        }
        let Some(sink) = device.greeted_sink() else {
            return;
        };
        loop {
            let Some(queue) = self.queues.get_mut(&account) else {
                return;
            };
            let Some((_, id)) = queue.ready.pop_first() else {
                return;
            };
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            if task.not_after.is_some_and(|deadline| deadline < now) {
                self.tasks.remove(&id);
                self.metrics.task_finished(TaskState::Expired);
                tracing::info!(task_id = id, "task expired before it could start");
                self.change(Change::TaskFinished {
                    id,
                    state: TaskState::Expired,
                    error: None,
                    result: None,
                    at_ms: now,
                });
                continue;
            }
            if task.sends >= self.config.assign_max_sends {
                let sends = task.sends;
                self.fail_undeliverable(id, &format!("its assign was sent {sends} times"), now);
                continue;
            }
            queue.in_flight = Some(id);
            task.set_state(TaskState::Dispatched);
            task.attempt += 1;
            task.sends += 1;
            task.dispatched_at = Some(now);
            task.device = Some(device_id.clone());
            let assign = task.assign(id);
            let attempt = task.attempt;
            tracing::debug!(task_id = id, device_id = %device_id, attempt, "dispatching");
            self.change(Change::TaskDispatched {
                id,
                device_id: device_id.clone(),
                attempt,
                at_ms: now,
            });
            self.metrics.tasks_dispatched.increment(1);
            self.send_assign(sink, assign);
            self.timers
                .insert((now + self.config.assign_resend_ms, TimerKey::Resend(id)));
            return;
        }
    }

    /// Which of `ids` name operator accounts, and whether each is disabled.
    pub(super) fn known_accounts(
        &self,
        ids: Vec<OperatorAccountId>,
    ) -> HashMap<OperatorAccountId, bool> {
        ids.into_iter()
            .filter_map(|id| Some((id, self.queues.get(&id)?.disabled)))
            .collect()
    }

    /// An account was created, disabled or enabled: the gate of its queue.
    pub(super) fn on_account_changed(&mut self, account: AccountRecord) {
        let queue = self.queues.entry(account.id).or_default();
        queue.disabled = account.disabled;
        tracing::info!(
            account = account.id,
            disabled = account.disabled,
            "operator account changed"
        );
        self.try_dispatch(account.id);
    }

    /// The first task, in order, whose account does not exist or is
    /// disabled: a submission naming one queues nothing.
    fn check_accounts(&self, tasks: &[NewTask]) -> Result<(), SubmitError> {
        for (index, task) in tasks.iter().enumerate() {
            let account = task.operator_account_id;
            match self.queues.get(&account).map(|queue| queue.disabled) {
                None => return Err(SubmitError::UnknownAccount { index, account }),
                Some(true) => return Err(SubmitError::AccountDisabled { index, account }),
                Some(false) => {}
            }
        }
        Ok(())
    }

    /// Numbers and queues new tasks, all or none, and answers their ids once
    /// they are committed. A refusal (an account, or the store the handle
    /// found not taking writes) is answered at once: it changed nothing.
    pub(super) fn on_submit(
        &mut self,
        tasks: Vec<NewTask>,
        refused: Option<ControllerError>,
        reply: oneshot::Sender<Result<Vec<TaskId>, SubmitError>>,
    ) {
        let checked = self
            .check_accounts(&tasks)
            .and_then(|()| refused.map_or(Ok(()), |error| Err(error.into())));
        if let Err(error) = checked {
            tracing::debug!(%error, tasks = tasks.len(), "submission refused");
            let _ = reply.send(Err(error));
            return;
        }
        let now = self.now();
        let mut ids = Vec::with_capacity(tasks.len());
        let mut accounts = HashSet::new();
        for new in tasks {
            let id = self.next_task_id;
            self.next_task_id += 1;
            ids.push(id);
            let new = Arc::new(new);
            self.change(Change::TaskInserted {
                id,
                task: new.clone(),
                at_ms: now,
            });
            if new.intercepted.is_some() {
                self.metrics.task_finished(TaskState::Intercepted);
                continue;
            }
            self.tasks.insert(
                id,
                Task {
                    account: new.operator_account_id,
                    kind: new.kind,
                    payload: new.payload.clone(),
                    priority: new.priority,
                    not_before: None,
                    not_after: new.not_after_ms,
                    state: TaskState::Queued,
                    attempt: 0,
                    device: None,
                    cancel_requested: false,
                    sends: 0,
                    dispatched_at: None,
                    gauge: self.metrics.task_gauge(new.kind, TaskState::Queued),
                },
            );
            self.enqueue(id, new.not_before_ms, now);
            accounts.insert(new.operator_account_id);
        }
        self.reply(reply, Ok(ids));
        for account in accounts {
            self.try_dispatch(account);
        }
    }

    /// Takes a dispatched or running task off its phone without a report from
    /// it: back to the queue if it was never accepted (nothing ran), failed with
    /// `lost` if it was (it may have run; it is never run again on its own).
    pub(super) fn take_off_phone(&mut self, id: TaskId, why: &str, now: i64) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let account = task.account;
        if let Some(queue) = self.queues.get_mut(&account) {
            if queue.in_flight == Some(id) {
                queue.in_flight = None;
            }
        }
        match (task.state, task.cancel_requested) {
            (TaskState::Dispatched, false) => {
                tracing::info!(
                    task_id = id,
                    reason = why,
                    "task was never accepted; queued again"
                );
                self.change(Change::TaskRequeued {
                    id,
                    not_before_ms: None,
                    error: None,
                    result: None,
                    at_ms: now,
                });
                self.enqueue(id, None, now);
            }
            (TaskState::Dispatched, true) => {
                self.end_task(id, TaskState::Cancelled, None, None, now)
            }
            _ => {
                tracing::warn!(task_id = id, reason = why, "running task lost");
                let error = TaskError {
                    code: error_code::LOST.to_owned(),
                    message: why.to_owned(),
                    retryable: false,
                };
                self.end_task(id, TaskState::Failed, Some(error), None, now);
            }
        }
    }

    /// Records a task's end and forgets it.
    pub(super) fn end_task(
        &mut self,
        id: TaskId,
        state: TaskState,
        error: Option<TaskError>,
        result: Option<String>,
        now: i64,
    ) {
        let Some(task) = self.tasks.remove(&id) else {
            return;
        };
        if let Some(queue) = self.queues.get_mut(&task.account) {
            if queue.in_flight == Some(id) {
                queue.in_flight = None;
            }
        }
        tracing::debug!(task_id = id, state = %state, "task ended");
        self.metrics.task_finished(state);
        self.change(Change::TaskFinished {
            id,
            state,
            error,
            result,
            at_ms: now,
        });
    }

    /// Fails a task whose `assign` the agent never accepted, within the bounds
    /// of [`ControllerConfig::assign_max_sends`] and
    /// [`ControllerConfig::assign_deliver_ms`]. The device is told to drop it,
    /// in case it holds it after all. The caller moves the queue on.
    pub(super) fn fail_undeliverable(&mut self, id: TaskId, why: &str, now: i64) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let device = task.device.clone();
        let on_phone = task.state == TaskState::Dispatched;
        tracing::warn!(task_id = id, device_id = ?device, reason = why, "the agent never accepted the task; failing it as undeliverable");
        self.metrics.tasks_undeliverable.increment(1);
        let error = TaskError {
            code: error_code::UNDELIVERABLE.to_owned(),
            message: format!("the agent never accepted the task: {why}"),
            retryable: false,
        };
        self.end_task(id, TaskState::Failed, Some(error), None, now);
        if let (true, Some(device)) = (on_phone, device) {
            self.send_to(&device, ServerMessage::Cancel { task_id: id });
        }
    }
}
