//! One queue's live figures: callers waiting (with the longest wait), and KPI counters for
//! "today" in the tenant's time zone and for rolling windows: minute buckets for the last hour,
//! quarter-hour buckets for the last day (a queue costs 16 KB instead of 150 KB for a day of
//! minutes, which matters with thousands of queues in one instance).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;

use crate::domain::events::LeaveReason;
use crate::kpi::{CallOutcome, KpiSettings, QueueCounters};

/// Minute buckets: windows up to an hour are exact to the minute.
const MINUTES: usize = 60;
/// Quarter-hour buckets: longer windows (up to 24 h) are counted in whole quarter hours.
const QUARTERS: usize = 24 * 4;
const QUARTER_MS: i64 = 15 * 60_000;

#[derive(Debug, Clone)]
pub struct QueueLive {
    pub id: Arc<str>,
    pub settings: KpiSettings,
    tz: Tz,
    /// call → when it joined (ms).
    waiting: HashMap<Arc<str>, i64>,
    /// (joined ms, call), oldest first: the longest wait without a scan.
    by_age: BTreeSet<(i64, Arc<str>)>,
    today: QueueCounters,
    today_date: Option<NaiveDate>,
    /// (minute number, counters), a ring.
    minutes: Vec<(i64, QueueCounters)>,
    /// (quarter-hour number, counters), a ring.
    quarters: Vec<(i64, QueueCounters)>,
}

impl QueueLive {
    pub fn new(id: &str, settings: KpiSettings, tz: Tz) -> Self {
        Self {
            id: Arc::from(id),
            settings,
            tz,
            waiting: HashMap::new(),
            by_age: BTreeSet::new(),
            today: QueueCounters::default(),
            today_date: None,
            minutes: vec![(i64::MIN, QueueCounters::default()); MINUTES],
            quarters: vec![(i64::MIN, QueueCounters::default()); QUARTERS],
        }
    }

    fn date_of(&self, at_ms: i64) -> Option<NaiveDate> {
        self.tz.timestamp_millis_opt(at_ms).single().map(|t| t.date_naive())
    }

    /// The counters that `at_ms` belongs to: today's, its minute's and its quarter hour's.
    fn counters_at(&mut self, at_ms: i64) -> [&mut QueueCounters; 3] {
        let date = self.date_of(at_ms);
        if date > self.today_date {
            // A new day in the tenant's time zone: today starts from zero.
            self.today = QueueCounters::default();
            self.today_date = date;
        }
        let minute = at_ms.div_euclid(60_000);
        let slot = minute.rem_euclid(MINUTES as i64) as usize;
        if self.minutes[slot].0 != minute {
            self.minutes[slot] = (minute, QueueCounters::default());
        }
        let quarter = at_ms.div_euclid(QUARTER_MS);
        let qslot = quarter.rem_euclid(QUARTERS as i64) as usize;
        if self.quarters[qslot].0 != quarter {
            self.quarters[qslot] = (quarter, QueueCounters::default());
        }
        [&mut self.today, &mut self.minutes[slot].1, &mut self.quarters[qslot].1]
    }

    /// Applies `update` to today's counters (unless `at_ms` is from an earlier day) and to the
    /// buckets of `at_ms`.
    fn update(&mut self, at_ms: i64, update: impl Fn(&mut QueueCounters)) {
        let is_today = self.date_of(at_ms) >= self.today_date;
        let [today, minute, quarter] = self.counters_at(at_ms);
        if is_today {
            update(today);
        }
        update(minute);
        update(quarter);
    }

    pub fn join(&mut self, call: &str, at_ms: i64) {
        let call: Arc<str> = Arc::from(call);
        if let Some(previous) = self.waiting.insert(call.clone(), at_ms) {
            self.by_age.remove(&(previous, call.clone()));
        }
        self.by_age.insert((at_ms, call));
    }

    fn unwait(&mut self, call: &str) {
        if let Some((key, joined)) = self.waiting.remove_entry(call) {
            self.by_age.remove(&(joined, key));
        }
    }

    /// A caller was answered; the handling time follows with [`handled`](Self::handled).
    pub fn answer(&mut self, call: &str, at_ms: i64, wait_s: f64) {
        self.unwait(call);
        let settings = self.settings;
        self.update(at_ms, |c| c.record_answer(wait_s, &settings));
    }

    pub fn leave(&mut self, call: &str, at_ms: i64, reason: LeaveReason, wait_s: f64) {
        self.unwait(call);
        let outcome = match reason {
            LeaveReason::Abandon => CallOutcome::Abandoned { wait_s },
            LeaveReason::Timeout => CallOutcome::Timeout { wait_s },
            LeaveReason::Full => CallOutcome::Full,
            LeaveReason::JoinEmpty => CallOutcome::JoinEmpty,
        };
        let settings = self.settings;
        self.update(at_ms, |c| c.record(outcome, &settings));
    }

    /// A handled call ended (talk + hold + wrap-up seconds); counted where the handling ends.
    pub fn handled(&mut self, at_ms: i64, handle_s: f64) {
        self.update(at_ms, |c| c.record_handling(handle_s));
    }

    /// The callers waiting now, as (call, when it joined in Unix ms), oldest first.
    pub fn waiting_calls(&self) -> Vec<(Arc<str>, i64)> {
        self.by_age
            .iter()
            .map(|(joined, call)| (call.clone(), *joined))
            .collect()
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn longest_wait_s(&self, now_ms: i64) -> Option<f64> {
        self.by_age
            .first()
            .map(|(joined, _)| (now_ms - joined).max(0) as f64 / 1000.0)
    }

    /// When the longest-waiting caller joined (Unix ms).
    pub fn oldest_join_ms(&self) -> Option<i64> {
        self.by_age.first().map(|(joined, _)| *joined)
    }

    pub fn today(&self) -> &QueueCounters {
        &self.today
    }

    /// Callers offered in each half hour of today (the tenant's day) up to `now_ms`, the
    /// current one included.
    pub fn offered_by_half_hour(&self, now_ms: i64) -> Vec<u64> {
        use chrono::TimeZone as _;
        let Some(today) = self.date_of(now_ms) else {
            return Vec::new();
        };
        let midnight = today
            .and_hms_opt(0, 0, 0)
            .and_then(|m| self.tz.from_local_datetime(&m).earliest())
            .map_or(now_ms, |m| m.timestamp_millis());
        let first = midnight.div_euclid(QUARTER_MS);
        let last = now_ms.div_euclid(QUARTER_MS);
        let offered = |quarter: i64| -> u64 {
            self.quarters
                .iter()
                .find(|(q, _)| *q == quarter)
                .map_or(0, |(_, c)| c.offered)
        };
        (first..=last)
            .step_by(2)
            .map(|quarter| offered(quarter) + if quarter < last { offered(quarter + 1) } else { 0 })
            .collect()
    }

    /// Counters over the last `minutes` minutes up to `now_ms`: exact to the minute up to an
    /// hour; longer windows (at most 24 h) in whole quarter hours, the current one included.
    pub fn window(&self, minutes: u32, now_ms: i64) -> QueueCounters {
        let mut sum = QueueCounters::default();
        if minutes as usize <= MINUTES {
            let now_minute = now_ms.div_euclid(60_000);
            let first = now_minute - i64::from(minutes) + 1;
            for (minute, c) in &self.minutes {
                if *minute >= first && *minute <= now_minute {
                    sum.add(c);
                }
            }
        } else {
            let now_quarter = now_ms.div_euclid(QUARTER_MS);
            let quarters = i64::from(minutes.div_ceil(15)).min(QUARTERS as i64);
            let first = now_quarter - quarters + 1;
            for (quarter, c) in &self.quarters {
                if *quarter >= first && *quarter <= now_quarter {
                    sum.add(c);
                }
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn rolling_windows_sum_the_right_minutes() {
        let mut q = QueueLive::new("q", KpiSettings::default(), chrono_tz::UTC);
        q.leave("a", T0, LeaveReason::Abandon, 5.0);
        q.leave("b", T0 + 20 * 60_000, LeaveReason::Abandon, 5.0);
        q.answer("c", T0 + 50 * 60_000, 3.0);
        let now = T0 + 50 * 60_000;
        assert_eq!(q.window(15, now).offered, 1);
        assert_eq!(q.window(31, now).offered, 2);
        assert_eq!(q.window(60, now).offered, 3);
        assert_eq!(q.window(60, now).answered, 1);
        // A day later the buckets are reused, not summed twice.
        let later = T0 + 24 * 3_600_000 + 50 * 60_000;
        q.answer("d", later, 1.0);
        assert_eq!(q.window(60, later).offered, 1);
    }

    #[test]
    fn long_windows_count_whole_quarter_hours() {
        let mut q = QueueLive::new("q", KpiSettings::default(), chrono_tz::UTC);
        let hour = 3_600_000;
        q.leave("a", T0 + 2 * hour, LeaveReason::Abandon, 5.0);
        q.leave("b", T0 + 20 * hour, LeaveReason::Abandon, 5.0);
        q.answer("c", T0 + 23 * hour, 3.0);
        assert_eq!(q.window(24 * 60, T0 + 23 * hour).offered, 3);
        // Two hours back from 03:10 is 01:10, rounded out to the quarter: 01:15 to 03:10.
        assert_eq!(q.window(120, T0 + 3 * hour + 10 * 60_000).offered, 1);
        assert_eq!(q.window(120, T0 + 4 * hour + 20 * 60_000).offered, 0);
        // A day later the quarter buckets are reused.
        assert_eq!(q.window(24 * 60, T0 + 26 * hour + 30 * 60_000).offered, 2);
    }

    #[test]
    fn today_resets_at_midnight_in_the_tenants_time_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let mut q = QueueLive::new("q", KpiSettings::default(), berlin);
        // 22:30 UTC on a summer day is 00:30 in Berlin: already the next day there.
        let before = chrono::Utc
            .with_ymd_and_hms(2026, 7, 1, 21, 30, 0)
            .unwrap()
            .timestamp_millis();
        let after = chrono::Utc
            .with_ymd_and_hms(2026, 7, 1, 22, 30, 0)
            .unwrap()
            .timestamp_millis();
        q.leave("a", before, LeaveReason::Abandon, 5.0);
        assert_eq!(q.today().offered, 1);
        q.leave("b", after, LeaveReason::Abandon, 5.0);
        assert_eq!(q.today().offered, 1, "a new Berlin day started at 22:00 UTC");
    }

    #[test]
    fn longest_wait_follows_the_oldest_caller() {
        let mut q = QueueLive::new("q", KpiSettings::default(), chrono_tz::UTC);
        assert_eq!(q.longest_wait_s(T0), None);
        q.join("a", T0);
        q.join("b", T0 + 5_000);
        assert_eq!(q.longest_wait_s(T0 + 10_000), Some(10.0));
        q.answer("a", T0 + 10_000, 10.0);
        assert_eq!(q.longest_wait_s(T0 + 10_000), Some(5.0));
        q.leave("b", T0 + 12_000, LeaveReason::Abandon, 7.0);
        assert_eq!(q.waiting(), 0);
    }
}
