//! The web console's kit: server-rendered pages for admins, served by the
//! server itself beside the API. It imports no feature; each feature keeps
//! its pages in its own folder (`<feature>/pages.rs` and
//! `templates/<feature>/`) built on this kit, and `app` mounts them with one
//! line and lists their section in `app::NAV`.
//!
//! # Layout
//! - [`session`]: the session and visitor cookies and the console's guard
//!   (a new page is guarded by default; `app::CONSOLE_PUBLIC` lists the
//!   rest); [`csrf`]: the token every post carries.
//! - [`page`]: [`Ctx`](page::Ctx), what every page template holds, rendering
//!   and the error pages; [`paging`]: list pages and their links;
//!   [`time`]: stored times on pages; [`nav`]: the header's sections.
//! - [`i18n`]: the languages and their catalogues (`server/i18n/`).
//! - [`assets`]: htmx, the stylesheet and the script, compiled in, at
//!   hashed URLs with a long cache.
//! - [`login`]: `/`, `/login`, `/logout`, the language switch.

pub mod assets;
pub mod csrf;
pub mod i18n;
pub mod login;
pub mod nav;
pub mod page;
pub mod paging;
pub mod session;
pub mod time;

use axum::http::Method;
use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

/// The kit's public routes: the login form, the files, the language switch.
pub const PUBLIC: &[(Method, &str)] = &[
    (Method::GET, "/login"),
    (Method::POST, "/login"),
    (Method::GET, "/assets/{file}"),
    (Method::GET, "/lang/{lang}"),
];

/// The kit's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(login::home))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/lang/{lang}", get(login::switch))
        .route("/assets/{file}", get(assets::serve))
}
