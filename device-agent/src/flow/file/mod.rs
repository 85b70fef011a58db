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
//!
//! # Layout
//! - this file: [`FlowFile`], its loading and what the runner asks of it, and the
//!   line numbers of load errors.
//! - `model`: what a file is made of (steps, actions, selectors, interrupts).
//! - `parse`: reading the TOML into the model; the step types, their keys
//!   (`step_keys`), defaults and limits.
//! - `fields`: one table's keys taken one by one, typed reads, typos named.
//! - `lines`: the line a key is on, for load errors.
//! - `check`: the checks across the whole file (variables, calls, loops, sends).

use std::collections::BTreeMap;

use toml::{Table, Value};
use youmi_protocol::TaskKind;

use super::version::Coverage;
use super::LoadError;

mod check;
mod fields;
mod lines;
mod model;
mod parse;

use fields::{did_you_mean, Fields};
use lines::{Lines, Seg};
use model::Interrupt;
pub(crate) use model::{
    render, Action, Aim, Condition, InterruptAction, Locate, Near, SelectorTemplate, Step,
    NOT_SENT, RISK_CONTROL,
};
use parse::{parse_interrupt, parse_steps, FILE_KEYS, FLOW_KEYS, RISK_KEYS};

/// The flow file format this agent reads.
pub const FORMAT: i64 = 1;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::Key;

    pub(super) const HEAD: &str =
        "format = 1\napp = \"com.tencent.wework\"\nversions = [\"4.1.*\"]\n";

    pub(super) fn load(body: &str) -> Result<FlowFile, LoadError> {
        FlowFile::parse("test.toml", &format!("{HEAD}{body}"))
    }

    /// The load error for a file whose send_message flow is `steps`.
    pub(super) fn step_error(steps: &str) -> String {
        load(&format!("[flows.send_message]\nsteps = [{steps}]\n"))
            .expect_err("the file should be refused")
            .to_string()
    }

    pub(super) fn assert_has(message: &str, needles: &[&str]) {
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
    use youmi_protocol::task_error;

    const BUILTIN: &str = include_str!("../../../flows/wecom-4.1.toml");

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
        let docs = include_str!("../../../../docs/flows.md");
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
