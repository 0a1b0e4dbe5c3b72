//! Call detail records imported from a PBX (`monti import cdr`).

use super::{Store, StoreResult, TenantScope};
use crate::domain::time::now_ms;
use crate::on_db;

/// One CDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// What identifies the record ([`key`]): the same CDR is stored once, however its line was
    /// written.
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

/// The fields that identify a CDR: the PBX's unique id, the start, the channel, the
/// destination and the disposition. Two legs of one call can agree on all of them, so the
/// key adds how many earlier records of the same import had the same identity.
pub fn key(
    call_id: &str,
    started_at: i64,
    channel: &str,
    destination: &str,
    disposition: &str,
    occurrence: usize,
) -> String {
    use sha2::Digest as _;
    let identity = [call_id, &started_at.to_string(), channel, destination, disposition].join("\u{1f}");
    let digest = sha2::Sha256::digest(identity.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{KEY_VERSION}{hex}-{occurrence}")
}

/// Keys made by [`key`] start so; keys of records imported before (a digest of the line's
/// text) do not, and [`rekey_legacy`] brings those in line.
const KEY_VERSION: &str = "v2:";

/// Records imported before CDRs were identified by their fields get their key from their
/// fields (in import order, so two identical legs stay two); one that is already there under
/// its new key (imported again since) is the same record and is dropped. Returns how many
/// were rekeyed.
pub async fn rekey_legacy(store: &Store) -> StoreResult<u64> {
    const PAGE: i64 = 5_000;
    const DONE: &str = "call_records.keys";
    if super::accounts::get_state(store, DONE).await?.as_deref() == Some(KEY_VERSION) {
        return Ok(0);
    }
    let pattern = format!("{KEY_VERSION}%");
    let mut occurrences: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
    let mut rekeyed = 0;
    loop {
        type Legacy = (String, String, String, i64, String, String, String);
        let rows: Vec<Legacy> = on_db!(&store.db, |pool, DB| {
            sqlx::query_as::<DB, Legacy>(
                "SELECT tenant_id, record_key, call_id, started_at, channel, destination, disposition \
                 FROM call_records WHERE record_key NOT LIKE $1 ORDER BY tenant_id, imported_at, record_key LIMIT $2",
            )
            .bind(&pattern)
            .bind(PAGE)
            .fetch_all(pool)
            .await
        })?;
        if rows.is_empty() {
            super::accounts::set_state(store, DONE, KEY_VERSION).await?;
            return Ok(rekeyed);
        }
        on_db!(&store.db, |pool, DB| {
            let mut tx = pool.begin().await?;
            for (tenant, old, call_id, started_at, channel, destination, disposition) in &rows {
                let identity = key(call_id, *started_at, channel, destination, disposition, 0);
                let seen = occurrences.entry((tenant.clone(), identity)).or_insert(0);
                let new = key(call_id, *started_at, channel, destination, disposition, *seen);
                *seen += 1;
                sqlx::query::<DB>(
                    "DELETE FROM call_records WHERE tenant_id = $1 AND record_key = $2 AND EXISTS \
                     (SELECT 1 FROM call_records c WHERE c.tenant_id = $1 AND c.record_key = $3)",
                )
                .bind(tenant)
                .bind(old)
                .bind(&new)
                .execute(&mut *tx)
                .await?;
                sqlx::query::<DB>("UPDATE call_records SET record_key = $3 WHERE tenant_id = $1 AND record_key = $2")
                    .bind(tenant)
                    .bind(old)
                    .bind(&new)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })?;
        rekeyed += rows.len() as u64;
    }
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
