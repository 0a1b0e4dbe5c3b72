//! Alert rules per tenant, every version of each, and the alerts they raised.

use serde::{Deserialize, Serialize};

use super::{SqlValue, Store, StoreError, StoreResult, TenantId, TenantScope};
use crate::domain::alert::AlertChange;
use crate::domain::new_id;
use crate::domain::time::now_ms;
use crate::on_db;

/// A rule as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RuleRow {
    pub id: String,
    pub name: String,
    /// `tenant`, `queue` or `agent`.
    pub scope: String,
    /// The rhai condition.
    pub expression: String,
    /// JSON array of queue ids (empty: all).
    pub queues: String,
    /// JSON array of team ids (empty: all).
    pub teams: String,
    pub severity: String,
    pub for_s: i64,
    /// JSON object.
    pub labels: String,
    pub message: String,
    /// JSON array of notification targets.
    pub targets: String,
    pub enabled: bool,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub updated_by: String,
}

/// What a rule says (the fields an author writes), checked by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFields {
    pub name: String,
    pub scope: String,
    pub expression: String,
    pub queues: String,
    pub teams: String,
    pub severity: String,
    pub for_s: i64,
    pub labels: String,
    pub message: String,
    pub targets: String,
    pub enabled: bool,
}

const SELECT: &str = "SELECT id, name, scope, expression, queues, teams, severity, for_s, labels, message, targets, \
                      enabled, version, created_at, updated_at, updated_by FROM alert_rules";

fn version_body(row: &RuleRow) -> String {
    serde_json::to_string(row).unwrap_or_default()
}

fn name_taken(e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict { .. } => StoreError::Conflict {
            field: Some("name".into()),
            message: "a rule with this name exists".into(),
        },
        other => other,
    }
}

/// Stores a new rule (version 1).
pub async fn create(store: &Store, scope: &TenantScope, fields: &RuleFields) -> StoreResult<RuleRow> {
    let now = now_ms();
    let row = RuleRow {
        id: new_id("rule"),
        name: fields.name.clone(),
        scope: fields.scope.clone(),
        expression: fields.expression.clone(),
        queues: fields.queues.clone(),
        teams: fields.teams.clone(),
        severity: fields.severity.clone(),
        for_s: fields.for_s,
        labels: fields.labels.clone(),
        message: fields.message.clone(),
        targets: fields.targets.clone(),
        enabled: fields.enabled,
        version: 1,
        created_at: now,
        updated_at: now,
        updated_by: scope.actor().to_owned(),
    };
    let tenant = scope.tenant_id();
    let signing_secret = format!("whsec_{}", crate::secrets::random_secret());
    let sealed_secret = store.secrets.seal(&signing_secret, &signing_context(tenant, &row.id));
    on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        sqlx::query::<DB>(
            "INSERT INTO alert_rules (tenant_id, id, name, scope, expression, queues, teams, severity, for_s, labels, \
             message, targets, enabled, version, created_at, updated_at, updated_by, signing_secret_enc) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(tenant)
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.scope)
        .bind(&row.expression)
        .bind(&row.queues)
        .bind(&row.teams)
        .bind(&row.severity)
        .bind(row.for_s)
        .bind(&row.labels)
        .bind(&row.message)
        .bind(&row.targets)
        .bind(row.enabled)
        .bind(row.version)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(&row.updated_by)
        .bind(&sealed_secret)
        .execute(&mut *tx)
        .await?;
        sqlx::query::<DB>(
            "INSERT INTO alert_rule_versions (tenant_id, rule_id, version, body, changed_by, changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant)
        .bind(&row.id)
        .bind(row.version)
        .bind(version_body(&row))
        .bind(&row.updated_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
    .map_err(|e| name_taken(e.into()))?;
    Ok(row)
}

/// Replaces what a rule says; a new version. `expected` (the version the author edited) must
/// still be current.
pub async fn update(
    store: &Store,
    scope: &TenantScope,
    id: &str,
    fields: &RuleFields,
    expected: Option<i64>,
) -> StoreResult<RuleRow> {
    let current = get(store, scope, id).await?;
    if let Some(expected) = expected
        && expected != current.version
    {
        return Err(StoreError::PreconditionFailed {
            kind: "rule",
            current: current.version,
        });
    }
    let now = now_ms();
    let row = RuleRow {
        name: fields.name.clone(),
        scope: fields.scope.clone(),
        expression: fields.expression.clone(),
        queues: fields.queues.clone(),
        teams: fields.teams.clone(),
        severity: fields.severity.clone(),
        for_s: fields.for_s,
        labels: fields.labels.clone(),
        message: fields.message.clone(),
        targets: fields.targets.clone(),
        enabled: fields.enabled,
        version: current.version + 1,
        updated_at: now,
        updated_by: scope.actor().to_owned(),
        ..current.clone()
    };
    let tenant = scope.tenant_id();
    let changed = on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        let changed = sqlx::query::<DB>(
            "UPDATE alert_rules SET name = $1, scope = $2, expression = $3, queues = $4, teams = $5, severity = $6, \
             for_s = $7, labels = $8, message = $9, targets = $10, enabled = $11, version = $12, updated_at = $13, \
             updated_by = $14 WHERE tenant_id = $15 AND id = $16 AND version = $17",
        )
        .bind(&row.name)
        .bind(&row.scope)
        .bind(&row.expression)
        .bind(&row.queues)
        .bind(&row.teams)
        .bind(&row.severity)
        .bind(row.for_s)
        .bind(&row.labels)
        .bind(&row.message)
        .bind(&row.targets)
        .bind(row.enabled)
        .bind(row.version)
        .bind(row.updated_at)
        .bind(&row.updated_by)
        .bind(tenant)
        .bind(&row.id)
        .bind(current.version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            sqlx::query::<DB>(
                "INSERT INTO alert_rule_versions (tenant_id, rule_id, version, body, changed_by, changed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(tenant)
            .bind(&row.id)
            .bind(row.version)
            .bind(version_body(&row))
            .bind(&row.updated_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(changed)
    })
    .map_err(|e| name_taken(e.into()))?;
    if changed != 1 {
        // Someone saved in between.
        let now_current = get(store, scope, id).await?;
        return Err(StoreError::PreconditionFailed {
            kind: "rule",
            current: now_current.version,
        });
    }
    Ok(row)
}

/// What a rule's signing secret is sealed with.
pub fn signing_context(tenant_id: &str, rule_id: &str) -> String {
    format!("alert-rule-signing:{tenant_id}:{rule_id}")
}

/// The key a rule's webhooks are signed with.
pub async fn signing_secret(store: &Store, tenant: &TenantId, rule_id: &str) -> StoreResult<String> {
    let tenant_id = tenant.as_str();
    let sealed: Option<String> = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, String>("SELECT signing_secret_enc FROM alert_rules WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(rule_id)
            .fetch_optional(pool)
            .await
    })?;
    let sealed = sealed.ok_or(StoreError::NotFound { kind: "rule" })?;
    store
        .secrets
        .open(&sealed, &signing_context(tenant_id, rule_id))
        .map_err(|e| StoreError::Internal(e.to_string()))
}

pub async fn get(store: &Store, scope: &TenantScope, id: &str) -> StoreResult<RuleRow> {
    let sql = format!("{SELECT} WHERE tenant_id = $1 AND id = $2");
    let found: Option<RuleRow> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, RuleRow>(&sql)
            .bind(scope.tenant_id())
            .bind(id)
            .fetch_optional(pool)
            .await
    })?;
    found.ok_or(StoreError::NotFound { kind: "rule" })
}

/// The tenant's rules, by name.
pub async fn list(store: &Store, tenant: &TenantId) -> StoreResult<Vec<RuleRow>> {
    let tenant_id = tenant.as_str();
    let sql = format!("{SELECT} WHERE tenant_id = $1 ORDER BY name");
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, RuleRow>(&sql)
            .bind(tenant_id)
            .fetch_all(pool)
            .await
    })?)
}

/// Tenants with at least one enabled rule, or an alert still open: (id, slug).
pub async fn tenants_with_rules(store: &Store) -> StoreResult<Vec<(TenantId, String)>> {
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (TenantId, String)>(
            "SELECT t.id, t.slug FROM tenants t WHERE EXISTS \
             (SELECT 1 FROM alert_rules r WHERE r.tenant_id = t.id AND r.enabled = TRUE) \
             OR EXISTS (SELECT 1 FROM alerts a WHERE a.tenant_id = t.id AND a.resolved_at IS NULL)",
        )
        .fetch_all(pool)
        .await
    })?)
}

/// A rule's versions, newest first: (version, the rule as it was (JSON), by, at).
pub async fn versions(store: &Store, scope: &TenantScope, id: &str) -> StoreResult<Vec<(i64, String, String, i64)>> {
    get(store, scope, id).await?;
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (i64, String, String, i64)>(
            "SELECT version, body, changed_by, changed_at FROM alert_rule_versions \
             WHERE tenant_id = $1 AND rule_id = $2 ORDER BY version DESC",
        )
        .bind(scope.tenant_id())
        .bind(id)
        .fetch_all(pool)
        .await
    })?)
}

pub async fn delete(store: &Store, scope: &TenantScope, id: &str) -> StoreResult<RuleRow> {
    let row = get(store, scope, id).await?;
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("DELETE FROM alert_rules WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id())
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(row)
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AlertRow {
    pub id: String,
    pub rule_id: String,
    pub rule_version: i64,
    pub rule_name: String,
    pub severity: String,
    pub subject: String,
    pub subject_name: String,
    pub message: String,
    pub since_at: i64,
    pub fired_at: i64,
    pub resolved_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<i64>,
}

const ALERT_SELECT: &str = "SELECT id, rule_id, rule_version, rule_name, severity, subject, subject_name, message, \
                            since_at, fired_at, resolved_at, acknowledged_by, acknowledged_at FROM alerts";

/// Records alerts that fired (a new open alert) or resolved (the open one closed).
pub async fn record(store: &Store, tenant: &TenantId, changes: &[AlertChange]) -> StoreResult<()> {
    let tenant_id = tenant.as_str();
    if changes.is_empty() {
        return Ok(());
    }
    on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        for change in changes {
            match change.resolved_ms {
                None => {
                    sqlx::query::<DB>(
                        "INSERT INTO alerts (tenant_id, id, rule_id, rule_version, rule_name, severity, subject, \
                         subject_name, message, since_at, fired_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(tenant_id)
                    .bind(new_id("alert"))
                    .bind(&change.rule_id)
                    .bind(change.rule_version)
                    .bind(&change.rule_name)
                    .bind(change.severity.as_str())
                    .bind(&change.subject)
                    .bind(&change.subject_name)
                    .bind(&change.message)
                    .bind(change.since_ms)
                    .bind(change.fired_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                Some(resolved) => {
                    sqlx::query::<DB>(
                        "UPDATE alerts SET resolved_at = $1 WHERE tenant_id = $2 AND rule_id = $3 AND subject = $4 \
                         AND resolved_at IS NULL",
                    )
                    .bind(resolved)
                    .bind(tenant_id)
                    .bind(&change.rule_id)
                    .bind(&change.subject)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await
    })?;
    Ok(())
}

/// The tenant's open alerts (a restarted server takes them over).
pub async fn open_alerts(store: &Store, tenant: &TenantId) -> StoreResult<Vec<AlertRow>> {
    let tenant_id = tenant.as_str();
    let sql = format!("{ALERT_SELECT} WHERE tenant_id = $1 AND resolved_at IS NULL");
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, AlertRow>(&sql)
            .bind(tenant_id)
            .fetch_all(pool)
            .await
    })?)
}

/// Open alerts, newest first, then the latest resolved ones (at most `limit` of those).
pub async fn alerts(store: &Store, scope: &TenantScope, open_only: bool, limit: i64) -> StoreResult<Vec<AlertRow>> {
    let mut args = vec![SqlValue::Text(scope.tenant_id().to_owned()), SqlValue::Int(limit)];
    let visible = visible_subjects(scope, &mut args);
    let sql = if open_only {
        format!("{ALERT_SELECT} WHERE tenant_id = $1 AND resolved_at IS NULL{visible} ORDER BY fired_at DESC LIMIT $2")
    } else {
        format!("{ALERT_SELECT} WHERE tenant_id = $1{visible} ORDER BY resolved_at IS NOT NULL, fired_at DESC LIMIT $2")
    };
    Ok(on_db!(&store.db, |pool, DB| {
        crate::bind_values!(sqlx::query_as::<DB, AlertRow>(&sql), args)
            .fetch_all(pool)
            .await
    })?)
}

/// ` AND …` leaving out alerts about agents the caller does not see (a supervisor scoped to
/// teams or locations): the same agents the store shows it elsewhere. Empty for everyone else.
fn visible_subjects(scope: &TenantScope, args: &mut Vec<SqlValue>) -> String {
    super::resource::visible_agent_ids(scope, args, "'agent:' || id")
        .map(|agents| format!(" AND (subject NOT LIKE 'agent:%' OR subject IN ({agents}))"))
        .unwrap_or_default()
}

/// Whether the caller may see alerts about `subject` (`agent:<id>`, `queue:<id>`, `tenant`).
async fn subject_visible(store: &Store, scope: &TenantScope, subject: &str) -> StoreResult<bool> {
    let Some(agent) = subject.strip_prefix("agent:") else {
        return Ok(true);
    };
    if !scope.visibility().is_limited() {
        return Ok(true);
    }
    match super::resource::get::<super::entities::agents::Agent>(store, scope, agent).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One alert, if the caller may see it.
async fn alert(store: &Store, scope: &TenantScope, id: &str) -> StoreResult<AlertRow> {
    let mut args = vec![
        SqlValue::Text(scope.tenant_id().to_owned()),
        SqlValue::Text(id.to_owned()),
    ];
    let visible = visible_subjects(scope, &mut args);
    let sql = format!("{ALERT_SELECT} WHERE tenant_id = $1 AND id = $2{visible}");
    let found: Option<AlertRow> = on_db!(&store.db, |pool, DB| {
        crate::bind_values!(sqlx::query_as::<DB, AlertRow>(&sql), args)
            .fetch_optional(pool)
            .await
    })?;
    found.ok_or(StoreError::NotFound { kind: "alert" })
}

/// Acknowledges an open alert (someone is on it). An alert the caller may not see is not found.
pub async fn acknowledge(store: &Store, scope: &TenantScope, id: &str) -> StoreResult<AlertRow> {
    alert(store, scope, id).await?;
    let changed = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE alerts SET acknowledged_by = $1, acknowledged_at = $2 WHERE tenant_id = $3 AND id = $4 \
             AND acknowledged_at IS NULL",
        )
        .bind(scope.actor())
        .bind(now_ms())
        .bind(scope.tenant_id())
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })?;
    let found = alert(store, scope, id).await?;
    if changed == 0 && found.acknowledged_at.is_none() {
        return Err(StoreError::NotFound { kind: "alert" });
    }
    Ok(found)
}

/// Silences a rule's notifications (for one subject, or all) until `until_ms`.
pub async fn silence(
    store: &Store,
    scope: &TenantScope,
    rule_id: &str,
    subject: Option<&str>,
    until_ms: i64,
    reason: &str,
) -> StoreResult<String> {
    let rule = get(store, scope, rule_id).await?;
    // A scoped supervisor silences what it sees: not another team's agent, and not a rule about
    // agents as a whole.
    match subject {
        Some(subject) if !subject_visible(store, scope, subject).await? => {
            return Err(StoreError::NotFound { kind: "alert subject" });
        }
        None if rule.scope == "agent" && scope.visibility().is_limited() => {
            return Err(crate::domain::Validation::single(
                "subject",
                "a supervisor limited to some teams or locations silences one of its agents at a time",
            )
            .into());
        }
        _ => {}
    }
    let id = new_id("silence");
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "INSERT INTO alert_silences (tenant_id, id, rule_id, subject, until_at, reason, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(scope.tenant_id())
        .bind(&id)
        .bind(rule_id)
        .bind(subject)
        .bind(until_ms)
        .bind(reason)
        .bind(scope.actor())
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(id)
}

/// Silences in force at `at_ms`: (rule id, subject or all).
pub async fn silences(store: &Store, tenant: &TenantId, at_ms: i64) -> StoreResult<Vec<(String, Option<String>, i64)>> {
    let tenant_id = tenant.as_str();
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (String, Option<String>, i64)>(
            "SELECT rule_id, subject, until_at FROM alert_silences WHERE tenant_id = $1 AND until_at > $2",
        )
        .bind(tenant_id)
        .bind(at_ms)
        .fetch_all(pool)
        .await
    })?)
}

/// A notification waiting to go out (or done).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct NotificationRow {
    pub tenant_id: TenantId,
    pub tenant_slug: String,
    pub id: String,
    pub rule_id: String,
    pub target: String,
    pub summary: String,
    pub body: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

const NOTIFICATION_SELECT: &str = "SELECT n.tenant_id, t.slug AS tenant_slug, n.id, n.rule_id, n.target, n.summary, \
                                   n.body, n.state, n.attempts, n.next_attempt_at, n.last_error, n.created_at, n.sent_at \
                                   FROM alert_notifications n JOIN tenants t ON t.id = n.tenant_id";

/// Queues notifications: (rule id, target JSON, summary, body).
pub async fn enqueue(
    store: &Store,
    tenant_id: &TenantId,
    items: &[(String, String, String, String)],
) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        for (rule_id, target, summary, body) in items {
            sqlx::query::<DB>(
                "INSERT INTO alert_notifications (tenant_id, id, rule_id, target, summary, body, state, attempts, \
                 next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
            )
            .bind(tenant_id)
            .bind(new_id("notif"))
            .bind(rule_id)
            .bind(target)
            .bind(summary)
            .bind(body)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })?;
    Ok(())
}

/// Notifications due now, every tenant's, oldest first.
pub async fn due(store: &Store, now: i64, limit: i64) -> StoreResult<Vec<NotificationRow>> {
    let sql = format!(
        "{NOTIFICATION_SELECT} WHERE n.state = 'pending' AND n.next_attempt_at <= $1 ORDER BY n.next_attempt_at LIMIT $2"
    );
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, NotificationRow>(&sql)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await
    })?)
}

/// Records an attempt: sent, or failed with the next try (`None`: no more tries).
pub async fn attempted(
    store: &Store,
    row: &NotificationRow,
    outcome: Result<(), String>,
    next_attempt_at: Option<i64>,
) -> StoreResult<()> {
    let now = now_ms();
    let (state, error, next) = match (&outcome, next_attempt_at) {
        (Ok(()), _) => ("sent", None, row.next_attempt_at),
        (Err(e), Some(next)) => ("pending", Some(e.clone()), next),
        (Err(e), None) => ("failed", Some(e.clone()), row.next_attempt_at),
    };
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE alert_notifications SET state = $1, attempts = attempts + 1, last_error = $2, \
             next_attempt_at = $3, sent_at = $4 WHERE tenant_id = $5 AND id = $6",
        )
        .bind(state)
        .bind(error)
        .bind(next)
        .bind(outcome.is_ok().then_some(now))
        .bind(&row.tenant_id)
        .bind(&row.id)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// The tenant's notifications, newest first (`state`: pending, sent, failed; `None`: all).
pub async fn notifications(
    store: &Store,
    scope: &TenantScope,
    state: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<NotificationRow>> {
    let sql = format!(
        "{NOTIFICATION_SELECT} WHERE n.tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR n.state = $2) \
         ORDER BY n.created_at DESC LIMIT $3"
    );
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, NotificationRow>(&sql)
            .bind(scope.tenant_id())
            .bind(state)
            .bind(limit)
            .fetch_all(pool)
            .await
    })?)
}

/// A rule suspended for running over its time budget tick after tick: the version that did
/// (saving the rule makes a new version, which runs again).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Suspension {
    pub rule_id: String,
    pub version: i64,
    pub suspended_at: i64,
    pub reason: String,
}

/// Suspends a rule's version (replacing an older suspension of the rule).
pub async fn suspend(store: &Store, tenant: &TenantId, suspension: &Suspension) -> StoreResult<()> {
    let tenant_id = tenant.as_str();
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "INSERT INTO alert_rule_suspensions (tenant_id, rule_id, version, suspended_at, reason) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, rule_id) DO UPDATE SET \
             version = excluded.version, suspended_at = excluded.suspended_at, reason = excluded.reason",
        )
        .bind(tenant_id)
        .bind(&suspension.rule_id)
        .bind(suspension.version)
        .bind(suspension.suspended_at)
        .bind(&suspension.reason)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// The tenant's suspensions (each applies while its rule is still at that version).
pub async fn suspensions(store: &Store, tenant: &TenantId) -> StoreResult<Vec<Suspension>> {
    let tenant_id = tenant.as_str();
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, Suspension>(
            "SELECT rule_id, version, suspended_at, reason FROM alert_rule_suspensions WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_all(pool)
        .await
    })?)
}

/// What a rule may narrow itself to.
#[derive(Debug, Clone, Copy)]
pub enum Narrowing {
    Queues,
    Teams,
}

/// Of `ids`, those that are not a queue (or team) of the tenant.
pub async fn unknown_ids(
    store: &Store,
    tenant: &TenantId,
    kind: Narrowing,
    ids: &[String],
) -> StoreResult<Vec<String>> {
    let tenant_id = tenant.as_str();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = match kind {
        Narrowing::Queues => "SELECT id FROM queues WHERE tenant_id = $1",
        Narrowing::Teams => "SELECT id FROM teams WHERE tenant_id = $1",
    };
    let known: Vec<(String,)> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (String,)>(sql)
            .bind(tenant_id)
            .fetch_all(pool)
            .await
    })?;
    let known: std::collections::HashSet<&str> = known.iter().map(|(id,)| id.as_str()).collect();
    Ok(ids.iter().filter(|id| !known.contains(id.as_str())).cloned().collect())
}
