//! Runs every tenant's rules once a second against its live floor, keeps the alerts' lifecycle
//! and records what fired and resolved. Rules are reloaded when they change here
//! ([`RuleService::changed`]) and every half minute (changes made on another instance).
//!
//! Tenants are evaluated side by side, each within its time budget ([`super::eval::Budget`]):
//! one tenant's slow rules delay nobody else's. A rule that runs over its budget on
//! [`SUSPEND_AFTER`] ticks in a row is suspended — it stops running, says so on the rule and in
//! the audit log — until it is saved again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::engine::{RuleEngine, RuleError, RuleScope};
use super::eval::{AlertChange, Budget, Evaluator, FloorFacts, RULE_BUDGET, Rule, RuleRun, Severity};
use crate::store::alert_rules::{self, RuleRow, Suspension};
use crate::store::audit::{self, AuditEvent, Outcome};
use crate::store::{Store, SystemActor, TenantId, TenantScope};

/// How often rules are evaluated.
pub const TICK: Duration = Duration::from_secs(1);
/// How long a tenant's loaded rules are trusted before they are read again.
const RELOAD: Duration = Duration::from_secs(30);
/// Ticks in a row over budget after which a rule is suspended.
pub const SUSPEND_AFTER: u32 = 3;
/// Tenants evaluated at once (their database work included); a tenant's evaluation is bounded
/// by its budget, so a slot is never held long.
const CONCURRENT_TENANTS: usize = 8;

/// A rule row made runnable, or why it cannot run.
pub fn runnable(engine: &RuleEngine, row: &RuleRow) -> Result<Rule, RuleError> {
    let scope =
        RuleScope::parse(&row.scope).ok_or_else(|| RuleError::plain(format!("unknown scope `{}`", row.scope)))?;
    let compiled = engine.compile(scope, &row.expression)?;
    Ok(Rule {
        id: row.id.clone(),
        version: row.version,
        name: row.name.clone(),
        scope,
        queues: serde_json::from_str(&row.queues).unwrap_or_default(),
        teams: serde_json::from_str(&row.teams).unwrap_or_default(),
        severity: Severity::parse(&row.severity).unwrap_or(Severity::Warning),
        for_s: row.for_s.clamp(0, 86_400) as u32,
        message: row.message.clone(),
        targets: serde_json::from_str(&row.targets).unwrap_or_default(),
        compiled: Arc::new(compiled),
    })
}

/// One tenant's rules as loaded, and their state between ticks.
#[derive(Default)]
struct TenantRules {
    rules: Vec<Rule>,
    /// Rules that did not compile (saved by an older version, say): id → why.
    broken: HashMap<String, RuleError>,
    evaluator: Evaluator,
    runs: HashMap<String, RuleRun>,
    loaded: Option<Instant>,
    /// Open alerts of a previous run were taken over.
    restored: bool,
    /// Notifications held back so a target hears from a rule at most once a minute.
    throttle: super::notify::Throttle,
    /// The firing alerts were published once (after taking over a previous run's).
    restored_published: bool,
    /// Suspended rules (at their current version): id → why.
    suspended: HashMap<String, Suspension>,
    /// Ticks in a row each rule ran over budget: id → (version, ticks).
    strikes: HashMap<String, (i64, u32)>,
}

/// The rules of every tenant in this instance.
pub struct RuleService {
    pub engine: Arc<RuleEngine>,
    store: Store,
    /// For links in notifications.
    public_url: String,
    notify_interval_ms: i64,
    /// Alert handlers (plugins) get every change.
    plugins: Arc<crate::plugins::dispatch::Dispatcher>,
    tenants: Mutex<HashMap<String, Arc<tokio::sync::Mutex<TenantRules>>>>,
    /// Per tenant, the alerts firing now (for boards' banners), most severe first.
    firing: Mutex<HashMap<String, tokio::sync::watch::Sender<Firing>>>,
}

/// The alerts firing in a tenant.
pub type Firing = Arc<Vec<AlertChange>>;

/// What a rule did on its last tick, for its author.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct RuleStatus {
    /// Subjects it was evaluated on, and on how many it held.
    pub evaluated: u32,
    pub holding: u32,
    pub firing: u32,
    /// Why it did not compile or evaluate, on the last tick.
    pub error: Option<RuleError>,
    /// On how many subjects it failed.
    pub failed: u32,
    /// Not evaluated on every subject on the last tick: the tenant's rules used up their time.
    pub skipped: bool,
    /// Set while the rule is suspended for running over its time budget; saving it resumes it.
    pub suspended: Option<Suspended>,
}

/// Why and since when a rule is suspended.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Suspended {
    /// RFC 3339.
    pub at: String,
    pub reason: String,
}

impl RuleService {
    pub fn new(
        store: Store,
        public_url: String,
        notify_interval: Duration,
        plugins: Arc<crate::plugins::dispatch::Dispatcher>,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine: Arc::new(RuleEngine::new()),
            store,
            public_url,
            notify_interval_ms: notify_interval.as_millis() as i64,
            plugins,
            tenants: Mutex::new(HashMap::new()),
            firing: Mutex::new(HashMap::new()),
        })
    }

    fn firing_sender(&self, tenant_id: &str) -> tokio::sync::watch::Sender<Firing> {
        let mut firing = self.firing.lock().unwrap_or_else(|e| e.into_inner());
        firing
            .entry(tenant_id.to_owned())
            .or_insert_with(|| tokio::sync::watch::channel(Arc::new(Vec::new())).0)
            .clone()
    }

    /// The alerts firing in a tenant now, and every change after (boards' banners).
    pub fn firing(&self, tenant_id: &str) -> tokio::sync::watch::Receiver<Firing> {
        self.firing_sender(tenant_id).subscribe()
    }

    fn tenant(&self, tenant_id: &str) -> Arc<tokio::sync::Mutex<TenantRules>> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants.entry(tenant_id.to_owned()).or_default().clone()
    }

    /// A tenant's rules changed: read them again on the next tick.
    pub async fn changed(&self, tenant_id: &str) {
        self.tenant(tenant_id).lock().await.loaded = None;
    }

    /// Each rule's last tick.
    pub async fn status(&self, tenant_id: &str) -> HashMap<String, RuleStatus> {
        let tenant = self.tenant(tenant_id);
        let tenant = tenant.lock().await;
        let mut firing: HashMap<&str, u32> = HashMap::new();
        for alert in tenant.evaluator.firing() {
            *firing.entry(alert.rule_id.as_str()).or_default() += 1;
        }
        let mut out: HashMap<String, RuleStatus> = tenant
            .runs
            .iter()
            .map(|(id, run)| {
                (
                    id.clone(),
                    RuleStatus {
                        evaluated: run.evaluated,
                        holding: run.held,
                        firing: firing.get(id.as_str()).copied().unwrap_or(0),
                        error: run.error.as_ref().map(|(e, _)| e.clone()),
                        failed: run.error.as_ref().map_or(0, |(_, n)| *n),
                        skipped: run.skipped,
                        suspended: None,
                    },
                )
            })
            .collect();
        for (id, suspension) in &tenant.suspended {
            out.insert(
                id.clone(),
                RuleStatus {
                    error: Some(RuleError::plain(format!(
                        "suspended: {}; save the rule to run it again",
                        suspension.reason
                    ))),
                    suspended: Some(Suspended {
                        at: crate::domain::time::to_rfc3339(suspension.suspended_at),
                        reason: suspension.reason.clone(),
                    }),
                    ..RuleStatus::default()
                },
            );
        }
        for (id, error) in &tenant.broken {
            out.insert(
                id.clone(),
                RuleStatus {
                    error: Some(error.clone()),
                    ..RuleStatus::default()
                },
            );
        }
        out
    }

    /// Starts the ticks (once per process).
    pub fn start(self: &Arc<Self>, live: Arc<crate::live::service::LiveService>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_TENANTS));
            // Tenants whose tick is running: their next one waits for it, nobody else does.
            let running: Arc<Mutex<HashSet<TenantId>>> = Arc::default();
            loop {
                every.tick().await;
                let Some(service) = weak.upgrade() else { return };
                let tenants = match alert_rules::tenants_with_rules(&service.store).await {
                    Ok(tenants) => tenants,
                    Err(e) => {
                        tracing::warn!(error = %e, "looking up tenants with alert rules failed");
                        continue;
                    }
                };
                for (tenant_id, slug) in tenants {
                    if !running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(tenant_id.clone())
                    {
                        continue;
                    }
                    let (service, live, slots, running) =
                        (service.clone(), live.clone(), slots.clone(), running.clone());
                    tokio::spawn(async move {
                        if let Ok(_slot) = slots.acquire().await
                            && let Err(e) = service.tick(&live, tenant_id.clone(), slug).await
                        {
                            tracing::warn!(error = %e, "evaluating alert rules failed");
                        }
                        running.lock().unwrap_or_else(|e| e.into_inner()).remove(&tenant_id);
                    });
                }
            }
        });
    }

    /// Counts the rules that ran over budget on this tick; suspends those that did on
    /// [`SUSPEND_AFTER`] ticks in a row (recorded, so every instance and the API see it; audited).
    async fn suspend_overrunning(&self, scope: &TenantScope, state: &mut TenantRules) {
        let mut overrunning = Vec::new();
        for rule in &state.rules {
            let Some(run) = state.runs.get(&rule.id) else { continue };
            let strikes = state.strikes.entry(rule.id.clone()).or_insert((rule.version, 0));
            if strikes.0 != rule.version {
                *strikes = (rule.version, 0);
            }
            if run.over_budget {
                strikes.1 += 1;
            } else if !run.skipped {
                strikes.1 = 0;
            }
            if strikes.1 >= SUSPEND_AFTER {
                let why = run.error.as_ref().map_or_else(
                    || format!("it used up its {} ms", RULE_BUDGET.as_millis()),
                    |(e, _)| e.message.clone(),
                );
                let reason = format!("over its time budget on {SUSPEND_AFTER} ticks in a row ({why})");
                overrunning.push((
                    rule.name.clone(),
                    Suspension {
                        rule_id: rule.id.clone(),
                        version: rule.version,
                        suspended_at: crate::domain::time::now_ms(),
                        reason,
                    },
                ));
            }
        }
        for (name, suspension) in overrunning {
            if let Err(e) = alert_rules::suspend(&self.store, scope.tenant(), &suspension).await {
                // Suspended here all the same; recorded again on the next instance that sees it.
                tracing::warn!(error = %e, "recording a rule's suspension failed");
            }
            tracing::warn!(tenant = scope.tenant_slug(), rule = %name, "alert rule suspended: {}", suspension.reason);
            let event = AuditEvent::in_tenant(scope, "alert_rule.suspend", Outcome::Success)
                .target("alert_rule", &suspension.rule_id)
                .detail(format!("{} v{}: {}", name, suspension.version, suspension.reason));
            audit::record(&self.store, event, &Default::default()).await;
            state.rules.retain(|r| r.id != suspension.rule_id);
            state.strikes.remove(&suspension.rule_id);
            state.runs.remove(&suspension.rule_id);
            state.suspended.insert(suspension.rule_id.clone(), suspension);
        }
    }

    /// One tick of one tenant: the alerts that fired or resolved (also recorded).
    pub async fn tick(
        &self,
        live: &crate::live::service::LiveService,
        tenant: TenantId,
        slug: String,
    ) -> crate::store::StoreResult<Vec<AlertChange>> {
        let scope = TenantScope::system(tenant, slug, SystemActor::Rules);
        let tenant = self.tenant(scope.tenant_id());
        let mut tenant = tenant.lock().await;
        if tenant.loaded.is_none_or(|at| at.elapsed() > RELOAD) {
            let rows = alert_rules::list(&self.store, scope.tenant()).await?;
            // A suspension holds while the rule is at the version that was suspended.
            tenant.suspended = alert_rules::suspensions(&self.store, scope.tenant())
                .await?
                .into_iter()
                .filter(|s| rows.iter().any(|r| r.id == s.rule_id && r.version == s.version))
                .map(|s| (s.rule_id.clone(), s))
                .collect();
            // Compiled once per rule version: a rule that did not change keeps its compiled form.
            let mut compiled: HashMap<(String, i64), Rule> =
                tenant.rules.drain(..).map(|r| ((r.id.clone(), r.version), r)).collect();
            tenant.broken.clear();
            for row in &rows {
                if !row.enabled || tenant.suspended.contains_key(&row.id) {
                    continue;
                }
                if let Some(rule) = compiled.remove(&(row.id.clone(), row.version)) {
                    tenant.rules.push(rule);
                    continue;
                }
                match runnable(&self.engine, row) {
                    Ok(rule) => tenant.rules.push(rule),
                    Err(error) => {
                        tenant.broken.insert(row.id.clone(), error);
                    }
                }
            }
            tenant.loaded = Some(Instant::now());
        }
        if !tenant.restored {
            let open = alert_rules::open_alerts(&self.store, scope.tenant()).await?;
            tenant.evaluator.restore(open);
            tenant.restored = true;
        }
        let floor = live.floor(&scope).await?;
        let engine = self.engine.clone();
        let now = crate::domain::time::now_ms();
        // The evaluation is CPU work (milliseconds for thousands of agents): off the runtime.
        let mut state = std::mem::take(&mut *tenant);
        // Cheapest first (by the last tick): rules that run long use up the tick's time
        // themselves, not before the others ran.
        let last = &state.runs;
        state
            .rules
            .sort_by_key(|r| last.get(&r.id).map_or(Duration::ZERO, |run| run.elapsed));
        let (mut state, changes) = tokio::task::spawn_blocking(move || {
            let facts = FloorFacts::of(&floor, now);
            let (changes, runs) = state
                .evaluator
                .tick_within(&engine, &state.rules, &facts, now, &Budget::default());
            state.runs = runs;
            (state, changes)
        })
        .await
        .map_err(|e| crate::store::StoreError::Internal(format!("the rule evaluation failed: {e}")))?;
        self.suspend_overrunning(&scope, &mut state).await;
        alert_rules::record(&self.store, scope.tenant(), &changes).await?;
        // Notifications: silenced changes dropped, the rest grouped per rule and target.
        // Held notifications were filtered when they were held: silences matter for new changes.
        let silences = if changes.is_empty() {
            Vec::new()
        } else {
            alert_rules::silences(&self.store, scope.tenant(), now).await?
        };
        let silenced = |c: &AlertChange| {
            silences
                .iter()
                .any(|(rule, subject, _)| *rule == c.rule_id && subject.as_ref().is_none_or(|s| *s == c.subject))
        };
        let mut by_rule: HashMap<&str, Vec<AlertChange>> = HashMap::new();
        for change in changes.iter().filter(|c| !silenced(c)) {
            by_rule.entry(change.rule_id.as_str()).or_default().push(change.clone());
        }
        let mut outbox = Vec::new();
        state.throttle.interval_ms = self.notify_interval_ms;
        for rule in &state.rules {
            let fresh = by_rule.remove(rule.id.as_str()).unwrap_or_default();
            for target in &rule.targets {
                let key = target.to_string();
                if let Some(batch) = state.throttle.offer(&rule.id, &key, fresh.clone(), now) {
                    let (summary, body) = super::notify::compose(scope.tenant_slug(), &self.public_url, target, &batch);
                    outbox.push((rule.id.clone(), key, summary, body));
                }
            }
        }
        if !changes.is_empty() || !state.restored_published {
            let mut now_firing: Vec<AlertChange> = state.evaluator.firing().cloned().collect();
            now_firing.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.fired_ms.cmp(&b.fired_ms)));
            self.firing_sender(scope.tenant_id()).send_replace(Arc::new(now_firing));
            state.restored_published = true;
        }
        *tenant = state;
        drop(tenant);
        alert_rules::enqueue(&self.store, scope.tenant(), &outbox).await?;
        // Alert handlers (plugins) get every change; what they emit is accepted like any.
        if !changes.is_empty() {
            match self.plugins.deliver_alerts(scope.tenant(), &changes).await {
                Ok(emitted) if !emitted.is_empty() => {
                    if let Err(e) = live.accept_from_plugin(&scope, emitted).await {
                        tracing::warn!(error = %e, "storing what alert handlers emitted failed");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "handing alerts to plugins failed"),
            }
        }
        for change in &changes {
            let what = if change.resolved_ms.is_some() {
                "resolved"
            } else {
                "firing"
            };
            tracing::info!(tenant = scope.tenant_slug(), rule = %change.rule_name, subject = %change.subject, "alert {what}: {}", change.message);
        }
        Ok(changes)
    }
}
