//! [`LocalPhone`]: the simulated phone driven in process, without ADB. Each call is
//! the model call that the matching shell command makes (`input tap`, `uiautomator
//! dump`, `am start`, the ADBKeyBoard broadcast, `adb push`, ...), so a test that
//! drives it meets the same phone as one that goes over TCP; and the record, the
//! faults and the phone's state are read and scripted here for both.

use std::sync::Arc;
use std::time::Duration;

use crate::phone::{self, Input, InputEvent, Notification, SentEvent};
use crate::{Fault, ScreenSnapshot, Shared};

/// Why an in-process call did nothing, as the shell command would have failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    /// A [`Fault::DumpNotIdle`] failed this dump, as "could not get idle state" does.
    #[error("could not get idle state")]
    NotIdle,
    /// WeCom is not installed (see [`LocalPhone::uninstall_wecom`]).
    #[error("com.tencent.wework is not installed")]
    NotInstalled,
    /// ADBKeyBoard is not installed, or not the input method in use: nothing was typed.
    #[error("ADBKeyBoard is not the input method")]
    NoKeyboard,
    /// A do-not-disturb mode `cmd notification set_dnd` does not know.
    #[error("unrecognized dnd mode: {0}")]
    DndMode(String),
    /// A file could not be written (the path is a directory).
    #[error("{path}: {reason}")]
    Storage {
        /// The path on the phone.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The screenshot could not be encoded.
    #[error("screencap: {0}")]
    Screencap(String),
}

/// The simulated phone, driven and inspected in process. Clones share one phone;
/// a [`crate::SimHandle`] is one too, so a phone served over ADB can be looked
/// at (and driven) this way as well. It needs no runtime and does no I/O.
#[derive(Clone)]
pub struct LocalPhone {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for LocalPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPhone")
            .field("serial", &self.shared.serial)
            .finish_non_exhaustive()
    }
}

impl LocalPhone {
    /// The serial number `getprop ro.serialno` reports.
    pub fn serial(&self) -> &str {
        &self.shared.serial
    }

    /// Everything the app sent so far, oldest first.
    pub fn sent(&self) -> Vec<SentEvent> {
        self.shared.phone().sent()
    }

    /// Every input the phone received (taps, keys, text, launches), oldest first,
    /// each with the screen it came to: the action log.
    pub fn inputs(&self) -> Vec<InputEvent> {
        self.shared.phone().inputs()
    }

    /// Every notification posted, oldest first.
    pub fn notifications(&self) -> Vec<Notification> {
        self.shared.phone().notifications()
    }

    /// Arms a fault; see [`Fault`] for when each one fires.
    pub fn set_fault(&self, fault: Fault) {
        tracing::info!(?fault, "fault armed");
        self.shared.phone().faults.push(fault);
    }

    /// Disarms every fault that has not fired yet.
    pub fn clear_faults(&self) {
        self.shared.phone().faults.clear();
    }

    /// Runs `hook` right after the next text typed (over ADB or in process) that
    /// contains `containing` ("" for any text), once: a test's way to act at a
    /// known point of a flow, such as cancelling its task while a name is typed.
    /// It runs while the phone is locked, so it must not call the simulator.
    pub fn when_typed(&self, containing: &str, hook: impl FnOnce() + Send + 'static) {
        self.shared.phone().when_typed(containing, Box::new(hook));
    }

    /// What is on screen now.
    pub fn screen(&self) -> ScreenSnapshot {
        let phone = self.shared.phone();
        let tree = phone.tree();
        let (pkg, act) = phone.focus_component();
        ScreenSnapshot {
            name: phone.screen_name(),
            focus: format!("{pkg}/{act}"),
            xml: crate::ui::hierarchy_xml(&tree),
            tree,
        }
    }

    /// The screen as `uiautomator dump` gives it (a [`Fault::DumpNotIdle`] applies).
    pub fn dump(&self) -> Result<String, LocalError> {
        self.shared.phone().dump().ok_or(LocalError::NotIdle)
    }

    /// A PNG of the screen, as `screencap -p` gives it.
    pub fn screenshot(&self) -> Result<Vec<u8>, LocalError> {
        self.shared
            .phone()
            .screencap()
            .map_err(|e| LocalError::Screencap(e.to_string()))
    }

    /// `input tap X Y`.
    pub fn tap(&self, x: i32, y: i32) {
        self.shared.phone().input(Input::Tap { x, y });
    }

    /// A long press, as `input swipe X Y X Y MILLIS` with the hold (500 ms or more).
    pub fn long_press(&self, x: i32, y: i32, hold: Duration) {
        self.swipe((x, y), (x, y), hold);
    }

    /// `input swipe X1 Y1 X2 Y2 MILLIS`: a long press when it stays on one spot
    /// long enough, a swipe when it moves.
    pub fn swipe(&self, from: (i32, i32), to: (i32, i32), duration: Duration) {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.shared.phone().gesture(from, to, millis);
    }

    /// `input keyevent CODE` (3 HOME, 4 BACK, 6 ENDCALL, 66 ENTER, 67 DEL).
    pub fn key(&self, code: u32) {
        self.shared.phone().input(Input::Key(code));
    }

    /// Types into the focused field as the ADBKeyBoard broadcast does
    /// (`am broadcast -a ADB_INPUT_B64`).
    pub fn type_text(&self, text: &str) -> Result<(), LocalError> {
        if self.shared.phone().keyboard_type(text) {
            Ok(())
        } else {
            Err(LocalError::NoKeyboard)
        }
    }

    /// Starts WeCom, or brings it to the front (`monkey -p com.tencent.wework`).
    pub fn launch_wecom(&self) -> Result<(), LocalError> {
        if self.shared.phone().start_wecom() {
            Ok(())
        } else {
            Err(LocalError::NotInstalled)
        }
    }

    /// `am force-stop com.tencent.wework`.
    pub fn force_stop_wecom(&self) {
        self.shared.phone().input(Input::ForceStop);
    }

    /// The focused window's package and activity, as `mCurrentFocus` names them.
    pub fn foreground(&self) -> (String, String) {
        self.shared.phone().focus_component()
    }

    /// The WeCom `versionName` that `dumpsys package` reports; `None` when it is
    /// not installed.
    pub fn wecom_version(&self) -> Option<String> {
        self.shared.phone().wecom_version.clone()
    }

    /// Changes the WeCom `versionName` that `dumpsys package` reports from now on, as
    /// updating (or downgrading) the app by hand would; installs it if it was not.
    pub fn set_wecom_version(&self, version: &str) {
        self.shared.phone().wecom_version = Some(version.to_owned());
    }

    /// Removes WeCom, as a person uninstalling it would: `dumpsys package` and
    /// `pm` no longer know it, `am start` and `monkey` cannot start it, and the
    /// home screen has no icon for it. It stays in front if it was.
    pub fn uninstall_wecom(&self) {
        self.shared.phone().wecom_version = None;
    }

    /// Writes a file into the phone's storage, as `adb push` does (missing
    /// folders are made).
    pub fn push_file(&self, path: &str, data: Vec<u8>) -> Result<(), LocalError> {
        self.shared
            .phone()
            .write_file(path, data, 0o644)
            .map_err(|reason| LocalError::Storage {
                path: path.to_owned(),
                reason,
            })
    }

    /// The media scanner's broadcast for `path` (`MEDIA_SCANNER_SCAN_FILE`, data
    /// `file://PATH`): a file joins the album, a removed one leaves it.
    pub fn scan_media(&self, path: &str) {
        self.shared.phone().scan_media(path);
    }

    /// `rm -f PATH`; whether there was such a file.
    pub fn remove_file(&self, path: &str) -> bool {
        self.shared.phone().remove_file(path)
    }

    /// The names in a directory, sorted, as `ls DIR` lists them; `None` when
    /// there is no such directory.
    pub fn list_dir(&self, path: &str) -> Option<Vec<String>> {
        self.shared.phone().list_dir(path)
    }

    /// The bytes of a file in the phone's storage, if it exists.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.shared.phone().file(path).map(|f| f.data.clone())
    }

    /// Media files known to the gallery (registered by a media-scan broadcast).
    pub fn gallery(&self) -> Vec<String> {
        self.shared.phone().media.clone()
    }

    /// The do-not-disturb mode as `settings get global zen_mode` reports it (0 off,
    /// 1 priority, 2 none, 3 alarms).
    pub fn zen_mode(&self) -> u8 {
        self.shared.phone().zen_mode
    }

    /// `cmd notification set_dnd MODE` (`on`, `off`, `priority`, `all`, `none`,
    /// `alarms`).
    pub fn set_dnd(&self, mode: &str) -> Result<(), LocalError> {
        if self.shared.phone().set_dnd(mode) {
            Ok(())
        } else {
            Err(LocalError::DndMode(mode.to_owned()))
        }
    }

    /// `cmd notification post TAG TEXT`: shows a notification.
    pub fn notify(&self, tag: &str, text: &str) {
        self.shared.phone().notify(tag, text);
    }

    /// Presses a hardware key (24 volume up, 25 volume down, 26 power): open `getevent`
    /// streams report it. `input keyevent` does not, as on a real phone.
    pub fn press_hardware_key(&self, keycode: u16) {
        let _ = self.shared.keys.send(keycode);
    }

    /// Starts ringing an incoming call from `number` (`dumpsys telephony.registry` shows
    /// `mCallState=1` until `input keyevent 6` hangs up).
    pub fn ring(&self, number: &str) {
        self.shared.phone().ring(number);
    }

    /// Answers the ringing call, as the person at the phone would: `mCallState=2`
    /// (off-hook) until the call ends. Nothing happens without a call.
    pub fn answer_call(&self) {
        let mut phone = self.shared.phone();
        if phone.incoming_call.is_some() {
            phone.call_answered = true;
        }
    }

    /// Ends the call from the other side (the caller gives up, or hangs up after
    /// talking): `mCallState=0` again.
    pub fn end_call(&self) {
        self.shared.phone().end_call();
    }

    /// `mCallState` as `dumpsys telephony.registry` reports it: 0 idle, 1
    /// ringing, 2 off-hook.
    pub fn call_state(&self) -> u8 {
        self.shared.phone().call_state()
    }

    /// The number of the call ringing or under way (`mCallIncomingNumber`).
    pub fn caller(&self) -> Option<String> {
        self.shared.phone().incoming_call.clone()
    }

    /// The battery level `dumpsys battery` reports.
    pub fn battery_level(&self) -> u8 {
        self.shared.phone().battery_level
    }

    /// Sets the battery level `dumpsys battery` reports.
    pub fn set_battery_level(&self, level: u8) {
        self.shared.phone().battery_level = level.min(100);
    }

    /// Switches the input method to the phone's stock keyboard, as a person
    /// who picked another keyboard would; the agent must select ADBKeyBoard again.
    pub fn switch_to_stock_keyboard(&self) {
        self.shared.phone().default_ime = phone::STOCK_IME.to_owned();
    }

    /// The input method in use.
    pub fn input_method(&self) -> String {
        self.shared.phone().default_ime.clone()
    }
}
