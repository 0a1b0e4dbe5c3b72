//! How fast the live state applies events, on one core: `cargo bench --bench live_apply`.
//! Target (issue 4): ≥ 1,000,000 events/s at 2,000 and at 100,000 agents.

use std::time::Instant;

use chrono::TimeZone;
use monti::domain::events::{AgentState, Event, EventBody};
use monti::live::{Membership, QueueLive, TenantLive};

/// A deterministic pseudo-random sequence (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn floor(agents: usize) -> TenantLive {
    let teams = (agents / 50).max(1);
    let mut live = TenantLive::new(teams, 20);
    for q in 0..20 {
        live.add_queue(QueueLive::new(&format!("q{q}"), Default::default(), chrono_tz::UTC));
    }
    for a in 0..agents {
        let member = Membership {
            team: Some((a % teams) as u32),
            location: Some((a % 20) as u32),
            queues: vec![(a % 20) as u32, ((a + 7) % 20) as u32].into(),
        };
        live.add_agent(&format!("agent-{a}"), &format!("Agent {a}"), member, 0);
    }
    live
}

fn events(agents: usize, count: usize) -> Vec<Event> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = chrono::Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let states = [
        AgentState::Available,
        AgentState::Ringing,
        AgentState::OnQueueCall,
        AgentState::WrapUp,
        AgentState::Paused,
    ];
    (0..count)
        .map(|i| {
            let agent = (rng.next() % agents as u64) as usize;
            let state = states[(rng.next() % states.len() as u64) as usize];
            Event {
                v: 1,
                id: format!("e{i}"),
                source: "bench".into(),
                at: start + chrono::Duration::milliseconds(i as i64),
                body: EventBody::AgentState {
                    agent: format!("agent-{agent}"),
                    state,
                    reason: (state == AgentState::Paused).then(|| "break".to_owned()),
                },
            }
        })
        .collect()
}

fn main() {
    const EVENTS: usize = 2_000_000;
    for agents in [2_000, 100_000] {
        let mut live = floor(agents);
        let batch = events(agents, EVENTS);
        // Warm up caches and the allocator.
        for e in batch.iter().take(100_000) {
            let _ = live.apply(e);
        }
        let started = Instant::now();
        let mut changed = 0u64;
        for e in &batch {
            if matches!(live.apply(e), Ok(monti::live::Applied::Agent { .. })) {
                changed += 1;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "live apply, {agents:>7} agents: {:>10.0} events/s ({EVENTS} agent state events in {:.3} s, {changed} changed a state)",
            EVENTS as f64 / elapsed,
            elapsed
        );
    }
}
