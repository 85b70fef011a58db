//! The device API: the list of bound phones with their live state, pause,
//! resume, and pushing agent settings; and the console's RPA助手管理 page
//! ([`pages`]) on the same logic.

pub mod actions;
pub mod batch;
pub mod feed;
pub mod listing;
pub mod pages;
pub mod store;

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::Router;
use youmi_controller::{DeviceStatus, DeviceTarget};
use youmi_protocol::api::{Affected, DeviceList, DeviceSelection, DeviceView, UpdateSettings};

use crate::http::check;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, Json};
use crate::http::select::Selection;
use crate::AppState;

use self::actions::Action;
use self::store::StoredDevice;

/// The pause reason the device list shows for a pause from the API.
pub const ADMIN_PAUSE_REASON: &str = "admin";

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/devices", get(list))
        .route("/api/v1/devices/pause", post(pause))
        .route("/api/v1/devices/resume", post(resume))
        .route("/api/v1/devices/settings", put(settings))
}

/// The devices an action names: some ids, or all, never neither nor both.
pub fn target(device_ids: Vec<String>, all: bool) -> Result<DeviceTarget, ApiError> {
    match Selection::new("device_ids", device_ids, all)? {
        Selection::All => Ok(DeviceTarget::All),
        Selection::Ids(device_ids) => {
            for (index, id) in device_ids.iter().enumerate() {
                check::text(&format!("device_ids[{index}]"), id)?;
            }
            if let Some(empty) = device_ids.iter().position(|id| id.trim().is_empty()) {
                let field = format!("device_ids[{empty}]");
                return Err(ApiError::bad_request(
                    "empty_selection",
                    Some(&field),
                    "device ids must not be empty",
                ));
            }
            Ok(DeviceTarget::Ids(device_ids))
        }
    }
}

/// One device as the list shows it: the stored row, overlaid with what the
/// scheduler knows now (which is fresher for everything it tracks).
pub fn view(stored: StoredDevice, live: Option<DeviceStatus>) -> DeviceView {
    match live {
        Some(live) => DeviceView {
            device_id: stored.device_id,
            operator_account_id: stored.operator_account_id,
            device: stored.info,
            online: live.online,
            queue_paused: live.paused,
            pause_reason: live.pause_reason,
            resume_at_ms: live.resume_at_ms,
            current_task_id: live.current_task_id,
            last_heartbeat_ms: live.last_seen_ms.or(stored.last_seen_ms),
            battery: live.battery,
            call: live.call,
            queued_tasks: live.queued_tasks,
            settings: live.settings,
            bound_at_ms: stored.bound_at_ms,
            wecom_version: live.wecom_version.or(stored.report.wecom_version),
            screen_on: live.screen_on.or(stored.report.screen_on),
            dnd: live.dnd.or(stored.report.dnd),
        },
        None => DeviceView {
            device_id: stored.device_id,
            operator_account_id: stored.operator_account_id,
            device: stored.info,
            online: false,
            queue_paused: stored.queue_paused,
            pause_reason: stored.pause_reason,
            resume_at_ms: stored.resume_at_ms,
            current_task_id: None,
            last_heartbeat_ms: stored.last_seen_ms,
            battery: None,
            call: None,
            queued_tasks: 0,
            settings: stored.settings,
            bound_at_ms: stored.bound_at_ms,
            wecom_version: stored.report.wecom_version,
            screen_on: stored.report.screen_on,
            dnd: stored.report.dnd,
        },
    }
}

/// What the scheduler knows of every device now, by id.
pub async fn live(state: &AppState) -> Result<HashMap<String, DeviceStatus>, ApiError> {
    Ok(state
        .controller
        .devices()
        .await?
        .into_iter()
        .map(|status| (status.device_id.clone(), status))
        .collect())
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<DeviceList>, ApiError> {
    let stored = store::list(&state.db).await?;
    let mut live = live(&state).await?;
    let devices = stored
        .into_iter()
        .map(|device| {
            let status = live.remove(&device.device_id);
            view(device, status)
        })
        .collect();
    Ok(Json(DeviceList::all(devices)))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn pause(
    State(state): State<AppState>,
    user: AuthUser,
    Json(selection): Json<DeviceSelection>,
) -> Result<Json<Affected>, ApiError> {
    let target = target(selection.device_ids, selection.all)?;
    let answer = actions::run(&state, target, Action::Pause).await?;
    tracing::info!(affected = answer.affected, "queues paused");
    Ok(Json(answer))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn resume(
    State(state): State<AppState>,
    user: AuthUser,
    Json(selection): Json<DeviceSelection>,
) -> Result<Json<Affected>, ApiError> {
    let target = target(selection.device_ids, selection.all)?;
    let answer = actions::run(&state, target, Action::Resume).await?;
    tracing::info!(affected = answer.affected, "queues resumed");
    Ok(Json(answer))
}

#[tracing::instrument(skip_all, fields(employee_id = user.employee.id))]
async fn settings(
    State(state): State<AppState>,
    user: AuthUser,
    Json(request): Json<UpdateSettings>,
) -> Result<Json<Affected>, ApiError> {
    let action = Action::settings(request.settings)?;
    let target = target(request.device_ids, request.all)?;
    let answer = actions::run(&state, target, action).await?;
    tracing::info!(affected = answer.affected, "settings pushed");
    Ok(Json(answer))
}

#[cfg(test)]
pub(crate) mod tests {
    use youmi_protocol::AgentSettings;

    use super::*;

    /// A device as the scheduler knows it, with nothing reported: the
    /// fixture of this feature's unit tests.
    pub(crate) fn status(id: &str, online: bool, paused: bool) -> DeviceStatus {
        DeviceStatus {
            device_id: id.to_owned(),
            operator_account_id: 1,
            online,
            paused,
            pause_reason: None,
            resume_at_ms: None,
            current_task_id: None,
            current_task_kind: None,
            last_seen_ms: None,
            battery: None,
            call: None,
            queued_tasks: 0,
            settings: AgentSettings::default(),
            wecom_version: None,
            screen_on: None,
            dnd: None,
        }
    }

    #[test]
    fn selections() {
        assert_eq!(target(vec![], false).unwrap_err().code(), "empty_selection");
        assert_eq!(
            target(vec!["dev_a".into()], true).unwrap_err().code(),
            "ambiguous_selection"
        );
        assert_eq!(target(vec![], true).unwrap(), DeviceTarget::All);
        assert_eq!(
            target(vec!["dev_a".into()], false).unwrap(),
            DeviceTarget::Ids(vec!["dev_a".into()])
        );
        assert_eq!(
            target(vec!["dev_a".into(), " ".into()], false)
                .unwrap_err()
                .field(),
            Some("device_ids[1]")
        );
    }
}
