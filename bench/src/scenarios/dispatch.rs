//! `dispatch`: agents bind and connect, tasks go in through the batch API, and
//! every one goes round the whole cycle: submit, assign, accepted, finished,
//! stored, ack. `tasks_per_s` counts from the first submission to the last
//! ack. In the same run, the same harness plays the same four frames per task
//! against the bare endpoint of [`crate::raw`] over as many connections:
//! `raw_exchanges_per_s`, and `ratio` is the first over the second. With
//! `--latency-probe`, single tasks then go one at a time to idle agents and
//! the time from submit to the agent's receipt of `assign` gives p50 and p99.

use std::ffi::OsString;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{progress, seconds, CommonArgs, Harness};
use crate::agents::{AgentEvent, AgentSpec, Fleet};
use crate::api::{chat_task, BoundAgent};
use crate::child::ChildProcess;
use crate::raw::{Plan, START_PATH, WS_PATH};
use crate::report::{percentile, round, Report};

/// How long one latency probe may take, from submit to ack.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `youmi-bench dispatch`.
#[derive(Debug, Clone, Args)]
pub struct DispatchArgs {
    /// Simulated agents (one operator account each). The figure uses
    /// 1000.
    #[arg(long, default_value_t = 100)]
    pub agents: usize,

    /// Tasks to run, spread evenly over the accounts. The figure uses
    /// 100000.
    #[arg(long, default_value_t = 10_000)]
    pub tasks: usize,

    /// Tasks per call of the batch API.
    #[arg(long, default_value_t = 1_000)]
    pub batch_size: usize,

    /// Batch calls in flight at once, as several clients (workbenches,
    /// scripts) submit side by side; 1 submits one batch after another.
    #[arg(long, default_value_t = 4)]
    pub submitters: usize,

    /// After the throughput run, measure submit-to-assign latency: single
    /// tasks through `POST /api/v1/tasks`, one at a time, to idle agents.
    #[arg(long)]
    pub latency_probe: bool,

    /// How many single tasks the latency probe submits.
    #[arg(long, default_value_t = 1_000)]
    pub probes: usize,

    /// Options every scenario takes.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs the scenario.
pub async fn run(args: DispatchArgs) -> anyhow::Result<Report> {
    args.common.check()?;
    if args.agents == 0 || args.tasks == 0 || args.batch_size == 0 || args.submitters == 0 {
        bail!("--agents, --tasks, --batch-size and --submitters must be at least 1");
    }
    if args.latency_probe && args.probes == 0 {
        bail!("--probes must be at least 1 with --latency-probe");
    }
    let raw_rate = raw_exchanges(&args).await?;
    let mut harness = Harness::start(&args.common).await?;
    let outcome = measure(&mut harness, &args).await;
    let mut report = harness.finish(outcome).await?;
    let tasks_per_s = report.json["tasks_per_s"].as_f64().unwrap_or(0.0);
    let ratio = tasks_per_s / raw_rate;
    report.set("raw_exchanges_per_s", round(raw_rate, 1));
    report.set("ratio", round(ratio, 3));
    report.line(format!(
        "bare endpoint: {raw_rate:.0} exchanges/s over {} connections; ratio {ratio:.3}",
        args.agents
    ));
    Ok(report)
}

/// The bare endpoint's rate: the same harness, connections and task count.
async fn raw_exchanges(args: &DispatchArgs) -> anyhow::Result<f64> {
    let dir = tempfile::Builder::new()
        .prefix("youmi-bench-raw-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut raw = ChildProcess::spawn(
        "bare endpoint",
        vec![OsString::from("__raw-server")],
        Vec::new(),
        &dir.path().join("raw.log"),
        Duration::from_secs(30),
    )
    .await?;
    let addr = raw.addr();
    let outcome = async {
        let specs: Vec<AgentSpec> = (0..args.agents)
            .map(|index| AgentSpec {
                url: format!("ws://{addr}{WS_PATH}"),
                token: None,
                device: crate::api::bench_device(index),
            })
            .collect();
        let bar = progress(args.agents as u64, "connecting (bare)");
        let mut fleet = Fleet::connect(specs, args.common.connect_concurrency, &bar).await?;
        bar.finish();
        fleet.stats.expect_acks(args.tasks as u64);
        let bar = progress(args.tasks as u64, "exchanges (bare)");
        let started = Instant::now();
        let response = reqwest::Client::new()
            .post(format!("http://{addr}{START_PATH}"))
            .json(&Plan::spread(args.tasks as u64, args.agents as u64))
            .send()
            .await
            .context("cannot start the bare endpoint")?;
        if !response.status().is_success() {
            bail!("the bare endpoint answered {}", response.status());
        }
        let done = fleet
            .wait_done(&bar, args.common.timeout(), || raw.check())
            .await;
        bar.finish();
        fleet.shutdown().await;
        raw.check()?;
        Ok(args.tasks as f64 / seconds(started, done?))
    }
    .await;
    let stopped = raw.stop(Duration::from_secs(10)).await;
    let rate = outcome?;
    stopped?;
    Ok(rate)
}

async fn measure(harness: &mut Harness, args: &DispatchArgs) -> anyhow::Result<Report> {
    let agents = harness
        .bind_agents(args.agents, args.common.bind_concurrency)
        .await?;
    let mut fleet = harness
        .connect(&agents, args.common.connect_concurrency)
        .await?;

    // Every batch spreads over every account, as a real mixed load would.
    let tasks: Vec<_> = (0..args.tasks)
        .map(|index| chat_task(index, agents[index % agents.len()].operator_account_id))
        .collect();
    fleet.stats.expect_acks(args.tasks as u64);
    let bar = progress(args.tasks as u64, "tasks acked");
    let cpu_before = harness.server.cpu_seconds()?;
    let started = Instant::now();
    let api = harness.api.clone();
    let batch_size = args.batch_size;
    let submitters = args.submitters;
    let (submitted_tx, mut submitted) = oneshot::channel();
    let submitter = tokio::spawn(async move {
        let mut batches = Vec::new();
        let mut tasks = tasks;
        while !tasks.is_empty() {
            let rest = tasks.split_off(batch_size.min(tasks.len()));
            batches.push(std::mem::replace(&mut tasks, rest));
        }
        // Batches go out in order, `submitters` of them in flight at once.
        let outcome = futures_util::stream::iter(batches)
            .map(|batch| {
                let api = api.clone();
                async move { api.submit_batch(batch).await }
            })
            .buffered(submitters)
            .try_for_each(|_| async { Ok(()) })
            .await
            .map(|()| Instant::now());
        let _ = submitted_tx.send(outcome);
    });
    let mut submit_done = None;
    let server = &mut harness.server;
    let waited = fleet
        .wait_done(&bar, args.common.timeout(), || {
            server.check()?;
            if submit_done.is_none() {
                match submitted.try_recv() {
                    Ok(Ok(at)) => submit_done = Some(at),
                    Ok(Err(error)) => return Err(error.context("submitting the tasks failed")),
                    Err(oneshot::error::TryRecvError::Empty) => {}
                    Err(oneshot::error::TryRecvError::Closed) => {
                        bail!("the task submitter stopped without an answer")
                    }
                }
            }
            Ok(())
        })
        .await;
    bar.finish();
    let done = match waited {
        Ok(done) => done,
        Err(error) => {
            submitter.abort();
            return Err(error);
        }
    };
    let submit_done = match submit_done {
        Some(at) => at,
        None => submitted
            .await
            .map_err(|_| anyhow!("the task submitter stopped without an answer"))??,
    };
    let elapsed = seconds(started, done);
    let server_cpu = harness.server.cpu_seconds()? - cpu_before;
    let tasks_per_s = args.tasks as f64 / elapsed;
    let assigns = fleet.stats.assigns.load(Ordering::Relaxed);

    let mut report = Report::new("dispatch", harness.database_kind());
    report.set("agents", args.agents);
    report.set("tasks", args.tasks);
    report.set("batch_size", args.batch_size);
    report.set("submitters", args.submitters);
    report.set("tasks_per_s", round(tasks_per_s, 1));
    report.set("elapsed_s", round(elapsed, 3));
    report.set("submit_s", round(seconds(started, submit_done), 3));
    report.set("assigns", assigns);
    // CPU per task moves far less than tasks/s when the machine is shared.
    report.set("server_cpu_s", round(server_cpu, 3));
    report.set(
        "server_cpu_us_per_task",
        round(server_cpu * 1e6 / args.tasks as f64, 1),
    );
    report.line(format!(
        "dispatch on {}: {} tasks over {} agents in {elapsed:.2} s: {tasks_per_s:.0} tasks/s \
         (submitting took {:.2} s, {} assigns)",
        harness.database_kind(),
        args.tasks,
        args.agents,
        seconds(started, submit_done),
        assigns
    ));
    report.line(format!(
        "server cpu: {server_cpu:.2} s, {:.1} us per task",
        server_cpu * 1e6 / args.tasks as f64
    ));

    if args.latency_probe {
        let mut samples = probe(harness, &mut fleet, &agents, args.probes).await?;
        let p50 = percentile(&mut samples, 50.0).unwrap_or(f64::NAN);
        let p99 = percentile(&mut samples, 99.0).unwrap_or(f64::NAN);
        let max = percentile(&mut samples, 100.0).unwrap_or(f64::NAN);
        report.set("probes", samples.len());
        report.set("p50_ms", round(p50, 3));
        report.set("p99_ms", round(p99, 3));
        report.set("max_ms", round(max, 3));
        report.line(format!(
            "latency probe: {} single tasks, submit -> assign p50 {p50:.3} ms, p99 {p99:.3} ms, \
             max {max:.3} ms",
            samples.len()
        ));
    } else {
        report.set("p50_ms", serde_json::Value::Null);
        report.set("p99_ms", serde_json::Value::Null);
        report.line("latency probe: not run (pass --latency-probe)");
    }
    fleet.check()?;
    fleet.shutdown().await;
    Ok(report)
}

/// Submits `count` single tasks one after another, each to the next agent in
/// turn (idle, since the previous task was acked first), and returns the
/// milliseconds from the start of each submit to the agent's receipt of its
/// `assign`.
async fn probe(
    harness: &mut Harness,
    fleet: &mut Fleet,
    agents: &[BoundAgent],
    count: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut events = fleet.stats.start_probing();
    let bar = progress(count as u64, "latency probes");
    let mut samples = Vec::with_capacity(count);
    for index in 0..count {
        let agent = &agents[index % agents.len()];
        let task = chat_task(index, agent.operator_account_id);
        let submitted = Instant::now();
        let id = harness.api.submit(&task).await?;
        let outcome = tokio::time::timeout(PROBE_TIMEOUT, async {
            let mut assigned: Option<Instant> = None;
            while let Some(event) = events.recv().await {
                match event {
                    AgentEvent::Assigned(task_id, at) if task_id == id => assigned = Some(at),
                    AgentEvent::Acked(task_id) if task_id == id => return Ok(assigned),
                    _ => {}
                }
            }
            Err(anyhow!("the agents stopped reporting"))
        })
        .await;
        let assigned = match outcome {
            Ok(Ok(Some(at))) => at,
            Ok(Ok(None)) => bail!("task {id} was acked without an assign"),
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                fleet.check()?;
                harness.server.check()?;
                bail!(
                    "probe task {id} was not acked within {} s",
                    PROBE_TIMEOUT.as_secs()
                )
            }
        };
        samples.push(assigned.saturating_duration_since(submitted).as_secs_f64() * 1e3);
        bar.inc(1);
    }
    bar.finish();
    Ok(samples)
}
