//! The `youmi-agent` command line: `bind` a phone once, then `run` it; or
//! bind many phones into a fleet directory and drive them all with `fleet`.
//!
//! Every flag can also be set through a `YOUMI_AGENT_...` environment
//! variable; `youmi-agent --help` lists them. The state directory (credentials
//! and journal) defaults to `$YOUMI_AGENT_STATE_DIR` or `./youmi-agent-state`.

use std::io::IsTerminal;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::sync::watch;
use tracing::{error, info, warn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use youmi_protocol::DeviceInfo;

use crate::adb::{AdbConfig, AdbPhone, DEFAULT_SERVER};
use crate::fleet::{self, FleetOptions, PhoneAgent, PhoneAgentConfig};
use crate::logs::{self, FileLayer, LogLimits};
use crate::phone::Phone;
use crate::{
    bind, fsutil, qr, Agent, AgentHandle, AgentOptions, Credentials, Executor, SimulatedPhone,
    SimulatedPhoneConfig, AGENT_VERSION,
};

/// The Youmi device agent: binds a phone to an operator account and runs the
/// tasks the Youmi server assigns to it.
#[derive(Debug, Parser)]
#[command(name = "youmi-agent", version, about, long_about = None)]
struct Cli {
    /// Write logs as JSON lines (for log collectors) instead of text.
    #[arg(long, global = true, env = "YOUMI_AGENT_LOG_JSON")]
    log_json: bool,

    /// `run` and `fleet` also write their log to `logs/agent.log` in the
    /// state directory (in fleet mode, each phone's to its own state
    /// directory), which `upload_logs` sends to the server: the file is
    /// rotated at this many bytes.
    #[arg(long, global = true, env = "YOUMI_AGENT_LOG_MAX_BYTES", default_value_t = LogLimits::default().max_bytes, value_parser = clap::value_parser!(u64).range(1024..))]
    log_max_bytes: u64,

    /// How many log files are kept in all (the current one and older ones).
    #[arg(long, global = true, env = "YOUMI_AGENT_LOG_FILES", default_value_t = LogLimits::default().keep, value_parser = parse_keep)]
    log_files: usize,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bind this phone with a one-time bind code and store the device token.
    Bind(BindArgs),
    /// Connect to the server and run the tasks it assigns, until Ctrl-C or SIGTERM.
    Run(RunArgs),
    /// Drive every phone an adb server lists (a USB hub of phones), each with
    /// its own session and state directory, until Ctrl-C or SIGTERM.
    Fleet(FleetArgs),
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

/// The serial of a simulated phone when none is given.
const SIMULATED_SERIAL: &str = "simulated-phone";

/// Which phone, and for the simulator how the server's device list shows it.
#[derive(Debug, Args)]
struct DeviceArgs {
    /// The phone's serial. With the adb executor and in fleet binds, the serial
    /// the adb server lists (`adb devices`); without it, the one phone listed.
    /// For the simulator, a name [default: simulated-phone].
    #[arg(long, env = "YOUMI_AGENT_SERIAL")]
    serial: Option<String>,
    /// The simulated phone's model (a real phone's is read from it).
    #[arg(long, env = "YOUMI_AGENT_MODEL", default_value = "SimulatedPhone")]
    model: String,
    /// The simulated phone's Android version (a real phone's is read from it).
    #[arg(long, env = "YOUMI_AGENT_ANDROID_VERSION", default_value = "14")]
    android_version: String,
}

impl DeviceArgs {
    /// The simulated phone's description.
    fn to_device(&self) -> DeviceInfo {
        DeviceInfo {
            serial: self
                .serial
                .clone()
                .unwrap_or_else(|| SIMULATED_SERIAL.to_owned()),
            model: self.model.clone(),
            android_version: self.android_version.clone(),
            agent_version: AGENT_VERSION.to_owned(),
        }
    }
}

/// How a real phone is reached.
#[derive(Debug, Args)]
struct AdbArgs {
    /// The adb server that reaches the phone (over USB, or after `adb
    /// connect`), as IPv4 HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", env = "YOUMI_AGENT_ADB_SERVER", default_value_t = DEFAULT_SERVER)]
    adb_server: SocketAddrV4,
    /// Instead of the adb server: the address of a phone whose adbd listens on
    /// TCP (after `adb tcpip 5555`), reached directly. The phone knows the
    /// agent by the RSA key `adbkey` in the state directory, created on first
    /// use: accept it on the phone. (Android 11+ pairing: `adb pair` and `adb
    /// connect` through the adb server, and use --serial HOST:PORT.)
    #[arg(long, value_name = "HOST:PORT", env = "YOUMI_AGENT_ADB_TCP")]
    adb_tcp: Option<SocketAddr>,
}

/// How patient the agent is with a real phone.
#[derive(Debug, Args)]
struct PhoneTimingArgs {
    /// Milliseconds a screen that cannot be read (uiautomator's "could not
    /// get idle state" while the screen animates) is read again, with growing
    /// pauses, before the task fails with `screen_unreadable` (retryable).
    #[arg(
        long,
        env = "YOUMI_AGENT_SCREEN_PATIENCE_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(0..=120_000)
    )]
    screen_patience_ms: u64,
}

impl PhoneTimingArgs {
    /// The ADB deadlines and timings: the defaults, with these flags' values.
    fn to_adb_config(&self) -> AdbConfig {
        AdbConfig {
            dump_patience: Duration::from_millis(self.screen_patience_ms),
            ..AdbConfig::default()
        }
    }
}

/// What tasks on a real phone run with.
#[derive(Debug, Args)]
struct FlowArgs {
    /// A directory of flow files (*.toml) merged over the built-in ones: a
    /// file there replaces the built-in file for the same WeCom versions, or
    /// adds versions (see docs/flows.md).
    #[arg(long, value_name = "DIR", env = "YOUMI_AGENT_FLOWS_DIR")]
    flows_dir: Option<PathBuf>,
    /// Where the media of message and Moments tasks are: one file per media
    /// id, named by the id.
    #[arg(long, value_name = "DIR", env = "YOUMI_AGENT_MEDIA_DIR")]
    media_dir: Option<PathBuf>,
    /// How long a task waits, touching nothing, while a phone call rings or
    /// is under way (with auto_hang_up on: until the call is hung up) before
    /// it fails with call_in_progress, which is retried. 5 minutes covers
    /// most calls without holding the queue for a long one.
    #[arg(
        long,
        value_name = "MS",
        env = "YOUMI_AGENT_CALL_WAIT_MS",
        default_value_t = 300_000,
        value_parser = clap::value_parser!(u64).range(0..=3_600_000)
    )]
    call_wait_ms: u64,
}

impl FlowArgs {
    /// The flows and media for a phone's agent, checked: a flows directory
    /// with a mistake, or a media directory that is not one, stops the start.
    fn to_config(&self, heartbeat_secs: u64) -> Result<PhoneAgentConfig> {
        let flows =
            fleet::load_flows(self.flows_dir.as_deref()).context("cannot load the flows")?;
        if let Some(dir) = &self.media_dir {
            if !dir.is_dir() {
                anyhow::bail!("the media directory {} is not a directory", dir.display());
            }
        }
        let mut config = PhoneAgentConfig::new(flows);
        config.media_dir = self.media_dir.clone();
        config.heartbeat_interval = Duration::from_secs(heartbeat_secs);
        config.call_wait = Duration::from_millis(self.call_wait_ms);
        Ok(config)
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
    /// Bind a phone of a fleet: the credentials go to the phone's own
    /// directory in this fleet directory (--state-dir is not used), and the
    /// phone (--serial, on --adb-server) is described by what it says.
    #[arg(
        long,
        value_name = "DIR",
        env = "YOUMI_AGENT_FLEET_DIR",
        requires = "serial",
        conflicts_with = "adb_tcp"
    )]
    fleet_dir: Option<PathBuf>,
    /// What the phone is: with `adb`, its model, Android version and serial
    /// are read from it (see --adb-server, --adb-tcp, --serial).
    #[arg(long, value_enum, env = "YOUMI_AGENT_EXECUTOR", default_value_t = ExecutorKind::Simulated)]
    executor: ExecutorKind,
    #[command(flatten)]
    adb: AdbArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

/// The executors this build can drive a phone with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExecutorKind {
    /// A simulated phone (see the --sim-* flags).
    Simulated,
    /// A real phone over ADB, running the WeCom flows (see --adb-server,
    /// --adb-tcp, --serial, --flows-dir, --media-dir).
    Adb,
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
    #[command(flatten)]
    heartbeat: HeartbeatArgs,
    #[command(flatten)]
    adb: AdbArgs,
    #[command(flatten)]
    timing: PhoneTimingArgs,
    #[command(flatten)]
    flows: FlowArgs,
    #[command(flatten)]
    sim: SimArgs,
}

/// How often an agent says it is alive (`run`, and each phone of a `fleet`).
#[derive(Debug, Args)]
struct HeartbeatArgs {
    /// Seconds between heartbeats (the server takes a phone for offline after
    /// 90 s of silence).
    #[arg(
        long,
        env = "YOUMI_AGENT_HEARTBEAT_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    heartbeat_secs: u64,
}

#[derive(Debug, Args)]
struct FleetArgs {
    /// Where the phones' state directories are: one per phone, named after
    /// the serial the adb server lists (`127.0.0.1:5555` is `127.0.0.1%3A5555`),
    /// each filled by `youmi-agent bind --fleet-dir DIR --serial SERIAL`.
    #[arg(long, value_name = "DIR", env = "YOUMI_AGENT_FLEET_DIR")]
    fleet_dir: PathBuf,
    /// The adb server whose phones are driven, as IPv4 HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", env = "YOUMI_AGENT_ADB_SERVER", default_value_t = DEFAULT_SERVER)]
    adb_server: SocketAddrV4,
    /// Seconds between two looks at the adb server's list: a phone plugged
    /// in is picked up, and one unplugged let go, within this time.
    #[arg(
        long,
        env = "YOUMI_AGENT_SCAN_SECS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    scan_secs: u64,
    #[command(flatten)]
    heartbeat: HeartbeatArgs,
    #[command(flatten)]
    timing: PhoneTimingArgs,
    #[command(flatten)]
    flows: FlowArgs,
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

fn parse_keep(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(keep) if (1..=100).contains(&keep) => Ok(keep),
        _ => Err(format!("must be a number from 1 to 100, not {value}")),
    }
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
    let limits = LogLimits {
        max_bytes: cli.log_max_bytes,
        keep: cli.log_files,
    };
    let file = match &cli.command {
        Command::Bind(_) => None,
        Command::Run(args) => FileLayer::open(&logs::log_dir(&args.state.state_dir), limits)
            .map(Some)
            .unwrap_or_else(|error| {
                eprintln!("youmi-agent: warning: no log file: {error}");
                None
            }),
        Command::Fleet(args) => {
            let fleet_dir = args.fleet_dir.clone();
            FileLayer::open(&logs::log_dir(&args.fleet_dir), limits)
                .map(|layer| {
                    Some(layer.with_phones(Box::new(move |serial| {
                        logs::log_dir(&fleet::phone_state_dir(&fleet_dir, serial))
                    })))
                })
                .unwrap_or_else(|error| {
                    eprintln!("youmi-agent: warning: no log file: {error}");
                    None
                })
        }
    };
    init_tracing(cli.log_json, file);
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
            Command::Fleet(args) => run_fleet(args).await,
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

/// Logs go to stderr, so that stdout carries only what `bind` prints, and
/// to the log file when there is one.
fn init_tracing(json: bool, file: Option<FileLayer>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter).with(file);
    if json {
        registry.with(stderr.json()).init();
    } else {
        registry.with(stderr).init();
    }
}

async fn run_bind(args: BindArgs) -> Result<ExitCode> {
    let dir = match (&args.fleet_dir, &args.device.serial) {
        (Some(fleet_dir), Some(serial)) => fleet::phone_state_dir(fleet_dir, serial),
        // clap requires --serial with --fleet-dir; this only keeps the match total.
        (Some(_), None) => anyhow::bail!("--fleet-dir needs --serial"),
        (None, _) => args.state.state_dir.clone(),
    };
    let path = Credentials::path(&dir);
    if path.exists() {
        warn!(path = %path.display(), "replacing the credentials of an earlier bind");
    }
    let (server, code) = match (&args.qr, args.server.clone(), args.code.clone()) {
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
    if let (Some(fleet_dir), Some(serial)) = (&args.fleet_dir, &args.device.serial) {
        let bound = fleet::bind_phone(fleet_dir, args.adb.adb_server, serial, &server, &code)
            .await
            .with_context(|| format!("cannot bind phone {serial}"))?;
        print_bound(&bound.credentials, &path, Some(&bound.device));
        return Ok(ExitCode::SUCCESS);
    }
    let (device, read_from_phone) = match args.executor {
        ExecutorKind::Simulated => (args.device.to_device(), false),
        ExecutorKind::Adb => {
            let phone = open_phone(
                &args.adb,
                args.device.serial.as_deref(),
                &dir,
                AdbConfig::default(),
            )
            .await?;
            (fleet::read_device(&phone).await?, true)
        }
    };
    let credentials = bind(&server, &code, device.clone())
        .await
        .context("cannot bind this phone")?;
    credentials
        .save(&dir)
        .context("bound, but the credentials could not be saved; bind again with a new code")?;
    print_bound(&credentials, &path, read_from_phone.then_some(&device));
    Ok(ExitCode::SUCCESS)
}

/// What `bind` prints: never the token, which the file holds.
fn print_bound(credentials: &Credentials, path: &Path, phone: Option<&DeviceInfo>) {
    println!("device_id: {}", credentials.device_id);
    println!("operator_account_id: {}", credentials.operator_account_id);
    if let Some(phone) = phone {
        println!(
            "phone: {} (Android {}, serial {})",
            phone.model, phone.android_version, phone.serial
        );
    }
    println!("credentials: {}", path.display());
}

/// The real phone `adb` names: over TCP with the state directory's key, or
/// through the adb server by serial (checked to be listed and ready).
async fn open_phone(
    adb: &AdbArgs,
    serial: Option<&str>,
    state_dir: &Path,
    config: AdbConfig,
) -> Result<AdbPhone> {
    match adb.adb_tcp {
        Some(addr) => {
            fsutil::create_private_dir(state_dir)
                .with_context(|| format!("cannot create {}", state_dir.display()))?;
            let key = state_dir.join(fleet::ADB_KEY_FILE);
            AdbPhone::over_tcp(addr, &key, config)
                .await
                .with_context(|| format!("cannot use the adb key {}", key.display()))
        }
        None => {
            let serial = fleet::select_phone(adb.adb_server, serial).await?;
            Ok(AdbPhone::through_server(adb.adb_server, &serial, config))
        }
    }
}

/// The simulated phone the --sim-* flags describe.
fn simulated_executor(args: &RunArgs) -> Arc<dyn Executor> {
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

/// The agent of the real phone the adb flags name, with its watcher. Every
/// check that can fail (flows, adb server, phone) is done before it connects.
async fn adb_agent(args: &RunArgs, credentials: Credentials) -> Result<PhoneAgent> {
    let dir = &args.state.state_dir;
    let config = args.flows.to_config(args.heartbeat.heartbeat_secs)?;
    let phone = open_phone(
        &args.adb,
        args.device.serial.as_deref(),
        dir,
        args.timing.to_adb_config(),
    )
    .await?;
    let device = fleet::read_device(&phone).await?;
    info!(
        adb_serial = phone.serial(),
        model = %device.model,
        android_version = %device.android_version,
        serial = %device.serial,
        flows = %config.flows.coverage(crate::flow::WECOM_PACKAGE),
        "running on a phone over adb"
    );
    PhoneAgent::spawn(Arc::new(phone), device, credentials, dir, &config)
        .context("cannot start the agent")
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
    // The phone agent is kept for its watcher, which stops when it is dropped.
    let (handle, _phone_agent): (AgentHandle, Option<PhoneAgent>) = match args.executor {
        ExecutorKind::Simulated => {
            let executor = simulated_executor(&args);
            let mut options = AgentOptions::new(dir, args.device.to_device());
            options.heartbeat_interval = Duration::from_secs(args.heartbeat.heartbeat_secs);
            let handle =
                Agent::spawn(credentials, options, executor).context("cannot start the agent")?;
            (handle, None)
        }
        ExecutorKind::Adb => {
            let agent = adb_agent(&args, credentials).await?;
            (agent.handle().clone(), Some(agent))
        }
    };

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

async fn run_fleet(args: FleetArgs) -> Result<ExitCode> {
    let config = args.flows.to_config(args.heartbeat.heartbeat_secs)?;
    fsutil::create_private_dir(&args.fleet_dir).with_context(|| {
        format!(
            "cannot create the fleet directory {}",
            args.fleet_dir.display()
        )
    })?;
    let mut options = FleetOptions::new(args.fleet_dir, config.flows.clone());
    options.agent = config;
    options.adb = args.timing.to_adb_config();
    options.adb_server = args.adb_server;
    options.scan_interval = Duration::from_secs(args.scan_secs);
    let (stopping_tx, mut stopping) = watch::channel(false);
    let shutdown = async move {
        if let Err(error) = shutdown_signal().await {
            error!("{error:#}; stopping");
        }
        info!("stopping: running tasks finish first (signal again to stop at once)");
        stopping_tx.send_replace(true);
    };
    let fleet = fleet::run(options, shutdown);
    tokio::pin!(fleet);
    tokio::select! {
        result = &mut fleet => {
            result.context("cannot start the fleet")?;
            Ok(ExitCode::SUCCESS)
        }
        () = async {
            let _ = stopping.wait_for(|stopping| *stopping).await;
            let _ = shutdown_signal().await;
        } => {
            warn!("stopping at once; tasks that were running are reported as interrupted next time");
            Ok(ExitCode::from(130))
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
        assert_eq!(args.heartbeat.heartbeat_secs, 5);
        assert_eq!(args.executor, ExecutorKind::Simulated);
    }

    #[test]
    fn run_takes_the_adb_flags() {
        let cli = Cli::try_parse_from([
            "youmi-agent",
            "run",
            "--executor",
            "adb",
            "--serial",
            "R58M123",
            "--adb-server",
            "127.0.0.1:5038",
            "--flows-dir",
            "/etc/youmi/flows",
            "--media-dir",
            "/var/youmi/media",
            "--screen-patience-ms",
            "20000",
            "--call-wait-ms",
            "90000",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(
            args.timing.to_adb_config().dump_patience,
            Duration::from_secs(20)
        );
        assert_eq!(args.executor, ExecutorKind::Adb);
        assert_eq!(args.device.serial.as_deref(), Some("R58M123"));
        assert_eq!(args.adb.adb_server, "127.0.0.1:5038".parse().unwrap());
        assert_eq!(args.adb.adb_tcp, None);
        assert_eq!(
            args.flows.flows_dir,
            Some(PathBuf::from("/etc/youmi/flows"))
        );
        assert_eq!(
            args.flows.media_dir,
            Some(PathBuf::from("/var/youmi/media"))
        );
        assert_eq!(args.flows.call_wait_ms, 90_000);

        let cli = Cli::try_parse_from([
            "youmi-agent",
            "run",
            "--executor",
            "adb",
            "--adb-tcp",
            "192.168.1.20:5555",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(args.adb.adb_server, DEFAULT_SERVER);
        assert_eq!(args.adb.adb_tcp, Some("192.168.1.20:5555".parse().unwrap()));
        assert_eq!(args.timing.to_adb_config(), AdbConfig::default());
        assert!(
            Cli::try_parse_from(["youmi-agent", "run", "--screen-patience-ms", "600000"]).is_err(),
            "a patience of ten minutes is refused"
        );
        assert_eq!(
            args.flows.to_config(30).unwrap().call_wait,
            crate::calls::DEFAULT_CALL_WAIT,
            "five minutes unless told"
        );
        // Without --serial the simulator keeps its old name.
        assert_eq!(args.device.to_device().serial, SIMULATED_SERIAL);
    }

    #[test]
    fn fleet_and_fleet_binds_take_their_flags() {
        let cli = Cli::try_parse_from([
            "youmi-agent",
            "fleet",
            "--fleet-dir",
            "/srv/fleet",
            "--adb-server",
            "127.0.0.1:5038",
            "--scan-secs",
            "2",
            "--heartbeat-secs",
            "10",
        ])
        .unwrap();
        let Command::Fleet(args) = cli.command else {
            panic!("expected fleet");
        };
        assert_eq!(args.fleet_dir, PathBuf::from("/srv/fleet"));
        assert_eq!(args.adb_server, "127.0.0.1:5038".parse().unwrap());
        assert_eq!((args.scan_secs, args.heartbeat.heartbeat_secs), (2, 10));
        assert_eq!(
            args.timing.to_adb_config().dump_patience,
            AdbConfig::default().dump_patience
        );

        let cli = Cli::try_parse_from([
            "youmi-agent",
            "bind",
            "--fleet-dir",
            "/srv/fleet",
            "--serial",
            "127.0.0.1:6001",
            "--server",
            "http://x",
            "--code",
            "ABCD2345",
        ])
        .unwrap();
        let Command::Bind(args) = cli.command else {
            panic!("expected bind");
        };
        assert_eq!(args.fleet_dir, Some(PathBuf::from("/srv/fleet")));
        assert_eq!(args.device.serial.as_deref(), Some("127.0.0.1:6001"));

        // A fleet bind names its phone, and reaches it through the adb server.
        let error = Cli::try_parse_from([
            "youmi-agent",
            "bind",
            "--fleet-dir",
            "/srv/fleet",
            "--qr",
            "bind.png",
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("--serial"), "{error}");
        let error = Cli::try_parse_from([
            "youmi-agent",
            "bind",
            "--fleet-dir",
            "/srv/fleet",
            "--serial",
            "A",
            "--adb-tcp",
            "10.0.0.2:5555",
            "--qr",
            "bind.png",
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("--adb-tcp"), "{error}");
        let error = Cli::try_parse_from([
            "youmi-agent",
            "fleet",
            "--fleet-dir",
            "x",
            "--scan-secs",
            "0",
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("scan-secs"), "{error}");
        let error = Cli::try_parse_from(["youmi-agent", "fleet"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--fleet-dir"), "{error}");
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
        let error = Cli::try_parse_from(["youmi-agent", "run", "--call-wait-ms", "3600001"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("call-wait-ms"), "{error}");
        let error = Cli::try_parse_from(["youmi-agent", "run", "--adb-server", "localhost:5037"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--adb-server"), "{error}");
        let error = Cli::try_parse_from(["youmi-agent", "run", "--executor", "usb"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("simulated") && error.contains("adb"),
            "{error}"
        );
    }
}
