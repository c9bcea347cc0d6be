//! pilotlight as a library: the daemon's wiring ([`app::run`]), its command line ([`cli`]), and
//! the loading of secrets and telemetry. `main.rs` only parses flags, loads the config (exit 64
//! on a bad one), starts telemetry and calls [`app::run`]; the end-to-end tests call the same
//! `run` with port-0 listeners.

pub mod admin_client;
pub mod app;
pub mod cli;
#[cfg(test)]
mod metrics_doc;
pub mod plan_cmd;
pub mod secrets;
pub mod telemetry;

pub use app::{Daemon, Listeners, run};
