//! What the phone holds: the screens on its stack and the overlay, chats and their
//! messages, friend requests, the files in storage, calls, scripted faults, and the
//! record of inputs and of what was sent.

use std::collections::BTreeMap;
use std::io::Write as _;

use super::{
    now_secs, DialogFault, Fault, Input, InputEvent, Notification, Phone, SentEvent,
    ADB_KEYBOARD_IME, STOCK_IME,
};

use crate::ui::Tab;
use crate::ui::TagPurpose;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Screen {
    Main(Tab),
    Chat {
        with: String,
        draft: String,
        /// The more-functions panel (图片, 文件, ...) is open below the input bar.
        panel: bool,
    },
    ContactSearch {
        query: String,
    },
    Profile {
        name: String,
    },
    AddFriend {
        query: String,
        result: Option<Option<String>>,
        requested: bool,
    },
    /// 发送添加邀请: the greeting, and the new customer's 备注 and 标签.
    Greeting {
        query: String,
        name: String,
        greeting: String,
        remark: String,
        tags: Vec<String>,
        /// Typing goes to the 备注 field rather than the greeting.
        remark_focus: bool,
    },
    FriendRequests,
    /// 通过验证: accepting `name`'s request, with the 备注 to give them.
    Verify {
        name: String,
        remark: String,
    },
    MomentsHome,
    Composer {
        text: String,
        media: Vec<String>,
        /// 可见的客户: empty for 全部客户, else the tags a customer needs.
        tags: Vec<String>,
    },
    /// 可见的客户: everyone, or the customers with the picked tags.
    Visibility {
        by_tags: bool,
        tags: Vec<String>,
    },
    /// 选择标签: the enterprise's tags, for a friend request or a post's visibility.
    TagPicker {
        selected: Vec<String>,
        purpose: TagPurpose,
    },
    /// The album. `chat` names the contact the picked pictures go to; `None` is the
    /// Moments composer's picker.
    Picker {
        selected: Vec<String>,
        chat: Option<String>,
    },
    /// 选择文件: where a file for `chat` comes from.
    FileSource {
        chat: String,
    },
    /// 手机存储: the files in the phone's storage, newest first.
    Storage {
        chat: String,
        selected: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Overlay {
    Risk {
        title: String,
        message: String,
    },
    Dialog(DialogFault),
    Update {
        /// Only "立即更新", and BACK does not close it.
        forced: bool,
    },
    Permission,
    ChatMenu(String),
    ConfirmDelete(String),
}

#[derive(Debug, Clone)]
pub(super) struct Chat {
    pub(super) with: String,
    /// Oldest first; `true` marks the operator's own messages.
    pub(super) messages: Vec<(bool, Bubble)>,
}

/// One message in a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Bubble {
    Text(String),
    /// A picture, by device path.
    Image(String),
    /// A file, by device path.
    File(String),
}

impl Bubble {
    /// What the chat list shows as the last message, as WeCom abbreviates media.
    pub(super) fn preview(&self) -> String {
        match self {
            Bubble::Text(text) => text.clone(),
            Bubble::Image(_) => "[图片]".to_owned(),
            Bubble::File(path) => format!("[文件] {}", file_name(path)),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct FriendRequest {
    pub(super) name: String,
    pub(super) greeting: String,
    pub(super) accepted: bool,
}

/// A file in the simulated storage.
#[derive(Debug, Clone)]
pub(crate) struct SimFile {
    pub data: Vec<u8>,
    pub mode: u32,
    pub mtime: u32,
    /// Write order: the file picker lists the newest first, and `mtime` has only
    /// whole seconds.
    pub seq: u64,
}

impl Phone {
    pub fn new(config: &crate::SimConfig) -> Self {
        let dirs = [
            "/",
            "/sdcard",
            "/sdcard/DCIM",
            "/sdcard/DCIM/Camera",
            "/sdcard/Pictures",
            "/sdcard/Download",
            "/data",
            "/data/local",
            "/data/local/tmp",
            "/storage",
            "/storage/emulated",
            "/storage/emulated/0",
        ];
        Self {
            model: "YoumiSim".to_owned(),
            wecom_version: Some(config.wecom_version.clone()),
            ime_installed: config.ime_installed,
            labels: config.labels,
            default_ime: if config.ime_installed {
                ADB_KEYBOARD_IME.to_owned()
            } else {
                STOCK_IME.to_owned()
            },
            zen_mode: 0,
            battery_level: 85,
            incoming_call: None,
            call_answered: false,
            running: false,
            foreground: false,
            stack: vec![Screen::Main(Tab::Messages)],
            overlay: None,
            focused: false,
            chats: (1..=config.filler_chats)
                .map(|n| Chat {
                    with: format!("客户{n:03}"),
                    messages: vec![(false, Bubble::Text("好的".to_owned()))],
                })
                .chain([
                    Chat {
                        with: "张三".to_owned(),
                        messages: vec![(
                            false,
                            Bubble::Text("你好，请问产品还有货吗？".to_owned()),
                        )],
                    },
                    Chat {
                        with: "李四".to_owned(),
                        messages: vec![(false, Bubble::Text("收到，谢谢".to_owned()))],
                    },
                ])
                .collect(),
            chat_scroll: 0,
            contacts: ["张三", "李四", "王五", "赵六"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            requests: vec![
                FriendRequest {
                    name: "陈七".to_owned(),
                    greeting: "我是陈七，想了解一下课程".to_owned(),
                    accepted: false,
                },
                FriendRequest {
                    name: "周八".to_owned(),
                    greeting: "你好".to_owned(),
                    accepted: false,
                },
            ],
            media: Vec::new(),
            files: BTreeMap::new(),
            next_seq: 1,
            dirs: dirs.into_iter().map(str::to_owned).collect(),
            faults: config.faults.clone(),
            sent: Vec::new(),
            inputs: Vec::new(),
            notifications: Vec::new(),
            typed_hooks: Vec::new(),
            record: config.record.clone(),
            operator_name: "小优".to_owned(),
            tags: config.tags.clone(),
        }
    }

    /// Normalises `/storage/emulated/0/...` and `/sdcard/...` to one key, as the real
    /// phone's FUSE mount makes them the same files.
    pub fn norm_path(path: &str) -> String {
        let p = path.trim_end_matches('/');
        let p = if p.is_empty() { "/" } else { p };
        if let Some(rest) = p.strip_prefix("/storage/emulated/0") {
            format!("/sdcard{rest}")
        } else if let Some(rest) = p.strip_prefix("/storage/self/primary") {
            format!("/sdcard{rest}")
        } else {
            p.to_owned()
        }
    }

    pub fn is_dir(&self, path: &str) -> bool {
        let p = Self::norm_path(path);
        self.dirs.contains(&p)
    }

    pub fn write_file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> Result<(), String> {
        let p = Self::norm_path(path);
        let parent = p.rsplit_once('/').map(|(a, _)| a).unwrap_or("");
        let parent = if parent.is_empty() { "/" } else { parent };
        if !self.is_dir(parent) {
            // `adb push` creates missing parents (fixed_push_mkdir), so do the same.
            let mut acc = String::new();
            for part in parent.split('/').filter(|s| !s.is_empty()) {
                acc.push('/');
                acc.push_str(part);
                if !self.dirs.contains(&acc) {
                    self.dirs.push(acc.clone());
                }
            }
        }
        if self.is_dir(&p) {
            return Err(format!("{path}: Is a directory"));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.files.insert(
            p,
            SimFile {
                data,
                mode: 0o100000 | (mode & 0o7777),
                mtime: now_secs(),
                seq,
            },
        );
        Ok(())
    }

    pub fn file(&self, path: &str) -> Option<&SimFile> {
        self.files.get(&Self::norm_path(path))
    }

    pub fn sent(&self) -> Vec<SentEvent> {
        self.sent.clone()
    }

    pub(super) fn record(&mut self, event: SentEvent) {
        tracing::info!(?event, "sent");
        if let Some(path) = &self.record {
            let line = serde_json::to_string(&event).unwrap_or_default();
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
            if let Err(e) = written {
                tracing::warn!(error = %e, path = %path.display(), "cannot append to the record file");
            }
        }
        self.sent.push(event);
    }

    /// Every input so far, oldest first.
    pub fn inputs(&self) -> Vec<InputEvent> {
        self.inputs.clone()
    }

    /// Logs an input, with the screen it came to and what it hit; a call
    /// scripted to ring, or a hook to run, when this text is typed does so now.
    pub(super) fn log_input(&mut self, input: Input) {
        let screen = self.screen_name();
        let hit = match input {
            Input::Tap { x, y } => self.label_at(x, y, false),
            Input::LongPress { x, y } => self.label_at(x, y, true),
            _ => None,
        };
        let typed = match &input {
            Input::Text(text) => Some(text.clone()),
            _ => None,
        };
        self.inputs.push(InputEvent { input, screen, hit });
        if let Some(text) = typed {
            let rings = |f: &Fault| matches!(f, Fault::RingWhenTyped { containing, .. } if text.contains(containing.as_str()));
            if let Some(Fault::RingWhenTyped { number, .. }) = self.take_fault(rings) {
                tracing::info!(%number, %text, "a call rings (scripted when this text was typed)");
                self.ring(&number);
            }
            if let Some(i) = self
                .typed_hooks
                .iter()
                .position(|hook| text.contains(hook.containing.as_str()))
            {
                (self.typed_hooks.remove(i).run)();
            }
        }
    }

    /// Runs `run` right after the next text typed that contains `containing`.
    pub fn when_typed(&mut self, containing: &str, run: Box<dyn FnOnce() + Send>) {
        self.typed_hooks.push(TypedHook {
            containing: containing.to_owned(),
            run,
        });
    }

    /// Every notification posted so far, oldest first.
    pub fn notifications(&self) -> Vec<Notification> {
        self.notifications.clone()
    }

    /// A call from `number` starts ringing.
    pub fn ring(&mut self, number: &str) {
        self.incoming_call = Some(number.to_owned());
        self.call_answered = false;
    }

    /// The call ends (hung up on either side).
    pub fn end_call(&mut self) {
        self.incoming_call = None;
        self.call_answered = false;
    }

    /// `mCallState`: 0 idle, 1 ringing, 2 off-hook.
    pub fn call_state(&self) -> u8 {
        match (&self.incoming_call, self.call_answered) {
            (None, _) => 0,
            (Some(_), false) => 1,
            (Some(_), true) => 2,
        }
    }

    /// Takes one use of a counted fault matching `pick`, removing it when used up.
    pub fn take_fault(&mut self, pick: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let i = self.faults.iter().position(pick)?;
        let fault = self.faults[i].clone();
        let remove = match &mut self.faults[i] {
            Fault::DumpNotIdle { times } | Fault::Hang { times, .. } => {
                *times = times.saturating_sub(1);
                *times == 0
            }
            _ => true,
        };
        if remove {
            self.faults.remove(i);
        }
        Some(fault)
    }
    /// Pictures and videos the media scan registered, newest first, as the album shows
    /// them: other files are in the media store too, but not in the album.
    pub(super) fn album(&self) -> Vec<&String> {
        self.media
            .iter()
            .rev()
            .filter(|path| is_album_media(path))
            .collect()
    }

    /// The files in the phone's shared storage, newest first, as 手机存储 lists them;
    /// hidden files are left out.
    pub(super) fn storage_files(&self) -> Vec<(&String, &SimFile)> {
        let mut files: Vec<(&String, &SimFile)> = self
            .files
            .iter()
            .filter(|(path, _)| path.starts_with("/sdcard/") && !file_name(path).starts_with('.'))
            .collect();
        files.sort_by_key(|(_, file)| std::cmp::Reverse(file.seq));
        files
    }
}

/// Something to run when a text is typed ([`Phone::when_typed`]).
pub(super) struct TypedHook {
    /// What the typed text contains.
    containing: String,
    /// What runs, once.
    run: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for TypedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedHook")
            .field("containing", &self.containing)
            .finish_non_exhaustive()
    }
}

/// Whether the album shows the file: pictures and videos, by extension, as the media
/// store files them.
fn is_album_media(path: &str) -> bool {
    let ext = file_name(path)
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    matches!(
        ext.as_str(),
        "jpg" | "jpeg" | "png" | "gif" | "webp" | "bmp" | "heic" | "mp4" | "3gp" | "mov"
    )
}

pub(super) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
