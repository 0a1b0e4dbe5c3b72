//! Alert rules and alerts over the API: tenant admins write rules (checked as they are saved,
//! syntax errors with line and column) and test them on the floor, anyone who may read the live
//! floor sees them, their status and the alerts; supervisors acknowledge alerts and silence
//! rules. Every change is audited; every version of a rule is kept.
//!
//! - `GET|POST /api/v1/alert-rules`, `GET|PATCH|DELETE /api/v1/alert-rules/{id}`
//! - `GET /api/v1/alert-rules/{id}/versions`
//! - `POST /api/v1/alert-rules/check` (compile only: for an editor, as one types)
//! - `POST /api/v1/alert-rules/test` (what a rule would say on the floor right now)
//! - `POST /api/v1/alert-rules/starter` (import the starter set)
//! - `POST /api/v1/alert-rules/{id}/silence`
//! - `GET /api/v1/alert-rules/{id}/signing-secret` (what its webhooks are signed with)
//! - `GET /api/v1/alerts`, `POST /api/v1/alerts/{id}/acknowledge`
//! - `GET /api/v1/alert-notifications` (sent, waiting to be retried, failed)

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{Caller, RequestOrigin};
use super::problem::{ApiError, ApiResult};
use crate::auth::{Action, Area};
use crate::domain::Validation;
use crate::rules::eval::{
    Budget, CancelOnDrop, Evaluator, FloorFacts, RULE_BUDGET, Rule, Severity, unknown_placeholders,
};
use crate::rules::{RuleError, RuleScope};
use crate::store::alert_rules::{self, RuleFields, RuleRow};
use crate::store::audit::{self, AuditEvent, Outcome};

pub fn api_router() -> Router<AppState> {
    Router::new()
        .route("/alert-rules", get(list).post(create))
        .route("/alert-rules/check", post(check))
        .route("/alert-rules/test", post(test))
        .route("/alert-rules/starter", post(starter))
        .route("/alert-rules/{id}", get(show).patch(update).delete(remove))
        .route("/alert-rules/{id}/versions", get(versions))
        .route("/alert-rules/{id}/silence", post(silence))
        .route("/alert-rules/{id}/signing-secret", get(signing_secret))
        .route("/alert-notifications", get(notifications))
        .route("/alerts", get(alerts))
        .route("/alerts/{id}/acknowledge", post(acknowledge))
}

/// A rule as an author writes it; left-out fields keep their value (PATCH) or default.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub name: Option<String>,
    /// `tenant`, `queue` or `agent`.
    pub scope: Option<String>,
    /// The rhai condition (sdk/rules.md).
    pub expression: Option<String>,
    /// Only these queues (ids); empty or left out: all.
    pub queues: Option<Vec<String>>,
    /// Only agents of these teams (ids).
    pub teams: Option<Vec<String>>,
    /// `info`, `warning` (default) or `critical`.
    pub severity: Option<String>,
    /// Seconds the condition must hold before the alert fires (default 60).
    pub for_s: Option<i64>,
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    /// The alert's text; `{queue.name}`, `{agent.in_state_s}`, `{tenant.waiting}` … are filled in.
    pub message: Option<String>,
    /// Where notifications go: `{"type": "email", "to": "…"}`, `{"type": "webhook", "url": "…"}`.
    pub targets: Option<Vec<Value>>,
    pub enabled: Option<bool>,
}

fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Checks a rule's fields (over `base` for a change); a compile error names the expression's
/// line and column.
pub(super) fn fields(app: &AppState, input: RuleInput, base: Option<&RuleRow>) -> Result<RuleFields, Validation> {
    let mut v = Validation::new();
    let name = input.name.or_else(|| base.map(|b| b.name.clone())).unwrap_or_default();
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        v.add("name", "1 to 100 characters on one line");
    }
    let scope_text = input
        .scope
        .or_else(|| base.map(|b| b.scope.clone()))
        .unwrap_or_default();
    let scope = RuleScope::parse(&scope_text);
    if scope.is_none() {
        v.add("scope", "`tenant`, `queue` or `agent`");
    }
    let expression = input
        .expression
        .or_else(|| base.map(|b| b.expression.clone()))
        .unwrap_or_default();
    if let Some(scope) = scope
        && let Err(error) = app.rules.engine.compile(scope, &expression)
    {
        v.add("expression", error.to_string());
    }
    let severity = input
        .severity
        .or_else(|| base.map(|b| b.severity.clone()))
        .unwrap_or_else(|| "warning".into());
    if Severity::parse(&severity).is_none() {
        v.add("severity", "`info`, `warning` or `critical`");
    }
    let for_s = input.for_s.or(base.map(|b| b.for_s)).unwrap_or(60);
    if !(0..=86_400).contains(&for_s) {
        v.add("for_s", "0 to 86400 seconds");
    }
    let message = input
        .message
        .or_else(|| base.map(|b| b.message.clone()))
        .unwrap_or_else(|| name.clone());
    if message.chars().count() > 500 {
        v.add("message", "at most 500 characters");
    } else if let Some(scope) = scope {
        let unknown = unknown_placeholders(&message, scope);
        if !unknown.is_empty() {
            v.add(
                "message",
                format!(
                    "{} cannot be filled in for a {} rule (sdk/rules.md lists the fields)",
                    unknown.join(", "),
                    scope.as_str()
                ),
            );
        }
    }
    let ids = |field: &str, list: Option<Vec<String>>, from_base: Option<&String>, v: &mut Validation| -> String {
        match list {
            Some(list) => {
                if list.len() > 200 || list.iter().any(|i| i.is_empty() || i.len() > 100) {
                    v.add(field, "at most 200 ids");
                }
                json_list(&list)
            }
            None => from_base.cloned().unwrap_or_else(|| "[]".into()),
        }
    };
    let queues = ids("queues", input.queues, base.map(|b| &b.queues), &mut v);
    let teams = ids("teams", input.teams, base.map(|b| &b.teams), &mut v);
    if scope == Some(RuleScope::Tenant) && (queues != "[]" || teams != "[]") {
        v.add(
            "scope",
            "a tenant rule covers the whole tenant: leave out queues and teams",
        );
    }
    if scope == Some(RuleScope::Queue) && teams != "[]" {
        v.add("teams", "queue rules are per queue; teams apply to agent rules");
    }
    let labels = match input.labels {
        Some(labels) => {
            if labels.len() > 20
                || labels
                    .iter()
                    .any(|(k, val)| k.is_empty() || k.len() > 50 || val.len() > 200)
            {
                v.add(
                    "labels",
                    "at most 20 labels, names up to 50 and values up to 200 characters",
                );
            }
            serde_json::to_string(&labels).unwrap_or_else(|_| "{}".into())
        }
        None => base.map_or_else(|| "{}".into(), |b| b.labels.clone()),
    };
    let targets = match input.targets {
        Some(targets) => {
            for (n, target) in targets.iter().enumerate() {
                if let Err(why) = check_target(target) {
                    v.add(&format!("targets/{n}"), why);
                }
            }
            if targets.len() > 20 {
                v.add("targets", "at most 20 targets");
            }
            json_list(&targets)
        }
        None => base.map_or_else(|| "[]".into(), |b| b.targets.clone()),
    };
    let enabled = input.enabled.or(base.map(|b| b.enabled)).unwrap_or(true);
    v.finish()?;
    Ok(RuleFields {
        name,
        scope: scope_text,
        expression,
        queues,
        teams,
        severity,
        for_s,
        labels,
        message,
        targets,
        enabled,
    })
}

/// A notification target: an email address, or an http(s) webhook URL.
fn check_target(target: &Value) -> Result<(), String> {
    match target.get("type").and_then(Value::as_str) {
        Some("email") => {
            let to = target.get("to").and_then(Value::as_str).unwrap_or_default();
            if to.len() > 254 || to.parse::<lettre::Address>().is_err() {
                return Err("`to` must be an email address".into());
            }
            Ok(())
        }
        Some("webhook") => {
            let url = target.get("url").and_then(Value::as_str).unwrap_or_default();
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
                _ => Err("`url` must be an http(s) URL".into()),
            }
        }
        Some("plugins") => Ok(()),
        _ => Err("`type` is `email`, `webhook` or `plugins`".into()),
    }
}

pub(super) fn rule_json(row: &RuleRow, status: Option<&crate::rules::service::RuleStatus>) -> Value {
    json!({
        "id": row.id,
        "name": row.name,
        "scope": row.scope,
        "expression": row.expression,
        "queues": serde_json::from_str::<Value>(&row.queues).unwrap_or(json!([])),
        "teams": serde_json::from_str::<Value>(&row.teams).unwrap_or(json!([])),
        "severity": row.severity,
        "for_s": row.for_s,
        "labels": serde_json::from_str::<Value>(&row.labels).unwrap_or(json!({})),
        "message": row.message,
        "targets": serde_json::from_str::<Value>(&row.targets).unwrap_or(json!([])),
        "enabled": row.enabled,
        "version": row.version,
        "created_at": crate::domain::time::to_rfc3339(row.created_at),
        "updated_at": crate::domain::time::to_rfc3339(row.updated_at),
        "updated_by": row.updated_by,
        "status": status,
    })
}

async fn list(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Live)?;
    let rows = alert_rules::list(&app.store, scope.tenant_id()).await?;
    let status = app.rules.status(scope.tenant_id()).await;
    let items: Vec<Value> = rows.iter().map(|r| rule_json(r, status.get(&r.id))).collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

async fn show(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Live)?;
    let row = alert_rules::get(&app.store, &scope, &id).await?;
    let status = app.rules.status(scope.tenant_id()).await;
    Ok(axum::Json(rule_json(&row, status.get(&row.id))).into_response())
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("the body: {e}")))
}

async fn create(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    bytes: axum::body::Bytes,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    let input: RuleInput = body(&bytes)?;
    let row = save_rule(&app, &scope, None, input, None, &origin).await?;
    Ok((
        StatusCode::CREATED,
        [("location", format!("/api/v1/alert-rules/{}", row.id))],
        axum::Json(rule_json(&row, None)),
    )
        .into_response())
}

async fn update(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    bytes: axum::body::Bytes,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    let input: RuleInput = body(&bytes)?;
    let current = alert_rules::get(&app.store, &scope, &id).await?;
    let expected = headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"').parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::bad_request("If-Match is the rule's version, e.g. \"3\""))?;
    let row = save_rule(&app, &scope, Some(&current), input, expected, &origin).await?;
    Ok(axum::Json(rule_json(&row, None)).into_response())
}

/// Creates a rule (`current` none) or a new version of `current`: checked, stored, reloaded
/// for evaluation, audited.
pub(super) async fn save_rule(
    app: &AppState,
    scope: &crate::store::TenantScope,
    current: Option<&RuleRow>,
    input: RuleInput,
    expected: Option<i64>,
    origin: &crate::store::audit::Origin,
) -> Result<RuleRow, crate::store::StoreError> {
    let (queues, teams) = (input.queues.clone(), input.teams.clone());
    let fields = fields(app, input, current).map_err(crate::store::StoreError::Invalid)?;
    narrowing_exists(app, scope, queues, teams).await?;
    let (row, action) = match current {
        Some(current) => (
            alert_rules::update(&app.store, scope, &current.id, &fields, expected).await?,
            "alert_rule.update",
        ),
        None => (
            alert_rules::create(&app.store, scope, &fields).await?,
            "alert_rule.create",
        ),
    };
    app.rules.changed(scope.tenant_id()).await;
    let event = AuditEvent::in_tenant(scope, action, Outcome::Success)
        .target("alert_rule", &row.id)
        .detail(format!(
            "{} v{} ({}): {}",
            row.name, row.version, row.scope, row.expression
        ));
    audit::record(&app.store, event, origin).await;
    Ok(row)
}

/// The queues and teams a rule is narrowed to are the tenant's own: another tenant's id (or one
/// that does not exist) would match nothing, silently.
async fn narrowing_exists(
    app: &AppState,
    scope: &crate::store::TenantScope,
    queues: Option<Vec<String>>,
    teams: Option<Vec<String>>,
) -> Result<(), crate::store::StoreError> {
    use alert_rules::Narrowing;
    let mut v = Validation::new();
    for (field, kind, ids, what) in [
        ("queues", Narrowing::Queues, queues, "queue"),
        ("teams", Narrowing::Teams, teams, "team"),
    ] {
        let unknown = alert_rules::unknown_ids(&app.store, scope.tenant_id(), kind, &ids.unwrap_or_default()).await?;
        if !unknown.is_empty() {
            v.add(
                field,
                format!("no {what} of this tenant has the id {}", unknown.join(", ")),
            );
        }
    }
    v.finish().map_err(crate::store::StoreError::Invalid)
}

/// Deletes a rule: its alerts resolve on the next tick. Audited.
pub(super) async fn delete_rule(
    app: &AppState,
    scope: &crate::store::TenantScope,
    id: &str,
    origin: &crate::store::audit::Origin,
) -> Result<RuleRow, crate::store::StoreError> {
    let row = alert_rules::delete(&app.store, scope, id).await?;
    app.rules.changed(scope.tenant_id()).await;
    let event = AuditEvent::in_tenant(scope, "alert_rule.delete", Outcome::Success)
        .target("alert_rule", &row.id)
        .detail(row.name.clone());
    audit::record(&app.store, event, origin).await;
    Ok(row)
}

async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    delete_rule(&app, &scope, &id, &origin).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn versions(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Live)?;
    let versions = alert_rules::versions(&app.store, &scope, &id).await?;
    let items: Vec<Value> = versions
        .into_iter()
        .map(|(version, body, by, at)| {
            json!({
                "version": version,
                "rule": serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
                "changed_by": by,
                "changed_at": crate::domain::time::to_rfc3339(at),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// What `check` and `test` read.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct Draft {
    pub scope: String,
    pub expression: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default)]
    pub teams: Vec<String>,
}

fn error_json(error: &RuleError) -> Value {
    json!({ "message": error.message, "line": error.line, "column": error.column })
}

/// Compiles a draft: `{"valid": true}` or the error with its line and column.
async fn check(State(app): State<AppState>, caller: Caller, bytes: axum::body::Bytes) -> ApiResult<Response> {
    caller.tenant(Action::Read, Area::Live)?;
    let draft: Draft = body(&bytes)?;
    let Some(scope) = RuleScope::parse(&draft.scope) else {
        return Err(ApiError::bad_request("`scope` is `tenant`, `queue` or `agent`"));
    };
    let mut answer = match app.rules.engine.compile(scope, &draft.expression) {
        Ok(_) => json!({ "valid": true }),
        Err(error) => json!({ "valid": false, "error": error_json(&error) }),
    };
    if let Some(message) = &draft.message {
        let unknown = unknown_placeholders(message, scope);
        if !unknown.is_empty() {
            answer["valid"] = json!(false);
            answer["message_error"] = json!(format!("{} cannot be filled in", unknown.join(", ")));
        }
    }
    Ok(axum::Json(answer).into_response())
}

/// Evaluates a draft on the floor as it is now: on how many subjects it holds (which would
/// fire once held for the rule's `for`), and the first error. It runs arbitrary code on the
/// server, so it is for those who may write rules.
async fn test(State(app): State<AppState>, caller: Caller, bytes: axum::body::Bytes) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    let draft: Draft = body(&bytes)?;
    let answer = test_draft(
        &app,
        &scope,
        &draft.scope,
        &draft.expression,
        draft.message.as_deref().unwrap_or_default(),
        draft.queues,
        draft.teams,
    )
    .await?;
    Ok(axum::Json(answer).into_response())
}

/// A draft rule evaluated once on the floor (as the caller may see it), within a tick's budget;
/// the evaluation stops when the request ends.
pub(super) async fn test_draft(
    app: &AppState,
    scope: &crate::store::TenantScope,
    scope_text: &str,
    expression: &str,
    message: &str,
    queues: Vec<String>,
    teams: Vec<String>,
) -> Result<Value, ApiError> {
    let Some(rule_scope) = RuleScope::parse(scope_text) else {
        return Err(ApiError::bad_request("`scope` is `tenant`, `queue` or `agent`"));
    };
    let compiled = match app.rules.engine.compile(rule_scope, expression) {
        Ok(c) => c,
        Err(error) => return Ok(json!({ "valid": false, "error": error_json(&error) })),
    };
    let rule = Rule {
        id: "draft".into(),
        version: 0,
        name: "draft".into(),
        scope: rule_scope,
        queues,
        teams,
        severity: Severity::Info,
        for_s: 0,
        message: message.to_owned(),
        targets: Vec::new(),
        compiled: std::sync::Arc::new(compiled),
    };
    let floor = app.live.floor(scope).await?;
    let engine = app.rules.engine.clone();
    let visibility = scope.visibility().clone();
    // Dropped with this future: a request that ends (timed out, abandoned) stops the evaluation.
    let (_cancel_on_drop, cancel) = CancelOnDrop::new();
    let budget = Budget {
        cancel: Some(cancel),
        ..Budget::default()
    };
    tokio::task::spawn_blocking(move || {
        let now = crate::domain::time::now_ms();
        let mut facts = FloorFacts::of(&floor, now);
        // A scoped supervisor tests on the agents it may see.
        {
            let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
            facts.agents.retain(|a| {
                let groups = live
                    .agent_slot(&a.facts.id)
                    .and_then(|s| floor.agent_groups.get(s as usize))
                    .cloned()
                    .unwrap_or_default();
                visibility.admits(groups.0.as_deref(), groups.1.as_deref())
            });
        }
        let (changes, runs) =
            Evaluator::default().tick_within(&engine, std::slice::from_ref(&rule), &facts, now, &budget);
        let run = runs.get("draft").cloned().unwrap_or_default();
        let error = match &run.error {
            Some((e, _)) => Some(error_json(e)),
            None if run.over_budget => Some(error_json(&RuleError::plain(format!(
                "the rule used up its {} ms before it was evaluated on every subject",
                RULE_BUDGET.as_millis()
            )))),
            None => None,
        };
        json!({
            "valid": true,
            "evaluated": run.evaluated,
            "holding": changes.iter().map(|c| json!({ "subject": c.subject, "name": c.subject_name, "message": c.message })).collect::<Vec<_>>(),
            "error": error,
            "failed": run.error.as_ref().map_or(0, |(_, n)| *n),
            "over_budget": run.over_budget,
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the test failed: {e}")))
}

/// The starter rules (`examples/rules/`), as shipped in the binary.
pub const STARTER: [(&str, &str); 4] = [
    (
        "service-level-breach",
        include_str!("../../../examples/rules/service-level-breach.toml"),
    ),
    ("long-waits", include_str!("../../../examples/rules/long-waits.toml")),
    ("long-pauses", include_str!("../../../examples/rules/long-pauses.toml")),
    (
        "no-agents-available",
        include_str!("../../../examples/rules/no-agents-available.toml"),
    ),
];

/// Imports the starter rules the tenant does not have (by name).
async fn starter(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    let (created, skipped) = import_starter(&app, &scope, &origin).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "created": created, "skipped": skipped })),
    )
        .into_response())
}

/// Creates the starter rules the tenant has no rule of that name for: (created, skipped names).
pub async fn import_starter(
    app: &AppState,
    scope: &crate::store::TenantScope,
    origin: &crate::store::audit::Origin,
) -> Result<(Vec<Value>, Vec<String>), ApiError> {
    let existing: Vec<String> = alert_rules::list(&app.store, scope.tenant_id())
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    let (mut created, mut skipped) = (Vec::new(), Vec::new());
    for (file, text) in STARTER {
        let input: RuleInput = toml::from_str(text)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("starter rule {file}: {e}")))?;
        if input.name.as_ref().is_some_and(|n| existing.contains(n)) {
            skipped.push(input.name.unwrap_or_default());
            continue;
        }
        let fields = fields(app, input, None).map_err(crate::store::StoreError::Invalid)?;
        let row = alert_rules::create(&app.store, scope, &fields).await?;
        created.push(rule_json(&row, None));
    }
    app.rules.changed(scope.tenant_id()).await;
    let event = AuditEvent::in_tenant(scope, "alert_rule.import_starter", Outcome::Success)
        .target("alert_rule", "starter")
        .detail(format!("{} imported, {} already there", created.len(), skipped.len()));
    audit::record(&app.store, event, origin).await;
    Ok((created, skipped))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceInput {
    /// For how long, 1 minute to 7 days.
    pub minutes: i64,
    /// Only this subject (`queue:<id>`, `agent:<id>`, `tenant`); left out: all of the rule's.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub reason: String,
}

async fn silence(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Live)?;
    // Another tenant's rule is not found, whatever the body says.
    alert_rules::get(&app.store, &scope, &id).await?;
    let input: SilenceInput = body(&bytes)?;
    if !(1..=7 * 24 * 60).contains(&input.minutes) {
        return Err(crate::store::StoreError::Invalid(Validation::single("minutes", "1 to 10080 minutes")).into());
    }
    if input.reason.chars().count() > 200 || input.reason.chars().any(char::is_control) {
        return Err(crate::store::StoreError::Invalid(Validation::single(
            "reason",
            "one line of at most 200 characters",
        ))
        .into());
    }
    let until = crate::domain::time::now_ms() + input.minutes * 60_000;
    let silence_id =
        alert_rules::silence(&app.store, &scope, &id, input.subject.as_deref(), until, &input.reason).await?;
    let event = AuditEvent::in_tenant(&scope, "alert_rule.silence", Outcome::Success)
        .target("alert_rule", &id)
        .detail(format!(
            "{} for {} min{}",
            input.subject.as_deref().unwrap_or("all subjects"),
            input.minutes,
            if input.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", input.reason)
            }
        ));
    audit::record(&app.store, event, &origin).await;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "id": silence_id, "until": crate::domain::time::to_rfc3339(until) })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct AlertsQuery {
    /// `open` (default) or `all`.
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

fn alert_json(a: &alert_rules::AlertRow) -> Value {
    let time = |ms: Option<i64>| ms.map(crate::domain::time::to_rfc3339);
    json!({
        "id": a.id, "rule_id": a.rule_id, "rule_version": a.rule_version, "rule_name": a.rule_name,
        "severity": a.severity, "subject": a.subject, "subject_name": a.subject_name, "message": a.message,
        "state": if a.resolved_at.is_some() { "resolved" } else { "firing" },
        "since": time(Some(a.since_at)), "fired_at": time(Some(a.fired_at)), "resolved_at": time(a.resolved_at),
        "acknowledged_by": a.acknowledged_by, "acknowledged_at": time(a.acknowledged_at),
    })
}

async fn alerts(State(app): State<AppState>, caller: Caller, Query(query): Query<AlertsQuery>) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Live)?;
    let open_only = match query.state.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(_) => return Err(ApiError::bad_request("`state` is `open` or `all`")),
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let rows = alert_rules::alerts(&app.store, &scope, open_only, limit).await?;
    Ok(axum::Json(json!({ "items": rows.iter().map(alert_json).collect::<Vec<_>>() })).into_response())
}

async fn acknowledge(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Live)?;
    let alert = alert_rules::acknowledge(&app.store, &scope, &id).await?;
    let event = AuditEvent::in_tenant(&scope, "alert.acknowledge", Outcome::Success)
        .target("alert", &id)
        .detail(format!("{}: {}", alert.rule_name, alert.message));
    audit::record(&app.store, event, &origin).await;
    Ok(axum::Json(alert_json(&alert)).into_response())
}

/// The key the rule's webhooks are signed with (`Monti-Signature`), for the receiver to check.
/// Tenant admins; audited.
async fn signing_secret(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    let rule = alert_rules::get(&app.store, &scope, &id).await?;
    let secret = alert_rules::signing_secret(&app.store, scope.tenant_id(), &rule.id).await?;
    let event = AuditEvent::in_tenant(&scope, "alert_rule.signing_secret", Outcome::Success)
        .target("alert_rule", &rule.id)
        .detail(rule.name.clone());
    audit::record(&app.store, event, &origin).await;
    Ok(axum::Json(json!({
        "signing_secret": secret,
        "header": "Monti-Signature",
        "scheme": "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\" with the secret>",
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct NotificationsQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

async fn notifications(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<NotificationsQuery>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Live)?;
    if let Some(state) = &query.state
        && !matches!(state.as_str(), "pending" | "sent" | "failed")
    {
        return Err(ApiError::bad_request("`state` is `pending`, `sent` or `failed`"));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let rows = alert_rules::notifications(&app.store, &scope, query.state.as_deref(), limit).await?;
    let time = |ms: Option<i64>| ms.map(crate::domain::time::to_rfc3339);
    let items: Vec<Value> = rows
        .iter()
        .map(|n| {
            let mut target: Value = serde_json::from_str(&n.target).unwrap_or(Value::Null);
            if let Some(object) = target.as_object_mut() {
                object.remove("secret");
            }
            json!({
                "id": n.id, "rule_id": n.rule_id, "target": target, "summary": n.summary, "state": n.state,
                "attempts": n.attempts, "last_error": n.last_error, "created_at": time(Some(n.created_at)),
                "next_attempt_at": (n.state == "pending").then(|| time(Some(n.next_attempt_at))).flatten(),
                "sent_at": time(n.sent_at),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}
