//! The scenarios, and what they share: a real server in a child process on a
//! fresh database, an admin's API client, and agents bound through the API.
//!
//! # Layout
//! - [`dispatch`]: throughput and latency of the whole task cycle, against the
//!   bare endpoint's rate.
//! - [`idle`]: server memory per idle connection.
//! - [`fanout`]: one huge batch: submit time, first assign, drain.
//! - [`devices_page`]: the console's devices page at 5,000 devices, against
//!   the API's JSON device list.

pub mod devices_page;
pub mod dispatch;
pub mod fanout;
pub mod idle;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand::distributions::Alphanumeric;
use rand::Rng;
use tempfile::TempDir;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::agents::{AgentSpec, Fleet};
use crate::api::{ApiClient, BoundAgent};
use crate::child::ChildProcess;
use crate::database::BenchDatabase;
use crate::server_child::ADMIN_PASSWORD_VAR;

/// How long a child process may take to listen (migrations included).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child process may take to stop.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Options every scenario takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Run on PostgreSQL: a `postgres://` URL of a server and a database the
    /// user can connect to. A fresh database `youmi_bench_<random>` is
    /// created there for the run and dropped afterwards. Default: a fresh
    /// SQLite file in a temporary directory.
    #[arg(long, env = "YOUMI_BENCH_DATABASE")]
    pub database: Option<String>,

    /// Give up on any phase of the run (binding, connecting, running tasks)
    /// after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,

    /// API calls at once while binding agents.
    #[arg(long, default_value_t = 8)]
    pub bind_concurrency: usize,

    /// WebSocket handshakes at once while agents connect.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
}

impl CommonArgs {
    /// Refuses bad options before anything starts.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.database {
            crate::database::check_url(url)?;
        }
        if self.bind_concurrency == 0 || self.connect_concurrency == 0 {
            anyhow::bail!("--bind-concurrency and --connect-concurrency must be at least 1");
        }
        Ok(())
    }

    /// The phase timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }
}

/// A real server on a fresh database, and an admin logged in to it.
pub struct Harness {
    /// Logs and the SQLite file; held only so that they live as long as the
    /// run and are removed after it.
    _dir: TempDir,
    /// The run's database.
    database: Option<BenchDatabase>,
    /// The server process.
    pub server: ChildProcess,
    /// The admin's client.
    pub api: ApiClient,
    /// The admin's password (for the console's login form).
    password: String,
}

impl Harness {
    /// Creates the database and starts the server on it.
    pub async fn start(common: &CommonArgs) -> anyhow::Result<Harness> {
        let dir = tempfile::Builder::new()
            .prefix("youmi-bench-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let database = BenchDatabase::create(common.database.as_deref(), dir.path()).await?;
        match Self::start_server(&dir, &database).await {
            Ok((server, api, password)) => Ok(Harness {
                _dir: dir,
                database: Some(database),
                server,
                api,
                password,
            }),
            Err(error) => {
                if let Err(cleanup) = database.remove().await {
                    eprintln!("warning: {cleanup:#}");
                }
                Err(error)
            }
        }
    }

    async fn start_server(
        dir: &TempDir,
        database: &BenchDatabase,
    ) -> anyhow::Result<(ChildProcess, ApiClient, String)> {
        let password: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        let args: Vec<OsString> = vec![
            "__server".into(),
            "--database-url".into(),
            database.url().into(),
            "--data-dir".into(),
            dir.path().join("data").into(),
        ];
        let server = ChildProcess::spawn(
            "server",
            args,
            vec![(ADMIN_PASSWORD_VAR, password.clone())],
            &dir.path().join("server.log"),
            START_TIMEOUT,
        )
        .await?;
        let api = ApiClient::login(&format!("http://{}", server.addr()), &password).await?;
        Ok((server, api, password))
    }

    /// The admin's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The database kind, for the report.
    pub fn database_kind(&self) -> &'static str {
        self.database.as_ref().map_or("sqlite", BenchDatabase::kind)
    }

    /// The agents' WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/agent/v1/ws", self.server.addr())
    }

    /// Creates `count` accounts and binds one simulated phone to each, through
    /// the API, `concurrency` at a time; in account order.
    pub async fn bind_agents(
        &self,
        count: usize,
        concurrency: usize,
    ) -> anyhow::Result<Vec<BoundAgent>> {
        let bar = progress(count as u64, "binding agents");
        let gate = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut binds = JoinSet::new();
        for index in 0..count {
            let api = self.api.clone();
            let gate = gate.clone();
            binds.spawn(async move {
                let _permit = gate.acquire_owned().await?;
                let bound = api
                    .bind_agent(index)
                    .await
                    .with_context(|| format!("cannot bind agent {index}"))?;
                Ok::<_, anyhow::Error>((index, bound))
            });
        }
        let mut bound: Vec<Option<BoundAgent>> = vec![None; count];
        while let Some(joined) = binds.join_next().await {
            let (index, agent) =
                joined.map_err(|error| anyhow!("a bind task failed: {error}"))??;
            bound[index] = Some(agent);
            bar.inc(1);
        }
        bar.finish();
        bound
            .into_iter()
            .map(|agent| agent.ok_or_else(|| anyhow!("an agent was not bound")))
            .collect()
    }

    /// Connects `agents` to this server, `concurrency` at a time, and waits
    /// until every one is welcomed.
    pub async fn connect(
        &self,
        agents: &[BoundAgent],
        concurrency: usize,
    ) -> anyhow::Result<Fleet> {
        let bar = progress(agents.len() as u64, "connecting");
        let fleet = Fleet::connect(self.specs(agents), concurrency, &bar).await?;
        bar.finish();
        Ok(fleet)
    }

    /// The specs to connect `agents` to this server.
    pub fn specs(&self, agents: &[BoundAgent]) -> Vec<AgentSpec> {
        let url = self.ws_url();
        agents
            .iter()
            .map(|agent| AgentSpec {
                url: url.clone(),
                token: Some(agent.token.clone()),
                device: agent.device.clone(),
            })
            .collect()
    }

    /// Stops the server and drops the database, then returns `outcome`; a
    /// failure to clean up is an error only when the run itself succeeded.
    pub async fn finish<T>(mut self, outcome: anyhow::Result<T>) -> anyhow::Result<T> {
        let stopped = self.server.stop(STOP_GRACE).await;
        let removed = match self.database.take() {
            Some(database) => database.remove().await,
            None => Ok(()),
        };
        let value = outcome?;
        stopped?;
        removed?;
        Ok(value)
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(total: u64, message: &'static str) -> ProgressBar {
    let style = ProgressStyle::with_template(&format!(
        "{message:>18} [{{bar:40}}] {{pos}}/{{len}} ({{elapsed}}, {{per_sec}})"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    ProgressBar::new(total).with_style(style)
}

/// Seconds between two instants, never zero (rates divide by it).
pub fn seconds(from: tokio::time::Instant, to: tokio::time::Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64().max(1e-9)
}
