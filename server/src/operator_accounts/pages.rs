//! The 运营号 pages of the console: the list (paged), the create and edit
//! forms, disable and enable, and 创建设备绑定码 (the code, its countdown and
//! its QR). Every change goes through the same rules and store functions as
//! the API's handlers (`check_new`, `create_account`, `check_update`,
//! `update_account`, `set_disabled`, `bind_codes::create_code`); bad input
//! comes back as the form, the input kept, a message next to each field at
//! fault, nothing changed.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use youmi_protocol::api::{
    BindCode, CreateOperatorAccount, OperatorAccount, PageQuery, UpdateOperatorAccount,
};
use youmi_protocol::OperatorAccountId;

use crate::console::page::{html, is_htmx, see_other, Ctx, PageError};
use crate::console::paging::{self, Pager};
use crate::db::now_ms;
use crate::http::error::ApiError;
use crate::http::extract::AuthUser;
use crate::http::field::FieldErrors;
use crate::{bind_codes, AppState};

use super::{
    check_new, check_update, create_account, not_found, set_disabled, store, update_account,
};

/// Where the list lives; the navigation links here.
pub const PATH: &str = "/operator-accounts";

/// The pages' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list).post(create))
        .route("/operator-accounts/new", get(new_form))
        .route("/operator-accounts/{id}", post(update))
        .route("/operator-accounts/{id}/edit", get(edit_form))
        .route("/operator-accounts/{id}/disable", post(disable))
        .route("/operator-accounts/{id}/enable", post(enable))
        .route("/operator-accounts/{id}/bind-codes", post(bind_code))
        // The API's own QR handler, behind the console's session instead.
        .route(
            "/operator-accounts/{id}/bind-codes/{code}/qr.png",
            get(bind_codes::qr_png),
        )
}

/// The list's query: its page and what the last post did.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Page size.
    limit: Option<i64>,
    /// Accounts before this id.
    cursor: Option<i64>,
    /// `created` or `updated`, after a form post.
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "operator_accounts/list.html")]
struct ListPage {
    ctx: Ctx,
    accounts: Vec<OperatorAccount>,
    pager: Pager,
    /// What the last post did, in words.
    notice: Option<&'static str>,
}

/// One row of the list, alone: what disable and enable answer htmx with.
#[derive(Template)]
#[template(path = "operator_accounts/row.html")]
struct Row {
    ctx: Ctx,
    account: OperatorAccount,
}

/// The form's fields, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    wecom_user_id: String,
    #[serde(default)]
    remark: String,
}

#[derive(Template)]
#[template(path = "operator_accounts/form.html")]
struct FormPage {
    ctx: Ctx,
    /// The account edited; `None` for a new one.
    id: Option<OperatorAccountId>,
    form: AccountForm,
    errors: Messages,
}

/// The messages of a refused form: per field, and one for the whole form.
#[derive(Debug, Default)]
struct Messages {
    fields: Vec<(&'static str, String)>,
    form: Option<String>,
}

impl Messages {
    /// The message of `field`, if it has one.
    fn of(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, message)| message.as_str())
    }

    fn any(&self) -> bool {
        !self.fields.is_empty() || self.form.is_some()
    }
}

/// Why a form post changed nothing.
enum Refused {
    /// Fields that break the rules.
    Fields(FieldErrors),
    /// The shared logic said no.
    Api(ApiError),
}

impl Refused {
    fn messages(&self, ctx: &Ctx) -> Messages {
        let catalogue = ctx.catalogue();
        match self {
            Refused::Fields(errors) => Messages {
                fields: errors
                    .0
                    .iter()
                    .map(|error| (error.field, catalogue.field_error(error)))
                    .collect(),
                form: None,
            },
            Refused::Api(error) => match error.field() {
                Some("wecom_user_id") => Messages {
                    fields: vec![("wecom_user_id", catalogue.api_error(error))],
                    form: None,
                },
                _ => Messages {
                    fields: Vec::new(),
                    form: Some(catalogue.api_error(error)),
                },
            },
        }
    }
}

/// An id from the path; one that is no id names no account.
fn account_id(ctx: &Ctx, text: &str) -> Result<OperatorAccountId, PageError> {
    text.parse::<OperatorAccountId>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| {
            ctx.fail(&ApiError::not_found(
                "operator_account_not_found",
                None,
                "no such operator account",
            ))
        })
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let request = paging::request(PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    })
    .map_err(|error| ctx.fail(&error))?;
    let rows = store::page(&state.db, &request)
        .await
        .map_err(|error| ctx.fail(&error.into()))?;
    let page = request.page(rows, |account| account.id);
    let pager = Pager::new(PATH, &request, &page);
    let notice = match query.notice.as_deref() {
        Some("created") => Some(ctx.t("accounts.created")),
        Some("updated") => Some(ctx.t("accounts.updated")),
        _ => None,
    };
    Ok(html(
        StatusCode::OK,
        &ListPage {
            ctx,
            accounts: page.items,
            pager,
            notice,
        },
    ))
}

async fn new_form(ctx: Ctx) -> Response {
    html(
        StatusCode::OK,
        &FormPage {
            ctx,
            id: None,
            form: AccountForm::default(),
            errors: Messages::default(),
        },
    )
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(form): Form<AccountForm>,
) -> Response {
    let request = CreateOperatorAccount {
        name: form.name.clone(),
        wecom_user_id: form.wecom_user_id.clone(),
        remark: form.remark.clone(),
    };
    let result = match check_new(&request) {
        Ok(new) => create_account(&state, new).await.map_err(Refused::Api),
        Err(errors) => Err(Refused::Fields(errors)),
    };
    match result {
        Ok(_) => see_other("/operator-accounts?notice=created"),
        Err(refused) => refused_form(ctx, None, form, &refused),
    }
}

async fn edit_form(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = account_id(&ctx, &id)?;
    let account = store::get(&state.db, id)
        .await
        .map_err(|error| ctx.fail(&error.into()))?
        .ok_or_else(|| ctx.fail(&not_found(id)))?;
    let form = AccountForm {
        name: account.name,
        wecom_user_id: account.wecom_user_id,
        remark: account.remark,
    };
    Ok(html(
        StatusCode::OK,
        &FormPage {
            ctx,
            id: Some(id),
            form,
            errors: Messages::default(),
        },
    ))
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<AccountForm>,
) -> Result<Response, PageError> {
    let id = account_id(&ctx, &id)?;
    let request = UpdateOperatorAccount {
        name: Some(form.name.clone()),
        wecom_user_id: Some(form.wecom_user_id.clone()),
        remark: Some(form.remark.clone()),
        disabled: None,
    };
    let result = match check_update(&request) {
        Ok(changes) => update_account(&state, id, changes)
            .await
            .map_err(Refused::Api),
        Err(errors) => Err(Refused::Fields(errors)),
    };
    match result {
        Ok(_) => Ok(see_other("/operator-accounts?notice=updated")),
        Err(Refused::Api(error)) if error.status() == StatusCode::NOT_FOUND => {
            Err(ctx.fail(&error))
        }
        Err(refused) => Ok(refused_form(ctx, Some(id), form, &refused)),
    }
}

/// The form again, as typed, with the reasons; 422 (409 for a clash).
fn refused_form(
    ctx: Ctx,
    id: Option<OperatorAccountId>,
    form: AccountForm,
    refused: &Refused,
) -> Response {
    let status = match refused {
        Refused::Fields(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Refused::Api(error) => error.status(),
    };
    let errors = refused.messages(&ctx);
    html(
        status,
        &FormPage {
            ctx,
            id,
            form,
            errors,
        },
    )
}

async fn disable(
    state: State<AppState>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    toggle(state, headers, ctx, id, true).await
}

async fn enable(
    state: State<AppState>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    toggle(state, headers, ctx, id, false).await
}

/// Disables or enables; htmx gets the new row, a plain post the list.
async fn toggle(
    State(state): State<AppState>,
    headers: HeaderMap,
    ctx: Ctx,
    id: String,
    disabled: bool,
) -> Result<Response, PageError> {
    let id = account_id(&ctx, &id)?;
    let account = set_disabled(&state, id, disabled)
        .await
        .map_err(|error| ctx.fail(&error))?;
    if is_htmx(&headers) {
        Ok(html(StatusCode::OK, &Row { ctx, account }))
    } else {
        Ok(see_other(PATH))
    }
}

/// A new bind code, shown with its QR and countdown: the panel htmx puts
/// above the list.
#[derive(Template)]
#[template(path = "operator_accounts/bind_code_panel.html")]
struct BindCodePanel {
    ctx: Ctx,
    account: OperatorAccount,
    code: BindCode,
    /// Milliseconds left when the page was made; the countdown starts here,
    /// so that the browser's clock does not matter.
    remaining_ms: i64,
}

/// The panel as a whole page, for a plain post (no script).
#[derive(Template)]
#[template(path = "operator_accounts/bind_code.html")]
struct BindCodePage {
    ctx: Ctx,
    panel: BindCodePanel,
}

impl BindCodePanel {
    /// The countdown's first text, `m:ss`.
    fn remaining_text(&self) -> String {
        let secs = (self.remaining_ms.max(0) + 999) / 1_000;
        format!("{}:{:02}", secs / 60, secs % 60)
    }

    /// The QR's URL: the API's handler, mounted beside this page.
    fn qr_src(&self) -> String {
        format!(
            "/operator-accounts/{}/bind-codes/{}/qr.png",
            self.account.id, self.code.code
        )
    }
}

async fn bind_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: AuthUser,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = account_id(&ctx, &id)?;
    let code = bind_codes::create_code(&state, id, user.employee.id)
        .await
        .map_err(|error| ctx.fail(&error))?;
    let account = store::get(&state.db, id)
        .await
        .map_err(|error| ctx.fail(&error.into()))?
        .ok_or_else(|| ctx.fail(&not_found(id)))?;
    let panel = BindCodePanel {
        remaining_ms: code.expires_at - now_ms(),
        ctx: ctx.clone(),
        account,
        code,
    };
    let mut response = if is_htmx(&headers) {
        html(StatusCode::OK, &panel)
    } else {
        html(StatusCode::OK, &BindCodePage { ctx, panel })
    };
    // A code is shown once, to whoever made it.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response.into_response())
}
