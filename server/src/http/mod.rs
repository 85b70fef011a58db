//! The HTTP side of the server: one router made of each feature's router,
//! plus what they share (the error type, extractors, the rate limiter).

pub mod error;
pub mod extract;
pub mod rate_limit;

use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::middleware::{self, from_fn_with_state};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::http::error::ApiError;
use crate::prometheus::count_responses;
use crate::AppState;

/// The largest request body of any route but the batch submit.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;
/// The largest batch submit body: 100,000 tasks of a few hundred bytes each.
pub const BATCH_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .merge(crate::health::router())
        .merge(crate::auth::router())
        .merge(crate::operator_accounts::router())
        .merge(crate::bind_codes::router())
        .merge(crate::agent_bind::router())
        .merge(crate::gateway::router())
        .merge(crate::tasks::router())
        .merge(crate::devices::router())
        .merge(crate::notifications::router())
        .fallback(unknown_route)
        // While storage fails, writes are refused before any handler runs.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::health::refuse_writes,
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
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::not_found(
        "route_not_found",
        None,
        format!("no route for {}", uri.path()),
    )
}
