//! Employee login: argon2 password hashes, bearer session tokens with an
//! expiry, and the first admin of an empty database.

pub mod store;

use std::net::{IpAddr, SocketAddr};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use futures_util::future::BoxFuture;
use rand::rngs::OsRng;
use youmi_protocol::api::{Employee, LoginRequest, LoginResponse};

use crate::db::{now_ms, Db};
use crate::http::check;
use crate::http::error::ApiError;
use crate::http::extract::{token_hash, AuthUser, Json};
use crate::{secrets, AppState};

/// Job number of the admin created on an empty database.
pub const FIRST_ADMIN_JOB_NO: &str = "admin";
/// Display name of that admin.
pub const FIRST_ADMIN_NAME: &str = "Administrator";

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
}

/// The session look-up of the `/api/v1` guard (`http::guard`): the employee
/// of a live session whose token hashes to `token_hash`.
pub fn session_user(
    state: AppState,
    token_hash: String,
) -> BoxFuture<'static, Result<Option<Employee>, ApiError>> {
    Box::pin(async move { Ok(store::session_employee(&state.db, &token_hash, now_ms()).await?) })
}

/// Hashes a password with argon2id and a random salt, off the async threads
/// (one hash takes tens of milliseconds of CPU).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| ApiError::Internal(format!("hashing a password: {error}")))
    })
    .await
    .map_err(|error| ApiError::Internal(format!("hashing a password: {error}")))?
}

/// Whether `password` matches the PHC string `hash`, off the async threads.
pub async fn verify_password(hash: String, password: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash)
            .map_err(|error| ApiError::Internal(format!("stored password hash: {error}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|error| ApiError::Internal(format!("verifying a password: {error}")))?
}

/// Creates the first admin on an empty database: with `password` when given,
/// else with a random one printed once to stderr (never to the log).
pub async fn bootstrap_admin(db: &Db, password: Option<&str>) -> Result<(), ApiError> {
    if store::has_employees(db).await? {
        return Ok(());
    }
    let (password, generated) = match password {
        Some(password) if !password.is_empty() => (password.to_owned(), false),
        _ => (secrets::password(), true),
    };
    let hash = hash_password(password.clone()).await?;
    if store::insert_first_admin(db, &hash, now_ms()).await? {
        tracing::info!(job_no = FIRST_ADMIN_JOB_NO, "created the first admin");
        if generated {
            eprintln!(
                "\n==================================================================\n\
                 Youmi: created the first admin on an empty database.\n\
                 \n    job number: {FIRST_ADMIN_JOB_NO}\n    password:   {password}\n\n\
                 This password is shown only now. Set YOUMI_ADMIN_PASSWORD to choose\n\
                 it yourself on a new database.\n\
                 ==================================================================\n"
            );
        }
    }
    Ok(())
}

/// Checks a job number and password and opens a session: the one login of
/// the API and the console. Failures count against the caller's address
/// (`login_limiter`, 429 past the limit); a wrong job number or password is
/// 401 `invalid_credentials` either way, a disabled employee 403
/// `employee_disabled`. The answer holds the session's token, to hand out once.
#[tracing::instrument(skip_all, fields(job_no = %job_no))]
pub async fn log_in(
    state: &AppState,
    client: IpAddr,
    job_no: &str,
    password: String,
) -> Result<LoginResponse, ApiError> {
    // Text no stored job number or password can hold is refused before it
    // counts as an attempt: it could never match.
    check::text("job_no", job_no)?;
    check::text("password", &password)?;
    // The slot is taken before the lookup and the hash, so that parallel
    // guesses cannot all pass the check before any of them has failed.
    let attempt = state.login_limiter.begin(client)?;
    let found = store::credentials(&state.db, job_no.trim()).await?;
    // An unknown job number is checked against a dummy hash, so that the
    // answer takes as long as for a known one and reveals nothing.
    let hash = match &found {
        Some(credentials) => credentials.password_hash.clone(),
        None => state.dummy_hash.to_string(),
    };
    let matches = verify_password(hash, password).await?;
    let credentials = match found {
        Some(credentials) if matches => credentials,
        _ => {
            attempt.failed();
            tracing::info!("login refused");
            return Err(ApiError::InvalidCredentials);
        }
    };
    if credentials.disabled {
        return Err(ApiError::forbidden(
            "employee_disabled",
            "this employee is disabled",
        ));
    }
    let token = secrets::token();
    let now = now_ms();
    let expires_at_ms = now + state.settings.session_ttl_ms;
    store::insert_session(
        &state.db,
        &token_hash(&token),
        credentials.employee.id,
        now,
        expires_at_ms,
    )
    .await?;
    tracing::info!(employee_id = credentials.employee.id, "logged in");
    Ok(LoginResponse {
        token,
        expires_at_ms,
        employee: credentials.employee,
    })
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Json(request): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    log_in(&state, client.ip(), &request.job_no, request.password)
        .await
        .map(Json)
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> Result<StatusCode, ApiError> {
    store::delete_session(&state.db, &user.session).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn me(user: AuthUser) -> Json<Employee> {
    Json(user.employee)
}
