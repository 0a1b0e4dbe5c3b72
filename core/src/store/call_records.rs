//! Call detail records imported from a PBX (`monti import cdr`).

use super::{Store, StoreResult, TenantScope};
use crate::domain::time::now_ms;
use crate::on_db;

/// One CDR.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallRecord {
    /// What identifies the record ([`key`]): the same CDR is stored once, however its line was
    /// written.
    #[sqlx(rename = "record_key")]
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

/// What identifies a CDR: the PBX's unique id, the start and end, the channel and the
/// destination channel, the destination, the billed seconds and the disposition — what
/// Asterisk writes for one leg, whatever the quoting. Two legs can still agree on all of it, so
/// the key adds how many earlier records of the same import had the same identity.
pub fn key(r: &CallRecord, occurrence: usize) -> String {
    use sha2::Digest as _;
    let identity = [
        r.call_id.as_str(),
        &r.started_at.to_string(),
        &r.ended_at.to_string(),
        &r.channel,
        &r.dst_channel,
        &r.destination,
        &r.billsec_s.to_string(),
        &r.disposition,
    ]
    .join("\u{1f}");
    let digest = sha2::Sha256::digest(identity.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{KEY_VERSION}{hex}-{occurrence}")
}

/// Keys made by [`key`] start so; keys of records imported before (a digest of the line's
/// text) do not, and [`rekey_legacy`] brings those in line.
const KEY_VERSION: &str = "v2:";

/// Records imported before CDRs were identified by their fields get their key from their
/// fields, in import order so that two identical legs stay two; one already there under its
/// new key (imported again since) is the same record and is dropped. All in one transaction:
/// an interrupted run leaves everything as it was, and the next start does it again. Returns
/// how many were rekeyed.
pub async fn rekey_legacy(store: &Store) -> StoreResult<u64> {
    const DONE: &str = "call_records.keys";
    if super::accounts::get_state(store, DONE).await?.as_deref() == Some(KEY_VERSION) {
        return Ok(0);
    }
    let pattern = format!("{KEY_VERSION}%");
    let rekeyed = on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        let legacy: Vec<(String, String, RecordFields)> = sqlx::query_as::<DB, (String, String, String, i64, i64, String, String, String, i64, String)>(
            "SELECT tenant_id, record_key, call_id, started_at, ended_at, channel, dst_channel, destination, billsec_s, \
             disposition FROM call_records WHERE record_key NOT LIKE $1 ORDER BY tenant_id, imported_at, record_key",
        )
        .bind(&pattern)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(tenant, old, call_id, started_at, ended_at, channel, dst_channel, destination, billsec_s, disposition)| {
            let fields = RecordFields {
                call_id,
                started_at,
                ended_at,
                channel,
                dst_channel,
                destination,
                billsec_s,
                disposition,
            };
            (tenant, old, fields)
        })
        .collect();
        let mut occurrences: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
        for (tenant, old, fields) in &legacy {
            let record = fields.record();
            let seen = occurrences.entry((tenant.clone(), key(&record, 0))).or_insert(0);
            let new = key(&record, *seen);
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
        tx.commit().await?;
        Ok::<_, sqlx::Error>(legacy.len() as u64)
    })?;
    super::accounts::set_state(store, DONE, KEY_VERSION).await?;
    Ok(rekeyed)
}

/// The stored fields [`key`] reads.
struct RecordFields {
    call_id: String,
    started_at: i64,
    ended_at: i64,
    channel: String,
    dst_channel: String,
    destination: String,
    billsec_s: i64,
    disposition: String,
}

impl RecordFields {
    fn record(&self) -> CallRecord {
        CallRecord {
            key: String::new(),
            source: String::new(),
            call_id: self.call_id.clone(),
            caller: String::new(),
            destination: self.destination.clone(),
            context: String::new(),
            channel: self.channel.clone(),
            dst_channel: self.dst_channel.clone(),
            last_app: String::new(),
            started_at: self.started_at,
            answered_at: None,
            ended_at: self.ended_at,
            duration_s: 0,
            billsec_s: self.billsec_s,
            disposition: self.disposition.clone(),
            account: String::new(),
        }
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

/// The tenant's records of one call (its legs), earliest first.
pub async fn for_call(store: &Store, scope: &TenantScope, call_id: &str) -> StoreResult<Vec<CallRecord>> {
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, CallRecord>(
            "SELECT record_key, source, call_id, caller, destination, context, channel, dst_channel, last_app, \
             started_at, answered_at, ended_at, duration_s, billsec_s, disposition, account FROM call_records \
             WHERE tenant_id = $1 AND call_id = $2 ORDER BY started_at, record_key LIMIT 200",
        )
        .bind(scope.tenant_id())
        .bind(call_id)
        .fetch_all(pool)
        .await
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
