//! A retry never repeats what may already have reached a customer: for every
//! step of every built-in flow, a stall (a command that never answers) and,
//! separately, a dropped ADB connection (the command runs, then the socket
//! goes) are injected at that step on the phone simulator, and the task is
//! run again as the server retries a retryable failure: a later attempt on
//! the same agent, resuming from the delivery marks the earlier attempts
//! journaled. The simulator's record of what was sent must then hold every
//! unit at most once, and the final report's per-unit `deliveries` must agree
//! with it.
//!
//! The steps are not listed here: a clean run of each kind records the steps
//! the flow ran (from its progress reports) and the phone calls each made,
//! and the test checks that those runs (with the retries, for the check
//! procedures) cover every step name the flow file has for each kind (a
//! procedure several flows share is covered once). A fault is armed
//! just before the step's first call that acts on the phone (a tap, a key,
//! typing, a push), or its first call when it only reads the screen.
//!
//! The agent reaches each simulator through Debian's adb server (over TCP
//! only where adb is not installed), so a dropped connection is what a real
//! fleet sees: the server loses the phone until it is connected again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use youmi_agent::adb::{AdbConfig, AdbPhone};
use youmi_agent::executor::{BoxFuture, Executor, TaskContext, TaskControl, TaskFailure};
use youmi_agent::flow::{FlowExecutor, FlowOptions, FlowSet, WECOM_PACKAGE};
use youmi_agent::phone::{
    CallState, Foreground, Key, Phone, PhoneResult, PhoneStatus, Point, UiTree,
};
use youmi_phone_sim::adb_server::{adb_on_path, throwaway_key_in, AdbServer};
use youmi_phone_sim::{Fault, SentEvent, SimConfig, SimHandle, Simulator};
use youmi_protocol::delivery::{Delivery, DeliveryOutcome};
use youmi_protocol::{AssignedTask, TaskKind};

/// How many attempts the test gives a task, as the server's `max_attempts`
/// would (one more than its default, so that a slow machine's stray timeout
/// does not end a case before the injected fault has been recovered from).
const MAX_ATTEMPTS: u32 = 4;

/// How many cases run at once: their time is mostly waiting (timeouts, the
/// flows' settle times), not CPU.
const PARALLEL: usize = 12;

/// Short deadlines, so a stalled command ends in a couple of seconds; still
/// far above what a call to the simulator takes on a busy machine.
fn adb_config() -> AdbConfig {
    AdbConfig {
        command_timeout: Duration::from_secs(2),
        dump_timeout: Duration::from_secs(4),
        dump_patience: Duration::from_secs(1),
        dump_retry_pause: Duration::from_millis(20),
        dump_retry_pause_max: Duration::from_millis(200),
        transfer_timeout: Duration::from_secs(6),
        connect_timeout: Duration::from_secs(3),
        probe_interval: Duration::from_secs(1),
        probe_timeout: Duration::from_secs(2),
    }
}

/// Which fault a case injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injected {
    /// The command never answers (the phone stalls): it does not run.
    Stall,
    /// The command runs, then the connection drops before it answers.
    Drop,
}

/// The phone calls that change something on the phone.
const ACTING: &[&str] = &[
    "tap",
    "long_press",
    "swipe",
    "key",
    "launch_app",
    "stop_app",
    "type_text",
    "push_media",
];

/// What the wrapper knows of the run: the step it is in (from the task's
/// progress reports, which the runner sends before a step's first call), the
/// calls made in each step, and the fault to arm.
#[derive(Default)]
struct Watch {
    /// The running attempt's progress reports.
    control: Option<TaskControl>,
    /// The step being run (its progress number, from 1) and its name.
    step: (u32, String),
    /// Every call: (step number, step name, method).
    calls: Vec<(u32, String, &'static str)>,
    /// Arm `fault` before the first call of `method` in step `step`.
    target: Option<(u32, &'static str, Injected)>,
    /// Whether the target was reached.
    armed: bool,
}

/// An [`AdbPhone`] that watches the run's progress and arms a simulator fault
/// at one step.
struct Faulty {
    inner: AdbPhone,
    sim: Arc<SimHandle>,
    watch: Mutex<Watch>,
}

impl Faulty {
    fn before(&self, method: &'static str) {
        let mut watch = self.watch.lock().unwrap();
        let mut step = watch.step.clone();
        if let Some(control) = watch.control.as_mut() {
            while let Some(progress) = control.try_progress() {
                step = (progress.done + 1, progress.step);
            }
        }
        watch.step = step.clone();
        watch.calls.push((step.0, step.1, method));
        if let Some((at, target_method, fault)) = watch.target {
            if !watch.armed && at == step.0 && target_method == method {
                watch.armed = true;
                self.sim.set_fault(match fault {
                    Injected::Stall => Fault::Hang {
                        pattern: String::new(),
                        times: 1,
                    },
                    Injected::Drop => Fault::DropConnection {
                        pattern: String::new(),
                    },
                });
            }
        }
    }
}

impl Phone for Faulty {
    fn serial(&self) -> &str {
        self.inner.serial()
    }
    fn dump_ui(&self) -> BoxFuture<'_, PhoneResult<UiTree>> {
        self.before("dump_ui");
        self.inner.dump_ui()
    }
    fn tap(&self, at: Point) -> BoxFuture<'_, PhoneResult<()>> {
        self.before("tap");
        self.inner.tap(at)
    }
    fn long_press(&self, at: Point, hold: Duration) -> BoxFuture<'_, PhoneResult<()>> {
        self.before("long_press");
        self.inner.long_press(at, hold)
    }
    fn swipe(&self, from: Point, to: Point, duration: Duration) -> BoxFuture<'_, PhoneResult<()>> {
        self.before("swipe");
        self.inner.swipe(from, to, duration)
    }
    fn key(&self, key: Key) -> BoxFuture<'_, PhoneResult<()>> {
        self.before("key");
        self.inner.key(key)
    }
    fn launch_app<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        self.before("launch_app");
        self.inner.launch_app(package)
    }
    fn stop_app<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        self.before("stop_app");
        self.inner.stop_app(package)
    }
    fn foreground_app(&self) -> BoxFuture<'_, PhoneResult<Option<Foreground>>> {
        self.before("foreground_app");
        self.inner.foreground_app()
    }
    fn app_version<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<Option<String>>> {
        self.before("app_version");
        self.inner.app_version(package)
    }
    fn type_text<'a>(&'a self, text: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        self.before("type_text");
        self.inner.type_text(text)
    }
    fn push_media<'a>(&'a self, local: &'a Path) -> BoxFuture<'a, PhoneResult<String>> {
        self.before("push_media");
        self.inner.push_media(local)
    }
    fn clear_media(&self) -> BoxFuture<'_, PhoneResult<()>> {
        self.before("clear_media");
        self.inner.clear_media()
    }
    fn screenshot(&self) -> BoxFuture<'_, PhoneResult<Vec<u8>>> {
        self.before("screenshot");
        self.inner.screenshot()
    }
    fn do_not_disturb(&self) -> BoxFuture<'_, PhoneResult<bool>> {
        self.inner.do_not_disturb()
    }
    fn set_do_not_disturb(&self, on: bool) -> BoxFuture<'_, PhoneResult<()>> {
        self.inner.set_do_not_disturb(on)
    }
    fn call_state(&self) -> BoxFuture<'_, PhoneResult<CallState>> {
        self.inner.call_state()
    }
    fn end_call(&self) -> BoxFuture<'_, PhoneResult<()>> {
        self.inner.end_call()
    }
    fn status(&self) -> BoxFuture<'_, PhoneResult<PhoneStatus>> {
        self.inner.status()
    }
    fn notify<'a>(&'a self, text: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        self.inner.notify(text)
    }
}

/// One task kind and the payload that makes its flow run every step.
struct Kind {
    kind: TaskKind,
    payload: Value,
}

fn kinds() -> Vec<Kind> {
    vec![
        Kind {
            kind: TaskKind::SendMessage,
            payload: json!({
                "to": { "name": "张三" },
                "items": [
                    { "type": "text", "text": "你好，这是本周的报价" },
                    { "type": "image", "media_id": "photo1.jpg" },
                    { "type": "file", "media_id": "catalog.pdf" },
                    { "type": "link", "url": "https://example.com/p/1", "title": "新品介绍" },
                ],
            }),
        },
        Kind {
            kind: TaskKind::SmartMarketing,
            payload: json!({
                "flow_id": 7, "step": 2,
                "to": { "name": "李四" },
                "items": [{ "type": "text", "text": "活动今晚结束" }],
            }),
        },
        Kind {
            kind: TaskKind::MassSend,
            payload: json!({
                "recipients": [{ "name": "张三" }, { "name": "李四" }],
                "items": [
                    { "type": "text", "text": "周末大促" },
                    { "type": "image", "media_id": "sale.png" },
                ],
            }),
        },
        Kind {
            kind: TaskKind::MomentsPost,
            payload: json!({
                "text": "新品上市，欢迎咨询",
                "media_ids": ["m1.jpg"],
                "visible_to_tags": ["VIP"],
            }),
        },
        Kind {
            kind: TaskKind::FriendAdd,
            payload: json!({
                "target": { "phone": "13800138000" },
                "greeting": "你好，我是优米的小优",
                "remark": "王总-展会",
                "tags": ["VIP"],
            }),
        },
        Kind {
            kind: TaskKind::AcceptFriendRequest,
            payload: json!({ "from": { "name": "陈七" }, "remark": "陈七-课程" }),
        },
        Kind {
            kind: TaskKind::DeleteChat,
            payload: json!({ "with": { "name": "李四" } }),
        },
    ]
}

/// The media every payload above names, in one directory.
fn media_dir(root: &Path) -> PathBuf {
    let dir = root.join("media");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in [
        ("photo1.jpg", &b"\xff\xd8\xff\xe0 a picture"[..]),
        ("catalog.pdf", b"%PDF-1.4 a price list"),
        ("sale.png", b"\x89PNG a poster"),
        ("m1.jpg", b"\xff\xd8\xff first"),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    dir
}

/// How a case ended.
struct Ended {
    /// The last attempt's outcome: `Ok` with its result, or the error code
    /// and whatever result it carried.
    last: Result<Value, (String, Value)>,
    /// The attempts it took.
    attempts: u32,
    /// What the simulator recorded.
    sent: Vec<SentEvent>,
    /// Every call of every attempt: (step number, step name, method).
    calls: Vec<(u32, String, &'static str)>,
}

/// Runs one task on a fresh simulator, with `target` armed in its first
/// attempt, and retries it as the server would while it fails retryably.
///
/// With `server` the agent reaches the phone through that adb server (Debian's
/// real one), and a phone the server lost is connected again between attempts,
/// as a person or the fleet does; without it, straight over TCP.
async fn run_case(
    kind: &Kind,
    media: &Path,
    target: Option<(u32, &'static str, Injected)>,
    server: Option<&AdbServer>,
) -> Ended {
    let sim = Arc::new(Simulator::start(SimConfig::default()).await.unwrap());
    let serial = sim.addr().to_string();
    let keys = tempfile::tempdir().unwrap();
    let inner = match server {
        Some(server) => {
            server.connect(&serial).await;
            AdbPhone::through_server(server.addr(), &serial, adb_config())
        }
        None => AdbPhone::over_tcp(
            sim.addr(),
            &throwaway_key_in(keys.path()).unwrap(),
            adb_config(),
        )
        .await
        .expect("the key is accepted"),
    };
    let phone = Arc::new(Faulty {
        inner,
        sim: Arc::clone(&sim),
        watch: Mutex::new(Watch {
            target,
            ..Watch::default()
        }),
    });
    let executor = FlowExecutor::new(
        phone.clone(),
        FlowSet::builtin().unwrap(),
        FlowOptions {
            app: WECOM_PACKAGE.to_owned(),
            media_dir: Some(media.to_owned()),
            evidence_dir: None,
            ..FlowOptions::default()
        },
    );
    let mut marks = Vec::new();
    let mut attempt = 1;
    loop {
        let task = AssignedTask {
            id: 1,
            kind: kind.kind,
            payload: kind.payload.clone(),
            attempt,
            not_after_ms: None,
        };
        let (ctx, control) = TaskContext::new(task.id);
        // The journal's marks of the earlier attempts, as the agent reads them.
        let ctx = ctx.resuming(marks.clone());
        phone.watch.lock().unwrap().control = Some(control);
        let result = tokio::time::timeout(Duration::from_secs(120), executor.execute(&task, &ctx))
            .await
            .unwrap_or_else(|_| panic!("{} attempt {attempt} hung", kind.kind));
        marks = ctx.all_marks();
        // A fault that was armed but not reached must not hit the retry.
        sim.clear_faults();
        let (last, retry) = match result {
            Ok(result) => (Ok(result.unwrap_or(Value::Null)), false),
            Err(TaskFailure::FailedWithEvidence { error, evidence }) => {
                (Err((error.code, evidence)), error.retryable)
            }
            Err(TaskFailure::Failed(error)) => (Err((error.code, Value::Null)), error.retryable),
            Err(TaskFailure::Cancelled) => panic!("nothing cancels"),
        };
        if retry && attempt < MAX_ATTEMPTS {
            attempt += 1;
            if let Some(server) = server {
                if server.state_of(&serial).await.as_deref() != Some("device") {
                    server.reconnect(&serial).await;
                }
            }
            continue;
        }
        if let Some(server) = server {
            let _ = server.adb(&["disconnect", &serial]).await;
        }
        let calls = std::mem::take(&mut phone.watch.lock().unwrap().calls);
        return Ended {
            last,
            attempts: attempt,
            sent: sim.sent(),
            calls,
        };
    }
}

/// The report's `deliveries`.
fn deliveries(result: &Value) -> Vec<Delivery> {
    serde_json::from_value(result["deliveries"].clone())
        .unwrap_or_else(|e| panic!("no deliveries in {result}: {e}"))
}

/// Checks one faulted case against the clean run's record (one event per
/// unit, in unit order).
fn check_case(what: &str, ended: &Ended, expected: &[SentEvent]) {
    // Nothing twice, and nothing that is not one of the task's units.
    for (i, event) in ended.sent.iter().enumerate() {
        assert!(
            !ended.sent[..i].contains(event),
            "{what}: sent twice: {event:?}; everything sent: {:?}",
            ended.sent
        );
        assert!(
            expected.contains(event),
            "{what}: sent something the task does not have: {event:?}"
        );
    }
    let result = match &ended.last {
        Ok(result) => result,
        Err((code, result)) => {
            // A retry ends without sending when what it cannot confirm was
            // sent (`delivery_uncertain`), or when the stalled attempt left a
            // dialog of its own on screen, which no rule may dismiss blindly
            // (`unexpected_dialog`: a person looks; section 2 of issue 11).
            assert!(
                code == "delivery_uncertain" || code == "unexpected_dialog",
                "{what}: failed with {code} after {} attempts: {result}",
                ended.attempts
            );
            result
        }
    };
    let list = deliveries(result);
    assert_eq!(list.len(), expected.len(), "{what}: {result}");
    for (delivery, event) in list.iter().zip(expected) {
        let count = ended.sent.iter().filter(|e| *e == event).count();
        match delivery.outcome {
            DeliveryOutcome::Sent => assert_eq!(
                count, 1,
                "{what}: reported sent, but the phone sent {event:?} {count} times: {result}"
            ),
            DeliveryOutcome::Uncertain => assert!(count <= 1, "{what}"),
            DeliveryOutcome::Failed | DeliveryOutcome::Skipped => assert_eq!(
                count, 0,
                "{what}: reported {:?}, but the phone sent {event:?}: {result}",
                delivery.outcome
            ),
        }
    }
    // A task that succeeded in the end sent each unit once, or left it
    // uncertain (never sent twice to make sure).
    if ended.last.is_ok() {
        for delivery in &list {
            assert!(
                matches!(
                    delivery.outcome,
                    DeliveryOutcome::Sent | DeliveryOutcome::Uncertain
                ),
                "{what}: {delivery:?} in a task that succeeded: {result}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_or_a_dropped_connection_at_any_step_never_sends_anything_twice() {
    let root = tempfile::tempdir().unwrap();
    let media = media_dir(root.path());
    let flows = FlowSet::builtin().unwrap();
    let file = flows.for_version(WECOM_PACKAGE, "4.1.30").unwrap();
    let permits = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let kinds = Arc::new(kinds());
    // Through Debian's adb server when there is one (CI installs it).
    let server = if adb_on_path() {
        Some(Arc::new(AdbServer::start().await))
    } else {
        eprintln!(
            "adb is not installed: the phones are reached over TCP, not through the adb server"
        );
        None
    };
    let mut cases = tokio::task::JoinSet::new();
    for index in 0..kinds.len() {
        let kind = &kinds[index];
        // The clean run: the steps, their calls, and what the phone sent.
        let clean = run_case(kind, &media, None, server.as_deref()).await;
        let result = clean.last.as_ref().unwrap_or_else(|(code, result)| {
            panic!("{}: the clean run failed with {code}: {result}", kind.kind)
        });
        assert_eq!(clean.attempts, 1);
        let expected = clean.sent.clone();
        assert_eq!(
            deliveries(result).len(),
            expected.len(),
            "{}: one event per unit: {:?}",
            kind.kind,
            expected
        );
        assert!(deliveries(result)
            .iter()
            .all(|d| d.outcome == DeliveryOutcome::Sent));
        let mut steps: Vec<(u32, String, &'static str)> = Vec::new();
        for (number, name, method) in &clean.calls {
            if *number == 0 {
                continue; // before the first step: the app version
            }
            match steps.iter_mut().find(|(n, _, _)| n == number) {
                Some(step) => {
                    if !ACTING.contains(&step.2) && ACTING.contains(method) {
                        step.2 = method;
                    }
                }
                None => steps.push((*number, name.clone(), method)),
            }
        }
        for (number, name, method) in steps {
            for injected in [Injected::Stall, Injected::Drop] {
                let permits = Arc::clone(&permits);
                let kinds = Arc::clone(&kinds);
                let server = server.clone();
                let media = media.clone();
                let expected = expected.clone();
                let name = name.clone();
                cases.spawn(async move {
                    let _permit = permits.acquire().await.unwrap();
                    let kind = &kinds[index];
                    let what = format!(
                        "{} with a {injected:?} at step {number} `{name}` ({method})",
                        kind.kind
                    );
                    let ended = run_case(
                        kind,
                        &media,
                        Some((number, method, injected)),
                        server.as_deref(),
                    )
                    .await;
                    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        check_case(&what, &ended, &expected)
                    }))
                    .map_err(|panic| {
                        panic
                            .downcast_ref::<String>()
                            .cloned()
                            .unwrap_or_else(|| what.clone())
                    });
                    let names: BTreeSet<String> = ended
                        .calls
                        .iter()
                        .map(|(_, name, _)| name.clone())
                        .collect();
                    (kind.kind, names, checked)
                });
            }
        }
    }
    let mut seen: Vec<(TaskKind, BTreeSet<String>)> = Vec::new();
    let mut count = 0;
    let mut failures = Vec::new();
    while let Some(done) = cases.join_next().await {
        let (kind, names, checked) = done.expect("a case panicked");
        count += 1;
        if let Err(failure) = checked {
            failures.push(failure);
        }
        match seen.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, all)) => all.extend(names),
            None => seen.push((kind, names)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count > 100, "only {count} cases ran");
    // Every step the flow file has ran in some case (the check procedures in
    // the retries after a dropped send tap). A procedure several flows share
    // (the item procedures of send_message, smart_marketing and mass_send)
    // counts once: smart_marketing sends only a text.
    let ran: BTreeSet<String> = seen.into_iter().flat_map(|(_, names)| names).collect();
    for kind in kinds.iter() {
        for name in file.step_names(kind.kind) {
            assert!(
                ran.contains(&name),
                "{}: step `{name}` never ran: {ran:?}",
                kind.kind
            );
        }
    }
}
