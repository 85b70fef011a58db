//! Scripted faults: what can go wrong on the phone ([`Fault`]), the popups WeCom and
//! Android show unasked ([`Popup`], [`DialogFault`]), and when each one is due
//! ([`DialogWhen`]).

use super::state::Overlay;

/// A fault scripted into the simulator, before start or at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next `times` `uiautomator dump` calls print "ERROR: could not get idle state."
    /// and exit 0, as a real phone does on an animating screen.
    DumpNotIdle {
        /// How many dumps fail.
        times: u32,
    },
    /// The next `times` shell commands that contain `pattern` never answer (the stream
    /// stays open and silent until the client closes it).
    Hang {
        /// Substring of the command line.
        pattern: String,
        /// How many commands hang.
        times: u32,
    },
    /// The next shell command that contains `pattern` closes the TCP connection after
    /// sending part of its output.
    DropConnection {
        /// Substring of the command line.
        pattern: String,
    },
    /// A risk-control dialog appears on the next screen change.
    RiskControl {
        /// Dialog title, e.g. "操作频繁" or "账号存在异常".
        title: String,
        /// Dialog body.
        message: String,
    },
    /// The "发现新版本" update prompt appears on the next screen change.
    UpdatePrompt,
    /// A system permission dialog (photos and media) appears on the next screen change.
    PermissionDialog,
    /// One of the popups of [`Popup`], shown at a scripted point of a flow rather
    /// than on the next screen change.
    Popup {
        /// Which popup.
        popup: Popup,
        /// When it shows.
        when: DialogWhen,
    },
    /// A dialog with any title, message and buttons (a risk-control warning in other
    /// words, a notice WeCom has not shown before), drawn as WeCom or as Android draws
    /// it, shown at a scripted point of a flow.
    Dialog(DialogFault),
    /// A call from `number` starts ringing right after the next text typed that
    /// contains `containing` ("" for any text), as when someone calls while the
    /// agent types: the ring begins between two of the agent's commands, at a
    /// known point of the flow.
    RingWhenTyped {
        /// The caller's number.
        number: String,
        /// What the typed text contains.
        containing: String,
    },
    /// The app draws no view whose visible text is `text`, as a WeCom build that
    /// renamed or dropped a button would: dumps do not show it and taps do not
    /// reach it, until the fault is cleared.
    MissingText {
        /// The text of the views left out (with their children).
        text: String,
    },
    /// The app takes BACK and does nothing with it, as a screen that handles the
    /// key itself does (a web page with no history), until the fault is cleared.
    /// Popups still close on BACK.
    BackIgnored,
}

/// A popup of WeCom's or Android's own, for [`Fault::Popup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Popup {
    /// WeCom's risk-control warning: one "我知道了" button, and BACK does not close it.
    RiskControl {
        /// Dialog title, e.g. "操作频繁".
        title: String,
        /// Dialog body.
        message: String,
    },
    /// WeCom's "发现新版本" prompt: "以后再说" and "立即更新"; a `forced` one has only
    /// "立即更新", and BACK does not close it.
    UpdatePrompt {
        /// Whether the update cannot be postponed.
        forced: bool,
    },
    /// Android's photos-and-media permission dialog ("允许", "拒绝"), in the
    /// permission controller's window.
    PermissionDialog,
}

/// A scripted dialog: what it says, its buttons, how it is drawn and when it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogFault {
    /// The title; empty for none.
    pub title: String,
    /// The message.
    pub message: String,
    /// The buttons, left to right (确定, 我知道了, OK ...); a tap on any closes the
    /// dialog. Empty: a dialog with no button at all.
    pub buttons: Vec<String>,
    /// How it is drawn.
    pub style: DialogStyle,
    /// When it shows.
    pub when: DialogWhen,
    /// Whether BACK closes it (WeCom's risk warnings are not cancelable; most
    /// notices are).
    pub cancelable: bool,
}

impl DialogFault {
    /// A WeCom-drawn, cancelable dialog that shows on the next screen change.
    pub fn new(title: &str, message: &str, buttons: &[&str]) -> Self {
        Self {
            title: title.to_owned(),
            message: message.to_owned(),
            buttons: buttons.iter().map(|b| (*b).to_owned()).collect(),
            style: DialogStyle::InApp,
            when: DialogWhen::NextChange,
            cancelable: true,
        }
    }
}

/// How a scripted dialog is drawn, and so how `uiautomator dump` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogStyle {
    /// As WeCom draws its own: a panel over the app's screen, in the app's window
    /// (the dump shows the screen and the panel on top).
    InApp,
    /// As Android's `AlertDialog`: a window of its own (`android:id/alertTitle`,
    /// `android:id/message`, `android:id/button1`...), the only window the dump shows.
    Window,
}

/// When a scripted dialog or popup shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogWhen {
    /// On the next screen change (a launch of WeCom is one).
    NextChange,
    /// On the n-th screen change from now (1 is the next).
    Change(u32),
    /// On the first screen change that leaves a screen whose name (see
    /// [`crate::ScreenSnapshot::name`], such as `profile:张三` or `media_picker`)
    /// starts with this on top: when that screen opens, or is returned to.
    Screen(&'static str),
    /// Right after the app sends something (a message, a post, a request...).
    AfterSend,
}

/// A moment at which a popup may be due.
pub(super) enum Moment<'a> {
    /// A screen change left the screen of this name on top.
    Change(&'a str),
    /// The app just sent something.
    Sent,
}

impl Fault {
    /// When the popup this fault shows is due; `None` for faults that are not popups.
    fn when(&self) -> Option<DialogWhen> {
        match self {
            Fault::RiskControl { .. } | Fault::UpdatePrompt | Fault::PermissionDialog => {
                Some(DialogWhen::NextChange)
            }
            Fault::Popup { when, .. } | Fault::Dialog(DialogFault { when, .. }) => Some(*when),
            _ => None,
        }
    }

    /// Whether this fault's popup shows at `moment`.
    pub(super) fn due(&self, moment: &Moment<'_>) -> bool {
        match (self.when(), moment) {
            (Some(DialogWhen::NextChange | DialogWhen::Change(0 | 1)), Moment::Change(_)) => true,
            (Some(DialogWhen::Screen(prefix)), Moment::Change(screen)) => {
                screen.starts_with(prefix)
            }
            (Some(DialogWhen::AfterSend), Moment::Sent) => true,
            _ => false,
        }
    }

    /// One screen change went by without this fault's popup: a count of changes
    /// comes one closer.
    pub(super) fn count_down(&mut self) {
        if let Fault::Popup {
            when: DialogWhen::Change(n),
            ..
        }
        | Fault::Dialog(DialogFault {
            when: DialogWhen::Change(n),
            ..
        }) = self
        {
            *n = n.saturating_sub(1);
        }
    }

    /// What a popup fault puts on screen; `None` for other faults.
    pub(super) fn into_overlay(self) -> Option<Overlay> {
        Some(match self {
            Fault::RiskControl { title, message }
            | Fault::Popup {
                popup: Popup::RiskControl { title, message },
                ..
            } => Overlay::Risk { title, message },
            Fault::UpdatePrompt => Overlay::Update { forced: false },
            Fault::Popup {
                popup: Popup::UpdatePrompt { forced },
                ..
            } => Overlay::Update { forced },
            Fault::PermissionDialog
            | Fault::Popup {
                popup: Popup::PermissionDialog,
                ..
            } => Overlay::Permission,
            Fault::Dialog(dialog) => Overlay::Dialog(dialog),
            _ => return None,
        })
    }
}
