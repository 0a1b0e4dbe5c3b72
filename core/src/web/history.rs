//! Call history over the API and in the UI: browse the tenant's calls, one call's detail, and
//! the CSV export of every matching call. The flows are `service::history`'s; this module
//! translates requests and answers.
//!
//! - `GET /api/v1/calls` (a page, newest first), `GET /api/v1/calls/export` (CSV, streamed),
//!   `GET /api/v1/calls/{call}` (legs, CDRs, timeline)
//! - `GET /calls`, `GET /calls/export`, `GET /calls/{call}` (the pages)

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::AppState;
use super::admin::tenant_scope;
use super::extract::{ApiQuery, Caller, RequestOrigin};
use super::page_error::PageResult;
use super::problem::ApiResult;
use super::session::SignedIn;
use super::ui::render_view;
use crate::auth::{Action, Area};
use crate::service::history::{CallDetail, CallQuery, CallView, CallsPage, Directory, History};
use crate::store::audit::Origin;
use crate::store::{StoreError, TenantScope};

pub fn api_router() -> Router<AppState> {
    Router::new()
        .route("/calls", get(api_list))
        .route("/calls/export", get(api_export))
        .route("/calls/{call}", get(api_call))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/calls", get(page))
        .route("/calls/export", get(page_export))
        .route("/calls/{call}", get(call_page))
}

/// The history flows, on the running server's store and floors.
pub(super) fn history(app: &AppState) -> History<'_> {
    History {
        store: &app.store,
        live: &app.live,
    }
}

async fn api_list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<CallQuery>,
) -> ApiResult<axum::Json<CallsPage>> {
    let scope = caller.tenant(Action::Read, Area::History)?;
    let (page, _) = history(&app).calls(&scope, &query).await?;
    Ok(axum::Json(page))
}

async fn api_call(
    State(app): State<AppState>,
    caller: Caller,
    Path(call): Path<String>,
) -> ApiResult<axum::Json<CallDetail>> {
    let scope = caller.tenant(Action::Read, Area::History)?;
    let (detail, _) = history(&app).call(&scope, &call).await?;
    Ok(axum::Json(detail))
}

async fn api_export(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    ApiQuery(query): ApiQuery<CallQuery>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::History)?;
    Ok(export(&app, &scope, &origin, &query).await?)
}

/// The export as a streamed CSV download.
async fn export(
    app: &AppState,
    scope: &TenantScope,
    origin: &Origin,
    query: &CallQuery,
) -> Result<Response, StoreError> {
    let chunks = history(app).export(scope, origin, query).await?;
    let stream = futures_util::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.recv().await?;
        let chunk = chunk.map(axum::body::Bytes::from).map_err(|e| {
            // Headers are gone by now: the download breaks off rather than ending as if whole.
            tracing::warn!(error = %e, "a call export broke off");
            std::io::Error::other(e.to_string())
        });
        Some((chunk, chunks))
    });
    Ok(super::api::csv_download(
        Body::from_stream(stream),
        &format!("monti-calls-{}.csv", scope.tenant_slug()),
    ))
}

// --- pages -------------------------------------------------------------------------------

/// One call as a row of the page.
#[derive(Serialize)]
struct Row {
    call_id: String,
    href: String,
    started: String,
    queue: String,
    agent: String,
    direction: String,
    outcome: String,
    wait: String,
    talk: String,
    duration: String,
    caller: String,
    destination: String,
    disposition: String,
}

/// `value` percent-encoded for a URL path segment.
fn path_segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn seconds(v: Option<f64>) -> String {
    v.map(|s| {
        let s = s.round() as i64;
        if s >= 3600 {
            format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        } else {
            format!("{}:{:02}", s / 60, s % 60)
        }
    })
    .unwrap_or_default()
}

fn local(t: &DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string()
}

fn named(n: &Option<crate::service::history::Named>, raw: &Option<String>) -> String {
    n.as_ref()
        .map(|n| n.name.clone())
        .or_else(|| raw.clone())
        .unwrap_or_default()
}

fn row(c: &CallView, tz: Tz) -> Row {
    Row {
        href: format!("/calls/{}", path_segment(&c.call_id)),
        call_id: c.call_id.clone(),
        started: local(&c.started_at, tz),
        queue: named(&c.queue, &c.queue_ref),
        agent: named(&c.agent, &c.agent_ref),
        direction: c.direction.clone().unwrap_or_default(),
        outcome: c.outcome.clone().unwrap_or_default(),
        wait: seconds(c.wait_s),
        talk: seconds(c.talk_s),
        duration: seconds(c.duration_s),
        caller: c.caller.clone().unwrap_or_default(),
        destination: c.destination.clone().unwrap_or_default(),
        disposition: c.disposition.clone().unwrap_or_default(),
    }
}

/// An option of a filter's select.
#[derive(Serialize)]
struct Choice {
    value: String,
    label: String,
}

/// `pages/calls.html`.
#[derive(Serialize)]
struct CallsView {
    query: CallQuery,
    /// The range shown, as the form's local date-times.
    from: String,
    to: String,
    queues: Vec<Choice>,
    agents: Vec<Choice>,
    rows: Vec<Row>,
    /// The filters as a query string (for export and paging links).
    filters: String,
    next: Option<String>,
    /// The first page, when this is a later one.
    first: Option<String>,
    errors: Vec<crate::domain::FieldError>,
    tz: String,
    /// How many calls match, for a report's cell (`by=counted`, a bucket's calls): the number
    /// the cell showed.
    count: Option<String>,
}

async fn page(
    State(app): State<AppState>,
    signed: SignedIn,
    axum::extract::Query(pairs): axum::extract::Query<Vec<(String, String)>>,
) -> PageResult {
    let query = CallQuery::from_pairs(&pairs);
    let scope = tenant_scope(&app, &signed, Action::Read, Area::History)?;
    let history = history(&app);
    let (page, errors, dir) = match history.calls(&scope, &query).await {
        Ok((page, dir)) => (Some(page), Vec::new(), dir),
        Err(StoreError::Invalid(v)) => (None, v.errors, history.directory(&scope).await?),
        Err(e) => return Err(e.into()),
    };
    let tz = dir.tz;
    let count = match (&page, query.by.as_deref()) {
        (Some(_), Some("counted" | "ended")) => {
            let n = history.count(&scope, &query).await?;
            Some(signed.page.locale.count("units.calls", n.max(0) as u64))
        }
        _ => None,
    };
    let filters = query.query_string();
    let form_time = |t: &DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string();
    let view = CallsView {
        from: page.as_ref().map(|p| form_time(&p.from)).unwrap_or_default(),
        to: page.as_ref().map(|p| form_time(&p.to)).unwrap_or_default(),
        queues: choices(&dir),
        agents: dir
            .visible_agents()
            .into_iter()
            .map(|a| Choice {
                value: a.id.clone(),
                label: a.name.clone(),
            })
            .collect(),
        rows: page
            .as_ref()
            .map_or_else(Vec::new, |p| p.items.iter().map(|c| row(c, tz)).collect()),
        next: page
            .as_ref()
            .and_then(|p| p.next_cursor.as_ref())
            .map(|c| join_query(&filters, &[("cursor", c)])),
        first: query.cursor.is_some().then(|| filters.clone()),
        filters,
        errors,
        tz: tz.name().to_owned(),
        count,
        query,
    };
    Ok(render_view(
        &app,
        &signed.page,
        "pages/calls.html",
        &view,
        StatusCode::OK,
    ))
}

fn choices(dir: &Directory) -> Vec<Choice> {
    let mut queues: Vec<Choice> = dir
        .queues()
        .iter()
        .map(|q| Choice {
            value: q.id.clone(),
            label: q.name.clone(),
        })
        .collect();
    queues.sort_by_key(|c| c.label.to_lowercase());
    queues
}

/// `filters` with more pairs.
fn join_query(filters: &str, more: &[(&str, &str)]) -> String {
    let extra = serde_urlencoded::to_string(more).unwrap_or_default();
    match (filters.is_empty(), extra.is_empty()) {
        (true, _) => extra,
        (_, true) => filters.to_owned(),
        _ => format!("{filters}&{extra}"),
    }
}

async fn page_export(
    State(app): State<AppState>,
    signed: SignedIn,
    axum::extract::Query(pairs): axum::extract::Query<Vec<(String, String)>>,
) -> PageResult {
    let query = CallQuery::from_pairs(&pairs);
    let scope = tenant_scope(&app, &signed, Action::Read, Area::History)?;
    Ok(export(&app, &scope, &signed.page.origin, &query).await?)
}

/// `pages/call.html`.
#[derive(Serialize)]
struct CallPage {
    call_id: String,
    legs: Vec<Row>,
    timeline: Vec<Moment>,
    records: Vec<serde_json::Value>,
    recording: Option<crate::service::recordings::RecordingView>,
    /// Why there is no player: no source, no file, not audio, the source failing.
    recording_problem: Option<String>,
    /// The recording's length, as the page shows durations.
    recording_length: String,
    /// Where the player and the download ask (audited, then on to a playback link).
    recording_href: String,
}

/// One moment of the timeline, in words.
#[derive(Serialize)]
struct Moment {
    at: String,
    kind: String,
    agent: String,
    queue: String,
    detail: String,
}

async fn call_page(
    State(app): State<AppState>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(call): Path<String>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::History)?;
    let locale = signed.page.locale;
    let (detail, dir) = match history(&app).call(&scope, &call).await {
        Ok(found) => found,
        Err(StoreError::NotFound { .. }) => {
            return Ok(super::ui::error_page(
                &app,
                &headers,
                StatusCode::NOT_FOUND,
                &locale.text("history.call_not_found"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let tz = dir.tz;
    let text = |key: &str| locale.text(key);
    let timeline = detail
        .timeline
        .iter()
        .map(|entry| {
            let e = &entry.event;
            let field = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let number = |k: &str| e.get(k).and_then(serde_json::Value::as_f64);
            let kind = field("type");
            let detail = match kind.as_str() {
                "caller_answer" => format!("{} {}", text("history.wait"), seconds(number("wait_s"))),
                "caller_leave" => format!(
                    "{} · {} {}",
                    text(&format!("history.outcomes.{}", outcome_of(&field("reason")))),
                    text("history.wait"),
                    seconds(number("wait_s"))
                ),
                "call_end" => format!(
                    "{} {} · {} {}{}",
                    text("history.talk"),
                    seconds(number("talk_s")),
                    text("history.hold"),
                    seconds(number("hold_s")),
                    number("wrap_s")
                        .map(|w| format!(" · {} {}", text("history.wrap"), seconds(Some(w))))
                        .unwrap_or_default()
                ),
                "agent_state" => {
                    let state = field("state");
                    let reason = field("reason");
                    let state = text(&format!("board.states.{state}"));
                    if reason.is_empty() {
                        state
                    } else {
                        format!("{state} ({reason})")
                    }
                }
                "call_start" => field("direction"),
                _ => String::new(),
            };
            let agent = e.get("agent").and_then(|v| v.as_str()).map(str::to_owned);
            let queue = e.get("queue").and_then(|v| v.as_str()).map(str::to_owned);
            Moment {
                at: local(&entry.at, tz),
                kind: text(&format!("history.events.{kind}")),
                agent: named(&agent.as_deref().and_then(|a| dir.agent(a)).cloned(), &agent),
                queue: named(&queue.as_deref().and_then(|q| dir.queue(q)).cloned(), &queue),
                detail,
            }
        })
        .collect();
    let records = detail
        .records
        .iter()
        .map(|r| {
            serde_json::json!({
                "started": local(&r.started_at, tz), "caller": r.caller, "destination": r.destination,
                "channel": r.channel, "dst_channel": r.dst_channel, "last_app": r.last_app,
                "duration": seconds(Some(r.duration_s as f64)), "billsec": seconds(Some(r.billsec_s as f64)),
                "disposition": r.disposition,
            })
        })
        .collect();
    let (recording, recording_problem) = match super::recordings::recordings(&app).for_call(&scope, &detail).await {
        Ok(found) => (Some(found), None),
        Err(crate::service::recordings::RecordingError::NoSource) => (None, None),
        Err(crate::service::recordings::RecordingError::Store(e)) => return Err(e.into()),
        Err(e) => {
            if matches!(e, crate::service::recordings::RecordingError::Source(_)) {
                tracing::warn!(error = ?e, "a recording source failed");
            }
            (None, Some(e.to_string()))
        }
    };
    let view = CallPage {
        call_id: detail.call_id.clone(),
        legs: detail.legs.iter().map(|c| row(c, tz)).collect(),
        timeline,
        records,
        recording_length: seconds(recording.as_ref().and_then(|r| r.duration_s)),
        recording_href: format!("/calls/{}/recording", path_segment(&detail.call_id)),
        recording,
        recording_problem,
    };
    Ok(render_view(
        &app,
        &signed.page,
        "pages/call.html",
        &view,
        StatusCode::OK,
    ))
}

/// The outcome a queue leave reason gives (`abandon` → `abandoned`).
fn outcome_of(reason: &str) -> &str {
    match reason {
        "abandon" => "abandoned",
        other => other,
    }
}
