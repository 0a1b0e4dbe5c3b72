//! The service layer: each flow that more than one entry point offers (the REST API, the admin
//! UI, the command line, the demo) exists once here, with its validation, policy and audit.
//! The entry points translate input and output; the store below holds the data.

pub mod access;
pub mod agent_reports;
pub mod configuration;
pub mod history;
pub mod identity;
pub mod plugins;
pub mod recordings;
pub mod report_days;
pub mod reports;
pub mod rules;
pub mod saved_reports;
pub mod telephony;
pub mod tenants;
