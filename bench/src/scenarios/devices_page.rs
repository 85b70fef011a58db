//! `devices-page`: the console's RPA助手管理 page at fleet size. Binds
//! `--devices` phones (5,000 by default), connects `--online` of them, logs
//! in to the console through its form, then times one page of the list
//! (the default page; a filtered, sorted one; the last page) against the
//! API's own device list (`GET /api/v1/devices`, every device as JSON) in
//! the same run. Each figure is the median of `--repeat` requests after a
//! warm-up, measured on loopback, so it is the server's time plus little.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{RequestBuilder, StatusCode};

use super::{CommonArgs, Harness};
use crate::report::{percentile, round, Report};

/// Options of `youmi-bench devices-page`.
#[derive(Debug, Clone, Args)]
pub struct DevicesPageArgs {
    /// Bound phones (each with its own operator account).
    #[arg(long, default_value_t = 5_000)]
    pub devices: usize,

    /// How many of them connect (the rest stay offline).
    #[arg(long, default_value_t = 500)]
    pub online: usize,

    /// Timed requests per figure (after as many warm-up requests).
    #[arg(long, default_value_t = 20)]
    pub repeat: usize,

    /// Options every scenario takes.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The pages timed, with their names in the report.
const PAGES: [(&str, &str); 3] = [
    ("page_ms", "/devices"),
    (
        "filtered_page_ms",
        "/devices?online=1&sort=queued&dir=desc&limit=100",
    ),
    ("last_page_ms", "/devices?sort=heartbeat&page=100"),
];

/// Runs the scenario.
pub async fn run(args: DevicesPageArgs) -> anyhow::Result<crate::report::Report> {
    args.common.check()?;
    if args.devices == 0 || args.repeat == 0 || args.online > args.devices {
        bail!("--devices and --repeat must be at least 1, and --online at most --devices");
    }
    let mut harness = Harness::start(&args.common).await?;
    let outcome = measure(&mut harness, &args).await;
    harness.finish(outcome).await
}

async fn measure(harness: &mut Harness, args: &DevicesPageArgs) -> anyhow::Result<Report> {
    let agents = harness
        .bind_agents(args.devices, args.common.bind_concurrency)
        .await?;
    let mut fleet = harness
        .connect(&agents[..args.online], args.common.connect_concurrency)
        .await?;
    let api = harness.api.api().clone();
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(args.common.timeout())
        .build()
        .context("cannot build an HTTP client")?;
    let session = console_login(&client, &api.base_url, harness.password()).await?;
    let json = median(args.repeat, || {
        client
            .get(format!("{}/api/v1/devices", api.base_url))
            .bearer_auth(&api.token)
    })
    .await?;
    let mut report = Report::new("devices-page", harness.database_kind());
    report.set("devices", args.devices);
    report.set("online", args.online);
    report.set("json_list_ms", round(json, 2));
    report.line(format!(
        "devices-page on {}: {} devices, {} online; medians of {} requests",
        harness.database_kind(),
        args.devices,
        args.online,
        args.repeat
    ));
    report.line(format!(
        "  GET /api/v1/devices (every device, JSON): {json:.2} ms (baseline)"
    ));
    for (name, path) in PAGES {
        let took = median(args.repeat, || {
            client
                .get(format!("{}{path}", api.base_url))
                .header(COOKIE, &session)
        })
        .await?;
        report.set(name, round(took, 2));
        report.set(&format!("{name}_vs_json"), round(took / json, 3));
        report.line(format!(
            "  GET {path}: {took:.2} ms ({:.2}x the JSON list)",
            took / json
        ));
    }
    fleet.check()?;
    harness.server.check()?;
    fleet.shutdown().await;
    Ok(report)
}

/// The median time, in ms, of `repeat` requests made by `request` (after
/// `repeat` warm-up requests), each read whole; any status but 200 fails.
async fn median(repeat: usize, request: impl Fn() -> RequestBuilder) -> anyhow::Result<f64> {
    let mut samples = Vec::with_capacity(repeat);
    for round in 0..repeat * 2 {
        let start = Instant::now();
        let answer = request().send().await.context("a timed request failed")?;
        let status = answer.status();
        answer.bytes().await.context("reading a timed answer")?;
        let took = start.elapsed();
        if status != StatusCode::OK {
            bail!("a timed request answered {status}");
        }
        if round >= repeat {
            samples.push(took.as_secs_f64() * 1_000.0);
        }
    }
    percentile(&mut samples, 50.0).context("no samples")
}

/// Logs in to the console through its form, as a browser does: the login
/// page's visitor cookie and token, then the post; the session's cookie.
async fn console_login(
    client: &reqwest::Client,
    base: &str,
    password: &str,
) -> anyhow::Result<String> {
    let cookie_of = |answer: &reqwest::Response, name: &str| {
        answer
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| value.starts_with(name))
            .and_then(|value| value.split(';').next())
            .map(str::to_owned)
    };
    let page = client.get(format!("{base}/login")).send().await?;
    let visitor = cookie_of(&page, "youmi_visitor=").context("no visitor cookie")?;
    let html = page.text().await?;
    let token = html
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no token on the login form")?
        .to_owned();
    let answer = client
        .post(format!("{base}/login"))
        .header(COOKIE, visitor)
        .form(&[
            ("job_no", "admin"),
            ("password", password),
            ("_csrf", token.as_str()),
        ])
        .timeout(Duration::from_secs(60))
        .send()
        .await?;
    cookie_of(&answer, "youmi_session=").context("the console login set no session")
}
