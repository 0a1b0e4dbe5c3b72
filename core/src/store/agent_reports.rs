//! What agent reports read: the events that move agents between states, the calls they
//! handled, and the kept summaries of whole local days (migration 0020).
//!
//! A summary is made for one local day in one time zone and kept with the versions of the UTC
//! days it read. Versions go up when something an agent report reads changes: the events writer
//! bumps the days of agent events it stores ([`bump_days!`]), triggers on `calls` the days of
//! handled calls. A summary whose versions are all still current is reused.

use std::collections::BTreeMap;

use super::events::parse_rows;
use super::{Store, StoreResult, TenantScope};
use crate::domain::events::Event;
use crate::on_db;

/// UTC days in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The event kinds that move an agent between states (see `EventBody::agent_transition`).
const AGENT_KINDS: &str = "('agent_login', 'agent_logout', 'agent_state', 'call_start', 'call_end', 'caller_answer')";

/// Bumps the versions of `(tenant id, UTC day)` pairs inside the caller's transaction `$tx`
/// (on backend `$DB`): the days whose agent events changed.
macro_rules! bump_days {
    ($tx:expr, $DB:ty, $days:expr) => {
        let days: Vec<(String, i64)> = $days;
        for chunk in days.chunks(1_000) {
            let mut bump =
                ::sqlx::QueryBuilder::<$DB>::new("INSERT INTO agent_report_versions (tenant_id, day, version) ");
            bump.push_values(chunk, |mut b, (tenant, day)| {
                b.push_bind(tenant).push_bind(*day).push_bind(1_i64);
            });
            bump.push(" ON CONFLICT (tenant_id, day) DO UPDATE SET version = agent_report_versions.version + 1");
            bump.build().persistent(false).execute(&mut *$tx).await?;
        }
    };
}
pub(super) use bump_days;

/// The versions of the tenant's UTC days `first..=last` (a day never bumped is at 0).
pub async fn versions(store: &Store, scope: &TenantScope, first: i64, last: i64) -> StoreResult<BTreeMap<i64, i64>> {
    let rows: Vec<(i64, i64)> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (i64, i64)>(
            "SELECT day, version FROM agent_report_versions WHERE tenant_id = $1 AND day >= $2 AND day <= $3",
        )
        .bind(scope.tenant_id())
        .bind(first)
        .bind(last)
        .fetch_all(pool)
        .await
    })?;
    let mut all: BTreeMap<i64, i64> = (first..=last).map(|d| (d, 0)).collect();
    all.extend(rows);
    Ok(all)
}

/// A kept summary: (versions as made, summary JSON).
pub type Kept = (String, String);

/// The kept summaries of the local days `days` (YYYY-MM-DD) in zone `tz`, by day.
pub async fn kept(
    store: &Store,
    scope: &TenantScope,
    tz: &str,
    days: &[String],
) -> StoreResult<BTreeMap<String, Kept>> {
    let mut out = BTreeMap::new();
    for chunk in days.chunks(500) {
        let rows: Vec<(String, String, String)> = on_db!(&store.db, |pool, DB| {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "SELECT day, versions, summary FROM agent_report_days WHERE tenant_id = ",
            );
            q.push_bind(scope.tenant_id())
                .push(" AND tz = ")
                .push_bind(tz)
                .push(" AND day IN (");
            let mut list = q.separated(", ");
            for day in chunk {
                list.push_bind(day);
            }
            q.push(")");
            q.build_query_as::<(String, String, String)>().fetch_all(pool).await
        })?;
        out.extend(
            rows.into_iter()
                .map(|(day, versions, summary)| (day, (versions, summary))),
        );
    }
    Ok(out)
}

/// Keeps the summary of local day `day` in zone `tz`, made at `versions`.
pub async fn keep(
    store: &Store,
    scope: &TenantScope,
    tz: &str,
    day: &str,
    versions: &str,
    summary: &str,
) -> StoreResult<()> {
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "INSERT INTO agent_report_days (tenant_id, tz, day, versions, summary) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, tz, day) DO UPDATE SET versions = excluded.versions, summary = excluded.summary",
        )
        .bind(scope.tenant_id())
        .bind(tz)
        .bind(day)
        .bind(versions)
        .bind(summary)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// The events in `from_ms..to_ms` that move agents between states, in the order they happened.
pub async fn transitions(store: &Store, scope: &TenantScope, from_ms: i64, to_ms: i64) -> StoreResult<Vec<Event>> {
    let sql = format!(
        "SELECT source, event_id, at, body FROM events WHERE tenant_id = $1 AND at >= $2 AND at < $3 \
         AND kind IN {AGENT_KINDS} ORDER BY at, seq"
    );
    let rows: Vec<(String, String, i64, String)> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (String, String, i64, String)>(&sql)
            .bind(scope.tenant_id())
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(pool)
            .await
    })?;
    Ok(parse_rows(rows))
}

/// For each of `agents` (as events name them), the last event in `since_ms..before_ms` that
/// moved it between states: where it stood at `before_ms`.
pub async fn standing(
    store: &Store,
    scope: &TenantScope,
    agents: &[String],
    since_ms: i64,
    before_ms: i64,
) -> StoreResult<Vec<Event>> {
    let sql = format!(
        "SELECT source, event_id, at, body FROM events WHERE tenant_id = $1 AND agent = $2 AND at >= $3 AND at < $4 \
         AND kind IN {AGENT_KINDS} ORDER BY at DESC, seq DESC LIMIT 1"
    );
    let mut out = Vec::new();
    on_db!(&store.db, |pool, DB| {
        let mut conn = pool.acquire().await?;
        for agent in agents {
            let row: Option<(String, String, i64, String)> = sqlx::query_as::<DB, (String, String, i64, String)>(&sql)
                .bind(scope.tenant_id())
                .bind(agent)
                .bind(since_ms)
                .bind(before_ms)
                .fetch_optional(&mut *conn)
                .await?;
            out.extend(row);
        }
        Ok::<_, sqlx::Error>(())
    })?;
    Ok(parse_rows(out))
}

/// The calls `agents` (as calls name them) handled whose handling ended in `from_ms..to_ms`:
/// (agent, ended at, talk, hold, wrap-up).
pub async fn handled(
    store: &Store,
    scope: &TenantScope,
    agents: &[String],
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Vec<(String, i64, f64, f64, f64)>> {
    type Row = (String, i64, f64, f64, f64);
    let mut out = Vec::new();
    for chunk in agents.chunks(500) {
        let rows: Vec<Row> = on_db!(&store.db, |pool, DB| {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "SELECT agent, ended_at, talk_s, COALESCE(hold_s, 0.0), COALESCE(wrap_s, 0.0) FROM calls WHERE tenant_id = ",
            );
            q.push_bind(scope.tenant_id()).push(" AND agent IN (");
            let mut list = q.separated(", ");
            for agent in chunk {
                list.push_bind(agent);
            }
            q.push(") AND ended_at >= ")
                .push_bind(from_ms)
                .push(" AND ended_at < ")
                .push_bind(to_ms)
                .push(" AND talk_s IS NOT NULL");
            q.build_query_as::<Row>().fetch_all(pool).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}
