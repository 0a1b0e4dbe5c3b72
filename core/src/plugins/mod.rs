//! The plugin host: WebAssembly components written against `monti:plugin@1.0.0` (`sdk/wit`),
//! run sandboxed in wasmtime with limits on CPU time, memory and wall-clock time, and with only
//! the capabilities the host grants (PLUGINS.md).
//!
//! One [`PluginEngine`] per process: components are validated and compiled once per digest; every
//! event batch runs in a fresh instance, so no state leaks between batches or tenants. What a
//! plugin may touch comes in through [`Grants`] and [`Invocation`]; what it did comes back as an
//! [`Outcome`] (emitted events, log lines, memory high-water mark) or a classified [`Failure`].

pub mod config;
mod convert;
pub mod dispatch;
mod engine;
mod host;
pub mod manifest;
pub mod scaffold;

pub use engine::{
    Failure, FailureKind, Grants, HookRequest, HookResponse, Invocation, Limits, LogLine, Outcome, PluginEngine,
    PluginError, ValidPlugin,
};
