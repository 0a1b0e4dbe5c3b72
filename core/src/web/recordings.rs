//! Call recordings over the API and in the UI. The flows are `service::recordings`'s; this
//! module translates requests and answers.
//!
//! - `GET|PUT|DELETE /api/v1/recordings/source`: the tenant's recording source
//! - `GET /api/v1/calls/{call}/recording`: the call's recording and a playback link
//! - `GET /calls/{call}/recording`: the call page's player (audited, then on to a link)
//! - `GET /recordings/{link}`: the playback link itself (no session: the link is the
//!   credential), answering `Range` with 206 and 416
//! - `POST /admin/settings/recordings`, `POST /admin/settings/recordings/delete`: the settings
//!   page's form

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::admin::tenant_scope;
use super::extract::{ApiJson, Caller, RequestOrigin};
use super::history::history;
use super::page_error::PageResult;
use super::problem::{ApiError, ApiResult};
use super::session::SignedIn;
use crate::auth::{Action, Area};
use crate::recordings::range;
use crate::service::recordings::{PlayError, RecordingError, RecordingView, Recordings, SourceSet, SourceView};
use crate::store::StoreError;

pub fn api_router() -> Router<AppState> {
    Router::new()
        .route(
            "/recordings/source",
            get(api_source).put(api_set_source).delete(api_remove_source),
        )
        .route("/calls/{call}/recording", get(api_recording))
}

/// The call page's player, behind the session.
pub fn router() -> Router<AppState> {
    Router::new().route("/calls/{call}/recording", get(page_recording))
}

/// The playback links, outside the session layer.
pub fn media_router() -> Router<AppState> {
    Router::new().route("/recordings/{link}", get(play))
}

/// The recording flows, on the running server's store and the operator's settings.
pub(super) fn recordings(app: &AppState) -> Recordings<'_> {
    Recordings {
        store: &app.store,
        config: &app.config.recordings,
        allow_private: app.config.auth.tenant_providers_private,
    }
}

impl From<RecordingError> for ApiError {
    fn from(e: RecordingError) -> Self {
        match e {
            RecordingError::NoSource | RecordingError::Missing(_) => ApiError::not_found(e.to_string()),
            RecordingError::Unnamed(_) | RecordingError::NotAudio { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            RecordingError::Source(_) => {
                tracing::warn!(error = ?e, "a recording source failed");
                let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
                error.retry_after = Some(30);
                error
            }
            RecordingError::Store(e) => e.into(),
        }
    }
}

/// Who may see the history and the tenant's settings may see where its recordings come from
/// (never the secret key).
async fn api_source(State(app): State<AppState>, caller: Caller) -> ApiResult<axum::Json<SourceView>> {
    let scope = caller.tenant(Action::Read, Area::History)?;
    if !crate::auth::permits(scope.role(), Action::Read, Area::TenantSettings) {
        return Err(ApiError::forbidden("your role may not see the tenant's settings"));
    }
    let source = recordings(&app).source(&scope).await?;
    Ok(axum::Json(source.ok_or(StoreError::NotFound {
        kind: "recording source",
    })?))
}

async fn api_set_source(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    body: ApiJson<SourceSet>,
) -> ApiResult<axum::Json<SourceView>> {
    let scope = caller.tenant(Action::Write, Area::TenantSettings)?;
    let input = body.0?;
    Ok(axum::Json(recordings(&app).set_source(&scope, &origin, input).await?))
}

async fn api_remove_source(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
) -> ApiResult<StatusCode> {
    let scope = caller.tenant(Action::Write, Area::TenantSettings)?;
    recordings(&app).remove_source(&scope, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn api_recording(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(call): Path<String>,
) -> ApiResult<axum::Json<RecordingView>> {
    let scope = caller.tenant(Action::Read, Area::History)?;
    let (detail, _) = history(&app).call(&scope, &call).await?;
    let view = recordings(&app).play_link(&scope, &origin, &detail, "API").await?;
    Ok(axum::Json(view))
}

/// The call page's player and download: the play audited, then on to a fresh link. The player
/// asks only when someone presses play (`preload="none"`).
async fn page_recording(State(app): State<AppState>, signed: SignedIn, Path(call): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::History)?;
    let (detail, _) = history(&app).call(&scope, &call).await?;
    match recordings(&app)
        .play_link(&scope, &signed.page.origin, &detail, "call page")
        .await
    {
        Ok(view) => Ok(axum::response::Redirect::to(&view.url).into_response()),
        Err(RecordingError::Store(e)) => Err(e.into()),
        Err(e) => {
            if matches!(e, RecordingError::Source(_)) {
                tracing::warn!(error = ?e, "a recording source failed");
            }
            Ok(ApiError::from(e).into_response())
        }
    }
}

/// Plays a link: 200 with the whole file, 206 with the range asked for, 416 for a range that
/// is malformed or beyond the file.
async fn play(State(app): State<AppState>, headers: HeaderMap, Path(link): Path<String>) -> Response {
    let range_header = headers.get(header::RANGE).map(|v| v.to_str().unwrap_or("\u{0}"));
    match recordings(&app).play(&link, range_header).await {
        Ok(playback) => {
            let (status, length) = match &playback.range {
                Some(r) => (StatusCode::PARTIAL_CONTENT, r.len()),
                None => (StatusCode::OK, playback.total),
            };
            let mut response = (status, Body::from_stream(playback.body)).into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(playback.content_type));
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
            if let Some(r) = &playback.range
                && let Ok(v) = HeaderValue::from_str(&r.content_range(playback.total))
            {
                h.insert(header::CONTENT_RANGE, v);
            }
            response
        }
        Err(PlayError::Range(e, total)) => {
            let mut response = ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, e.to_string()).into_response();
            if let Ok(v) = HeaderValue::from_str(&range::unsatisfied(total)) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            response
        }
        Err(e @ (PlayError::BadLink | PlayError::Gone)) => ApiError::not_found(e.to_string()).into_response(),
        Err(e @ PlayError::Expired) => ApiError::new(StatusCode::GONE, e.to_string()).into_response(),
        Err(PlayError::Source(e)) => {
            tracing::warn!(error = ?e, "a recording source failed during playback");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
        Err(PlayError::Store(e)) => ApiError::from(e).into_response(),
    }
}
