//! The view coalescer: per tenant, once per tick, what changed on the floor is gathered into one
//! [`Delta`] and handed to every subscribed stream (supervisor boards, machine streams). The
//! work per tick depends on what changed, not on how many people watch; whatever a delta is
//! rendered into (HTML rows, JSON) is rendered once, by the first stream that needs it, and the
//! same bytes go to everyone else.
//!
//! A stream that cannot keep up misses deltas; it learns so from the broadcast channel and tells
//! its client to resync instead of slowing the tick down.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use super::registry::{Floor, LiveRegistry};
use super::{AgentLive, StateCounts};
use crate::domain::events::AgentState;
use crate::kpi::QueueCounters;

/// Deltas a stream may fall behind before it is told to resync.
const CHANNEL_DEPTH: usize = 64;
/// Deltas kept for streams that reconnect with `Last-Event-ID` (10 s at the default tick;
/// `EventSource` reconnects after about 3 s).
const REPLAY_DEPTH: usize = 40;
/// Renderings are kept this many deltas back; an older delta is rendered again if a resuming
/// stream needs it, so the replay buffer holds data, not every rendering of it.
const RENDERED_DEPTH: usize = 8;
/// A publisher without subscribers stops after this long.
const IDLE_STOP: Duration = Duration::from_secs(30);

/// An agent as it is after a tick.
#[derive(Debug, Clone)]
pub struct AgentDelta {
    pub slot: u32,
    pub agent: AgentLive,
    /// What the previous delta showed (`None` when this publisher had not shown it yet).
    pub shown_before: Option<AgentState>,
    pub team_id: Option<Arc<str>>,
    pub location_id: Option<Arc<str>>,
}

/// A queue's figures after a tick.
#[derive(Debug, Clone)]
pub struct QueueDelta {
    pub slot: u32,
    pub id: String,
    pub name: String,
    pub waiting: usize,
    /// When the longest-waiting caller joined (Unix ms).
    pub oldest_join_ms: Option<i64>,
    pub today: QueueCounters,
    pub settings: crate::kpi::KpiSettings,
    pub target_pct: u32,
    pub agents: StateCounts,
}

impl QueueDelta {
    /// The queue's figures now (the floor's lock held by the caller).
    pub fn read(floor: &Floor, live: &super::TenantLive, slot: u32) -> Option<QueueDelta> {
        let q = live.queue(slot)?;
        let info = floor.queues.get(slot as usize)?;
        Some(QueueDelta {
            slot,
            id: info.id.clone(),
            name: info.name.clone(),
            waiting: q.waiting(),
            oldest_join_ms: q.oldest_join_ms(),
            today: *q.today(),
            settings: q.settings,
            target_pct: info.target_pct,
            agents: live.queue_counts(slot).copied().unwrap_or_default(),
        })
    }
}

/// What changed in one tick, plus caches for what it is rendered into.
#[derive(Debug, Default)]
pub struct Delta {
    /// Increases by one per delta of this publisher.
    pub seq: u64,
    /// The publisher's identity: a resumed stream must come back to the same one.
    pub epoch: u64,
    pub at_ms: i64,
    /// The floor was rebuilt (configuration changed): boards must reload.
    pub resync: bool,
    pub agents: Vec<AgentDelta>,
    pub queues: Vec<QueueDelta>,
    /// Renderings, made once by whoever needs them first (keyed by the renderer's name).
    renderings: Mutex<HashMap<&'static str, Arc<dyn std::any::Any + Send + Sync>>>,
}

impl Delta {
    /// The stream id of this delta (`epoch-seq`).
    pub fn id(&self) -> String {
        format!("{}-{}", self.epoch, self.seq)
    }

    /// The delta rendered by `render`, made once per `key` and shared after that.
    pub fn rendered<T: Send + Sync + 'static>(&self, key: &'static str, render: impl FnOnce(&Delta) -> T) -> Arc<T> {
        let mut cache = self.renderings.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = cache.get(key).and_then(|v| v.clone().downcast::<T>().ok()) {
            return found;
        }
        // Rendering under the lock keeps it to once; other streams of this delta wait for it.
        let made = Arc::new(render(self));
        cache.insert(key, made.clone());
        made
    }
}

/// One tenant's publisher.
#[derive(Debug)]
pub struct Publisher {
    sender: broadcast::Sender<Arc<Delta>>,
    recent: Mutex<VecDeque<Arc<Delta>>>,
    epoch: u64,
    last_seq: std::sync::atomic::AtomicU64,
}

/// A subscription: the deltas after `after`, then live ones.
pub struct Subscription {
    pub publisher: Arc<Publisher>,
    pub receiver: broadcast::Receiver<Arc<Delta>>,
    /// Deltas the subscriber missed and can still have (after its `Last-Event-ID`).
    pub backlog: Vec<Arc<Delta>>,
    /// The subscriber asked to resume from a delta that is gone: it must start over.
    pub stale: bool,
}

impl Publisher {
    /// The id of the newest delta, for a page rendered now to resume from.
    pub fn position(&self) -> String {
        format!(
            "{}-{}",
            self.epoch,
            self.last_seq.load(std::sync::atomic::Ordering::Acquire)
        )
    }

    /// Subscribes to the deltas after `resume_from` (the id of the last delta the subscriber
    /// saw; `None` for only what comes next).
    pub fn subscribe(self: &Arc<Self>, resume_from: Option<&str>) -> Subscription {
        // Subscribe first, then read the backlog: a delta sent in between is in both, and
        // applying a delta twice shows the same thing.
        let receiver = self.sender.subscribe();
        let last = self.last_seq.load(std::sync::atomic::Ordering::Acquire);
        let (backlog, stale) = match resume_from.map(parse_id) {
            None => (Vec::new(), false),
            Some(Some((epoch, seq))) if epoch == self.epoch && seq == last => (Vec::new(), false),
            Some(Some((epoch, seq))) if epoch == self.epoch && seq < last => {
                let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
                match recent.front() {
                    Some(oldest) if oldest.seq <= seq + 1 => {
                        (recent.iter().filter(|d| d.seq > seq).cloned().collect(), false)
                    }
                    _ => (Vec::new(), true),
                }
            }
            Some(_) => (Vec::new(), true),
        };
        Subscription {
            publisher: self.clone(),
            receiver,
            backlog,
            stale,
        }
    }
}

fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (epoch, seq) = id.split_once('-')?;
    Some((epoch.parse().ok()?, seq.parse().ok()?))
}

/// Every tenant's publisher in this instance.
#[derive(Debug)]
pub struct Hub {
    tick: Duration,
    publishers: Mutex<HashMap<String, Arc<Publisher>>>,
}

impl Hub {
    pub fn new(tick: Duration) -> Self {
        Self {
            tick: tick.max(Duration::from_millis(10)),
            publishers: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's publisher, started if it is not running. From the moment it exists, every
    /// change of the floor is in one of its deltas, so a page rendered after this call and a
    /// stream resuming from [`Publisher::position`] together miss nothing.
    pub fn publisher(
        self: &Arc<Self>,
        registry: &Arc<LiveRegistry>,
        tenant_id: &str,
        floor: &Arc<Floor>,
    ) -> Arc<Publisher> {
        let mut publishers = self.publishers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(publisher) = publishers.get(tenant_id) {
            return publisher.clone();
        }
        let (sender, _) = broadcast::channel(CHANNEL_DEPTH);
        let publisher = Arc::new(Publisher {
            sender,
            recent: Mutex::new(VecDeque::with_capacity(REPLAY_DEPTH)),
            epoch: epoch(),
            last_seq: Default::default(),
        });
        // Changes from before now are on any page rendered from now on.
        floor.live.lock().unwrap_or_else(|e| e.into_inner()).take_changes();
        publishers.insert(tenant_id.to_owned(), publisher.clone());
        tokio::spawn(run(
            self.clone(),
            registry.clone(),
            tenant_id.to_owned(),
            floor.clone(),
            publisher.clone(),
        ));
        publisher
    }

    /// How many streams are subscribed, over all tenants.
    pub fn subscribers(&self) -> usize {
        self.publishers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|p| p.sender.receiver_count())
            .sum()
    }
}

/// A number that differs between publishers of one tenant (restarts, idle stops).
fn epoch() -> u64 {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = crate::domain::time::now_ms().max(0) as u64;
    let previous = LAST.fetch_max(now, std::sync::atomic::Ordering::AcqRel);
    if previous >= now {
        LAST.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1
    } else {
        now
    }
}

async fn run(
    hub: Arc<Hub>,
    registry: Arc<LiveRegistry>,
    tenant_id: String,
    mut floor: Arc<Floor>,
    publisher: Arc<Publisher>,
) {
    let mut ticker = tokio::time::interval(hub.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut shown: Vec<Option<AgentState>> = Vec::new();
    let mut idle_since = tokio::time::Instant::now();
    let mut seq = 0u64;
    loop {
        ticker.tick().await;
        if publisher.sender.receiver_count() == 0 {
            if idle_since.elapsed() >= IDLE_STOP {
                let mut publishers = hub.publishers.lock().unwrap_or_else(|e| e.into_inner());
                // Someone may have subscribed meanwhile; only an idle publisher stops.
                if publisher.sender.receiver_count() == 0 {
                    publishers.remove(&tenant_id);
                    return;
                }
            }
        } else {
            idle_since = tokio::time::Instant::now();
        }
        let started = std::time::Instant::now();
        floor.forget_old_snapshots();
        let mut delta = match registry.current(&tenant_id) {
            Some(current) if !Arc::ptr_eq(&current, &floor) => {
                floor = current;
                shown.clear();
                floor.live.lock().unwrap_or_else(|e| e.into_inner()).take_changes();
                Delta {
                    resync: true,
                    ..Default::default()
                }
            }
            _ => gather(&floor, &mut shown),
        };
        if !delta.resync && delta.agents.is_empty() && delta.queues.is_empty() {
            continue;
        }
        seq += 1;
        delta.seq = seq;
        delta.epoch = publisher.epoch;
        delta.at_ms = crate::domain::time::now_ms();
        let delta = Arc::new(delta);
        {
            let mut recent = publisher.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == REPLAY_DEPTH {
                recent.pop_front();
            }
            if recent.len() >= RENDERED_DEPTH {
                let old = &recent[recent.len() - RENDERED_DEPTH];
                old.renderings.lock().unwrap_or_else(|e| e.into_inner()).clear();
            }
            recent.push_back(delta.clone());
        }
        publisher.last_seq.store(seq, std::sync::atomic::Ordering::Release);
        let _ = publisher.sender.send(delta);
        metrics::histogram!("live_tick_seconds").record(started.elapsed().as_secs_f64());
    }
}

/// Copies what changed out of the floor (holding its lock only for the copy).
fn gather(floor: &Floor, shown: &mut Vec<Option<AgentState>>) -> Delta {
    let mut live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
    let changed = live.take_changes();
    if shown.len() < live.agents().len() {
        shown.resize(live.agents().len(), None);
    }
    let agents = changed
        .agents
        .iter()
        .filter_map(|slot| {
            let agent = live.agent(*slot)?;
            let (team_id, location_id) = floor.agent_groups.get(*slot as usize).cloned().unwrap_or_default();
            let before = shown[*slot as usize].replace(agent.state);
            Some(AgentDelta {
                slot: *slot,
                agent: agent.clone(),
                shown_before: before,
                team_id,
                location_id,
            })
        })
        .collect();
    let queues = changed
        .queues
        .iter()
        .filter_map(|slot| QueueDelta::read(floor, &live, *slot))
        .collect();
    Delta {
        agents,
        queues,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{Event, EventBody};
    use crate::live::{Membership, TenantLive};
    use chrono::TimeZone;

    fn floor(agents: usize) -> Arc<Floor> {
        let mut live = TenantLive::new(1, 1);
        for a in 0..agents {
            let member = Membership {
                team: Some(0),
                location: Some(0),
                queues: Arc::from([]),
            };
            live.add_agent(&format!("a{a}"), &format!("Agent {a}"), member, 0);
        }
        Arc::new(Floor::detached(live))
    }

    fn change(floor: &Floor, n: i64, agent: usize) {
        let state = if n % 2 == 0 {
            AgentState::Available
        } else {
            AgentState::Paused
        };
        let event = Event {
            v: 1,
            id: format!("e{n}"),
            source: "t".into(),
            at: chrono::Utc.timestamp_opt(1_800_000_000 + n, 0).unwrap(),
            body: EventBody::AgentState {
                agent: format!("a{agent}"),
                state,
                reason: None,
            },
        };
        floor.live.lock().unwrap().apply(&event).unwrap();
    }

    async fn next(rx: &mut broadcast::Receiver<Arc<Delta>>) -> Arc<Delta> {
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("a delta within 2 s")
            .expect("not lagged")
    }

    #[tokio::test]
    async fn changes_within_a_tick_arrive_as_one_delta_with_what_was_shown_before() {
        let hub = Arc::new(Hub::new(Duration::from_millis(20)));
        let registry = Arc::new(LiveRegistry::default());
        let floor = floor(3);
        let publisher = hub.publisher(&registry, "t", &floor);
        let mut sub = publisher.subscribe(None);
        change(&floor, 1, 0);
        change(&floor, 2, 0);
        change(&floor, 3, 2);
        let delta = next(&mut sub.receiver).await;
        let slots: Vec<u32> = delta.agents.iter().map(|a| a.slot).collect();
        assert_eq!(
            slots,
            vec![0, 2],
            "each changed agent once, in the order it first changed"
        );
        assert_eq!(delta.agents[1].agent.state, AgentState::Paused);
        assert_eq!(delta.agents[1].shown_before, None, "not shown by this publisher before");
        change(&floor, 4, 2);
        let delta = next(&mut sub.receiver).await;
        assert_eq!(delta.agents[0].shown_before, Some(AgentState::Paused));
        assert_eq!(delta.seq, 2);
        // The same rendering is shared: the second caller gets the first one's result.
        let first = delta.rendered("test", |d| d.agents.len());
        let second = delta.rendered("test", |_| 99usize);
        assert!(Arc::ptr_eq(&first, &second));
        // Resuming from the first delta gives the second; from the newest, nothing; from a
        // different publisher's id, a stale subscription.
        let first_id = format!("{}-1", publisher.epoch);
        let resumed = publisher.subscribe(Some(&first_id));
        assert_eq!(resumed.backlog.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![2]);
        assert!(!resumed.stale);
        assert!(publisher.subscribe(Some(&publisher.position())).backlog.is_empty());
        assert!(publisher.subscribe(Some("1-1")).stale);
        assert!(publisher.subscribe(Some("garbage")).stale);
    }

    #[tokio::test]
    async fn a_subscriber_that_does_not_read_falls_behind_without_holding_up_the_others() {
        let hub = Arc::new(Hub::new(Duration::from_millis(10)));
        let registry = Arc::new(LiveRegistry::default());
        let floor = floor(2);
        let publisher = hub.publisher(&registry, "t", &floor);
        let mut asleep = publisher.subscribe(None);
        let mut awake = publisher.subscribe(None);
        let mut last = 0;
        for n in 0..(CHANNEL_DEPTH as i64 + 10) {
            change(&floor, n, 0);
            last = next(&mut awake.receiver).await.seq;
        }
        assert_eq!(last, CHANNEL_DEPTH as u64 + 10, "every tick was published on time");
        assert!(
            matches!(
                asleep.receiver.recv().await,
                Err(broadcast::error::RecvError::Lagged(_))
            ),
            "the sleeper learns it missed deltas (its stream then sends resync)"
        );
    }
}
