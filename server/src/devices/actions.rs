//! The device admin actions (pause, resume, settings) and what each came to
//! on every device it named: the one logic behind the API's
//! `/api/v1/devices/pause|resume|settings` and the console's batch buttons.
//! Rules: unknown ids refuse the whole action (nothing changes); a device
//! already so is `unchanged`; an online one is `done`; an offline one is
//! `offline` (stored; its agent gets it when it connects again).

use youmi_controller::{DeviceStatus, DeviceTarget};
use youmi_protocol::api::{Affected, DeviceOutcome, Outcome};
use youmi_protocol::SettingsPatch;

use crate::http::error::ApiError;
use crate::http::select::all_found;
use crate::AppState;

use super::ADMIN_PAUSE_REASON;

/// One admin action on devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// 关闭任务队列: pause the queues.
    Pause,
    /// 开启任务队列: resume them.
    Resume,
    /// 应用设置: merge these keys into the agent settings and push them.
    Settings(SettingsPatch),
}

impl Action {
    /// 应用设置 with `patch`, which must change at least one key (else 400
    /// `empty_patch`).
    pub fn settings(patch: SettingsPatch) -> Result<Action, ApiError> {
        if patch.is_empty() {
            return Err(ApiError::bad_request(
                "empty_patch",
                Some("settings"),
                "settings must change at least one key",
            ));
        }
        Ok(Action::Settings(patch))
    }
}

/// `unchanged` reasons: the device was so already.
pub mod reasons {
    /// Pause of a paused queue.
    pub const ALREADY_PAUSED: &str = "already_paused";
    /// Resume of a running queue.
    pub const ALREADY_RUNNING: &str = "already_running";
    /// Settings that were so already.
    pub const SAME_SETTINGS: &str = "same_settings";
}

/// Runs `action` on `target` and answers what it came to on each device.
pub async fn run(
    state: &AppState,
    target: DeviceTarget,
    action: Action,
) -> Result<Affected, ApiError> {
    let before = super::live(state).await?;
    let mut ids = match &target {
        DeviceTarget::All => before.keys().cloned().collect(),
        DeviceTarget::Ids(ids) => {
            all_found(
                "device_not_found",
                "device_ids",
                "device",
                ids.clone(),
                |id| before.contains_key(id),
            )?;
            ids.clone()
        }
    };
    ids.sort_unstable();
    ids.dedup();
    let affected = match &action {
        Action::Pause => {
            state
                .controller
                .pause(target, ADMIN_PAUSE_REASON.to_owned())
                .await?
        }
        Action::Resume => state.controller.resume(target).await?,
        Action::Settings(patch) => state.controller.update_settings(target, *patch).await?,
    };
    let devices = ids
        .into_iter()
        .filter_map(|id| before.get(&id).map(|status| outcome(&action, status)))
        .collect();
    Ok(Affected { affected, devices })
}

/// What `action` came to on a device that was `status` before it.
pub fn outcome(action: &Action, status: &DeviceStatus) -> DeviceOutcome {
    let unchanged = match action {
        Action::Pause => status.paused.then_some(reasons::ALREADY_PAUSED),
        Action::Resume => (!status.paused).then_some(reasons::ALREADY_RUNNING),
        Action::Settings(patch) => {
            (patch.apply(status.settings) == status.settings).then_some(reasons::SAME_SETTINGS)
        }
    };
    let (outcome, reason) = match unchanged {
        Some(reason) => (Outcome::Unchanged, Some(reason.to_owned())),
        None if status.online => (Outcome::Done, None),
        None => (Outcome::Offline, None),
    };
    DeviceOutcome {
        device_id: status.device_id.clone(),
        outcome,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use youmi_protocol::AutoResume;

    use super::*;

    fn status(online: bool, paused: bool) -> DeviceStatus {
        super::super::tests::status("dev_a", online, paused)
    }

    #[test]
    fn outcomes_follow_the_state_before() {
        let of = |action: &Action, status: &DeviceStatus| {
            let outcome = outcome(action, status);
            (outcome.outcome, outcome.reason)
        };
        assert_eq!(
            of(&Action::Pause, &status(true, false)),
            (Outcome::Done, None)
        );
        assert_eq!(
            of(&Action::Pause, &status(false, false)),
            (Outcome::Offline, None)
        );
        assert_eq!(
            of(&Action::Pause, &status(true, true)),
            (Outcome::Unchanged, Some("already_paused".into()))
        );
        assert_eq!(
            of(&Action::Resume, &status(true, false)),
            (Outcome::Unchanged, Some("already_running".into()))
        );
        assert_eq!(
            of(&Action::Resume, &status(true, true)),
            (Outcome::Done, None)
        );
        let same = SettingsPatch {
            open_on_boot: Some(true),
            ..SettingsPatch::default()
        };
        assert_eq!(
            of(&Action::Settings(same), &status(true, false)),
            (Outcome::Unchanged, Some("same_settings".into()))
        );
        let new = SettingsPatch {
            auto_resume_after_min: Some(AutoResume::try_from(5).unwrap()),
            ..SettingsPatch::default()
        };
        assert_eq!(
            of(&Action::Settings(new), &status(false, false)),
            (Outcome::Offline, None)
        );
    }
}
