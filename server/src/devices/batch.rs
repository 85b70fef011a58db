//! 批量操作 of the devices page: which phones a batch touches (the rows
//! ticked, or every device the filter matches), the form of each action,
//! and running it through the same logic as the API's routes, with what it
//! came to on each phone. Nothing runs before the admin confirmed the
//! count; bad input (no phone, unknown ids, bad values) changes nothing.
//!
//! **Adding a batch action** (上传日志, 更新到最新版本, ...): a variant of
//! [`BatchKind`] (its name in the form and its label key, in
//! [`BatchKind::ALL`]), its form fields if any in [`BatchForm::parse`] and
//! `templates/devices/batch_options.html`, and its arm in [`execute`]
//! answering one [`PhoneResult`] per phone. The toolbar, the confirmation
//! and the results panel follow by themselves.

use std::collections::HashMap;

use youmi_controller::DeviceTarget;
use youmi_protocol::api::{
    CancelTasks, DeviceOutcome, DeviceSelection, LogRequestOutcome, Outcome,
};
use youmi_protocol::{AutoResume, SettingsPatch, TaskKind};

use crate::http::error::ApiError;
use crate::http::select::all_found;
use crate::{device_logs, tasks, AppState};

use super::actions::{self, Action};
use super::listing::{self, ListQuery, Listing};
use super::live;
use super::store::{self, ListedDevice};

/// The batch actions, in the toolbar's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// 开启任务队列.
    Resume,
    /// 关闭任务队列.
    Pause,
    /// 清除任务, of the kinds chosen.
    Cancel,
    /// 应用设置.
    Settings,
    /// 上传日志: each online phone uploads its logs (`device_logs`).
    UploadLogs,
}

impl BatchKind {
    /// Every action: its name in the form, its label's key, and whether it
    /// is the kind of action a button shows in red.
    pub const ALL: [(BatchKind, &'static str, &'static str); 5] = [
        (BatchKind::Resume, "resume", "batch.resume"),
        (BatchKind::Pause, "pause", "batch.pause"),
        (BatchKind::Cancel, "cancel", "batch.cancel"),
        (BatchKind::Settings, "settings", "batch.settings"),
        (BatchKind::UploadLogs, "upload_logs", "batch.upload_logs"),
    ];

    /// The action named `name` in a form.
    pub fn named(name: &str) -> Option<BatchKind> {
        BatchKind::ALL
            .iter()
            .find(|(_, known, _)| *known == name)
            .map(|(kind, _, _)| *kind)
    }

    /// Its name in the form.
    pub fn name(self) -> &'static str {
        BatchKind::ALL
            .iter()
            .find(|(kind, _, _)| *kind == self)
            .map_or("", |(_, name, _)| name)
    }

    /// Its label's catalogue key.
    pub fn label(self) -> &'static str {
        BatchKind::ALL
            .iter()
            .find(|(kind, _, _)| *kind == self)
            .map_or("", |(_, _, label)| label)
    }
}

/// The groups of task kinds 清除任务 offers (seed 7.4), with their name in
/// the form and their label's key.
pub const KIND_GROUPS: [(&str, &str, &[TaskKind]); 5] = [
    ("chat", "batch.kind_chat", &[TaskKind::SendMessage]),
    ("mass_send", "batch.kind_mass_send", &[TaskKind::MassSend]),
    ("moments", "batch.kind_moments", &[TaskKind::MomentsPost]),
    (
        "friends",
        "batch.kind_friends",
        &[TaskKind::FriendAdd, TaskKind::AcceptFriendRequest],
    ),
    (
        "marketing",
        "batch.kind_marketing",
        &[TaskKind::SmartMarketing],
    ),
];

/// The on/off keys of 应用设置 (seed 7.6), with their label's key.
pub const SWITCHES: [(&str, &str); 7] = [
    ("open_on_boot", "settings.open_on_boot"),
    ("start_queue_on_open", "settings.start_queue_on_open"),
    ("countdown_popup", "settings.countdown_popup"),
    ("volume_key_toggle", "settings.volume_key_toggle"),
    ("dnd_while_running", "settings.dnd_while_running"),
    ("auto_hang_up", "settings.auto_hang_up"),
    ("beta_updates", "settings.beta_updates"),
];

/// Which phones a batch touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The rows ticked.
    Selected(Vec<String>),
    /// Every device the filter matches.
    Filter(ListQuery),
}

/// A batch form as posted.
#[derive(Debug, Clone)]
pub struct BatchForm {
    /// The action.
    pub kind: BatchKind,
    /// Its phones.
    pub scope: Scope,
    /// Whether the admin confirmed it (else the confirmation is shown).
    pub confirmed: bool,
    /// 清除任务: the groups of [`KIND_GROUPS`] ticked.
    pub kinds: Vec<String>,
    /// 应用设置: the keys set, as typed (empty: leave as is).
    pub settings: Vec<(String, String)>,
}

impl BatchForm {
    /// The form of `pairs` (a URL-encoded body, keys repeated for lists).
    pub fn parse(pairs: Vec<(String, String)>) -> Result<BatchForm, ApiError> {
        let mut action = None;
        let mut scope = String::new();
        let mut ids = Vec::new();
        let mut filter = ListQuery::default();
        let mut confirmed = false;
        let mut kinds = Vec::new();
        let mut settings = Vec::new();
        for (key, value) in pairs {
            match key.as_str() {
                "action" => action = Some(value),
                "scope" => scope = value,
                "device_ids" => ids.push(value),
                "confirmed" => confirmed = value == "1",
                "kinds" => kinds.push(value),
                "online" => filter.online = value,
                "paused" => filter.paused = value,
                "account" => filter.account = value,
                "version" => filter.version = value,
                "auto_resume_after_min" => settings.push((key, value)),
                other if SWITCHES.iter().any(|(name, _)| *name == other) => {
                    settings.push((key, value))
                }
                _ => {}
            }
        }
        let kind = action
            .as_deref()
            .and_then(BatchKind::named)
            .ok_or_else(|| {
                ApiError::unprocessable("invalid_action", Some("action"), "unknown batch action")
            })?;
        let scope = match scope.as_str() {
            "filter" => Scope::Filter(filter),
            _ => Scope::Selected(ids),
        };
        Ok(BatchForm {
            kind,
            scope,
            confirmed,
            kinds,
            settings,
        })
    }

    /// The task kinds of the groups ticked; none is 400 `empty_filter`.
    pub fn task_kinds(&self) -> Result<Vec<TaskKind>, ApiError> {
        let mut kinds = Vec::new();
        for name in &self.kinds {
            let (_, _, group) = KIND_GROUPS
                .iter()
                .find(|(known, _, _)| known == name)
                .ok_or_else(|| {
                    ApiError::unprocessable("invalid_kind", Some("kinds"), "unknown task kind")
                })?;
            kinds.extend_from_slice(group);
        }
        if kinds.is_empty() {
            return Err(ApiError::bad_request(
                "empty_filter",
                Some("kinds"),
                "choose at least one kind of task to clear",
            ));
        }
        Ok(kinds)
    }

    /// The settings patch typed; a value that is none of the choices is 422
    /// `invalid_setting`.
    pub fn patch(&self) -> Result<SettingsPatch, ApiError> {
        let mut patch = SettingsPatch::default();
        for (key, value) in &self.settings {
            if value.is_empty() {
                continue;
            }
            let invalid = || {
                ApiError::unprocessable(
                    "invalid_setting",
                    Some("settings"),
                    format!("{key} cannot be {value}"),
                )
            };
            if key == "auto_resume_after_min" {
                let minutes = value.parse::<u32>().map_err(|_| invalid())?;
                patch.auto_resume_after_min =
                    Some(AutoResume::try_from(minutes).map_err(|_| invalid())?);
                continue;
            }
            let on = match value.as_str() {
                "1" => true,
                "0" => false,
                _ => return Err(invalid()),
            };
            let slot = match key.as_str() {
                "open_on_boot" => &mut patch.open_on_boot,
                "start_queue_on_open" => &mut patch.start_queue_on_open,
                "countdown_popup" => &mut patch.countdown_popup,
                "volume_key_toggle" => &mut patch.volume_key_toggle,
                "dnd_while_running" => &mut patch.dnd_while_running,
                "auto_hang_up" => &mut patch.auto_hang_up,
                "beta_updates" => &mut patch.beta_updates,
                _ => return Err(invalid()),
            };
            *slot = Some(on);
        }
        Ok(patch)
    }
}

/// The phones of a batch, by id, with what the page shows of them.
#[derive(Debug, Clone)]
pub struct Phones {
    /// Their ids, in the list's order.
    pub ids: Vec<String>,
    /// Every bound device, by id (names for the results).
    pub listed: HashMap<String, ListedDevice>,
}

/// The phones `scope` names: the ids ticked, all bound (else 404
/// `device_not_found`, nothing done), or the filter's matches; none is 400
/// `empty_selection`.
pub async fn phones(state: &AppState, scope: &Scope) -> Result<Phones, ApiError> {
    let stored = store::listed(&state.db).await?;
    let ids: Vec<String> = match scope {
        Scope::Selected(ids) => {
            let known: std::collections::HashSet<&str> =
                stored.iter().map(|d| d.device.device_id.as_str()).collect();
            all_found(
                "device_not_found",
                "device_ids",
                "device",
                ids.clone(),
                |id| known.contains(id.as_str()),
            )?;
            let mut seen = std::collections::HashSet::new();
            ids.iter().filter(|id| seen.insert(*id)).cloned().collect()
        }
        Scope::Filter(query) => {
            let listing = Listing::new(query)?;
            let live = live(state).await?;
            listing::matching(stored.clone(), live, &listing.filter)
                .into_iter()
                .map(|row| row.live.device_id)
                .collect()
        }
    };
    if ids.is_empty() {
        return Err(ApiError::bad_request(
            "empty_selection",
            Some("device_ids"),
            "no device selected",
        ));
    }
    let listed = stored
        .into_iter()
        .map(|d| (d.device.device_id.clone(), d))
        .collect();
    Ok(Phones { ids, listed })
}

/// What a batch came to on one phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneResult {
    /// The device.
    pub device_id: String,
    /// How it went.
    pub outcome: Outcome,
    /// The reason's code (`unchanged`, `refused`), if any.
    pub reason: Option<String>,
    /// 清除任务: waiting tasks cancelled and running ones told to stop.
    pub cancelled: Option<(u64, u64)>,
}

impl From<DeviceOutcome> for PhoneResult {
    fn from(outcome: DeviceOutcome) -> Self {
        PhoneResult {
            device_id: outcome.device_id,
            outcome: outcome.outcome,
            reason: outcome.reason,
            cancelled: None,
        }
    }
}

/// Runs the confirmed `form` on `ids` through the API's own logic.
pub async fn execute(
    state: &AppState,
    form: &BatchForm,
    ids: Vec<String>,
    employee_id: i64,
) -> Result<Vec<PhoneResult>, ApiError> {
    let simple = |action: Action| async {
        let answer = actions::run(state, DeviceTarget::Ids(ids.clone()), action).await?;
        Ok::<_, ApiError>(answer.devices.into_iter().map(PhoneResult::from).collect())
    };
    match form.kind {
        BatchKind::UploadLogs => {
            let selection = DeviceSelection {
                device_ids: ids,
                all: false,
            };
            let answer = device_logs::request_uploads(state, selection, employee_id).await?;
            Ok(answer
                .devices
                .into_iter()
                .map(|device| {
                    // An offline phone is not asked later: nothing waits for it.
                    let (outcome, reason) = match device.result {
                        LogRequestOutcome::Requested => (Outcome::Done, None),
                        LogRequestOutcome::Offline => {
                            (Outcome::Refused, Some("offline_not_asked".to_owned()))
                        }
                    };
                    PhoneResult {
                        device_id: device.device_id,
                        outcome,
                        reason,
                        cancelled: None,
                    }
                })
                .collect())
        }
        BatchKind::Pause => simple(Action::Pause).await,
        BatchKind::Resume => simple(Action::Resume).await,
        BatchKind::Settings => simple(Action::settings(form.patch()?)?).await,
        BatchKind::Cancel => {
            let kinds = form.task_kinds()?;
            let online = live(state).await?;
            let answer = tasks::cancel_tasks(
                state,
                CancelTasks {
                    device_ids: Some(ids),
                    kinds: Some(kinds),
                    ..CancelTasks::default()
                },
            )
            .await?;
            Ok(answer
                .devices
                .into_iter()
                .map(|device| {
                    let touched = device.cancelled + device.cancelling > 0;
                    let is_online = online.get(&device.device_id).is_some_and(|s| s.online);
                    let (outcome, reason) = match (touched, is_online) {
                        (false, _) => (Outcome::Unchanged, Some("no_tasks".to_owned())),
                        (true, true) => (Outcome::Done, None),
                        (true, false) => (Outcome::Offline, None),
                    };
                    PhoneResult {
                        device_id: device.device_id,
                        outcome,
                        reason,
                        cancelled: Some((device.cancelled, device.cancelling)),
                    }
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        text.split('&')
            .map(|part| {
                let (key, value) = part.split_once('=').unwrap();
                (key.to_owned(), value.to_owned())
            })
            .collect()
    }

    #[test]
    fn forms_parse_and_bad_values_are_refused() {
        let form = BatchForm::parse(pairs(
            "action=cancel&device_ids=a&device_ids=b&kinds=friends&kinds=chat&confirmed=1",
        ))
        .unwrap();
        assert_eq!(form.kind, BatchKind::Cancel);
        assert_eq!(form.scope, Scope::Selected(vec!["a".into(), "b".into()]));
        assert!(form.confirmed);
        assert_eq!(
            form.task_kinds().unwrap(),
            [
                TaskKind::FriendAdd,
                TaskKind::AcceptFriendRequest,
                TaskKind::SendMessage
            ]
        );
        let form = BatchForm::parse(pairs("action=cancel&scope=filter&online=1")).unwrap();
        assert!(matches!(&form.scope, Scope::Filter(query) if query.online == "1"));
        assert_eq!(form.task_kinds().unwrap_err().code(), "empty_filter");
        assert_eq!(
            BatchForm::parse(pairs("action=explode"))
                .unwrap_err()
                .code(),
            "invalid_action"
        );

        let form = BatchForm::parse(pairs(
            "action=settings&auto_resume_after_min=5&countdown_popup=1&open_on_boot=",
        ))
        .unwrap();
        let patch = form.patch().unwrap();
        assert_eq!(
            patch.auto_resume_after_min.map(AutoResume::minutes),
            Some(5)
        );
        assert_eq!(patch.countdown_popup, Some(true));
        assert_eq!(patch.open_on_boot, None);
        for bad in ["auto_resume_after_min=7", "countdown_popup=maybe"] {
            let form = BatchForm::parse(pairs(&format!("action=settings&{bad}"))).unwrap();
            assert_eq!(form.patch().unwrap_err().code(), "invalid_setting", "{bad}");
        }
    }
}
