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
use crate::store::events::{self, Stored};

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
    // The floor knows every name events may use (agent id, extension, interface; queue id,
    // name). It is fetched before storing: a first build replays stored events, and must not
    // count this batch as well as applying it below.
    let floor = app.live.floor(&app.store, &scope).await?;
    let mut results: Vec<Option<ItemResult>> = Vec::with_capacity(raw.len());
    let mut valid: Vec<(usize, Event)> = Vec::new();
    for (index, item) in raw.into_iter().enumerate() {
        let value = match item {
            Ok(v) => v,
            Err(e) => {
                results.push(Some(rejected(index, None, vec![error("", e)])));
                continue;
            }
        };
        let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        let event: Event = match serde_json::from_value(value) {
            Ok(e) => e,
            Err(e) => {
                results.push(Some(rejected(index, id, vec![error("", e.to_string())])));
                continue;
            }
        };
        let mut errors = match event.validate(now) {
            Ok(()) => Vec::new(),
            Err(v) => v.errors,
        };
        let (unknown_agent, unknown_queue) = {
            let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
            (
                event
                    .agent()
                    .filter(|a| live.agent_slot(a).is_none())
                    .map(str::to_owned),
                event
                    .queue()
                    .filter(|q| live.queue_slot(q).is_none())
                    .map(str::to_owned),
            )
        };
        if let Some(agent) = unknown_agent {
            errors.push(error(
                "/agent",
                format!("no agent `{agent}` (by id, extension or interface) in this tenant"),
            ));
        }
        if let Some(queue) = unknown_queue {
            errors.push(error(
                "/queue",
                format!("no queue `{queue}` (by id or name) in this tenant"),
            ));
        }
        if errors.is_empty() {
            results.push(None);
            valid.push((index, event));
        } else {
            results.push(Some(rejected(index, id, errors)));
        }
    }
    let refs: Vec<&Event> = valid.iter().map(|(_, e)| e).collect();
    let stored = events::append(&app.store, &scope, &refs).await?;
    // Stored first, then shown: the live floor moves only for events that are safe on disk.
    {
        let mut live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh: Vec<&Event> = valid
            .iter()
            .zip(&stored)
            .filter(|(_, s)| matches!(s, Stored::Accepted(_)))
            .map(|((_, e), _)| e)
            .collect();
        // Within a batch, in time order per agent (a later state must not be overtaken).
        fresh.sort_by_key(|e| e.at_ms());
        for event in fresh {
            if let Err(e) = live.apply(event) {
                tracing::debug!(error = %e, "event not applied to the live floor");
            }
        }
    }
    for ((index, event), outcome) in valid.iter().zip(stored) {
        let (status, seq) = match outcome {
            Stored::Accepted(seq) => ("accepted", Some(seq)),
            Stored::Duplicate => ("duplicate", None),
        };
        results[*index] = Some(ItemResult {
            index: *index,
            id: Some(event.id.clone()),
            status,
            seq,
            errors: Vec::new(),
        });
    }
    let results: Vec<ItemResult> = results.into_iter().flatten().collect();
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
    let floor = app.live.floor(&app.store, &scope).await?;
    let now = crate::domain::time::now_ms();
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
                "state": a.state.as_str(), "reason": a.reason.as_deref(),
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
    let kpis = |c: &crate::kpi::QueueCounters, q: &crate::live::QueueLive| {
        serde_json::json!({
            "offered": c.offered, "answered": c.answered, "abandoned": c.abandoned,
            "service_level": crate::kpi::service_level(c, q.settings.service_level),
            "asa_s": crate::kpi::asa(c), "aht_s": crate::kpi::aht(c),
            "abandon_rate": crate::kpi::abandon_rate(c, q.settings.abandon_rate_counts_short),
        })
    };
    let queues: Vec<Value> = live
        .queues()
        .iter()
        .zip(&floor.queue_names)
        .enumerate()
        .map(|(i, (q, (id, name)))| {
            serde_json::json!({
                "id": id, "name": name, "waiting": q.waiting(), "longest_wait_s": q.longest_wait_s(now),
                "agents": live.queue_counts(i as u32).map(states),
                "today": kpis(q.today(), q),
                "last_15m": kpis(&q.window(15, now), q),
                "last_1h": kpis(&q.window(60, now), q),
                "last_24h": kpis(&q.window(24 * 60, now), q),
            })
        })
        .collect();
    let body = serde_json::json!({
        "version": live.version,
        "at": crate::domain::time::to_rfc3339(now),
        "agents": agents,
        "states": states(&totals),
        "teams": teams,
        "locations": locations,
        "queues": queues,
    });
    Ok(axum::Json(body).into_response())
}
