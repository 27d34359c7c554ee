//! The `wap-relay` service as a library: settings, wiring of the roles, telemetry. The binary
//! (`main.rs`) is a thin CLI over it, and the end-to-end tests start it in-process too.

pub mod app;
pub mod cli;
pub mod keys;
pub mod listener;
pub mod metrics;
pub mod settings;
pub mod telemetry;
pub mod tls;
