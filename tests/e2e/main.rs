//! End-to-end tests of the spine (issue 2): the real server on port 0 with a
//! fresh database (SQLite, or PostgreSQL when `YOUMI_TEST_DATABASE_URL` is set),
//! real HTTP and WebSockets, in-process agents with the simulated phone, raw
//! protocol clients, and the real binaries for `kill -9`.
//!
//! Each module is one area; each test asserts what a user or an agent sees.
//!
//! # Layout
//! - `adb`: the agent's WeCom flows over real adb on the phone simulator:
//!   every task kind, and every fault a phone throws.
//! - `agent_cli`: the `youmi-agent` binary: bind, run, kill, SIGTERM, revoked.
//! - `bind`: bind codes, binding, QR images, rate limiting.
//! - `calls`: a phone call pauses a task (nothing touches the screen), shows in
//!   the device view, fails the attempt with `call_in_progress` past the bound,
//!   and is hung up with `auto_hang_up`.
//! - `chaos`: 20 agents and 2,400 tasks through agent kills, two server
//!   `kill -9`s and a storage fault: every task ends once, none runs twice.
//! - `dispatch`: tasks run on phones, one at a time, by priority, `not_before`.
//! - `launch`: `launch`'s budget of BACK presses and restarts on a start screen
//!   the flows do not recognise; a phone slow to get idle.
//! - `layouts`: the built-in flows on a WeCom that shows its labels as text,
//!   and on one whose chat list is longer than the screen.
//! - `flow_constructs`: scrolling to a chat below the fold; a flow file that
//!   branches on the screen, picks with `nth` and `inside`, stops on several
//!   `fail_on`s and computes text.
//! - `logs`: log upload: an in-process agent packs its log and evidence and
//!   uploads them; admins list and download the archive.
//! - `media`: pictures under bare ids reach the album; each task sees only its own.
//! - `metrics`: `/metrics` on its own listener, off by default, and what it
//!   counts.
//! - `fleet`: `youmi-agent fleet` driving 50 simulated phones through adb.
//! - `fuzz`: generated agent frames and task payloads, hostile text included.
//! - `pause`: pause and resume from the API and the phone, auto-resume.
//! - `qr`: `youmi-agent bind --qr` with the QR image the server renders.
//! - `cancel`: cancelling queued and running tasks, by id, account, device, kind.
//! - `reconnect`: disconnects, lost tasks, idempotent `finished`, re-sent
//!   assigns, replaced connections, re-binding an account, offline detection.
//! - `devices`: the device list and agent settings.
//! - `restart`: `kill -9` and graceful restarts of the server.
//! - `bad_input`: every bad input of issue 2, with its answer, changing nothing.
//! - `phone_state`: do-not-disturb restored after a failed restore, the keyboard
//!   selected again.
//! - `poison`: tasks an agent cannot take: limits at submission, refusals,
//!   undeliverable assigns, cancelling before `accepted`.

mod adb;
mod agent_cli;
mod bad_input;
mod bind;
mod calls;
mod cancel;
mod chaos;
mod devices;
mod dispatch;
mod fleet;
mod flow_constructs;
mod fuzz;
mod launch;
mod layouts;
mod logs;
mod media;
mod metrics;
mod pause;
mod phone_state;
mod poison;
mod qr;
mod reconnect;
mod restart;

/// The real server's entry point, built as a binary of this package.
const SERVER_EXE: &str = env!("CARGO_BIN_EXE_e2e-youmi-server");

/// The real agent's entry point, built as a binary of this package.
const AGENT_EXE: &str = env!("CARGO_BIN_EXE_e2e-youmi-agent");
