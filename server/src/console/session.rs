//! Browser sessions: the session cookie over the same session store as the
//! API's bearer tokens (`auth::log_in` opens both kinds), the visitor cookie
//! that ties the login form's CSRF token to a browser, and the console's
//! guard: a layer on every route that is not the API's, the agents' or the
//! probes', which lets a request through only with a live session unless
//! the route is in the console's short public list. So a new page is guarded
//! by default. Without a session a page sends the visitor to `/login`,
//! remembering where they were; with one, a request that may change
//! something must carry the session's CSRF token (`csrf`), else it is refused
//! with the 403 page and nothing runs.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;

use crate::console::csrf::{self, CsrfToken};
use crate::console::i18n::Lang;
use crate::console::nav::Section;
use crate::console::page;
use crate::http::extract::{token_hash, AuthUser};
use crate::http::guard::route_path;
use crate::{auth, secrets, AppState};

/// The session cookie: a session token, as the API's bearer token is.
pub const SESSION_COOKIE: &str = "youmi_session";
/// The visitor cookie: a random secret the login form's token comes from.
pub const VISITOR_COOKIE: &str = "youmi_visitor";

/// The prefixes of routes that are not the console's: the API (its own
/// guard), the agents' routes and the health probes.
const NOT_CONSOLE: &[&str] = &["/api/", "/agent/", "/health/"];

/// What the console's guard and pages need from `app`, which names the
/// features: the public routes and the navigation.
pub struct Console {
    /// The console routes that need no session, by method and path as the
    /// router has them (`/assets/{file}`).
    pub public: &'static [(Method, &'static str)],
    /// The header's sections, in order; the first is where `/` leads.
    pub nav: &'static [Section],
}

impl Console {
    /// Whether `method` on `path` (a route's path as the router has it)
    /// passes without a session.
    pub fn is_public(&self, method: &Method, path: &str) -> bool {
        NOT_CONSOLE.iter().any(|prefix| path.starts_with(prefix))
            || self
                .public
                .iter()
                .any(|(public_method, public_path)| public_method == method && *public_path == path)
    }
}

/// `router` with the console's guard on each of its routes (as
/// `http::guard::guard`, routes merged later are not covered).
pub fn guard(router: Router<AppState>, state: AppState, console: Console) -> Router<AppState> {
    router.route_layer(from_fn_with_state(
        (state, Arc::new(console)),
        require_session,
    ))
}

async fn require_session(
    State((state, console)): State<(AppState, Arc<Console>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = route_path(&request);
    request.extensions_mut().insert(Arc::clone(&console));
    if NOT_CONSOLE.iter().any(|prefix| path.starts_with(prefix)) {
        return next.run(request).await;
    }
    if console.is_public(request.method(), &path) {
        // The login form's token comes from the visitor cookie, which the
        // login page sets (`visitor`).
        let token = cookie(request.headers(), VISITOR_COOKIE).map(csrf::token_for);
        return match token {
            Some(token) => checked(request, token, next).await,
            None if csrf::is_safe(request.method()) => next.run(request).await,
            None => page::csrf_refused(Lang::of(request.headers())),
        };
    }
    let Some(token) = cookie(request.headers(), SESSION_COOKIE).map(str::to_owned) else {
        return to_login(&request);
    };
    let session = token_hash(&token);
    match auth::session_user(state, session.clone()).await {
        Ok(Some(employee)) => {
            request
                .extensions_mut()
                .insert(AuthUser { employee, session });
            checked(request, csrf::token_for(&token), next).await
        }
        Ok(None) => to_login(&request),
        Err(error) => page::error_page(Lang::of(request.headers()), &error),
    }
}

/// Runs `request` with `token` left for its page, after checking that a
/// request that may change something carries it.
async fn checked(mut request: Request, token: CsrfToken, next: Next) -> Response {
    request.extensions_mut().insert(token.clone());
    if csrf::is_safe(request.method()) {
        return next.run(request).await;
    }
    let lang = Lang::of(request.headers());
    match csrf::check(request, &token).await {
        Some(request) => next.run(request).await,
        None => {
            tracing::info!("a console post without its csrf token refused");
            page::csrf_refused(lang)
        }
    }
}

/// Sends a visitor without a session to `/login`, which brings them back to
/// this page afterwards (a GET; after any other method, to where `/` leads).
/// An htmx request is told to load the login page whole.
fn to_login(request: &Request) -> Response {
    let back = if request.method() == Method::GET {
        request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str())
    } else {
        "/"
    };
    let login = if back == "/" {
        "/login".to_owned()
    } else {
        format!("/login?next={}", percent_encode(back))
    };
    if request.headers().contains_key("hx-request") {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if let Ok(value) = HeaderValue::from_str(&login) {
            response.headers_mut().insert("hx-redirect", value);
        }
        return response;
    }
    Redirect::to(&login).into_response()
}

/// `next` when it is a path of this site (`/...`, not `//host` or `/\host`,
/// which browsers read as another host), else `/`.
pub fn same_site(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.starts_with("/\\")
                && !next.chars().any(char::is_control) =>
        {
            next
        }
        _ => "/",
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// A `Set-Cookie` value: path `/`, `SameSite=Strict`, HttpOnly (no script
/// of the page reads a cookie), `Secure` when the console is served over
/// TLS, kept `max_age_secs` (0 deletes it).
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let mut text =
        format!("{name}={value}; Path=/; Max-Age={max_age_secs}; SameSite=Strict; HttpOnly");
    if secure {
        text.push_str("; Secure");
    }
    // Names and values are ours: tokens, hex and language codes.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether the request came over TLS: the public URL is `https`, or the
/// proxy in front says so. Cookies are then `Secure`.
pub fn is_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.settings.public_url.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The visitor's CSRF token for the login form, and the cookie to set when
/// the visitor has none yet.
pub fn visitor(state: &AppState, headers: &HeaderMap) -> (CsrfToken, Option<HeaderValue>) {
    match cookie(headers, VISITOR_COOKIE) {
        Some(secret) => (csrf::token_for(secret), None),
        None => {
            let secret = secrets::token();
            let set = set_cookie(
                VISITOR_COOKIE,
                &secret,
                state.settings.session_ttl_ms / 1_000,
                is_tls(state, headers),
            );
            (csrf::token_for(&secret), Some(set))
        }
    }
}

/// `text` with every byte but the unreserved ones percent-encoded, for a
/// query value.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_are_followed_after_login() {
        assert_eq!(
            same_site(Some("/operator-accounts?cursor=5")),
            "/operator-accounts?cursor=5"
        );
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "evil",
            "/a\nb",
            "",
        ] {
            assert_eq!(same_site(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(same_site(None), "/");
    }

    #[test]
    fn cookies_are_read_and_written_with_their_flags() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; youmi_session=tok; b="),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(cookie(&headers, "c"), None);
        let set = set_cookie(SESSION_COOKIE, "tok", 60, true);
        assert_eq!(
            set.to_str().unwrap(),
            "youmi_session=tok; Path=/; Max-Age=60; SameSite=Strict; HttpOnly; Secure"
        );
        assert_eq!(percent_encode("/a?b=c d&é"), "/a%3Fb%3Dc%20d%26%C3%A9");
    }

    #[test]
    fn the_console_guards_every_route_but_its_public_ones_and_others() {
        let console = Console {
            public: &[(Method::GET, "/login")],
            nav: &[],
        };
        assert!(console.is_public(&Method::GET, "/login"));
        assert!(!console.is_public(&Method::POST, "/login"));
        assert!(!console.is_public(&Method::GET, "/operator-accounts"));
        assert!(console.is_public(&Method::POST, "/api/v1/tasks"));
        assert!(console.is_public(&Method::GET, "/health/live"));
    }
}
