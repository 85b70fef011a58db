//! The one error body of every failed request.

use serde::{Deserialize, Serialize};

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable snake_case code.
    pub code: String,
    /// Human text.
    pub message: String,
    /// The request field at fault, where there is one (e.g. `payload.to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
