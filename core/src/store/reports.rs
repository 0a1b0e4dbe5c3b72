//! What reports read from the call history, summed by quarter hour (every bucket a report
//! offers — 15 and 30 minutes, hours, days, weeks, months in any time zone — is made of whole
//! quarter hours, as every zone's offset is a multiple of 15 minutes).
//!
//! The sums are kept per queue and UTC day in `report_days`, made from the calls the first time a
//! report needs a day and reused while the day's calls stay as they were: triggers on `calls`
//! raise the version of every day a change touched (`report_versions`, migration 0018), and a
//! summary made at an older version is made again.
//! A 30-day report so reads 30 small summaries a queue instead of every call of the month.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{Store, StoreResult, TenantScope};
use crate::on_db;

/// Quarter hours in milliseconds.
pub const QUARTER_MS: i64 = 15 * 60_000;

/// UTC days in milliseconds: the unit `report_days` keeps.
const DAY_MS: i64 = 86_400_000;

/// The upper bounds (seconds, exclusive) of the wait bins reports show; a last bin holds longer
/// waits.
pub const WAIT_BINS: [f64; 9] = [10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0];

/// Calls of one quarter hour that share an outcome and a wait bin.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeCell {
    /// Quarter-hour number (Unix ms / 15 min).
    pub quarter: i64,
    pub outcome: String,
    /// Index into [`WAIT_BINS`] (its length for longer waits).
    pub bin: usize,
    pub calls: u64,
    pub wait_s: f64,
    pub longest_wait_s: f64,
    /// Waited no longer than the queue's service-level threshold.
    pub within: u64,
    /// Waited less than the queue's short-abandon limit.
    pub short: u64,
}

/// The queue's calls counted (answered or left) in `from_ms..to_ms` under any of `names`, summed
/// by quarter hour, outcome and wait bin, with `threshold_s` and `short_s` applied.
async fn outcomes_from_calls(
    store: &Store,
    scope: &TenantScope,
    names: &[String],
    from_ms: i64,
    to_ms: i64,
    threshold_s: f64,
    short_s: f64,
) -> StoreResult<Vec<OutcomeCell>> {
    let mut bin = String::from("CASE");
    for (i, upper) in WAIT_BINS.iter().enumerate() {
        bin.push_str(&format!(" WHEN COALESCE(wait_s, 0) < {upper} THEN {i}"));
    }
    bin.push_str(&format!(" ELSE {} END", WAIT_BINS.len()));
    // PostgreSQL's CASE of small numbers is an `integer`; the rows read a `bigint`.
    let bin = format!("CAST({bin} AS BIGINT)");
    type Row = (i64, String, i64, i64, Option<f64>, Option<f64>, i64, i64);
    let rows: Vec<Row> = on_db!(&store.db, |pool, DB| {
        let mut q = sqlx::QueryBuilder::<DB>::new(format!(
            "SELECT outcome_at / {QUARTER_MS} AS quarter, outcome, {bin} AS bin, COUNT(*), SUM(wait_s), MAX(wait_s), \
             SUM(CASE WHEN COALESCE(wait_s, 0) <= "
        ));
        q.push_bind(threshold_s)
            .push(" THEN 1 ELSE 0 END), SUM(CASE WHEN COALESCE(wait_s, 0) < ")
            .push_bind(short_s)
            .push(" THEN 1 ELSE 0 END) FROM calls WHERE tenant_id = ")
            .push_bind(scope.tenant_id())
            .push(" AND queue IN (");
        let mut list = q.separated(", ");
        for name in names {
            list.push_bind(name);
        }
        q.push(") AND outcome_at >= ")
            .push_bind(from_ms)
            .push(" AND outcome_at < ")
            .push_bind(to_ms)
            .push(" AND outcome IS NOT NULL GROUP BY 1, 2, 3");
        q.build_query_as::<Row>().fetch_all(pool).await
    })?;
    Ok(rows
        .into_iter()
        .map(
            |(quarter, outcome, bin, calls, wait, longest, within, short)| OutcomeCell {
                quarter,
                outcome,
                bin: usize::try_from(bin).unwrap_or(0),
                calls: calls.max(0) as u64,
                wait_s: wait.unwrap_or(0.0),
                longest_wait_s: longest.unwrap_or(0.0),
                within: within.max(0) as u64,
                short: short.max(0) as u64,
            },
        )
        .collect())
}

/// The queue's answered calls whose handling ended in `from_ms..to_ms`, by quarter hour:
/// (quarter, calls, Σ talk + hold + wrap-up seconds).
async fn handling_from_calls(
    store: &Store,
    scope: &TenantScope,
    names: &[String],
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Vec<(i64, u64, f64)>> {
    let rows: Vec<(i64, i64, Option<f64>)> = on_db!(&store.db, |pool, DB| {
        let mut q = sqlx::QueryBuilder::<DB>::new(format!(
            "SELECT ended_at / {QUARTER_MS} AS quarter, COUNT(*), \
             SUM(COALESCE(talk_s, 0) + COALESCE(hold_s, 0) + COALESCE(wrap_s, 0)) FROM calls WHERE tenant_id = "
        ));
        q.push_bind(scope.tenant_id()).push(" AND queue IN (");
        let mut list = q.separated(", ");
        for name in names {
            list.push_bind(name);
        }
        q.push(") AND ended_at >= ")
            .push_bind(from_ms)
            .push(" AND ended_at < ")
            .push_bind(to_ms)
            .push(" AND talk_s IS NOT NULL GROUP BY 1");
        q.build_query_as::<(i64, i64, Option<f64>)>().fetch_all(pool).await
    })?;
    Ok(rows
        .into_iter()
        .map(|(quarter, calls, seconds)| (quarter, calls.max(0) as u64, seconds.unwrap_or(0.0)))
        .collect())
}

/// A queue's quarter hours: the calls counted by outcome and wait bin where their outcome fell,
/// and the answered calls' handling where it ended (quarter, calls, Σ seconds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueQuarters {
    pub outcomes: Vec<OutcomeCell>,
    pub handling: Vec<(i64, u64, f64)>,
}

impl QueueQuarters {
    fn extend(&mut self, other: QueueQuarters) {
        self.outcomes.extend(other.outcomes);
        self.handling.extend(other.handling);
    }

    /// The quarters that start in `from_ms..to_ms`.
    fn within(mut self, from_ms: i64, to_ms: i64) -> QueueQuarters {
        let inside = |quarter: i64| (from_ms..to_ms).contains(&(quarter * QUARTER_MS));
        self.outcomes.retain(|c| inside(c.quarter));
        self.handling.retain(|h| inside(h.0));
        self
    }

    /// Split by UTC day.
    fn by_day(self) -> HashMap<i64, QueueQuarters> {
        let day = |quarter: i64| (quarter * QUARTER_MS).div_euclid(DAY_MS);
        let mut days: HashMap<i64, QueueQuarters> = HashMap::new();
        for cell in self.outcomes {
            days.entry(day(cell.quarter)).or_default().outcomes.push(cell);
        }
        for h in self.handling {
            days.entry(day(h.0)).or_default().handling.push(h);
        }
        days
    }
}

/// (quarter of the day, outcome, bin, calls, Σ wait, longest wait, within threshold, short)
type StoredCell = (i64, String, usize, u64, f64, f64, u64, u64);

/// A day's summary as kept in `report_days.summary`: JSON arrays rather than objects, as a month
/// of a busy queue holds tens of thousands of cells. Quarters count from the day's start.
#[derive(Serialize, Deserialize)]
struct StoredDay {
    outcomes: Vec<StoredCell>,
    /// (quarter, calls, Σ handling seconds)
    handling: Vec<(i64, u64, f64)>,
}

const QUARTERS_A_DAY: i64 = DAY_MS / QUARTER_MS;

impl StoredDay {
    fn new(day: i64, quarters: QueueQuarters) -> StoredDay {
        let first = day * QUARTERS_A_DAY;
        StoredDay {
            outcomes: quarters
                .outcomes
                .into_iter()
                .map(|c| {
                    let OutcomeCell {
                        quarter,
                        outcome,
                        bin,
                        calls,
                        wait_s,
                        longest_wait_s,
                        within,
                        short,
                    } = c;
                    (
                        quarter - first,
                        outcome,
                        bin,
                        calls,
                        wait_s,
                        longest_wait_s,
                        within,
                        short,
                    )
                })
                .collect(),
            handling: quarters
                .handling
                .into_iter()
                .map(|(q, calls, s)| (q - first, calls, s))
                .collect(),
        }
    }

    fn quarters(self, day: i64) -> QueueQuarters {
        let first = day * QUARTERS_A_DAY;
        QueueQuarters {
            outcomes: self
                .outcomes
                .into_iter()
                .map(
                    |(quarter, outcome, bin, calls, wait_s, longest_wait_s, within, short)| OutcomeCell {
                        quarter: first + quarter,
                        outcome,
                        bin,
                        calls,
                        wait_s,
                        longest_wait_s,
                        within,
                        short,
                    },
                )
                .collect(),
            handling: self
                .handling
                .into_iter()
                .map(|(q, calls, s)| (first + q, calls, s))
                .collect(),
        }
    }
}

/// The queue known under `names` in `from_ms..to_ms` by quarter hour, with `threshold_s` and
/// `short_s` applied. Whole quarter hours come from the kept day summaries (making and keeping
/// those that are missing, out of date or made with other settings); a part of a quarter hour at
/// either end of the range is read from the calls.
pub async fn queue_quarters(
    store: &Store,
    scope: &TenantScope,
    names: &[String],
    from_ms: i64,
    to_ms: i64,
    threshold_s: f64,
    short_s: f64,
) -> StoreResult<QueueQuarters> {
    if names.is_empty() || to_ms <= from_ms {
        return Ok(QueueQuarters::default());
    }
    let whole_from = from_ms.div_euclid(QUARTER_MS) * QUARTER_MS
        + if from_ms.rem_euclid(QUARTER_MS) == 0 {
            0
        } else {
            QUARTER_MS
        };
    let whole_to = to_ms.div_euclid(QUARTER_MS) * QUARTER_MS;
    if whole_from >= whole_to {
        return from_calls(store, scope, names, (from_ms, to_ms), threshold_s, short_s).await;
    }
    let mut quarters = kept_quarters(store, scope, names, whole_from, whole_to, threshold_s, short_s).await?;
    for part in [(from_ms, whole_from), (whole_to, to_ms)] {
        if part.0 < part.1 {
            quarters.extend(from_calls(store, scope, names, part, threshold_s, short_s).await?);
        }
    }
    Ok(quarters)
}

/// The queue's quarter hours in `from_ms..to_ms` read from its calls.
async fn from_calls(
    store: &Store,
    scope: &TenantScope,
    names: &[String],
    (from_ms, to_ms): (i64, i64),
    threshold_s: f64,
    short_s: f64,
) -> StoreResult<QueueQuarters> {
    Ok(QueueQuarters {
        outcomes: outcomes_from_calls(store, scope, names, from_ms, to_ms, threshold_s, short_s).await?,
        handling: handling_from_calls(store, scope, names, from_ms, to_ms).await?,
    })
}

/// [`queue_quarters`] for whole quarter hours, from the kept day summaries.
async fn kept_quarters(
    store: &Store,
    scope: &TenantScope,
    names: &[String],
    from_ms: i64,
    to_ms: i64,
    threshold_s: f64,
    short_s: f64,
) -> StoreResult<QueueQuarters> {
    let (first_day, last_day) = (from_ms.div_euclid(DAY_MS), (to_ms - 1).div_euclid(DAY_MS));
    let tenant = scope.tenant_id();
    type Kept = (String, i64, f64, f64, i64, String);
    // The versions first: a summary read after them is at least as new as they say.
    let (versions, kept): (Vec<(String, i64, i64)>, Vec<Kept>) = on_db!(&store.db, |pool, DB| {
        let mut q = sqlx::QueryBuilder::<DB>::new("SELECT queue, day, version FROM report_versions WHERE tenant_id = ");
        q.push_bind(tenant).push(" AND queue IN (");
        let mut list = q.separated(", ");
        for name in names {
            list.push_bind(name);
        }
        q.push(") AND day >= ")
            .push_bind(first_day)
            .push(" AND day <= ")
            .push_bind(last_day);
        let versions = q.build_query_as::<(String, i64, i64)>().fetch_all(pool).await?;
        let mut q = sqlx::QueryBuilder::<DB>::new(
            "SELECT queue, day, threshold_s, short_s, version, summary FROM report_days WHERE tenant_id = ",
        );
        q.push_bind(tenant).push(" AND queue IN (");
        let mut list = q.separated(", ");
        for name in names {
            list.push_bind(name);
        }
        q.push(") AND day >= ")
            .push_bind(first_day)
            .push(" AND day <= ")
            .push_bind(last_day);
        let kept = q.build_query_as::<Kept>().fetch_all(pool).await?;
        Ok::<_, sqlx::Error>((versions, kept))
    })?;
    // A day no call has touched yet is at version 0.
    let versions: HashMap<(String, i64), i64> = versions.into_iter().map(|(q, d, v)| ((q, d), v)).collect();
    let version_of = |queue: &str, day: i64| versions.get(&(queue.to_owned(), day)).copied().unwrap_or(0);

    let mut quarters = QueueQuarters::default();
    let mut fresh: BTreeSet<(String, i64)> = BTreeSet::new();
    for (queue, day, kept_threshold, kept_short, version, summary) in kept {
        if kept_threshold != threshold_s || kept_short != short_s || version != version_of(&queue, day) {
            continue;
        }
        // A summary that does not read (written by another version) is made again.
        if let Ok(stored) = serde_json::from_str::<StoredDay>(&summary) {
            quarters.extend(stored.quarters(day));
            fresh.insert((queue, day));
        }
    }
    for name in names {
        let missing: Vec<i64> = (first_day..=last_day)
            .filter(|day| !fresh.contains(&(name.clone(), *day)))
            .collect();
        for run in runs(&missing) {
            let at: Vec<i64> = (run.0..=run.1).map(|day| version_of(name, day)).collect();
            quarters.extend(make_days(store, scope, name, run, &at, (threshold_s, short_s)).await?);
        }
    }
    Ok(quarters.within(from_ms, to_ms))
}

/// Consecutive days as inclusive ranges.
fn runs(days: &[i64]) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &day in days {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == day => *end = day,
            _ => runs.push((day, day)),
        }
    }
    runs
}

/// Makes the summaries of the queue's days `first..=last` from its calls and keeps them with
/// the versions `versions` (one a day) read before the calls: a change committed since raised
/// its day's version, so that summary is not used. A slower request that made an older summary
/// does not replace a newer one.
async fn make_days(
    store: &Store,
    scope: &TenantScope,
    name: &str,
    (first, last): (i64, i64),
    versions: &[i64],
    (threshold_s, short_s): (f64, f64),
) -> StoreResult<QueueQuarters> {
    let tenant = scope.tenant_id();
    let names = [name.to_owned()];
    let made = from_calls(
        store,
        scope,
        &names,
        (first * DAY_MS, (last + 1) * DAY_MS),
        threshold_s,
        short_s,
    )
    .await?;
    let mut days = made.clone().by_day();
    let summaries: Vec<(i64, i64, String)> = (first..=last)
        .zip(versions.iter().copied())
        .map(|(day, version)| {
            let stored = StoredDay::new(day, days.remove(&day).unwrap_or_default());
            (day, version, serde_json::to_string(&stored).unwrap_or_default())
        })
        .collect();
    on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        for chunk in summaries.chunks(500) {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "INSERT INTO report_days (tenant_id, queue, day, threshold_s, short_s, version, summary) ",
            );
            q.push_values(chunk, |mut b, (day, version, summary)| {
                b.push_bind(tenant)
                    .push_bind(name)
                    .push_bind(*day)
                    .push_bind(threshold_s)
                    .push_bind(short_s)
                    .push_bind(*version)
                    .push_bind(summary);
            });
            q.push(
                " ON CONFLICT (tenant_id, queue, day) DO UPDATE SET threshold_s = excluded.threshold_s, \
                 short_s = excluded.short_s, version = excluded.version, summary = excluded.summary \
                 WHERE report_days.version <= excluded.version",
            );
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await
    })?;
    Ok(made)
}
