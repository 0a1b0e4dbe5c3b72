//! Supervisor call control from the API (`POST /api/v1/live/agents/{id}/{action}`,
//! `POST /api/v1/live/calls/{call}/{action}`, `POST /api/v1/telephony/reload`) and from the
//! board's agent drawer. The flow — checks, the connector, the audit — is
//! [`crate::service::telephony`]; this translates requests and answers.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use serde::Deserialize;

use super::AppState;
use super::extract::{Caller, RequestOrigin};
use super::problem::{ApiError, ApiResult};
use super::session::SignedIn;
use crate::auth::{Action, Area};
use crate::service::telephony::{self, AgentControl, CallControl, ControlError, Telephony};

pub fn api_router() -> Router<AppState> {
    Router::new()
        .route("/live/agents/{id}/{action}", post(api_control))
        .route("/live/calls/{call}/{action}", post(api_call_control))
        .route("/telephony/reload", post(api_reload))
}

pub fn board_router() -> Router<AppState> {
    Router::new().route("/board/agents/{id}/{action}", post(board_control))
}

fn telephony(app: &AppState) -> Telephony<'_> {
    Telephony {
        store: &app.store,
        live: &app.live,
        plugins: &app.plugins,
    }
}

/// `202 Accepted` with the connector's answer: the effect comes back as events.
fn sent(answer: String) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "sent": true, "answer": answer })),
    )
        .into_response()
}

/// After the PBX got new configuration from Monti (`monti asterisk export`): have it reload,
/// through the tenant's connector. Tenant admins; audited.
async fn api_reload(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    Ok(sent(telephony::reload(telephony(&app), &scope, &origin).await?))
}

/// A body that may be left out (or be `{}`): its fields then take their defaults.
fn optional_json<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body: {e}")))
}

/// Hang-up, transfer, hold, listen, whisper, barge on a call by its id.
async fn api_call_control(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((call, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Live)?;
    let input: CallControl = optional_json(&body)?;
    let answer = telephony::control_call(telephony(&app), &scope, &origin, &call, &action, input).await?;
    Ok(sent(answer))
}

async fn api_control(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Live)?;
    let input: AgentControl = optional_json(&body)?;
    let answer = telephony::control_agent(telephony(&app), &scope, &origin, &id, &action, input).await?;
    Ok(sent(answer))
}

#[derive(Debug, Deserialize)]
struct BoardForm {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    to: Option<String>,
    /// A checkbox: present when ticked.
    #[serde(default)]
    attended: Option<String>,
    #[serde(default)]
    supervisor: Option<String>,
}

/// `partials/control_result.html`: what came of a control request, in the drawer.
#[derive(serde::Serialize)]
struct ControlResult<'a> {
    ok: bool,
    message: &'a str,
}

/// From the drawer: the same, answered with a line for the drawer (htmx) or back to the drawer.
async fn board_control(
    State(app): State<AppState>,
    signed: SignedIn,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    axum::Form(form): axum::Form<BoardForm>,
) -> Response {
    let scope = match super::admin::tenant_scope(&app, &signed, Action::Write, Area::Live) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let locale = signed.page.locale;
    let input = AgentControl {
        reason: form.reason,
        queue: None,
        number: form.number,
        to: form.to,
        attended: form.attended.is_some(),
        supervisor: form.supervisor,
    };
    let origin = &signed.page.origin;
    let (status, message) = match telephony::control_agent(telephony(&app), &scope, origin, &id, &action, input).await {
        Ok(_) => (StatusCode::OK, locale.text("board.control_sent")),
        Err(ControlError::NotFound) => (StatusCode::NOT_FOUND, locale.text("board.agent_not_found")),
        Err(ControlError::BadRequest(why)) => (StatusCode::UNPROCESSABLE_ENTITY, why),
        Err(ControlError::Forbidden(why)) => (StatusCode::FORBIDDEN, why.to_owned()),
        Err(ControlError::NoCall) => (StatusCode::CONFLICT, locale.text("board.no_call")),
        Err(ControlError::NoConnector) => (StatusCode::CONFLICT, locale.text("board.no_connector")),
        Err(ControlError::Refused { message, .. }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{} {message}", locale.text("board.control_failed")),
        ),
        Err(ControlError::Store(e)) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    if super::ui::is_htmx(&headers) {
        let view = ControlResult {
            ok: status.is_success(),
            message: &message,
        };
        // Answered 200 either way: the outcome is the fragment, swapped where the buttons are.
        return super::ui::render_alone(&app, "partials/control_result.html", &view, StatusCode::OK);
    }
    if status.is_success() {
        Redirect::to(&format!("/board/agents/{id}?sent=1")).into_response()
    } else {
        super::ui::error_page(&app, &headers, status, &message)
    }
}
