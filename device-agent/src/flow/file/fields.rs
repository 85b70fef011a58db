//! One TOML table's keys, taken one by one so that whatever is left is a key nobody
//! asked for (named, with a likely spelling); typed reads of values and selectors; and
//! the closed set of error codes a file may name.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::{Table, Value};
use youmi_protocol::task_error;

use super::lines::Seg;
use super::model::{Case, Nth, SelectorTemplate};
use crate::flow::template::Template;
use crate::phone::Selector;

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
/// The keys of one of `branch`'s cases.
const CASE_KEYS: &[&str] = &["present", "call"];
/// How many selectors `fail_on` and `branch` take.
const MAX_ALTERNATIVES: usize = 16;

/// The keys of one TOML table, taken one by one so that whatever is left at
/// the end is a key nobody asked for: a typo the file's author wants to hear about.
pub(super) struct Fields {
    /// What has not been taken yet.
    table: Table,
    /// The key a mistake is in, when one was found: its line goes in the error.
    blamed: Option<String>,
    /// The item of the blamed key's list the mistake is in, when it is a list.
    blamed_index: Option<usize>,
}

impl Fields {
    pub(super) fn new(table: Table) -> Fields {
        Fields {
            table,
            blamed: None,
            blamed_index: None,
        }
    }

    pub(super) fn take(&mut self, key: &str) -> Option<Value> {
        self.table.remove(key)
    }

    /// Says that the mistake is in `key`.
    pub(super) fn blame(&mut self, key: &str) {
        if self.blamed.as_deref() != Some(key) {
            self.blamed_index = None;
        }
        self.blamed = Some(key.to_owned());
    }

    /// The key the mistake is in, if known.
    pub(super) fn blamed(&self) -> Option<&str> {
        self.blamed.as_deref()
    }

    /// `path` (the table's own) with the blamed key, if any, added.
    pub(super) fn blamed_path<'p>(&'p self, path: &[Seg<'p>]) -> Vec<Seg<'p>> {
        let mut out = path.to_vec();
        out.extend(self.blamed().map(Seg::Key));
        out.extend(self.blamed_index.map(Seg::Index));
        out
    }

    /// Blames `key` when `result` is an error.
    pub(super) fn note<T>(&mut self, key: &str, result: Result<T, String>) -> Result<T, String> {
        if result.is_err() {
            self.blame(key);
        }
        result
    }

    /// Refuses a key that `what` does not take, before anything else is
    /// read, so that a misspelt key is named as such rather than as the
    /// right key missing.
    pub(super) fn allow(&mut self, what: &str, known: &[&str]) -> Result<(), String> {
        let Some(key) = self.table.keys().find(|k| !known.contains(&k.as_str())) else {
            return Ok(());
        };
        let key = key.clone();
        self.blame(&key);
        Err(unknown_key(&key, what, known))
    }

    /// An error code from the closed set.
    pub(super) fn code(&mut self, key: &str) -> Result<Option<String>, String> {
        let code = self.string(key)?;
        if let Some(code) = &code {
            let checked = check_code(code);
            self.note(key, checked)?;
        }
        Ok(code)
    }

    /// A list of error codes from the closed set.
    pub(super) fn codes(&mut self, key: &str) -> Result<Option<Vec<String>>, String> {
        let codes = self.strings(key)?;
        for code in codes.iter().flatten() {
            let checked = check_code(code);
            self.note(key, checked)?;
        }
        Ok(codes)
    }

    pub(super) fn string(&mut self, key: &str) -> Result<Option<String>, String> {
        let result = match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("`{key}` must be a string, not {other}")),
        };
        self.note(key, result)
    }

    pub(super) fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, String> {
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

    pub(super) fn bool(&mut self, key: &str) -> Result<Option<bool>, String> {
        let result = match self.take(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(b)),
            Some(other) => Err(format!("`{key}` must be true or false, not {other}")),
        };
        self.note(key, result)
    }

    pub(super) fn u32(&mut self, key: &str) -> Result<Option<u32>, String> {
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
    pub(super) fn count(&mut self, key: &str, max: u32) -> Result<Option<u32>, String> {
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

    pub(super) fn millis(&mut self, key: &str, max: u64) -> Result<Option<Duration>, String> {
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

    pub(super) fn point(&mut self, key: &str) -> Result<Option<[f64; 2]>, String> {
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

    pub(super) fn selector(&mut self, key: &str) -> Result<Option<SelectorTemplate>, String> {
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
    pub(super) fn selector_list(
        &mut self,
        key: &str,
    ) -> Result<Option<Vec<SelectorTemplate>>, String> {
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
    pub(super) fn cases(&mut self, key: &str) -> Result<Option<Vec<Case>>, String> {
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

    pub(super) fn selectors(&mut self, key: &str) -> Result<Option<Vec<Selector>>, String> {
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
    pub(super) fn finish(&mut self, what: &str) -> Result<(), String> {
        match self.table.keys().next().cloned() {
            None => Ok(()),
            Some(key) => {
                self.blame(&key);
                Err(format!("{what} does not take `{key}`"))
            }
        }
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
pub(super) fn did_you_mean(word: &str, known: &[&str]) -> String {
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
