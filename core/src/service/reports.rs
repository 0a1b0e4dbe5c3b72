//! Reports: how the queues did over a range, bucketed by 15 or 30 minutes, hours, days, weeks
//! or months in the tenant's time zone (or one asked for), weeks starting on the tenant's day.
//! The figures are the live board's (`monti::kpi`): a call counts where its queue counted it —
//! answered or left — and its handling where it ended, so a report over today is the board's
//! today. Every point carries the query of the calls that make it (drill-down), for the API,
//! the page and the CSV export alike.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::Validation;
use crate::kpi::{self, KpiSettings, QueueCounters, ServiceLevelVariant};
use crate::service::history::{Directory, History, local_to_utc, time_range};
use crate::store::reports::{self, OutcomeCell, QUARTER_MS, WAIT_BINS};
use crate::store::{StoreError, TenantScope, tenants};

/// The longest range a report covers.
pub const MAX_REPORT_DAYS: i64 = 400;
/// The most points one series may have (a finer bucket over a long range is refused).
pub const MAX_POINTS: usize = 3_000;
/// The most points of all series of one report together.
pub const MAX_TOTAL_POINTS: usize = 20_000;

/// How a report divides its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    #[serde(rename = "15m")]
    Quarter,
    #[serde(rename = "30m")]
    HalfHour,
    #[serde(rename = "1h")]
    Hour,
    Day,
    Week,
    Month,
}

impl Bucket {
    pub const ALL: [(&'static str, Bucket); 6] = [
        ("15m", Bucket::Quarter),
        ("30m", Bucket::HalfHour),
        ("1h", Bucket::Hour),
        ("day", Bucket::Day),
        ("week", Bucket::Week),
        ("month", Bucket::Month),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, b)| *b == self).map_or("day", |(s, _)| s)
    }

    /// The bucket's length for buckets of fixed minutes (15 minutes to an hour).
    pub(crate) fn minutes(self) -> Option<i64> {
        match self {
            Bucket::Quarter => Some(15),
            Bucket::HalfHour => Some(30),
            Bucket::Hour => Some(60),
            Bucket::Day | Bucket::Week | Bucket::Month => None,
        }
    }
}

/// A report's parameters as a request gives them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportQuery {
    /// As the call history's `from` (default: today's start).
    pub from: Option<String>,
    /// As the call history's `to` (default: the end of today).
    pub to: Option<String>,
    /// An IANA time zone (default: the tenant's).
    pub tz: Option<String>,
    /// `15m`, `30m`, `1h`, `day`, `week`, `month` (default: `30m` up to two days, else `day`).
    pub bucket: Option<String>,
    /// A queue id; all queues when left out.
    pub queue: Option<String>,
}

impl ReportQuery {
    /// From a page's query string, parameters it does not know left out.
    pub fn from_pairs(pairs: &[(String, String)]) -> ReportQuery {
        known_pairs(pairs, &["from", "to", "tz", "bucket", "queue"])
    }

    /// The parameters as a query string (for links and exports).
    pub fn query_string(&self) -> String {
        query_string(&[
            ("from", &self.from),
            ("to", &self.to),
            ("tz", &self.tz),
            ("bucket", &self.bucket),
            ("queue", &self.queue),
        ])
    }
}

/// A report query from a page's query string: the `known` parameters, the others left out
/// (a page keeps working with a link that carries more).
pub(crate) fn known_pairs<T: serde::de::DeserializeOwned + Default>(pairs: &[(String, String)], known: &[&str]) -> T {
    let known: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| known.contains(&k.as_str())).collect();
    serde_urlencoded::to_string(known)
        .ok()
        .and_then(|q| serde_urlencoded::from_str(&q).ok())
        .unwrap_or_default()
}

/// The parameters that have a value, as a query string (for links and exports).
pub(crate) fn query_string(params: &[(&str, &Option<String>)]) -> String {
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// A queue's settings as the report applied them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueSettings {
    pub threshold_s: f64,
    #[schema(value_type = String)]
    pub service_level_variant: ServiceLevelVariant,
    pub short_abandon_s: f64,
    pub abandon_rate_counts_short: bool,
    /// Percent.
    pub target_pct: u32,
}

/// One bucket of a queue's series. Rates are fractions (0.8 = 80 %), `null` when nothing was
/// there to divide.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Point {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The start in the report's time zone, as a person reads it.
    pub label: String,
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub abandoned_short: u64,
    pub timeouts: u64,
    pub full: u64,
    pub join_empty: u64,
    pub service_level: Option<f64>,
    pub asa_s: Option<f64>,
    pub aht_s: Option<f64>,
    pub abandon_rate: Option<f64>,
    pub longest_wait_s: Option<f64>,
    /// Erlang C: the agents it would have taken, all the bucket long, to answer this volume at
    /// this AHT within the queue's threshold for its target share of callers. `null` without
    /// calls or handling time.
    pub agents_needed: Option<u32>,
    /// The `/api/v1/calls` (and `/calls`) query of the calls this point counted.
    pub calls: String,
}

/// How long callers waited: calls per bin, answered and abandoned.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WaitDistribution {
    /// Each bin's upper bound in seconds (exclusive); the last bin (`null`) holds longer waits.
    pub upper_s: Vec<Option<f64>>,
    pub answered: Vec<u64>,
    pub abandoned: Vec<u64>,
}

/// One queue over the range.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueSeries {
    pub id: String,
    pub name: String,
    pub settings: QueueSettings,
    pub points: Vec<Point>,
    /// The whole range as one point.
    pub total: Point,
    pub waits: WaitDistribution,
    /// Calls offered by weekday (Monday first) and hour of the day, in the report's time zone.
    pub heatmap: Vec<Vec<u64>>,
}

/// A queue report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub tz: String,
    pub bucket: String,
    pub week_start: String,
    pub queues: Vec<QueueSeries>,
}

/// The bucket boundaries from the bucket holding `from` up to `to` (the last one is `to`).
pub fn boundaries(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: Tz,
    bucket: Bucket,
    week_start: chrono::Weekday,
) -> Vec<DateTime<Utc>> {
    let local = from.with_timezone(&tz).naive_local();
    let midnight = |date: NaiveDate| date.and_hms_opt(0, 0, 0).and_then(|m| local_to_utc(m, tz));
    let mut out = Vec::new();
    match bucket.minutes() {
        Some(minutes) => {
            // Whole buckets of local time; stepping in absolute time keeps them whole, as
            // clock changes move by whole hours (or half hours, which 15 and 30 minutes divide).
            use chrono::Timelike as _;
            let minute_of_day = i64::from(local.time().hour() * 60 + local.time().minute());
            let start = local
                .date()
                .and_hms_opt(0, 0, 0)
                .map(|midnight| midnight + Duration::minutes(minute_of_day - minute_of_day % minutes))
                .and_then(|t| local_to_utc(t, tz))
                .unwrap_or(from);
            let mut at = start.min(from);
            while at < to {
                out.push(at);
                at += Duration::minutes(minutes);
            }
        }
        None => {
            let mut date = local.date();
            match bucket {
                Bucket::Week => {
                    let back = (7 + date.weekday().num_days_from_monday() - week_start.num_days_from_monday()) % 7;
                    date -= Duration::days(i64::from(back));
                }
                Bucket::Month => date = date.with_day(1).unwrap_or(date),
                _ => {}
            }
            while let Some(at) = midnight(date) {
                if at >= to {
                    break;
                }
                out.push(at);
                date = match bucket {
                    Bucket::Week => date + Duration::days(7),
                    Bucket::Month => date.checked_add_months(chrono::Months::new(1)).unwrap_or(date),
                    _ => date + Duration::days(1),
                };
            }
        }
    }
    if out.is_empty() {
        out.push(from);
    }
    out.push(to);
    out
}

/// The weekday a tenant's `week_start` names (Monday for anything else).
pub fn weekday(name: &str) -> chrono::Weekday {
    match name {
        "sunday" => chrono::Weekday::Sun,
        "saturday" => chrono::Weekday::Sat,
        _ => chrono::Weekday::Mon,
    }
}

/// A checked report query.
struct Resolved {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: Tz,
    bucket: Bucket,
    /// (id, name) of the queues reported.
    queues: Vec<(String, String)>,
}

/// Checks `query` as a report would (a saved report's parameters before they are kept).
pub(crate) fn check(query: &ReportQuery, dir: &Directory, now: DateTime<Utc>) -> Result<(), StoreError> {
    resolve(query, dir, now).map(drop)
}

fn resolve(query: &ReportQuery, dir: &Directory, now: DateTime<Utc>) -> Result<Resolved, StoreError> {
    let mut v = Validation::new();
    let (tz, from, to) = time_range(&mut v, &query.tz, &query.from, &query.to, dir.tz, now);
    if to <= from {
        v.add("to", "must be after from");
    } else if (to - from).num_days() > MAX_REPORT_DAYS {
        v.add("to", format!("a report covers at most {MAX_REPORT_DAYS} days"));
    }
    let bucket = match query.bucket.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        None if (to - from) <= Duration::days(2) => Bucket::HalfHour,
        None => Bucket::Day,
        Some(b) => Bucket::ALL
            .iter()
            .find(|(s, _)| *s == b)
            .map(|(_, b)| *b)
            .unwrap_or_else(|| {
                v.add("bucket", "must be one of 15m, 30m, 1h, day, week, month");
                Bucket::Day
            }),
    };
    if let Some(minutes) = bucket.minutes()
        && to > from
        && (to - from).num_minutes() / minutes > MAX_POINTS as i64
    {
        v.add(
            "bucket",
            format!("more than {MAX_POINTS} points; choose a larger bucket or a shorter range"),
        );
    }
    v.finish()?;
    // A queue the tenant does not have (another tenant's, say) is not found, like its page.
    let queues = match query.queue.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        None => dir.queues().iter().map(|q| (q.id.clone(), q.name.clone())).collect(),
        Some(q) => match dir.queue(q) {
            Some(named) => vec![(named.id.clone(), named.name.clone())],
            None => return Err(StoreError::NotFound { kind: "queue" }),
        },
    };
    if let Some(minutes) = bucket.minutes() {
        let points = ((to - from).num_minutes() / minutes).max(1) as usize;
        if points.saturating_mul(queues.len()) > MAX_TOTAL_POINTS {
            let mut v = Validation::new();
            v.add(
                "bucket",
                format!(
                    "{} queues × {points} points is more than {MAX_TOTAL_POINTS}; choose a queue, a larger bucket or a shorter range",
                    queues.len()
                ),
            );
            v.finish()?;
        }
    }
    Ok(Resolved {
        from,
        to,
        tz,
        bucket,
        queues,
    })
}

/// Sums one quarter's cells into counters with the queue's settings, as the board does.
fn add_cell(c: &mut QueueCounters, cell: &OutcomeCell, longest: &mut Option<f64>) {
    match cell.outcome.as_str() {
        "answered" => {
            c.answered += cell.calls;
            c.answered_within += cell.within;
            c.answered_wait_s += cell.wait_s;
        }
        "abandoned" => {
            c.abandoned += cell.calls;
            c.abandoned_short += cell.short;
            c.abandoned_within += cell.within;
        }
        "timeout" => c.timeouts += cell.calls,
        "full" => c.full += cell.calls,
        "join_empty" => c.join_empty += cell.calls,
        _ => return,
    }
    c.offered += cell.calls;
    if cell.outcome != "full" && cell.outcome != "join_empty" {
        *longest = Some(longest.unwrap_or(0.0).max(cell.longest_wait_s));
    }
}

/// The fewest agents that Erlang C says answer `offered` calls of `aht_s` seconds arriving over
/// `seconds` within `threshold_s` for at least `target` (a fraction) of callers.
pub fn agents_needed(offered: u64, aht_s: f64, seconds: f64, threshold_s: f64, target: f64) -> Option<u32> {
    if offered == 0 || aht_s <= 0.0 || seconds <= 0.0 || !aht_s.is_finite() {
        return None;
    }
    let traffic = offered as f64 * aht_s / seconds;
    let first = traffic.floor() as u32 + 1;
    // Far more than any real floor; beyond it the answer is not worth computing.
    (first..first.saturating_add(10_000))
        .find(|&n| kpi::erlang_c_service_level(n, traffic, aht_s, threshold_s).is_some_and(|sl| sl >= target))
}

#[allow(clippy::too_many_arguments)]
fn point(
    c: &QueueCounters,
    longest: Option<f64>,
    settings: &KpiSettings,
    target_pct: u32,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    label: String,
    queue_id: &str,
    tz: Tz,
) -> Point {
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let calls = serde_urlencoded::to_string([
        ("queue", queue_id),
        ("from", &iso(start)),
        ("to", &iso(end)),
        ("tz", tz.name()),
        ("by", "counted"),
    ])
    .unwrap_or_default();
    Point {
        start,
        end,
        label,
        offered: c.offered,
        answered: c.answered,
        abandoned: c.abandoned,
        abandoned_short: c.abandoned_short,
        timeouts: c.timeouts,
        full: c.full,
        join_empty: c.join_empty,
        service_level: kpi::service_level(c, settings.service_level),
        asa_s: kpi::asa(c),
        aht_s: kpi::aht(c),
        abandon_rate: kpi::abandon_rate(c, settings.abandon_rate_counts_short),
        longest_wait_s: longest,
        agents_needed: kpi::aht(c).and_then(|aht| {
            let seconds = (end - start).num_seconds() as f64;
            agents_needed(
                c.offered,
                aht,
                seconds,
                settings.threshold_s,
                f64::from(target_pct) / 100.0,
            )
        }),
        calls,
    }
}

/// A bucket's start in `tz`, as a person reads it.
pub(crate) fn label(at: DateTime<Utc>, tz: Tz, bucket: Bucket) -> String {
    let local = at.with_timezone(&tz);
    match bucket {
        Bucket::Quarter | Bucket::HalfHour | Bucket::Hour => local.format("%Y-%m-%d %H:%M").to_string(),
        Bucket::Day | Bucket::Week => local.format("%Y-%m-%d").to_string(),
        Bucket::Month => local.format("%Y-%m").to_string(),
    }
}

impl History<'_> {
    /// The queue report `query` asks for.
    pub async fn queue_report(&self, scope: &TenantScope, query: &ReportQuery) -> Result<QueueReport, StoreError> {
        let dir = self.directory(scope).await?;
        let r = resolve(query, &dir, Utc::now())?;
        let tenant = tenants::current(self.store, scope).await?;
        let week_start = weekday(&tenant.week_start);
        let edges = boundaries(r.from, r.to, r.tz, r.bucket, week_start);
        let (from_ms, to_ms) = (edges[0].timestamp_millis(), r.to.timestamp_millis());
        let bucket_of = |quarter: i64| -> Option<usize> {
            let at = quarter * QUARTER_MS;
            let i = edges.partition_point(|e| e.timestamp_millis() <= at);
            (i >= 1 && i < edges.len()).then(|| i - 1)
        };
        let mut series = Vec::with_capacity(r.queues.len());
        for (id, name) in &r.queues {
            let (settings, target_pct) = dir.queue_settings(id).unwrap_or_default();
            let names = dir.queue_names(id).unwrap_or_else(|| vec![id.clone()]);
            let reports::QueueQuarters {
                outcomes: cells,
                handling,
            } = reports::queue_quarters(
                self.store,
                scope,
                &names,
                from_ms,
                to_ms,
                settings.threshold_s,
                settings.short_abandon_s,
            )
            .await?;
            let buckets = edges.len() - 1;
            let mut counters = vec![QueueCounters::default(); buckets];
            let mut longest = vec![None; buckets];
            let mut waits = WaitDistribution {
                upper_s: WAIT_BINS.iter().map(|b| Some(*b)).chain([None]).collect(),
                answered: vec![0; WAIT_BINS.len() + 1],
                abandoned: vec![0; WAIT_BINS.len() + 1],
            };
            let mut heatmap = vec![vec![0u64; 24]; 7];
            for cell in &cells {
                let Some(b) = bucket_of(cell.quarter) else { continue };
                if let Some(at) = DateTime::<Utc>::from_timestamp_millis(cell.quarter * QUARTER_MS) {
                    use chrono::Timelike as _;
                    let local = at.with_timezone(&r.tz);
                    heatmap[local.weekday().num_days_from_monday() as usize][local.hour() as usize] += cell.calls;
                }
                add_cell(&mut counters[b], cell, &mut longest[b]);
                let bin = cell.bin.min(WAIT_BINS.len());
                match cell.outcome.as_str() {
                    "answered" => waits.answered[bin] += cell.calls,
                    "abandoned" => waits.abandoned[bin] += cell.calls,
                    _ => {}
                }
            }
            for (quarter, calls, seconds) in handling {
                if let Some(b) = bucket_of(quarter) {
                    counters[b].handled += calls;
                    counters[b].handle_s += seconds;
                }
            }
            let points: Vec<Point> = (0..buckets)
                .map(|b| {
                    point(
                        &counters[b],
                        longest[b],
                        &settings,
                        target_pct,
                        (edges[b], edges[b + 1]),
                        label(edges[b], r.tz, r.bucket),
                        id,
                        r.tz,
                    )
                })
                .collect();
            let mut all = QueueCounters::default();
            counters.iter().for_each(|c| all.add(c));
            let longest_all = longest.iter().flatten().copied().reduce(f64::max);
            let total = point(
                &all,
                longest_all,
                &settings,
                target_pct,
                (edges[0], r.to),
                label(edges[0], r.tz, r.bucket),
                id,
                r.tz,
            );
            series.push(QueueSeries {
                id: id.clone(),
                name: name.clone(),
                settings: QueueSettings {
                    threshold_s: settings.threshold_s,
                    service_level_variant: settings.service_level,
                    short_abandon_s: settings.short_abandon_s,
                    abandon_rate_counts_short: settings.abandon_rate_counts_short,
                    target_pct,
                },
                points,
                total,
                waits,
                heatmap,
            });
        }
        series.sort_by_key(|s| s.name.to_lowercase());
        Ok(QueueReport {
            from: edges[0],
            to: r.to,
            tz: r.tz.name().to_owned(),
            bucket: r.bucket.as_str().to_owned(),
            week_start: tenant.week_start,
            queues: series,
        })
    }
}

/// The report's columns as CSV.
pub const CSV_HEADER: &str = "queue,start,end,offered,answered,abandoned,abandoned_short,timeouts,full,join_empty,\
     service_level,asa_s,aht_s,abandon_rate,longest_wait_s\r\n";

/// The report as CSV: a line per queue and point, the same numbers as the series (at full
/// precision), times in the report's zone.
pub fn csv(report: &QueueReport) -> String {
    let tz: Tz = report.tz.parse().unwrap_or(chrono_tz::UTC);
    let mut out = String::from(CSV_HEADER);
    let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for q in &report.queues {
        for p in &q.points {
            let time = |t: DateTime<Utc>| t.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
            crate::service::history::csv_cell(&mut out, &q.name);
            out.push_str(&format!(
                ",{},{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
                time(p.start),
                time(p.end),
                p.offered,
                p.answered,
                p.abandoned,
                p.abandoned_short,
                p.timeouts,
                p.full,
                p.join_empty,
                number(p.service_level),
                number(p.asa_s),
                number(p.aht_s),
                number(p.abandon_rate),
                number(p.longest_wait_s),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::history::parse_time;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn half_hours_over_short_and_long_days() {
        for (zone, short_day, long_day) in [
            ("Europe/Berlin", "2026-03-29", "2026-10-25"),
            ("America/New_York", "2026-03-08", "2026-11-01"),
        ] {
            let tz: Tz = zone.parse().unwrap();
            for (day, hours) in [(short_day, 23), (long_day, 25)] {
                let from = parse_time(day, tz, false).unwrap();
                let to = parse_time(day, tz, true).unwrap();
                let edges = boundaries(from, to, tz, Bucket::HalfHour, chrono::Weekday::Mon);
                assert_eq!(edges.len() - 1, hours * 2, "{zone} {day}");
                assert!(edges.windows(2).all(|w| w[1] - w[0] == Duration::minutes(30)));
                let days = boundaries(from, to, tz, Bucket::Day, chrono::Weekday::Mon);
                assert_eq!(days.len(), 2, "one day bucket, {hours} hours long");
                assert_eq!((days[1] - days[0]).num_hours(), hours as i64);
            }
        }
    }

    #[test]
    fn weeks_start_on_the_tenants_day_and_months_on_the_first() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        // Wednesday 2026-12-02.
        let from = parse_time("2026-12-02", tz, false).unwrap();
        let to = parse_time("2026-12-20", tz, true).unwrap();
        let monday = boundaries(from, to, tz, Bucket::Week, chrono::Weekday::Mon);
        assert_eq!(label(monday[0], tz, Bucket::Week), "2026-11-30");
        assert_eq!(label(monday[1], tz, Bucket::Week), "2026-12-07");
        let sunday = boundaries(from, to, tz, Bucket::Week, chrono::Weekday::Sun);
        assert_eq!(label(sunday[0], tz, Bucket::Week), "2026-11-29");
        let saturday = boundaries(from, to, tz, Bucket::Week, chrono::Weekday::Sat);
        assert_eq!(label(saturday[0], tz, Bucket::Week), "2026-11-28");
        let months = boundaries(
            from,
            parse_time("2027-02-10", tz, false).unwrap(),
            tz,
            Bucket::Month,
            chrono::Weekday::Mon,
        );
        let labels: Vec<String> = months[..3].iter().map(|m| label(*m, tz, Bucket::Month)).collect();
        assert_eq!(labels, ["2026-12", "2027-01", "2027-02"]);
        assert_eq!(*months.last().unwrap(), parse_time("2027-02-10", tz, false).unwrap());
    }

    #[test]
    fn erlang_c_staffs_a_worked_example() {
        // 360 calls in an hour at 180 s AHT are 18 Erlangs; for 80 % within 20 s Erlang C needs
        // 22 agents (21 give 71.6 %, 22 give 82.2 %, computed independently in Python).
        assert_eq!(agents_needed(360, 180.0, 3600.0, 20.0, 0.8), Some(22));
        assert_eq!(agents_needed(0, 180.0, 3600.0, 20.0, 0.8), None);
        assert_eq!(agents_needed(10, 0.0, 3600.0, 20.0, 0.8), None);
        // One call in the bucket still needs one agent.
        assert_eq!(agents_needed(1, 60.0, 1800.0, 20.0, 0.8), Some(1));
    }

    #[test]
    fn quarter_buckets_start_on_a_whole_quarter_in_the_zone() {
        // Kathmandu is UTC+05:45: its quarter hours are whole in UTC too.
        let tz: Tz = "Asia/Kathmandu".parse().unwrap();
        let edges = boundaries(
            utc(2026, 12, 2, 3, 7),
            utc(2026, 12, 2, 4, 0),
            tz,
            Bucket::Hour,
            chrono::Weekday::Mon,
        );
        assert_eq!(label(edges[0], tz, Bucket::Hour), "2026-12-02 08:00");
        assert_eq!(edges[0], utc(2026, 12, 2, 2, 15));
    }
}
