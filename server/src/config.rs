//! Server configuration: every field is a flag and a `YOUMI_*` environment
//! variable; `youmi-server --help` is the reference. A number that makes no
//! sense (a zero TTL, a negative delay) is refused by clap at start, naming the
//! flag and its range, rather than met later as a server that cannot work.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::RangedU64ValueParser;
use clap::{value_parser, Args, Parser, Subcommand};

/// The command line of `youmi-server`.
#[derive(Debug, Parser)]
#[command(
    name = "youmi-server",
    version,
    about = "Youmi: RPA device controller, task scheduler and SCRM server"
)]
pub struct Cli {
    /// What to do; without a subcommand the server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings (also used by `serve`).
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands of `youmi-server`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
}

/// How the server runs.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database URL: `sqlite://PATH` or `postgres://...`. Default: an SQLite file
    /// `youmi.db` under the data directory, created on first run.
    #[arg(long, env = "YOUMI_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Address and port to listen on.
    #[arg(long, env = "YOUMI_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory for the default SQLite database.
    #[arg(long, env = "YOUMI_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Password of the first admin (job number `admin`) when the database has no
    /// employees; without it a random password is printed once.
    #[arg(long, env = "YOUMI_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// The URL agents and phones use to reach this server; it goes into bind QR
    /// codes. Default: `http://` and the listen address.
    #[arg(long, env = "YOUMI_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// How long a bind code works, in seconds (at least 1).
    #[arg(long, env = "YOUMI_BIND_CODE_TTL_SECS", default_value_t = 600,
          value_parser = value_parser!(u64).range(1..))]
    pub bind_code_ttl_secs: u64,

    /// How long a login session lasts, in hours (at least 1).
    #[arg(long, env = "YOUMI_SESSION_TTL_HOURS", default_value_t = 12,
          value_parser = value_parser!(u64).range(1..))]
    pub session_ttl_hours: u64,

    /// Failed binds (or logins) from one address within a minute before it gets 429
    /// (at least 1).
    #[arg(long, env = "YOUMI_FAILED_ATTEMPTS_PER_MINUTE", default_value_t = 10,
          value_parser = value_parser!(u32).range(1..))]
    pub failed_attempts_per_minute: u32,

    /// Most agent WebSocket connections held at once (at least 1).
    #[arg(long, env = "YOUMI_MAX_AGENT_CONNECTIONS", default_value_t = 20_000,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_agent_connections: usize,

    /// Close an agent connection that sends nothing for this many seconds
    /// (agents send a heartbeat every 30 s, so only dead peers are closed; at least 1).
    #[arg(long, env = "YOUMI_AGENT_IDLE_TIMEOUT_SECS", default_value_t = 180,
          value_parser = value_parser!(u64).range(1..))]
    pub agent_idle_timeout_secs: u64,

    /// Re-send an `assign` not accepted within this many milliseconds (at least 1).
    #[arg(long, env = "YOUMI_ASSIGN_RESEND_MS", default_value_t = 10_000,
          value_parser = value_parser!(i64).range(1..))]
    pub assign_resend_ms: i64,

    /// A task whose `assign` was sent this many times (re-sends and new
    /// dispatches after reconnects) without being accepted fails `undeliverable` (at least 1).
    #[arg(long, env = "YOUMI_ASSIGN_MAX_SENDS", default_value_t = 6,
          value_parser = value_parser!(u32).range(1..))]
    pub assign_max_sends: u32,

    /// A task whose `assign` is still not accepted this many milliseconds after
    /// it was sent to a connected device fails `undeliverable` (at least 1).
    #[arg(long, env = "YOUMI_ASSIGN_DELIVER_MS", default_value_t = 120_000,
          value_parser = value_parser!(i64).range(1..))]
    pub assign_deliver_ms: i64,

    /// A device silent this many milliseconds is offline (at least 1).
    #[arg(long, env = "YOUMI_OFFLINE_AFTER_MS", default_value_t = 90_000,
          value_parser = value_parser!(i64).range(1..))]
    pub offline_after_ms: i64,

    /// Length of one minute of `auto_resume_after_min`, in milliseconds. Only
    /// tests and demos change it.
    #[arg(
        long,
        env = "YOUMI_AUTO_RESUME_UNIT_MS",
        default_value_t = 60_000,
        value_parser = value_parser!(i64).range(1..),
        hide = true
    )]
    pub auto_resume_unit_ms: i64,

    /// A task whose failure is retryable runs at most this many times (at least 1).
    #[arg(long, env = "YOUMI_MAX_ATTEMPTS", default_value_t = 3,
          value_parser = value_parser!(u32).range(1..))]
    pub max_attempts: u32,

    /// Delay before retrying a task, in milliseconds, times the attempt number
    /// (0 or more).
    #[arg(long, env = "YOUMI_RETRY_DELAY_MS", default_value_t = 30_000,
          value_parser = value_parser!(i64).range(0..))]
    pub retry_delay_ms: i64,

    /// Serve Prometheus metrics at `/metrics` on this address and port, apart
    /// from the API (never on its port). Off when not set.
    #[arg(long, env = "YOUMI_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Log format.
    #[arg(long, env = "YOUMI_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    pub log_format: String,
}

impl Config {
    /// The defaults, as if no flag or variable were set (tests start from here).
    pub fn defaults() -> Config {
        Cli::parse_from(["youmi-server"]).config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every numeric setting, the smallest value it takes, and its variable.
    const RANGED: &[(&str, i64, &str)] = &[
        ("--bind-code-ttl-secs", 1, "YOUMI_BIND_CODE_TTL_SECS"),
        ("--session-ttl-hours", 1, "YOUMI_SESSION_TTL_HOURS"),
        (
            "--failed-attempts-per-minute",
            1,
            "YOUMI_FAILED_ATTEMPTS_PER_MINUTE",
        ),
        ("--max-agent-connections", 1, "YOUMI_MAX_AGENT_CONNECTIONS"),
        (
            "--agent-idle-timeout-secs",
            1,
            "YOUMI_AGENT_IDLE_TIMEOUT_SECS",
        ),
        ("--assign-resend-ms", 1, "YOUMI_ASSIGN_RESEND_MS"),
        ("--offline-after-ms", 1, "YOUMI_OFFLINE_AFTER_MS"),
        ("--auto-resume-unit-ms", 1, "YOUMI_AUTO_RESUME_UNIT_MS"),
        ("--max-attempts", 1, "YOUMI_MAX_ATTEMPTS"),
        ("--retry-delay-ms", 0, "YOUMI_RETRY_DELAY_MS"),
    ];

    fn parse(flag: &str, value: &str) -> Result<Config, String> {
        Cli::try_parse_from(["youmi-server", &format!("{flag}={value}")])
            .map(|cli| cli.config)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn numbers_below_a_settings_range_are_refused_naming_the_flag() {
        for (flag, min, _) in RANGED {
            for below in [min - 1, min - 2, -1_000, i64::from(i32::MIN)] {
                let error = parse(flag, &below.to_string()).unwrap_err();
                assert!(error.contains(flag), "{flag}={below}: {error}");
            }
            for ok in [*min, min + 1, 1_000] {
                parse(flag, &ok.to_string()).unwrap_or_else(|e| panic!("{flag}={ok}: {e}"));
            }
        }
        let error = parse("--log-format", "xml").unwrap_err();
        assert!(error.contains("json"), "{error}");
    }
}
