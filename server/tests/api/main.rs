//! Focused tests of the server's pieces over real HTTP and WebSockets, on
//! SQLite, or on PostgreSQL when `YOUMI_TEST_DATABASE_URL` is set.

mod common;

mod accounts;
mod auth;
mod bind;
mod console;
mod device_logs;
mod devices;
mod errors;
mod gateway;
mod guard;
mod limits;
mod notifications;
mod ranges;
mod settings;
mod storage_faults;
mod store;
mod tasks;
mod text;
mod wecom_case;
