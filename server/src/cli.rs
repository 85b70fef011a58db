//! The command line: parse it, set up logging, run the chosen command on a
//! multi-thread runtime, turn the outcome into an exit code.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Command};
use crate::Server;

/// Runs `youmi-server` with the process's arguments and environment.
pub fn main() -> ExitCode {
    crate::tune_allocator();
    let cli = Cli::parse();
    if let Err(error) = init_tracing(&cli.config.log_format, "info") {
        eprintln!("error: {error:#}");
        return ExitCode::from(2);
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
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => {
                let server = Server::start(cli.config).await?;
                server.run_until_stopped().await
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                "youmi-server stopped on an error"
            );
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stdout, filtered by `RUST_LOG` (default `default_level`), as text or JSON.
fn init_tracing(format: &str, default_level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(&directives).context("RUST_LOG is not a valid log filter")?
        }
        _ => EnvFilter::new(default_level),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        "text" => builder.try_init(),
        "json" => builder.json().try_init(),
        other => anyhow::bail!("unknown log format `{other}`: use text or json"),
    }
    .map_err(|error| anyhow::anyhow!("cannot set up logging: {error}"))
}
