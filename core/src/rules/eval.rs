//! Evaluating a tenant's rules on a tick, and the alerts' lifecycle: a condition that holds
//! becomes *pending*; held for the rule's `for` it is *firing*; when it stops holding a firing
//! alert is *resolved* (a pending one is dropped). A rule that fails to evaluate keeps its
//! alerts as they were and reports the error to its author.
//!
//! A tick has a time [`Budget`]: all of a tenant's rules together, and each rule on all its
//! subjects. A rule cut short, or not reached, keeps its alerts as they were.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rhai::ImmutableString;

use super::engine::{CancelGuard, CompiledRule, Limit, RuleEngine, RuleError, RuleScope, Subject};
use super::facts::{
    AGENT_FIELDS, AgentCounts, AgentFacts, Field, QUEUE_FIELDS, QueueFacts, TENANT_FIELDS, TenantFacts,
};
use crate::domain::events::AgentState;
use crate::live::registry::Floor;

pub use crate::domain::alert::{AlertChange, Severity};

/// A rule as the evaluator runs it.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub version: i64,
    pub name: String,
    pub scope: RuleScope,
    /// Only these queues (ids), or the agents in them; empty: all.
    pub queues: Vec<String>,
    /// Only agents of these teams (ids); empty: all.
    pub teams: Vec<String>,
    pub severity: Severity,
    /// Seconds the condition must hold before the alert fires.
    pub for_s: u32,
    /// The alert's text, with `{queue.name}`-style fields filled in.
    pub message: String,
    /// Where notifications go (`{"type": "email", "to": …}`, `{"type": "webhook", "url": …}`).
    pub targets: Vec<serde_json::Value>,
    pub compiled: Arc<CompiledRule>,
}

/// One agent's facts and what filters need.
#[derive(Debug, Clone)]
pub struct AgentEntry {
    pub facts: AgentFacts,
    pub team_id: Option<Arc<str>>,
    /// Ids of the queues the agent is a member of.
    pub queue_ids: Vec<Arc<str>>,
}

/// The floor as rules read it at one instant.
#[derive(Debug, Clone, Default)]
pub struct FloorFacts {
    pub tenant: TenantFacts,
    pub queues: Vec<QueueFacts>,
    pub agents: Vec<AgentEntry>,
}

fn counts(states: &[u32; AgentState::ALL.len()]) -> AgentCounts {
    let of = |s: AgentState| i64::from(states[s.index()]);
    AgentCounts {
        logged_in: AgentState::ALL
            .iter()
            .filter(|s| **s != AgentState::LoggedOut)
            .map(|s| of(*s))
            .sum(),
        available: of(AgentState::Available),
        ringing: of(AgentState::Ringing),
        on_call: of(AgentState::OnQueueCall) + of(AgentState::OnDirectCall),
        wrap_up: of(AgentState::WrapUp),
        paused: of(AgentState::Paused),
        unavailable: of(AgentState::Unavailable),
    }
}

impl FloorFacts {
    /// Reads the floor (under its lock, briefly).
    pub fn of(floor: &Floor, now_ms: i64) -> Self {
        let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut tenant = TenantFacts {
            agents: counts(live.totals()),
            ..TenantFacts::default()
        };
        let mut queues = Vec::with_capacity(live.queues().len());
        for (slot, queue) in live.queues().iter().enumerate() {
            let info = floor.queues.get(slot);
            let today = queue.today();
            let waiting = queue.waiting() as i64;
            let longest = queue.longest_wait_s(now_ms).unwrap_or(0.0);
            tenant.waiting += waiting;
            tenant.longest_wait_s = tenant.longest_wait_s.max(longest);
            queues.push(QueueFacts {
                id: queue.id.as_ref().into(),
                name: info.map_or_else(|| queue.id.as_ref().into(), |i| i.name.as_str().into()),
                waiting,
                longest_wait_s: longest,
                // The KPI maths gives fractions; rules read percent, as the board shows them.
                service_level: crate::kpi::service_level(today, queue.settings.service_level)
                    .map_or(100.0, |v| v * 100.0),
                sl_target: info.map_or(80, |i| i64::from(i.target_pct)),
                sl_threshold_s: queue.settings.threshold_s,
                offered: today.offered as i64,
                answered: today.answered as i64,
                abandoned: today.abandoned as i64,
                abandon_rate: crate::kpi::abandon_rate(today, queue.settings.abandon_rate_counts_short)
                    .map_or(0.0, |v| v * 100.0),
                asa_s: crate::kpi::asa(today).unwrap_or(0.0),
                aht_s: crate::kpi::aht(today).unwrap_or(0.0),
                agents: live.queue_counts(slot as u32).map(counts).unwrap_or_default(),
            });
        }
        let team_name = |id: &Option<Arc<str>>| -> ImmutableString {
            id.as_ref()
                .and_then(|id| floor.teams.iter().position(|t| **t == **id))
                .and_then(|i| floor.team_names.get(i))
                .map_or_else(ImmutableString::new, |n| n.as_str().into())
        };
        let location_name = |id: &Option<Arc<str>>| -> ImmutableString {
            id.as_ref()
                .and_then(|id| floor.locations.iter().position(|l| **l == **id))
                .and_then(|i| floor.location_names.get(i))
                .map_or_else(ImmutableString::new, |n| n.as_str().into())
        };
        let agents = live
            .agents()
            .iter()
            .zip(&floor.agent_groups)
            .map(|(agent, (team, location))| AgentEntry {
                facts: AgentFacts {
                    id: agent.id.as_ref().into(),
                    name: agent.name.as_ref().into(),
                    state: agent.state.as_str().into(),
                    reason: agent.reason.as_deref().unwrap_or_default().into(),
                    in_state_s: ((now_ms - agent.since_ms).max(0) / 1000),
                    team: team_name(team),
                    location: location_name(location),
                },
                team_id: team.clone(),
                queue_ids: agent
                    .member
                    .queues
                    .iter()
                    .filter_map(|q| live.queue(*q).map(|q| q.id.clone()))
                    .collect(),
            })
            .collect();
        Self { tenant, queues, agents }
    }
}

/// Fills `{queue.name}`, `{agent.in_state_s}`, `{tenant.waiting}` … in an alert's text.
pub fn render_message(template: &str, tenant: &TenantFacts, subject: &Subject<'_>) -> String {
    fn fill<T>(out: &mut String, prefix: &str, fields: &[Field<T>], value: &T) {
        for field in fields {
            let placeholder = format!("{{{prefix}.{}}}", field.name);
            if out.contains(&placeholder) {
                let text = match (field.read)(value) {
                    super::facts::Read::Float(f) => format!("{f:.1}"),
                    super::facts::Read::Int(i) => i.to_string(),
                    super::facts::Read::Str(s) => s.to_string(),
                };
                *out = out.replace(&placeholder, &text);
            }
        }
    }
    let mut out = template.to_owned();
    fill(&mut out, "tenant", TENANT_FIELDS, tenant);
    match subject {
        Subject::Tenant => {}
        Subject::Queue(q) => fill(&mut out, "queue", QUEUE_FIELDS, *q),
        Subject::Agent(a) => fill(&mut out, "agent", AGENT_FIELDS, *a),
    }
    out
}

/// The placeholders a message template uses that a rule of `scope` cannot fill.
pub fn unknown_placeholders(template: &str, scope: RuleScope) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = &after[..close];
        let known = match name.split_once('.') {
            Some(("tenant", f)) => TENANT_FIELDS.iter().any(|x| x.name == f),
            Some(("queue", f)) => scope == RuleScope::Queue && QUEUE_FIELDS.iter().any(|x| x.name == f),
            Some(("agent", f)) => scope == RuleScope::Agent && AGENT_FIELDS.iter().any(|x| x.name == f),
            _ => false,
        };
        if !known {
            unknown.push(format!("{{{name}}}"));
        }
        rest = &after[close + 1..];
    }
    unknown
}

#[derive(Debug, Clone)]
struct Active {
    since_ms: i64,
    /// Set once it fired: the change that said so.
    fired: Option<AlertChange>,
}

/// What one rule did on a tick, for its author.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleRun {
    pub evaluated: u32,
    pub held: u32,
    /// The first error of the tick, with how many evaluations failed.
    pub error: Option<(RuleError, u32)>,
    /// The rule ran over: its time for the tick ran out, or an evaluation hit its step or time
    /// cap. Rules that keep doing so are suspended ([`super::service`]).
    pub over_budget: bool,
    /// Not evaluated on every subject: the tick's time ran out first (other rules used it) or
    /// the caller gave up.
    pub skipped: bool,
    /// How long the rule took on this tick.
    pub elapsed: Duration,
}

/// How long the rules of one tick may run, and what cancels them.
#[derive(Debug, Clone)]
pub struct Budget {
    /// All the rules of the tick together.
    pub tick: Duration,
    /// One rule, on all its subjects.
    pub rule: Duration,
    /// Set when whoever asked for the tick gave up on it.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// A tenant's rules on one tick. The starter rules on 2,000 agents take a few milliseconds;
/// this is ample for honest rules and keeps one tenant's from holding a core.
pub const TICK_BUDGET: Duration = Duration::from_millis(250);
/// One rule on one tick.
pub const RULE_BUDGET: Duration = Duration::from_millis(100);

impl Default for Budget {
    fn default() -> Self {
        Self {
            tick: TICK_BUDGET,
            rule: RULE_BUDGET,
            cancel: None,
        }
    }
}

/// Sets its flag when dropped: held by a request handler, so work handed elsewhere stops when
/// the request ends (answered, timed out or abandoned by the client).
#[derive(Debug)]
pub struct CancelOnDrop(Arc<AtomicBool>);

impl CancelOnDrop {
    pub fn new() -> (Self, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (Self(flag.clone()), flag)
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Ticks are a second apart give or take a few milliseconds (when the clock is read): a condition
/// seen on ticks `for` seconds apart has held for `for`, and fires on that tick, not the next.
const FOR_SLACK_MS: i64 = 100;

/// How many evaluations go by between two looks at the clock (it costs about what a plain
/// condition does).
const CLOCK_EVERY: u32 = 32;

/// One tenant's rules between ticks: which conditions hold since when, which alerts fire.
#[derive(Debug, Default)]
pub struct Evaluator {
    active: HashMap<(String, String), Active>,
}

impl Evaluator {
    /// Takes over alerts that were open when the server stopped: they keep firing (and resolve
    /// once their condition no longer holds) instead of firing again.
    pub fn restore(&mut self, open: Vec<crate::store::alert_rules::AlertRow>) {
        for alert in open {
            let change = AlertChange {
                rule_id: alert.rule_id.clone(),
                rule_version: alert.rule_version,
                rule_name: alert.rule_name,
                severity: Severity::parse(&alert.severity).unwrap_or(Severity::Warning),
                subject: alert.subject.clone(),
                subject_name: alert.subject_name,
                message: alert.message,
                since_ms: alert.since_at,
                fired_ms: alert.fired_at,
                resolved_ms: None,
            };
            self.active.insert(
                (alert.rule_id, alert.subject),
                Active {
                    since_ms: alert.since_at,
                    fired: Some(change),
                },
            );
        }
    }

    /// Alerts firing now.
    pub fn firing(&self) -> impl Iterator<Item = &AlertChange> {
        self.active.values().filter_map(|a| a.fired.as_ref())
    }

    /// Evaluates every rule on the floor within the default [`Budget`]; returns the alerts that
    /// fired or resolved, and per rule what it did.
    pub fn tick(
        &mut self,
        engine: &RuleEngine,
        rules: &[Rule],
        facts: &FloorFacts,
        now_ms: i64,
    ) -> (Vec<AlertChange>, HashMap<String, RuleRun>) {
        self.tick_within(engine, rules, facts, now_ms, &Budget::default())
    }

    /// As [`tick`](Self::tick), within `budget`. Rules run in the order given.
    pub fn tick_within(
        &mut self,
        engine: &RuleEngine,
        rules: &[Rule],
        facts: &FloorFacts,
        now_ms: i64,
        budget: &Budget,
    ) -> (Vec<AlertChange>, HashMap<String, RuleRun>) {
        let cancel = CancelGuard::enter(budget.cancel.clone());
        let tick_ends = Instant::now() + budget.tick;
        let mut changes = Vec::new();
        let mut runs = HashMap::new();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        for rule in rules {
            let started = Instant::now();
            let own_end = started + budget.rule;
            let ends = own_end.min(tick_ends);
            let mut run = RuleRun::default();
            // Set when the rule stops before its last subject.
            let mut cut = started >= tick_ends || cancel.is_set();
            // The subject's key is made only when the rule holds or fails: most evaluations
            // are false, and allocating for each would cost more than evaluating.
            let mut check = |subject_key: &dyn Fn() -> String, subject_name: &str, subject: Subject<'_>| {
                if cut {
                    return;
                }
                if run.evaluated % CLOCK_EVERY == CLOCK_EVERY - 1 && (Instant::now() >= ends || cancel.is_set()) {
                    cut = true;
                    return;
                }
                run.evaluated += 1;
                match engine.evaluate_until(&rule.compiled, &facts.tenant, subject_ref(&subject), Some(ends)) {
                    Ok(true) => {
                        let key = (rule.id.clone(), subject_key());
                        run.held += 1;
                        let active = self.active.entry(key.clone()).or_insert(Active {
                            since_ms: now_ms,
                            fired: None,
                        });
                        if active.fired.is_none()
                            && now_ms - active.since_ms + FOR_SLACK_MS >= i64::from(rule.for_s) * 1000
                        {
                            let change = AlertChange {
                                rule_id: rule.id.clone(),
                                rule_version: rule.version,
                                rule_name: rule.name.clone(),
                                severity: rule.severity,
                                subject: key.1.clone(),
                                subject_name: subject_name.to_owned(),
                                message: render_message(&rule.message, &facts.tenant, &subject),
                                since_ms: active.since_ms,
                                fired_ms: now_ms,
                                resolved_ms: None,
                            };
                            active.fired = Some(change.clone());
                            changes.push(change);
                        }
                        seen.insert(key);
                    }
                    Ok(false) => {}
                    Err(error) => {
                        // Unknown: the alert stays as it was.
                        seen.insert((rule.id.clone(), subject_key()));
                        match error.limit {
                            Some(Limit::Budget | Limit::Cancelled) => {
                                // Not this subject's answer: the time ran out under it.
                                run.evaluated -= 1;
                                cut = true;
                                return;
                            }
                            Some(_) => run.over_budget = true,
                            None => {}
                        }
                        match &mut run.error {
                            Some((_, n)) => *n += 1,
                            None => run.error = Some((error, 1)),
                        }
                    }
                }
            };
            match rule.scope {
                RuleScope::Tenant => check(&|| "tenant".into(), "", Subject::Tenant),
                RuleScope::Queue => {
                    for queue in &facts.queues {
                        if rule.queues.is_empty() || rule.queues.iter().any(|q| **q == *queue.id) {
                            check(&|| format!("queue:{}", queue.id), &queue.name, Subject::Queue(queue));
                        }
                    }
                }
                RuleScope::Agent => {
                    for agent in &facts.agents {
                        let in_team = rule.teams.is_empty()
                            || agent
                                .team_id
                                .as_deref()
                                .is_some_and(|t| rule.teams.iter().any(|r| r == t));
                        let in_queue = rule.queues.is_empty()
                            || agent.queue_ids.iter().any(|q| rule.queues.iter().any(|r| **r == **q));
                        if in_team && in_queue {
                            check(
                                &|| format!("agent:{}", agent.facts.id),
                                &agent.facts.name,
                                Subject::Agent(&agent.facts),
                            );
                        }
                    }
                }
            }
            if cut {
                // What the rule did not get to keeps its alerts.
                seen.extend(self.active.keys().filter(|k| k.0 == rule.id).cloned());
                if Instant::now() >= own_end && started < tick_ends && !cancel.is_set() {
                    run.over_budget = true;
                } else {
                    run.skipped = true;
                }
            }
            run.elapsed = started.elapsed();
            runs.insert(rule.id.clone(), run);
        }
        // What no longer holds (or whose rule or subject is gone) resolves.
        let ended: Vec<(String, String)> = self.active.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for key in ended {
            if let Some(Active {
                fired: Some(mut alert), ..
            }) = self.active.remove(&key)
            {
                alert.resolved_ms = Some(now_ms);
                changes.push(alert);
            }
        }
        (changes, runs)
    }
}

fn subject_ref<'a>(subject: &Subject<'a>) -> Subject<'a> {
    match subject {
        Subject::Tenant => Subject::Tenant,
        Subject::Queue(q) => Subject::Queue(q),
        Subject::Agent(a) => Subject::Agent(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(engine: &RuleEngine, scope: RuleScope, text: &str, for_s: u32) -> Rule {
        Rule {
            id: "r1".into(),
            version: 1,
            name: "Long waits".into(),
            scope,
            queues: Vec::new(),
            teams: Vec::new(),
            severity: Severity::Warning,
            for_s,
            message: "{queue.name}: {queue.waiting} waiting".into(),
            targets: Vec::new(),
            compiled: Arc::new(engine.compile(scope, text).unwrap()),
        }
    }

    fn floor(waiting: i64) -> FloorFacts {
        FloorFacts {
            queues: vec![QueueFacts {
                id: "q1".into(),
                name: "Sales".into(),
                waiting,
                ..QueueFacts::default()
            }],
            ..FloorFacts::default()
        }
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let engine = RuleEngine::new();
        let rules = [rule(&engine, RuleScope::Queue, "queue.waiting > 10", 30)];
        let mut evaluator = Evaluator::default();
        let (changes, runs) = evaluator.tick(&engine, &rules, &floor(12), 0);
        assert!(changes.is_empty(), "pending, not firing");
        assert_eq!(runs["r1"].held, 1);
        let (changes, _) = evaluator.tick(&engine, &rules, &floor(12), 29_000);
        assert!(changes.is_empty());
        let (changes, _) = evaluator.tick(&engine, &rules, &floor(13), 30_000);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].message, "Sales: 13 waiting");
        assert_eq!((changes[0].since_ms, changes[0].fired_ms), (0, 30_000));
        assert_eq!(evaluator.firing().count(), 1);
        let (changes, _) = evaluator.tick(&engine, &rules, &floor(13), 31_000);
        assert!(changes.is_empty(), "fires once");
        let (changes, _) = evaluator.tick(&engine, &rules, &floor(2), 40_000);
        assert_eq!(changes[0].resolved_ms, Some(40_000));
        assert_eq!(evaluator.firing().count(), 0);
        // A condition that stops before its `for` never fires.
        evaluator.tick(&engine, &rules, &floor(12), 50_000);
        let (changes, _) = evaluator.tick(&engine, &rules, &floor(1), 60_000);
        assert!(changes.is_empty());
    }

    #[test]
    fn an_erroring_rule_keeps_its_alerts_and_reports() {
        let engine = RuleEngine::new();
        let mut rules = [rule(&engine, RuleScope::Queue, "queue.waiting > 10", 0)];
        let mut evaluator = Evaluator::default();
        let (changes, _) = evaluator.tick(&engine, &rules, &floor(12), 0);
        assert_eq!(changes.len(), 1);
        rules[0].compiled = Arc::new(engine.compile(RuleScope::Queue, "queue.nope > 1").unwrap());
        let (changes, runs) = evaluator.tick(&engine, &rules, &floor(12), 1_000);
        assert!(changes.is_empty(), "not resolved by an error");
        let (error, count) = runs["r1"].error.clone().unwrap();
        assert_eq!(count, 1);
        assert!(error.message.contains("nope"), "{error:?}");
        // The rule removed: its alert resolves.
        let (changes, _) = evaluator.tick(&engine, &[], &floor(12), 2_000);
        assert_eq!(changes[0].resolved_ms, Some(2_000));
    }

    #[test]
    fn open_alerts_of_a_previous_run_are_taken_over_not_fired_again() {
        let engine = RuleEngine::new();
        let rules = [rule(&engine, RuleScope::Queue, "queue.waiting > 10", 0)];
        let open = crate::store::alert_rules::AlertRow {
            id: "alert_1".into(),
            rule_id: "r1".into(),
            rule_version: 1,
            rule_name: "Long waits".into(),
            severity: "warning".into(),
            subject: "queue:q1".into(),
            subject_name: "Sales".into(),
            message: "Sales: 12 waiting".into(),
            since_at: 1_000,
            fired_at: 2_000,
            resolved_at: None,
            acknowledged_by: None,
            acknowledged_at: None,
        };
        let mut evaluator = Evaluator::default();
        evaluator.restore(vec![open]);
        assert_eq!(evaluator.firing().count(), 1);
        let (changes, _) = evaluator.tick(&engine, &rules, &floor(12), 10_000);
        assert!(changes.is_empty(), "still firing: not fired twice");
        let (changes, _) = evaluator.tick(&engine, &rules, &floor(1), 11_000);
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].fired_ms, changes[0].resolved_ms), (2_000, Some(11_000)));
    }

    fn agents(count: usize) -> FloorFacts {
        FloorFacts {
            agents: (0..count)
                .map(|n| AgentEntry {
                    facts: AgentFacts {
                        id: format!("a{n}").into(),
                        ..AgentFacts::default()
                    },
                    team_id: None,
                    queue_ids: Vec::new(),
                })
                .collect(),
            ..FloorFacts::default()
        }
    }

    #[test]
    fn a_rule_stops_at_its_budget_and_keeps_its_alerts() {
        let engine = RuleEngine::new();
        let mut slow = rule(&engine, RuleScope::Agent, "agent.in_state_s >= 0", 0);
        let facts = agents(200);
        let mut evaluator = Evaluator::default();
        let (changes, runs) = evaluator.tick(&engine, std::slice::from_ref(&slow), &facts, 0);
        assert_eq!((changes.len(), runs["r1"].over_budget), (200, false));
        // Now it loops: it stops at its budget, well before the 200 × 10 ms it would take, and
        // its alerts (evaluated or not) stay as they were.
        slow.compiled = Arc::new(engine.compile(RuleScope::Agent, "loop { } true").unwrap());
        let budget = Budget {
            tick: Duration::from_secs(10),
            rule: Duration::from_millis(50),
            cancel: None,
        };
        let started = Instant::now();
        let (changes, runs) = evaluator.tick_within(&engine, std::slice::from_ref(&slow), &facts, 1_000, &budget);
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        let run = &runs["r1"];
        assert!(run.over_budget && !run.skipped, "{run:?}");
        assert!(run.evaluated < 200, "stopped before every agent: {run:?}");
        assert!(changes.is_empty(), "nothing resolved: {changes:?}");
        assert_eq!(evaluator.firing().count(), 200);
    }

    #[test]
    fn the_ticks_budget_is_shared_and_a_cancel_stops_it() {
        let engine = RuleEngine::new();
        // Slow steps: it runs into a time limit, not the step limit.
        let mut hostile = rule(
            &engine,
            RuleScope::Tenant,
            "let s = \"\"; s.pad(5000, \"x\"); loop { s.to_upper(); } true",
            0,
        );
        hostile.id = "hostile".into();
        let honest = rule(&engine, RuleScope::Tenant, "tenant.waiting == 0", 0);
        let budget = Budget {
            tick: Duration::from_millis(5),
            rule: Duration::from_millis(100),
            cancel: None,
        };
        let facts = FloorFacts::default();
        let (_, runs) =
            Evaluator::default().tick_within(&engine, &[hostile.clone(), honest.clone()], &facts, 0, &budget);
        assert!(!runs["hostile"].over_budget && runs["hostile"].skipped, "{runs:?}");
        assert!(runs["r1"].skipped && runs["r1"].evaluated == 0, "{runs:?}");
        // Cheap rules first (the service orders them by their last tick): the honest one runs.
        let (changes, runs) =
            Evaluator::default().tick_within(&engine, &[honest.clone(), hostile.clone()], &facts, 0, &budget);
        assert_eq!((changes.len(), runs["r1"].skipped), (1, false), "{runs:?}");
        // An evaluation stopped at its own cap counts against the rule.
        let roomy = Budget {
            tick: Duration::from_secs(1),
            ..budget
        };
        let (_, runs) = Evaluator::default().tick_within(&engine, std::slice::from_ref(&hostile), &facts, 0, &roomy);
        assert!(runs["hostile"].over_budget, "{runs:?}");

        // Cancelled from another thread while a long rule runs: it stops at once.
        let flag = Arc::new(AtomicBool::new(false));
        let cancelled = Budget {
            tick: Duration::from_secs(60),
            rule: Duration::from_secs(60),
            cancel: Some(flag.clone()),
        };
        let looping = rule(&engine, RuleScope::Agent, "loop { } true", 0);
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            flag.store(true, Ordering::Relaxed);
        });
        let started = Instant::now();
        let (_, runs) =
            Evaluator::default().tick_within(&engine, std::slice::from_ref(&looping), &agents(1_000), 0, &cancelled);
        setter.join().unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        // (Its evaluations until then ran into their own 10 ms cap, which counts.)
        assert!(runs["r1"].skipped && runs["r1"].evaluated < 50, "{runs:?}");
    }

    #[test]
    fn message_placeholders_are_checked() {
        assert!(unknown_placeholders("{queue.name} has {queue.waiting}", RuleScope::Queue).is_empty());
        assert_eq!(
            unknown_placeholders("{agent.name} in {queue.name}", RuleScope::Queue),
            ["{agent.name}"]
        );
        assert_eq!(
            unknown_placeholders("{tenant.waitin}", RuleScope::Tenant),
            ["{tenant.waitin}"]
        );
    }
}
