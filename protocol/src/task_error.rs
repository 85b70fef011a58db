//! The closed set of task error codes: every `code` that a failed task's
//! [`crate::TaskError`] can carry, who gives it, and what it means. The agent
//! checks flow files against it when it loads them (a misspelt code would
//! otherwise be a failure the server does not act on: `risk_contrl` would not
//! pause the queue), and `docs/flows.md` lists it.
//!
//! A new code is added here first, then used.

use crate::agent::{error_code, refusal_code};

/// Who gives a task error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The server, about a task it could not get run (never a flow file's).
    Server,
    /// The agent's task runner, before or around a task's run (never a flow file's).
    Runner,
    /// The phone under the flow: a connection, a command, the screen, the keyboard.
    Phone,
    /// The flow engine and the flow files: a step, an interrupt, a dialog, a
    /// fact about the task. Flow files may use these codes, and only these.
    Flow,
}

/// One task error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskErrorCode {
    /// The stable snake_case code.
    pub code: &'static str,
    /// Who gives it.
    pub origin: Origin,
    /// What it means, for people.
    pub meaning: &'static str,
}

const fn code(code: &'static str, origin: Origin, meaning: &'static str) -> TaskErrorCode {
    TaskErrorCode {
        code,
        origin,
        meaning,
    }
}

/// A task failure (agent, flow): WeCom showed a modal dialog that no interrupt
/// of the flow file recognises. Never retried by itself: a person looks at the phone.
pub const UNEXPECTED_DIALOG: &str = "unexpected_dialog";

/// A task failure (agent, runner): a phone call rang or went on for longer
/// than the agent waits, without touching the screen, before an action.
/// Retryable: the retry runs once the phone is free.
pub const CALL_IN_PROGRESS: &str = "call_in_progress";

/// Every task error code, grouped by origin.
pub const TASK_ERROR_CODES: &[TaskErrorCode] = &[
    code(
        error_code::LOST,
        Origin::Server,
        "the agent no longer reported a task it had accepted",
    ),
    code(
        error_code::UNDELIVERABLE,
        Origin::Server,
        "the agent never accepted the task's assign",
    ),
    code(
        error_code::REFUSED,
        Origin::Server,
        "the agent refused the task's assign",
    ),
    code(
        refusal_code::TOO_LARGE,
        Origin::Runner,
        "refused: the assign frame is larger than the agent takes",
    ),
    code(
        refusal_code::UNREADABLE,
        Origin::Runner,
        "refused: the assign frame is not one the agent can read",
    ),
    code(
        refusal_code::UNKNOWN_KIND,
        Origin::Runner,
        "refused: the agent does not know the task's kind",
    ),
    code(
        refusal_code::PAYLOAD_NOT_UNDERSTOOD,
        Origin::Runner,
        "refused: the payload does not pass the agent's check of its kind",
    ),
    code(
        "interrupted",
        Origin::Runner,
        "the task was running when the agent stopped; it is not run again",
    ),
    code(
        "expired",
        Origin::Runner,
        "the task was not started before its not_after time",
    ),
    code(
        "invalid_payload",
        Origin::Runner,
        "the payload does not fit the task's kind",
    ),
    code(
        "agent_error",
        Origin::Runner,
        "the agent's task runner failed",
    ),
    code("executor_panicked", Origin::Runner, "the executor panicked"),
    code(
        "delivery_uncertain",
        Origin::Runner,
        "nothing was sent for sure, and a send tap of an earlier attempt is unconfirmed: not sent again",
    ),
    code(
        "journal_unwritable",
        Origin::Runner,
        "the agent could not journal a delivery mark, so it stopped rather than risk sending twice",
    ),
    code(
        CALL_IN_PROGRESS,
        Origin::Runner,
        "a phone call rang or went on for longer than the agent waits before touching the phone (retryable)",
    ),
    code(
        "simulated_failure",
        Origin::Runner,
        "a simulated phone's scripted failure (tests, demo)",
    ),
    code(
        "record_failed",
        Origin::Runner,
        "a simulated phone could not record what it sent",
    ),
    code(
        "phone_unreachable",
        Origin::Phone,
        "the phone cannot be reached",
    ),
    code(
        "phone_timeout",
        Origin::Phone,
        "a phone command did not answer in time",
    ),
    code(
        "phone_command_failed",
        Origin::Phone,
        "a phone command failed",
    ),
    code(
        "phone_bad_output",
        Origin::Phone,
        "a phone command answered something unreadable",
    ),
    code(
        "screen_unreadable",
        Origin::Phone,
        "the screen could not be read (uiautomator)",
    ),
    code(
        "ime_missing",
        Origin::Phone,
        "ADBKeyBoard is not installed or not selected",
    ),
    code(
        "local_file",
        Origin::Phone,
        "a local file (media, screenshot) could not be used",
    ),
    code("app_not_installed", Origin::Phone, "WeCom is not installed"),
    code(
        "unsupported_app_version",
        Origin::Flow,
        "no flow file covers the installed WeCom version",
    ),
    code(
        "flow_missing",
        Origin::Flow,
        "the flow file has no flow for the task's kind",
    ),
    code(
        "flow_error",
        Origin::Flow,
        "the flow file is wrong where it ran",
    ),
    code("flow_failed", Origin::Flow, "a `fail` step ended the task"),
    code(
        "not_sent",
        Origin::Flow,
        "a check procedure: the item an unconfirmed send tap was for is not in the chat",
    ),
    code(
        "element_not_found",
        Origin::Flow,
        "a step's node did not appear (retryable)",
    ),
    code(
        "element_not_gone",
        Origin::Flow,
        "a node a step waited to go away stayed",
    ),
    code("assertion_failed", Origin::Flow, "an `assert` did not hold"),
    code(
        "start_screen_not_reached",
        Origin::Flow,
        "`launch` did not reach the app's start screen",
    ),
    code(
        "text_not_typed",
        Origin::Flow,
        "typed text did not show in the focused field",
    ),
    code("text_not_cleared", Origin::Flow, "a field kept its text"),
    code(
        "missing_value",
        Origin::Flow,
        "the task gives no value for a variable a step needs",
    ),
    code(
        "media_unavailable",
        Origin::Flow,
        "a media file is not in the agent's media directory",
    ),
    code(
        error_code::RISK_CONTROL,
        Origin::Flow,
        "WeCom showed a risk-control warning: never retried, the queue is paused",
    ),
    code(
        UNEXPECTED_DIALOG,
        Origin::Flow,
        "a dialog no interrupt recognises is on screen: never retried, a person looks",
    ),
    code(
        "app_update_prompt",
        Origin::Flow,
        "WeCom asks to be updated and cannot be postponed",
    ),
    code(
        "permission_dialog",
        Origin::Flow,
        "Android asks for a permission the flow cannot grant",
    ),
    code("contact_not_found", Origin::Flow, "no contact has the name"),
    code(
        "chat_not_found",
        Origin::Flow,
        "the chat list has no such chat",
    ),
    code("chat_not_deleted", Origin::Flow, "the chat is still listed"),
    code(
        "message_not_sent",
        Origin::Flow,
        "the message stayed in the input",
    ),
    code(
        "media_not_in_album",
        Origin::Flow,
        "the pushed picture is not in the album",
    ),
    code(
        "media_not_in_storage",
        Origin::Flow,
        "the pushed file is not listed",
    ),
    code(
        "post_not_published",
        Origin::Flow,
        "the Moments post was not published",
    ),
    code(
        "tag_not_found",
        Origin::Flow,
        "the enterprise has no such tag",
    ),
    code(
        "friend_not_found",
        Origin::Flow,
        "WeCom finds nobody for the phone or id",
    ),
    code(
        "friend_request_not_sent",
        Origin::Flow,
        "WeCom did not confirm the friend request",
    ),
    code(
        "friend_request_not_found",
        Origin::Flow,
        "no pending request from the person",
    ),
    code(
        "friend_request_not_accepted",
        Origin::Flow,
        "WeCom did not mark the request accepted",
    ),
];

/// The code's entry, if it is one of [`TASK_ERROR_CODES`].
pub fn lookup(code: &str) -> Option<&'static TaskErrorCode> {
    TASK_ERROR_CODES.iter().find(|entry| entry.code == code)
}

/// The codes flow files may use ([`Origin::Flow`]), in list order.
pub fn flow_codes() -> impl Iterator<Item = &'static str> {
    TASK_ERROR_CODES
        .iter()
        .filter(|entry| entry.origin == Origin::Flow)
        .map(|entry| entry.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_words() {
        for (i, entry) in TASK_ERROR_CODES.iter().enumerate() {
            assert!(
                entry
                    .code
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                entry.code
            );
            assert!(
                !TASK_ERROR_CODES[..i].iter().any(|e| e.code == entry.code),
                "{} is listed twice",
                entry.code
            );
        }
        assert_eq!(lookup("risk_control").unwrap().origin, Origin::Flow);
        assert!(lookup("risk_contrl").is_none());
        assert!(flow_codes().any(|c| c == UNEXPECTED_DIALOG));
        assert!(!flow_codes().any(|c| c == "lost"));
    }
}
