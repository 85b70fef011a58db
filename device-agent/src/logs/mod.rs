//! The agent's own log and its upload (seed 7.1, 上传日志).
//!
//! # Layout
//! - [`file`]: the size-capped rotating file (`<state_dir>/logs/agent.log`,
//!   `agent.log.1`, ...; `--log-max-bytes`, `--log-files`).
//! - [`layer`]: the tracing layer that writes it; in fleet mode one log per
//!   phone, in the phone's own state directory.
//! - [`archive`]: the `.tar.gz` an upload sends: the logs, the evidence of
//!   failed steps, a manifest; never over the protocol's upload cap.
//! - [`upload`]: packing and POSTing it as a stream, in the background.

pub mod archive;
pub mod file;
pub mod layer;
pub mod upload;

use std::path::{Path, PathBuf};

pub use file::{LogLimits, RotatingFile, LOG_FILE};
pub use layer::FileLayer;

/// The log's folder in a state directory.
pub const LOG_DIR: &str = "logs";

/// The log folder of the agent whose state directory is `state_dir`.
pub fn log_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(LOG_DIR)
}

/// What an upload from `state_dir` sends: its log files and its evidence.
pub fn sources(state_dir: &Path) -> archive::Sources {
    archive::Sources {
        logs: file::log_files(&log_dir(state_dir)),
        evidence_dir: state_dir.join(crate::fleet::EVIDENCE_DIR),
    }
}
