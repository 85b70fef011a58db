//! `idle`: agents bind, connect, say hello and send a heartbeat, then sit
//! idle. The server's resident memory is read before they connect (after they
//! were bound) and once they all are; the growth divided by the connections
//! is `rss_bytes_per_connection`.

use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::{CommonArgs, Harness};
use crate::report::{round, Report};

/// Options of `youmi-bench idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Simulated agents to connect. The figure uses 15000 (the
    /// open-file limit is 20,000 per process here).
    #[arg(long, default_value_t = 1_000)]
    pub agents: usize,

    /// Seconds to wait, before each memory reading, for the server to settle.
    #[arg(long, default_value_t = 2)]
    pub settle_secs: u64,

    /// Options every scenario takes.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs the scenario.
pub async fn run(args: IdleArgs) -> anyhow::Result<Report> {
    args.common.check()?;
    if args.agents == 0 {
        bail!("--agents must be at least 1");
    }
    let mut harness = Harness::start(&args.common).await?;
    let outcome = measure(&mut harness, &args).await;
    harness.finish(outcome).await
}

async fn measure(harness: &mut Harness, args: &IdleArgs) -> anyhow::Result<Report> {
    let agents = harness
        .bind_agents(args.agents, args.common.bind_concurrency)
        .await?;
    let settle = Duration::from_secs(args.settle_secs);
    tokio::time::sleep(settle).await;
    let before = harness.server.rss_bytes()?;
    let mut fleet = harness
        .connect(&agents, args.common.connect_concurrency)
        .await?;
    tokio::time::sleep(settle).await;
    let after = harness.server.rss_bytes()?;
    fleet.check()?;
    harness.server.check()?;
    // Read after the memory: the device list itself takes memory.
    let online = harness.api.online_devices().await?;
    fleet.shutdown().await;
    if online != args.agents {
        bail!(
            "{} agents were welcomed but the server counts {online} online",
            args.agents
        );
    }
    let growth = after.saturating_sub(before);
    let per_connection = growth as f64 / args.agents as f64;

    let mut report = Report::new("idle", harness.database_kind());
    report.set("agents", args.agents);
    report.set("connections", args.agents);
    report.set("server_rss_bytes", after);
    report.set("server_rss_before_bytes", before);
    report.set("rss_bytes_per_connection", round(per_connection, 0));
    report.line(format!(
        "idle on {}: {} agents connected, said hello and a heartbeat",
        harness.database_kind(),
        args.agents
    ));
    report.line(format!(
        "  server RSS {:.1} MiB before connecting, {:.1} MiB after: {:.2} KiB per connection",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per_connection / 1024.0
    ));
    Ok(report)
}
