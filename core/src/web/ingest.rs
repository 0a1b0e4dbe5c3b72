//! `POST /api/v1/events`: events from PBX connectors, CRMs and scripts, as a JSON array or as
//! NDJSON (one event per line). Every item gets its own result, so one bad event does not sink
//! a batch; an accepted event is stored before the answer is sent; a repeated (source, id) is
//! reported as a duplicate and stored once.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::extract::Caller;
use super::problem::{ApiError, ApiResult};
use crate::auth::{Action, Area};
use crate::domain::FieldError;
use crate::domain::events::Event;
use crate::live::registry::Floor;
use crate::live::service::Outcome;

/// Most events one request may carry.
pub const MAX_EVENTS: usize = 10_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResult {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// One entry per event, in the order sent.
    pub results: Vec<ItemResult>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemResult {
    pub index: usize,
    /// The event's id, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: &'static str,
    /// Where an accepted event was stored in the tenant's event log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// Why an event was rejected (JSON pointers into the event).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

fn rejected(index: usize, id: Option<String>, errors: Vec<FieldError>) -> ItemResult {
    ItemResult {
        index,
        id,
        status: "rejected",
        seq: None,
        errors,
    }
}

fn error(pointer: &str, detail: impl Into<String>) -> FieldError {
    FieldError {
        pointer: pointer.into(),
        detail: detail.into(),
    }
}

/// The raw items of the body: a JSON array, or NDJSON lines. A line that is not JSON is an
/// item that failed to parse, not a failed request.
fn items(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Result<Value, String>>, ApiError> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match mime.as_str() {
        "application/json" => {
            let values: Vec<Value> = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("the body must be a JSON array of events: {e}")))?;
            Ok(values.into_iter().map(Ok).collect())
        }
        "application/x-ndjson" | "application/jsonl" => {
            let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
            Ok(text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str::<Value>(l).map_err(|e| format!("not JSON: {e}")))
                .collect())
        }
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send a JSON array (application/json) or one event per line (application/x-ndjson)",
        )),
    }
}

pub async fn post_events(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Ingest)?;
    let raw = items(&headers, &body)?;
    if raw.len() > MAX_EVENTS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {MAX_EVENTS} events per request; this one has {}", raw.len()),
        ));
    }
    if let Err(wait) = app.limits.ingest.check_n(scope.tenant_id(), raw.len() as u32) {
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "this tenant is sending events faster than its limit allows; nothing of this batch was stored",
        );
        err.retry_after = Some(u32::try_from(crate::auth::ratelimit::retry_after_secs(wait)).unwrap_or(u32::MAX));
        return Err(err);
    }
    let now = crate::domain::time::now_ms();
    let mut ids = Vec::with_capacity(raw.len());
    let parsed: Vec<Result<Event, Vec<FieldError>>> = raw
        .into_iter()
        .map(|item| {
            let value = item.map_err(|e| vec![error("", e)]);
            ids.push(
                value
                    .as_ref()
                    .ok()
                    .and_then(|v| v.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            );
            value.and_then(|v| serde_json::from_value::<Event>(v).map_err(|e| vec![error("", e.to_string())]))
        })
        .collect();
    let outcomes = app.live.ingest(&scope, parsed, now).await?;
    let results: Vec<ItemResult> = outcomes
        .into_iter()
        .zip(ids)
        .enumerate()
        .map(|(index, (outcome, id))| match outcome {
            Outcome::Accepted(seq) => ItemResult {
                index,
                id,
                status: "accepted",
                seq: Some(seq),
                errors: Vec::new(),
            },
            Outcome::Duplicate => ItemResult {
                index,
                id,
                status: "duplicate",
                seq: None,
                errors: Vec::new(),
            },
            Outcome::Rejected(errors) => rejected(index, id, errors),
        })
        .collect();
    let count = |s: &str| results.iter().filter(|r| r.status == s).count();
    let summary = IngestResult {
        accepted: count("accepted"),
        duplicates: count("duplicate"),
        rejected: count("rejected"),
        results,
    };
    metrics::counter!("events_accepted_total").increment(summary.accepted as u64);
    metrics::counter!("events_rejected_total").increment(summary.rejected as u64);
    Ok((StatusCode::OK, axum::Json(summary)).into_response())
}

/// `GET /api/v1/live/snapshot`: every visible agent with its state, and the figures per state,
/// team, location and queue.
pub async fn snapshot(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Live)?;
    let floor = app.live.floor(&scope).await?;
    let body = snapshot_text(&floor, &scope);
    Ok(([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
}

/// Snapshots kept per floor (one per distinct viewer scope).
const SNAPSHOTS_KEPT: usize = 8;

/// The floor as the caller may see it, serialized; shared with callers of the same scope while
/// the floor has not changed (for at most [`Floor::SNAPSHOT_REUSE`]; its `at` and
/// `seconds_in_state` are then that old).
fn snapshot_text(floor: &Floor, scope: &crate::store::TenantScope) -> std::sync::Arc<str> {
    let version = floor.live.lock().unwrap_or_else(|e| e.into_inner()).version;
    let visibility = scope.visibility();
    let mut cache = floor.snapshots.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hit) = cache
        .iter()
        .find(|c| c.version == version && &c.visibility == visibility && c.made.elapsed() < Floor::SNAPSHOT_REUSE)
    {
        return hit.body.clone();
    }
    // Made under the cache's lock: streams connecting together wait for one snapshot.
    let body: std::sync::Arc<str> = snapshot_json(floor, scope, crate::domain::time::now_ms())
        .to_string()
        .into();
    cache.retain(|c| &c.visibility != visibility && c.made.elapsed() < Floor::SNAPSHOT_REUSE);
    if cache.len() >= SNAPSHOTS_KEPT {
        cache.remove(0);
    }
    cache.push(crate::live::registry::CachedSnapshot {
        visibility: visibility.clone(),
        version,
        made: std::time::Instant::now(),
        body: body.clone(),
    });
    body
}

/// The floor as the caller may see it.
fn snapshot_json(floor: &crate::live::registry::Floor, scope: &crate::store::TenantScope, now: i64) -> Value {
    let visibility = scope.visibility();
    let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
    let states = |counts: &crate::live::StateCounts| -> serde_json::Map<String, Value> {
        crate::domain::events::AgentState::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), Value::from(counts[s.index()])))
            .collect()
    };
    let mut totals = crate::live::StateCounts::default();
    let agents: Vec<Value> = live
        .agents()
        .iter()
        .zip(&floor.agent_groups)
        .filter(|(_, (team, location))| visibility.admits(team.as_deref(), location.as_deref()))
        .map(|(a, (team, location))| {
            totals[a.state.index()] += 1;
            serde_json::json!({
                "id": &*a.id, "name": &*a.name, "team_id": team, "location_id": location,
                "state": a.state.as_str(), "reason": a.reason.as_deref(), "call": a.call.as_deref(),
                "since": crate::domain::time::to_rfc3339(a.since_ms),
                "seconds_in_state": ((now - a.since_ms).max(0) / 1000),
            })
        })
        .collect();
    let groups = |ids: &[String],
                  dimension: crate::store::Dimension,
                  counts: &dyn Fn(u32) -> Option<crate::live::StateCounts>|
     -> Vec<Value> {
        ids.iter()
            .enumerate()
            .filter(|(_, id)| visibility.includes(dimension, id))
            .filter_map(|(i, id)| Some(serde_json::json!({ "id": id, "states": states(&counts(i as u32)?) })))
            .collect()
    };
    let teams = groups(&floor.teams, crate::store::Dimension::Team, &|i| {
        live.team_counts(i).copied()
    });
    let locations = groups(&floor.locations, crate::store::Dimension::Location, &|i| {
        live.location_counts(i).copied()
    });
    let kpis = |c: &crate::kpi::QueueCounters, q: &crate::live::QueueLive| kpis_json(c, &q.settings);
    let queues: Vec<Value> = live
        .queues()
        .iter()
        .zip(&floor.queues)
        .enumerate()
        .map(|(i, (q, crate::live::registry::QueueInfo { id, name, target_pct }))| {
            serde_json::json!({
                "id": id, "name": name, "waiting": q.waiting(), "longest_wait_s": q.longest_wait_s(now),
                "service_level_target": f64::from(*target_pct) / 100.0,
                // A queue's agents may be in teams the caller does not see.
                "agents": (!visibility.is_limited()).then(|| live.queue_counts(i as u32).map(states)).flatten(),
                "today": kpis(q.today(), q),
                "last_15m": kpis(&q.window(15, now), q),
                "last_1h": kpis(&q.window(60, now), q),
                "last_24h": kpis(&q.window(24 * 60, now), q),
            })
        })
        .collect();
    serde_json::json!({
        "version": live.version,
        "at": crate::domain::time::to_rfc3339(now),
        "agents": agents,
        "states": states(&totals),
        "teams": teams,
        "locations": locations,
        "queues": queues,
    })
}

/// A queue's KPIs over some span, as its settings define them.
fn kpis_json(c: &crate::kpi::QueueCounters, settings: &crate::kpi::KpiSettings) -> Value {
    serde_json::json!({
        "offered": c.offered, "answered": c.answered, "abandoned": c.abandoned,
        "service_level": crate::kpi::service_level(c, settings.service_level),
        "asa_s": crate::kpi::asa(c), "aht_s": crate::kpi::aht(c),
        "abandon_rate": crate::kpi::abandon_rate(c, settings.abandon_rate_counts_short),
    })
}

/// A delta as JSON pieces, made once and shared by every machine stream of the tenant.
struct JsonDelta {
    /// Per changed agent, in the delta's order.
    agents: Vec<String>,
    queues: String,
    /// The queues without their agents by state, for callers limited to some teams or locations.
    queues_scoped: String,
}

fn queue_json(q: &crate::live::hub::QueueDelta, now: i64, with_agents: bool) -> Value {
    let c = &q.today;
    let mut json = serde_json::json!({
        "id": q.id, "name": q.name, "waiting": q.waiting,
        "longest_wait_s": q.oldest_join_ms.map(|j| (now - j).max(0) as f64 / 1000.0),
        "service_level_target": f64::from(q.target_pct) / 100.0,
        "agents": crate::domain::events::AgentState::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), Value::from(q.agents[s.index()])))
            .collect::<serde_json::Map<String, Value>>(),
        "today": kpis_json(c, &q.settings),
    });
    if !with_agents {
        json["agents"] = Value::Null;
    }
    json
}

fn render_json(delta: &crate::live::hub::Delta) -> JsonDelta {
    let agents = delta
        .agents
        .iter()
        .map(|a| {
            serde_json::json!({
                "id": &*a.agent.id, "name": &*a.agent.name, "team_id": a.team_id, "location_id": a.location_id,
                "state": a.agent.state.as_str(), "reason": a.agent.reason.as_deref(), "call": a.agent.call.as_deref(),
                "since": crate::domain::time::to_rfc3339(a.agent.since_ms),
            })
            .to_string()
        })
        .collect();
    let queues = |with_agents| {
        let list: Vec<Value> = delta
            .queues
            .iter()
            .map(|q| queue_json(q, delta.at_ms, with_agents))
            .collect();
        Value::from(list).to_string()
    };
    JsonDelta {
        agents,
        queues: queues(true),
        queues_scoped: queues(false),
    }
}

/// `GET /api/v1/live/stream`: server-sent events. First a `snapshot` (as `GET
/// /api/v1/live/snapshot`), unless the client resumes with `Last-Event-ID` from a delta that
/// is still held; then a `delta` per tick with the agents and queues that changed. A client
/// that falls behind gets `resync` and should reconnect without `Last-Event-ID`. The stream ends
/// when its token is revoked (or no longer grants what it did).
pub async fn stream(State(app): State<AppState>, caller: Caller, headers: HeaderMap) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Live)?;
    let floor = app.live.floor(&scope).await?;
    let resume = super::stream::resume_from(&headers, None);
    let publisher = app.live.publisher(&scope, &floor);
    let subscription = publisher.subscribe(resume.as_deref());
    let start = if resume.is_some() && !subscription.stale {
        super::stream::Start::Continue
    } else {
        let position = publisher.position();
        let body = snapshot_text(&floor, &scope);
        super::stream::Start::With(
            axum::response::sse::Event::default()
                .event("snapshot")
                .id(position)
                .data(&*body),
        )
    };
    Ok(super::stream::respond(
        subscription,
        start,
        "api",
        watch,
        move |delta| {
            delta_json(delta, &scope).map(|data| axum::response::sse::Event::default().event("delta").data(data))
        },
    ))
}

/// A delta as the caller may see it (`None` when nothing in it concerns them).
fn delta_json(delta: &crate::live::hub::Delta, scope: &crate::store::TenantScope) -> Option<String> {
    let json = delta.rendered("api-json", render_json);
    let visibility = scope.visibility();
    let mut agents = String::from("[");
    for (a, piece) in delta.agents.iter().zip(&json.agents) {
        if visibility.admits(a.team_id.as_deref(), a.location_id.as_deref()) {
            if agents.len() > 1 {
                agents.push(',');
            }
            agents.push_str(piece);
        }
    }
    agents.push(']');
    if agents.len() == 2 && delta.queues.is_empty() {
        return None;
    }
    Some(format!(
        "{{\"seq\":\"{}\",\"at\":\"{}\",\"agents\":{agents},\"queues\":{}}}",
        delta.id(),
        crate::domain::time::to_rfc3339(delta.at_ms),
        if visibility.is_limited() {
            &json.queues_scoped
        } else {
            &json.queues
        }
    ))
}

#[derive(Debug, serde::Deserialize)]
pub struct SocketQuery {
    /// Resume after this delta (as `Last-Event-ID` does for the SSE stream).
    pub last_event_id: Option<String>,
}

/// How long a message may take to reach a WebSocket client before it is dropped.
const SOCKET_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /api/v1/live/ws`: the live stream over WebSocket. Authenticate with `Authorization:
/// Bearer` or, where a client cannot set headers (browsers), with `?ticket=` from `POST
/// /api/v1/live/tickets`. Messages are JSON text: `{"type":"snapshot","id":…,"data":{…}}` first
/// (unless resumed with `?last_event_id=`), then `{"type":"delta","id":…,"data":{…}}`;
/// `{"type":"resync"}` before the server closes a connection that fell behind. The server closes
/// the connection (code 1008) when the credential is revoked or no longer grants what it did.
pub async fn websocket(
    State(app): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<SocketQuery>,
    upgrade: Result<axum::extract::ws::WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    // Permission first: a caller who may not see the floor learns nothing more.
    let watch = match (&query.ticket, caller) {
        (Some(ticket), _) => redeem_ticket(&app, ticket).await?,
        (None, Err(_)) if query.access_token.is_some() => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "`?access_token=` is no longer accepted (URLs end up in logs): get a ticket from POST \
                 /api/v1/live/tickets and connect with `?ticket=`",
            ));
        }
        (None, caller) => {
            let scope = caller?.tenant(Action::Read, Area::Live)?;
            super::stream::Watch::new(&app, super::stream::Credential::bearer(&headers)?, &scope)
        }
    };
    let scope = watch.scope.clone();
    let upgrade = upgrade.map_err(|e| {
        ApiError::bad_request(format!(
            "this endpoint speaks WebSocket only ({e}); use GET /api/v1/live/stream for server-sent events"
        ))
    })?;
    let floor = app.live.floor(&scope).await?;
    let publisher = app.live.publisher(&scope, &floor);
    let subscription = publisher.subscribe(query.last_event_id.as_deref());
    let snapshot = (query.last_event_id.is_none() || subscription.stale).then(|| {
        let body = snapshot_text(&floor, &scope);
        format!(
            "{{\"type\":\"snapshot\",\"id\":\"{}\",\"data\":{body}}}",
            publisher.position()
        )
    });
    Ok(upgrade.on_upgrade(move |socket| socket_session(socket, subscription, snapshot, watch)))
}

/// Sends a text message; `false` when the client is gone or too slow to take it.
async fn send(socket: &mut axum::extract::ws::WebSocket, text: String) -> bool {
    let sending = socket.send(axum::extract::ws::Message::Text(text.into()));
    matches!(tokio::time::timeout(SOCKET_SEND_TIMEOUT, sending).await, Ok(Ok(())))
}

async fn socket_session(
    mut socket: axum::extract::ws::WebSocket,
    subscription: crate::live::hub::Subscription,
    snapshot: Option<String>,
    watch: super::stream::Watch,
) {
    use axum::extract::ws::{CloseFrame, Message, close_code};
    use tokio::sync::broadcast::error::RecvError;
    metrics::gauge!("live_streams", "kind" => "websocket").increment(1.0);
    let mut receiver = subscription.receiver;
    let mut backlog: std::collections::VecDeque<_> = subscription.backlog.into();
    let mut open = match snapshot {
        Some(s) => send(&mut socket, s).await,
        None => true,
    };
    while open {
        let delta = match backlog.pop_front() {
            Some(d) => Ok(d),
            None => tokio::select! {
                d = receiver.recv() => d,
                incoming = socket.recv() => match incoming {
                    // Pings are answered by the library; anything else from the client is ignored.
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                },
            },
        };
        match delta {
            Ok(delta) if delta.resync => {
                let _ = send(&mut socket, "{\"type\":\"resync\"}".into()).await;
                break;
            }
            Ok(delta) => {
                if let Some(data) = delta_json(&delta, &scope) {
                    open = send(
                        &mut socket,
                        format!("{{\"type\":\"delta\",\"id\":\"{}\",\"data\":{data}}}", delta.id()),
                    )
                    .await;
                }
            }
            Err(RecvError::Lagged(_)) => {
                metrics::counter!("live_streams_lagged_total", "kind" => "websocket").increment(1);
                let _ = send(&mut socket, "{\"type\":\"resync\"}".into()).await;
                break;
            }
            Err(RecvError::Closed) => break,
        }
    }
    let _ = socket.send(Message::Close(close)).await;
    metrics::gauge!("live_streams", "kind" => "websocket").decrement(1.0);
}
    let watch = super::stream::Watch::new(&app, super::stream::Credential::bearer(&headers)?, &scope);
    /// A ticket from `POST /api/v1/live/tickets`, for clients that cannot send headers.
    pub ticket: Option<String>,
    /// No longer accepted (tokens in URLs end up in logs); named only to say so.
    pub access_token: Option<String>,
/// `POST /api/v1/live/tickets`: a single-use ticket to open `/api/v1/live/ws?ticket=…` with,
/// within 30 seconds, at this instance. The stream it opens sees what the calling credential sees
/// and ends when that credential is revoked.
pub async fn create_ticket(State(app): State<AppState>, caller: Caller, headers: HeaderMap) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Live)?;
    let super::stream::Credential::Bearer(bearer) = super::stream::Credential::bearer(&headers)? else {
        return Err(ApiError::internal());
    };
    let (ticket, lifetime) = app
        .tokens
        .tickets
        .issue(scope, bearer)
        .map_err(|e| ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()))?;
    let expires_at = crate::domain::time::to_rfc3339(crate::domain::time::now_ms() + lifetime.as_millis() as i64);
    let mut response = (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "ticket": ticket, "expires_at": expires_at })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The ticket's stream credential and scope, if the ticket is good and its credential still is.
async fn redeem_ticket(app: &AppState, secret: &str) -> ApiResult<super::stream::Watch> {
    let refused = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the stream ticket is unknown, used or expired; get a new one from POST /api/v1/live/tickets",
        )
        .audited(None, "ticket", "api.auth", crate::store::audit::Outcome::Failure)
    };
    let ticket = app.tokens.tickets.redeem(secret).ok_or_else(refused)?;
    let watch = super::stream::Watch::new(app, super::stream::Credential::Bearer(ticket.bearer), &ticket.scope);
    if !watch.holds_now().await {
        return Err(refused());
    }
    Ok(watch)
}

    let scope = watch.scope.clone();
    let mut ended = watch.ended();
    let mut close = None;
                () = &mut ended => {
                    close = Some(CloseFrame {
                        code: close_code::POLICY,
                        reason: "the credential was revoked or changed".into(),
                    });
                    break;
                }
