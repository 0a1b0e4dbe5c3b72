//! What a rule can read: the tenant, a queue or an agent as the live floor has it at the tick.
//! Each kind's fields are one table, which both registers the getters with the engine and writes
//! the reference (`sdk/rules.md`), so the two cannot drift.

use rhai::{Dynamic, ImmutableString};

/// A field a rule reads as `<variable>.<name>`.
pub struct Field<T> {
    pub name: &'static str,
    /// `int`, `float`, `string` or `bool`, as rhai names them.
    pub kind: &'static str,
    pub doc: &'static str,
    pub read: for<'a> fn(&'a T) -> Read<'a>,
}

/// A field's value, borrowed from the facts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Read<'a> {
    Int(i64),
    Float(f64),
    Str(&'a ImmutableString),
}

impl Read<'_> {
    /// As rhai holds it.
    pub fn dynamic(self) -> Dynamic {
        match self {
            Read::Int(i) => i.into(),
            Read::Float(f) => f.into(),
            Read::Str(s) => s.clone().into(),
        }
    }
}

/// A queue at the tick: who waits, today's figures in the tenant's time zone, and its agents.
#[derive(Debug, Clone, Default)]
pub struct QueueFacts {
    pub id: ImmutableString,
    pub name: ImmutableString,
    pub waiting: i64,
    pub longest_wait_s: f64,
    pub service_level: f64,
    pub sl_target: i64,
    pub sl_threshold_s: f64,
    pub offered: i64,
    pub answered: i64,
    pub abandoned: i64,
    pub abandon_rate: f64,
    pub asa_s: f64,
    pub aht_s: f64,
    pub agents: AgentCounts,
}

/// Agents per state (of a queue, or the tenant).
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentCounts {
    pub logged_in: i64,
    pub available: i64,
    pub ringing: i64,
    pub on_call: i64,
    pub wrap_up: i64,
    pub paused: i64,
    pub unavailable: i64,
}

/// One agent at the tick.
#[derive(Debug, Clone, Default)]
pub struct AgentFacts {
    pub id: ImmutableString,
    pub name: ImmutableString,
    pub state: ImmutableString,
    pub reason: ImmutableString,
    pub in_state_s: i64,
    pub team: ImmutableString,
    pub location: ImmutableString,
}

/// The whole tenant at the tick.
#[derive(Debug, Clone, Default)]
pub struct TenantFacts {
    pub waiting: i64,
    pub longest_wait_s: f64,
    pub agents: AgentCounts,
}

pub const QUEUE_FIELDS: &[Field<QueueFacts>] = &[
    Field {
        name: "id",
        kind: "string",
        doc: "The queue's id.",
        read: |q| Read::Str(&q.id),
    },
    Field {
        name: "name",
        kind: "string",
        doc: "The queue's name.",
        read: |q| Read::Str(&q.name),
    },
    Field {
        name: "waiting",
        kind: "int",
        doc: "Callers waiting now.",
        read: |q| Read::Int(q.waiting),
    },
    Field {
        name: "longest_wait_s",
        kind: "float",
        doc: "How long the caller waiting longest has waited, in seconds (0 when none waits).",
        read: |q| Read::Float(q.longest_wait_s),
    },
    Field {
        name: "service_level",
        kind: "float",
        doc: "Today's service level, percent, by the queue's definition (100 before the first call).",
        read: |q| Read::Float(q.service_level),
    },
    Field {
        name: "sl_target",
        kind: "int",
        doc: "The queue's service-level target, percent.",
        read: |q| Read::Int(q.sl_target),
    },
    Field {
        name: "sl_threshold_s",
        kind: "float",
        doc: "The queue's service-level threshold T, seconds.",
        read: |q| Read::Float(q.sl_threshold_s),
    },
    Field {
        name: "offered",
        kind: "int",
        doc: "Calls offered today.",
        read: |q| Read::Int(q.offered),
    },
    Field {
        name: "answered",
        kind: "int",
        doc: "Calls answered today.",
        read: |q| Read::Int(q.answered),
    },
    Field {
        name: "abandoned",
        kind: "int",
        doc: "Calls abandoned today.",
        read: |q| Read::Int(q.abandoned),
    },
    Field {
        name: "abandon_rate",
        kind: "float",
        doc: "Abandoned of offered today, percent (0 before the first call).",
        read: |q| Read::Float(q.abandon_rate),
    },
    Field {
        name: "asa_s",
        kind: "float",
        doc: "Average speed of answer today, seconds (0 before the first answer).",
        read: |q| Read::Float(q.asa_s),
    },
    Field {
        name: "aht_s",
        kind: "float",
        doc: "Average handling time today, seconds (0 before the first handled call).",
        read: |q| Read::Float(q.aht_s),
    },
    Field {
        name: "agents_logged_in",
        kind: "int",
        doc: "Member agents logged in (any state but logged out).",
        read: |q| Read::Int(q.agents.logged_in),
    },
    Field {
        name: "agents_available",
        kind: "int",
        doc: "Member agents available.",
        read: |q| Read::Int(q.agents.available),
    },
    Field {
        name: "agents_ringing",
        kind: "int",
        doc: "Member agents ringing.",
        read: |q| Read::Int(q.agents.ringing),
    },
    Field {
        name: "agents_on_call",
        kind: "int",
        doc: "Member agents on a call (queue or direct).",
        read: |q| Read::Int(q.agents.on_call),
    },
    Field {
        name: "agents_wrap_up",
        kind: "int",
        doc: "Member agents in wrap-up.",
        read: |q| Read::Int(q.agents.wrap_up),
    },
    Field {
        name: "agents_paused",
        kind: "int",
        doc: "Member agents paused.",
        read: |q| Read::Int(q.agents.paused),
    },
    Field {
        name: "agents_unavailable",
        kind: "int",
        doc: "Member agents unavailable.",
        read: |q| Read::Int(q.agents.unavailable),
    },
];

pub const AGENT_FIELDS: &[Field<AgentFacts>] = &[
    Field {
        name: "id",
        kind: "string",
        doc: "The agent's id.",
        read: |a| Read::Str(&a.id),
    },
    Field {
        name: "name",
        kind: "string",
        doc: "The agent's name.",
        read: |a| Read::Str(&a.name),
    },
    Field {
        name: "state",
        kind: "string",
        doc: "`logged_out`, `available`, `ringing`, `on_queue_call`, `on_direct_call`, `wrap_up`, `paused` or `unavailable`.",
        read: |a| Read::Str(&a.state),
    },
    Field {
        name: "reason",
        kind: "string",
        doc: "The pause reason while paused (empty otherwise).",
        read: |a| Read::Str(&a.reason),
    },
    Field {
        name: "in_state_s",
        kind: "int",
        doc: "Seconds in the current state.",
        read: |a| Read::Int(a.in_state_s),
    },
    Field {
        name: "team",
        kind: "string",
        doc: "The agent's team's name (empty without one).",
        read: |a| Read::Str(&a.team),
    },
    Field {
        name: "location",
        kind: "string",
        doc: "The agent's location's name (empty without one).",
        read: |a| Read::Str(&a.location),
    },
];

pub const TENANT_FIELDS: &[Field<TenantFacts>] = &[
    Field {
        name: "waiting",
        kind: "int",
        doc: "Callers waiting in all queues.",
        read: |t| Read::Int(t.waiting),
    },
    Field {
        name: "longest_wait_s",
        kind: "float",
        doc: "The longest wait of any caller waiting, seconds (0 when none waits).",
        read: |t| Read::Float(t.longest_wait_s),
    },
    Field {
        name: "agents_logged_in",
        kind: "int",
        doc: "Agents logged in.",
        read: |t| Read::Int(t.agents.logged_in),
    },
    Field {
        name: "agents_available",
        kind: "int",
        doc: "Agents available.",
        read: |t| Read::Int(t.agents.available),
    },
    Field {
        name: "agents_ringing",
        kind: "int",
        doc: "Agents ringing.",
        read: |t| Read::Int(t.agents.ringing),
    },
    Field {
        name: "agents_on_call",
        kind: "int",
        doc: "Agents on a call.",
        read: |t| Read::Int(t.agents.on_call),
    },
    Field {
        name: "agents_wrap_up",
        kind: "int",
        doc: "Agents in wrap-up.",
        read: |t| Read::Int(t.agents.wrap_up),
    },
    Field {
        name: "agents_paused",
        kind: "int",
        doc: "Agents paused.",
        read: |t| Read::Int(t.agents.paused),
    },
    Field {
        name: "agents_unavailable",
        kind: "int",
        doc: "Agents unavailable.",
        read: |t| Read::Int(t.agents.unavailable),
    },
];

/// Registers a kind's type (named as rhai reports it) and its getters.
pub fn register<T: Clone + Send + Sync + 'static>(
    engine: &mut rhai::Engine,
    type_name: &str,
    fields: &'static [Field<T>],
) {
    engine.register_type_with_name::<T>(type_name);
    for field in fields {
        let read = field.read;
        engine.register_get(field.name, move |value: &mut T| read(value).dynamic());
    }
}

/// The reference for rule authors, from the tables above (`sdk/rules.md`).
pub fn reference(functions: &[String]) -> String {
    fn table<T>(out: &mut String, fields: &[Field<T>]) {
        out.push_str("| field | type | meaning |\n|---|---|---|\n");
        for f in fields {
            out.push_str(&format!("| `{}` | {} | {} |\n", f.name, f.kind, f.doc));
        }
        out.push('\n');
    }
    let mut out = String::from(include_str!("reference_head.md"));
    out.push_str("\n## `queue` (rules with the queue scope)\n\n");
    table(&mut out, QUEUE_FIELDS);
    out.push_str("## `agent` (rules with the agent scope)\n\n");
    table(&mut out, AGENT_FIELDS);
    out.push_str("## `tenant` (every rule)\n\n");
    table(&mut out, TENANT_FIELDS);
    out.push_str("## Functions\n\n");
    if functions.is_empty() {
        out.push_str("Rules use rhai's standard library (operators, string and math functions); Monti adds none.\n");
    } else {
        out.push_str("Besides rhai's standard library:\n\n");
        for f in functions {
            out.push_str(&format!("- `{f}`\n"));
        }
    }
    out
}
