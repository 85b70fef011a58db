//! UI trees as `uiautomator dump` reports them: nodes with bounds, and the XML they dump to;
//! and what a tap on a node does (its `Action`, with the tabs and pickers actions name).

use std::fmt::Write as _;

/// A rectangle in screen pixels, left/top inclusive and right/bottom exclusive, as
/// uiautomator prints it in `bounds="[l,t][r,b]"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub left: i32,
    /// Top edge.
    pub top: i32,
    /// Right edge (exclusive).
    pub right: i32,
    /// Bottom edge (exclusive).
    pub bottom: i32,
}

impl Rect {
    /// A rectangle from its four edges.
    pub const fn new(left: i32, top: i32, right: i32, bottom: i32) -> Self {
        Self {
            left,
            top,
            right,
            bottom,
        }
    }

    /// Whether the point lies inside; uiautomator bounds exclude the right and bottom edge.
    pub fn contains(&self, x: i32, y: i32) -> bool {
        x >= self.left && x < self.right && y >= self.top && y < self.bottom
    }
}

/// The bottom tabs of WeCom's main screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// 消息: the chat list.
    Messages,
    /// 通讯录: contacts.
    Contacts,
    /// 工作台: workbench.
    Workbench,
}

/// What the tag picker's 确定 hands its tags to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagPurpose {
    /// The 标签 row of 发送添加邀请.
    Request,
    /// 可见的客户 > 按标签筛选.
    Visibility,
}

/// What a tap on a node does; kept out of the dump, as a real app's listeners are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    LaunchWeCom,
    Tab(Tab),
    OpenChat(String),
    Back,
    FocusInput,
    Send,
    OpenContactSearch,
    OpenProfile(String),
    MessageFromProfile(String),
    OpenAddFriend,
    AddFriendSearch,
    AddToContacts(String),
    SendFriendRequest,
    /// The 备注 field of 发送添加邀请 or 通过验证: focuses it.
    FocusRemark,
    /// A 标签 or 按标签筛选 row: opens the tag picker.
    OpenTags(TagPurpose),
    /// A tag chip of the picker: picks it (or unpicks it).
    ToggleTag(String),
    /// The tag picker's 确定: hands the picked tags back.
    TagsDone,
    OpenFriendRequests,
    /// 新的客户's 通过: opens 通过验证 for the requester.
    Accept(String),
    /// 通过验证's 完成: accepts the request with the 备注 in the field.
    ConfirmVerify,
    /// The composer's 可见的客户 row.
    OpenVisibility,
    /// 可见的客户 > 全部客户.
    VisibleToAll,
    /// 可见的客户's 完成: back to the composer with the choice.
    VisibilityDone,
    OpenMoments,
    OpenComposer,
    OpenPicker,
    ToggleMedia(String),
    PickerDone,
    PostMoment,
    ChatMenu(String),
    MenuDelete(String),
    MenuClose,
    ConfirmDelete(String),
    DismissOverlay,
    /// The chat's more-functions button: opens or folds the panel.
    TogglePanel,
    /// The panel's 图片: the album, sending to the chat.
    OpenAlbum,
    /// The panel's 文件: 选择文件.
    OpenFiles,
    /// 选择文件 > 手机存储.
    OpenPhoneStorage,
    /// A file row of 手机存储: picks it (or unpicks it).
    PickFile(String),
    /// 手机存储's 发送: sends the picked file to the chat.
    SendFile,
}

/// One node of the view hierarchy.
#[derive(Debug, Clone)]
pub struct Node {
    /// Android widget class, e.g. `android.widget.TextView`.
    pub class: String,
    /// Visible text.
    pub text: String,
    /// `package:id/name`, or empty.
    pub resource_id: String,
    /// Accessibility description, or empty.
    pub content_desc: String,
    /// Package of the window the node belongs to.
    pub package: String,
    /// Where the node is on screen.
    pub bounds: Rect,
    /// Whether the node reacts to taps.
    pub clickable: bool,
    /// Whether the node reacts to long presses.
    pub long_clickable: bool,
    /// Whether the node has input focus.
    pub focused: bool,
    /// Whether the node can take focus (text fields).
    pub focusable: bool,
    /// Whether the node is a checkable widget, and its state.
    pub checked: Option<bool>,
    /// Whether the node scrolls its children.
    pub scrollable: bool,
    /// Child nodes, in drawing order.
    pub children: Vec<Node>,
    pub(crate) action: Option<Action>,
    pub(crate) long_action: Option<Action>,
}

impl Node {
    pub(crate) fn new(class: &str, package: &str, bounds: Rect) -> Self {
        Self {
            class: class.to_owned(),
            text: String::new(),
            resource_id: String::new(),
            content_desc: String::new(),
            package: package.to_owned(),
            bounds,
            clickable: false,
            long_clickable: false,
            focused: false,
            focusable: false,
            checked: None,
            scrollable: false,
            children: Vec::new(),
            action: None,
            long_action: None,
        }
    }

    pub(crate) fn text(mut self, text: &str) -> Self {
        self.text = text.to_owned();
        self
    }

    pub(crate) fn id(mut self, id: &str) -> Self {
        self.resource_id = if id.contains(':') {
            id.to_owned()
        } else {
            format!("{}:id/{id}", self.package)
        };
        self
    }

    pub(crate) fn desc(mut self, desc: &str) -> Self {
        self.content_desc = desc.to_owned();
        self
    }

    pub(crate) fn on_tap(mut self, action: Action) -> Self {
        self.clickable = true;
        self.action = Some(action);
        self
    }

    pub(crate) fn on_long_press(mut self, action: Action) -> Self {
        self.long_clickable = true;
        self.long_action = Some(action);
        self
    }

    pub(crate) fn child(mut self, node: Node) -> Self {
        self.children.push(node);
        self
    }

    pub(crate) fn children(mut self, nodes: impl IntoIterator<Item = Node>) -> Self {
        self.children.extend(nodes);
        self
    }

    /// The deepest node under the point that has a tap (or long-press) action, searching
    /// later siblings first because they are drawn on top.
    pub(crate) fn hit(&self, x: i32, y: i32, long: bool) -> Option<&Node> {
        if !self.bounds.contains(x, y) {
            return None;
        }
        for child in self.children.iter().rev() {
            if let Some(hit) = child.hit(x, y, long) {
                return Some(hit);
            }
        }
        let wanted = if long {
            self.long_action.is_some()
        } else {
            self.clickable
        };
        wanted.then_some(self)
    }

    /// Visits every node depth-first, parents before children.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Node)) {
        f(self);
        for child in &self.children {
            child.walk(f);
        }
    }

    /// The first node whose text equals `text`, for tests and the screen summary.
    pub fn find_text(&self, text: &str) -> Option<&Node> {
        let mut found = None;
        self.walk(&mut |n| {
            if found.is_none() && n.text == text {
                found = Some(n);
            }
        });
        found
    }

    fn write_xml(&self, index: usize, out: &mut String) {
        let b = self.bounds;
        let _ = write!(
            out,
            "<node index=\"{index}\" text=\"{}\" resource-id=\"{}\" class=\"{}\" package=\"{}\" \
             content-desc=\"{}\" checkable=\"{}\" checked=\"{}\" clickable=\"{}\" enabled=\"true\" \
             focusable=\"{}\" focused=\"{}\" scrollable=\"{}\" long-clickable=\"{}\" password=\"false\" \
             selected=\"false\" bounds=\"[{},{}][{},{}]\"",
            escape(&self.text),
            escape(&self.resource_id),
            escape(&self.class),
            escape(&self.package),
            escape(&self.content_desc),
            self.checked.is_some(),
            self.checked.unwrap_or(false),
            self.clickable,
            self.focusable || self.clickable,
            self.focused,
            self.scrollable,
            self.long_clickable,
            b.left,
            b.top,
            b.right,
            b.bottom
        );
        if self.children.is_empty() {
            out.push_str(" />");
        } else {
            out.push('>');
            for (i, child) in self.children.iter().enumerate() {
                child.write_xml(i, out);
            }
            out.push_str("</node>");
        }
    }
}

/// The whole dump as `uiautomator dump` writes it: one line, UTF-8, with the XML declaration
/// Android's serializer emits.
pub fn hierarchy_xml(root: &Node) -> String {
    let mut out = String::from(
        "<?xml version='1.0' encoding='UTF-8' standalone='yes' ?><hierarchy rotation=\"0\">",
    );
    root.write_xml(0, &mut out);
    out.push_str("</hierarchy>");
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_prefers_deepest_topmost_clickable() {
        let root = Node::new("android.widget.FrameLayout", "p", Rect::new(0, 0, 100, 100))
            .child(Node::new("a", "p", Rect::new(0, 0, 100, 50)).on_tap(Action::Back))
            .child(Node::new("b", "p", Rect::new(0, 0, 100, 50)).on_tap(Action::Send));
        assert_eq!(root.hit(10, 10, false).unwrap().class, "b");
        assert!(root.hit(10, 60, false).is_none());
        assert!(
            root.hit(10, 50, false).is_none(),
            "bottom edge is exclusive"
        );
    }

    #[test]
    fn xml_escapes_attributes() {
        let root = Node::new("c", "p", Rect::new(0, 0, 1, 1)).text("a<\"b\"&");
        let xml = hierarchy_xml(&root);
        assert!(xml.contains("text=\"a&lt;&quot;b&quot;&amp;\""), "{xml}");
        assert!(xml.contains("bounds=\"[0,0][1,1]\""));
    }
}
