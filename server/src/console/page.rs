//! What every page is made of: [`Ctx`], the request's side of a page (the
//! language, the user, the CSRF token, the navigation, where the page is),
//! which every page template holds as `ctx` and which the layout
//! (`templates/base.html`) reads; rendering a template into a response;
//! and the error pages (404, 403, the refused CSRF, any other failure of
//! the shared logic) as [`PageError`].

use std::fmt::Display;
use std::sync::Arc;

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use youmi_protocol::api::Employee;

use crate::console::csrf::{CsrfToken, FIELD};
use crate::console::i18n::{Catalogue, Lang};
use crate::console::nav::Section;
use crate::console::session::{percent_encode, Console};
use crate::console::{assets, time};
use crate::http::error::ApiError;
use crate::http::extract::AuthUser;
use crate::AppState;

/// The request's side of a page.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The page's language.
    pub lang: Lang,
    /// Who is logged in (`None` on the login and error pages).
    pub user: Option<Employee>,
    /// The token every form of the page posts (`csrf`).
    pub csrf: String,
    /// The page's path and query, for the language switch to come back to.
    pub path: String,
    /// The header's sections.
    pub nav: &'static [Section],
    /// The sections' badges that are not 0, by the section's path.
    pub badges: Vec<(&'static str, u64)>,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let mut ctx = Ctx {
            lang: Lang::of(&parts.headers),
            user: parts
                .extensions
                .get::<AuthUser>()
                .map(|user| user.employee.clone()),
            csrf: parts
                .extensions
                .get::<CsrfToken>()
                .map(|token| token.0.clone())
                .unwrap_or_default(),
            path: parts
                .uri
                .path_and_query()
                .map_or("/", |path| path.as_str())
                .to_owned(),
            nav: parts
                .extensions
                .get::<Arc<Console>>()
                .map_or(&[], |console| console.nav),
            badges: Vec::new(),
        };
        if ctx.user.is_some() {
            ctx.badges = badges(ctx.nav, state).await;
        }
        Ok(ctx)
    }
}

/// The counts of the sections that have a badge; a count that cannot be
/// read is left out (the page still shows), and logged.
async fn badges(nav: &'static [Section], state: &AppState) -> Vec<(&'static str, u64)> {
    let mut counts = Vec::new();
    for section in nav {
        let Some(badge) = section.badge else { continue };
        match badge(&state.db).await {
            Ok(0) => {}
            Ok(count) => counts.push((section.path, count)),
            Err(error) => tracing::warn!(%error, section = section.path, "a badge count failed"),
        }
    }
    counts
}

impl Ctx {
    /// A page with no user, token or navigation: the guard's error pages.
    pub fn bare(lang: Lang) -> Ctx {
        Ctx {
            lang,
            user: None,
            csrf: String::new(),
            path: "/".to_owned(),
            nav: &[],
            badges: Vec::new(),
        }
    }

    /// The badge of `section`, if it shows one.
    pub fn badge(&self, section: &Section) -> Option<u64> {
        self.badges
            .iter()
            .find(|(path, _)| *path == section.path)
            .map(|(_, count)| *count)
    }

    /// The page language's catalogue.
    pub fn catalogue(&self) -> &'static Catalogue {
        self.lang.catalogue()
    }

    /// The text of `key` in the page's language.
    pub fn t(&self, key: &'static str) -> &'static str {
        self.catalogue().t(key)
    }

    /// The text of `key` with `value` in place of its `{}`.
    pub fn tf(&self, key: &'static str, value: impl Display) -> String {
        self.catalogue().tf(key, value)
    }

    /// The URL of a compiled-in file (`assets`).
    pub fn asset(&self, name: &str) -> &'static str {
        assets::url(name)
    }

    /// The name of the CSRF form field.
    pub fn csrf_field(&self) -> &'static str {
        FIELD
    }

    /// `hx-headers` of the layout's body: htmx sends the token with every
    /// request it makes.
    pub fn htmx_headers(&self) -> String {
        format!("{{\"X-CSRF-Token\": \"{}\"}}", self.csrf)
    }

    /// Whether `section` is the one this page is in.
    pub fn is_current(&self, section: &Section) -> bool {
        self.path == section.path
            || self
                .path
                .strip_prefix(section.path)
                .is_some_and(|rest| rest.starts_with(['/', '?']))
    }

    /// Every language, for the switch.
    pub fn langs(&self) -> [Lang; 2] {
        Lang::ALL
    }

    /// The switch's link to `lang`, back to this page.
    pub fn lang_href(&self, lang: &Lang) -> String {
        format!("/lang/{}?next={}", lang.code(), percent_encode(&self.path))
    }

    /// A stored time for `<time datetime>` (`time::iso_utc`).
    pub fn iso(&self, ms: &i64) -> String {
        time::iso_utc(*ms)
    }

    /// A stored time as text, before the script shows it in local time.
    pub fn when(&self, ms: &i64) -> String {
        time::short_utc(*ms)
    }
}

/// `template` rendered as an HTML page with `status`.
pub fn html(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(text) => (status, Html(text)).into_response(),
        Err(error) => {
            tracing::error!(%error, "a console template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// `303 See Other` to `path`: where a form post that worked leads.
pub fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// Whether htmx made the request, so that a fragment answers it.
pub fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// A page that failed: its error page, ready to answer (boxed: a response
/// is large, and this travels in every page's `Result`).
#[derive(Debug)]
pub struct PageError(Box<Response>);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl Ctx {
    /// The error page of `error`, in the page's language.
    pub fn fail(&self, error: &ApiError) -> PageError {
        PageError(Box::new(error_page_in(self.clone(), error)))
    }
}

/// The error page of `error` in `lang`, for a request that has no page yet.
pub fn error_page(lang: Lang, error: &ApiError) -> Response {
    error_page_in(Ctx::bare(lang), error)
}

fn error_page_in(ctx: Ctx, error: &ApiError) -> Response {
    if error.status().is_server_error() {
        tracing::warn!(%error, "a console page failed");
    }
    let title = match error.status() {
        StatusCode::NOT_FOUND => ctx.t("error.not_found"),
        StatusCode::FORBIDDEN => ctx.t("error.forbidden"),
        _ => ctx.t("error.failed"),
    };
    let page = ErrorPage {
        title,
        message: ctx.catalogue().api_error(error),
        status: error.status().as_u16(),
        ctx,
    };
    let mut response = html(error.status(), &page);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// The 403 page of a post without its CSRF token; nothing ran.
pub fn csrf_refused(lang: Lang) -> Response {
    let ctx = Ctx::bare(lang);
    let page = ErrorPage {
        title: ctx.t("error.forbidden"),
        message: ctx.t("error.csrf").to_owned(),
        status: 403,
        ctx,
    };
    html(StatusCode::FORBIDDEN, &page)
}

/// An error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    ctx: Ctx,
    /// What went wrong, in a few words.
    title: &'static str,
    /// What went wrong, and what to do.
    message: String,
    /// The HTTP status, shown small.
    status: u16,
}
