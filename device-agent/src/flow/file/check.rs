//! The load-time checks across a whole file: template variables against what the task
//! kind and the enclosing loops give, calls to missing or recursive procedures, loops
//! with nothing to loop over, and what sending steps and their checks need.

use std::collections::BTreeSet;

use super::model::{Action, Aim, Sends, Step};
use super::FlowFile;
use crate::flow::vars::{self, Collections};
use crate::flow::LoadError;

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

impl FlowFile {
    /// Checks what needs the whole file: calls, loops, stored nodes and the
    /// template variables each step can use where it runs.
    pub(super) fn check(&self) -> Result<(), LoadError> {
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
    pub(super) fn step_error(
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
            let mut runs: Vec<(&String, Scope)> = Vec::new();
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
                        runs.push((procedure, scope.clone()));
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
                    runs.push((procedure, inner));
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
                        runs.push((procedure, inner));
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
                    runs.push((procedure, inner));
                }
                Action::ForEachTag(procedure) => {
                    if !scope.collections.tags || scope.in_tag {
                        return Err(fail(self.no_loop("for_each_tag", scope, "tags")));
                    }
                    let mut inner = scope.clone();
                    inner.in_tag = true;
                    inner.vars.extend(vars::TAG);
                    runs.push((procedure, inner));
                }
                _ => {}
            }
            // The procedures the step runs, each in the scope it runs in.
            for (procedure, inner) in runs {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::file::tests::{assert_has, load, step_error};
    use std::time::Duration;
    use youmi_protocol::TaskKind;

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
}
