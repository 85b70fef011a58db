//! Checks of request values that several features share: integers within
//! their range (ids, page sizes, cursors) and text that storage can hold.
//! A value that breaks one is a 422 naming its field.

use youmi_protocol::text::check_storable;

use crate::http::error::ApiError;

/// Largest page of any list.
pub const MAX_PAGE: i64 = 500;
/// Page size of a list whose query gives none.
pub const DEFAULT_PAGE: i64 = 50;

/// An id the client names: ids start at 1, so any other number is 422
/// `invalid_id` (a positive one that names nothing is the route's 404).
pub fn id(field: &str, value: i64) -> Result<i64, ApiError> {
    if value >= 1 {
        return Ok(value);
    }
    Err(ApiError::unprocessable(
        "invalid_id",
        Some(field),
        format!("{field} must be a positive id, not {value}"),
    ))
}

/// Every id of a list, as [`id`]; the field is named with the index at fault.
pub fn ids(field: &str, values: &[i64]) -> Result<(), ApiError> {
    for (index, value) in values.iter().enumerate() {
        id(&format!("{field}[{index}]"), *value)?;
    }
    Ok(())
}

/// The page size of a list query: 1 to [`MAX_PAGE`], default [`DEFAULT_PAGE`];
/// else 422 `invalid_limit`.
pub fn page_limit(limit: Option<i64>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    match u32::try_from(limit) {
        Ok(page) if (1..=MAX_PAGE).contains(&limit) => Ok(page),
        _ => Err(ApiError::unprocessable(
            "invalid_limit",
            Some("limit"),
            format!("limit must be 1-{MAX_PAGE}, not {limit}"),
        )),
    }
}

/// The cursor of a list query: an id, so 1 or more; else 422 `invalid_cursor`.
pub fn cursor(cursor: Option<i64>) -> Result<(), ApiError> {
    match cursor {
        Some(value) if value < 1 => Err(ApiError::unprocessable(
            "invalid_cursor",
            Some("cursor"),
            format!("cursor must be a positive id, not {value}"),
        )),
        _ => Ok(()),
    }
}

/// Text from a request that is stored or used in a query: it must hold
/// nothing that either database cannot keep (NUL); else 422 `invalid_text`.
pub fn text(field: &str, value: &str) -> Result<(), ApiError> {
    check_storable(field, value)
        .map_err(|error| ApiError::unprocessable("invalid_text", Some(field), error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_at_both_ends() {
        for value in [i64::MIN, -1, 0] {
            assert_eq!(id("x", value).unwrap_err().code(), "invalid_id");
            assert_eq!(cursor(Some(value)).unwrap_err().code(), "invalid_cursor");
        }
        assert_eq!(id("x", 1).unwrap(), 1);
        assert_eq!(ids("ids", &[1, 2, 0]).unwrap_err().field(), Some("ids[2]"));
        assert_eq!(page_limit(None).unwrap(), 50);
        for value in [i64::MIN, -1, 0, 501, i64::MAX] {
            let error = page_limit(Some(value)).unwrap_err();
            assert_eq!(
                (error.code(), error.field()),
                ("invalid_limit", Some("limit"))
            );
        }
        assert_eq!(page_limit(Some(500)).unwrap(), 500);
        assert_eq!(text("name", "a\0").unwrap_err().code(), "invalid_text");
    }
}
