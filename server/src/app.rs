//! The application: every feature's router and pages mounted on one router,
//! behind the kit's layers (the `/api/v1` session guard, the console's
//! cookie-session guard, the refusal of writes while storage fails, response
//! counting, body limits, JSON error bodies). A new feature is one line in
//! [`features`]; its `/api/v1` routes are guarded unless listed in
//! [`PUBLIC`], its pages unless listed in [`CONSOLE_PUBLIC`]; its section of
//! the console's header is one line in [`NAV`].

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::{self, from_fn_with_state};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::console::nav::Section;
use crate::console::session::{self, Console};
use crate::http::guard::{guard, Guard};
use crate::http::{json_errors, method_not_allowed, unknown_route, BODY_LIMIT};
use crate::prometheus::count_responses;
use crate::{
    agent_bind, auth, bind_codes, console, device_logs, devices, gateway, health, notifications,
    operator_accounts, tasks, AppState,
};

/// The routes under `/api/v1` that take no session token: logging in.
pub const PUBLIC: &[(Method, &str)] = &[(Method::POST, "/api/v1/auth/login")];

/// The console's routes that need no session: the kit's (login, assets,
/// the language switch).
pub const CONSOLE_PUBLIC: &[(Method, &str)] = console::PUBLIC;

/// The console header's sections, in the seed's order: only those with a
/// page.
pub const NAV: &[Section] = &[
    Section {
        label: "nav.operator_accounts",
        path: operator_accounts::pages::PATH,
        badge: None,
    },
    Section {
        label: "nav.devices",
        path: devices::pages::PATH,
        badge: None,
    },
    Section {
        label: "nav.device_logs",
        path: device_logs::pages::PATH,
        badge: None,
    },
    Section {
        label: "nav.tasks",
        path: tasks::pages::PATH,
        badge: None,
    },
    Section {
        label: "nav.notifications",
        path: notifications::pages::PATH,
        badge: Some(notifications::pages::unread_badge),
    },
];

/// Every feature's routes and pages, one line each.
pub fn features() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(operator_accounts::router())
        .merge(bind_codes::router())
        .merge(agent_bind::router())
        .merge(gateway::router())
        .merge(tasks::router())
        .merge(devices::router())
        .merge(device_logs::router())
        .merge(notifications::router())
        .merge(console::router())
        .merge(operator_accounts::pages::router())
        .merge(devices::pages::router())
        .merge(device_logs::pages::router())
        .merge(tasks::pages::router())
        .merge(notifications::pages::router())
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let session_guard = Guard {
        public: PUBLIC,
        lookup: auth::session_user,
    };
    let console = Console {
        public: CONSOLE_PUBLIC,
        nav: NAV,
    };
    let routes = session::guard(
        guard(features(), state.clone(), session_guard),
        state.clone(),
        console,
    );
    let router = routes
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        // While storage fails, writes are refused before any handler runs.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            health::refuse_writes,
        ));
    // With metrics on, every response is counted, the fallback's and the
    // refused writes' included.
    let router = match state.metrics.clone() {
        Some(metrics) => router.layer(from_fn_with_state(metrics, count_responses)),
        None => router,
    };
    router
        // The batch route sets its own, larger limit; a route's own layer wins
        // over this one because it runs later.
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::map_response(json_errors))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Every path the server routes, read from the router itself (axum lists
/// them in its debug form), so that a test can knock on each one.
pub fn paths() -> Vec<String> {
    let text = format!("{:?}", features());
    let mut paths: Vec<String> = text
        .split('"')
        .filter(|part| part.starts_with('/') && !part.contains(' '))
        .map(str::to_owned)
        .collect();
    paths.sort();
    paths.dedup();
    paths
}
