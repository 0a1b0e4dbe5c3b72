//! The simulator's speed and what its default floor does over a day:
//! `cargo bench --bench simulator` (`AGENTS=50 HOURS=8 cargo bench --bench simulator` for
//! another floor). Prints how long generating and simulating take, then the floor quarter hour by
//! quarter hour from 10:00 (`LOAD=1.1` scales the arrival rates): occupancy, agents taking calls and paused, calls offered and placed,
//! and per queue the service level, the callers waiting at the end and the abandons.

use std::time::Instant;

use monti::domain::events::AgentState;
use monti::sim::{Scenario, ScenarioConfig, SimParams, SimStats, Simulation};

const HOUR_MS: i64 = 3_600_000;
/// 2025-03-03T09:00:00Z, a Monday.
const START_MS: i64 = 1_740_992_400_000;

fn default_floor(agents: usize) -> Scenario {
    Scenario::generate(&ScenarioConfig {
        agents,
        ..ScenarioConfig::default()
    })
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn speed() {
    for (agents, simulated_ms) in [(2000, HOUR_MS), (2000, 24 * HOUR_MS), (100_000, HOUR_MS / 6)] {
        let started = Instant::now();
        let scenario = default_floor(agents);
        let generated = started.elapsed();
        let mut sim = Simulation::new(&scenario, SimParams::default(), START_MS);
        let mut events = Vec::new();
        let started = Instant::now();
        let mut count = 0;
        for step in 1..=simulated_ms / (HOUR_MS / 6) {
            events.clear();
            sim.advance(START_MS + step * HOUR_MS / 6, &mut events);
            count += events.len();
        }
        println!(
            "{agents} agents: scenario in {generated:?}; {} simulated minutes from 10:00: {count} events in {:?}",
            simulated_ms / 60_000,
            started.elapsed()
        );
    }
}

fn main() {
    speed();
    let (agents, quarters) = (env("AGENTS", 2000), env("HOURS", 3) as i64 * 4);
    println!("\n{agents} agents from 10:00 (per queue: service level / waiting at the end / abandons):");
    day_profile(agents, quarters);
}

fn day_profile(agents: usize, quarters: i64) {
    let params = SimParams {
        load: std::env::var("LOAD").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0),
        ..SimParams::default()
    };
    let mut sim = Simulation::new(&default_floor(agents), params, START_MS);
    let mut events = Vec::new();
    let mut before = sim.stats().clone();
    for quarter in 1..=quarters {
        events.clear();
        sim.advance(START_MS + quarter * HOUR_MS / 4, &mut events);
        let after = sim.stats().clone();
        let state_s: [f64; 8] = std::array::from_fn(|i| after.agent_state_s[i] - before.agent_state_s[i]);
        let occupancy = SimStats {
            agent_state_s: state_s,
            ..SimStats::default()
        }
        .occupancy()
        .unwrap_or(0.0);
        let agents_in = |states: &[AgentState]| states.iter().map(|s| state_s[s.index()]).sum::<f64>() / 900.0;
        let taking_calls = agents_in(&[
            AgentState::Available,
            AgentState::Ringing,
            AgentState::OnQueueCall,
            AgentState::OnDirectCall,
            AgentState::WrapUp,
        ]);
        let mut offered = 0;
        let queues: Vec<String> = after
            .queues
            .iter()
            .zip(&before.queues)
            .map(|(a, b)| {
                offered += a.offered - b.offered;
                let answered = (a.answered - b.answered).max(1) as f64;
                let sl = 100.0 * (a.answered_within_sl - b.answered_within_sl) as f64 / answered;
                format!("{sl:>3.0}%/{:>2}w/{:>2}ab", a.waiting, a.abandoned - b.abandoned)
            })
            .collect();
        println!(
            "{:>2}:{:02} occupancy {occupancy:.2} taking calls {taking_calls:>6.0} paused {:>5.0} offered {offered:>5} \
             outbound {:>4}  {}",
            10 + quarter / 4,
            (quarter % 4) * 15,
            agents_in(&[AgentState::Paused]),
            after.direct_calls - before.direct_calls,
            queues.join(" ")
        );
        before = after;
    }
}
