//! Why a flow stops early: a [`Failure`] (its code, the step it happened at,
//! the recipient and item being worked on) or a cancellation ([`Stop`]); and
//! the one rule for cutting texts that go into failure messages and reports.

use youmi_protocol::task::Contact;

use super::expr::EvalError;
use super::file::RISK_CONTROL;
use crate::delivery::UnitKey;
use crate::phone::PhoneError;

/// Where in a flow a step is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    /// The flow or procedure, e.g. `flow send_message` or `procedure open_chat`.
    pub place: String,
    /// The step's index in it, from 0.
    pub index: usize,
    /// The step's name.
    pub name: String,
    /// The whole way there, e.g. `mass_send#1 > send_to_one#2 > open_chat#4`.
    pub path: String,
    /// The step's number in the task's progress (1 for the first step run).
    pub progress: u32,
}

/// Why a flow stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The stable snake_case error code.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// Whether running the task again may help.
    pub retryable: bool,
    /// The step that failed.
    pub at: Option<Position>,
    /// The phone cannot be reached: do not ask it for evidence.
    pub phone_down: bool,
    /// Raised by an interrupt (a risk-control warning, say): never skipped.
    pub interrupt: bool,
    /// The recipient and item being worked on, when there were any.
    pub unit: Option<FailedUnit>,
}

/// The recipient and item a failure happened at, for people and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailedUnit {
    /// Their numbers.
    pub key: UnitKey,
    /// The recipient as the task named it.
    pub to: Option<Contact>,
    /// E.g. `recipient 2 (李四), item 1 (text)`.
    pub label: String,
}

impl Failure {
    pub(crate) fn new(code: &str, message: impl Into<String>, retryable: bool) -> Failure {
        Failure {
            code: code.to_owned(),
            message: message.into(),
            retryable: retryable && code != RISK_CONTROL,
            at: None,
            phone_down: false,
            interrupt: false,
            unit: None,
        }
    }

    pub(crate) fn phone(error: &PhoneError) -> Failure {
        let mut failure = Failure::new(error.code(), error.to_string(), error.retryable());
        failure.phone_down = matches!(
            error,
            PhoneError::Unreachable { .. }
                | PhoneError::Timeout { .. }
                | PhoneError::Truncated { .. }
        );
        failure
    }
}

/// How a flow run ends early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The task was cancelled.
    Cancelled,
    /// A step failed.
    Failed(Box<Failure>),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Self {
        Stop::Failed(Box::new(failure))
    }
}

impl From<EvalError> for Stop {
    /// A template expression the task's values do not work for (an index
    /// past the end of its list, a value that is not a number): the flow
    /// does not fit this task, which running it again will not change.
    fn from(error: EvalError) -> Self {
        Failure::new(
            "flow_error",
            format!("a template expression cannot be worked out for this task: {error}"),
            false,
        )
        .into()
    }
}

pub(crate) fn phone_error(error: PhoneError) -> Stop {
    Failure::phone(&error).into()
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_control_failures_are_never_retryable() {
        assert!(!Failure::new(RISK_CONTROL, "x", true).retryable);
        assert!(Failure::new("element_not_found", "x", true).retryable);
        let down = Failure::phone(&PhoneError::Unreachable {
            serial: "s".into(),
            reason: "gone".into(),
        });
        assert!(down.phone_down && down.retryable);
        assert_eq!(down.code, "phone_unreachable");
        assert_eq!(shorten("你好世界", 2), "你好…");
        assert_eq!(shorten("你好", 2), "你好");
    }
}
