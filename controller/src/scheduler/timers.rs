//! Timers: what each [`TimerKey`] does when it is due: `assign` re-sent
//! until accepted (and `undeliverable` past the bounds), delayed tasks
//! (`not_before`, retries) made ready, auto-resume, and the offline check
//! that closes the connections of silent devices.

use youmi_protocol::{OperatorAccountId, TaskId, TaskState};

use super::{Device, Scheduler};
use crate::clock::Clock;
use crate::ConnectionId;

/// What a timer is for. Timers are checked when they fire, not cancelled, so a
/// timer whose reason has gone away simply does nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKey {
    /// Look for devices that went silent.
    OfflineCheck,
    /// Move due tasks of this account from delayed to ready.
    Delayed(OperatorAccountId),
    /// Resume this device's queue if its auto-resume time has come.
    AutoResume(String),
    /// Re-send this task's `assign` if it is still not accepted.
    Resend(TaskId),
}

impl<C: Clock> Scheduler<C> {
    /// Does what every due timer is for.
    pub(super) fn fire_timers(&mut self) {
        let now = self.now();
        while let Some((due, _)) = self.timers.first() {
            if *due > now {
                break;
            }
            let (_, key) = self.timers.pop_first().expect("a first timer exists");
            match key {
                TimerKey::OfflineCheck => {
                    self.close_silent_devices(now);
                    self.timers
                        .insert((now + self.config.offline_check_ms, TimerKey::OfflineCheck));
                }
                TimerKey::Delayed(account) => {
                    let Some(queue) = self.queues.get_mut(&account) else {
                        continue;
                    };
                    let mut due_ids = Vec::new();
                    while let Some(&(at, id)) = queue.delayed.first() {
                        if at > now {
                            break;
                        }
                        queue.delayed.pop_first();
                        due_ids.push(id);
                    }
                    for id in due_ids {
                        self.enqueue(id, None, now);
                    }
                    self.try_dispatch(account);
                }
                TimerKey::AutoResume(device_id) => {
                    let due_now = self
                        .devices
                        .get(&device_id)
                        .is_some_and(|d| d.paused && d.resume_at.is_some_and(|at| at <= now));
                    if due_now {
                        tracing::info!(device_id, "auto-resume");
                        self.set_paused(&device_id, false, None, true);
                    }
                }
                TimerKey::Resend(id) => {
                    let Some(task) = self
                        .tasks
                        .get(&id)
                        .filter(|t| t.state == TaskState::Dispatched)
                    else {
                        continue;
                    };
                    let Some(device_id) = task.device.clone() else {
                        continue;
                    };
                    // An offline device is not counted against: its `hello`
                    // queues the task again and a new dispatch starts over.
                    let Some(sink) = self.devices.get(&device_id).and_then(Device::greeted_sink)
                    else {
                        self.timers
                            .insert((now + self.config.assign_resend_ms, TimerKey::Resend(id)));
                        continue;
                    };
                    let account = task.account;
                    let sends = task.sends;
                    let waited = now - task.dispatched_at.unwrap_or(now);
                    let why = if sends >= self.config.assign_max_sends {
                        Some(format!("its assign was sent {sends} times"))
                    } else if waited >= self.config.assign_deliver_ms {
                        Some(format!(
                            "its assign went unanswered for {} s",
                            waited / 1_000
                        ))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        self.fail_undeliverable(id, &why, now);
                        self.try_dispatch(account);
                        continue;
                    }
                    let assign = task.assign(id);
                    tracing::debug!(
                        task_id = id,
                        device_id,
                        sends,
                        "assign not accepted in time; sending it again"
                    );
                    if let Some(task) = self.tasks.get_mut(&id) {
                        task.sends += 1;
                    }
                    self.metrics.assign_resends.increment(1);
                    self.send_assign(sink, assign);
                    self.timers
                        .insert((now + self.config.assign_resend_ms, TimerKey::Resend(id)));
                }
            }
        }
    }

    /// Closes the connections of devices not heard from within the offline limit.
    fn close_silent_devices(&mut self, now: i64) {
        let limit = self.config.offline_after_ms;
        let silent: Vec<(String, ConnectionId)> = self
            .devices
            .iter()
            .filter_map(|(id, d)| {
                let connection = d.connection.as_ref()?;
                (now - d.last_seen.unwrap_or(now) > limit).then(|| (id.clone(), connection.id))
            })
            .collect();
        for (device_id, connection) in silent {
            tracing::warn!(
                device_id,
                "no frame from the device within the offline limit; closing its connection"
            );
            if let Some(c) = self
                .devices
                .get(&device_id)
                .and_then(|d| d.connection.as_ref())
            {
                c.sink
                    .close("idle_timeout", "no heartbeat within the offline limit");
            }
            self.on_disconnect(&device_id, connection);
        }
    }
}
