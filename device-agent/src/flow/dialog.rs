//! What makes a screen a modal dialog, read from a `uiautomator dump` alone,
//! and the risk-control phrases looked for in one. `docs/flows.md` ("Dialogs")
//! states the same rules for people.
//!
//! A dialog is a panel that floats over the app and shows text. A node of the
//! dump is such a panel when one of these holds:
//!
//! 1. **Android's dialog ids.** A node has one of the ids Android's
//!    `AlertDialog` layout gives (`android:id/alertTitle`, `android:id/message`,
//!    `android:id/button1` to `button3`, `android:id/parentPanel`): the
//!    dialog is that node's window (its root in the dump).
//! 2. **A floating window.** A root of the dump (a window) does not start at
//!    the screen's top-left corner, e.g. `[84,852][996,1548]`: uiautomator
//!    dumps the active window, and a dialog's window is the dialog. A later
//!    root lying inside the first one is a window over it, too.
//! 3. **A layer over the app.** A node drawn after a sibling that covers at
//!    least half of the screen, lying inside that sibling without being the
//!    same size, and at least half as wide as the screen: an app's own popup
//!    added over its content (a small badge or a button row is narrower, a
//!    list row is not drawn over anything).
//!
//! The panel must show some text (a text or a content description). When
//! several panels are found, the last drawn (the last in the dump) is the
//! dialog. A chat message is a row of a list: it is not drawn over anything,
//! so its words never make a dialog.

use crate::phone::{Bounds, UiTree};

/// The ids of Android's `AlertDialog` layout.
const ANDROID_DIALOG_IDS: &[&str] = &[
    "android:id/alertTitle",
    "android:id/message",
    "android:id/button1",
    "android:id/button2",
    "android:id/button3",
    "android:id/parentPanel",
];

/// The phrases that make a dialog a risk-control warning, whatever its title
/// and buttons: WeCom's words for an account it limits. A flow file adds its
/// own with `[risk] phrases`.
pub(crate) const RISK_PHRASES: &[&str] = &[
    "操作过于频繁",
    "操作频繁",
    "频繁操作",
    "账号存在异常",
    "帐号存在异常",
    "账号异常",
    "帐号异常",
    "违规",
    "限制使用",
    "暂时被限制",
    "已被限制",
    "存在风险",
    "安全风险",
    "封禁",
    "封号",
    "冻结",
];

/// A dialog on screen: the nodes of its panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dialog {
    /// The panel's index in [`UiTree::nodes`].
    pub root: usize,
    /// One past its last descendant (a subtree is contiguous in document order).
    pub end: usize,
}

impl Dialog {
    /// Whether node `index` is part of the dialog.
    pub(crate) fn contains(&self, index: usize) -> bool {
        (self.root..self.end).contains(&index)
    }

    /// The dialog's texts (title, message, buttons), in order, without repeats.
    pub(crate) fn texts<'t>(&self, tree: &'t UiTree) -> Vec<&'t str> {
        let mut texts: Vec<&str> = Vec::new();
        for node in &tree.nodes[self.root..self.end] {
            let text = if node.text.trim().is_empty() {
                node.content_desc.trim()
            } else {
                node.text.trim()
            };
            if !text.is_empty() && !texts.contains(&text) {
                texts.push(text);
            }
        }
        texts
    }

    /// The first of `phrases` that one of the dialog's texts contains.
    pub(crate) fn risk_phrase<'p>(
        &self,
        tree: &UiTree,
        phrases: impl IntoIterator<Item = &'p str>,
    ) -> Option<&'p str> {
        let texts = self.texts(tree);
        phrases
            .into_iter()
            .find(|phrase| texts.iter().any(|text| text.contains(phrase)))
    }
}

/// The dialog on screen, if the dump shows one.
pub(crate) fn find(tree: &UiTree) -> Option<Dialog> {
    let nodes = &tree.nodes;
    let first = nodes.first()?;
    let screen = first.bounds;
    let mut found = None;
    for (index, node) in nodes.iter().enumerate() {
        let panel = if ANDROID_DIALOG_IDS.contains(&node.resource_id.as_str()) {
            Some(window_of(tree, index))
        } else if node.parent.is_none() {
            let floats = node.bounds.left > 0 || node.bounds.top > 0;
            let over_first = index > 0 && inside(node.bounds, screen) && node.bounds != screen;
            (floats || over_first).then_some(index)
        } else if is_layer(tree, index, screen) {
            Some(index)
        } else {
            None
        };
        let Some(root) = panel else {
            continue;
        };
        let dialog = Dialog {
            root,
            end: subtree_end(tree, root),
        };
        if !dialog.texts(tree).is_empty() && !nodes[root].bounds.is_empty() {
            found = Some(dialog);
        }
    }
    found
}

/// The root (window) node `index` is in.
fn window_of(tree: &UiTree, mut index: usize) -> usize {
    while let Some(parent) = tree.nodes[index].parent {
        index = parent;
    }
    index
}

/// Rule 3: node `index` is drawn over a big earlier sibling and lies inside it.
fn is_layer(tree: &UiTree, index: usize, screen: Bounds) -> bool {
    let node = &tree.nodes[index];
    let Some(parent) = node.parent else {
        return false;
    };
    if width(node.bounds) * 2 < width(screen) || node.bounds.is_empty() {
        return false;
    }
    tree.nodes[parent + 1..index]
        .iter()
        .filter(|sibling| sibling.parent == Some(parent))
        .any(|sibling| {
            area(sibling.bounds) * 2 >= area(screen)
                && inside(node.bounds, sibling.bounds)
                && node.bounds != sibling.bounds
        })
}

fn subtree_end(tree: &UiTree, index: usize) -> usize {
    let depth = tree.nodes[index].depth;
    tree.nodes[index + 1..]
        .iter()
        .position(|n| n.depth <= depth)
        .map_or(tree.nodes.len(), |offset| index + 1 + offset)
}

fn inside(inner: Bounds, outer: Bounds) -> bool {
    inner.left >= outer.left
        && inner.top >= outer.top
        && inner.right <= outer.right
        && inner.bottom <= outer.bottom
}

fn width(b: Bounds) -> i64 {
    i64::from(b.right - b.left).max(0)
}

fn area(b: Bounds) -> i64 {
    width(b) * i64::from(b.bottom - b.top).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(xml: &str) -> UiTree {
        UiTree::parse(&format!("<hierarchy>{xml}</hierarchy>")).unwrap()
    }

    /// A chat screen whose last message mentions a risk phrase.
    const CHAT: &str = r#"<node class="android.widget.FrameLayout" bounds="[0,0][1080,2400]">
  <node class="android.widget.TextView" text="张三" bounds="[0,80][1080,248]" />
  <node class="android.widget.ListView" bounds="[0,248][1080,2208]">
    <node class="android.widget.LinearLayout" clickable="true" bounds="[0,248][1080,448]">
      <node class="android.widget.TextView" text="你们是不是操作过于频繁了？" bounds="[200,280][900,400]" />
      <node class="android.widget.Button" text="确定" clickable="true" bounds="[900,280][1060,400]" />
    </node>
  </node>
  <node class="android.widget.EditText" bounds="[0,2208][900,2400]" />
  <node class="android.widget.Button" text="发送" bounds="[900,2208][1080,2400]" />
</node>"#;

    #[test]
    fn a_chat_message_is_not_a_dialog() {
        let chat = tree(CHAT);
        assert_eq!(find(&chat), None);
    }

    #[test]
    fn a_panel_drawn_over_the_app_is_a_dialog() {
        let xml = format!(
            r#"<node class="android.widget.FrameLayout" bounds="[0,0][1080,2400]">{CHAT}
<node class="android.widget.LinearLayout" bounds="[80,860][1000,1540]">
  <node class="android.widget.TextView" text="提示" bounds="[120,900][960,990]" />
  <node class="android.widget.TextView" text="操作过于频繁，请稍后再试" bounds="[120,1010][960,1300]" />
  <node class="android.widget.Button" text="确定" bounds="[80,1380][1000,1540]" />
</node></node>"#
        );
        let screen = tree(&xml);
        let dialog = find(&screen).expect("a dialog");
        assert_eq!(
            dialog.texts(&screen),
            ["提示", "操作过于频繁，请稍后再试", "确定"]
        );
        assert_eq!(
            dialog.risk_phrase(&screen, RISK_PHRASES.iter().copied()),
            Some("操作过于频繁")
        );
        let send = screen.nodes.iter().position(|n| n.text == "发送").unwrap();
        assert!(!dialog.contains(send));
        let ok = screen.nodes.iter().rposition(|n| n.text == "确定").unwrap();
        assert!(dialog.contains(ok));
    }

    #[test]
    fn a_dialog_window_is_a_dialog_with_or_without_buttons() {
        // An AlertDialog's window, dumped alone.
        let alert = tree(
            r#"<node class="android.widget.FrameLayout" bounds="[84,852][996,1548]">
  <node resource-id="android:id/parentPanel" class="android.widget.LinearLayout" bounds="[84,852][996,1548]">
    <node resource-id="android:id/alertTitle" text="提示" bounds="[140,900][940,980]" />
    <node resource-id="android:id/message" text="您的账号存在异常" bounds="[140,1000][940,1300]" />
    <node resource-id="android:id/button1" text="OK" bounds="[700,1400][940,1500]" />
  </node>
</node>"#,
        );
        let dialog = find(&alert).expect("a dialog");
        assert_eq!(dialog.root, 0);
        assert_eq!(dialog.texts(&alert), ["提示", "您的账号存在异常", "OK"]);
        // A window without buttons that floats.
        let bare = tree(
            r#"<node class="android.widget.FrameLayout" bounds="[84,852][996,1548]">
  <node text="账号暂时被限制使用" bounds="[140,1000][940,1300]" />
</node>"#,
        );
        assert!(find(&bare).is_some());
        // A full-screen window is the app, not a dialog.
        let app = tree(
            r#"<node class="android.widget.FrameLayout" bounds="[0,0][1080,2400]">
  <node text="账号暂时被限制使用" bounds="[140,1000][940,1300]" />
</node>"#,
        );
        assert_eq!(find(&app), None);
        // A panel with no text is nothing to read.
        let blank = tree(
            r#"<node class="android.widget.FrameLayout" bounds="[0,0][1080,2400]">
  <node class="android.view.View" bounds="[0,0][1080,2400]" />
  <node class="android.view.View" bounds="[80,800][1000,1600]" />
</node>"#,
        );
        assert_eq!(find(&blank), None);
    }

    #[test]
    fn the_docs_list_the_risk_phrases() {
        let docs = include_str!("../../../docs/flows.md");
        let (_, rest) = docs.split_once("<!-- risk-phrases -->").unwrap();
        let (listed, _) = rest.split_once("<!-- /risk-phrases -->").unwrap();
        let listed: Vec<&str> = listed.trim().split(", ").collect();
        assert_eq!(listed, RISK_PHRASES, "docs/flows.md lists the phrases");
    }

    #[test]
    fn narrow_overlays_are_not_dialogs() {
        // A badge over an avatar, or a small floating button.
        let screen = tree(
            r#"<node class="android.widget.FrameLayout" bounds="[0,0][1080,2400]">
  <node class="android.widget.ListView" bounds="[0,0][1080,2400]" />
  <node class="android.widget.TextView" text="违规" bounds="[900,2000][1040,2100]" />
</node>"#,
        );
        assert_eq!(find(&screen), None);
    }
}
