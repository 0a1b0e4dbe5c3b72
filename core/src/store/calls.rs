//! Call history: one row per call in a queue (a caller who moved on from one queue to another
//! has a row in each) or per call outside queues, folded from the accepted events in the same
//! transaction that stores them, and completed by imported CDRs (caller, destination,
//! disposition). Events only ever add to a row, in any order: the earliest start, the outcome
//! that came last in time, the first answer, the latest end. A caller who joins the same queue
//! again under the same call id is one row (the live board counts each attempt).

use std::collections::HashMap;

use super::call_records::CallRecord;
use super::{Backend, Store, StoreResult, TenantScope};
use crate::domain::events::{Direction, Event, EventBody, LeaveReason};
use crate::on_db;

/// What one or more events say about a call in a queue.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CallPatch {
    pub tenant_id: String,
    pub call_id: String,
    /// `""` for a call outside queues.
    pub queue: String,
    pub agent: Option<String>,
    pub direction: Option<&'static str>,
    pub started_at: i64,
    pub outcome: Option<&'static str>,
    pub outcome_at: Option<i64>,
    pub wait_s: Option<f64>,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub talk_s: Option<f64>,
    pub hold_s: Option<f64>,
    pub wrap_s: Option<f64>,
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
        Direction::Internal => "internal",
    }
}

fn leave_outcome(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::Abandon => "abandoned",
        LeaveReason::Timeout => "timeout",
        LeaveReason::Full => "full",
        LeaveReason::JoinEmpty => "join_empty",
    }
}

/// Seconds before `at_ms`, in ms (a start inferred from a wait or a talk time).
fn before(at_ms: i64, seconds: f64) -> i64 {
    at_ms - (seconds.max(0.0) * 1000.0).round() as i64
}

impl CallPatch {
    fn empty(tenant_id: &str, call: &str, queue: Option<&str>, started_at: i64) -> Self {
        CallPatch {
            tenant_id: tenant_id.to_owned(),
            call_id: call.to_owned(),
            queue: queue.unwrap_or_default().to_owned(),
            agent: None,
            direction: None,
            started_at,
            outcome: None,
            outcome_at: None,
            wait_s: None,
            answered_at: None,
            ended_at: None,
            talk_s: None,
            hold_s: None,
            wrap_s: None,
        }
    }

    /// What `event` says about its call, if it is about one.
    pub fn from_event(tenant_id: &str, event: &Event) -> Option<Self> {
        let at = event.at_ms();
        Some(match &event.body {
            EventBody::CallerJoin { queue, call } => CallPatch {
                direction: Some("inbound"),
                ..Self::empty(tenant_id, call, Some(queue), at)
            },
            EventBody::CallerAnswer {
                queue,
                call,
                agent,
                wait_s,
            } => CallPatch {
                agent: Some(agent.clone()),
                direction: Some("inbound"),
                outcome: Some("answered"),
                outcome_at: Some(at),
                wait_s: Some(*wait_s),
                answered_at: Some(at),
                ..Self::empty(tenant_id, call, Some(queue), before(at, *wait_s))
            },
            EventBody::CallerLeave {
                queue,
                call,
                reason,
                wait_s,
            } => CallPatch {
                direction: Some("inbound"),
                outcome: Some(leave_outcome(*reason)),
                outcome_at: Some(at),
                wait_s: Some(*wait_s),
                ended_at: Some(at),
                ..Self::empty(tenant_id, call, Some(queue), before(at, *wait_s))
            },
            EventBody::CallStart {
                call,
                agent,
                queue,
                direction,
            } => CallPatch {
                agent: Some(agent.clone()),
                direction: Some(direction_name(*direction)),
                // A call outside queues is answered when it starts; a queue call's outcome is
                // its queue's to say.
                outcome: queue.is_none().then_some("answered"),
                outcome_at: queue.is_none().then_some(at),
                answered_at: Some(at),
                ..Self::empty(tenant_id, call, queue.as_deref(), at)
            },
            EventBody::CallEnd {
                call,
                agent,
                queue,
                talk_s,
                hold_s,
                wrap_s,
            } => CallPatch {
                agent: Some(agent.clone()),
                ended_at: Some(at),
                talk_s: Some(*talk_s),
                hold_s: Some(*hold_s),
                wrap_s: *wrap_s,
                ..Self::empty(tenant_id, call, queue.as_deref(), before(at, talk_s + hold_s))
            },
            EventBody::AgentLogin { .. } | EventBody::AgentLogout { .. } | EventBody::AgentState { .. } => return None,
        })
    }

    fn key(&self) -> (String, String, String) {
        (self.tenant_id.clone(), self.call_id.clone(), self.queue.clone())
    }

    /// Folds a later patch of the same call into this one, as [`UPSERT`] folds a patch into a
    /// stored row.
    fn absorb(&mut self, later: CallPatch) {
        fn latest<T>(mine: &mut Option<T>, later: Option<T>) {
            if later.is_some() {
                *mine = later;
            }
        }
        fn earliest(mine: &mut Option<i64>, later: Option<i64>) {
            if let Some(l) = later
                && mine.is_none_or(|m| l < m)
            {
                *mine = Some(l);
            }
        }
        latest(&mut self.agent, later.agent);
        latest(&mut self.direction, later.direction);
        self.started_at = self.started_at.min(later.started_at);
        // The outcome is the one that came last in time, whatever order the events arrive in.
        if later.outcome_at.is_some() && (self.outcome_at.is_none() || later.outcome_at >= self.outcome_at) {
            latest(&mut self.outcome, later.outcome);
            latest(&mut self.wait_s, later.wait_s);
            self.outcome_at = later.outcome_at;
        }
        earliest(&mut self.answered_at, later.answered_at);
        // The handling is the one that ended last in time too.
        if self.ended_at.is_none() || later.ended_at.is_some_and(|l| Some(l) >= self.ended_at) {
            latest(&mut self.talk_s, later.talk_s);
            latest(&mut self.hold_s, later.hold_s);
            latest(&mut self.wrap_s, later.wrap_s);
        }
        if later.ended_at > self.ended_at {
            self.ended_at = later.ended_at;
        }
    }
}

/// Patches folded into one per call and queue, in the order the calls first appear.
pub(super) fn fold(patches: impl IntoIterator<Item = CallPatch>) -> Vec<CallPatch> {
    let mut order: Vec<CallPatch> = Vec::new();
    let mut index: HashMap<(String, String, String), usize> = HashMap::new();
    for patch in patches {
        match index.get(&patch.key()) {
            Some(&i) => order[i].absorb(patch),
            None => {
                index.insert(patch.key(), order.len());
                order.push(patch);
            }
        }
    }
    order
}

/// Rows per upsert: 14 parameters each.
pub(super) const PATCHES_PER_STATEMENT: usize = 1_000;

pub(super) const INSERT_PATCHES: &str = "INSERT INTO calls (tenant_id, call_id, queue, agent, direction, started_at, \
     outcome, outcome_at, wait_s, answered_at, ended_at, talk_s, hold_s, wrap_s) ";

/// How a patch meets a stored row (the same rules as [`CallPatch::absorb`]).
pub(super) const UPSERT: &str = " ON CONFLICT (tenant_id, call_id, queue) DO UPDATE SET \
     agent = COALESCE(excluded.agent, calls.agent), \
     direction = COALESCE(excluded.direction, calls.direction), \
     started_at = CASE WHEN excluded.started_at < calls.started_at THEN excluded.started_at ELSE calls.started_at END, \
     outcome = CASE WHEN calls.outcome_at IS NULL OR excluded.outcome_at >= calls.outcome_at \
         THEN COALESCE(excluded.outcome, calls.outcome) ELSE calls.outcome END, \
     wait_s = CASE WHEN calls.outcome_at IS NULL OR excluded.outcome_at >= calls.outcome_at \
         THEN COALESCE(excluded.wait_s, calls.wait_s) ELSE calls.wait_s END, \
     outcome_at = CASE WHEN calls.outcome_at IS NULL OR excluded.outcome_at >= calls.outcome_at \
         THEN COALESCE(excluded.outcome_at, calls.outcome_at) ELSE calls.outcome_at END, \
     answered_at = CASE WHEN calls.answered_at IS NULL OR excluded.answered_at < calls.answered_at \
         THEN COALESCE(excluded.answered_at, calls.answered_at) ELSE calls.answered_at END, \
     ended_at = CASE WHEN calls.ended_at IS NULL OR excluded.ended_at > calls.ended_at \
         THEN COALESCE(excluded.ended_at, calls.ended_at) ELSE calls.ended_at END, \
     talk_s = CASE WHEN calls.ended_at IS NULL OR excluded.ended_at >= calls.ended_at \
         THEN COALESCE(excluded.talk_s, calls.talk_s) ELSE calls.talk_s END, \
     hold_s = CASE WHEN calls.ended_at IS NULL OR excluded.ended_at >= calls.ended_at \
         THEN COALESCE(excluded.hold_s, calls.hold_s) ELSE calls.hold_s END, \
     wrap_s = CASE WHEN calls.ended_at IS NULL OR excluded.ended_at >= calls.ended_at \
         THEN COALESCE(excluded.wrap_s, calls.wrap_s) ELSE calls.wrap_s END";

/// Folds patches into the history inside the caller's transaction `$tx` (on backend `$DB`), so
/// that events and the history they make are stored together or not at all.
macro_rules! fold_patches {
    ($tx:expr, $DB:ty, $patches:expr) => {
        for chunk in $patches.chunks($crate::store::calls::PATCHES_PER_STATEMENT) {
            let mut upsert = ::sqlx::QueryBuilder::<$DB>::new($crate::store::calls::INSERT_PATCHES);
            upsert.push_values(chunk, |mut b, p| {
                b.push_bind(&p.tenant_id)
                    .push_bind(&p.call_id)
                    .push_bind(&p.queue)
                    .push_bind(&p.agent)
                    .push_bind(p.direction)
                    .push_bind(p.started_at)
                    .push_bind(p.outcome)
                    .push_bind(p.outcome_at)
                    .push_bind(p.wait_s)
                    .push_bind(p.answered_at)
                    .push_bind(p.ended_at)
                    .push_bind(p.talk_s)
                    .push_bind(p.hold_s)
                    .push_bind(p.wrap_s);
            });
            upsert.push($crate::store::calls::UPSERT);
            upsert.build().persistent(false).execute(&mut *$tx).await?;
        }
        // Queue reports of the days these patches changed are out of date. (A patch changes a
        // queue's figures only where its own outcome or end falls: an earlier one loses to what
        // the row has. A call moved off a day is the triggers' of migration 0018.)
        let days = $crate::store::calls::queue_days(&$patches);
        for chunk in days.chunks(1_000) {
            let mut bump =
                ::sqlx::QueryBuilder::<$DB>::new("INSERT INTO report_versions (tenant_id, queue, day, version) ");
            bump.push_values(chunk, |mut b, (tenant, queue, day)| {
                b.push_bind(tenant).push_bind(queue).push_bind(*day).push_bind(1_i64);
            });
            bump.push(" ON CONFLICT (tenant_id, queue, day) DO UPDATE SET version = report_versions.version + 1");
            bump.build().persistent(false).execute(&mut *$tx).await?;
        }
    };
}

/// The (tenant, queue, UTC day) each patch's outcome or end falls on, once each.
pub(super) fn queue_days(patches: &[CallPatch]) -> Vec<(String, String, i64)> {
    let days: std::collections::BTreeSet<(&str, &str, i64)> = patches
        .iter()
        .filter(|p| !p.queue.is_empty())
        .flat_map(|p| {
            [p.outcome_at, p.ended_at]
                .into_iter()
                .flatten()
                .map(move |t| (p.tenant_id.as_str(), p.queue.as_str(), t.div_euclid(86_400_000)))
        })
        .collect();
    days.into_iter()
        .map(|(t, q, d)| (t.to_owned(), q.to_owned(), d))
        .collect()
}
pub(super) use fold_patches;

/// What imported CDRs add to the calls they belong to: caller and destination as first
/// recorded, `ANSWERED` if any leg was, the longest billed leg. A call no event told of gets a
/// row of its own (outside queues) from its records.
pub async fn complete_from_records(store: &Store, scope: &TenantScope, records: &[CallRecord]) -> StoreResult<()> {
    struct Merged<'a> {
        caller: &'a str,
        destination: &'a str,
        disposition: &'a str,
        billsec_s: i64,
        started_at: i64,
        answered_at: Option<i64>,
        ended_at: i64,
    }
    let mut by_call: Vec<(&str, Merged)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    // A CDR without the PBX's unique id (the 16-column format) belongs to no call we know.
    for r in records.iter().filter(|r| !r.call_id.is_empty()) {
        match index.get(r.call_id.as_str()) {
            Some(&i) => {
                let m = &mut by_call[i].1;
                if r.disposition == "ANSWERED" {
                    m.disposition = "ANSWERED";
                }
                m.billsec_s = m.billsec_s.max(r.billsec_s);
                m.started_at = m.started_at.min(r.started_at);
                m.answered_at = match (m.answered_at, r.answered_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                m.ended_at = m.ended_at.max(r.ended_at);
            }
            None => {
                index.insert(&r.call_id, by_call.len());
                by_call.push((
                    &r.call_id,
                    Merged {
                        caller: &r.caller,
                        destination: &r.destination,
                        disposition: &r.disposition,
                        billsec_s: r.billsec_s,
                        started_at: r.started_at,
                        answered_at: r.answered_at,
                        ended_at: r.ended_at,
                    },
                ));
            }
        }
    }
    let tenant = scope.tenant_id();
    on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        for (call_id, m) in &by_call {
            let updated = sqlx::query::<DB>(
                "UPDATE calls SET caller = COALESCE(caller, $3), destination = COALESCE(destination, $4), \
                 disposition = CASE WHEN disposition = 'ANSWERED' THEN disposition ELSE $5 END, \
                 billsec_s = CASE WHEN billsec_s IS NULL OR billsec_s < $6 THEN $6 ELSE billsec_s END \
                 WHERE tenant_id = $1 AND call_id = $2",
            )
            .bind(tenant)
            .bind(*call_id)
            .bind(m.caller)
            .bind(m.destination)
            .bind(m.disposition)
            .bind(m.billsec_s)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                let answered = m.disposition == "ANSWERED";
                sqlx::query::<DB>(
                    "INSERT INTO calls (tenant_id, call_id, queue, started_at, outcome, outcome_at, answered_at, \
                     ended_at, talk_s, caller, destination, disposition, billsec_s) \
                     VALUES ($1, $2, '', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (tenant_id, call_id, queue) DO NOTHING",
                )
                .bind(tenant)
                .bind(*call_id)
                .bind(m.started_at)
                .bind(answered.then_some("answered"))
                .bind(answered.then_some(m.answered_at.unwrap_or(m.started_at)))
                .bind(m.answered_at)
                .bind(m.ended_at)
                .bind(answered.then_some(m.billsec_s as f64))
                .bind(m.caller)
                .bind(m.destination)
                .bind(m.disposition)
                .bind(m.billsec_s)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(())
    })?;
    Ok(())
}

/// One call in a queue (or outside queues), as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CallRow {
    pub call_id: String,
    /// `""` outside queues.
    pub queue: String,
    pub agent: Option<String>,
    pub direction: Option<String>,
    pub started_at: i64,
    pub outcome: Option<String>,
    pub outcome_at: Option<i64>,
    pub wait_s: Option<f64>,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub talk_s: Option<f64>,
    pub hold_s: Option<f64>,
    pub wrap_s: Option<f64>,
    pub caller: Option<String>,
    pub destination: Option<String>,
    pub disposition: Option<String>,
    pub billsec_s: Option<i64>,
}

impl CallRow {
    /// Seconds from the start to the hang-up (or to leaving the queue); `None` while it lasts.
    pub fn duration_s(&self) -> Option<f64> {
        self.ended_at
            .or(self.outcome_at.filter(|_| self.answered_at.is_none()))
            .map(|end| (end - self.started_at).max(0) as f64 / 1000.0)
    }

    /// Where the next page starts.
    pub fn cursor(&self) -> CallCursor {
        CallCursor {
            started_at: self.started_at,
            call_id: self.call_id.clone(),
            queue: self.queue.clone(),
        }
    }
}

const COLUMNS: &str = "call_id, queue, agent, direction, started_at, outcome, outcome_at, wait_s, answered_at, \
     ended_at, talk_s, hold_s, wrap_s, caller, destination, disposition, billsec_s";

/// Where a page of calls ends: the last row's position in the newest-first order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCursor {
    pub started_at: i64,
    pub call_id: String,
    pub queue: String,
}

/// Which calls: a time range on the start, and any of the rest. Values are matched as given;
/// the service checks them and resolves names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallFilter {
    /// Started at or after (Unix ms).
    pub from_ms: i64,
    /// Started before (Unix ms).
    pub to_ms: i64,
    /// In one of these queues (as events name them; `""` for calls outside queues).
    pub queues: Option<Vec<String>>,
    /// Handled by one of these (the names events use for them); an empty list admits none.
    pub agents: Option<Vec<String>>,
    pub direction: Option<String>,
    pub outcome: Option<String>,
    pub disposition: Option<String>,
    pub caller_prefix: Option<String>,
    pub destination_prefix: Option<String>,
    pub min_duration_s: Option<i64>,
    pub max_duration_s: Option<i64>,
    /// Counted in a queue's figures (answered or left) within this range (Unix ms) instead of
    /// started in `from_ms..to_ms`: what a report's cell counts.
    pub outcome_between: Option<(i64, i64)>,
    /// Handled (talked to an agent), the handling ended within this range (Unix ms) instead of
    /// started in `from_ms..to_ms`: what an agent report's calls handled count.
    pub ended_between: Option<(i64, i64)>,
}

/// The end of the text range that holds every string starting with `prefix` (byte order).
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// Pushes `filter`'s conditions (after `WHERE tenant_id = …`).
macro_rules! push_filter {
    ($q:expr, $filter:expr, $collate:expr) => {{
        let f: &CallFilter = $filter;
        match (f.outcome_between, f.ended_between) {
            (Some((from, to)), _) => {
                $q.push(" AND outcome_at >= ")
                    .push_bind(from)
                    .push(" AND outcome_at < ")
                    .push_bind(to);
            }
            (None, Some((from, to))) => {
                $q.push(" AND ended_at >= ")
                    .push_bind(from)
                    .push(" AND ended_at < ")
                    .push_bind(to)
                    .push(" AND talk_s IS NOT NULL");
            }
            (None, None) => {
                $q.push(" AND started_at >= ")
                    .push_bind(f.from_ms)
                    .push(" AND started_at < ")
                    .push_bind(f.to_ms);
            }
        }
        for (column, names) in [("queue", &f.queues), ("agent", &f.agents)] {
            match names {
                None => {}
                Some(names) if names.is_empty() => {
                    $q.push(" AND 1 = 0");
                }
                Some(names) => {
                    $q.push(format!(" AND {column} IN ("));
                    let mut list = $q.separated(", ");
                    for name in names {
                        list.push_bind(name.clone());
                    }
                    $q.push(")");
                }
            }
        }
        for (column, value) in [
            ("direction", &f.direction),
            ("outcome", &f.outcome),
            ("disposition", &f.disposition),
        ] {
            if let Some(v) = value {
                $q.push(format!(" AND {column} = ")).push_bind(v.clone());
            }
        }
        for (column, value) in [("caller", &f.caller_prefix), ("destination", &f.destination_prefix)] {
            if let Some(p) = value {
                $q.push(format!(" AND {column}{} >= ", $collate))
                    .push_bind(p.clone())
                    .push(format!(" AND {column}{} < ", $collate))
                    .push_bind(prefix_end(p));
            }
        }
        // As `CallRow::duration_s`: none while the call lasts (such a call matches neither).
        let duration_ms = "(CASE WHEN ended_at IS NOT NULL THEN ended_at \
             WHEN answered_at IS NULL THEN outcome_at END - started_at)";
        if let Some(min) = f.min_duration_s {
            $q.push(format!(" AND {duration_ms} >= "))
                .push_bind(min.saturating_mul(1000));
        }
        if let Some(max) = f.max_duration_s {
            $q.push(format!(" AND {duration_ms} <= "))
                .push_bind(max.saturating_mul(1000));
        }
    }};
}

/// Byte-order comparison for prefix ranges (PostgreSQL's default collation is linguistic).
fn collate(store: &Store) -> &'static str {
    match store.db.backend() {
        Backend::Sqlite => "",
        Backend::Postgres => " COLLATE \"C\"",
    }
}

/// Pushes the keyset condition: calls after the cursor, newest first.
macro_rules! push_after {
    ($q:expr, $after:expr) => {
        if let Some(c) = $after {
            $q.push(" AND (started_at, call_id, queue) < (")
                .push_bind(c.started_at)
                .push(", ")
                .push_bind(c.call_id.clone())
                .push(", ")
                .push_bind(c.queue.clone())
                .push(")");
        }
    };
}

/// The most values a caller or destination prefix is split into for a page.
const PREFIX_VALUES: usize = 32;

/// The distinct values of `column` (`caller` or `destination`) that start with `prefix`, each
/// found by one seek in the column's index; `None` when there are more than [`PREFIX_VALUES`].
async fn prefix_values(
    store: &Store,
    scope: &TenantScope,
    column: &str,
    prefix: &str,
) -> StoreResult<Option<Vec<String>>> {
    let collate = collate(store);
    let end = prefix_end(prefix);
    let mut values: Vec<String> = Vec::new();
    loop {
        let (after, op) = match values.last() {
            Some(last) => (last.as_str(), ">"),
            None => (prefix, ">="),
        };
        let sql = format!(
            "SELECT MIN({column}{collate}) FROM calls WHERE tenant_id = $1 \
             AND {column}{collate} {op} $2 AND {column}{collate} < $3"
        );
        let next: Option<String> = on_db!(&store.db, |pool, DB| {
            sqlx::query_scalar::<DB, Option<String>>(&sql)
                .bind(scope.tenant_id())
                .bind(after)
                .bind(&end)
                .fetch_one(pool)
                .await
        })?;
        match next {
            None => return Ok(Some(values)),
            Some(_) if values.len() == PREFIX_VALUES => return Ok(None),
            Some(value) => values.push(value),
        }
    }
}

/// Up to `limit` of the tenant's calls matching `filter`, newest first, after `after`.
///
/// A caller or destination prefix is a range of the column's index, which is not in time
/// order: a planner that reads the range and sorts it reads every call of a busy DID in the
/// period (hundreds of thousands at 10 M calls). A prefix that stands for a few numbers (a DID, a
/// caller's whole number) is therefore read as one index walk per number, each already in time
/// order and stopped after `limit` rows, merged newest first.
pub async fn page(
    store: &Store,
    scope: &TenantScope,
    filter: &CallFilter,
    after: Option<&CallCursor>,
    limit: i64,
) -> StoreResult<Vec<CallRow>> {
    for column in ["destination", "caller"] {
        let prefix = match column {
            "destination" => filter.destination_prefix.as_deref(),
            _ => filter.caller_prefix.as_deref(),
        };
        let Some(prefix) = prefix else { continue };
        let Some(values) = prefix_values(store, scope, column, prefix).await? else {
            continue;
        };
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let mut rest = filter.clone();
        match column {
            "destination" => rest.destination_prefix = None,
            _ => rest.caller_prefix = None,
        }
        return page_of_values(store, scope, &rest, column, &values, after, limit).await;
    }
    let collate = collate(store);
    Ok(on_db!(&store.db, |pool, DB| {
        let mut q = sqlx::QueryBuilder::<DB>::new(format!("SELECT {COLUMNS} FROM calls WHERE tenant_id = "));
        q.push_bind(scope.tenant_id());
        push_filter!(q, filter, collate);
        push_after!(q, after);
        q.push(" ORDER BY started_at DESC, call_id DESC, queue DESC LIMIT ")
            .push_bind(limit);
        q.build_query_as::<CallRow>().fetch_all(pool).await
    })?)
}

/// [`page`] for calls whose `column` is one of `values`: the newest `limit` of each value,
/// merged.
async fn page_of_values(
    store: &Store,
    scope: &TenantScope,
    filter: &CallFilter,
    column: &str,
    values: &[String],
    after: Option<&CallCursor>,
    limit: i64,
) -> StoreResult<Vec<CallRow>> {
    let collate = collate(store);
    Ok(on_db!(&store.db, |pool, DB| {
        let mut q = sqlx::QueryBuilder::<DB>::new("");
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ALL ");
            }
            q.push(format!("SELECT * FROM (SELECT {COLUMNS} FROM calls WHERE tenant_id = "));
            q.push_bind(scope.tenant_id());
            push_filter!(q, filter, collate);
            q.push(format!(" AND {column}{collate} = ")).push_bind(value.clone());
            push_after!(q, after);
            q.push(" ORDER BY started_at DESC, call_id DESC, queue DESC LIMIT ")
                .push_bind(limit)
                .push(format!(") AS v{i}"));
        }
        q.push(" ORDER BY started_at DESC, call_id DESC, queue DESC LIMIT ")
            .push_bind(limit);
        q.build_query_as::<CallRow>().fetch_all(pool).await
    })?)
}

/// How many of the tenant's calls match `filter`.
pub async fn count(store: &Store, scope: &TenantScope, filter: &CallFilter) -> StoreResult<i64> {
    let collate = collate(store);
    Ok(on_db!(&store.db, |pool, DB| {
        let mut q = sqlx::QueryBuilder::<DB>::new("SELECT COUNT(*) FROM calls WHERE tenant_id = ");
        q.push_bind(scope.tenant_id());
        push_filter!(q, filter, collate);
        q.build_query_scalar::<i64>().fetch_one(pool).await
    })?)
}

/// Every row of one call (a row per queue it went through), earliest first.
pub async fn by_id(store: &Store, scope: &TenantScope, call_id: &str) -> StoreResult<Vec<CallRow>> {
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, CallRow>(&format!(
            "SELECT {COLUMNS} FROM calls WHERE tenant_id = $1 AND call_id = $2 ORDER BY started_at, queue"
        ))
        .bind(scope.tenant_id())
        .bind(call_id)
        .fetch_all(pool)
        .await
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event(at_s: i64, body: EventBody) -> Event {
        Event {
            v: 1,
            id: format!("e{at_s}"),
            source: "test".into(),
            at: chrono::Utc.timestamp_opt(1_800_000_000 + at_s, 0).unwrap(),
            body,
        }
    }

    const T: i64 = 1_800_000_000_000;

    fn patches<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<CallPatch> {
        fold(events.into_iter().filter_map(|e| CallPatch::from_event("t", e)))
    }

    #[test]
    fn a_queue_call_folds_into_one_row_in_any_order() {
        let events = [
            event(
                0,
                EventBody::CallerJoin {
                    queue: "sales".into(),
                    call: "c1".into(),
                },
            ),
            event(
                12,
                EventBody::CallerAnswer {
                    queue: "sales".into(),
                    call: "c1".into(),
                    agent: "1001".into(),
                    wait_s: 12.0,
                },
            ),
            event(
                12,
                EventBody::CallStart {
                    call: "c1".into(),
                    agent: "1001".into(),
                    queue: Some("sales".into()),
                    direction: Direction::Inbound,
                },
            ),
            event(
                100,
                EventBody::CallEnd {
                    call: "c1".into(),
                    agent: "1001".into(),
                    queue: Some("sales".into()),
                    talk_s: 80.0,
                    hold_s: 8.0,
                    wrap_s: Some(30.0),
                },
            ),
        ];
        let forward = patches(&events);
        let backward = patches(events.iter().rev());
        assert_eq!(forward.len(), 1);
        let call = &forward[0];
        assert_eq!(call.started_at, T);
        assert_eq!((call.outcome, call.outcome_at), (Some("answered"), Some(T + 12_000)));
        assert_eq!((call.answered_at, call.ended_at), (Some(T + 12_000), Some(T + 100_000)));
        assert_eq!(
            (call.talk_s, call.hold_s, call.wrap_s),
            (Some(80.0), Some(8.0), Some(30.0))
        );
        assert_eq!(call.agent.as_deref(), Some("1001"));
        assert_eq!(&backward[0], call, "the same row whatever order the events came in");
    }

    #[test]
    fn the_handling_is_the_one_that_ended_last_in_time() {
        let end = |at_s: i64, talk_s: f64| {
            event(
                at_s,
                EventBody::CallEnd {
                    call: "c1".into(),
                    agent: "1001".into(),
                    queue: Some("sales".into()),
                    talk_s,
                    hold_s: 0.0,
                    wrap_s: None,
                },
            )
        };
        let (first, last) = (end(100, 60.0), end(160, 120.0));
        // In either order (a retried batch delivers the earlier end last), the later end stands.
        for order in [[&first, &last], [&last, &first]] {
            let rows = patches(order);
            assert_eq!((rows[0].ended_at, rows[0].talk_s), (Some(T + 160_000), Some(120.0)));
        }
    }

    #[test]
    fn the_outcome_is_the_one_that_came_last_in_time() {
        let answered = event(
            12,
            EventBody::CallerAnswer {
                queue: "sales".into(),
                call: "c1".into(),
                agent: "1001".into(),
                wait_s: 12.0,
            },
        );
        // A leave reported for an earlier moment (a retried batch) does not undo the answer.
        let left_before = event(
            5,
            EventBody::CallerLeave {
                queue: "sales".into(),
                call: "c1".into(),
                reason: LeaveReason::Timeout,
                wait_s: 5.0,
            },
        );
        for order in [[&answered, &left_before], [&left_before, &answered]] {
            let rows = patches(order);
            assert_eq!(rows[0].outcome, Some("answered"));
            assert_eq!((rows[0].outcome_at, rows[0].wait_s), (Some(T + 12_000), Some(12.0)));
        }
    }

    #[test]
    fn a_caller_moving_on_has_a_row_per_queue_and_direct_calls_have_their_own() {
        let events = [
            event(
                30,
                EventBody::CallerLeave {
                    queue: "sales".into(),
                    call: "c1".into(),
                    reason: LeaveReason::Timeout,
                    wait_s: 30.0,
                },
            ),
            event(
                35,
                EventBody::CallerLeave {
                    queue: "support".into(),
                    call: "c1".into(),
                    reason: LeaveReason::Abandon,
                    wait_s: 5.0,
                },
            ),
            event(
                40,
                EventBody::CallStart {
                    call: "c2".into(),
                    agent: "1002".into(),
                    queue: None,
                    direction: Direction::Outbound,
                },
            ),
        ];
        let rows = patches(&events);
        let got: Vec<_> = rows
            .iter()
            .map(|p| (p.call_id.as_str(), p.queue.as_str(), p.outcome, p.started_at))
            .collect();
        assert_eq!(
            got,
            [
                ("c1", "sales", Some("timeout"), T),
                ("c1", "support", Some("abandoned"), T + 30_000),
                ("c2", "", Some("answered"), T + 40_000),
            ]
        );
        assert_eq!(rows[2].direction, Some("outbound"));
    }

    #[test]
    fn agent_events_are_not_calls() {
        let e = event(0, EventBody::AgentLogin { agent: "1001".into() });
        assert!(patches([&e]).is_empty());
    }
}
