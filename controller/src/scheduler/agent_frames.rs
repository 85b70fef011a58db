//! A device's connection and what its agent says: connect (a newer
//! connection replaces an older one), `hello` first and the resynchronisation
//! it starts (keep what the agent still runs, store what it finished, requeue
//! what it never accepted, `lost` for what it accepted and no longer reports,
//! cancel what the server no longer wants), `accepted`, `refused`, `finished`
//! (the first report wins, acked after its commit; retries of retryable
//! failures; a copy of a stored report acked again), and disconnect.

use std::collections::HashSet;
use std::sync::Arc;

use youmi_protocol::agent::error_code;
use youmi_protocol::{
    AgentMessage, DeviceInfo, FinishedReport, Outcome, ServerMessage, TaskError, TaskId, TaskState,
};

use super::{Command, Connection, Report, Scheduler};
use crate::clock::Clock;
use crate::sink::DeviceSink;
use crate::store::{Change, StoreError, TaskOwner};
use crate::ConnectionId;

impl<C: Clock> Scheduler<C> {
    /// A device's WebSocket opened: it replaces the device's older one, and
    /// nothing is dispatched to it before `hello`.
    pub(super) fn on_connect(
        &mut self,
        device_id: String,
        connection: ConnectionId,
        sink: Arc<dyn DeviceSink>,
    ) {
        let now = self.now();
        let Some(device) = self.devices.get_mut(&device_id) else {
            // The device was revoked between the token check and now.
            sink.close(error_code::REVOKED, "this device is no longer bound");
            return;
        };
        device.last_seen = Some(now);
        let previous = device.connection.replace(Connection {
            id: connection,
            sink,
            greeted: false,
            online: None,
        });
        if let Some(previous) = previous {
            tracing::info!(device_id = %device_id, "a newer connection replaced the device's previous one");
            previous.sink.close(
                error_code::REPLACED,
                "a newer connection of this device took over",
            );
        }
    }

    /// A device's connection closed; a late close of a replaced one changes nothing.
    pub(super) fn on_disconnect(&mut self, device_id: &str, connection: ConnectionId) {
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        if device.connection.as_ref().map(|c| c.id) != Some(connection) {
            return;
        }
        device.connection = None;
        let last_seen = device.last_seen.unwrap_or_else(|| self.clock.now_ms());
        tracing::info!(device_id, "device disconnected");
        self.change(Change::DeviceSeen {
            device_id: device_id.to_owned(),
            at_ms: last_seen,
            info: None,
        });
    }

    /// One frame of a device's current connection; the first must be `hello`.
    pub(super) fn on_message(
        &mut self,
        device_id: &str,
        connection: ConnectionId,
        message: AgentMessage,
    ) {
        let now = self.now();
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        let Some(current) = device.connection.as_ref().filter(|c| c.id == connection) else {
            // A frame from a connection that was replaced or timed out.
            return;
        };
        let sink = current.sink.clone();
        let greeted = current.greeted;
        device.last_seen = Some(now);
        if !greeted && !matches!(message, AgentMessage::Hello { .. }) {
            self.send(
                sink,
                ServerMessage::Error {
                    code: error_code::HELLO_REQUIRED.to_owned(),
                    message: "the first frame must be hello".to_owned(),
                },
            );
            return;
        }
        match message {
            AgentMessage::Hello {
                agent_version,
                device: info,
                queue_paused,
                running,
                finished,
            } => self.on_hello(
                device_id,
                connection,
                sink,
                agent_version,
                info,
                queue_paused,
                running,
                finished,
            ),
            AgentMessage::Accepted { task_id } => self.on_accepted(device_id, sink, task_id),
            AgentMessage::Finished(report) => {
                self.finish_from(device_id, connection, &sink, report)
            }
            AgentMessage::Progress {
                task_id,
                step,
                done,
                total,
            } => {
                if self.owns(device_id, task_id) {
                    tracing::debug!(task_id, step, done, total, "progress");
                } else {
                    self.send_error(
                        sink,
                        error_code::NOT_YOUR_TASK,
                        format!("task {task_id} is not on this device"),
                    );
                }
            }
            AgentMessage::QueueChanged { paused, reason } => {
                let reason = if reason.trim().is_empty() {
                    "agent".to_owned()
                } else {
                    reason
                };
                self.set_paused(device_id, paused, Some(reason), false);
            }
            AgentMessage::Heartbeat {
                battery,
                call,
                screen_on,
                wecom_version,
                dnd,
                ..
            } => {
                if let Some(device) = self.devices.get_mut(device_id) {
                    device.battery = battery.or(device.battery);
                    // Unlike the battery, an old call state is not kept: a
                    // call that rang a heartbeat ago may be over.
                    device.call = call;
                    let report = Report {
                        wecom_version: wecom_version.or(device.report.wecom_version.clone()),
                        screen_on: screen_on.or(device.report.screen_on),
                        dnd: dnd.or(device.report.dnd),
                    };
                    let changed = report != device.report;
                    device.report = report.clone();
                    let account = device.account;
                    if changed {
                        self.change(Change::DeviceReported {
                            device_id: device_id.to_owned(),
                            wecom_version: report.wecom_version,
                            screen_on: report.screen_on,
                            dnd: report.dnd,
                        });
                    }
                    // A device that was silent long enough to be held back is
                    // back; its queue may move again.
                    self.try_dispatch(account);
                }
            }
            AgentMessage::Event { kind, .. } => tracing::info!(device_id, kind, "agent event"),
            AgentMessage::UpdateStatus {
                version,
                state,
                message,
            } => {
                tracing::info!(device_id, version, ?state, message, "agent update status")
            }
            AgentMessage::LogsUploaded { request_id, error } => {
                tracing::info!(device_id, request_id, error, "agent log upload")
            }
            AgentMessage::Refused {
                task_id,
                code,
                message,
            } => self.on_refused(device_id, task_id, code, message),
        }
    }

    /// `hello`: the device is greeted and welcomed, and the server's idea of
    /// its phone is settled against what the agent runs and finished.
    #[allow(clippy::too_many_arguments)]
    fn on_hello(
        &mut self,
        device_id: &str,
        connection: ConnectionId,
        sink: Arc<dyn DeviceSink>,
        agent_version: String,
        mut info: DeviceInfo,
        queue_paused: bool,
        running: Vec<TaskId>,
        finished: Vec<FinishedReport>,
    ) {
        let now = self.now();
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        if let Some(connection) = device.connection.as_mut() {
            connection.greeted = true;
            connection
                .online
                .get_or_insert_with(|| self.metrics.online());
        }
        let account = device.account;
        let settings = device.settings;
        let server_paused = device.paused;
        tracing::info!(
            device_id,
            agent_version,
            queue_paused,
            running = running.len(),
            finished = finished.len(),
            "hello"
        );
        if info.agent_version.is_empty() {
            info.agent_version = agent_version;
        }
        self.change(Change::DeviceSeen {
            device_id: device_id.to_owned(),
            at_ms: now,
            info: Some(info),
        });
        // The welcome goes out before anything else this turn sends the device.
        self.send(
            sink.clone(),
            ServerMessage::Welcome {
                device_id: device_id.to_owned(),
                operator_account_id: account,
                settings,
                server_time_ms: now,
            },
        );
        if queue_paused && !server_paused {
            self.set_paused(device_id, true, Some("agent".to_owned()), false);
        } else if server_paused && !queue_paused {
            let resume_at = self.devices.get(device_id).and_then(|d| d.resume_at);
            self.send(
                sink.clone(),
                ServerMessage::Queue {
                    paused: true,
                    resume_at_ms: resume_at,
                },
            );
        }

        // Settle the task the server believes is on this phone.
        let reported_finished: HashSet<TaskId> = finished.iter().map(|r| r.task_id).collect();
        let in_flight = self
            .queues
            .get(&account)
            .and_then(|q| q.in_flight)
            .filter(|&id| self.owns(device_id, id));
        if let Some(id) = in_flight.filter(|id| !reported_finished.contains(id)) {
            if running.contains(&id) {
                let task = self.tasks.get_mut(&id).expect("owned task exists");
                if task.state == TaskState::Dispatched {
                    task.set_state(TaskState::Running);
                    self.change(Change::TaskRunning { id, at_ms: now });
                }
                if self.tasks.get(&id).is_some_and(|t| t.cancel_requested) {
                    self.send(sink.clone(), ServerMessage::Cancel { task_id: id });
                }
            } else {
                self.take_off_phone(id, "the agent no longer reports the task", now);
            }
        }
        for report in finished {
            self.finish_from(device_id, connection, &sink, report);
        }
        // Anything else the agent runs is not wanted here any more.
        for id in running {
            if Some(id) != in_flight && !self.owns(device_id, id) {
                tracing::warn!(
                    task_id = id,
                    device_id,
                    "agent runs a task the server does not expect; cancelling it"
                );
                self.send(sink.clone(), ServerMessage::Cancel { task_id: id });
            }
        }
        self.try_dispatch(account);
    }

    fn on_accepted(&mut self, device_id: &str, sink: Arc<dyn DeviceSink>, task_id: TaskId) {
        if !self.owns(device_id, task_id) {
            self.send_error(
                sink,
                error_code::NOT_YOUR_TASK,
                format!("task {task_id} is not on this device"),
            );
            return;
        }
        let task = self.tasks.get_mut(&task_id).expect("owned task exists");
        if task.state == TaskState::Dispatched {
            task.set_state(TaskState::Running);
            let now = self.now();
            tracing::debug!(task_id, device_id, "accepted");
            self.change(Change::TaskRunning {
                id: task_id,
                at_ms: now,
            });
        }
    }

    /// The agent could not take an `assign`: the task fails with its reason at
    /// once (it never ran), and the queue moves on. A refusal of a task that
    /// is not waiting for this device's `accepted` changes nothing.
    fn on_refused(&mut self, device_id: &str, task_id: TaskId, code: String, message: String) {
        let waiting = self.owns(device_id, task_id)
            && self
                .tasks
                .get(&task_id)
                .is_some_and(|t| t.state == TaskState::Dispatched);
        if !waiting {
            tracing::warn!(
                task_id,
                device_id,
                code,
                "refusal of a task that is not waiting for this device; ignored"
            );
            return;
        }
        let now = self.now();
        let account = self.tasks.get(&task_id).map(|t| t.account);
        tracing::warn!(
            task_id,
            device_id,
            code,
            message,
            "the agent refused the task"
        );
        self.metrics.assign_refusals.increment(1);
        let code = if code.trim().is_empty() {
            error_code::REFUSED.to_owned()
        } else {
            code
        };
        let message = if message.trim().is_empty() {
            format!("the agent refused the task ({code})")
        } else {
            message
        };
        let error = TaskError {
            code,
            message,
            retryable: false,
        };
        self.end_task(task_id, TaskState::Failed, Some(error), None, now);
        if let Some(account) = account {
            self.try_dispatch(account);
        }
    }

    /// Stores a `finished` report (the first one wins) and acks it after the
    /// commit. A report for a task the scheduler no longer holds is looked up in
    /// the store: acked again if it was this device's, refused otherwise.
    fn finish_from(
        &mut self,
        device_id: &str,
        connection: ConnectionId,
        sink: &Arc<dyn DeviceSink>,
        report: FinishedReport,
    ) {
        let id = report.task_id;
        if self.owns(device_id, id) {
            let now = self.now();
            let task = self.tasks.get(&id).expect("owned task exists");
            let account = task.account;
            let attempt = task.attempt;
            // WeCom warned the account: stop using it until a person looks.
            let risk_control = report.outcome == Outcome::Failed
                && report
                    .error
                    .as_ref()
                    .is_some_and(|e| e.code == error_code::RISK_CONTROL);
            let retry = report.outcome == Outcome::Failed
                && !risk_control
                && report.error.as_ref().is_some_and(|e| e.retryable)
                && !task.cancel_requested
                && attempt < self.config.max_attempts;
            if risk_control {
                let message = report
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                self.risk_control_pause(device_id, account, id, message, now);
            }
            if retry {
                let not_before = now + self.config.retry_delay_ms * i64::from(attempt);
                tracing::info!(
                    task_id = id,
                    attempt,
                    not_before,
                    "retryable failure; task queued again"
                );
                if let Some(queue) = self.queues.get_mut(&account) {
                    queue.in_flight = None;
                }
                if let Some(task) = self.tasks.get_mut(&id) {
                    // A new attempt: its assign has not been sent yet.
                    task.sends = 0;
                }
                // The failed attempt's result (which items it sent) is kept
                // and shown while the task waits for its next attempt.
                self.change(Change::TaskRequeued {
                    id,
                    not_before_ms: Some(not_before),
                    error: report.error,
                    result: report.result.map(|value| value.to_string()),
                    at_ms: now,
                });
                self.enqueue(id, Some(not_before), now);
            } else {
                let state = match report.outcome {
                    Outcome::Succeeded => TaskState::Succeeded,
                    Outcome::Failed => TaskState::Failed,
                    Outcome::Cancelled => TaskState::Cancelled,
                };
                let result = report.result.map(|value| value.to_string());
                self.end_task(id, state, report.error, result, now);
            }
            self.send(sink.clone(), ServerMessage::Ack { task_id: id });
            self.try_dispatch(account);
        } else if self.tasks.contains_key(&id) {
            self.send_error(
                sink.clone(),
                error_code::NOT_YOUR_TASK,
                format!("task {id} is not on this device"),
            );
        } else {
            // Ended already (a copy of a stored report), or never existed. Only
            // the store knows which; ask it off the scheduler's task, once this
            // turn's changes are committed: the end of the first report may
            // still be on its way to the store (a reconnect while the store
            // fails), and the store must not be asked before it holds it.
            let lookup = self.lookup.clone();
            let commands = self.commands.clone();
            let device_id = device_id.to_owned();
            let runtime = tokio::runtime::Handle::current();
            self.effect(Box::new(move || {
                runtime.spawn(async move {
                    let owner = lookup(id).await;
                    if let Some(commands) = commands.upgrade() {
                        let _ = commands
                            .send(Command::OwnerLookedUp {
                                device_id,
                                connection,
                                task_id: id,
                                owner,
                            })
                            .await;
                    }
                });
            }));
        }
    }

    /// The store's answer about a reported task the scheduler no longer holds.
    pub(super) fn on_owner_looked_up(
        &mut self,
        device_id: &str,
        connection: ConnectionId,
        task_id: TaskId,
        owner: Result<Option<TaskOwner>, StoreError>,
    ) {
        let Some(sink) = self
            .devices
            .get(device_id)
            .and_then(|d| d.connection.as_ref())
            .filter(|c| c.id == connection)
            .map(|c| c.sink.clone())
        else {
            return;
        };
        match owner {
            Ok(Some(owner))
                if owner.state.is_terminal() && owner.device_id.as_deref() == Some(device_id) =>
            {
                tracing::debug!(task_id, device_id, "copy of a stored result; acked again");
                self.send(sink, ServerMessage::Ack { task_id });
            }
            Ok(_) => self.send_error(
                sink,
                error_code::NOT_YOUR_TASK,
                format!("task {task_id} is not on this device"),
            ),
            Err(error) => {
                // The agent re-sends unacked reports, so it will ask again.
                tracing::warn!(task_id, %error, "could not look up a reported task");
            }
        }
    }
}
