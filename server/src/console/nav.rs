//! The header's navigation: the sections of the seed that have pages, in
//! the seed's order. `app::NAV` lists them; a feature adds its section
//! there when its first page exists, never before (no placeholder pages).

/// One section of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// The catalogue key of its label (`nav.operator_accounts`).
    pub label: &'static str,
    /// Its page; pages under this path mark it current.
    pub path: &'static str,
}
