//! The local journal: what the agent has promised the server, on disk before
//! the promise is made.
//!
//! `<state dir>/journal.jsonl` holds one JSON object per line:
//! `{"accepted": AssignedTask}`, `{"started": task_id}`,
//! `{"finished": FinishedReport + "attempt"}` (the report's fields and the
//! attempt it reports on), `{"acked": {"task_id": 5, "attempt": 1}}` and
//! `{"delivery": DeliveryMark}` (a task's progress per recipient and item,
//! before and after each send tap: see [`crate::delivery`]). Every
//! append is fsynced before the agent tells the server anything that depends
//! on it, so after a crash the journal knows at least what the server was told.
//!
//! `started` is this agent's own addition to the three kinds the protocol
//! implies: it separates a task that was only queued on the phone (safe to run
//! after a restart) from one that was under way (maybe half done, so never run
//! again: it is reported as failed with code `interrupted`).
//!
//! A task id comes back when the server retries a retryable failure: it
//! assigns the same id again with a higher `attempt`. So the journal keeps the
//! attempt of every report until it is acked, and the attempt that was acked
//! for the most recent acks: an `accepted` of an acked task with a higher
//! attempt is a retry and is pending again; one with the acked attempt or a
//! lower one is a late duplicate and is ignored. Lines written before attempts
//! were journaled (`{"acked": 5}`, a `finished` without `attempt`) still
//! parse; see [`AckedAttempt`] and [`FinishedAttempt`] for how they count.
//!
//! Delivery marks outlive the ack of a retryable failure, so that the
//! server's retry (a later attempt of the same task) resumes after what is
//! known sent; they are dropped with the ack of any other report (the task
//! is over), or when the task leaves the recent acks. A journal written
//! before marks existed has none and replays as it did.
//!
//! On open the journal is replayed, a torn last line (a crash in the middle of
//! an append) is dropped, tasks that were started but not finished become
//! `interrupted` reports (of the attempt they were accepted as), and the file
//! is compacted: its live entries are written to a temporary file that is
//! fsynced and renamed over it. A long-lived agent compacts again once the
//! file has grown well past its live entries.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use youmi_protocol::{AssignedTask, FinishedReport, Outcome, TaskError, TaskId, TaskPayload};

use crate::delivery::{self, DeliveryMark, UnitKey};
use crate::fsutil;

/// The name of the journal file inside the state directory.
pub const FILE_NAME: &str = "journal.jsonl";

/// The error code of a task that was under way when the agent stopped.
pub const INTERRUPTED: &str = "interrupted";

/// How many acked tasks the journal remembers, so that a late duplicate
/// `assign` of a task that is long done is still recognised.
const RECENT_ACKED: usize = 1024;

/// A running agent compacts once it has appended at least this many lines
/// since the last compaction...
const COMPACT_MIN_LINES: usize = 10_000;
/// ...and the file holds this many times more lines than live entries.
const COMPACT_RATIO: usize = 4;

/// The attempt of lines written before attempts were journaled. Such an agent
/// dropped every `assign` of a task id it had seen, so the only attempt of a
/// task it could have run after seeing the task is the first one.
const FIRST_ATTEMPT: u32 = 1;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// The task was accepted (before `accepted` was sent).
    Accepted(AssignedTask),
    /// The task began to run on the phone (before the executor touched it).
    Started(TaskId),
    /// The task ended (before `finished` was sent).
    Finished(FinishedAttempt),
    /// The server stored the result; the task may be forgotten, all but the
    /// attempt that was acked, which tells a late duplicate from a retry.
    Acked(AckedAttempt),
    /// A unit of a running task is about to be sent, was sent, or was found
    /// sent (before the executor goes on).
    Delivery(DeliveryMark),
}

/// A report as journaled: the protocol's report and the attempt it is for,
/// which the agent needs when the report is acked. On disk it is the report's
/// fields with an `attempt` field beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedAttempt {
    /// What is sent to the server.
    #[serde(flatten)]
    pub report: FinishedReport,
    /// The task's attempt that ended. A line written before attempts were
    /// journaled has none; replay then takes the attempt from the task's
    /// `accepted` entry, or counts it as attempt 1 when that entry was
    /// compacted away (such an agent never ran a task id twice).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

/// The task whose report the server acked, and the attempt that report was
/// for. On disk: `{"task_id": 5, "attempt": 1}`.
///
/// Older agents wrote the bare task id (`{"acked": 5}`); such a line still
/// parses, as attempt 1: an agent of that age never accepted a task id twice,
/// so the attempt it acked was the first one it saw, and attempt 1 is the
/// only assumption that lets any later retry run (a higher guess could drop a
/// real retry for good, which is exactly the bug attempts fix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AckedAttempt {
    /// The acked task.
    pub task_id: TaskId,
    /// The attempt whose report was acked.
    pub attempt: u32,
}

impl<'de> Deserialize<'de> for AckedAttempt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AckedAttemptVisitor)
    }
}

/// Reads an [`AckedAttempt`] from `{"task_id", "attempt"}` or from the bare
/// task id of older journals.
struct AckedAttemptVisitor;

impl<'de> Visitor<'de> for AckedAttemptVisitor {
    type Value = AckedAttempt;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object {\"task_id\", \"attempt\"} or a task id")
    }

    fn visit_i64<E: de::Error>(self, task_id: i64) -> Result<AckedAttempt, E> {
        Ok(AckedAttempt {
            task_id,
            attempt: FIRST_ATTEMPT,
        })
    }

    fn visit_u64<E: de::Error>(self, task_id: u64) -> Result<AckedAttempt, E> {
        let task_id = TaskId::try_from(task_id)
            .map_err(|_| E::custom(format!("task id {task_id} is out of range")))?;
        self.visit_i64(task_id)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AckedAttempt, A::Error> {
        /// The current form, with serde's own checks and messages.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            task_id: TaskId,
            attempt: u32,
        }
        let Fields { task_id, attempt } =
            Fields::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(AckedAttempt { task_id, attempt })
    }
}

fn first_attempt() -> u32 {
    FIRST_ATTEMPT
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
    finished: Vec<FinishedAttempt>,
    /// The most recently acked tasks, oldest first, one per task id.
    acked: VecDeque<AckedAttempt>,
    /// The latest delivery mark of each unit, per task whose marks a retry
    /// may still need.
    deliveries: HashMap<TaskId, BTreeMap<UnitKey, DeliveryMark>>,
}

impl JournalState {
    /// Applies one entry. Entries that contradict what is known (a second
    /// `finished` for a task, an `accepted` for a task under way) are
    /// ignored: the first one written wins, as on the server. An `accepted`
    /// of an acked task is a retry, pending again, if its attempt is higher
    /// than the acked one, and a late duplicate, ignored, if it is not.
    pub fn apply(&mut self, entry: &Entry) {
        match entry {
            Entry::Accepted(task) => {
                if self.holds(task.id) {
                    return;
                }
                if let Some(acked) = self.acked_attempt(task.id) {
                    if task.attempt <= acked {
                        return;
                    }
                    // The retry replaces the acked record: from now on the
                    // task is under way again, and a duplicate `assign` of
                    // it is recognised as such by that.
                    self.acked.retain(|done| done.task_id != task.id);
                }
                self.accepted.push(task.clone());
            }
            Entry::Started(id) => {
                if let Some(index) = self.accepted.iter().position(|task| task.id == *id) {
                    let task = self.accepted.remove(index);
                    self.started.push(task);
                }
            }
            Entry::Finished(finished) => {
                let id = finished.report.task_id;
                if self.finished.iter().any(|done| done.report.task_id == id)
                    || self.acked_attempt(id).is_some()
                {
                    return;
                }
                // The accepted entry is the authority on the attempt; the
                // line's own attempt matters once compaction dropped that
                // entry (and is a guess in lines of older agents).
                let accepted = self.accepted.iter().chain(&self.started);
                let attempt = accepted
                    .filter(|task| task.id == id)
                    .map(|task| task.attempt)
                    .next()
                    .unwrap_or(finished.attempt);
                self.accepted.retain(|task| task.id != id);
                self.started.retain(|task| task.id != id);
                self.finished.push(FinishedAttempt {
                    report: finished.report.clone(),
                    attempt,
                });
            }
            Entry::Acked(acked) => {
                let id = acked.task_id;
                // Only a retryable failure comes back as another attempt; any
                // other acked report ends the task, and its marks with it.
                let retried = self.finished.iter().any(|done| {
                    done.report.task_id == id
                        && done.report.outcome == Outcome::Failed
                        && done.report.error.as_ref().is_some_and(|e| e.retryable)
                });
                let reported = self.finished.iter().any(|done| done.report.task_id == id);
                if reported && !retried {
                    self.deliveries.remove(&id);
                }
                self.accepted.retain(|task| task.id != id);
                self.started.retain(|task| task.id != id);
                self.finished.retain(|done| done.report.task_id != id);
                // Never lower the attempt known to be done: that would let a
                // late duplicate of it run again.
                let attempt = self
                    .acked_attempt(id)
                    .map_or(acked.attempt, |known| known.max(acked.attempt));
                self.acked.retain(|done| done.task_id != id);
                self.acked.push_back(AckedAttempt {
                    task_id: id,
                    attempt,
                });
                while self.acked.len() > RECENT_ACKED {
                    if let Some(old) = self.acked.pop_front() {
                        self.deliveries.remove(&old.task_id);
                    }
                }
            }
            Entry::Delivery(mark) => {
                self.deliveries
                    .entry(mark.task_id)
                    .or_default()
                    .insert(mark.unit, *mark);
            }
        }
    }

    /// The delivery marks the task's earlier attempts left, the latest per
    /// unit, for a retry to resume from.
    pub fn marks(&self, id: TaskId) -> Vec<DeliveryMark> {
        self.deliveries
            .get(&id)
            .map(|marks| marks.values().copied().collect())
            .unwrap_or_default()
    }

    /// Whether the journal knows the task in any state, including recently acked.
    pub fn contains(&self, id: TaskId) -> bool {
        self.holds(id) || self.acked_attempt(id).is_some()
    }

    /// Whether the task is accepted, started, or finished and not acked.
    fn holds(&self, id: TaskId) -> bool {
        self.accepted.iter().any(|task| task.id == id)
            || self.started.iter().any(|task| task.id == id)
            || self.finished.iter().any(|done| done.report.task_id == id)
    }

    /// The attempt acked for the task, if it is among the recent acks.
    pub fn acked_attempt(&self, id: TaskId) -> Option<u32> {
        self.acked
            .iter()
            .find(|done| done.task_id == id)
            .map(|done| done.attempt)
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

    /// Finished reports the server has not acked, with their attempts, in
    /// the order they finished.
    pub fn unacked(&self) -> &[FinishedAttempt] {
        &self.finished
    }

    /// The most recently acked tasks and their acked attempts, oldest first.
    pub fn recently_acked(&self) -> impl Iterator<Item = AckedAttempt> + '_ {
        self.acked.iter().copied()
    }

    /// The entries that rebuild this state, for compaction. Finished reports
    /// keep their attempts in their own lines, as their `accepted` entries
    /// are not written again.
    fn entries(&self) -> Vec<Entry> {
        let mut entries = Vec::with_capacity(self.live_len());
        entries.extend(self.acked.iter().copied().map(Entry::Acked));
        for task in &self.started {
            entries.push(Entry::Accepted(task.clone()));
            entries.push(Entry::Started(task.id));
        }
        entries.extend(self.accepted.iter().cloned().map(Entry::Accepted));
        entries.extend(self.finished.iter().cloned().map(Entry::Finished));
        // Last, so that no ack replayed before them drops them again.
        let mut tasks: Vec<&TaskId> = self.deliveries.keys().collect();
        tasks.sort();
        for id in tasks {
            entries.extend(self.deliveries[id].values().copied().map(Entry::Delivery));
        }
        entries
    }

    /// How many lines a compacted journal of this state has.
    fn live_len(&self) -> usize {
        self.acked.len()
            + 2 * self.started.len()
            + self.accepted.len()
            + self.finished.len()
            + self.deliveries.values().map(BTreeMap::len).sum::<usize>()
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
        let interrupted: Vec<AssignedTask> = state.started.clone();
        for task in &interrupted {
            let mut report = interrupted_report(task.id);
            report.result = interrupted_deliveries(task, &state.marks(task.id));
            state.apply(&Entry::Finished(FinishedAttempt {
                report,
                attempt: task.attempt,
            }));
        }
        let journal = Journal {
            file: write_entries(&path, &state.entries())?,
            lines: state.live_len(),
            path,
            state,
            compact_min_lines: COMPACT_MIN_LINES,
        };
        let recovery = Recovery {
            interrupted: interrupted.iter().map(|task| task.id).collect(),
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

/// The `deliveries` of an interrupted task's report, from its marks: what
/// was sent, what may have been (`uncertain`), and the rest `failed` with
/// `interrupted`. `None` when nothing was marked.
fn interrupted_deliveries(
    task: &AssignedTask,
    marks: &[DeliveryMark],
) -> Option<serde_json::Value> {
    if marks.is_empty() {
        // No send tap was begun (or the journal predates marks): nothing to tell.
        return None;
    }
    let payload = TaskPayload::parse(task.kind, &task.payload).ok()?;
    let marks = delivery::latest(marks);
    let list = delivery::report(&payload, &marks, |_| {
        (
            youmi_protocol::delivery::DeliveryOutcome::Failed,
            Some(INTERRUPTED.to_owned()),
        )
    });
    if list.is_empty() {
        return None;
    }
    Some(serde_json::json!({ "deliveries": list }))
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
        attempt_of(id, 1)
    }

    fn attempt_of(id: TaskId, attempt: u32) -> AssignedTask {
        AssignedTask {
            id,
            kind: TaskKind::SendMessage,
            payload: json!({"to": {"name": "Ann"}, "items": [{"type": "text", "text": "hi"}]}),
            attempt,
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

    fn finished(report: FinishedReport, attempt: u32) -> Entry {
        Entry::Finished(FinishedAttempt { report, attempt })
    }

    fn acked(task_id: TaskId, attempt: u32) -> Entry {
        Entry::Acked(AckedAttempt { task_id, attempt })
    }

    fn reports(state: &JournalState) -> Vec<(FinishedReport, u32)> {
        state
            .unacked()
            .iter()
            .map(|done| (done.report.clone(), done.attempt))
            .collect()
    }

    fn acks(state: &JournalState) -> Vec<(TaskId, u32)> {
        state
            .recently_acked()
            .map(|done| (done.task_id, done.attempt))
            .collect()
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
            serde_json::to_value(acked(5, 2)).unwrap(),
            json!({"acked": {"task_id": 5, "attempt": 2}})
        );
        assert_eq!(
            serde_json::to_value(Entry::Started(5)).unwrap(),
            json!({"started": 5})
        );
        let accepted = serde_json::to_value(Entry::Accepted(task(5))).unwrap();
        assert_eq!(accepted["accepted"]["id"], 5);
        assert_eq!(
            serde_json::to_value(finished(succeeded(5), 3)).unwrap(),
            json!({"finished": {
                "task_id": 5,
                "outcome": "succeeded",
                "result": {"steps": 3},
                "attempt": 3,
            }})
        );
        // And they read back as they were written.
        for entry in [acked(5, 2), finished(succeeded(5), 3), Entry::Started(5)] {
            let line = serde_json::to_string(&entry).unwrap();
            assert_eq!(serde_json::from_str::<Entry>(&line).unwrap(), entry);
        }
    }

    #[test]
    fn lines_of_older_agents_still_parse() {
        // An older agent wrote acks as bare task ids, and reports without
        // their attempts: both count as attempt 1.
        let old_ack: Entry = serde_json::from_str(r#"{"acked": 5}"#).unwrap();
        assert_eq!(old_ack, acked(5, 1));
        let old_finished: Entry = serde_json::from_str(
            r#"{"finished": {"task_id": 6, "outcome": "succeeded", "result": {"steps": 3}}}"#,
        )
        .unwrap();
        assert_eq!(old_finished, finished(succeeded(6), 1));

        // A whole journal of the old form replays, and an uncompacted
        // report takes its attempt from its accepted entry.
        let dir = tempfile::tempdir().unwrap();
        let accepted = serde_json::to_string(&Entry::Accepted(attempt_of(7, 2))).unwrap();
        let text = format!(
            "{{\"acked\":5}}\n{}\n{accepted}\n{{\"started\":7}}\n{}\n",
            r#"{"finished":{"task_id":6,"outcome":"succeeded","result":{"steps":3}}}"#,
            r#"{"finished":{"task_id":7,"outcome":"succeeded","result":{"steps":3}}}"#,
        );
        fs::write(dir.path().join(FILE_NAME), text).unwrap();
        let (journal, recovery) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovery.entries_read, 5);
        assert!(!recovery.torn_tail);
        let state = journal.state();
        assert_eq!(acks(state), vec![(5, 1)]);
        assert_eq!(reports(state), vec![(succeeded(6), 1), (succeeded(7), 2)]);
        // Rewritten in the current form.
        let compacted = lines(journal.path());
        assert_eq!(compacted[0], r#"{"acked":{"task_id":5,"attempt":1}}"#);
        assert!(compacted[2].contains(r#""attempt":2"#), "{compacted:?}");
    }

    #[test]
    fn bad_acks_are_refused_with_a_reason() {
        for (line, expected) in [
            (r#"{"acked": "5"}"#, "a task id"),
            (r#"{"acked": {"task_id": 5}}"#, "missing field `attempt`"),
            (
                r#"{"acked": {"task_id": 5, "attempt": -1}}"#,
                "invalid value",
            ),
            (
                r#"{"acked": {"task_id": 5, "attempt": 1, "x": 0}}"#,
                "unknown field `x`",
            ),
            (r#"{"acked": 18446744073709551615}"#, "out of range"),
        ] {
            let error = serde_json::from_str::<Entry>(line).unwrap_err().to_string();
            assert!(error.contains(expected), "{line}: {error}");
        }
        // In a journal, such a line before the last one is damage.
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE_NAME),
            "{\"acked\": {\"task_id\": 5}}\n{\"acked\": 6}\n",
        )
        .unwrap();
        let error = Journal::open(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("line 1") && error.contains("attempt"),
            "{error}"
        );
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
                finished(succeeded(1), 1),
                Entry::Accepted(attempt_of(2, 3)),
                Entry::Started(2),
                finished(succeeded(2), 3),
                acked(2, 3),
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
        assert_eq!(reports(state), vec![(succeeded(1), 1)]);
        assert_eq!(acks(state), vec![(2, 3)]);
        assert_eq!(state.acked_attempt(2), Some(3));
        assert!(state.contains(2) && state.contains(1) && !state.contains(9));
        // Compacted: the acked task, the two pending tasks, the unacked report.
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
            journal.append(&Entry::Accepted(attempt_of(7, 2))).unwrap();
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
        let interrupted = &state.unacked()[0];
        // The report is for the attempt that was under way.
        assert_eq!(interrupted.attempt, 2);
        let report = &interrupted.report;
        assert_eq!(report.task_id, 7);
        assert_eq!(report.outcome, Outcome::Failed);
        let error = report.error.as_ref().unwrap();
        assert_eq!(error.code, INTERRUPTED);
        assert!(!error.retryable);
        drop(journal);
        // The interrupted report is durable: a second restart reports it the
        // same way, for the same attempt, and does not count the task as
        // interrupted again.
        let (journal, recovery) = Journal::open(dir.path()).unwrap();
        assert!(recovery.interrupted.is_empty());
        assert_eq!(reports(journal.state()), vec![(interrupted_report(7), 2)]);
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
        let good = serde_json::to_string(&acked(1, 1)).unwrap();
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
        state.apply(&finished(succeeded(1), 1));
        state.apply(&finished(interrupted_report(1), 1));
        assert_eq!(reports(&state), vec![(succeeded(1), 1)]);
        state.apply(&acked(1, 1));
        assert!(state.unacked().is_empty());
        assert!(state.contains(1));
        // A late accepted of the acked attempt (or an older one) does not
        // bring the task back, nor does a late report.
        state.apply(&Entry::Accepted(task(1)));
        state.apply(&Entry::Accepted(attempt_of(1, 0)));
        state.apply(&finished(interrupted_report(1), 1));
        assert!(state.pending().is_empty() && state.unacked().is_empty());
        assert_eq!(state.acked_attempt(1), Some(1));
        for id in 100..(100 + RECENT_ACKED as TaskId) {
            state.apply(&acked(id, 1));
        }
        assert!(!state.contains(1), "only the most recent acks are kept");
        assert!(state.contains(100));
    }

    #[test]
    fn an_acked_task_accepted_with_a_higher_attempt_is_a_retry() {
        let mut state = JournalState::default();
        state.apply(&Entry::Accepted(task(1)));
        state.apply(&finished(interrupted_report(1), 1));
        state.apply(&acked(1, 1));
        let retry = attempt_of(1, 2);
        state.apply(&Entry::Accepted(retry.clone()));
        assert_eq!(state.pending(), &[retry]);
        assert_eq!(state.acked_attempt(1), None, "the retry replaced the ack");
        // A copy of the retry, or of the first attempt, changes nothing.
        state.apply(&Entry::Accepted(attempt_of(1, 2)));
        state.apply(&Entry::Accepted(task(1)));
        assert_eq!(state.pending().len(), 1);
        // Its report counts, for its own attempt (whatever the line says).
        state.apply(&Entry::Started(1));
        state.apply(&finished(succeeded(1), 1));
        assert_eq!(reports(&state), vec![(succeeded(1), 2)]);
        state.apply(&acked(1, 2));
        assert_eq!(acks(&state), vec![(1, 2)]);
        // An ack never lowers the attempt known to be done.
        state.apply(&acked(1, 1));
        assert_eq!(state.acked_attempt(1), Some(2));
    }

    #[test]
    fn retries_and_acked_attempts_survive_replay_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            for entry in [
                // Task 1: attempt 1 acked, then its retry is queued.
                Entry::Accepted(task(1)),
                Entry::Started(1),
                finished(interrupted_report(1), 1),
                acked(1, 1),
                Entry::Accepted(attempt_of(1, 2)),
                // Task 2: attempt 2 acked, and a late copy of it ignored.
                Entry::Accepted(attempt_of(2, 2)),
                Entry::Started(2),
                finished(succeeded(2), 2),
                acked(2, 2),
                Entry::Accepted(attempt_of(2, 2)),
                // Task 3: attempt 4 finished, not acked.
                Entry::Accepted(attempt_of(3, 4)),
                Entry::Started(3),
                finished(succeeded(3), 4),
            ] {
                journal.append(&entry).unwrap();
            }
        }
        let check = |state: &JournalState| {
            assert_eq!(state.pending(), &[attempt_of(1, 2)]);
            assert_eq!(state.acked_attempt(1), None);
            assert_eq!(acks(state), vec![(2, 2)]);
            assert_eq!(reports(state), vec![(succeeded(3), 4)]);
        };
        let (journal, _) = Journal::open(dir.path()).unwrap();
        check(journal.state());
        // Compacted to: the ack of 2, the retry of 1, the report of 3.
        assert_eq!(lines(journal.path()).len(), 3);
        drop(journal);
        // The compacted file, without the accepted entry of task 3, keeps
        // its attempt all the same.
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        check(journal.state());
        // Acked after the restart, the report's attempt is what is recorded,
        // and it outlives another compaction.
        journal.append(&acked(3, 4)).unwrap();
        journal.compact().unwrap();
        drop(journal);
        let (journal, _) = Journal::open(dir.path()).unwrap();
        assert_eq!(acks(journal.state()), vec![(2, 2), (3, 4)]);
        assert!(journal.state().unacked().is_empty());
    }

    #[test]
    fn a_running_agent_compacts_a_grown_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        journal.set_compact_min_lines(20);
        for id in 1..=10 {
            journal.append(&Entry::Accepted(task(id))).unwrap();
            journal.append(&Entry::Started(id)).unwrap();
            journal.append(&finished(succeeded(id), 1)).unwrap();
            journal.append(&acked(id, 1)).unwrap();
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

    fn mark(task_id: TaskId, attempt: u32, item: u32, mark: crate::delivery::Mark) -> Entry {
        Entry::Delivery(DeliveryMark {
            task_id,
            attempt,
            unit: UnitKey {
                recipient: None,
                item: Some(item),
            },
            mark,
        })
    }

    fn retryable_failure(id: TaskId) -> FinishedReport {
        FinishedReport {
            task_id: id,
            outcome: Outcome::Failed,
            error: Some(TaskError {
                code: "phone_timeout".to_owned(),
                message: "the phone did not answer".to_owned(),
                retryable: true,
            }),
            result: None,
        }
    }

    #[test]
    fn delivery_marks_outlive_a_retryable_failure_and_end_with_the_task() {
        use crate::delivery::Mark;
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            for entry in [
                // Task 1: attempt 1 sent item 1 and began item 2, then failed
                // retryably; its marks wait for the retry.
                Entry::Accepted(task(1)),
                Entry::Started(1),
                mark(1, 1, 1, Mark::Sending),
                mark(1, 1, 1, Mark::Sent),
                mark(1, 1, 2, Mark::Sending),
                finished(retryable_failure(1), 1),
                acked(1, 1),
                // Task 2: succeeded; its marks go with the ack.
                Entry::Accepted(task(2)),
                Entry::Started(2),
                mark(2, 1, 1, Mark::Sent),
                finished(succeeded(2), 1),
                acked(2, 1),
            ] {
                journal.append(&entry).unwrap();
            }
            let marks = journal.state().marks(1);
            assert_eq!(marks.len(), 2, "the latest mark per item: {marks:?}");
            assert_eq!(marks[0].mark, Mark::Sent);
            assert_eq!(marks[1].mark, Mark::Sending);
            assert!(journal.state().marks(2).is_empty());
        }
        // Replayed and compacted, the marks are still there for the retry.
        let (journal, _) = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.state().marks(1).len(), 2);
        assert_eq!(lines(journal.path()).len(), 4, "two acks and two marks");
        drop(journal);
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.state().marks(1).len(), 2);
        // The retry checks item 2, finds it, sends nothing more and succeeds:
        // the marks end with its ack.
        for entry in [
            Entry::Accepted(attempt_of(1, 2)),
            Entry::Started(1),
            mark(1, 1, 2, Mark::Found),
            finished(succeeded(1), 2),
        ] {
            journal.append(&entry).unwrap();
        }
        assert_eq!(journal.state().marks(1)[1].mark, Mark::Found);
        journal.append(&acked(1, 2)).unwrap();
        assert!(journal.state().marks(1).is_empty());
        drop(journal);
        let (journal, _) = Journal::open(dir.path()).unwrap();
        assert!(journal.state().marks(1).is_empty());
    }

    #[test]
    fn an_interrupted_task_reports_what_its_marks_say() {
        use crate::delivery::Mark;
        let dir = tempfile::tempdir().unwrap();
        let three_items = AssignedTask {
            payload: json!({"to": {"name": "Ann"}, "items": [
                {"type": "text", "text": "hi"}, {"type": "text", "text": "bye"}, {"type": "text", "text": "!"}
            ]}),
            ..task(3)
        };
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            journal.append(&Entry::Accepted(three_items)).unwrap();
            journal.append(&Entry::Started(3)).unwrap();
            journal.append(&mark(3, 1, 1, Mark::Sent)).unwrap();
            journal.append(&mark(3, 1, 2, Mark::Sending)).unwrap();
        }
        let (journal, recovery) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovery.interrupted, vec![3]);
        let report = &journal.state().unacked()[0].report;
        let outcomes: Vec<&str> = report.result.as_ref().unwrap()["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["sent", "uncertain", "failed"]);
    }

    #[test]
    fn a_journal_written_before_delivery_marks_replays_as_before() {
        // The lines of an agent that had no marks: nothing about them changes.
        let dir = tempfile::tempdir().unwrap();
        let accepted = serde_json::to_string(&Entry::Accepted(task(7))).unwrap();
        fs::write(
            dir.path().join(FILE_NAME),
            format!("{accepted}\n{{\"started\":7}}\n"),
        )
        .unwrap();
        let (journal, recovery) = Journal::open(dir.path()).unwrap();
        assert_eq!(recovery.interrupted, vec![7]);
        assert_eq!(reports(journal.state()), vec![(interrupted_report(7), 1)]);
        assert!(journal.state().marks(7).is_empty());
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
