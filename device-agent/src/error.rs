//! The library's error type.

use std::path::PathBuf;

use crate::journal::JournalError;

/// What can go wrong when binding, loading credentials or starting the agent.
/// Once an agent runs it does not return errors; it reports why it stopped
/// through [`crate::AgentStatus::halted`].
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// There is no credentials file yet: the phone was never bound.
    #[error("this agent is not bound: {path} does not exist (run `youmi-agent bind --server URL --code CODE` first)")]
    NotBound {
        /// Where the credentials were looked for.
        path: PathBuf,
    },
    /// The credentials file exists but cannot be read.
    #[error("cannot read the credentials file {path}: {source}")]
    ReadCredentials {
        /// The credentials file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The credentials file is not what [`crate::Credentials::save`] writes.
    #[error("the credentials file {path} is not valid: {reason} (bind again to replace it)")]
    InvalidCredentials {
        /// The credentials file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The credentials could not be written.
    #[error("cannot write the credentials file {path}: {source}")]
    WriteCredentials {
        /// The file (or directory) being written.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The server address is not an `http://` or `https://` URL the agent can use.
    #[error("invalid server url `{url}`: {reason}")]
    InvalidServerUrl {
        /// The address as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The bind code was empty.
    #[error("the bind code is empty")]
    EmptyBindCode,
    /// The device token cannot be put in an `Authorization` header.
    #[error("the device token has characters that cannot be sent in an http header; bind again")]
    InvalidToken,
    /// The server could not be reached, or the request failed on the way.
    #[error("cannot reach the server at {url}: {source}")]
    Request {
        /// The route called.
        url: String,
        /// reqwest's reason.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("the server refused the request ({status} {code}): {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The error body's code, or `unexpected_response` without one.
        code: String,
        /// The error body's message, or the start of whatever the body was.
        message: String,
    },
    /// The server answered 2xx with a body that does not fit the protocol.
    #[error("{0}")]
    BadResponse(String),
    /// The journal could not be opened or recovered.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// An [`crate::AgentOptions`] value the agent cannot run with.
    #[error("invalid agent options: {0}")]
    InvalidOptions(String),
    /// [`crate::Agent::spawn`] was called outside a tokio runtime.
    #[error("no tokio runtime: start the agent from inside one")]
    NoRuntime,
}
