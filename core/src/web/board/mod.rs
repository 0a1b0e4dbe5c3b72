//! The supervisor board: every visible agent, grouped and filtered as the URL says, with the
//! queue tiles; a wallboard mode for TVs; an agent drawer with the day's timeline and calls.
//! The page is complete without JavaScript; with it, `/board/stream` keeps it live.

pub mod render;
pub mod view;

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::routing::get;
use serde::Serialize;
use serde_json::json;

use self::render::{Labels, RowGroups, agent_row, escape, queue_tile, removal, state_counts};
use self::view::{BoardQuery, GroupBy, Sort, View};
use super::AppState;
use super::admin::tenant_scope;
use super::page_error::PageResult;
use super::session::SignedIn;
use super::stream::{self, Start};
use super::ui::{is_htmx, render_view};
use crate::auth::{Action, Area};
use crate::domain::events::{AgentState, EventBody};
use crate::i18n::Locale;
use crate::live::StateCounts;
use crate::live::hub::{Delta, QueueDelta};
use crate::live::registry::Floor;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/board", get(page))
        .route("/board/stream", get(stream_board))
        .route("/board/agents/{id}", get(agent_drawer))
}

/// The rendered board body: groups with their rows, the tiles, the totals.
pub struct BoardHtml {
    pub groups: String,
    pub tiles: String,
    pub totals: String,
    pub agents: usize,
}

struct Group {
    key: String,
    title: String,
    rows: String,
    counts: StateCounts,
}

/// Renders the board for `view` from the floor as it is now. Used by the page and by the
/// benchmark that measures it.
pub fn render_board(
    floor: &Floor,
    view: &View,
    labels: &Labels,
    bands: &std::collections::BTreeMap<String, [u32; 2]>,
    now_ms: i64,
) -> BoardHtml {
    let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
    let filter = &view.filter;
    let visibility_admits = |dimension, id: &str| filter_visible(view, dimension, id);
    // The groups this view shows, in order, and where each agent's row goes.
    let mut groups: Vec<Group> = Vec::new();
    let group = |key: String, title: String| Group {
        key,
        title,
        rows: String::new(),
        counts: StateCounts::default(),
    };
    match view.group {
        GroupBy::Team => {
            for (i, (id, name)) in floor.teams.iter().zip(&floor.team_names).enumerate() {
                if visibility_admits(crate::store::Dimension::Team, id) {
                    groups.push(group(i.to_string(), name.clone()));
                }
            }
        }
        GroupBy::Location => {
            for (i, (id, name)) in floor.locations.iter().zip(&floor.location_names).enumerate() {
                if visibility_admits(crate::store::Dimension::Location, id) {
                    groups.push(group(i.to_string(), name.clone()));
                }
            }
        }
        GroupBy::Queue => {
            for (i, q) in floor.queues.iter().enumerate() {
                if filter.admits_queue(i as u32) {
                    groups.push(group(i.to_string(), q.name.clone()));
                }
            }
        }
        GroupBy::State => {
            for state in AgentState::ALL {
                if filter.admits_state(state) {
                    groups.push(group(state.as_str().to_owned(), labels.state(state).to_owned()));
                }
            }
        }
    }
    if view.group != GroupBy::State {
        groups.push(group("none".into(), labels.none.clone()));
    }
    let positions: std::collections::HashMap<String, usize> =
        groups.iter().enumerate().map(|(i, g)| (g.key.clone(), i)).collect();
    let index_of = |key: &str| positions.get(key).copied();
    // Visible agents, sorted once; rows then go to their groups in that order.
    let mut visible: Vec<(u32, &crate::live::AgentLive)> = live
        .agents()
        .iter()
        .enumerate()
        .filter(|(slot, a)| {
            let (team, location) = floor
                .agent_groups
                .get(*slot)
                .map(|(t, l)| (t.as_deref(), l.as_deref()))
                .unwrap_or_default();
            filter.admits_agent(a, team, location) && filter.admits_state(a.state)
        })
        .map(|(slot, a)| (slot as u32, a))
        .collect();
    match view.sort {
        Sort::Name => visible.sort_by_cached_key(|(_, a)| a.name.to_lowercase()),
        Sort::State => visible.sort_by_cached_key(|(_, a)| (a.state.index(), a.name.to_lowercase())),
        Sort::Time => visible.sort_by_key(|(_, a)| a.since_ms),
    }
    let mut totals = StateCounts::default();
    let mut row = String::with_capacity(512);
    for (_, agent) in &visible {
        totals[agent.state.index()] += 1;
        let member = &agent.member;
        row.clear();
        let seconds = (now_ms - agent.since_ms) / 1000;
        agent_row(
            &mut row,
            labels,
            agent,
            RowGroups {
                team: member.team,
                location: member.location,
                queues: &member.queues,
            },
            now_ms,
            render::band(bands, agent.state, seconds),
        );
        let mut place = |key: &str| {
            if let Some(g) = index_of(key) {
                groups[g].rows.push_str(&row);
                groups[g].counts[agent.state.index()] += 1;
            }
        };
        match view.group {
            GroupBy::Team => place(&member.team.map_or("none".into(), |t| t.to_string())),
            GroupBy::Location => place(&member.location.map_or("none".into(), |l| l.to_string())),
            GroupBy::State => place(agent.state.as_str()),
            GroupBy::Queue if member.queues.is_empty() => place("none"),
            GroupBy::Queue => {
                for q in member.queues.iter() {
                    place(&q.to_string());
                }
            }
        }
    }
    let mut html = String::with_capacity(visible.len() * 420 + groups.len() * 200);
    for g in &groups {
        let n: u32 = g.counts.iter().sum();
        let _ = write!(
            html,
            "<section class=\"group{}\" data-group-key=\"{}\"><header class=\"group-head\"><h2>{}</h2><span class=\"group-size\">{n}</span>",
            if n == 0 { " empty" } else { "" },
            escape(&g.key),
            escape(&g.title)
        );
        state_counts(&mut html, labels, &g.counts);
        let _ = write!(
            html,
            "</header><ul class=\"agents\" id=\"g-{}-{}\">",
            view.group.as_str(),
            escape(&g.key)
        );
        html.push_str(&g.rows);
        html.push_str("</ul></section>");
    }
    let mut tiles = String::new();
    for slot in 0..live.queues().len() as u32 {
        if filter.admits_queue(slot)
            && let Some(q) = QueueDelta::read(floor, &live, slot)
        {
            queue_tile(&mut tiles, labels, &q, now_ms, !filter.scoped());
        }
    }
    let mut totals_html = String::new();
    state_counts(&mut totals_html, labels, &totals);
    BoardHtml {
        groups: html,
        tiles,
        totals: totals_html,
        agents: visible.len(),
    }
}

/// Whether a team or location group is within the viewer's scope and filter.
fn filter_visible(view: &View, dimension: crate::store::Dimension, id: &str) -> bool {
    let wanted = match dimension {
        crate::store::Dimension::Team => view.query.team.as_deref(),
        crate::store::Dimension::Location => view.query.location.as_deref(),
    }
    .map(str::trim)
    .filter(|w| !w.is_empty());
    view.filter.visible_group(dimension, id) && wanted.is_none_or(|w| w == id)
}

/// `board/board.html`: the live board as first drawn; the stream keeps it current.
#[derive(Serialize)]
struct BoardPage {
    /// Rows, tiles and totals, already rendered to HTML (`render.rs`).
    board: serde_json::Value,
    /// The view's grouping, sort, filters and mode, to fill the controls.
    view: serde_json::Value,
    teams: Vec<serde_json::Value>,
    locations: Vec<serde_json::Value>,
    queues: Vec<serde_json::Value>,
    states: Vec<serde_json::Value>,
    stream_url: String,
    alerts_html: String,
    /// For the script: threshold bands and state labels, as JSON.
    bands: String,
    state_labels: String,
}

/// `board/agent.html` (or its body for htmx): one agent's state, day and calls.
#[derive(Serialize)]
struct AgentPage {
    agent: serde_json::Value,
    can_control: bool,
    timeline: Vec<serde_json::Value>,
    summary: Vec<serde_json::Value>,
    calls: Vec<serde_json::Value>,
    /// What came of a control request sent without JavaScript (the form posts, then comes
    /// back here): the drawer's answer line, filled.
    sent: bool,
}

/// `?sent=1`: the page a control form without JavaScript comes back to.
#[derive(Debug, Default, serde::Deserialize)]
struct AgentQuery {
    #[serde(default)]
    sent: Option<String>,
}

async fn page(State(app): State<AppState>, signed: SignedIn, Query(query): Query<BoardQuery>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::Live)?;
    let floor = app.live.floor(&scope).await?;
    // The publisher exists before the page is rendered, so the stream misses nothing.
    let position = app.live.publisher(&scope, &floor).position();
    let view = View::parse(&query, &floor, scope.visibility());
    let locale = signed.page.locale;
    let labels = Labels::new(locale);
    let now = crate::domain::time::now_ms();
    let board = render_board(&floor, &view, &labels, &app.config.live.bands, now);
    let visibility = scope.visibility();
    let options = |ids: &[String], names: &[String], dimension| -> Vec<serde_json::Value> {
        ids.iter()
            .zip(names)
            .filter(|(id, _)| visibility.includes(dimension, id))
            .map(|(id, name)| json!({ "id": id, "name": name }))
            .collect()
    };
    let firing = app.rules.firing(scope.tenant_id()).borrow().clone();
    let state_labels: serde_json::Map<String, serde_json::Value> = AgentState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), json!(labels.state(*s))))
        .collect();
    let page = BoardPage {
        board: json!({
            "groups": board.groups, "tiles": board.tiles, "totals": board.totals, "agents": board.agents,
        }),
        view: json!({
            "group": view.group.as_str(), "sort": view.sort.as_str(), "wall": view.wall, "rotate": view.rotate,
            "team": query.team, "location": query.location, "queue": query.queue, "state": query.state, "q": query.q,
            "query": view.query_string(),
        }),
        teams: options(&floor.teams, &floor.team_names, crate::store::Dimension::Team),
        locations: options(
            &floor.locations,
            &floor.location_names,
            crate::store::Dimension::Location,
        ),
        queues: floor
            .queues
            .iter()
            .map(|q| json!({ "id": q.id, "name": q.name }))
            .collect(),
        states: AgentState::ALL
            .iter()
            .map(|s| json!({ "id": s.as_str(), "name": labels.state(*s) }))
            .collect(),
        stream_url: format!("/board/stream?{}&after={}", view.query_string(), position),
        alerts_html: super::alerts_ui::banner(&app.templates, &firing, &floor, visibility, locale),
        bands: serde_json::to_string(&app.config.live.bands).unwrap_or_default(),
        state_labels: serde_json::to_string(&state_labels).unwrap_or_default(),
    };
    Ok(render_view(
        &app,
        &signed.page,
        "board/board.html",
        &page,
        StatusCode::OK,
    ))
}

/// A delta as HTML, rendered once per language and shared by every board of the tenant.
struct HtmlDelta {
    /// Per changed agent (in the delta's order): its row, and the marker that removes it.
    rows: Vec<String>,
    removals: Vec<String>,
    /// Per changed queue: (slot, tile, the tile for viewers limited to some teams or locations).
    tiles: Vec<(u32, String, String)>,
}

fn render_delta(delta: &Delta, labels: &Labels) -> HtmlDelta {
    let mut rows = Vec::with_capacity(delta.agents.len());
    let mut removals = Vec::with_capacity(delta.agents.len());
    for a in &delta.agents {
        let mut row = String::with_capacity(420);
        let member = &a.agent.member;
        agent_row(
            &mut row,
            labels,
            &a.agent,
            RowGroups {
                team: member.team,
                location: member.location,
                queues: &member.queues,
            },
            delta.at_ms,
            "",
        );
        rows.push(row);
        let mut gone = String::new();
        removal(&mut gone, &a.agent.id);
        removals.push(gone);
    }
    let tiles = delta
        .queues
        .iter()
        .map(|q| {
            let (mut full, mut scoped) = (String::new(), String::new());
            queue_tile(&mut full, labels, q, delta.at_ms, true);
            queue_tile(&mut scoped, labels, q, delta.at_ms, false);
            (q.slot, full, scoped)
        })
        .collect();
    HtmlDelta { rows, removals, tiles }
}

fn rendering_key(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "board-html-en",
        Locale::De => "board-html-de",
    }
}

/// What of a delta one viewer gets: the rows and tiles their view includes, and removals for
/// agents that left it.
fn viewer_message(delta: &Delta, html: &HtmlDelta, view: &View) -> Option<String> {
    let filter = &view.filter;
    let mut out = String::new();
    for (i, a) in delta.agents.iter().enumerate() {
        if !filter.admits_agent(&a.agent, a.team_id.as_deref(), a.location_id.as_deref()) {
            continue;
        }
        if filter.admits_state(a.agent.state) {
            out.push_str(&html.rows[i]);
        } else if a.shown_before.is_none_or(|s| filter.admits_state(s)) {
            out.push_str(&html.removals[i]);
        }
    }
    for (slot, full, scoped) in &html.tiles {
        if filter.admits_queue(*slot) {
            out.push_str(if filter.scoped() { scoped } else { full });
        }
    }
    (!out.is_empty()).then_some(out)
}

async fn stream_board(
    State(app): State<AppState>,
    signed: SignedIn,
    headers: HeaderMap,
    Query(query): Query<BoardQuery>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::Live)?;
    let floor = app.live.floor(&scope).await?;
    let view = View::parse(&query, &floor, scope.visibility());
    let resume = stream::resume_from(&headers, query.after.as_deref());
    let subscription = app.live.publisher(&scope, &floor).subscribe(resume.as_deref());
    let start = if subscription.stale {
        Start::Resync
    } else {
        Start::Continue
    };
    let locale = signed.page.locale;
    let labels = Arc::new(Labels::new(locale));
    // Signing out, a revoked session or a changed role or scope ends the stream.
    let session = &signed.current.session;
    let credential = stream::Credential::session(&headers, &session.id, &session.user_id);
    let watch = stream::Watch::new(&app, credential, &scope);
    // Alerts go along: the banner again whenever what fires changes.
    let mut firing = app.rules.firing(scope.tenant_id());
    firing.mark_unchanged();
    let visibility = scope.visibility().clone();
    let banner_floor = floor.clone();
    let templates = app.templates.clone();
    let alerts: stream::Extra = Box::pin(futures_util::stream::unfold(firing, move |mut firing| {
        let (floor, visibility, templates) = (banner_floor.clone(), visibility.clone(), templates.clone());
        async move {
            firing.changed().await.ok()?;
            let now = firing.borrow_and_update().clone();
            let html = super::alerts_ui::banner(&templates, &now, &floor, &visibility, locale);
            // An empty banner is sent as a comment-free placeholder so the swap clears it.
            let data = if html.is_empty() {
                "<span hidden></span>".to_owned()
            } else {
                html
            };
            Some((Event::default().event("alerts").data(data), firing))
        }
    }));
    Ok(stream::respond_with(
        subscription,
        start,
        "board",
        watch,
        move |delta| {
            let html = delta.rendered(rendering_key(locale), |d| render_delta(d, &labels));
            viewer_message(delta, &html, &view).map(|m| Event::default().event("agents").data(m))
        },
        Some(alerts),
    ))
}

/// One state interval of an agent's day.
struct Span {
    state: AgentState,
    reason: Option<String>,
    from_ms: i64,
    to_ms: i64,
}

async fn agent_drawer(
    State(app): State<AppState>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<AgentQuery>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::Live)?;
    let floor = app.live.floor(&scope).await?;
    let found = {
        let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
        live.agent_slot(&id).and_then(|slot| {
            let agent = live.agent(slot)?.clone();
            let (team, location) = floor.agent_groups.get(slot as usize).cloned().unwrap_or_default();
            scope
                .visibility()
                .admits(team.as_deref(), location.as_deref())
                .then_some((slot, agent))
        })
    };
    let locale = signed.page.locale;
    let Some((slot, agent)) = found else {
        // Not there, or not for this viewer: the same answer either way.
        return Ok(super::ui::error_page(
            &app,
            &headers,
            StatusCode::NOT_FOUND,
            &locale.text("board.agent_not_found"),
        ));
    };
    let now = crate::domain::time::now_ms();
    let midnight = {
        use chrono::TimeZone as _;
        let today = chrono::Utc::now().with_timezone(&floor.tz).date_naive();
        today
            .and_hms_opt(0, 0, 0)
            .and_then(|t| floor.tz.from_local_datetime(&t).earliest())
            .map_or(now - 86_400_000, |t| t.timestamp_millis())
    };
    let mut names: Vec<&str> = vec![agent.id.as_ref()];
    if let Some(aliases) = floor.agent_aliases.get(slot as usize) {
        names.extend(aliases.iter().map(String::as_str));
    }
    let events = crate::store::events::for_agent(&app.store, &scope, &names, midnight, 20_000).await?;
    let labels = Labels::new(locale);
    // The day as state intervals, from the stored events (the same rules as the live floor).
    let mut spans: Vec<Span> = Vec::new();
    let mut current = Span {
        state: AgentState::LoggedOut,
        reason: None,
        from_ms: midnight,
        to_ms: now,
    };
    let mut calls = Vec::new();
    for event in &events {
        let at = event.at_ms();
        let next = match &event.body {
            EventBody::AgentLogin { .. } => Some((AgentState::Available, None)),
            EventBody::AgentLogout { .. } => Some((AgentState::LoggedOut, None)),
            EventBody::AgentState { state, reason, .. } => Some((*state, reason.clone())),
            EventBody::CallStart { queue, .. } => Some((
                if queue.is_some() {
                    AgentState::OnQueueCall
                } else {
                    AgentState::OnDirectCall
                },
                None,
            )),
            EventBody::CallerAnswer { .. } => Some((AgentState::OnQueueCall, None)),
            EventBody::CallEnd {
                call,
                queue,
                talk_s,
                hold_s,
                wrap_s,
                ..
            } => {
                calls.push(json!({
                    "ended": crate::domain::time::to_rfc3339(at),
                    "ended_local": chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at)
                        .map(|t| t.with_timezone(&floor.tz).format("%H:%M:%S").to_string()),
                    "call": call,
                    "queue": queue.as_ref().map(|q| floor.queues.iter().find(|i| &i.id == q || &i.name == q).map_or(q.clone(), |i| i.name.clone())),
                    "talk": render::duration(talk_s.round() as i64),
                    "hold": render::duration(hold_s.round() as i64),
                    "wrap": wrap_s.map(|w| render::duration(w.round() as i64)),
                }));
                Some((AgentState::WrapUp, None))
            }
            _ => None,
        };
        if let Some((state, reason)) = next
            && (state != current.state || reason != current.reason)
        {
            let from = at.max(current.from_ms);
            let finished = std::mem::replace(
                &mut current,
                Span {
                    state,
                    reason,
                    from_ms: from,
                    to_ms: now,
                },
            );
            if from > finished.from_ms {
                spans.push(Span {
                    to_ms: from,
                    ..finished
                });
            }
        }
    }
    spans.push(current);
    let day_ms = (now - midnight).max(1) as f64;
    let offset = |ms: i64| ((ms - midnight) as f64 / day_ms * 1000.0 * 100.0).round() / 100.0;
    let mut totals = [0i64; AgentState::ALL.len()];
    let timeline: Vec<serde_json::Value> = spans
        .iter()
        .map(|s| {
            totals[s.state.index()] += s.to_ms - s.from_ms;
            let local = |ms: i64| {
                chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
                    .map(|t| t.with_timezone(&floor.tz).format("%H:%M:%S").to_string())
                    .unwrap_or_default()
            };
            json!({
                "state": s.state.as_str(), "label": labels.state(s.state), "reason": s.reason,
                "from": local(s.from_ms), "to": local(s.to_ms),
                "duration": render::duration((s.to_ms - s.from_ms) / 1000),
                // Drawn as SVG (attributes, not inline styles, which the CSP forbids).
                "x": offset(s.from_ms),
                "width": offset(s.to_ms) - offset(s.from_ms),
            })
        })
        .collect();
    let summary: Vec<serde_json::Value> = AgentState::ALL
        .iter()
        .filter(|s| totals[s.index()] > 0)
        .map(|s| json!({ "state": s.as_str(), "label": labels.state(*s), "duration": render::duration(totals[s.index()] / 1000) }))
        .collect();
    let agent = json!({
            "id": &*agent.id, "name": &*agent.name, "state": agent.state.as_str(), "state_label": labels.state(agent.state),
            "reason": agent.reason.as_deref(), "time_in_state": render::duration((now - agent.since_ms) / 1000),
            "call": agent.call.as_deref(),
    });
    // Call control where a connector can carry it out and the viewer may use it.
    let can_control = crate::auth::permits(scope.role(), Action::Write, Area::Live)
        && app.plugins.has_connector(scope.tenant()).await.unwrap_or(false);
    calls.reverse();
    let page = AgentPage {
        agent,
        can_control,
        timeline,
        summary,
        calls,
        sent: query.sent.is_some(),
    };
    let template = if is_htmx(&headers) {
        "board/agent_body.html"
    } else {
        "board/agent.html"
    };
    Ok(render_view(&app, &signed.page, template, &page, StatusCode::OK))
}
