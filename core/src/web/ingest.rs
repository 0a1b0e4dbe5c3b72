//! `POST /api/v1/events`: events from PBX connectors, CRMs and scripts, as a JSON array or as
//! NDJSON (one event per line). Every item gets its own result, so one bad event does not sink
//! a batch; an accepted event is stored before the answer is sent; a repeated (source, id) is
//! reported as a duplicate and stored once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
use crate::store::TenantScope;
use crate::store::entities::agents::Agent;
use crate::store::entities::queues::Queue;
use crate::store::events::{self, Directory, Stored};
use crate::store::resource;

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

/// Each tenant's agent and queue names, kept while its agents and queues do not change.
/// A tenant's directory with the agent and queue versions it was read at.
type Versioned = (i64, i64, Arc<Directory>);

#[derive(Debug, Default)]
pub struct Directories {
    cached: Mutex<HashMap<String, Versioned>>,
}

impl Directories {
    async fn get(&self, app: &AppState, scope: &TenantScope) -> Result<Arc<Directory>, ApiError> {
        let agents = resource::collection_version::<Agent>(&app.store, scope).await?;
        let queues = resource::collection_version::<Queue>(&app.store, scope).await?;
        if let Some((a, q, dir)) = self
            .cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope.tenant_id())
            && *a == agents
            && *q == queues
        {
            return Ok(dir.clone());
        }
        let dir = Arc::new(events::directory(&app.store, scope).await?);
        self.cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.tenant_id().to_owned(), (agents, queues, dir.clone()));
        Ok(dir)
    }
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
    let now = crate::domain::time::now_ms();
    let directory = app.ingest.get(&app, &scope).await?;
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
        if let Some(agent) = event.agent()
            && !directory.agents.contains(agent)
        {
            errors.push(error(
                "/agent",
                format!("no agent `{agent}` (by id, extension or interface) in this tenant"),
            ));
        }
        if let Some(queue) = event.queue()
            && !directory.queues.contains(queue)
        {
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
