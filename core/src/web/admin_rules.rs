//! The alert rules editor: the tenant's rules with their status (firing, failing), a form that
//! checks the condition as it is typed (htmx: syntax errors with line and column) and tests it
//! against the current floor, every version of a rule, and the starter set in one click.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::admin::tenant_scope;
use super::alerts::{context, rule_json};
use super::page_error::PageResult;
use super::session::SignedIn;
use super::ui::render_view;
use crate::auth::{Action, Area, permits};
use crate::service::rules::{self as service, Draft, RuleInput, RulesError, Tested};
use crate::store::alert_rules;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/alert-rules", get(list_page).post(create))
        .route("/admin/alert-rules/new", get(new_page))
        .route("/admin/alert-rules/starter", post(import_starter))
        .route("/admin/alert-rules/check", post(check))
        .route("/admin/alert-rules/test", post(test))
        .route("/admin/alert-rules/{id}", get(edit_page).post(update))
        .route("/admin/alert-rules/{id}/delete", post(delete))
}

/// `admin/alert_rules.html`: the tenant's rules with their status.
#[derive(Serialize)]
struct RulesView {
    rules: Vec<Value>,
    can_write: bool,
}

async fn list_page(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::Configuration)?;
    let rows = alert_rules::list(&app.store, scope.tenant()).await?;
    let status = app.rules.status(scope.tenant_id()).await;
    let view = RulesView {
        rules: rows.iter().map(|r| rule_json(r, status.get(&r.id))).collect(),
        can_write: permits(scope.role(), Action::Write, Area::Configuration),
    };
    Ok(render_view(
        &app,
        &signed.page,
        "admin/alert_rules.html",
        &view,
        StatusCode::OK,
    ))
}

/// The form as posted.
#[derive(Debug, Default, Deserialize)]
struct RuleForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    expression: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    for_s: String,
    #[serde(default)]
    message: String,
    /// Email addresses, comma- or line-separated.
    #[serde(default)]
    emails: String,
    /// Webhook URLs, one per line.
    #[serde(default)]
    webhooks: String,
    #[serde(default)]
    enabled: Option<String>,
}

impl RuleForm {
    fn input(&self) -> Result<RuleInput, String> {
        let for_s = self
            .for_s
            .trim()
            .parse::<i64>()
            .map_err(|_| "`for` is a number of seconds".to_owned())?;
        let mut targets: Vec<Value> = self
            .emails
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|to| json!({ "type": "email", "to": to }))
            .collect();
        targets.extend(
            self.webhooks
                .lines()
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(|url| json!({ "type": "webhook", "url": url })),
        );
        Ok(RuleInput {
            name: Some(self.name.clone()),
            scope: Some(self.scope.clone()),
            expression: Some(self.expression.clone()),
            severity: Some(self.severity.clone()),
            for_s: Some(for_s),
            message: Some(self.message.clone()),
            targets: Some(targets),
            enabled: Some(self.enabled.is_some()),
            ..RuleInput::default()
        })
    }

    fn of(rule: &Value) -> Self {
        let targets = rule["targets"].as_array().cloned().unwrap_or_default();
        let of_type = |kind: &str, field: &str| -> Vec<String> {
            targets
                .iter()
                .filter(|t| t["type"] == json!(kind))
                .filter_map(|t| t[field].as_str().map(str::to_owned))
                .collect()
        };
        Self {
            name: rule["name"].as_str().unwrap_or_default().into(),
            scope: rule["scope"].as_str().unwrap_or_default().into(),
            expression: rule["expression"].as_str().unwrap_or_default().into(),
            severity: rule["severity"].as_str().unwrap_or_default().into(),
            for_s: rule["for_s"].to_string(),
            message: rule["message"].as_str().unwrap_or_default().into(),
            emails: of_type("email", "to").join(", "),
            webhooks: of_type("webhook", "url").join("\n"),
            enabled: rule["enabled"].as_bool().unwrap_or(true).then(|| "on".into()),
        }
    }

    fn view(&self) -> FormFields<'_> {
        FormFields {
            name: &self.name,
            scope: &self.scope,
            expression: &self.expression,
            severity: &self.severity,
            for_s: &self.for_s,
            message: &self.message,
            emails: &self.emails,
            webhooks: &self.webhooks,
            enabled: self.enabled.is_some(),
        }
    }
}

/// The form's fields as the page shows them.
#[derive(Serialize)]
struct FormFields<'a> {
    name: &'a str,
    scope: &'a str,
    expression: &'a str,
    severity: &'a str,
    for_s: &'a str,
    message: &'a str,
    emails: &'a str,
    webhooks: &'a str,
    enabled: bool,
}

/// `admin/alert_rule.html`: a rule's form, its versions and the form's errors.
#[derive(Serialize)]
struct RuleView<'a> {
    form: FormFields<'a>,
    rule: Option<&'a Value>,
    versions: Vec<Value>,
    errors: Vec<Value>,
}

fn form_page(
    app: &AppState,
    signed: &SignedIn,
    form: &RuleForm,
    rule: Option<&Value>,
    versions: Vec<Value>,
    errors: Vec<Value>,
    status: StatusCode,
) -> Response {
    let view = RuleView {
        form: form.view(),
        rule,
        versions,
        errors,
    };
    render_view(app, &signed.page, "admin/alert_rule.html", &view, status)
}

async fn new_page(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    tenant_scope(&app, &signed, Action::Write, Area::Configuration)?;
    let form = RuleForm {
        scope: "queue".into(),
        severity: "warning".into(),
        for_s: "60".into(),
        enabled: Some("on".into()),
        ..RuleForm::default()
    };
    Ok(form_page(
        &app,
        &signed,
        &form,
        None,
        Vec::new(),
        Vec::new(),
        StatusCode::OK,
    ))
}

async fn edit_page(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::Configuration)?;
    let row = alert_rules::get(&app.store, &scope, &id).await?;
    let status = app.rules.status(scope.tenant_id()).await;
    let rule = rule_json(&row, status.get(&row.id));
    let versions = versions(&app, &scope, &id).await;
    Ok(form_page(
        &app,
        &signed,
        &RuleForm::of(&rule),
        Some(&rule),
        versions,
        Vec::new(),
        StatusCode::OK,
    ))
}

async fn versions(app: &AppState, scope: &crate::store::TenantScope, id: &str) -> Vec<Value> {
    alert_rules::versions(&app.store, scope, id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(version, body, by, at)| {
            let rule: Value = serde_json::from_str(&body).unwrap_or_default();
            json!({ "version": version, "expression": rule["expression"], "by": by,
                    "at": crate::domain::time::to_rfc3339(at) })
        })
        .collect()
}

/// Field errors as the form shows them.
fn field_errors(error: RulesError) -> Vec<Value> {
    match error {
        RulesError::Invalid(v) => v
            .errors
            .into_iter()
            .map(|e| json!({ "field": e.pointer.trim_start_matches('/'), "message": e.detail }))
            .collect(),
        other => vec![json!({ "field": "", "message": other.to_string() })],
    }
}

async fn save(app: &AppState, signed: &SignedIn, id: Option<String>, form: RuleForm) -> PageResult {
    let scope = tenant_scope(app, signed, Action::Write, Area::Configuration)?;
    let input = match form.input() {
        Ok(i) => i,
        Err(why) => {
            let errors = vec![json!({ "field": "for_s", "message": why })];
            return Ok(form_page(
                app,
                signed,
                &form,
                None,
                Vec::new(),
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
    };
    let ctx = context(app);
    let origin = &signed.page.origin;
    let (saved, base) = match &id {
        Some(id) => {
            // Shown again with the form when the change is refused.
            let base = service::get(&ctx, &scope, id).await?;
            (service::update(&ctx, &scope, id, input, None, origin).await, Some(base))
        }
        None => (service::create(&ctx, &scope, input, origin).await, None),
    };
    Ok(match saved {
        Ok(row) => Redirect::to(&format!("/admin/alert-rules/{}", row.id)).into_response(),
        Err(error) => {
            let rule = base.as_ref().map(|b| rule_json(b, None));
            form_page(
                app,
                signed,
                &form,
                rule.as_ref(),
                Vec::new(),
                field_errors(error),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    })
}

async fn create(State(app): State<AppState>, signed: SignedIn, axum::Form(form): axum::Form<RuleForm>) -> PageResult {
    save(&app, &signed, None, form).await
}

async fn update(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<RuleForm>,
) -> PageResult {
    save(&app, &signed, Some(id), form).await
}

async fn delete(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Configuration)?;
    service::delete(&context(&app), &scope, &id, &signed.page.origin).await?;
    Ok(Redirect::to("/admin/alert-rules").into_response())
}

async fn import_starter(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Configuration)?;
    service::import_starter(&context(&app), &scope, &signed.page.origin).await?;
    Ok(Redirect::to("/admin/alert-rules").into_response())
}

#[derive(Debug, Default, Deserialize)]
struct DraftForm {
    #[serde(default)]
    scope: String,
    #[serde(default)]
    expression: String,
    #[serde(default)]
    message: String,
}

impl From<DraftForm> for Draft {
    fn from(d: DraftForm) -> Self {
        Draft {
            scope: d.scope,
            expression: d.expression,
            message: d.message,
            ..Draft::default()
        }
    }
}

fn fragment(app: &AppState, id: &str, class: &str, text: &str) -> Response {
    feedback(app, id, class, text, None)
}

/// `partials/rule_feedback.html`: the editor's feedback; `items` for a test's subjects.
#[derive(Serialize)]
struct Feedback<'a> {
    id: &'a str,
    class: &'a str,
    text: &'a str,
    /// Left out for a check: the template tells a test by `items` being there.
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Vec<&'a str>>,
}

fn feedback(app: &AppState, id: &str, class: &str, text: &str, items: Option<Vec<&str>>) -> Response {
    let view = Feedback { id, class, text, items };
    super::ui::render_alone(app, "partials/rule_feedback.html", &view, StatusCode::OK)
}

/// As one types: the condition compiled, its error with line and column (a fragment).
async fn check(State(app): State<AppState>, signed: SignedIn, axum::Form(draft): axum::Form<DraftForm>) -> PageResult {
    tenant_scope(&app, &signed, Action::Read, Area::Configuration)?;
    let t = signed.page.locale;
    let checked = match service::check(&app.rules, &draft.into()) {
        Ok(checked) => checked,
        Err(_) => {
            return Ok(fragment(
                &app,
                "expression-check",
                "field-error",
                &t.text("rules.bad_scope"),
            ));
        }
    };
    if let Some(error) = &checked.error {
        return Ok(fragment(&app, "expression-check", "field-error", &error.to_string()));
    }
    if !checked.unknown_placeholders.is_empty() {
        return Ok(fragment(
            &app,
            "expression-check",
            "field-error",
            &format!(
                "{}: {}",
                t.text("rules.unknown_placeholders"),
                checked.unknown_placeholders.join(", ")
            ),
        ));
    }
    Ok(fragment(&app, "expression-check", "notice", &t.text("rules.valid")))
}

/// What the condition says on the floor right now (a fragment). It runs the rule, so it is for
/// those who may write rules.
async fn test(State(app): State<AppState>, signed: SignedIn, axum::Form(draft): axum::Form<DraftForm>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Configuration)?;
    let t = signed.page.locale;
    let run = match service::test(&context(&app), &scope, draft.into()).await {
        Ok(Tested::Ran(run)) => run,
        Ok(Tested::Invalid(error)) => return Ok(test_error(&app, &error)),
        Err(e) => {
            let detail = super::problem::ApiError::from(e).problem.detail.unwrap_or_default();
            return Ok(fragment(&app, "test-result", "field-error", &detail));
        }
    };
    if let Some(error) = &run.error {
        return Ok(test_error(&app, error));
    }
    let summary = t
        .text("rules.test_summary")
        .replace("{held}", &run.holding.len().to_string())
        .replace("{evaluated}", &run.evaluated.to_string());
    let holding: Vec<&str> = run
        .holding
        .iter()
        .take(50)
        .map(|h| {
            if h.message.is_empty() {
                h.subject_name.as_str()
            } else {
                h.message.as_str()
            }
        })
        .collect();
    Ok(feedback(&app, "test-result", "notice", &summary, Some(holding)))
}

/// Why the draft did not compile or run, with its line.
fn test_error(app: &AppState, error: &crate::rules::RuleError) -> Response {
    let line = error.line.map(|l| format!(" (line {l})")).unwrap_or_default();
    fragment(app, "test-result", "field-error", &format!("{}{line}", error.message))
}
