//! Health checks (`/health/...`, outside `/api/v1`).

use serde::{Deserialize, Serialize};

/// `GET /health/live` and `GET /health/ready` answer (outside `/api/v1`, no
/// token). `status` is `ok`, or `unavailable` with the check that failed
/// (`migrations`, `database` or `writer`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// The check that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
