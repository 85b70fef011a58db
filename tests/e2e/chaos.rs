//! The chaos run of issue 10 (section 6): the real server binary, 20 agents
//! (17 in-process agents with simulated phones and 3 raw clients that behave
//! like an old agent and refuse the kinds they do not know), 2,400 tasks of
//! every kind and size submitted in batches and singly while the run goes on,
//! submissions refused at the edge, agents killed and cut at random, two
//! `kill -9`s of the server and one transient storage fault (a full tmpfs on
//! SQLite, a read-only database on PostgreSQL). At the end every task the
//! server acknowledged has ended exactly once, nothing ran twice, every
//! refusal failed with the agent's code, and no answer was a 5xx but the
//! fault's 503s. It prints one summary line of counts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use youmi_agent::simulator::{PhoneEvent, SimulatedPhone};
use youmi_protocol::agent::{assign_frame_len_bound, refusal_code};
use youmi_protocol::api::TaskView;
use youmi_protocol::{
    AgentMessage, FinishedReport, Outcome, ServerMessage, TaskId, TaskKind, TaskState,
    MAX_ASSIGN_FRAME_BYTES, MAX_PAYLOAD_DEPTH,
};
use youmi_tests::payloads::sample_payload;
use youmi_tests::raw::{raw_device, report};
use youmi_tests::{AgentSpec, Api, Backend, Incoming, RawAgent, ServerProcess, TestAgent, TestDb};

use crate::SERVER_EXE;

/// Agents with a simulated phone, run in this process.
const IN_PROCESS: usize = 17;
/// Raw protocol clients that refuse some kinds.
const RAW: usize = 3;
/// Tasks the run submits (besides those refused at the edge).
const TASKS: usize = 2_400;
/// Submitted tasks not yet started, at most: submission keeps pace with the
/// phones, so tasks are submitted all through the run.
const BACKLOG: usize = 400;
/// The kinds the raw agents do not know: they refuse them.
const UNKNOWN_TO_RAW: [TaskKind; 2] = [TaskKind::MomentsPost, TaskKind::SmartMarketing];
/// Set it to repeat a run's plan (accounts, kinds, sizes, priorities); the
/// timing of kills and faults is the machine's.
const SEED_ENV: &str = "YOUMI_CHAOS_SEED";

/// Locks a mutex, whatever a panicking holder left (each holder only pushes
/// or counts).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

// ----- HTTP: every answer counted, 5xx outside the fault window noted -----

/// What a request got.
enum Reply {
    /// An HTTP answer.
    Answered {
        status: StatusCode,
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
        body: Value,
    },
    /// No answer: `connect` when the server was not there at all (the request
    /// never reached it), otherwise it may or may not have been handled.
    NoAnswer { connect: bool, error: String },
}

/// The answers of the whole run.
#[derive(Default)]
struct Answers {
    /// Count per status.
    by_status: BTreeMap<u16, usize>,
    /// 5xx answers that are not a 503 `storage_unavailable` with
    /// `Retry-After` during the fault window, described.
    unexpected_5xx: Vec<String>,
    /// Requests that got no answer (server killed or restarting).
    no_answer: usize,
}

/// The admin's HTTP client for the run: a fixed address across restarts
/// (sessions are stored, so the token stays good).
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base_url: String,
    token: String,
    /// Set from just before the storage fault is injected until the server is
    /// ready again after it is removed.
    fault: Arc<AtomicBool>,
    answers: Arc<Mutex<Answers>>,
}

impl Http {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let fault_before = self.fault.load(Ordering::SeqCst);
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base_url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                lock(&self.answers).no_answer += 1;
                return Reply::NoAnswer {
                    connect: error.is_connect(),
                    error: error.to_string(),
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = match response.text().await {
            Ok(text) => text,
            Err(error) => {
                lock(&self.answers).no_answer += 1;
                return Reply::NoAnswer {
                    connect: false,
                    error: format!("{status} with a body cut short: {error}"),
                };
            }
        };
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let in_fault = fault_before || self.fault.load(Ordering::SeqCst);
        let mut answers = lock(&self.answers);
        *answers.by_status.entry(status.as_u16()).or_default() += 1;
        if status.is_server_error() {
            let of_the_fault = status == StatusCode::SERVICE_UNAVAILABLE
                && in_fault
                && retry_after.is_some()
                && body["error"]["code"] == "storage_unavailable";
            if !of_the_fault {
                answers.unexpected_5xx.push(format!(
                    "{status} to {method} {path} (fault window: {in_fault}, Retry-After: \
                     {retry_after:?}): {body}"
                ));
            }
        }
        Reply::Answered {
            status,
            retry_after,
            body,
        }
    }

    /// `GET /health/ready` answered 200.
    async fn ready(&self) -> bool {
        let url = format!("{}/health/ready", self.base_url);
        matches!(self.client.get(url).send().await, Ok(r) if r.status() == StatusCode::OK)
    }
}

// ----- submissions: what was acknowledged, refused, in doubt -----

/// The submissions of the run. Every payload carries its submission's number
/// as `"chaos"` (payloads may carry fields of their own), so stored tasks
/// are traced back to the submission that made them.
#[derive(Default)]
struct Ledger {
    /// Number -> the id of the 201.
    acknowledged: HashMap<u64, TaskId>,
    /// Numbers of submissions that got no answer but may have reached the
    /// server (one per single, all of a batch): all or none may be stored.
    in_doubt: Vec<Vec<u64>>,
    /// Numbers refused at the edge (the bad task and the good ones of its
    /// batch): never stored.
    refused_at_edge: HashSet<u64>,
    /// Submissions refused at the edge, by status.
    edge_answers: BTreeMap<u16, usize>,
    /// Submissions answered 503, each retried after `Retry-After`.
    answered_503: usize,
    /// What went wrong that should not have.
    problems: Vec<String>,
}

/// The route and the body of one submission.
struct Submission {
    /// The numbers of its tasks, in order.
    numbers: Vec<u64>,
    /// `/api/v1/tasks` or `/api/v1/tasks/batch`.
    path: &'static str,
    body: Value,
}

impl Submission {
    fn new(tasks: Vec<(u64, Value)>, batch: bool) -> Submission {
        let numbers = tasks.iter().map(|(n, _)| *n).collect();
        if batch {
            let tasks: Vec<Value> = tasks.into_iter().map(|(_, t)| t).collect();
            Submission {
                numbers,
                path: "/api/v1/tasks/batch",
                body: json!({ "tasks": tasks }),
            }
        } else {
            let (_, task) = tasks.into_iter().next().expect("one task");
            Submission {
                numbers,
                path: "/api/v1/tasks",
                body: task,
            }
        }
    }
}

/// Submits until answered: after a 503 it waits `Retry-After` and sends again,
/// while the server is down it waits and sends again; a request that may have
/// reached a server that died is in doubt. `refusal` is the status and code
/// expected of a submission that must be refused at the edge.
async fn submit(
    http: &Http,
    ledger: &Mutex<Ledger>,
    submission: Submission,
    refusal: Option<(StatusCode, &str)>,
) {
    loop {
        match http
            .call(Method::POST, submission.path, Some(&submission.body))
            .await
        {
            Reply::Answered {
                status: StatusCode::SERVICE_UNAVAILABLE,
                retry_after: Some(secs),
                ..
            } => {
                lock(ledger).answered_503 += 1;
                tokio::time::sleep(Duration::from_secs(secs)).await;
            }
            Reply::Answered { status, body, .. } => {
                let mut ledger = lock(ledger);
                match refusal {
                    None if status == StatusCode::CREATED => {
                        let ids: Vec<TaskId> = if submission.numbers.len() == 1
                            && submission.path == "/api/v1/tasks"
                        {
                            vec![body["id"].as_i64().expect("the new task's id")]
                        } else {
                            serde_json::from_value(body["ids"].clone()).expect("the batch's ids")
                        };
                        assert_eq!(ids.len(), submission.numbers.len(), "one id per task");
                        ledger
                            .acknowledged
                            .extend(submission.numbers.iter().copied().zip(ids));
                    }
                    Some((expected, code))
                        if status == expected && body["error"]["code"] == code =>
                    {
                        *ledger.edge_answers.entry(status.as_u16()).or_default() += 1;
                        ledger.refused_at_edge.extend(&submission.numbers);
                    }
                    _ => {
                        let problem = format!(
                            "{} of {} task(s) answered {status} (expected {refusal:?}): {body}",
                            submission.path,
                            submission.numbers.len()
                        );
                        ledger.problems.push(problem);
                        if refusal.is_some() {
                            ledger.refused_at_edge.extend(&submission.numbers);
                        }
                    }
                }
                return;
            }
            Reply::NoAnswer { connect: true, .. } => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Reply::NoAnswer {
                connect: false,
                error,
            } => {
                eprintln!(
                    "chaos: {} task(s) in doubt, no answer: {error}",
                    submission.numbers.len()
                );
                lock(ledger).in_doubt.push(submission.numbers);
                return;
            }
        }
    }
}

/// A `mass_send` payload of close to (never over) what an `assign` frame can
/// carry when `bytes` is near the limit: recipients with long names.
fn large_payload(n: u64, bytes: usize) -> Value {
    let per = 400;
    let mut count = bytes / (per + 12);
    loop {
        let recipients: Vec<Value> = (0..count)
            .map(|i| json!({ "name": format!("{n}-{i:0>width$}", width = per) }))
            .collect();
        let payload = json!({
            "recipients": recipients,
            "items": [{ "type": "text", "text": format!("large {n}") }],
            "chaos": n,
        });
        let len = payload.to_string().len();
        if bytes > MAX_ASSIGN_FRAME_BYTES
            || assign_frame_len_bound(TaskKind::MassSend, len) <= MAX_ASSIGN_FRAME_BYTES
        {
            return payload;
        }
        count -= 1;
    }
}

/// `0` wrapped in arrays, so that a payload holding it as a field is `depth`
/// levels deep in all (the payload object is level 1).
fn nested(depth: usize) -> Value {
    let mut value = json!(0);
    for _ in 1..depth {
        value = json!([value]);
    }
    value
}

/// One task to submit: number `n` for `account`, of a random kind, size and
/// priority.
fn plan_task(rng: &mut StdRng, n: u64, account: i64) -> Value {
    let (kind, payload) = match rng.gen_range(0..100) {
        // Large: up to just under the assign frame's limit.
        0 => {
            let bytes = rng.gen_range(MAX_ASSIGN_FRAME_BYTES / 4..MAX_ASSIGN_FRAME_BYTES - 1_000);
            (TaskKind::MassSend, large_payload(n, bytes))
        }
        // As deep as submission takes.
        1 | 2 => {
            let mut payload = sample_payload(TaskKind::SendMessage, n);
            payload["extra"] = nested(MAX_PAYLOAD_DEPTH);
            payload["chaos"] = json!(n);
            (TaskKind::SendMessage, payload)
        }
        _ => {
            let kind = TaskKind::ALL[rng.gen_range(0..TaskKind::ALL.len())];
            let mut payload = sample_payload(kind, n);
            payload["chaos"] = json!(n);
            (kind, payload)
        }
    };
    let mut task = json!({ "operator_account_id": account, "kind": kind, "payload": payload });
    if rng.gen_bool(0.5) {
        task["priority"] = json!(rng.gen_range(0..=9));
    }
    task
}

/// A task the edge must refuse: too large (413) or too deep (422).
fn bad_task(n: u64, account: i64, too_large: bool) -> (Value, StatusCode, &'static str) {
    if too_large {
        let payload = large_payload(n, MAX_ASSIGN_FRAME_BYTES + 8_000);
        let task =
            json!({ "operator_account_id": account, "kind": "mass_send", "payload": payload });
        (task, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    } else {
        let mut payload = sample_payload(TaskKind::SendMessage, n);
        payload["extra"] = nested(MAX_PAYLOAD_DEPTH + 1);
        payload["chaos"] = json!(n);
        let task =
            json!({ "operator_account_id": account, "kind": "send_message", "payload": payload });
        (task, StatusCode::UNPROCESSABLE_ENTITY, "payload_too_deep")
    }
}

// ----- progress: what the phones have started -----

/// Every simulated phone of the run (a restarted agent gets a new one; the
/// old one's records stay here) and what the raw agents did.
#[derive(Default)]
struct Phones {
    phones: Mutex<Vec<Arc<SimulatedPhone>>>,
    /// Tasks the raw agents ran or refused.
    raw_handled: AtomicUsize,
}

impl Phones {
    fn add(&self, phone: Arc<SimulatedPhone>) {
        lock(&self.phones).push(phone);
    }

    /// Tasks started or handled so far (retries counted again).
    fn progress(&self) -> usize {
        let phones = lock(&self.phones).clone();
        let started: usize = phones
            .iter()
            .map(|p| {
                p.events()
                    .iter()
                    .filter(|e| matches!(e, PhoneEvent::TaskStarted(_)))
                    .count()
            })
            .sum();
        started + self.raw_handled.load(Ordering::SeqCst)
    }
}

// ----- raw agents: an old agent that refuses kinds it does not know -----

/// What one raw agent did, for the checks at the end.
#[derive(Default)]
struct RawLog {
    /// Task -> the attempts it ran (accepted and finished).
    runs: HashMap<TaskId, Vec<u32>>,
    /// Task -> how often it refused it.
    refused: HashMap<TaskId, usize>,
    /// Finished and not acked yet: reported again in the next `hello`.
    unacked: BTreeMap<TaskId, FinishedReport>,
    /// Connections it dropped on purpose.
    drops: usize,
    /// The `error` frames the server sent it.
    errors: Vec<(String, String)>,
}

/// Serialises a frame.
fn frame(message: &AgentMessage) -> String {
    serde_json::to_string(message).expect("serialize an agent message")
}

/// A raw agent's life: connect and say hello (reporting what it finished and
/// was not acked), refuse `UNKNOWN_TO_RAW`, accept and finish the rest at
/// once, drop the connection when `cut` is notified, until `stop`.
async fn run_raw_agent(
    ws_url: String,
    token: String,
    log: Arc<Mutex<RawLog>>,
    phones: Arc<Phones>,
    cut: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = StdRng::from_entropy();
    while !*stop.borrow() {
        let Ok(mut agent) = RawAgent::connect(&ws_url, Some(&token)).await.map_err(|e| {
            if let youmi_tests::ConnectError::Http { status: 401, body } = &e {
                panic!("a raw agent's token was refused: {body}");
            }
        }) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let finished: Vec<FinishedReport> = lock(&log).unacked.values().cloned().collect();
        let hello = frame(&AgentMessage::Hello {
            agent_version: "raw-old".to_owned(),
            device: raw_device("raw-old"),
            queue_paused: false,
            running: Vec::new(),
            finished,
        });
        if !agent.try_send_text(hello).await {
            continue;
        }
        match agent.next(Duration::from_secs(5)).await {
            Incoming::Message(ServerMessage::Welcome { .. }) => {}
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        loop {
            let incoming = tokio::select! {
                incoming = agent.next(Duration::from_secs(1)) => incoming,
                _ = cut.notified() => {
                    lock(&log).drops += 1;
                    break;
                }
                _ = stop.changed() => return,
            };
            let ok = match incoming {
                Incoming::Timeout => {
                    agent
                        .try_send_text(frame(&AgentMessage::Heartbeat {
                            battery: Some(80),
                            charging: Some(true),
                            screen_on: Some(true),
                            foreground_app: None,
                            call: None,
                            wecom_version: None,
                            dnd: None,
                        }))
                        .await
                }
                Incoming::Closed(_) => false,
                Incoming::Message(ServerMessage::Ack { task_id }) => {
                    lock(&log).unacked.remove(&task_id);
                    true
                }
                Incoming::Message(ServerMessage::Assign { task }) => {
                    if UNKNOWN_TO_RAW.contains(&task.kind) {
                        *lock(&log).refused.entry(task.id).or_default() += 1;
                        phones.raw_handled.fetch_add(1, Ordering::SeqCst);
                        agent
                            .try_send_text(frame(&AgentMessage::Refused {
                                task_id: task.id,
                                code: refusal_code::UNKNOWN_KIND.to_owned(),
                                message: format!("this agent does not know {}", task.kind),
                            }))
                            .await
                    } else {
                        let report = report(task.id, Outcome::Succeeded);
                        let duplicate = {
                            let mut log = lock(&log);
                            // A re-send of the assign it has just answered.
                            let duplicate = log.unacked.contains_key(&task.id)
                                && log.runs.get(&task.id).and_then(|r| r.last())
                                    == Some(&task.attempt);
                            if !duplicate {
                                log.runs.entry(task.id).or_default().push(task.attempt);
                                log.unacked.insert(task.id, report.clone());
                            }
                            duplicate
                        };
                        if duplicate {
                            true
                        } else {
                            phones.raw_handled.fetch_add(1, Ordering::SeqCst);
                            agent
                                .try_send_text(frame(&AgentMessage::Accepted { task_id: task.id }))
                                .await
                                && agent
                                    .try_send_text(frame(&AgentMessage::Finished(report)))
                                    .await
                        }
                    }
                }
                Incoming::Message(ServerMessage::Error { code, message }) => {
                    lock(&log).errors.push((code, message));
                    true
                }
                // Cancels come too late for a task it finishes at once;
                // settings and pauses change nothing here.
                Incoming::Message(_) => true,
            };
            if !ok {
                break;
            }
        }
        drop(agent);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..300))).await;
    }
}

// ----- in-process agents: killed and started again at random -----

/// One in-process agent: its credentials and journal outlive each run.
struct Slot {
    agent: TestAgent,
    spec: AgentSpec,
    /// Not running since then; started again at the time given.
    down_until: Option<Instant>,
}

impl Slot {
    fn start_again(&mut self, phones: &Phones) {
        let agent = TestAgent::start(
            self.agent.credentials.clone(),
            self.agent.state_dir.clone(),
            self.spec.clone(),
        );
        phones.add(agent.phone.clone());
        self.agent = agent;
        self.down_until = None;
    }
}

/// Kills an in-process agent or cuts a raw agent's connection every few
/// hundred milliseconds, and starts killed agents again after a moment, until
/// `stop`; then starts every agent that is down. Returns the agents and the
/// number of kills.
async fn disconnect_agents(
    mut slots: Vec<Slot>,
    cuts: Vec<Arc<Notify>>,
    phones: Arc<Phones>,
    mut stop: watch::Receiver<bool>,
) -> (Vec<Slot>, usize) {
    let mut rng = StdRng::from_entropy();
    let mut kills = 0;
    loop {
        let pause = Duration::from_millis(rng.gen_range(100..400));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => break,
        }
        let now = Instant::now();
        for slot in slots.iter_mut() {
            if slot.down_until.is_some_and(|t| t <= now) {
                slot.start_again(&phones);
            }
        }
        let pick = rng.gen_range(0..slots.len() + cuts.len());
        match slots.get_mut(pick) {
            Some(slot) if slot.down_until.is_none() => {
                slot.agent.handle.kill();
                slot.down_until = Some(now + Duration::from_millis(rng.gen_range(50..600)));
                kills += 1;
            }
            Some(_) => {}
            None => cuts[pick - slots.len()].notify_one(),
        }
    }
    for slot in slots.iter_mut() {
        if slot.down_until.is_some() {
            slot.start_again(&phones);
        }
    }
    (slots, kills)
}

// ----- the storage fault -----

/// A tmpfs mounted over a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts one over `dir`; `None` where this process may not mount.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Writes a file until the file system is full.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler file");
        let block = vec![7u8; 256 * 1024];
        while file.write_all(&block).is_ok() {}
        let small = vec![7u8; 4 * 1024];
        while file.write_all(&small).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// How the fault is made and taken away on this database.
enum Fault {
    /// The SQLite file's file system fills up.
    FullDisk(Tmpfs),
    /// The PostgreSQL database turns read-only and its connections are ended.
    ReadOnly { admin_url: String, name: String },
    /// No way to make one here (SQLite, and mounting is not permitted).
    Skipped(String),
}

impl Fault {
    async fn postgres(admin_url: &str, name: &str, read_only: bool) {
        let mut admin = PgConnection::connect(admin_url)
            .await
            .expect("connect to the PostgreSQL server as its admin");
        let set = if read_only {
            format!("ALTER DATABASE \"{name}\" SET default_transaction_read_only = on")
        } else {
            format!("ALTER DATABASE \"{name}\" RESET default_transaction_read_only")
        };
        sqlx::query(&set)
            .execute(&mut admin)
            .await
            .expect("alter the database");
        sqlx::query(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .execute(&mut admin)
        .await
        .expect("end the database's connections");
        admin.close().await.ok();
    }

    /// Injects the fault; returns what takes it away again (the filler file).
    async fn inject(&self) -> Option<PathBuf> {
        match self {
            Fault::FullDisk(tmpfs) => Some(tmpfs.fill()),
            Fault::ReadOnly { admin_url, name } => {
                Fault::postgres(admin_url, name, true).await;
                None
            }
            Fault::Skipped(_) => None,
        }
    }

    async fn remove(&self, filler: Option<PathBuf>) {
        match self {
            Fault::FullDisk(_) => {
                std::fs::remove_file(filler.expect("the filler")).expect("remove the filler");
            }
            Fault::ReadOnly { admin_url, name } => Fault::postgres(admin_url, name, false).await,
            Fault::Skipped(_) => {}
        }
    }
}

/// Injects the fault while tasks flow, submits single tasks meanwhile (each
/// retried after `Retry-After` until stored), holds it a moment after the
/// server noticed, removes it and waits until the server is ready again.
async fn storage_fault(
    fault: &Fault,
    http: &Http,
    ledger: &Arc<Mutex<Ledger>>,
    next: &AtomicUsize,
    account: i64,
) {
    if let Fault::Skipped(why) = fault {
        // Past the harness's capture: whoever runs the suite must see this.
        let _ = writeln!(std::io::stderr(), "chaos: SKIPPED the storage fault: {why}");
        return;
    }
    http.fault.store(true, Ordering::SeqCst);
    let filler = fault.inject().await;
    let mut probes: Vec<JoinHandle<()>> = Vec::new();
    let mut rng = StdRng::from_entropy();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut noticed_at = None;
    loop {
        // A single task of 32 KB every 100 ms: something to write.
        let n = next.fetch_add(1, Ordering::SeqCst) as u64;
        let mut task = plan_task(&mut rng, n, account);
        task["payload"]["padding"] = json!("p".repeat(32 * 1024));
        let (http2, ledger2) = (http.clone(), ledger.clone());
        probes.push(tokio::spawn(async move {
            submit(
                &http2,
                &ledger2,
                Submission::new(vec![(n, task)], false),
                None,
            )
            .await;
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let noticed = lock(ledger).answered_503 > 0 && !http.ready().await;
        match noticed_at {
            None if noticed => noticed_at = Some(Instant::now()),
            Some(at) if at.elapsed() >= Duration::from_millis(1_500) => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the storage fault was never noticed"
        );
    }
    fault.remove(filler).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http.ready().await {
        assert!(
            Instant::now() < deadline,
            "the server did not recover from the storage fault"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for probe in probes {
        probe.await.expect("a submission during the fault");
    }
    http.fault.store(false, Ordering::SeqCst);
}

// ----- the run -----

/// Waits until the phones have started `mark` tasks.
async fn wait_progress(phones: &Phones, mark: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while phones.progress() < mark {
        assert!(Instant::now() < deadline, "the run stalled before {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Tasks that have not ended (up to 500 per state).
async fn unfinished(api: &Api) -> usize {
    let mut count = 0;
    for state in [TaskState::Queued, TaskState::Dispatched, TaskState::Running] {
        count += api.tasks_in_state(state, 500).await.len();
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_loses_nothing_runs_nothing_twice_and_jams_no_queue() {
    let started = Instant::now();
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("chaos: seed {seed} (set {SEED_ENV} to repeat its plan)");
    let mut rng = StdRng::seed_from_u64(seed);

    let db = TestDb::create().await;
    let fault = match db.backend() {
        Backend::Sqlite => match Tmpfs::mount(db.dir(), "256m") {
            Some(tmpfs) => Fault::FullDisk(tmpfs),
            None => Fault::Skipped(format!(
                "cannot mount a tmpfs on {} (needs root; CI runs as root)",
                db.dir().display()
            )),
        },
        Backend::Postgres => {
            let admin_url = std::env::var(youmi_tests::db::DATABASE_URL_ENV).expect("admin URL");
            let name = db.url().rsplit('/').next().expect("a database name");
            let name = name.split('?').next().unwrap_or(name).to_owned();
            Fault::ReadOnly { admin_url, name }
        }
    };
    // The agents' journals stay off the file system that fills up.
    let agent_dirs = tempfile::tempdir().expect("a directory for the agents' journals");
    let (mut server, token) = ServerProcess::start(
        Path::new(SERVER_EXE),
        &db,
        &[("YOUMI_RETRY_DELAY_MS", "200")],
    )
    .await;
    let api = Api::new(server.url(), token.clone());
    let http = Http {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client"),
        base_url: server.url(),
        token,
        fault: Arc::new(AtomicBool::new(false)),
        answers: Arc::default(),
    };

    // 20 accounts: 17 phones driven by in-process agents, 3 raw agents.
    let phones = Arc::new(Phones::default());
    let spec = AgentSpec {
        step_latency: Duration::from_millis(10),
        failure_rate: 0.01,
        ..AgentSpec::default()
    };
    let mut accounts = Vec::new();
    let mut slots = Vec::new();
    for n in 0..IN_PROCESS {
        let account = api.create_account().await.id;
        let state_dir = agent_dirs.path().join(format!("agent-{n}"));
        std::fs::create_dir_all(&state_dir).expect("agent state dir");
        let agent = TestAgent::bind(&api, &server.url(), account, state_dir, spec.clone()).await;
        phones.add(agent.phone.clone());
        accounts.push(account);
        slots.push(Slot {
            agent,
            spec: spec.clone(),
            down_until: None,
        });
    }
    let (stop_tx, stop) = watch::channel(false);
    let (end_tx, end) = watch::channel(false);
    let ws_url = format!("{}/agent/v1/ws", server.url().replacen("http", "ws", 1));
    let mut raw_accounts = HashSet::new();
    let mut raw_logs = Vec::new();
    let mut cuts = Vec::new();
    let mut raw_agents = Vec::new();
    for _ in 0..RAW {
        let account = api.create_account().await.id;
        let bound = api.bind_raw(account).await;
        let log = Arc::new(Mutex::new(RawLog::default()));
        let cut = Arc::new(Notify::new());
        raw_agents.push(tokio::spawn(run_raw_agent(
            ws_url.clone(),
            bound.token,
            log.clone(),
            phones.clone(),
            cut.clone(),
            end.clone(),
        )));
        accounts.push(account);
        raw_accounts.insert(account);
        raw_logs.push(log);
        cuts.push(cut);
    }

    let chaos = tokio::spawn(disconnect_agents(slots, cuts, phones.clone(), stop.clone()));

    // Submission all through the run: a batch, then a few singles, keeping
    // pace with the phones; now and then one the edge must refuse.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let next_number = Arc::new(AtomicUsize::new(0));
    let submitter = {
        let (http, ledger, phones, next) = (
            http.clone(),
            ledger.clone(),
            phones.clone(),
            next_number.clone(),
        );
        let accounts = accounts.clone();
        let mut rng = StdRng::seed_from_u64(rng.gen());
        tokio::spawn(async move {
            let mut planned = 0;
            let mut edge = 0;
            let number = || next.fetch_add(1, Ordering::SeqCst) as u64;
            while planned < TASKS {
                while planned.saturating_sub(phones.progress()) >= BACKLOG {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let size = rng.gen_range(20..=150).min(TASKS - planned);
                let tasks: Vec<(u64, Value)> = (0..size)
                    .map(|_| {
                        let n = number();
                        let account = accounts[rng.gen_range(0..accounts.len())];
                        (n, plan_task(&mut rng, n, account))
                    })
                    .collect();
                planned += size;
                submit(&http, &ledger, Submission::new(tasks, true), None).await;
                for _ in 0..rng.gen_range(1..=4).min(TASKS - planned) {
                    let n = number();
                    let account = accounts[rng.gen_range(0..accounts.len())];
                    let task = plan_task(&mut rng, n, account);
                    planned += 1;
                    submit(
                        &http,
                        &ledger,
                        Submission::new(vec![(n, task)], false),
                        None,
                    )
                    .await;
                }
                // One refused at the edge every few rounds, alone or spoiling
                // a small batch: too large and too deep in turn.
                if rng.gen_bool(0.25) {
                    edge += 1;
                    let account = accounts[rng.gen_range(0..accounts.len())];
                    let n = number();
                    let (bad, status, code) = bad_task(n, account, edge % 2 == 0);
                    let batch = edge % 4 >= 2;
                    let mut tasks = Vec::new();
                    if batch {
                        for _ in 0..rng.gen_range(1..5) {
                            let good = number();
                            tasks.push((good, plan_task(&mut rng, good, account)));
                        }
                    }
                    tasks.insert(rng.gen_range(0..=tasks.len()), (n, bad));
                    submit(
                        &http,
                        &ledger,
                        Submission::new(tasks, batch),
                        Some((status, code)),
                    )
                    .await;
                }
            }
        })
    };

    // Canceller: a few acknowledged tasks at a time, now and then.
    let cancel_requested = Arc::new(Mutex::new(HashSet::<TaskId>::new()));
    let canceller = {
        let (http, ledger, asked) = (http.clone(), ledger.clone(), cancel_requested.clone());
        let mut stop = stop.clone();
        let mut rng = StdRng::seed_from_u64(rng.gen());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(rng.gen_range(200..800))) => {}
                    _ = stop.changed() => return,
                }
                let ids: Vec<TaskId> = {
                    let ledger = lock(&ledger);
                    let all: Vec<TaskId> = ledger.acknowledged.values().copied().collect();
                    if all.is_empty() {
                        continue;
                    }
                    (0..3).map(|_| all[rng.gen_range(0..all.len())]).collect()
                };
                lock(&asked).extend(&ids);
                let body = json!({ "task_ids": ids });
                let reply = http
                    .call(Method::POST, "/api/v1/tasks/cancel", Some(&body))
                    .await;
                if let Reply::Answered { status, body, .. } = reply {
                    // 5xx are judged by `Http::call`.
                    if status != StatusCode::OK && !status.is_server_error() {
                        lock(&ledger)
                            .problems
                            .push(format!("a cancel of {ids:?} answered {status}: {body}"));
                    }
                }
            }
        })
    };

    // The server: killed at a fifth and at seven tenths of the run, the
    // storage fault in between.
    let mut kills = 0;
    for (mark, event) in [
        (TASKS / 5, "kill"),
        (TASKS * 9 / 20, "fault"),
        (TASKS * 7 / 10, "kill"),
    ] {
        wait_progress(&phones, mark, event).await;
        if event == "kill" {
            server.kill9();
            kills += 1;
            tokio::time::sleep(Duration::from_millis(rng.gen_range(50..500))).await;
            server.restart().await;
        } else {
            let account = accounts[0];
            storage_fault(&fault, &http, &ledger, &next_number, account).await;
        }
    }
    submitter.await.expect("the submitter");

    // Calm: every agent up again, and every queue runs dry.
    stop_tx.send(true).expect("stop the chaos");
    canceller.await.expect("the canceller");
    let (slots, agent_kills) = chaos.await.expect("the agent killer");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = unfinished(&api).await;
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} tasks have not ended 120 s after the chaos stopped: a queue is stuck"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    end_tx.send(true).expect("stop the raw agents");
    for raw in raw_agents {
        raw.await.expect("a raw agent");
    }
    let raw_drops: usize = raw_logs.iter().map(|l| lock(l).drops).sum();
    for slot in &slots {
        assert!(
            slot.agent
                .handle
                .wait_connected(Duration::from_secs(10))
                .await,
            "every in-process agent is connected at the end"
        );
    }

    // Every stored task, by the submission number in its payload.
    let mut stored: HashMap<u64, Vec<TaskView>> = HashMap::new();
    for &account in &accounts {
        for view in api.account_tasks(account).await {
            let n = view.payload["chaos"]
                .as_u64()
                .unwrap_or_else(|| panic!("task {} has no submission number", view.id));
            stored.entry(n).or_default().push(view);
        }
    }
    let ledger = std::mem::take(&mut *lock(&ledger));
    let answers = std::mem::take(&mut *lock(&http.answers));
    let cancel_requested = std::mem::take(&mut *lock(&cancel_requested));
    let mut problems = ledger.problems.clone();
    problems.extend(answers.unexpected_5xx.iter().cloned());

    // Each submission became one task at most; each 201 exactly the task it named.
    for (n, views) in &stored {
        if views.len() > 1 {
            let ids: Vec<TaskId> = views.iter().map(|v| v.id).collect();
            problems.push(format!(
                "submission {n} became {} tasks: {ids:?}",
                views.len()
            ));
        }
        if ledger.refused_at_edge.contains(n) {
            problems.push(format!(
                "submission {n} was refused at the edge but stored as {}",
                views[0].id
            ));
        }
    }
    for (n, id) in &ledger.acknowledged {
        match stored.get(n) {
            Some(views) if views.iter().any(|v| v.id == *id) => {}
            other => problems.push(format!(
                "task {id} (submission {n}) was acknowledged with 201 but is stored as {:?}",
                other.map(|v| v.iter().map(|v| v.id).collect::<Vec<_>>())
            )),
        }
    }
    let mut in_doubt_stored = 0;
    for numbers in &ledger.in_doubt {
        let count = numbers.iter().filter(|n| stored.contains_key(n)).count();
        if count != 0 && count != numbers.len() {
            problems.push(format!(
                "a submission of {} tasks that got no answer was stored in part ({count})",
                numbers.len()
            ));
        }
        in_doubt_stored += count;
    }
    let known: HashSet<u64> = ledger
        .acknowledged
        .keys()
        .copied()
        .chain(ledger.in_doubt.iter().flatten().copied())
        .collect();
    for n in stored.keys() {
        if !known.contains(n) {
            problems.push(format!(
                "submission {n} is stored but was never acknowledged"
            ));
        }
    }

    // What the phones and the raw agents did.
    let mut sent: HashMap<TaskId, usize> = HashMap::new();
    let mut starts: HashMap<TaskId, u32> = HashMap::new();
    for phone in lock(&phones.phones).iter() {
        for record in phone.sent() {
            *sent.entry(record.task_id).or_default() += 1;
        }
        for event in phone.events() {
            if let PhoneEvent::TaskStarted(id) = event {
                *starts.entry(id).or_default() += 1;
            }
        }
    }
    let mut raw_runs: HashMap<TaskId, usize> = HashMap::new();
    let mut raw_refused: HashSet<TaskId> = HashSet::new();
    for log in &raw_logs {
        let log = lock(log);
        for (id, attempts) in &log.runs {
            *raw_runs.entry(*id).or_default() += attempts.len();
        }
        raw_refused.extend(log.refused.keys());
        // It only ever speaks of tasks it was given: an error is one only
        // where a cancel ended the task as its answer crossed it.
        for (code, message) in &log.errors {
            let cancelled = message
                .split(' ')
                .filter_map(|word| word.parse::<TaskId>().ok())
                .any(|id| cancel_requested.contains(&id));
            if !(code == "not_your_task" && cancelled) {
                problems.push(format!("a raw agent was sent error {code}: {message}"));
            }
        }
    }
    let twice: Vec<TaskId> = sent
        .iter()
        .chain(raw_runs.iter())
        .filter(|(_, &count)| count > 1)
        .map(|(&id, _)| id)
        .collect();
    if !twice.is_empty() {
        problems.push(format!("tasks that ran twice: {twice:?}"));
    }

    // Every task ended, once, in a way that fits what its phone did.
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_error: BTreeMap<String, usize> = BTreeMap::new();
    let mut cancelled_after_running = 0;
    for view in stored.values().flatten() {
        *by_state.entry(view.state.to_string()).or_default() += 1;
        let code = view.error.as_ref().map(|e| e.code.as_str()).unwrap_or("");
        if view.state == TaskState::Failed {
            *by_error.entry(code.to_owned()).or_default() += 1;
        }
        let raw = raw_accounts.contains(&view.operator_account_id);
        let ran = if raw {
            raw_runs.get(&view.id).copied().unwrap_or(0)
        } else {
            sent.get(&view.id).copied().unwrap_or(0)
        };
        let started = starts.get(&view.id).copied().unwrap_or(0);
        if started > view.attempt {
            problems.push(format!(
                "task {} started {started} times on its phone in {} attempts",
                view.id, view.attempt
            ));
        }
        let fits = match view.state {
            TaskState::Succeeded => ran == 1,
            TaskState::Failed if raw => {
                code == refusal_code::UNKNOWN_KIND
                    && raw_refused.contains(&view.id)
                    && UNKNOWN_TO_RAW.contains(&view.kind)
                    && ran == 0
            }
            // Killed while it ran: it may have been sent; it is not run again.
            TaskState::Failed if code == "interrupted" => ran <= 1,
            // Three attempts failed on the phone.
            TaskState::Failed if code == "simulated_failure" => ran == 0,
            TaskState::Cancelled => {
                // A cancel of a task not yet accepted takes effect at once,
                // even if the phone was already about to run it.
                if ran > 0 {
                    cancelled_after_running += 1;
                }
                cancel_requested.contains(&view.id) && ran <= 1
            }
            _ => false,
        };
        if !fits {
            problems.push(format!(
                "task {} ({}, {} account) ended {} {:?} after {} attempt(s), ran {ran} time(s), \
                 {started} start(s), cancel asked: {}",
                view.id,
                view.kind,
                if raw { "raw" } else { "in-process" },
                view.state,
                view.error,
                view.attempt,
                cancel_requested.contains(&view.id)
            ));
        }
    }
    // Every refusal ended its task with the agent's code.
    let by_id: HashMap<TaskId, &TaskView> = stored.values().flatten().map(|v| (v.id, v)).collect();
    for id in &raw_refused {
        match by_id.get(id) {
            Some(view) if view.state == TaskState::Failed || view.state == TaskState::Cancelled => {
            }
            other => problems.push(format!(
                "task {id} refused by a raw agent ended {:?}",
                other.map(|v| (v.state, v.error.clone()))
            )),
        }
    }
    let fault_skipped = matches!(fault, Fault::Skipped(_));
    if !fault_skipped && ledger.answered_503 == 0 {
        problems.push("the storage fault got no 503".to_owned());
    }
    if ledger.edge_answers.values().sum::<usize>() == 0 {
        problems.push("no submission was refused at the edge".to_owned());
    }

    let tasks = stored.values().map(Vec::len).sum::<usize>();
    let count = |state: &str| by_state.get(state).copied().unwrap_or(0);
    let errors: Vec<String> = by_error.iter().map(|(c, n)| format!("{n} {c}")).collect();
    let line = format!(
        "chaos: {tasks} tasks on {:?}, {} succeeded, {} failed ({}), {} cancelled \
         ({cancelled_after_running} after their phone ran them), {} ran twice, {kills} server \
         kills, {agent_kills} agent kills, {raw_drops} raw agent drops, {} answers 503{}, \
         {} refused at the edge ({} tasks), {} submissions in doubt ({in_doubt_stored} \
         stored), {} cancel requests, {:.0} s, seed {seed}",
        db.backend(),
        count("succeeded"),
        count("failed"),
        errors.join(", "),
        count("cancelled"),
        twice.len(),
        ledger.answered_503,
        if fault_skipped {
            " (storage fault skipped)"
        } else {
            ""
        },
        ledger.edge_answers.values().sum::<usize>(),
        ledger.refused_at_edge.len(),
        ledger.in_doubt.len(),
        cancel_requested.len(),
        started.elapsed().as_secs_f64(),
    );
    let _ = writeln!(std::io::stderr(), "{line}");
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}\n{line}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(tasks, ledger.acknowledged.len() + in_doubt_stored);
    server.kill9();
}
