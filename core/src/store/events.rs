//! Accepted events, stored before they are acknowledged: what is accepted is not lost. Each
//! (tenant, source, id) is stored once; a repeat is reported as a duplicate.

use super::{Store, StoreResult, TenantScope};
use crate::domain::events::Event;
use crate::domain::time::now_ms;
use crate::on_db;

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored under this sequence number.
    Accepted(i64),
    /// The same (source, id) was stored before.
    Duplicate,
}

/// One event as stored: tenant, source, id, time, kind, agent, queue, body.
type Row = (
    String,
    String,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
);

/// Stores events in one transaction, in order.
pub async fn append(store: &Store, scope: &TenantScope, events: &[&Event]) -> StoreResult<Vec<Stored>> {
    let received = now_ms();
    let sql = "INSERT INTO events (tenant_id, source, event_id, at, kind, agent, queue, body, received_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
               ON CONFLICT (tenant_id, source, event_id) DO NOTHING RETURNING seq";
    let rows: Vec<Row> = events
        .iter()
        .map(|e| {
            let body = serde_json::to_value(&e.body).unwrap_or_default();
            let kind = body.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
            (
                scope.tenant_id().to_owned(),
                e.source.clone(),
                e.id.clone(),
                e.at_ms(),
                kind,
                e.agent().map(str::to_owned),
                e.queue().map(str::to_owned),
                body.to_string(),
            )
        })
        .collect();
    Ok(on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        let mut out = Vec::with_capacity(rows.len());
        for (tenant, source, id, at, kind, agent, queue, body) in &rows {
            let seq: Option<i64> = sqlx::query_scalar::<DB, i64>(sql)
                .bind(tenant)
                .bind(source)
                .bind(id)
                .bind(at)
                .bind(kind)
                .bind(agent)
                .bind(queue)
                .bind(body)
                .bind(received)
                .fetch_optional(&mut *tx)
                .await?;
            out.push(seq.map_or(Stored::Duplicate, Stored::Accepted));
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(out)
    })?)
}

/// The tenant's stored events from `from_ms` on, in the order they happened (for rebuilding the
/// live floor after a restart). Rows that no longer parse are skipped and counted.
pub async fn since(store: &Store, scope: &TenantScope, from_ms: i64) -> StoreResult<Vec<Event>> {
    let rows: Vec<(String, String, i64, String)> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (String, String, i64, String)>(
            "SELECT source, event_id, at, body FROM events WHERE tenant_id = $1 AND at >= $2 ORDER BY at, seq",
        )
        .bind(scope.tenant_id())
        .bind(from_ms)
        .fetch_all(pool)
        .await
    })?;
    let mut events = Vec::with_capacity(rows.len());
    let mut unreadable = 0u64;
    for (source, id, at, body) in rows {
        let (Ok(body), Some(at)) = (
            serde_json::from_str(&body),
            chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at),
        ) else {
            unreadable += 1;
            continue;
        };
        events.push(Event {
            v: crate::domain::events::EVENT_VERSION,
            id,
            source,
            at,
            body,
        });
    }
    if unreadable > 0 {
        tracing::warn!(unreadable, "stored events that no longer parse were skipped");
    }
    Ok(events)
}
