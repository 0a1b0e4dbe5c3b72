//! The live state of a tenant's floor, in memory: every agent's state, reason and since-when;
//! per team, location and queue the number of agents in each state; per queue the callers
//! waiting and the KPI counters for today and rolling windows. Applying an event touches only
//! the rows it is about, so it costs the same with 200 agents as with 100,000.
//!
//! Events of one agent are applied in time order: a late event is recorded as history but never
//! rewinds the agent's current state.

pub mod hub;
pub mod queue;
pub mod registry;
pub mod service;

use std::collections::HashMap;
use std::sync::Arc;

use crate::domain::events::{AgentState, Event, EventBody};

pub use queue::QueueLive;

/// Counts of agents per state, indexed by [`AgentState::index`].
pub type StateCounts = [u32; AgentState::ALL.len()];

/// Where an agent belongs, by dense group index.
#[derive(Debug, Clone, Default)]
pub struct Membership {
    pub team: Option<u32>,
    pub location: Option<u32>,
    /// Shared: a changed agent is copied into every tick's delta without allocating.
    pub queues: Arc<[u32]>,
}

/// One agent as the board shows it.
#[derive(Debug, Clone)]
pub struct AgentLive {
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub member: Membership,
    pub state: AgentState,
    /// The pause reason while paused.
    pub reason: Option<Arc<str>>,
    /// Unix ms since when the agent is in `state`.
    pub since_ms: i64,
    /// The newest event applied to this agent (later events win, earlier ones are history).
    pub last_event_ms: i64,
    /// The call it is on, as events name it (for hanging up, transferring, listening in).
    pub call: Option<Arc<str>>,
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// An agent changed state (dense index, previous state).
    Agent { slot: u32, previous: AgentState },
    /// A queue's figures changed (dense index).
    Queue { slot: u32 },
    /// The event was older than what the agent already shows: history only.
    Late,
    /// Nothing changed (the agent was already in that state, or a call end without state).
    Unchanged,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    #[error("no agent `{0}` in this tenant")]
    UnknownAgent(String),
    #[error("no queue `{0}` in this tenant")]
    UnknownQueue(String),
}

/// A tenant's live floor.
#[derive(Debug, Default)]
pub struct TenantLive {
    agents: Vec<AgentLive>,
    agent_index: HashMap<Arc<str>, u32>,
    queues: Vec<QueueLive>,
    queue_index: HashMap<Arc<str>, u32>,
    team_counts: Vec<StateCounts>,
    location_counts: Vec<StateCounts>,
    queue_counts: Vec<StateCounts>,
    totals: StateCounts,
    /// Agents and queues changed since the last [`take_changes`](Self::take_changes), each once.
    changes: Changes,
    /// Increases with every change, so readers can tell whether anything moved.
    pub version: u64,
}

/// What moved since the view coalescer last looked: each agent and queue at most once, so the
/// list never grows beyond the size of the floor however long nobody looks.
#[derive(Debug, Default)]
struct Changes {
    agents: Vec<u32>,
    agent_marked: Vec<bool>,
    queues: Vec<u32>,
    queue_marked: Vec<bool>,
}

impl Changes {
    fn agent(&mut self, slot: u32) {
        if let Some(marked) = self.agent_marked.get_mut(slot as usize)
            && !*marked
        {
            *marked = true;
            self.agents.push(slot);
        }
    }

    fn queue(&mut self, slot: u32) {
        if let Some(marked) = self.queue_marked.get_mut(slot as usize)
            && !*marked
        {
            *marked = true;
            self.queues.push(slot);
        }
    }
}

/// The agents and queues (by slot) that changed since the previous call, in the order they
/// first changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changed {
    pub agents: Vec<u32>,
    pub queues: Vec<u32>,
}

impl TenantLive {
    /// A floor with `teams` and `locations` groups (by dense index).
    pub fn new(teams: usize, locations: usize) -> Self {
        Self {
            team_counts: vec![StateCounts::default(); teams],
            location_counts: vec![StateCounts::default(); locations],
            ..Default::default()
        }
    }

    pub fn add_queue(&mut self, queue: QueueLive) -> u32 {
        let slot = self.queues.len() as u32;
        self.queue_index.insert(queue.id.clone(), slot);
        self.queues.push(queue);
        self.queue_counts.push(StateCounts::default());
        self.changes.queue_marked.push(false);
        slot
    }

    /// Adds an agent (logged out since `at_ms`). Group indexes must exist.
    pub fn add_agent(&mut self, id: &str, name: &str, member: Membership, at_ms: i64) -> u32 {
        let slot = self.agents.len() as u32;
        let id: Arc<str> = Arc::from(id);
        let agent = AgentLive {
            id: id.clone(),
            name: Arc::from(name),
            member,
            state: AgentState::LoggedOut,
            reason: None,
            since_ms: at_ms,
            last_event_ms: i64::MIN,
            call: None,
        };
        self.count(&agent.member, AgentState::LoggedOut, 1);
        self.agent_index.insert(id, slot);
        self.agents.push(agent);
        self.changes.agent_marked.push(false);
        slot
    }

    fn count(&mut self, member: &Membership, state: AgentState, delta: i32) {
        let i = state.index();
        let bump = |counts: &mut StateCounts| counts[i] = counts[i].saturating_add_signed(delta);
        bump(&mut self.totals);
        if let Some(c) = member.team.and_then(|t| self.team_counts.get_mut(t as usize)) {
            bump(c);
        }
        if let Some(c) = member.location.and_then(|l| self.location_counts.get_mut(l as usize)) {
            bump(c);
        }
        for q in member.queues.iter() {
            if let Some(c) = self.queue_counts.get_mut(*q as usize) {
                bump(c);
            }
        }
    }

    /// Another name events may use for an agent (extension, interface).
    pub fn add_agent_alias(&mut self, alias: &str, slot: u32) {
        self.agent_index.entry(Arc::from(alias)).or_insert(slot);
    }

    /// Another name events may use for a queue (its name).
    pub fn add_queue_alias(&mut self, alias: &str, slot: u32) {
        self.queue_index.entry(Arc::from(alias)).or_insert(slot);
    }

    /// Puts an agent back into a state it had (when the floor is rebuilt after a change).
    pub fn restore(&mut self, slot: u32, from: &AgentLive) {
        let Some(agent) = self.agents.get(slot as usize) else {
            return;
        };
        let previous = agent.state;
        let member = std::mem::take(&mut self.agents[slot as usize].member);
        self.count(&member, previous, -1);
        self.count(&member, from.state, 1);
        let agent = &mut self.agents[slot as usize];
        agent.member = member;
        agent.state = from.state;
        agent.reason = from.reason.clone();
        agent.since_ms = from.since_ms;
        agent.last_event_ms = from.last_event_ms;
    }

    /// The agents and queues that changed since the last call, and forgets them.
    pub fn take_changes(&mut self) -> Changed {
        let changes = &mut self.changes;
        for slot in &changes.agents {
            changes.agent_marked[*slot as usize] = false;
        }
        for slot in &changes.queues {
            changes.queue_marked[*slot as usize] = false;
        }
        Changed {
            agents: std::mem::take(&mut changes.agents),
            queues: std::mem::take(&mut changes.queues),
        }
    }

    pub fn queues(&self) -> &[QueueLive] {
        &self.queues
    }

    pub fn agent_slot(&self, id: &str) -> Option<u32> {
        self.agent_index.get(id).copied()
    }

    pub fn agent(&self, slot: u32) -> Option<&AgentLive> {
        self.agents.get(slot as usize)
    }

    pub fn agents(&self) -> &[AgentLive] {
        &self.agents
    }

    pub fn queue(&self, slot: u32) -> Option<&QueueLive> {
        self.queues.get(slot as usize)
    }

    pub fn queue_slot(&self, id: &str) -> Option<u32> {
        self.queue_index.get(id).copied()
    }

    pub fn totals(&self) -> &StateCounts {
        &self.totals
    }

    pub fn team_counts(&self, team: u32) -> Option<&StateCounts> {
        self.team_counts.get(team as usize)
    }

    pub fn location_counts(&self, location: u32) -> Option<&StateCounts> {
        self.location_counts.get(location as usize)
    }

    pub fn queue_counts(&self, queue: u32) -> Option<&StateCounts> {
        self.queue_counts.get(queue as usize)
    }

    /// Moves an agent to `state` at `at_ms`, unless a newer event already decided its state.
    fn set_state(&mut self, slot: u32, state: AgentState, reason: Option<&str>, at_ms: i64) -> Applied {
        let Some(agent) = self.agents.get(slot as usize) else {
            return Applied::Unchanged;
        };
        if at_ms < agent.last_event_ms {
            return Applied::Late;
        }
        let previous = agent.state;
        let same_reason = agent.reason.as_deref() == reason;
        if previous == state && same_reason {
            self.agents[slot as usize].last_event_ms = at_ms;
            return Applied::Unchanged;
        }
        let member = std::mem::take(&mut self.agents[slot as usize].member);
        if previous != state {
            self.count(&member, previous, -1);
            self.count(&member, state, 1);
        }
        let agent = &mut self.agents[slot as usize];
        agent.member = member;
        if previous != state {
            agent.since_ms = at_ms;
        }
        agent.state = state;
        agent.reason = reason.map(Arc::from);
        agent.last_event_ms = at_ms;
        if !matches!(state, AgentState::OnQueueCall | AgentState::OnDirectCall) {
            agent.call = None;
        }
        self.version += 1;
        self.changes.agent(slot);
        for q in 0..self.agents[slot as usize].member.queues.len() {
            // A queue tile shows its agents by state.
            let queue = self.agents[slot as usize].member.queues[q];
            self.changes.queue(queue);
        }
        Applied::Agent { slot, previous }
    }

    /// Notes the call an agent is on, unless the event that said so came late.
    fn on_call(&mut self, slot: u32, call: &str, applied: &Applied) {
        if *applied == Applied::Late {
            return;
        }
        if let Some(agent) = self.agents.get_mut(slot as usize)
            && agent.call.as_deref() != Some(call)
        {
            agent.call = Some(Arc::from(call));
            self.version += 1;
            self.changes.agent(slot);
        }
    }

    fn agent_for(&self, id: &str) -> Result<u32, ApplyError> {
        self.agent_slot(id)
            .ok_or_else(|| ApplyError::UnknownAgent(id.to_owned()))
    }

    fn queue_for(&self, id: &str) -> Result<u32, ApplyError> {
        self.queue_slot(id)
            .ok_or_else(|| ApplyError::UnknownQueue(id.to_owned()))
    }

    /// Applies one validated event.
    pub fn apply(&mut self, event: &Event) -> Result<Applied, ApplyError> {
        let at = event.at_ms();
        Ok(match &event.body {
            EventBody::AgentLogin { .. } | EventBody::AgentLogout { .. } | EventBody::AgentState { .. } => {
                let Some((agent, state, reason)) = event.agent_transition() else {
                    return Ok(Applied::Unchanged);
                };
                let slot = self.agent_for(agent)?;
                self.set_state(slot, state, reason, at)
            }
            EventBody::CallStart { call, agent, .. } => {
                let slot = self.agent_for(agent)?;
                let state = event.agent_transition().map_or(AgentState::OnDirectCall, |t| t.1);
                let applied = self.set_state(slot, state, None, at);
                self.on_call(slot, call, &applied);
                applied
            }
            EventBody::CallEnd {
                agent,
                queue,
                talk_s,
                hold_s,
                wrap_s,
                ..
            } => {
                let slot = self.agent_for(agent)?;
                if let Some(q) = queue {
                    let q = self.queue_for(q)?;
                    self.queues[q as usize].handled(at, *talk_s + *hold_s + wrap_s.unwrap_or(0.0));
                    self.changes.queue(q);
                }
                // After a call comes wrap-up; its end is reported as the next state.
                self.set_state(slot, AgentState::WrapUp, None, at)
            }
            EventBody::CallerJoin { queue, call } => {
                let q = self.queue_for(queue)?;
                self.queues[q as usize].join(call, at);
                self.version += 1;
                self.changes.queue(q);
                Applied::Queue { slot: q }
            }
            EventBody::CallerAnswer {
                queue,
                call,
                agent,
                wait_s,
            } => {
                let q = self.queue_for(queue)?;
                let slot = self.agent_for(agent)?;
                self.queues[q as usize].answer(call, at, *wait_s);
                self.version += 1;
                self.changes.queue(q);
                let applied = self.set_state(slot, AgentState::OnQueueCall, None, at);
                self.on_call(slot, call, &applied);
                match applied {
                    Applied::Unchanged | Applied::Late => Applied::Queue { slot: q },
                    changed => changed,
                }
            }
            EventBody::CallerLeave {
                queue,
                call,
                reason,
                wait_s,
            } => {
                let q = self.queue_for(queue)?;
                self.queues[q as usize].leave(call, at, *reason, *wait_s);
                self.version += 1;
                self.changes.queue(q);
                Applied::Queue { slot: q }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{Direction, LeaveReason};
    use chrono::TimeZone;

    fn event(at_s: i64, body: EventBody) -> Event {
        Event {
            v: 1,
            id: format!("e{at_s}"),
            source: "test".into(),
            at: chrono::Utc.timestamp_opt(1_800_000_000 + at_s, 0).unwrap(),
            body,
        }
    }

    fn floor() -> TenantLive {
        let mut live = TenantLive::new(2, 1);
        live.add_queue(QueueLive::new("sales", Default::default(), chrono_tz::UTC));
        live.add_agent(
            "a1",
            "Ana",
            Membership {
                team: Some(0),
                location: Some(0),
                queues: Arc::from([0u32]),
            },
            0,
        );
        live.add_agent(
            "a2",
            "Ben",
            Membership {
                team: Some(1),
                location: Some(0),
                queues: Arc::from([]),
            },
            0,
        );
        live
    }

    fn state(agent: &str, state: AgentState) -> EventBody {
        EventBody::AgentState {
            agent: agent.into(),
            state,
            reason: None,
        }
    }

    #[test]
    fn counts_follow_state_changes_per_group() {
        let mut live = floor();
        assert_eq!(live.totals()[AgentState::LoggedOut.index()], 2);
        live.apply(&event(10, EventBody::AgentLogin { agent: "a1".into() }))
            .unwrap();
        live.apply(&event(11, state("a2", AgentState::Available))).unwrap();
        assert_eq!(live.totals()[AgentState::Available.index()], 2);
        assert_eq!(live.team_counts(0).unwrap()[AgentState::Available.index()], 1);
        assert_eq!(live.queue_counts(0).unwrap()[AgentState::Available.index()], 1);
        assert_eq!(live.location_counts(0).unwrap()[AgentState::Available.index()], 2);
        let paused = EventBody::AgentState {
            agent: "a1".into(),
            state: AgentState::Paused,
            reason: Some("lunch".into()),
        };
        let applied = live.apply(&event(20, paused)).unwrap();
        assert_eq!(
            applied,
            Applied::Agent {
                slot: 0,
                previous: AgentState::Available
            }
        );
        let a1 = live.agent(0).unwrap();
        assert_eq!(
            (a1.state, a1.reason.as_deref(), a1.since_ms),
            (AgentState::Paused, Some("lunch"), 1_800_000_020_000)
        );
        assert_eq!(live.totals().iter().sum::<u32>(), 2, "every agent is counted once");
    }

    #[test]
    fn changes_are_reported_once_per_look() {
        let mut live = floor();
        live.apply(&event(10, EventBody::AgentLogin { agent: "a1".into() }))
            .unwrap();
        live.apply(&event(11, state("a1", AgentState::Paused))).unwrap();
        live.apply(&event(12, state("a2", AgentState::Available))).unwrap();
        // a1 is in queue 0, whose tile counts agents by state.
        assert_eq!(
            live.take_changes(),
            Changed {
                agents: vec![0, 1],
                queues: vec![0]
            }
        );
        assert_eq!(live.take_changes(), Changed::default());
        live.apply(&event(5, state("a1", AgentState::Available))).unwrap();
        assert_eq!(
            live.take_changes(),
            Changed::default(),
            "a late event changes nothing shown"
        );
        live.apply(&event(20, state("a1", AgentState::Available))).unwrap();
        assert_eq!(live.take_changes().agents, vec![0]);
    }

    #[test]
    fn late_events_do_not_rewind_the_current_state() {
        let mut live = floor();
        live.apply(&event(30, state("a1", AgentState::OnDirectCall))).unwrap();
        let late = live.apply(&event(25, state("a1", AgentState::Available))).unwrap();
        assert_eq!(late, Applied::Late);
        assert_eq!(live.agent(0).unwrap().state, AgentState::OnDirectCall);
        // The same state again keeps since-when.
        assert_eq!(
            live.apply(&event(40, state("a1", AgentState::OnDirectCall))).unwrap(),
            Applied::Unchanged
        );
        assert_eq!(live.agent(0).unwrap().since_ms, 1_800_000_030_000);
    }

    #[test]
    fn unknown_agents_and_queues_are_errors() {
        let mut live = floor();
        assert_eq!(
            live.apply(&event(1, state("ghost", AgentState::Available))),
            Err(ApplyError::UnknownAgent("ghost".into()))
        );
        let join = EventBody::CallerJoin {
            queue: "nowhere".into(),
            call: "c".into(),
        };
        assert_eq!(
            live.apply(&event(1, join)),
            Err(ApplyError::UnknownQueue("nowhere".into()))
        );
    }

    #[test]
    fn a_queue_call_from_join_to_wrap_up() {
        let mut live = floor();
        live.apply(&event(0, EventBody::AgentLogin { agent: "a1".into() }))
            .unwrap();
        live.apply(&event(
            100,
            EventBody::CallerJoin {
                queue: "sales".into(),
                call: "c1".into(),
            },
        ))
        .unwrap();
        live.apply(&event(
            105,
            EventBody::CallerJoin {
                queue: "sales".into(),
                call: "c2".into(),
            },
        ))
        .unwrap();
        let q = live.queue(0).unwrap();
        assert_eq!(q.waiting(), 2);
        assert_eq!(q.longest_wait_s(1_800_000_110_000), Some(10.0));
        let answer = EventBody::CallerAnswer {
            queue: "sales".into(),
            call: "c1".into(),
            agent: "a1".into(),
            wait_s: 12.0,
        };
        live.apply(&event(112, answer)).unwrap();
        assert_eq!(live.agent(0).unwrap().state, AgentState::OnQueueCall);
        let leave = EventBody::CallerLeave {
            queue: "sales".into(),
            call: "c2".into(),
            reason: LeaveReason::Abandon,
            wait_s: 30.0,
        };
        live.apply(&event(135, leave)).unwrap();
        let start = EventBody::CallStart {
            call: "c1".into(),
            agent: "a1".into(),
            queue: Some("sales".into()),
            direction: Direction::Inbound,
        };
        live.apply(&event(112, start)).unwrap();
        let end = EventBody::CallEnd {
            call: "c1".into(),
            agent: "a1".into(),
            queue: Some("sales".into()),
            talk_s: 170.0,
            hold_s: 10.0,
            wrap_s: Some(20.0),
        };
        live.apply(&event(300, end)).unwrap();
        assert_eq!(live.agent(0).unwrap().state, AgentState::WrapUp);
        let q = live.queue(0).unwrap();
        assert_eq!(q.waiting(), 0);
        let today = q.today();
        assert_eq!(
            (today.offered, today.answered, today.abandoned, today.answered_within),
            (2, 1, 1, 1)
        );
        assert_eq!(crate::kpi::aht(today), Some(200.0));
    }
}
