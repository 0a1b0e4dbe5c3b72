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
    pub get: fn(&T) -> Dynamic,
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
        get: |q| q.id.clone().into(),
    },
    Field {
        name: "name",
        kind: "string",
        doc: "The queue's name.",
        get: |q| q.name.clone().into(),
    },
    Field {
        name: "waiting",
        kind: "int",
        doc: "Callers waiting now.",
        get: |q| q.waiting.into(),
    },
    Field {
        name: "longest_wait_s",
        kind: "float",
        doc: "How long the caller waiting longest has waited, in seconds (0 when none waits).",
        get: |q| q.longest_wait_s.into(),
    },
    Field {
        name: "service_level",
        kind: "float",
        doc: "Today's service level, percent, by the queue's definition (100 before the first call).",
        get: |q| q.service_level.into(),
    },
    Field {
        name: "sl_target",
        kind: "int",
        doc: "The queue's service-level target, percent.",
        get: |q| q.sl_target.into(),
    },
    Field {
        name: "sl_threshold_s",
        kind: "float",
        doc: "The queue's service-level threshold T, seconds.",
        get: |q| q.sl_threshold_s.into(),
    },
    Field {
        name: "offered",
        kind: "int",
        doc: "Calls offered today.",
        get: |q| q.offered.into(),
    },
    Field {
        name: "answered",
        kind: "int",
        doc: "Calls answered today.",
        get: |q| q.answered.into(),
    },
    Field {
        name: "abandoned",
        kind: "int",
        doc: "Calls abandoned today.",
        get: |q| q.abandoned.into(),
    },
    Field {
        name: "abandon_rate",
        kind: "float",
        doc: "Abandoned of offered today, percent (0 before the first call).",
        get: |q| q.abandon_rate.into(),
    },
    Field {
        name: "asa_s",
        kind: "float",
        doc: "Average speed of answer today, seconds (0 before the first answer).",
        get: |q| q.asa_s.into(),
    },
    Field {
        name: "aht_s",
        kind: "float",
        doc: "Average handling time today, seconds (0 before the first handled call).",
        get: |q| q.aht_s.into(),
    },
    Field {
        name: "agents_logged_in",
        kind: "int",
        doc: "Member agents logged in (any state but logged out).",
        get: |q| q.agents.logged_in.into(),
    },
    Field {
        name: "agents_available",
        kind: "int",
        doc: "Member agents available.",
        get: |q| q.agents.available.into(),
    },
    Field {
        name: "agents_ringing",
        kind: "int",
        doc: "Member agents ringing.",
        get: |q| q.agents.ringing.into(),
    },
    Field {
        name: "agents_on_call",
        kind: "int",
        doc: "Member agents on a call (queue or direct).",
        get: |q| q.agents.on_call.into(),
    },
    Field {
        name: "agents_wrap_up",
        kind: "int",
        doc: "Member agents in wrap-up.",
        get: |q| q.agents.wrap_up.into(),
    },
    Field {
        name: "agents_paused",
        kind: "int",
        doc: "Member agents paused.",
        get: |q| q.agents.paused.into(),
    },
    Field {
        name: "agents_unavailable",
        kind: "int",
        doc: "Member agents unavailable.",
        get: |q| q.agents.unavailable.into(),
    },
];

pub const AGENT_FIELDS: &[Field<AgentFacts>] = &[
    Field {
        name: "id",
        kind: "string",
        doc: "The agent's id.",
        get: |a| a.id.clone().into(),
    },
    Field {
        name: "name",
        kind: "string",
        doc: "The agent's name.",
        get: |a| a.name.clone().into(),
    },
    Field {
        name: "state",
        kind: "string",
        doc: "`logged_out`, `available`, `ringing`, `on_queue_call`, `on_direct_call`, `wrap_up`, `paused` or `unavailable`.",
        get: |a| a.state.clone().into(),
    },
    Field {
        name: "reason",
        kind: "string",
        doc: "The pause reason while paused (empty otherwise).",
        get: |a| a.reason.clone().into(),
    },
    Field {
        name: "in_state_s",
        kind: "int",
        doc: "Seconds in the current state.",
        get: |a| a.in_state_s.into(),
    },
    Field {
        name: "team",
        kind: "string",
        doc: "The agent's team's name (empty without one).",
        get: |a| a.team.clone().into(),
    },
    Field {
        name: "location",
        kind: "string",
        doc: "The agent's location's name (empty without one).",
        get: |a| a.location.clone().into(),
    },
];

pub const TENANT_FIELDS: &[Field<TenantFacts>] = &[
    Field {
        name: "waiting",
        kind: "int",
        doc: "Callers waiting in all queues.",
        get: |t| t.waiting.into(),
    },
    Field {
        name: "longest_wait_s",
        kind: "float",
        doc: "The longest wait of any caller waiting, seconds (0 when none waits).",
        get: |t| t.longest_wait_s.into(),
    },
    Field {
        name: "agents_logged_in",
        kind: "int",
        doc: "Agents logged in.",
        get: |t| t.agents.logged_in.into(),
    },
    Field {
        name: "agents_available",
        kind: "int",
        doc: "Agents available.",
        get: |t| t.agents.available.into(),
    },
    Field {
        name: "agents_ringing",
        kind: "int",
        doc: "Agents ringing.",
        get: |t| t.agents.ringing.into(),
    },
    Field {
        name: "agents_on_call",
        kind: "int",
        doc: "Agents on a call.",
        get: |t| t.agents.on_call.into(),
    },
    Field {
        name: "agents_wrap_up",
        kind: "int",
        doc: "Agents in wrap-up.",
        get: |t| t.agents.wrap_up.into(),
    },
    Field {
        name: "agents_paused",
        kind: "int",
        doc: "Agents paused.",
        get: |t| t.agents.paused.into(),
    },
    Field {
        name: "agents_unavailable",
        kind: "int",
        doc: "Agents unavailable.",
        get: |t| t.agents.unavailable.into(),
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
        let get = field.get;
        engine.register_get(field.name, move |value: &mut T| get(value));
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
