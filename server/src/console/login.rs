//! The console's own pages: `/` (to the first section, or to `/login`),
//! `/login` (job number and password, through the API's one login,
//! `auth::log_in`: the same rate limit, the same answers), `/logout`, and
//! `/lang/{lang}`, the language switch.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use crate::auth;
use crate::console::i18n::{Lang, LANG_COOKIE};
use crate::console::page::{html, see_other, Ctx};
use crate::console::session::{is_tls, same_site, set_cookie, visitor, Console, SESSION_COOKIE};
use crate::http::extract::AuthUser;
use crate::AppState;

/// How long the language pick is kept: a year.
const LANG_COOKIE_SECS: i64 = 365 * 24 * 3_600;

/// `/`: the first section of the navigation (the guard already sent a
/// visitor without a session to `/login`).
pub async fn home(Extension(console): Extension<Arc<Console>>) -> Response {
    see_other(console.nav.first().map_or("/login", |section| section.path))
}

/// Where to go after logging in.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// A path of this site; anything else is ignored.
    next: Option<String>,
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    job_no: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    ctx: Ctx,
    /// The job number typed, kept after a failure.
    job_no: String,
    /// Where to go afterwards.
    next: String,
    /// Why the last try failed.
    error: Option<String>,
}

/// `GET /login`: the form (with the visitor cookie its token comes from).
pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut ctx: Ctx,
    Query(query): Query<LoginQuery>,
) -> Response {
    let (token, set) = visitor(&state, &headers);
    ctx.csrf = token.0;
    let page = LoginPage {
        ctx,
        job_no: String::new(),
        next: same_site(query.next.as_deref()).to_owned(),
        error: None,
    };
    let mut response = html(StatusCode::OK, &page);
    if let Some(set) = set {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    response
}

/// `POST /login`: a session cookie and on to `next`, or the form again
/// with the reason (the API's own failure, in the page's language).
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ctx: Ctx,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = same_site(form.next.as_deref()).to_owned();
    match auth::log_in(&state, client.ip(), &form.job_no, form.password).await {
        Ok(login) => {
            let mut response = see_other(&next);
            let max_age = (login.expires_at_ms - crate::db::now_ms()) / 1_000;
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    SESSION_COOKIE,
                    &login.token,
                    max_age.max(1),
                    is_tls(&state, &headers),
                ),
            );
            response
        }
        Err(error) => {
            let page = LoginPage {
                error: Some(ctx.catalogue().api_error(&error)),
                ctx,
                job_no: form.job_no,
                next,
            };
            html(error.status(), &page)
        }
    }
}

/// `POST /logout`: ends the session (in the store, so the token is dead
/// everywhere) and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: AuthUser,
    ctx: Ctx,
) -> Response {
    if let Err(error) = auth::store::delete_session(&state.db, &user.session).await {
        return ctx.fail(&error.into()).into_response();
    }
    let mut response = see_other("/login");
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, is_tls(&state, &headers)),
    );
    response
}

/// `GET /lang/{lang}?next=`: keeps the pick in a cookie and goes back.
/// (A preference, not a change of anything stored: a link, no form.)
pub async fn switch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(query): Query<LoginQuery>,
) -> Response {
    let back = same_site(query.next.as_deref()).to_owned();
    let mut response = see_other(&back);
    if let Some(lang) = Lang::from_code(&code) {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(
                LANG_COOKIE,
                lang.code(),
                LANG_COOKIE_SECS,
                is_tls(&state, &headers),
            ),
        );
    }
    response
}
