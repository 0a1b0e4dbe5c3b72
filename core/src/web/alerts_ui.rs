//! Alerts in the UI: the banner boards and wallboards show (rendered here, sent with the board's
//! stream as `alerts` events), and the alerts page — what fires now, with acknowledge and
//! silence, and what fired recently.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::admin::tenant_scope;
use super::page_error::PageResult;
use super::session::SignedIn;
use super::ui::render_view;
use crate::auth::{Action, Area};
use crate::domain::alert::AlertChange;
use crate::i18n::Locale;
use crate::live::registry::Floor;
use crate::service::{
    self,
    rules::{RulesError, SilenceInput},
};
use crate::store::Visibility;
use crate::store::alert_rules;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(page))
        .route("/alerts/{id}/acknowledge", post(acknowledge))
        .route("/alerts/rules/{rule}/silence", post(silence))
}

/// Whether a viewer may see an alert's subject (agents of teams or locations it sees).
fn visible(alert: &AlertChange, floor: &Floor, visibility: &Visibility) -> bool {
    let Some(agent) = alert.subject.strip_prefix("agent:") else {
        return true;
    };
    let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
    let Some(slot) = live.agent_slot(agent) else {
        return false;
    };
    let (team, location) = floor.agent_groups.get(slot as usize).cloned().unwrap_or_default();
    visibility.admits(team.as_deref(), location.as_deref())
}

/// The banner: the alerts firing that the viewer may see, most severe first (empty when none),
/// from `partials/alert_banner.html`.
pub fn banner(
    templates: &tera::Tera,
    firing: &[AlertChange],
    floor: &Floor,
    visibility: &Visibility,
    locale: Locale,
) -> String {
    const SHOWN: usize = 8;
    let visible: Vec<&AlertChange> = firing.iter().filter(|a| visible(a, floor, visibility)).collect();
    if visible.is_empty() {
        return String::new();
    }
    let alerts: Vec<serde_json::Value> = visible
        .iter()
        .take(SHOWN)
        .map(|alert| {
            serde_json::json!({
                "severity": alert.severity.as_str(), "rule": alert.rule_id, "subject": alert.subject,
                "name": alert.rule_name, "message": alert.message,
            })
        })
        .collect();
    let view = Banner {
        alerts,
        total: visible.len(),
        more: visible.len().saturating_sub(SHOWN),
        all_alerts: locale.text("alerts.all_alerts"),
    };
    tera::Context::from_serialize(&view)
        .and_then(|context| templates.render("partials/alert_banner.html", &context))
        .unwrap_or_else(|e| {
            tracing::error!(error = ?e, "the alert banner does not render");
            String::new()
        })
}

/// `partials/alert_banner.html`.
#[derive(Serialize)]
struct Banner {
    alerts: Vec<serde_json::Value>,
    total: usize,
    /// How many more than are shown.
    more: usize,
    all_alerts: String,
}

/// `pages/alerts.html`: what is firing and what fired, for this viewer.
#[derive(Serialize)]
struct AlertsPage {
    firing: Vec<serde_json::Value>,
    history: Vec<serde_json::Value>,
    can_act: bool,
    can_edit_rules: bool,
}

async fn page(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::Live)?;
    let floor = app.live.floor(&scope).await?;
    let alerts = alert_rules::alerts(&app.store, &scope, false, 200).await?;
    let visibility = scope.visibility();
    let time = |ms: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .map(|t| t.with_timezone(&floor.tz).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    let rows: Vec<serde_json::Value> = alerts
        .iter()
        .filter(|a| {
            let probe = AlertChange {
                rule_id: a.rule_id.clone(),
                rule_version: a.rule_version,
                rule_name: String::new(),
                severity: crate::rules::eval::Severity::Info,
                subject: a.subject.clone(),
                subject_name: String::new(),
                message: String::new(),
                since_ms: 0,
                fired_ms: 0,
                resolved_ms: None,
            };
            visible(&probe, &floor, visibility)
        })
        .map(|a| {
            json!({
                "id": a.id, "rule_id": a.rule_id, "rule_name": a.rule_name, "severity": a.severity,
                "subject": a.subject, "subject_name": a.subject_name, "message": a.message,
                "firing": a.resolved_at.is_none(), "since": time(a.since_at), "fired_at": time(a.fired_at),
                "resolved_at": a.resolved_at.map(time), "acknowledged_by": a.acknowledged_by,
            })
        })
        .collect();
    let (firing, history): (Vec<_>, Vec<_>) = rows.into_iter().partition(|a| a["firing"] == json!(true));
    let page = AlertsPage {
        firing,
        history,
        can_act: crate::auth::permits(scope.role(), Action::Write, Area::Live),
        can_edit_rules: crate::auth::permits(scope.role(), Action::Write, Area::Configuration),
    };
    Ok(render_view(
        &app,
        &signed.page,
        "pages/alerts.html",
        &page,
        StatusCode::OK,
    ))
}

async fn acknowledge(
    State(app): State<AppState>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Live)?;
    let ctx = super::alerts::context(&app);
    Ok(
        match service::rules::acknowledge(&ctx, &scope, &id, &signed.page.origin).await {
            Ok(_) => Redirect::to("/alerts").into_response(),
            Err(e) => super::ui::error_page(&app, &headers, StatusCode::NOT_FOUND, &e.to_string()),
        },
    )
}

/// The silence form: the API's fields, beside the page's CSRF token.
#[derive(Debug, serde::Deserialize)]
struct SilenceForm {
    minutes: i64,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    reason: String,
}

async fn silence(
    State(app): State<AppState>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(rule): Path<String>,
    axum::Form(form): axum::Form<SilenceForm>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Live)?;
    let ctx = super::alerts::context(&app);
    let input = SilenceInput {
        minutes: form.minutes,
        subject: form.subject.filter(|s| !s.is_empty()),
        reason: form.reason,
    };
    Ok(
        match service::rules::silence(&ctx, &scope, &rule, &input, &signed.page.origin).await {
            Ok(_) => Redirect::to("/alerts").into_response(),
            Err(RulesError::Invalid(_)) => super::ui::error_page(
                &app,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                &signed.page.locale.text("alerts.silence_invalid"),
            ),
            Err(e) => super::ui::error_page(&app, &headers, StatusCode::NOT_FOUND, &e.to_string()),
        },
    )
}
