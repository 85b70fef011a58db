//! Operator accounts (运营号): create, list, get, update, disable, enable. The
//! scheduler hears of every account that is created, disabled or enabled.
//! The rules and changes ([`check_new`], [`create_account`], [`check_update`],
//! [`update_account`], [`set_disabled`]) are written once here; the API's
//! handlers below and the console's [`pages`] both call them.

pub mod pages;
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
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, Json, Path};
use crate::http::field::{self, FieldErrors};
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

/// A new account's fields, checked by [`check_new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewAccount<'a> {
    /// Display name, trimmed.
    pub name: &'a str,
    /// WeCom user id, trimmed.
    pub wecom_user_id: &'a str,
    /// Remark, trimmed; may be empty.
    pub remark: &'a str,
}

/// The rules of a new account: a name and a WeCom user id of 1 to
/// [`MAX_NAME_CHARS`] characters, a remark of at most [`MAX_REMARK_CHARS`];
/// every field at fault is named.
pub fn check_new(request: &CreateOperatorAccount) -> Result<NewAccount<'_>, FieldErrors> {
    let mut errors = FieldErrors::default();
    let name = errors.take(field::required("name", &request.name, MAX_NAME_CHARS));
    let wecom_user_id = errors.take(field::required(
        "wecom_user_id",
        &request.wecom_user_id,
        MAX_NAME_CHARS,
    ));
    let remark = errors.take(field::optional("remark", &request.remark, MAX_REMARK_CHARS));
    match (name, wecom_user_id, remark) {
        (Some(name), Some(wecom_user_id), Some(remark)) => Ok(NewAccount {
            name,
            wecom_user_id,
            remark,
        }),
        _ => Err(errors),
    }
}

/// Stores a checked new account and tells the scheduler; 409
/// `wecom_user_id_taken` when another account has its WeCom user id.
pub async fn create_account(
    state: &AppState,
    new: NewAccount<'_>,
) -> Result<OperatorAccount, ApiError> {
    let account = store::insert(&state.db, new.name, new.wecom_user_id, new.remark, now_ms())
        .await
        .map_err(on_unique(WECOM_USER_ID_UNIQUE, wecom_user_id_taken))?;
    tell_scheduler(state, &account).await?;
    tracing::info!(operator_account_id = account.id, "operator account created");
    Ok(account)
}

/// The rules of an update: each field given follows the rules of
/// [`check_new`]; every field at fault is named.
pub fn check_update(request: &UpdateOperatorAccount) -> Result<store::Update<'_>, FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut changes = store::Update {
        disabled: request.disabled,
        ..store::Update::default()
    };
    if let Some(name) = &request.name {
        changes.name = errors.take(field::required("name", name, MAX_NAME_CHARS));
    }
    if let Some(wecom_user_id) = &request.wecom_user_id {
        changes.wecom_user_id = errors.take(field::required(
            "wecom_user_id",
            wecom_user_id,
            MAX_NAME_CHARS,
        ));
    }
    if let Some(remark) = &request.remark {
        changes.remark = errors.take(field::optional("remark", remark, MAX_REMARK_CHARS));
    }
    if errors.0.is_empty() {
        Ok(changes)
    } else {
        Err(errors)
    }
}

/// Changes an account with checked fields, telling the scheduler when its
/// disabled flag is set; 404 for an unknown id, 409 `wecom_user_id_taken`.
pub async fn update_account(
    state: &AppState,
    id: OperatorAccountId,
    changes: store::Update<'_>,
) -> Result<OperatorAccount, ApiError> {
    let tell = changes.disabled.is_some();
    let account = store::update(&state.db, id, changes, now_ms())
        .await
        .map_err(on_unique(WECOM_USER_ID_UNIQUE, wecom_user_id_taken))?
        .ok_or_else(|| not_found(id))?;
    if tell {
        tell_scheduler(state, &account).await?;
    }
    Ok(account)
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(request): Json<CreateOperatorAccount>,
) -> Result<(StatusCode, Json<OperatorAccount>), ApiError> {
    let new = check_new(&request)?;
    let account = create_account(&state, new).await?;
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
    let changes = check_update(&request)?;
    update_account(&state, id, changes).await.map(Json)
}

/// Disables or enables an account and tells the scheduler; 404 for an
/// unknown id.
pub async fn set_disabled(
    state: &AppState,
    id: OperatorAccountId,
    disabled: bool,
) -> Result<OperatorAccount, ApiError> {
    let changes = store::Update {
        disabled: Some(disabled),
        ..store::Update::default()
    };
    let account = update_account(state, id, changes).await?;
    tracing::info!(disabled, "operator account changed");
    Ok(account)
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id, id = id))]
async fn disable(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OperatorAccountId>,
) -> Result<Json<OperatorAccount>, ApiError> {
    set_disabled(&state, id, true).await.map(Json)
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id, id = id))]
async fn enable(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OperatorAccountId>,
) -> Result<Json<OperatorAccount>, ApiError> {
    set_disabled(&state, id, false).await.map(Json)
}
