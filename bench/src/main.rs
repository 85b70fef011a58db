//! `youmi-bench`: measures the Youmi scheduler end to end, over real loopback
//! sockets, against a real `youmi-server` on a fresh database.
//!
//! Each scenario starts the server in a child process (this same binary, run
//! with a hidden subcommand), so that its memory can be read from
//! `/proc/<pid>/status` and so that the server and the simulated agents do not
//! share one process's open-file limit. The agents are light protocol clients
//! in this process: they bind through the real API, connect over WebSockets,
//! and accept and finish every task at once (a zero-latency phone). Each run
//! shows progress on stderr, prints a human summary, then one last line of JSON
//! with the figures. `docs/benchmarks.md` describes the scenarios and the last
//! measured figures.
//!
//! # Layout
//! - [`cli`]: the command line, one subcommand per scenario plus the hidden
//!   child-process commands, and `main`'s dispatch.
//! - [`scenarios`]: `dispatch`, `idle` and `fanout`, each a function from its
//!   options to a [`report::Report`].
//! - [`child`]: starting, watching and stopping a child process (the server or
//!   the bare endpoint) and reading its resident memory.
//! - [`server_child`]: the hidden `__server` command: a real `youmi-server`.
//! - [`raw`]: the hidden `__raw-server` command: a bare WebSocket endpoint that
//!   plays the four frames of a task with no scheduler and no database, the
//!   transport's limit that `dispatch` compares against.
//! - [`database`]: a fresh database per run, a temporary SQLite file or a
//!   `youmi_bench_<random>` database on PostgreSQL, dropped afterwards.
//! - [`api`]: the HTTP client of the server's API (login, accounts, bind
//!   codes, bind, task submission).
//! - [`agents`]: the simulated agents and the counters they share.
//! - [`report`]: the human summary, the JSON line and percentiles.
//! - [`limits`]: raising the open-file limit.

mod agents;
mod api;
mod child;
mod cli;
mod database;
mod limits;
mod raw;
mod report;
mod scenarios;
mod server_child;

/// The server's allocator (see `server/src/main.rs`): this binary runs the
/// server as its child (`__server`), and the bare endpoint and the clients
/// with the same allocator.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
