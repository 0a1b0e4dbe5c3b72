//! Reports over the API and in the UI: the queue report as JSON, CSV and a page with a
//! server-rendered SVG chart beside its table, every bar and cell linking to its calls. The
//! figures are `service::reports`'; this module translates requests and draws.
//!
//! - `GET /api/v1/reports/queues`, `GET /api/v1/reports/queues/export` (CSV)
//! - `GET /reports/queues`, `GET /reports/queues/export`
//! - `GET /api/v1/reports/agents`, `GET /api/v1/reports/agents/export` (CSV)
//! - `GET /reports/agents`, `GET /reports/agents/export`

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;

use super::AppState;
use super::admin::tenant_scope;
use super::extract::{ApiQuery, Caller};
use super::history::history;
use super::page_error::PageResult;
use super::problem::ApiResult;
use super::session::SignedIn;
use super::ui::render_view;
use crate::auth::{Action, Area};
use crate::service::agent_reports::{self, AgentPoint, AgentReport, AgentReportQuery};
use crate::service::reports::{self, Point, QueueReport, QueueSeries, ReportQuery};
use crate::store::StoreError;

pub fn api_router() -> Router<AppState> {
    Router::new()
        .route("/reports/queues", get(api_queues))
        .route("/reports/queues/export", get(api_queues_export))
        .route("/reports/agents", get(api_agents))
        .route("/reports/agents/export", get(api_agents_export))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reports/queues", get(page))
        .route("/reports/queues/export", get(page_export))
        .route("/reports/agents", get(agents_page))
        .route("/reports/agents/export", get(agents_page_export))
}

async fn api_agents(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AgentReportQuery>,
) -> ApiResult<axum::Json<AgentReport>> {
    let scope = caller.tenant(Action::Read, Area::History)?;
    Ok(axum::Json(history(&app).agent_report(&scope, &query).await?))
}

async fn api_agents_export(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AgentReportQuery>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::History)?;
    let report = history(&app).agent_report(&scope, &query).await?;
    Ok(agents_csv(&report, scope.tenant_slug()))
}

fn agents_csv(report: &AgentReport, tenant: &str) -> Response {
    super::api::csv_download(
        agent_reports::csv(report).into(),
        &format!("monti-agent-report-{tenant}.csv"),
    )
}

async fn agents_page_export(
    State(app): State<AppState>,
    signed: SignedIn,
    axum::extract::Query(pairs): axum::extract::Query<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::History)?;
    let report = history(&app)
        .agent_report(&scope, &AgentReportQuery::from_pairs(&pairs))
        .await?;
    Ok(agents_csv(&report, scope.tenant_slug()))
}

async fn api_queues(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> ApiResult<axum::Json<QueueReport>> {
    let scope = caller.tenant(Action::Read, Area::History)?;
    Ok(axum::Json(history(&app).queue_report(&scope, &query).await?))
}

async fn api_queues_export(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::History)?;
    let report = history(&app).queue_report(&scope, &query).await?;
    Ok(csv_download(reports::csv(&report), scope.tenant_slug()))
}

fn csv_download(body: String, tenant: &str) -> Response {
    super::api::csv_download(body.into(), &format!("monti-queue-report-{tenant}.csv"))
}

async fn page_export(
    State(app): State<AppState>,
    signed: SignedIn,
    axum::extract::Query(pairs): axum::extract::Query<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::History)?;
    let report = history(&app)
        .queue_report(&scope, &ReportQuery::from_pairs(&pairs))
        .await?;
    Ok(csv_download(reports::csv(&report), scope.tenant_slug()))
}

// --- the page ------------------------------------------------------------------------------

/// The chart's drawing area (SVG user units).
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 10.0;

/// One bar: answered, abandoned and the rest stacked, linking to the bucket's calls.
#[derive(Serialize)]
struct Bar {
    x: String,
    width: String,
    answered: (String, String),
    abandoned: (String, String),
    other: (String, String),
    href: String,
    title: String,
    /// Whether the bucket's service level fell below the target.
    below: bool,
}

/// An x-axis label.
#[derive(Serialize)]
struct Tick {
    x: String,
    text: String,
}

/// One queue: its chart and its table.
#[derive(Serialize)]
struct SeriesView {
    id: String,
    name: String,
    target_pct: u32,
    threshold_s: f64,
    bars: Vec<Bar>,
    /// The service level as a polyline (x,y pairs) on the right-hand scale.
    sl_line: String,
    target_y: String,
    max_offered: u64,
    ticks: Vec<Tick>,
    rows: Vec<RowView>,
    total: RowView,
    waits: Vec<(String, u64, u64)>,
    /// Weekday × hour: (calls, shade 0–5).
    heatmap: Vec<Vec<(u64, u8)>>,
}

/// A table row: a point in words.
#[derive(Serialize)]
struct RowView {
    label: String,
    href: String,
    offered: u64,
    answered: u64,
    abandoned: u64,
    timeouts: u64,
    service_level: String,
    below: bool,
    asa: String,
    aht: String,
    abandon_rate: String,
    longest_wait: String,
    agents_needed: String,
}

fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{:.0}%", v * 100.0)).unwrap_or_else(|| "–".into())
}

fn seconds(v: Option<f64>) -> String {
    v.map(|s| {
        let s = s.round() as i64;
        format!("{}:{:02}", s / 60, s % 60)
    })
    .unwrap_or_else(|| "–".into())
}

fn row(p: &Point, target_pct: u32) -> RowView {
    RowView {
        label: p.label.clone(),
        href: format!("/calls?{}", p.calls),
        offered: p.offered,
        answered: p.answered,
        abandoned: p.abandoned,
        timeouts: p.timeouts,
        service_level: percent(p.service_level),
        below: p.service_level.is_some_and(|sl| sl * 100.0 < f64::from(target_pct)),
        asa: seconds(p.asa_s),
        aht: seconds(p.aht_s),
        abandon_rate: percent(p.abandon_rate),
        longest_wait: seconds(p.longest_wait_s),
        agents_needed: p.agents_needed.map_or_else(|| "–".into(), |n| n.to_string()),
    }
}

fn series_view(s: &QueueSeries) -> SeriesView {
    let n = s.points.len().max(1) as f64;
    let plot = WIDTH - LEFT - RIGHT;
    let slot = plot / n;
    let max = s.points.iter().map(|p| p.offered).max().unwrap_or(0).max(1);
    let y = |count: u64| HEIGHT - (count as f64 / max as f64) * (HEIGHT - TOP);
    let f = |v: f64| format!("{v:.1}");
    let target = s.settings.target_pct;
    let mut bars = Vec::with_capacity(s.points.len());
    let mut sl = Vec::new();
    for (i, p) in s.points.iter().enumerate() {
        let x = LEFT + i as f64 * slot;
        let other = p.timeouts + p.full + p.join_empty;
        // Stacked from the bottom: answered, abandoned, the rest (timeouts, full, nobody there).
        let a_top = y(p.answered);
        let b_top = y(p.answered + p.abandoned);
        let c_top = y(p.offered);
        bars.push(Bar {
            x: f(x + slot * 0.1),
            width: f((slot * 0.8).max(0.5)),
            answered: (f(a_top), f(HEIGHT - a_top)),
            abandoned: (f(b_top), f(a_top - b_top)),
            other: (f(c_top), f(b_top - c_top)),
            href: format!("/calls?{}", p.calls),
            title: format!(
                "{}: {} offered, {} answered, {} abandoned, {} other; service level {}",
                p.label,
                p.offered,
                p.answered,
                p.abandoned,
                other,
                percent(p.service_level)
            ),
            below: p.service_level.is_some_and(|v| v * 100.0 < f64::from(target)),
        });
        if let Some(level) = p.service_level {
            sl.push(format!("{},{}", f(x + slot / 2.0), f(HEIGHT - level * (HEIGHT - TOP))));
        }
    }
    let every = (s.points.len() / 12).max(1);
    let ticks = s
        .points
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, p)| Tick {
            x: f(LEFT + i as f64 * slot + slot / 2.0),
            text: p.label.rsplit(' ').next().unwrap_or(&p.label).to_owned(),
        })
        .collect();
    let bins = &s.waits.upper_s;
    let waits = bins
        .iter()
        .enumerate()
        .map(|(i, upper)| {
            let lower = if i == 0 { 0.0 } else { bins[i - 1].unwrap_or(0.0) };
            let name = match upper {
                Some(u) => format!("{lower:.0}–{u:.0} s"),
                None => format!("≥ {lower:.0} s"),
            };
            (name, s.waits.answered[i], s.waits.abandoned[i])
        })
        .collect();
    let hottest = s.heatmap.iter().flatten().copied().max().unwrap_or(0).max(1);
    let heatmap = s
        .heatmap
        .iter()
        .map(|day| {
            day.iter()
                .map(|&n| (n, if n == 0 { 0 } else { (1 + n * 4 / hottest).min(5) as u8 }))
                .collect()
        })
        .collect();
    SeriesView {
        heatmap,
        id: s.id.clone(),
        name: s.name.clone(),
        target_pct: target,
        threshold_s: s.settings.threshold_s,
        bars,
        sl_line: sl.join(" "),
        target_y: f(HEIGHT - f64::from(target) / 100.0 * (HEIGHT - TOP)),
        max_offered: max,
        ticks,
        rows: s.points.iter().map(|p| row(p, target)).collect(),
        total: row(&s.total, target),
        waits,
    }
}

/// `pages/report_queues.html`.
#[derive(Serialize)]
struct ReportView {
    query: ReportQuery,
    /// Whether the visitor may save (and schedule) the report.
    can_save: bool,
    filters: String,
    from: String,
    to: String,
    tz: String,
    bucket: String,
    buckets: Vec<&'static str>,
    queues: Vec<(String, String)>,
    series: Vec<SeriesView>,
    errors: Vec<crate::domain::FieldError>,
    width: f64,
    height: f64,
    left: f64,
    right: f64,
}

async fn page(
    State(app): State<AppState>,
    signed: SignedIn,
    axum::extract::Query(pairs): axum::extract::Query<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::History)?;
    let query = ReportQuery::from_pairs(&pairs);
    let history = history(&app);
    let dir = history.directory(&scope).await?;
    let (report, errors) = match history.queue_report(&scope, &query).await {
        Ok(report) => (Some(report), Vec::new()),
        Err(StoreError::Invalid(v)) => (None, v.errors),
        Err(e) => return Err(e.into()),
    };
    // The form shows the range in the zone the report is in (a `tz` it was asked for).
    let tz: chrono_tz::Tz = report.as_ref().and_then(|r| r.tz.parse().ok()).unwrap_or(dir.tz);
    let form_time = |t: &chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string();
    let mut queues: Vec<(String, String)> = dir.queues().iter().map(|q| (q.id.clone(), q.name.clone())).collect();
    queues.sort_by_key(|(_, name)| name.to_lowercase());
    let view = ReportView {
        from: report.as_ref().map(|r| form_time(&r.from)).unwrap_or_default(),
        to: report.as_ref().map(|r| form_time(&r.to)).unwrap_or_default(),
        tz: report.as_ref().map_or_else(|| tz.name().to_owned(), |r| r.tz.clone()),
        bucket: report.as_ref().map(|r| r.bucket.clone()).unwrap_or_default(),
        buckets: reports::Bucket::ALL.iter().map(|(s, _)| *s).collect(),
        series: report
            .as_ref()
            .map_or_else(Vec::new, |r| r.queues.iter().map(series_view).collect()),
        filters: query.query_string(),
        can_save: crate::auth::permits(scope.role(), Action::Write, Area::History),
        queues,
        errors,
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        right: RIGHT,
        query,
    };
    Ok(render_view(
        &app,
        &signed.page,
        "pages/report_queues.html",
        &view,
        StatusCode::OK,
    ))
}

// --- the agent report page ---------------------------------------------------------------

/// An agent's (or a team's, or a bucket's) figures in words.
#[derive(Serialize)]
struct AgentRowView {
    label: String,
    /// The agent's own report (by day), for the agents' table.
    href: Option<String>,
    /// The calls handled.
    calls_href: Option<String>,
    team: String,
    logged_in: String,
    available: String,
    on_calls: String,
    wrap_up: String,
    paused: String,
    pauses: String,
    handled: u64,
    aht: String,
    occupancy: String,
    missed_rings: u64,
}

fn hours(s: f64) -> String {
    let s = s.round() as i64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn agent_row(label: &str, team: &str, p: &AgentPoint, href: Option<String>) -> AgentRowView {
    let f = &p.figures;
    let state = |name: &str| f.states_s.get(name).copied().unwrap_or(0.0);
    let mut pauses: Vec<(&String, &f64)> = f.pauses_s.iter().collect();
    pauses.sort_by(|a, b| b.1.total_cmp(a.1));
    AgentRowView {
        label: label.to_owned(),
        href,
        calls_href: (!p.calls.is_empty()).then(|| format!("/calls?{}", p.calls)),
        team: team.to_owned(),
        logged_in: hours(f.logged_in_s),
        available: hours(state("available")),
        on_calls: hours(state("on_queue_call") + state("on_direct_call")),
        wrap_up: hours(state("wrap_up")),
        paused: hours(state("paused")),
        pauses: pauses
            .iter()
            .map(|(reason, s)| {
                format!(
                    "{} {}",
                    if reason.is_empty() { "–" } else { reason.as_str() },
                    hours(**s)
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        handled: f.handled,
        aht: seconds(p.aht_s),
        occupancy: percent(p.occupancy),
        missed_rings: f.missed_rings,
    }
}

/// `pages/report_agents.html`.
#[derive(Serialize)]
struct AgentReportView {
    query: AgentReportQuery,
    filters: String,
    can_save: bool,
    from: String,
    to: String,
    tz: String,
    bucket: String,
    buckets: Vec<&'static str>,
    teams: Vec<(String, String)>,
    agents: Vec<(String, String)>,
    /// One agent: its name and its rows by bucket.
    agent: Option<String>,
    rows: Vec<AgentRowView>,
    team_rows: Vec<AgentRowView>,
    total: Option<AgentRowView>,
    errors: Vec<crate::domain::FieldError>,
}

async fn agents_page(
    State(app): State<AppState>,
    signed: SignedIn,
    axum::extract::Query(pairs): axum::extract::Query<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::History)?;
    let query = AgentReportQuery::from_pairs(&pairs);
    let history = history(&app);
    let dir = history.directory(&scope).await?;
    let (report, errors) = match history.agent_report(&scope, &query).await {
        Ok(report) => (Some(report), Vec::new()),
        Err(StoreError::Invalid(v)) => (None, v.errors),
        Err(e) => return Err(e.into()),
    };
    let tz: chrono_tz::Tz = report.as_ref().and_then(|r| r.tz.parse().ok()).unwrap_or(dir.tz);
    let form_time = |t: &chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string();
    let own = |agent: &str| {
        let mut q = query.clone();
        q.agent = Some(agent.to_owned());
        format!("/reports/agents?{}", q.query_string())
    };
    let one_agent = query.agent.as_deref().is_some_and(|a| !a.trim().is_empty());
    let single = report
        .as_ref()
        .and_then(|r| one_agent.then(|| r.agents.first()).flatten());
    let rows = match (&report, single) {
        (_, Some(a)) => a.points.iter().map(|p| agent_row(&p.label, "", p, None)).collect(),
        (Some(r), None) => r
            .agents
            .iter()
            .map(|a| {
                agent_row(
                    &a.name,
                    a.team_name.as_deref().unwrap_or_default(),
                    &a.total,
                    Some(own(&a.id)),
                )
            })
            .collect(),
        (None, None) => Vec::new(),
    };
    let team_rows = match (&report, single) {
        (Some(r), None) => r
            .teams
            .iter()
            .map(|t| agent_row(&t.name, &t.agents.to_string(), &t.total, None))
            .collect(),
        _ => Vec::new(),
    };
    let mut teams: Vec<(String, String)> = Vec::new();
    let mut agents: Vec<(String, String)> = Vec::new();
    for (a, team) in dir.visible_agent_teams() {
        agents.push((a.id.clone(), a.name.clone()));
        if let Some(team) = team
            && !teams.iter().any(|(id, _)| id == team)
        {
            let name = report
                .as_ref()
                .and_then(|r| r.agents.iter().find(|s| s.team.as_deref() == Some(team)))
                .and_then(|s| s.team_name.clone())
                .unwrap_or_else(|| team.to_owned());
            teams.push((team.to_owned(), name));
        }
    }
    teams.sort_by_key(|(_, name)| name.to_lowercase());
    let view = AgentReportView {
        from: report.as_ref().map(|r| form_time(&r.from)).unwrap_or_default(),
        to: report.as_ref().map(|r| form_time(&r.to)).unwrap_or_default(),
        tz: report.as_ref().map_or_else(|| tz.name().to_owned(), |r| r.tz.clone()),
        bucket: report.as_ref().map(|r| r.bucket.clone()).unwrap_or_default(),
        buckets: reports::Bucket::ALL.iter().map(|(s, _)| *s).collect(),
        agent: single.map(|a| a.name.clone()),
        total: single.map(|a| agent_row(&a.name, "", &a.total, None)),
        rows,
        team_rows,
        filters: query.query_string(),
        can_save: crate::auth::permits(scope.role(), Action::Write, Area::History),
        teams,
        agents,
        errors,
        query,
    };
    Ok(render_view(
        &app,
        &signed.page,
        "pages/report_agents.html",
        &view,
        StatusCode::OK,
    ))
}
