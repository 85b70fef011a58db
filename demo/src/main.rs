//! `youmi-demo`: a server on a temporary database, simulated phones bound
//! through real bind codes and connected over real WebSockets, and a mixed batch
//! of tasks run through them, with a progress bar and a summary.
//!
//! It is a binary of its own so that the production server does not link the
//! device agent whose simulated phones the demo runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use youmi_agent::simulator::{SimulatedPhone, SimulatedPhoneConfig};
use youmi_agent::{Agent, AgentHandle, AgentOptions};
use youmi_protocol::api::{
    BindCode, DeviceList, LoginResponse, OperatorAccount, SubmitBatch, SubmitTask, SubmittedBatch,
    TaskPage,
};
use youmi_protocol::{DeviceInfo, TaskKind};

use clap::Parser;
use youmi_server::config::Config;
use youmi_server::Server;

/// Options of `youmi-demo`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "youmi-demo",
    version,
    about = "Start a Youmi server on a temporary database with simulated phones and run tasks through it"
)]
struct DemoArgs {
    /// How many simulated phones to bind and connect.
    #[arg(long, default_value_t = 10)]
    phones: usize,
    /// How many tasks to submit, of mixed kinds.
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Latency of each simulated step on the phone, in milliseconds.
    #[arg(long, default_value_t = 5)]
    step_ms: u64,
    /// Share of simulated steps that fail, 0.0-1.0.
    #[arg(long, default_value_t = 0.01)]
    failure_rate: f64,
}

fn main() -> std::process::ExitCode {
    let args = DemoArgs::parse();
    // The demo draws progress bars on the terminal; only warnings may interrupt them.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|directives| !directives.trim().is_empty())
        .unwrap_or_else(|| "warn,youmi_agent=error".to_owned());
    let filter = match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("error: RUST_LOG is not a valid log filter: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A logged-in HTTP client of the demo server.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = request.bearer_auth(&self.token).send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "the server answered {status}: {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response.json().await?)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }
}

/// Runs the demo and prints its summary.
async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.phones == 0 || args.tasks == 0 {
        bail!("--phones and --tasks must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.failure_rate) {
        bail!("--failure-rate must be between 0.0 and 1.0");
    }
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let password: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    let mut config = Config::defaults();
    config.database_url = Some(format!("sqlite://{}/demo.db", dir.path().display()));
    config.data_dir = dir.path().to_path_buf();
    config.listen = "127.0.0.1:0".parse().expect("a valid address");
    config.admin_password = Some(password.clone());
    config.public_url = None;
    config.retry_delay_ms = 200;
    let server = Server::start(config)
        .await
        .context("starting the demo server")?;
    let base = format!("http://{}", server.local_addr());
    println!(
        "demo server on {base} (temporary database in {})",
        dir.path().display()
    );

    let http = reqwest::Client::new();
    let login: LoginResponse = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"job_no": "admin", "password": password}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let client = Client {
        http,
        base: base.clone(),
        token: login.token,
    };

    let bar = ProgressBar::new(args.phones as u64).with_style(style("binding phones"));
    let mut agents: Vec<AgentHandle> = Vec::with_capacity(args.phones);
    let mut accounts = Vec::with_capacity(args.phones);
    for i in 0..args.phones {
        let account: OperatorAccount = client
            .post(
                "/api/v1/operator-accounts",
                &json!({"name": format!("Demo {i:03}"), "wecom_user_id": format!("demo{i:03}")}),
            )
            .await?;
        let code: BindCode = client
            .post(
                &format!("/api/v1/operator-accounts/{}/bind-codes", account.id),
                &json!({}),
            )
            .await?;
        let device = DeviceInfo {
            serial: format!("sim-{i:03}"),
            model: "Simulated phone".into(),
            android_version: "13".into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
        };
        let credentials = youmi_agent::bind(&base, &code.code, device.clone()).await?;
        let phone = SimulatedPhone::new(SimulatedPhoneConfig {
            step_latency: Duration::from_millis(args.step_ms),
            failure_rate: args.failure_rate,
            seed: i as u64,
            record_file: None,
        });
        let options = AgentOptions::new(dir.path().join(format!("agent-{i:03}")), device);
        agents.push(Agent::spawn(credentials, options, Arc::new(phone))?);
        accounts.push(account.id);
        bar.inc(1);
    }
    for agent in &agents {
        if !agent.wait_connected(Duration::from_secs(10)).await {
            bail!("a simulated phone did not connect within 10 s");
        }
    }
    bar.finish();

    let started = Instant::now();
    let tasks: Vec<SubmitTask> = (0..args.tasks)
        .map(|i| demo_task(i, accounts[i % accounts.len()]))
        .collect();
    let submitted: SubmittedBatch = client
        .post("/api/v1/tasks/batch", &SubmitBatch { tasks })
        .await?;
    let total = submitted.ids.len() as u64;
    let bar = ProgressBar::new(total).with_style(style("running tasks"));
    loop {
        let devices: DeviceList = client.get("/api/v1/devices").await?;
        let waiting: u64 = devices
            .items
            .iter()
            .map(|d| d.queued_tasks + u64::from(d.current_task_id.is_some()))
            .sum();
        bar.set_position(total.saturating_sub(waiting));
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    bar.finish();

    let mut states: BTreeMap<String, u64> = BTreeMap::new();
    let mut cursor: Option<i64> = None;
    loop {
        let path = match cursor {
            Some(cursor) => format!("/api/v1/tasks?limit=500&cursor={cursor}"),
            None => "/api/v1/tasks?limit=500".to_owned(),
        };
        let page: TaskPage = client.get(&path).await?;
        for task in &page.items {
            *states.entry(task.state.to_string()).or_default() += 1;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    println!();
    println!(
        "{total} tasks on {} simulated phones in {:.2} s",
        args.phones,
        elapsed.as_secs_f64()
    );
    for (state, count) in &states {
        println!("  {state:<10} {count}");
    }
    println!(
        "  {:.0} tasks per second",
        total as f64 / elapsed.as_secs_f64().max(0.001)
    );

    for agent in agents {
        agent.shutdown().await;
    }
    server.shutdown().await?;
    Ok(())
}

fn style(message: &'static str) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{message:>15} [{{bar:40}}] {{pos}}/{{len}} ({{elapsed}})"
    ))
    .expect("a valid progress template")
    .progress_chars("=> ")
}

/// The `i`-th task of the demo: the kinds in turn, each with a payload that fits it.
fn demo_task(i: usize, operator_account_id: i64) -> SubmitTask {
    let to = json!({"name": format!("Customer {i}")});
    let text = json!([{"type": "text", "text": format!("Hello from the Youmi demo, message {i}")}]);
    let (kind, payload): (TaskKind, Value) = match i % 6 {
        0 | 1 => (TaskKind::SendMessage, json!({"to": to, "items": text})),
        2 => (
            TaskKind::MassSend,
            json!({"recipients": [to, {"name": format!("Customer {}", i + 1)}], "items": text}),
        ),
        3 => (
            TaskKind::MomentsPost,
            json!({"text": format!("Demo post {i}"), "media_ids": []}),
        ),
        4 => (
            TaskKind::FriendAdd,
            json!({"target": {"phone": format!("1380000{:04}", i % 10_000)}, "greeting": "Hi!"}),
        ),
        _ => (
            TaskKind::SmartMarketing,
            json!({"flow_id": 1, "step": i % 3, "to": to, "items": text}),
        ),
    };
    SubmitTask {
        operator_account_id,
        kind,
        payload,
        priority: Some((i % 10) as i64),
        not_before: None,
        not_after: None,
    }
}
