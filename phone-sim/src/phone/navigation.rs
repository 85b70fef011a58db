//! The foreground and navigation: which window has focus, the screen stack, launching
//! and stopping the app, HOME and BACK, scrolling the chat list.

use super::faults::Moment;
use super::state::{Overlay, Screen};
use super::{
    Fault, Phone, CHAT_LIST, CHAT_ROW, LAUNCHER_PACKAGE, PERMISSION_PACKAGE, WECOM_PACKAGE,
};

use crate::ui::{Action, Tab};

impl Phone {
    /// The focused window's package and activity, for `dumpsys window`.
    pub fn focus_component(&self) -> (String, String) {
        if matches!(self.overlay, Some(Overlay::Permission)) {
            return (
                PERMISSION_PACKAGE.to_owned(),
                "com.android.permissioncontroller.permission.ui.GrantPermissionsActivity"
                    .to_owned(),
            );
        }
        if !self.foreground {
            return (
                LAUNCHER_PACKAGE.to_owned(),
                "com.google.android.apps.nexuslauncher.NexusLauncherActivity".to_owned(),
            );
        }
        let activity = match self.top() {
            Screen::Main(_) => "com.tencent.wework.launch.WwMainActivity",
            Screen::Chat { .. } => "com.tencent.wework.msg.controller.MessageListActivity",
            Screen::ContactSearch { .. } => {
                "com.tencent.wework.contact.controller.ContactSearchActivity"
            }
            Screen::Profile { .. } => "com.tencent.wework.contact.controller.ContactDetailActivity",
            Screen::AddFriend { .. } | Screen::Greeting { .. } => {
                "com.tencent.wework.customerservice.controller.AddCustomerActivity"
            }
            Screen::FriendRequests => {
                "com.tencent.wework.customerservice.controller.NewCustomerListActivity"
            }
            Screen::Verify { .. } => {
                "com.tencent.wework.customerservice.controller.VerifyCustomerActivity"
            }
            Screen::MomentsHome | Screen::Composer { .. } | Screen::Visibility { .. } => {
                "com.tencent.wework.moments.controller.CustomerMomentsActivity"
            }
            Screen::TagPicker { .. } => {
                "com.tencent.wework.customerservice.controller.CustomerTagSelectActivity"
            }
            Screen::Picker { .. } => "com.tencent.wework.common.picker.MediaPickerActivity",
            Screen::FileSource { .. } => {
                "com.tencent.wework.filemanager.controller.FileSelectSourceActivity"
            }
            Screen::Storage { .. } => {
                "com.tencent.wework.filemanager.controller.LocalFileSelectActivity"
            }
        };
        (WECOM_PACKAGE.to_owned(), activity.to_owned())
    }

    pub(super) fn top(&self) -> &Screen {
        self.stack.last().unwrap_or(&Screen::Main(Tab::Messages))
    }

    pub(super) fn top_mut(&mut self) -> &mut Screen {
        if self.stack.is_empty() {
            self.stack.push(Screen::Main(Tab::Messages));
        }
        let last = self.stack.len() - 1;
        &mut self.stack[last]
    }

    /// A one-line name of what is showing, for tests and logs.
    pub fn screen_name(&self) -> String {
        let base = if !self.foreground {
            "launcher".to_owned()
        } else {
            match self.top() {
                Screen::Main(Tab::Messages) => "main:messages".to_owned(),
                Screen::Main(Tab::Contacts) => "main:contacts".to_owned(),
                Screen::Main(Tab::Workbench) => "main:workbench".to_owned(),
                Screen::Chat { with, .. } => format!("chat:{with}"),
                Screen::ContactSearch { .. } => "contact_search".to_owned(),
                Screen::Profile { name } => format!("profile:{name}"),
                Screen::AddFriend { .. } => "add_friend".to_owned(),
                Screen::Greeting { name, .. } => format!("friend_greeting:{name}"),
                Screen::FriendRequests => "friend_requests".to_owned(),
                Screen::Verify { name, .. } => format!("friend_verify:{name}"),
                Screen::MomentsHome => "moments".to_owned(),
                Screen::Composer { .. } => "moments_composer".to_owned(),
                Screen::Visibility { .. } => "moments_visibility".to_owned(),
                Screen::TagPicker { .. } => "tag_picker".to_owned(),
                Screen::Picker { chat: None, .. } => "media_picker".to_owned(),
                Screen::Picker {
                    chat: Some(with), ..
                } => format!("chat_album:{with}"),
                Screen::FileSource { .. } => "file_source".to_owned(),
                Screen::Storage { .. } => "phone_storage".to_owned(),
            }
        };
        match &self.overlay {
            None => base,
            Some(Overlay::Risk { .. }) => format!("{base}+risk_control"),
            Some(Overlay::Dialog(_)) => format!("{base}+dialog"),
            Some(Overlay::Update { .. }) => format!("{base}+update_prompt"),
            Some(Overlay::Permission) => format!("{base}+permission_dialog"),
            Some(Overlay::ChatMenu(_)) => format!("{base}+chat_menu"),
            Some(Overlay::ConfirmDelete(_)) => format!("{base}+confirm_delete"),
        }
    }

    /// Called after every screen change: scripted popups appear now, and focus resets.
    pub(super) fn changed(&mut self) {
        self.focused = matches!(
            self.top(),
            Screen::ContactSearch { .. } | Screen::AddFriend { .. }
        ) && self.foreground;
        if self.overlay.is_some() || !self.foreground {
            return;
        }
        let screen = self.screen_name();
        if self.show_popup(&Moment::Change(&screen)) {
            return;
        }
        for fault in &mut self.faults {
            fault.count_down();
        }
    }

    /// Called after the app sent something: a popup scripted for that moment shows.
    pub(super) fn after_send(&mut self) {
        if self.overlay.is_some() || !self.foreground {
            return;
        }
        self.show_popup(&Moment::Sent);
    }

    /// Shows the first popup scripted for `moment`; whether there was one.
    fn show_popup(&mut self, moment: &Moment<'_>) -> bool {
        match self
            .take_fault(|f| f.due(moment))
            .and_then(Fault::into_overlay)
        {
            Some(overlay) => {
                self.overlay = Some(overlay);
                true
            }
            None => false,
        }
    }

    pub(super) fn push(&mut self, screen: Screen) {
        self.stack.push(screen);
        self.changed();
    }

    /// WeCom comes to the front, started if it was not running; nothing happens
    /// when it is not installed.
    pub fn launch(&mut self) {
        if self.wecom_version.is_none() {
            return;
        }
        if !self.running {
            self.stack = vec![Screen::Main(Tab::Messages)];
        }
        self.running = true;
        self.foreground = true;
        self.changed();
    }

    pub fn force_stop(&mut self) {
        self.running = false;
        self.foreground = false;
        self.overlay = None;
        self.focused = false;
        self.stack = vec![Screen::Main(Tab::Messages)];
        self.chat_scroll = 0;
    }

    /// A swipe from one point to another: on the chat list it scrolls the
    /// list by the distance moved (within its ends); elsewhere every list fits
    /// on screen and nothing moves.
    pub fn swipe(&mut self, from: (i32, i32), to: (i32, i32)) {
        let on_list = matches!(self.top(), Screen::Main(Tab::Messages))
            && self.overlay.is_none()
            && CHAT_LIST.contains(from.0, from.1);
        if on_list {
            self.chat_scroll = (self.chat_scroll + from.1 - to.1).clamp(0, self.max_chat_scroll());
        }
    }

    /// How far the chat list can scroll: its rows' height past the screen.
    pub(super) fn max_chat_scroll(&self) -> i32 {
        let rows = i32::try_from(self.chats.len()).unwrap_or(i32::MAX);
        rows.saturating_mul(CHAT_ROW)
            .saturating_sub(CHAT_LIST.bottom - CHAT_LIST.top)
            .max(0)
    }

    pub fn home(&mut self) {
        self.foreground = false;
        self.focused = false;
        if matches!(
            self.overlay,
            Some(Overlay::ChatMenu(_)) | Some(Overlay::ConfirmDelete(_))
        ) {
            self.overlay = None;
        }
    }

    pub fn back(&mut self) {
        if let Some(o) = &self.overlay {
            // WeCom's risk-control dialog is not cancelable; the others are, unless
            // a scripted dialog says otherwise.
            let cancelable = match o {
                Overlay::Risk { .. } | Overlay::Update { forced: true } => false,
                Overlay::Dialog(dialog) => dialog.cancelable,
                _ => true,
            };
            if cancelable {
                self.overlay = None;
            }
            return;
        }
        if !self.foreground || self.faults.contains(&Fault::BackIgnored) {
            return;
        }
        if self.focused && matches!(self.top(), Screen::Chat { .. }) {
            // The first BACK only hides the keyboard.
            self.focused = false;
            return;
        }
        if let Screen::Chat {
            panel: panel @ true,
            ..
        } = self.top_mut()
        {
            // ... or the more-functions panel.
            *panel = false;
            return;
        }
        if self.stack.len() <= 1 {
            self.foreground = false;
            self.focused = false;
            return;
        }
        self.stack.pop();
        self.changed();
    }

    pub fn enter(&mut self) {
        if self.focused {
            if let Screen::AddFriend { .. } = self.top() {
                self.run(Action::AddFriendSearch);
            }
        }
    }
}
