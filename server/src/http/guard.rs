//! The authentication guard of `/api/v1`: a layer on every route under it
//! that lets a request through only with a live session token, unless the
//! route is in the short, explicit list of public ones. So a new route is
//! guarded by default. The handler gets the caller as
//! [`AuthUser`](crate::http::extract::AuthUser), which the guard leaves in
//! the request. (The agents' routes, under `/agent/v1`, check their device
//! token themselves.)

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::future::BoxFuture;
use youmi_protocol::api::Employee;

use crate::http::error::ApiError;
use crate::http::extract::{bearer_token, token_hash, AuthUser};

/// The prefix of the routes the guard covers.
pub const GUARDED_PREFIX: &str = "/api/v1/";

/// Finds the employee of a live session by the hash of its token (`None`:
/// no such session, expired, or its employee disabled).
pub type SessionLookup<S> = fn(S, String) -> BoxFuture<'static, Result<Option<Employee>, ApiError>>;

/// What the guard needs: the public routes and how sessions are looked up.
pub struct Guard<S> {
    /// The routes under `/api/v1` that take no token, by method and path
    /// as the router has it (`/api/v1/tasks/{id}`).
    pub public: &'static [(Method, &'static str)],
    /// The session look-up.
    pub lookup: SessionLookup<S>,
}

impl<S> Guard<S> {
    /// Whether `method` on `path` (a route's path as the router has it) needs
    /// no session token.
    pub fn is_public(&self, method: &Method, path: &str) -> bool {
        !path.starts_with(GUARDED_PREFIX)
            || self
                .public
                .iter()
                .any(|(public_method, public_path)| public_method == method && *public_path == path)
    }
}

/// `router` with the guard on each of its routes (not on its fallbacks: an
/// unknown route stays a 404, a wrong method a 405). Routes merged into
/// the result later are not covered, so call it on every feature's routes.
pub fn guard<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    state: S,
    guard: Guard<S>,
) -> Router<S> {
    router.route_layer(from_fn_with_state(
        (state, Arc::new(guard)),
        require_session,
    ))
}

/// The path of the route a request matched, as the router has it
/// (`/api/v1/tasks/{id}`), or its own path where it matched none.
pub fn route_path(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned())
}

async fn require_session<S: Clone + Send + Sync + 'static>(
    State((state, guard)): State<(S, Arc<Guard<S>>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = route_path(&request);
    if guard.is_public(request.method(), &path) {
        return next.run(request).await;
    }
    let Some(token) = bearer_token(request.headers()) else {
        return ApiError::Unauthorized.into_response();
    };
    let session = token_hash(token);
    match (guard.lookup)(state, session.clone()).await {
        Ok(Some(employee)) => {
            request
                .extensions_mut()
                .insert(AuthUser { employee, session });
            next.run(request).await
        }
        Ok(None) => ApiError::Unauthorized.into_response(),
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_routes_under_api_v1_are_public() {
        let guard: Guard<()> = Guard {
            public: &[(Method::POST, "/api/v1/auth/login")],
            lookup: |_, _| Box::pin(async { Ok(None) }),
        };
        assert!(guard.is_public(&Method::POST, "/api/v1/auth/login"));
        assert!(!guard.is_public(&Method::GET, "/api/v1/auth/login"));
        assert!(!guard.is_public(&Method::POST, "/api/v1/auth/logout"));
        assert!(!guard.is_public(&Method::GET, "/api/v1/tasks/{id}"));
        assert!(guard.is_public(&Method::GET, "/health/live"));
        assert!(guard.is_public(&Method::GET, "/agent/v1/ws"));
    }
}
