//! The hidden `__server` command: a real `youmi-server` on the database it is
//! given, listening on a free loopback port, run in its own process so that its
//! memory and open files are its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};
use youmi_server::config::Config;
use youmi_server::Server;

use crate::child::{on_stdin_closed, LISTENING};

/// The variable that carries the first admin's password to the child, so that
/// it never shows in a process list.
pub const ADMIN_PASSWORD_VAR: &str = "YOUMI_BENCH_ADMIN_PASSWORD";

/// Options of `youmi-bench __server`.
#[derive(Debug, Clone, Args)]
pub struct ServerChildArgs {
    /// The server's database URL.
    #[arg(long)]
    pub database_url: String,
    /// The server's data directory.
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// Runs the server until stdin closes (or a signal), then shuts it down
/// gracefully.
pub async fn run(args: ServerChildArgs) -> anyhow::Result<()> {
    // Installing the handler first means a stop that comes before the server
    // listens for it is not the default, immediate death.
    let _early_term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    // As youmi-server's own main does, so the figures are the deployed server's.
    youmi_server::tune_allocator();
    let mut config = Config::defaults();
    config.database_url = Some(args.database_url);
    config.data_dir = args.data_dir;
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.public_url = None;
    config.admin_password = Some(
        std::env::var(ADMIN_PASSWORD_VAR)
            .with_context(|| format!("{ADMIN_PASSWORD_VAR} is not set"))?,
    );
    let server = Server::start(config)
        .await
        .context("cannot start youmi-server")?;
    println!("{LISTENING}{}", server.local_addr());
    on_stdin_closed(|| loop {
        // The server stops on SIGTERM; repeat in case the first one came
        // before it listened for it.
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGTERM);
        }
        std::thread::sleep(Duration::from_millis(500));
    });
    server.run_until_stopped().await
}
