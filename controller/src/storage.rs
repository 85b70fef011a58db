//! How the store is doing, as the writer sees it: the [`StorageStatus`] the
//! server's health check and write routes read, and the signals the writer
//! sets as commits fail, are retried and succeed again.
//!
//! A transient failure (see [`crate::StoreError::transient`]) makes the store
//! `Degraded` until a commit succeeds; a permanent one stops the controller
//! (`Failed`); a commit that has run for [`STALLED_AFTER_MS`] without ending is
//! `Stalled`.

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::watch;

use crate::clock::unix_ms;

/// A commit running this long (and not failing) makes the writer `Stalled`.
pub const STALLED_AFTER_MS: i64 = 30_000;

/// Whether the scheduler's store takes writes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageStatus {
    /// The last commit succeeded (or none failed yet).
    Ok,
    /// Commits fail with a transient error; the writer retries the same batch
    /// until one succeeds, and nothing waiting on it is told before.
    Degraded {
        /// The last failure.
        reason: String,
        /// Unix milliseconds of the first failure of this spell.
        since_ms: i64,
    },
    /// One commit has been running since `since_ms` without ending.
    Stalled {
        /// Unix milliseconds when that commit started.
        since_ms: i64,
    },
    /// The store failed for good and the controller stopped.
    Failed {
        /// Why.
        reason: String,
    },
}

impl StorageStatus {
    /// Whether writes are taken now.
    pub fn is_ok(&self) -> bool {
        matches!(self, StorageStatus::Ok)
    }

    /// What is wrong, for logs, health and error bodies; `None` when ok.
    pub fn problem(&self) -> Option<String> {
        match self {
            StorageStatus::Ok => None,
            StorageStatus::Degraded { reason, .. } => {
                Some(format!("the database is failing: {reason}"))
            }
            StorageStatus::Stalled { since_ms } => Some(format!(
                "a commit has been running for {} s",
                (unix_ms(std::time::SystemTime::now()) - since_ms) / 1_000
            )),
            StorageStatus::Failed { reason } => Some(format!("the scheduler stopped: {reason}")),
        }
    }
}

/// What the writer tells the controller's handles about the store.
pub(crate) struct StorageSignals {
    /// Set to the reason when the writer stopped for good.
    pub failure: watch::Sender<Option<String>>,
    /// `Ok` or `Degraded`, as the last commit went.
    pub status: watch::Sender<StorageStatus>,
    /// Unix milliseconds when the running commit started; 0 while none runs.
    pub commit_started_ms: AtomicI64,
}

impl StorageSignals {
    pub(crate) fn new() -> StorageSignals {
        StorageSignals {
            failure: watch::channel(None).0,
            status: watch::channel(StorageStatus::Ok).0,
            commit_started_ms: AtomicI64::new(0),
        }
    }

    /// The status now: a failure first, then a failing store, then a stall.
    pub(crate) fn current(&self) -> StorageStatus {
        if let Some(reason) = self.failure.borrow().clone() {
            return StorageStatus::Failed { reason };
        }
        let status = self.status.borrow().clone();
        if !status.is_ok() {
            return status;
        }
        let started = self.commit_started_ms.load(Ordering::Relaxed);
        if started != 0 && now_ms() - started >= STALLED_AFTER_MS {
            return StorageStatus::Stalled { since_ms: started };
        }
        StorageStatus::Ok
    }

    /// A commit failed transiently: the store is degraded from the first such
    /// failure on, with the latest reason.
    pub(crate) fn degraded(&self, reason: String) {
        self.status.send_modify(|status| match status {
            StorageStatus::Degraded { reason: last, .. } => *last = reason,
            other => {
                *other = StorageStatus::Degraded {
                    reason,
                    since_ms: now_ms(),
                }
            }
        });
    }

    /// A commit succeeded: the store is ok again. Answers whether it was not.
    pub(crate) fn recovered(&self) -> bool {
        self.status.send_if_modified(|status| {
            if status.is_ok() {
                return false;
            }
            *status = StorageStatus::Ok;
            true
        })
    }

    /// Marks the start (`true`) or end of a commit, for the stall check.
    pub(crate) fn committing(&self, running: bool) {
        let value = if running { now_ms().max(1) } else { 0 };
        self.commit_started_ms.store(value, Ordering::Relaxed);
    }
}

fn now_ms() -> i64 {
    unix_ms(std::time::SystemTime::now())
}
