//! What reports read from the call history, summed by quarter hour in SQL (every bucket a report
//! offers — 15 and 30 minutes, hours, days, weeks, months in any time zone — is made of whole
//! quarter hours, as every zone's offset is a multiple of 15 minutes).

use super::{Store, StoreResult, TenantScope};
use crate::on_db;

/// Quarter hours in milliseconds.
pub const QUARTER_MS: i64 = 15 * 60_000;

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
pub async fn queue_outcomes(
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
pub async fn queue_handling(
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
