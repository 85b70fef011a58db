//! Evidence of a failed step: the UI dump and a screenshot written under
//! `<evidence_dir>/<task_id>/`, and a JSON summary (the step, what the screen
//! showed, where the files are) that goes into the `finished` report, so an
//! operator can see why a task failed without going to the phone.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use tracing::{info, warn};
use youmi_protocol::{AssignedTask, TaskId};

use super::failure::{shorten, Failure};
use crate::phone::{Phone, UiTree};

/// The most screen texts a summary lists.
const MAX_TEXTS: usize = 30;
/// The most characters of one screen text in a summary.
const MAX_TEXT_CHARS: usize = 60;

/// The texts a screen showed, shortened for a report: consecutive repeats
/// dropped, each text cut, and the list cut.
pub(crate) fn screen_texts(tree: Option<&UiTree>) -> Vec<String> {
    let Some(tree) = tree else {
        return Vec::new();
    };
    let mut texts: Vec<String> = Vec::new();
    for text in tree.texts() {
        let text = shorten(text.trim(), MAX_TEXT_CHARS);
        if text.is_empty() || texts.last() == Some(&text) {
            continue;
        }
        texts.push(text);
    }
    if texts.len() > MAX_TEXTS {
        let more = texts.len() - MAX_TEXTS;
        texts.truncate(MAX_TEXTS);
        texts.push(format!("… ({more} more)"));
    }
    texts
}

/// What the evidence of a failure is gathered from: the run's phone, the
/// last screen it read, and what it was running.
pub(crate) struct Scene<'r> {
    /// The phone, for a fresh screen read and the screenshot.
    pub phone: &'r dyn Phone,
    /// The last screen the run read, if any.
    pub last_tree: Option<&'r UiTree>,
    /// Where the flow file in use came from.
    pub flow_file: &'r str,
    /// The installed app version.
    pub app_version: &'r str,
    /// Where evidence goes, if anywhere.
    pub evidence_dir: Option<&'r Path>,
    /// The task.
    pub task: &'r AssignedTask,
}

/// Saves the evidence of `failure` and returns its summary.
pub(crate) async fn collect(scene: &Scene<'_>, failure: &Failure) -> Value {
    let mut errors: Vec<String> = Vec::new();
    let phone = scene.phone;
    // The screen the step saw; a fresh read when it saw none (a failure
    // before the first read), unless the phone is out of reach.
    let fresh;
    let tree = match (scene.last_tree, failure.phone_down) {
        (Some(tree), _) => Some(tree),
        (None, false) => match phone.dump_ui().await {
            Ok(tree) => {
                fresh = tree;
                Some(&fresh)
            }
            Err(error) => {
                errors.push(format!("reading the screen: {error}"));
                None
            }
        },
        (None, true) => None,
    };
    let texts = screen_texts(tree);

    let mut summary = Map::new();
    summary.insert("flow_file".into(), json!(scene.flow_file));
    summary.insert("app_version".into(), json!(scene.app_version));
    if let Some(at) = &failure.at {
        summary.insert("step".into(), json!(at.name));
        summary.insert("step_number".into(), json!(at.index + 1));
        summary.insert("place".into(), json!(at.place));
        summary.insert("at".into(), json!(at.path));
    }
    if let Some(unit) = &failure.unit {
        if let Some(recipient) = unit.key.recipient {
            summary.insert("recipient".into(), json!(recipient));
        }
        if let Some(to) = &unit.to {
            summary.insert("to".into(), json!(to));
        }
        if let Some(item) = unit.key.item {
            summary.insert("item".into(), json!(item));
        }
    }
    summary.insert("screen".into(), json!(texts));

    if let Some(root) = scene.evidence_dir {
        let task = scene.task;
        let dir = task_dir(root, task.id);
        let stem = match &failure.at {
            Some(at) => format!(
                "attempt{}-step{:03}-{}",
                task.attempt,
                at.progress,
                file_safe(&at.name)
            ),
            None => format!("attempt{}-{}", task.attempt, file_safe(&failure.code)),
        };
        if let Err(error) = std::fs::create_dir_all(&dir) {
            errors.push(format!("creating {}: {error}", dir.display()));
        } else {
            if let Some(tree) = tree {
                let path = dir.join(format!("{stem}.xml"));
                match write(&path, tree.xml.as_bytes()) {
                    Ok(()) => {
                        summary.insert("ui_dump".into(), json!(path.display().to_string()));
                    }
                    Err(error) => errors.push(error),
                }
            }
            if failure.phone_down {
                errors.push("no screenshot: the phone cannot be reached".to_owned());
            } else {
                match phone.screenshot().await {
                    Ok(png) => {
                        let path = dir.join(format!("{stem}.png"));
                        match write(&path, &png) {
                            Ok(()) => {
                                summary
                                    .insert("screenshot".into(), json!(path.display().to_string()));
                            }
                            Err(error) => errors.push(error),
                        }
                    }
                    Err(error) => errors.push(format!("taking a screenshot: {error}")),
                }
            }
            info!(dir = %dir.display(), "failure evidence saved");
        }
    }
    if !errors.is_empty() {
        warn!(?errors, "some failure evidence could not be saved");
        summary.insert("evidence_errors".into(), json!(errors));
    }
    Value::Object(summary)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|error| format!("writing {}: {error}", path.display()))
}

/// A step name as part of a file name.
fn file_safe(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if safe.is_empty() {
        "step".to_owned()
    } else {
        safe
    }
}

/// Where the evidence of a task goes.
pub(crate) fn task_dir(root: &Path, task_id: TaskId) -> PathBuf {
    root.join(task_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_texts_are_deduplicated_and_cut() {
        let mut xml = String::from("<hierarchy>");
        for i in 0..40 {
            xml.push_str(&format!(
                "<node text=\"t{i}\" bounds=\"[0,0][10,10]\" /><node text=\"t{i}\" bounds=\"[0,0][10,10]\" />"
            ));
        }
        xml.push_str(&format!(
            "<node text=\"{}\" bounds=\"[0,0][10,10]\" /></hierarchy>",
            "长".repeat(100)
        ));
        let tree = UiTree::parse(&xml).unwrap();
        let texts = screen_texts(Some(&tree));
        assert_eq!(texts.len(), MAX_TEXTS + 1);
        assert_eq!(texts[0], "t0");
        assert_eq!(texts[1], "t1");
        assert_eq!(texts[MAX_TEXTS], "… (11 more)");
        assert!(screen_texts(None).is_empty());
        assert_eq!(file_safe("tap 发送/x"), "tap____x");
        assert_eq!(file_safe("发送"), "__");
    }
}
