//! Notifications for the admins: list, mark read (`/api/v1/notifications...`).

use serde::{Deserialize, Serialize};

use super::page::{Listed, Page, PageQuery};
use crate::{OperatorAccountId, TaskId};

/// One notification for the admins (`GET /api/v1/notifications`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Its id; ids grow with time.
    pub id: i64,
    /// What happened, e.g. `risk_control`.
    pub kind: String,
    /// The operator account concerned.
    pub operator_account_id: OperatorAccountId,
    /// The device concerned.
    pub device_id: String,
    /// The task that revealed it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// What to tell the admins.
    pub message: String,
    /// When it happened, Unix milliseconds.
    pub created_at_ms: i64,
    /// When an admin marked it read; absent while unread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at_ms: Option<i64>,
}

/// `GET /api/v1/notifications` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationQuery {
    /// Only unread notifications.
    #[serde(default)]
    pub unread: bool,
    /// The page: `limit` and `cursor`.
    #[serde(flatten)]
    pub page: PageQuery,
}

impl Listed for Notification {
    const FIELD: &'static str = "notifications";
}

/// `GET /api/v1/notifications` answer, newest first: a page of
/// notifications and how many are unread in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationPage {
    /// How many notifications are unread in all.
    pub unread: u64,
    /// This page (`notifications`, `next_cursor`).
    #[serde(flatten)]
    pub page: Page<Notification>,
}

/// `POST /api/v1/notifications/read` request: some ids, or all, never neither nor both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkRead {
    /// The notifications to mark read.
    #[serde(default)]
    pub ids: Vec<i64>,
    /// Mark every notification read.
    #[serde(default)]
    pub all: bool,
}

/// `POST /api/v1/notifications/read` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedRead {
    /// How many notifications went from unread to read.
    pub marked: u64,
}
