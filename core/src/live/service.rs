//! The live path as one service: events are checked against the tenant's floor, stored by the
//! event writer, applied to the floor, and published to the streams by the hub. The ingest API
//! and the simulator both come through here, so an event from either is treated the same.

use std::sync::Arc;
use std::time::Duration;

use super::hub::{Hub, Publisher};
use super::registry::{Floor, LiveRegistry};
use crate::domain::FieldError;
use crate::domain::events::Event;
use crate::plugins::streams::Arrival;
use crate::store::audit::{self, AuditEvent, Outcome as AuditOutcome};
use crate::store::entities::agents::{Agent, AgentCreate};
use crate::store::events::{EventWriter, Stored};
use crate::store::{Store, StoreResult, TenantScope, resource, tenants};

/// The tenant feature flag that lets events create the agents they name.
pub const AUTO_CREATE_AGENTS: &str = "auto_create_agents";

/// What became of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accepted(i64),
    Duplicate,
    Rejected(Vec<FieldError>),
}

#[derive(Debug)]
pub struct LiveService {
    store: Store,
    pub registry: Arc<LiveRegistry>,
    pub writer: EventWriter,
    pub hub: Arc<Hub>,
    /// The tenants' plugins, which get every accepted event (the application holds the same
    /// dispatcher as [`crate::web::AppState::plugins`]).
    plugins: Arc<crate::plugins::dispatch::Dispatcher>,
    /// Per tenant, what waits for its plugins: event batches and what arrived on their streams.
    plugin_queues: std::sync::Mutex<std::collections::HashMap<String, PluginQueue>>,
}

#[derive(Debug, Clone)]
struct PluginQueue {
    batches: tokio::sync::mpsc::Sender<Vec<Event>>,
    arrivals: tokio::sync::mpsc::Sender<Arrival>,
}

/// Batches a tenant's plugins may fall behind by before further ones become dead letters.
const PLUGIN_QUEUE: usize = 256;
/// Stream items waiting for a tenant's plugins before their connections stop being read.
const ARRIVAL_QUEUE: usize = 4096;
/// Stream items handed to plugins in one go, at most.
const ARRIVALS_PER_CALL: usize = 4096;
/// How often plugins that keep streams get their heartbeat (an empty batch).
const HEARTBEAT: Duration = Duration::from_secs(5);

fn error(pointer: &str, detail: impl Into<String>) -> FieldError {
    FieldError {
        pointer: pointer.into(),
        detail: detail.into(),
    }
}

impl LiveService {
    /// `tick` is how often changes are published; `writer_queue` how many batches may wait to
    /// be stored before senders are asked to retry.
    pub fn new(
        store: Store,
        tick: Duration,
        writer_queue: usize,
        plugins: Arc<crate::plugins::dispatch::Dispatcher>,
    ) -> Self {
        Self {
            plugins,
            writer: EventWriter::new(store.clone(), writer_queue),
            store,
            registry: Arc::new(LiveRegistry::default()),
            hub: Arc::new(Hub::new(tick)),
            plugin_queues: Default::default(),
        }
    }

    /// The tenant's floor, rebuilt if its agents or queues changed.
    pub async fn floor(&self, scope: &TenantScope) -> StoreResult<Arc<Floor>> {
        self.registry.floor(&self.store, scope).await
    }

    /// The tenant's publisher of per-tick changes (started if needed).
    pub fn publisher(&self, scope: &TenantScope, floor: &Arc<Floor>) -> Arc<Publisher> {
        self.hub.publisher(&self.registry, scope.tenant_id(), floor)
    }

    /// Checks, stores and applies a batch. `items` are events as parsed, or why they could not
    /// be; the answer has one outcome per item, in order. An accepted event is stored before
    /// this returns, and moves the floor. Then (after the answer) the tenant's enabled plugins
    /// get the accepted events, and what they emit is accepted the same way.
    pub async fn ingest(
        self: &Arc<Self>,
        scope: &TenantScope,
        items: Vec<Result<Event, Vec<FieldError>>>,
        now_ms: i64,
    ) -> StoreResult<Vec<Outcome>> {
        let (outcomes, accepted) = self.accept(scope, items, now_ms).await?;
        if !accepted.is_empty() {
            self.queue_for_plugins(scope, accepted).await;
        }
        Ok(outcomes)
    }

    /// Hands accepted events to the tenant's plugin worker, which delivers batches in order. The
    /// queue is bounded: a batch that does not fit is kept as a dead letter for each enabled
    /// installation (nothing is dropped silently, and ingest never waits for plugins).
    async fn queue_for_plugins(self: &Arc<Self>, scope: &TenantScope, batch: Vec<Event>) {
        let sender = self.plugin_queue(scope).batches;
        if let Err(e) = sender.try_send(batch) {
            let batch = match e {
                tokio::sync::mpsc::error::TrySendError::Full(b) | tokio::sync::mpsc::error::TrySendError::Closed(b) => {
                    b
                }
            };
            metrics::counter!("plugin_queue_overflow_total").increment(1);
            if let Err(e) = self.plugins.overflow(scope.tenant(), &batch).await {
                tracing::warn!(tenant = scope.tenant_slug(), error = %e, "keeping an undeliverable batch failed");
            }
        }
    }

    /// The tenant's plugin worker and its queues, started on first use.
    fn plugin_queue(self: &Arc<Self>, scope: &TenantScope) -> PluginQueue {
        let mut queues = self.plugin_queues.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .entry(scope.tenant_id().to_owned())
            .or_insert_with(|| {
                let (batches, batch_receiver) = tokio::sync::mpsc::channel(PLUGIN_QUEUE);
                let (arrivals, arrival_receiver) = tokio::sync::mpsc::channel(ARRIVAL_QUEUE);
                tokio::spawn(
                    self.clone()
                        .plugin_worker(scope.clone(), batch_receiver, arrival_receiver),
                );
                PluginQueue { batches, arrivals }
            })
            .clone()
    }

    async fn plugin_worker(
        self: Arc<Self>,
        scope: TenantScope,
        mut batches: tokio::sync::mpsc::Receiver<Vec<Event>>,
        mut arrivals: tokio::sync::mpsc::Receiver<Arrival>,
    ) {
        loop {
            let delivered = tokio::select! {
                batch = batches.recv() => match batch {
                    Some(batch) => self.plugins.deliver(scope.tenant(), &batch).await,
                    None => return,
                },
                arrival = arrivals.recv() => match arrival {
                    Some(first) => {
                        // Whatever else has arrived goes along in the same call.
                        let mut taken = vec![first];
                        while taken.len() < ARRIVALS_PER_CALL
                            && let Ok(next) = arrivals.try_recv()
                        {
                            taken.push(next);
                        }
                        self.plugins.deliver_arrivals(scope.tenant(), taken).await
                    }
                    None => return,
                },
            };
            self.accept_plugin_output(&scope, delivered).await;
        }
    }

    async fn accept_plugin_output(&self, scope: &TenantScope, delivered: StoreResult<Vec<Event>>) {
        let emitted = match delivered {
            Ok(emitted) => emitted,
            Err(e) => {
                tracing::warn!(tenant = scope.tenant_slug(), error = %e, "handing events to plugins failed");
                return;
            }
        };
        if !emitted.is_empty() {
            match self.accept_from_plugin(scope, emitted).await {
                Ok(outcomes) => {
                    for outcome in outcomes {
                        if let Outcome::Rejected(errors) = outcome {
                            tracing::info!(tenant = scope.tenant_slug(), ?errors, "a plugin's event was rejected");
                        }
                    }
                }
                Err(e) => tracing::warn!(tenant = scope.tenant_slug(), error = %e, "storing plugins' events failed"),
            }
        }
    }

    /// Connects plugins' streams to the tenants' plugin workers and starts the heartbeat of
    /// plugins that keep streams (now, and every few seconds). Call once, from the runtime.
    pub fn start_plugin_streams(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let weak = Arc::downgrade(self);
        self.plugins.streams.deliver_to(Arc::new(move |tenant_id: &str| {
            let service = weak.upgrade()?;
            let queues = service.plugin_queues.lock().unwrap_or_else(|e| e.into_inner());
            queues.get(tenant_id).map(|q| q.arrivals.clone())
        }));
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(service) = weak.upgrade() else { return };
                if !service.plugins.policy.enabled {
                    continue;
                }
                let tenants = match crate::store::plugins::tenants_with_enabled(&service.store).await {
                    Ok(tenants) => tenants,
                    Err(e) => {
                        tracing::warn!(error = %e, "looking up tenants with plugins failed");
                        continue;
                    }
                };
                let active: Vec<crate::store::TenantId> = tenants.iter().map(|(id, _)| id.clone()).collect();
                service.plugins.unload_all_but(&active).await;
                for (tenant_id, slug) in tenants {
                    let scope = TenantScope::system(tenant_id, slug, crate::store::SystemActor::Plugins);
                    // The worker must exist before a stream can deliver to it.
                    service.plugin_queue(&scope);
                    let beat = service.plugins.heartbeat(scope.tenant()).await;
                    service.accept_plugin_output(&scope, beat).await;
                }
            }
        });
    }

    /// Events a plugin emitted (a webhook's, say): accepted like any, not handed to plugins.
    pub async fn accept_from_plugin(&self, scope: &TenantScope, events: Vec<Event>) -> StoreResult<Vec<Outcome>> {
        let now = crate::domain::time::now_ms();
        Ok(self.accept(scope, events.into_iter().map(Ok).collect(), now).await?.0)
    }

    /// As [`ingest`](Self::ingest), without handing anything to plugins; also returns the
    /// events that were accepted.
    async fn accept(
        &self,
        scope: &TenantScope,
        items: Vec<Result<Event, Vec<FieldError>>>,
        now_ms: i64,
    ) -> StoreResult<(Vec<Outcome>, Vec<Event>)> {
        // The floor knows every name events may use (agent id, extension, interface; queue id,
        // name). It is fetched before storing: a first build replays stored events, and must
        // not count this batch as well as applying it below.
        let mut floor = self.floor(scope).await?;
        if let Some(rebuilt) = self.create_unknown_agents(scope, &floor, &items).await? {
            floor = rebuilt;
        }
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(items.len());
        let mut valid: Vec<(usize, Event)> = Vec::new();
        {
            let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
            for (index, item) in items.into_iter().enumerate() {
                let event = match item {
                    Ok(event) => event,
                    Err(errors) => {
                        outcomes.push(Some(Outcome::Rejected(errors)));
                        continue;
                    }
                };
                let mut errors = match event.validate(now_ms) {
                    Ok(()) => Vec::new(),
                    Err(v) => v.errors,
                };
                if let Some(agent) = event.agent().filter(|a| live.agent_slot(a).is_none()) {
                    errors.push(error(
                        "/agent",
                        format!("no agent `{agent}` (by id, extension or interface) in this tenant"),
                    ));
                }
                if let Some(queue) = event.queue().filter(|q| live.queue_slot(q).is_none()) {
                    errors.push(error(
                        "/queue",
                        format!("no queue `{queue}` (by id or name) in this tenant"),
                    ));
                }
                if errors.is_empty() {
                    outcomes.push(None);
                    valid.push((index, event));
                } else {
                    outcomes.push(Some(Outcome::Rejected(errors)));
                }
            }
        }
        let refs: Vec<&Event> = valid.iter().map(|(_, e)| e).collect();
        let stored = self.writer.append(scope, &refs).await?;
        // Stored first, then shown: the live floor moves only for events that are safe on disk.
        {
            let mut live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
            let mut fresh: Vec<&Event> = valid
                .iter()
                .zip(&stored)
                .filter(|(_, s)| matches!(s, Stored::Accepted(_)))
                .map(|((_, e), _)| e)
                .collect();
            // Within a batch, in time order (a later state must not be overtaken).
            fresh.sort_by_key(|e| e.at_ms());
            for event in fresh {
                if let Err(e) = live.apply(event) {
                    tracing::debug!(error = %e, "event not applied to the live floor");
                }
            }
        }
        let mut accepted = Vec::new();
        for ((index, event), outcome) in valid.into_iter().zip(stored) {
            outcomes[index] = Some(match outcome {
                Stored::Accepted(seq) => {
                    accepted.push(event);
                    Outcome::Accepted(seq)
                }
                Stored::Duplicate => Outcome::Duplicate,
            });
        }
        Ok((outcomes.into_iter().flatten().collect(), accepted))
    }

    /// When the tenant lets events create agents, creates those the batch names that do not
    /// exist yet (named and reachable by the name the event used) and returns the rebuilt floor.
    async fn create_unknown_agents(
        &self,
        scope: &TenantScope,
        floor: &Floor,
        items: &[Result<Event, Vec<FieldError>>],
    ) -> StoreResult<Option<Arc<Floor>>> {
        let mut unknown: Vec<&str> = {
            let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
            items
                .iter()
                .filter_map(|i| i.as_ref().ok())
                .filter_map(Event::agent)
                .filter(|a| live.agent_slot(a).is_none())
                .collect()
        };
        if unknown.is_empty() {
            return Ok(None);
        }
        let tenant = tenants::current(&self.store, scope).await?;
        let enabled = tenant.features.0.get(AUTO_CREATE_AGENTS).and_then(|v| v.as_bool()) == Some(true);
        if !enabled {
            return Ok(None);
        }
        unknown.sort_unstable();
        unknown.dedup();
        let mut created = 0;
        for name in unknown {
            // Only names an agent could have; anything else is rejected as unknown below.
            if name.is_empty() || name.len() > 64 {
                continue;
            }
            let input = AgentCreate {
                name: name.to_owned(),
                team_id: None,
                location_id: None,
                user_id: None,
                extension: Some(name.to_owned()),
                interface: None,
                skills: Vec::new(),
            };
            match resource::create::<Agent>(&self.store, scope, input).await {
                Ok(agent) => {
                    created += 1;
                    tracing::info!(tenant = scope.tenant_slug(), agent = %agent.id, name, "agent created from an event");
                    let entry = AuditEvent::in_tenant(scope, "agent.create", AuditOutcome::Success)
                        .target("agent", &agent.id)
                        .detail(format!("created for an event naming `{name}` ({AUTO_CREATE_AGENTS})"))
                        .change(None, serde_json::to_value(&agent).ok());
                    audit::record(&self.store, entry, &Default::default()).await;
                }
                Err(e) => {
                    tracing::warn!(tenant = scope.tenant_slug(), name, error = %e, "could not create an agent named by an event")
                }
            }
        }
        if created == 0 {
            return Ok(None);
        }
        Ok(Some(self.floor(scope).await?))
    }
}

/// Events deleted per statement when trimming history.
const TRIM_BATCH: i64 = 10_000;

/// Deletes every tenant's stored events older than `retention`; returns how many went.
pub async fn trim_history(store: &Store, retention: Duration) -> StoreResult<u64> {
    let before = crate::domain::time::now_ms() - retention.as_millis() as i64;
    let mut deleted = 0;
    for tenant in tenants::list_all(store).await? {
        loop {
            let n = crate::store::events::delete_older_than(store, &tenant.id, before, TRIM_BATCH).await?;
            deleted += n;
            if n < TRIM_BATCH as u64 {
                break;
            }
        }
    }
    Ok(deleted)
}

/// Trims history now and then every hour, for as long as the server runs.
pub fn spawn_history_trimmer(store: Store, retention: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            match trim_history(&store, retention).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "events older than the retention were deleted"),
                Err(e) => tracing::warn!(error = %e, "trimming the event history failed; retrying in an hour"),
            }
        }
    });
}
