//! What the step types that touch the phone do: taps, typing (checked on
//! screen), clearing, waits, branches and pushing media; and where a task's
//! media files are.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;
use tracing::info;
use youmi_protocol::task::Item;

use crate::delivery::Mark;
use crate::flow::failure::{phone_error, shorten, Failure, Stop};
use crate::flow::file::{render, Action, Aim, Locate, Step};
use crate::phone::{Key, Point};

use super::bind::unit_key;
use super::launch::Budget;
use super::screen::find;
use super::{Binding, Run};

/// How long `type` waits for the typed text to show on screen.
const TYPE_CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How often `type` reads the screen while it waits.
const TYPE_CHECK_POLL: Duration = Duration::from_millis(300);
/// KEYCODE_MOVE_END: puts the cursor after the last character before `clear` deletes.
const KEY_MOVE_END: u16 = 123;
/// The most characters `clear` deletes (one key press each).
const MAX_CLEAR_CHARS: usize = 500;

impl<'a> Run<'a> {
    pub(super) async fn act(&mut self, step: &'a Step, binding: Binding<'a>) -> Result<(), Stop> {
        let touches = matches!(
            step.action,
            Action::Launch { .. }
                | Action::Tap { .. }
                | Action::LongPress { .. }
                | Action::Clear { .. }
                | Action::Type { .. }
                | Action::Back
                | Action::Key(_)
                | Action::Swipe { .. }
        );
        if touches {
            self.hold_for_call().await?;
        }
        let blind = match &step.action {
            Action::Back | Action::Key(_) | Action::Swipe { .. } | Action::Type { .. } => true,
            Action::Tap { aim, .. } | Action::LongPress { aim, .. } | Action::Clear { aim } => {
                matches!(aim, Aim::Stored(_))
            }
            _ => false,
        };
        if blind {
            self.look().await?;
        }
        match &step.action {
            Action::Launch {
                home,
                restart,
                settle,
                timeout,
                max_backs,
                max_relaunches,
            } => {
                let budget = Budget {
                    backs: *max_backs,
                    relaunches: *max_relaunches,
                };
                self.launch(step, binding, home, *restart, *settle, *timeout, budget)
                    .await
            }
            Action::Find { locate, store } => {
                let node = self.aim(step, &Aim::Find(locate.clone()), binding).await?;
                self.stored.insert(store.clone(), node);
                Ok(())
            }
            Action::Tap { aim, store } => {
                let node = self.aim(step, aim, binding).await?;
                let sends = step.sends.is_some().then(|| unit_key(binding));
                if let Some(unit) = sends {
                    self.mark(unit, Mark::Sending, self.task.attempt).await?;
                }
                self.phone
                    .tap(node.bounds.center())
                    .await
                    .map_err(phone_error)?;
                if let Some(unit) = sends {
                    self.mark(unit, Mark::Sent, self.task.attempt).await?;
                }
                if let Some(store) = store {
                    self.stored.insert(store.clone(), node);
                }
                Ok(())
            }
            Action::LongPress { aim, hold } => {
                let node = self.aim(step, aim, binding).await?;
                self.phone
                    .long_press(node.bounds.center(), *hold)
                    .await
                    .map_err(phone_error)
            }
            Action::Clear { aim } => self.clear(step, aim, binding).await,
            Action::Type { text, check } => {
                let text = render(text, &self.lookup(binding))?;
                if text.is_empty() {
                    return Ok(());
                }
                self.phone.type_text(&text).await.map_err(phone_error)?;
                if *check {
                    self.check_typed(&text).await?;
                }
                Ok(())
            }
            Action::WaitFor {
                locate,
                gone,
                store,
            } => {
                if *gone {
                    return self.wait_gone(step, locate, binding).await;
                }
                let located = self.locate(locate, binding).await?;
                let node = self.found(step, binding, locate, located)?;
                if let Some(store) = store {
                    self.stored.insert(store.clone(), node);
                }
                Ok(())
            }
            Action::Assert {
                selector,
                near,
                present,
            } => {
                let selector = self.selector(selector, binding)?;
                let near = self.near(near, binding)?;
                let tree = self.dump().await?;
                let found = find(&tree, &selector, near.as_ref()).is_some();
                if found == *present {
                    Ok(())
                } else {
                    let what = if *present {
                        format!("{selector} is not on screen")
                    } else {
                        format!("{selector} is on screen")
                    };
                    Err(self.step_failure(step, binding, "assertion_failed", what, false))
                }
            }
            Action::Back => self.phone.key(Key::Back).await.map_err(phone_error),
            Action::Key(key) => self.phone.key(*key).await.map_err(phone_error),
            Action::Swipe { from, to, duration } => {
                let screen = match self.last_tree.as_ref().and_then(|t| t.nodes.first()) {
                    Some(root) if !root.bounds.is_empty() => root.bounds,
                    _ => {
                        let tree = self.dump().await?;
                        tree.nodes.first().map(|n| n.bounds).unwrap_or_default()
                    }
                };
                let at = |f: &[f64; 2]| Point {
                    x: screen.left + ((screen.right - screen.left) as f64 * f[0]).round() as i32,
                    y: screen.top + ((screen.bottom - screen.top) as f64 * f[1]).round() as i32,
                };
                self.phone
                    .swipe(at(from), at(to), *duration)
                    .await
                    .map_err(phone_error)
            }
            Action::Sleep(duration) => self.pause(*duration).await,
            Action::PushMedia => self.push_media(binding).await,
            Action::Fail => Err(self.step_failure(
                step,
                binding,
                "flow_failed",
                "the flow stopped here".to_owned(),
                false,
            )),
            Action::Call(_)
            | Action::Branch { .. }
            | Action::ForEachRecipient { .. }
            | Action::ForEachItem { .. }
            | Action::ForEachMedia(_)
            | Action::ForEachTag(_) => Ok(()),
        }
    }

    /// Reads the screen until one of a `branch`'s cases shows, and names
    /// the procedure to run: the first case (in file order) on the first
    /// screen that shows any, or `otherwise` when none shows in time.
    pub(super) async fn branch(
        &mut self,
        step: &'a Step,
        binding: Binding<'a>,
    ) -> Result<&'a str, Stop> {
        let Action::Branch {
            cases,
            otherwise,
            timeout,
            poll,
        } = &step.action
        else {
            return Ok("");
        };
        let selectors = cases
            .iter()
            .map(|case| self.selector(&case.present, binding))
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = Instant::now() + *timeout;
        loop {
            let tree = self.dump().await?;
            if let Some((case, shown)) = cases
                .iter()
                .zip(&selectors)
                .find(|(_, selector)| tree.find(selector).is_some())
            {
                info!(procedure = %case.call, %shown, "branch: the screen shows a case");
                return Ok(case.call.as_str());
            }
            let now = Instant::now();
            if now >= deadline {
                if let Some(otherwise) = otherwise {
                    info!(procedure = %otherwise, "branch: no case showed, so `otherwise`");
                    return Ok(otherwise.as_str());
                }
                let looked: Vec<String> = selectors.iter().map(ToString::to_string).collect();
                return Err(self.step_failure(
                    step,
                    binding,
                    "element_not_found",
                    format!(
                        "none of {} appeared within {:.1} s",
                        looked.join(", "),
                        timeout.as_secs_f64()
                    ),
                    true,
                ));
            }
            self.pause((*poll).min(deadline - now)).await?;
        }
    }

    /// Checks that typed text arrived in the focused field.
    async fn check_typed(&mut self, text: &str) -> Result<(), Stop> {
        let deadline = Instant::now() + TYPE_CHECK_TIMEOUT;
        loop {
            let tree = self.dump().await?;
            let arrived = match tree.focused() {
                Some(field) => field.text.contains(text),
                None => tree.contains_text(text),
            };
            if arrived {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Failure::new(
                    "text_not_typed",
                    format!(
                        "typed {:?}, but the focused field does not show it",
                        shorten(text, 60)
                    ),
                    true,
                )
                .into());
            }
            self.pause(TYPE_CHECK_POLL.min(deadline - now)).await?;
        }
    }

    /// Focuses a field, moves to its end and deletes what it holds.
    pub(super) async fn clear(
        &mut self,
        step: &Step,
        aim: &Aim,
        binding: Binding<'a>,
    ) -> Result<(), Stop> {
        let node = self.aim(step, aim, binding).await?;
        self.phone
            .tap(node.bounds.center())
            .await
            .map_err(phone_error)?;
        let count = node.text.chars().count().min(MAX_CLEAR_CHARS);
        if count == 0 {
            return Ok(());
        }
        self.phone
            .key(Key::Code(KEY_MOVE_END))
            .await
            .map_err(phone_error)?;
        for _ in 0..count {
            self.phone.key(Key::Delete).await.map_err(phone_error)?;
        }
        let tree = self.dump().await?;
        let still = tree
            .nodes
            .iter()
            .any(|n| n.bounds == node.bounds && n.class == node.class && n.text == node.text);
        if still {
            return Err(Failure::new(
                "text_not_cleared",
                format!("the field still shows {:?}", shorten(&node.text, 60)),
                true,
            )
            .into());
        }
        Ok(())
    }

    /// Waits until a node is no longer on screen.
    async fn wait_gone(
        &mut self,
        step: &Step,
        locate: &Locate,
        binding: Binding<'a>,
    ) -> Result<(), Stop> {
        let target = self.selector(&locate.target, binding)?;
        let near = self.near(&locate.near, binding)?;
        let fail_on = locate
            .fail_on
            .iter()
            .map(|s| self.selector(s, binding))
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = Instant::now() + locate.timeout;
        loop {
            let tree = self.dump().await?;
            if find(&tree, &target, near.as_ref()).is_none() {
                return Ok(());
            }
            if let Some(stop) = fail_on.iter().find(|s| tree.find(s).is_some()) {
                return Err(self.step_failure(
                    step,
                    binding,
                    "element_not_gone",
                    format!("{stop} appeared while waiting for {target} to go away"),
                    false,
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.step_failure(
                    step,
                    binding,
                    "element_not_gone",
                    format!(
                        "{target} was still on screen after {:.1} s",
                        locate.timeout.as_secs_f64()
                    ),
                    true,
                ));
            }
            self.pause(locate.poll.min(deadline - now)).await?;
        }
    }

    /// Copies the current item's or media's file to the phone, once per run.
    async fn push_media(&mut self, binding: Binding<'a>) -> Result<(), Stop> {
        let id: &str = match (binding.item, binding.media) {
            (Some((_, Item::Image { media_id } | Item::File { media_id })), _) => media_id,
            (_, Some((_, id))) => id,
            _ => {
                return Err(Failure::new(
                    "flow_error",
                    "push_media ran where there is no media file",
                    false,
                )
                .into())
            }
        };
        if self.pushed.contains_key(id) {
            return Ok(());
        }
        let local = media_file(self.places.media_dir, id)?;
        if self.pushed.is_empty() {
            // The first file of this run: what earlier tasks left in the
            // album goes, so the album shows this task's media only, in order.
            self.phone.clear_media().await.map_err(phone_error)?;
        }
        let on_phone = self.phone.push_media(&local).await.map_err(phone_error)?;
        info!(media_id = id, path = %on_phone, "media pushed to the phone");
        self.pushed.insert(id.to_owned(), on_phone);
        Ok(())
    }
}

/// The local file of media `id`: `<media_dir>/<id>`. An id that is not a
/// plain file name is refused, so a payload cannot make the agent copy any
/// other file of the computer to the phone.
pub(crate) fn media_file(media_dir: Option<&Path>, id: &str) -> Result<PathBuf, Stop> {
    let unavailable = |why: String| -> Stop {
        Failure::new("media_unavailable", format!("media {id:?}: {why}"), false).into()
    };
    let Some(dir) = media_dir else {
        return Err(unavailable(
            "the agent has no media directory configured".to_owned(),
        ));
    };
    let plain = !id.is_empty()
        && id != "."
        && id != ".."
        && !id.contains(['/', '\\', '\0'])
        && !id.starts_with('.');
    if !plain {
        return Err(unavailable(
            "a media id must be a plain file name".to_owned(),
        ));
    }
    let path = dir.join(id);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(path),
        Ok(_) => Err(unavailable(format!("{} is not a file", path.display()))),
        Err(error) => Err(unavailable(format!("{}: {error}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_files_must_be_plain_names_in_the_media_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m1"), b"jpeg").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(
            media_file(Some(dir.path()), "m1").unwrap(),
            dir.path().join("m1")
        );
        let code = |result: Result<PathBuf, Stop>| match result {
            Err(Stop::Failed(failure)) => {
                assert!(!failure.retryable);
                format!("{}: {}", failure.code, failure.message)
            }
            other => panic!("unexpected {other:?}"),
        };
        for bad in ["../m1", "/etc/passwd", ".hidden", "", "..", "a\\b"] {
            let message = code(media_file(Some(dir.path()), bad));
            assert!(message.contains("plain file name"), "{bad}: {message}");
        }
        assert!(code(media_file(Some(dir.path()), "m2")).starts_with("media_unavailable"));
        assert!(code(media_file(Some(dir.path()), "sub")).contains("not a file"));
        assert!(code(media_file(None, "m1")).contains("no media directory"));
    }
}
