//! Reading a file's TOML into the model: flows, procedures, steps and interrupts, each
//! step's keys for its type, the defaults of what a step leaves out, and the limits
//! every value must keep.

use std::time::Duration;

use toml::Value;

use super::fields::{did_you_mean, Fields};
use super::lines::{Lines, Seg};
use super::model::{
    Action, Aim, Condition, Interrupt, InterruptAction, Locate, Near, OnFail, Scroll, Sends, Step,
    RISK_CONTROL,
};
use crate::flow::template::Template;
use crate::flow::LoadError;
use crate::phone::Key;

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
pub(super) const FILE_KEYS: &[&str] = &[
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
pub(super) const RISK_KEYS: &[&str] = &["phrases"];
/// The keys of one flow, `[flows.<kind>]`.
pub(super) const FLOW_KEYS: &[&str] = &["steps", "description"];
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
/// How many swipes `scroll` makes when the file does not say, and at most.
const DEFAULT_SCROLLS: u32 = 10;

const MAX_SCROLLS: u32 = 50;
/// How long one scrolling swipe takes when the file does not say: slow
/// enough not to fling the list past what it looks for.
const DEFAULT_SCROLL_SWIPE: Duration = Duration::from_millis(400);
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

pub(super) fn parse_interrupt(
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

pub(super) fn parse_steps(
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
            let poll = poll(f)?;
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

pub(super) fn template(text: &str) -> Result<Template, String> {
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

pub(super) fn locate(
    f: &mut Fields,
    default_timeout: Duration,
) -> Result<Option<Box<Locate>>, String> {
    let Some(target) = f.selector("target")? else {
        return Ok(None);
    };
    let timeout = f
        .millis("timeout_ms", MAX_TIMEOUT_MS)?
        .unwrap_or(default_timeout);
    let poll = poll(f)?;
    Ok(Some(Box::new(Locate {
        target,
        near: near(f)?,
        fail_on: f.selector_list("fail_on")?.unwrap_or_default(),
        scroll: scroll(f)?,
        timeout,
        poll,
    })))
}

/// `poll_ms`: how long to wait between screen reads, at least [`MIN_POLL_MS`].
fn poll(f: &mut Fields) -> Result<Duration, String> {
    let poll = f.millis("poll_ms", MAX_TIMEOUT_MS)?.unwrap_or(DEFAULT_POLL);
    if poll < Duration::from_millis(MIN_POLL_MS) {
        return Err(format!("`poll_ms` must be at least {MIN_POLL_MS}"));
    }
    Ok(poll)
}

pub(super) fn scroll(f: &mut Fields) -> Result<Option<Scroll>, String> {
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

pub(super) fn near(f: &mut Fields) -> Result<Option<Near>, String> {
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

pub(super) fn aim(f: &mut Fields, kind: &str) -> Result<Aim, String> {
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

pub(super) fn key(value: Value) -> Result<Key, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::expr::EvalError;
    use crate::flow::file::tests::{assert_has, load, step_error};
    use crate::phone::UiTree;
    use youmi_protocol::TaskKind;

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
}
