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
use crate::rules::RuleError;
use crate::service::rules::{self as service, RulesContext, Tested};
pub use crate::service::rules::{RuleInput, SilenceInput};
use crate::store::alert_rules::{self, RuleRow};

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

/// What the rule flows need, from the running server.
pub(super) fn context(app: &AppState) -> RulesContext<'_> {
    RulesContext {
        store: &app.store,
        rules: &app.rules,
        live: &app.live,
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
    let rows = alert_rules::list(&app.store, scope.tenant()).await?;
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
    let row = service::create(&context(&app), &scope, input, &origin).await?;
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
    let expected = headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"').parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::bad_request("If-Match is the rule's version, e.g. \"3\""))?;
    let row = service::update(&context(&app), &scope, &id, input, expected, &origin).await?;
    Ok(axum::Json(rule_json(&row, None)).into_response())
}

async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    service::delete(&context(&app), &scope, &id, &origin).await?;
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

impl From<Draft> for service::Draft {
    fn from(d: Draft) -> Self {
        service::Draft {
            scope: d.scope,
            expression: d.expression,
            message: d.message.unwrap_or_default(),
            queues: d.queues,
            teams: d.teams,
        }
    }
}

fn error_json(error: &RuleError) -> Value {
    json!({ "message": error.message, "line": error.line, "column": error.column })
}

/// Compiles a draft: `{"valid": true}` or the error with its line and column.
async fn check(State(app): State<AppState>, caller: Caller, bytes: axum::body::Bytes) -> ApiResult<Response> {
    caller.tenant(Action::Read, Area::Live)?;
    let draft: Draft = body(&bytes)?;
    let checked = service::check(&app.rules, &draft.into())?;
    let mut answer = match &checked.error {
        None => json!({ "valid": true }),
        Some(error) => json!({ "valid": false, "error": error_json(error) }),
    };
    if !checked.unknown_placeholders.is_empty() {
        answer["valid"] = json!(false);
        answer["message_error"] = json!(format!(
            "{} cannot be filled in",
            checked.unknown_placeholders.join(", ")
        ));
    }
    Ok(axum::Json(answer).into_response())
}

/// Evaluates a draft on the floor as it is now: on how many subjects it holds (which would
/// fire once held for the rule's `for`), and the first error. It runs arbitrary code on the
/// server, so it is for those who may write rules.
async fn test(State(app): State<AppState>, caller: Caller, bytes: axum::body::Bytes) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    let draft: Draft = body(&bytes)?;
    let answer = match service::test(&context(&app), &scope, draft.into()).await? {
        Tested::Invalid(error) => json!({ "valid": false, "error": error_json(&error) }),
        Tested::Ran(run) => json!({
            "valid": true,
            "evaluated": run.evaluated,
            "holding": run.holding.iter().map(|c| json!({ "subject": c.subject, "name": c.subject_name, "message": c.message })).collect::<Vec<_>>(),
            "error": run.error.as_ref().map(error_json),
            "failed": run.failed,
            "over_budget": run.over_budget,
        }),
    };
    Ok(axum::Json(answer).into_response())
}

/// Imports the starter rules the tenant does not have (by name).
async fn starter(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    let imported = service::import_starter(&context(&app), &scope, &origin).await?;
    let created: Vec<Value> = imported.created.iter().map(|r| rule_json(r, None)).collect();
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "created": created, "skipped": imported.skipped })),
    )
        .into_response())
}

async fn silence(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Live)?;
    let ctx = context(&app);
    // Another tenant's rule is not found, whatever the body says.
    service::get(&ctx, &scope, &id).await?;
    let input: SilenceInput = body(&bytes)?;
    let silenced = service::silence(&ctx, &scope, &id, &input, &origin).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "id": silenced.id, "until": crate::domain::time::to_rfc3339(silenced.until) })),
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
    let alert = service::acknowledge(&context(&app), &scope, &id, &origin).await?;
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
    let secret = service::signing_secret(&context(&app), &scope, &id, &origin).await?;
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
