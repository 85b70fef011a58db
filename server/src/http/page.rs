//! The one paging rule of every list: a page size of 1 to [`MAX_PAGE`]
//! (default [`DEFAULT_PAGE`]), a cursor that is an id, and a store that reads
//! one row more than the page so that the answer knows whether a next page
//! exists ([`PageRequest::page`]).

use youmi_protocol::api::{Page, PageQuery};

use crate::http::error::ApiError;

/// Largest page of any list.
pub const MAX_PAGE: i64 = 500;
/// Page size of a list whose query gives none.
pub const DEFAULT_PAGE: i64 = 50;

/// A checked page size and cursor of a list query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// How many items the page holds at most.
    pub limit: u32,
    /// Items before this id only (the previous page's `next_cursor`).
    pub cursor: Option<i64>,
}

impl PageRequest {
    /// The page a query asks for: `limit` 1 to [`MAX_PAGE`] (else 422
    /// `invalid_limit`), `cursor` an id (else 422 `invalid_cursor`).
    pub fn new(query: PageQuery) -> Result<Self, ApiError> {
        let PageQuery { limit, cursor } = query;
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        let limit = match u32::try_from(limit) {
            Ok(page) if (1..=MAX_PAGE).contains(&limit) => page,
            _ => {
                return Err(ApiError::unprocessable(
                    "invalid_limit",
                    Some("limit"),
                    format!("limit must be 1-{MAX_PAGE}, not {limit}"),
                ))
            }
        };
        if let Some(value) = cursor.filter(|value| *value < 1) {
            return Err(ApiError::unprocessable(
                "invalid_cursor",
                Some("cursor"),
                format!("cursor must be a positive id, not {value}"),
            ));
        }
        Ok(PageRequest { limit, cursor })
    }

    /// How many rows the store reads: one more than the page, which tells
    /// whether there is a next page.
    pub fn rows(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The page of `rows` (read in the list's order, at most [`Self::rows`]):
    /// the first `limit`, and the id of the last as the next cursor when a
    /// row beyond them was read.
    pub fn page<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> i64) -> Page<T> {
        let limit = self.limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(id)
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<i64>, cursor: Option<i64>) -> PageQuery {
        PageQuery { limit, cursor }
    }

    #[test]
    fn limits_and_cursors_hold_at_both_ends() {
        assert_eq!(PageRequest::new(query(None, None)).unwrap().limit, 50);
        assert_eq!(
            PageRequest::new(query(Some(500), Some(1))).unwrap().limit,
            500
        );
        for value in [i64::MIN, -1, 0, 501, i64::MAX] {
            let error = PageRequest::new(query(Some(value), None)).unwrap_err();
            assert_eq!(
                (error.code(), error.field()),
                ("invalid_limit", Some("limit"))
            );
        }
        for value in [i64::MIN, -1, 0] {
            let error = PageRequest::new(query(None, Some(value))).unwrap_err();
            assert_eq!(
                (error.code(), error.field()),
                ("invalid_cursor", Some("cursor"))
            );
        }
    }

    #[test]
    fn one_row_more_than_the_page_makes_a_next_cursor() {
        let request = PageRequest::new(query(Some(2), None)).unwrap();
        assert_eq!(request.rows(), 3);
        let page = request.page(vec![9, 8, 7], |id| *id);
        assert_eq!((page.items, page.next_cursor), (vec![9, 8], Some(8)));
        let last = request.page(vec![9, 8], |id| *id);
        assert_eq!((last.items, last.next_cursor), (vec![9, 8], None));
    }
}
