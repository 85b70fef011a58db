//! A private adb server for tests that drive the simulator through the real `adb`
//! program (Debian's `adb` package): one on a free port with its own HOME, so that it
//! neither meets the user's server, keys and `ANDROID_SERIAL` nor outlives the test
//! (it is killed when dropped).
//!
//! Everything here panics when adb misbehaves (does not start, does not answer within
//! [`DEADLINE`], never lists a phone as ready): it is test support, and a panic with the
//! adb command and its output is the most useful failure a test can report.
//!
//! ```no_run
//! # async fn demo() {
//! use youmi_phone_sim::adb_server::{adb_on_path, AdbServer};
//! if !adb_on_path() {
//!     return;
//! }
//! let adb = AdbServer::start().await;
//! adb.connect("127.0.0.1:5555").await;
//! assert_eq!(adb.shell("127.0.0.1:5555", "echo hi").await, "hi\n");
//! # }
//! ```

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::Command;

/// The longest one adb command may take before the caller calls it a hang: far above
/// what a healthy command takes, even in a debug build on a busy machine.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How long one `adb connect` may take to show the phone as ready before
/// [`AdbServer::connect`] tries again.
const READY_WAIT: Duration = Duration::from_secs(10);

/// `adb connect`s tried before [`AdbServer::connect`] gives up on a phone.
const CONNECT_TRIES: u32 = 3;

/// The state `adb devices` gives a phone that takes commands.
const READY_STATE: &str = "device";

/// The simulator's throwaway RSA key (the simulator does not check keys).
const THROWAWAY_KEY: &[u8] = include_bytes!("../tests/fixtures/throwaway_adbkey.pem");

/// Whether the `adb` program can be run. When it cannot, this prints the line that
/// tells a reader of the test output that the real-adb tests were skipped, so that a
/// missing `adb` never passes for a green run unnoticed.
pub fn adb_on_path() -> bool {
    let found = std::process::Command::new("adb")
        .arg("version")
        .output()
        .is_ok();
    if !found {
        println!(
            "SKIPPED: `adb` is not on PATH (apt-get install adb); the real-adb tests did not run"
        );
    }
    found
}

/// Writes a copy of the simulator's throwaway RSA key to `dir/adbkey` and returns its
/// path, for clients that connect to the simulator over TCP with a key file:
/// generating a 2048-bit key in a debug build takes long.
pub fn throwaway_key_in(dir: &Path) -> std::io::Result<PathBuf> {
    let key = dir.join("adbkey");
    std::fs::write(&key, THROWAWAY_KEY)?;
    Ok(key)
}

/// An adb server of the test's own: a free port and its own HOME; killed when dropped.
#[derive(Debug)]
pub struct AdbServer {
    /// The port it listens on, so that `adb -P PORT` and clients reach this server
    /// and not the user's on 5037.
    port: u16,
    /// Its HOME: where it keeps its RSA key, with nothing of the user's.
    home: TempDir,
}

impl AdbServer {
    /// Starts the server.
    ///
    /// # Panics
    /// If no free port or HOME can be had, or `adb start-server` fails or does not
    /// finish within [`DEADLINE`].
    pub async fn start() -> AdbServer {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("a free port for adb")
            .port();
        let server = AdbServer {
            port,
            home: tempfile::tempdir().expect("a HOME for adb"),
        };
        let out = server.adb(&["start-server"]).await;
        assert!(
            out.status.success(),
            "adb start-server: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where clients (`adb_client`, the agent) reach it.
    pub fn addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port)
    }

    /// `adb -P PORT ARGS` with this server's HOME and none of the user's adb
    /// environment; killed if dropped before it finishes.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("adb");
        command
            .arg("-P")
            .arg(self.port.to_string())
            .args(args)
            .env("HOME", self.home.path())
            .env("ANDROID_SDK_HOME", self.home.path())
            .env("ANDROID_USER_HOME", self.home.path().join(".android"))
            .env_remove("ANDROID_SERIAL")
            .env_remove("ADB_SERVER_SOCKET")
            .kill_on_drop(true);
        command
    }

    /// Runs `adb ARGS`; `None` if it did not finish within `deadline` (it is killed
    /// then), for tests that prove a hanging phone hangs adb too.
    ///
    /// # Panics
    /// If `adb` cannot be run at all.
    pub async fn run(&self, args: &[&str], deadline: Duration) -> Option<Output> {
        let output = self.command(args).output();
        tokio::time::timeout(deadline, output)
            .await
            .ok()
            .map(|ran| ran.unwrap_or_else(|e| panic!("adb {args:?} cannot run: {e}")))
    }

    /// Runs `adb ARGS`, whatever its exit status.
    ///
    /// # Panics
    /// If it does not finish within [`DEADLINE`].
    pub async fn adb(&self, args: &[&str]) -> Output {
        self.run(args, DEADLINE)
            .await
            .unwrap_or_else(|| panic!("adb {args:?} did not finish within {DEADLINE:?}"))
    }

    /// Runs `adb ARGS` and returns what it printed on stdout.
    ///
    /// # Panics
    /// Unless it succeeds within [`DEADLINE`] and prints UTF-8.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.adb(args).await;
        assert!(
            out.status.success(),
            "adb {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap_or_else(|e| panic!("adb {args:?} printed no UTF-8: {e}"))
    }

    /// `adb -s SERIAL shell COMMAND`, as a person at the computer would type it.
    ///
    /// # Panics
    /// Unless it succeeds within [`DEADLINE`]. Returns what it printed.
    pub async fn shell(&self, serial: &str, command: &str) -> String {
        self.ok(&["-s", serial, "shell", command]).await
    }

    /// The state `adb devices` lists `serial` in (`device`, `offline`,
    /// `unauthorized`...), `None` if it is not listed.
    ///
    /// # Panics
    /// Unless `adb devices` succeeds within [`DEADLINE`].
    pub async fn state_of(&self, serial: &str) -> Option<String> {
        let listed = self.ok(&["devices"]).await;
        let state = listed_states(&listed)
            .find(|(listed, _)| *listed == serial)
            .map(|(_, state)| state.to_owned());
        state
    }

    /// `adb connect SERIAL`, then waits until the server lists the phone as ready
    /// for commands. On a loaded machine adb sometimes leaves a phone `offline`
    /// after the handshake; like a person would, this then disconnects and connects
    /// again, up to three times.
    ///
    /// # Panics
    /// If adb does not say it connected, or the phone never becomes ready.
    pub async fn connect(&self, serial: &str) {
        for attempt in 1..=CONNECT_TRIES {
            let said = self.ok(&["connect", serial]).await;
            assert!(
                said.contains("connected to"),
                "adb connect {serial}: {said}"
            );
            let ready = tokio::time::timeout(READY_WAIT, async {
                while self.state_of(serial).await.as_deref() != Some(READY_STATE) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
            if ready.is_ok() {
                return;
            }
            tracing::warn!(
                serial,
                attempt,
                "phone not ready in adb after connect; reconnecting"
            );
            let _ = self.adb(&["disconnect", serial]).await;
        }
        panic!("{serial} did not come online in adb after {CONNECT_TRIES} connects");
    }

    /// What a person does when adb lost a phone: `adb disconnect`, then
    /// [`connect`](Self::connect) again.
    ///
    /// # Panics
    /// As [`connect`](Self::connect) does.
    pub async fn reconnect(&self, serial: &str) {
        // A server that already dropped the phone says so and fails; that is fine.
        let _ = self.adb(&["disconnect", serial]).await;
        self.connect(serial).await;
    }
}

impl Drop for AdbServer {
    fn drop(&mut self) {
        let killed = std::process::Command::new("adb")
            .arg("-P")
            .arg(self.port.to_string())
            .arg("kill-server")
            .env("HOME", self.home.path())
            .env("ANDROID_SDK_HOME", self.home.path())
            .env("ANDROID_USER_HOME", self.home.path().join(".android"))
            .env_remove("ANDROID_SERIAL")
            .env_remove("ADB_SERVER_SOCKET")
            .output();
        if let Err(error) = killed {
            tracing::warn!(port = self.port, %error, "adb kill-server did not run");
        }
    }
}

/// The `(serial, state)` pairs of `adb devices` output: one `SERIAL<TAB>STATE` line
/// per phone after a `List of devices attached` header (and, when the server was just
/// started, `* daemon ...` lines), which have no tab.
fn listed_states(listed: &str) -> impl Iterator<Item = (&str, &str)> {
    listed
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(serial, state)| (serial.trim(), state.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_devices_list_gives_serials_and_states() {
        let listed = "* daemon not running; starting now at tcp:5037\n\
                      * daemon started successfully\n\
                      List of devices attached\n\
                      127.0.0.1:40001\tdevice\n\
                      127.0.0.1:40002\toffline\n\
                      R58M\tunauthorized\n\
                      \n";
        assert_eq!(
            listed_states(listed).collect::<Vec<_>>(),
            vec![
                ("127.0.0.1:40001", "device"),
                ("127.0.0.1:40002", "offline"),
                ("R58M", "unauthorized"),
            ]
        );
        assert_eq!(listed_states("List of devices attached\n\n").count(), 0);
    }

    #[test]
    fn the_throwaway_key_is_written_where_asked() {
        let dir = tempfile::tempdir().unwrap();
        let key = throwaway_key_in(dir.path()).unwrap();
        assert_eq!(key, dir.path().join("adbkey"));
        let pem = std::fs::read_to_string(&key).unwrap();
        assert!(pem.starts_with("-----BEGIN"), "{pem}");
    }
}
