//! The real `youmi-server` and `youmi-agent` binaries as child processes, for
//! the tests that kill them with SIGKILL. Every child is killed when its guard
//! is dropped, so a failing test leaves nothing running.
//!
//! The binaries' paths come from the test (`env!("CARGO_BIN_EXE_...")` is only
//! defined when the test binary itself is compiled).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::api::{login, ADMIN_PASSWORD};
use crate::app::init_test_logging;
use crate::db::TestDb;

/// A child process that is killed (SIGKILL) and reaped when dropped.
pub struct ChildGuard {
    /// The process.
    child: Child,
    /// For messages.
    name: String,
}

impl ChildGuard {
    /// Spawns `command`; its output goes to the test's stderr when `TEST_LOG` is
    /// set and nowhere otherwise.
    pub fn spawn(name: &str, mut command: Command) -> ChildGuard {
        if std::env::var_os("TEST_LOG").is_none() {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        command.stdin(Stdio::null());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        ChildGuard {
            child,
            name: name.to_owned(),
        }
    }

    /// Kills the process with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        // `Child::kill` sends SIGKILL on Unix.
        self.child.kill().ok();
        self.child.wait().ok();
    }

    /// Asks the process to stop with SIGTERM (through the `kill` utility, so the
    /// suite needs no libc bindings).
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("run kill -TERM for {}: {e}", self.name));
        assert!(status.success(), "kill -TERM {} failed", self.name);
    }

    /// Waits up to `timeout` for the process to exit; panics if it does not.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return status;
            }
            if Instant::now() >= deadline {
                panic!("{} still runs after {timeout:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process has exited, and how.
    pub fn try_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("poll {}: {e}", self.name))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

/// The real server binary on a fixed port, so it can be killed and started
/// again at the same address.
pub struct ServerProcess {
    /// The binary.
    exe: PathBuf,
    /// Where it listens, across restarts.
    addr: SocketAddr,
    /// `YOUMI_*` variables it is started with.
    env: Vec<(String, String)>,
    /// The running process, if any.
    child: Option<ChildGuard>,
}

impl ServerProcess {
    /// Starts `exe` on `db` with extra `YOUMI_*` settings and waits until the
    /// admin can log in; returns the process and the admin's token.
    pub async fn start(
        exe: &Path,
        db: &TestDb,
        extra_env: &[(&str, &str)],
    ) -> (ServerProcess, String) {
        init_test_logging();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("listen address");
        let mut env = vec![
            ("YOUMI_DATABASE_URL".to_owned(), db.url().to_owned()),
            ("YOUMI_LISTEN".to_owned(), addr.to_string()),
            ("YOUMI_ADMIN_PASSWORD".to_owned(), ADMIN_PASSWORD.to_owned()),
            (
                "YOUMI_DATA_DIR".to_owned(),
                db.dir().join("data").display().to_string(),
            ),
        ];
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut server = ServerProcess {
            exe: exe.to_path_buf(),
            addr,
            env,
            child: None,
        };
        let token = server.launch().await;
        (server, token)
    }

    async fn launch(&mut self) -> String {
        let mut command = Command::new(&self.exe);
        for (key, _) in std::env::vars() {
            // The test machine's own settings must not leak into the server.
            if key.starts_with("YOUMI_") {
                command.env_remove(key);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        self.child = Some(ChildGuard::spawn("youmi-server", command));
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_status()) {
                panic!("youmi-server exited at start-up with {status}");
            }
            match login(&client, &self.url(), "admin", ADMIN_PASSWORD).await {
                Ok(token) => return token,
                Err(e) if Instant::now() >= deadline => {
                    panic!("youmi-server did not come up at {}: {e}", self.addr)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the server with SIGKILL: no graceful shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill9();
        }
    }

    /// Starts the server again on the same address and database; returns a new
    /// admin token.
    pub async fn restart(&mut self) -> String {
        self.kill9();
        self.launch().await
    }
}

/// Runs `youmi-agent bind` to completion.
pub fn agent_bind(exe: &Path, server_url: &str, code: &str, state_dir: &Path) -> Output {
    let mut command = Command::new(exe);
    command
        .args([
            "bind",
            "--server",
            server_url,
            "--code",
            code,
            "--state-dir",
        ])
        .arg(state_dir)
        .stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("YOUMI_") {
            command.env_remove(key);
        }
    }
    command.output().expect("run youmi-agent bind")
}

/// Starts `youmi-agent run` on `state_dir` with the simulated phone recording to
/// `record`.
pub fn agent_run(exe: &Path, state_dir: &Path, record: &Path, step_ms: u64) -> ChildGuard {
    let mut command = Command::new(exe);
    command
        .arg("run")
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--sim-step-ms")
        .arg(step_ms.to_string())
        .arg("--sim-record")
        .arg(record)
        .args(["--heartbeat-secs", "1"]);
    for (key, _) in std::env::vars() {
        if key.starts_with("YOUMI_") {
            command.env_remove(key);
        }
    }
    ChildGuard::spawn("youmi-agent", command)
}
