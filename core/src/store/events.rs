//! Accepted events, stored before they are acknowledged: what is accepted is not lost. Each
//! (tenant, source, id) is stored once; a repeat is reported as a duplicate.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::agent_reports::{self, bump_days};
use super::calls::{self, CallPatch, fold_patches};
use super::{Store, StoreError, StoreResult, TenantId, TenantScope};
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

/// One event as stored.
#[derive(Debug)]
struct Row {
    tenant_id: String,
    source: String,
    event_id: String,
    at: i64,
    kind: String,
    agent: Option<String>,
    queue: Option<String>,
    call_id: Option<String>,
    body: String,
    /// What the event says about its call, for the call history.
    call: Option<CallPatch>,
}

impl Row {
    fn new(tenant_id: &str, e: &Event) -> Self {
        let body = serde_json::to_value(&e.body).unwrap_or_default();
        let kind = body.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
        Row {
            tenant_id: tenant_id.to_owned(),
            source: e.source.clone(),
            event_id: e.id.clone(),
            at: e.at_ms(),
            kind,
            agent: e.agent().map(str::to_owned),
            queue: e.queue().map(str::to_owned),
            call_id: e.call().map(str::to_owned),
            body: body.to_string(),
            call: CallPatch::from_event(tenant_id, e),
        }
    }
}

/// Rows per INSERT statement: 10 parameters each stays far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters.
const ROWS_PER_STATEMENT: usize = 1_000;
/// Rows one transaction of the writer takes from its queue at most.
const ROWS_PER_COMMIT: usize = 20_000;

/// Stores events in one transaction, in order, without going through a writer.
pub async fn append(store: &Store, scope: &TenantScope, events: &[&Event]) -> StoreResult<Vec<Stored>> {
    let rows: Vec<Row> = events.iter().map(|e| Row::new(scope.tenant_id(), e)).collect();
    let mut out = insert_rows(store, &[rows]).await?;
    Ok(out.pop().unwrap_or_default())
}

/// Inserts batches of rows in one transaction, many rows per statement; returns per batch what
/// became of each row. A key repeated within the batches is stored once, for its first row.
async fn insert_rows(store: &Store, batches: &[Vec<Row>]) -> StoreResult<Vec<Vec<Stored>>> {
    let received = now_ms();
    let all: Vec<&Row> = batches.iter().flatten().collect();
    let inserted: HashMap<(String, String, String), i64> = on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        let mut inserted = HashMap::with_capacity(all.len());
        for chunk in all.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<DB>::new(
                "INSERT INTO events (tenant_id, source, event_id, at, kind, agent, queue, call_id, body, received_at) ",
            );
            insert.push_values(chunk, |mut b, row| {
                b.push_bind(&row.tenant_id)
                    .push_bind(&row.source)
                    .push_bind(&row.event_id)
                    .push_bind(row.at)
                    .push_bind(&row.kind)
                    .push_bind(&row.agent)
                    .push_bind(&row.queue)
                    .push_bind(&row.call_id)
                    .push_bind(&row.body)
                    .push_bind(received);
            });
            insert.push(
                " ON CONFLICT (tenant_id, source, event_id) DO NOTHING RETURNING seq, tenant_id, source, event_id",
            );
            let rows: Vec<(i64, String, String, String)> = insert
                .build_query_as::<(i64, String, String, String)>()
                // One statement per batch size: caching them all would hold a prepared
                // statement for every size from 1 to 1,000 rows on every connection.
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            for (seq, tenant, source, id) in rows {
                inserted.insert((tenant, source, id), seq);
            }
        }
        // The history of the calls these events are about, from the events stored now (a
        // duplicate said nothing new), in the same transaction.
        let mut first = std::collections::HashSet::new();
        let accepted: Vec<&&Row> = all
            .iter()
            .filter(|r| {
                let key = (r.tenant_id.clone(), r.source.clone(), r.event_id.clone());
                inserted.contains_key(&key) && first.insert(key)
            })
            .collect();
        let patches = calls::fold(accepted.iter().filter_map(|r| r.call.clone()));
        fold_patches!(tx, DB, patches);
        // Agent reports of the days these events moved agents on are out of date.
        let agent_days: std::collections::BTreeSet<(String, i64)> = accepted
            .iter()
            .filter(|r| r.agent.is_some())
            .map(|r| (r.tenant_id.clone(), r.at.div_euclid(agent_reports::DAY_MS)))
            .collect();
        bump_days!(tx, DB, agent_days.into_iter().collect());
        tx.commit().await?;
        Ok::<_, sqlx::Error>(inserted)
    })?;
    let mut inserted = inserted;
    Ok(batches
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    // The first row with a key takes its sequence number; repeats are duplicates.
                    match inserted.remove(&(r.tenant_id.clone(), r.source.clone(), r.event_id.clone())) {
                        Some(seq) => Stored::Accepted(seq),
                        None => Stored::Duplicate,
                    }
                })
                .collect()
        })
        .collect())
}

struct Job {
    rows: Vec<Row>,
    reply: oneshot::Sender<StoreResult<Vec<Stored>>>,
}

/// The one writer of accepted events. Requests queue their batches; the writer stores whatever
/// has queued up in one transaction (group commit), so many small requests cost one commit and
/// SQLite's single writer never waits on itself. The queue is bounded: when it is full, a
/// request waits up to [`EventWriter::QUEUE_WAIT`] and is then refused as busy, so the caller
/// retries — nothing is dropped after it was acknowledged.
#[derive(Debug)]
pub struct EventWriter {
    store: Store,
    capacity: usize,
    queue: OnceLock<mpsc::Sender<Job>>,
}

impl EventWriter {
    /// How long a batch may wait for room in a full queue before it is refused.
    pub const QUEUE_WAIT: Duration = Duration::from_secs(2);

    /// A writer with room for `capacity` waiting batches. Its task starts at first use.
    pub fn new(store: Store, capacity: usize) -> Self {
        Self {
            store,
            capacity: capacity.max(1),
            queue: OnceLock::new(),
        }
    }

    fn sender(&self) -> &mpsc::Sender<Job> {
        self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(self.capacity);
            tokio::spawn(run_writer(self.store.clone(), rx));
            tx
        })
    }

    /// Stores the tenant's events, in order, once they are committed.
    pub async fn append(&self, scope: &TenantScope, events: &[&Event]) -> StoreResult<Vec<Stored>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = events.iter().map(|e| Row::new(scope.tenant_id(), e)).collect();
        let (reply, answer) = oneshot::channel();
        let job = Job { rows, reply };
        let queued = tokio::time::timeout(Self::QUEUE_WAIT, self.sender().send(job)).await;
        match queued {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(StoreError::Unavailable("the event writer has stopped".into())),
            Err(_) => {
                metrics::counter!("event_writer_refused_total").increment(1);
                return Err(StoreError::Busy(
                    "the event store is behind; nothing of this batch was stored, retry shortly".into(),
                ));
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the event writer has stopped".into())))
    }
}

async fn run_writer(store: Store, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        let mut rows = jobs[0].rows.len();
        while rows < ROWS_PER_COMMIT {
            match queue.try_recv() {
                Ok(job) => {
                    rows += job.rows.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<Vec<Row>>, Vec<_>) = jobs.into_iter().map(|j| (j.rows, j.reply)).unzip();
        let started = std::time::Instant::now();
        let result = insert_rows(&store, &batches).await;
        metrics::histogram!("event_writer_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("event_writer_commit_rows").record(rows as f64);
        match result {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, rows, "storing events failed; the senders are told");
                for reply in replies {
                    let shared = match &e {
                        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
                        other => StoreError::Internal(other.to_string()),
                    };
                    let _ = reply.send(Err(shared));
                }
            }
        }
    }
}

/// An agent's stored events from `from_ms` on, in time order, under any of the names events
/// may use for it (id, extension, interface).
pub async fn for_agent(
    store: &Store,
    scope: &TenantScope,
    names: &[&str],
    from_ms: i64,
    limit: i64,
) -> StoreResult<Vec<Event>> {
    for_agent_between(store, scope, names, from_ms, i64::MAX, limit).await
}

/// Events stored before the call history existed make their calls' history, once, in batches
/// by sequence number; each batch and how far it got are committed together, so an interrupted
/// run goes on where it stopped. Returns how many events were read.
pub async fn backfill_calls(store: &Store) -> StoreResult<u64> {
    const PROGRESS: &str = "calls.backfilled_seq";
    const DONE: &str = "done";
    const BATCH: i64 = 10_000;
    let mut after: i64 = match super::accounts::get_state(store, PROGRESS).await? {
        Some(v) if v == DONE => return Ok(0),
        Some(v) => v.parse().unwrap_or(0),
        None => 0,
    };
    // Events stored from now on fold themselves; only those before the last one here need it.
    let last: i64 = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, Option<i64>>("SELECT MAX(seq) FROM events")
            .fetch_one(pool)
            .await
    })?
    .unwrap_or(0);
    let mut read = 0u64;
    while after < last {
        let rows: Vec<(i64, String, String, String, i64, String)> = on_db!(&store.db, |pool, DB| {
            sqlx::query_as::<DB, (i64, String, String, String, i64, String)>(
                "SELECT seq, tenant_id, source, event_id, at, body FROM events WHERE seq > $1 AND seq <= $2 \
                 ORDER BY seq LIMIT $3",
            )
            .bind(after)
            .bind(last)
            .bind(BATCH)
            .fetch_all(pool)
            .await
        })?;
        let Some(&(next, ..)) = rows.last() else { break };
        read += rows.len() as u64;
        let patches = calls::fold(rows.into_iter().filter_map(|(_, tenant, source, id, at, body)| {
            let event = parse_rows(vec![(source, id, at, body)]).pop()?;
            CallPatch::from_event(&tenant, &event)
        }));
        on_db!(&store.db, |pool, DB| {
            let mut tx = pool.begin().await?;
            fold_patches!(tx, DB, patches);
            sqlx::query::<DB>(
                "INSERT INTO system_state (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(PROGRESS)
            .bind(next.to_string())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        after = next;
        tracing::info!(read, of_about = last, "building the call history from stored events");
    }
    super::accounts::set_state(store, PROGRESS, DONE).await?;
    Ok(read)
}

/// The tenant's stored events about one call between `from_ms` and `to_ms`, in the order they
/// happened.
pub async fn for_call(
    store: &Store,
    scope: &TenantScope,
    call_id: &str,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Vec<Event>> {
    let rows: Vec<(String, String, i64, String)> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (String, String, i64, String)>(
            "SELECT source, event_id, at, body FROM events WHERE tenant_id = $1 AND at >= $2 AND at <= $3 \
             AND call_id = $4 ORDER BY at, seq LIMIT 1000",
        )
        .bind(scope.tenant_id())
        .bind(from_ms)
        .bind(to_ms)
        .bind(call_id)
        .fetch_all(pool)
        .await
    })?;
    Ok(parse_rows(rows))
}

/// The tenant's stored events of these agents (under any of their names) from `from_ms` to
/// `to_ms`, in the order they happened, at most `limit`: what the agents did around a call.
pub async fn for_agent_between(
    store: &Store,
    scope: &TenantScope,
    names: &[&str],
    from_ms: i64,
    to_ms: i64,
    limit: i64,
) -> StoreResult<Vec<Event>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, i64, String)> = on_db!(&store.db, |pool, DB| {
        let mut q = sqlx::QueryBuilder::<DB>::new("SELECT source, event_id, at, body FROM events WHERE tenant_id = ");
        q.push_bind(scope.tenant_id()).push(" AND agent IN (");
        let mut list = q.separated(", ");
        for name in names {
            list.push_bind(*name);
        }
        q.push(") AND at >= ")
            .push_bind(from_ms)
            .push(" AND at <= ")
            .push_bind(to_ms)
            .push(" ORDER BY at, seq LIMIT ")
            .push_bind(limit);
        q.build_query_as::<(String, String, i64, String)>()
            .fetch_all(pool)
            .await
    })?;
    Ok(parse_rows(rows))
}

/// Deletes the tenant's events older than `before_ms`, at most `limit` at a time (so a large
/// backlog does not hold the database in one long transaction). Returns how many went.
pub async fn delete_older_than(store: &Store, tenant: &TenantId, before_ms: i64, limit: i64) -> StoreResult<u64> {
    let tenant_id = tenant.as_str();
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "DELETE FROM events WHERE seq IN \
             (SELECT seq FROM events WHERE tenant_id = $1 AND at < $2 ORDER BY at LIMIT $3)",
        )
        .bind(tenant_id)
        .bind(before_ms)
        .bind(limit)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
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
    Ok(parse_rows(rows))
}

pub(super) fn parse_rows(rows: Vec<(String, String, i64, String)>) -> Vec<Event> {
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
    events
}
