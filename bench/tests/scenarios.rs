//! Runs every scenario of the real `youmi-bench` binary at a small size and
//! checks the figures of its last line of JSON, so the tool cannot rot. With
//! `YOUMI_TEST_DATABASE_URL` set (CI's PostgreSQL pass) the scenarios run on
//! PostgreSQL through `--database`.

use std::process::{Command, Output};

use serde_json::Value;

/// The base URL of CI's PostgreSQL pass, if this is one.
fn database() -> Option<String> {
    std::env::var("YOUMI_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Runs `youmi-bench ARGS` (plus `--database` on PostgreSQL passes).
fn bench(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_youmi-bench"));
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("YOUMI_") {
            command.env_remove(key);
        }
    }
    if let Some(url) = database() {
        command.args(["--database", &url]);
    }
    command.env_remove("RUST_LOG");
    command.output().expect("youmi-bench runs")
}

/// Runs a scenario that must succeed and returns its JSON line.
fn figures(args: &[&str]) -> Value {
    let output = bench(args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "youmi-bench {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    let json: Value = serde_json::from_str(last)
        .unwrap_or_else(|error| panic!("the last line is not JSON ({error}): {last}"));
    let expected_database = if database().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(json["database"], expected_database, "{json}");
    json
}

/// A figure that must be a positive number.
fn positive(json: &Value, key: &str) -> f64 {
    let value = json[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {json}"));
    assert!(value > 0.0, "`{key}` is {value} in {json}");
    value
}

#[test]
fn dispatch_runs_every_task_and_reports_the_figures() {
    let json = figures(&[
        "dispatch",
        "--agents",
        "20",
        "--tasks",
        "500",
        "--batch-size",
        "200",
        "--latency-probe",
        "--probes",
        "40",
    ]);
    assert_eq!(json["scenario"], "dispatch");
    assert_eq!(json["agents"], 20);
    assert_eq!(json["tasks"], 500);
    // A zero-latency phone accepts at once: no assign is ever re-sent.
    assert_eq!(json["assigns"], 500, "{json}");
    assert_eq!(json["probes"], 40, "{json}");
    let tasks_per_s = positive(&json, "tasks_per_s");
    let raw = positive(&json, "raw_exchanges_per_s");
    let ratio = positive(&json, "ratio");
    assert!(
        (ratio - tasks_per_s / raw).abs() < 0.01,
        "ratio {ratio} is not tasks_per_s / raw_exchanges_per_s in {json}"
    );
    let p50 = positive(&json, "p50_ms");
    let p99 = positive(&json, "p99_ms");
    assert!(p50 <= p99, "{json}");
}

#[test]
fn idle_counts_the_connections_and_the_server_memory() {
    let json = figures(&["idle", "--agents", "50", "--settle-secs", "1"]);
    assert_eq!(json["scenario"], "idle");
    assert_eq!(json["connections"], 50);
    let after = positive(&json, "server_rss_bytes");
    let before = positive(&json, "server_rss_before_bytes");
    let per = json["rss_bytes_per_connection"]
        .as_f64()
        .expect("rss_bytes_per_connection is a number");
    assert!(
        (per - (after - before).max(0.0) / 50.0).abs() <= 1.0,
        "{json}"
    );
}

#[test]
fn fanout_submits_one_batch_and_drains_it() {
    let json = figures(&["fanout", "--agents", "20", "--tasks", "1000"]);
    assert_eq!(json["scenario"], "fanout");
    assert_eq!(json["tasks"], 1000);
    assert_eq!(json["assigns"], 1000, "{json}");
    positive(&json, "submit_ms");
    let first_assign_ms = positive(&json, "first_assign_ms");
    let drain_s = positive(&json, "drain_s");
    assert!(first_assign_ms <= drain_s * 1e3, "{json}");
}

#[test]
fn devices_page_times_the_console_page_against_the_json_list() {
    let json = figures(&[
        "devices-page",
        "--devices",
        "30",
        "--online",
        "10",
        "--repeat",
        "3",
    ]);
    assert_eq!(json["scenario"], "devices-page");
    assert_eq!(
        (json["devices"].clone(), json["online"].clone()),
        (30.into(), 10.into())
    );
    let baseline = positive(&json, "json_list_ms");
    for page in ["page_ms", "filtered_page_ms", "last_page_ms"] {
        let took = positive(&json, page);
        let ratio = positive(&json, &format!("{page}_vs_json"));
        assert!((ratio - took / baseline).abs() <= 0.05 * ratio, "{json}");
    }
}

#[test]
fn bad_options_are_refused_before_anything_starts() {
    let output = Command::new(env!("CARGO_BIN_EXE_youmi-bench"))
        .args(["dispatch", "--database", "sqlite://bench.db"])
        .output()
        .expect("youmi-bench runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--database must be a postgres:// URL"),
        "{stderr}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_youmi-bench"))
        .args(["fanout", "--tasks", "0"])
        .output()
        .expect("youmi-bench runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("must be at least 1"), "{stderr}");
}
