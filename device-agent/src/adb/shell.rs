//! The text side of talking to a phone: how commands are wrapped so that their
//! exit code comes back, how arguments are quoted for the phone's `sh`, and the
//! parsers for what `dumpsys`, `settings`, `getprop` and `getevent` print.
//! Everything here is a pure function over strings, tested without a phone.

use crate::phone::{CallState, Foreground, Key, PhoneError};

/// Printed after every command with its exit status. adb_client's `shell_command`
/// returns no exit code (raw `shell:` has none, and it drops the shell-protocol
/// exit packet at the end of the stream), so the status travels in the output.
pub(crate) const EXIT_MARKER: &str = "__YOUMI_EXIT__:";

/// The ADBKeyBoard input method, which types Unicode text sent by broadcast.
pub(crate) const ADB_KEYBOARD_IME: &str = "com.android.adbkeyboard/.AdbIME";

/// The most of stderr (or stdout) kept in a [`PhoneError::CommandFailed`].
const MAX_ERROR_TEXT: usize = 500;

/// `command` followed by the exit marker and `$?`.
pub(crate) fn wrap(command: &str) -> String {
    format!("{command}; echo {EXIT_MARKER}$?")
}

/// What a wrapped command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Output {
    /// Standard output without the exit marker. Over a direct TCP connection it
    /// holds stderr too: raw `shell:` has one stream for both.
    pub(crate) stdout: Vec<u8>,
    /// Standard error, when the connection keeps it apart (the adb server's shell
    /// protocol).
    pub(crate) stderr: Vec<u8>,
    /// The exit status.
    pub(crate) code: i32,
}

impl Output {
    /// Splits the exit marker off raw output; `None` if the marker is missing or
    /// incomplete, which means the output was cut off.
    pub(crate) fn parse(mut stdout: Vec<u8>, stderr: Vec<u8>) -> Option<Output> {
        let marker = EXIT_MARKER.as_bytes();
        let at = stdout
            .windows(marker.len())
            .rposition(|window| window == marker)?;
        let status = std::str::from_utf8(&stdout[at + marker.len()..]).ok()?;
        let status = status.trim_end_matches(['\r', '\n']);
        if status.is_empty() || !status.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let code = status.parse().ok()?;
        stdout.truncate(at);
        Some(Output {
            stdout,
            stderr,
            code,
        })
    }

    /// Standard output as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard output, then standard error, as text: for parsers that do not care
    /// which stream a line came on.
    pub(crate) fn all_text(&self) -> String {
        let mut text = self.text();
        text.push_str(&String::from_utf8_lossy(&self.stderr));
        text
    }

    /// The error for a command that exited with a non-zero status.
    pub(crate) fn failure(&self, command: &str) -> PhoneError {
        let stderr = String::from_utf8_lossy(&self.stderr);
        let text = if stderr.trim().is_empty() {
            self.text()
        } else {
            stderr.into_owned()
        };
        PhoneError::CommandFailed {
            command: command.to_owned(),
            code: self.code,
            stderr: text.trim().chars().take(MAX_ERROR_TEXT).collect(),
        }
    }
}

/// Quotes one argument for the phone's `sh` (mksh): single quotes, with each
/// single quote written as `'\''`.
pub(crate) fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Whether `name` can be an Android package name. Checked before a name goes into
/// a command line, so that no caller can smuggle shell syntax in.
pub(crate) fn is_package_name(name: &str) -> bool {
    let mut parts = 0;
    for part in name.split('.') {
        let mut chars = part.chars();
        match chars.next() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
            _ => return false,
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return false;
        }
        parts += 1;
    }
    parts >= 1
}

/// A file name that is safe on the phone's storage and in a `file://` URI:
/// letters, digits, `.`, `-` and `_`; anything else becomes `_`. `None` for a
/// name with nothing usable in it.
pub(crate) fn media_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches('.');
    if trimmed.is_empty() || trimmed.chars().all(|c| c == '_' || c == '.') {
        None
    } else {
        Some(trimmed.to_owned())
    }
}

/// `PACKAGE/ACTIVITY` from the component token of a window or activity record.
fn component(token: &str) -> Option<Foreground> {
    let (package, activity) = token.split_once('/')?;
    if package.is_empty() || activity.is_empty() || !is_package_name(package) {
        return None;
    }
    Some(Foreground {
        package: package.to_owned(),
        activity: activity.to_owned(),
    })
}

/// The text between the first `{` after `from` and its closing `}`.
fn braces(line: &str, from: usize) -> Option<&str> {
    let open = from + line[from..].find('{')?;
    let close = open + line[open..].find('}')?;
    Some(&line[open + 1..close])
}

/// The focused app from `dumpsys window windows`: the `mCurrentFocus=Window{HASH
/// u0 PACKAGE/ACTIVITY}` line. `None` when nothing has focus or the focus is a
/// window without an activity (the status bar, a popup).
pub(crate) fn current_focus(dump: &str) -> Option<Foreground> {
    dump.lines().find_map(|line| {
        let at = line.find("mCurrentFocus=")?;
        braces(line, at)?
            .split_whitespace()
            .last()
            .and_then(component)
    })
}

/// The resumed activity from `dumpsys activity activities`: `mResumedActivity:`
/// (Android 10 and 11) or `topResumedActivity=` / `ResumedActivity:` (12 and
/// later), each an `ActivityRecord{HASH u0 PACKAGE/ACTIVITY tN}`.
pub(crate) fn resumed_activity(dump: &str) -> Option<Foreground> {
    dump.lines().find_map(|line| {
        let at = line.find("ResumedActivity")?;
        let record = line[at..].find("ActivityRecord{")? + at;
        braces(line, record)?
            .split_whitespace()
            .find(|token| token.contains('/'))
            .and_then(component)
    })
}

/// `versionName` of `package` from `dumpsys package PACKAGE`: the first one after
/// its `Package [PACKAGE]` line. `None` if the package is not in the dump.
pub(crate) fn version_name(dump: &str, package: &str) -> Option<String> {
    let header = format!("Package [{package}]");
    let mut lines = dump.lines().skip_while(|line| !line.contains(&header));
    lines.next()?;
    lines.find_map(|line| {
        let value = line.trim().strip_prefix("versionName=")?;
        let value = value.trim();
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// What `dumpsys battery` says that the heartbeat reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Battery {
    /// 0-100.
    pub(crate) level: Option<u8>,
    /// Whether a charger is plugged in (or, without those lines, the status says
    /// charging).
    pub(crate) charging: Option<bool>,
}

/// Parses `dumpsys battery`: `level:` (scaled by `scale:` when it is not 100),
/// the `AC powered:` / `USB powered:` / `Wireless powered:` / `Dock powered:`
/// lines, and `status:` (2 is charging) when no powered line is present.
pub(crate) fn battery(dump: &str) -> Battery {
    let mut level = None;
    let mut scale = None;
    let mut powered: Option<bool> = None;
    let mut status = None;
    for line in dump.lines() {
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "level" => level = value.parse::<u32>().ok(),
            "scale" => scale = value.parse::<u32>().ok(),
            "status" => status = value.parse::<u32>().ok(),
            key if key.ends_with(" powered") => {
                let on = value == "true";
                powered = Some(powered.unwrap_or(false) || on);
            }
            _ => {}
        }
    }
    let level = level.map(|level| {
        let scaled = match scale {
            Some(scale) if scale > 0 && scale != 100 => level * 100 / scale,
            _ => level,
        };
        u8::try_from(scaled.min(100)).unwrap_or(100)
    });
    let charging = powered.or(status.map(|status| status == 2));
    Battery { level, charging }
}

/// Whether the screen is on, from `dumpsys power`: `mWakefulness=` (`Awake` or
/// `Dreaming` is on; `Asleep` or `Dozing` is off), else `Display Power: state=`.
pub(crate) fn screen_on(dump: &str) -> Option<bool> {
    let wakefulness = dump.lines().find_map(|line| {
        let value = line.trim().strip_prefix("mWakefulness=")?;
        match value.trim() {
            "Awake" | "Dreaming" => Some(true),
            "Asleep" | "Dozing" => Some(false),
            _ => None,
        }
    });
    wakefulness.or_else(|| {
        dump.lines().find_map(|line| {
            let value = line.trim().strip_prefix("Display Power: state=")?;
            Some(value.trim() == "ON")
        })
    })
}

/// The call state from `dumpsys telephony.registry`. A phone with two SIMs has a
/// block per SIM; a ringing one wins over one in a call, which wins over idle.
/// `None` if no `mCallState=` line is present.
pub(crate) fn call_state(dump: &str) -> Option<CallState> {
    let mut states: Vec<(u8, Option<String>)> = Vec::new();
    for line in dump.lines() {
        let line = line.trim();
        if let Some(value) = line.strip_prefix("mCallState=") {
            states.push((value.trim().parse().unwrap_or(0), None));
        } else if let Some(value) = line.strip_prefix("mCallIncomingNumber=") {
            if let Some(last) = states.last_mut() {
                let number = value.trim();
                last.1 = (!number.is_empty()).then(|| number.to_owned());
            }
        }
    }
    if states.is_empty() {
        return None;
    }
    if let Some((_, number)) = states.iter().find(|(state, _)| *state == 1) {
        return Some(CallState::Ringing(number.clone()));
    }
    if states.iter().any(|(state, _)| *state == 2) {
        return Some(CallState::OffHook);
    }
    Some(CallState::Idle)
}

/// Whether do-not-disturb is on, from `settings get global zen_mode` (0 is off;
/// `null` on a phone that never set it).
pub(crate) fn zen_mode_on(text: &str) -> Option<bool> {
    match text.trim() {
        "null" | "" => Some(false),
        value => value.parse::<u8>().ok().map(|mode| mode != 0),
    }
}

/// Whether ADBKeyBoard can type, from `settings get secure default_input_method;
/// ime list -s`: it must be the default input method and an enabled one.
/// Whether `ime list -a -s` output names ADBKeyBoard.
pub(crate) fn keyboard_installed(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .any(|line| line == ADB_KEYBOARD_IME)
}

pub(crate) fn keyboard_ready(text: &str) -> bool {
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let default = lines.next();
    default == Some(ADB_KEYBOARD_IME) && lines.any(|line| line == ADB_KEYBOARD_IME)
}

/// The Android key code of a key press in one line of `getevent -l` output, e.g.
/// `[  12.34] /dev/input/event0: EV_KEY  KEY_VOLUMEDOWN  DOWN`. Only presses
/// (`DOWN`, or value 1 in numeric form) of keys with an Android code count.
pub(crate) fn key_press(line: &str) -> Option<u16> {
    let mut tokens = line.split_whitespace().skip_while(|t| *t != "EV_KEY");
    tokens.next()?;
    let name = tokens.next()?;
    let value = tokens.next()?;
    if value != "DOWN" && value != "00000001" {
        return None;
    }
    let code = match name {
        "KEY_HOME" | "KEY_HOMEPAGE" => 3,
        "KEY_BACK" => 4,
        "KEY_VOLUMEUP" | "0073" => 24,
        "KEY_VOLUMEDOWN" | "0072" => 25,
        "KEY_POWER" | "0074" => 26,
        "KEY_CAMERA" => 27,
        "KEY_ENTER" => 66,
        "KEY_MENU" => 82,
        "KEY_MUTE" => 164,
        _ => return None,
    };
    Some(code)
}

/// The [`Key`] for an Android key code, named where the enum has a name.
pub(crate) fn key_for_code(code: u16) -> Key {
    match code {
        4 => Key::Back,
        3 => Key::Home,
        66 => Key::Enter,
        67 => Key::Delete,
        224 => Key::WakeUp,
        6 => Key::EndCall,
        other => Key::Code(other),
    }
}

/// Splits text into pieces of at most `max` characters, on character boundaries,
/// so that no broadcast's command line grows past what adbd accepts.
pub(crate) fn chunks(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (at, _) in text.char_indices() {
        if count == max {
            out.push(&text[start..at]);
            start = at;
            count = 0;
        }
        count += 1;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_marker_round_trip() {
        let out = Output::parse(b"hello\n__YOUMI_EXIT__:0\n".to_vec(), Vec::new()).unwrap();
        assert_eq!((out.text().as_str(), out.code), ("hello\n", 0));
        // Output without a final newline puts the marker on its line.
        let out = Output::parse(b"abc__YOUMI_EXIT__:127\r\n".to_vec(), b"e".to_vec()).unwrap();
        assert_eq!((out.stdout.as_slice(), out.code), (&b"abc"[..], 127));
        // The last marker is the real one.
        let out =
            Output::parse(b"__YOUMI_EXIT__:9\n__YOUMI_EXIT__:1\n".to_vec(), Vec::new()).unwrap();
        assert_eq!((out.text().as_str(), out.code), ("__YOUMI_EXIT__:9\n", 1));
    }

    #[test]
    fn a_missing_or_cut_marker_is_truncation() {
        assert!(Output::parse(b"hello\n".to_vec(), Vec::new()).is_none());
        assert!(Output::parse(b"hello\n__YOUMI_EXIT__:".to_vec(), Vec::new()).is_none());
        assert!(Output::parse(b"hello\n__YOUMI_EX".to_vec(), Vec::new()).is_none());
        assert!(Output::parse(b"__YOUMI_EXIT__:1x\n".to_vec(), Vec::new()).is_none());
    }

    #[test]
    fn failures_carry_stderr_or_else_stdout() {
        let out = Output {
            stdout: b"out\n".to_vec(),
            stderr: b"  bad thing\n".to_vec(),
            code: 2,
        };
        assert_eq!(
            out.failure("x"),
            PhoneError::CommandFailed {
                command: "x".into(),
                code: 2,
                stderr: "bad thing".into()
            }
        );
        let out = Output {
            stdout: b"only out\n".to_vec(),
            stderr: Vec::new(),
            code: 1,
        };
        assert!(
            matches!(out.failure("x"), PhoneError::CommandFailed { stderr, .. } if stderr == "only out")
        );
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(wrap("true"), "true; echo __YOUMI_EXIT__:$?");
    }

    #[test]
    fn package_names() {
        assert!(is_package_name("com.tencent.wework"));
        assert!(is_package_name("a_b.c9"));
        assert!(!is_package_name(""));
        assert!(!is_package_name("com..x"));
        assert!(!is_package_name("com.x; reboot"));
        assert!(!is_package_name("9com.x"));
    }

    #[test]
    fn media_names_are_made_safe() {
        assert_eq!(media_name("photo 1.jpg").as_deref(), Some("photo_1.jpg"));
        assert_eq!(media_name("图片.png").as_deref(), Some("__.png"));
        assert_eq!(media_name("..hidden").as_deref(), Some("hidden"));
        assert_eq!(media_name("'; rm").as_deref(), Some("___rm"));
        assert_eq!(media_name("..."), None);
        assert_eq!(media_name("中文"), None);
    }

    #[test]
    fn focus_from_window_dump() {
        let dump = "  Window #0 Window{4a1e9c2 u0 com.tencent.wework/.launch.WwMainActivity}:\n\
                    \n  mCurrentFocus=Window{4a1e9c2 u0 com.tencent.wework/.launch.WwMainActivity}\n\
                    \x20 mFocusedApp=ActivityRecord{7d3b2a1 u0 com.tencent.wework/.launch.WwMainActivity t12}\n";
        assert_eq!(
            current_focus(dump),
            Some(Foreground {
                package: "com.tencent.wework".into(),
                activity: ".launch.WwMainActivity".into()
            })
        );
        assert_eq!(current_focus("  mCurrentFocus=null\n"), None);
        assert_eq!(
            current_focus("  mCurrentFocus=Window{1f2e u0 NotificationShade}\n"),
            None
        );
        assert_eq!(current_focus(""), None);
    }

    #[test]
    fn focus_from_activity_dump() {
        let old =
            "    mResumedActivity: ActivityRecord{7d3b2a1 u0 com.android.settings/.Settings t12}\n";
        let new = "  topResumedActivity=ActivityRecord{91c u0 com.tencent.wework/com.tencent.wework.launch.WwMainActivity t31}\n";
        assert_eq!(
            resumed_activity(old).unwrap().package,
            "com.android.settings"
        );
        assert_eq!(
            resumed_activity(new).unwrap().activity,
            "com.tencent.wework.launch.WwMainActivity"
        );
        assert_eq!(resumed_activity("  mResumedActivity: null\n"), None);
    }

    #[test]
    fn version_of_the_right_package() {
        let dump = "Packages:\n  Package [com.other] (1):\n    versionName=9.9\n\
                    \x20 Package [com.tencent.wework] (5f1c2a0):\n    versionCode=27590\n    versionName=4.1.30\n";
        assert_eq!(
            version_name(dump, "com.tencent.wework").as_deref(),
            Some("4.1.30")
        );
        assert_eq!(version_name(dump, "com.missing"), None);
        assert_eq!(version_name("", "com.tencent.wework"), None);
    }

    #[test]
    fn battery_level_and_charging() {
        let dump = "Current Battery Service state:\n  AC powered: false\n  USB powered: true\n  Wireless powered: false\n  status: 2\n  level: 85\n  scale: 100\n";
        assert_eq!(
            battery(dump),
            Battery {
                level: Some(85),
                charging: Some(true)
            }
        );
        let unplugged = "  AC powered: false\n  USB powered: false\n  status: 3\n  level: 40\n";
        assert_eq!(battery(unplugged).charging, Some(false));
        let scaled = "  status: 2\n  level: 25\n  scale: 50\n";
        assert_eq!(
            battery(scaled),
            Battery {
                level: Some(50),
                charging: Some(true)
            }
        );
        assert_eq!(
            battery("nothing here"),
            Battery {
                level: None,
                charging: None
            }
        );
    }

    #[test]
    fn screen_state() {
        assert_eq!(screen_on("  mWakefulness=Awake\n"), Some(true));
        assert_eq!(screen_on("  mWakefulness=Asleep\n"), Some(false));
        assert_eq!(screen_on("  mWakefulness=Dozing\n"), Some(false));
        assert_eq!(screen_on("Display Power: state=OFF\n"), Some(false));
        assert_eq!(screen_on("Display Power: state=ON\n"), Some(true));
        assert_eq!(screen_on(""), None);
    }

    #[test]
    fn call_states() {
        let idle = "last known state:\n  Phone Id=0\n  mCallState=0\n  mCallIncomingNumber=\n";
        assert_eq!(call_state(idle), Some(CallState::Idle));
        let ringing = "  mCallState=1\n  mCallIncomingNumber=13800138000\n";
        assert_eq!(
            call_state(ringing),
            Some(CallState::Ringing(Some("13800138000".into())))
        );
        let hidden = "  mCallState=1\n  mCallIncomingNumber=\n";
        assert_eq!(call_state(hidden), Some(CallState::Ringing(None)));
        let dual =
            "  Phone Id=0\n  mCallState=2\n  mCallIncomingNumber=\n  Phone Id=1\n  mCallState=0\n";
        assert_eq!(call_state(dual), Some(CallState::OffHook));
        assert_eq!(call_state("Can't find service"), None);
    }

    #[test]
    fn zen_mode_values() {
        assert_eq!(zen_mode_on("0\n"), Some(false));
        assert_eq!(zen_mode_on("1\n"), Some(true));
        assert_eq!(zen_mode_on("3"), Some(true));
        assert_eq!(zen_mode_on("null\n"), Some(false));
        assert_eq!(zen_mode_on("what"), None);
    }

    #[test]
    fn keyboard_must_be_default_and_enabled() {
        let ready = "com.android.adbkeyboard/.AdbIME\ncom.google.android.inputmethod.latin/.LatinIME\ncom.android.adbkeyboard/.AdbIME\n";
        assert!(keyboard_ready(ready));
        let not_default =
            "com.google.android.inputmethod.latin/.LatinIME\ncom.android.adbkeyboard/.AdbIME\n";
        assert!(!keyboard_ready(not_default));
        let not_listed =
            "com.android.adbkeyboard/.AdbIME\ncom.google.android.inputmethod.latin/.LatinIME\n";
        assert!(!keyboard_ready(not_listed));
        assert!(!keyboard_ready(""));
    }

    #[test]
    fn getevent_lines() {
        let down = "[   12.345678] /dev/input/event0: EV_KEY       KEY_VOLUMEDOWN       DOWN                \n";
        assert_eq!(key_press(down), Some(25));
        assert_eq!(
            key_press("/dev/input/event0: EV_KEY       KEY_POWER            DOWN"),
            Some(26)
        );
        assert_eq!(
            key_press("/dev/input/event0: EV_KEY       KEY_VOLUMEDOWN       UP"),
            None
        );
        assert_eq!(
            key_press("/dev/input/event0: EV_SYN       SYN_REPORT           00000000"),
            None
        );
        assert_eq!(
            key_press("/dev/input/event0: EV_KEY       0073                 00000001"),
            Some(24)
        );
        assert_eq!(
            key_press("/dev/input/event2: EV_KEY       BTN_TOUCH            DOWN"),
            None
        );
        assert_eq!(key_press("add device 1: /dev/input/event0"), None);
    }

    #[test]
    fn key_codes_map_to_named_keys() {
        assert_eq!(key_for_code(4), Key::Back);
        assert_eq!(key_for_code(25), Key::Code(25));
        assert_eq!(key_for_code(6), Key::EndCall);
    }

    #[test]
    fn chunks_split_on_characters() {
        assert_eq!(chunks("", 3), Vec::<&str>::new());
        assert_eq!(chunks("abcdefg", 3), vec!["abc", "def", "g"]);
        assert_eq!(chunks("你好世界", 2), vec!["你好", "世界"]);
        assert_eq!(chunks("ab", 5), vec!["ab"]);
    }
}
