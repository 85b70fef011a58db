//! Where things are in a flow file's text: the line a key or list item is on, for the
//! line numbers of load errors.

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a path into the file: a key of a table or an index of a list.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Where things are in a file's text, for the line numbers of load errors.
pub(super) struct Lines<'t> {
    /// The text.
    text: &'t str,
    /// The text parsed again with spans; `None` when it is not TOML.
    doc: Option<Spanned<DeTable<'t>>>,
}

impl<'t> Lines<'t> {
    pub(super) fn new(text: &'t str) -> Lines<'t> {
        Lines {
            text,
            doc: DeTable::parse(text).ok(),
        }
    }

    /// The line (from 1) of the byte at `offset`.
    pub(super) fn line_at(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text.as_bytes()[..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// The line of what `path` leads to: the key when it ends in a key, the
    /// value when it ends in an index. Where the path goes further than the
    /// file, the line of the deepest part found.
    pub(super) fn line(&self, path: &[Seg<'_>]) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
        let mut list: Option<&[Spanned<DeValue<'_>>]> = None;
        let mut found: Option<usize> = None;
        for seg in path {
            let value = match (*seg, table, list) {
                (Seg::Key(key), Some(table), _) => {
                    let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == key)
                    else {
                        break;
                    };
                    found = Some(k.span().start);
                    v
                }
                (Seg::Index(i), _, Some(list)) => {
                    let Some(v) = list.get(i) else {
                        break;
                    };
                    found = Some(v.span().start);
                    v
                }
                _ => break,
            };
            table = None;
            list = None;
            match value.get_ref() {
                DeValue::Table(t) => table = Some(t),
                DeValue::Array(a) => list = Some(a.as_ref()),
                _ => {}
            }
        }
        found.map(|offset| self.line_at(offset))
    }
}
