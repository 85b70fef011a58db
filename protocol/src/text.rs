//! The one rule for text that reaches storage, on SQLite and PostgreSQL alike.
//!
//! PostgreSQL's `TEXT` cannot hold U+0000 (NUL); SQLite can, so the same
//! request used to be a 500 on one and accepted on the other. Every text that
//! comes from a client or an agent and is stored is checked with
//! [`check_storable`] at the edge: a 422 over HTTP, an `error` frame over the
//! agent WebSocket. [`make_storable`] is the store's last line of defence for
//! free text that must be kept whatever it holds (an agent's error message).

use std::borrow::Cow;
use std::fmt;

/// Why a text cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextError {
    /// The field, as the caller named it (`name`, `device.serial`, ...).
    pub field: String,
    /// The byte offset of the first character that cannot be stored.
    pub at: usize,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} holds a NUL character (U+0000) at byte {}, which cannot be stored",
            self.field, self.at
        )
    }
}

impl std::error::Error for TextError {}

/// Whether `value` can be stored in a text column of either database: it
/// holds no NUL (U+0000). Everything else a Rust string can hold can be.
pub fn is_storable(value: &str) -> bool {
    !value.as_bytes().contains(&0)
}

/// Checks `value` against the storage rule; the error names `field`.
pub fn check_storable(field: &str, value: &str) -> Result<(), TextError> {
    match value.as_bytes().iter().position(|&b| b == 0) {
        None => Ok(()),
        Some(at) => Err(TextError {
            field: field.to_owned(),
            at,
        }),
    }
}

/// `value` with every NUL replaced by U+FFFD, borrowed when it has none.
pub fn make_storable(value: &str) -> Cow<'_, str> {
    if is_storable(value) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(value.replace('\0', "\u{FFFD}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_the_only_character_refused() {
        assert!(check_storable("name", "Li Lei 李雷 \u{1}\u{7f}\u{FFFF}").is_ok());
        let error = check_storable("device.serial", "ab\0c").unwrap_err();
        assert_eq!(error.field, "device.serial");
        assert_eq!(error.at, 2);
        assert!(error.to_string().contains("device.serial"));
        assert_eq!(make_storable("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
        assert!(matches!(make_storable("ab"), Cow::Borrowed("ab")));
    }
}
