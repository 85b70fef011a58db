//! The agent settings object (应用设置) and its partial update.

use serde::{Deserialize, Serialize};

/// After how many minutes a paused queue resumes by itself: never (0), 1, 3, 5 or 10.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct AutoResume(u32);

impl AutoResume {
    /// The minutes the product offers; 0 means never.
    pub const ALLOWED: [u32; 5] = [0, 1, 3, 5, 10];
    /// Never resume by itself.
    pub const NEVER: AutoResume = AutoResume(0);

    /// The delay in minutes, 0 for never.
    pub fn minutes(self) -> u32 {
        self.0
    }

    /// The delay in milliseconds, `None` for never.
    pub fn delay_ms(self) -> Option<i64> {
        (self.0 > 0).then(|| i64::from(self.0) * 60_000)
    }
}

impl TryFrom<u32> for AutoResume {
    type Error = String;

    fn try_from(minutes: u32) -> Result<Self, Self::Error> {
        if Self::ALLOWED.contains(&minutes) {
            Ok(AutoResume(minutes))
        } else {
            Err(format!(
                "auto_resume_after_min must be one of 0, 1, 3, 5, 10, not {minutes}"
            ))
        }
    }
}

impl From<AutoResume> for u32 {
    fn from(value: AutoResume) -> u32 {
        value.0
    }
}

/// The whole settings object of one device agent. A missing key takes its
/// default, so older servers and newer agents understand each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentSettings {
    /// A paused queue resumes by itself after this many minutes (0: never).
    pub auto_resume_after_min: AutoResume,
    /// Start the agent when the phone or host boots.
    pub open_on_boot: bool,
    /// The queue runs as soon as the agent starts.
    pub start_queue_on_open: bool,
    /// Show a 10-second countdown before each task.
    pub countdown_popup: bool,
    /// A double press of volume-down pauses or resumes the queue.
    pub volume_key_toggle: bool,
    /// Do-not-disturb on while a task runs, restored after.
    pub dnd_while_running: bool,
    /// Take beta releases.
    pub beta_updates: bool,
    /// Hang up incoming voice and video calls.
    pub auto_hang_up: bool,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            auto_resume_after_min: AutoResume::NEVER,
            open_on_boot: true,
            start_queue_on_open: true,
            countdown_popup: false,
            volume_key_toggle: false,
            dnd_while_running: true,
            beta_updates: false,
            auto_hang_up: false,
        }
    }
}

/// Any subset of the settings keys, as `PUT /api/v1/devices/settings` takes them.
/// Unknown keys are refused, so a typo does not pass silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsPatch {
    /// See [`AgentSettings::auto_resume_after_min`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_resume_after_min: Option<AutoResume>,
    /// See [`AgentSettings::open_on_boot`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_on_boot: Option<bool>,
    /// See [`AgentSettings::start_queue_on_open`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_queue_on_open: Option<bool>,
    /// See [`AgentSettings::countdown_popup`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub countdown_popup: Option<bool>,
    /// See [`AgentSettings::volume_key_toggle`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_key_toggle: Option<bool>,
    /// See [`AgentSettings::dnd_while_running`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnd_while_running: Option<bool>,
    /// See [`AgentSettings::beta_updates`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta_updates: Option<bool>,
    /// See [`AgentSettings::auto_hang_up`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_hang_up: Option<bool>,
}

impl SettingsPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == SettingsPatch::default()
    }

    /// The settings with this patch merged in.
    pub fn apply(&self, mut settings: AgentSettings) -> AgentSettings {
        macro_rules! merge {
            ($($field:ident),*) => {
                $(if let Some(value) = self.$field { settings.$field = value; })*
            };
        }
        merge!(
            auto_resume_after_min,
            open_on_boot,
            start_queue_on_open,
            countdown_popup,
            volume_key_toggle,
            dnd_while_running,
            beta_updates,
            auto_hang_up
        );
        settings
    }
}
