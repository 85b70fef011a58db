//! [`Answer`]: one HTTP response read whole (status, headers, body as JSON),
//! for tests that look at bodies, headers and error codes as they are, and
//! [`CallError`], what a fallible call of [`crate::Api`] reports.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A response: status, headers and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Value,
}

impl Answer {
    /// Reads `response` whole.
    pub async fn read(response: reqwest::Response) -> Result<Answer, CallError> {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CallError::Transport(format!("reading the body: {e}")))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The error field of an error body.
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }

    /// Asserts the status and the error code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "body: {}",
            self.body
        );
    }

    /// Asserts the status; returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }

    /// The body as `T` if the status is `status`; otherwise the status and body
    /// as an error.
    pub fn parse<T: DeserializeOwned>(self, status: StatusCode) -> Result<T, CallError> {
        if self.status != status {
            return Err(CallError::Status {
                status: self.status,
                expected: status,
                body: self.body.to_string(),
            });
        }
        serde_json::from_value(self.body.clone()).map_err(|e| CallError::Decode {
            reason: e.to_string(),
            body: self.body.to_string(),
        })
    }
}

/// Why a fallible call of the API did not give what it expected.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The request did not reach the server, or its answer was cut.
    #[error("{0}")]
    Transport(String),
    /// The server answered another status.
    #[error("the server answered {status}, expected {expected}: {body}")]
    Status {
        /// What it answered.
        status: StatusCode,
        /// What the call expected.
        expected: StatusCode,
        /// The body it answered.
        body: String,
    },
    /// The body is not the JSON the call expected.
    #[error("the answer does not parse ({reason}): {body}")]
    Decode {
        /// The parser's complaint.
        reason: String,
        /// The body.
        body: String,
    },
}
