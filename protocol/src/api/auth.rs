//! Login, logout and who is logged in (`/api/v1/auth/...`).

use serde::{Deserialize, Serialize};

/// `POST /api/v1/auth/login` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    /// The employee's job number.
    pub job_no: String,
    /// The password.
    pub password: String,
}

/// An employee, as the API shows one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Employee {
    /// Database id.
    pub id: i64,
    /// Job number, the login name.
    pub job_no: String,
    /// Display name.
    pub name: String,
    /// Whether the employee is an administrator.
    pub is_admin: bool,
}

/// `POST /api/v1/auth/login` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The session token for `Authorization: Bearer`.
    pub token: String,
    /// When the token stops working.
    pub expires_at_ms: i64,
    /// Who logged in.
    pub employee: Employee,
}
