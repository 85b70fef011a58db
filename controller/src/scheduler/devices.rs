//! Devices: binding (a new phone takes over its account's queue, the old one
//! is closed and its tasks taken off), the admin actions on a set of devices
//! (an unknown id fails the whole action), pause, resume and auto-resume, the
//! risk-control pause (no auto-resume, a notification in the same commit),
//! settings pushed to the agents, and the device list.

use std::collections::HashSet;

use tokio::sync::oneshot;
use youmi_protocol::agent::error_code;
use youmi_protocol::{OperatorAccountId, ServerMessage, SettingsPatch, TaskId, TaskState};

use super::{Device, Report, Scheduler, TimerKey};
use crate::clock::Clock;
use crate::store::{Change, DeviceRecord};
use crate::{ControllerError, DeviceStatus, DeviceTarget};

impl<C: Clock> Scheduler<C> {
    /// Takes in a bound device (at start, or newly bound) as its account's
    /// device, its stored pause and auto-resume with it.
    pub(super) fn insert_device(&mut self, record: DeviceRecord) {
        if let Some(resume_at) = record.resume_at_ms.filter(|_| record.paused) {
            self.timers
                .insert((resume_at, TimerKey::AutoResume(record.device_id.clone())));
        }
        self.queues
            .entry(record.operator_account_id)
            .or_default()
            .device = Some(record.device_id.clone());
        self.devices.insert(
            record.device_id,
            Device {
                account: record.operator_account_id,
                settings: record.settings,
                paused: record.paused,
                pause_reason: record.pause_reason,
                resume_at: record.resume_at_ms,
                last_seen: record.last_seen_ms,
                battery: None,
                call: None,
                report: Report::default(),
                connection: None,
            },
        );
    }

    /// A phone was bound to an account: the account's previous device (and
    /// `replaced`) is closed and forgotten, and what was on its phone is taken
    /// off; the queue moves to the new device.
    pub(super) fn on_device_bound(
        &mut self,
        record: DeviceRecord,
        replaced: Option<String>,
        reply: oneshot::Sender<()>,
    ) {
        let now = self.now();
        let account = record.operator_account_id;
        let previous = self.queues.get(&account).and_then(|q| q.device.clone());
        for old in replaced.into_iter().chain(previous).collect::<HashSet<_>>() {
            if old == record.device_id {
                continue;
            }
            if let Some(device) = self.devices.remove(&old) {
                tracing::info!(device_id = %old, new_device_id = %record.device_id, "device replaced by a new bind");
                if let Some(connection) = device.connection {
                    connection.sink.close(
                        error_code::REVOKED,
                        "another phone was bound to this operator account",
                    );
                }
            }
            let in_flight: Vec<TaskId> = self
                .tasks
                .iter()
                .filter(|(_, t)| {
                    t.device.as_deref() == Some(old.as_str())
                        && !t.state.is_terminal()
                        && t.state != TaskState::Queued
                })
                .map(|(&id, _)| id)
                .collect();
            for id in in_flight {
                self.take_off_phone(id, "the phone was replaced by a new bind", now);
            }
        }
        tracing::info!(device_id = %record.device_id, account, "device bound");
        self.insert_device(record);
        self.reply(reply, ());
        self.try_dispatch(account);
    }

    /// Applies an admin action to every device of `target` and answers how
    /// many it reached, or which ids are unknown (then nothing changes).
    pub(super) fn for_each_device(
        &mut self,
        target: DeviceTarget,
        reply: oneshot::Sender<Result<u64, ControllerError>>,
        mut action: impl FnMut(&mut Self, &str),
    ) {
        let result = self.resolve(target).map(|ids| {
            for id in &ids {
                action(self, id);
            }
            ids.len() as u64
        });
        self.reply(reply, result);
    }

    fn resolve(&self, target: DeviceTarget) -> Result<Vec<String>, ControllerError> {
        match target {
            DeviceTarget::All => {
                let mut ids: Vec<String> = self.devices.keys().cloned().collect();
                ids.sort();
                Ok(ids)
            }
            DeviceTarget::Ids(ids) => {
                let mut unique = Vec::new();
                let mut seen = HashSet::new();
                let mut missing = Vec::new();
                for id in ids {
                    if !self.devices.contains_key(&id) {
                        missing.push(id);
                    } else if seen.insert(id.clone()) {
                        unique.push(id);
                    }
                }
                if missing.is_empty() {
                    Ok(unique)
                } else {
                    Err(ControllerError::UnknownDevices(missing))
                }
            }
        }
    }

    /// Pauses the account's queue because WeCom showed a risk-control warning:
    /// no auto-resume (an operator resumes by hand), and a notification for the
    /// admins in the same commit.
    pub(super) fn risk_control_pause(
        &mut self,
        device_id: &str,
        account: OperatorAccountId,
        task_id: TaskId,
        message: String,
        now: i64,
    ) {
        tracing::warn!(
            device_id,
            account,
            task_id,
            message,
            "risk control: queue paused until an operator resumes it"
        );
        let reason = Some(error_code::RISK_CONTROL.to_owned());
        self.set_queue(device_id, true, reason, true, false);
        let text = if message.is_empty() {
            format!("task {task_id}: WeCom showed a risk-control warning; the queue is paused until an operator resumes it")
        } else {
            format!("task {task_id}: WeCom showed a risk-control warning ({message}); the queue is paused until an operator resumes it")
        };
        self.change(Change::Notified {
            kind: error_code::RISK_CONTROL.to_owned(),
            account,
            device_id: device_id.to_owned(),
            task_id: Some(task_id),
            message: text,
            at_ms: now,
        });
    }

    /// Pauses or resumes a device's queue. A pause arms the auto-resume timer
    /// from the device's settings; `echo` tells the agent (not needed when the
    /// agent itself reported the change).
    pub(super) fn set_paused(
        &mut self,
        device_id: &str,
        paused: bool,
        reason: Option<String>,
        echo: bool,
    ) {
        self.set_queue(device_id, paused, reason, echo, true);
    }

    /// [`Scheduler::set_paused`], with the auto-resume timer armed only if `auto_resume`.
    fn set_queue(
        &mut self,
        device_id: &str,
        paused: bool,
        reason: Option<String>,
        echo: bool,
        auto_resume: bool,
    ) {
        let now = self.now();
        let unit = self.config.auto_resume_unit_ms;
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        let account = device.account;
        device.paused = paused;
        if paused {
            let minutes = if auto_resume {
                i64::from(device.settings.auto_resume_after_min.minutes())
            } else {
                0
            };
            device.resume_at = (minutes > 0).then(|| now + minutes * unit);
            device.pause_reason = reason;
        } else {
            device.resume_at = None;
            device.pause_reason = None;
        }
        let resume_at = device.resume_at;
        let reason = device.pause_reason.clone();
        tracing::info!(device_id, paused, reason, resume_at, "queue state changed");
        self.change(Change::QueuePaused {
            device_id: device_id.to_owned(),
            paused,
            reason,
            resume_at_ms: resume_at,
        });
        if let Some(at) = resume_at {
            self.timers
                .insert((at, TimerKey::AutoResume(device_id.to_owned())));
        }
        if echo {
            self.send_to(
                device_id,
                ServerMessage::Queue {
                    paused,
                    resume_at_ms: resume_at,
                },
            );
        }
        if !paused {
            self.try_dispatch(account);
        }
    }

    /// Merges `patch` into a device's settings and pushes them to its agent.
    pub(super) fn update_settings(&mut self, device_id: &str, patch: &SettingsPatch) {
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        device.settings = patch.apply(device.settings);
        let settings = device.settings;
        self.change(Change::SettingsChanged {
            device_id: device_id.to_owned(),
            settings,
        });
        self.send_to(device_id, ServerMessage::Settings { settings });
    }

    /// Whether a device is connected, greeted and heard from lately: the
    /// device list's "online", and who a one-off frame may go to.
    fn is_online(&self, device: &Device, now: i64) -> bool {
        device.connection.as_ref().is_some_and(|c| c.greeted) && self.is_fresh(device, now)
    }

    /// Sends each frame to its device if that device is online, and answers,
    /// in order, which went out (a one-off request such as `upload_logs`,
    /// which an offline phone would never see).
    pub(super) fn send_frames(&mut self, frames: Vec<(String, ServerMessage)>) -> Vec<bool> {
        let now = self.now();
        frames
            .into_iter()
            .map(|(device_id, frame)| {
                let online = self
                    .devices
                    .get(&device_id)
                    .is_some_and(|device| self.is_online(device, now));
                if online {
                    self.send_to(&device_id, frame);
                }
                online
            })
            .collect()
    }

    /// What the scheduler knows about every device, ordered by id.
    pub(super) fn device_statuses(&self) -> Vec<DeviceStatus> {
        let now = self.now();
        let mut statuses: Vec<DeviceStatus> = self
            .devices
            .iter()
            .map(|(id, d)| {
                let queue = self.queues.get(&d.account);
                let current_task_id = queue
                    .and_then(|q| q.in_flight)
                    .filter(|&t| self.owns(id, t));
                let online = self.is_online(d, now);
                DeviceStatus {
                    device_id: id.clone(),
                    operator_account_id: d.account,
                    online,
                    paused: d.paused,
                    pause_reason: d.pause_reason.clone(),
                    resume_at_ms: d.resume_at,
                    current_task_id,
                    current_task_kind: current_task_id
                        .and_then(|t| self.tasks.get(&t))
                        .map(|task| task.kind),
                    last_seen_ms: d.last_seen,
                    battery: d.battery,
                    call: d.call,
                    queued_tasks: queue.map_or(0, |q| (q.ready.len() + q.delayed.len()) as u64),
                    wecom_version: d.report.wecom_version.clone(),
                    screen_on: d.report.screen_on,
                    dnd: d.report.dnd,
                    settings: d.settings,
                }
            })
            .collect();
        statuses.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        statuses
    }
}
