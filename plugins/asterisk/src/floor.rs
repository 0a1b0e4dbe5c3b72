//! Agents' and callers' state as app_queue sees it, from AMI events (protocols.md §2.3), turned
//! into Monti events. Asterisk keeps a member per (queue, interface); Monti has one agent, so an
//! agent's state combines its memberships: logged in while it is a member of any watched queue,
//! paused while paused in any.

use std::collections::{BTreeMap, BTreeSet};

use monti_plugin_sdk::{
    AgentState, AgentStateChange, CallEnd, CallStart, CallerAnswer, CallerJoin, CallerLeave, Direction, Event,
    EventBody, LeaveReason,
};
use serde::{Deserialize, Serialize};

use monti_ami::Message;

/// Which part of a queue member names the Monti agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchBy {
    /// `SIP/1001`, `PJSIP/1001`, `Local/1001@agents` → `1001`.
    #[default]
    Interface,
    /// `Agent/401` → `401`; a name without a `/` as it is.
    MemberName,
    /// The device the member's state follows.
    StateInterface,
}

/// How the floor reads the PBX.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub match_by: MatchBy,
    /// Only these queues (empty: all).
    pub queues: BTreeSet<String>,
    /// Wrap-up after a queue call when the member does not say (`Wrapuptime`).
    pub wrapup_s: u32,
}

/// The technology-free name in an interface or member name: `PJSIP/1001` → `1001`,
/// `Local/1001@agents/n` → `1001`, `Agent/401` → `401`.
pub fn short_name(text: &str) -> &str {
    let after = text.split_once('/').map_or(text, |(_, rest)| rest);
    let before_at = after.split('@').next().unwrap_or(after);
    before_at.split('/').next().unwrap_or(before_at).trim()
}

/// One agent across the queues it is a member of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Agent {
    /// Queue → paused there (with reason).
    queues: BTreeMap<String, Option<String>>,
    /// Device status (`Status`, 0..8 as app_queue reports it).
    device: u8,
    /// Callers ringing it (their unique ids).
    ringing: BTreeSet<String>,
    /// The queue call it is on: (caller unique id, queue).
    on_queue_call: Option<(String, String)>,
    /// When its wrap-up ends, Unix ms.
    wrap_until_ms: i64,
    /// Wrap-up seconds the PBX reported for it.
    wrapup_s: Option<u32>,
    /// The member's interface as the PBX names it (`PJSIP/1001`), for actions on it.
    #[serde(default)]
    interface: String,
    /// What Monti was last told.
    told: Option<(AgentState, Option<String>)>,
    /// The member's own channel on its queue call (`DestUniqueid`: the ARI channel id), for
    /// listening in on it.
    #[serde(default)]
    call_channel: Option<String>,
}

impl Agent {
    fn state(&self, now_ms: i64) -> (AgentState, Option<String>) {
        let paused = self.queues.values().find_map(|p| p.clone());
        let state = if self.queues.is_empty() {
            AgentState::LoggedOut
        } else if matches!(self.device, 4 | 5) {
            AgentState::Unavailable
        } else if self.on_queue_call.is_some() {
            AgentState::OnQueueCall
        } else if !self.ringing.is_empty() || matches!(self.device, 6 | 7) {
            AgentState::Ringing
        } else if matches!(self.device, 2 | 3 | 8) {
            AgentState::OnDirectCall
        } else if now_ms < self.wrap_until_ms {
            AgentState::WrapUp
        } else if paused.is_some() {
            AgentState::Paused
        } else {
            AgentState::Available
        };
        let reason = (state == AgentState::Paused).then_some(paused).flatten();
        (state, reason.filter(|r| !r.is_empty()))
    }
}

/// A caller waiting in a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Caller {
    queue: String,
    #[serde(default)]
    channel: String,
    joined_ms: i64,
    answered: bool,
}

/// The floor as the connector knows it; kept between calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    agents: BTreeMap<String, Agent>,
    callers: BTreeMap<String, Caller>,
    /// Per ringing call, the agents it rings (so a caller leaving finds them at once).
    #[serde(default)]
    ringing: BTreeMap<String, BTreeSet<String>>,
    /// Agents seen in the resync in progress (`QueueStatus`), by its ActionID.
    resync: Option<(String, BTreeSet<(String, String)>)>,
    /// Events emitted so far (for unique ids).
    emitted: u64,
}

/// A unique, stable id for an emitted event: the PBX's identity of what happened where there is
/// one, so a repeated event after a reconnect is stored once.
fn event_id(kind: &str, key: &str, at_ms: i64) -> String {
    format!("ami-{kind}-{key}-{at_ms}")
}

impl Floor {
    /// Agents known (logged in to a watched queue).
    pub fn agents_logged_in(&self) -> usize {
        self.agents.values().filter(|a| !a.queues.is_empty()).count()
    }

    /// The interface the PBX knows an agent by (`PJSIP/1001`), and the queues it is in.
    pub fn member(&self, agent: &str) -> Option<(&str, Vec<&str>)> {
        self.agents
            .get(agent)
            .filter(|a| !a.interface.is_empty())
            .map(|a| (a.interface.as_str(), a.queues.keys().map(String::as_str).collect()))
    }

    /// The agent on call `call` and the unique id of its own channel on it, when the PBX said.
    pub fn member_channel(&self, call: &str) -> Option<(&str, &str)> {
        self.agents.iter().find_map(|(key, agent)| {
            let (on, _) = agent.on_queue_call.as_ref()?;
            (on == call).then_some((key.as_str(), agent.call_channel.as_deref()?))
        })
    }

    /// The channel of a call (the caller's), if it is one the floor follows.
    pub fn channel(&self, call: &str) -> Option<&str> {
        self.callers
            .get(call)
            .map(|c| c.channel.as_str())
            .filter(|c| !c.is_empty())
    }

    /// The state Monti was last told for an agent.
    pub fn told(&self, agent: &str) -> Option<AgentState> {
        self.agents.get(agent).and_then(|a| a.told.as_ref()).map(|(s, _)| *s)
    }

    fn agent_key(settings: &Settings, message: &Message) -> Option<String> {
        let interface = message.get("Interface").or_else(|| message.get("Location"));
        let member = message.get("MemberName").or_else(|| message.get("Name"));
        let state_interface = message.get("StateInterface");
        let source = match settings.match_by {
            MatchBy::Interface => interface.or(member),
            MatchBy::MemberName => member.or(interface),
            MatchBy::StateInterface => state_interface.or(interface),
        }?;
        let name = short_name(source);
        (!name.is_empty()).then(|| name.to_owned())
    }

    fn watched(settings: &Settings, queue: Option<&str>) -> bool {
        match queue {
            Some(q) => settings.queues.is_empty() || settings.queues.contains(q),
            None => false,
        }
    }

    /// Starts a resync (`QueueStatus` sent with `action_id`): members not listed by its end are
    /// no longer members.
    pub fn begin_resync(&mut self, action_id: &str) {
        self.resync = Some((action_id.to_owned(), BTreeSet::new()));
    }

    /// Applies one message at `now_ms`; Monti events come out in `out`.
    pub fn apply(&mut self, settings: &Settings, message: &Message, now_ms: i64, out: &mut Vec<Event>) {
        let Some(name) = message.event() else { return };
        let at_ms = message
            .number("Timestamp")
            .map_or(now_ms, |t| (t * 1000.0).round() as i64);
        let queue = message.get("Queue");
        let mut touched: Vec<String> = Vec::new();
        match name {
            "QueueMember" | "QueueMemberStatus" | "QueueMemberAdded" | "QueueMemberPause" | "QueueMemberPaused" => {
                if !Self::watched(settings, queue) {
                    return;
                }
                let (Some(key), Some(queue)) = (Self::agent_key(settings, message), queue) else {
                    return;
                };
                if name == "QueueMember"
                    && let Some((id, seen)) = &mut self.resync
                    && message.action_id() == Some(id.as_str())
                {
                    seen.insert((key.clone(), queue.to_owned()));
                }
                let agent = self.agents.entry(key.clone()).or_default();
                if let Some(interface) = message.get("Interface").or_else(|| message.get("Location")) {
                    agent.interface = interface.to_owned();
                }
                let was_member = !agent.queues.is_empty();
                let paused = message.flag("Paused").unwrap_or(false);
                let reason = message
                    .get("PausedReason")
                    .or_else(|| message.get("Reason"))
                    .unwrap_or_default()
                    .to_owned();
                agent.queues.insert(queue.to_owned(), paused.then_some(reason));
                if let Some(status) = message.number("Status") {
                    agent.device = status as u8;
                }
                if let Some(wrapup) = message.number("Wrapuptime") {
                    agent.wrapup_s = Some(wrapup as u32);
                }
                if name == "QueueMember" {
                    match message.flag("InCall") {
                        // The resync says the call is over (its end was missed) …
                        Some(false) => agent.on_queue_call = None,
                        // … or that one is going on (its start was missed).
                        Some(true) if agent.on_queue_call.is_none() => {
                            agent.on_queue_call = Some((String::new(), queue.to_owned()));
                        }
                        _ => {}
                    }
                }
                if !was_member {
                    out.push(Event {
                        id: event_id("login", &key, at_ms),
                        source: String::new(),
                        at_ms,
                        body: EventBody::AgentLogin(key.clone()),
                    });
                }
                touched.push(key);
            }
            "QueueMemberRemoved" => {
                if let (Some(key), Some(queue)) = (Self::agent_key(settings, message), queue)
                    && let Some(agent) = self.agents.get_mut(&key)
                {
                    agent.queues.remove(queue);
                    touched.push(key);
                }
            }
            "QueueStatusComplete" => {
                if let Some((id, seen)) = self.resync.take() {
                    if message.action_id() != Some(id.as_str()) {
                        self.resync = Some((id, seen));
                        return;
                    }
                    // Members the PBX no longer lists left while we were not looking.
                    for (key, agent) in &mut self.agents {
                        let before = agent.queues.len();
                        agent
                            .queues
                            .retain(|queue, _| seen.contains(&(key.clone(), queue.clone())));
                        if agent.queues.len() != before {
                            touched.push(key.clone());
                        }
                    }
                }
            }
            "DeviceStateChange" => {
                let (Some(device), Some(state)) = (message.get("Device"), message.get("State")) else {
                    return;
                };
                let status = match state {
                    "NOT_INUSE" => 1,
                    "INUSE" => 2,
                    "BUSY" => 3,
                    "INVALID" => 4,
                    "UNAVAILABLE" => 5,
                    "RINGING" => 6,
                    "RINGINUSE" => 7,
                    "ONHOLD" => 8,
                    _ => 0,
                };
                let key = short_name(device).to_owned();
                if let Some(agent) = self.agents.get_mut(&key) {
                    agent.device = status;
                    touched.push(key);
                }
            }
            "QueueCallerJoin" | "Join" => {
                if !Self::watched(settings, queue) {
                    return;
                }
                let (Some(call), Some(queue)) = (message.get("Uniqueid"), queue) else {
                    return;
                };
                self.callers.insert(
                    call.to_owned(),
                    Caller {
                        queue: queue.to_owned(),
                        channel: message.get("Channel").unwrap_or_default().to_owned(),
                        joined_ms: at_ms,
                        answered: false,
                    },
                );
                out.push(Event {
                    id: event_id("join", call, 0),
                    source: String::new(),
                    at_ms,
                    body: EventBody::CallerJoin(CallerJoin {
                        queue: queue.to_owned(),
                        call: call.to_owned(),
                    }),
                });
            }
            "QueueCallerAbandon" => {
                let Some(call) = message.get("Uniqueid") else { return };
                if let Some(caller) = self.callers.remove(call) {
                    let wait_s = message
                        .number("HoldTime")
                        .unwrap_or((at_ms - caller.joined_ms) as f64 / 1000.0);
                    out.push(Event {
                        id: event_id("leave", call, 0),
                        source: String::new(),
                        at_ms,
                        body: EventBody::CallerLeave(CallerLeave {
                            queue: caller.queue,
                            call: call.to_owned(),
                            reason: LeaveReason::Abandon,
                            wait_s,
                        }),
                    });
                }
                self.stop_ringing(call, &mut touched);
            }
            "QueueCallerLeave" | "Leave" => {
                let Some(call) = message.get("Uniqueid") else { return };
                // Also sent when a caller is connected; only a caller nobody answered has left.
                if let Some(caller) = self.callers.get(call)
                    && !caller.answered
                {
                    let caller = self.callers.remove(call).expect("just seen");
                    out.push(Event {
                        id: event_id("leave", call, 0),
                        source: String::new(),
                        at_ms,
                        body: EventBody::CallerLeave(CallerLeave {
                            queue: caller.queue,
                            call: call.to_owned(),
                            reason: LeaveReason::Timeout,
                            wait_s: (at_ms - caller.joined_ms) as f64 / 1000.0,
                        }),
                    });
                }
                self.stop_ringing(call, &mut touched);
            }
            "AgentCalled" => {
                let (Some(key), Some(call)) = (Self::agent_key(settings, message), message.get("Uniqueid")) else {
                    return;
                };
                if let Some(agent) = self.agents.get_mut(&key) {
                    agent.ringing.insert(call.to_owned());
                    self.ringing.entry(call.to_owned()).or_default().insert(key.clone());
                    touched.push(key);
                }
            }
            "AgentRingNoAnswer" => {
                let (Some(key), Some(call)) = (Self::agent_key(settings, message), message.get("Uniqueid")) else {
                    return;
                };
                if let Some(agent) = self.agents.get_mut(&key) {
                    agent.ringing.remove(call);
                    if let Some(agents) = self.ringing.get_mut(call) {
                        agents.remove(&key);
                    }
                    touched.push(key);
                }
            }
            "AgentConnect" => {
                let (Some(key), Some(call), Some(queue)) =
                    (Self::agent_key(settings, message), message.get("Uniqueid"), queue)
                else {
                    return;
                };
                let waited = self.callers.get(call).map(|c| (at_ms - c.joined_ms) as f64 / 1000.0);
                if let Some(caller) = self.callers.get_mut(call) {
                    caller.answered = true;
                }
                self.stop_ringing(call, &mut touched);
                let agent = self.agents.entry(key.clone()).or_default();
                agent.on_queue_call = Some((call.to_owned(), queue.to_owned()));
                agent.call_channel = message.get("DestUniqueid").map(str::to_owned);
                let wait_s = message.number("HoldTime").or(waited).unwrap_or(0.0);
                out.push(Event {
                    id: event_id("answer", call, 0),
                    source: String::new(),
                    at_ms,
                    body: EventBody::CallerAnswer(CallerAnswer {
                        queue: queue.to_owned(),
                        call: call.to_owned(),
                        agent: key.clone(),
                        wait_s,
                    }),
                });
                out.push(Event {
                    id: event_id("start", call, 0),
                    source: String::new(),
                    at_ms,
                    body: EventBody::CallStart(CallStart {
                        call: call.to_owned(),
                        agent: key.clone(),
                        queue: Some(queue.to_owned()),
                        direction: Direction::Inbound,
                    }),
                });
                touched.push(key);
            }
            "AgentComplete" | "AgentDump" => {
                let (Some(key), Some(call)) = (Self::agent_key(settings, message), message.get("Uniqueid")) else {
                    return;
                };
                self.callers.remove(call);
                let Some(agent) = self.agents.get_mut(&key) else { return };
                let queue = agent
                    .on_queue_call
                    .take()
                    .map(|(_, q)| q)
                    .or_else(|| queue.map(str::to_owned));
                let wrap_s = agent.wrapup_s.unwrap_or(settings.wrapup_s);
                agent.wrap_until_ms = at_ms + i64::from(wrap_s) * 1000;
                out.push(Event {
                    id: event_id("end", call, 0),
                    source: String::new(),
                    at_ms,
                    body: EventBody::CallEnd(CallEnd {
                        call: call.to_owned(),
                        agent: key.clone(),
                        queue,
                        talk_s: message.number("TalkTime").unwrap_or(0.0),
                        hold_s: 0.0,
                        wrap_s: (wrap_s > 0).then_some(f64::from(wrap_s)),
                    }),
                });
                touched.push(key);
            }
            _ => {}
        }
        for key in touched {
            self.tell(&key, at_ms, out);
        }
    }

    fn stop_ringing(&mut self, call: &str, touched: &mut Vec<String>) {
        for key in self.ringing.remove(call).unwrap_or_default() {
            if let Some(agent) = self.agents.get_mut(&key)
                && agent.ringing.remove(call)
            {
                touched.push(key);
            }
        }
    }

    /// Emits the agent's state if it changed since Monti was last told (and its logout).
    fn tell(&mut self, key: &str, at_ms: i64, out: &mut Vec<Event>) {
        let Some(agent) = self.agents.get_mut(key) else { return };
        let now = agent.state(at_ms);
        if agent.told.as_ref() == Some(&now) {
            return;
        }
        let logged_out = now.0 == AgentState::LoggedOut;
        if logged_out && agent.told.is_none() {
            return;
        }
        agent.told = Some(now.clone());
        self.emitted += 1;
        let (state, reason) = now;
        out.push(Event {
            id: event_id("state", key, at_ms) + &format!("-{}", self.emitted),
            source: String::new(),
            at_ms,
            body: if logged_out {
                EventBody::AgentLogout(key.to_owned())
            } else {
                EventBody::AgentState(AgentStateChange {
                    agent: key.to_owned(),
                    state,
                    reason,
                })
            },
        });
    }

    /// Time passes: wrap-ups that ended make their agents available.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Event>) {
        let due: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| a.wrap_until_ms > 0 && a.wrap_until_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(agent) = self.agents.get_mut(&key) {
                agent.wrap_until_ms = 0;
            }
            self.tell(&key, now_ms, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(lines: &[(&str, &str)]) -> Message {
        Message {
            headers: lines.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    fn states(out: &[Event]) -> Vec<String> {
        out.iter()
            .map(|e| match &e.body {
                EventBody::AgentLogin(a) => format!("{a} login"),
                EventBody::AgentLogout(a) => format!("{a} logout"),
                EventBody::AgentState(s) => format!(
                    "{} {}{}",
                    s.agent,
                    format!("{:?}", s.state).trim_start_matches("AgentState::"),
                    s.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                ),
                EventBody::CallerJoin(j) => format!("{} joins {}", j.call, j.queue),
                EventBody::CallerAnswer(a) => format!("{} answers {} after {}s", a.agent, a.call, a.wait_s),
                EventBody::CallerLeave(l) => format!("{} leaves {:?} after {}s", l.call, l.reason, l.wait_s),
                EventBody::CallStart(c) => format!("{} starts {}", c.agent, c.call),
                EventBody::CallEnd(c) => format!("{} ends {} after {}s", c.agent, c.call, c.talk_s),
            })
            .collect()
    }

    #[test]
    fn short_names_drop_the_technology_and_context() {
        assert_eq!(short_name("PJSIP/1001"), "1001");
        assert_eq!(short_name("Local/1001@agents/n"), "1001");
        assert_eq!(short_name("Agent/401"), "401");
        assert_eq!(short_name("Ana"), "Ana");
    }

    #[test]
    fn a_queue_call_rings_connects_completes_and_wraps_up() {
        let settings = Settings {
            wrapup_s: 10,
            ..Settings::default()
        };
        let mut floor = Floor::default();
        let mut out = Vec::new();
        let member = |status: &str, paused: &str| {
            message(&[
                ("Event", "QueueMemberStatus"),
                ("Queue", "sales"),
                ("MemberName", "Ana"),
                ("Interface", "PJSIP/1001"),
                ("Status", status),
                ("Paused", paused),
            ])
        };
        floor.apply(&settings, &member("1", "0"), 1_000, &mut out);
        floor.apply(
            &settings,
            &message(&[("Event", "QueueCallerJoin"), ("Queue", "sales"), ("Uniqueid", "c1")]),
            2_000,
            &mut out,
        );
        let agent_event = |name: &str, extra: &[(&str, &str)]| {
            let mut lines = vec![
                ("Event", name),
                ("Queue", "sales"),
                ("Uniqueid", "c1"),
                ("Interface", "PJSIP/1001"),
            ];
            lines.extend_from_slice(extra);
            message(&lines)
        };
        floor.apply(&settings, &agent_event("AgentCalled", &[]), 3_000, &mut out);
        floor.apply(
            &settings,
            &agent_event("AgentConnect", &[("HoldTime", "2")]),
            5_000,
            &mut out,
        );
        floor.apply(
            &settings,
            &message(&[("Event", "QueueCallerLeave"), ("Queue", "sales"), ("Uniqueid", "c1")]),
            5_000,
            &mut out,
        );
        floor.apply(
            &settings,
            &agent_event("AgentComplete", &[("TalkTime", "60")]),
            65_000,
            &mut out,
        );
        floor.tick(70_000, &mut out);
        floor.tick(75_000, &mut out);
        assert_eq!(
            states(&out),
            [
                "1001 login",
                "1001 Available",
                "c1 joins sales",
                "1001 Ringing",
                "1001 answers c1 after 2s",
                "1001 starts c1",
                "1001 OnQueueCall",
                "1001 ends c1 after 60s",
                "1001 WrapUp",
                "1001 Available",
            ]
        );
    }

    #[test]
    fn a_pause_carries_its_reason_and_a_resync_drops_members_that_left() {
        let settings = Settings::default();
        let mut floor = Floor::default();
        let mut out = Vec::new();
        let member = |name: &str, queue: &str, paused: &str, extra: &[(&'static str, &'static str)]| {
            let mut lines = vec![
                ("Event", name),
                ("Queue", queue),
                ("Location", "SIP/1002"),
                ("Status", "1"),
                ("Paused", paused),
            ];
            lines.extend_from_slice(extra);
            message(&lines)
        };
        floor.apply(&settings, &member("QueueMemberAdded", "a", "0", &[]), 1, &mut out);
        floor.apply(&settings, &member("QueueMemberAdded", "b", "0", &[]), 2, &mut out);
        floor.apply(
            &settings,
            &member("QueueMemberPause", "a", "1", &[("PausedReason", "lunch")]),
            3,
            &mut out,
        );
        // Reconnected: the PBX lists the member in queue b only, unpaused; then a duplicate.
        floor.begin_resync("r1");
        floor.apply(
            &settings,
            &member("QueueMember", "b", "0", &[("ActionID", "r1")]),
            4,
            &mut out,
        );
        floor.apply(
            &settings,
            &message(&[("Event", "QueueStatusComplete"), ("ActionID", "r1")]),
            5,
            &mut out,
        );
        floor.apply(&settings, &member("QueueMemberStatus", "b", "0", &[]), 6, &mut out);
        floor.apply(
            &settings,
            &message(&[
                ("Event", "QueueMemberRemoved"),
                ("Queue", "b"),
                ("Location", "SIP/1002"),
            ]),
            7,
            &mut out,
        );
        assert_eq!(
            states(&out),
            [
                "1002 login",
                "1002 Available",
                "1002 Paused (lunch)",
                "1002 Available",
                "1002 logout"
            ]
        );
    }

    #[test]
    fn unwatched_queues_and_unknown_events_change_nothing() {
        let settings = Settings {
            queues: ["sales".to_owned()].into(),
            ..Settings::default()
        };
        let mut floor = Floor::default();
        let mut out = Vec::new();
        floor.apply(
            &settings,
            &message(&[
                ("Event", "QueueMemberAdded"),
                ("Queue", "support"),
                ("Interface", "SIP/1"),
            ]),
            1,
            &mut out,
        );
        floor.apply(
            &settings,
            &message(&[("Event", "SomethingNew"), ("Queue", "sales")]),
            2,
            &mut out,
        );
        floor.apply(&settings, &message(&[("Response", "Success")]), 3, &mut out);
        assert!(out.is_empty());
        assert_eq!(floor.agents_logged_in(), 0);
    }
}
