//! Hands a tenant's accepted events to its enabled event-handler plugins, one batch at a time per
//! tenant (so each installation sees events in order and its store is never written twice at
//! once), and collects what they emit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::manifest::FailurePolicy;
use super::streams::{Arrival, StreamHub};
use super::{Grants, Input, Invocation, Limits, PluginEngine, ValidPlugin, WarmInstance};
use crate::domain::events::Event;
use crate::store::{Store, StoreResult, plugins};

/// Plugin instances that may exist at once in this process, warm ones included.
const INSTANCES: u32 = 64;
/// At most this many of them are kept warm; beyond, warm-preferring plugins run fresh.
const WARM_INSTANCES: usize = 32;
/// Consecutive failures after which an installation's circuit opens.
const BREAK_AFTER: u32 = 5;
/// How long an open circuit skips the installation before one trial run (half-open).
const OPEN_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// Per (installation, version): consecutive failures, and since when the circuit is open.
#[derive(Debug, Default, Clone, Copy)]
struct Circuit {
    failures: u32,
    open_since: Option<std::time::Instant>,
}

impl Circuit {
    /// Whether to run now: closed, or open long enough for a trial.
    fn admits(&self) -> bool {
        self.open_since.is_none_or(|since| since.elapsed() >= OPEN_FOR)
    }

    fn record(&mut self, failed: bool) {
        if failed {
            self.failures += 1;
            if self.failures >= BREAK_AFTER {
                // Opened, or a failed trial keeps it open for another period.
                self.open_since = Some(std::time::Instant::now());
            }
        } else {
            *self = Circuit::default();
        }
    }
}

/// Waits before retrying a batch whose plugin said trying again may help; then it is a dead letter.
const RETRY_DELAYS: [std::time::Duration; 2] =
    [std::time::Duration::from_millis(200), std::time::Duration::from_secs(1)];

/// How long a look at a tenant's installations is trusted (changes apply within this).
const STAMP_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// How long the tenants known to hooks are trusted when the slug asked for is among them.
const HOOK_TENANTS_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// The source prefix of events plugins emit. They are not handed to plugins again (no loops).
pub const PLUGIN_SOURCE: &str = "plugin:";

struct Installed {
    id: String,
    plugin_id: String,
    config: String,
    plugin: ValidPlugin,
}

struct TenantPlugins {
    stamp: (i64, i64),
    installed: Vec<Installed>,
}

pub struct Dispatcher {
    store: Store,
    /// What the operator allows.
    pub policy: crate::config::PluginsConfig,
    engine: OnceLock<Arc<PluginEngine>>,
    tenants: Mutex<HashMap<String, Arc<TenantPlugins>>>,
    /// One delivery at a time per tenant.
    running: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One load of a tenant's installations at a time.
    loading: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When each tenant's installations were last looked up, and what they were.
    stamps: Mutex<HashMap<String, (std::time::Instant, plugins::Stamp)>>,
    /// Circuit breakers by (installation id, digest).
    circuits: Mutex<HashMap<(String, String), Circuit>>,
    /// Instances kept between batches, by (tenant, installation), for plugins that ask.
    warm: Mutex<HashMap<(String, String), WarmInstance>>,
    /// Each installation's key-value store as its last run left it (the database has the same,
    /// written when a run changed it): a connector's floor is read once, not on every call.
    kv_cache: Mutex<HashMap<String, Arc<Kv>>>,
    /// Stream runs not written yet, per installation: a connector runs dozens of times a second,
    /// and its run record is written at most once a second (and by any other run).
    pending_runs: Mutex<HashMap<String, PendingRuns>>,
    /// Connections kept for plugins.
    pub streams: StreamHub,
    /// Inbound hook requests: tokens left and when they were counted, per installation.
    hook_buckets: Mutex<HashMap<String, (f64, std::time::Instant)>>,
    /// What each tenant's plugins used this minute.
    usage: Mutex<HashMap<String, Usage>>,
    /// Tenants by slug for inbound hooks, so an anonymous request for a tenant or installation
    /// that does not exist costs a map lookup, not a query.
    hook_tenants: tokio::sync::Mutex<HookTenants>,
}

/// Every tenant's slug, id and whether it is suspended, as last read.
#[derive(Default)]
struct HookTenants {
    read_at: Option<std::time::Instant>,
    by_slug: HashMap<String, (String, bool)>,
}

/// The tenant an inbound hook request names.
#[derive(Debug, Clone)]
pub struct HookTenant {
    pub id: String,
    pub slug: String,
}

impl HookTenant {
    /// What a webhook plugin emits is accepted on behalf of the system, not of a person.
    pub fn system_scope(&self, installation_id: &str) -> crate::store::TenantScope {
        crate::store::TenantScope::verified(
            self.id.clone(),
            self.slug.clone(),
            crate::domain::Role::TenantAdmin,
            format!("system:hooks:{installation_id}"),
        )
    }
}

/// What a tenant's plugins may still use: buckets that refill at their quota per minute, up
/// to a minute's worth (so a quiet tenant can burst, a busy one is held to its rate).
#[derive(Debug, Clone, Copy)]
struct Usage {
    at: std::time::Instant,
    invocations: f64,
    http_calls: f64,
    events: f64,
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

/// An installation's key-value store.
type Kv = std::collections::BTreeMap<String, Vec<u8>>;

/// Runs of one installation recorded in memory since its record was last written.
struct PendingRuns {
    runs: i64,
    failures: i64,
    kv: Option<Kv>,
    error: Option<String>,
    logs: Vec<super::LogLine>,
    since: std::time::Instant,
}

/// How often a connector's stream runs are written.
const RUN_RECORD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

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
            running: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
            circuits: Mutex::new(HashMap::new()),
            stamps: Mutex::new(HashMap::new()),
            warm: Mutex::new(HashMap::new()),
            kv_cache: Mutex::new(HashMap::new()),
            pending_runs: Mutex::new(HashMap::new()),
            streams: StreamHub::default(),
            hook_buckets: Mutex::new(HashMap::new()),
            usage: Mutex::new(HashMap::new()),
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

    async fn installed(&self, tenant_id: &str) -> StoreResult<Option<Arc<TenantPlugins>>> {
        if !self.policy.enabled {
            return Ok(None);
        }
        // Asked at most once a second per tenant: most tenants have no plugins, and their every
        // batch would otherwise cost a query.
        let recent = self
            .stamps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant_id)
            .filter(|(at, _)| at.elapsed() < STAMP_TTL)
            .map(|(_, stamp)| *stamp);
        let stamp = match recent {
            Some(stamp) => stamp,
            None => {
                let stamp = plugins::enabled_stamp(&self.store, tenant_id).await?;
                self.stamps
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(tenant_id.to_owned(), (std::time::Instant::now(), stamp));
                stamp
            }
        };
        if stamp.0 == 0 {
            return Ok(None);
        }
        let loaded = || {
            self.tenants
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(tenant_id)
                .filter(|found| found.stamp == stamp)
                .cloned()
        };
        if let Some(found) = loaded() {
            return Ok(Some(found));
        }
        // One load of a tenant's components at a time: requests arriving meanwhile wait for it
        // instead of each reading every component.
        let gate = self
            .loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant_id.to_owned())
            .or_default()
            .clone();
        let _loading = gate.lock().await;
        if let Some(found) = loaded() {
            return Ok(Some(found));
        }
        let engine = self
            .engine()
            .map_err(|e| crate::store::StoreError::Internal(format!("{e:#}")))?;
        let mut installed = Vec::new();
        for runnable in plugins::enabled(&self.store, tenant_id).await? {
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
        // Warm instances of what is no longer enabled (or changed version) give their slot back.
        self.warm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(tenant, id), instance| {
                tenant != tenant_id
                    || installed
                        .iter()
                        .any(|i| &i.id == id && i.plugin.digest == instance.digest())
            });
        let enabled: Vec<String> = installed.iter().map(|i| i.id.clone()).collect();
        self.streams.retain(tenant_id, &enabled);
        let loaded = Arc::new(TenantPlugins { stamp, installed });
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant_id.to_owned(), loaded.clone());
        Ok(Some(loaded))
    }

    /// A batch that could not be queued for delivery: a dead letter for each enabled
    /// installation that would have seen it, to replay later.
    pub async fn overflow(&self, tenant_id: &str, events: &[Event]) -> StoreResult<()> {
        let batch: Vec<Event> = events
            .iter()
            .filter(|e| !e.source.starts_with(PLUGIN_SOURCE))
            .cloned()
            .collect();
        if batch.is_empty() {
            return Ok(());
        }
        let Some(tenant) = self.installed(tenant_id).await? else {
            return Ok(());
        };
        for installation in &tenant.installed {
            plugins::add_dead_letter(
                &self.store,
                tenant_id,
                &installation.id,
                &batch,
                "the plugin was too far behind to take this batch",
                0,
            )
            .await?;
            self.publish_dead_letter_depth(&installation.id).await;
        }
        Ok(())
    }

    /// The tenant's lock: one delivery (or replay) at a time.
    fn turn(&self, tenant_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant_id.to_owned())
            .or_default()
            .clone()
    }

    /// Runs one installation on a batch: what it emitted, or its error and whether trying again
    /// may help.
    async fn run_installation(
        &self,
        tenant_id: &str,
        installation: &Installed,
        input: Input,
    ) -> StoreResult<Result<Vec<Event>, (String, bool)>> {
        Ok(self
            .run_answering(tenant_id, installation, input)
            .await?
            .map(|(emitted, _)| emitted))
    }

    /// As [`run_installation`](Self::run_installation), with a connector's answer to a command.
    async fn run_answering(
        &self,
        tenant_id: &str,
        installation: &Installed,
        input: Input,
    ) -> StoreResult<Result<(Vec<Event>, Option<String>), (String, bool)>> {
        let key = (installation.id.clone(), installation.plugin.digest.clone());
        let engine = self
            .engine()
            .map_err(|e| crate::store::StoreError::Internal(format!("{e:#}")))?;
        let cached = self
            .kv_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&installation.id)
            .cloned();
        let kv = match cached {
            Some(kv) => (*kv).clone(),
            None => {
                let kv = plugins::kv(&self.store, &installation.id).await?;
                self.kv_cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(installation.id.clone(), Arc::new(kv.clone()));
                kv
            }
        };
        let plugin = installation.plugin.clone();
        let (grants, mut limits) = self
            .grants(tenant_id, &installation.id, &plugin.manifest, &installation.config)
            .await?;
        if let Err(over) = self.budget(tenant_id, &mut limits) {
            // Tried again later (a retry, then a dead letter): nothing is lost.
            return Ok(Err((over, true)));
        }
        let streams = if plugin.manifest.capabilities.streams.is_empty() {
            None
        } else {
            self.streams
                .broker(tenant_id, &installation.id, grants.allow_private_networks)
                .map(|b| b as Arc<dyn monti_plugin_host::StreamBroker>)
        };
        let streamed = matches!(input, Input::Stream(_));
        let invocation = Invocation {
            config_json: installation.config.clone(),
            kv,
            input,
            streams,
            ..Invocation::default()
        };
        let warm_key = (tenant_id.to_owned(), installation.id.clone());
        let kept = if plugin.manifest.limits.warm {
            self.warm.lock().unwrap_or_else(|e| e.into_inner()).remove(&warm_key)
        } else {
            None
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
            let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
            if warm.len() < WARM_INSTANCES {
                warm.insert(warm_key, instance);
            }
        }
        if let Ok(outcome) = &ran {
            self.spend(tenant_id, outcome.http.len(), outcome.emitted.len());
            if outcome.kv_changed {
                self.kv_cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(installation.id.clone(), Arc::new(outcome.kv.clone()));
            }
        }
        let failed = !matches!(&ran, Ok(outcome) if outcome.result.is_ok());
        self.record(&key, &installation.plugin_id, failed);
        let returned = ran.as_ref().ok().and_then(|o| o.result.as_ref().err().cloned());
        let message = returned.as_ref().map(|e| e.message.clone());
        let emitted = self
            .settle(
                tenant_id,
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
        tenant_id: &str,
        installation_id: &str,
        plugin_id: &str,
        ran: Result<&super::Outcome, &super::Failure>,
        returned_error: Option<&str>,
        streamed: bool,
    ) -> StoreResult<Vec<Event>> {
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
                self.record_run(
                    installation_id,
                    outcome.kv_changed.then_some(&outcome.kv),
                    returned_error,
                    &outcome.logs,
                    streamed,
                )
                .await?;
                self.audit_secret_uses(tenant_id, plugin_id, installation_id, &outcome.secret_uses)
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
                self.record_run(installation_id, None, Some(&failure.to_string()), &failure.logs, false)
                    .await?;
                Ok(Vec::new())
            }
        }
    }

    /// Records a run; a stream run only joins the pending record until a second has passed.
    async fn record_run(
        &self,
        installation_id: &str,
        kv: Option<&Kv>,
        error: Option<&str>,
        logs: &[super::LogLine],
        streamed: bool,
    ) -> StoreResult<()> {
        let due = {
            let mut pending = self.pending_runs.lock().unwrap_or_else(|e| e.into_inner());
            let entry = pending
                .entry(installation_id.to_owned())
                .or_insert_with(|| PendingRuns {
                    runs: 0,
                    failures: 0,
                    kv: None,
                    error: None,
                    logs: Vec::new(),
                    since: std::time::Instant::now(),
                });
            entry.runs += 1;
            entry.failures += i64::from(error.is_some());
            if let Some(kv) = kv {
                entry.kv = Some(kv.clone());
            }
            if let Some(error) = error {
                entry.error = Some(error.to_owned());
            }
            if !logs.is_empty() || !streamed {
                entry.logs = logs.to_vec();
            }
            if streamed && entry.since.elapsed() < RUN_RECORD_EVERY {
                return Ok(());
            }
            pending.remove(installation_id)
        };
        let Some(due) = due else { return Ok(()) };
        plugins::record_runs(
            &self.store,
            installation_id,
            due.runs,
            due.failures,
            due.kv.as_ref(),
            due.error.as_deref(),
            &due.logs,
        )
        .await
    }

    /// What an installation is granted, and the limits it runs under: what its manifest asks
    /// for (destinations filled from its configuration, the secrets that have a value), less
    /// what the operator denies the tenant's plugins.
    async fn grants(
        &self,
        tenant_id: &str,
        installation_id: &str,
        manifest: &super::manifest::Manifest,
        config_json: &str,
    ) -> StoreResult<(Grants, Limits)> {
        use crate::config::PluginCapability;
        let configured = plugins::secrets(&self.store, installation_id).await?;
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
        tenant_id: &str,
        installation_id: &str,
        letter_id: &str,
    ) -> StoreResult<Result<Vec<Event>, String>> {
        let events = plugins::dead_letter_events(&self.store, tenant_id, installation_id, letter_id).await?;
        let Some(tenant) = self.installed(tenant_id).await? else {
            return Ok(Err("the plugin is not enabled".into()));
        };
        let Some(installation) = tenant.installed.iter().find(|i| i.id == installation_id) else {
            return Ok(Err("the plugin is not enabled".into()));
        };
        let turn = self.turn(tenant_id);
        let _turn = turn.lock().await;
        let input = Input::Events(events.iter().map(super::convert::to_wit).collect());
        let ran = self.run_installation(tenant_id, installation, input).await?;
        match ran {
            Ok(emitted) => {
                plugins::delete_dead_letter(&self.store, tenant_id, letter_id).await?;
                self.publish_dead_letter_depth(&installation.id).await;
                Ok(Ok(emitted))
            }
            Err((error, _)) => {
                plugins::dead_letter_failed_again(&self.store, letter_id, &error).await?;
                Ok(Err(error))
            }
        }
    }

    /// Looks at the tenant's installations again on its next use: what an admin just enabled,
    /// disabled or removed on this instance applies at once (elsewhere within a second).
    pub fn forget_installations(&self, tenant_id: &str) {
        self.stamps.lock().unwrap_or_else(|e| e.into_inner()).remove(tenant_id);
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
    pub async fn has_hook(&self, tenant_id: &str, installation_id: &str) -> StoreResult<bool> {
        Ok(self.installed(tenant_id).await?.is_some_and(|tenant| {
            tenant
                .installed
                .iter()
                .any(|i| i.id == installation_id && i.plugin.manifest.world == "webhook")
        }))
    }

    /// Hands an inbound request to the tenant's enabled webhook installation `installation_id`,
    /// within its request rate. Emitted events come back (sourced `plugin:<id>`) for the caller
    /// to accept. An unknown installation is found missing in the tenant's loaded plugins
    /// (looked up at most once a second), without reading any component.
    pub async fn hook(
        &self,
        tenant_id: &str,
        installation_id: &str,
        request: super::HookRequest,
    ) -> StoreResult<HookOutcome> {
        let Some(tenant) = self.installed(tenant_id).await? else {
            return Ok(HookOutcome::NotFound);
        };
        let Some(installed) = tenant
            .installed
            .iter()
            .find(|i| i.id == installation_id && i.plugin.manifest.world == "webhook")
        else {
            return Ok(HookOutcome::NotFound);
        };
        if let Err(wait) = self.admit_hook(&installed.id) {
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
        let kv = plugins::kv(&self.store, &runnable.id).await?;
        let (grants, mut limits) = self
            .grants(tenant_id, &runnable.id, &plugin.manifest, &runnable.config)
            .await?;
        if self.budget(tenant_id, &mut limits).is_err() {
            return Ok(HookOutcome::Limited(60));
        }
        let invocation = Invocation::events(runnable.config.clone(), kv, Vec::new());
        let ran = {
            tokio::task::spawn_blocking(move || engine.handle_request(&plugin, invocation, request, &grants, &limits))
                .await
                .map_err(|e| crate::store::StoreError::Internal(e.to_string()))?
        };
        if let Ok((_, outcome)) = &ran {
            self.spend(tenant_id, outcome.http.len(), outcome.emitted.len());
        }
        let error = match &ran {
            Ok((Err(e), _)) => Some(e.message.clone()),
            _ => None,
        };
        let emitted = self
            .settle(
                tenant_id,
                &runnable.id,
                &runnable.plugin_id,
                ran.as_ref().map(|(_, o)| o),
                error.as_deref(),
                false,
            )
            .await?;
        Ok(HookOutcome::Ran(ran.map(|(answer, _)| answer), emitted))
    }

    /// Counts a call against the tenant's quota and narrows `limits` to what is left of it;
    /// `Err` with the reason when its calls are used up.
    fn budget(&self, tenant_id: &str, limits: &mut Limits) -> Result<(), String> {
        let quota = &self.policy.tenant_quota;
        let full = |n: u64| n as f64;
        let now = std::time::Instant::now();
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let left = usage.entry(tenant_id.to_owned()).or_insert(Usage {
            at: now,
            invocations: full(quota.invocations),
            http_calls: full(quota.http_calls),
            events: full(quota.events),
        });
        let minutes = now.duration_since(left.at).as_secs_f64() / 60.0;
        left.at = now;
        left.invocations = (left.invocations + minutes * full(quota.invocations)).min(full(quota.invocations));
        left.http_calls = (left.http_calls + minutes * full(quota.http_calls)).min(full(quota.http_calls));
        left.events = (left.events + minutes * full(quota.events)).min(full(quota.events));
        if left.invocations < 1.0 {
            metrics::counter!("plugin_quota_exceeded_total", "kind" => "invocations").increment(1);
            return Err(format!(
                "the tenant's plugins used their {} calls a minute",
                quota.invocations
            ));
        }
        left.invocations -= 1.0;
        limits.http_calls = limits.http_calls.min(left.http_calls.max(0.0) as u32);
        limits.max_emit = limits.max_emit.min(left.events.max(0.0) as usize);
        Ok(())
    }

    /// Takes what a call used from the tenant's buckets.
    fn spend(&self, tenant_id: &str, http_calls: usize, events: usize) {
        if let Some(left) = self.usage.lock().unwrap_or_else(|e| e.into_inner()).get_mut(tenant_id) {
            left.http_calls -= http_calls as f64;
            left.events -= events as f64;
        }
    }

    /// Takes a token from the installation's bucket (`plugins.hook_rate` a second, bursts of
    /// twice that), or says how many seconds until there is one.
    fn admit_hook(&self, installation_id: &str) -> Result<(), u32> {
        let rate = f64::from(self.policy.hook_rate.max(1));
        let burst = rate * 2.0;
        let now = std::time::Instant::now();
        let mut buckets = self.hook_buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = buckets.entry(installation_id.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u32)
        }
    }

    /// Every use of a secret is audited: one entry per secret and destination per batch.
    async fn audit_secret_uses(
        &self,
        tenant_id: &str,
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
                Some(tenant_id),
                &format!("{PLUGIN_SOURCE}{plugin_id}"),
                "plugin.secret.use",
                crate::store::audit::Outcome::Success,
            )
            .target("plugin", installation_id)
            .detail(format!("secret `{name}` sent to {destination} ({times}×)"));
            crate::store::audit::record(&self.store, event, &Default::default()).await;
        }
    }

    fn circuit(&self, key: &(String, String)) -> Circuit {
        self.circuits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
            .unwrap_or_default()
    }

    fn record(&self, key: &(String, String), plugin_id: &str, failed: bool) {
        let mut circuits = self.circuits.lock().unwrap_or_else(|e| e.into_inner());
        let circuit = circuits.entry(key.clone()).or_default();
        let was_open = circuit.open_since.is_some();
        circuit.record(failed);
        let open = circuit.open_since.is_some();
        if open != was_open {
            tracing::warn!(
                plugin = plugin_id,
                open,
                "a plugin's circuit {}",
                if open { "opened" } else { "closed" }
            );
        }
        metrics::gauge!("plugin_circuit_open", "installation" => key.0.clone()).set(f64::from(u8::from(open)));
    }

    /// Runs the tenant's enabled plugins on `events` (those not from plugins) and returns what
    /// they emitted, each event's source set to `plugin:<id>` whatever the plugin said.
    pub async fn deliver(&self, tenant_id: &str, events: &[Event]) -> StoreResult<Vec<Event>> {
        let batch: Vec<Event> = events
            .iter()
            .filter(|e| !e.source.starts_with(PLUGIN_SOURCE))
            .cloned()
            .collect();
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let Some(tenant) = self.installed(tenant_id).await? else {
            return Ok(Vec::new());
        };
        let turn = self.turn(tenant_id);
        let _turn = turn.lock().await;
        let mut emitted = Vec::new();
        // Webhooks and alert handlers take no events.
        let takes_events = |i: &&Installed| matches!(i.plugin.manifest.world.as_str(), "event-handler" | "connector");
        for installation in tenant.installed.iter().filter(takes_events) {
            let key = (installation.id.clone(), installation.plugin.digest.clone());
            let dead_letters = installation.plugin.manifest.failure_policy == FailurePolicy::RetryThenDeadLetter;
            if !self.circuit(&key).admits() {
                metrics::counter!("plugin_skipped_total", "installation" => installation.id.clone(), "reason" => "circuit_open").increment(1);
                if dead_letters {
                    // Kept for when the plugin works again.
                    plugins::add_dead_letter(
                        &self.store,
                        tenant_id,
                        &installation.id,
                        &batch,
                        "not delivered: the plugin's circuit was open after repeated failures",
                        0,
                    )
                    .await?;
                    self.publish_dead_letter_depth(&installation.id).await;
                }
                continue;
            }
            let mut attempt = 0;
            let failure = loop {
                let input = Input::Events(batch.iter().map(super::convert::to_wit).collect());
                let ran = self.run_installation(tenant_id, installation, input).await?;
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
                    tenant_id,
                    &installation.id,
                    &batch,
                    &error,
                    attempt as i64 + 1,
                )
                .await?;
                self.publish_dead_letter_depth(&installation.id).await;
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
        tenant_id: &str,
        alerts: &[crate::rules::eval::AlertChange],
    ) -> StoreResult<Vec<Event>> {
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        let Some(tenant) = self.installed(tenant_id).await? else {
            return Ok(Vec::new());
        };
        let handlers: Vec<&Installed> = tenant
            .installed
            .iter()
            .filter(|i| i.plugin.manifest.world == "alert-handler")
            .collect();
        if handlers.is_empty() {
            return Ok(Vec::new());
        }
        let wit_alerts: Vec<super::wit::alerts::Alert> = alerts.iter().map(super::convert::alert_to_wit).collect();
        let turn = self.turn(tenant_id);
        let _turn = turn.lock().await;
        let mut emitted = Vec::new();
        for installation in handlers {
            let key = (installation.id.clone(), installation.plugin.digest.clone());
            if !self.circuit(&key).admits() {
                metrics::counter!("plugin_skipped_total", "installation" => installation.id.clone(), "reason" => "circuit_open").increment(1);
                continue;
            }
            match self
                .run_installation(tenant_id, installation, Input::Alerts(wit_alerts.clone()))
                .await?
            {
                Ok(out) => emitted.extend(out),
                Err((error, _)) => {
                    tracing::info!(tenant_id, plugin = %installation.plugin_id, error, "an alert handler failed");
                }
            }
        }
        Ok(emitted)
    }

    /// Sets the installation's `plugin_dead_letters` gauge.
    async fn publish_dead_letter_depth(&self, installation_id: &str) {
        if let Ok((_, depth)) = plugins::dead_letter_depth(&self.store, installation_id).await {
            metrics::gauge!("plugin_dead_letters", "installation" => installation_id.to_owned()).set(depth as f64);
        }
    }

    /// Whether the tenant has a connector enabled (call control is offered then).
    pub async fn has_connector(&self, tenant_id: &str) -> StoreResult<bool> {
        Ok(self
            .installed(tenant_id)
            .await?
            .is_some_and(|t| t.installed.iter().any(|i| i.plugin.manifest.world == "connector")))
    }

    /// Hands a supervisor's request to the tenant's enabled connector (in turn with its event
    /// batches). What it emitted comes back for the caller to accept.
    pub async fn command(
        &self,
        tenant_id: &str,
        request: super::wit::commands::Request,
    ) -> StoreResult<CommandOutcome> {
        let Some(tenant) = self.installed(tenant_id).await? else {
            return Ok(CommandOutcome::NoConnector);
        };
        let Some(installation) = tenant.installed.iter().find(|i| i.plugin.manifest.world == "connector") else {
            return Ok(CommandOutcome::NoConnector);
        };
        let turn = self.turn(tenant_id);
        let _turn = turn.lock().await;
        Ok(
            match self
                .run_answering(tenant_id, installation, Input::Command(request))
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
    pub async fn deliver_arrivals(&self, tenant_id: &str, arrivals: Vec<Arrival>) -> StoreResult<Vec<Event>> {
        let Some(tenant) = self.installed(tenant_id).await? else {
            return Ok(Vec::new());
        };
        let turn = self.turn(tenant_id);
        let _turn = turn.lock().await;
        let mut emitted = Vec::new();
        let mut arrivals = arrivals.into_iter().peekable();
        while let Some(first) = arrivals.next() {
            let installation_id = first.installation_id.clone();
            let mut items = vec![(first.stream, first.item)];
            while let Some(next) = arrivals.next_if(|a| a.installation_id == installation_id) {
                items.push((next.stream, next.item));
            }
            let Some(installation) = tenant.installed.iter().find(|i| i.id == installation_id) else {
                continue;
            };
            let key = (installation.id.clone(), installation.plugin.digest.clone());
            if !self.circuit(&key).admits() {
                metrics::counter!("plugin_skipped_total", "installation" => installation.id.clone(), "reason" => "circuit_open").increment(1);
                continue;
            }
            metrics::counter!("plugin_stream_items_total", "installation" => installation.id.clone())
                .increment(items.len() as u64);
            match self
                .run_installation(tenant_id, installation, Input::Stream(items))
                .await?
            {
                Ok(out) => emitted.extend(out),
                Err((error, _)) => {
                    tracing::info!(tenant_id, plugin = %installation.plugin_id, error, "a plugin failed on stream data");
                }
            }
        }
        Ok(emitted)
    }

    /// The heartbeat of plugins that keep streams: an empty batch, in which a connector opens
    /// (or reopens) its connections and sends keep-alives. Called when the server starts and
    /// every few seconds after.
    pub async fn heartbeat(&self, tenant_id: &str) -> StoreResult<Vec<Event>> {
        let Some(tenant) = self.installed(tenant_id).await? else {
            return Ok(Vec::new());
        };
        let turn = self.turn(tenant_id);
        let _turn = turn.lock().await;
        let mut emitted = Vec::new();
        // Only installations configured with somewhere to connect to.
        let keeps_streams = |i: &&Installed| {
            let config = serde_json::from_str(&i.config).unwrap_or_default();
            !super::manifest::expand_all(&i.plugin.manifest.capabilities.streams, &config).is_empty()
        };
        for installation in tenant.installed.iter().filter(keeps_streams) {
            let key = (installation.id.clone(), installation.plugin.digest.clone());
            if !self.circuit(&key).admits() {
                continue;
            }
            if let Ok(out) = self
                .run_installation(tenant_id, installation, Input::Events(Vec::new()))
                .await?
            {
                emitted.extend(out);
            }
        }
        Ok(emitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_circuit_opens_after_repeated_failures_and_closes_on_success() {
        let mut circuit = Circuit::default();
        for _ in 0..BREAK_AFTER - 1 {
            circuit.record(true);
            assert!(circuit.admits(), "still closed");
        }
        circuit.record(true);
        assert!(!circuit.admits(), "open after {BREAK_AFTER} failures in a row");
        // A trial after the open period: success closes it, failure keeps it open.
        circuit.open_since = Some(std::time::Instant::now() - OPEN_FOR);
        assert!(circuit.admits(), "half-open: one trial");
        circuit.record(true);
        assert!(!circuit.admits(), "a failed trial opens it again");
        circuit.open_since = Some(std::time::Instant::now() - OPEN_FOR);
        circuit.record(false);
        assert!(circuit.admits() && circuit.failures == 0, "closed after a success");
    }
}
