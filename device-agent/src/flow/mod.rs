//! The flow engine: how the agent does each kind of task in WeCom, written as
//! data rather than code, so that a new WeCom version needs a new file, not a
//! new agent.
//!
//! A flow file (TOML, `docs/flows.md` describes the format) is for one app
//! and a range of its versions. It holds one flow per task kind (a list of
//! steps: launch, tap, type, wait for, ...), procedures (step lists that flows
//! share and loop over), and interrupts (popups the app shows unasked, such as
//! an update prompt or a risk-control warning, with what to do about each).
//! Files are checked in full when they are loaded.
//!
//! [`FlowSet::builtin`] gives the files in the repository's `flows/` folder,
//! compiled into the agent; [`FlowSet::load_dir`] reads a directory of them,
//! and [`FlowSet::merge`] lets that directory replace or extend the built-in
//! ones. [`FlowExecutor`] runs a task: it reads the installed WeCom version,
//! picks the file that covers it, and runs the task kind's flow through the
//! [`crate::phone::Phone`] trait, saving evidence when a step fails.
//!
//! # Layout
//! - `file`: the file format, parsed and checked ([`FlowFile`]).
//! - `template`: `{variable}` templates.
//! - `vars`: which variables each task kind and loop gives.
//! - `version`: the versions a file covers.
//! - `dialog`: what makes a screen a modal dialog, and the risk-control phrases.
//! - `failure`: why a flow stops early (`Failure`, `Stop`).
//! - `run`: running a flow's steps on a phone.
//! - `evidence`: the UI dump, screenshot and summary of a failed step.
//! - `exec`: [`FlowExecutor`], the [`crate::Executor`] over a phone.

mod dialog;
mod evidence;
mod exec;
mod expr;
mod failure;
mod file;
mod run;
mod template;
mod vars;
mod version;

use std::path::{Path, PathBuf};

pub use exec::{FlowExecutor, FlowOptions, WECOM_PACKAGE};
pub use file::{FlowFile, FORMAT};

/// The flow files compiled into the agent: the repository's `flows/` folder.
const BUILTIN: &[(&str, &str)] = &[("wecom-4.1.toml", include_str!("../../flows/wecom-4.1.toml"))];

/// Why flow files could not be loaded. Each error names the file, and where
/// it can, the flow or procedure and the step (numbered from 1).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file as a whole is wrong: not TOML, wrong format, no app or
    /// versions, an unknown key or flow name.
    #[error("{}: {reason}", at(file, *line))]
    File {
        /// The file.
        file: String,
        /// The line the mistake is on (from 1), when it is known.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// One step is wrong.
    #[error("{}: {place}, step {step}: {reason}", at(file, *line))]
    Step {
        /// The file.
        file: String,
        /// The line of the step, or of its key at fault (from 1), when it is known.
        line: Option<usize>,
        /// The flow or procedure, e.g. "flow `send_message`".
        place: String,
        /// The step's number in its list, from 1.
        step: usize,
        /// What is wrong.
        reason: String,
    },
    /// One interrupt is wrong.
    #[error("{}: interrupt {number} ({name}): {reason}", at(file, *line))]
    Interrupt {
        /// The file.
        file: String,
        /// The line of the interrupt, or of its key at fault (from 1), when it is known.
        line: Option<usize>,
        /// The interrupt's number in the file, from 1.
        number: usize,
        /// Its name, or `#number` when it has none.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Two files of one set are for the same app versions, so which one runs
    /// would be a matter of file names.
    #[error("{file} and {other} are both for {app} {versions}")]
    Duplicate {
        /// One file.
        file: String,
        /// The other.
        other: String,
        /// The app.
        app: String,
        /// The versions both cover.
        versions: String,
    },
    /// A flows directory holds no flow files, which is surely a wrong path.
    #[error("{}: the directory has no flow files (*.toml)", dir.display())]
    EmptyDir {
        /// The directory.
        dir: PathBuf,
    },
}

/// A file and a line, as editors and compilers write them: `wecom-4.2.toml:12`.
fn at(file: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{file}:{line}"),
        None => file.to_owned(),
    }
}

/// The flow files the agent can choose from, in order of preference.
#[derive(Debug, Clone, Default)]
pub struct FlowSet {
    /// The files; the first that covers a version is used.
    files: Vec<FlowFile>,
}

impl FlowSet {
    /// The flow files compiled into the agent.
    pub fn builtin() -> Result<FlowSet, LoadError> {
        let files = BUILTIN
            .iter()
            .map(|(name, text)| FlowFile::parse(&format!("built-in {name}"), text))
            .collect::<Result<Vec<_>, _>>()?;
        FlowSet::from_files(files)
    }

    /// Every `*.toml` file of `dir` (not its subdirectories), in name order.
    pub fn load_dir(dir: &Path) -> Result<FlowSet, LoadError> {
        let read_error = |source| LoadError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
                paths.push(path);
            }
        }
        if paths.is_empty() {
            return Err(LoadError::EmptyDir {
                dir: dir.to_owned(),
            });
        }
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Read {
                path: path.clone(),
                source,
            })?;
            files.push(FlowFile::parse(&path.display().to_string(), &text)?);
        }
        FlowSet::from_files(files)
    }

    /// A set of already parsed files, in order of preference. Two files for
    /// the same app and the same versions are refused.
    pub fn from_files(files: Vec<FlowFile>) -> Result<FlowSet, LoadError> {
        for (i, file) in files.iter().enumerate() {
            if let Some(other) = files[..i].iter().find(|other| same_coverage(other, file)) {
                return Err(LoadError::Duplicate {
                    file: other.source.clone(),
                    other: file.source.clone(),
                    app: file.app.clone(),
                    versions: file.versions(),
                });
            }
        }
        Ok(FlowSet { files })
    }

    /// This set with `overrides` in front: an override file replaces a file
    /// of this set that is for the same app and versions, and is preferred
    /// over one whose versions merely overlap. So a flows directory can fix
    /// a built-in flow, or add a WeCom version, without a new agent.
    pub fn merge(self, overrides: FlowSet) -> FlowSet {
        let mut files = overrides.files;
        let kept: Vec<FlowFile> = self
            .files
            .into_iter()
            .filter(|file| !files.iter().any(|o| same_coverage(o, file)))
            .collect();
        files.extend(kept);
        FlowSet { files }
    }

    /// The files, in order of preference.
    pub fn files(&self) -> &[FlowFile] {
        &self.files
    }

    /// The file to use for `app` at `version`: the first that covers it.
    pub fn for_version(&self, app: &str, version: &str) -> Option<&FlowFile> {
        self.files
            .iter()
            .find(|file| file.app == app && file.covers(version))
    }

    /// What the set covers for `app`, for messages: `4.1.* (wecom-4.1.toml)`.
    pub fn coverage(&self, app: &str) -> String {
        let parts: Vec<String> = self
            .files
            .iter()
            .filter(|file| file.app == app)
            .map(|file| format!("{} ({})", file.versions(), file.source))
            .collect();
        if parts.is_empty() {
            "no versions".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

fn same_coverage(a: &FlowFile, b: &FlowFile) -> bool {
    a.app == b.app && a.coverage == b.coverage
}

#[cfg(test)]
mod tests {
    use super::*;
    use youmi_protocol::TaskKind;

    const OTHER: &str = "format = 1\napp = \"com.tencent.wework\"\nversions = [\"4.1.*\"]\ndescription = \"from the directory\"\n[flows.delete_chat]\nsteps = [{ do = \"back\" }]\n";

    #[test]
    fn the_builtin_files_load_and_cover_every_kind() {
        let set = FlowSet::builtin().unwrap();
        let file = set.for_version(WECOM_PACKAGE, "4.1.30").unwrap();
        for kind in TaskKind::ALL {
            assert!(file.has_flow(kind), "no built-in flow for {kind}");
        }
        assert!(set.for_version(WECOM_PACKAGE, "3.9.0").is_none());
        assert!(set.for_version("com.tencent.mm", "4.1.30").is_none());
        assert_eq!(
            set.coverage(WECOM_PACKAGE),
            "4.1.* (built-in wecom-4.1.toml)"
        );
        assert_eq!(set.coverage("com.tencent.mm"), "no versions");
    }

    #[test]
    fn a_directory_replaces_and_extends_the_builtin_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wecom-4.1.toml"), OTHER).unwrap();
        std::fs::write(
            dir.path().join("wecom-4.2.toml"),
            OTHER.replace("4.1.*", "4.2.*"),
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "not a flow file").unwrap();
        let loaded = FlowSet::load_dir(dir.path()).unwrap();
        assert_eq!(loaded.files().len(), 2);
        let merged = FlowSet::builtin().unwrap().merge(loaded);
        assert_eq!(
            merged.files().len(),
            2,
            "the built-in 4.1 file was replaced"
        );
        let file = merged.for_version(WECOM_PACKAGE, "4.1.30").unwrap();
        assert_eq!(file.description(), "from the directory");
        assert!(file.source().ends_with("wecom-4.1.toml"));
        assert!(merged.for_version(WECOM_PACKAGE, "4.2.1").is_some());

        // A narrower directory file is preferred, and the built-in one stays.
        let narrow = FlowSet::from_files(vec![FlowFile::parse(
            "narrow.toml",
            &OTHER.replace("4.1.*", "4.1.30"),
        )
        .unwrap()])
        .unwrap();
        let merged = FlowSet::builtin().unwrap().merge(narrow);
        assert_eq!(merged.files().len(), 2);
        assert_eq!(
            merged
                .for_version(WECOM_PACKAGE, "4.1.30")
                .unwrap()
                .source(),
            "narrow.toml"
        );
        assert_eq!(
            merged
                .for_version(WECOM_PACKAGE, "4.1.31")
                .unwrap()
                .source(),
            "built-in wecom-4.1.toml"
        );
    }

    #[test]
    fn bad_directories_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            FlowSet::load_dir(dir.path()),
            Err(LoadError::EmptyDir { .. })
        ));
        assert!(matches!(
            FlowSet::load_dir(&dir.path().join("missing")),
            Err(LoadError::Read { .. })
        ));
        std::fs::write(dir.path().join("a.toml"), OTHER).unwrap();
        std::fs::write(dir.path().join("b.toml"), OTHER).unwrap();
        let duplicate = FlowSet::load_dir(dir.path()).unwrap_err().to_string();
        assert!(duplicate.contains("a.toml and "), "{duplicate}");
        assert!(
            duplicate.contains("b.toml are both for com.tencent.wework 4.1.*"),
            "{duplicate}"
        );
        std::fs::write(
            dir.path().join("b.toml"),
            OTHER.replace("4.1.*", "4.2.*").replace("back", "bak"),
        )
        .unwrap();
        let broken = FlowSet::load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            broken.contains("b.toml:6: flow `delete_chat`, step 1: unknown step type `bak`, did you mean `back`?"),
            "{broken}"
        );
    }
}
