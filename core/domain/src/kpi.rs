//! Contact-center KPIs as pure functions over counters (the definitions users read are in
//! `docs/live.md`, "Queue KPIs"). Counters are updated once per finished call, so applying an
//! event is O(1) and any window can keep its own counters. Where the industry disagrees, the
//! variant is a per-queue setting, and every figure is `None` when its denominator is zero
//! (shown as "–", never as 0 % or 100 %).

use serde::{Deserialize, Serialize};

/// How a queue call ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CallOutcome {
    /// Answered by an agent after `wait_s` in queue; handling times in seconds.
    Answered {
        wait_s: f64,
        talk_s: f64,
        hold_s: f64,
        wrap_s: f64,
    },
    /// The caller hung up while waiting.
    Abandoned { wait_s: f64 },
    /// The queue's timeout sent the caller elsewhere.
    Timeout { wait_s: f64 },
    /// The queue was full; the caller never waited.
    Full,
    /// Nobody was logged in; the caller never waited.
    JoinEmpty,
}

/// The service-level definition a queue uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceLevelVariant {
    /// Answered within T / (answered + abandoned). Monti's default.
    #[default]
    AnsweredAndAbandoned,
    /// Answered within T / answered (Asterisk app_queue, Wazo).
    AnsweredOnly,
    /// (Answered within T + abandoned within T) / (answered + abandoned) (app_queue's SL2).
    AbandonsWithinThresholdMet,
    /// Answered within T / offered (Amazon Connect).
    Offered,
    /// Answered within T / (answered + abandoned − short abandons) (Genesys' switch).
    ExcludeShortAbandons,
}

/// Per-queue KPI settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KpiSettings {
    /// The service-level threshold T in seconds (default 20).
    pub threshold_s: f64,
    /// Abandons shorter than this are "short" (0 = none are).
    pub short_abandon_s: f64,
    pub service_level: ServiceLevelVariant,
    /// Whether short abandons count in the abandon rate.
    pub abandon_rate_counts_short: bool,
}

impl Default for KpiSettings {
    fn default() -> Self {
        Self {
            threshold_s: 20.0,
            short_abandon_s: 0.0,
            service_level: ServiceLevelVariant::default(),
            abandon_rate_counts_short: true,
        }
    }
}

/// Counts and sums for one queue over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueCounters {
    pub offered: u64,
    pub answered: u64,
    pub answered_within: u64,
    pub abandoned: u64,
    pub abandoned_short: u64,
    pub abandoned_within: u64,
    pub timeouts: u64,
    pub full: u64,
    pub join_empty: u64,
    /// Σ wait of answered calls, seconds.
    pub answered_wait_s: f64,
    /// Calls whose handling (talk, hold, wrap-up) has ended.
    pub handled: u64,
    /// Σ (talk + hold + wrap-up) of handled calls, seconds.
    pub handle_s: f64,
}

impl QueueCounters {
    /// Adds another window's counters (summing buckets).
    pub fn add(&mut self, other: &QueueCounters) {
        self.offered += other.offered;
        self.answered += other.answered;
        self.answered_within += other.answered_within;
        self.abandoned += other.abandoned;
        self.abandoned_short += other.abandoned_short;
        self.abandoned_within += other.abandoned_within;
        self.timeouts += other.timeouts;
        self.full += other.full;
        self.join_empty += other.join_empty;
        self.answered_wait_s += other.answered_wait_s;
        self.handled += other.handled;
        self.handle_s += other.handle_s;
    }

    /// Adds an answered call whose handling has not ended yet (its handle time comes later,
    /// with [`record_handling`](Self::record_handling)).
    pub fn record_answer(&mut self, wait_s: f64, settings: &KpiSettings) {
        self.offered += 1;
        self.answered += 1;
        self.answered_wait_s += wait_s.max(0.0);
        if wait_s <= settings.threshold_s {
            self.answered_within += 1;
        }
    }

    /// Adds the handling time of a call whose handling ended.
    pub fn record_handling(&mut self, handle_s: f64) {
        self.handled += 1;
        self.handle_s += handle_s.max(0.0);
    }

    /// Adds one finished call.
    pub fn record(&mut self, outcome: CallOutcome, settings: &KpiSettings) {
        self.offered += 1;
        match outcome {
            CallOutcome::Answered {
                wait_s,
                talk_s,
                hold_s,
                wrap_s,
            } => {
                self.answered += 1;
                self.answered_wait_s += wait_s.max(0.0);
                self.handled += 1;
                self.handle_s += (talk_s + hold_s + wrap_s).max(0.0);
                if wait_s <= settings.threshold_s {
                    self.answered_within += 1;
                }
            }
            CallOutcome::Abandoned { wait_s } => {
                self.abandoned += 1;
                if wait_s < settings.short_abandon_s {
                    self.abandoned_short += 1;
                }
                if wait_s <= settings.threshold_s {
                    self.abandoned_within += 1;
                }
            }
            CallOutcome::Timeout { .. } => self.timeouts += 1,
            CallOutcome::Full => self.full += 1,
            CallOutcome::JoinEmpty => self.join_empty += 1,
        }
    }

    /// Undoes [`record`](Self::record) (a call leaving a rolling window).
    pub fn remove(&mut self, outcome: CallOutcome, settings: &KpiSettings) {
        let mut single = QueueCounters::default();
        single.record(outcome, settings);
        self.offered -= single.offered.min(self.offered);
        self.answered -= single.answered.min(self.answered);
        self.answered_within -= single.answered_within.min(self.answered_within);
        self.abandoned -= single.abandoned.min(self.abandoned);
        self.abandoned_short -= single.abandoned_short.min(self.abandoned_short);
        self.abandoned_within -= single.abandoned_within.min(self.abandoned_within);
        self.timeouts -= single.timeouts.min(self.timeouts);
        self.full -= single.full.min(self.full);
        self.join_empty -= single.join_empty.min(self.join_empty);
        self.answered_wait_s = (self.answered_wait_s - single.answered_wait_s).max(0.0);
        self.handled -= single.handled.min(self.handled);
        self.handle_s = (self.handle_s - single.handle_s).max(0.0);
    }
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}

/// Service level as a fraction (0.8 = 80 %).
pub fn service_level(c: &QueueCounters, variant: ServiceLevelVariant) -> Option<f64> {
    let within = c.answered_within as f64;
    let answered = c.answered as f64;
    let abandoned = c.abandoned as f64;
    match variant {
        ServiceLevelVariant::AnsweredAndAbandoned => ratio(within, answered + abandoned),
        ServiceLevelVariant::AnsweredOnly => ratio(within, answered),
        ServiceLevelVariant::AbandonsWithinThresholdMet => {
            ratio(within + c.abandoned_within as f64, answered + abandoned)
        }
        ServiceLevelVariant::Offered => ratio(within, c.offered as f64),
        ServiceLevelVariant::ExcludeShortAbandons => ratio(within, answered + abandoned - c.abandoned_short as f64),
    }
}

/// Average speed of answer, seconds.
pub fn asa(c: &QueueCounters) -> Option<f64> {
    ratio(c.answered_wait_s, c.answered as f64)
}

/// Average handle time (talk + hold + wrap-up) of the calls whose handling ended, seconds.
pub fn aht(c: &QueueCounters) -> Option<f64> {
    ratio(c.handle_s, c.handled as f64)
}

/// Abandoned / offered, optionally without short abandons (in both).
pub fn abandon_rate(c: &QueueCounters, counts_short: bool) -> Option<f64> {
    if counts_short {
        ratio(c.abandoned as f64, c.offered as f64)
    } else {
        let short = c.abandoned_short as f64;
        ratio(c.abandoned as f64 - short, c.offered as f64 - short)
    }
}

/// Occupancy: time handling contacts / (handling + available and idle).
pub fn occupancy(handling_s: f64, available_idle_s: f64) -> Option<f64> {
    ratio(handling_s, handling_s + available_idle_s)
}

/// Erlang C: the probability that a caller waits, with `agents` servers and `traffic` Erlangs
/// (arrival rate × average handle time). `None` when the queue is unstable (traffic ≥ agents).
pub fn erlang_c(agents: u32, traffic: f64) -> Option<f64> {
    let n = f64::from(agents);
    if agents == 0 || traffic <= 0.0 || traffic >= n {
        return None;
    }
    // Erlang B by its recurrence (stays finite for thousands of agents), then C from B.
    let mut b = 1.0;
    for k in 1..=agents {
        b = traffic * b / (f64::from(k) + traffic * b);
    }
    Some(n * b / (n - traffic * (1.0 - b)))
}

/// The service level Erlang C predicts for threshold `t_s` and average handle time `aht_s`.
pub fn erlang_c_service_level(agents: u32, traffic: f64, aht_s: f64, t_s: f64) -> Option<f64> {
    let c = erlang_c(agents, traffic)?;
    Some(1.0 - c * (-(f64::from(agents) - traffic) * t_s / aht_s).exp())
}

/// The average speed of answer Erlang C predicts, seconds.
pub fn erlang_c_asa(agents: u32, traffic: f64, aht_s: f64) -> Option<f64> {
    let c = erlang_c(agents, traffic)?;
    Some(c * aht_s / (f64::from(agents) - traffic))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(wait_s: f64, talk_s: f64) -> CallOutcome {
        CallOutcome::Answered {
            wait_s,
            talk_s,
            hold_s: 0.0,
            wrap_s: 0.0,
        }
    }

    /// Ten calls, worked out by hand:
    /// answered after 5, 10, 15, 20, 25, 40 s (4 within 20 s; waits sum to 115 s),
    /// abandoned after 3 (short), 12, 30 s (2 within 20 s), and one queue-full.
    fn sample(settings: &KpiSettings) -> QueueCounters {
        let mut c = QueueCounters::default();
        for w in [5.0, 10.0, 15.0, 20.0, 25.0, 40.0] {
            c.record(
                CallOutcome::Answered {
                    wait_s: w,
                    talk_s: 100.0,
                    hold_s: 10.0,
                    wrap_s: 30.0,
                },
                settings,
            );
        }
        for w in [3.0, 12.0, 30.0] {
            c.record(CallOutcome::Abandoned { wait_s: w }, settings);
        }
        c.record(CallOutcome::Full, settings);
        c
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn service_level_variants_by_hand() {
        let settings = KpiSettings {
            short_abandon_s: 5.0,
            ..KpiSettings::default()
        };
        let c = sample(&settings);
        assert_eq!((c.offered, c.answered, c.answered_within, c.abandoned), (10, 6, 4, 3));
        assert_eq!((c.abandoned_short, c.abandoned_within, c.full), (1, 2, 1));
        // 4 / (6 + 3)
        assert!(close(
            service_level(&c, ServiceLevelVariant::AnsweredAndAbandoned),
            4.0 / 9.0
        ));
        // 4 / 6
        assert!(close(service_level(&c, ServiceLevelVariant::AnsweredOnly), 4.0 / 6.0));
        // (4 + 2) / 9
        assert!(close(
            service_level(&c, ServiceLevelVariant::AbandonsWithinThresholdMet),
            6.0 / 9.0
        ));
        // 4 / 10
        assert!(close(service_level(&c, ServiceLevelVariant::Offered), 0.4));
        // 4 / (9 - 1)
        assert!(close(service_level(&c, ServiceLevelVariant::ExcludeShortAbandons), 0.5));
    }

    #[test]
    fn asa_aht_abandon_rate_occupancy_by_hand() {
        let settings = KpiSettings {
            short_abandon_s: 5.0,
            ..KpiSettings::default()
        };
        let c = sample(&settings);
        assert!(close(asa(&c), 115.0 / 6.0));
        assert!(close(aht(&c), 140.0));
        assert!(close(abandon_rate(&c, true), 0.3));
        // (3 - 1) / (10 - 1)
        assert!(close(abandon_rate(&c, false), 2.0 / 9.0));
        assert!(close(occupancy(45.0, 15.0), 0.75));
    }

    #[test]
    fn empty_windows_have_no_figures() {
        let c = QueueCounters::default();
        for variant in [
            ServiceLevelVariant::AnsweredAndAbandoned,
            ServiceLevelVariant::AnsweredOnly,
            ServiceLevelVariant::AbandonsWithinThresholdMet,
            ServiceLevelVariant::Offered,
            ServiceLevelVariant::ExcludeShortAbandons,
        ] {
            assert_eq!(service_level(&c, variant), None);
        }
        assert_eq!(asa(&c), None);
        assert_eq!(aht(&c), None);
        assert_eq!(abandon_rate(&c, true), None);
        assert_eq!(occupancy(0.0, 0.0), None);
    }

    #[test]
    fn threshold_is_inclusive_and_configurable() {
        let mut c = QueueCounters::default();
        let t10 = KpiSettings {
            threshold_s: 10.0,
            ..KpiSettings::default()
        };
        c.record(answered(10.0, 60.0), &t10);
        c.record(answered(10.5, 60.0), &t10);
        assert_eq!(c.answered_within, 1);
    }

    #[test]
    fn removing_a_call_undoes_recording_it() {
        let settings = KpiSettings {
            short_abandon_s: 5.0,
            ..KpiSettings::default()
        };
        let mut c = sample(&settings);
        let before = c;
        let extra = CallOutcome::Abandoned { wait_s: 2.0 };
        c.record(extra, &settings);
        c.remove(extra, &settings);
        assert_eq!(c, before);
    }

    #[test]
    fn erlang_c_matches_worked_examples() {
        // Values computed independently (closed form, Python) for AHT 180 s and T = 20 s.
        let cases = [
            (12, 10.0, 0.449388, 0.640158, 40.4449),
            (2, 1.0, 0.333333, 0.701720, 60.0),
            (30, 25.0, 0.249893, 0.856623, 8.9962),
        ];
        for (n, a, c, sl, asa_s) in cases {
            assert!((erlang_c(n, a).unwrap() - c).abs() < 1e-6, "C({n}, {a})");
            assert!((erlang_c_service_level(n, a, 180.0, 20.0).unwrap() - sl).abs() < 1e-6);
            assert!((erlang_c_asa(n, a, 180.0).unwrap() - asa_s).abs() < 1e-4);
        }
        assert_eq!(erlang_c(10, 10.0), None, "unstable queue");
        assert_eq!(erlang_c(0, 1.0), None);
        assert!(erlang_c(2000, 1900.0).unwrap().is_finite(), "large floors stay finite");
    }
}
