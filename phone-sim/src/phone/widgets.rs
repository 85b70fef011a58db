//! The building blocks screens are drawn from: title bars, rows, entries, grid items,
//! and rows cut by the edge of their list.

use super::SCREEN_W;

use crate::ui::{Action, Node, Rect};

/// `node` cut to `area`, as a list draws a row its edge cuts: its bounds
/// and its children's shrink to what is in view, and children wholly out of
/// view go. `None` when nothing of it is in view.
pub(super) fn clipped(mut node: Node, area: Rect) -> Option<Node> {
    let b = node.bounds;
    let cut = Rect::new(
        b.left.max(area.left),
        b.top.max(area.top),
        b.right.min(area.right),
        b.bottom.min(area.bottom),
    );
    if cut.right <= cut.left || cut.bottom <= cut.top {
        return None;
    }
    node.bounds = cut;
    node.children = std::mem::take(&mut node.children)
        .into_iter()
        .filter_map(|child| clipped(child, area))
        .collect();
    Some(node)
}

pub(super) fn title_bar(p: &str, title: &str, back: bool) -> Node {
    let mut bar = Node::new(
        "android.widget.RelativeLayout",
        p,
        Rect::new(0, 80, SCREEN_W, 248),
    )
    .id("title_bar");
    if back {
        bar = bar.child(back_button(p));
    }
    if !title.is_empty() {
        bar = bar.child(
            Node::new("android.widget.TextView", p, Rect::new(150, 110, 930, 218))
                .id("title_text")
                .text(title),
        );
    }
    bar
}

pub(super) fn back_button(p: &str) -> Node {
    Node::new("android.widget.ImageView", p, Rect::new(0, 100, 130, 228))
        .id("back_button")
        .desc("返回")
        .on_tap(Action::Back)
}

pub(super) fn entry(p: &str, top: i32, label: &str, action: Action) -> Node {
    row(p, top, label).on_tap(action)
}

/// A list row with a label; [`entry`] makes it lead somewhere.
pub(super) fn row(p: &str, top: i32, label: &str) -> Node {
    Node::new(
        "android.widget.RelativeLayout",
        p,
        Rect::new(0, top, SCREEN_W, top + 150),
    )
    .child(
        Node::new(
            "android.widget.TextView",
            p,
            Rect::new(212, top + 40, 900, top + 110),
        )
        .text(label),
    )
}

/// A 备注 row: the label and its text field, which the flow finds through the label.
pub(super) fn remark_row(p: &str, top: i32, remark: &str, focused: bool) -> Node {
    let mut field = Node::new(
        "android.widget.EditText",
        p,
        Rect::new(212, top + 20, 1044, top + 130),
    )
    .id("remark_input")
    .text(remark)
    .on_tap(Action::FocusRemark);
    field.focusable = true;
    field.focused = focused;
    Node::new(
        "android.widget.RelativeLayout",
        p,
        Rect::new(0, top, SCREEN_W, top + 150),
    )
    .id("remark_row")
    .child(
        Node::new(
            "android.widget.TextView",
            p,
            Rect::new(36, top + 40, 200, top + 110),
        )
        .text("备注"),
    )
    .child(field)
}

/// The value a settings row shows on its right, such as the picked tags.
pub(super) fn value_text(p: &str, top: i32, value: &str) -> Node {
    Node::new(
        "android.widget.TextView",
        p,
        Rect::new(540, top + 40, 1000, top + 110),
    )
    .id("row_value")
    .text(value)
}

pub(super) fn grid_item(p: &str, i: i32, label: &str, action: Option<Action>) -> Node {
    let l = 270 * (i % 4);
    let t = 300 + 270 * (i / 4);
    let mut n = Node::new(
        "android.widget.LinearLayout",
        p,
        Rect::new(l, t, l + 270, t + 250),
    )
    .child(
        Node::new(
            "android.widget.TextView",
            p,
            Rect::new(l, t + 170, l + 270, t + 240),
        )
        .text(label),
    );
    if let Some(a) = action {
        n = n.on_tap(a);
    }
    n
}
