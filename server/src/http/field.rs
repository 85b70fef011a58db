//! The rules of a request's text fields, written once for the API and the
//! console: a required field is storable, trimmed, not empty and within its
//! length; an optional one the same but may be empty. A broken rule is a
//! typed [`FieldError`], which the API turns into its 422 ([`ApiError`]) and
//! the console into a message next to the field, in the reader's language.

use youmi_protocol::text::check_storable;

use crate::http::error::ApiError;

/// What is wrong with a field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Empty, or only white space, where a value is required.
    Empty,
    /// Longer than `max` characters, after trimming.
    TooLong {
        /// The most characters the field takes.
        max: usize,
    },
    /// Holds what storage cannot keep (NUL); the text says what.
    NotStorable(String),
}

/// A field of a request that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name, as in the request (`name`, `wecom_user_id`).
    pub field: &'static str,
    /// The rule it breaks.
    pub problem: Problem,
}

impl From<FieldError> for ApiError {
    /// 422 `invalid_field` (empty, too long) or `invalid_text` (not storable),
    /// naming the field.
    fn from(error: FieldError) -> Self {
        let field = error.field;
        match error.problem {
            Problem::Empty => ApiError::unprocessable(
                "invalid_field",
                Some(field),
                format!("{field} must not be empty"),
            ),
            Problem::TooLong { max } => ApiError::unprocessable(
                "invalid_field",
                Some(field),
                format!("{field} must be at most {max} characters"),
            ),
            Problem::NotStorable(message) => {
                ApiError::unprocessable("invalid_text", Some(field), message)
            }
        }
    }
}

/// Every field of one request that breaks a rule, in the request's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// The value of `result`, or `None` after keeping its error.
    pub fn take<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(error);
                None
            }
        }
    }

    /// The error of `field`, if it has one.
    pub fn of(&self, field: &str) -> Option<&FieldError> {
        self.0.iter().find(|error| error.field == field)
    }
}

impl From<FieldErrors> for ApiError {
    /// The API names the first field at fault.
    fn from(errors: FieldErrors) -> Self {
        match errors.0.into_iter().next() {
            Some(first) => first.into(),
            None => ApiError::Internal("a request refused with no field at fault".to_owned()),
        }
    }
}

/// A required text field: storable, trimmed, 1 to `max` characters.
pub fn required<'a>(
    field: &'static str,
    value: &'a str,
    max: usize,
) -> Result<&'a str, FieldError> {
    let trimmed = optional(field, value, max)?;
    if trimmed.is_empty() {
        return Err(FieldError {
            field,
            problem: Problem::Empty,
        });
    }
    Ok(trimmed)
}

/// An optional text field: storable, trimmed, at most `max` characters.
pub fn optional<'a>(
    field: &'static str,
    value: &'a str,
    max: usize,
) -> Result<&'a str, FieldError> {
    check_storable(field, value).map_err(|error| FieldError {
        field,
        problem: Problem::NotStorable(error.to_string()),
    })?;
    let trimmed = value.trim();
    if trimmed.chars().count() > max {
        return Err(FieldError {
            field,
            problem: Problem::TooLong { max },
        });
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_hold_at_both_ends() {
        assert_eq!(required("name", "  ab ", 2), Ok("ab"));
        assert_eq!(
            required("name", "   ", 2).unwrap_err().problem,
            Problem::Empty
        );
        assert_eq!(
            required("name", "abc", 2).unwrap_err().problem,
            Problem::TooLong { max: 2 }
        );
        assert_eq!(optional("remark", " ", 2), Ok(""));
        assert!(matches!(
            optional("remark", "a\0", 2).unwrap_err().problem,
            Problem::NotStorable(_)
        ));
    }

    #[test]
    fn the_api_names_the_first_field_with_its_old_codes() {
        let mut errors = FieldErrors::default();
        assert_eq!(errors.take(required("name", "", 5)), None);
        assert_eq!(errors.take(required("wecom_user_id", "x\0", 5)), None);
        assert_eq!(
            errors.of("wecom_user_id").map(|e| e.field),
            Some("wecom_user_id")
        );
        let api: ApiError = errors.into();
        assert_eq!((api.code(), api.field()), ("invalid_field", Some("name")));
        let api: ApiError = required("remark", "a\0", 5).unwrap_err().into();
        assert_eq!((api.code(), api.field()), ("invalid_text", Some("remark")));
    }
}
