//! Plugins in Monti's server: the host itself lives in `monti-plugin-host` (shared with the
//! authors' test harness); here are the parts that need a tenant, a store and the live floor —
//! delivery of events ([`dispatch`]), what is kept in memory for each tenant's plugins
//! ([`runtime`]), the connections plugins keep ([`streams`]), events between Monti's type and the
//! contract's ([`convert`]), and `monti plugin new` ([`scaffold`]).

pub mod convert;
pub mod dispatch;
pub mod runtime;
pub mod scaffold;
pub mod streams;

pub use monti_plugin_host::{
    Clock, Failure, FailureKind, Grants, HookRequest, HookResponse, Input, Invocation, Limits, LogLine, Outcome,
    PluginEngine, PluginError, ValidPlugin, WarmInstance, config, manifest, wit,
};

/// How long a package no installation uses is kept: long enough for an installation under way
/// to reach its package.
const UNUSED_PACKAGE_GRACE_MS: i64 = 60 * 60 * 1000;

/// Deletes packages no installation uses, at start and then every hour. Upgrades and removals
/// delete what they leave unused at once; this sweeps up uploads that were never installed.
pub fn start_package_collection(store: crate::store::Store) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            let before = crate::domain::time::now_ms() - UNUSED_PACKAGE_GRACE_MS;
            match crate::store::plugins::collect_unused_packages(&store, before).await {
                Ok(0) => {}
                Ok(freed) => tracing::info!(freed_bytes = freed, "deleted plugin packages no installation uses"),
                Err(e) => tracing::warn!(error = %e, "could not delete unused plugin packages"),
            }
        }
    });
}
