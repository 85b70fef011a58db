//! Child processes: this binary run with a hidden subcommand. A child prints
//! `LISTENING <address>` on stdout once it serves, logs to a file, and stops
//! gracefully when its stdin closes, so that it also stops when the parent dies.

use std::ffi::OsString;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// The line prefix a child prints once it listens.
pub const LISTENING: &str = "LISTENING ";

/// A running child process.
pub struct ChildProcess {
    /// For messages: `server` or `bare endpoint`.
    name: &'static str,
    /// The process; killed if dropped while running.
    child: Child,
    /// Closing it asks the child to stop.
    stdin: Option<ChildStdin>,
    /// Where the child listens.
    addr: SocketAddr,
    /// The child's stderr.
    log: PathBuf,
}

impl ChildProcess {
    /// Starts this binary with `args` and `envs` (and no other `YOUMI_*`
    /// variable), its stderr in `log`, and
    /// waits (at most `timeout`) until it prints the address it listens on.
    pub async fn spawn(
        name: &'static str,
        args: Vec<OsString>,
        envs: Vec<(&'static str, String)>,
        log: &Path,
        timeout: Duration,
    ) -> anyhow::Result<ChildProcess> {
        let exe = std::env::current_exe().context("cannot find this program's own path")?;
        let stderr = File::create(log)
            .with_context(|| format!("cannot create the log file {}", log.display()))?;
        let mut command = Command::new(exe);
        // The server reads its settings from YOUMI_* variables too; a run
        // measures the defaults, not whatever the shell happens to set.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("YOUMI_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .args(args)
            .envs(envs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the {name} process"))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("the {name} process has no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let started = tokio::time::timeout(timeout, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix(LISTENING) {
                    return Ok(Some(addr.trim().to_owned()));
                }
            }
            Ok::<_, std::io::Error>(None)
        })
        .await;
        let addr = match started {
            Ok(Ok(Some(addr))) => addr
                .parse::<SocketAddr>()
                .with_context(|| format!("the {name} process printed a bad address `{addr}`"))?,
            Ok(Ok(None)) => bail!(
                "the {name} process exited before listening; its log ends:\n{}",
                tail(log)
            ),
            Ok(Err(error)) => bail!("cannot read the {name} process's output: {error}"),
            Err(_) => bail!(
                "the {name} process did not listen within {} s; its log ends:\n{}",
                timeout.as_secs(),
                tail(log)
            ),
        };
        // Nothing more is printed on stdout, but a child writing into a closed
        // pipe would fail: drain it in the background.
        let mut rest = lines.into_inner();
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = rest.read_to_end(&mut sink).await;
        });
        Ok(ChildProcess {
            name,
            child,
            stdin,
            addr,
            log: log.to_path_buf(),
        })
    }

    /// Where the child listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child's resident memory now, from `/proc/<pid>/status`.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let pid = self
            .child
            .id()
            .ok_or_else(|| anyhow!("the {} process has exited", self.name))?;
        rss_bytes(pid)
    }

    /// The CPU time the child has used so far (user + system), from `/proc/<pid>/stat`.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let pid = self
            .child
            .id()
            .ok_or_else(|| anyhow!("the {} process has exited", self.name))?;
        cpu_seconds(pid)
    }

    /// An error with the end of the child's log if it exited.
    pub fn check(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "the {} process exited ({status}); its log ends:\n{}",
                self.name,
                tail(&self.log)
            ),
            Err(error) => bail!("cannot check the {} process: {error}", self.name),
        }
    }

    /// Asks the child to stop by closing its stdin and waits for it (at most
    /// `grace`, then it is killed). A child that fails is an error.
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => bail!(
                "the {} process ended with {status}; its log ends:\n{}",
                self.name,
                tail(&self.log)
            ),
            Ok(Err(error)) => bail!("cannot wait for the {} process: {error}", self.name),
            Err(_) => {
                let _ = self.child.kill().await;
                bail!(
                    "the {} process did not stop within {} s and was killed",
                    self.name,
                    grace.as_secs()
                )
            }
        }
    }
}

/// The resident memory of process `pid`, from the `VmRSS` line of its status.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_vm_rss(&status).ok_or_else(|| anyhow!("no VmRSS line in {path}"))
}

/// The CPU time (user + system) process `pid` has used, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    parse_cpu_ticks(&stat)
        .filter(|_| ticks > 0)
        .map(|used| used as f64 / ticks as f64)
        .ok_or_else(|| anyhow!("cannot read the cpu times in {path}"))
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock
/// ticks. The command name (field 2) may hold spaces, so fields are counted
/// from its closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS:     1234 kB` to bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => Some(value * 1024),
        _ => None,
    }
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

/// In a child: once stdin reaches its end (the parent closed it, or died),
/// run `stop`. Reading happens on a plain thread, outside the runtime.
pub fn on_stdin_closed(stop: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin().lock();
        loop {
            match std::io::Read::read(&mut stdin, &mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        stop();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_fields_14_and_15() {
        let stat = "4242 (youmi bench) S 1 4242 4242 0 -1 4194560 9 0 0 0 123 45 0 0 20 0 8 0";
        assert_eq!(parse_cpu_ticks(stat), Some(168));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tyoumi-bench\nVmPeak:\t  20000 kB\nVmRSS:\t   1536 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(1536 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(rss > 0);
    }
}
