//! The one rule of "these or all" requests (`{"device_ids": [...]}` or
//! `{"all": true}`, never neither nor both: [`Selection`]) and the one report
//! of ids that name nothing ([`unknown_ids`], [`all_found`]).

use std::fmt::Display;

use crate::http::error::ApiError;

/// What an action applies to: the ids listed, or everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection<T> {
    /// Everything (`"all": true`).
    All,
    /// These, never empty.
    Ids(Vec<T>),
}

impl<T> Selection<T> {
    /// The selection of a request whose list of ids is the field `field`:
    /// neither is 400 `empty_selection`, both is 400 `ambiguous_selection`.
    /// The ids themselves are the caller's to check.
    pub fn new(field: &str, ids: Vec<T>, all: bool) -> Result<Self, ApiError> {
        match (ids.is_empty(), all) {
            (true, false) => Err(ApiError::bad_request(
                "empty_selection",
                Some(field),
                format!("give {field} or \"all\": true"),
            )),
            (false, true) => Err(ApiError::bad_request(
                "ambiguous_selection",
                Some("all"),
                format!("give {field} or \"all\": true, not both"),
            )),
            (true, true) => Ok(Selection::All),
            (false, false) => Ok(Selection::Ids(ids)),
        }
    }
}

/// The 404 `code` of a request whose field `field` names `what` that do not
/// exist: `unknown task ids: 3, 9`.
pub fn unknown_ids<T: Display>(code: &'static str, field: &str, what: &str, ids: &[T]) -> ApiError {
    let ids = ids
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    ApiError::not_found(code, Some(field), format!("unknown {what} ids: {ids}"))
}

/// Every one of `ids` is `found`, else [`unknown_ids`] of those that are not,
/// in order.
pub fn all_found<T: Display + Ord>(
    code: &'static str,
    field: &str,
    what: &str,
    ids: impl IntoIterator<Item = T>,
    found: impl Fn(&T) -> bool,
) -> Result<(), ApiError> {
    let mut missing: Vec<T> = ids.into_iter().filter(|id| !found(id)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort_unstable();
    Err(unknown_ids(code, field, what, &missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_or_all_never_neither_nor_both() {
        let error = Selection::<i64>::new("ids", vec![], false).unwrap_err();
        assert_eq!(
            (error.code(), error.field()),
            ("empty_selection", Some("ids"))
        );
        assert_eq!(error.to_string(), "give ids or \"all\": true");
        let error = Selection::new("ids", vec![1], true).unwrap_err();
        assert_eq!(
            (error.code(), error.field()),
            ("ambiguous_selection", Some("all"))
        );
        assert_eq!(
            Selection::<i64>::new("ids", vec![], true).unwrap(),
            Selection::All
        );
        assert_eq!(
            Selection::new("ids", vec![1], false).unwrap(),
            Selection::Ids(vec![1])
        );
    }

    #[test]
    fn missing_ids_are_named_in_order() {
        assert!(all_found("task_not_found", "task_ids", "task", [1, 2], |_| true).is_ok());
        let error = all_found("task_not_found", "task_ids", "task", [9, 1, 3], |id| {
            *id == 1
        })
        .unwrap_err();
        assert_eq!(error.code(), "task_not_found");
        assert_eq!(error.field(), Some("task_ids"));
        assert_eq!(error.to_string(), "unknown task ids: 3, 9");
    }
}
