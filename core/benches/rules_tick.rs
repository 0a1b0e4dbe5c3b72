//! What one tick of alert rules costs, on one core: `cargo bench -p monti --bench rules_tick`.
//!
//! A floor of 2,000 agents in 20 queues (busy: callers waiting, agents in every state), 50 queue
//! rules and 20 agent rules of the kinds the starter set has. A tick reads the floor's facts and
//! evaluates every rule on every subject it covers (50 × 20 queue evaluations, 20 × 2,000 agent
//! evaluations). Target (issue 7): ≤ 5 ms per tick.
//!
//! Knobs: AGENTS (2000), QUEUE_RULES (50), AGENT_RULES (20), TICKS (200).

use std::sync::Arc;
use std::time::Instant;

use chrono::TimeZone;
use monti::domain::events::{AgentState, Event, EventBody};
use monti::live::registry::Floor;
use monti::live::{Membership, QueueLive, TenantLive};
use monti::rules::eval::{Evaluator, FloorFacts, Rule, Severity};
use monti::rules::{RuleEngine, RuleScope};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn floor(agents: usize, now_ms: i64) -> Floor {
    let queues = 20;
    let mut live = TenantLive::new(1, 1);
    for q in 0..queues {
        live.add_queue(QueueLive::new(&format!("q{q}"), Default::default(), chrono_tz::UTC));
    }
    for a in 0..agents {
        let member = Membership {
            team: Some(0),
            location: Some(0),
            queues: vec![(a % queues) as u32, ((a + 7) % queues) as u32].into(),
        };
        live.add_agent(&format!("agent-{a}"), &format!("Agent {a}"), member, 0);
    }
    let at = |ms: i64| chrono::Utc.timestamp_millis_opt(ms).unwrap();
    let states = [
        AgentState::Available,
        AgentState::OnQueueCall,
        AgentState::WrapUp,
        AgentState::Paused,
        AgentState::Ringing,
    ];
    let mut n = 0;
    let mut apply = |body: EventBody, ms: i64| {
        n += 1;
        let _ = live.apply(&Event {
            v: 1,
            id: format!("e{n}"),
            source: "bench".into(),
            at: at(ms),
            body,
        });
    };
    for a in 0..agents {
        let state = states[a % states.len()];
        let reason = (state == AgentState::Paused).then(|| "break".to_owned());
        apply(
            EventBody::AgentState {
                agent: format!("agent-{a}"),
                state,
                reason,
            },
            now_ms - (a as i64 % 1800) * 1000,
        );
    }
    for c in 0..200 {
        apply(
            EventBody::CallerJoin {
                queue: format!("q{}", c % queues),
                call: format!("c{c}"),
            },
            now_ms - (c as i64 % 120) * 1000,
        );
    }
    Floor::detached(live)
}

fn main() {
    let agents: usize = env_or("AGENTS", 2000);
    let queue_rules: usize = env_or("QUEUE_RULES", 50);
    let agent_rules: usize = env_or("AGENT_RULES", 20);
    let ticks: usize = env_or("TICKS", 200);
    let now_ms = 1_800_000_000_000;
    let floor = floor(agents, now_ms);
    let engine = RuleEngine::new();
    let queue_texts = [
        "queue.waiting > 10 && queue.longest_wait_s > 60",
        "queue.service_level < queue.sl_target - 5",
        "queue.waiting > 0 && queue.agents_available == 0",
        "queue.abandon_rate > 10.0 && queue.offered >= 20",
        "queue.longest_wait_s > 120",
    ];
    let agent_texts = [
        "agent.state == \"paused\" && agent.in_state_s > 1200",
        "agent.state == \"wrap_up\" && agent.in_state_s > 300",
        "agent.state == \"ringing\" && agent.in_state_s > 30",
        "agent.state == \"on_queue_call\" && agent.in_state_s > 1800",
    ];
    let mut rules = Vec::new();
    for i in 0..queue_rules {
        let text = queue_texts[i % queue_texts.len()];
        rules.push(Rule {
            id: format!("q{i}"),
            version: 1,
            name: format!("queue rule {i}"),
            scope: RuleScope::Queue,
            queues: Vec::new(),
            teams: Vec::new(),
            severity: Severity::Warning,
            for_s: 30,
            message: "{queue.name}: {queue.waiting} waiting".into(),
            targets: Vec::new(),
            compiled: Arc::new(engine.compile(RuleScope::Queue, text).unwrap()),
        });
    }
    for i in 0..agent_rules {
        let text = agent_texts[i % agent_texts.len()];
        rules.push(Rule {
            id: format!("a{i}"),
            version: 1,
            name: format!("agent rule {i}"),
            scope: RuleScope::Agent,
            queues: Vec::new(),
            teams: Vec::new(),
            severity: Severity::Info,
            for_s: 60,
            message: "{agent.name}: {agent.state} for {agent.in_state_s} s".into(),
            targets: Vec::new(),
            compiled: Arc::new(engine.compile(RuleScope::Agent, text).unwrap()),
        });
    }
    let mut evaluator = Evaluator::default();
    let mut per_tick = Vec::with_capacity(ticks);
    let mut facts_time = Vec::with_capacity(ticks);
    let mut evaluations = 0;
    let mut fired = 0;
    for t in 0..ticks {
        let now = now_ms + t as i64 * 1000;
        let started = Instant::now();
        let facts = FloorFacts::of(&floor, now);
        let read = started.elapsed();
        let (changes, runs) = evaluator.tick(&engine, &rules, &facts, now);
        per_tick.push(started.elapsed().as_secs_f64() * 1000.0);
        facts_time.push(read.as_secs_f64() * 1000.0);
        evaluations = runs.values().map(|r| r.evaluated as usize).sum::<usize>();
        fired += changes.len();
        assert!(runs.values().all(|r| r.error.is_none()), "no rule fails");
    }
    per_tick.sort_by(f64::total_cmp);
    facts_time.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    println!(
        "{agents} agents, 20 queues, {queue_rules} queue rules, {agent_rules} agent rules: {evaluations} evaluations per tick; \
         {ticks} ticks: median {:.2} ms, p95 {:.2} ms, max {:.2} ms per tick (reading the floor: median {:.2} ms); \
         {:.0} ns per evaluation; {fired} alerts fired or resolved",
        pct(&per_tick, 0.5),
        pct(&per_tick, 0.95),
        pct(&per_tick, 1.0),
        pct(&facts_time, 0.5),
        (pct(&per_tick, 0.5) - pct(&facts_time, 0.5)) * 1e6 / evaluations as f64,
    );
}
