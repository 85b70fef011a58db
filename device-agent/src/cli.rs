//! The `youmi-agent` command line: `bind` a phone once, then `run` it.
//!
//! Every flag can also be set through a `YOUMI_AGENT_...` environment
//! variable; `youmi-agent --help` lists them. The state directory (credentials
//! and journal) defaults to `$YOUMI_AGENT_STATE_DIR` or `./youmi-agent-state`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;
use youmi_protocol::DeviceInfo;

use crate::{
    bind, qr, Agent, AgentOptions, Credentials, Executor, SimulatedPhone, SimulatedPhoneConfig,
    AGENT_VERSION,
};

/// The Youmi device agent: binds a phone to an operator account and runs the
/// tasks the Youmi server assigns to it.
#[derive(Debug, Parser)]
#[command(name = "youmi-agent", version, about, long_about = None)]
struct Cli {
    /// Write logs as JSON lines (for log collectors) instead of text.
    #[arg(long, global = true, env = "YOUMI_AGENT_LOG_JSON")]
    log_json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bind this phone with a one-time bind code and store the device token.
    Bind(BindArgs),
    /// Connect to the server and run the tasks it assigns, until Ctrl-C or SIGTERM.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct StateArgs {
    /// Where the credentials and the task journal live (one directory per phone).
    #[arg(
        long,
        env = "YOUMI_AGENT_STATE_DIR",
        default_value = "./youmi-agent-state"
    )]
    state_dir: PathBuf,
}

/// The phone as the server's device list shows it.
#[derive(Debug, Args)]
struct DeviceArgs {
    /// The phone's serial number (a name, for the simulator).
    #[arg(long, env = "YOUMI_AGENT_SERIAL", default_value = "simulated-phone")]
    serial: String,
    /// The phone's model.
    #[arg(long, env = "YOUMI_AGENT_MODEL", default_value = "SimulatedPhone")]
    model: String,
    /// The phone's Android version.
    #[arg(long, env = "YOUMI_AGENT_ANDROID_VERSION", default_value = "14")]
    android_version: String,
}

impl DeviceArgs {
    fn to_device(&self) -> DeviceInfo {
        DeviceInfo {
            serial: self.serial.clone(),
            model: self.model.clone(),
            android_version: self.android_version.clone(),
            agent_version: AGENT_VERSION.to_owned(),
        }
    }
}

#[derive(Debug, Args)]
struct BindArgs {
    /// The server's address, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "YOUMI_AGENT_SERVER", required_unless_present = "qr")]
    server: Option<String>,
    /// The bind code an admin created for the operator account.
    #[arg(
        long,
        env = "YOUMI_AGENT_CODE",
        hide_env_values = true,
        required_unless_present = "qr"
    )]
    code: Option<String>,
    /// Instead of --server and --code: an image of the bind QR code (the
    /// server's PNG, a screenshot, or a photo of a screen showing it). Cannot
    /// be combined with --server or --code, nor with their variables set.
    #[arg(
        long,
        value_name = "FILE",
        env = "YOUMI_AGENT_QR",
        conflicts_with_all = ["server", "code"]
    )]
    qr: Option<PathBuf>,
    #[command(flatten)]
    state: StateArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

/// The executors this build can drive a phone with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExecutorKind {
    /// A simulated phone (see the --sim-* flags).
    Simulated,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    state: StateArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// What drives the phone.
    #[arg(long, value_enum, env = "YOUMI_AGENT_EXECUTOR", default_value_t = ExecutorKind::Simulated)]
    executor: ExecutorKind,
    /// Seconds between heartbeats.
    #[arg(
        long,
        env = "YOUMI_AGENT_HEARTBEAT_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    heartbeat_secs: u64,
    #[command(flatten)]
    sim: SimArgs,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// Simulator: milliseconds each step of a task takes.
    #[arg(long, env = "YOUMI_AGENT_SIM_STEP_MS", default_value_t = 200)]
    sim_step_ms: u64,
    /// Simulator: chance from 0 to 1 that a step fails (retryable).
    #[arg(long, env = "YOUMI_AGENT_SIM_FAILURE_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    sim_failure_rate: f64,
    /// Simulator: seed for the failures (random when not given).
    #[arg(long, env = "YOUMI_AGENT_SIM_SEED")]
    sim_seed: Option<u64>,
    /// Simulator: append each task it "sends" to this file, one JSON line each.
    #[arg(long, env = "YOUMI_AGENT_SIM_RECORD")]
    sim_record: Option<PathBuf>,
}

fn parse_rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("must be between 0 and 1, not {value}"))
    }
}

/// Parses the command line, sets up logging and a tokio runtime, and runs the
/// command. Errors are printed to stderr and give a non-zero exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("youmi-agent: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Bind(args) => run_bind(args).await,
            Command::Run(args) => run_agent(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("youmi-agent: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, so that stdout carries only what `bind` prints.
fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run_bind(args: BindArgs) -> Result<ExitCode> {
    let dir = &args.state.state_dir;
    let path = Credentials::path(dir);
    if path.exists() {
        warn!(path = %path.display(), "replacing the credentials of an earlier bind");
    }
    let (server, code) = match (&args.qr, args.server, args.code) {
        (Some(image), _, _) => {
            let qr = qr::read_file(image)
                .with_context(|| format!("cannot take a bind code from {}", image.display()))?;
            info!(server = %qr.server, "read the bind qr code");
            (qr.server, qr.code)
        }
        (None, Some(server), Some(code)) => (server, code),
        // clap requires both without --qr; this only keeps the match total.
        (None, _, _) => anyhow::bail!("give --server and --code, or --qr"),
    };
    let credentials = bind(&server, &code, args.device.to_device())
        .await
        .context("cannot bind this phone")?;
    credentials
        .save(dir)
        .context("bound, but the credentials could not be saved; bind again with a new code")?;
    // Never print the token: the file holds it.
    println!("device_id: {}", credentials.device_id);
    println!("operator_account_id: {}", credentials.operator_account_id);
    println!("credentials: {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// The one place that decides what drives the phone.
fn build_executor(args: &RunArgs) -> Arc<dyn Executor> {
    match args.executor {
        ExecutorKind::Simulated => {
            let seed = args.sim.sim_seed.unwrap_or_else(rand::random);
            info!(
                step_ms = args.sim.sim_step_ms,
                failure_rate = args.sim.sim_failure_rate,
                seed,
                "running with a simulated phone"
            );
            Arc::new(SimulatedPhone::new(SimulatedPhoneConfig {
                step_latency: Duration::from_millis(args.sim.sim_step_ms),
                failure_rate: args.sim.sim_failure_rate,
                seed,
                record_file: args.sim.sim_record.clone(),
            }))
        }
    }
}

async fn run_agent(args: RunArgs) -> Result<ExitCode> {
    let dir = args.state.state_dir.clone();
    let credentials = Credentials::load(&dir)?;
    info!(
        device_id = %credentials.device_id,
        operator_account_id = credentials.operator_account_id,
        server = %credentials.server_url,
        "starting"
    );
    let executor = build_executor(&args);
    let mut options = AgentOptions::new(dir, args.device.to_device());
    options.heartbeat_interval = Duration::from_secs(args.heartbeat_secs);
    let handle = Agent::spawn(credentials, options, executor).context("cannot start the agent")?;

    tokio::select! {
        signal = shutdown_signal() => {
            signal?;
            info!("stopping: a running task finishes first (signal again to stop at once)");
            tokio::select! {
                () = handle.clone().shutdown() => {
                    info!("stopped");
                    Ok(ExitCode::SUCCESS)
                }
                signal = shutdown_signal() => {
                    signal?;
                    warn!("stopping at once; a task that was running is reported as interrupted next time");
                    handle.kill();
                    Ok(ExitCode::from(130))
                }
            }
        }
        halted = handle.wait_halted() => {
            handle.shutdown().await;
            match halted {
                Some(reason) => Err(anyhow::anyhow!(reason)),
                None => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one.
async fn shutdown_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C"),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_documented_flags() {
        let cli = Cli::try_parse_from([
            "youmi-agent",
            "run",
            "--state-dir",
            "/tmp/x",
            "--sim-step-ms",
            "50",
            "--sim-failure-rate",
            "0.25",
            "--sim-seed",
            "9",
            "--sim-record",
            "/tmp/sent.jsonl",
            "--heartbeat-secs",
            "5",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(args.state.state_dir, PathBuf::from("/tmp/x"));
        assert_eq!(args.sim.sim_step_ms, 50);
        assert_eq!(args.sim.sim_failure_rate, 0.25);
        assert_eq!(args.sim.sim_seed, Some(9));
        assert_eq!(args.heartbeat_secs, 5);
        assert_eq!(args.executor, ExecutorKind::Simulated);
    }

    #[test]
    fn bad_flag_values_are_refused_with_a_reason() {
        let error = Cli::try_parse_from(["youmi-agent", "run", "--sim-failure-rate", "1.5"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("between 0 and 1"), "{error}");
        let error = Cli::try_parse_from(["youmi-agent", "run", "--heartbeat-secs", "0"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("heartbeat-secs"), "{error}");
        let error = Cli::try_parse_from(["youmi-agent", "bind", "--server", "http://x"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--code"), "{error}");
    }
}
