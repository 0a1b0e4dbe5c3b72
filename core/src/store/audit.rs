//! The audit log: an append-only record per tenant of sign-ins, administrative changes (with the
//! state before and after), token creation and secret access. The database refuses updates and
//! deletes of its rows (triggers in the migration).

use serde::Serialize;
use serde_json::Value;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::list::{Field, FieldKind, ListParams, Page, TenantFilter};
use super::resource::Listable;
use super::{Store, StoreResult, TenantId, TenantScope};
use crate::domain::new_id;
use crate::domain::time::{now_ms, serialize_ms};
use crate::on_db;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// The attempt failed (wrong password, invalid token …).
    Failure,
    /// The caller was not allowed.
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// Where a request came from, for the record.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// One entry to append.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub tenant_id: Option<TenantId>,
    pub actor: String,
    pub action: String,
    pub outcome: Outcome,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub detail: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl AuditEvent {
    pub fn new(tenant_id: Option<&TenantId>, actor: &str, action: &str, outcome: Outcome) -> Self {
        Self {
            tenant_id: tenant_id.cloned(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            outcome,
            target_kind: None,
            target_id: None,
            detail: None,
            before: None,
            after: None,
        }
    }

    /// An action by a tenant's caller, in that tenant.
    pub fn in_tenant(scope: &TenantScope, action: &str, outcome: Outcome) -> Self {
        Self::new(Some(scope.tenant()), scope.actor(), action, outcome)
    }

    pub fn target(mut self, kind: &str, id: &str) -> Self {
        self.target_kind = Some(kind.to_owned());
        self.target_id = Some(id.to_owned());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn change(mut self, before: Option<Value>, after: Option<Value>) -> Self {
        self.before = before;
        self.after = after;
        self
    }
}

/// Appends an entry.
pub async fn append(store: &Store, event: &AuditEvent, origin: &Origin) -> StoreResult<()> {
    let sql = "INSERT INTO audit_log (id, tenant_id, at, actor, action, outcome, target_kind, target_id, detail, \
               before_json, after_json, ip, user_agent, request_id) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
    let clip = |v: &Option<String>, max: usize| v.as_ref().map(|s| s.chars().take(max).collect::<String>());
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(sql)
            .bind(new_id("aud"))
            .bind(&event.tenant_id)
            .bind(now_ms())
            .bind(&event.actor)
            .bind(&event.action)
            .bind(event.outcome.as_str())
            .bind(&event.target_kind)
            .bind(&event.target_id)
            .bind(clip(&event.detail, 1000))
            .bind(json(&event.before))
            .bind(json(&event.after))
            .bind(clip(&origin.ip, 64))
            .bind(clip(&origin.user_agent, 300))
            .bind(clip(&origin.request_id, 128))
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// Appends an entry; a failure is logged loudly and counted, but does not undo what already
/// happened (the change it describes is committed).
pub async fn record(store: &Store, event: AuditEvent, origin: &Origin) {
    if let Err(e) = append(store, &event, origin).await {
        metrics::counter!("audit_write_failures_total").increment(1);
        tracing::error!(error = %e, action = %event.action, actor = %event.actor, "could not write the audit log");
    }
}

/// An audit entry as the API and UI show it.
#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub detail: Option<String>,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    #[serde(serialize_with = "serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    /// `user:<id>`, `token:<id>`, `cli`, `anonymous`, or an email for failed sign-ins.
    pub actor: String,
    /// Dotted verb such as `agent.update` or `session.sign_in`.
    pub action: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub detail: Option<String>,
    /// The record before the change (secrets never included).
    pub before: Option<Value>,
    /// The record after the change.
    pub after: Option<Value>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl Listable for AuditRow {
    const KIND: &'static str = "audit entry";
    const COLLECTION: &'static str = "audit";
    const FROM: &'static str = "audit_log";
    const SELECT: &'static str = "id, at, actor, action, outcome, target_kind, target_id, detail, before_json, \
        after_json, ip, user_agent, request_id";
    const FIELDS: &'static [Field] = &[
        Field::new("action", "action", FieldKind::Text),
        Field::new("outcome", "outcome", FieldKind::Text),
        Field::new("actor", "actor", FieldKind::Text),
        Field::new("target_kind", "target_kind", FieldKind::Text).filter_only(),
        Field::new("target_id", "target_id", FieldKind::Text).filter_only(),
        Field::new("at", "at", FieldKind::Time).range(),
    ];
    const SEARCH: &'static [&'static str] = &["actor", "detail", "target_id", "action"];
    const DESCRIPTION: &'static str = "Append-only record of sign-ins and changes in this tenant.";
    type View = AuditEntry;
    fn view(self) -> AuditEntry {
        let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
        AuditEntry {
            id: self.id,
            at: self.at,
            actor: self.actor,
            action: self.action,
            outcome: self.outcome,
            target_kind: self.target_kind,
            target_id: self.target_id,
            detail: self.detail,
            before: parse(self.before_json),
            after: parse(self.after_json),
            ip: self.ip,
            user_agent: self.user_agent,
            request_id: self.request_id,
        }
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> i64 {
        1
    }
}

/// Installation-level entries (no tenant), for platform admins.
pub async fn list_platform(store: &Store, params: &ListParams) -> StoreResult<Page<AuditEntry>> {
    let owner = TenantFilter::Unowned { column: "tenant_id" };
    super::resource::list_filtered::<AuditRow>(store, owner, &[], params).await
}

/// Quotes a CSV field (RFC 4180) and defuses spreadsheet formulas.
pub fn csv_field(value: &str) -> String {
    let defused = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

pub const CSV_HEADER: &str =
    "id,at,actor,action,outcome,target_kind,target_id,detail,before,after,ip,user_agent,request_id\r\n";

/// One entry as a CSV line.
pub fn csv_line(entry: &AuditEntry) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
    let fields = [
        entry.id.clone(),
        crate::domain::time::to_rfc3339(entry.at),
        entry.actor.clone(),
        entry.action.clone(),
        entry.outcome.clone(),
        opt(&entry.target_kind),
        opt(&entry.target_id),
        opt(&entry.detail),
        json(&entry.before),
        json(&entry.after),
        opt(&entry.ip),
        opt(&entry.user_agent),
        opt(&entry.request_id),
    ];
    let mut line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
    }
}
