//! What a loaded flow file is made of: steps and what each does ([`Action`]), how a
//! step finds its node ([`Locate`], [`SelectorTemplate`]), conditions, interrupts,
//! and the variables each step uses.

use std::time::Duration;

use crate::flow::expr::EvalError;
use crate::flow::template::{RenderError, Template};
use crate::phone::{Key, Selector, UiTree};

/// A selector field, for [`SelectorTemplate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SelectorField {
    Text,
    TextContains,
    Desc,
    DescContains,
    ResourceId,
    Class,
    Label,
    LabelContains,
}

/// A selector whose strings are templates, filled in for each task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SelectorTemplate {
    /// The fields the selector sets, each a template.
    fields: Vec<(SelectorField, Template)>,
    /// Which match: a number, or a template that gives one.
    pub(super) nth: Option<Nth>,
    /// The selector of the node the match must lie inside.
    pub(super) inside: Option<Box<SelectorTemplate>>,
}

/// A selector's `nth`: written as a number, or as a template such as
/// `"{media.number + 1}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Nth {
    Fixed(i64),
    Computed(Template),
}

impl SelectorTemplate {
    pub(super) fn new(selector: &Selector) -> Result<SelectorTemplate, String> {
        let mut fields = Vec::new();
        for (field, value) in [
            (SelectorField::Text, &selector.text),
            (SelectorField::TextContains, &selector.text_contains),
            (SelectorField::Desc, &selector.desc),
            (SelectorField::DescContains, &selector.desc_contains),
            (SelectorField::ResourceId, &selector.resource_id),
            (SelectorField::Class, &selector.class),
            (SelectorField::Label, &selector.label),
            (SelectorField::LabelContains, &selector.label_contains),
        ] {
            if let Some(value) = value {
                fields.push((field, Template::parse(value).map_err(|e| e.to_string())?));
            }
        }
        Ok(SelectorTemplate {
            fields,
            nth: selector.nth.map(Nth::Fixed),
            inside: selector
                .inside
                .as_deref()
                .map(|inside| SelectorTemplate::new(inside).map(Box::new))
                .transpose()?,
        })
    }

    /// The variables its templates use (its `nth`'s and its container's too).
    pub(crate) fn variables(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .fields
            .iter()
            .flat_map(|(_, template)| template.variables())
            .collect();
        if let Some(Nth::Computed(template)) = &self.nth {
            out.extend(template.variables());
        }
        if let Some(inside) = &self.inside {
            out.extend(inside.variables());
        }
        out
    }

    /// The selector for one task; `lookup` gives variable values.
    pub(crate) fn render<E: From<EvalError>>(
        &self,
        lookup: &impl Fn(&str) -> Result<String, E>,
    ) -> Result<Selector, E> {
        let mut selector = Selector::default();
        for (field, template) in &self.fields {
            let value = Some(render(template, lookup)?);
            match field {
                SelectorField::Text => selector.text = value,
                SelectorField::TextContains => selector.text_contains = value,
                SelectorField::Desc => selector.desc = value,
                SelectorField::DescContains => selector.desc_contains = value,
                SelectorField::ResourceId => selector.resource_id = value,
                SelectorField::Class => selector.class = value,
                SelectorField::Label => selector.label = value,
                SelectorField::LabelContains => selector.label_contains = value,
            }
        }
        selector.nth = match &self.nth {
            None => None,
            Some(Nth::Fixed(n)) => Some(*n),
            Some(Nth::Computed(template)) => {
                let value = render(template, lookup)?;
                match value.trim().parse::<i64>() {
                    Ok(n) if n != 0 => Some(n),
                    _ => {
                        return Err(E::from(EvalError::NotANumber {
                            name: format!("nth = \"{template}\""),
                            value,
                        }))
                    }
                }
            }
        };
        selector.inside = match &self.inside {
            Some(inside) => Some(Box::new(inside.render(lookup)?)),
            None => None,
        };
        Ok(selector)
    }
}

/// Renders `template` with a fallible lookup (the runner's lookup fails with
/// a task failure when a value is missing; an expression that cannot be
/// worked out is an [`EvalError`]).
pub(crate) fn render<E: From<EvalError>>(
    template: &Template,
    lookup: &impl Fn(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut failure = None;
    let rendered = template.render(|name| match lookup(name) {
        Ok(value) => Some(value),
        Err(error) => {
            failure.get_or_insert(error);
            None
        }
    });
    match (rendered, failure) {
        (_, Some(error)) => Err(error),
        (Ok(text), None) => Ok(text),
        (Err(RenderError::Eval(error)), None) => Err(E::from(error)),
        // The lookup gave every value, so no value can be missing.
        (Err(RenderError::Missing(_)), None) => Ok(String::new()),
    }
}

/// Where the target is relative to another node: among the descendants of the
/// anchor's ancestor `depth` levels up (0 is the anchor itself), trying the
/// nearest level first. This picks the "通过" button in one person's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Near {
    /// The node the target is near.
    pub anchor: SelectorTemplate,
    /// How many levels up to look.
    pub depth: u32,
}

/// How to find a node: what, near what, and how long to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Locate {
    /// The node.
    pub target: SelectorTemplate,
    /// Narrows the search to the neighbourhood of another node.
    pub near: Option<Near>,
    /// Nodes whose appearance ends the search at once, as the step's failure.
    pub fail_on: Vec<SelectorTemplate>,
    /// Swipe through a list while the target is not on screen.
    pub scroll: Option<Scroll>,
    /// How long to keep reading the screen until it shows up.
    pub timeout: Duration,
    /// How long to wait between reads.
    pub poll: Duration,
}

/// Scrolling a list until the target shows: at most `max` swipes, stopping
/// early when a swipe changes nothing (the end of the list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scroll {
    /// The most swipes.
    pub max: u32,
    /// `down` reveals what is below (the finger moves up), `up` what is above.
    pub down: bool,
    /// The list to swipe in (its bounds); the whole screen without it.
    pub within: Option<SelectorTemplate>,
    /// How long one swipe takes.
    pub duration: Duration,
}

/// One case of a `branch`: when `present` shows, run `call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Case {
    /// What the screen must show.
    pub present: SelectorTemplate,
    /// The procedure to run then.
    pub call: String,
}

/// What a tap, long press or clear acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Aim {
    /// A node looked up on the screen.
    Find(Box<Locate>),
    /// A node an earlier `find` stored, by name.
    Stored(String),
}

/// When a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    /// Only when the variable has a non-empty value.
    If(String),
    /// Only when the variable has no value or an empty one.
    Unless(String),
}

/// How a step's own failure is reported, when the file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OnFail {
    /// The error code, instead of `element_not_found` (required for `assert` and `fail`).
    pub code: Option<String>,
    /// The message for people.
    pub message: Option<Template>,
    /// Whether running the task again may help.
    pub retryable: Option<bool>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Brings the app to the front and backs out to its start screen.
    Launch {
        /// What the start screen shows.
        home: SelectorTemplate,
        /// Force-stop the app first.
        restart: bool,
        /// How long a screen must stay the same before backing out of it.
        settle: Duration,
        /// How long reaching the start screen may take.
        timeout: Duration,
        /// How many BACK presses the attempt's launches may spend without
        /// reaching the start screen (counted across its `launch` steps).
        max_backs: u32,
        /// How many times they may start the app again after it left the front.
        max_relaunches: u32,
    },
    /// Looks a node up and stores it.
    Find {
        /// The node.
        locate: Box<Locate>,
        /// The name it is stored under.
        store: String,
    },
    /// Taps a node's centre.
    Tap {
        /// The node.
        aim: Aim,
        /// Also store the node under this name.
        store: Option<String>,
    },
    /// Presses and holds a node's centre.
    LongPress {
        /// The node.
        aim: Aim,
        /// How long to hold.
        hold: Duration,
    },
    /// Types text into the focused field.
    Type {
        /// The text.
        text: Template,
        /// Whether to read the screen afterwards and check the text arrived.
        check: bool,
    },
    /// Empties a text field.
    Clear {
        /// The field.
        aim: Aim,
    },
    /// Waits until a node appears (or, with `gone`, disappears).
    WaitFor {
        /// The node.
        locate: Box<Locate>,
        /// Wait for it to go away instead.
        gone: bool,
        /// Store the node under this name.
        store: Option<String>,
    },
    /// Checks the screen once: a node is there (or is not).
    Assert {
        /// The node.
        selector: SelectorTemplate,
        /// Narrows the check to the neighbourhood of another node.
        near: Option<Near>,
        /// Whether it must be there (`present`) or not (`absent`).
        present: bool,
    },
    /// Presses BACK.
    Back,
    /// Presses a key.
    Key(Key),
    /// Swipes between two points given as fractions of the screen.
    Swipe {
        /// Start, `[x, y]` in 0..=1.
        from: [f64; 2],
        /// End, `[x, y]` in 0..=1.
        to: [f64; 2],
        /// How long the swipe takes.
        duration: Duration,
    },
    /// Waits a moment.
    Sleep(Duration),
    /// Copies the current item's or media's file to the phone's gallery.
    PushMedia,
    /// Runs a procedure.
    Call(String),
    /// Runs a procedure once per recipient of a mass send.
    ForEachRecipient {
        /// The procedure.
        procedure: String,
        /// Failures with these codes skip the recipient instead of ending the task.
        skip_codes: Vec<String>,
    },
    /// Runs, per message item, the procedure for its type.
    ForEachItem {
        /// For text items.
        text: String,
        /// For image items.
        image: String,
        /// For link items.
        link: String,
        /// For file items.
        file: String,
    },
    /// Runs a procedure once per Moments media file.
    ForEachMedia(String),
    /// Runs a procedure once per tag: a new friend's `tags`, or a Moments
    /// post's `visible_to_tags`.
    ForEachTag(String),
    /// Reads the screen until one case's node shows, then runs its
    /// procedure (the first case that shows, in file order); `otherwise`
    /// when none does in time.
    Branch {
        /// The cases, in order.
        cases: Vec<Case>,
        /// The procedure when no case shows; without it, the step fails.
        otherwise: Option<String>,
        /// How long to read the screen for a case.
        timeout: Duration,
        /// How long to wait between reads.
        poll: Duration,
    },
    /// Ends the task with the step's code and message.
    Fail,
}

impl Action {
    /// The procedures a `call` or a `branch` may run (not the loops').
    pub(crate) fn called(&self) -> Vec<&String> {
        match self {
            Action::Call(procedure) => vec![procedure],
            Action::Branch {
                cases, otherwise, ..
            } => cases
                .iter()
                .map(|case| &case.call)
                .chain(otherwise.as_ref())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// One step of a flow or procedure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    /// Its name in progress reports and failures (the `do` word unless the file names it).
    pub name: String,
    /// The `do` word.
    pub kind: &'static str,
    /// When it runs.
    pub condition: Option<Condition>,
    /// What it does.
    pub action: Action,
    /// How its failure is reported.
    pub on_fail: OnFail,
    /// Where it is in the file (from 1), for load errors.
    pub line: Option<usize>,
    /// Whether this tap is what delivers the unit (the item, or the whole
    /// task) to the customer, and how to tell whether it did.
    pub sends: Option<Sends>,
}

/// What a `sends = true` tap carries: the tap is journaled before and after
/// (see `crate::delivery`), and a retry never repeats it blindly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sends {
    /// The procedure that tells, from the screen where the unit's steps
    /// begin, whether an unconfirmed tap arrived: it runs to its end when
    /// the unit is there, and fails with [`NOT_SENT`] when it is not.
    pub check: Option<String>,
}

/// The code a check procedure fails with when the unit is not on screen.
pub(crate) const NOT_SENT: &str = "not_sent";

impl Step {
    /// The name a `find`, `tap` or `wait_for` stores a node under.
    pub(super) fn stores(&self) -> Option<&str> {
        match &self.action {
            Action::Find { store, .. } => Some(store),
            Action::Tap { store, .. } | Action::WaitFor { store, .. } => store.as_deref(),
            _ => None,
        }
    }

    /// Every template variable the step uses, its condition included.
    pub(super) fn variables(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        match &self.condition {
            Some(Condition::If(name) | Condition::Unless(name)) => out.push(name),
            None => {}
        }
        if let Some(message) = &self.on_fail.message {
            out.extend(message.variables());
        }
        match &self.action {
            Action::Launch { home, .. } => out.extend(home.variables()),
            Action::Find { locate, .. } => locate_variables(locate, &mut out),
            Action::Tap { aim, .. } | Action::LongPress { aim, .. } | Action::Clear { aim } => {
                if let Aim::Find(locate) = aim {
                    locate_variables(locate, &mut out);
                }
            }
            Action::Type { text, .. } => out.extend(text.variables()),
            Action::WaitFor { locate, .. } => locate_variables(locate, &mut out),
            Action::Branch { cases, .. } => {
                for case in cases {
                    out.extend(case.present.variables());
                }
            }
            Action::Assert { selector, near, .. } => {
                out.extend(selector.variables());
                if let Some(near) = near {
                    out.extend(near.anchor.variables());
                }
            }
            _ => {}
        }
        out
    }
}

/// The variables a node lookup uses: its target's, its anchor's, its
/// `fail_on`'s and its list's.
fn locate_variables<'a>(locate: &'a Locate, out: &mut Vec<&'a str>) {
    out.extend(locate.target.variables());
    if let Some(near) = &locate.near {
        out.extend(near.anchor.variables());
    }
    for fail_on in &locate.fail_on {
        out.extend(fail_on.variables());
    }
    if let Some(within) = locate.scroll.as_ref().and_then(|s| s.within.as_ref()) {
        out.extend(within.variables());
    }
}

/// What to do about an interrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterruptAction {
    /// End the task with the interrupt's code.
    Fail,
    /// Tap the first of these that is on screen, then go on; fail with the
    /// interrupt's code when none is.
    Dismiss(Vec<Selector>),
}

/// A screen the app shows unasked (an update prompt, a risk-control warning,
/// a system permission dialog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interrupt {
    /// Its name in logs.
    pub name: String,
    /// The error code when it ends a task.
    pub code: String,
    /// It is showing when any of these is on screen (or when the list is empty)...
    pub any: Vec<Selector>,
    /// ...and all of these are.
    pub all: Vec<Selector>,
    /// What to do about it.
    pub action: InterruptAction,
    /// The message for people when it ends a task.
    pub message: String,
    /// Whether a task it ended may be run again (never for `risk_control`).
    pub retryable: bool,
}

impl Interrupt {
    /// Whether `tree` shows it.
    pub(crate) fn matches(&self, tree: &UiTree) -> bool {
        (self.any.is_empty() || self.any.iter().any(|s| tree.find(s).is_some()))
            && self.all.iter().all(|s| tree.find(s).is_some())
    }
}

/// The code that can never be retried: a person must look at the account.
pub(crate) const RISK_CONTROL: &str = "risk_control";
