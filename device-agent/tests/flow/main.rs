//! The built-in WeCom flows, run end to end by `FlowExecutor` on the phone
//! simulator's WeCom (`youmi-phone-sim`), driven in process through
//! [`sim_phone::SimPhone`]: one phone model for the flows, here and over ADB in
//! `tests/e2e`. What a task did is read from the simulator's record (what it
//! sent, every input with the screen it came to) and its faults script what
//! goes wrong.
//!
//! The clock is paused: waits for elements that never come end at once.
//!
//! # Layout
//! - `sim_phone`: the agent's `Phone` over the in-process simulator.
//! - `kinds`: every task kind, end to end.
//! - `interrupts`: risk-control warnings, update prompts, permission dialogs.
//! - `failures`: what ends a task early (a missing element or file, a cancel,
//!   an unknown WeCom version), the flows directory, do-not-disturb and the
//!   countdown, and a retry that resumes after what was sent.
//! - `launch`: backing out to the start screen within the launch budget.

mod failures;
mod interrupts;
mod kinds;
mod launch;
mod sim_phone;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use youmi_agent::adb::MEDIA_DIR;
use youmi_agent::executor::{Executor, Progress, TaskContext, TaskFailure};
use youmi_agent::flow::{FlowExecutor, FlowOptions, FlowSet};
use youmi_phone_sim::{Input, InputEvent, LocalPhone, SentEvent, SimConfig, Simulator};
use youmi_protocol::{AssignedTask, TaskKind};

use sim_phone::SimPhone;

/// A picture's first bytes (JPEG), with a tag to tell pictures apart.
fn jpeg(tag: &str) -> Vec<u8> {
    [
        &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10][..],
        b"JFIF\0",
        tag.as_bytes(),
    ]
    .concat()
}

/// A phone, the executor that runs flows on it, and the agent's folders.
struct Setup {
    /// The simulated phone, for its record and faults.
    sim: LocalPhone,
    /// The agent's view of it.
    phone: Arc<SimPhone>,
    executor: FlowExecutor,
    media: tempfile::TempDir,
    evidence: tempfile::TempDir,
}

/// A fresh phone and `flows` over it, with media `m1` and `m2` (pictures) and
/// `doc1` (a PDF).
fn setup_with(flows: FlowSet) -> Setup {
    let sim = Simulator::local(SimConfig::default());
    let phone = Arc::new(SimPhone::new(sim.clone()));
    let media = tempfile::tempdir().unwrap();
    let evidence = tempfile::tempdir().unwrap();
    std::fs::write(media.path().join("m1"), jpeg("m1")).unwrap();
    std::fs::write(media.path().join("m2"), jpeg("m2")).unwrap();
    std::fs::write(media.path().join("doc1"), b"%PDF-1.7\n").unwrap();
    let executor = FlowExecutor::new(
        phone.clone(),
        flows,
        FlowOptions {
            media_dir: Some(media.path().to_owned()),
            evidence_dir: Some(evidence.path().to_owned()),
            ..FlowOptions::default()
        },
    );
    Setup {
        sim,
        phone,
        executor,
        media,
        evidence,
    }
}

fn setup() -> Setup {
    setup_with(FlowSet::builtin().unwrap())
}

/// Where a pushed media file is on the phone: the agent's album folder, under
/// the name its content calls for.
fn on_phone(name: &str) -> String {
    format!("{MEDIA_DIR}/{name}")
}

fn task(id: i64, kind: TaskKind, payload: Value) -> AssignedTask {
    AssignedTask {
        id,
        kind,
        payload,
        attempt: 1,
        not_after_ms: None,
    }
}

async fn run(
    setup: &Setup,
    task: &AssignedTask,
) -> (Result<Option<Value>, TaskFailure>, Vec<Progress>) {
    let (ctx, mut control) = TaskContext::new(task.id);
    let result = tokio::time::timeout(
        Duration::from_secs(3600),
        setup.executor.execute(task, &ctx),
    )
    .await
    .expect("the flow ends");
    drop(ctx);
    let mut progress = Vec::new();
    while let Some(p) = control.next_progress().await {
        progress.push(p);
    }
    (result, progress)
}

/// Runs a task that must succeed; its result.
async fn succeeds(setup: &Setup, id: i64, kind: TaskKind, payload: Value) -> Value {
    let (result, _) = run(setup, &task(id, kind, payload)).await;
    match result {
        Ok(Some(result)) => result,
        other => panic!("task {id} ({kind}) was to succeed with a result: {other:?}"),
    }
}

/// Runs a task that must fail with evidence; its error and evidence.
async fn fails(
    setup: &Setup,
    id: i64,
    kind: TaskKind,
    payload: Value,
) -> (youmi_protocol::TaskError, Value) {
    evidenced(run(setup, &task(id, kind, payload)).await.0)
}

/// The error and evidence of a failure with evidence.
fn evidenced(result: Result<Option<Value>, TaskFailure>) -> (youmi_protocol::TaskError, Value) {
    match result {
        Err(TaskFailure::FailedWithEvidence { error, evidence }) => (error, evidence),
        other => panic!("expected a failure with evidence, got {other:?}"),
    }
}

fn plain_failure(result: Result<Option<Value>, TaskFailure>) -> youmi_protocol::TaskError {
    match result {
        Err(TaskFailure::Failed(error)) => error,
        other => panic!("expected a plain failure, got {other:?}"),
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// A message of one text to `to`.
fn text_to(to: &str, text: &str) -> Value {
    json!({"to": {"name": to}, "items": [{"type": "text", "text": text}]})
}

/// What the simulator records for `name`'s request accepted with `remark`.
fn accepted(name: &str, remark: &str) -> SentEvent {
    SentEvent::FriendRequestAccepted {
        name: name.to_owned(),
        remark: remark.to_owned(),
    }
}

fn message_payload(to: &str) -> Value {
    json!({
        "to": {"name": to},
        "items": [
            {"type": "text", "text": "新品到货，欢迎选购"},
            {"type": "link", "url": "https://example.com/p/1", "title": "新品目录"},
            {"type": "image", "media_id": "m1"},
            {"type": "file", "media_id": "doc1"},
        ],
    })
}

/// Whether a tap or long press landed on `label` while the screen was `screen`.
fn touched_on(sim: &LocalPhone, screen: &str, label: &str) -> bool {
    sim.inputs()
        .iter()
        .any(|e| e.screen == screen && hit(e, label))
}

/// Whether a tap or long press landed on `label` (see `InputEvent::hit`).
fn hit(event: &InputEvent, label: &str) -> bool {
    matches!(event.input, Input::Tap { .. } | Input::LongPress { .. })
        && event.hit.as_deref() == Some(label)
}
