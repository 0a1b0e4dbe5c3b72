//! Saved reports and their schedules (migration 0021). The service checks what is stored and
//! works out when a schedule runs next; the store keeps it and hands due ones to one runner.

use sqlx::types::Json;

use super::{Store, StoreError, StoreResult, TenantId, TenantScope};
use crate::domain::new_id;
use crate::domain::time::now_ms;
use crate::on_db;

/// A saved report as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SavedReportRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// JSON object of the report's parameters without its range.
    pub params: String,
    pub period: String,
    pub range_from: Option<String>,
    pub range_to: Option<String>,
    pub owner: String,
    pub frequency: Option<String>,
    pub weekday: Option<String>,
    pub send_at: Option<String>,
    pub recipients: Json<Vec<String>>,
    pub next_run_at: Option<i64>,
    pub last_run_at: Option<i64>,
    pub last_error: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What the service stores (checked already).
#[derive(Debug, Clone)]
pub struct SavedReportInput {
    pub name: String,
    pub kind: String,
    pub params: String,
    pub period: String,
    pub range_from: Option<String>,
    pub range_to: Option<String>,
    pub frequency: Option<String>,
    pub weekday: Option<String>,
    pub send_at: Option<String>,
    pub recipients: Vec<String>,
    pub next_run_at: Option<i64>,
}

/// A scheduled report that is due, with the tenant it belongs to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueReport {
    pub tenant_id: TenantId,
    pub tenant_slug: String,
    #[sqlx(flatten)]
    pub report: SavedReportRow,
}

const COLUMNS: &str = "id, name, kind, params, period, range_from, range_to, owner, frequency, weekday, \
     send_at, recipients, next_run_at, last_run_at, last_error, version, created_at, updated_at";

/// The most saved reports a tenant keeps.
pub const MAX_PER_TENANT: i64 = 500;

fn name_taken(e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict { .. } => StoreError::Conflict {
            field: Some("name".into()),
            message: "a saved report with this name exists".into(),
        },
        other => other,
    }
}

pub async fn list(store: &Store, scope: &TenantScope) -> StoreResult<Vec<SavedReportRow>> {
    let sql = format!("SELECT {COLUMNS} FROM saved_reports WHERE tenant_id = $1 ORDER BY name, id");
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, SavedReportRow>(&sql)
            .bind(scope.tenant_id())
            .fetch_all(pool)
            .await
    })?)
}

pub async fn get(store: &Store, scope: &TenantScope, id: &str) -> StoreResult<SavedReportRow> {
    let sql = format!("SELECT {COLUMNS} FROM saved_reports WHERE tenant_id = $1 AND id = $2");
    on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, SavedReportRow>(&sql)
            .bind(scope.tenant_id())
            .bind(id)
            .fetch_optional(pool)
            .await
    })?
    .ok_or(StoreError::NotFound { kind: "saved report" })
}

pub async fn create(
    store: &Store,
    scope: &TenantScope,
    owner: &str,
    input: &SavedReportInput,
) -> StoreResult<SavedReportRow> {
    let count: i64 = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM saved_reports WHERE tenant_id = $1")
            .bind(scope.tenant_id())
            .fetch_one(pool)
            .await
    })?;
    if count >= MAX_PER_TENANT {
        return Err(StoreError::LimitReached(format!(
            "a tenant keeps at most {MAX_PER_TENANT} saved reports; delete some first"
        )));
    }
    let id = new_id("report");
    let now = now_ms();
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "INSERT INTO saved_reports (tenant_id, id, name, kind, params, period, range_from, range_to, owner, \
             frequency, weekday, send_at, recipients, next_run_at, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1, $15, $15)",
        )
        .bind(scope.tenant_id())
        .bind(&id)
        .bind(&input.name)
        .bind(&input.kind)
        .bind(&input.params)
        .bind(&input.period)
        .bind(&input.range_from)
        .bind(&input.range_to)
        .bind(owner)
        .bind(&input.frequency)
        .bind(&input.weekday)
        .bind(&input.send_at)
        .bind(Json(&input.recipients))
        .bind(input.next_run_at)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .map_err(|e| name_taken(e.into()))?;
    get(store, scope, &id).await
}

/// Replaces what a saved report holds (not its owner), at `version` when one is given.
pub async fn update(
    store: &Store,
    scope: &TenantScope,
    id: &str,
    version: Option<i64>,
    input: &SavedReportInput,
) -> StoreResult<SavedReportRow> {
    let current = get(store, scope, id).await?;
    if version.is_some_and(|v| v != current.version) {
        return Err(StoreError::PreconditionFailed {
            kind: "saved report",
            current: current.version,
        });
    }
    let changed = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE saved_reports SET name = $1, kind = $2, params = $3, period = $4, range_from = $5, \
             range_to = $6, frequency = $7, weekday = $8, send_at = $9, recipients = $10, next_run_at = $11, \
             last_error = NULL, version = version + 1, updated_at = $12 \
             WHERE tenant_id = $13 AND id = $14 AND version = $15",
        )
        .bind(&input.name)
        .bind(&input.kind)
        .bind(&input.params)
        .bind(&input.period)
        .bind(&input.range_from)
        .bind(&input.range_to)
        .bind(&input.frequency)
        .bind(&input.weekday)
        .bind(&input.send_at)
        .bind(Json(&input.recipients))
        .bind(input.next_run_at)
        .bind(now_ms())
        .bind(scope.tenant_id())
        .bind(id)
        .bind(current.version)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(|e| name_taken(e.into()))?;
    if changed == 0 {
        let now = get(store, scope, id).await?;
        return Err(StoreError::PreconditionFailed {
            kind: "saved report",
            current: now.version,
        });
    }
    get(store, scope, id).await
}

pub async fn delete(store: &Store, scope: &TenantScope, id: &str) -> StoreResult<()> {
    let gone = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("DELETE FROM saved_reports WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id())
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    if gone == 0 {
        return Err(StoreError::NotFound { kind: "saved report" });
    }
    Ok(())
}

/// Scheduled reports due by `now` in tenants that are not suspended, earliest first.
pub async fn due(store: &Store, now: i64, limit: i64) -> StoreResult<Vec<DueReport>> {
    let columns: String = COLUMNS
        .split(", ")
        .map(|c| format!("r.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT r.tenant_id AS tenant_id, t.slug AS tenant_slug, {columns} FROM saved_reports r \
         JOIN tenants t ON t.id = r.tenant_id \
         WHERE r.next_run_at IS NOT NULL AND r.next_run_at <= $1 AND t.suspended_at IS NULL \
         ORDER BY r.next_run_at LIMIT $2"
    );
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, DueReport>(&sql)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await
    })?)
}

/// Takes a due run for one runner until `lease_until`, unless another instance (or an edit)
/// moved it since `due` read it. Whoever gets `true` makes it, then calls [`ran`].
pub async fn claim(store: &Store, due: &DueReport, lease_until: i64) -> StoreResult<bool> {
    let done = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE saved_reports SET next_run_at = $1 \
             WHERE tenant_id = $2 AND id = $3 AND next_run_at = $4 AND version = $5",
        )
        .bind(lease_until)
        .bind(&due.tenant_id)
        .bind(&due.report.id)
        .bind(due.report.next_run_at)
        .bind(due.report.version)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(done == 1)
}

/// Records a run claimed until `lease_until`: when it ran, why it sent nothing (`None` when its
/// mail was queued), and its next time — unless an edit meanwhile set another.
pub async fn ran(
    store: &Store,
    scope: &TenantScope,
    id: &str,
    lease_until: i64,
    next: Option<i64>,
    at: i64,
    error: Option<&str>,
) -> StoreResult<()> {
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE saved_reports SET last_run_at = $1, last_error = $2, \
             next_run_at = CASE WHEN next_run_at = $3 THEN $4 ELSE next_run_at END \
             WHERE tenant_id = $5 AND id = $6",
        )
        .bind(at)
        .bind(error)
        .bind(lease_until)
        .bind(next)
        .bind(scope.tenant_id())
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}
