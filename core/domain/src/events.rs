//! Contact-center events: what a PBX connector, the ingest API or the simulator reports. Each
//! carries its source, the time it happened and an idempotency key; the tenant is never part of
//! the payload (it comes from the credential that delivered it). Version 1 of the format.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Validation;

/// The event format version this build reads and writes.
pub const EVENT_VERSION: u32 = 1;

/// Events may be this far in the future (clock skew) …
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;
/// … and this far in the past (a connector catching up); older ones are refused.
pub const MAX_AGE_MS: i64 = 7 * 24 * 3600 * 1000;

/// An agent's state (KPIS.md). Being paused is a separate flag: an agent can be paused and
/// still finishing a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    LoggedOut,
    Available,
    Ringing,
    /// Talking on a call that came through a queue.
    OnQueueCall,
    /// Talking on a direct or outbound call.
    OnDirectCall,
    WrapUp,
    Paused,
    /// The device is unreachable or unregistered.
    Unavailable,
}

impl AgentState {
    pub const ALL: [AgentState; 8] = [
        AgentState::LoggedOut,
        AgentState::Available,
        AgentState::Ringing,
        AgentState::OnQueueCall,
        AgentState::OnDirectCall,
        AgentState::WrapUp,
        AgentState::Paused,
        AgentState::Unavailable,
    ];

    /// A dense index, for per-state counters.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Available => "available",
            AgentState::Ringing => "ringing",
            AgentState::OnQueueCall => "on_queue_call",
            AgentState::OnDirectCall => "on_direct_call",
            AgentState::WrapUp => "wrap_up",
            AgentState::Paused => "paused",
            AgentState::Unavailable => "unavailable",
        }
    }
}

/// Direction of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
}

/// Why a caller left a queue without an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The caller hung up.
    Abandon,
    /// The queue's timeout moved the caller on.
    Timeout,
    /// The queue was full.
    Full,
    /// Nobody was logged in.
    JoinEmpty,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventBody {
    AgentLogin {
        agent: String,
    },
    AgentLogout {
        agent: String,
    },
    AgentState {
        agent: String,
        state: AgentState,
        /// Pause reason, e.g. `lunch`; only with `paused`.
        #[serde(default)]
        reason: Option<String>,
    },
    CallerJoin {
        queue: String,
        call: String,
    },
    CallerAnswer {
        queue: String,
        call: String,
        agent: String,
        wait_s: f64,
    },
    CallerLeave {
        queue: String,
        call: String,
        reason: LeaveReason,
        wait_s: f64,
    },
    CallStart {
        call: String,
        agent: String,
        #[serde(default)]
        queue: Option<String>,
        direction: Direction,
    },
    CallEnd {
        call: String,
        agent: String,
        #[serde(default)]
        queue: Option<String>,
        talk_s: f64,
        #[serde(default)]
        hold_s: f64,
        /// Wrap-up is reported when it ends (it may be unknown at hang-up).
        #[serde(default)]
        wrap_s: Option<f64>,
    },
}

/// One event as delivered. Unknown fields are refused by the flattened body (serde cannot
/// deny them on a struct that flattens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Format version; 1 when omitted.
    #[serde(default = "version_one")]
    pub v: u32,
    /// Unique per source; a repeated key is accepted once.
    pub id: String,
    /// Who reports it: `asterisk:pbx1`, `simulator`, `api:crm` …
    pub source: String,
    /// When it happened (RFC 3339).
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub body: EventBody,
}

fn version_one() -> u32 {
    1
}

fn check_id(v: &mut Validation, field: &str, value: &str) {
    if value.is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
        v.add(field, "must be 1 to 128 characters without control characters");
    }
}

fn check_seconds(v: &mut Validation, field: &str, value: f64) {
    if !value.is_finite() || !(0.0..=86_400.0).contains(&value) {
        v.add(field, "must be a number of seconds from 0 to 86400");
    }
}

impl Event {
    /// The event's time in Unix milliseconds.
    pub fn at_ms(&self) -> i64 {
        self.at.timestamp_millis()
    }

    /// Checks everything that can be checked without the tenant's data, against `now_ms`.
    pub fn validate(&self, now_ms: i64) -> Result<(), Validation> {
        let mut v = Validation::new();
        if self.v != EVENT_VERSION {
            v.add(
                "v",
                format!("event format version {} is not supported (use {EVENT_VERSION})", self.v),
            );
        }
        check_id(&mut v, "id", &self.id);
        check_id(&mut v, "source", &self.source);
        let at = self.at_ms();
        if at > now_ms + MAX_FUTURE_MS {
            v.add("at", "lies more than 5 minutes in the future");
        } else if at < now_ms - MAX_AGE_MS {
            v.add("at", "is more than 7 days old");
        }
        match &self.body {
            EventBody::AgentLogin { agent } | EventBody::AgentLogout { agent } => check_id(&mut v, "agent", agent),
            EventBody::AgentState { agent, state, reason } => {
                check_id(&mut v, "agent", agent);
                match (state, reason) {
                    (AgentState::Paused, Some(r)) => check_id(&mut v, "reason", r),
                    (AgentState::Paused, None) => {}
                    (_, Some(_)) => v.add("reason", "only a paused state has a reason"),
                    (_, None) => {}
                }
            }
            EventBody::CallerJoin { queue, call } => {
                check_id(&mut v, "queue", queue);
                check_id(&mut v, "call", call);
            }
            EventBody::CallerAnswer {
                queue,
                call,
                agent,
                wait_s,
            } => {
                check_id(&mut v, "queue", queue);
                check_id(&mut v, "call", call);
                check_id(&mut v, "agent", agent);
                check_seconds(&mut v, "wait_s", *wait_s);
            }
            EventBody::CallerLeave {
                queue, call, wait_s, ..
            } => {
                check_id(&mut v, "queue", queue);
                check_id(&mut v, "call", call);
                check_seconds(&mut v, "wait_s", *wait_s);
            }
            EventBody::CallStart { call, agent, queue, .. } => {
                check_id(&mut v, "call", call);
                check_id(&mut v, "agent", agent);
                if let Some(q) = queue {
                    check_id(&mut v, "queue", q);
                }
            }
            EventBody::CallEnd {
                call,
                agent,
                queue,
                talk_s,
                hold_s,
                wrap_s,
            } => {
                check_id(&mut v, "call", call);
                check_id(&mut v, "agent", agent);
                if let Some(q) = queue {
                    check_id(&mut v, "queue", q);
                }
                check_seconds(&mut v, "talk_s", *talk_s);
                check_seconds(&mut v, "hold_s", *hold_s);
                if let Some(w) = wrap_s {
                    check_seconds(&mut v, "wrap_s", *w);
                }
            }
        }
        v.finish()
    }

    /// The agent the event is about, if any (events of one agent are applied in time order).
    pub fn agent(&self) -> Option<&str> {
        match &self.body {
            EventBody::AgentLogin { agent }
            | EventBody::AgentLogout { agent }
            | EventBody::AgentState { agent, .. }
            | EventBody::CallerAnswer { agent, .. }
            | EventBody::CallStart { agent, .. }
            | EventBody::CallEnd { agent, .. } => Some(agent),
            EventBody::CallerJoin { .. } | EventBody::CallerLeave { .. } => None,
        }
    }

    /// The state the event puts its agent in, as the live board applies it: (agent, state,
    /// pause reason). Agent reports walk the same transitions.
    pub fn agent_transition(&self) -> Option<(&str, AgentState, Option<&str>)> {
        Some(match &self.body {
            EventBody::AgentLogin { agent } => (agent, AgentState::Available, None),
            EventBody::AgentLogout { agent } => (agent, AgentState::LoggedOut, None),
            EventBody::AgentState { agent, state, reason } => (agent, *state, reason.as_deref()),
            EventBody::CallStart { agent, queue, .. } => (
                agent,
                if queue.is_some() {
                    AgentState::OnQueueCall
                } else {
                    AgentState::OnDirectCall
                },
                None,
            ),
            // After a call comes wrap-up; its end is reported as the next state.
            EventBody::CallEnd { agent, .. } => (agent, AgentState::WrapUp, None),
            EventBody::CallerAnswer { agent, .. } => (agent, AgentState::OnQueueCall, None),
            EventBody::CallerJoin { .. } | EventBody::CallerLeave { .. } => return None,
        })
    }

    /// The queue the event is about, if any.
    pub fn queue(&self) -> Option<&str> {
        match &self.body {
            EventBody::CallerJoin { queue, .. }
            | EventBody::CallerAnswer { queue, .. }
            | EventBody::CallerLeave { queue, .. } => Some(queue),
            EventBody::CallStart { queue, .. } | EventBody::CallEnd { queue, .. } => queue.as_deref(),
            _ => None,
        }
    }

    /// The call the event is about, if any.
    pub fn call(&self) -> Option<&str> {
        match &self.body {
            EventBody::CallerJoin { call, .. }
            | EventBody::CallerAnswer { call, .. }
            | EventBody::CallerLeave { call, .. }
            | EventBody::CallStart { call, .. }
            | EventBody::CallEnd { call, .. } => Some(call),
            EventBody::AgentLogin { .. } | EventBody::AgentLogout { .. } | EventBody::AgentState { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn parse(value: serde_json::Value) -> Result<Event, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn events_round_trip_with_their_type_tag() {
        let at = chrono::Utc::now().to_rfc3339();
        let e = parse(json!({ "id": "e1", "source": "sim", "at": at, "type": "agent_state",
            "agent": "1001", "state": "paused", "reason": "lunch" }))
        .unwrap();
        assert_eq!(e.v, 1);
        assert_eq!(e.agent(), Some("1001"));
        assert!(matches!(
            e.body,
            EventBody::AgentState {
                state: AgentState::Paused,
                ..
            }
        ));
        e.validate(now()).unwrap();
        let back = serde_json::to_value(&e).unwrap();
        assert_eq!(back["type"], "agent_state");
        assert_eq!(parse(back).unwrap(), e);
        let leave = parse(json!({ "id": "e2", "source": "sim", "at": at, "type": "caller_leave",
            "queue": "sales", "call": "c1", "reason": "abandon", "wait_s": 31.5 }))
        .unwrap();
        assert_eq!(leave.queue(), Some("sales"));
        leave.validate(now()).unwrap();
    }

    #[test]
    fn malformed_events_are_explained() {
        let at = chrono::Utc::now().to_rfc3339();
        assert!(parse(json!({ "id": "e", "source": "s", "at": at, "type": "agent_dance", "agent": "a" })).is_err());
        assert!(
            parse(json!({ "id": "e", "source": "s", "at": at, "type": "agent_login", "agent": "a", "x": 1 })).is_err()
        );
        assert!(
            parse(json!({ "id": "e", "source": "s", "at": "yesterday", "type": "agent_login", "agent": "a" })).is_err()
        );
        let pointers = |e: Event| -> Vec<String> {
            e.validate(now())
                .unwrap_err()
                .errors
                .into_iter()
                .map(|f| f.pointer)
                .collect()
        };
        let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let e = parse(json!({ "id": "", "source": "s", "at": future, "type": "caller_answer",
            "queue": "q", "call": "c", "agent": "a", "wait_s": -1 }))
        .unwrap();
        assert_eq!(pointers(e), vec!["/id", "/at", "/wait_s"]);
        let old = (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339();
        let e = parse(
            json!({ "v": 2, "id": "e", "source": "s", "at": old, "type": "agent_state",
            "agent": "a", "state": "available", "reason": "lunch" }),
        )
        .unwrap();
        assert_eq!(pointers(e), vec!["/v", "/at", "/reason"]);
    }
}
