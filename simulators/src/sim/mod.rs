//! A deterministic discrete-event simulation of a contact center, producing the same events a
//! PBX connector would, so that the live floor, the KPIs and the demo can be exercised at any
//! scale without a telephone system.
//!
//! The model is deliberately the textbook one, because that is what makes its output checkable:
//! callers arrive as a non-homogeneous Poisson process per queue (thinning against a time-of-day
//! curve), wait in FIFO order, and hang up when their patience runs out; agents serve the queues
//! they are skilled for, picking the caller who has waited longest, and callers go to the agent
//! who has been idle longest. With one queue, no abandons and exponential handle times this is
//! an M/M/c queue, and the tests hold the simulator to Erlang C. Everything else (shifts, breaks,
//! lunch, ring time, wrap-up, outbound calls) only takes agents away from that core in time.
//!
//! Two things are there for realism rather than theory. The built-in scenario sizes each
//! queue's traffic to its staff the way workforce planning would (Erlang C per queue, capped at
//! a target occupancy), so a floor of any size looks busy but sane. And since pools of hundreds
//! of agents at 85 % occupancy practically never queue, a slowly drifting random factor on each
//! queue's volume (forecast error, [`SimParams::volume_noise`]) gives them the busy spells real
//! queues have; set to 0, arrivals are plain Poisson again.
//!
//! Simulated time advances from a heap of timers ordered by (time, sequence number); the only
//! randomness is one seeded ChaCha stream consumed in that order, so the same scenario, params,
//! seed and start time give a byte-identical event stream however `advance` is chunked.
//! Timestamps are whole milliseconds.

mod engine;
mod random;
mod scenario;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use monti_domain::events::AgentState;

pub use engine::Simulation;

/// The longest duration any distribution yields, seconds (events refuse longer ones).
pub const MAX_DURATION_S: f64 = 86_400.0;

/// What [`Scenario::generate`] builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScenarioConfig {
    /// Number of agents (0 gives a floor without agents).
    pub agents: usize,
    /// Seed for names, skills, locations and shifts.
    pub seed: u64,
    /// Occupancy the arrival rates are sized for, among the agents taking calls (not paused),
    /// in the busy hour that is least well staffed for its traffic; other hours run a few points
    /// lower. Queues too small to reach it while meeting their service-level target get less.
    pub peak_occupancy: f64,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        Self {
            agents: 2000,
            seed: 1,
            peak_occupancy: 0.95,
        }
    }
}

/// A contact center: who works where, on which queues, and how much each queue is called.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub teams: Vec<String>,
    pub locations: Vec<LocationSpec>,
    pub queues: Vec<QueueSpec>,
    pub agents: Vec<AgentSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationSpec {
    pub name: String,
    /// IANA time zone; `None` for people working from anywhere.
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSpec {
    /// Unique; events refer to the queue by it.
    pub name: String,
    /// Index into [`Scenario::teams`] of the team that owns the queue.
    pub team: usize,
    pub sl_threshold_s: u32,
    pub sl_target_pct: u32,
    /// Wrap-up after every call an agent takes from this queue, seconds.
    pub wrap_up_s: f64,
    /// Arrival rate when the time-of-day curve is 1.0 (before [`SimParams::load`]).
    pub calls_per_hour: f64,
    /// Talk plus hold time, seconds.
    pub handle: Dist,
    /// How long a caller waits before hanging up; `None`: forever.
    pub patience: Option<Dist>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    pub name: String,
    /// Unique; events refer to the agent by it.
    pub extension: String,
    /// Index into [`Scenario::teams`].
    pub team: usize,
    /// Index into [`Scenario::locations`].
    pub location: usize,
    /// Indexes into [`Scenario::queues`] of the queues the agent takes calls from.
    pub queues: Vec<usize>,
    /// Shift start, seconds after midnight on the simulation's clock ([`SimParams::day_offset_s`]).
    pub shift_start_s: u32,
    pub shift_len_s: u32,
}

/// A distribution of durations in seconds. Samples are clamped to 0..=[`MAX_DURATION_S`];
/// non-positive or non-finite parameters give 0 (or the mean, for a log-normal without spread).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Dist {
    Fixed(f64),
    Exponential { mean: f64 },
    LogNormal { mean: f64, sd: f64 },
}

impl Dist {
    /// The mean the distribution is configured with (before clamping).
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Fixed(v) => v,
            Dist::Exponential { mean } | Dist::LogNormal { mean, .. } => mean,
        }
    }
}

/// How the arrival rate varies over the day, as a factor on [`QueueSpec::calls_per_hour`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Curve {
    /// The same rate around the clock.
    Flat,
    /// A quiet night and peaks mid-morning and mid-afternoon ([`DEFAULT_CURVE`]).
    #[default]
    Default,
    /// Factors for the hours 0–23 (repeated when fewer are given, flat when none); negative
    /// or non-finite ones count as 0. Interpolated linearly between the middles of the hours.
    Hourly(Vec<f64>),
}

/// The default curve's factor for each hour of the day.
pub const DEFAULT_CURVE: [f64; 24] = [
    0.06, 0.05, 0.04, 0.04, 0.05, 0.08, 0.18, 0.40, 0.70, 0.90, 1.00, 0.95, //
    0.80, 0.82, 0.92, 1.00, 0.90, 0.72, 0.52, 0.36, 0.26, 0.18, 0.12, 0.08,
];

impl Curve {
    /// The 24 hourly factors, sanitised.
    pub fn hourly(&self) -> [f64; 24] {
        match self {
            Curve::Flat => [1.0; 24],
            Curve::Default => DEFAULT_CURVE,
            Curve::Hourly(factors) if factors.is_empty() => [1.0; 24],
            Curve::Hourly(factors) => std::array::from_fn(|h| {
                let f = factors[h % factors.len()];
                if f.is_finite() && f > 0.0 { f } else { 0.0 }
            }),
        }
    }

    /// The factor at `seconds` after midnight.
    pub fn factor_at(&self, seconds: f64) -> f64 {
        interpolate(&self.hourly(), seconds)
    }
}

/// Linear interpolation between the middles of the hours, wrapping around midnight.
pub(crate) fn interpolate(hourly: &[f64; 24], seconds_of_day: f64) -> f64 {
    let hours = (seconds_of_day / 3600.0 - 0.5).rem_euclid(24.0);
    let below = hours.floor();
    let frac = hours - below;
    let h = (below as usize) % 24;
    hourly[h] * (1.0 - frac) + hourly[(h + 1) % 24] * frac
}

/// How a [`Simulation`] runs a [`Scenario`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimParams {
    pub seed: u64,
    /// Prefix of event and call ids, so that runs started at different times never collide
    /// (ids longer than 128 characters fail validation, so keep it short).
    pub run_id: String,
    /// Seconds after local midnight that the simulation's start corresponds to (the time-of-day
    /// curve and the shifts are evaluated on this clock); e.g. the demo uses 10:00 so the floor
    /// is busy whenever it is started.
    pub day_offset_s: u32,
    pub curve: Curve,
    /// Multiplier on all arrival rates.
    pub load: f64,
    /// Forecast error: the standard deviation (0–0.5) of a random factor with mean 1 on each
    /// queue's arrival rate that drifts every quarter of an hour, so that queues have busy and
    /// quiet spells as real ones do (large pools of agents otherwise almost never queue).
    /// 0 gives a pure (non-homogeneous) Poisson process.
    pub volume_noise: f64,
    /// Ringing before an agent answers, seconds. The caller is still waiting meanwhile (it
    /// counts in the wait) but no longer hangs up.
    pub ring_s: Dist,
    /// Outbound calls as a share (0–0.9) of all calls: they are placed at
    /// `fraction / (1 − fraction)` times each queue's arrival rate, by the agent of that queue
    /// idle longest, and skipped when nobody is idle (so the share is lower on a busy floor).
    /// They carry no queue and have the queue's wrap-up.
    pub direct_call_fraction: f64,
    /// `false` disables breaks, lunch and other pauses.
    pub breaks: bool,
    /// `false`: everyone logs in at the start and never logs out.
    pub shifts: bool,
    /// Spells when a queue gets more calls than forecast (a campaign, an outage elsewhere),
    /// every day at the same time: the floor falls behind, callers wait and hang up.
    pub surges: Vec<Surge>,
    /// Spells when a team's phones are down, every day at the same time.
    pub outages: Vec<Outage>,
}

/// A team whose phones go down from `from_s` to `to_s` (seconds after midnight on the
/// simulation's clock, every day; a spell may run past midnight): its agents finish the call
/// they are on and are `unavailable` until it is over. Unknown teams are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    pub team: String,
    pub from_s: u32,
    pub to_s: u32,
}

/// `factor` times a queue's calls from `from_s` to `to_s` (seconds after midnight on the
/// simulation's clock; a spell may run past midnight). Unknown queues are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Surge {
    pub queue: String,
    pub from_s: u32,
    pub to_s: u32,
    /// 1 to 5; anything else counts as 1 (no surge).
    pub factor: f64,
}

/// Largest surge factor honoured.
pub const MAX_SURGE: f64 = 5.0;

impl Surge {
    fn factor(&self) -> f64 {
        if self.factor.is_finite() && (1.0..=MAX_SURGE).contains(&self.factor) {
            self.factor
        } else {
            1.0
        }
    }

    /// Whether the spell covers `seconds` after midnight.
    fn covers(&self, seconds: f64) -> bool {
        let (from, to) = (f64::from(self.from_s % 86_400), f64::from(self.to_s % 86_400));
        if from <= to {
            (from..to).contains(&seconds)
        } else {
            seconds >= from || seconds < to
        }
    }

    /// The factor on `queue`'s calls at `seconds` after midnight, of all `surges`.
    pub(crate) fn at(surges: &[Surge], queue: &str, seconds: f64) -> f64 {
        surges
            .iter()
            .filter(|s| s.queue == queue && s.covers(seconds))
            .map(Surge::factor)
            .fold(1.0, f64::max)
    }

    /// The highest factor `queue` ever gets.
    pub(crate) fn peak(surges: &[Surge], queue: &str) -> f64 {
        surges
            .iter()
            .filter(|s| s.queue == queue)
            .map(Surge::factor)
            .fold(1.0, f64::max)
    }
}

impl Default for SimParams {
    fn default() -> Self {
        Self {
            seed: 1,
            run_id: "sim".into(),
            day_offset_s: 10 * 3600,
            curve: Curve::Default,
            load: 1.0,
            volume_noise: 0.15,
            ring_s: Dist::LogNormal { mean: 4.0, sd: 1.5 },
            direct_call_fraction: 0.05,
            breaks: true,
            shifts: true,
            surges: Vec::new(),
            outages: Vec::new(),
        }
    }
}

/// Counters since the start of a simulation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    pub queues: Vec<QueueStats>,
    /// Outbound calls placed, and those not placed because no skilled agent was idle.
    pub direct_calls: u64,
    pub direct_calls_skipped: u64,
    /// Agents in each state now, indexed by [`AgentState::index`].
    pub agents_in_state: [u32; 8],
    /// Agent-seconds spent in each state so far, indexed by [`AgentState::index`].
    pub agent_state_s: [f64; 8],
    /// Events emitted.
    pub events: u64,
}

impl SimStats {
    /// Share of working time (ringing, talking, wrap-up) in working plus available time.
    pub fn occupancy(&self) -> Option<f64> {
        let s = |state: AgentState| self.agent_state_s[state.index()];
        let busy =
            s(AgentState::Ringing) + s(AgentState::OnQueueCall) + s(AgentState::OnDirectCall) + s(AgentState::WrapUp);
        let staffed = busy + s(AgentState::Available);
        (staffed > 0.0).then(|| busy / staffed)
    }

    /// All queues' counters summed (the name is empty).
    pub fn total(&self) -> QueueStats {
        let mut total = QueueStats::default();
        for q in &self.queues {
            total.offered += q.offered;
            total.answered += q.answered;
            total.answered_within_sl += q.answered_within_sl;
            total.abandoned += q.abandoned;
            total.waiting += q.waiting;
            total.answer_wait_s += q.answer_wait_s;
            total.handled += q.handled;
            total.handle_s += q.handle_s;
            total.wrap_s += q.wrap_s;
        }
        total
    }
}

/// One queue's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    pub name: String,
    /// Callers who joined.
    pub offered: u64,
    pub answered: u64,
    /// Answered within the queue's service-level threshold.
    pub answered_within_sl: u64,
    pub abandoned: u64,
    /// Callers waiting now.
    pub waiting: u64,
    /// Σ wait of answered callers (join to answer), seconds.
    pub answer_wait_s: f64,
    /// Calls whose talk ended.
    pub handled: u64,
    /// Σ talk + hold of handled calls, seconds.
    pub handle_s: f64,
    /// Σ wrap-up of handled calls, seconds.
    pub wrap_s: f64,
}

impl QueueStats {
    /// Answered within the threshold / answered.
    pub fn service_level(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.answered_within_sl as f64 / self.answered as f64)
    }

    /// Average speed of answer, seconds.
    pub fn asa_s(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.answer_wait_s / self.answered as f64)
    }

    /// Average talk + hold, seconds (without wrap-up).
    pub fn average_handle_s(&self) -> Option<f64> {
        (self.handled > 0).then(|| self.handle_s / self.handled as f64)
    }

    /// Abandoned / (answered + abandoned).
    pub fn abandon_rate(&self) -> Option<f64> {
        let finished = self.answered + self.abandoned;
        (finished > 0).then(|| self.abandoned as f64 / finished as f64)
    }
}
