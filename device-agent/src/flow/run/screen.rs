//! Reading the screen: every dump watches for interrupts and unknown
//! dialogs (dismissing what the flow says to dismiss), and locating a step's
//! target, near an anchor and scrolling a list when the file says.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};
use youmi_protocol::task_error::UNEXPECTED_DIALOG;

use crate::flow::dialog::{self, Dialog, RISK_PHRASES};
use crate::flow::failure::{phone_error, Failure, Stop};
use crate::flow::file::{
    Action, Aim, FlowFile, InterruptAction, Locate, SelectorTemplate, Step, RISK_CONTROL,
};
use crate::phone::{Bounds, Point, Selector, UiNode, UiTree};

use super::{Binding, Run};

/// How long to let a dismissed popup go away before reading the screen again.
const DISMISS_SETTLE: Duration = Duration::from_millis(300);
/// How many times in a row one read of the screen may dismiss popups before
/// the popup counts as one that will not go away.
const MAX_DISMISS_IN_A_ROW: u32 = 3;
/// How many popups one task may dismiss in all.
const MAX_DISMISSALS: u32 = 20;

impl<'a> Run<'a> {
    /// Reads the screen, dealing with dialogs and interrupts first: a dialog
    /// that says a risk-control phrase ends the task with `risk_control`,
    /// whatever its buttons; a popup the file says to dismiss is dismissed
    /// and the screen read again; one it says to fail on ends the task; any
    /// other dialog ends it with `unexpected_dialog`, unless the running step
    /// looks for something in it.
    pub(crate) async fn dump(&mut self) -> Result<UiTree, Stop> {
        let mut in_a_row = 0;
        loop {
            let tree = self.phone.dump_ui().await.map_err(phone_error)?;
            self.last_tree = Some(tree.clone());
            let file: &'a FlowFile = self.file;
            let shown = dialog::find(&tree);
            if let Some(shown) = &shown {
                let phrases = RISK_PHRASES
                    .iter()
                    .copied()
                    .chain(file.risk_phrases.iter().map(String::as_str));
                if let Some(phrase) = shown.risk_phrase(&tree, phrases) {
                    let texts = shown.texts(&tree).join(" | ");
                    warn!(%phrase, dialog = %texts, "a risk-control warning is on screen");
                    let mut failure = Failure::new(
                        RISK_CONTROL,
                        format!(
                            "WeCom shows a risk-control warning for this account (“{phrase}” in the dialog “{texts}”): stop sending from it and have a person check it"
                        ),
                        false,
                    );
                    failure.interrupt = true;
                    return Err(failure.into());
                }
            }
            let Some(interrupt) = file.interrupts.iter().find(|i| i.matches(&tree)) else {
                if let Some(shown) = shown.filter(|d| !self.expects(&tree, d)) {
                    let texts = shown.texts(&tree).join(" | ");
                    warn!(dialog = %texts, "a dialog no interrupt recognises is on screen");
                    let mut failure = Failure::new(
                        UNEXPECTED_DIALOG,
                        format!(
                            "a dialog that no interrupt of the flow file recognises is on screen: “{texts}”; a person must look at the phone (the agent does not press BACK on a dialog it does not know)"
                        ),
                        false,
                    );
                    failure.interrupt = true;
                    return Err(failure.into());
                }
                return Ok(tree);
            };
            let fail = |message: String| -> Stop {
                let mut failure = Failure::new(&interrupt.code, message, interrupt.retryable);
                failure.interrupt = true;
                failure.into()
            };
            match &interrupt.action {
                InterruptAction::Fail => {
                    warn!(interrupt = %interrupt.name, code = %interrupt.code, "the app showed an interrupt that ends the task");
                    return Err(fail(interrupt.message.clone()));
                }
                InterruptAction::Dismiss(buttons) => {
                    in_a_row += 1;
                    self.dismissals += 1;
                    if in_a_row > MAX_DISMISS_IN_A_ROW || self.dismissals > MAX_DISMISSALS {
                        return Err(fail(format!(
                            "{} (it kept coming back after being dismissed)",
                            interrupt.message
                        )));
                    }
                    let Some(button) = buttons.iter().find_map(|s| tree.find(s)) else {
                        return Err(fail(format!(
                            "{} (none of its dismiss buttons is on screen)",
                            interrupt.message
                        )));
                    };
                    info!(interrupt = %interrupt.name, button = %button.text, "dismissing a popup");
                    self.phone
                        .tap(button.bounds.center())
                        .await
                        .map_err(phone_error)?;
                    self.pause(DISMISS_SETTLE).await?;
                }
            }
        }
    }

    /// Whether the running step looks for something inside `shown`: then the
    /// dialog is the step's own (a confirmation, a menu), not an unknown one.
    pub(super) fn expects(&self, tree: &UiTree, shown: &Dialog) -> bool {
        (0..tree.nodes.len()).any(|index| {
            shown.contains(index) && self.expected.iter().any(|s| tree.is_match(s, index))
        })
    }

    /// The selectors `step` looks for, rendered for this task: its target,
    /// the target's anchor, its `fail_on`, what it asserts, `launch`'s home.
    pub(super) fn looked_for(&self, step: &'a Step, binding: Binding<'a>) -> Vec<Selector> {
        let mut templates: Vec<&SelectorTemplate> = Vec::new();
        let locate = |locate: &'a Locate, out: &mut Vec<&'a SelectorTemplate>| {
            out.push(&locate.target);
            out.extend(locate.near.as_ref().map(|near| &near.anchor));
            out.extend(&locate.fail_on);
        };
        match &step.action {
            Action::Launch { home, .. } => templates.push(home),
            Action::Find { locate: l, .. } => locate(l, &mut templates),
            Action::Tap {
                aim: Aim::Find(l), ..
            }
            | Action::LongPress {
                aim: Aim::Find(l), ..
            }
            | Action::Clear { aim: Aim::Find(l) } => locate(l, &mut templates),
            Action::WaitFor { locate: l, .. } => locate(l, &mut templates),
            Action::Branch { cases, .. } => {
                templates.extend(cases.iter().map(|case| &case.present));
            }
            Action::Assert { selector, near, .. } => {
                templates.push(selector);
                templates.extend(near.as_ref().map(|near| &near.anchor));
            }
            _ => {}
        }
        // A selector that cannot be rendered fails the step itself, later.
        templates
            .into_iter()
            .filter_map(|t| self.selector(t, binding).ok())
            .collect()
    }

    /// Reads the screen before an action that does not read it itself (a
    /// key, a swipe, typing, a tap on a stored node), so that a dialog stops
    /// the task before the action lands on it.
    pub(super) async fn look(&mut self) -> Result<(), Stop> {
        self.dump().await.map(drop)
    }

    /// Reads the screen once more after a flow's last step, so that a
    /// warning its last action brought up is not missed.
    pub(crate) async fn look_after(&mut self) -> Result<(), Stop> {
        self.expected.clear();
        self.look().await
    }

    /// Reads the screen until `target` shows (near `near`), or until the
    /// timeout; a `fail_on` node ends the search at once when it shows.
    /// With `scroll`, each read that does not show the target is followed
    /// by a swipe through the list, until the swipes run out or one changes
    /// nothing (the end of the list); then the reads go on until the timeout.
    pub(super) async fn locate(
        &mut self,
        locate: &Locate,
        binding: Binding<'a>,
    ) -> Result<Located, Stop> {
        let target = self.selector(&locate.target, binding)?;
        let near = self.near(&locate.near, binding)?;
        let fail_on = locate
            .fail_on
            .iter()
            .map(|s| self.selector(s, binding))
            .collect::<Result<Vec<_>, _>>()?;
        let within = match locate.scroll.as_ref().and_then(|s| s.within.as_ref()) {
            Some(within) => Some(self.selector(within, binding)?),
            None => None,
        };
        let mut swipes = 0;
        let mut list_end = false;
        let mut before: Option<Vec<String>> = None;
        let deadline = Instant::now() + locate.timeout;
        loop {
            let tree = self.dump().await?;
            if let Some(node) = find(&tree, &target, near.as_ref()) {
                return Ok(Located::Found(node.clone()));
            }
            if let Some(shown) = fail_on.iter().find(|s| tree.find(s).is_some()) {
                return Ok(Located::FailOn(shown.clone()));
            }
            if let Some(scroll) = &locate.scroll {
                let (bounds, seen) = match list_area(&tree, within.as_ref()) {
                    Some((bounds, texts)) => (Some(bounds), Some(texts)),
                    None => (None, None),
                };
                if before.is_some() && before == seen {
                    if !list_end {
                        debug!(swipes, "the list did not move: its end is reached");
                    }
                    list_end = true;
                }
                if let (false, true, Some(bounds)) = (list_end, swipes < scroll.max, bounds) {
                    before = seen;
                    swipes += 1;
                    let (from, to) = scroll_gesture(bounds, scroll.down);
                    debug!(swipes, "scrolling for {target}");
                    self.phone
                        .swipe(from, to, scroll.duration)
                        .await
                        .map_err(phone_error)?;
                    self.pause(locate.poll).await?;
                    continue;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Located::Missing {
                    selector: target,
                    swipes,
                    list_end,
                });
            }
            self.pause(locate.poll.min(deadline - now)).await?;
        }
    }

    /// The node a tap, long press or clear acts on.
    pub(super) async fn aim(
        &mut self,
        step: &Step,
        aim: &Aim,
        binding: Binding<'a>,
    ) -> Result<UiNode, Stop> {
        match aim {
            Aim::Stored(name) => self.stored.get(name).cloned().ok_or_else(|| {
                Failure::new(
                    "flow_error",
                    format!(
                        "no node is stored as `{name}` yet: the `find` that stores it has not run"
                    ),
                    false,
                )
                .into()
            }),
            Aim::Find(locate) => {
                let located = self.locate(locate, binding).await?;
                self.found(step, binding, locate, located)
            }
        }
    }

    /// The node a search found, or the step's failure.
    pub(super) fn found(
        &self,
        step: &Step,
        binding: Binding<'a>,
        locate: &Locate,
        located: Located,
    ) -> Result<UiNode, Stop> {
        match located {
            Located::Found(node) => Ok(node),
            Located::Missing {
                selector,
                swipes,
                list_end,
            } => {
                let mut message = format!(
                    "{selector} did not appear within {:.1} s",
                    locate.timeout.as_secs_f64()
                );
                if locate.scroll.is_some() {
                    message.push_str(&format!(
                        " after {swipes} scroll swipe(s){}",
                        if list_end {
                            " (the end of the list was reached)"
                        } else {
                            ""
                        }
                    ));
                }
                Err(self.step_failure(step, binding, "element_not_found", message, true))
            }
            Located::FailOn(shown) => Err(self.step_failure(
                step,
                binding,
                "element_not_found",
                format!("{shown} appeared instead"),
                false,
            )),
        }
    }
}

/// What `locate` found.
pub(super) enum Located {
    /// The node.
    Found(UiNode),
    /// Nothing before the timeout.
    Missing {
        /// The selector that was looked for.
        selector: Selector,
        /// How many times the list was swiped.
        swipes: u32,
        /// Whether a swipe moved nothing.
        list_end: bool,
    },
    /// A `fail_on` selector (this one) showed first.
    FailOn(Selector),
}

/// The list a `scroll` swipes in: the bounds of the node `within` finds (of
/// the screen without it) and the texts inside, to tell whether a swipe
/// moved anything. `None` when `within` finds nothing.
fn list_area(tree: &UiTree, within: Option<&Selector>) -> Option<(Bounds, Vec<String>)> {
    let (bounds, range) = match within {
        Some(selector) => {
            let index = tree.find_index(selector)?;
            (tree.nodes[index].bounds, index..tree.subtree_end(index))
        }
        None => (tree.nodes.first()?.bounds, 0..tree.nodes.len()),
    };
    let texts = tree.nodes[range]
        .iter()
        .filter_map(|n| {
            let label = if n.text.is_empty() {
                &n.content_desc
            } else {
                &n.text
            };
            (!label.is_empty()).then(|| format!("{label}@{}", n.bounds))
        })
        .collect();
    Some((bounds, texts))
}

/// One scrolling swipe in `area`: from three quarters down to one quarter
/// (revealing what is below) or back, along the middle.
fn scroll_gesture(area: Bounds, down: bool) -> (Point, Point) {
    let x = (area.left + area.right) / 2;
    let height = area.bottom - area.top;
    let low = Point {
        x,
        y: area.top + height * 3 / 4,
    };
    let high = Point {
        x,
        y: area.top + height / 4,
    };
    if down {
        (low, high)
    } else {
        (high, low)
    }
}

/// The node `selector` finds, near `near` when given: among the descendants
/// of the anchor's ancestor `depth` levels up, nearest level first.
pub(crate) fn find<'t>(
    tree: &'t UiTree,
    selector: &Selector,
    near: Option<&(Selector, u32)>,
) -> Option<&'t UiNode> {
    let Some((anchor, depth)) = near else {
        return tree.find(selector);
    };
    let anchors = match anchor.nth {
        Some(_) => tree.find_index(anchor).into_iter().collect(),
        None => tree.matching(anchor, None),
    };
    for index in anchors {
        let mut scope = index;
        for _level in 0..=*depth {
            if let Some(found) = tree.find_in(selector, Some(scope)) {
                return Some(found);
            }
            match tree.nodes[scope].parent {
                Some(parent) => scope = parent,
                None => break,
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rows of 新的客户: 陈七's is already accepted, 周八's is not.
    const REQUESTS: &str = r#"<hierarchy><node class="android.widget.ListView" bounds="[0,0][1080,2000]">
<node class="android.widget.RelativeLayout" bounds="[0,0][1080,200]">
  <node text="陈七" bounds="[200,30][800,90]" />
  <node text="已添加" bounds="[840,50][1044,150]" />
</node>
<node class="android.widget.RelativeLayout" bounds="[0,200][1080,400]">
  <node text="周八" bounds="[200,230][800,290]" />
  <node text="通过" bounds="[840,250][1044,350]" />
</node>
</node></hierarchy>"#;

    #[test]
    fn near_finds_the_target_in_the_anchors_row_only() {
        let tree = UiTree::parse(REQUESTS).unwrap();
        let accept = Selector::text("通过");
        let near = |name: &str, depth| Some((Selector::text(name), depth));
        let found = find(&tree, &accept, near("周八", 1).as_ref()).unwrap();
        assert_eq!(found.bounds.top, 250);
        assert!(
            find(&tree, &accept, near("陈七", 1).as_ref()).is_none(),
            "周八's button is not in 陈七's row"
        );
        assert!(
            find(&tree, &accept, near("陈七", 2).as_ref()).is_some(),
            "two levels up is the whole list"
        );
        assert!(find(&tree, &accept, near("周八", 0).as_ref()).is_none());
        assert!(find(&tree, &accept, near("王五", 3).as_ref()).is_none());
        assert_eq!(find(&tree, &accept, None).unwrap().bounds.top, 250);
    }

    #[test]
    fn scrolling_swipes_along_the_lists_middle_and_sees_its_texts() {
        let tree = UiTree::parse(REQUESTS).unwrap();
        let screen = tree.nodes[0].bounds;
        let (whole, texts) = list_area(&tree, None).unwrap();
        assert_eq!(whole, screen);
        assert!(texts.iter().any(|t| t.starts_with("周八@")), "{texts:?}");
        let (from, to) = scroll_gesture(whole, true);
        assert_eq!(from.x, (screen.left + screen.right) / 2);
        assert!(from.y > to.y, "down: the finger moves up");
        let (up_from, up_to) = scroll_gesture(whole, false);
        assert_eq!((up_from, up_to), (to, from));
        // Within a list: its bounds, and only its texts.
        let row = Selector {
            nth: Some(-1),
            ..Selector::text("周八")
        };
        assert!(list_area(&tree, Some(&Selector::text("nobody"))).is_none());
        let (bounds, texts) = list_area(&tree, Some(&row)).unwrap();
        assert_eq!(bounds, tree.find(&row).unwrap().bounds);
        assert_eq!(texts.len(), 1, "{texts:?}");
    }
}
