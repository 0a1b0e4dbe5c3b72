//! Hands a tenant's accepted events to its enabled event-handler plugins, one batch at a time per
//! tenant (so each installation sees events in order and its store is never written twice at
//! once), and collects what they emit. What is kept in memory for a tenant's plugins lives in
//! its [`TenantRuntime`](super::runtime::TenantRuntime), one per tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::manifest::FailurePolicy;
use super::runtime::{Installed, RunRecord, TenantPlugins, TenantRuntime, Warm, WarmSlots};
use super::streams::{Arrival, Disconnect, StreamHub};
use super::{Grants, Input, Invocation, Limits, PluginEngine, WarmInstance};
use crate::domain::events::Event;
use crate::store::{Store, StoreResult, TenantId, plugins};

/// Plugin instances that may exist at once in this process, warm ones included.
const INSTANCES: u32 = 64;
/// At most this many of them are kept warm; beyond, warm-preferring plugins run fresh.
const WARM_INSTANCES: usize = 32;

/// Waits before retrying a batch whose plugin said trying again may help; then it is a dead letter.
const RETRY_DELAYS: [std::time::Duration; 2] =
    [std::time::Duration::from_millis(200), std::time::Duration::from_secs(1)];

/// How long a look at a tenant's installations is trusted (changes apply within this).
const STAMP_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// How long the tenants known to hooks are trusted when the slug asked for is among them.
const HOOK_TENANTS_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// The source prefix of events plugins emit. They are not handed to plugins again (no loops).
pub const PLUGIN_SOURCE: &str = "plugin:";

pub struct Dispatcher {
    store: Store,
    /// What the operator allows.
    pub policy: crate::config::PluginsConfig,
    engine: OnceLock<Arc<PluginEngine>>,
    /// Each tenant's plugin runtime, made on its first use.
    tenants: Mutex<HashMap<String, Arc<TenantRuntime>>>,
    /// Warm instances held across all tenants.
    warm_slots: Arc<WarmSlots>,
    /// Where plugins' streams deliver.
    pub streams: StreamHub,
    /// Tenants by slug for inbound hooks, so an anonymous request for a tenant or installation
    /// that does not exist costs a map lookup, not a query.
    hook_tenants: tokio::sync::Mutex<HookTenants>,
}

/// Every tenant's slug, id and whether it is suspended, as last read.
#[derive(Default)]
struct HookTenants {
    read_at: Option<std::time::Instant>,
    by_slug: HashMap<String, (TenantId, bool)>,
}

/// The tenant an inbound hook request names.
#[derive(Debug, Clone)]
pub struct HookTenant {
    id: TenantId,
    slug: String,
}

impl HookTenant {
    pub fn id(&self) -> &TenantId {
        &self.id
    }

    /// What a webhook plugin emits is accepted on behalf of the system, not of a person.
    pub fn system_scope(&self, installation_id: &str) -> crate::store::TenantScope {
        crate::store::TenantScope::system(
            self.id.clone(),
            self.slug.clone(),
            crate::store::SystemActor::Hooks {
                installation: installation_id.to_owned(),
            },
        )
    }
}

/// What became of a supervisor's request.
#[derive(Debug)]
pub enum CommandOutcome {
    /// No connector is enabled in the tenant.
    NoConnector,
    /// Handed to the system; its effect arrives as events.
    Done {
        connector: String,
        answer: String,
        emitted: Vec<Event>,
    },
    /// The connector could not carry it out.
    Refused {
        connector: String,
        message: String,
        retryable: bool,
    },
}

/// What became of an inbound hook request.
#[derive(Debug)]
pub enum HookOutcome {
    /// No enabled webhook installation by that id.
    NotFound,
    /// Over the installation's request rate: retry after this many seconds.
    Limited(u32),
    /// The plugin's answer (or failure), and what it emitted.
    Ran(
        Result<Result<super::HookResponse, super::PluginError>, super::Failure>,
        Vec<Event>,
    ),
}

/// What a hook request needs of an installation once found.
struct RunnableRef {
    id: String,
    plugin_id: String,
    config: String,
}

/// A tenant's runtime with what it has loaded.
struct Loaded {
    runtime: Arc<TenantRuntime>,
    plugins: Arc<TenantPlugins>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn new(store: Store, policy: crate::config::PluginsConfig) -> Self {
        Self {
            store,
            policy,
            engine: OnceLock::new(),
            tenants: Mutex::new(HashMap::new()),
            warm_slots: Arc::default(),
            streams: StreamHub::default(),
            hook_tenants: tokio::sync::Mutex::new(HookTenants::default()),
        }
    }

    /// The engine, made when a tenant first has a plugin enabled.
    pub fn engine(&self) -> anyhow::Result<Arc<PluginEngine>> {
        if let Some(engine) = self.engine.get() {
            return Ok(engine.clone());
        }
        let engine = PluginEngine::new(INSTANCES)?;
        Ok(self.engine.get_or_init(|| engine).clone())
    }

    /// The tenant's runtime, made on first use.
    fn runtime(&self, tenant: &TenantId) -> Arc<TenantRuntime> {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.as_str().to_owned())
            .or_insert_with(|| Arc::new(TenantRuntime::new(tenant.clone(), &self.policy)))
            .clone()
    }

    /// The tenant's runtime if it has one already.
    fn existing_runtime(&self, tenant_id: &str) -> Option<Arc<TenantRuntime>> {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant_id)
            .cloned()
    }

    async fn installed(&self, tenant: &TenantId) -> StoreResult<Option<Loaded>> {
        let tenant_id = tenant.as_str();
        if !self.policy.enabled {
            return Ok(None);
        }
        let runtime = self.runtime(tenant);
        // Asked at most once a second per tenant: most tenants have no plugins, and their every
        // batch would otherwise cost a query.
        let stamp = match runtime.recent_stamp(STAMP_TTL) {
            Some(stamp) => stamp,
            None => {
                let stamp = plugins::enabled_stamp(&self.store, tenant).await?;
                runtime.set_stamp(Some(stamp));
                stamp
            }
        };
        if stamp.0 == 0 {
            // The last one was disabled: its streams close, its warm instances go.
            if runtime.has_loaded() {
                let _loading = runtime.loading.lock().await;
                let unwritten = runtime.replace_loaded(None);
                self.write_records(tenant, unwritten).await?;
            }
            return Ok(None);
        }
        let found = |runtime: &Arc<TenantRuntime>| {
            runtime.loaded_as_of(stamp).map(|plugins| Loaded {
                runtime: runtime.clone(),
                plugins,
            })
        };
        if let Some(found) = found(&runtime) {
            return Ok(Some(found));
        }
        // One load of a tenant's components at a time: requests arriving meanwhile wait for it
        // instead of each reading every component.
        let _loading = runtime.loading.lock().await;
        if let Some(found) = found(&runtime) {
            return Ok(Some(found));
        }
        let engine = self
            .engine()
            .map_err(|e| crate::store::StoreError::Internal(format!("{e:#}")))?;
        let mut installed = Vec::new();
        for runnable in plugins::enabled(&self.store, tenant).await? {
            match engine.validate(&runnable.component) {
                Ok(plugin) => installed.push(Installed {
                    id: runnable.id,
                    plugin_id: runnable.plugin_id,
                    config: runnable.config,
                    plugin,
                }),
                Err(failure) => {
                    tracing::warn!(tenant_id, plugin = %runnable.plugin_id, %failure, "an installed plugin no longer loads");
                }
            }
        }
        // What is no longer enabled gives back its warm instance and closes its streams.
        let loaded = Arc::new(TenantPlugins { stamp, installed });
        let unwritten = runtime.replace_loaded(Some(loaded.clone()));
        self.write_records(tenant, unwritten).await?;
        Ok(Some(Loaded {
            runtime: runtime.clone(),
            plugins: loaded,
        }))
    }

    /// Forgets everything kept for the tenant's plugins (its runs not written yet are written
    /// first): its streams close, its warm instances are dropped. Its next use starts afresh.
    pub async fn unload_tenant(&self, tenant: &TenantId) -> StoreResult<()> {
        let removed = self
            .tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant.as_str());
        if let Some(runtime) = removed {
            self.write_records(tenant, runtime.take_all_records()).await?;
        }
        Ok(())
    }

    /// Lets go of every loaded tenant that is not `active`: one suspended, or left with nothing
    /// enabled, perhaps by another instance (their streams close; runs not yet written are).
    pub async fn unload_all_but(&self, active: &[TenantId]) {
        let gone: Vec<TenantId> = self
            .tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|runtime| !active.contains(&runtime.tenant))
            .map(|runtime| runtime.tenant.clone())
            .collect();
        for tenant in gone {
            if let Err(e) = self.unload_tenant(&tenant).await {
                tracing::warn!(tenant = %tenant, error = %e, "letting go of a tenant's plugins");
            }
        }
    }

    /// The last time a stream of the installation ended on its own, if it has since this
    /// process started.
    pub fn last_disconnect(&self, tenant: &TenantId, installation_id: &str) -> Option<Disconnect> {
        self.existing_runtime(tenant.as_str())?
            .existing_streams(installation_id)?
            .last_disconnect()
    }

    /// A batch that could not be queued for delivery: a dead letter for each enabled
    /// installation that would have seen it, to replay later.
    pub async fn overflow(&self, tenant: &TenantId, events: &[Event]) -> StoreResult<()> {
        let batch: Vec<Event> = events
            .iter()
            .filter(|e| !e.source.starts_with(PLUGIN_SOURCE))
            .cloned()
            .collect();
        if batch.is_empty() {
            return Ok(());
        }
        let Some(loaded) = self.installed(tenant).await? else {
            return Ok(());
        };
        for installation in &loaded.plugins.installed {
            plugins::add_dead_letter(
                &self.store,
                tenant,
                &installation.id,
                &batch,
                "the plugin was too far behind to take this batch",
                0,
            )
            .await?;
            self.publish_dead_letter_depth(tenant, &installation.id).await;
        }
        Ok(())
    }

    /// Runs one installation on a batch: what it emitted, or its error and whether trying again
    /// may help.
    async fn run_installation(
        &self,
        runtime: &TenantRuntime,
        installation: &Installed,
        input: Input,
    ) -> StoreResult<Result<Vec<Event>, (String, bool)>> {
        Ok(self
            .run_answering(runtime, installation, input)
            .await?
            .map(|(emitted, _)| emitted))
    }

    /// As [`run_installation`](Self::run_installation), with a connector's answer to a command.
    async fn run_answering(
        &self,
        runtime: &TenantRuntime,
        installation: &Installed,
        input: Input,
    ) -> StoreResult<Result<(Vec<Event>, Option<String>), (String, bool)>> {
        let tenant = &runtime.tenant;
        let engine = self
            .engine()
            .map_err(|e| crate::store::StoreError::Internal(format!("{e:#}")))?;
        let kv = match runtime.kv(&installation.id) {
            Some(kv) => (*kv).clone(),
            None => {
                let kv = plugins::kv(&self.store, tenant, &installation.id).await?;
                runtime.set_kv(&installation.id, kv.clone());
                kv
            }
        };
        let plugin = installation.plugin.clone();
        let (grants, mut limits) = self
            .grants(tenant, &installation.id, &plugin.manifest, &installation.config)
            .await?;
        if let Err(over) = runtime.budget(&mut limits) {
            // Tried again later (a retry, then a dead letter): nothing is lost.
            return Ok(Err((over, true)));
        }
        let streams = if plugin.manifest.capabilities.streams.is_empty() {
            None
        } else {
            let allow_private = grants.allow_private_networks;
            runtime
                .streams(&installation.id, || {
                    self.streams.open_for(tenant.as_str(), &installation.id, allow_private)
                })
                .map(|streams| {
                    streams.set_allow_private(allow_private);
                    streams as Arc<dyn monti_plugin_host::StreamBroker>
                })
        };
        let streamed = matches!(input, Input::Stream(_));
        let invocation = Invocation {
            config_json: installation.config.clone(),
            kv,
            input,
            streams,
            ..Invocation::default()
        };
        let (kept, mut slot) = if plugin.manifest.limits.warm {
            runtime
                .take_warm(&installation.id)
                .map_or((None, None), |w| (Some(w.instance), Some(w.slot)))
        } else {
            (None, None)
        };
        let (ran, kept) = tokio::task::spawn_blocking(move || {
            if !plugin.manifest.limits.warm {
                return (engine.run(&plugin, invocation, &grants, &limits), None);
            }
            let instance = match kept.filter(|w| w.is_usable() && w.digest() == plugin.digest) {
                Some(instance) => Ok(instance),
                None => engine.warm(&plugin, None, &limits),
            };
            match instance {
                Ok(mut instance) => {
                    let ran = engine.run_warm(&mut instance, invocation, &grants, &limits);
                    (ran, Some(instance))
                }
                Err(failure) => (Err(failure), None),
            }
        })
        .await
        .map_err(|e| crate::store::StoreError::Internal(e.to_string()))?;
        if let Some(instance) = kept.filter(WarmInstance::is_usable) {
            // Beyond the process's warm instances, the next call runs fresh.
            if let Some(slot) = slot.take().or_else(|| self.warm_slots.take(WARM_INSTANCES)) {
                runtime.keep_warm(&installation.id, Warm { instance, slot });
            }
        }
        if let Ok(outcome) = &ran {
            runtime.spend(outcome.http.len(), outcome.emitted.len());
            if outcome.kv_changed {
                runtime.set_kv(&installation.id, outcome.kv.clone());
            }
        }
        let failed = !matches!(&ran, Ok(outcome) if outcome.result.is_ok());
        self.record(runtime, installation, failed);
        let returned = ran.as_ref().ok().and_then(|o| o.result.as_ref().err().cloned());
        let message = returned.as_ref().map(|e| e.message.clone());
        let emitted = self
            .settle(
                runtime,
                &installation.id,
                &installation.plugin_id,
                ran.as_ref(),
                message.as_deref(),
                streamed,
            )
            .await?;
        Ok(match (ran, returned) {
            (Ok(outcome), None) => Ok((emitted, outcome.answer)),
            (Ok(_), Some(error)) => Err((error.message, error.retryable)),
            // A trap repeats with the same input; only the plugin's own word says otherwise.
            (Err(failure), _) => Err((failure.to_string(), false)),
        })
    }

    /// Records a finished invocation: metrics, the installation's run record, audit entries for
    /// the secrets it used. Returns what it emitted, sourced `plugin:<id>` whatever it said.
    async fn settle(
        &self,
        runtime: &TenantRuntime,
        installation_id: &str,
        plugin_id: &str,
        ran: Result<&super::Outcome, &super::Failure>,
        returned_error: Option<&str>,
        streamed: bool,
    ) -> StoreResult<Vec<Event>> {
        let tenant = &runtime.tenant;
        let tenant_id = tenant.as_str();
        // Labelled by installation id, which Monti generates: a plugin's own id and the hosts it
        // calls are the tenant's words and do not belong on an unauthenticated /metrics.
        let labels = [("installation", installation_id.to_owned())];
        metrics::counter!("plugin_invocations_total", &labels).increment(1);
        match ran {
            Ok(outcome) => {
                metrics::histogram!("plugin_duration_seconds", &labels).record(outcome.duration.as_secs_f64());
                metrics::gauge!("plugin_memory_high_water_bytes", &labels).set(outcome.memory_high_water as f64);
                metrics::counter!("plugin_host_calls_total", &labels).increment(u64::from(outcome.host_calls));
                for (_, status) in &outcome.http {
                    let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
                    metrics::counter!("plugin_http_requests_total", "installation" => installation_id.to_owned(), "status" => status).increment(1);
                }
                if let Some(error) = returned_error {
                    metrics::counter!("plugin_failures_total", "installation" => installation_id.to_owned(), "kind" => "returned")
                        .increment(1);
                    tracing::info!(tenant_id, plugin = plugin_id, error, "a plugin returned an error");
                }
                let due = runtime.note_run(
                    installation_id,
                    outcome.kv_changed.then_some(&outcome.kv),
                    returned_error,
                    &outcome.logs,
                    streamed,
                );
                self.write_records(tenant, due.map(|r| (installation_id.to_owned(), r)))
                    .await?;
                self.audit_secret_uses(tenant, plugin_id, installation_id, &outcome.secret_uses)
                    .await;
                let source = format!("{PLUGIN_SOURCE}{plugin_id}");
                let (emitted, dropped) = super::convert::emitted(outcome.emitted.clone());
                if dropped > 0 {
                    tracing::info!(
                        tenant_id,
                        plugin = plugin_id,
                        dropped,
                        "a plugin emitted events with an impossible time"
                    );
                }
                Ok(emitted
                    .into_iter()
                    .map(|mut e| {
                        e.source = source.clone();
                        e
                    })
                    .collect())
            }
            Err(failure) => {
                metrics::counter!("plugin_failures_total", "installation" => installation_id.to_owned(), "kind" => failure.kind.as_str()).increment(1);
                tracing::warn!(tenant_id, plugin = plugin_id, %failure, "a plugin failed");
                let due = runtime.note_run(installation_id, None, Some(&failure.to_string()), &failure.logs, false);
                self.write_records(tenant, due.map(|r| (installation_id.to_owned(), r)))
                    .await?;
                Ok(Vec::new())
            }
        }
    }

    /// Writes installations' run records (runs, failures, the last error, their store and
    /// their recent log lines).
    async fn write_records(
        &self,
        tenant: &TenantId,
        records: impl IntoIterator<Item = (String, RunRecord)>,
    ) -> StoreResult<()> {
        for (installation_id, due) in records {
            plugins::record_runs(
                &self.store,
                tenant,
                &installation_id,
                due.runs,
                due.failures,
                due.kv.as_ref(),
                due.error.as_deref(),
                &due.logs,
            )
            .await?;
        }
        Ok(())
    }

    /// What an installation is granted, and the limits it runs under: what its manifest asks
    /// for (destinations filled from its configuration, the secrets that have a value), less
    /// what the operator denies the tenant's plugins.
    async fn grants(
        &self,
        tenant: &TenantId,
        installation_id: &str,
        manifest: &super::manifest::Manifest,
        config_json: &str,
    ) -> StoreResult<(Grants, Limits)> {
        let tenant_id = tenant.as_str();
        use crate::config::PluginCapability;
        let configured = plugins::secrets(&self.store, tenant, installation_id).await?;
        let slug = if self.policy.private_networks.is_empty() && self.policy.denied_capabilities.is_empty() {
            None
        } else {
            Some(crate::store::tenants::by_id(&self.store, tenant_id).await?.slug)
        };
        let private = slug
            .as_ref()
            .is_some_and(|slug| self.policy.private_networks.contains(slug));
        let config = serde_json::from_str(config_json).unwrap_or_default();
        let mut grants = Grants::requested(manifest, &config, &configured, private);
        let mut limits = Limits::requested(manifest);
        for denied in slug.map(|slug| self.policy.denied(&slug)).unwrap_or_default() {
            match denied {
                PluginCapability::Http => grants.http.clear(),
                PluginCapability::Secrets => grants.secrets.clear(),
                PluginCapability::Streams => grants.streams.clear(),
                PluginCapability::EmitsEvents => limits.max_emit = 0,
                PluginCapability::Kv => limits.kv_bytes = 0,
            }
        }
        Ok((grants, limits))
    }

    /// Runs a dead-lettered batch again on its (enabled) installation. On success the dead letter
    /// is gone and what the plugin emitted is returned; on failure it stays, with the new error.
    pub async fn replay(
        &self,
        tenant: &TenantId,
        installation_id: &str,
        letter_id: &str,
    ) -> StoreResult<Result<Vec<Event>, String>> {
        let events = plugins::dead_letter_events(&self.store, tenant, installation_id, letter_id).await?;
        let Some(loaded) = self.installed(tenant).await? else {
            return Ok(Err("the plugin is not enabled".into()));
        };
        let Some(installation) = loaded.plugins.installed.iter().find(|i| i.id == installation_id) else {
            return Ok(Err("the plugin is not enabled".into()));
        };
        let _turn = loaded.runtime.turn.lock().await;
        let input = Input::Events(events.iter().map(super::convert::to_wit).collect());
        let ran = self.run_installation(&loaded.runtime, installation, input).await?;
        match ran {
            Ok(emitted) => {
                plugins::delete_dead_letter(&self.store, tenant, letter_id).await?;
                self.publish_dead_letter_depth(tenant, &installation.id).await;
                Ok(Ok(emitted))
            }
            Err((error, _)) => {
                plugins::dead_letter_failed_again(&self.store, tenant, letter_id, &error).await?;
                Ok(Err(error))
            }
        }
    }

    /// Looks at the tenant's installations again on its next use: what an admin just enabled,
    /// disabled or removed on this instance applies at once (elsewhere within a second).
    pub fn forget_installations(&self, tenant_id: &str) {
        if let Some(runtime) = self.existing_runtime(tenant_id) {
            runtime.set_stamp(None);
        }
    }

    /// A tenant was changed (suspended, reactivated, renamed) here: hooks read tenants again
    /// on their next request. Other instances notice within [`HOOK_TENANTS_TTL`].
    pub async fn tenants_changed(&self) {
        self.hook_tenants.lock().await.read_at = None;
    }

    /// The active tenant a hook URL names. Tenants are read again when a slug is not known, at
    /// most once a second (a flood of made-up slugs costs one query a second), and every ten
    /// seconds otherwise (a suspension applies within that).
    pub async fn hook_tenant(&self, slug: &str) -> StoreResult<Option<HookTenant>> {
        let mut directory = self.hook_tenants.lock().await;
        let age = directory.read_at.map(|at| at.elapsed());
        let known = directory.by_slug.contains_key(slug);
        let stale = age.is_none_or(|age| age >= if known { HOOK_TENANTS_TTL } else { STAMP_TTL });
        if stale {
            directory.by_slug = crate::store::tenants::list_all(&self.store)
                .await?
                .into_iter()
                .map(|t| (t.slug, (t.id, t.suspended_at.is_some())))
                .collect();
            directory.read_at = Some(std::time::Instant::now());
        }
        Ok(directory
            .by_slug
            .get(slug)
            .filter(|(_, suspended)| !suspended)
            .map(|(id, _)| HookTenant {
                id: id.clone(),
                slug: slug.to_owned(),
            }))
    }

    /// Whether the tenant has an enabled webhook installation by that id: a look at what is
    /// loaded, so an unknown one is refused before its request body is read.
    pub async fn has_hook(&self, tenant: &TenantId, installation_id: &str) -> StoreResult<bool> {
        Ok(self.installed(tenant).await?.is_some_and(|loaded| {
            loaded
                .plugins
                .installed
                .iter()
                .any(|i| i.id == installation_id && i.plugin.manifest.world.exports().requests)
        }))
    }

    /// Hands an inbound request to the tenant's enabled webhook installation `installation_id`,
    /// within its request rate. Emitted events come back (sourced `plugin:<id>`) for the caller
    /// to accept. An unknown installation is found missing in the tenant's loaded plugins
    /// (looked up at most once a second), without reading any component.
    pub async fn hook(
        &self,
        tenant: &TenantId,
        installation_id: &str,
        request: super::HookRequest,
    ) -> StoreResult<HookOutcome> {
        let Some(loaded) = self.installed(tenant).await? else {
            return Ok(HookOutcome::NotFound);
        };
        let runtime = &loaded.runtime;
        let Some(installed) = loaded
            .plugins
            .installed
            .iter()
            .find(|i| i.id == installation_id && i.plugin.manifest.world.exports().requests)
        else {
            return Ok(HookOutcome::NotFound);
        };
        if let Err(wait) = runtime.admit_hook(&installed.id) {
            metrics::counter!("plugin_hook_limited_total").increment(1);
            return Ok(HookOutcome::Limited(wait));
        }
        let engine = self
            .engine()
            .map_err(|e| crate::store::StoreError::Internal(format!("{e:#}")))?;
        let plugin = installed.plugin.clone();
        let runnable = RunnableRef {
            id: installed.id.clone(),
            plugin_id: installed.plugin_id.clone(),
            config: installed.config.clone(),
        };
        let kv = plugins::kv(&self.store, tenant, &runnable.id).await?;
        let (grants, mut limits) = self
            .grants(tenant, &runnable.id, &plugin.manifest, &runnable.config)
            .await?;
        if runtime.budget(&mut limits).is_err() {
            return Ok(HookOutcome::Limited(60));
        }
        let invocation = Invocation::events(runnable.config.clone(), kv, Vec::new());
        let ran = {
            tokio::task::spawn_blocking(move || engine.handle_request(&plugin, invocation, request, &grants, &limits))
                .await
                .map_err(|e| crate::store::StoreError::Internal(e.to_string()))?
        };
        if let Ok((_, outcome)) = &ran {
            runtime.spend(outcome.http.len(), outcome.emitted.len());
        }
        let error = match &ran {
            Ok((Err(e), _)) => Some(e.message.clone()),
            _ => None,
        };
        let emitted = self
            .settle(
                runtime,
                &runnable.id,
                &runnable.plugin_id,
                ran.as_ref().map(|(_, o)| o),
                error.as_deref(),
                false,
            )
            .await?;
        Ok(HookOutcome::Ran(ran.map(|(answer, _)| answer), emitted))
    }

    /// Every use of a secret is audited: one entry per secret and destination per batch.
    async fn audit_secret_uses(
        &self,
        tenant: &TenantId,
        plugin_id: &str,
        installation_id: &str,
        uses: &[(String, String)],
    ) {
        let mut counted: std::collections::BTreeMap<&(String, String), u32> = std::collections::BTreeMap::new();
        for used in uses {
            *counted.entry(used).or_default() += 1;
        }
        for ((name, destination), times) in counted {
            let event = crate::store::audit::AuditEvent::new(
                Some(tenant),
                &format!("{PLUGIN_SOURCE}{plugin_id}"),
                "plugin.secret.use",
                crate::store::audit::Outcome::Success,
            )
            .target("plugin", installation_id)
            .detail(format!("secret `{name}` sent to {destination} ({times}×)"));
            crate::store::audit::record(&self.store, event, &Default::default()).await;
        }
    }

    /// Whether the installation's circuit lets it run now; a skip is counted.
    fn admits(&self, runtime: &TenantRuntime, installation: &Installed) -> bool {
        let admits = runtime.circuit(&installation.id, &installation.plugin.digest).admits();
        if !admits {
            metrics::counter!("plugin_skipped_total", "installation" => installation.id.clone(), "reason" => "circuit_open").increment(1);
        }
        admits
    }

    fn record(&self, runtime: &TenantRuntime, installation: &Installed, failed: bool) {
        let (open, changed) = runtime.record_outcome(&installation.id, &installation.plugin.digest, failed);
        if changed {
            tracing::warn!(
                plugin = installation.plugin_id,
                open,
                "a plugin's circuit {}",
                if open { "opened" } else { "closed" }
            );
        }
        metrics::gauge!("plugin_circuit_open", "installation" => installation.id.clone())
            .set(f64::from(u8::from(open)));
    }

    /// Runs the tenant's enabled plugins on `events` (those not from plugins) and returns what
    /// they emitted, each event's source set to `plugin:<id>` whatever the plugin said.
    pub async fn deliver(&self, tenant: &TenantId, events: &[Event]) -> StoreResult<Vec<Event>> {
        let batch: Vec<Event> = events
            .iter()
            .filter(|e| !e.source.starts_with(PLUGIN_SOURCE))
            .cloned()
            .collect();
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let Some(loaded) = self.installed(tenant).await? else {
            return Ok(Vec::new());
        };
        let runtime = &loaded.runtime;
        let _turn = runtime.turn.lock().await;
        let mut emitted = Vec::new();
        // Webhooks and alert handlers take no events.
        let takes_events = |i: &&Installed| i.plugin.manifest.world.exports().events;
        for installation in loaded.plugins.installed.iter().filter(takes_events) {
            let dead_letters = installation.plugin.manifest.failure_policy == FailurePolicy::RetryThenDeadLetter;
            if !self.admits(runtime, installation) {
                if dead_letters {
                    // Kept for when the plugin works again.
                    plugins::add_dead_letter(
                        &self.store,
                        tenant,
                        &installation.id,
                        &batch,
                        "not delivered: the plugin's circuit was open after repeated failures",
                        0,
                    )
                    .await?;
                    self.publish_dead_letter_depth(tenant, &installation.id).await;
                }
                continue;
            }
            let mut attempt = 0;
            let failure = loop {
                let input = Input::Events(batch.iter().map(super::convert::to_wit).collect());
                let ran = self.run_installation(runtime, installation, input).await?;
                match ran {
                    Ok(out) => {
                        emitted.extend(out);
                        break None;
                    }
                    Err((error, retryable)) => {
                        if dead_letters && retryable && attempt < RETRY_DELAYS.len() {
                            tokio::time::sleep(RETRY_DELAYS[attempt]).await;
                            attempt += 1;
                            continue;
                        }
                        break Some(error);
                    }
                }
            };
            if let (Some(error), true) = (failure, dead_letters) {
                plugins::add_dead_letter(
                    &self.store,
                    tenant,
                    &installation.id,
                    &batch,
                    &error,
                    attempt as i64 + 1,
                )
                .await?;
                self.publish_dead_letter_depth(tenant, &installation.id).await;
                metrics::counter!("plugin_dead_letters_total", "installation" => installation.id.clone()).increment(1);
            }
        }
        Ok(emitted)
    }

    /// Hands alerts that fired or resolved to the tenant's alert handlers, one call each. A
    /// failure is recorded on the installation and counted; alerts are not retried (the next
    /// change brings the state again).
    pub async fn deliver_alerts(
        &self,
        tenant: &TenantId,
        alerts: &[crate::domain::alert::AlertChange],
    ) -> StoreResult<Vec<Event>> {
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        let Some(loaded) = self.installed(tenant).await? else {
            return Ok(Vec::new());
        };
        let handlers: Vec<&Installed> = loaded
            .plugins
            .installed
            .iter()
            .filter(|i| i.plugin.manifest.world.exports().alerts)
            .collect();
        if handlers.is_empty() {
            return Ok(Vec::new());
        }
        let wit_alerts: Vec<super::wit::alerts::Alert> = alerts.iter().map(super::convert::alert_to_wit).collect();
        let runtime = &loaded.runtime;
        let _turn = runtime.turn.lock().await;
        let mut emitted = Vec::new();
        for installation in handlers {
            if !self.admits(runtime, installation) {
                continue;
            }
            match self
                .run_installation(runtime, installation, Input::Alerts(wit_alerts.clone()))
                .await?
            {
                Ok(out) => emitted.extend(out),
                Err((error, _)) => {
                    tracing::info!(tenant_id = %tenant, plugin = %installation.plugin_id, error, "an alert handler failed");
                }
            }
        }
        Ok(emitted)
    }

    /// Sets the installation's `plugin_dead_letters` gauge.
    async fn publish_dead_letter_depth(&self, tenant: &TenantId, installation_id: &str) {
        if let Ok(depth) = plugins::dead_letter_depth(&self.store, tenant, installation_id).await {
            metrics::gauge!("plugin_dead_letters", "installation" => installation_id.to_owned()).set(depth as f64);
        }
    }

    /// Whether the tenant has a connector enabled (call control is offered then).
    pub async fn has_connector(&self, tenant: &TenantId) -> StoreResult<bool> {
        Ok(self.installed(tenant).await?.is_some_and(|loaded| {
            loaded
                .plugins
                .installed
                .iter()
                .any(|i| i.plugin.manifest.world.exports().commands)
        }))
    }

    /// Hands a supervisor's request to the tenant's enabled connector (in turn with its event
    /// batches). What it emitted comes back for the caller to accept.
    pub async fn command(
        &self,
        tenant: &TenantId,
        request: super::wit::commands::Request,
    ) -> StoreResult<CommandOutcome> {
        let Some(loaded) = self.installed(tenant).await? else {
            return Ok(CommandOutcome::NoConnector);
        };
        let Some(installation) = loaded
            .plugins
            .installed
            .iter()
            .find(|i| i.plugin.manifest.world == "connector")
        else {
            return Ok(CommandOutcome::NoConnector);
        };
        let _turn = loaded.runtime.turn.lock().await;
        Ok(
            match self
                .run_answering(&loaded.runtime, installation, Input::Command(request))
                .await?
            {
                Ok((emitted, answer)) => CommandOutcome::Done {
                    connector: installation.plugin_id.clone(),
                    answer: answer.unwrap_or_default(),
                    emitted,
                },
                Err((message, retryable)) => CommandOutcome::Refused {
                    connector: installation.plugin_id.clone(),
                    message,
                    retryable,
                },
            },
        )
    }

    /// Hands what arrived on plugins' streams to them, in order, one call per installation and
    /// run of items. Nothing is retried: a stream's data cannot be asked for again, and a
    /// connector resynchronises itself after a reconnect. Failures count towards the circuit.
    pub async fn deliver_arrivals(&self, tenant: &TenantId, arrivals: Vec<Arrival>) -> StoreResult<Vec<Event>> {
        let Some(loaded) = self.installed(tenant).await? else {
            return Ok(Vec::new());
        };
        let runtime = &loaded.runtime;
        let _turn = runtime.turn.lock().await;
        let mut emitted = Vec::new();
        let mut arrivals = arrivals.into_iter().peekable();
        while let Some(first) = arrivals.next() {
            let installation_id = first.installation_id.clone();
            let mut items = vec![(first.stream, first.item)];
            while let Some(next) = arrivals.next_if(|a| a.installation_id == installation_id) {
                items.push((next.stream, next.item));
            }
            let Some(installation) = loaded.plugins.installed.iter().find(|i| i.id == installation_id) else {
                continue;
            };
            if !self.admits(runtime, installation) {
                continue;
            }
            metrics::counter!("plugin_stream_items_total", "installation" => installation.id.clone())
                .increment(items.len() as u64);
            match self
                .run_installation(runtime, installation, Input::Stream(items))
                .await?
            {
                Ok(out) => emitted.extend(out),
                Err((error, _)) => {
                    tracing::info!(tenant_id = %tenant, plugin = %installation.plugin_id, error, "a plugin failed on stream data");
                }
            }
        }
        Ok(emitted)
    }

    /// The heartbeat of plugins that keep streams: an empty batch, in which a connector opens
    /// (or reopens) its connections and sends keep-alives. Called when the server starts and
    /// every few seconds after.
    pub async fn heartbeat(&self, tenant: &TenantId) -> StoreResult<Vec<Event>> {
        let Some(loaded) = self.installed(tenant).await? else {
            return Ok(Vec::new());
        };
        let runtime = &loaded.runtime;
        let _turn = runtime.turn.lock().await;
        let mut emitted = Vec::new();
        // Only installations configured with somewhere to connect to.
        let keeps_streams = |i: &&Installed| {
            let config = serde_json::from_str(&i.config).unwrap_or_default();
            !super::manifest::expand_all(&i.plugin.manifest.capabilities.streams, &config).is_empty()
        };
        for installation in loaded.plugins.installed.iter().filter(keeps_streams) {
            // A skip here is not counted: the heartbeat is the host's, not a delivery.
            if !runtime.circuit(&installation.id, &installation.plugin.digest).admits() {
                continue;
            }
            if let Ok(out) = self
                .run_installation(runtime, installation, Input::Events(Vec::new()))
                .await?
            {
                emitted.extend(out);
            }
        }
        Ok(emitted)
    }
}
