//! Wire types of the Youmi agent protocol v1 and of the core HTTP API.
//!
//! This crate is the single definition of every message and route body that
//! crosses a socket between the server, device agents and clients. It depends on
//! serde only, so that a third-party agent written in Rust can use it as it is.
//! The contract itself is `docs/protocol.md`; its JSON examples are parsed by this
//! crate's tests, so the document and the types cannot drift apart.
//!
//! # Layout
//! - [`agent`]: the WebSocket frames, agent to server ([`AgentMessage`]) and
//!   server to agent ([`ServerMessage`]), and the bind route's bodies.
//! - [`settings`]: the agent settings object and the partial update of it.
//! - [`task`]: task kinds, states and the payload of each kind.
//! - [`task_error`]: the closed set of task error codes, who gives each, and what it means.
//! - [`delivery`]: the per-recipient, per-item outcomes a `finished` report's
//!   `result` carries.
//! - [`api`]: the bodies of the core HTTP API that clients and admins call.
//! - [`text`]: the one rule for text that reaches storage (no NUL).
//! - [`wide_int`]: ranged integers read wider, so the server can refuse them by name.
//!
//! Compatibility rule: names and shapes here never change; new message types,
//! routes and optional fields are added.

pub mod agent;
pub mod api;
pub mod delivery;
mod payload_text;
pub mod settings;
pub mod task;
pub mod task_error;
pub mod text;
pub mod wide_int;

pub use agent::{
    AgentMessage, AssignedTask, BindRequest, BindResponse, CallStatus, DeviceInfo, FinishedReport,
    Outcome, ServerMessage, TaskError, UpdateState,
};
pub use settings::{AgentSettings, AutoResume, SettingsPatch};
pub use task::{TaskKind, TaskPayload, TaskState};

/// Identifier of a task: unique across the whole deployment, increasing in
/// submission order.
pub type TaskId = i64;

/// Identifier of an operator account (one WeCom account on one phone).
pub type OperatorAccountId = i64;

/// The protocol version this crate describes.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest WebSocket frame either side accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// The largest `assign` frame the server sends and an agent takes, in bytes.
/// Submission refuses a task whose frame would be larger (413), so whatever
/// is accepted can be delivered.
pub const MAX_ASSIGN_FRAME_BYTES: usize = MAX_FRAME_BYTES;

/// The deepest nesting of arrays and objects in a task payload (the payload
/// itself is level 1). Submission refuses deeper payloads (422); the agent's
/// JSON reader takes an `assign` frame whose payload is this deep with room
/// to spare (serde_json stops at 128 levels).
pub const MAX_PAYLOAD_DEPTH: usize = 32;
