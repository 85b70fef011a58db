//! The one page type of every list answer, and the one rule of paging: a
//! list is newest (or first) items in one named array, and a `next_cursor`
//! that is present exactly when there is a next page.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a list holds: the name of its array in the JSON answer
/// (`{"tasks": [...]}`), so that every list keeps a name of its own on the
/// wire while sharing one type.
pub trait Listed {
    /// The field that holds the items, e.g. `tasks`.
    const FIELD: &'static str;
}

/// The page a list query asks for, beside the list's own filters
/// (`?state=queued&limit=50&cursor=1043`). Read as any integer, so that the
/// server can refuse one out of range by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageQuery {
    /// Page size, 1-500; default 50.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wide_int::option_text"
    )]
    pub limit: Option<i64>,
    /// Items with ids below this one (the `next_cursor` of the previous page).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wide_int::option_text"
    )]
    pub cursor: Option<i64>,
}

/// One page of a list: `{"<T::FIELD>": [...], "next_cursor"?: id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// This page's items, in the list's order.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page (and on
    /// a list that is not paged).
    pub next_cursor: Option<i64>,
}

impl<T> Page<T> {
    /// The whole of a list that is not paged: no next page.
    pub fn all(items: Vec<T>) -> Self {
        Page {
            items,
            next_cursor: None,
        }
    }
}

impl<T: Listed + Serialize> Serialize for Page<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(T::FIELD, &self.items)?;
        if let Some(cursor) = self.next_cursor {
            map.serialize_entry("next_cursor", &cursor)?;
        }
        map.end()
    }
}

impl<'de, T: Listed + Deserialize<'de>> Deserialize<'de> for Page<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(PageVisitor(PhantomData))
    }
}

struct PageVisitor<T>(PhantomData<T>);

impl<'de, T: Listed + Deserialize<'de>> Visitor<'de> for PageVisitor<T> {
    type Value = Page<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a page with `{}`", T::FIELD)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page<T>, A::Error> {
        let mut items = None;
        let mut next_cursor = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == T::FIELD {
                if items.is_some() {
                    return Err(de::Error::duplicate_field(T::FIELD));
                }
                items = Some(map.next_value()?);
            } else if key == "next_cursor" {
                next_cursor = map.next_value()?;
            } else {
                // Fields beside the page (a notification page's `unread`)
                // belong to whoever flattens it.
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Page {
            items: items.ok_or_else(|| de::Error::missing_field(T::FIELD))?,
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Thing {
        id: i64,
    }

    impl Listed for Thing {
        const FIELD: &'static str = "things";
    }

    #[test]
    fn a_page_keeps_its_lists_name_and_leaves_out_a_missing_cursor() {
        let page = Page {
            items: vec![Thing { id: 2 }],
            next_cursor: Some(2),
        };
        let value = serde_json::to_value(&page).unwrap();
        assert_eq!(value, json!({"things": [{"id": 2}], "next_cursor": 2}));
        assert_eq!(serde_json::from_value::<Page<Thing>>(value).unwrap(), page);
        let last = Page::all(vec![Thing { id: 1 }]);
        assert_eq!(
            serde_json::to_value(&last).unwrap(),
            json!({"things": [{"id": 1}]})
        );
        assert!(serde_json::from_value::<Page<Thing>>(json!({"items": []})).is_err());
    }
}
