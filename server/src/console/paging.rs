//! Lists on pages: the kit's one paging rule (`http::page`: sizes 1-500,
//! an id cursor, newest first) with the links a page shows, the first page
//! and the next one, each keeping the page size it was asked with.

use youmi_protocol::api::{Page, PageQuery};

use crate::http::error::ApiError;
use crate::http::page::{PageRequest, DEFAULT_PAGE};

/// The page a list's query asks for (`?limit=&cursor=`), checked as the
/// API checks it.
pub fn request(query: PageQuery) -> Result<PageRequest, ApiError> {
    PageRequest::new(query)
}

/// The links under a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pager {
    /// The first page, when this is not it.
    pub first: Option<String>,
    /// The next page, when there is one.
    pub next: Option<String>,
}

impl Pager {
    /// The links of `page`, read for `request`, on the list at `base` (which
    /// may carry the list's filter as a query).
    pub fn new<T>(base: &str, request: &PageRequest, page: &Page<T>) -> Pager {
        let limit = if i64::from(request.limit) == DEFAULT_PAGE {
            String::new()
        } else {
            format!("limit={}", request.limit)
        };
        let link = |cursor: Option<i64>| {
            let query: Vec<String> = [Some(limit.clone()), cursor.map(|c| format!("cursor={c}"))]
                .into_iter()
                .flatten()
                .filter(|part| !part.is_empty())
                .collect();
            let joint = if base.contains('?') { '&' } else { '?' };
            if query.is_empty() {
                base.to_owned()
            } else {
                format!("{base}{joint}{}", query.join("&"))
            }
        };
        Pager {
            first: request.cursor.map(|_| link(None)),
            next: page.next_cursor.map(|cursor| link(Some(cursor))),
        }
    }

    /// Whether there is any link to show.
    pub fn is_empty(&self) -> bool {
        self.first.is_none() && self.next.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_size_and_follow_the_cursor() {
        let first = request(PageQuery {
            limit: None,
            cursor: None,
        })
        .unwrap();
        let page = first.page(vec![9, 8, 7], |id| *id);
        assert_eq!(
            Pager::new("/x", &first, &page),
            Pager {
                first: None,
                next: None
            }
        );
        let small = request(PageQuery {
            limit: Some(2),
            cursor: Some(9),
        })
        .unwrap();
        let page = small.page(vec![8, 7, 6], |id| *id);
        assert_eq!(
            Pager::new("/x", &small, &page),
            Pager {
                first: Some("/x?limit=2".to_owned()),
                next: Some("/x?limit=2&cursor=7".to_owned()),
            }
        );
        assert_eq!(
            Pager::new("/x?unread=true", &small, &page).next,
            Some("/x?unread=true&limit=2&cursor=7".to_owned())
        );
        assert!(request(PageQuery {
            limit: Some(0),
            cursor: None
        })
        .is_err());
    }
}
