//! What Android does around the app: the calls that the shell's commands and
//! [`crate::LocalPhone`] share, so that a command over ADB and the same call in
//! process change the phone alike. Inputs (logged, then dispatched), gestures,
//! starting WeCom, typing through ADBKeyBoard, the media scanner, listing and
//! removing files, notifications, do-not-disturb, and the screen as a dump or a
//! picture.

use super::{Fault, Input, Notification, Phone, ADB_KEYBOARD_IME};

impl Phone {
    /// Receives one input as Android's input system hands it to the app: it is
    /// logged in the action log, then the app (or the system, for HOME and
    /// ENDCALL) reacts to it.
    pub fn input(&mut self, input: Input) {
        self.log_input(input.clone());
        match input {
            Input::Tap { x, y } => self.tap(x, y),
            Input::LongPress { x, y } => self.long_press(x, y),
            Input::Key(code) => match code {
                3 => self.home(),
                4 => self.back(),
                6 => self.end_call(),
                66 => self.enter(),
                67 => self.delete_char(),
                _ => {}
            },
            Input::Text(text) => {
                self.type_text(&text);
            }
            Input::Launch => self.launch(),
            Input::ForceStop => self.force_stop(),
            Input::Swipe { from, to } => self.swipe(from, to),
        }
    }

    /// A finger moved from one point to another over `duration_ms`, as `input
    /// swipe` makes it: held on one spot (less than 20 pixels) for 500 ms or more
    /// it is a long press, moved 20 pixels or more a swipe, and anything else
    /// is too short to do anything.
    pub fn gesture(&mut self, from: (i32, i32), to: (i32, i32), duration_ms: u64) {
        let moved = (to.0 - from.0).abs() + (to.1 - from.1).abs();
        if moved < 20 && duration_ms >= 500 {
            self.input(Input::LongPress {
                x: from.0,
                y: from.1,
            });
        } else if moved >= 20 {
            self.input(Input::Swipe { from, to });
        }
    }

    /// Whether ADBKeyBoard is installed and the input method in use, so that its
    /// broadcasts type.
    pub fn keyboard_active(&self) -> bool {
        self.ime_installed && self.default_ime == ADB_KEYBOARD_IME
    }

    /// Types `text` as ADBKeyBoard's broadcast does (into the focused field);
    /// whether the keyboard took it (see [`Phone::keyboard_active`]).
    pub fn keyboard_type(&mut self, text: &str) -> bool {
        if !self.keyboard_active() {
            return false;
        }
        self.input(Input::Text(text.to_owned()));
        true
    }

    /// Starts WeCom, or brings it to the front, as `am start` and `monkey` do
    /// (an [`Input::Launch`] in the action log); false, with nothing logged, when
    /// it is not installed.
    pub fn start_wecom(&mut self) -> bool {
        if self.wecom_version.is_none() {
            return false;
        }
        self.input(Input::Launch);
        true
    }

    /// What the media scanner does with `path` (`am broadcast -a
    /// android.intent.action.MEDIA_SCANNER_SCAN_FILE -d file://PATH`): a file in
    /// storage joins the media store (the album shows its pictures and videos),
    /// and a path with no file leaves it.
    pub fn scan_media(&mut self, path: &str) {
        let key = Phone::norm_path(path);
        if self.file(&key).is_none() {
            self.media.retain(|m| *m != key);
        } else if !self.media.contains(&key) {
            self.media.push(key);
        }
    }

    /// Deletes a file (`rm`); whether there was one. The media store forgets it.
    pub fn remove_file(&mut self, path: &str) -> bool {
        let key = Phone::norm_path(path);
        self.media.retain(|m| *m != key);
        self.files.remove(&key).is_some()
    }

    /// The names in a directory, sorted, as `ls DIR` lists them; `None` when
    /// there is no such directory.
    pub fn list_dir(&self, path: &str) -> Option<Vec<String>> {
        if !self.is_dir(path) {
            return None;
        }
        let dir = Phone::norm_path(path);
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        let mut names: Vec<String> = self
            .files
            .keys()
            .chain(self.dirs.iter())
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(str::to_owned)
            .collect();
        names.sort_unstable();
        Some(names)
    }

    /// Sets do-not-disturb as `cmd notification set_dnd MODE` does (`on` or
    /// `priority`, `off` or `all`, `none`, `alarms`); false for another mode.
    pub fn set_dnd(&mut self, mode: &str) -> bool {
        self.zen_mode = match mode {
            "on" | "priority" => 1,
            "off" | "all" => 0,
            "none" => 2,
            "alarms" => 3,
            _ => return false,
        };
        true
    }

    /// Posts a notification (`cmd notification post TAG TEXT`).
    pub fn notify(&mut self, tag: &str, text: &str) {
        tracing::info!(tag, text, "notification posted");
        self.notifications.push(Notification {
            tag: tag.to_owned(),
            text: text.to_owned(),
        });
    }

    /// The screen as `uiautomator dump` writes it; `None` when a
    /// [`Fault::DumpNotIdle`] makes this dump fail.
    pub fn dump(&mut self) -> Option<String> {
        if self
            .take_fault(|f| matches!(f, Fault::DumpNotIdle { .. }))
            .is_some()
        {
            return None;
        }
        Some(crate::ui::hierarchy_xml(&self.tree()))
    }

    /// The screen as `screencap -p` draws it, a PNG.
    pub fn screencap(&self) -> Result<Vec<u8>, image::ImageError> {
        crate::render::png(&self.tree())
    }
}
