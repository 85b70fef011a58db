//! The header's navigation: the sections of the seed that have pages, in
//! the seed's order. `app::NAV` lists them; a feature adds its section
//! there when its first page exists, never before (no placeholder pages).
//! A section may carry a [`Badge`], a count shown beside its label on every
//! page (unread notifications).

use std::future::Future;
use std::pin::Pin;

use crate::db::Db;

/// What a section's badge asks the database: a count, 0 for no badge.
pub type Badge =
    for<'a> fn(&'a Db) -> Pin<Box<dyn Future<Output = Result<u64, sqlx::Error>> + Send + 'a>>;

/// One section of the navigation.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// The catalogue key of its label (`nav.operator_accounts`).
    pub label: &'static str,
    /// Its page; pages under this path mark it current.
    pub path: &'static str,
    /// A count beside its label, if the section has one.
    pub badge: Option<Badge>,
}
