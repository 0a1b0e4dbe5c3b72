//! A tenant's plugins, one flow each for the REST API, the admin UI, the command line and the
//! demo. Installing and upgrading: the component is checked, the operator's policy and the
//! tenant's storage quota are applied, the package is stored and installed, the running tenant
//! forgets what it had loaded, and the change is audited. Changing an installation: its
//! configuration checked against the plugin's schema, its secrets against what it declares,
//! what it asks for approved before it is enabled; removing it; running a dead letter again.

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
    /// The configuration or secrets given are not what the plugin declares; pointers as the
    /// API's body names them (`config/port`, `secrets/password`).
    #[error("invalid input")]
    Invalid(crate::domain::Validation),
    /// Enabling needs the tenant's approval of these capabilities first.
    #[error("the plugin asks for capabilities that were not approved")]
    NeedsApproval(Vec<String>),
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

/// What changing a tenant's installations needs: the store, and the running system where
/// there is one.
#[derive(Clone, Copy)]
pub struct Running<'a> {
    pub store: &'a Store,
    /// The running plugin runtime: told to forget the tenant's loaded installations, runs dead
    /// letters again. `None` from the command line, where no server runs in this process (a
    /// server notices a change within its reload interval).
    pub plugins: Option<&'a Dispatcher>,
    /// Where what a replayed dead letter emitted goes.
    pub live: Option<&'a crate::live::service::LiveService>,
}

impl<'a> Running<'a> {
    /// The running server's plugins.
    pub fn server(store: &'a Store, plugins: &'a Dispatcher, live: &'a crate::live::service::LiveService) -> Self {
        Self {
            store,
            plugins: Some(plugins),
            live: Some(live),
        }
    }

    /// No server in this process: the command line.
    pub fn offline(store: &'a Store) -> Self {
        Self {
            store,
            plugins: None,
            live: None,
        }
    }

    fn forget_installations(&self, scope: &TenantScope) {
        if let Some(plugins) = self.plugins {
            plugins.forget_installations(scope.tenant_id());
        }
    }
}

/// A change to an installation; what is left out stays as it is.
#[derive(Debug, Default)]
pub struct Change {
    pub enabled: Option<bool>,
    pub config: Option<serde_json::Value>,
    /// Values for secrets the plugin declares (write-only: never shown again).
    pub secrets: std::collections::BTreeMap<String, String>,
    /// With `enabled: Some(true)`: approve what the plugin asks for.
    pub approve_capabilities: bool,
}

/// Longest secret value, characters.
const MAX_SECRET: usize = 8192;

/// Changes installation `id` (by plugin id or installation id). The configuration that will
/// run must match the plugin's schema; an installation is enabled only once what it asks for
/// is approved. Secrets, the approval and the change are each audited.
pub async fn update(
    running: Running<'_>,
    scope: &TenantScope,
    origin: &Origin,
    id: &str,
    change: Change,
) -> Result<Installation, PluginError> {
    let before = plugins::get(running.store, scope, id).await?;
    let manifest = plugins::manifest(running.store, &before.digest).await?;
    let config = match &change.config {
        Some(config) => config.clone(),
        None => serde_json::from_str(&before.config).unwrap_or_default(),
    };
    let mut invalid = crate::domain::Validation::new();
    if (change.config.is_some() || change.enabled == Some(true))
        && let Some(schema) = &manifest.config
        && let Err(problems) = crate::plugins::config::check(schema, &config)
    {
        for problem in problems {
            invalid.add(&format!("config{}", problem.pointer), problem.message);
        }
    }
    for (name, value) in &change.secrets {
        if !manifest.capabilities.secrets.contains_key(name) {
            invalid.add(&format!("secrets/{name}"), "the plugin declares no such secret");
        } else if value.is_empty() || value.chars().count() > MAX_SECRET {
            invalid.add(&format!("secrets/{name}"), "must be 1 to 8192 characters");
        }
    }
    invalid.finish().map_err(PluginError::Invalid)?;
    let pending = if change.enabled == Some(true) {
        // Named with the configuration that will run, which this change may set.
        pending_with(running.store, &before, &config).await?
    } else {
        Vec::new()
    };
    if !pending.is_empty() && !change.approve_capabilities {
        return Err(PluginError::NeedsApproval(pending));
    }
    if !change.secrets.is_empty() {
        for (name, value) in &change.secrets {
            plugins::set_secret(running.store, scope, &before.id, name, value).await?;
        }
        let names: Vec<&str> = change.secrets.keys().map(String::as_str).collect();
        let event = AuditEvent::in_tenant(scope, "plugin.secret.set", Outcome::Success)
            .target("plugin", &before.id)
            .detail(format!("secrets set: {}", names.join(", ")));
        audit::record(running.store, event, origin).await;
    }
    if !pending.is_empty() {
        let approved = plugins::approve(running.store, scope, &before.id).await?;
        let event = AuditEvent::in_tenant(scope, "plugin.approve", Outcome::Success)
            .target("plugin", &approved.id)
            .change(None, Some(serde_json::json!({ "approved": pending })));
        audit::record(running.store, event, origin).await;
    }
    let mut after = before.clone();
    if change.config.is_some() {
        after = plugins::set_config(running.store, scope, &before.id, &config.to_string()).await?;
    }
    if let Some(enabled) = change.enabled {
        after = plugins::set_enabled(running.store, scope, &before.id, enabled).await?;
        running.forget_installations(scope);
    }
    if change.config.is_some() || change.enabled.is_some() {
        let event = AuditEvent::in_tenant(scope, "plugin.update", Outcome::Success)
            .target("plugin", &after.id)
            .change(Some(summary(&before)), Some(summary(&after)));
        audit::record(running.store, event, origin).await;
    }
    Ok(after)
}

/// Removes installation `id`; the running tenant stops it.
pub async fn remove(
    running: Running<'_>,
    scope: &TenantScope,
    origin: &Origin,
    id: &str,
) -> Result<Installation, PluginError> {
    let removed = plugins::remove(running.store, scope, id).await?;
    running.forget_installations(scope);
    let event = AuditEvent::in_tenant(scope, "plugin.remove", Outcome::Success)
        .target("plugin", &removed.id)
        .change(Some(summary(&removed)), None);
    audit::record(running.store, event, origin).await;
    Ok(removed)
}

/// How running a dead letter again went.
pub enum Replayed {
    /// The batch went through and is gone; this many events it emitted were accepted.
    Done { emitted: usize },
    /// The plugin failed again; the dead letter is kept with this error.
    FailedAgain(String),
}

/// Runs dead letter `letter` of installation `id` again; audited either way.
pub async fn replay(
    running: Running<'_>,
    scope: &TenantScope,
    origin: &Origin,
    id: &str,
    letter: &str,
) -> Result<Replayed, PluginError> {
    let (Some(runtime), Some(live)) = (running.plugins, running.live) else {
        return Err(PluginError::Unavailable(
            "dead letters run again on a running server".into(),
        ));
    };
    let installation = plugins::get(running.store, scope, id).await?;
    let ran = runtime.replay(scope.tenant(), &installation.id, letter).await?;
    let outcome = if ran.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    let event = AuditEvent::in_tenant(scope, "plugin.dead_letter.replay", outcome)
        .target("plugin", &installation.id)
        .detail(format!("dead letter {letter}"));
    audit::record(running.store, event, origin).await;
    match ran {
        Ok(emitted) => {
            let count = emitted.len();
            if !emitted.is_empty() {
                live.accept_from_plugin(scope, emitted).await?;
            }
            Ok(Replayed::Done { emitted: count })
        }
        Err(error) => Ok(Replayed::FailedAgain(error.to_string())),
    }
}

/// What `installation` asks for that the tenant has not approved, in words, each destination
/// as its configuration fills it (`tcp://pbx.example:5038` rather than `tcp://${host}:${port}`)
/// so the tenant sees where it will connect today. The approval itself covers the plugin's
/// declared destinations (the templates): a later configuration change is the tenant admin's
/// own, audited as such. A template the configuration does not fill stays as written.
pub async fn pending_capabilities(store: &Store, installation: &Installation) -> Result<Vec<String>, StoreError> {
    let config: serde_json::Value = serde_json::from_str(&installation.config).unwrap_or_default();
    pending_with(store, installation, &config).await
}

/// As [`pending_capabilities`], with the destinations filled from `config`.
async fn pending_with(
    store: &Store,
    installation: &Installation,
    config: &serde_json::Value,
) -> Result<Vec<String>, StoreError> {
    let pending = plugins::unapproved(store, installation).await?;
    if pending.is_empty() {
        return Ok(pending);
    }
    let manifest = plugins::manifest(store, &installation.digest).await?;
    let templates = destinations(&manifest.capabilities);
    Ok(pending
        .into_iter()
        .map(|line| with_configured(&line, &templates, config))
        .collect())
}

/// Every destination a plugin's capabilities name, longest first (so a template is never
/// replaced inside a longer one).
fn destinations(capabilities: &crate::plugins::manifest::Capabilities) -> Vec<String> {
    let mut all: Vec<String> = capabilities
        .http
        .iter()
        .chain(&capabilities.streams)
        .chain(capabilities.secrets.values())
        .filter(|d| d.contains("${"))
        .cloned()
        .collect();
    all.sort_by_key(|d| std::cmp::Reverse(d.len()));
    all.dedup();
    all
}

fn with_configured(line: &str, templates: &[String], config: &serde_json::Value) -> String {
    let mut line = line.to_owned();
    for template in templates {
        if line.contains(template.as_str())
            && let Some(filled) = crate::plugins::manifest::expand(template, config)
        {
            line = line.replace(template.as_str(), &filled);
        }
    }
    line
}
