//! Installing and upgrading a tenant's plugins: one flow for the REST API, the admin UI, the
//! command line and the demo. The component is checked, the operator's policy and the tenant's
//! storage quota are applied, the package is stored and installed, the running tenant forgets
//! what it had loaded, and the change is audited.

use std::sync::Arc;

use crate::config::PluginsConfig;
use crate::plugins::dispatch::Dispatcher;
use crate::plugins::{PluginEngine, ValidPlugin};
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::plugins::{self, Installation};
use crate::store::{Store, StoreError, TenantScope};

/// Why a plugin was not installed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The bytes are not a component of a contract world this server runs.
    #[error("not an installable plugin: {0}")]
    NotInstallable(String),
    /// The operator's policy does not allow it for this tenant.
    #[error("{0}")]
    Refused(String),
    /// It would take the tenant over its storage for plugin packages.
    #[error("{0}")]
    TooLarge(String),
    /// Plugins cannot run on this server (the engine does not start).
    #[error("plugins cannot run on this server: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What installing needs from the running system.
pub struct PluginContext<'a> {
    pub store: &'a Store,
    pub policy: &'a PluginsConfig,
    pub engine: Arc<PluginEngine>,
    /// The running plugin runtime, told to reload the tenant's installations; `None` from the
    /// command line, where no server runs in this process.
    pub runtime: Option<&'a Dispatcher>,
}

impl<'a> PluginContext<'a> {
    /// The context of a running server.
    pub fn running(store: &'a Store, runtime: &'a Dispatcher) -> Result<Self, PluginError> {
        Ok(Self {
            store,
            policy: &runtime.policy,
            engine: runtime
                .engine()
                .map_err(|e| PluginError::Unavailable(format!("{e:#}")))?,
            runtime: Some(runtime),
        })
    }
}

/// A plugin as installed.
#[derive(Debug)]
pub struct Installed {
    pub installation: Installation,
    pub plugin: ValidPlugin,
    /// The installation it replaced (an upgrade), if any.
    pub before: Option<Installation>,
}

/// Checks `bytes` as a plugin component (on a blocking thread: compiling takes a while).
pub async fn check(engine: Arc<PluginEngine>, bytes: Arc<[u8]>) -> Result<ValidPlugin, PluginError> {
    tokio::task::spawn_blocking(move || engine.validate(&bytes))
        .await
        .map_err(|e| PluginError::Unavailable(e.to_string()))?
        .map_err(|failure| PluginError::NotInstallable(failure.message))
}

/// Installs the component in the caller's tenant, or upgrades the installation of the same
/// plugin. A new installation is disabled, with `config` (or `{}`), until an admin enables it.
pub async fn install(
    ctx: &PluginContext<'_>,
    scope: &TenantScope,
    origin: &Origin,
    bytes: Arc<[u8]>,
    config: Option<&str>,
) -> Result<Installed, PluginError> {
    let plugin = check(ctx.engine.clone(), bytes.clone()).await?;
    ctx.policy
        .admits(scope.tenant_slug(), &plugin.manifest)
        .map_err(PluginError::Refused)?;
    let stored = plugins::package_bytes(ctx.store, scope, &plugin.manifest.id).await?;
    ctx.policy
        .admits_package(stored, bytes.len())
        .map_err(PluginError::TooLarge)?;
    let before = plugins::get(ctx.store, scope, &plugin.manifest.id).await.ok();
    plugins::store_package(ctx.store, &plugin.digest, &plugin.manifest, &bytes).await?;
    let installed = plugins::install(ctx.store, scope, &plugin.digest, config.unwrap_or("{}")).await;
    if let Some(runtime) = ctx.runtime {
        runtime.forget_installations(scope.tenant_id());
    }
    let mut installation = installed?;
    if let Some(config) = config {
        // Checked against the plugin's schema; an upgrade keeps its configuration otherwise.
        installation = plugins::set_config(ctx.store, scope, &installation.id, config).await?;
    }
    let action = if before.is_some() {
        "plugin.upgrade"
    } else {
        "plugin.install"
    };
    let event = AuditEvent::in_tenant(scope, action, Outcome::Success)
        .target("plugin", &installation.id)
        .change(before.as_ref().map(summary), Some(summary(&installation)));
    audit::record(ctx.store, event, origin).await;
    Ok(Installed {
        installation,
        plugin,
        before,
    })
}

/// What the audit log keeps of an installation.
pub fn summary(i: &Installation) -> serde_json::Value {
    serde_json::json!({
        "id": i.id, "plugin_id": i.plugin_id, "version": i.version, "digest": i.digest,
        "enabled": i.enabled,
        "config": serde_json::from_str::<serde_json::Value>(&i.config).unwrap_or_default(),
    })
}
