//! One flow file: its header (format, app, versions), its interrupts, its
//! flows (one per task kind) and its procedures (shared step lists), parsed
//! and checked in full when the file is loaded. `docs/flows.md` describes the
//! format for people who write these files.
//!
//! Everything that can be checked without a phone is checked here, so a bad
//! file is refused when the agent starts rather than half-way through a task:
//! unknown step types and keys, selectors that are malformed or empty,
//! template variables that the task kind (or the loop the step is in) does not
//! give, calls to missing procedures, procedures that call themselves, loops
//! used where there is nothing to loop over, and out-of-range durations.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::{Spanned, Table, Value};
use youmi_protocol::task_error;
use youmi_protocol::TaskKind;

use super::expr::EvalError;
use super::template::{RenderError, Template};
use super::vars::{self, Collections};
use super::version::Coverage;
use super::LoadError;
use crate::phone::{Key, Selector, UiTree};

/// The flow file format this agent reads.
pub const FORMAT: i64 = 1;

/// How long a step looks for its target when the file does not say.
const DEFAULT_FIND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `wait_for` waits when the file does not say.
const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the screen is read again while waiting.
const DEFAULT_POLL: Duration = Duration::from_millis(500);
/// The longest wait a step may ask for: a task should fail, not hang.
const MAX_TIMEOUT_MS: u64 = 120_000;
/// The shortest poll interval: reading the screen costs the phone real work.
const MIN_POLL_MS: u64 = 50;
/// The longest `sleep`: flows wait for things with `wait_for`, not with time.
const MAX_SLEEP_MS: u64 = 10_000;
/// The longest press or swipe.
const MAX_GESTURE_MS: u64 = 10_000;
/// A long press lasts this long when the file does not say (Android's long
/// press needs about 500 ms; 800 ms leaves room for a slow phone).
const DEFAULT_HOLD: Duration = Duration::from_millis(800);
/// A swipe lasts this long when the file does not say.
const DEFAULT_SWIPE: Duration = Duration::from_millis(300);
/// How long a screen must stay the same before `launch` presses back on it
/// (a splash screen or an animation must not be backed out of).
const DEFAULT_SETTLE: Duration = Duration::from_millis(1000);
/// How long `launch` may take to reach the start screen.
const DEFAULT_LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How many BACK presses an attempt's `launch` steps may spend without
/// reaching the start screen. The deepest screens the built-in flows leave
/// behind (a chat with its keyboard and more-functions panel open, over a
/// profile and a search) take four; six leaves room for a menu or two.
const DEFAULT_MAX_BACKS: u32 = 6;
/// How many times an attempt's `launch` steps may start the app again after
/// it left the front without reaching the start screen: once for a BACK
/// that left the app from its first screen, once more for a crash.
const DEFAULT_MAX_RELAUNCHES: u32 = 2;
/// The largest `max_backs` a step may ask for.
const MAX_MAX_BACKS: u32 = 50;
/// The largest `max_relaunches` a step may ask for.
const MAX_MAX_RELAUNCHES: u32 = 10;
/// How many levels up `near` looks for the target when the file does not say.
const DEFAULT_NEAR_DEPTH: u32 = 1;

/// The step types, as `do` names them.
const STEP_TYPES: &[&str] = &[
    "launch",
    "find",
    "tap",
    "long_press",
    "type",
    "clear",
    "wait_for",
    "assert",
    "back",
    "key",
    "swipe",
    "sleep",
    "push_media",
    "call",
    "for_each_recipient",
    "for_each_item",
    "for_each_media",
    "for_each_tag",
    "branch",
    "fail",
];

/// The keys of a flow file's top level.
const FILE_KEYS: &[&str] = &[
    "format",
    "app",
    "versions",
    "min_version",
    "max_version",
    "description",
    "risk",
    "interrupts",
    "flows",
    "procedures",
];
/// The keys of `[risk]`.
const RISK_KEYS: &[&str] = &["phrases"];
/// The keys of one flow, `[flows.<kind>]`.
const FLOW_KEYS: &[&str] = &["steps", "description"];
/// The keys of an interrupt.
const INTERRUPT_KEYS: &[&str] = &[
    "name",
    "code",
    "action",
    "any",
    "all",
    "dismiss",
    "message",
    "retryable",
];
/// The keys of a selector.
const SELECTOR_KEYS: &[&str] = &[
    "text",
    "text_contains",
    "desc",
    "desc_contains",
    "resource_id",
    "class",
    "label",
    "label_contains",
    "nth",
    "inside",
];
/// The largest `nth`: which of the matches, counted from either end.
const MAX_NTH: u64 = 1000;
/// How many `inside` selectors may nest.
const MAX_INSIDE_DEPTH: usize = 3;
/// The keys every step takes.
const STEP_KEYS: &[&str] = &["do", "name", "if", "unless", "code", "message", "retryable"];
/// The keys that find a node (`target` and its neighbours).
const LOCATE_KEYS: &[&str] = &[
    "target",
    "near",
    "near_depth",
    "fail_on",
    "scroll",
    "timeout_ms",
    "poll_ms",
];
/// The keys of `scroll`.
const SCROLL_KEYS: &[&str] = &["max", "direction", "within", "duration_ms"];
/// The keys of one of `branch`'s cases.
const CASE_KEYS: &[&str] = &["present", "call"];
/// How many swipes `scroll` makes when the file does not say, and at most.
const DEFAULT_SCROLLS: u32 = 10;
const MAX_SCROLLS: u32 = 50;
/// How long one scrolling swipe takes when the file does not say: slow
/// enough not to fling the list past what it looks for.
const DEFAULT_SCROLL_SWIPE: Duration = Duration::from_millis(400);
/// How many selectors `fail_on` and `branch` take.
const MAX_ALTERNATIVES: usize = 16;

/// The keys a step type takes besides [`STEP_KEYS`].
fn step_keys(kind: &str) -> Vec<&'static str> {
    let own: &[&str] = match kind {
        "launch" => &[
            "home",
            "restart",
            "settle_ms",
            "timeout_ms",
            "max_backs",
            "max_relaunches",
        ],
        "find" => &["store"],
        "tap" => &["node", "store", "sends", "verify"],
        "long_press" => &["node", "hold_ms"],
        "clear" => &["node"],
        "type" => &["text", "check"],
        "wait_for" => &["gone", "store"],
        "branch" => &["cases", "otherwise", "timeout_ms", "poll_ms"],
        "assert" => &["present", "absent", "near", "near_depth"],
        "key" => &["key"],
        "swipe" => &["from", "to", "duration_ms"],
        "sleep" => &["ms"],
        "call" | "for_each_media" | "for_each_tag" => &["procedure"],
        "for_each_recipient" => &["procedure", "skip_codes"],
        "for_each_item" => &["text", "image", "link", "file"],
        _ => &[],
    };
    let locates = matches!(kind, "find" | "tap" | "long_press" | "clear" | "wait_for");
    STEP_KEYS
        .iter()
        .chain(if locates { LOCATE_KEYS } else { &[] })
        .chain(own)
        .copied()
        .collect()
}

/// A flow file, loaded and checked.
#[derive(Debug, Clone)]
pub struct FlowFile {
    /// Where it came from (`wecom-4.1.toml`, or a path), for messages and reports.
    pub(crate) source: String,
    /// The app package the flows drive.
    pub(crate) app: String,
    /// The file's own description, shown in logs.
    pub(crate) description: String,
    /// The app versions it is for.
    pub(crate) coverage: Coverage,
    /// Phrases that make a dialog a risk-control warning, besides the
    /// agent's own ([`super::dialog::RISK_PHRASES`]): the file's `[risk] phrases`.
    pub(crate) risk_phrases: Vec<String>,
    /// Screens the app shows unasked, checked on every screen read.
    pub(crate) interrupts: Vec<Interrupt>,
    /// One step list per task kind.
    pub(crate) flows: BTreeMap<TaskKind, Vec<Step>>,
    /// Named step lists that flows call or loop over.
    pub(crate) procedures: BTreeMap<String, Vec<Step>>,
}

impl FlowFile {
    /// Parses and checks a flow file; `source` names it in errors (a file
    /// name or path).
    pub fn parse(source: &str, text: &str) -> Result<FlowFile, LoadError> {
        let lines = Lines::new(text);
        let file_error = |fields: &Fields, reason: String| LoadError::File {
            file: source.to_owned(),
            line: lines.line(&fields.blamed_path(&[])),
            reason,
        };
        let table: Table = toml::from_str(text).map_err(|e| LoadError::File {
            file: source.to_owned(),
            line: e.span().map(|span| lines.line_at(span.start)),
            reason: format!("not valid TOML: {}", e.message()),
        })?;
        let mut fields = Fields::new(table);
        // The format first: a later format may have keys this agent does not know.
        match fields.take("format") {
            Some(Value::Integer(FORMAT)) => {}
            Some(other) => {
                fields.blame("format");
                return Err(file_error(
                    &fields,
                    format!("`format` is {other}, but this agent reads format {FORMAT} flow files"),
                ));
            }
            None => {
                return Err(file_error(
                    &fields,
                    format!("`format = {FORMAT}` is missing"),
                ))
            }
        }
        fields
            .allow("a flow file", FILE_KEYS)
            .map_err(|e| file_error(&fields, e))?;
        let app = fields
            .string("app")
            .map_err(|e| file_error(&fields, e))?
            .filter(|app| !app.trim().is_empty())
            .ok_or_else(|| {
                file_error(
                    &fields,
                    "`app` (the package, e.g. com.tencent.wework) is missing".to_owned(),
                )
            })?;
        let description = fields
            .string("description")
            .map_err(|e| file_error(&fields, e))?
            .unwrap_or_default();
        let patterns = fields
            .strings("versions")
            .map_err(|e| file_error(&fields, e))?
            .unwrap_or_default();
        for (i, pattern) in patterns.iter().enumerate() {
            Coverage::check_pattern(pattern).map_err(|reason| LoadError::File {
                file: source.to_owned(),
                line: lines.line(&[Seg::Key("versions"), Seg::Index(i)]),
                reason,
            })?;
        }
        let min = fields
            .string("min_version")
            .map_err(|e| file_error(&fields, e))?;
        let max = fields
            .string("max_version")
            .map_err(|e| file_error(&fields, e))?;
        let coverage = Coverage::new(&patterns, min.as_deref(), max.as_deref())
            .map_err(|e| file_error(&fields, e))?;
        let risk_phrases = match fields.take("risk") {
            None => Vec::new(),
            Some(Value::Table(table)) => {
                let mut risk = Fields::new(table);
                let at = |risk: &Fields| lines.line(&risk.blamed_path(&[Seg::Key("risk")]));
                let phrases = risk
                    .allow("`[risk]`", RISK_KEYS)
                    .and_then(|()| risk.strings("phrases"))
                    .and_then(|phrases| {
                        let phrases = phrases.unwrap_or_default();
                        if phrases.iter().any(|p| p.trim().is_empty()) {
                            risk.blame("phrases");
                            return Err(
                                "`phrases` holds an empty phrase, which every dialog would contain"
                                    .to_owned(),
                            );
                        }
                        Ok(phrases.into_iter().map(|p| p.trim().to_owned()).collect())
                    })
                    .map_err(|reason| LoadError::File {
                        file: source.to_owned(),
                        line: at(&risk),
                        reason: format!("`[risk]`: {reason}"),
                    })?;
                risk.finish("`[risk]`").map_err(|reason| LoadError::File {
                    file: source.to_owned(),
                    line: at(&risk),
                    reason,
                })?;
                phrases
            }
            Some(_) => {
                fields.blame("risk");
                return Err(file_error(
                    &fields,
                    "`risk` must be a table ([risk] with `phrases`)".to_owned(),
                ));
            }
        };
        let raw_interrupts = match fields.take("interrupts") {
            None => Vec::new(),
            Some(Value::Array(list)) => list,
            Some(_) => {
                fields.blame("interrupts");
                return Err(file_error(
                    &fields,
                    "`interrupts` must be a list of tables ([[interrupts]])".to_owned(),
                ));
            }
        };
        let raw_flows = match fields.take("flows") {
            None => Table::new(),
            Some(Value::Table(table)) => table,
            Some(_) => {
                fields.blame("flows");
                return Err(file_error(&fields, "`flows` must be a table".to_owned()));
            }
        };
        let raw_procedures = match fields.take("procedures") {
            None => Table::new(),
            Some(Value::Table(table)) => table,
            Some(_) => {
                fields.blame("procedures");
                return Err(file_error(
                    &fields,
                    "`procedures` must be a table".to_owned(),
                ));
            }
        };
        fields
            .finish("a flow file")
            .map_err(|e| file_error(&fields, e))?;

        let mut interrupts = Vec::new();
        for (i, raw) in raw_interrupts.into_iter().enumerate() {
            interrupts.push(parse_interrupt(source, &lines, i + 1, raw)?);
        }

        let mut flows = BTreeMap::new();
        for (name, raw) in raw_flows {
            let flow_line = |key: Option<&str>| {
                let mut path = vec![Seg::Key("flows"), Seg::Key(&name)];
                path.extend(key.map(Seg::Key));
                lines.line(&path)
            };
            let flow_error = |key: Option<&str>, reason: String| LoadError::File {
                file: source.to_owned(),
                line: flow_line(key),
                reason,
            };
            let kind: TaskKind = name.parse().map_err(|_| {
                let known = TaskKind::ALL.map(TaskKind::as_str);
                flow_error(
                    None,
                    format!(
                        "`flows.{name}` is not a task kind{} (known: {})",
                        did_you_mean(&name, &known),
                        known.join(", ")
                    ),
                )
            })?;
            let place = format!("flow `{name}`");
            let list = match raw {
                Value::Table(table) => {
                    let mut flow = Fields::new(table);
                    flow.allow(&format!("`flows.{name}`"), FLOW_KEYS)
                        .map_err(|e| flow_error(flow.blamed(), e))?;
                    flow.take("description");
                    match flow.take("steps") {
                        Some(Value::Array(list)) => list,
                        _ => {
                            return Err(flow_error(
                                None,
                                format!("`flows.{name}` needs `steps`, a list of steps"),
                            ))
                        }
                    }
                }
                _ => return Err(flow_error(None, format!("`flows.{name}` must be a table"))),
            };
            let path = [Seg::Key("flows"), Seg::Key(&name), Seg::Key("steps")];
            flows.insert(kind, parse_steps(source, &lines, &path, &place, list)?);
        }

        let mut procedures = BTreeMap::new();
        for (name, raw) in raw_procedures {
            let place = format!("procedure `{name}`");
            let path = [Seg::Key("procedures"), Seg::Key(&name)];
            let Value::Array(list) = raw else {
                return Err(LoadError::File {
                    file: source.to_owned(),
                    line: lines.line(&path),
                    reason: format!("`procedures.{name}` must be a list of steps"),
                });
            };
            let steps = parse_steps(source, &lines, &path, &place, list)?;
            procedures.insert(name, steps);
        }

        let file = FlowFile {
            source: source.to_owned(),
            app: app.trim().to_owned(),
            description,
            coverage,
            risk_phrases,
            interrupts,
            flows,
            procedures,
        };
        file.check()?;
        Ok(file)
    }

    /// Where the file came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The app package its flows drive.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The file's description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The versions it covers, as people read them (`4.1.*`, `4.0 to 4.1`).
    pub fn versions(&self) -> String {
        self.coverage.to_string()
    }

    /// Whether it is for app version `version`.
    pub fn covers(&self, version: &str) -> bool {
        self.coverage.covers(version)
    }

    /// Whether it has a flow for `kind`.
    pub fn has_flow(&self, kind: TaskKind) -> bool {
        self.flows.contains_key(&kind)
    }

    /// Checks what needs the whole file: calls, loops, stored nodes and the
    /// template variables each step can use where it runs.
    fn check(&self) -> Result<(), LoadError> {
        let stores: BTreeSet<&str> = self
            .flows
            .values()
            .chain(self.procedures.values())
            .flatten()
            .filter_map(|step| step.stores())
            .collect();
        let mut called = BTreeSet::new();
        for (kind, steps) in &self.flows {
            let scope = Scope {
                vars: vars::of_kind(*kind).into_iter().collect(),
                collections: vars::collections(*kind),
                flow: kind.as_str().to_owned(),
                ..Scope::default()
            };
            let place = format!("flow `{kind}`");
            self.check_list(&place, steps, &scope, &stores, &mut Vec::new(), &mut called)?;
        }
        // A procedure no flow calls is still checked, against every variable
        // any flow has, so that a typo is found before someone calls it.
        let everything = Scope {
            vars: vars::all().into_iter().collect(),
            collections: Collections {
                recipients: true,
                items: true,
                media: true,
                tags: true,
            },
            media_source: true,
            flow: String::new(),
            ..Scope::default()
        };
        for (name, steps) in &self.procedures {
            if !called.contains(name.as_str()) {
                let place = format!("procedure `{name}`");
                let mut stack = vec![name.clone()];
                self.check_list(&place, steps, &everything, &stores, &mut stack, &mut called)?;
            }
        }
        Ok(())
    }

    /// A load error about step `index` (from 0) of `place`, at `line` of the file.
    fn step_error(
        &self,
        place: &str,
        (index, line): (usize, Option<usize>),
        reason: String,
    ) -> LoadError {
        LoadError::Step {
            file: self.source.clone(),
            line,
            place: place.to_owned(),
            step: index + 1,
            reason,
        }
    }

    fn check_list<'a>(
        &'a self,
        place: &str,
        steps: &'a [Step],
        scope: &Scope,
        stores: &BTreeSet<&str>,
        stack: &mut Vec<String>,
        called: &mut BTreeSet<&'a str>,
    ) -> Result<(), LoadError> {
        for (i, step) in steps.iter().enumerate() {
            let fail = |reason: String| self.step_error(place, (i, step.line), reason);
            for name in step.variables() {
                scope.check_variable(name).map_err(&fail)?;
            }
            if let Some(sends) = &step.sends {
                self.check_sends(place, (i, step.line), sends, scope, stores, stack, called)?;
            }
            match &step.action {
                Action::Tap {
                    aim: Aim::Stored(name),
                    ..
                }
                | Action::LongPress {
                    aim: Aim::Stored(name),
                    ..
                }
                | Action::Clear {
                    aim: Aim::Stored(name),
                } if !stores.contains(name.as_str()) => {
                    return Err(fail(format!("no `find` step stores a node named `{name}`")));
                }
                Action::PushMedia if !scope.media_source => {
                    return Err(fail(
                        "push_media needs a media file: use it in the procedure for image or file items, or inside for_each_media"
                            .to_owned(),
                    ));
                }
                Action::Call(_) | Action::Branch { .. } => {
                    for procedure in step.action.called() {
                        self.enter(
                            place,
                            (i, step.line),
                            procedure,
                            scope,
                            stores,
                            stack,
                            called,
                        )?;
                    }
                }
                Action::ForEachRecipient { procedure, .. } => {
                    if !scope.collections.recipients || scope.in_recipient {
                        return Err(fail(self.no_loop(
                            "for_each_recipient",
                            scope,
                            "recipients",
                        )));
                    }
                    let mut inner = scope.clone();
                    inner.in_recipient = true;
                    inner.vars.extend(vars::RECIPIENT);
                    self.enter(
                        place,
                        (i, step.line),
                        procedure,
                        &inner,
                        stores,
                        stack,
                        called,
                    )?;
                }
                Action::ForEachItem {
                    text,
                    image,
                    link,
                    file,
                } => {
                    if !scope.collections.items || scope.in_item {
                        return Err(fail(self.no_loop("for_each_item", scope, "message items")));
                    }
                    for (procedure, extra, media) in [
                        (text, vars::ITEM_TEXT, false),
                        (image, vars::ITEM_MEDIA, true),
                        (link, vars::ITEM_LINK, false),
                        (file, vars::ITEM_MEDIA, true),
                    ] {
                        let mut inner = scope.clone();
                        inner.in_item = true;
                        inner.media_source = media;
                        inner.vars.extend(vars::ITEM);
                        inner.vars.extend(extra);
                        self.enter(
                            place,
                            (i, step.line),
                            procedure,
                            &inner,
                            stores,
                            stack,
                            called,
                        )?;
                    }
                }
                Action::ForEachMedia(procedure) => {
                    if !scope.collections.media || scope.in_media {
                        return Err(fail(self.no_loop("for_each_media", scope, "media")));
                    }
                    let mut inner = scope.clone();
                    inner.in_media = true;
                    inner.media_source = true;
                    inner.vars.extend(vars::MEDIA);
                    self.enter(
                        place,
                        (i, step.line),
                        procedure,
                        &inner,
                        stores,
                        stack,
                        called,
                    )?;
                }
                Action::ForEachTag(procedure) => {
                    if !scope.collections.tags || scope.in_tag {
                        return Err(fail(self.no_loop("for_each_tag", scope, "tags")));
                    }
                    let mut inner = scope.clone();
                    inner.in_tag = true;
                    inner.vars.extend(vars::TAG);
                    self.enter(
                        place,
                        (i, step.line),
                        procedure,
                        &inner,
                        stores,
                        stack,
                        called,
                    )?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A sending step: not inside a media or tag loop (a unit is an item or
    /// the whole task), and its check procedure exists, fits the step's
    /// scope and sends nothing itself.
    #[allow(clippy::too_many_arguments)]
    fn check_sends<'a>(
        &'a self,
        place: &str,
        (index, line): (usize, Option<usize>),
        sends: &Sends,
        scope: &Scope,
        stores: &BTreeSet<&str>,
        stack: &mut Vec<String>,
        called: &mut BTreeSet<&'a str>,
    ) -> Result<(), LoadError> {
        let fail = |reason: String| self.step_error(place, (index, line), reason);
        if scope.in_media || scope.in_tag {
            return Err(fail(
                "a `sends` step cannot be inside for_each_media or for_each_tag: what it sends is the item, or the whole task".to_owned(),
            ));
        }
        let Some(check) = &sends.check else {
            return Ok(());
        };
        self.enter(place, (index, line), check, scope, stores, stack, called)?;
        if self.sends_in(check, &mut Vec::new()) {
            return Err(fail(format!(
                "the check procedure `{check}` has a `sends` step: a check must only look"
            )));
        }
        Ok(())
    }

    /// Whether procedure `name`, or one it calls or loops over, has a `sends` step.
    pub(crate) fn sends_in(&self, name: &str, seen: &mut Vec<String>) -> bool {
        if seen.iter().any(|s| s == name) {
            return false;
        }
        seen.push(name.to_owned());
        self.procedures
            .get(name)
            .is_some_and(|steps| self.sends_among(steps, seen))
    }

    /// Whether any of `steps`, or a procedure they run, has a `sends` step.
    fn sends_among(&self, steps: &[Step], seen: &mut Vec<String>) -> bool {
        steps.iter().any(|step| {
            step.sends.is_some()
                || match &step.action {
                    Action::Call(p)
                    | Action::ForEachRecipient { procedure: p, .. }
                    | Action::ForEachMedia(p)
                    | Action::ForEachTag(p) => self.sends_in(p, seen),
                    Action::ForEachItem {
                        text,
                        image,
                        link,
                        file,
                    } => [text, image, link, file]
                        .into_iter()
                        .any(|p| self.sends_in(p, seen)),
                    Action::Branch { .. } => step
                        .action
                        .called()
                        .into_iter()
                        .any(|p| self.sends_in(p, seen)),
                    _ => false,
                }
        })
    }

    /// The check procedure of the first sending step of procedure `name`
    /// (or of one it calls; loops are not entered), if it has one.
    pub(crate) fn check_of(&self, name: &str) -> Option<&str> {
        let steps = self.procedures.get(name)?;
        self.check_among(steps, &mut vec![name.to_owned()])
    }

    /// The check of the first sending step among `steps` and the procedures
    /// they call, outside loops.
    pub(crate) fn check_among<'s>(
        &'s self,
        steps: &'s [Step],
        seen: &mut Vec<String>,
    ) -> Option<&'s str> {
        for step in steps {
            if let Some(sends) = &step.sends {
                return sends.check.as_deref();
            }
            for p in step.action.called() {
                if !seen.contains(p) {
                    seen.push(p.clone());
                    if let Some(steps) = self.procedures.get(p) {
                        if let Some(check) = self.check_among(steps, seen) {
                            return Some(check);
                        }
                    }
                }
            }
        }
        None
    }

    /// The names of every step the flow of `kind` can run, through the
    /// procedures it calls and loops over, check procedures included, in
    /// file order (a name used twice is listed once). Tests use it to make
    /// sure a fault was injected at each of them.
    pub fn step_names(&self, kind: TaskKind) -> Vec<String> {
        let mut names = Vec::new();
        let mut seen = Vec::new();
        if let Some(steps) = self.flows.get(&kind) {
            self.collect_names(steps, &mut names, &mut seen);
        }
        names
    }

    fn collect_names(&self, steps: &[Step], names: &mut Vec<String>, seen: &mut Vec<String>) {
        for step in steps {
            let procedures: Vec<&String> = match &step.action {
                Action::Call(p)
                | Action::ForEachRecipient { procedure: p, .. }
                | Action::ForEachMedia(p)
                | Action::ForEachTag(p) => vec![p],
                Action::ForEachItem {
                    text,
                    image,
                    link,
                    file,
                } => vec![text, image, link, file],
                Action::Branch { .. } => {
                    if !names.contains(&step.name) {
                        names.push(step.name.clone());
                    }
                    step.action.called()
                }
                _ => {
                    if !names.contains(&step.name) {
                        names.push(step.name.clone());
                    }
                    step.sends
                        .iter()
                        .filter_map(|sends| sends.check.as_ref())
                        .collect()
                }
            };
            for p in procedures {
                if !seen.contains(p) {
                    seen.push(p.clone());
                    if let Some(steps) = self.procedures.get(p) {
                        self.collect_names(steps, names, seen);
                    }
                }
            }
        }
    }

    fn no_loop(&self, what: &str, scope: &Scope, over: &str) -> String {
        if scope.flow.is_empty() {
            format!("{what} cannot be used here: there are no {over} to loop over, or the loop is already running")
        } else {
            format!(
                "{what} cannot be used in the {} flow here: there are no {over} to loop over, or the loop is already running",
                scope.flow
            )
        }
    }

    /// Checks procedure `name`, called from step `index` (on `line`) of `place`, in `scope`.
    #[allow(clippy::too_many_arguments)]
    fn enter<'a>(
        &'a self,
        place: &str,
        (index, line): (usize, Option<usize>),
        name: &str,
        scope: &Scope,
        stores: &BTreeSet<&str>,
        stack: &mut Vec<String>,
        called: &mut BTreeSet<&'a str>,
    ) -> Result<(), LoadError> {
        let fail = |reason: String| self.step_error(place, (index, line), reason);
        let Some((key, steps)) = self.procedures.get_key_value(name) else {
            return Err(fail(format!("there is no procedure `{name}`")));
        };
        if stack.iter().any(|entry| entry == name) {
            let mut cycle = stack.clone();
            cycle.push(name.to_owned());
            return Err(fail(format!(
                "procedure `{name}` would call itself ({})",
                cycle.join(" > ")
            )));
        }
        called.insert(key.as_str());
        stack.push(name.to_owned());
        let inner_place = if scope.flow.is_empty() {
            format!("procedure `{name}`")
        } else {
            format!("procedure `{name}` (run by flow `{}`)", scope.flow)
        };
        let result = self.check_list(&inner_place, steps, scope, stores, stack, called);
        stack.pop();
        result
    }
}

/// What a step can use where it runs, for the load-time checks.
#[derive(Debug, Clone, Default)]
struct Scope {
    /// The template variables that have values here.
    vars: BTreeSet<&'static str>,
    /// The loops the flow's task kind has.
    collections: Collections,
    /// Inside `for_each_recipient`.
    in_recipient: bool,
    /// Inside `for_each_item`.
    in_item: bool,
    /// Inside `for_each_media`.
    in_media: bool,
    /// Inside `for_each_tag`.
    in_tag: bool,
    /// Whether a media file is at hand for `push_media`.
    media_source: bool,
    /// The flow being checked (empty for a procedure no flow calls).
    flow: String,
}

impl Scope {
    fn check_variable(&self, name: &str) -> Result<(), String> {
        if self.vars.contains(name) {
            return Ok(());
        }
        let known: Vec<&str> = self.vars.iter().copied().collect();
        if vars::all().contains(&name) {
            Err(format!(
                "`{{{name}}}` has no value here (this step can use: {})",
                known.join(", ")
            ))
        } else {
            Err(format!(
                "unknown template variable `{{{name}}}` (this step can use: {})",
                known.join(", ")
            ))
        }
    }
}

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
    nth: Option<Nth>,
    /// The selector of the node the match must lie inside.
    inside: Option<Box<SelectorTemplate>>,
}

/// A selector's `nth`: written as a number, or as a template such as
/// `"{media.number + 1}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Nth {
    Fixed(i64),
    Computed(Template),
}

impl SelectorTemplate {
    fn new(selector: &Selector) -> Result<SelectorTemplate, String> {
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

/// Reads `sends` and `verify` (the check procedure): only a `tap` sends, and
/// only a sending step has a check.
fn sends_fields(f: &mut Fields, kind: &str) -> Result<Option<Sends>, String> {
    let sends = f.bool("sends")?.unwrap_or(false);
    let check = f.string("verify")?;
    match (sends, check) {
        (true, _) if kind != "tap" => Err(format!(
            "`sends` marks the tap that delivers an item; a `{kind}` step cannot send"
        )),
        (true, check) => Ok(Some(Sends { check })),
        (false, Some(_)) => {
            Err("`verify` goes with `sends = true`: it tells whether that tap arrived".to_owned())
        }
        (false, None) => Ok(None),
    }
}

impl Step {
    /// The name a `find`, `tap` or `wait_for` stores a node under.
    fn stores(&self) -> Option<&str> {
        match &self.action {
            Action::Find { store, .. } => Some(store),
            Action::Tap { store, .. } | Action::WaitFor { store, .. } => store.as_deref(),
            _ => None,
        }
    }

    /// Every template variable the step uses, its condition included.
    fn variables(&self) -> Vec<&str> {
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

fn parse_interrupt(
    source: &str,
    lines: &Lines<'_>,
    number: usize,
    raw: Value,
) -> Result<Interrupt, LoadError> {
    let mut name = format!("#{number}");
    let path = [Seg::Key("interrupts"), Seg::Index(number - 1)];
    let Value::Table(table) = raw else {
        return Err(LoadError::Interrupt {
            file: source.to_owned(),
            line: lines.line(&path),
            number,
            name,
            reason: "an interrupt must be a table".to_owned(),
        });
    };
    let mut fields = Fields::new(table);
    let result = interrupt_fields(&mut fields, &mut name);
    result.map_err(|reason| LoadError::Interrupt {
        file: source.to_owned(),
        line: lines.line(&fields.blamed_path(&path)),
        number,
        name,
        reason,
    })
}

/// The interrupt in `fields`; `name` becomes its name as soon as it is read.
fn interrupt_fields(fields: &mut Fields, name: &mut String) -> Result<Interrupt, String> {
    fields.allow("an interrupt", INTERRUPT_KEYS)?;
    if let Some(given) = fields.string("name")? {
        *name = given;
    }
    let code = fields.code("code")?.ok_or("`code` is missing")?;
    let any = fields.selectors("any")?.unwrap_or_default();
    let all = fields.selectors("all")?.unwrap_or_default();
    if any.is_empty() && all.is_empty() {
        return Err(
            "give `any` or `all`: the selectors that show the interrupt is on screen".to_owned(),
        );
    }
    let dismiss = fields.selectors("dismiss")?;
    let action = match fields.string("action")?.as_deref() {
        Some("fail") if dismiss.is_some() => {
            fields.blame("dismiss");
            return Err("`dismiss` only goes with `action = \"dismiss\"`".to_owned());
        }
        Some("fail") => InterruptAction::Fail,
        Some("dismiss") => match dismiss {
            Some(list) if !list.is_empty() => InterruptAction::Dismiss(list),
            _ => {
                return Err("`action = \"dismiss\"` needs `dismiss`, the buttons to tap".to_owned())
            }
        },
        Some(other) => {
            fields.blame("action");
            return Err(format!(
                "`action` is `{other}`; it must be `fail` or `dismiss`"
            ));
        }
        None => return Err("`action` (`fail` or `dismiss`) is missing".to_owned()),
    };
    let message = fields
        .string("message")?
        .unwrap_or_else(|| format!("the app showed {name}"));
    let retryable = fields.bool("retryable")?.unwrap_or(false);
    if retryable && code == RISK_CONTROL {
        fields.blame("retryable");
        return Err(
            "a risk_control interrupt is never retryable: a person must check the account"
                .to_owned(),
        );
    }
    fields.finish("an interrupt")?;
    Ok(Interrupt {
        name: name.clone(),
        code,
        any,
        all,
        action,
        message,
        retryable,
    })
}

fn parse_steps(
    source: &str,
    lines: &Lines<'_>,
    path: &[Seg<'_>],
    place: &str,
    list: Vec<Value>,
) -> Result<Vec<Step>, LoadError> {
    list.into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let mut here = path.to_vec();
            here.push(Seg::Index(i));
            let line = lines.line(&here);
            let Value::Table(table) = raw else {
                return Err(LoadError::Step {
                    file: source.to_owned(),
                    line,
                    place: place.to_owned(),
                    step: i + 1,
                    reason: "a step must be a table, such as `{ do = \"tap\", target = { text = \"发送\" } }`"
                        .to_owned(),
                });
            };
            let mut fields = Fields::new(table);
            let result = parse_step(&mut fields);
            result
                .map(|step| Step { line, ..step })
                .map_err(|reason| LoadError::Step {
                    file: source.to_owned(),
                    line: lines.line(&fields.blamed_path(&here)),
                    place: place.to_owned(),
                    step: i + 1,
                    reason,
                })
        })
        .collect()
}

fn parse_step(f: &mut Fields) -> Result<Step, String> {
    let word = f.string("do")?.ok_or("`do` (the step type) is missing")?;
    let Some(kind) = STEP_TYPES.iter().copied().find(|known| *known == word) else {
        f.blame("do");
        return Err(format!(
            "unknown step type `{word}`{} (known: {})",
            did_you_mean(&word, STEP_TYPES),
            STEP_TYPES.join(", ")
        ));
    };
    f.allow(&format!("`{kind}`"), &step_keys(kind))?;
    let name = match f.string("name")? {
        Some(name) if name.trim().is_empty() => {
            f.blame("name");
            return Err("`name` is empty".to_owned());
        }
        Some(name) => name.trim().to_owned(),
        None => kind.to_owned(),
    };
    let condition = match (f.string("if")?, f.string("unless")?) {
        (Some(_), Some(_)) => return Err("a step takes `if` or `unless`, not both".to_owned()),
        (Some(var), None) => Some(Condition::If(
            variable_name(&var).inspect_err(|_| f.blame("if"))?,
        )),
        (None, Some(var)) => Some(Condition::Unless(
            variable_name(&var).inspect_err(|_| f.blame("unless"))?,
        )),
        (None, None) => None,
    };
    let code = f.code("code")?;
    let on_fail = OnFail {
        code,
        message: f
            .string("message")?
            .map(|m| template(&m).inspect_err(|_| f.blame("message")))
            .transpose()?,
        retryable: f.bool("retryable")?,
    };
    let sends = sends_fields(f, kind)?;
    if matches!(kind, "assert" | "fail") && on_fail.code.is_none() {
        return Err(format!(
            "`{kind}` needs `code`, the error code it fails with"
        ));
    }
    let action = match kind {
        "launch" => Action::Launch {
            home: f
                .selector("home")?
                .ok_or("`launch` needs `home`, a selector for the app's start screen")?,
            restart: f.bool("restart")?.unwrap_or(false),
            settle: f
                .millis("settle_ms", MAX_TIMEOUT_MS)?
                .unwrap_or(DEFAULT_SETTLE),
            timeout: f
                .millis("timeout_ms", MAX_TIMEOUT_MS)?
                .unwrap_or(DEFAULT_LAUNCH_TIMEOUT),
            max_backs: f
                .count("max_backs", MAX_MAX_BACKS)?
                .unwrap_or(DEFAULT_MAX_BACKS),
            max_relaunches: f
                .count("max_relaunches", MAX_MAX_RELAUNCHES)?
                .unwrap_or(DEFAULT_MAX_RELAUNCHES),
        },
        "find" => Action::Find {
            locate: locate(f, DEFAULT_FIND_TIMEOUT)?.ok_or("`find` needs `target`")?,
            store: store_name(
                f.string("store")?
                    .ok_or("`find` needs `store`, the name to keep the node under")?,
            )?,
        },
        "tap" => Action::Tap {
            aim: aim(f, kind)?,
            store: f.string("store")?.map(store_name).transpose()?,
        },
        "long_press" => Action::LongPress {
            aim: aim(f, kind)?,
            hold: f.millis("hold_ms", MAX_GESTURE_MS)?.unwrap_or(DEFAULT_HOLD),
        },
        "clear" => Action::Clear { aim: aim(f, kind)? },
        "type" => Action::Type {
            text: template(&f.string("text")?.ok_or("`type` needs `text`")?)?,
            check: f.bool("check")?.unwrap_or(true),
        },
        "wait_for" => {
            let locate = locate(f, DEFAULT_WAIT_TIMEOUT)?.ok_or("`wait_for` needs `target`")?;
            let gone = f.bool("gone")?.unwrap_or(false);
            let store = f.string("store")?.map(store_name).transpose()?;
            if gone && store.is_some() {
                return Err(
                    "`store` does not go with `gone = true`: nothing is left to store".to_owned(),
                );
            }
            if gone && locate.scroll.is_some() {
                f.blame("scroll");
                return Err(
                    "`scroll` does not go with `gone = true`: it looks for a node, not for one to leave"
                        .to_owned(),
                );
            }
            Action::WaitFor {
                locate,
                gone,
                store,
            }
        }
        "assert" => {
            let (selector, present) = match (f.selector("present")?, f.selector("absent")?) {
                (Some(selector), None) => (selector, true),
                (None, Some(selector)) => (selector, false),
                _ => return Err("`assert` needs exactly one of `present` and `absent`".to_owned()),
            };
            Action::Assert {
                selector,
                near: near(f)?,
                present,
            }
        }
        "back" => Action::Back,
        "key" => Action::Key(key(f.take("key").ok_or("`key` needs `key`")?)?),
        "swipe" => Action::Swipe {
            from: f
                .point("from")?
                .ok_or("`swipe` needs `from`, e.g. [0.5, 0.8]")?,
            to: f
                .point("to")?
                .ok_or("`swipe` needs `to`, e.g. [0.5, 0.2]")?,
            duration: f
                .millis("duration_ms", MAX_GESTURE_MS)?
                .unwrap_or(DEFAULT_SWIPE),
        },
        "sleep" => Action::Sleep(f.millis("ms", MAX_SLEEP_MS)?.ok_or("`sleep` needs `ms`")?),
        "push_media" => Action::PushMedia,
        "call" => Action::Call(f.string("procedure")?.ok_or("`call` needs `procedure`")?),
        "for_each_recipient" => Action::ForEachRecipient {
            procedure: f
                .string("procedure")?
                .ok_or("`for_each_recipient` needs `procedure`")?,
            skip_codes: f.codes("skip_codes")?.unwrap_or_default(),
        },
        "for_each_item" => {
            let mut procedure = |key: &str| -> Result<String, String> {
                f.string(key)?.ok_or_else(|| {
                    format!("`for_each_item` needs `{key}`, the procedure for {key} items")
                })
            };
            Action::ForEachItem {
                text: procedure("text")?,
                image: procedure("image")?,
                link: procedure("link")?,
                file: procedure("file")?,
            }
        }
        "for_each_media" => Action::ForEachMedia(
            f.string("procedure")?
                .ok_or("`for_each_media` needs `procedure`")?,
        ),
        "for_each_tag" => Action::ForEachTag(
            f.string("procedure")?
                .ok_or("`for_each_tag` needs `procedure`")?,
        ),
        "branch" => {
            let cases = f.cases("cases")?.ok_or(
                "`branch` needs `cases`, such as [{ present = { text = \"发消息\" }, call = \"chat\" }]",
            )?;
            let poll = f.millis("poll_ms", MAX_TIMEOUT_MS)?.unwrap_or(DEFAULT_POLL);
            if poll < Duration::from_millis(MIN_POLL_MS) {
                return Err(format!("`poll_ms` must be at least {MIN_POLL_MS}"));
            }
            Action::Branch {
                cases,
                otherwise: f.string("otherwise")?,
                timeout: f
                    .millis("timeout_ms", MAX_TIMEOUT_MS)?
                    .unwrap_or(DEFAULT_FIND_TIMEOUT),
                poll,
            }
        }
        "fail" => Action::Fail,
        _ => return Err(format!("unknown step type `{kind}`")),
    };
    f.finish(&format!("`{kind}`"))?;
    Ok(Step {
        name,
        kind,
        condition,
        action,
        on_fail,
        line: None,
        sends,
    })
}

fn template(text: &str) -> Result<Template, String> {
    Template::parse(text).map_err(|e| e.to_string())
}

fn variable_name(text: &str) -> Result<String, String> {
    let parsed = template(&format!("{{{}}}", text.trim()))?;
    let name = parsed.variables().next().map(str::to_owned);
    name.ok_or_else(|| {
        format!("`if` and `unless` take a variable name such as `greeting`, not `{text}`")
    })
}

fn store_name(name: String) -> Result<String, String> {
    let name = name.trim().to_owned();
    if name.is_empty() {
        Err("`store` is empty".to_owned())
    } else {
        Ok(name)
    }
}

/// Error codes come from one closed set ([`task_error::TASK_ERROR_CODES`]),
/// the codes the agent and the server know: a misspelt `risk_control` would
/// fail a task without pausing its queue.
fn check_code(code: &str) -> Result<(), String> {
    if task_error::flow_codes().any(|known| known == code) {
        return Ok(());
    }
    let known: Vec<&str> = task_error::flow_codes().collect();
    let whose = match task_error::lookup(code) {
        Some(_) => " (the agent or the server gives it, a flow file may not)",
        None => "",
    };
    Err(format!(
        "`{code}`: unknown error code{}{whose}; a flow file may use: {}",
        did_you_mean(code, &known),
        known.join(", ")
    ))
}

/// `, did you mean `x`?` when `word` is a likely misspelling of one of
/// `known` (a few letters off), else nothing.
fn did_you_mean(word: &str, known: &[&str]) -> String {
    let word = word.to_lowercase().replace('-', "_");
    let allowed = (word.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (edit_distance(&word, k), *k))
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| format!(", did you mean `{k}`?"))
        .unwrap_or_default()
}

/// The edit distance of two words, by characters: insertions, deletions,
/// substitutions and swaps of neighbours (`nmae`) count one each.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: the distance of a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The message for a key `what` does not take.
fn unknown_key(key: &str, what: &str, known: &[&str]) -> String {
    format!(
        "`{key}`: unknown key{} ({what} takes: {})",
        did_you_mean(key, known),
        known.join(", ")
    )
}

/// One step of a path into the file: a key of a table or an index of a list.
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Where things are in a file's text, for the line numbers of load errors.
struct Lines<'t> {
    /// The text.
    text: &'t str,
    /// The text parsed again with spans; `None` when it is not TOML.
    doc: Option<Spanned<DeTable<'t>>>,
}

impl<'t> Lines<'t> {
    fn new(text: &'t str) -> Lines<'t> {
        Lines {
            text,
            doc: DeTable::parse(text).ok(),
        }
    }

    /// The line (from 1) of the byte at `offset`.
    fn line_at(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text.as_bytes()[..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// The line of what `path` leads to: the key when it ends in a key, the
    /// value when it ends in an index. Where the path goes further than the
    /// file, the line of the deepest part found.
    fn line(&self, path: &[Seg<'_>]) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
        let mut list: Option<&[Spanned<DeValue<'_>>]> = None;
        let mut found: Option<usize> = None;
        for seg in path {
            let value = match (*seg, table, list) {
                (Seg::Key(key), Some(table), _) => {
                    let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == key)
                    else {
                        break;
                    };
                    found = Some(k.span().start);
                    v
                }
                (Seg::Index(i), _, Some(list)) => {
                    let Some(v) = list.get(i) else {
                        break;
                    };
                    found = Some(v.span().start);
                    v
                }
                _ => break,
            };
            table = None;
            list = None;
            match value.get_ref() {
                DeValue::Table(t) => table = Some(t),
                DeValue::Array(a) => list = Some(a.as_ref()),
                _ => {}
            }
        }
        found.map(|offset| self.line_at(offset))
    }
}

fn locate(f: &mut Fields, default_timeout: Duration) -> Result<Option<Box<Locate>>, String> {
    let Some(target) = f.selector("target")? else {
        return Ok(None);
    };
    let timeout = f
        .millis("timeout_ms", MAX_TIMEOUT_MS)?
        .unwrap_or(default_timeout);
    let poll = f.millis("poll_ms", MAX_TIMEOUT_MS)?.unwrap_or(DEFAULT_POLL);
    if poll < Duration::from_millis(MIN_POLL_MS) {
        return Err(format!("`poll_ms` must be at least {MIN_POLL_MS}"));
    }
    Ok(Some(Box::new(Locate {
        target,
        near: near(f)?,
        fail_on: f.selector_list("fail_on")?.unwrap_or_default(),
        scroll: scroll(f)?,
        timeout,
        poll,
    })))
}

fn scroll(f: &mut Fields) -> Result<Option<Scroll>, String> {
    let result = match f.take("scroll") {
        None => Ok(None),
        Some(Value::Boolean(false)) => Ok(None),
        Some(Value::Boolean(true)) => Ok(Some(Scroll {
            max: DEFAULT_SCROLLS,
            down: true,
            within: None,
            duration: DEFAULT_SCROLL_SWIPE,
        })),
        Some(Value::Table(table)) => {
            let mut inner = Fields::new(table);
            (|| {
                inner.allow("`scroll`", SCROLL_KEYS)?;
                let max = inner.u32("max")?.unwrap_or(DEFAULT_SCROLLS);
                if !(1..=MAX_SCROLLS).contains(&max) {
                    return Err(format!("`scroll.max` must be 1 to {MAX_SCROLLS}, not {max}"));
                }
                let down = match inner.string("direction")?.as_deref() {
                    None | Some("down") => true,
                    Some("up") => false,
                    Some(other) => {
                        return Err(format!(
                            "`scroll.direction` is `down` (what is below) or `up` (what is above), not {other:?}"
                        ))
                    }
                };
                let scroll = Scroll {
                    max,
                    down,
                    within: inner.selector("within")?,
                    duration: inner
                        .millis("duration_ms", MAX_GESTURE_MS)?
                        .unwrap_or(DEFAULT_SCROLL_SWIPE),
                };
                inner.finish("`scroll`")?;
                Ok(Some(scroll))
            })()
            .map_err(|e: String| {
                if e.starts_with("`scroll") {
                    e
                } else {
                    format!("`scroll`: {e}")
                }
            })
        }
        Some(other) => Err(format!(
            "`scroll` must be true or a table such as {{ max = 10, within = {{ class = \"android.widget.ListView\" }} }}, not {other}"
        )),
    };
    f.note("scroll", result)
}

fn near(f: &mut Fields) -> Result<Option<Near>, String> {
    let depth = f.u32("near_depth")?;
    match f.selector("near")? {
        Some(anchor) => Ok(Some(Near {
            anchor,
            depth: depth.unwrap_or(DEFAULT_NEAR_DEPTH),
        })),
        None if depth.is_some() => Err("`near_depth` only goes with `near`".to_owned()),
        None => Ok(None),
    }
}

fn aim(f: &mut Fields, kind: &str) -> Result<Aim, String> {
    let node = f.string("node")?;
    match (locate(f, DEFAULT_FIND_TIMEOUT)?, node) {
        (Some(locate), None) => Ok(Aim::Find(locate)),
        (None, Some(node)) => Ok(Aim::Stored(node.trim().to_owned())),
        (Some(_), Some(_)) => Err(format!("`{kind}` takes `target` or `node`, not both")),
        (None, None) => Err(format!(
            "`{kind}` needs `target` (a selector) or `node` (a node a `find` stored)"
        )),
    }
}

fn key(value: Value) -> Result<Key, String> {
    match value {
        Value::String(name) => match name.to_ascii_lowercase().as_str() {
            "back" => Ok(Key::Back),
            "home" => Ok(Key::Home),
            "enter" => Ok(Key::Enter),
            "delete" | "del" => Ok(Key::Delete),
            "wakeup" => Ok(Key::WakeUp),
            "endcall" => Ok(Key::EndCall),
            _ => Err(format!(
                "unknown key `{name}` (known: back, home, enter, delete, wakeup, endcall, or an Android key code)"
            )),
        },
        Value::Integer(code) => u16::try_from(code)
            .ok()
            .filter(|code| *code > 0 && *code < 1000)
            .map(Key::Code)
            .ok_or_else(|| format!("key code {code} is not an Android key code")),
        other => Err(format!("`key` must be a name or a key code, not {other}")),
    }
}

/// The keys of one TOML table, taken one by one so that whatever is left at
/// the end is a key nobody asked for: a typo the file's author wants to hear about.
struct Fields {
    /// What has not been taken yet.
    table: Table,
    /// The key a mistake is in, when one was found: its line goes in the error.
    blamed: Option<String>,
    /// The item of the blamed key's list the mistake is in, when it is a list.
    blamed_index: Option<usize>,
}

impl Fields {
    fn new(table: Table) -> Fields {
        Fields {
            table,
            blamed: None,
            blamed_index: None,
        }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.table.remove(key)
    }

    /// Says that the mistake is in `key`.
    fn blame(&mut self, key: &str) {
        if self.blamed.as_deref() != Some(key) {
            self.blamed_index = None;
        }
        self.blamed = Some(key.to_owned());
    }

    /// The key the mistake is in, if known.
    fn blamed(&self) -> Option<&str> {
        self.blamed.as_deref()
    }

    /// `path` (the table's own) with the blamed key, if any, added.
    fn blamed_path<'p>(&'p self, path: &[Seg<'p>]) -> Vec<Seg<'p>> {
        let mut out = path.to_vec();
        out.extend(self.blamed().map(Seg::Key));
        out.extend(self.blamed_index.map(Seg::Index));
        out
    }

    /// Blames `key` when `result` is an error.
    fn note<T>(&mut self, key: &str, result: Result<T, String>) -> Result<T, String> {
        if result.is_err() {
            self.blame(key);
        }
        result
    }

    /// Refuses a key that `what` does not take, before anything else is
    /// read, so that a misspelt key is named as such rather than as the
    /// right key missing.
    fn allow(&mut self, what: &str, known: &[&str]) -> Result<(), String> {
        let Some(key) = self.table.keys().find(|k| !known.contains(&k.as_str())) else {
            return Ok(());
        };
        let key = key.clone();
        self.blame(&key);
        Err(unknown_key(&key, what, known))
    }

    /// An error code from the closed set.
    fn code(&mut self, key: &str) -> Result<Option<String>, String> {
        let code = self.string(key)?;
        if let Some(code) = &code {
            let checked = check_code(code);
            self.note(key, checked)?;
        }
        Ok(code)
    }

    /// A list of error codes from the closed set.
    fn codes(&mut self, key: &str) -> Result<Option<Vec<String>>, String> {
        let codes = self.strings(key)?;
        for code in codes.iter().flatten() {
            let checked = check_code(code);
            self.note(key, checked)?;
        }
        Ok(codes)
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, String> {
        let result = match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("`{key}` must be a string, not {other}")),
        };
        self.note(key, result)
    }

    fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, String> {
        let result = match self.take(key) {
            None => Ok(None),
            Some(Value::Array(list)) => list
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(format!(
                        "`{key}` must be a list of strings, not hold {other}"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(format!("`{key}` must be a list of strings, not {other}")),
        };
        self.note(key, result)
    }

    fn bool(&mut self, key: &str) -> Result<Option<bool>, String> {
        let result = match self.take(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(b)),
            Some(other) => Err(format!("`{key}` must be true or false, not {other}")),
        };
        self.note(key, result)
    }

    fn u32(&mut self, key: &str) -> Result<Option<u32>, String> {
        let result = match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(n)) => u32::try_from(n)
                .map(Some)
                .map_err(|_| format!("`{key}` must be a small non-negative number, not {n}")),
            Some(other) => Err(format!("`{key}` must be a number, not {other}")),
        };
        self.note(key, result)
    }

    /// A count from 0 to `max`.
    fn count(&mut self, key: &str, max: u32) -> Result<Option<u32>, String> {
        let result = match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(n)) => match u32::try_from(n) {
                Ok(count) if count <= max => Ok(Some(count)),
                _ => Err(format!("`{key}` must be from 0 to {max}, not {n}")),
            },
            Some(other) => Err(format!("`{key}` must be a number, not {other}")),
        };
        self.note(key, result)
    }

    fn millis(&mut self, key: &str, max: u64) -> Result<Option<Duration>, String> {
        let result = match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(n)) => match u64::try_from(n) {
                Ok(ms) if ms <= max => Ok(Some(Duration::from_millis(ms))),
                _ => Err(format!(
                    "`{key}` must be from 0 to {max} (milliseconds), not {n}"
                )),
            },
            Some(other) => Err(format!(
                "`{key}` must be a number of milliseconds, not {other}"
            )),
        };
        self.note(key, result)
    }

    fn point(&mut self, key: &str) -> Result<Option<[f64; 2]>, String> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let bad = || {
            format!("`{key}` must be [x, y] with both from 0.0 to 1.0 (fractions of the screen)")
        };
        let Value::Array(list) = value else {
            return Err(bad());
        };
        let numbers: Vec<f64> = list
            .iter()
            .map(|v| match v {
                Value::Float(x) => Some(*x),
                Value::Integer(n) => Some(*n as f64),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        match numbers.as_slice() {
            [x, y] if (0.0..=1.0).contains(x) && (0.0..=1.0).contains(y) => Ok(Some([*x, *y])),
            _ => Err(bad()),
        }
    }

    /// A selector as written (its strings not templates), with `nth` a
    /// number; `depth` counts the `inside` selectors around it.
    fn plain_selector(key: &str, value: Value) -> Result<Selector, String> {
        Self::selector_at(key, value, 0, &mut |_, nth| match nth {
            Value::Integer(n) => Ok(*n),
            other => Err(format!("`nth` must be a whole number here, not {other}")),
        })
    }

    /// A selector table: its fields, `nth` (read by `nth`, which may keep a
    /// template aside and give 1) and `inside` (a selector, nested at most
    /// [`MAX_INSIDE_DEPTH`] deep).
    fn selector_at(
        key: &str,
        value: Value,
        depth: usize,
        nth: &mut dyn FnMut(usize, &Value) -> Result<i64, String>,
    ) -> Result<Selector, String> {
        let Value::Table(mut table) = value else {
            return Err(format!(
                "`{key}` must be a selector table such as {{ text = \"发送\" }}, not {value}"
            ));
        };
        if let Some(field) = table.keys().find(|k| !SELECTOR_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "`{key}` is not a valid selector: {}",
                unknown_key(field, "a selector", SELECTOR_KEYS)
            ));
        }
        let which = match table.remove("nth") {
            None => None,
            Some(value) => {
                let n = nth(depth, &value).map_err(|e| format!("`{key}`: {e}"))?;
                if n == 0 || n.unsigned_abs() > MAX_NTH {
                    return Err(format!(
                        "`{key}`: `nth` must be 1 to {MAX_NTH} (the first, second... match) or -1 to -{MAX_NTH} (the last, second last...), not {n}"
                    ));
                }
                Some(n)
            }
        };
        let inside = match table.remove("inside") {
            None => None,
            Some(_) if depth >= MAX_INSIDE_DEPTH => {
                return Err(format!(
                    "`{key}`: `inside` nests deeper than {MAX_INSIDE_DEPTH} selectors"
                ))
            }
            Some(value) => Some(Box::new(Self::selector_at(
                &format!("{key}.inside"),
                value,
                depth + 1,
                nth,
            )?)),
        };
        let mut selector = Selector::deserialize(Value::Table(table))
            .map_err(|e| format!("`{key}` is not a valid selector: {}", e.to_string().trim()))?;
        if selector.is_empty() {
            return Err(format!(
                "`{key}` is an empty selector: it would match everything (`nth` and `inside` only choose among what its other fields match)"
            ));
        }
        selector.nth = which;
        selector.inside = inside;
        Ok(selector)
    }

    fn selector(&mut self, key: &str) -> Result<Option<SelectorTemplate>, String> {
        let result = match self.take(key) {
            None => Ok(None),
            Some(value) => Self::selector_template(key, value).map(Some),
        };
        self.note(key, result)
    }

    /// A selector whose strings (and `nth`, when written as a string) are
    /// templates.
    fn selector_template(key: &str, value: Value) -> Result<SelectorTemplate, String> {
        // `nth` templates, by depth (0 is the selector itself).
        let mut computed: BTreeMap<usize, Template> = BTreeMap::new();
        let selector = Self::selector_at(key, value, 0, &mut |depth, nth| {
            match nth {
            Value::Integer(n) => Ok(*n),
            Value::String(text) => {
                let template = Template::parse(text).map_err(|e| e.to_string())?;
                if template.variables().next().is_none() {
                    return text.trim().parse().map_err(|_| {
                        format!("`nth` must be a whole number or a template such as \"{{media.number + 1}}\", not {text:?}")
                    });
                }
                computed.insert(depth, template);
                Ok(1)
            }
            other => Err(format!(
                "`nth` must be a whole number or a template such as \"{{media.number + 1}}\", not {other}"
            )),
        }
        })?;
        let mut template = SelectorTemplate::new(&selector).map_err(|e| format!("`{key}`: {e}"))?;
        let mut level = Some(&mut template);
        let mut depth = 0;
        while let Some(current) = level {
            if let Some(nth) = computed.remove(&depth) {
                current.nth = Some(Nth::Computed(nth));
            }
            depth += 1;
            level = current.inside.as_deref_mut();
        }
        Ok(template)
    }

    /// One selector or a list of them, each a template.
    fn selector_list(&mut self, key: &str) -> Result<Option<Vec<SelectorTemplate>>, String> {
        let result = match self.take(key) {
            None => Ok(None),
            Some(Value::Array(list)) if list.is_empty() || list.len() > MAX_ALTERNATIVES => {
                Err(format!(
                    "`{key}` takes 1 to {MAX_ALTERNATIVES} selectors, not {}",
                    list.len()
                ))
            }
            Some(Value::Array(list)) => list
                .into_iter()
                .enumerate()
                .map(|(i, value)| Self::selector_template(&format!("{key}[{i}]"), value))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(value) => Self::selector_template(key, value).map(|one| Some(vec![one])),
        };
        self.note(key, result)
    }

    /// `branch`'s cases: a list of `{ present = selector, call = "procedure" }`.
    fn cases(&mut self, key: &str) -> Result<Option<Vec<Case>>, String> {
        let result = match self.take(key) {
            None => Ok(None),
            Some(Value::Array(list)) if list.is_empty() || list.len() > MAX_ALTERNATIVES => Err(
                format!("`{key}` takes 1 to {MAX_ALTERNATIVES} cases, not {}", list.len()),
            ),
            Some(Value::Array(list)) => list
                .into_iter()
                .enumerate()
                .map(|(i, value)| {
                    let Value::Table(table) = value else {
                        return Err(format!(
                            "`{key}[{i}]` must be a table such as {{ present = {{ text = \"发消息\" }}, call = \"chat\" }}, not {value}"
                        ));
                    };
                    let mut case = Fields::new(table);
                    let what = format!("`{key}[{i}]`");
                    case.allow(&what, CASE_KEYS)?;
                    let present = case
                        .selector("present")
                        .map_err(|e| format!("{what}: {e}"))?
                        .ok_or_else(|| format!("{what} needs `present`, the selector it waits for"))?;
                    let call = case
                        .string("call")?
                        .ok_or_else(|| format!("{what} needs `call`, the procedure it runs"))?;
                    case.finish(&what)?;
                    Ok(Case { present, call })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(format!("`{key}` must be a list of cases, not {other}")),
        };
        self.note(key, result)
    }

    fn selectors(&mut self, key: &str) -> Result<Option<Vec<Selector>>, String> {
        let result = match self.take(key) {
            None => Ok(None),
            Some(Value::Array(list)) => {
                let mut selectors = Vec::new();
                for (i, v) in list.into_iter().enumerate() {
                    match Self::plain_selector(&format!("{key}[{i}]"), v) {
                        Ok(selector) => selectors.push(selector),
                        Err(error) => {
                            self.blame(key);
                            self.blamed_index = Some(i);
                            return Err(error);
                        }
                    }
                }
                Ok(Some(selectors))
            }
            Some(other) => Err(format!("`{key}` must be a list of selectors, not {other}")),
        };
        self.note(key, result)
    }

    /// Fails when a key was not taken: `what` does not know it.
    fn finish(&mut self, what: &str) -> Result<(), String> {
        match self.table.keys().next().cloned() {
            None => Ok(()),
            Some(key) => {
                self.blame(&key);
                Err(format!("{what} does not take `{key}`"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "format = 1\napp = \"com.tencent.wework\"\nversions = [\"4.1.*\"]\n";

    fn load(body: &str) -> Result<FlowFile, LoadError> {
        FlowFile::parse("test.toml", &format!("{HEAD}{body}"))
    }

    /// The load error for a file whose send_message flow is `steps`.
    fn step_error(steps: &str) -> String {
        load(&format!("[flows.send_message]\nsteps = [{steps}]\n"))
            .expect_err("the file should be refused")
            .to_string()
    }

    fn assert_has(message: &str, needles: &[&str]) {
        for needle in needles {
            assert!(message.contains(needle), "{needle:?} not in: {message}");
        }
    }

    #[test]
    fn the_header_is_checked() {
        let not_toml = FlowFile::parse("a.toml", "format = = 1")
            .unwrap_err()
            .to_string();
        assert_has(&not_toml, &["a.toml:1: not valid TOML"]);
        let no_format = FlowFile::parse("a.toml", "app = \"x\"")
            .unwrap_err()
            .to_string();
        assert_has(&no_format, &["a.toml: `format = 1` is missing"]);
        let future = FlowFile::parse("a.toml", "format = 2\nnew_thing = 1")
            .unwrap_err()
            .to_string();
        assert_has(&future, &["`format` is 2", "reads format 1"]);
        let no_app = FlowFile::parse("a.toml", "format = 1\nversions = [\"4.1.*\"]")
            .unwrap_err()
            .to_string();
        assert_has(&no_app, &["`app`", "is missing"]);
        let no_versions = FlowFile::parse("a.toml", "format = 1\napp = \"x\"")
            .unwrap_err()
            .to_string();
        assert_has(&no_versions, &["says no versions"]);
        let bad_version =
            FlowFile::parse("a.toml", "format = 1\napp = \"x\"\nversions = [\"4.*.1\"]")
                .unwrap_err()
                .to_string();
        assert_has(&bad_version, &["`4.*.1`", "last component"]);
        let unknown = load("colour = \"blue\"").unwrap_err().to_string();
        assert_has(
            &unknown,
            &["test.toml:4: `colour`: unknown key (a flow file takes: format,"],
        );
        let kind = load("[flows.send_messages]\nsteps = []")
            .unwrap_err()
            .to_string();
        assert_has(
            &kind,
            &["`flows.send_messages` is not a task kind", "send_message,"],
        );
        let no_steps = load("[flows.send_message]\ndescription = \"x\"")
            .unwrap_err()
            .to_string();
        assert_has(&no_steps, &["`flows.send_message` needs `steps`"]);
        let extra = load("[flows.send_message]\nsteps = []\nretries = 3")
            .unwrap_err()
            .to_string();
        assert_has(&extra, &["test.toml:6: `retries`: unknown key (`flows.send_message` takes: steps, description)"]);
        let procedure = load("[procedures]\nx = 1").unwrap_err().to_string();
        assert_has(&procedure, &["`procedures.x` must be a list of steps"]);
    }

    #[test]
    fn unknown_step_types_and_keys_name_the_flow_and_step() {
        let message = step_error(r#"{ do = "back" }, { do = "tapp", target = { text = "x" } }"#);
        assert_has(
            &message,
            &[
                "test.toml:5: flow `send_message`, step 2: unknown step type `tapp`, did you mean `tap`?",
                "long_press",
            ],
        );
        assert_has(
            &step_error(r#"{ target = { text = "x" } }"#),
            &["step 1", "`do`", "missing"],
        );
        assert_has(
            &step_error(r#""tap""#),
            &["step 1", "a step must be a table"],
        );
        assert_has(
            &step_error(r#"{ do = "tap", target = { text = "x" }, gone = true }"#),
            &["`gone`: unknown key (`tap` takes: do,"],
        );
        assert_has(
            &step_error(r#"{ do = "back", name = "" }"#),
            &["`name` is empty"],
        );
        assert_has(
            &step_error(r#"{ do = "sleep", ms = "5" }"#),
            &["`ms` must be a number"],
        );
    }

    #[test]
    fn bad_and_empty_selectors_are_refused() {
        assert_has(
            &step_error(r#"{ do = "tap", target = { txt = "发送" } }"#),
            &["step 1", "`target` is not a valid selector", "txt"],
        );
        assert_has(
            &step_error(r#"{ do = "tap", target = "发送" }"#),
            &["`target` must be a selector table"],
        );
        assert_has(
            &step_error(r#"{ do = "tap", target = {} }"#),
            &["`target` is an empty selector"],
        );
        assert_has(
            &step_error(r#"{ do = "wait_for", target = { text = "x" }, fail_on = {} }"#),
            &["`fail_on` is an empty selector"],
        );
        assert_has(
            &step_error(r#"{ do = "tap", target = { text = 3 } }"#),
            &["`target` is not a valid selector"],
        );
        assert_has(
            &step_error(r#"{ do = "tap", target = { text = "{to.name" } }"#),
            &["`target`", "never closed"],
        );
    }

    #[test]
    fn template_variables_are_checked_where_the_step_runs() {
        assert_has(
            &step_error(r#"{ do = "type", text = "{to.nmae}" }"#),
            &["step 1", "unknown template variable `{to.nmae}`", "to.name"],
        );
        // `item.text` exists, but only inside for_each_item's text procedure.
        assert_has(
            &step_error(r#"{ do = "type", text = "{item.text}" }"#),
            &["`{item.text}` has no value here"],
        );
        assert_has(
            &step_error(r#"{ do = "tap", if = "greeting", target = { text = "x" } }"#),
            &["`{greeting}` has no value here"],
        );
        assert_has(
            &step_error(r#"{ do = "back", if = "greeting", unless = "remark" }"#),
            &["`if` or `unless`, not both"],
        );
        assert_has(
            &step_error(r#"{ do = "back", if = "Not A Name" }"#),
            &["bad variable name"],
        );
        assert_has(
            &step_error(r#"{ do = "fail", code = "flow_failed", message = "{nobody}" }"#),
            &["unknown template variable `{nobody}`"],
        );
        // In a procedure, the error names it and the flow that runs it.
        let message = load(
            r#"
[flows.send_message]
steps = [{ do = "for_each_item", text = "t", image = "m", link = "t", file = "m" }]
[procedures]
t = [{ do = "type", text = "{item.text}" }]
m = [{ do = "push_media" }, { do = "type", text = "{item.text}" }]
"#,
        )
        .unwrap_err()
        .to_string();
        assert_has(
            &message,
            &[
                "procedure `m` (run by flow `send_message`), step 2",
                "`{item.text}` has no value here",
                "item.media_id",
            ],
        );
    }

    #[test]
    fn calls_and_loops_are_checked() {
        assert_has(
            &step_error(r#"{ do = "call", procedure = "nowhere" }"#),
            &["step 1", "there is no procedure `nowhere`"],
        );
        let recursive = load(
            "[flows.send_message]\nsteps = [{ do = \"call\", procedure = \"a\" }]\n[procedures]\na = [{ do = \"call\", procedure = \"b\" }]\nb = [{ do = \"call\", procedure = \"a\" }]\n",
        )
        .unwrap_err()
        .to_string();
        assert_has(&recursive, &["would call itself (a > b > a)"]);
        let unused_recursive = load("[procedures]\na = [{ do = \"call\", procedure = \"a\" }]\n")
            .unwrap_err()
            .to_string();
        assert_has(
            &unused_recursive,
            &["procedure `a`, step 1", "would call itself"],
        );
        assert_has(
            &step_error(r#"{ do = "for_each_recipient", procedure = "p" }"#),
            &["for_each_recipient cannot be used in the send_message flow"],
        );
        assert_has(
            &step_error(r#"{ do = "for_each_media", procedure = "p" }"#),
            &["for_each_media cannot be used"],
        );
        assert_has(
            &step_error(r#"{ do = "for_each_item", text = "p", image = "p", link = "p" }"#),
            &["`for_each_item` needs `file`"],
        );
        assert_has(
            &step_error(r#"{ do = "push_media" }"#),
            &["push_media needs a media file"],
        );
        assert_has(
            &step_error(r#"{ do = "tap", node = "row" }"#),
            &["no `find` step stores a node named `row`"],
        );
        assert_has(
            &step_error(r#"{ do = "tap", node = "row", target = { text = "x" } }"#),
            &["`target` or `node`, not both"],
        );
        assert_has(&step_error(r#"{ do = "tap" }"#), &["`tap` needs `target`"]);
        assert_has(
            &step_error(r#"{ do = "find", target = { text = "x" } }"#),
            &["`find` needs `store`"],
        );
    }

    #[test]
    fn for_each_tag_runs_only_where_there_are_tags() {
        // friend_add's `tags` and moments_post's `visible_to_tags` have a loop.
        let file = load(
            r#"
[flows.friend_add]
steps = [{ do = "for_each_tag", procedure = "pick", if = "tags" }]
[flows.moments_post]
steps = [{ do = "for_each_tag", procedure = "pick" }]
[procedures]
pick = [{ do = "tap", target = { text = "{tag.name}" }, name = "tag_{tag.number}" }]
"#,
        )
        .unwrap();
        assert_eq!(
            file.flows[&TaskKind::FriendAdd][0].action,
            Action::ForEachTag("pick".to_owned())
        );
        // Other kinds have none.
        assert_has(
            &step_error(r#"{ do = "for_each_tag", procedure = "p" }"#),
            &[
                "for_each_tag cannot be used in the send_message flow",
                "no tags",
            ],
        );
        let accept = load(
            "[flows.accept_friend_request]
steps = [{ do = \"for_each_tag\", procedure = \"p\" }]
[procedures]
p = [{ do = \"back\" }]
",
        )
        .unwrap_err()
        .to_string();
        assert_has(
            &accept,
            &["for_each_tag cannot be used in the accept_friend_request flow"],
        );
        assert_has(
            &step_error(r#"{ do = "for_each_tag" }"#),
            &["`for_each_tag` needs `procedure`"],
        );
        // The tag's variables exist only inside the loop ...
        let outside =
            load("[flows.friend_add]\nsteps = [{ do = \"type\", text = \"{tag.name}\" }]\n")
                .unwrap_err()
                .to_string();
        assert_has(&outside, &["`{tag.name}` has no value here", "tags"]);
        // ... and the loop does not nest in itself.
        let nested = load(
            r#"
[flows.friend_add]
steps = [{ do = "for_each_tag", procedure = "outer" }]
[procedures]
outer = [{ do = "for_each_tag", procedure = "inner" }]
inner = [{ do = "back" }]
"#,
        )
        .unwrap_err()
        .to_string();
        assert_has(
            &nested,
            &["procedure `outer`", "for_each_tag cannot be used"],
        );
    }

    #[test]
    fn values_out_of_range_are_refused() {
        assert_has(
            &step_error(r#"{ do = "sleep", ms = 60000 }"#),
            &["`ms` must be from 0 to 10000"],
        );
        assert_has(
            &step_error(r#"{ do = "wait_for", target = { text = "x" }, timeout_ms = 600000 }"#),
            &["`timeout_ms` must be from 0 to 120000"],
        );
        assert_has(
            &step_error(r#"{ do = "wait_for", target = { text = "x" }, poll_ms = 5 }"#),
            &["`poll_ms` must be at least 50"],
        );
        assert_has(
            &step_error(r#"{ do = "swipe", from = [0.5, 1.5], to = [0.5, 0.1] }"#),
            &["`from` must be [x, y]"],
        );
        assert_has(
            &step_error(r#"{ do = "key", key = "volume" }"#),
            &["unknown key `volume`"],
        );
        assert_has(
            &step_error(r#"{ do = "key", key = 70000 }"#),
            &["not an Android key code"],
        );
        assert_has(
            &step_error(r#"{ do = "assert", present = { text = "x" } }"#),
            &["`assert` needs `code`"],
        );
        assert_has(
            &step_error(
                r#"{ do = "assert", code = "flow_failed", present = { text = "x" }, absent = { text = "y" } }"#,
            ),
            &["exactly one of `present` and `absent`"],
        );
        assert_has(
            &step_error(r#"{ do = "fail", code = "Contact-Not-Found" }"#),
            &["`Contact-Not-Found`: unknown error code, did you mean `contact_not_found`?"],
        );
        assert_has(
            &step_error(
                r#"{ do = "wait_for", target = { text = "x" }, gone = true, store = "x" }"#,
            ),
            &["`store` does not go with `gone = true`"],
        );
        assert_has(
            &step_error(r#"{ do = "tap", target = { text = "x" }, near_depth = 2 }"#),
            &["`near_depth` only goes with `near`"],
        );
        assert_has(
            &step_error(r#"{ do = "launch", home = { text = "x" }, max_backs = 51 }"#),
            &["`max_backs` must be from 0 to 50, not 51"],
        );
        assert_has(
            &step_error(r#"{ do = "launch", home = { text = "x" }, max_relaunches = -1 }"#),
            &["`max_relaunches` must be from 0 to 10, not -1"],
        );
        assert_has(
            &step_error(r#"{ do = "launch", home = { text = "x" }, max_backs = "six" }"#),
            &["`max_backs` must be a number"],
        );
    }

    #[test]
    fn interrupts_are_checked() {
        let interrupt = |body: &str| {
            load(&format!("[[interrupts]]\n{body}\n"))
                .map(|file| file.interrupts)
                .map_err(|e| e.to_string())
        };
        let ok = interrupt(
            "name = \"update\"\ncode = \"app_update_prompt\"\naction = \"dismiss\"\nany = [{ text = \"发现新版本\" }]\ndismiss = [{ text = \"以后再说\" }]",
        )
        .unwrap();
        assert_eq!(ok[0].name, "update");
        assert!(!ok[0].retryable);
        let no_code =
            interrupt("name = \"x\"\naction = \"fail\"\nany = [{ text = \"y\" }]").unwrap_err();
        assert_has(
            &no_code,
            &["test.toml:4: interrupt 1 (x): `code` is missing"],
        );
        let no_action =
            interrupt("code = \"app_update_prompt\"\nany = [{ text = \"y\" }]").unwrap_err();
        assert_has(&no_action, &["interrupt 1 (#1)", "`action`", "missing"]);
        let bad_action = interrupt(
            "code = \"app_update_prompt\"\naction = \"ignore\"\nany = [{ text = \"y\" }]",
        )
        .unwrap_err();
        assert_has(&bad_action, &["`action` is `ignore`"]);
        let no_buttons = interrupt(
            "code = \"app_update_prompt\"\naction = \"dismiss\"\nany = [{ text = \"y\" }]",
        )
        .unwrap_err();
        assert_has(&no_buttons, &["needs `dismiss`"]);
        let stray_buttons = interrupt(
            "code = \"app_update_prompt\"\naction = \"fail\"\nany = [{ text = \"y\" }]\ndismiss = [{ text = \"z\" }]",
        )
        .unwrap_err();
        assert_has(&stray_buttons, &["`dismiss` only goes with"]);
        let nothing = interrupt("code = \"app_update_prompt\"\naction = \"fail\"").unwrap_err();
        assert_has(&nothing, &["give `any` or `all`"]);
        let empty =
            interrupt("code = \"app_update_prompt\"\naction = \"fail\"\nany = [{}]").unwrap_err();
        assert_has(&empty, &["`any[0]` is an empty selector"]);
        let retry_risk = interrupt(
            "code = \"risk_control\"\naction = \"fail\"\nany = [{ text = \"y\" }]\nretryable = true",
        )
        .unwrap_err();
        assert_has(&retry_risk, &["never retryable"]);
        let unknown = interrupt(
            "code = \"app_update_prompt\"\naction = \"fail\"\nany = [{ text = \"y\" }]\nwhen = 1",
        )
        .unwrap_err();
        assert_has(
            &unknown,
            &["test.toml:8: interrupt 1 (#1): `when`: unknown key (an interrupt takes: name,"],
        );
        let list = load("interrupts = 3").unwrap_err().to_string();
        assert_has(&list, &["`interrupts` must be a list"]);
    }

    #[test]
    fn interrupts_need_any_one_and_all_of_their_selectors() {
        let file = load(
            r#"
[[interrupts]]
name = "risk"
code = "risk_control"
action = "fail"
any = [{ text_contains = "操作频繁" }, { text_contains = "账号存在异常" }]
all = [{ text = "我知道了" }]
"#,
        )
        .unwrap();
        let interrupt = &file.interrupts[0];
        let screen = |texts: &[&str]| {
            let nodes: String = texts
                .iter()
                .map(|t| format!("<node text=\"{t}\" bounds=\"[0,0][100,100]\" />"))
                .collect();
            UiTree::parse(&format!("<hierarchy>{nodes}</hierarchy>")).unwrap()
        };
        assert!(interrupt.matches(&screen(&["操作频繁，请稍后再试", "我知道了"])));
        assert!(interrupt.matches(&screen(&["你的账号存在异常", "我知道了"])));
        assert!(
            !interrupt.matches(&screen(&["客户说：操作频繁吗？"])),
            "a chat message is not a warning"
        );
        assert!(!interrupt.matches(&screen(&["我知道了"])));
    }

    #[test]
    fn nth_inside_fail_on_and_scroll_are_read_and_checked() {
        let file = load(
            r#"
[flows.moments_post]
steps = [
  { do = "tap", target = { label = "消息", nth = -1, inside = { class = "bar", nth = 2 } } },
  { do = "for_each_media", procedure = "pick" },
  { do = "wait_for", target = { text = "x" }, fail_on = [{ text = "a" }, { text = "b" }], scroll = { max = 5, direction = "up", within = { class = "list" }, duration_ms = 200 } },
  { do = "find", target = { text = "y" }, store = "y", scroll = true, fail_on = { text = "c" } },
]
[procedures]
pick = [{ do = "tap", target = { class = "cell", nth = "{media.number + 1}" } }]
"#,
        )
        .unwrap();
        let steps = &file.flows[&TaskKind::MomentsPost];
        let Action::Tap {
            aim: Aim::Find(locate),
            ..
        } = &steps[0].action
        else {
            panic!("{:?}", steps[0].action)
        };
        let plain = |name: &str| -> Result<String, EvalError> { Ok(format!("<{name}>")) };
        let tab = locate.target.render(&plain).unwrap();
        assert_eq!(
            tab.to_string(),
            "{label=\"消息\", nth=-1, inside={class=\"bar\", nth=2}}"
        );
        let Action::WaitFor { locate, .. } = &steps[2].action else {
            panic!()
        };
        assert_eq!(locate.fail_on.len(), 2);
        let scroll = locate.scroll.as_ref().unwrap();
        assert_eq!((scroll.max, scroll.down), (5, false));
        assert_eq!(scroll.duration, Duration::from_millis(200));
        let Action::Find { locate, .. } = &steps[3].action else {
            panic!()
        };
        assert_eq!(locate.scroll.as_ref().unwrap().max, DEFAULT_SCROLLS);
        assert_eq!(locate.fail_on.len(), 1);
        // `nth` from a template: the picture after the camera cell.
        let Action::Tap {
            aim: Aim::Find(locate),
            ..
        } = &file.procedures["pick"][0].action
        else {
            panic!()
        };
        let number = |name: &str| -> Result<String, EvalError> {
            Ok(if name == "media.number" { "2" } else { "" }.to_owned())
        };
        assert_eq!(locate.target.render(&number).unwrap().nth, Some(3));
        let word = |_: &str| -> Result<String, EvalError> { Ok("many".to_owned()) };
        assert!(matches!(
            locate.target.render(&word),
            Err(EvalError::NotANumber { .. })
        ));

        for (step, needles) in [
            (
                r#"{ do = "tap", target = { text = "x", nth = 0 } }"#,
                &["`nth` must be 1 to 1000"][..],
            ),
            (
                r#"{ do = "tap", target = { text = "x", nth = 1001 } }"#,
                &["not 1001"],
            ),
            (
                r#"{ do = "tap", target = { text = "x", nth = "first" } }"#,
                &["`nth` must be a whole number or a template"],
            ),
            (
                r#"{ do = "tap", target = { text = "x", nth = 1.5 } }"#,
                &["`nth` must be a whole number"],
            ),
            (
                r#"{ do = "tap", target = { text = "x", nth = "{to.nmae}" } }"#,
                &["unknown template variable `{to.nmae}`"],
            ),
            (
                r#"{ do = "tap", target = { nth = 2 } }"#,
                &["empty selector"],
            ),
            (
                r#"{ do = "tap", target = { text = "x", inside = { nth = 1 } } }"#,
                &["`target.inside` is an empty selector"],
            ),
            (
                r#"{ do = "tap", target = { text = "x", inside = { txt = "y" } } }"#,
                &[
                    "`target.inside` is not a valid selector",
                    "did you mean `text`",
                ],
            ),
            (
                r#"{ do = "tap", target = { text = "x", inside = { text = "a", inside = { text = "b", inside = { text = "c", inside = { text = "d" } } } } } }"#,
                &["nests deeper than 3"],
            ),
            (
                r#"{ do = "tap", target = { text = "x" }, fail_on = [] }"#,
                &["`fail_on` takes 1 to 16 selectors, not 0"],
            ),
            (
                r#"{ do = "tap", target = { text = "x" }, fail_on = [{ text = "a" }, {}] }"#,
                &["`fail_on[1]` is an empty selector"],
            ),
            (
                r#"{ do = "tap", target = { text = "x" }, fail_on = "a" }"#,
                &["`fail_on` must be a selector table"],
            ),
            (
                r#"{ do = "tap", target = { text = "x" }, scroll = 3 }"#,
                &["`scroll` must be true or a table"],
            ),
            (
                r#"{ do = "tap", target = { text = "x" }, scroll = { max = 0 } }"#,
                &["`scroll.max` must be 1 to 50, not 0"],
            ),
            (
                r#"{ do = "tap", target = { text = "x" }, scroll = { direction = "left" } }"#,
                &["`scroll.direction` is `down`"],
            ),
            (
                r#"{ do = "tap", target = { text = "x" }, scroll = { mx = 3 } }"#,
                &["`mx`", "did you mean `max`"],
            ),
            (
                r#"{ do = "tap", target = { text = "x" }, scroll = { within = {} } }"#,
                &["`within` is an empty selector"],
            ),
            (
                r#"{ do = "wait_for", target = { text = "x" }, gone = true, scroll = true }"#,
                &["`scroll` does not go with `gone = true`"],
            ),
            (
                r#"{ do = "tap", node = "n", scroll = true }"#,
                &["`tap` does not take `scroll`"],
            ),
        ] {
            let message = step_error(step);
            assert_has(&message, needles);
        }
    }

    #[test]
    fn branches_are_read_and_their_procedures_checked() {
        let file = load(
            r#"
[flows.friend_add]
steps = [
  { do = "branch", name = "which", cases = [{ present = { text = "添加到通讯录" }, call = "add" }, { present = { text = "{target.query}" }, call = "known" }], otherwise = "none", timeout_ms = 2000, poll_ms = 100 },
]
[procedures]
add = [{ do = "tap", target = { text = "添加到通讯录" }, sends = true }]
known = [{ do = "type", text = "{greeting}" }]
none = [{ do = "fail", code = "friend_not_found" }]
"#,
        )
        .unwrap();
        let Action::Branch {
            cases,
            otherwise,
            timeout,
            poll,
        } = &file.flows[&TaskKind::FriendAdd][0].action
        else {
            panic!()
        };
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[1].call, "known");
        assert_eq!(otherwise.as_deref(), Some("none"));
        assert_eq!(
            (*timeout, *poll),
            (Duration::from_secs(2), Duration::from_millis(100))
        );
        assert_eq!(
            file.step_names(TaskKind::FriendAdd),
            ["which", "tap", "type", "fail"]
        );
        assert!(file.sends_among(&file.flows[&TaskKind::FriendAdd], &mut Vec::new()));

        let case = |cases: &str| format!(r#"{{ do = "branch", cases = {cases} }}"#);
        for (step, needles) in [
            (r#"{ do = "branch" }"#.to_owned(), &["`branch` needs `cases`"][..]),
            (case("[]"), &["`cases` takes 1 to 16 cases, not 0"]),
            (case(r#"[{ call = "p" }]"#), &["`cases[0]` needs `present`"]),
            (case(r#"[{ present = { text = "a" } }]"#), &["`cases[0]` needs `call`"]),
            (case(r#"[{ present = { text = "a" }, call = "p", when = 1 }]"#), &["`when`", "present, call"]),
            (case(r#"[{ present = {}, call = "p" }]"#), &["`cases[0]`", "empty selector"]),
            (case(r#"["p"]"#), &["`cases[0]` must be a table"]),
            (case(r#"[{ present = { text = "a" }, call = "nowhere" }]"#), &["there is no procedure `nowhere`"]),
            (case(r#"[{ present = { text = "{to.nmae}" }, call = "p" }]"#), &["unknown template variable `{to.nmae}`"]),
            (r#"{ do = "branch", cases = [{ present = { text = "a" }, call = "p" }], otherwise = "nowhere" }"#.to_owned(), &["there is no procedure `nowhere`"]),
        ] {
            let message = load(&format!(
                "[flows.send_message]\nsteps = [{step}]\n[procedures]\np = [{{ do = \"back\" }}]\n"
            ))
            .expect_err("the file should be refused")
            .to_string();
            assert_has(&message, needles);
        }
    }

    #[test]
    fn template_expressions_are_checked_at_load() {
        load(
            r#"
[flows.moments_post]
steps = [{ do = "for_each_media", procedure = "pick" }, { do = "type", text = "{media_ids[-1]}" }]
[procedures]
pick = [{ do = "type", text = "{(media.number - 1) * 2 + 1} of {media_ids[media.number]}" }]
"#,
        )
        .unwrap();
        for (step, needles) in [
            (
                r#"{ do = "type", text = "{to.name + 1}" }"#,
                &["`{to.name + 1}`", "not a number variable"][..],
            ),
            (
                r#"{ do = "type", text = "{tags[1] + 1}" }"#,
                &["stands alone"],
            ),
            (
                r#"{ do = "type", text = "{media.number + }" }"#,
                &["ends where"],
            ),
            (
                r#"{ do = "type", text = "{item.number + 1}" }"#,
                &["`{item.number}` has no value here"],
            ),
        ] {
            assert_has(&step_error(step), needles);
        }
    }

    #[test]
    fn a_file_with_every_step_type_loads() {
        let file = load(
            r#"
description = "all steps"
[flows.mass_send]
steps = [
  { do = "for_each_recipient", procedure = "one", skip_codes = ["contact_not_found"] },
]
[flows.moments_post]
steps = [
  { do = "for_each_media", procedure = "media" },
  { do = "swipe", from = [0.5, 0.8], to = [0.5, 0.2], duration_ms = 200 },
  { do = "type", if = "text", text = "{text}", check = false },
]
[flows.friend_add]
steps = [
  { do = "launch", home = { desc = "消息" }, restart = true, settle_ms = 500, timeout_ms = 20000, max_backs = 3, max_relaunches = 0 },
  { do = "find", target = { text = "添加客户" }, store = "add", timeout_ms = 0 },
  { do = "tap", node = "add" },
  { do = "clear", target = { class = "android.widget.EditText" } },
  { do = "type", text = "{target.query}" },
  { do = "key", key = "enter" },
  { do = "key", key = 66 },
  { do = "wait_for", target = { text = "添加到通讯录" }, fail_on = { text = "该用户不存在" }, code = "friend_not_found" },
  { do = "long_press", target = { text = "x" }, near = { text = "y" }, near_depth = 2, hold_ms = 1000 },
  { do = "assert", absent = { text = "该用户不存在" }, code = "friend_not_found", retryable = false },
  { do = "back", unless = "greeting" },
  { do = "sleep", ms = 100 },
  { do = "fail", code = "flow_failed", message = "stop for {target.query}" },
]
[procedures]
one = [
  { do = "type", text = "{to.name} {recipient.number}/{recipient.count}" },
  { do = "for_each_item", text = "text", image = "media_item", link = "text", file = "media_item" },
]
text = [{ do = "type", text = "{item.number}: {item.type}" }]
media_item = [{ do = "push_media" }, { do = "tap", target = { text = "{item.device_name}" } }]
media = [{ do = "push_media" }, { do = "type", text = "{media.id} {media.device_path}" }]
unused = [{ do = "type", text = "{item.url}" }]
"#,
        )
        .unwrap();
        assert_eq!(file.description(), "all steps");
        assert_eq!(file.versions(), "4.1.*");
        assert!(file.covers("4.1.30"));
        assert!(file.has_flow(TaskKind::FriendAdd));
        assert!(!file.has_flow(TaskKind::DeleteChat));
        let steps = &file.flows[&TaskKind::FriendAdd];
        assert_eq!(steps.len(), 13);
        assert_eq!(steps[0].name, "launch");
        assert!(matches!(
            steps[0].action,
            Action::Launch {
                max_backs: 3,
                max_relaunches: 0,
                ..
            }
        ));
        assert!(
            matches!(steps[2].action, Action::Tap { aim: Aim::Stored(ref n), .. } if n == "add")
        );
        assert_eq!(steps[5].action, Action::Key(Key::Enter));
        assert_eq!(steps[6].action, Action::Key(Key::Code(66)));
        assert_eq!(
            steps[10].condition,
            Some(Condition::Unless("greeting".to_owned()))
        );
        assert_eq!(steps[12].on_fail.code.as_deref(), Some("flow_failed"));
    }
}

/// Mistakes put into the built-in file, one at a time, wherever they can go:
/// each is refused with the file, its line and the valid values.
#[cfg(test)]
mod mistakes {
    use super::*;

    const BUILTIN: &str = include_str!("../../flows/wecom-4.1.toml");

    /// The built-in file with the `nth` occurrence of `from` replaced by `to`,
    /// and the line that occurrence is on.
    fn with_mistake(nth: usize, from: &str, to: &str) -> (String, usize) {
        let (at, _) = BUILTIN.match_indices(from).nth(nth).unwrap();
        let line = BUILTIN[..at].matches('\n').count() + 1;
        let text = format!("{}{to}{}", &BUILTIN[..at], &BUILTIN[at + from.len()..]);
        (text, line)
    }

    fn refused(text: &str) -> String {
        FlowFile::parse("wecom.toml", text)
            .expect_err("the mistake is refused")
            .to_string()
    }

    #[test]
    fn every_misspelt_error_code_is_named_with_its_line_and_the_codes() {
        let codes: Vec<(usize, String)> = BUILTIN
            .match_indices("code = \"")
            .map(|(at, m)| {
                let start = at + m.len();
                let end = start + BUILTIN[start..].find('"').unwrap();
                (at, BUILTIN[start..end].to_owned())
            })
            .collect();
        assert!(codes.len() > 10, "{codes:?}");
        for (at, code) in &codes {
            // Drop a letter from the middle: `risk_contrl`, `contact_not_fond`.
            let mut chars: Vec<char> = code.chars().collect();
            chars.remove(chars.len() * 2 / 3);
            let typo: String = chars.into_iter().collect();
            let from = format!("code = \"{code}\"");
            let nth = BUILTIN[..*at].matches(&from).count();
            let (text, line) = with_mistake(nth, &from, &format!("code = \"{typo}\""));
            let message = refused(&text);
            for needle in [
                format!("wecom.toml:{line}: "),
                format!("`{typo}`: unknown error code, did you mean `{code}`?"),
                "a flow file may use: unsupported_app_version,".to_owned(),
            ] {
                assert!(message.contains(&needle), "{needle:?} not in: {message}");
            }
        }
        // The same for the codes a mass send skips on.
        let (text, line) = with_mistake(0, "\"missing_value\"]", "\"missing_valeu\"]");
        let message = refused(&text);
        assert!(message.contains(&format!("wecom.toml:{line}: flow `mass_send`, step 1: `missing_valeu`: unknown error code, did you mean `missing_value`?")), "{message}");
        // A code the server gives is not a flow file's.
        let (text, _) = with_mistake(0, "code = \"contact_not_found\"", "code = \"lost\"");
        assert!(refused(&text).contains("the agent or the server gives it"));
    }

    #[test]
    fn version_patterns_the_loader_does_not_read_are_refused() {
        for bad in ["4.1.x", "4.x", "4.1.30-beta", "v4.1.*", "4.1*"] {
            let (text, line) = with_mistake(0, "\"4.1.*\"", &format!("\"{bad}\""));
            let message = refused(&text);
            assert!(
                message.starts_with(&format!("wecom.toml:{line}: ")),
                "{message}"
            );
            assert!(message.contains(&format!("`{bad}`")), "{message}");
        }
        let (text, _) = with_mistake(0, "\"4.1.*\"", "\"4.1.x\"");
        let message = refused(&text);
        assert!(message.contains("`x` is not a number"), "{message}");
        assert!(
            message.contains("`4.1.30`") && message.contains("`4.1.*`"),
            "{message}"
        );
    }

    #[test]
    fn every_misspelt_key_is_named_as_such_with_its_line() {
        for (key, typo, what) in [
            ("target = ", "targt = ", "`tap` takes: do,"),
            ("name = ", "nmae = ", "takes: "),
            ("near_depth = ", "near_dept = ", "takes: "),
            ("timeout_ms = ", "timout_ms = ", "`long_press` takes: "),
            ("dismiss = ", "dismis = ", "an interrupt takes: name,"),
            ("home = ", "hme = ", "`launch` takes: "),
            (
                "text_contains = ",
                "text_contain = ",
                "a selector takes: text,",
            ),
            ("description = ", "descripton = ", "description"),
        ] {
            let count = BUILTIN.matches(key).count();
            assert!(count > 0, "{key}");
            // The first, the last and one in the middle of each.
            for nth in [0, count / 2, count - 1] {
                let (text, line) = with_mistake(nth, key, typo);
                let message = refused(&text);
                let wanted = typo.trim_end_matches(" = ");
                let right = key.trim_end_matches(" = ");
                for needle in [
                    format!("wecom.toml:{line}: "),
                    format!("`{wanted}`: unknown key, did you mean `{right}`?"),
                    what.to_owned(),
                ] {
                    assert!(message.contains(&needle), "{needle:?} not in: {message}");
                }
            }
        }
    }

    #[test]
    fn the_docs_list_every_task_error_code() {
        let docs = include_str!("../../../docs/flows.md");
        let (_, rest) = docs.split_once("<!-- task-error-codes -->").unwrap();
        let (table, _) = rest.split_once("<!-- /task-error-codes -->").unwrap();
        let rows: Vec<(String, String)> = table
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((code.to_owned(), cells[2].to_owned()))
            })
            .collect();
        let codes: Vec<(String, String)> = task_error::TASK_ERROR_CODES
            .iter()
            .map(|c| (c.code.to_owned(), format!("{:?}", c.origin).to_lowercase()))
            .collect();
        assert_eq!(
            rows, codes,
            "docs/flows.md lists the codes and their origins"
        );
    }

    #[test]
    fn risk_phrases_extend_the_list_and_are_checked() {
        let file = FlowFile::parse(
            "wecom.toml",
            &format!("{BUILTIN}\n[risk]\nphrases = [\"功能受限\"]\n"),
        )
        .unwrap();
        assert_eq!(file.risk_phrases, ["功能受限"]);
        let message = refused(&format!("{BUILTIN}\n[risk]\nphrase = [\"功能受限\"]\n"));
        assert!(
            message.contains("`phrase`: unknown key, did you mean `phrases`?"),
            "{message}"
        );
        let empty = refused(&format!("{BUILTIN}\n[risk]\nphrases = [\" \"]\n"));
        assert!(empty.contains("empty phrase"), "{empty}");
    }
}
