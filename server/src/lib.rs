//! The Youmi server: the HTTP API for admins and clients, the bind route and
//! WebSocket gateway for device agents, and persistence on SQLite or
//! PostgreSQL. The scheduling rules live in `youmi-controller`; this crate
//! feeds it requests and frames and gives it a SQL [`Store`](youmi_controller::Store).
//!
//! # Layout
//! - [`Server`]: start (database, migrations, first admin, scheduler, listener),
//!   run until a signal or a scheduler failure, shut down gracefully.
//! - [`config`]: the command line and `YOUMI_*` variables; [`cli`]: `main`.
//! - [`db`]: the two pools (one writer) over `sqlx::Any`, chosen by URL;
//!   [`checkpointer`]: SQLite's WAL checkpoints, beside the writer.
//! - [`scheduler_store`]: the controller's `Store` over SQL, and the snapshot
//!   it is rebuilt from at start-up.
//! - [`http`]: the feature kit (the one error type, extractors, the `/api/v1`
//!   session guard and [`AuthUser`](http::extract::AuthUser), pages,
//!   selections, unique-constraint answers, the failed-attempt limiter); it
//!   imports no feature.
//! - [`console`]: the web console's kit (sessions in cookies, CSRF, the
//!   languages, the layout, assets); each feature keeps its pages in its
//!   own `pages.rs`.
//! - [`app`]: every feature's router and pages mounted behind the kit's layers.
//! - One module per feature, each with its router and handlers in `mod.rs`
//!   and its SQL in `store.rs`, built with the kit: [`auth`], [`operator_accounts`],
//!   [`bind_codes`], [`agent_bind`], [`gateway`], [`tasks`], [`devices`], [`device_logs`],
//!   [`notifications`].
//! - [`health`]: `/health/live`, `/health/ready`, and the guard that refuses
//!   writes while storage fails.
//! - [`storage`]: which database errors are transient, and the identity of
//!   the SQLite file.
//! - [`prometheus`]: `/metrics` on a listener of its own, and the count of
//!   HTTP responses.
//! - [`secrets`]: tokens, codes and ids from the OS random generator.
//!
//! # Invariants
//! - Every statement that writes goes through `Db::write`; on SQLite that
//!   pool has one connection.
//! - Tasks are created and changed only by the scheduler; the API reads them.
//! - Tokens are stored only as SHA-256 hashes and never logged.

#![warn(missing_docs)]

pub mod agent_bind;
pub mod app;
pub mod auth;
pub mod bind_codes;
pub mod checkpointer;
pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod device_logs;
pub mod devices;
pub mod gateway;
pub mod health;
pub mod http;
pub mod notifications;
pub mod operator_accounts;
pub mod prometheus;
pub mod scheduler_store;
pub mod secrets;
pub mod storage;
pub mod tasks;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use youmi_controller::{Controller, ControllerConfig, SystemClock};

use crate::checkpointer::Checkpointer;
use crate::db::Db;
use crate::gateway::Gateway;
use crate::http::rate_limit::RateLimiter;
use crate::prometheus::Metrics;
use crate::scheduler_store::SqlStore;

/// How long a shutdown waits for open requests and connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a shutdown waits for the scheduler's last commit.
const FLUSH_GRACE: Duration = Duration::from_secs(10);

/// Values derived from the configuration that handlers need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where agents reach this server; goes into bind QR codes.
    pub public_url: String,
    /// How long a bind code works.
    pub bind_code_ttl_ms: i64,
    /// How long a login session lasts.
    pub session_ttl_ms: i64,
    /// Where uploaded files live (the agents' logs under `device-logs/`).
    pub data_dir: PathBuf,
}

/// What every handler shares; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The scheduler.
    pub controller: Controller,
    /// Derived configuration.
    pub settings: Arc<Settings>,
    /// Failed binds per address.
    pub bind_limiter: Arc<RateLimiter>,
    /// Failed logins per address.
    pub login_limiter: Arc<RateLimiter>,
    /// The agent gateway's connection cap, ids and shutdown signal.
    pub gateway: Arc<Gateway>,
    /// An argon2 hash of a random password, checked when a login names an
    /// unknown job number so that it takes as long as a known one.
    pub dummy_hash: Arc<str>,
    /// The server's metrics, when `/metrics` is served.
    pub metrics: Option<Metrics>,
}

/// Caps glibc's malloc arenas at two, unless `MALLOC_ARENA_MAX` says
/// otherwise. glibc gives threads that meet contention arenas of their own, up
/// to eight per core, and memory spreads over many half-empty arenas. The
/// server's binaries allocate Rust memory with jemalloc (`src/main.rs`); glibc
/// still serves C code, SQLite above all, and any program that embeds the
/// server without an allocator of its own. Call it first thing in `main`.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of the allocator; glibc allows
        // it at any time, from any thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// A running server.
pub struct Server {
    /// The address the listener is bound to (the real port when 0 was asked).
    local_addr: SocketAddr,
    /// The address `/metrics` is served on, when it is.
    metrics_addr: Option<SocketAddr>,
    /// The metrics listener's task, stopped by `shutdown` as the API's is.
    metrics_serve: Option<JoinHandle<std::io::Result<()>>>,
    /// Set to true to stop: the listener stops accepting and agent sockets close.
    shutdown: watch::Sender<bool>,
    /// The HTTP server task.
    serve: JoinHandle<std::io::Result<()>>,
    /// Kept to watch for a scheduler failure.
    controller: Controller,
    /// Completes once the controller's writer dropped its store, i.e. after
    /// its last commit.
    store_released: oneshot::Receiver<()>,
    /// SQLite's WAL checkpoints; stopped before the database closes.
    checkpointer: Option<Checkpointer>,
    /// Closed last.
    db: Db,
}

impl Server {
    /// Opens the database (runs migrations, creates the first admin), rebuilds the scheduler from it,
    /// binds config.listen (port 0 allowed) and starts serving.
    pub async fn start(config: config::Config) -> anyhow::Result<Server> {
        let url = match &config.database_url {
            Some(url) => url.clone(),
            None => db::default_url(&config.data_dir)?,
        };
        let db = Db::open(&url).await?;
        db.migrate().await?;
        operator_accounts::store::fill_wecom_keys(&db)
            .await
            .context("cannot fill the case-folded keys of wecom_user_id")?;
        device_logs::clean_up_interrupted(&db, &config.data_dir)
            .await
            .context("cannot clean up the log uploads a stop cut off")?;
        auth::bootstrap_admin(&db, config.admin_password.as_deref())
            .await
            .context("cannot create the first admin")?;
        let snapshot = scheduler_store::load_snapshot(&db)
            .await
            .context("cannot load the scheduler's state from the database")?;
        // A recorder only when /metrics is served: without one, every metric
        // call of the controller and the router is a no-op.
        let metrics = config.metrics_listen.map(|_| Metrics::new());
        let mut store = SqlStore::new(db.clone());
        let store_released = store.release_signal();
        let controller = Controller::start(
            snapshot,
            store,
            SystemClock,
            ControllerConfig {
                assign_resend_ms: config.assign_resend_ms,
                assign_max_sends: config.assign_max_sends,
                assign_deliver_ms: config.assign_deliver_ms,
                offline_after_ms: config.offline_after_ms,
                // Silent devices are offline at once; this only bounds how long
                // their sockets stay open.
                offline_check_ms: (config.offline_after_ms / 4).clamp(100, 5_000),
                auto_resume_unit_ms: config.auto_resume_unit_ms,
                max_attempts: config.max_attempts,
                retry_delay_ms: config.retry_delay_ms,
                // SQLite runs statements on threads of its own; PostgreSQL's
                // sockets belong to this runtime. Dispatch benchmark, SQLite:
                // see docs/bench-history.md, sixth session.
                writer_thread: db.backend == db::Backend::Sqlite,
                metrics: metrics.as_ref().map(Metrics::controller_recorder),
                ..ControllerConfig::default()
            },
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener
            .local_addr()
            .context("cannot read the listener's address")?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(bind_metrics(addr, local_addr).await?),
            None => None,
        };
        let metrics_addr = metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()
            .context("cannot read the metrics listener's address")?;
        let public_url = public_url(config.public_url.as_deref(), local_addr)?;
        let dummy_hash = auth::hash_password(secrets::token())
            .await
            .context("cannot prepare the login check")?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = AppState {
            db: db.clone(),
            controller: controller.clone(),
            settings: Arc::new(Settings {
                public_url,
                bind_code_ttl_ms: secs_to_ms(config.bind_code_ttl_secs),
                session_ttl_ms: secs_to_ms(config.session_ttl_hours.saturating_mul(3_600)),
                data_dir: config.data_dir.clone(),
            }),
            bind_limiter: Arc::new(RateLimiter::new(config.failed_attempts_per_minute)),
            login_limiter: Arc::new(RateLimiter::new(config.failed_attempts_per_minute)),
            gateway: Arc::new(Gateway::new(
                config.max_agent_connections,
                Duration::from_secs(config.agent_idle_timeout_secs.max(1)),
                shutdown_rx.clone(),
            )),
            dummy_hash: Arc::from(dummy_hash),
            metrics: metrics.clone(),
        };
        let app = app::router(state);
        // Agents' frames are small and latency matters more than packing.
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let mut stopping = shutdown_rx;
        let serve = tokio::spawn(
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            })
            .into_future(),
        );
        let metrics_serve = metrics_listener
            .zip(metrics)
            .map(|(listener, metrics)| prometheus::serve(listener, metrics, shutdown.subscribe()));
        let checkpointer = Checkpointer::start(&db, checkpointer::INTERVAL);
        tracing::info!(
            address = %local_addr,
            metrics = ?metrics_addr,
            backend = ?db.backend,
            "youmi-server listening"
        );
        Ok(Server {
            local_addr,
            metrics_addr,
            metrics_serve,
            shutdown,
            serve,
            controller,
            store_released,
            checkpointer,
            db,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address `/metrics` is served on (the real port when 0 was asked),
    /// or `None` when metrics are off.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Graceful: stop accepting, close agent sockets, let the controller's writer flush, close the pool.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop(false).await
    }

    /// Runs until ctrl-c/SIGTERM (then graceful shutdown) or until the controller fails (then Err).
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        let controller = self.controller.clone();
        tokio::select! {
            () = shutdown_signal() => {
                tracing::info!("stop signal received; shutting down");
                drop(controller);
                self.stop(false).await
            }
            reason = controller.failed() => {
                tracing::error!(%reason, "the scheduler failed; stopping");
                drop(controller);
                // Fail-stop: the database holds everything that was committed,
                // and a restart rebuilds from it.
                if let Err(error) = self.stop(false).await {
                    tracing::warn!(error = format!("{error:#}"), "shutdown after the failure");
                }
                Err(anyhow::anyhow!("the scheduler failed: {reason}"))
            }
            served = &mut self.serve => {
                drop(controller);
                let reason = match served {
                    Ok(Ok(())) => "the http server stopped".to_owned(),
                    Ok(Err(error)) => format!("the http server failed: {error}"),
                    Err(error) => format!("the http server task failed: {error}"),
                };
                let _ = self.stop(true).await;
                Err(anyhow::anyhow!(reason))
            }
        }
    }

    async fn stop(mut self, serve_done: bool) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        if !serve_done {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.serve).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => tracing::warn!(%error, "the http server failed"),
                Ok(Err(error)) => tracing::warn!(%error, "the http server task failed"),
                Err(_) => {
                    tracing::warn!("requests still open after the grace period; closing them");
                    self.serve.abort();
                }
            }
        }
        if let Some(mut serve) = self.metrics_serve.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut serve).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => tracing::warn!(%error, "the metrics listener failed"),
                Ok(Err(error)) => tracing::warn!(%error, "the metrics listener's task failed"),
                Err(_) => {
                    tracing::warn!("a scrape still open after the grace period; closing it");
                    serve.abort();
                }
            }
        }
        // The router, and with it every other handle, is gone now; dropping
        // this one lets the scheduler stop and its writer commit what is left.
        drop(self.controller);
        if tokio::time::timeout(FLUSH_GRACE, self.store_released)
            .await
            .is_err()
        {
            tracing::warn!("the scheduler did not stop in time; closing the database anyway");
        }
        if let Some(checkpointer) = self.checkpointer.take() {
            if tokio::time::timeout(FLUSH_GRACE, checkpointer.stop())
                .await
                .is_err()
            {
                tracing::warn!("a WAL checkpoint is still running; closing the database anyway");
            }
        }
        if tokio::time::timeout(FLUSH_GRACE, self.db.close())
            .await
            .is_err()
        {
            tracing::warn!("database connections still busy; leaving them");
        }
        tracing::info!("youmi-server stopped");
        Ok(())
    }
}

/// Binds the metrics listener at `addr`, refusing the port of the API's
/// listener `api`: `/metrics` is never served with the API.
async fn bind_metrics(addr: SocketAddr, api: SocketAddr) -> anyhow::Result<TcpListener> {
    anyhow::ensure!(
        addr.port() == 0 || addr.port() != api.port(),
        "YOUMI_METRICS_LISTEN ({addr}) must not use the API's port {}: metrics are served apart from the API",
        api.port()
    );
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1_000)).unwrap_or(i64::MAX)
}

/// The server's public URL: the configured one, else `http://` and the
/// listen address, without a trailing slash.
fn public_url(configured: Option<&str>, local_addr: SocketAddr) -> anyhow::Result<String> {
    match configured {
        Some(url) => {
            let url = url.trim().trim_end_matches('/');
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "YOUMI_PUBLIC_URL must start with http:// or https://, not `{url}`"
            );
            Ok(url.to_owned())
        }
        None => Ok(format!("http://{local_addr}")),
    }
}

/// Resolves on ctrl-c, or on SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_defaults_to_the_listen_address() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(public_url(None, addr).unwrap(), "http://127.0.0.1:8080");
        assert_eq!(
            public_url(Some("https://youmi.example/"), addr).unwrap(),
            "https://youmi.example"
        );
        assert!(public_url(Some("youmi.example"), addr).is_err());
    }
}
