//! The event loop. Every state change happens while handling a timer popped from the heap, so
//! the order of random draws, and with it the whole run, depends only on the inputs.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};

use chrono::{DateTime, Utc};

use super::random::{Random, STREAM_SIMULATION};
use super::{Dist, QueueStats, Scenario, SimParams, SimStats, interpolate};
use monti_domain::events::{AgentState, Direction, Event, EventBody, LeaveReason};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
/// Agents already on shift at the start log in within this long, so the floor comes alive at once.
const START_LOGIN_SPREAD_MS: i64 = 5_000;
/// Later logins happen within this long after the shift starts.
const LOGIN_SPREAD_MS: i64 = 90_000;
/// Share of calls with some hold time, and the range of that hold as a share of the handle time.
const HOLD_CHANCE: f64 = 0.2;
const HOLD_SHARE: (f64, f64) = (0.05, 0.3);
const MAX_DIRECT_FRACTION: f64 = 0.9;
/// The volume noise changes every quarter of an hour, correlated from one to the next so that a
/// busy spell lasts about an hour and a half; it is capped at 3 standard deviations (which
/// bounds the thinning envelope).
const NOISE_INTERVAL_MS: i64 = 15 * MINUTE_MS;
const NOISE_CORRELATION: f64 = 0.85;
const NOISE_CAP_SDS: f64 = 3.0;
const MAX_VOLUME_NOISE: f64 = 0.5;

const PAUSE_REASONS: [&str; 4] = ["break", "lunch", "training", "meeting"];
const BREAK: u8 = 0;
const LUNCH: u8 = 1;

#[derive(Debug, Clone, Copy)]
enum Action {
    Arrival {
        queue: u32,
    },
    DirectCall {
        queue: u32,
    },
    Abandon {
        slot: u32,
        number: u64,
    },
    /// Ringing is over; the agent picks up.
    Answer {
        slot: u32,
    },
    HangUp {
        slot: u32,
    },
    WrapEnd {
        agent: u32,
        epoch: u32,
    },
    PauseDue {
        agent: u32,
        epoch: u32,
        reason: u8,
        len_ms: i64,
    },
    PauseEnd {
        agent: u32,
        epoch: u32,
    },
    Login {
        agent: u32,
    },
    /// The end of a shift, or with shifts off the end of a day (the next day's pauses are planned).
    ShiftEnd {
        agent: u32,
        epoch: u32,
    },
    /// A team's phones go down ([`super::Outage`], by index) …
    OutageStart {
        outage: u32,
    },
    /// … and come back.
    OutageEnd {
        outage: u32,
    },
}

/// A timer; the heap pops the earliest, ties in the order they were set.
struct Timer {
    at: i64,
    seq: u64,
    action: Action,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct QueueRt {
    name: String,
    /// Waiting callers as (slot, number), oldest first; entries of callers who left are
    /// skipped when they reach the head.
    waiting: VecDeque<(u32, u64)>,
    /// Idle agents with this skill as (idle since, agent): the first has been idle longest.
    idle: BTreeSet<(i64, u32)>,
    /// Arrivals per millisecond at the curve's highest factor (the thinning envelope).
    envelope_per_ms: f64,
    direct_envelope_per_ms: f64,
    /// Unrounded times of the last candidate arrivals, so that rounding to milliseconds never
    /// accumulates into a rate error.
    arrival_clock: f64,
    direct_clock: f64,
    /// The volume noise's current quarter-hour (counted from the start) and standard normal state.
    noise_interval: i64,
    noise_z: f64,
    /// The highest surge factor, built into the envelope.
    surge_peak: f64,
    handle: Dist,
    patience: Option<Dist>,
    wrap_ms: i64,
    sl_threshold_ms: i64,
}

struct AgentRt {
    extension: String,
    skills: Vec<u32>,
    state: AgentState,
    /// The key under which an idle agent sits in its queues' idle sets.
    idle_since: i64,
    /// Bumped at every logout, which voids the timers of the shift that ended.
    epoch: u32,
    /// Start of the current (or, when logged out, the next) shift, and its length.
    shift_start: i64,
    shift_len: i64,
    logout_due: bool,
    /// Pauses that fell due while the agent was busy, taken in order once free.
    pending_pauses: VecDeque<(u8, i64)>,
    /// Index into the scenario's teams.
    team: usize,
    /// The team's phones are down: once free, the agent is unavailable.
    dark: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CallStatus {
    Free,
    Waiting,
    Ringing,
    Talking,
}

struct CallRt {
    number: u64,
    id: String,
    queue: u32,
    direct: bool,
    status: CallStatus,
    joined: i64,
    agent: u32,
    talk_ms: i64,
    hold_ms: i64,
}

/// A running simulation of one [`Scenario`].
pub struct Simulation {
    run_id: String,
    ring: Dist,
    noise_sd: f64,
    noise_cap: f64,
    breaks: bool,
    shifts: bool,
    /// The run's start (Unix ms), which is `day_offset_ms` after midnight on the scenario's clock.
    start_ms: i64,
    day_offset_ms: i64,
    curve: [f64; 24],
    curve_peak: f64,
    surges: Vec<super::Surge>,
    /// (team index, start and end as ms after midnight on the scenario's clock).
    outages: Vec<(usize, i64, i64)>,
    rng: Random,
    now: i64,
    timers: BinaryHeap<Timer>,
    next_timer: u64,
    queues: Vec<QueueRt>,
    agents: Vec<AgentRt>,
    calls: Vec<CallRt>,
    free_calls: Vec<u32>,
    next_call: u64,
    stats: SimStats,
    /// Up to when `stats.agent_state_s` is integrated.
    integrated_to: i64,
}

fn finite_or_zero(v: f64) -> f64 {
    if v.is_finite() { v.max(0.0) } else { 0.0 }
}

fn seconds_to_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

fn ms_to_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl Simulation {
    /// Prepares a run of `scenario` starting at `start_ms` (Unix milliseconds), which is
    /// `params.day_offset_s` on the scenario's clock. Nothing happens until [`advance`](Self::advance).
    pub fn new(scenario: &Scenario, params: SimParams, start_ms: i64) -> Simulation {
        let curve = params.curve.hourly();
        let curve_peak = curve.iter().copied().fold(0.0, f64::max);
        let load = finite_or_zero(params.load);
        let direct_fraction = finite_or_zero(params.direct_call_fraction).min(MAX_DIRECT_FRACTION);
        let noise_sd = finite_or_zero(params.volume_noise).min(MAX_VOLUME_NOISE);
        let noise_cap = (NOISE_CAP_SDS * noise_sd).exp();
        let queues = scenario
            .queues
            .iter()
            .map(|q| {
                let peak_per_ms = finite_or_zero(q.calls_per_hour) * load * curve_peak / HOUR_MS as f64;
                let surge_peak = super::Surge::peak(&params.surges, &q.name);
                QueueRt {
                    name: q.name.clone(),
                    waiting: VecDeque::new(),
                    idle: BTreeSet::new(),
                    envelope_per_ms: peak_per_ms * noise_cap * surge_peak,
                    surge_peak,
                    direct_envelope_per_ms: peak_per_ms * direct_fraction / (1.0 - direct_fraction),
                    arrival_clock: start_ms as f64,
                    direct_clock: start_ms as f64,
                    noise_interval: 0,
                    // The forecast is right at the start; the error builds up from there.
                    noise_z: 0.0,
                    handle: q.handle,
                    patience: q.patience,
                    wrap_ms: seconds_to_ms(finite_or_zero(q.wrap_up_s).min(super::MAX_DURATION_S)),
                    sl_threshold_ms: i64::from(q.sl_threshold_s) * 1000,
                }
            })
            .collect::<Vec<_>>();
        let agents = scenario
            .agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let mut skills: Vec<u32> = Vec::with_capacity(a.queues.len());
                for &q in &a.queues {
                    if q < queues.len() && !skills.contains(&(q as u32)) {
                        skills.push(q as u32);
                    }
                }
                AgentRt {
                    extension: if a.extension.is_empty() {
                        format!("agent-{i}")
                    } else {
                        a.extension.clone()
                    },
                    skills,
                    state: AgentState::LoggedOut,
                    idle_since: 0,
                    epoch: 0,
                    shift_start: 0,
                    shift_len: i64::from(a.shift_len_s).min(DAY_MS / 1000) * 1000,
                    logout_due: false,
                    pending_pauses: VecDeque::new(),
                    team: a.team,
                    dark: false,
                }
            })
            .collect::<Vec<_>>();
        let mut stats = SimStats {
            queues: queues
                .iter()
                .map(|q| QueueStats {
                    name: q.name.clone(),
                    ..QueueStats::default()
                })
                .collect(),
            ..SimStats::default()
        };
        stats.agents_in_state[AgentState::LoggedOut.index()] = agents.len() as u32;
        let mut sim = Simulation {
            run_id: params.run_id,
            ring: params.ring_s,
            noise_sd,
            noise_cap,
            breaks: params.breaks,
            shifts: params.shifts,
            start_ms,
            day_offset_ms: i64::from(params.day_offset_s) * 1000 % DAY_MS,
            curve,
            curve_peak,
            surges: params.surges,
            outages: params
                .outages
                .iter()
                .filter_map(|o| {
                    let team = scenario.teams.iter().position(|t| *t == o.team)?;
                    let at = |s: u32| i64::from(s % 86_400) * 1000;
                    Some((team, at(o.from_s), at(o.to_s)))
                })
                .collect(),
            rng: Random::new(params.seed, STREAM_SIMULATION),
            now: start_ms,
            timers: BinaryHeap::new(),
            next_timer: 0,
            queues,
            agents,
            calls: Vec::new(),
            free_calls: Vec::new(),
            next_call: 0,
            stats,
            integrated_to: start_ms,
        };
        for q in 0..sim.queues.len() as u32 {
            sim.schedule_arrival(q, false);
            sim.schedule_arrival(q, true);
        }
        for (i, spec) in scenario.agents.iter().enumerate() {
            sim.schedule_first_login(i as u32, spec.shift_start_s);
        }
        for outage in 0..sim.outages.len() {
            let (_, from, to) = sim.outages[outage];
            let outage = outage as u32;
            let (until_start, until_end) = (sim.until_time_of_day(from), sim.until_time_of_day(to));
            // A run that starts during the spell starts with the phones down.
            let start = if until_end < until_start { 0 } else { until_start };
            sim.at(sim.now + start, Action::OutageStart { outage });
            sim.at(sim.now + until_end.max(start + 1), Action::OutageEnd { outage });
        }
        sim
    }

    /// Milliseconds from now until `ms_after_midnight` on the scenario's clock next comes.
    fn until_time_of_day(&self, ms_after_midnight: i64) -> i64 {
        let now = (self.now - self.start_ms + self.day_offset_ms).rem_euclid(DAY_MS);
        (ms_after_midnight - now).rem_euclid(DAY_MS)
    }

    /// Runs simulated time forward to `until_ms`, appending the events that happen up to then
    /// (inclusive), in time order. Going backwards does nothing.
    pub fn advance(&mut self, until_ms: i64, out: &mut Vec<Event>) {
        while self.timers.peek().is_some_and(|t| t.at <= until_ms) {
            let Some(timer) = self.timers.pop() else { break };
            self.now = self.now.max(timer.at);
            self.handle(timer.action, out);
        }
        self.now = self.now.max(until_ms);
        self.integrate();
    }

    /// Simulated time, Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.now
    }

    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    // ----- plumbing -----

    fn at(&mut self, at: i64, action: Action) {
        self.timers.push(Timer {
            at: at.max(self.now),
            seq: self.next_timer,
            action,
        });
        self.next_timer += 1;
    }

    fn emit(&mut self, out: &mut Vec<Event>, body: EventBody) {
        out.push(Event {
            v: 1,
            id: format!("{}-{}", self.run_id, self.stats.events),
            source: "simulator".into(),
            at: DateTime::<Utc>::from_timestamp_millis(self.now).unwrap_or_default(),
            body,
        });
        self.stats.events += 1;
    }

    /// Adds the time since the last integration to the per-state agent totals.
    fn integrate(&mut self) {
        let elapsed = ms_to_seconds(self.now - self.integrated_to);
        if elapsed > 0.0 {
            for (total, count) in self.stats.agent_state_s.iter_mut().zip(self.stats.agents_in_state) {
                *total += f64::from(count) * elapsed;
            }
        }
        self.integrated_to = self.now;
    }

    fn set_state(&mut self, agent: u32, state: AgentState) {
        self.integrate();
        let previous = std::mem::replace(&mut self.agents[agent as usize].state, state);
        self.stats.agents_in_state[previous.index()] -= 1;
        self.stats.agents_in_state[state.index()] += 1;
    }

    fn agent_id(&self, agent: u32) -> String {
        self.agents[agent as usize].extension.clone()
    }

    /// Milliseconds after midnight on the scenario's clock at Unix time `at`.
    fn time_of_day_ms(&self, at: f64) -> f64 {
        (self.day_offset_ms as f64 + (at - self.start_ms as f64)).rem_euclid(DAY_MS as f64)
    }

    fn sample_ms(&mut self, dist: &Dist) -> i64 {
        seconds_to_ms(self.rng.sample(dist))
    }

    fn new_call(&mut self, queue: u32, direct: bool) -> u32 {
        let number = self.next_call;
        self.next_call += 1;
        let call = CallRt {
            number,
            id: format!("{}-c{number}", self.run_id),
            queue,
            direct,
            status: CallStatus::Waiting,
            joined: self.now,
            agent: 0,
            talk_ms: 0,
            hold_ms: 0,
        };
        match self.free_calls.pop() {
            Some(slot) => {
                self.calls[slot as usize] = call;
                slot
            }
            None => {
                self.calls.push(call);
                (self.calls.len() - 1) as u32
            }
        }
    }

    fn free_call(&mut self, slot: u32) {
        self.calls[slot as usize].status = CallStatus::Free;
        self.free_calls.push(slot);
    }

    // ----- arrivals -----

    /// Draws the next arrival by thinning: candidates at the envelope rate, each kept with
    /// probability (curve × volume noise) / (curve peak × noise cap).
    fn schedule_arrival(&mut self, queue: u32, direct: bool) {
        let q = &self.queues[queue as usize];
        let (envelope, mut t) = if direct {
            (q.direct_envelope_per_ms, q.direct_clock)
        } else {
            (q.envelope_per_ms, q.arrival_clock)
        };
        if envelope <= 0.0 || !envelope.is_finite() || self.curve_peak <= 0.0 {
            return;
        }
        loop {
            t += self.rng.exponential(1.0 / envelope);
            let seconds_of_day = self.time_of_day_ms(t) / 1000.0;
            let mut keep = interpolate(&self.curve, seconds_of_day) / self.curve_peak;
            if !direct {
                keep *= self.volume_factor(queue, t) / self.noise_cap;
                let q = &self.queues[queue as usize];
                keep *= super::Surge::at(&self.surges, &q.name, seconds_of_day) / q.surge_peak;
            }
            if keep >= 1.0 || self.rng.chance(keep) {
                break;
            }
        }
        let q = &mut self.queues[queue as usize];
        let action = if direct {
            q.direct_clock = t;
            Action::DirectCall { queue }
        } else {
            q.arrival_clock = t;
            Action::Arrival { queue }
        };
        self.at(t.round() as i64, action);
    }

    /// The queue's volume noise at `t` (Unix ms): a log-normal factor with mean 1, its log an
    /// AR(1) process over quarter-hours. Calls come in time order per queue, so the process is
    /// only ever stepped forward.
    fn volume_factor(&mut self, queue: u32, t: f64) -> f64 {
        if self.noise_sd <= 0.0 {
            return 1.0;
        }
        let interval = ((t - self.start_ms as f64) / NOISE_INTERVAL_MS as f64).floor() as i64;
        while self.queues[queue as usize].noise_interval < interval {
            let innovation = self.rng.standard_normal();
            let q = &mut self.queues[queue as usize];
            q.noise_z = NOISE_CORRELATION * q.noise_z + (1.0 - NOISE_CORRELATION.powi(2)).sqrt() * innovation;
            q.noise_interval += 1;
        }
        let z = self.queues[queue as usize].noise_z;
        (self.noise_sd * z - self.noise_sd.powi(2) / 2.0)
            .exp()
            .min(self.noise_cap)
    }

    fn handle(&mut self, action: Action, out: &mut Vec<Event>) {
        match action {
            Action::Arrival { queue } => self.arrival(queue, out),
            Action::DirectCall { queue } => self.direct_call(queue, out),
            Action::Abandon { slot, number } => self.abandon(slot, number, out),
            Action::Answer { slot } => self.answer(slot, out),
            Action::HangUp { slot } => self.hang_up(slot, out),
            Action::WrapEnd { agent, epoch } => {
                let a = &self.agents[agent as usize];
                if a.epoch == epoch && a.state == AgentState::WrapUp {
                    self.after_work(agent, out);
                }
            }
            Action::PauseDue {
                agent,
                epoch,
                reason,
                len_ms,
            } => {
                let a = &mut self.agents[agent as usize];
                if a.epoch != epoch || a.state == AgentState::LoggedOut {
                    return;
                }
                a.pending_pauses.push_back((reason, len_ms));
                if a.state == AgentState::Available {
                    self.leave_idle(agent);
                    self.start_pause(agent, out);
                }
            }
            Action::PauseEnd { agent, epoch } => {
                let a = &self.agents[agent as usize];
                if a.epoch == epoch && a.state == AgentState::Paused {
                    self.after_work(agent, out);
                }
            }
            Action::Login { agent } => self.login(agent, out),
            Action::ShiftEnd { agent, epoch } => self.shift_end(agent, epoch, out),
            Action::OutageStart { outage } => self.outage(outage, true, out),
            Action::OutageEnd { outage } => self.outage(outage, false, out),
        }
    }

    /// A team's phones go down (`down`) or come back; the same again a day later.
    fn outage(&mut self, outage: u32, down: bool, out: &mut Vec<Event>) {
        let Some(&(team, _, _)) = self.outages.get(outage as usize) else {
            return;
        };
        let (next, at) = match self.outages[outage as usize] {
            (_, from, _) if down => (Action::OutageStart { outage }, from),
            (_, _, to) => (Action::OutageEnd { outage }, to),
        };
        // The next spell, on the scenario's clock (a run that started during one started it
        // early).
        let until = self.until_time_of_day(at);
        self.at(self.now + if until == 0 { DAY_MS } else { until }, next);
        for agent in 0..self.agents.len() as u32 {
            let a = &mut self.agents[agent as usize];
            if a.team != team || a.dark == down {
                continue;
            }
            a.dark = down;
            match (down, a.state) {
                // Idle: down at once. Busy, paused or away: once free (`after_work`, `login`).
                (true, AgentState::Available) => {
                    self.leave_idle(agent);
                    self.go_dark(agent, out);
                }
                (false, AgentState::Unavailable) => self.after_work(agent, out),
                _ => {}
            }
        }
    }

    fn go_dark(&mut self, agent: u32, out: &mut Vec<Event>) {
        self.set_state(agent, AgentState::Unavailable);
        let body = EventBody::AgentState {
            agent: self.agent_id(agent),
            state: AgentState::Unavailable,
            reason: None,
        };
        self.emit(out, body);
    }

    fn arrival(&mut self, queue: u32, out: &mut Vec<Event>) {
        self.schedule_arrival(queue, false);
        let slot = self.new_call(queue, false);
        let q = &self.queues[queue as usize];
        let body = EventBody::CallerJoin {
            queue: q.name.clone(),
            call: self.calls[slot as usize].id.clone(),
        };
        self.stats.queues[queue as usize].offered += 1;
        self.emit(out, body);
        if let Some(agent) = self.longest_idle(queue) {
            self.offer(slot, agent, out);
            return;
        }
        let number = self.calls[slot as usize].number;
        self.queues[queue as usize].waiting.push_back((slot, number));
        self.stats.queues[queue as usize].waiting += 1;
        if let Some(patience) = self.queues[queue as usize].patience {
            let patience_ms = self.sample_ms(&patience);
            self.at(self.now + patience_ms, Action::Abandon { slot, number });
        }
    }

    fn direct_call(&mut self, queue: u32, out: &mut Vec<Event>) {
        self.schedule_arrival(queue, true);
        let Some(agent) = self.longest_idle(queue) else {
            self.stats.direct_calls_skipped += 1;
            return;
        };
        self.stats.direct_calls += 1;
        let slot = self.new_call(queue, true);
        self.calls[slot as usize].agent = agent;
        let body = EventBody::CallStart {
            call: self.calls[slot as usize].id.clone(),
            agent: self.agent_id(agent),
            queue: None,
            direction: Direction::Outbound,
        };
        self.emit(out, body);
        self.set_state(agent, AgentState::OnDirectCall);
        self.start_talking(slot);
    }

    fn abandon(&mut self, slot: u32, number: u64, out: &mut Vec<Event>) {
        let call = &self.calls[slot as usize];
        if call.number != number || call.status != CallStatus::Waiting {
            return;
        }
        let queue = call.queue as usize;
        let wait_s = ms_to_seconds(self.now - call.joined).min(super::MAX_DURATION_S);
        let body = EventBody::CallerLeave {
            queue: self.queues[queue].name.clone(),
            call: call.id.clone(),
            reason: LeaveReason::Abandon,
            wait_s,
        };
        let stats = &mut self.stats.queues[queue];
        stats.abandoned += 1;
        stats.waiting -= 1;
        self.emit(out, body);
        // The queue entry goes stale and is dropped when it reaches the head.
        self.free_call(slot);
    }

    // ----- routing -----

    /// Takes the agent idle longest among those with the skill out of every idle set.
    fn longest_idle(&mut self, queue: u32) -> Option<u32> {
        let (_, agent) = *self.queues[queue as usize].idle.first()?;
        self.leave_idle(agent);
        Some(agent)
    }

    fn leave_idle(&mut self, agent: u32) {
        let a = &self.agents[agent as usize];
        let key = (a.idle_since, agent);
        for &q in &a.skills {
            self.queues[q as usize].idle.remove(&key);
        }
    }

    /// The head of the queue, after dropping callers who already left.
    fn head(&mut self, queue: u32) -> Option<(i64, u64, u32)> {
        let q = &mut self.queues[queue as usize];
        while let Some(&(slot, number)) = q.waiting.front() {
            let call = &self.calls[slot as usize];
            if call.number == number && call.status == CallStatus::Waiting {
                return Some((call.joined, number, slot));
            }
            q.waiting.pop_front();
        }
        None
    }

    /// The agent is free for calls: takes the caller who has waited longest in any of its
    /// queues, or becomes idle in all of them.
    fn become_available(&mut self, agent: u32, announce: bool, out: &mut Vec<Event>) {
        self.set_state(agent, AgentState::Available);
        if announce {
            let body = EventBody::AgentState {
                agent: self.agent_id(agent),
                state: AgentState::Available,
                reason: None,
            };
            self.emit(out, body);
        }
        let mut best: Option<(i64, u64, u32, u32)> = None;
        for i in 0..self.agents[agent as usize].skills.len() {
            let queue = self.agents[agent as usize].skills[i];
            if let Some((joined, number, slot)) = self.head(queue)
                && best.is_none_or(|(j, n, _, _)| (joined, number) < (j, n))
            {
                best = Some((joined, number, slot, queue));
            }
        }
        if let Some((_, _, slot, queue)) = best {
            self.queues[queue as usize].waiting.pop_front();
            self.stats.queues[queue as usize].waiting -= 1;
            self.offer(slot, agent, out);
            return;
        }
        let a = &mut self.agents[agent as usize];
        a.idle_since = self.now;
        let key = (self.now, agent);
        for &q in &a.skills {
            self.queues[q as usize].idle.insert(key);
        }
    }

    /// Connects a caller to an agent who is no longer idle anywhere: it rings, then is answered.
    fn offer(&mut self, slot: u32, agent: u32, out: &mut Vec<Event>) {
        let call = &mut self.calls[slot as usize];
        call.status = CallStatus::Ringing;
        call.agent = agent;
        let ring = self.ring;
        let ring_ms = self.sample_ms(&ring);
        if ring_ms > 0 {
            self.set_state(agent, AgentState::Ringing);
            let body = EventBody::AgentState {
                agent: self.agent_id(agent),
                state: AgentState::Ringing,
                reason: None,
            };
            self.emit(out, body);
            self.at(self.now + ring_ms, Action::Answer { slot });
        } else {
            self.answer(slot, out);
        }
    }

    fn answer(&mut self, slot: u32, out: &mut Vec<Event>) {
        let call = &self.calls[slot as usize];
        let (queue, agent) = (call.queue as usize, call.agent);
        let wait_ms = self.now - call.joined;
        let stats = &mut self.stats.queues[queue];
        stats.answered += 1;
        stats.answer_wait_s += ms_to_seconds(wait_ms);
        if wait_ms <= self.queues[queue].sl_threshold_ms {
            stats.answered_within_sl += 1;
        }
        let (call_id, queue_name, agent_id) = (call.id.clone(), self.queues[queue].name.clone(), self.agent_id(agent));
        let answer = EventBody::CallerAnswer {
            queue: queue_name.clone(),
            call: call_id.clone(),
            agent: agent_id.clone(),
            wait_s: ms_to_seconds(wait_ms).min(super::MAX_DURATION_S),
        };
        self.emit(out, answer);
        let start = EventBody::CallStart {
            call: call_id,
            agent: agent_id,
            queue: Some(queue_name),
            direction: Direction::Inbound,
        };
        self.emit(out, start);
        self.set_state(agent, AgentState::OnQueueCall);
        self.start_talking(slot);
    }

    /// Draws the call's talk and hold time and sets its hang-up.
    fn start_talking(&mut self, slot: u32) {
        let handle = self.queues[self.calls[slot as usize].queue as usize].handle;
        let handle_ms = self.sample_ms(&handle);
        let hold_ms = if self.rng.chance(HOLD_CHANCE) {
            (handle_ms as f64 * self.rng.between(HOLD_SHARE.0, HOLD_SHARE.1)).round() as i64
        } else {
            0
        };
        let call = &mut self.calls[slot as usize];
        call.status = CallStatus::Talking;
        call.talk_ms = handle_ms - hold_ms;
        call.hold_ms = hold_ms;
        self.at(self.now + handle_ms, Action::HangUp { slot });
    }

    fn hang_up(&mut self, slot: u32, out: &mut Vec<Event>) {
        let call = &self.calls[slot as usize];
        let (queue, agent) = (call.queue as usize, call.agent);
        let wrap_ms = self.queues[queue].wrap_ms;
        let body = EventBody::CallEnd {
            call: call.id.clone(),
            agent: self.agent_id(agent),
            queue: (!call.direct).then(|| self.queues[queue].name.clone()),
            talk_s: ms_to_seconds(call.talk_ms),
            hold_s: ms_to_seconds(call.hold_ms),
            wrap_s: Some(ms_to_seconds(wrap_ms)),
        };
        if !call.direct {
            let stats = &mut self.stats.queues[queue];
            stats.handled += 1;
            stats.handle_s += ms_to_seconds(call.talk_ms + call.hold_ms);
            stats.wrap_s += ms_to_seconds(wrap_ms);
        }
        self.emit(out, body);
        self.free_call(slot);
        self.set_state(agent, AgentState::WrapUp);
        let epoch = self.agents[agent as usize].epoch;
        self.at(self.now + wrap_ms, Action::WrapEnd { agent, epoch });
    }

    // ----- shifts and pauses -----

    /// What a free agent (after wrap-up or a pause) does next.
    fn after_work(&mut self, agent: u32, out: &mut Vec<Event>) {
        let a = &self.agents[agent as usize];
        if a.logout_due {
            self.logout(agent, out);
        } else if a.dark {
            self.go_dark(agent, out);
        } else if !a.pending_pauses.is_empty() {
            self.start_pause(agent, out);
        } else {
            self.become_available(agent, true, out);
        }
    }

    fn start_pause(&mut self, agent: u32, out: &mut Vec<Event>) {
        let a = &mut self.agents[agent as usize];
        let Some((reason, len_ms)) = a.pending_pauses.pop_front() else {
            return;
        };
        let epoch = a.epoch;
        self.set_state(agent, AgentState::Paused);
        let body = EventBody::AgentState {
            agent: self.agent_id(agent),
            state: AgentState::Paused,
            reason: Some(PAUSE_REASONS[usize::from(reason)].to_owned()),
        };
        self.emit(out, body);
        self.at(self.now + len_ms, Action::PauseEnd { agent, epoch });
    }

    fn schedule_first_login(&mut self, agent: u32, shift_start_s: u32) {
        let a = &self.agents[agent as usize];
        if !self.shifts {
            let login = self.now + self.rng.below(START_LOGIN_SPREAD_MS as usize) as i64;
            self.agents[agent as usize].shift_start = self.now;
            self.agents[agent as usize].shift_len = DAY_MS;
            self.at(login, Action::Login { agent });
            return;
        }
        if a.shift_len <= 0 {
            return;
        }
        let into_shift = (self.day_offset_ms - i64::from(shift_start_s) * 1000).rem_euclid(DAY_MS);
        let (shift_start, spread) = if into_shift < a.shift_len {
            (self.now - into_shift, START_LOGIN_SPREAD_MS)
        } else {
            (self.now + DAY_MS - into_shift, LOGIN_SPREAD_MS)
        };
        self.agents[agent as usize].shift_start = shift_start;
        let from = self.now.max(shift_start);
        let login = from + self.rng.below(spread as usize) as i64;
        self.at(login, Action::Login { agent });
    }

    fn login(&mut self, agent: u32, out: &mut Vec<Event>) {
        if self.agents[agent as usize].state != AgentState::LoggedOut {
            return;
        }
        let body = EventBody::AgentLogin {
            agent: self.agent_id(agent),
        };
        self.emit(out, body);
        let a = &self.agents[agent as usize];
        let (epoch, end) = (a.epoch, a.shift_start + a.shift_len);
        self.at(end, Action::ShiftEnd { agent, epoch });
        // Only at the start of a run can a login fall into a planned pause.
        if self.agents[agent as usize].dark {
            self.go_dark(agent, out);
        } else if let Some(pause) = self.plan_pauses(agent) {
            self.agents[agent as usize].pending_pauses.push_back(pause);
            self.start_pause(agent, out);
        } else {
            self.become_available(agent, false, out);
        }
    }

    fn shift_end(&mut self, agent: u32, epoch: u32, out: &mut Vec<Event>) {
        let a = &mut self.agents[agent as usize];
        if a.epoch != epoch || a.state == AgentState::LoggedOut {
            return;
        }
        if !self.shifts {
            // Working around the clock: plan the next day.
            a.shift_start += DAY_MS;
            let end = a.shift_start + a.shift_len;
            self.at(end, Action::ShiftEnd { agent, epoch });
            // Today's pauses are over by now, so none is under way.
            let _ = self.plan_pauses(agent);
            return;
        }
        match a.state {
            AgentState::Available => {
                self.leave_idle(agent);
                self.logout(agent, out);
            }
            AgentState::Paused | AgentState::Unavailable => self.logout(agent, out),
            _ => a.logout_due = true,
        }
    }

    fn logout(&mut self, agent: u32, out: &mut Vec<Event>) {
        let body = EventBody::AgentLogout {
            agent: self.agent_id(agent),
        };
        self.emit(out, body);
        self.set_state(agent, AgentState::LoggedOut);
        let a = &mut self.agents[agent as usize];
        a.epoch = a.epoch.wrapping_add(1);
        a.logout_due = false;
        a.pending_pauses.clear();
        a.shift_start += DAY_MS;
        let next = a.shift_start.max(self.now);
        let login = next + self.rng.below(LOGIN_SPREAD_MS as usize) as i64;
        self.at(login, Action::Login { agent });
    }

    /// Sets the current shift's pauses that still lie ahead: a 15-minute break about every two
    /// hours, a 30-minute lunch mid-shift (shifts of 6 hours or more), and now and then a
    /// training or a meeting. Returns the rest of a pause that is under way (reason and length),
    /// which happens when a run starts during an agent's shift, so that the floor starts with
    /// its usual share of agents paused.
    fn plan_pauses(&mut self, agent: u32) -> Option<(u8, i64)> {
        if !self.breaks {
            return None;
        }
        let a = &self.agents[agent as usize];
        let (start, len, epoch) = (a.shift_start, a.shift_len, a.epoch);
        let mut plan: Vec<(i64, u8, i64)> = Vec::new();
        let lunch = if len >= 6 * HOUR_MS {
            let at = start + len / 2 - 15 * MINUTE_MS + self.jitter_ms(45);
            plan.push((at, LUNCH, 30 * MINUTE_MS));
            Some(at)
        } else {
            None
        };
        let mut due = start + 2 * HOUR_MS;
        while due < start + len - 45 * MINUTE_MS {
            let at = due + self.jitter_ms(20);
            if lunch.is_none_or(|l| (at - l).abs() >= 75 * MINUTE_MS) {
                plan.push((at, BREAK, 15 * MINUTE_MS));
            }
            due += 2 * HOUR_MS;
        }
        if len >= 4 * HOUR_MS && self.rng.chance(0.12) {
            let reason = 2 + self.rng.below(2) as u8;
            let pause_len = if self.rng.chance(0.5) { 30 } else { 60 } * MINUTE_MS;
            let at = start + HOUR_MS + self.rng.below((len - 3 * HOUR_MS) as usize) as i64;
            if plan
                .iter()
                .all(|&(t, _, l)| at + pause_len + 30 * MINUTE_MS <= t || t + l + 30 * MINUTE_MS <= at)
            {
                plan.push((at, reason, pause_len));
            }
        }
        plan.sort_unstable();
        let mut under_way = None;
        for (at, reason, len_ms) in plan {
            if at < self.now {
                if at + len_ms > self.now && under_way.is_none() {
                    under_way = Some((reason, at + len_ms - self.now));
                }
            } else {
                self.at(
                    at,
                    Action::PauseDue {
                        agent,
                        epoch,
                        reason,
                        len_ms,
                    },
                );
            }
        }
        under_way
    }

    /// Uniform in ±`minutes`.
    fn jitter_ms(&mut self, minutes: i64) -> i64 {
        self.rng.below((2 * minutes * MINUTE_MS) as usize) as i64 - minutes * MINUTE_MS
    }
}
