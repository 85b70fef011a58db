//! The screen as `uiautomator dump` describes it: a tree of nodes with text,
//! resource id, content description, class and bounds, and the [`Selector`]s
//! that find nodes in it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point on the screen, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// From the left edge.
    pub x: i32,
    /// From the top edge.
    pub y: i32,
}

/// A node's rectangle: `[left,top][right,bottom]`, right and bottom exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bounds {
    /// Left edge.
    pub left: i32,
    /// Top edge.
    pub top: i32,
    /// Right edge (exclusive).
    pub right: i32,
    /// Bottom edge (exclusive).
    pub bottom: i32,
}

impl Bounds {
    /// Parses uiautomator's `[l,t][r,b]`.
    pub fn parse(s: &str) -> Option<Bounds> {
        let s = s.strip_prefix('[')?.strip_suffix(']')?;
        let (first, second) = s.split_once("][")?;
        let pair = |p: &str| -> Option<(i32, i32)> {
            let (a, b) = p.split_once(',')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        };
        let (left, top) = pair(first)?;
        let (right, bottom) = pair(second)?;
        Some(Bounds {
            left,
            top,
            right,
            bottom,
        })
    }

    /// The centre, where a tap lands.
    pub fn center(&self) -> Point {
        Point {
            x: (self.left + self.right) / 2,
            y: (self.top + self.bottom) / 2,
        }
    }

    /// Whether the rectangle has no area (an off-screen or collapsed view).
    pub fn is_empty(&self) -> bool {
        self.right <= self.left || self.bottom <= self.top
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{},{}][{},{}]",
            self.left, self.top, self.right, self.bottom
        )
    }
}

/// One node of the screen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UiNode {
    /// Visible text.
    pub text: String,
    /// `package:id/name`, or empty.
    pub resource_id: String,
    /// Accessibility description, or empty.
    pub content_desc: String,
    /// Widget class, e.g. `android.widget.TextView`.
    pub class: String,
    /// Package of the window the node is in.
    pub package: String,
    /// Where it is.
    pub bounds: Bounds,
    /// Whether it reacts to taps.
    pub clickable: bool,
    /// Whether it has input focus.
    pub focused: bool,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Whether it is checked (for checkable widgets).
    pub checked: bool,
    /// Index of the parent node in [`UiTree::nodes`]; `None` for a root.
    pub parent: Option<usize>,
    /// Depth in the tree, roots at 0.
    pub depth: u32,
}

/// The parsed screen: every node in document order (a parent before its children).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UiTree {
    /// The nodes.
    pub nodes: Vec<UiNode>,
    /// The XML it was parsed from, kept for failure reports.
    pub xml: String,
}

/// Why a UI dump could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a uiautomator dump: {0}")]
pub struct ParseError(pub String);

impl UiTree {
    /// Parses the XML `uiautomator dump` writes. Anything that is not a
    /// `<hierarchy>` document (such as "ERROR: could not get idle state.") is an error.
    pub fn parse(xml: &str) -> Result<UiTree, ParseError> {
        let start = xml
            .find("<?xml")
            .or_else(|| xml.find("<hierarchy"))
            .ok_or_else(|| ParseError(first_line(xml)))?;
        let end = xml
            .rfind("</hierarchy>")
            .map(|at| at + "</hierarchy>".len())
            .or_else(|| xml.rfind("/>").map(|at| at + 2))
            .ok_or_else(|| ParseError("the document is not complete".to_owned()))?;
        let body = &xml[start..end];
        let doc = roxmltree::Document::parse(body).map_err(|e| ParseError(e.to_string()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "hierarchy" {
            return Err(ParseError(format!(
                "the root element is <{}>, not <hierarchy>",
                root.tag_name().name()
            )));
        }
        let mut nodes = Vec::new();
        for child in root.children().filter(|n| n.has_tag_name("node")) {
            collect(child, None, 0, &mut nodes);
        }
        Ok(UiTree {
            nodes,
            xml: body.to_owned(),
        })
    }

    /// The node `selector` finds: the first that matches (in document
    /// order), or its `nth` match. A label is looked for as a content
    /// description first, then as visible text: an icon's description names
    /// it more surely than a title that happens to say the same word.
    pub fn find(&self, selector: &Selector) -> Option<&UiNode> {
        self.find_in(selector, None)
    }

    /// As [`UiTree::find`], among the descendants of node `scope` only (the
    /// whole screen when `None`); `nth` counts within the scope.
    pub fn find_in(&self, selector: &Selector, scope: Option<usize>) -> Option<&UiNode> {
        pick(&self.matching(selector, scope), selector.nth).map(|index| &self.nodes[index])
    }

    /// The index in [`UiTree::nodes`] of the node [`UiTree::find`] finds.
    pub fn find_index(&self, selector: &Selector) -> Option<usize> {
        pick(&self.matching(selector, None), selector.nth)
    }

    /// Every node that `selector` matches, its label in either field, `nth`
    /// aside.
    pub fn find_all<'a>(&'a self, selector: &'a Selector) -> impl Iterator<Item = &'a UiNode> {
        (0..self.nodes.len())
            .filter(move |&index| self.is_match(selector, index))
            .map(|index| &self.nodes[index])
    }

    /// Whether node `index` is one `selector` matches (`inside` included,
    /// `nth` aside: it is one of the candidates).
    pub fn is_match(&self, selector: &Selector, index: usize) -> bool {
        selector.matches(&self.nodes[index])
            && self
                .containers(selector)
                .is_none_or(|containers| self.within(&containers, index))
    }

    /// The indexes of the nodes `selector` matches within `scope`, `nth`
    /// aside, in the order it picks from: with a label, the nodes whose
    /// description carries it, or, when there are none, those whose text does.
    pub fn matching(&self, selector: &Selector, scope: Option<usize>) -> Vec<usize> {
        let range = match scope {
            Some(at) => at + 1..self.subtree_end(at),
            None => 0..self.nodes.len(),
        };
        let containers = self.containers(selector);
        let pass = |field: Option<LabelIn>| -> Vec<usize> {
            range
                .clone()
                .filter(|&index| {
                    let node = &self.nodes[index];
                    match field {
                        Some(field) => selector.matches_label_in(node, field),
                        None => selector.matches(node),
                    }
                })
                .filter(|&index| {
                    containers
                        .as_ref()
                        .is_none_or(|containers| self.within(containers, index))
                })
                .collect()
        };
        if selector.label.is_none() && selector.label_contains.is_none() {
            return pass(None);
        }
        let described = pass(Some(LabelIn::Description));
        if described.is_empty() {
            pass(Some(LabelIn::Text))
        } else {
            described
        }
    }

    /// The nodes that `selector.inside` finds (its `nth` one only, when it
    /// has one); `None` without `inside`.
    fn containers(&self, selector: &Selector) -> Option<Vec<usize>> {
        let outer = selector.inside.as_deref()?;
        let found = self.matching(outer, None);
        Some(match outer.nth {
            Some(nth) => pick(&found, Some(nth)).into_iter().collect(),
            None => found,
        })
    }

    /// Whether node `index` is a descendant of one of `containers`.
    fn within(&self, containers: &[usize], index: usize) -> bool {
        containers
            .iter()
            .any(|&at| at < index && index < self.subtree_end(at))
    }

    /// The index just past node `at`'s last descendant (a subtree is
    /// contiguous in document order).
    pub fn subtree_end(&self, at: usize) -> usize {
        let depth = self.nodes[at].depth;
        self.nodes[at + 1..]
            .iter()
            .position(|n| n.depth <= depth)
            .map_or(self.nodes.len(), |offset| at + 1 + offset)
    }

    /// Whether any node's text or content description contains `needle`.
    pub fn contains_text(&self, needle: &str) -> bool {
        self.nodes
            .iter()
            .any(|n| n.text.contains(needle) || n.content_desc.contains(needle))
    }

    /// The node with input focus, if any.
    pub fn focused(&self) -> Option<&UiNode> {
        self.nodes.iter().find(|n| n.focused)
    }

    /// The texts on screen, in order, for a human summary of what was seen.
    pub fn texts(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter_map(|n| {
                if !n.text.is_empty() {
                    Some(n.text.as_str())
                } else if !n.content_desc.is_empty() {
                    Some(n.content_desc.as_str())
                } else {
                    None
                }
            })
            .collect()
    }
}

/// The `nth` of `candidates` (1 the first, -1 the last), or the first.
fn pick(candidates: &[usize], nth: Option<i64>) -> Option<usize> {
    let nth = nth.unwrap_or(1);
    let at = if nth > 0 {
        usize::try_from(nth - 1).ok()?
    } else {
        candidates
            .len()
            .checked_sub(usize::try_from(nth.checked_neg()?).ok()?)?
    };
    candidates.get(at).copied()
}

fn first_line(s: &str) -> String {
    let line = s.trim().lines().next().unwrap_or("");
    if line.is_empty() {
        "the output was empty".to_owned()
    } else {
        line.chars().take(200).collect()
    }
}

fn collect(
    node: roxmltree::Node<'_, '_>,
    parent: Option<usize>,
    depth: u32,
    out: &mut Vec<UiNode>,
) {
    let attr = |name: &str| node.attribute(name).unwrap_or("").to_owned();
    let flag = |name: &str| node.attribute(name) == Some("true");
    let index = out.len();
    out.push(UiNode {
        text: attr("text"),
        resource_id: attr("resource-id"),
        content_desc: attr("content-desc"),
        class: attr("class"),
        package: attr("package"),
        bounds: node
            .attribute("bounds")
            .and_then(Bounds::parse)
            .unwrap_or_default(),
        clickable: flag("clickable"),
        focused: flag("focused"),
        enabled: node.attribute("enabled") != Some("false"),
        checked: flag("checked"),
        parent,
        depth,
    });
    for child in node.children().filter(|n| n.has_tag_name("node")) {
        collect(child, Some(index), depth + 1, out);
    }
}

/// Finds nodes: every field that is set must match. Text and content
/// description match exactly, or as a substring with the `_contains` forms.
/// Flow files write selectors as tables, e.g. `{ text = "发送" }` or
/// `{ resource_id = "com.tencent.wework:id/input_editor" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Exact visible text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Visible text containing this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_contains: Option<String>,
    /// Exact content description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// Content description containing this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc_contains: Option<String>,
    /// Exact resource id (`package:id/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Exact widget class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// A label, exactly, as the visible text or the content description:
    /// apps and builds differ in which of the two carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A label containing this, as the visible text or the content description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_contains: Option<String>,
    /// Which of the matching nodes, in screen order: 1 the first, 2 the
    /// second, -1 the last. Without it, the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<i64>,
    /// Only nodes inside (descendants of) a node this selector finds, such
    /// as the tab bar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inside: Option<Box<Selector>>,
}

impl Selector {
    /// A selector for an exact text.
    pub fn text(text: impl Into<String>) -> Selector {
        Selector {
            text: Some(text.into()),
            ..Selector::default()
        }
    }

    /// A selector for an exact resource id.
    pub fn resource_id(id: impl Into<String>) -> Selector {
        Selector {
            resource_id: Some(id.into()),
            ..Selector::default()
        }
    }

    /// Whether no field that looks at the node itself is set (it would
    /// match every node; `nth` and `inside` only choose among matches).
    pub fn is_empty(&self) -> bool {
        Selector {
            nth: None,
            inside: None,
            ..self.clone()
        } == Selector::default()
    }

    /// Whether `node` itself matches, with its label (if any) in either
    /// field; `inside` and `nth` need the tree ([`UiTree::is_match`]).
    pub fn matches(&self, node: &UiNode) -> bool {
        self.matches_label_in(node, LabelIn::Description)
            || self.matches_label_in(node, LabelIn::Text)
    }

    /// Whether `node` matches with its label (if any) in one field.
    fn matches_label_in(&self, node: &UiNode, field: LabelIn) -> bool {
        fn exact(want: &Option<String>, have: &str) -> bool {
            want.as_deref().is_none_or(|want| want == have)
        }
        fn within(want: &Option<String>, have: &str) -> bool {
            want.as_deref().is_none_or(|want| have.contains(want))
        }
        !node.bounds.is_empty()
            && exact(&self.text, &node.text)
            && within(&self.text_contains, &node.text)
            && exact(&self.desc, &node.content_desc)
            && within(&self.desc_contains, &node.content_desc)
            && exact(&self.resource_id, &node.resource_id)
            && exact(&self.class, &node.class)
            && {
                let label = match field {
                    LabelIn::Description => &node.content_desc,
                    LabelIn::Text => &node.text,
                };
                exact(&self.label, label) && within(&self.label_contains, label)
            }
    }
}

/// Where a selector's `label` is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelIn {
    Description,
    Text,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut add = |name: &str, value: &Option<String>| {
            if let Some(value) = value {
                parts.push(format!("{name}={value:?}"));
            }
        };
        add("text", &self.text);
        add("text_contains", &self.text_contains);
        add("desc", &self.desc);
        add("desc_contains", &self.desc_contains);
        add("resource_id", &self.resource_id);
        add("class", &self.class);
        add("label", &self.label);
        add("label_contains", &self.label_contains);
        if let Some(nth) = self.nth {
            parts.push(format!("nth={nth}"));
        }
        if let Some(inside) = &self.inside {
            parts.push(format!("inside={inside}"));
        }
        write!(f, "{{{}}}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "<?xml version='1.0' encoding='UTF-8' standalone='yes' ?><hierarchy rotation=\"0\">\
<node index=\"0\" text=\"\" resource-id=\"\" class=\"android.widget.FrameLayout\" package=\"com.tencent.wework\" content-desc=\"\" clickable=\"false\" enabled=\"true\" focused=\"false\" bounds=\"[0,0][1080,2340]\">\
<node index=\"0\" text=\"张三\" resource-id=\"com.tencent.wework:id/title\" class=\"android.widget.TextView\" package=\"com.tencent.wework\" content-desc=\"\" clickable=\"true\" enabled=\"true\" focused=\"false\" bounds=\"[0,200][1080,300]\" />\
<node index=\"1\" text=\"\" resource-id=\"com.tencent.wework:id/input_editor\" class=\"android.widget.EditText\" package=\"com.tencent.wework\" content-desc=\"输入框\" clickable=\"true\" enabled=\"true\" focused=\"true\" bounds=\"[0,2200][900,2300]\" />\
<node index=\"2\" text=\"hidden\" resource-id=\"\" class=\"android.widget.TextView\" package=\"com.tencent.wework\" content-desc=\"\" clickable=\"false\" enabled=\"true\" focused=\"false\" bounds=\"[0,0][0,0]\" />\
</node></hierarchy>";

    #[test]
    fn a_label_is_a_description_first_then_a_text() {
        let node = |text: &str, desc: &str, top: i32| {
            format!("<node index=\"0\" text=\"{text}\" resource-id=\"\" class=\"android.widget.TextView\" package=\"p\" content-desc=\"{desc}\" clickable=\"true\" enabled=\"true\" focused=\"false\" bounds=\"[0,{top}][100,{}]\" />", top + 50)
        };
        let xml = |nodes: &[String]| {
            format!("<?xml version='1.0' encoding='UTF-8' standalone='yes' ?><hierarchy rotation=\"0\"><node index=\"0\" text=\"\" resource-id=\"\" class=\"android.widget.FrameLayout\" package=\"p\" content-desc=\"\" clickable=\"false\" enabled=\"true\" focused=\"false\" bounds=\"[0,0][1080,2340]\">{}</node></hierarchy>", nodes.concat())
        };
        let label = Selector {
            label: Some("消息".into()),
            ..Selector::default()
        };
        // A title saying the word comes first, the tab's description wins.
        let tree = UiTree::parse(&xml(&[node("消息", "", 0), node("", "消息", 2200)])).unwrap();
        assert_eq!(tree.find(&label).unwrap().bounds.top, 2200);
        assert_eq!(tree.find_all(&label).count(), 2);
        // Labels drawn as text: found as text.
        let tree = UiTree::parse(&xml(&[node("通讯录", "", 100), node("消息", "", 2200)])).unwrap();
        assert_eq!(tree.find(&label).unwrap().bounds.top, 2200);
        let part = Selector {
            label_contains: Some("更多".into()),
            ..Selector::default()
        };
        let tree = UiTree::parse(&xml(&[node("更多功能按钮", "", 100)])).unwrap();
        assert!(tree.find(&part).is_some());
        assert_eq!(label.to_string(), "{label=\"消息\"}");
    }

    #[test]
    fn nth_and_inside_choose_among_matches() {
        // A title 消息 at the top, a list, and a tab bar with 消息 as text.
        let xml = "<?xml version='1.0' ?><hierarchy rotation=\"0\">\
<node text=\"\" class=\"root\" bounds=\"[0,0][1080,2340]\">\
<node text=\"消息\" class=\"android.widget.TextView\" bounds=\"[0,0][1080,100]\" />\
<node text=\"\" resource-id=\"list\" class=\"list\" bounds=\"[0,100][1080,2200]\">\
<node text=\"a\" class=\"android.widget.TextView\" bounds=\"[0,100][1080,200]\" />\
<node text=\"b\" class=\"android.widget.TextView\" bounds=\"[0,200][1080,300]\" />\
</node>\
<node text=\"\" resource-id=\"tabs\" class=\"bar\" bounds=\"[0,2200][1080,2340]\">\
<node text=\"消息\" class=\"android.widget.TextView\" bounds=\"[0,2200][540,2340]\" />\
<node text=\"通讯录\" class=\"android.widget.TextView\" bounds=\"[540,2200][1080,2340]\" />\
</node></node></hierarchy>";
        let tree = UiTree::parse(xml).unwrap();
        let top = |s: &Selector| tree.find(s).map(|n| n.bounds.top);
        let label = Selector {
            label: Some("消息".into()),
            ..Selector::default()
        };
        assert_eq!(top(&label), Some(0), "the title comes first");
        let last = Selector {
            nth: Some(-1),
            ..label.clone()
        };
        assert_eq!(top(&last), Some(2200));
        let in_tabs = Selector {
            inside: Some(Box::new(Selector::resource_id("tabs"))),
            ..label.clone()
        };
        assert_eq!(top(&in_tabs), Some(2200));
        let text = Selector {
            class: Some("android.widget.TextView".into()),
            ..Selector::default()
        };
        let nth = |n: i64| {
            top(&Selector {
                nth: Some(n),
                ..text.clone()
            })
        };
        assert_eq!(
            (nth(1), nth(2), nth(5), nth(6)),
            (Some(0), Some(100), Some(2200), None)
        );
        assert_eq!((nth(-1), nth(-5), nth(-6)), (Some(2200), Some(0), None));
        let second_in_list = Selector {
            nth: Some(2),
            inside: Some(Box::new(Selector::resource_id("list"))),
            ..text.clone()
        };
        assert_eq!(top(&second_in_list), Some(200));
        // `nth` of the container: inside the second of two bars (there is one).
        let nowhere = Selector {
            inside: Some(Box::new(Selector {
                nth: Some(2),
                class: Some("bar".into()),
                ..Selector::default()
            })),
            ..label.clone()
        };
        assert_eq!(top(&nowhere), None);
        let scoped = tree.find_in(
            &Selector {
                nth: Some(-1),
                ..text.clone()
            },
            Some(2),
        );
        assert_eq!(scoped.map(|n| n.text.as_str()), Some("b"));
        assert!(Selector {
            nth: Some(1),
            inside: in_tabs.inside.clone(),
            ..Selector::default()
        }
        .is_empty());
        assert_eq!(last.to_string(), "{label=\"消息\", nth=-1}");
        assert_eq!(
            in_tabs.to_string(),
            "{label=\"消息\", inside={resource_id=\"tabs\"}}"
        );
    }

    #[test]
    fn parses_nodes_in_document_order() {
        let tree = UiTree::parse(DUMP).unwrap();
        assert_eq!(tree.nodes.len(), 4);
        assert_eq!(tree.nodes[1].text, "张三");
        assert_eq!(tree.nodes[1].parent, Some(0));
        assert_eq!(tree.nodes[1].depth, 1);
        assert_eq!(tree.nodes[1].bounds.center(), Point { x: 540, y: 250 });
        assert_eq!(tree.focused().unwrap().content_desc, "输入框");
        assert_eq!(tree.texts(), vec!["张三", "输入框", "hidden"]);
    }

    #[test]
    fn text_around_the_document_is_ignored() {
        let noisy = format!("{DUMP}\nUI hierchary dumped to: /dev/tty\n");
        assert_eq!(UiTree::parse(&noisy).unwrap().nodes.len(), 4);
    }

    #[test]
    fn a_busy_screen_is_not_a_dump() {
        let err = UiTree::parse("ERROR: could not get idle state.\n").unwrap_err();
        assert_eq!(err.0, "ERROR: could not get idle state.");
        assert!(UiTree::parse("").is_err());
        assert!(UiTree::parse("<?xml version='1.0' ?><hierarchy><node").is_err());
        assert!(UiTree::parse("<?xml version='1.0' ?><other/>").is_err());
    }

    #[test]
    fn selectors_match_every_field_they_set() {
        let tree = UiTree::parse(DUMP).unwrap();
        assert_eq!(tree.find(&Selector::text("张三")).unwrap().bounds.top, 200);
        let editor = Selector::resource_id("com.tencent.wework:id/input_editor");
        assert!(tree.find(&editor).is_some());
        let both = Selector {
            text: Some("张三".into()),
            class: Some("android.widget.EditText".into()),
            ..Selector::default()
        };
        assert!(tree.find(&both).is_none());
        let desc = Selector {
            desc_contains: Some("输入".into()),
            ..Selector::default()
        };
        assert_eq!(tree.find_all(&desc).count(), 1);
        assert!(
            tree.find(&Selector::text("hidden")).is_none(),
            "no area, no match"
        );
        assert!(tree.contains_text("张"));
        assert_eq!(
            both.to_string(),
            "{text=\"张三\", class=\"android.widget.EditText\"}"
        );
    }

    #[test]
    fn bounds_parse_strictly() {
        assert_eq!(
            Bounds::parse("[1,2][3,4]"),
            Some(Bounds {
                left: 1,
                top: 2,
                right: 3,
                bottom: 4
            })
        );
        assert_eq!(Bounds::parse("[1,2]"), None);
        assert_eq!(Bounds::parse("1,2][3,4"), None);
        assert_eq!(Bounds::parse("[a,2][3,4]"), None);
    }
}
