//! Call detail records imported from a PBX (`monti import cdr`).

use super::{Store, StoreResult, TenantScope};
use crate::domain::time::now_ms;
use crate::on_db;

/// One CDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// A digest of the source line: the same line is stored once.
    pub key: String,
    pub source: String,
    pub call_id: String,
    pub caller: String,
    pub destination: String,
    pub context: String,
    pub channel: String,
    pub dst_channel: String,
    pub last_app: String,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: i64,
    pub duration_s: i64,
    pub billsec_s: i64,
    /// `ANSWERED`, `NO ANSWER`, `BUSY`, `FAILED`, `CONGESTION`, `CANCEL`.
    pub disposition: String,
    pub account: String,
}

/// Rows per statement (18 parameters each).
const ROWS_PER_STATEMENT: usize = 500;

/// Stores records the tenant does not have yet; returns how many were new.
pub async fn insert(store: &Store, scope: &TenantScope, records: &[CallRecord]) -> StoreResult<u64> {
    let now = now_ms();
    let tenant = scope.tenant_id();
    Ok(on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        let mut added = 0;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<DB>::new(
                "INSERT INTO call_records (tenant_id, record_key, source, call_id, caller, destination, context, \
                 channel, dst_channel, last_app, started_at, answered_at, ended_at, duration_s, billsec_s, \
                 disposition, account, imported_at) ",
            );
            insert.push_values(chunk, |mut b, r| {
                b.push_bind(tenant)
                    .push_bind(&r.key)
                    .push_bind(&r.source)
                    .push_bind(&r.call_id)
                    .push_bind(&r.caller)
                    .push_bind(&r.destination)
                    .push_bind(&r.context)
                    .push_bind(&r.channel)
                    .push_bind(&r.dst_channel)
                    .push_bind(&r.last_app)
                    .push_bind(r.started_at)
                    .push_bind(r.answered_at)
                    .push_bind(r.ended_at)
                    .push_bind(r.duration_s)
                    .push_bind(r.billsec_s)
                    .push_bind(&r.disposition)
                    .push_bind(&r.account)
                    .push_bind(now);
            });
            insert.push(" ON CONFLICT (tenant_id, record_key) DO NOTHING");
            added += insert
                .build()
                .persistent(false)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(added)
    })?)
}

/// How many of the tenant's records have each disposition, most first.
pub async fn dispositions(store: &Store, scope: &TenantScope) -> StoreResult<Vec<(String, i64)>> {
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (String, i64)>(
            "SELECT disposition, COUNT(*) FROM call_records WHERE tenant_id = $1 GROUP BY disposition \
             ORDER BY COUNT(*) DESC, disposition",
        )
        .bind(scope.tenant_id())
        .fetch_all(pool)
        .await
    })?)
}
