//! Operator accounts (`/api/v1/operator-accounts...`).

use serde::{Deserialize, Serialize};

use super::page::{Listed, Page};
use crate::OperatorAccountId;

/// An operator account, as the API shows one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAccount {
    /// Database id.
    pub id: OperatorAccountId,
    /// Display name.
    pub name: String,
    /// The WeCom user id of the account.
    pub wecom_user_id: String,
    /// Free text for the admins.
    #[serde(default)]
    pub remark: String,
    /// Disabled accounts take no tasks and dispatch none.
    pub disabled: bool,
    /// The phone bound to the account now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// When the account was created.
    pub created_at_ms: i64,
    /// When the account was last changed.
    pub updated_at_ms: i64,
}

/// `POST /api/v1/operator-accounts` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOperatorAccount {
    /// Display name.
    pub name: String,
    /// The WeCom user id; unique.
    pub wecom_user_id: String,
    /// Free text for the admins.
    #[serde(default)]
    pub remark: String,
}

/// `PATCH /api/v1/operator-accounts/{id}` request: any subset of the fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOperatorAccount {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New WeCom user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom_user_id: Option<String>,
    /// New remark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// Disable (true) or enable (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

impl Listed for OperatorAccount {
    const FIELD: &'static str = "operator_accounts";
}

/// `GET /api/v1/operator-accounts` answer: every account, by id, as one
/// page (`{"operator_accounts": [...]}`; the list is not paged, so it never
/// has a `next_cursor`).
pub type OperatorAccountList = Page<OperatorAccount>;
