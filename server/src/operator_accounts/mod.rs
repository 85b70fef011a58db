//! Operator accounts (运营号): create, list, get, update, disable, enable. The
//! scheduler hears of every account that is created, disabled or enabled.

pub mod store;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use youmi_controller::AccountRecord;
use youmi_protocol::api::{
    CreateOperatorAccount, OperatorAccount, OperatorAccountList, UpdateOperatorAccount,
};
use youmi_protocol::OperatorAccountId;

use crate::db::now_ms;
use crate::http::check;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, Json, Path};
use crate::http::unique::on_unique;
use crate::AppState;

/// Longest name and WeCom user id, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest remark, in characters.
pub const MAX_REMARK_CHARS: usize = 500;

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/operator-accounts", post(create).get(list))
        .route("/api/v1/operator-accounts/{id}", get(show).patch(update))
        .route("/api/v1/operator-accounts/{id}/disable", post(disable))
        .route("/api/v1/operator-accounts/{id}/enable", post(enable))
}

/// The 404 of an unknown account id.
pub fn not_found(id: OperatorAccountId) -> ApiError {
    ApiError::not_found(
        "operator_account_not_found",
        None,
        format!("no operator account with id {id}"),
    )
}

/// Checks a name-like field: storable, trimmed, 1 to 64 characters.
fn short_text<'a>(value: &'a str, field: &str) -> Result<&'a str, ApiError> {
    check::text(field, value)?;
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_field",
            Some(field),
            format!("{field} must not be empty"),
        ));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::unprocessable(
            "invalid_field",
            Some(field),
            format!("{field} must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(trimmed)
}

fn remark(value: &str) -> Result<&str, ApiError> {
    check::text("remark", value)?;
    let trimmed = value.trim();
    if trimmed.chars().count() > MAX_REMARK_CHARS {
        return Err(ApiError::unprocessable(
            "invalid_field",
            Some("remark"),
            format!("remark must be at most {MAX_REMARK_CHARS} characters"),
        ));
    }
    Ok(trimmed)
}

/// The constraints that keep WeCom user ids unique: as written, and
/// case-folded (`store::wecom_key`).
const WECOM_USER_ID_UNIQUE: &[&str] = &[
    "operator_accounts_wecom_user_id_key",
    "operator_accounts_wecom_user_key",
];

fn wecom_user_id_taken() -> ApiError {
    ApiError::conflict(
        "wecom_user_id_taken",
        Some("wecom_user_id"),
        "another operator account has this wecom_user_id, in this or another letter case",
    )
}

async fn tell_scheduler(state: &AppState, account: &OperatorAccount) -> Result<(), ApiError> {
    state
        .controller
        .account_changed(AccountRecord {
            id: account.id,
            disabled: account.disabled,
        })
        .await?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(request): Json<CreateOperatorAccount>,
) -> Result<(StatusCode, Json<OperatorAccount>), ApiError> {
    let name = short_text(&request.name, "name")?;
    let wecom_user_id = short_text(&request.wecom_user_id, "wecom_user_id")?;
    let remark = remark(&request.remark)?;
    let account = store::insert(&state.db, name, wecom_user_id, remark, now_ms())
        .await
        .map_err(on_unique(WECOM_USER_ID_UNIQUE, wecom_user_id_taken))?;
    tell_scheduler(&state, &account).await?;
    tracing::info!(operator_account_id = account.id, "operator account created");
    Ok((StatusCode::CREATED, Json(account)))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<OperatorAccountList>, ApiError> {
    Ok(Json(OperatorAccountList::all(
        store::list(&state.db).await?,
    )))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id, id = id))]
async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OperatorAccountId>,
) -> Result<Json<OperatorAccount>, ApiError> {
    store::get(&state.db, id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(id))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id, id = id))]
async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OperatorAccountId>,
    Json(request): Json<UpdateOperatorAccount>,
) -> Result<Json<OperatorAccount>, ApiError> {
    if request == UpdateOperatorAccount::default() {
        return Err(ApiError::bad_request(
            "empty_patch",
            None,
            "give at least one of name, wecom_user_id, remark, disabled",
        ));
    }
    let changes = store::Update {
        name: request
            .name
            .as_deref()
            .map(|name| short_text(name, "name"))
            .transpose()?,
        wecom_user_id: request
            .wecom_user_id
            .as_deref()
            .map(|id| short_text(id, "wecom_user_id"))
            .transpose()?,
        remark: request.remark.as_deref().map(remark).transpose()?,
        disabled: request.disabled,
    };
    let account = store::update(&state.db, id, changes, now_ms())
        .await
        .map_err(on_unique(WECOM_USER_ID_UNIQUE, wecom_user_id_taken))?
        .ok_or_else(|| not_found(id))?;
    if request.disabled.is_some() {
        tell_scheduler(&state, &account).await?;
    }
    Ok(Json(account))
}

async fn set_disabled(
    state: &AppState,
    id: OperatorAccountId,
    disabled: bool,
) -> Result<Json<OperatorAccount>, ApiError> {
    let changes = store::Update {
        disabled: Some(disabled),
        ..store::Update::default()
    };
    let account = store::update(&state.db, id, changes, now_ms())
        .await?
        .ok_or_else(|| not_found(id))?;
    tell_scheduler(state, &account).await?;
    tracing::info!(disabled, "operator account changed");
    Ok(Json(account))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id, id = id))]
async fn disable(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OperatorAccountId>,
) -> Result<Json<OperatorAccount>, ApiError> {
    set_disabled(&state, id, true).await
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id, id = id))]
async fn enable(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OperatorAccountId>,
) -> Result<Json<OperatorAccount>, ApiError> {
    set_disabled(&state, id, false).await
}
