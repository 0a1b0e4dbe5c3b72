//! Events between Monti's own type and the contract's.

use crate::domain::events::{AgentState, Direction, Event, EventBody, LeaveReason};
use monti_plugin_host::wit;

fn state_to_wit(s: AgentState) -> wit::AgentState {
    match s {
        AgentState::LoggedOut => wit::AgentState::LoggedOut,
        AgentState::Available => wit::AgentState::Available,
        AgentState::Ringing => wit::AgentState::Ringing,
        AgentState::OnQueueCall => wit::AgentState::OnQueueCall,
        AgentState::OnDirectCall => wit::AgentState::OnDirectCall,
        AgentState::WrapUp => wit::AgentState::WrapUp,
        AgentState::Paused => wit::AgentState::Paused,
        AgentState::Unavailable => wit::AgentState::Unavailable,
    }
}

fn state_from_wit(s: wit::AgentState) -> AgentState {
    match s {
        wit::AgentState::LoggedOut => AgentState::LoggedOut,
        wit::AgentState::Available => AgentState::Available,
        wit::AgentState::Ringing => AgentState::Ringing,
        wit::AgentState::OnQueueCall => AgentState::OnQueueCall,
        wit::AgentState::OnDirectCall => AgentState::OnDirectCall,
        wit::AgentState::WrapUp => AgentState::WrapUp,
        wit::AgentState::Paused => AgentState::Paused,
        wit::AgentState::Unavailable => AgentState::Unavailable,
    }
}

fn direction_to_wit(d: Direction) -> wit::Direction {
    match d {
        Direction::Inbound => wit::Direction::Inbound,
        Direction::Outbound => wit::Direction::Outbound,
        Direction::Internal => wit::Direction::Internal,
    }
}

fn direction_from_wit(d: wit::Direction) -> Direction {
    match d {
        wit::Direction::Inbound => Direction::Inbound,
        wit::Direction::Outbound => Direction::Outbound,
        wit::Direction::Internal => Direction::Internal,
    }
}

fn reason_to_wit(r: LeaveReason) -> wit::LeaveReason {
    match r {
        LeaveReason::Abandon => wit::LeaveReason::Abandon,
        LeaveReason::Timeout => wit::LeaveReason::Timeout,
        LeaveReason::Full => wit::LeaveReason::Full,
        LeaveReason::JoinEmpty => wit::LeaveReason::JoinEmpty,
    }
}

fn reason_from_wit(r: wit::LeaveReason) -> LeaveReason {
    match r {
        wit::LeaveReason::Abandon => LeaveReason::Abandon,
        wit::LeaveReason::Timeout => LeaveReason::Timeout,
        wit::LeaveReason::Full => LeaveReason::Full,
        wit::LeaveReason::JoinEmpty => LeaveReason::JoinEmpty,
    }
}

pub fn to_wit(e: &Event) -> wit::Event {
    let body = match &e.body {
        EventBody::AgentLogin { agent } => wit::EventBody::AgentLogin(agent.clone()),
        EventBody::AgentLogout { agent } => wit::EventBody::AgentLogout(agent.clone()),
        EventBody::AgentState { agent, state, reason } => wit::EventBody::AgentState(wit::AgentStateChange {
            agent: agent.clone(),
            state: state_to_wit(*state),
            reason: reason.clone(),
        }),
        EventBody::CallerJoin { queue, call } => wit::EventBody::CallerJoin(wit::CallerJoin {
            queue: queue.clone(),
            call: call.clone(),
        }),
        EventBody::CallerAnswer {
            queue,
            call,
            agent,
            wait_s,
        } => wit::EventBody::CallerAnswer(wit::CallerAnswer {
            queue: queue.clone(),
            call: call.clone(),
            agent: agent.clone(),
            wait_s: *wait_s,
        }),
        EventBody::CallerLeave {
            queue,
            call,
            reason,
            wait_s,
        } => wit::EventBody::CallerLeave(wit::CallerLeave {
            queue: queue.clone(),
            call: call.clone(),
            reason: reason_to_wit(*reason),
            wait_s: *wait_s,
        }),
        EventBody::CallStart {
            call,
            agent,
            queue,
            direction,
        } => wit::EventBody::CallStart(wit::CallStart {
            call: call.clone(),
            agent: agent.clone(),
            queue: queue.clone(),
            direction: direction_to_wit(*direction),
        }),
        EventBody::CallEnd {
            call,
            agent,
            queue,
            talk_s,
            hold_s,
            wrap_s,
        } => wit::EventBody::CallEnd(wit::CallEnd {
            call: call.clone(),
            agent: agent.clone(),
            queue: queue.clone(),
            talk_s: *talk_s,
            hold_s: *hold_s,
            wrap_s: *wrap_s,
        }),
    };
    wit::Event {
        id: e.id.clone(),
        source: e.source.clone(),
        at_ms: e.at_ms(),
        body,
    }
}

/// Events a plugin emitted, as Monti's own, and how many were dropped because their time was
/// not a representable instant.
pub fn emitted(events: Vec<wit::Event>) -> (Vec<Event>, usize) {
    let total = events.len();
    let readable: Vec<Event> = events.into_iter().filter_map(from_wit).collect();
    let dropped = total - readable.len();
    (readable, dropped)
}

/// An event a plugin emitted, as Monti's own (still to be validated like any other input).
/// `None` when its time is not a representable instant.
pub fn from_wit(e: wit::Event) -> Option<Event> {
    let body = match e.body {
        wit::EventBody::AgentLogin(agent) => EventBody::AgentLogin { agent },
        wit::EventBody::AgentLogout(agent) => EventBody::AgentLogout { agent },
        wit::EventBody::AgentState(s) => EventBody::AgentState {
            agent: s.agent,
            state: state_from_wit(s.state),
            reason: s.reason,
        },
        wit::EventBody::CallerJoin(j) => EventBody::CallerJoin {
            queue: j.queue,
            call: j.call,
        },
        wit::EventBody::CallerAnswer(a) => EventBody::CallerAnswer {
            queue: a.queue,
            call: a.call,
            agent: a.agent,
            wait_s: a.wait_s,
        },
        wit::EventBody::CallerLeave(l) => EventBody::CallerLeave {
            queue: l.queue,
            call: l.call,
            reason: reason_from_wit(l.reason),
            wait_s: l.wait_s,
        },
        wit::EventBody::CallStart(c) => EventBody::CallStart {
            call: c.call,
            agent: c.agent,
            queue: c.queue,
            direction: direction_from_wit(c.direction),
        },
        wit::EventBody::CallEnd(c) => EventBody::CallEnd {
            call: c.call,
            agent: c.agent,
            queue: c.queue,
            talk_s: c.talk_s,
            hold_s: c.hold_s,
            wrap_s: c.wrap_s,
        },
    };
    Some(Event {
        v: crate::domain::events::EVENT_VERSION,
        id: e.id,
        source: e.source,
        at: chrono::DateTime::<chrono::Utc>::from_timestamp_millis(e.at_ms)?,
        body,
    })
}

/// An alert as alert handlers receive it.
pub fn alert_to_wit(change: &crate::domain::alert::AlertChange) -> wit::alerts::Alert {
    use crate::domain::alert::Severity as S;
    use wit::alerts::{Alert, AlertState, Severity};
    Alert {
        rule_id: change.rule_id.clone(),
        rule_name: change.rule_name.clone(),
        rule_version: change.rule_version,
        severity: match change.severity {
            S::Info => Severity::Info,
            S::Warning => Severity::Warning,
            S::Critical => Severity::Critical,
        },
        state: if change.resolved_ms.is_some() {
            AlertState::Resolved
        } else {
            AlertState::Firing
        },
        subject: change.subject.clone(),
        subject_name: change.subject_name.clone(),
        message: change.message.clone(),
        since_ms: change.since_ms,
        fired_ms: change.fired_ms,
        resolved_ms: change.resolved_ms,
    }
}
