//! Monti: a self-hostable, multi-tenant contact-center operations platform.
//!
//! The crate is both the `monti` binary and a library so that integration tests and
//! benchmarks drive exactly the code that ships.

pub mod assets;
pub mod asterisk;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod i18n;
pub mod import;
pub mod live;
pub mod mail;
pub mod plugins;
pub mod recordings;
pub mod rules;
pub mod secrets;
pub mod service;
pub mod simulate;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod web;

/// Contact-center KPIs, defined once for the board, reports and alert rules.
pub use monti_domain::kpi;
/// The contact-center simulator (the demo, `monti simulate`, the tests).
pub use monti_sim::sim;

/// Network facts shared by everything that connects out on a tenant's behalf.
pub use monti_plugin_host::net;

/// The version printed by `monti version` and shown in the UI.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
