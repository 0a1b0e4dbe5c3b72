//! Plugins in Monti's server: the host itself lives in `monti-plugin-host` (shared with the
//! authors' test harness); here are the parts that need a tenant, a store and the live floor —
//! delivery of events ([`dispatch`]), events between Monti's type and the contract's
//! ([`convert`]), and `monti plugin new` ([`scaffold`]).

pub mod convert;
pub mod dispatch;
pub mod scaffold;
pub mod streams;

pub use monti_plugin_host::{
    Clock, Failure, FailureKind, Grants, HookRequest, HookResponse, Input, Invocation, Limits, LogLine, Outcome,
    PluginEngine, PluginError, ValidPlugin, WarmInstance, config, manifest, wit,
};
