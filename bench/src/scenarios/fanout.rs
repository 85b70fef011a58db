//! `fanout`: one mass-send-shaped batch (the same message to many customers,
//! one task per customer, spread over every account) submitted in a single
//! API call while the agents wait. `submit_ms` is that call's time,
//! `first_assign_ms` the time from its start to the first `assign` an agent
//! receives, `drain_s` the time from its start to the last `ack`.

use std::sync::atomic::Ordering;

use anyhow::{anyhow, bail};
use clap::Args;
use tokio::time::Instant;

use super::{progress, seconds, CommonArgs, Harness};
use crate::api::mass_send_task;
use crate::report::{round, Report};

/// Options of `youmi-bench fanout`.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Simulated agents (one operator account each). The figure uses
    /// 1000.
    #[arg(long, default_value_t = 100)]
    pub agents: usize,

    /// Tasks in the one batch, spread evenly over the accounts. The issue's
    /// figure uses 100000 (the batch API's maximum).
    #[arg(long, default_value_t = 10_000)]
    pub tasks: usize,

    /// Options every scenario takes.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs the scenario.
pub async fn run(args: FanoutArgs) -> anyhow::Result<Report> {
    args.common.check()?;
    if args.agents == 0 || args.tasks == 0 {
        bail!("--agents and --tasks must be at least 1");
    }
    let mut harness = Harness::start(&args.common).await?;
    let outcome = measure(&mut harness, &args).await;
    harness.finish(outcome).await
}

async fn measure(harness: &mut Harness, args: &FanoutArgs) -> anyhow::Result<Report> {
    let agents = harness
        .bind_agents(args.agents, args.common.bind_concurrency)
        .await?;
    let mut fleet = harness
        .connect(&agents, args.common.connect_concurrency)
        .await?;

    let tasks: Vec<_> = (0..args.tasks)
        .map(|index| mass_send_task(index, agents[index % agents.len()].operator_account_id))
        .collect();
    fleet.stats.expect_acks(args.tasks as u64);
    let bar = progress(args.tasks as u64, "tasks acked");
    let started = Instant::now();
    let api = harness.api.clone();
    let submitter = tokio::spawn(async move {
        let ids = api.submit_batch(tasks).await?;
        Ok::<_, anyhow::Error>((Instant::now(), ids.len()))
    });
    let server = &mut harness.server;
    let waited = fleet
        .wait_done(&bar, args.common.timeout(), || server.check())
        .await;
    bar.finish();
    let done = match waited {
        Ok(done) => done,
        Err(error) => {
            submitter.abort();
            return Err(error);
        }
    };
    let (submitted, count) = submitter
        .await
        .map_err(|error| anyhow!("the submitting task failed: {error}"))??;
    let first_assign = fleet
        .stats
        .first_assign()
        .ok_or_else(|| anyhow!("every task was acked but no assign was seen"))?;
    let submit_ms = seconds(started, submitted) * 1e3;
    let first_assign_ms = seconds(started, first_assign) * 1e3;
    let drain_s = seconds(started, done);
    let assigns = fleet.stats.assigns.load(Ordering::Relaxed);
    fleet.check()?;
    fleet.shutdown().await;

    let mut report = Report::new("fanout", harness.database_kind());
    report.set("agents", args.agents);
    report.set("tasks", count);
    report.set("submit_ms", round(submit_ms, 1));
    report.set("first_assign_ms", round(first_assign_ms, 1));
    report.set("drain_s", round(drain_s, 3));
    report.set("tasks_per_s", round(args.tasks as f64 / drain_s, 1));
    report.set("assigns", assigns);
    report.line(format!(
        "fanout on {}: one batch of {count} tasks over {} accounts",
        harness.database_kind(),
        args.agents
    ));
    report.line(format!(
        "  submit {submit_ms:.0} ms, first assign after {first_assign_ms:.0} ms, \
         drained in {drain_s:.2} s ({:.0} tasks/s, {assigns} assigns)",
        args.tasks as f64 / drain_s
    ));
    Ok(report)
}
