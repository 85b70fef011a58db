//! The Youmi device agent (`youmi-agent`): it binds a phone to an operator
//! account, keeps a WebSocket to the server (agent protocol v1), and runs the
//! tasks the server assigns through an [`Executor`], one at a time.
//!
//! Its one promise is the protocol's: no task runs twice and no result is lost,
//! across agent crashes, server restarts and dropped connections. Everything
//! the agent promises the server (`accepted`, `finished`) is first written to a
//! local journal and fsynced, and a task that was already under way when the
//! agent died is reported as `interrupted` instead of being run again.
//!
//! # Layout
//! - [`bind`]: `POST /agent/v1/bind` with a one-time bind code, giving
//!   [`Credentials`].
//! - [`credentials`]: the device token and server address, kept in a 0600 file.
//! - [`journal`]: the append-only, fsynced journal of accepted, started,
//!   finished and acked tasks, with its replay and compaction.
//! - [`delivery`]: the marks of a task's progress per recipient and item
//!   (before and after each send tap), which a retry resumes from.
//! - [`executor`]: the [`Executor`] trait that drives a phone, and the
//!   [`TaskContext`] a task reports progress and sees cancellation through.
//! - `future` (private): [`BoxFuture`], which the executor, the phone and the
//!   mark sinks all return.
//! - [`flow`]: the flow engine: WeCom task flows as data files (built in
//!   and from a directory), and [`flow::FlowExecutor`], the executor that runs
//!   them on a real phone.
//! - [`adb`]: [`adb::AdbPhone`], the [`phone::Phone`] over ADB (through the adb
//!   server or directly over TCP), with a deadline on every command.
//! - [`calls`]: phone calls and tasks: a task waits while a call rings or is
//!   under way, and the heartbeat says whether one does.
//! - [`simulator`]: [`SimulatedPhone`], an executor that only pretends, for
//!   tests, demos and load runs.
//! - [`watch`]: the phone-side settings that need watching while a phone
//!   runs: the volume-down double press, the call state and the auto hang-up
//!   of calls.
//! - [`fleet`]: the agent of one real phone, and fleet mode: every phone an
//!   adb server lists, each with its own session and state directory.
//! - [`session`]: [`Agent::spawn`] and [`AgentHandle`]; the loop that owns the
//!   agent's state, decides what runs when and applies the delivery rules.
//! - `connection` (private): the WebSocket connection, heartbeats, and the
//!   reconnect backoff.
//! - [`logs`]: the agent's own log, a size-capped rotating file per agent
//!   (per phone in fleet mode), and its upload on `upload_logs` as a
//!   `.tar.gz` with the evidence of failed steps.
//! - [`qr`]: reading the server address and bind code from a bind QR image
//!   (a PNG, a screenshot or a photo of a screen), for `bind --qr`.
//! - [`cli`]: the `youmi-agent` command line (`bind`, `run`, `fleet`).

pub mod adb;
pub mod calls;
pub mod cli;
mod connection;
pub mod credentials;
pub mod delivery;
mod error;
pub mod executor;
pub mod fleet;
pub mod flow;
mod fsutil;
mod future;
pub mod journal;
pub mod logs;
pub mod media;
pub mod phone;
pub mod qr;
pub mod session;
pub mod simulator;
pub mod watch;

use std::time::Duration;

use url::Url;
use youmi_protocol::api::ErrorBody;
use youmi_protocol::{BindRequest, BindResponse, DeviceInfo};

pub use credentials::Credentials;
pub use error::AgentError;
pub use executor::{BoxFuture, Executor, Progress, TaskContext, TaskControl, TaskFailure};
pub use session::{Agent, AgentHandle, AgentOptions, AgentStatus, HaltReason};
pub use simulator::{PhoneEvent, SentRecord, SimulatedPhone, SimulatedPhoneConfig};

/// The version of this agent program, sent in `hello` and at bind time.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long a bind request may take before the agent gives up on it.
const BIND_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds this phone: presents a one-time bind `code` to the server at
/// `server_url` (`http://` or `https://`, optionally with a path prefix) and
/// returns the credentials the agent connects with. The caller saves them
/// ([`Credentials::save`]); the token is shown only this once.
///
/// An empty `device.agent_version` is filled with [`AGENT_VERSION`]. A refusal
/// (unknown, used or expired code, rate limit) is [`AgentError::Server`] with
/// the code and message of the server's error body.
pub async fn bind(
    server_url: &str,
    code: &str,
    mut device: DeviceInfo,
) -> Result<Credentials, AgentError> {
    let base = server_base(server_url)?;
    let code = code.trim();
    if code.is_empty() {
        return Err(AgentError::EmptyBindCode);
    }
    if device.agent_version.is_empty() {
        device.agent_version = AGENT_VERSION.to_owned();
    }
    let url = endpoint(&base, "agent/v1/bind");
    let client = reqwest::Client::builder()
        .timeout(BIND_TIMEOUT)
        .build()
        .map_err(|source| AgentError::Request {
            url: url.to_string(),
            source,
        })?;
    let request = BindRequest {
        code: code.to_owned(),
        device,
    };
    let response = client
        .post(url.clone())
        .json(&request)
        .send()
        .await
        .map_err(|source| AgentError::Request {
            url: url.to_string(),
            source,
        })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|source| AgentError::Request {
            url: url.to_string(),
            source,
        })?;
    if !status.is_success() {
        return Err(server_error(status.as_u16(), &body));
    }
    let answer: BindResponse = serde_json::from_slice(&body).map_err(|error| {
        AgentError::BadResponse(format!(
            "the bind answer is not what protocol v1 says: {error}"
        ))
    })?;
    Ok(Credentials {
        server_url: base.as_str().trim_end_matches('/').to_owned(),
        device_id: answer.device_id,
        token: answer.token,
        operator_account_id: answer.operator_account_id,
    })
}

/// Turns a non-2xx answer into [`AgentError::Server`], taking the code and
/// message from the protocol's error body when there is one.
fn server_error(status: u16, body: &[u8]) -> AgentError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => AgentError::Server {
            status,
            code: parsed.error.code,
            message: parsed.error.message,
        },
        Err(_) => {
            // Not the protocol's body (a proxy's error page, say): show its start,
            // which is usually enough to tell what answered.
            let text = String::from_utf8_lossy(body);
            let mut message: String = text.trim().chars().take(200).collect();
            if message.is_empty() {
                message = "the answer had no error body".to_owned();
            }
            AgentError::Server {
                status,
                code: "unexpected_response".to_owned(),
                message,
            }
        }
    }
}

/// Checks a server address and normalises it to end in `/`, so that routes can
/// be joined onto it whether or not the server sits under a path prefix.
pub(crate) fn server_base(server_url: &str) -> Result<Url, AgentError> {
    let invalid = |reason: &str| AgentError::InvalidServerUrl {
        url: server_url.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(server_url.trim()).map_err(|error| match error {
        url::ParseError::RelativeUrlWithoutBase => {
            invalid("it must start with http:// or https://")
        }
        other => invalid(&other.to_string()),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host().is_none() {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not have a query or a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it must not carry a user name or password"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `base` (as [`server_base`] returns it) joined with a relative route.
fn endpoint(base: &Url, route: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{route}", base.path()));
    url
}

/// The agent WebSocket's address for a server base: `ws://` for `http://`,
/// `wss://` for `https://`, path `.../agent/v1/ws`.
pub(crate) fn websocket_url(base: &Url) -> Url {
    let mut url = endpoint(base, "agent/v1/ws");
    let scheme = if base.scheme() == "https" {
        "wss"
    } else {
        "ws"
    };
    // http(s) -> ws(s) stays within the "special" schemes, which `set_scheme`
    // allows; the scheme was checked by `server_base`.
    let _ = url.set_scheme(scheme);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_url_follows_the_server_scheme_and_prefix() {
        let base = server_base("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            websocket_url(&base).as_str(),
            "ws://127.0.0.1:8080/agent/v1/ws"
        );
        let base = server_base("https://youmi.example.com/rpa/").unwrap();
        assert_eq!(
            websocket_url(&base).as_str(),
            "wss://youmi.example.com/rpa/agent/v1/ws"
        );
        let base = server_base("https://youmi.example.com/rpa").unwrap();
        assert_eq!(
            endpoint(&base, "agent/v1/bind").as_str(),
            "https://youmi.example.com/rpa/agent/v1/bind"
        );
    }

    #[test]
    fn bad_server_urls_are_refused_with_a_reason() {
        for (url, reason) in [
            ("127.0.0.1:8080", "http://"),
            ("localhost:8080", "http or https"),
            ("ftp://host", "http or https"),
            ("http://host/?a=1", "query"),
            ("http://user:pw@host", "user name"),
            ("not a url", "http://"),
        ] {
            let error = server_base(url).unwrap_err().to_string();
            assert!(error.contains(reason), "{url}: {error}");
        }
    }

    #[test]
    fn error_bodies_become_server_errors() {
        let body =
            br#"{"error":{"code":"bind_code_used","message":"this bind code was already used"}}"#;
        match server_error(410, body) {
            AgentError::Server {
                status,
                code,
                message,
            } => {
                assert_eq!(status, 410);
                assert_eq!(code, "bind_code_used");
                assert_eq!(message, "this bind code was already used");
            }
            other => panic!("unexpected {other:?}"),
        }
        match server_error(502, b"<html>bad gateway</html>") {
            AgentError::Server { code, message, .. } => {
                assert_eq!(code, "unexpected_response");
                assert_eq!(message, "<html>bad gateway</html>");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
