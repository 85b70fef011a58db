//! Bodies of the core HTTP API (`/api/v1/...`) that clients and admins call,
//! one module per feature (its requests, answers and views), all re-exported
//! here so that `api::TaskView` and the like name them. `docs/api/` holds
//! the matching part of the contract, one file per feature.
//!
//! Times are Unix milliseconds in fields ending `_ms`; the contract's own
//! `not_before` and `expires_at` are milliseconds too.
//!
//! # Layout
//! - [`error`]: the error body of every failed request.
//! - [`page`]: the one page type of every list ([`Page`], [`Listed`]).
//! - One module per feature: [`auth`], [`operator_accounts`], [`bind_codes`],
//!   [`tasks`], [`devices`], [`device_logs`], [`notifications`], [`health`].

pub mod auth;
pub mod bind_codes;
pub mod device_logs;
pub mod devices;
pub mod error;
pub mod health;
pub mod notifications;
pub mod operator_accounts;
pub mod page;
pub mod tasks;

pub use auth::*;
pub use bind_codes::*;
pub use device_logs::*;
pub use devices::*;
pub use error::*;
pub use health::*;
pub use notifications::*;
pub use operator_accounts::*;
pub use page::*;
pub use tasks::*;
