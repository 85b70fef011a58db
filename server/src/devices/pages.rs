//! The RPA助手管理 page of the console (seed section 七): one row per bound
//! phone with its live state, filters, sorting and paging (`listing`), the
//! live feed that keeps the rows current (`feed`), and the batch actions
//! (`batch`): a confirmation with the count of phones, then each phone's
//! result. Every change goes through the API's own logic
//! (`actions::run`, `tasks::cancel_tasks`); bad input shows its message and
//! changes nothing.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use youmi_protocol::api::Outcome;
use youmi_protocol::{AutoResume, TaskKind};

use crate::console::page::{html, is_htmx, Ctx, PageError};
use crate::db::now_ms;
use crate::http::extract::AuthUser;
use crate::AppState;

use super::batch::{self, BatchForm, BatchKind, PhoneResult, Scope, KIND_GROUPS, SWITCHES};
use super::feed;
use super::listing::{self, ListPage, ListQuery, Listing, Live, SortKey};
use super::store::{self, ListedDevice};

/// Where the page lives; the navigation links here.
pub const PATH: &str = "/devices";

/// The page's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list))
        .route("/devices/batch", post(batch_post))
        .route(feed::PATH, get(feed::events))
}

/// The words and links of a page's live cells and rows.
pub trait Shows {
    /// The page's context.
    fn ctx(&self) -> &Ctx;

    /// A task kind's name.
    fn kind_label(&self, kind: &Option<TaskKind>) -> &'static str {
        self.ctx().t(match kind {
            Some(TaskKind::SendMessage) => "kind.send_message",
            Some(TaskKind::MassSend) => "kind.mass_send",
            Some(TaskKind::MomentsPost) => "kind.moments_post",
            Some(TaskKind::FriendAdd) => "kind.friend_add",
            Some(TaskKind::SmartMarketing) => "kind.smart_marketing",
            Some(TaskKind::DeleteChat) => "kind.delete_chat",
            Some(TaskKind::AcceptFriendRequest) => "kind.accept_friend_request",
            None => "kind.unknown",
        })
    }

    /// A pause's reason, in words.
    fn pause_reason(&self, live: &Live) -> &'static str {
        self.ctx().t(match live.pause_reason.as_deref() {
            Some(super::ADMIN_PAUSE_REASON) => "devices.paused_by_admin",
            Some("volume_key") => "devices.paused_by_volume_key",
            Some("risk_control") => "devices.paused_by_risk_control",
            _ => "devices.paused_other",
        })
    }

    /// How long ago `ms` was, in words ("12 秒前").
    fn ago(&self, ms: &i64) -> String {
        let secs = ((now_ms() - ms) / 1_000).max(0);
        let ctx = self.ctx();
        match secs {
            0..=4 => ctx.t("time.just_now").to_owned(),
            5..=59 => ctx.tf("time.seconds_ago", secs),
            60..=3_599 => ctx.tf("time.minutes_ago", secs / 60),
            3_600..=86_399 => ctx.tf("time.hours_ago", secs / 3_600),
            _ => ctx.tf("time.days_ago", secs / 86_400),
        }
    }
}

#[derive(Template)]
#[template(path = "devices/list.html")]
struct ListTemplate {
    ctx: Ctx,
    listing: Listing,
    page: ListPage,
    /// The agent versions in the fleet, for the filter.
    versions: Vec<String>,
}

impl Shows for ListTemplate {
    fn ctx(&self) -> &Ctx {
        &self.ctx
    }
}

impl ListTemplate {
    /// The header's link that sorts by `key` (again: the other way).
    fn sort_href(&self, key: &str) -> String {
        let key = SortKey::ALL
            .iter()
            .find(|(_, name)| *name == key)
            .map_or(SortKey::Account, |(key, _)| *key);
        let descending = self.listing.sort == key && !self.listing.descending;
        self.listing.href(key, descending, 1)
    }

    /// `aria-sort` of the column sorted by `key`.
    fn aria_sort(&self, key: &str) -> &'static str {
        match (self.listing.sort.name() == key, self.listing.descending) {
            (false, _) => "none",
            (true, false) => "ascending",
            (true, true) => "descending",
        }
    }

    /// Rows `from`-`to` of `matched`, for the pager's words.
    fn range(&self) -> String {
        let from = self.listing.limit * (self.listing.page - 1) + 1;
        let to = from + self.page.rows.len() - 1;
        let text = self.ctx.tf("devices.range", format!("{from}-{to}"));
        text.replacen("{}", &self.page.matched.to_string(), 1)
    }

    fn previous(&self) -> Option<String> {
        (self.listing.page > 1).then(|| {
            self.listing.href(
                self.listing.sort,
                self.listing.descending,
                self.listing.page - 1,
            )
        })
    }

    fn next(&self) -> Option<String> {
        (self.listing.page * self.listing.limit < self.page.matched).then(|| {
            self.listing.href(
                self.listing.sort,
                self.listing.descending,
                self.listing.page + 1,
            )
        })
    }

    fn batch_kinds(&self) -> &'static [(BatchKind, &'static str, &'static str)] {
        &BatchKind::ALL
    }

    /// The filter's value of `field` ("" when not set), for the form.
    fn chosen(&self, field: &str) -> String {
        let filter = &self.listing.filter;
        let bit = |value: Option<bool>| value.map_or(String::new(), |v| u8::from(v).to_string());
        match field {
            "online" => bit(filter.online),
            "paused" => bit(filter.paused),
            "account" => filter.account.clone().unwrap_or_default(),
            _ => filter.version.clone().unwrap_or_default(),
        }
    }
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let listing = Listing::new(&query).map_err(|error| ctx.fail(&error))?;
    let stored = store::listed(&state.db)
        .await
        .map_err(|error| ctx.fail(&error.into()))?;
    let live = super::live(&state)
        .await
        .map_err(|error| ctx.fail(&error))?;
    let versions = versions(&stored);
    let page = listing::page(stored, live, &listing);
    Ok(html(
        StatusCode::OK,
        &ListTemplate {
            ctx,
            listing,
            page,
            versions,
        },
    ))
}

/// The agent versions in the fleet, for the filter's choices.
fn versions(stored: &[ListedDevice]) -> Vec<String> {
    let mut versions: Vec<String> = stored
        .iter()
        .map(|d| d.device.info.agent_version.clone())
        .filter(|v| !v.is_empty())
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

/// The confirmation of a batch: what it does, to how many phones, and the
/// action's own choices.
#[derive(Template)]
#[template(path = "devices/confirm.html")]
struct Confirm {
    ctx: Ctx,
    kind: BatchKind,
    /// The phones, as resolved now (posted back as ticked ids, or as the
    /// filter again).
    scope: Scope,
    count: usize,
}

impl Confirm {
    fn kind_groups(&self) -> &'static [(&'static str, &'static str, &'static [TaskKind])] {
        &KIND_GROUPS
    }

    fn switches(&self) -> &'static [(&'static str, &'static str)] {
        &SWITCHES
    }

    fn auto_resume_choices(&self) -> [u32; 5] {
        AutoResume::ALLOWED
    }

    /// The hidden fields that name the same phones again.
    fn scope_fields(&self) -> Vec<(&'static str, String)> {
        match &self.scope {
            Scope::Selected(ids) => ids.iter().map(|id| ("device_ids", id.clone())).collect(),
            Scope::Filter(query) => vec![
                ("scope", "filter".to_owned()),
                ("online", query.online.clone()),
                ("paused", query.paused.clone()),
                ("account", query.account.clone()),
                ("version", query.version.clone()),
            ],
        }
    }
}

/// What a batch came to, phone by phone.
#[derive(Template)]
#[template(path = "devices/results.html")]
struct Results {
    ctx: Ctx,
    kind: BatchKind,
    results: Vec<(PhoneResult, String)>,
}

impl Results {
    fn count(&self, outcome: &str) -> usize {
        self.results
            .iter()
            .filter(|(result, _)| outcome_name(result.outcome) == outcome)
            .count()
    }

    fn outcome_name(&self, outcome: &Outcome) -> &'static str {
        outcome_name(*outcome)
    }

    fn outcome_label(&self, outcome: &Outcome) -> &'static str {
        self.ctx.t(match outcome {
            Outcome::Done => "batch.done",
            Outcome::Offline => "batch.offline",
            Outcome::Unchanged => "batch.unchanged",
            Outcome::Refused => "batch.refused",
        })
    }

    /// A result's detail in words: why, or what was cleared.
    fn detail(&self, result: &PhoneResult) -> String {
        let reason = match result.reason.as_deref() {
            Some("already_paused") => Some("batch.already_paused"),
            Some("already_running") => Some("batch.already_running"),
            Some("same_settings") => Some("batch.same_settings"),
            Some("no_tasks") => Some("batch.no_tasks"),
            Some("offline_not_asked") => Some("batch.offline_not_asked"),
            _ => None,
        };
        match (reason, result.cancelled, result.outcome) {
            (Some(key), _, _) => self.ctx.t(key).to_owned(),
            (None, Some((cancelled, cancelling)), _) => self
                .ctx
                .tf("batch.cleared", cancelled)
                .replacen("{}", &cancelling.to_string(), 1),
            (None, None, Outcome::Offline) => self.ctx.t("batch.offline_detail").to_owned(),
            (None, None, _) => result.reason.clone().unwrap_or_default(),
        }
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Done => "done",
        Outcome::Offline => "offline",
        Outcome::Unchanged => "unchanged",
        Outcome::Refused => "refused",
    }
}

/// A batch: the confirmation first, then (confirmed) the results. A plain
/// post gets the same panels as whole pages.
async fn batch_post(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ctx: Ctx,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let form = BatchForm::parse(pairs).map_err(|error| ctx.fail(&error))?;
    let phones = batch::phones(&state, &form.scope)
        .await
        .map_err(|error| ctx.fail(&error))?;
    if !form.confirmed {
        let panel = Confirm {
            ctx: ctx.clone(),
            kind: form.kind,
            count: phones.ids.len(),
            scope: form.scope.clone(),
        };
        return Ok(panel_or_page(&headers, ctx, panel));
    }
    let results = batch::execute(&state, &form, phones.ids, user.employee.id)
        .await
        .map_err(|error| ctx.fail(&error))?;
    let results = results
        .into_iter()
        .map(|result| {
            let name = phones
                .listed
                .get(&result.device_id)
                .map(|d| format!("{} · {}", d.account_name, d.device.info.serial))
                .unwrap_or_default();
            (result, name)
        })
        .collect();
    let panel = Results {
        ctx: ctx.clone(),
        kind: form.kind,
        results,
    };
    Ok(panel_or_page(&headers, ctx, panel))
}

/// A panel alone for htmx, or inside the layout for a plain post.
fn panel_or_page(headers: &HeaderMap, ctx: Ctx, panel: impl Template) -> Response {
    if is_htmx(headers) {
        return html(StatusCode::OK, &panel);
    }
    match panel.render() {
        Ok(body) => html(StatusCode::OK, &PanelPage { ctx, body }),
        Err(error) => {
            tracing::error!(%error, "a console template failed to render");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                &PanelPage {
                    ctx,
                    body: String::new(),
                },
            )
        }
    }
}

/// A batch panel as a whole page (a post without script).
#[derive(Template)]
#[template(path = "devices/panel_page.html")]
struct PanelPage {
    ctx: Ctx,
    body: String,
}
