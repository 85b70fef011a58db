//! The local journal: what the agent has promised the server, on disk before
//! the promise is made.
//!
//! `<state dir>/journal.jsonl` holds one JSON object per line:
//! `{"accepted": AssignedTask}`, `{"started": task_id}`,
//! `{"finished": FinishedReport}` and `{"acked": task_id}`. Every append is
//! fsynced before the agent tells the server anything that depends on it, so
//! after a crash the journal knows at least what the server was told.
//!
//! `started` is this agent's own addition to the three kinds the protocol
//! implies: it separates a task that was only queued on the phone (safe to run
//! after a restart) from one that was under way (maybe half done, so never run
//! again: it is reported as failed with code `interrupted`).
//!
//! On open the journal is replayed, a torn last line (a crash in the middle of
//! an append) is dropped, tasks that were started but not finished become
//! `interrupted` reports, and the file is compacted: its live entries are
//! written to a temporary file that is fsynced and renamed over it. A long-lived
//! agent compacts again once the file has grown well past its live entries.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use youmi_protocol::{AssignedTask, FinishedReport, Outcome, TaskError, TaskId};

use crate::fsutil;

/// The name of the journal file inside the state directory.
pub const FILE_NAME: &str = "journal.jsonl";

/// The error code of a task that was under way when the agent stopped.
pub const INTERRUPTED: &str = "interrupted";

/// How many acked task ids the journal remembers, so that a late duplicate
/// `assign` of a task that is long done is still recognised.
const RECENT_ACKED: usize = 1024;

/// A running agent compacts once it has appended at least this many lines
/// since the last compaction...
const COMPACT_MIN_LINES: usize = 10_000;
/// ...and the file holds this many times more lines than live entries.
const COMPACT_RATIO: usize = 4;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// The task was accepted (before `accepted` was sent).
    Accepted(AssignedTask),
    /// The task began to run on the phone (before the executor touched it).
    Started(TaskId),
    /// The task ended (before `finished` was sent).
    Finished(FinishedReport),
    /// The server stored the result; the task may be forgotten.
    Acked(TaskId),
}

/// Why the journal cannot be used. Either way the agent must not run tasks:
/// it could not keep its promises.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading, writing, syncing or renaming failed.
    #[error("cannot {action} the journal {path}: {source}")]
    Io {
        /// What the agent was doing, e.g. `append to`.
        action: &'static str,
        /// The journal file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// A line before the last one is not a journal entry. Only the last line
    /// can be torn by a crash, so this is damage the agent cannot reason
    /// about safely.
    #[error("the journal {path} is damaged at line {line}: {reason}; move it aside to start with an empty one (the server then fails the tasks it held as lost)")]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// The damaged line, counting from 1.
        line: usize,
        /// Why it does not parse.
        reason: String,
    },
    /// The background writer stopped before it finished an append.
    #[error("the journal writer stopped: {0}")]
    Writer(String),
}

/// The journal's live content: what replaying it yields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalState {
    /// Accepted, not started, in the order they were accepted.
    accepted: Vec<AssignedTask>,
    /// Started, not finished.
    started: Vec<AssignedTask>,
    /// Finished, not acked, in the order they finished.
    finished: Vec<FinishedReport>,
    /// The most recently acked ids, oldest first.
    acked: VecDeque<TaskId>,
}

impl JournalState {
    /// Applies one entry. Entries that contradict what is known (a second
    /// `finished` for a task, an `accepted` for a known task) are ignored: the
    /// first one written wins, as on the server.
    pub fn apply(&mut self, entry: &Entry) {
        match entry {
            Entry::Accepted(task) => {
                if !self.contains(task.id) {
                    self.accepted.push(task.clone());
                }
            }
            Entry::Started(id) => {
                if let Some(index) = self.accepted.iter().position(|task| task.id == *id) {
                    let task = self.accepted.remove(index);
                    self.started.push(task);
                }
            }
            Entry::Finished(report) => {
                let id = report.task_id;
                if self.finished.iter().any(|done| done.task_id == id) || self.acked.contains(&id) {
                    return;
                }
                self.accepted.retain(|task| task.id != id);
                self.started.retain(|task| task.id != id);
                self.finished.push(report.clone());
            }
            Entry::Acked(id) => {
                self.accepted.retain(|task| task.id != *id);
                self.started.retain(|task| task.id != *id);
                self.finished.retain(|done| done.task_id != *id);
                if !self.acked.contains(id) {
                    self.acked.push_back(*id);
                    while self.acked.len() > RECENT_ACKED {
                        self.acked.pop_front();
                    }
                }
            }
        }
    }

    /// Whether the journal knows the task in any state, including recently acked.
    pub fn contains(&self, id: TaskId) -> bool {
        self.accepted.iter().any(|task| task.id == id)
            || self.started.iter().any(|task| task.id == id)
            || self.finished.iter().any(|done| done.task_id == id)
            || self.acked.contains(&id)
    }

    /// Tasks accepted and not started, in acceptance order.
    pub fn pending(&self) -> &[AssignedTask] {
        &self.accepted
    }

    /// Tasks started and not finished. Right after [`Journal::open`] this is
    /// empty: such tasks became `interrupted` reports.
    pub fn started(&self) -> &[AssignedTask] {
        &self.started
    }

    /// Finished reports the server has not acked, in the order they finished.
    pub fn unacked(&self) -> &[FinishedReport] {
        &self.finished
    }

    /// The most recently acked task ids, oldest first.
    pub fn recently_acked(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.acked.iter().copied()
    }

    /// The entries that rebuild this state, for compaction.
    fn entries(&self) -> Vec<Entry> {
        let mut entries = Vec::with_capacity(self.live_len());
        entries.extend(self.acked.iter().copied().map(Entry::Acked));
        for task in &self.started {
            entries.push(Entry::Accepted(task.clone()));
            entries.push(Entry::Started(task.id));
        }
        entries.extend(self.accepted.iter().cloned().map(Entry::Accepted));
        entries.extend(self.finished.iter().cloned().map(Entry::Finished));
        entries
    }

    /// How many lines a compacted journal of this state has.
    fn live_len(&self) -> usize {
        self.acked.len() + 2 * self.started.len() + self.accepted.len() + self.finished.len()
    }
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Tasks that were under way when the agent stopped; each now has a
    /// `failed`/`interrupted` report in the journal.
    pub interrupted: Vec<TaskId>,
    /// Whether the last line was torn (a crash during an append) and dropped.
    pub torn_tail: bool,
    /// How many entries the file held before compaction.
    pub entries_read: usize,
}

/// The open journal: the file, appended to and fsynced, and its replayed state.
#[derive(Debug)]
pub struct Journal {
    /// The journal file.
    path: PathBuf,
    /// Positioned at the end; the only writer of the file.
    file: File,
    /// What the file says, kept up to date by every append.
    state: JournalState,
    /// Lines in the file, to decide when to compact.
    lines: usize,
    /// See [`COMPACT_MIN_LINES`]; a field so that tests can lower it.
    compact_min_lines: usize,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, replays it, turns started but
    /// unfinished tasks into `interrupted` reports, and compacts it.
    pub fn open(dir: &Path) -> Result<(Journal, Recovery), JournalError> {
        let path = dir.join(FILE_NAME);
        let io_error = |action: &'static str| {
            let path = path.clone();
            move |source| JournalError::Io {
                action,
                path,
                source,
            }
        };
        fsutil::create_private_dir(dir).map_err(io_error("create the directory of"))?;
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(io_error("read")(source)),
        };
        let (entries, torn_tail) = parse(&bytes, &path)?;
        let mut state = JournalState::default();
        for entry in &entries {
            state.apply(entry);
        }
        let interrupted: Vec<TaskId> = state.started.iter().map(|task| task.id).collect();
        for id in &interrupted {
            state.apply(&Entry::Finished(interrupted_report(*id)));
        }
        let journal = Journal {
            file: write_entries(&path, &state.entries())?,
            lines: state.live_len(),
            path,
            state,
            compact_min_lines: COMPACT_MIN_LINES,
        };
        let recovery = Recovery {
            interrupted,
            torn_tail,
            entries_read: entries.len(),
        };
        Ok((journal, recovery))
    }

    /// Appends one entry and fsyncs it. Only after this returns may the agent
    /// act on the entry (send `accepted`, run the task, send `finished`).
    pub fn append(&mut self, entry: &Entry) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(entry).map_err(|error| JournalError::Io {
            action: "encode an entry for",
            path: self.path.clone(),
            source: io::Error::other(error),
        })?;
        line.push(b'\n');
        // One write per line: a crash tears at most this line, which the
        // next open drops.
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| JournalError::Io {
                action: "append to",
                path: self.path.clone(),
                source,
            })?;
        self.state.apply(entry);
        self.lines += 1;
        if self.lines >= self.compact_min_lines
            && self.lines >= COMPACT_RATIO * self.state.live_len().max(1)
        {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the file with only its live entries.
    pub fn compact(&mut self) -> Result<(), JournalError> {
        self.file = write_entries(&self.path, &self.state.entries())?;
        self.lines = self.state.live_len();
        Ok(())
    }

    /// What the journal holds.
    pub fn state(&self) -> &JournalState {
        &self.state
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lowers the compaction threshold, so tests can see compaction happen.
    #[cfg(test)]
    fn set_compact_min_lines(&mut self, lines: usize) {
        self.compact_min_lines = lines;
    }
}

/// The report of a task that was under way when the agent stopped. It is not
/// retryable: part of it (a message, say) may already have been sent.
pub fn interrupted_report(task_id: TaskId) -> FinishedReport {
    FinishedReport {
        task_id,
        outcome: Outcome::Failed,
        error: Some(TaskError {
            code: INTERRUPTED.to_owned(),
            message: "the agent stopped while this task was running; it is not run again \
                      because part of it may already have been done on the phone"
                .to_owned(),
            retryable: false,
        }),
        result: None,
    }
}

/// Parses the journal's lines. The last non-blank line may be torn; any other
/// bad line is damage.
fn parse(bytes: &[u8], path: &Path) -> Result<(Vec<Entry>, bool), JournalError> {
    let lines: Vec<&[u8]> = bytes.split(|byte| *byte == b'\n').collect();
    let blank = |line: &[u8]| line.iter().all(|byte| byte.is_ascii_whitespace());
    let last = lines.iter().rposition(|line| !blank(line));
    let mut entries = Vec::new();
    let mut torn_tail = false;
    for (index, line) in lines.iter().enumerate() {
        if blank(line) {
            continue;
        }
        match serde_json::from_slice::<Entry>(line) {
            Ok(entry) => entries.push(entry),
            Err(_) if Some(index) == last => torn_tail = true,
            Err(error) => {
                return Err(JournalError::Corrupt {
                    path: path.to_owned(),
                    line: index + 1,
                    reason: error.to_string(),
                })
            }
        }
    }
    Ok((entries, torn_tail))
}

/// Atomically replaces the journal with `entries`, returning the new file
/// positioned at its end for appends.
fn write_entries(path: &Path, entries: &[Entry]) -> Result<File, JournalError> {
    let mut contents = Vec::new();
    for entry in entries {
        serde_json::to_writer(&mut contents, entry).map_err(|error| JournalError::Io {
            action: "encode an entry for",
            path: path.to_owned(),
            source: io::Error::other(error),
        })?;
        contents.push(b'\n');
    }
    fsutil::replace_file(path, &contents).map_err(|source| JournalError::Io {
        action: "compact",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use youmi_protocol::TaskKind;

    fn task(id: TaskId) -> AssignedTask {
        AssignedTask {
            id,
            kind: TaskKind::SendMessage,
            payload: json!({"to": {"name": "Ann"}, "items": [{"type": "text", "text": "hi"}]}),
            attempt: 1,
            not_after_ms: None,
        }
    }

    fn succeeded(id: TaskId) -> FinishedReport {
        FinishedReport {
            task_id: id,
            outcome: Outcome::Succeeded,
            error: None,
            result: Some(json!({"steps": 3})),
        }
    }

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn entries_have_the_documented_shape() {
        assert_eq!(
            serde_json::to_value(Entry::Acked(5)).unwrap(),
            json!({"acked": 5})
        );
        assert_eq!(
            serde_json::to_value(Entry::Started(5)).unwrap(),
            json!({"started": 5})
        );
        let accepted = serde_json::to_value(Entry::Accepted(task(5))).unwrap();
        assert_eq!(accepted["accepted"]["id"], 5);
        let finished = serde_json::to_value(Entry::Finished(succeeded(5))).unwrap();
        assert_eq!(finished["finished"]["outcome"], "succeeded");
    }

    #[test]
    fn replay_restores_pending_and_unacked_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut journal, recovery) = Journal::open(dir.path()).unwrap();
            assert_eq!(recovery, Recovery::default());
            for entry in [
                Entry::Accepted(task(1)),
                Entry::Started(1),
                Entry::Finished(succeeded(1)),
                Entry::Accepted(task(2)),
                Entry::Started(2),
                Entry::Finished(succeeded(2)),
                Entry::Acked(2),
                Entry::Accepted(task(3)),
                Entry::Accepted(task(4)),
            ] {
                journal.append(&entry).unwrap();
            }
            assert_eq!(lines(journal.path()).len(), 9);
        }
        let (journal, recovery) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovery.entries_read, 9);
        assert!(recovery.interrupted.is_empty());
        let state = journal.state();
        let pending: Vec<_> = state.pending().iter().map(|t| t.id).collect();
        assert_eq!(pending, vec![3, 4]);
        assert_eq!(state.unacked(), &[succeeded(1)]);
        assert_eq!(state.recently_acked().collect::<Vec<_>>(), vec![2]);
        assert!(state.contains(2) && state.contains(1) && !state.contains(9));
        // Compacted: the acked id, the two pending tasks, the unacked report.
        assert_eq!(lines(journal.path()).len(), 4);
        // Replaying the compacted file gives the same state.
        let again = journal.state().clone();
        drop(journal);
        let (journal, _) = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.state(), &again);
    }

    #[test]
    fn started_but_unfinished_tasks_become_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            journal.append(&Entry::Accepted(task(7))).unwrap();
            journal.append(&Entry::Started(7)).unwrap();
            journal.append(&Entry::Accepted(task(8))).unwrap();
        }
        let (journal, recovery) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovery.interrupted, vec![7]);
        let state = journal.state();
        // Task 8 was only queued: it may still run.
        assert_eq!(state.pending().len(), 1);
        assert_eq!(state.pending()[0].id, 8);
        assert!(state.started().is_empty());
        let report = &state.unacked()[0];
        assert_eq!(report.task_id, 7);
        assert_eq!(report.outcome, Outcome::Failed);
        let error = report.error.as_ref().unwrap();
        assert_eq!(error.code, INTERRUPTED);
        assert!(!error.retryable);
        drop(journal);
        // The interrupted report is durable: a second restart reports it the
        // same way and does not count the task as interrupted again.
        let (journal, recovery) = Journal::open(dir.path()).unwrap();
        assert!(recovery.interrupted.is_empty());
        assert_eq!(journal.state().unacked()[0].task_id, 7);
    }

    #[test]
    fn a_torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut text = String::new();
        text.push_str(&serde_json::to_string(&Entry::Accepted(task(1))).unwrap());
        text.push('\n');
        let torn = serde_json::to_string(&Entry::Accepted(task(2))).unwrap();
        text.push_str(&torn[..torn.len() / 2]);
        fs::write(&path, text).unwrap();
        let (journal, recovery) = Journal::open(dir.path()).unwrap();
        assert!(recovery.torn_tail);
        assert_eq!(recovery.entries_read, 1);
        let pending: Vec<_> = journal.state().pending().iter().map(|t| t.id).collect();
        assert_eq!(pending, vec![1]);
        // The torn bytes are gone from the file, so later appends start clean.
        assert_eq!(lines(&path).len(), 1);

        // Zero bytes after a crash (a file system that grew the file but did
        // not write the data) count as a torn tail too.
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0u8; 40]);
        fs::write(&path, bytes).unwrap();
        drop(journal);
        let (_, recovery) = Journal::open(dir.path()).unwrap();
        assert!(recovery.torn_tail);
    }

    #[test]
    fn damage_before_the_last_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let good = serde_json::to_string(&Entry::Acked(1)).unwrap();
        fs::write(&path, format!("{good}\n{{garbage\n{good}\n")).unwrap();
        let error = Journal::open(dir.path()).unwrap_err();
        match &error {
            JournalError::Corrupt { line, .. } => assert_eq!(*line, 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(error.to_string().contains("line 2"));
        // The damaged file is left as it was for a person to look at.
        assert!(fs::read_to_string(&path).unwrap().contains("garbage"));
    }

    #[test]
    fn first_finished_wins_and_acked_tasks_stay_known() {
        let mut state = JournalState::default();
        state.apply(&Entry::Accepted(task(1)));
        state.apply(&Entry::Finished(succeeded(1)));
        state.apply(&Entry::Finished(interrupted_report(1)));
        assert_eq!(state.unacked(), &[succeeded(1)]);
        state.apply(&Entry::Acked(1));
        assert!(state.unacked().is_empty());
        assert!(state.contains(1));
        // A late accepted for an acked task does not bring it back.
        state.apply(&Entry::Accepted(task(1)));
        assert!(state.pending().is_empty());
        for id in 100..(100 + RECENT_ACKED as TaskId) {
            state.apply(&Entry::Acked(id));
        }
        assert!(!state.contains(1), "only the most recent acks are kept");
        assert!(state.contains(100));
    }

    #[test]
    fn a_running_agent_compacts_a_grown_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        journal.set_compact_min_lines(20);
        for id in 1..=10 {
            journal.append(&Entry::Accepted(task(id))).unwrap();
            journal.append(&Entry::Started(id)).unwrap();
            journal.append(&Entry::Finished(succeeded(id))).unwrap();
            journal.append(&Entry::Acked(id)).unwrap();
        }
        journal.append(&Entry::Accepted(task(11))).unwrap();
        let on_disk = lines(journal.path()).len();
        assert!(on_disk < 41, "expected a compaction, found {on_disk} lines");
        let state = journal.state().clone();
        drop(journal);
        let (journal, _) = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.state(), &state);
        assert_eq!(journal.state().pending()[0].id, 11);
    }

    #[cfg(unix)]
    #[test]
    fn the_journal_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path()).unwrap();
        let mode = fs::metadata(journal.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
