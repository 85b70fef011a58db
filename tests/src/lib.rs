//! The harness of Youmi's end-to-end tests: the real server over real HTTP and
//! WebSockets, each test on a fresh database, with in-process agents driving
//! simulated phones, hand-driven raw agents, and the real binaries as child
//! processes for `kill -9`.
//!
//! Set `YOUMI_TEST_DATABASE_URL` (a PostgreSQL URL of a database the suite may
//! create databases from) to run on PostgreSQL; otherwise every test gets a
//! temporary SQLite file. Set `TEST_LOG` to see the server's and agents' logs.
//!
//! # Layout
//! - [`db`]: [`TestDb`], one fresh database per test, dropped at the end.
//! - [`api`]: [`Api`], a typed client of the HTTP API logged in as the admin
//!   (or as any employee: [`Api::login_as`]): submit tasks, wait for states,
//!   pause, cancel, list devices; raw calls answered as an [`Answer`].
//! - [`answer`]: [`Answer`], one response read whole, and [`CallError`].
//! - [`app`]: [`TestApp`], the server started in-process on port 0 (derefs to
//!   its [`Api`]), and helpers to bind raw and in-process agents.
//! - [`raw`]: [`RawAgent`], a bare protocol client for what a real agent would
//!   never do.
//! - [`proxy`]: [`Proxy`], a TCP proxy between agents and server, to cut
//!   connections and follow a restarted server.
//! - [`process`]: the real binaries as child processes, killed when dropped.
//! - [`payloads`]: valid payloads of every task kind.
//! - [`scrape`]: [`Scrape`], a `/metrics` page parsed, to read samples by
//!   name and labels.
//! - [`phones`]: the phone simulator behind a private adb server, and
//!   in-process agents running the built-in WeCom flows on it over ADB.

pub mod answer;
pub mod api;
pub mod app;
pub mod db;
pub mod payloads;
pub mod phones;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod scrape;

pub use answer::{Answer, CallError};
pub use api::{
    eventually, expect_error, expect_json, http_client, now_ms, unique, Api, ADMIN_PASSWORD,
};
pub use app::{test_config, AgentSpec, TestAgent, TestApp};
pub use db::{Backend, TestDb};
pub use process::{ChildGuard, ServerProcess};
pub use proxy::Proxy;
pub use raw::{ConnectError, Incoming, RawAgent, Welcome};
pub use scrape::Scrape;
