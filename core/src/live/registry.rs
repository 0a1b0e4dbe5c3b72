//! Every tenant's live floor, built from its configuration (agents with their team, location and
//! queues; queues with their service-level settings) and rebuilt when that changes, keeping what
//! the agents and queues were doing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Membership, QueueLive, TenantLive};
use crate::kpi::KpiSettings;
use crate::store::entities::agents::Agent;
use crate::store::entities::queues::Queue;
use crate::store::floor::FloorRows;
use crate::store::{Store, StoreResult, TenantScope, resource, tenants};

/// One tenant's floor, with the names behind its dense indexes.
#[derive(Debug)]
pub struct Floor {
    /// The agent and queue collection versions it was built from.
    versions: (i64, i64),
    /// The tenant's time zone ("today" starts at its midnight).
    pub tz: chrono_tz::Tz,
    /// Team ids by dense index, and their names.
    pub teams: Vec<String>,
    pub team_names: Vec<String>,
    pub locations: Vec<String>,
    pub location_names: Vec<String>,
    /// Per agent slot: (team id, location id) for visibility checks and output.
    pub agent_groups: Vec<AgentGroups>,
    /// Per agent slot: the other names events use for it (extension, interface).
    pub agent_aliases: Vec<Vec<String>>,
    /// Per queue slot.
    pub queues: Vec<QueueInfo>,
    pub live: Mutex<TenantLive>,
    /// Snapshots made recently, per viewer scope: when many streams (re)connect at once, they
    /// share one instead of each serializing the whole floor.
    pub snapshots: Mutex<Vec<CachedSnapshot>>,
}

impl Floor {
    /// How long a snapshot of an unchanged floor is served to others.
    pub const SNAPSHOT_REUSE: std::time::Duration = std::time::Duration::from_secs(1);

    /// Drops snapshots too old to be served again (they are large).
    pub fn forget_old_snapshots(&self) {
        let mut cache = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.is_empty() {
            cache.retain(|c| c.made.elapsed() < Self::SNAPSHOT_REUSE);
        }
    }
}

/// A serialized snapshot of a floor.
#[derive(Debug)]
pub struct CachedSnapshot {
    pub visibility: crate::store::Visibility,
    /// The floor's version it shows.
    pub version: u64,
    pub made: std::time::Instant,
    pub body: Arc<str>,
}

/// An agent's (team id, location id).
pub type AgentGroups = (Option<Arc<str>>, Option<Arc<str>>);

/// A queue's configuration as the board shows it.
#[derive(Debug, Clone)]
pub struct QueueInfo {
    pub id: String,
    pub name: String,
    /// Service-level target, percent.
    pub target_pct: u32,
}

/// All tenants' floors in this instance.
#[derive(Debug, Default)]
pub struct LiveRegistry {
    floors: Mutex<HashMap<String, Arc<Floor>>>,
    /// One build at a time: two requests racing on a tenant's first build would otherwise both
    /// replay its stored events, and one of them would apply its own batch to a floor that the
    /// other then replaces.
    building: tokio::sync::Mutex<()>,
}

/// How far back a start replays stored events (the longest rolling window).
const REPLAY_MS: i64 = 24 * 3600 * 1000;

impl LiveRegistry {
    /// The tenant's floor, built (or rebuilt after a configuration change) as needed.
    pub async fn floor(&self, store: &Store, scope: &TenantScope) -> StoreResult<Arc<Floor>> {
        let versions = (
            resource::collection_version::<Agent>(store, scope).await?,
            resource::collection_version::<Queue>(store, scope).await?,
        );
        let previous = self
            .floors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope.tenant_id())
            .cloned();
        if let Some(floor) = &previous
            && floor.versions == versions
        {
            return Ok(floor.clone());
        }
        let _building = self.building.lock().await;
        let previous = self.current(scope.tenant_id());
        if let Some(floor) = &previous
            && floor.versions == versions
        {
            // Built by the request we waited for.
            return Ok(floor.clone());
        }
        let floor = Arc::new(build(store, scope, versions, previous.as_deref()).await?);
        self.floors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.tenant_id().to_owned(), floor.clone());
        Ok(floor)
    }

    /// The tenant's floor as built last, without asking whether its configuration changed.
    pub fn current(&self, tenant_id: &str) -> Option<Arc<Floor>> {
        self.floors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant_id)
            .cloned()
    }
}

impl Floor {
    /// A floor around `live` with one team and one location, not backed by a store: for tests
    /// and benchmarks of what consumes floors.
    pub fn detached(live: TenantLive) -> Floor {
        Floor {
            versions: (0, 0),
            tz: chrono_tz::UTC,
            teams: vec!["team_a".into()],
            team_names: vec!["A".into()],
            locations: vec!["loc_a".into()],
            location_names: vec!["Here".into()],
            agent_groups: (0..live.agents().len())
                .map(|_| (Some(Arc::from("team_a")), Some(Arc::from("loc_a"))))
                .collect(),
            agent_aliases: vec![Vec::new(); live.agents().len()],
            queues: Vec::new(),
            live: Mutex::new(live),
            snapshots: Mutex::new(Vec::new()),
        }
    }
}

async fn build(
    store: &Store,
    scope: &TenantScope,
    versions: (i64, i64),
    previous: Option<&Floor>,
) -> StoreResult<Floor> {
    let tenant = tenants::current(store, scope).await?;
    let tz: chrono_tz::Tz = tenant.timezone.parse().unwrap_or(chrono_tz::UTC);
    let FloorRows {
        teams,
        locations,
        queues,
        agents,
        members,
    } = crate::store::floor::rows(store, scope).await?;
    let index = |ids: &[(String, String)]| -> HashMap<String, u32> {
        ids.iter()
            .enumerate()
            .map(|(i, (id, _))| (id.clone(), i as u32))
            .collect()
    };
    let (team_index, location_index) = (index(&teams), index(&locations));
    // The previous floor is locked only while copying from it: no await happens meanwhile.
    let (mut live, agent_groups, agent_aliases, queue_infos, first_build, now) = {
        let mut live = TenantLive::new(teams.len(), locations.len());
        let old_live = previous.map(|p| p.live.lock().unwrap_or_else(|e| e.into_inner()));
        let mut queue_index = HashMap::new();
        let mut queue_infos = Vec::new();
        for (id, name, threshold, target, variant, short_abandon, counts_short) in &queues {
            let settings = KpiSettings {
                threshold_s: *threshold as f64,
                short_abandon_s: *short_abandon as f64,
                service_level: serde_json::from_value(serde_json::Value::String(variant.clone())).unwrap_or_default(),
                abandon_rate_counts_short: *counts_short,
            };
            // A queue keeps its callers and counters across a rebuild.
            let queue = match old_live
                .as_ref()
                .and_then(|l| l.queue_slot(id).and_then(|s| l.queue(s)))
            {
                Some(old) => {
                    let mut q = old.clone();
                    q.settings = settings;
                    q
                }
                None => QueueLive::new(id, settings, tz),
            };
            let slot = live.add_queue(queue);
            live.add_queue_alias(name, slot);
            queue_index.insert(id.clone(), slot);
            queue_infos.push(QueueInfo {
                id: id.clone(),
                name: name.clone(),
                target_pct: u32::try_from(*target).unwrap_or(80),
            });
        }
        let mut memberships: HashMap<&str, Vec<u32>> = HashMap::new();
        for (agent, queue) in &members {
            if let Some(q) = queue_index.get(queue) {
                memberships.entry(agent.as_str()).or_default().push(*q);
            }
        }
        let now = crate::domain::time::now_ms();
        // One allocation per team and location id, shared by its agents and every delta.
        fn shared_ids(rows: &[(String, String)]) -> HashMap<&str, Arc<str>> {
            rows.iter()
                .map(|(id, _)| (id.as_str(), Arc::from(id.as_str())))
                .collect()
        }
        let (team_ids, location_ids) = (shared_ids(&teams), shared_ids(&locations));
        let mut agent_groups = Vec::with_capacity(agents.len());
        let mut agent_aliases = Vec::with_capacity(agents.len());
        for (id, name, team, location, extension, interface) in &agents {
            let member = Membership {
                team: team.as_ref().and_then(|t| team_index.get(t).copied()),
                location: location.as_ref().and_then(|l| location_index.get(l).copied()),
                queues: memberships
                    .get(id.as_str())
                    .map_or_else(|| Arc::from([]), |q| Arc::from(q.as_slice())),
            };
            let slot = live.add_agent(id, name, member, now);
            let aliases: Vec<String> = [extension, interface].into_iter().flatten().cloned().collect();
            for alias in &aliases {
                live.add_agent_alias(alias, slot);
            }
            agent_aliases.push(aliases);
            if let Some(old) = old_live
                .as_ref()
                .and_then(|l| l.agent_slot(id).and_then(|s| l.agent(s)))
            {
                live.restore(slot, old);
            }
            let shared =
                |ids: &HashMap<&str, Arc<str>>, id: &Option<String>| id.as_deref().and_then(|id| ids.get(id)).cloned();
            agent_groups.push((shared(&team_ids, team), shared(&location_ids, location)));
        }
        if let Some(old) = &old_live {
            live.version = old.version + 1;
        }
        let first_build = old_live.is_none();
        (live, agent_groups, agent_aliases, queue_infos, first_build, now)
    };
    if first_build {
        // After a start, the floor is what the stored events of the last day say: agent
        // states, callers waiting, today's and the rolling windows' figures.
        let from = now - REPLAY_MS;
        let events = crate::store::events::since(store, scope, from).await?;
        let replayed = events.len();
        for event in &events {
            let _ = live.apply(event);
        }
        tracing::info!(
            tenant = scope.tenant_slug(),
            replayed,
            "live floor rebuilt from stored events"
        );
    }
    let (teams, team_names) = teams.into_iter().unzip();
    let (locations, location_names) = locations.into_iter().unzip();
    Ok(Floor {
        versions,
        tz,
        teams,
        team_names,
        locations,
        location_names,
        agent_groups,
        agent_aliases,
        queues: queue_infos,
        live: Mutex::new(live),
        snapshots: Mutex::new(Vec::new()),
    })
}
