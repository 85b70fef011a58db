//! One connection to one phone and the blocking thread that uses it.
//!
//! Every adb_client call blocks, so a [`Link`] runs them one at a time on a
//! dedicated thread (its worker) that owns the connection and opens it on first
//! use. The async side gives each call a deadline: when it passes, the call is
//! abandoned, the connection's [`Relay`] is poisoned (which makes the blocked
//! adb_client read fail soon after instead of waiting forever) and the caller gets
//! [`PhoneError::Timeout`]. The worker drops a poisoned or failed connection after
//! the call, so the next call opens a fresh one; a worker that does not come back
//! from an abandoned call within [`GRACE`] is left behind and replaced.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use adb_client::server_device::ADBServerDevice;
use adb_client::tcp::ADBTcpDevice;
use adb_client::{ADBDeviceExt, RustADBError};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::relay::{Ending, Relay};
use crate::phone::{PhoneError, PhoneResult};

/// How long an abandoned call may take to return once its connection is poisoned
/// before its thread is given up on. The poisoned relay answers at once, so this
/// only matters if something other than a read is stuck.
const GRACE: Duration = Duration::from_secs(2);

/// How a phone is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Through the adb server, by serial.
    Server {
        /// The adb server.
        server: SocketAddrV4,
        /// The phone's serial as the server lists it.
        serial: String,
    },
    /// Directly over TCP (wireless debugging), authenticating with an RSA key.
    Tcp {
        /// The phone's adbd.
        phone: SocketAddr,
        /// The private key file (PKCS#8 PEM).
        key: PathBuf,
    },
}

impl Route {
    /// What a relay for this route connects to and how it ends connections.
    fn relay_target(&self) -> (SocketAddr, Ending) {
        match self {
            Route::Server { server, .. } => (SocketAddr::V4(*server), Ending::Close),
            Route::Tcp { phone, .. } => (*phone, Ending::Poison),
        }
    }
}

/// Why a blocking call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// adb_client failed: the connection is not trusted any more.
    Adb(RustADBError),
    /// The call ran but its result is an error (a failed command, a missing local
    /// file). [`PhoneError::Truncated`] and [`PhoneError::Unreachable`] also end
    /// the connection.
    Phone(PhoneError),
}

/// An open connection: the adb_client device and the relay under it. The device
/// is declared first so that it is dropped (and closes its socket) before the relay.
pub(crate) struct Live {
    /// adb_client's device.
    pub(crate) device: Box<dyn ADBDeviceExt + Send>,
    /// The relay the device talks through.
    pub(crate) relay: Arc<Relay>,
}

/// Opens a connection along `route`: a relay, then adb_client's device on it.
/// `started` gets the relay before adb_client connects, so that a connection
/// that hangs in its handshake can be cut off too.
pub(crate) fn open(
    route: &Route,
    serial: &str,
    connect_timeout: Duration,
    started: impl FnOnce(&Arc<Relay>),
) -> PhoneResult<Live> {
    let (target, ending) = route.relay_target();
    let relay = Relay::start(target, ending, connect_timeout)
        .map_err(|error| unreachable(serial, format!("cannot start the local relay: {error}")))?;
    let relay = Arc::new(relay);
    started(&relay);
    let device: Box<dyn ADBDeviceExt + Send> = match route {
        Route::Server { serial, .. } => {
            Box::new(ADBServerDevice::new(serial.clone(), Some(relay.addr())))
        }
        Route::Tcp { key, .. } => {
            match ADBTcpDevice::new_with_custom_private_key(SocketAddr::V4(relay.addr()), key) {
                Ok(device) => Box::new(device),
                Err(error) => {
                    let reason = relay.reason().unwrap_or_else(|| error.to_string());
                    return Err(unreachable(serial, reason));
                }
            }
        }
    };
    Ok(Live { device, relay })
}

/// [`PhoneError::Unreachable`] for `serial`.
pub(crate) fn unreachable(serial: &str, reason: impl Into<String>) -> PhoneError {
    PhoneError::Unreachable {
        serial: serial.to_owned(),
        reason: reason.into(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The relay of a worker's live connection, shared with the async side so that an
/// abandoned call can be cut off.
type RelaySlot = Arc<Mutex<Option<Arc<Relay>>>>;

/// What the worker runs.
struct Job {
    /// The call, which sends its own result.
    run: Box<dyn FnOnce(&mut Session) + Send>,
    /// Fired when the call returned, whether or not anyone still waits for it.
    done: oneshot::Sender<()>,
}

/// A worker thread and the way to reach it.
struct Worker {
    /// Its queue (the async side sends one job at a time).
    jobs: mpsc::Sender<Job>,
    /// Its live connection's relay.
    relay: RelaySlot,
}

/// The async side's state, behind a lock that also makes calls take turns.
struct State {
    /// The current worker; `None` until the first call or after one was left behind.
    worker: Option<Worker>,
    /// Fires when the last abandoned call returns.
    abandoned: Option<oneshot::Receiver<()>>,
}

/// One connection to a phone, used one call at a time; see the module docs.
pub(crate) struct Link {
    /// Where the phone is.
    route: Arc<Route>,
    /// The phone's serial, for errors and logs.
    serial: String,
    /// How long opening a TCP connection may take.
    connect_timeout: Duration,
    /// The worker and what is left of the last abandoned call.
    state: tokio::sync::Mutex<State>,
}

impl Link {
    /// A link that opens its connection on the first call.
    pub(crate) fn new(route: Arc<Route>, serial: String, connect_timeout: Duration) -> Link {
        Link {
            route,
            serial,
            connect_timeout,
            state: tokio::sync::Mutex::new(State {
                worker: None,
                abandoned: None,
            }),
        }
    }

    /// Runs `call` on the worker with `deadline`. `what` names the call in errors
    /// and logs. Calls take turns; waiting for one's turn is not part of the deadline.
    pub(crate) async fn call<T, F>(&self, what: &str, deadline: Duration, call: F) -> PhoneResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn ADBDeviceExt) -> Result<T, CallError> + Send + 'static,
    {
        let span = tracing::debug_span!("adb", serial = %self.serial);
        self.call_inner(what, deadline, call).instrument(span).await
    }

    async fn call_inner<T, F>(&self, what: &str, deadline: Duration, call: F) -> PhoneResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn ADBDeviceExt) -> Result<T, CallError> + Send + 'static,
    {
        let mut flight = InFlight {
            state: self.state.lock().await,
            done: None,
            relay: None,
        };
        if let Some(abandoned) = flight.state.abandoned.take() {
            if tokio::time::timeout(GRACE, abandoned).await.is_err() {
                tracing::warn!("an abandoned adb call did not return; starting a new worker");
                flight.state.worker = None;
            }
        }
        let (result_tx, result_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let job = Job {
            run: Box::new(move |session: &mut Session| {
                let _ = result_tx.send(session.run(call));
            }),
            done: done_tx,
        };
        tracing::debug!(command = what, "adb call");
        let started = Instant::now();
        flight.relay = Some(self.submit(&mut flight.state, job)?);
        flight.done = Some(done_rx);
        match tokio::time::timeout(deadline, result_rx).await {
            Ok(Ok(result)) => {
                flight.done = None;
                let elapsed = started.elapsed();
                match &result {
                    Ok(_) => tracing::debug!(command = what, ?elapsed, "adb call done"),
                    Err(error) => {
                        tracing::debug!(command = what, ?elapsed, %error, "adb call failed")
                    }
                }
                result
            }
            Ok(Err(_)) => {
                // The job was dropped unanswered: the worker thread panicked.
                flight.done = None;
                flight.state.worker = None;
                Err(unreachable(&self.serial, "the adb worker thread stopped"))
            }
            Err(_) => {
                tracing::debug!(
                    command = what,
                    ?deadline,
                    "adb call abandoned at its deadline"
                );
                flight.abandon(&format!("`{what}` did not finish within {deadline:?}"));
                Err(PhoneError::Timeout {
                    command: what.to_owned(),
                    after: deadline,
                })
            }
        }
    }

    /// Hands `job` to the worker, starting one if there is none (or it is gone).
    fn submit(&self, state: &mut State, job: Job) -> PhoneResult<RelaySlot> {
        let mut job = job;
        for _ in 0..2 {
            if state.worker.is_none() {
                state.worker = Some(self.spawn_worker()?);
            }
            let Some(worker) = state.worker.as_ref() else {
                break;
            };
            match worker.jobs.send(job) {
                Ok(()) => return Ok(worker.relay.clone()),
                Err(mpsc::SendError(returned)) => {
                    job = returned;
                    state.worker = None;
                }
            }
        }
        Err(unreachable(
            &self.serial,
            "cannot start an adb worker thread",
        ))
    }

    fn spawn_worker(&self) -> PhoneResult<Worker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let relay: RelaySlot = Arc::new(Mutex::new(None));
        let mut session = Session {
            route: self.route.clone(),
            serial: self.serial.clone(),
            connect_timeout: self.connect_timeout,
            slot: relay.clone(),
            live: None,
        };
        thread::Builder::new()
            .name(format!("adb-{}", self.serial))
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    session.drop_if_poisoned();
                    (job.run)(&mut session);
                    session.drop_if_poisoned();
                    let _ = job.done.send(());
                }
            })
            .map_err(|error| {
                unreachable(&self.serial, format!("cannot start an adb thread: {error}"))
            })?;
        Ok(Worker { jobs, relay })
    }
}

/// A call under way, holding the link's turn. If the call's future is dropped
/// before the answer came (a cancelled task), the call is abandoned like one that
/// passed its deadline, so that the next call does not inherit it.
struct InFlight<'a> {
    /// The link's state, locked for the call.
    state: tokio::sync::MutexGuard<'a, State>,
    /// Fires when the worker is done with the call; `None` once answered.
    done: Option<oneshot::Receiver<()>>,
    /// The worker's relay slot, to cut the connection off.
    relay: Option<RelaySlot>,
}

impl InFlight<'_> {
    /// Cuts the call's connection off and leaves its completion for the next call
    /// to wait for.
    fn abandon(&mut self, reason: &str) {
        if let Some(slot) = self.relay.take() {
            if let Some(relay) = lock(&slot).as_ref() {
                relay.poison(reason);
            }
        }
        self.state.abandoned = self.done.take();
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.done.is_some() {
            tracing::debug!("adb call cancelled");
            self.abandon("the call was cancelled");
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // A call still running has nobody waiting for it any more.
        if let Some(worker) = self.state.get_mut().worker.as_ref() {
            if let Some(relay) = lock(&worker.relay).as_ref() {
                relay.poison("the phone was dropped");
            }
        }
    }
}

/// The worker's side: its connection, opened on first use.
pub(crate) struct Session {
    /// Where the phone is.
    route: Arc<Route>,
    /// The phone's serial, for errors.
    serial: String,
    /// How long opening a TCP connection may take.
    connect_timeout: Duration,
    /// Where the live connection's relay is published for the async side.
    slot: RelaySlot,
    /// The connection; `None` until the first call and after a failure.
    live: Option<Live>,
}

impl Session {
    fn live(&mut self) -> PhoneResult<&mut Live> {
        if self.live.is_none() {
            let slot = self.slot.clone();
            let live = open(&self.route, &self.serial, self.connect_timeout, |relay| {
                *lock(&slot) = Some(relay.clone());
            });
            match live {
                Ok(live) => self.live = Some(live),
                Err(error) => {
                    lock(&self.slot).take();
                    return Err(error);
                }
            }
        }
        self.live
            .as_mut()
            .ok_or_else(|| unreachable(&self.serial, "the connection was not opened"))
    }

    fn close(&mut self) {
        self.live = None;
        lock(&self.slot).take();
    }

    fn drop_if_poisoned(&mut self) {
        if self
            .live
            .as_ref()
            .is_some_and(|live| live.relay.is_poisoned())
        {
            self.close();
        }
    }

    fn run<T>(
        &mut self,
        call: impl FnOnce(&mut dyn ADBDeviceExt) -> Result<T, CallError>,
    ) -> PhoneResult<T> {
        let live = self.live()?;
        match call(live.device.as_mut()) {
            Ok(value) => Ok(value),
            Err(CallError::Adb(error)) => {
                let reason = live.relay.reason().unwrap_or_else(|| error.to_string());
                self.close();
                Err(unreachable(&self.serial, reason))
            }
            Err(CallError::Phone(error)) => {
                if matches!(
                    error,
                    PhoneError::Truncated { .. } | PhoneError::Unreachable { .. }
                ) {
                    self.close();
                }
                Err(error)
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}
