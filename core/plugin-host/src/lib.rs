//! The plugin host: WebAssembly components written against `monti:plugin@1.x` — it implements
//! 1.4.0 (`sdk/wit/1.4.0`) and runs plugins built against any earlier 1.x — sandboxed in wasmtime
//! with limits on CPU time, memory and wall-clock time, and with only the capabilities the host
//! grants (docs/plugins.md). The worlds it runs, and since which version, are one table
//! ([`World`]).
//!
//! One [`PluginEngine`] per process: components are validated and compiled once per digest.
//! Every call runs in a fresh instance by default, so no state leaks between batches or tenants;
//! a plugin may opt into a [`WarmInstance`] kept between batches of one installation. What a
//! plugin may touch comes in through [`Grants`] and [`Invocation`] (with the network, clock and
//! streams behind traits, so Monti's server and the authors' test harness plug in their own);
//! what it did comes back as an [`Outcome`] or a classified [`Failure`].
//!
//! This crate is Monti's server-side host and the engine of `monti-plugin-test`: both run
//! plugins through the same linker and limits.

pub mod config;
mod engine;
mod host;
pub mod manifest;
pub mod net;
mod world;

pub use engine::{
    Clock, Failure, FailureKind, Grants, HookRequest, HookResponse, Input, Invocation, Limits, LogLine, Outcome,
    PluginEngine, PluginError, ValidPlugin, WarmInstance,
};
pub use host::{NetworkOutbound, Outbound, StreamBroker, stream_destination};
/// URLs as the host hands them to an [`Outbound`].
pub use url::Url;
pub use world::{Exports, World};

/// The contract's types as the host sees them (generated from `sdk/wit/1.4.0`).
pub mod wit {
    pub use crate::host::monti::plugin::http::{HttpError, Placement, Request, Response};
    pub use crate::host::monti::plugin::streams::{StreamItem, Target};
    pub use crate::host::monti::plugin::types::*;

    /// Supervisors' requests to connectors (1.2).
    pub mod commands {
        pub use crate::host::connector::monti::plugin::commands::*;
    }

    /// Alerts, for alert handlers (1.4).
    pub mod alerts {
        pub use crate::host::alert_handler::monti::plugin::alerts::*;
    }
}
