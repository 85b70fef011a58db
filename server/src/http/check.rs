//! Checks of request values that several features share: ids within their
//! range and text that storage can hold (page sizes and cursors: `page`).
//! A value that breaks one is a 422 naming its field.

use youmi_protocol::text::check_storable;

use crate::http::error::ApiError;

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
        }
        assert_eq!(id("x", 1).unwrap(), 1);
        assert_eq!(ids("ids", &[1, 2, 0]).unwrap_err().field(), Some("ids[2]"));
        assert_eq!(text("name", "a\0").unwrap_err().code(), "invalid_text");
    }
}
