//! Saved and scheduled reports over the API and in the UI. What they are, who may change them
//! and how they are sent is `service::saved_reports`'; this module translates.
//!
//! - `GET/POST /api/v1/reports/saved`, `GET/PUT/DELETE /api/v1/reports/saved/{id}`,
//!   `POST /api/v1/reports/saved/{id}/send`, `GET /api/v1/reports/saved/{id}/mail`
//! - `GET /reports/saved`, `GET /reports/saved/new?kind=…&<report filters>`,
//!   `POST /reports/saved`, `GET/POST /reports/saved/{id}`, `POST /reports/saved/{id}/send`,
//!   `POST /reports/saved/{id}/delete`

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Serialize;

use super::AppState;
use super::admin::tenant_scope;
use super::extract::{ApiJson, Caller, IfMatch, RequestOrigin};
use super::history::history;
use super::page_error::PageResult;
use super::problem::ApiResult;
use super::session::SignedIn;
use super::ui::render_view;
use crate::auth::{Action, Area};
use crate::service::saved_reports::{PERIODS, SavedReport, SavedReportSet, SavedReports, Schedule};
use crate::store::StoreError;
use crate::store::mail_outbox::MailStatus;

pub fn api_router() -> Router<AppState> {
    Router::new()
        .route("/reports/saved", get(api_list).post(api_create))
        .route("/reports/saved/{id}", get(api_show).put(api_update).delete(api_delete))
        .route("/reports/saved/{id}/send", post(api_send))
        .route("/reports/saved/{id}/mail", get(api_mail))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reports/saved", get(list_page).post(create_page))
        .route("/reports/saved/new", get(new_page))
        .route("/reports/saved/{id}", get(edit_page).post(update_page))
        .route("/reports/saved/{id}/send", post(send_page))
        .route("/reports/saved/{id}/delete", post(delete_page))
}

fn saved(app: &AppState) -> SavedReports<'_> {
    SavedReports {
        history: history(app),
        public_url: app.config.public_url(),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SavedReportList {
    pub items: Vec<SavedReport>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SavedReportMail {
    pub items: Vec<MailStatus>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SendResult {
    /// Emails queued (one per recipient).
    pub queued: usize,
}

async fn api_list(State(app): State<AppState>, caller: Caller) -> ApiResult<axum::Json<SavedReportList>> {
    let scope = caller.tenant(Action::Read, Area::History)?;
    Ok(axum::Json(SavedReportList {
        items: saved(&app).list(&scope).await?,
    }))
}

async fn api_show(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::History)?;
    let report = saved(&app).get(&scope, &id).await?;
    Ok(super::api::versioned(StatusCode::OK, report.version, None, &report))
}

async fn api_create(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    body: ApiJson<SavedReportSet>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::History)?;
    let service = saved(&app);
    let report = service.create(&scope, &origin, body.0?).await?;
    let location = format!("/api/v1/reports/saved/{}", report.id);
    Ok(super::api::versioned(
        StatusCode::CREATED,
        report.version,
        Some(location),
        &report,
    ))
}

async fn api_update(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    body: ApiJson<SavedReportSet>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::History)?;
    let service = saved(&app);
    // Another tenant's (or no) report is not found, whatever the body holds.
    service.get(&scope, &id).await?;
    let report = service.update(&scope, &origin, &id, expected, body.0?).await?;
    Ok(super::api::versioned(StatusCode::OK, report.version, None, &report))
}

async fn api_delete(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let scope = caller.tenant(Action::Write, Area::History)?;
    saved(&app).delete(&scope, &origin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn api_send(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<SendResult>)> {
    let scope = caller.tenant(Action::Write, Area::History)?;
    let service = saved(&app);
    let queued = service.send_now(&scope, &origin, &id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(SendResult { queued })))
}

async fn api_mail(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SavedReportMail>> {
    let scope = caller.tenant(Action::Read, Area::History)?;
    Ok(axum::Json(SavedReportMail {
        items: saved(&app).mail(&scope, &id).await?,
    }))
}

// --- pages ---------------------------------------------------------------------------------

/// A saved report in words, for the list.
#[derive(Serialize)]
struct Row {
    report: SavedReport,
    /// `daily`/`weekly` with the day and time, or empty.
    schedule: String,
    may_manage: bool,
}

/// `pages/saved_reports.html`.
#[derive(Serialize)]
struct ListView {
    rows: Vec<Row>,
    can_write: bool,
    /// The id just sent (for the notice).
    sent: Option<String>,
}

fn schedule_words(schedule: &Option<Schedule>, locale: crate::i18n::Locale) -> String {
    let Some(s) = schedule else {
        return String::new();
    };
    let text = |k: &str| locale.text(&format!("saved_reports.{k}"));
    match s.weekday.as_deref() {
        Some(day) if s.frequency == "weekly" => text("weekly_at")
            .replace("{day}", &text(&format!("days.{day}")))
            .replace("{time}", &s.time),
        _ => text("daily_at").replace("{time}", &s.time),
    }
}

fn may_manage(scope: &crate::store::TenantScope, report: &SavedReport) -> bool {
    crate::auth::permits(scope.role(), Action::Write, Area::History)
        && (scope.actor() == report.owner || scope.role() == crate::domain::Role::TenantAdmin)
}

async fn list_page(
    State(app): State<AppState>,
    signed: SignedIn,
    axum::extract::Query(pairs): axum::extract::Query<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::History)?;
    let rows = saved(&app)
        .list(&scope)
        .await?
        .into_iter()
        .map(|report| Row {
            schedule: schedule_words(&report.schedule, signed.page.locale),
            may_manage: may_manage(&scope, &report),
            report,
        })
        .collect();
    let view = ListView {
        rows,
        can_write: crate::auth::permits(scope.role(), Action::Write, Area::History),
        sent: pairs.into_iter().find(|(k, _)| k == "sent").map(|(_, v)| v),
    };
    Ok(render_view(
        &app,
        &signed.page,
        "pages/saved_reports.html",
        &view,
        StatusCode::OK,
    ))
}

/// `pages/saved_report.html`: a new saved report or one being changed.
#[derive(Serialize, Default)]
struct FormView {
    /// `None` while new.
    id: Option<String>,
    version: Option<i64>,
    name: String,
    kind: String,
    params: BTreeMap<String, String>,
    period: String,
    from: String,
    to: String,
    frequency: String,
    weekday: String,
    time: String,
    recipients: String,
    periods: Vec<&'static str>,
    buckets: Vec<&'static str>,
    queues: Vec<(String, String)>,
    /// Field → message.
    errors: BTreeMap<String, String>,
    message: Option<String>,
    mail: Vec<MailStatus>,
    last_error: Option<String>,
    next_run_at: Option<String>,
    may_manage: bool,
    /// The report over its period as of now.
    report_href: Option<String>,
}

async fn form_view(
    app: &AppState,
    scope: &crate::store::TenantScope,
    mut view: FormView,
) -> Result<FormView, super::page_error::PageError> {
    let dir = history(app).directory(scope).await?;
    let mut queues: Vec<(String, String)> = dir.queues().iter().map(|q| (q.id.clone(), q.name.clone())).collect();
    queues.sort_by_key(|(_, name)| name.to_lowercase());
    view.queues = queues;
    view.periods = PERIODS.to_vec();
    view.buckets = crate::service::reports::Bucket::ALL.iter().map(|(s, _)| *s).collect();
    if view.time.is_empty() {
        view.time = "07:00".into();
    }
    Ok(view)
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The day a report form's `from` starts (`2026-12-01T00:00` → `2026-12-01`) or its `to` ends:
/// a `to` at midnight ends the day before (`2026-12-08T00:00` → `2026-12-07`).
fn date_part(value: &str, end: bool) -> String {
    let (date, time) = value.split_once('T').unwrap_or((value, ""));
    match chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") {
        Ok(day) if end && matches!(time, "00:00" | "00:00:00") => day.pred_opt().unwrap_or(day).to_string(),
        _ => date.to_owned(),
    }
}

async fn new_page(
    State(app): State<AppState>,
    signed: SignedIn,
    axum::extract::Query(pairs): axum::extract::Query<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::History)?;
    let kind = match first(&pairs, "kind") {
        Some("agents") => "agents",
        _ => "queues",
    };
    let params: BTreeMap<String, String> = ["tz", "bucket", "queue", "team", "agent"]
        .iter()
        .filter(|k| kind == "agents" || !["team", "agent"].contains(k))
        .filter(|k| kind == "queues" || **k != "queue")
        .filter_map(|k| {
            first(&pairs, k)
                .filter(|v| !v.is_empty())
                .map(|v| (k.to_string(), v.to_owned()))
        })
        .collect();
    let (from, to) = (
        first(&pairs, "from").map(|v| date_part(v, false)).unwrap_or_default(),
        first(&pairs, "to").map(|v| date_part(v, true)).unwrap_or_default(),
    );
    let view = FormView {
        kind: kind.into(),
        params,
        period: if from.is_empty() {
            "today".into()
        } else {
            "custom".into()
        },
        from,
        to,
        may_manage: true,
        ..FormView::default()
    };
    let view = form_view(&app, &scope, view).await?;
    Ok(render_view(
        &app,
        &signed.page,
        "pages/saved_report.html",
        &view,
        StatusCode::OK,
    ))
}

async fn edit_page(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::History)?;
    let service = saved(&app);
    let report = service.get(&scope, &id).await?;
    let mail = service.mail(&scope, &id).await?;
    let view = view_of(&scope, report, mail);
    let view = form_view(&app, &scope, view).await?;
    Ok(render_view(
        &app,
        &signed.page,
        "pages/saved_report.html",
        &view,
        StatusCode::OK,
    ))
}

fn view_of(scope: &crate::store::TenantScope, report: SavedReport, mail: Vec<MailStatus>) -> FormView {
    let schedule = report.schedule.clone();
    FormView {
        may_manage: may_manage(scope, &report),
        report_href: Some(format!("/reports/{}?{}", report.kind, report.query)),
        id: Some(report.id),
        version: Some(report.version),
        name: report.name,
        kind: report.kind,
        params: report.params,
        period: report.period,
        from: report.from.unwrap_or_default(),
        to: report.to.unwrap_or_default(),
        frequency: schedule.as_ref().map(|s| s.frequency.clone()).unwrap_or_default(),
        weekday: schedule.as_ref().and_then(|s| s.weekday.clone()).unwrap_or_default(),
        time: schedule.as_ref().map(|s| s.time.clone()).unwrap_or_default(),
        recipients: schedule.map(|s| s.recipients.join("\n")).unwrap_or_default(),
        last_error: report.last_error,
        next_run_at: report.next_run_at.map(|t| t.to_rfc3339()),
        mail,
        ..FormView::default()
    }
}

/// What the form posted, as the service takes it and as the form shows it again.
fn posted(form: &[(String, String)]) -> (SavedReportSet, FormView) {
    let text = |key: &str| first(form, key).unwrap_or_default().trim().to_owned();
    let kind = text("kind");
    let params: BTreeMap<String, String> = ["tz", "bucket", "queue", "team", "agent"]
        .iter()
        .filter_map(|k| first(form, k).map(|v| (k.to_string(), v.trim().to_owned())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let frequency = text("frequency");
    let recipients: Vec<String> = text("recipients")
        .split(['\n', ',', ';'])
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    let optional = |key: &str| Some(text(key)).filter(|v| !v.is_empty());
    // The form always has date fields; only a custom period reads them.
    let custom = text("period") == "custom";
    let input = SavedReportSet {
        name: text("name"),
        kind: kind.clone(),
        params: params.clone(),
        period: text("period"),
        from: optional("from").filter(|_| custom),
        to: optional("to").filter(|_| custom),
        schedule: (!frequency.is_empty()).then(|| Schedule {
            frequency: frequency.clone(),
            weekday: optional("weekday").filter(|_| frequency == "weekly"),
            time: text("time"),
            recipients: recipients.clone(),
        }),
    };
    let view = FormView {
        name: text("name"),
        kind,
        params,
        period: text("period"),
        from: text("from"),
        to: text("to"),
        frequency,
        weekday: text("weekday"),
        time: text("time"),
        recipients: recipients.join("\n"),
        may_manage: true,
        ..FormView::default()
    };
    (input, view)
}

/// The form's fields that show their own error.
const SHOWN_FIELDS: [&str; 11] = [
    "name",
    "queue",
    "bucket",
    "period",
    "from",
    "to",
    "frequency",
    "weekday",
    "time",
    "recipients",
    "schedule",
];

/// A refused form again, with what was wrong beside each field.
async fn refused(
    app: &AppState,
    signed: &SignedIn,
    scope: &crate::store::TenantScope,
    mut view: FormView,
    error: StoreError,
) -> PageResult {
    let locale = signed.page.locale;
    match error {
        StoreError::Invalid(v) => {
            // Fields the form shows get their message beside them; the others (kept from the
            // report: time zone, team, agent) are named in the message above the form.
            let mut elsewhere = Vec::new();
            for e in v.errors {
                let field = e.pointer.rsplit('/').next().unwrap_or_default().to_owned();
                let detail = locale.translate(&e.detail);
                if SHOWN_FIELDS.contains(&field.as_str()) {
                    view.errors.entry(field).or_insert(detail);
                } else {
                    elsewhere.push(format!("{field}: {detail}"));
                }
            }
            let mut message = locale.text("common.fix_errors");
            for line in elsewhere {
                message.push_str(" · ");
                message.push_str(&line);
            }
            view.message = Some(message);
        }
        StoreError::Conflict {
            field: Some(field),
            message,
        } => {
            view.errors.insert(field, locale.translate(&message));
            view.message = Some(locale.text("common.fix_errors"));
        }
        StoreError::PreconditionFailed { .. } => view.message = Some(locale.text("admin.stale")),
        StoreError::LimitReached(message) | StoreError::BadRequest(message) => view.message = Some(message),
        other => return Err(other.into()),
    }
    let view = form_view(app, scope, view).await?;
    Ok(render_view(
        app,
        &signed.page,
        "pages/saved_report.html",
        &view,
        StatusCode::UNPROCESSABLE_ENTITY,
    ))
}

async fn create_page(
    State(app): State<AppState>,
    signed: SignedIn,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::History)?;
    let (input, view) = posted(&form);
    let service = saved(&app);
    match service.create(&scope, &signed.page.origin, input).await {
        Ok(report) => Ok(Redirect::to(&format!("/reports/saved#r-{}", report.id)).into_response()),
        Err(e) => refused(&app, &signed, &scope, view, e).await,
    }
}

async fn update_page(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::History)?;
    let (input, mut view) = posted(&form);
    let version = first(&form, "version").and_then(|v| v.parse().ok());
    view.id = Some(id.clone());
    view.version = version;
    match saved(&app)
        .update(&scope, &signed.page.origin, &id, version, input)
        .await
    {
        Ok(report) => Ok(Redirect::to(&format!("/reports/saved#r-{}", report.id)).into_response()),
        Err(e) => refused(&app, &signed, &scope, view, e).await,
    }
}

async fn send_page(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::History)?;
    let service = saved(&app);
    service.send_now(&scope, &signed.page.origin, &id).await?;
    Ok(Redirect::to(&format!("/reports/saved?sent={id}#r-{id}")).into_response())
}

async fn delete_page(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::History)?;
    saved(&app).delete(&scope, &signed.page.origin, &id).await?;
    Ok(Redirect::to("/reports/saved").into_response())
}
