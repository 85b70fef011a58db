//! Bind codes, the one-time codes a phone binds with (`/api/v1/operator-accounts/{id}/bind-codes`).

use serde::{Deserialize, Serialize};

/// `POST /api/v1/operator-accounts/{id}/bind-codes` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindCode {
    /// The one-time code.
    pub code: String,
    /// When it stops working, Unix milliseconds.
    pub expires_at: i64,
}
