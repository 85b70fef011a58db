//! The command line: one subcommand per scenario, and the hidden commands the
//! scenarios start as child processes.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::scenarios::devices_page::DevicesPageArgs;
use crate::scenarios::dispatch::DispatchArgs;
use crate::scenarios::fanout::FanoutArgs;
use crate::scenarios::idle::IdleArgs;
use crate::server_child::ServerChildArgs;

/// The command line of `youmi-bench`.
#[derive(Debug, Parser)]
#[command(
    name = "youmi-bench",
    version,
    about = "Benchmarks of the Youmi scheduler against a real youmi-server",
    long_about = "Benchmarks of the Youmi scheduler. Each run starts a real youmi-server in a \
        child process on a fresh database (a temporary SQLite file, or a new PostgreSQL \
        database with --database), binds simulated agents through the API, drives them over \
        loopback WebSockets, shows progress on stderr, and prints a summary followed by one \
        line of JSON with the figures.\n\nThe defaults are small, for a quick look; the \
        issue's figures use `dispatch --agents 1000 --tasks 100000 --latency-probe`, \
        `idle --agents 15000` and `fanout --agents 1000 --tasks 100000`. See \
        docs/benchmarks.md."
)]
pub struct Cli {
    /// The scenario.
    #[command(subcommand)]
    pub command: Command,
}

/// Scenarios, and the hidden child-process commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tasks per second through the whole cycle (submit, assign, accepted,
    /// finished, stored, ack), against a bare WebSocket endpoint's rate, and
    /// with --latency-probe the submit-to-assign latency.
    Dispatch(DispatchArgs),
    /// Server memory per idle agent connection.
    Idle(IdleArgs),
    /// One mass-send batch in one API call: submit time, first assign, drain.
    Fanout(FanoutArgs),
    /// Server time of the console's devices page at 5,000 devices, against
    /// the API's JSON device list.
    DevicesPage(DevicesPageArgs),
    /// A youmi-server for a scenario (started by the scenarios themselves).
    #[command(name = "__server", hide = true)]
    Server(ServerChildArgs),
    /// The bare WebSocket endpoint of `dispatch` (started by it).
    #[command(name = "__raw-server", hide = true)]
    RawServer,
}

/// Runs `youmi-bench` with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let child = matches!(cli.command, Command::Server(_) | Command::RawServer);
    // A child logs to its log file as the server does by default; the parent
    // draws progress bars, so only warnings may interrupt them.
    if let Err(error) = init_tracing(if child { "info" } else { "warn" }) {
        eprintln!("error: {error:#}");
        return ExitCode::from(2);
    }
    if let Err(error) = crate::limits::raise_open_files() {
        eprintln!("warning: {error:#}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        let report = match cli.command {
            Command::Dispatch(args) => crate::scenarios::dispatch::run(args).await?,
            Command::Idle(args) => crate::scenarios::idle::run(args).await?,
            Command::Fanout(args) => crate::scenarios::fanout::run(args).await?,
            Command::DevicesPage(args) => crate::scenarios::devices_page::run(args).await?,
            Command::Server(args) => return crate::server_child::run(args).await,
            Command::RawServer => return crate::raw::run().await,
        };
        report.print();
        Ok::<_, anyhow::Error>(())
    });
    // Agents' tasks may still be closing; they need not finish.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `default_level`).
fn init_tracing(default_level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(&directives).context("RUST_LOG is not a valid log filter")?
        }
        _ => EnvFilter::new(default_level),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|error| anyhow::anyhow!("cannot set up logging: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_defaults_are_small() {
        let cli = Cli::try_parse_from(["youmi-bench", "dispatch"]).unwrap();
        let Command::Dispatch(args) = cli.command else {
            panic!("not dispatch");
        };
        assert_eq!((args.agents, args.tasks), (100, 10_000));
        assert!(!args.latency_probe);
        assert!(Cli::try_parse_from(["youmi-bench", "nonsense"]).is_err());
    }
}
