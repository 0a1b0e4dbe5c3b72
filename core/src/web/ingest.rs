//! `POST /api/v1/events`: events from PBX connectors, CRMs and scripts, as a JSON array or as
//! NDJSON (one event per line). Every item gets its own result, so one bad event does not sink
//! a batch; an accepted event is stored before the answer is sent; a repeated (source, id) is
//! reported as a duplicate and stored once.

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

/// Longest single event (an NDJSON line or an array element) accepted. Real events are a few
/// hundred bytes; the bound keeps what is buffered of an unfinished event small.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// How the body lists its events.
#[derive(Debug, Clone, Copy)]
enum Format {
    Array,
    Lines,
}

fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match mime.as_str() {
        "application/json" => Ok(Format::Array),
        "application/x-ndjson" | "application/jsonl" => Ok(Format::Lines),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send a JSON array (application/json) or one event per line (application/x-ndjson)",
        )),
    }
}

fn too_many_events() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("at most {MAX_EVENTS} events per request; this one has more"),
    )
}

fn event_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("an event may be at most {MAX_EVENT_BYTES} bytes long"),
    )
}

fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is larger than the server accepts",
    )
}

fn not_an_array(why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("the body must be a JSON array of events: {why}"))
}

/// The events of a request, parsed as they arrive; one item per event in the order sent.
#[derive(Default)]
struct Batch {
    events: Vec<Result<Event, Vec<FieldError>>>,
    ids: Vec<Option<String>>,
}

impl Batch {
    /// Called when another event starts, before any of it is kept.
    fn admit(&self) -> Result<(), ApiError> {
        if self.events.len() >= MAX_EVENTS {
            return Err(too_many_events());
        }
        Ok(())
    }

    /// A line or element that is not JSON is an item that failed to parse, not a failed request.
    fn push(&mut self, item: Result<Value, String>) {
        self.ids.push(
            item.as_ref()
                .ok()
                .and_then(|v| v.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        );
        self.events.push(
            item.map_err(|e| vec![error("", e)])
                .and_then(|v| serde_json::from_value::<Event>(v).map_err(|e| vec![error("", e.to_string())])),
        );
    }
}

/// NDJSON, one event per line; blank lines are skipped. Holds at most one unfinished line.
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    fn feed(&mut self, mut chunk: &[u8], batch: &mut Batch) -> Result<(), ApiError> {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            if self.pending.is_empty() {
                Self::line(&chunk[..end], batch)?;
            } else {
                self.extend(&chunk[..end])?;
                let line = std::mem::take(&mut self.pending);
                Self::line(&line, batch)?;
            }
            chunk = &chunk[end + 1..];
        }
        self.extend(chunk)
    }

    fn extend(&mut self, part: &[u8]) -> Result<(), ApiError> {
        if self.pending.len() + part.len() > MAX_EVENT_BYTES {
            return Err(event_too_large());
        }
        self.pending.extend_from_slice(part);
        Ok(())
    }

    fn finish(self, batch: &mut Batch) -> Result<(), ApiError> {
        Self::line(&self.pending, batch)
    }

    fn line(line: &[u8], batch: &mut Batch) -> Result<(), ApiError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_EVENT_BYTES {
            return Err(event_too_large());
        }
        let text = std::str::from_utf8(line).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
        if text.trim().is_empty() {
            return Ok(());
        }
        batch.admit()?;
        batch.push(serde_json::from_str::<Value>(text).map_err(|e| format!("not JSON: {e}")));
        Ok(())
    }
}

/// Where an [`ArraySplitter`] is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    /// Before the opening `[`.
    Start,
    /// After `[` (`first`) or after a `,`: an element or, after `[`, the closing `]` follows.
    Between { first: bool },
    /// Inside an element: nesting depth below the array, and string state.
    Element { depth: u32, in_string: bool, escaped: bool },
    /// After the closing `]`: only whitespace may follow.
    Done,
}

/// A JSON array, cut into its elements as bytes arrive (strings and nesting are followed so
/// commas inside elements do not split them); each element is parsed on its own and the
/// array is never held whole.
struct ArraySplitter {
    state: ArrayState,
    /// The unfinished element's bytes from earlier chunks.
    pending: Vec<u8>,
}

impl ArraySplitter {
    fn new() -> Self {
        Self {
            state: ArrayState::Start,
            pending: Vec::new(),
        }
    }

    fn feed(&mut self, chunk: &[u8], batch: &mut Batch) -> Result<(), ApiError> {
        // Where the current element starts in this chunk, when it started here.
        let mut start: Option<usize> = matches!(self.state, ArrayState::Element { .. }).then_some(0);
        for (i, &b) in chunk.iter().enumerate() {
            match self.state {
                ArrayState::Start => match b {
                    b'[' => self.state = ArrayState::Between { first: true },
                    b if b.is_ascii_whitespace() => {}
                    _ => return Err(not_an_array("it does not start with `[`")),
                },
                ArrayState::Between { first } => match b {
                    b if b.is_ascii_whitespace() => {}
                    b']' if first => self.state = ArrayState::Done,
                    b',' | b']' => return Err(not_an_array("an element is missing")),
                    _ => {
                        batch.admit()?;
                        start = Some(i);
                        self.state = ArrayState::Element {
                            depth: 0,
                            in_string: false,
                            escaped: false,
                        };
                        self.scan(b);
                    }
                },
                ArrayState::Element {
                    depth: 0,
                    in_string: false,
                    ..
                } if b == b',' || b == b']' => {
                    let from = start.take().unwrap_or(0);
                    self.element(&chunk[from..i], batch)?;
                    self.state = if b == b',' {
                        ArrayState::Between { first: false }
                    } else {
                        ArrayState::Done
                    };
                }
                ArrayState::Element { .. } => self.scan(b),
                ArrayState::Done => {
                    if !b.is_ascii_whitespace() {
                        return Err(not_an_array("trailing characters after the closing `]`"));
                    }
                }
            }
        }
        if let Some(from) = start {
            if self.pending.len() + (chunk.len() - from) > MAX_EVENT_BYTES {
                return Err(event_too_large());
            }
            self.pending.extend_from_slice(&chunk[from..]);
        }
        Ok(())
    }

    /// Follows strings and nesting inside an element.
    fn scan(&mut self, b: u8) {
        let ArrayState::Element {
            depth,
            in_string,
            escaped,
        } = &mut self.state
        else {
            return;
        };
        if *in_string {
            if *escaped {
                *escaped = false;
            } else if b == b'\\' {
                *escaped = true;
            } else if b == b'"' {
                *in_string = false;
            }
            return;
        }
        match b {
            b'"' => *in_string = true,
            b'{' | b'[' => *depth += 1,
            // A stray closer at depth 0 stays in the element and fails its parse.
            b'}' | b']' => *depth = depth.saturating_sub(1),
            _ => {}
        }
    }

    /// An element is complete: `tail` is its part in the current chunk.
    fn element(&mut self, tail: &[u8], batch: &mut Batch) -> Result<(), ApiError> {
        let bytes: std::borrow::Cow<'_, [u8]> = if self.pending.is_empty() {
            tail.into()
        } else {
            let mut whole = std::mem::take(&mut self.pending);
            whole.extend_from_slice(tail);
            whole.into()
        };
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(event_too_large());
        }
        // Malformed JSON inside the array fails the request, as a malformed array always has.
        let value = serde_json::from_slice::<Value>(&bytes).map_err(not_an_array)?;
        batch.push(Ok(value));
        Ok(())
    }

    fn finish(self) -> Result<(), ApiError> {
        match self.state {
            ArrayState::Done => Ok(()),
            ArrayState::Start => Err(not_an_array("the body is empty")),
            _ => Err(not_an_array("the array is not closed")),
        }
    }
}

/// Reads and parses the body as it arrives, stopping at the first event past [`MAX_EVENTS`],
/// at an oversize event, or at `max_bytes`: memory stays proportional to the events accepted.
async fn read_batch(body: axum::body::Body, format: Format, max_bytes: usize) -> Result<Batch, ApiError> {
    use futures_util::StreamExt as _;
    let mut batch = Batch::default();
    let mut lines = LineSplitter::default();
    let mut array = ArraySplitter::new();
    let mut read = 0usize;
    let mut frames = body.into_data_stream();
    while let Some(frame) = frames.next().await {
        let chunk = frame.map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        read += chunk.len();
        if read > max_bytes {
            return Err(body_too_large());
        }
        match format {
            Format::Lines => lines.feed(&chunk, &mut batch)?,
            Format::Array => array.feed(&chunk, &mut batch)?,
        }
    }
    match format {
        Format::Lines => lines.finish(&mut batch)?,
        Format::Array => array.finish()?,
    }
    Ok(batch)
}

pub async fn post_events(
    State(app): State<AppState>,
    caller: Caller,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    // Who is calling and whether they may send events is settled before any of the body is read.
    let scope = caller.tenant(Action::Write, Area::Ingest)?;
    let format = format_of(request.headers())?;
    let max_bytes = app.config.http.max_ingest_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(body_too_large());
    }
    let Batch { events: parsed, ids } = read_batch(request.into_body(), format, max_bytes).await?;
    if let Err(wait) = app.limits.ingest.check_n(scope.tenant_id(), parsed.len() as u32) {
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "this tenant is sending events faster than its limit allows; nothing of this batch was stored",
        );
        err.retry_after = Some(u32::try_from(crate::auth::ratelimit::retry_after_secs(wait)).unwrap_or(u32::MAX));
        return Err(err);
    }
    let now = crate::domain::time::now_ms();
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
    let watch = super::stream::Watch::new(&app, super::stream::Credential::bearer(&headers)?, &scope);
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
    /// A ticket from `POST /api/v1/live/tickets`, for clients that cannot send headers.
    pub ticket: Option<String>,
    /// No longer accepted (tokens in URLs end up in logs); named only to say so.
    pub access_token: Option<String>,
}

/// How long a message may take to reach a WebSocket client before it is dropped.
const SOCKET_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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
        .anonymous_refusal()
    };
    let ticket = app.tokens.tickets.redeem(secret).ok_or_else(refused)?;
    let watch = super::stream::Watch::new(app, super::stream::Credential::Bearer(ticket.bearer), &ticket.scope);
    if !watch.holds_now().await {
        return Err(refused());
    }
    Ok(watch)
}

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
    let scope = watch.scope.clone();
    let mut ended = watch.ended();
    let mut close = None;
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
                () = &mut ended => {
                    close = Some(CloseFrame {
                        code: close_code::POLICY,
                        reason: "the credential was revoked or changed".into(),
                    });
                    break;
                }
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
