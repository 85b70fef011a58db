//! Cancellation by task ids, accounts, devices and kinds (a task matches
//! every filter given): a waiting or not yet accepted task ends at once, a
//! running one is asked to stop and ends with its agent's report.

use std::cmp::Reverse;
use std::collections::HashSet;

use youmi_protocol::api::{CancelResult, DeviceCancelled};
use youmi_protocol::{OperatorAccountId, ServerMessage, TaskId, TaskState};

use super::Scheduler;
use crate::clock::Clock;
use crate::store::Change;
use crate::CancelFilter;

impl<C: Clock> Scheduler<C> {
    /// Cancels the tasks that match `filter` and says how many ended at once
    /// and how many were asked to stop.
    pub(super) fn on_cancel(&mut self, filter: &CancelFilter) -> CancelResult {
        let now = self.now();
        let device_accounts: Option<HashSet<OperatorAccountId>> =
            filter.device_ids.as_ref().map(|ids| {
                ids.iter()
                    .filter_map(|id| self.devices.get(id))
                    .map(|d| d.account)
                    .collect()
            });
        let candidates: Vec<TaskId> = match (
            &filter.task_ids,
            &filter.operator_account_ids,
            &device_accounts,
        ) {
            (Some(ids), _, _) => ids
                .iter()
                .copied()
                .filter(|id| self.tasks.contains_key(id))
                .collect(),
            (None, Some(accounts), _) | (None, None, Some(accounts)) => accounts
                .iter()
                .filter_map(|account| self.queues.get(account))
                .flat_map(|q| {
                    q.ready
                        .iter()
                        .map(|(_, id)| *id)
                        .chain(q.delayed.iter().map(|(_, id)| *id))
                        .chain(q.in_flight)
                })
                .collect(),
            (None, None, None) => self.tasks.keys().copied().collect(),
        };
        let mut result = CancelResult::default();
        // With a device filter, each named device's counts, by id.
        let mut per_device: Vec<DeviceCancelled> = filter
            .device_ids
            .iter()
            .flatten()
            .map(|id| DeviceCancelled {
                device_id: id.clone(),
                cancelled: 0,
                cancelling: 0,
            })
            .collect();
        per_device.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        // Accounts whose task on the phone ended here: their queues move on.
        let mut touched = HashSet::new();
        for id in candidates {
            let Some(task) = self.tasks.get(&id) else {
                continue;
            };
            let matches = filter
                .operator_account_ids
                .as_ref()
                .is_none_or(|a| a.contains(&task.account))
                && filter.kinds.as_ref().is_none_or(|k| k.contains(&task.kind))
                && match (&filter.device_ids, &device_accounts) {
                    (Some(devices), Some(accounts)) => {
                        task.device.as_ref().is_some_and(|d| devices.contains(d))
                            || (task.state == TaskState::Queued && accounts.contains(&task.account))
                    }
                    _ => true,
                };
            if !matches {
                continue;
            }
            let account_of = task.account;
            let counts = task
                .device
                .as_ref()
                .filter(|d| {
                    filter
                        .device_ids
                        .as_ref()
                        .is_some_and(|ids| ids.contains(*d))
                })
                .or_else(|| {
                    filter.device_ids.iter().flatten().find(|id| {
                        self.devices
                            .get(*id)
                            .is_some_and(|d| d.account == account_of)
                    })
                })
                .and_then(|device| {
                    per_device
                        .binary_search_by(|c| c.device_id.as_str().cmp(device))
                        .ok()
                });
            if let Some(index) = counts {
                let count = &mut per_device[index];
                if matches!(task.state, TaskState::Queued | TaskState::Dispatched) {
                    count.cancelled += 1;
                } else {
                    count.cancelling += 1;
                }
            }
            match task.state {
                TaskState::Queued => {
                    let key_ready = (Reverse(task.priority), id);
                    let key_delayed = task.not_before.map(|at| (at, id));
                    if let Some(queue) = self.queues.get_mut(&task.account) {
                        queue.ready.remove(&key_ready);
                        if let Some(key) = key_delayed {
                            queue.delayed.remove(&key);
                        }
                    }
                    self.end_task(id, TaskState::Cancelled, None, None, now);
                    result.cancelled += 1;
                }
                TaskState::Dispatched => {
                    // Not accepted: the phone has not started it, so it ends
                    // now. The agent is told to drop it, in case its
                    // `accepted` is on the way.
                    let device = task.device.clone();
                    self.end_task(id, TaskState::Cancelled, None, None, now);
                    if let Some(device) = device {
                        self.send_to(&device, ServerMessage::Cancel { task_id: id });
                    }
                    result.cancelled += 1;
                    touched.insert(account_of);
                }
                _ => {
                    result.cancelling += 1;
                    if task.cancel_requested {
                        continue;
                    }
                    let device = task.device.clone();
                    self.tasks
                        .get_mut(&id)
                        .expect("task exists")
                        .cancel_requested = true;
                    self.change(Change::TaskCancelRequested { id, at_ms: now });
                    if let Some(device) = device {
                        self.send_to(&device, ServerMessage::Cancel { task_id: id });
                    }
                }
            }
        }
        tracing::info!(
            cancelled = result.cancelled,
            cancelling = result.cancelling,
            "cancel"
        );
        for account in touched {
            self.try_dispatch(account);
        }
        result.devices = per_device;
        result
    }
}
