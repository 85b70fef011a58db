//! The real binary refuses settings that make no sense before it opens
//! anything, and says which one and why.

use std::process::Command;

#[test]
fn a_valid_setting_gets_as_far_as_the_database() {
    let output = Command::new(env!("CARGO_BIN_EXE_youmi-server"))
        .env("YOUMI_SESSION_TTL_HOURS", "1")
        .env("YOUMI_DATABASE_URL", "unsupported://nowhere")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn the_binary_refuses_zero_and_negative_settings_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    for (variable, value, flag) in [
        ("YOUMI_SESSION_TTL_HOURS", "0", "--session-ttl-hours"),
        ("YOUMI_BIND_CODE_TTL_SECS", "0", "--bind-code-ttl-secs"),
        (
            "YOUMI_FAILED_ATTEMPTS_PER_MINUTE",
            "0",
            "--failed-attempts-per-minute",
        ),
        (
            "YOUMI_MAX_AGENT_CONNECTIONS",
            "0",
            "--max-agent-connections",
        ),
        ("YOUMI_ASSIGN_RESEND_MS", "-5", "--assign-resend-ms"),
        ("YOUMI_RETRY_DELAY_MS", "-1", "--retry-delay-ms"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_youmi-server"))
            .env(variable, value)
            // Were the value taken, the server would stop at this database
            // URL instead, with exit code 1.
            .env("YOUMI_DATABASE_URL", "unsupported://nowhere")
            .env("YOUMI_DATA_DIR", dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{variable}={value}: {stderr}"
        );
        assert!(stderr.contains(flag), "{variable}={value}: {stderr}");
        assert!(stderr.contains(value), "{variable}={value}: {stderr}");
    }
}
