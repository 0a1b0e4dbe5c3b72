//! `monti import queue-log FILE`: app_queue's `queue_log` (`<epoch>|<callid>|<queue>|<agent>|
//! <VERB>|<data>…`, protocols.md §2.4) as Monti events — callers joining, being answered and
//! leaving, queue calls, agents logging in and out and pausing — stored as history (source
//! `queue_log`, ids from the call and verb, so a second import adds nothing), and the queues'
//! KPIs over the file, as KPIS.md defines them with each queue's settings.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Progress, Refused, Report};
use crate::domain::events::{AgentState, Direction, EVENT_VERSION, Event, EventBody, LeaveReason};
use crate::kpi::{CallOutcome, KpiSettings, QueueCounters};
use crate::store::{Store, StoreResult, TenantScope};

/// Events stored per transaction.
const BATCH: usize = 1_000;
/// The source of imported events.
pub const SOURCE: &str = "queue_log";

/// The agent a member name stands for: `PJSIP/1001` → `1001`, `Local/1001@agents` → `1001`,
/// `Agent/401` → `401`.
fn agent_name(member: &str) -> String {
    let after = member.split_once('/').map_or(member, |(_, rest)| rest);
    after.split(['@', '/']).next().unwrap_or(after).trim().to_owned()
}

/// A queue's figures over the imported file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueFigures {
    pub counters: QueueCounters,
    pub settings: KpiSettings,
}

/// What one line says, as Monti events (none for verbs that change nothing Monti shows).
fn events_of(line: &str) -> Result<Vec<Event>, String> {
    let fields: Vec<&str> = line.trim_end().split('|').collect();
    if fields.len() < 5 {
        return Err(format!("{} fields; a queue_log line has at least 5", fields.len()));
    }
    let at_s: i64 = fields[0]
        .trim()
        .parse()
        .map_err(|_| format!("`{}` is not a Unix time", fields[0]))?;
    let at = DateTime::<Utc>::from_timestamp(at_s, 0).ok_or_else(|| format!("`{at_s}` is out of range"))?;
    let (call, queue, member, verb) = (fields[1], fields[2], fields[3], fields[4]);
    let data = |n: usize| fields.get(4 + n).copied().unwrap_or_default();
    let seconds = |n: usize, what: &str| -> Result<f64, String> {
        data(n)
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| format!("{verb}: {what} `{}` is not a number of seconds", data(n)))
    };
    let event = |kind: &str, body: EventBody| Event {
        v: EVENT_VERSION,
        id: format!("{call}-{queue}-{kind}"),
        source: SOURCE.into(),
        at,
        body,
    };
    let agent = agent_name(member);
    let leave = |reason: LeaveReason, wait_index: usize| -> Result<Vec<Event>, String> {
        Ok(vec![event(
            "leave",
            EventBody::CallerLeave {
                queue: queue.to_owned(),
                call: call.to_owned(),
                reason,
                wait_s: seconds(wait_index, "the wait")?,
            },
        )])
    };
    let member_key = format!("{at_s}-{queue}-{agent}");
    let member_event = |kind: &str, body: EventBody| Event {
        id: format!("{member_key}-{kind}"),
        ..event(kind, body)
    };
    Ok(match verb {
        "ENTERQUEUE" => vec![event(
            "join",
            EventBody::CallerJoin {
                queue: queue.to_owned(),
                call: call.to_owned(),
            },
        )],
        "CONNECT" => {
            let wait_s = seconds(1, "the hold time")?;
            vec![
                event(
                    "answer",
                    EventBody::CallerAnswer {
                        queue: queue.to_owned(),
                        call: call.to_owned(),
                        agent: agent.clone(),
                        wait_s,
                    },
                ),
                event(
                    "start",
                    EventBody::CallStart {
                        call: call.to_owned(),
                        agent,
                        queue: Some(queue.to_owned()),
                        direction: Direction::Inbound,
                    },
                ),
            ]
        }
        "COMPLETECALLER" | "COMPLETEAGENT" | "BLINDTRANSFER" | "TRANSFER" => {
            let talk_index = if verb.ends_with("TRANSFER") { 4 } else { 2 };
            vec![event(
                "end",
                EventBody::CallEnd {
                    call: call.to_owned(),
                    agent,
                    queue: Some(queue.to_owned()),
                    talk_s: seconds(talk_index, "the talk time")?,
                    hold_s: 0.0,
                    wrap_s: None,
                },
            )]
        }
        "ABANDON" => leave(LeaveReason::Abandon, 3)?,
        "EXITWITHTIMEOUT" => leave(LeaveReason::Timeout, 3)?,
        "EXITEMPTY" => leave(LeaveReason::JoinEmpty, 3)?,
        "EXITWITHKEY" => leave(LeaveReason::Timeout, 4)?,
        "ADDMEMBER" | "AGENTLOGIN" => vec![member_event("login", EventBody::AgentLogin { agent })],
        "REMOVEMEMBER" | "AGENTLOGOFF" => vec![member_event("logout", EventBody::AgentLogout { agent })],
        "PAUSE" | "PAUSEALL" => vec![member_event(
            "pause",
            EventBody::AgentState {
                agent,
                state: AgentState::Paused,
                reason: Some(data(1).to_owned()).filter(|r| !r.is_empty()),
            },
        )],
        "UNPAUSE" | "UNPAUSEALL" => vec![member_event(
            "unpause",
            EventBody::AgentState {
                agent,
                state: AgentState::Available,
                reason: None,
            },
        )],
        // Ringing, penalties, reloads, custom verbs: nothing Monti keeps.
        _ => Vec::new(),
    })
}

/// Imports the file's text; `settings` gives each queue's KPI definitions (default otherwise).
pub async fn import(
    store: &Store,
    scope: &TenantScope,
    text: &str,
    settings: &BTreeMap<String, KpiSettings>,
    show_progress: bool,
) -> StoreResult<(Report, BTreeMap<String, QueueFigures>)> {
    let (lines, mut report) = super::numbered_lines(text);
    let mut progress = Progress::new("importing queue_log", lines.len(), show_progress);
    let mut figures: BTreeMap<String, QueueFigures> = BTreeMap::new();
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
    for (done, (number, line)) in lines.iter().enumerate() {
        match events_of(line) {
            Ok(events) => {
                for event in events {
                    count(&mut figures, settings, &event);
                    batch.push(event);
                }
            }
            Err(why) => report.refused.push(Refused { line: *number, why }),
        }
        if batch.len() >= BATCH {
            store_batch(store, scope, &mut batch, &mut report).await?;
        }
        progress.show(done + 1);
    }
    store_batch(store, scope, &mut batch, &mut report).await?;
    Ok((report, figures))
}

async fn store_batch(
    store: &Store,
    scope: &TenantScope,
    batch: &mut Vec<Event>,
    report: &mut Report,
) -> StoreResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let refs: Vec<&Event> = batch.iter().collect();
    for stored in crate::store::events::append(store, scope, &refs).await? {
        match stored {
            crate::store::events::Stored::Accepted(_) => report.added += 1,
            crate::store::events::Stored::Duplicate => report.already += 1,
        }
    }
    batch.clear();
    Ok(())
}

/// Counts a call's outcome for its queue (offered at its end: answered, abandoned, timed out).
fn count(figures: &mut BTreeMap<String, QueueFigures>, settings: &BTreeMap<String, KpiSettings>, event: &Event) {
    let queue = match &event.body {
        EventBody::CallerAnswer { queue, .. } | EventBody::CallerLeave { queue, .. } => queue,
        EventBody::CallEnd { queue: Some(queue), .. } => queue,
        _ => return,
    };
    let entry = figures.entry(queue.clone()).or_insert_with(|| QueueFigures {
        counters: QueueCounters::default(),
        settings: settings.get(queue).copied().unwrap_or_default(),
    });
    let kpi = entry.settings;
    match &event.body {
        // Answered now; its handle time comes with the call's end.
        EventBody::CallerAnswer { wait_s, .. } => entry.counters.record_answer(*wait_s, &kpi),
        EventBody::CallerLeave { reason, wait_s, .. } => {
            let outcome = match reason {
                LeaveReason::Abandon => CallOutcome::Abandoned { wait_s: *wait_s },
                LeaveReason::Timeout => CallOutcome::Timeout { wait_s: *wait_s },
                LeaveReason::Full => CallOutcome::Full,
                LeaveReason::JoinEmpty => CallOutcome::JoinEmpty,
            };
            entry.counters.record(outcome, &kpi);
        }
        EventBody::CallEnd { talk_s, hold_s, .. } => entry.counters.record_handling(talk_s + hold_s),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verb_becomes_what_monti_shows() {
        let kinds = |line: &str| -> Vec<String> {
            events_of(line)
                .unwrap()
                .iter()
                .map(|e| {
                    serde_json::to_value(&e.body).unwrap()["type"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(kinds("1700000000|c1|sales|NONE|ENTERQUEUE||1001|1"), ["caller_join"]);
        assert_eq!(
            kinds("1700000010|c1|sales|PJSIP/2001|CONNECT|10|c1.2|3"),
            ["caller_answer", "call_start"]
        );
        assert_eq!(
            kinds("1700000110|c1|sales|PJSIP/2001|COMPLETECALLER|10|100|1"),
            ["call_end"]
        );
        assert_eq!(kinds("1700000005|c2|sales|NONE|ABANDON|1|1|5"), ["caller_leave"]);
        assert_eq!(
            kinds("1700000000|MANAGER|sales|PJSIP/2001|PAUSE|lunch"),
            ["agent_state"]
        );
        assert_eq!(kinds("1700000000|NONE|NONE|NONE|QUEUESTART|"), Vec::<String>::new());
        assert!(events_of("garbage").unwrap_err().contains("at least 5"));
        assert!(events_of("x|c|q|a|ENTERQUEUE").unwrap_err().contains("not a Unix time"));
        assert!(
            events_of("1700000000|c|q|a|CONNECT|soon")
                .unwrap_err()
                .contains("hold time `soon`")
        );
    }
}
