//! Supervisor call control, from the API (`POST /api/v1/live/agents/{id}/{action}`,
//! `POST /api/v1/live/calls/{call}/{action}`) and from the board's agent drawer: pause, unpause
//! or log out an agent, click-to-call; on the call an agent is on, hang up, transfer, hold,
//! and listen, whisper or barge in from the supervisor's own phone.
//! The tenant's connector plugin carries it out; the effect comes back as events. Each request
//! needs write access to the live floor and an agent the caller may see, and is audited with
//! what the connector answered.

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
use crate::plugins::dispatch::CommandOutcome;
use crate::plugins::wit::commands::{AgentInQueue, CallRef, Command, Dial, Pause, Request, Snoop, SnoopMode, Transfer};
use crate::store::TenantScope;
use crate::store::audit::{self, AuditEvent, Origin, Outcome};

/// What an agent control request may say.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentControl {
    /// Why (a pause reason the PBX keeps and the board shows).
    #[serde(default)]
    pub reason: Option<String>,
    /// One queue; all the agent's queues when left out.
    #[serde(default)]
    pub queue: Option<String>,
    /// For `call`: the number the agent's phone dials once it answers (click-to-call).
    #[serde(default)]
    pub number: Option<String>,
    /// For `transfer`: where to (an extension or number).
    #[serde(default)]
    pub to: Option<String>,
    /// For `transfer`: attended (the agent talks to the target first) rather than blind.
    #[serde(default)]
    pub attended: bool,
    /// For `listen`, `whisper`, `barge`: the supervisor's own phone (an endpoint such as
    /// `PJSIP/2001`, or an extension), which rings and is joined to the call.
    #[serde(default)]
    pub supervisor: Option<String>,
}

pub fn api_router() -> Router<AppState> {
    Router::new()
        .route("/live/agents/{id}/{action}", post(api_control))
        .route("/live/calls/{call}/{action}", post(api_call_control))
        .route("/telephony/reload", post(api_reload))
}

/// After the PBX got new configuration from Monti (`monti asterisk export`): have it reload,
/// through the tenant's connector. Tenant admins; audited.
async fn api_reload(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    let answer = carry_out(
        &app,
        &scope,
        &origin,
        Command::Reload,
        "telephony.reload",
        ("telephony", "pbx"),
        "pbx",
        None,
    )
    .await
    .map_err(api_error)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "sent": true, "answer": answer })),
    )
        .into_response())
}

/// What a call control request may say.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallControl {
    /// Where to transfer to (an extension or number).
    #[serde(default)]
    pub to: Option<String>,
    /// Transfer attended (the agent talks to the target first) rather than blind.
    #[serde(default)]
    pub attended: bool,
    /// For `listen`, `whisper`, `barge`: the supervisor's own phone (an endpoint such as
    /// `PJSIP/2001`, or an extension).
    #[serde(default)]
    pub supervisor: Option<String>,
}

pub fn board_router() -> Router<AppState> {
    Router::new().route("/board/agents/{id}/{action}", post(board_control))
}

/// Why a request was not carried out.
enum Refusal {
    NotFound,
    BadRequest(String),
    /// A call action for an agent who is on no call.
    NoCall,
    NoConnector,
    Refused {
        message: String,
        retryable: bool,
    },
    Store(crate::store::StoreError),
}

impl From<crate::store::StoreError> for Refusal {
    fn from(e: crate::store::StoreError) -> Self {
        Refusal::Store(e)
    }
}

/// Carries out `action` on agent `id` for `scope`; returns the connector's answer.
async fn control(
    app: &AppState,
    scope: &TenantScope,
    origin: &Origin,
    id: &str,
    action: &str,
    input: AgentControl,
) -> Result<String, Refusal> {
    let floor = app.live.floor(scope).await?;
    // The agent as the connector names it: by its extension (or interface), as events do.
    let (name, call) = {
        let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
        let slot = live.agent_slot(id).ok_or(Refusal::NotFound)?;
        let call = live.agent(slot).and_then(|a| a.call.as_deref().map(str::to_owned));
        let (team, location) = floor.agent_groups.get(slot as usize).cloned().unwrap_or_default();
        if !scope.visibility().admits(team.as_deref(), location.as_deref()) {
            return Err(Refusal::NotFound);
        }
        let name = floor
            .agent_aliases
            .get(slot as usize)
            .and_then(|aliases| aliases.first().cloned())
            .unwrap_or_else(|| id.to_owned());
        (name, call)
    };
    let clean = |text: Option<String>, limit: usize, what: &str| match text.map(|t| t.trim().to_owned()) {
        Some(t) if t.chars().count() > limit => {
            Err(Refusal::BadRequest(format!("{what} is at most {limit} characters")))
        }
        Some(t) if t.chars().any(char::is_control) => Err(Refusal::BadRequest(format!("{what} must be one line"))),
        Some(t) if t.is_empty() => Ok(None),
        other => Ok(other),
    };
    let reason = clean(input.reason, 80, "the reason")?;
    let queue = clean(input.queue, 80, "the queue")?;
    let number = clean(input.number, 40, "the number")?;
    if CALL_ACTIONS.contains(&action) {
        let call = call.ok_or(Refusal::NoCall)?;
        let command = call_command(
            &call,
            action,
            CallControl {
                to: input.to,
                attended: input.attended,
                supervisor: input.supervisor,
            },
        )?;
        return carry_out(
            app,
            scope,
            origin,
            command,
            &format!("call.{action}"),
            ("agent", id),
            &format!("{name} on {call}"),
            None,
        )
        .await;
    }
    let command = match action {
        "call" => Command::Originate(Dial {
            agent: name.clone(),
            number: dialable(number)?,
        }),
        "pause" => Command::Pause(Pause {
            agent: name.clone(),
            queue,
            reason: reason.clone(),
        }),
        "unpause" => Command::Unpause(AgentInQueue {
            agent: name.clone(),
            queue,
        }),
        "logout" => Command::Logout(AgentInQueue {
            agent: name.clone(),
            queue,
        }),
        _ => return Err(Refusal::NotFound),
    };
    carry_out(
        app,
        scope,
        origin,
        command,
        &format!("agent.{action}"),
        ("agent", id),
        &name,
        reason,
    )
    .await
}

/// What can be done to the call an agent is on.
const CALL_ACTIONS: [&str; 7] = ["hangup", "transfer", "hold", "unhold", "listen", "whisper", "barge"];

/// The command for a call action.
fn call_command(call: &str, action: &str, input: CallControl) -> Result<Command, Refusal> {
    let reference = || CallRef { call: call.to_owned() };
    let snoop = |mode: SnoopMode| -> Result<Command, Refusal> {
        let supervisor = input.supervisor.as_deref().map(str::trim).unwrap_or_default();
        if supervisor.is_empty() {
            return Err(Refusal::BadRequest(
                "your phone (an endpoint like PJSIP/2001, or an extension) is needed".into(),
            ));
        }
        if supervisor.chars().count() > 80 || supervisor.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Refusal::BadRequest(
                "your phone is one word of at most 80 characters".into(),
            ));
        }
        Ok(Command::Snoop(Snoop {
            call: call.to_owned(),
            supervisor: supervisor.to_owned(),
            mode,
        }))
    };
    Ok(match action {
        "hangup" => Command::Hangup(reference()),
        "hold" => Command::Hold(reference()),
        "unhold" => Command::Unhold(reference()),
        "transfer" => {
            let to = dialable(input.to.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()))?;
            let transfer = Transfer {
                call: call.to_owned(),
                to,
            };
            if input.attended {
                Command::AttendedTransfer(transfer)
            } else {
                Command::BlindTransfer(transfer)
            }
        }
        "listen" => snoop(SnoopMode::Listen)?,
        "whisper" => snoop(SnoopMode::Whisper)?,
        "barge" => snoop(SnoopMode::Barge)?,
        _ => return Err(Refusal::NotFound),
    })
}

/// A number or extension to dial: digits, `+`, `*`, `#`.
fn dialable(number: Option<String>) -> Result<String, Refusal> {
    match number {
        Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#')) => Ok(n),
        Some(_) => Err(Refusal::BadRequest(
            "the number may hold digits, +, * and # only".into(),
        )),
        None => Err(Refusal::BadRequest("a number to dial is needed".into())),
    }
}

/// Hands a command to the tenant's connector, accepts what it emitted, audits the outcome.
#[allow(clippy::too_many_arguments)]
async fn carry_out(
    app: &AppState,
    scope: &TenantScope,
    origin: &Origin,
    command: Command,
    audit_action: &str,
    target: (&str, &str),
    name: &str,
    reason: Option<String>,
) -> Result<String, Refusal> {
    let request = Request {
        id: crate::domain::new_id("cmd"),
        by: scope.actor().to_owned(),
        command,
    };
    let outcome = app.plugins.command(scope.tenant(), request).await?;
    let (result, detail, audit_outcome) = match outcome {
        CommandOutcome::Done {
            connector,
            answer,
            emitted,
        } => {
            if !emitted.is_empty() {
                app.live.accept_from_plugin(scope, emitted).await?;
            }
            let detail = format!("{connector}: {answer}");
            (Ok(answer), detail, Outcome::Success)
        }
        CommandOutcome::Refused {
            connector,
            message,
            retryable,
        } => {
            let detail = format!("{connector}: {message}");
            (Err(Refusal::Refused { message, retryable }), detail, Outcome::Failure)
        }
        CommandOutcome::NoConnector => (Err(Refusal::NoConnector), "no connector".to_owned(), Outcome::Failure),
    };
    let reason_note = reason.map(|r| format!(" (reason: {r})")).unwrap_or_default();
    let event = AuditEvent::in_tenant(scope, audit_action, audit_outcome)
        .target(target.0, target.1)
        .detail(format!("{name}{reason_note}: {detail}"));
    audit::record(&app.store, event, origin).await;
    result
}

/// A body that may be left out (or be `{}`): its fields then take their defaults.
fn optional_json<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body: {e}")))
}

fn api_error(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotFound => ApiError::not_found(
            "no such agent or call, or no such action (pause, unpause, logout, call; hangup, transfer, hold, unhold, listen, whisper, barge)",
        ),
        Refusal::BadRequest(why) => ApiError::bad_request(why),
        Refusal::NoCall => ApiError::new(StatusCode::CONFLICT, "the agent is on no call"),
        Refusal::NoConnector => ApiError::new(
            StatusCode::CONFLICT,
            "no connector is enabled in this tenant (install and enable one, e.g. the Asterisk plugin)",
        ),
        Refusal::Refused { message, retryable } => {
            let mut error = ApiError::new(
                if retryable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                },
                format!("the connector could not do it: {message}"),
            );
            if retryable {
                error.retry_after = Some(5);
            }
            error
        }
        Refusal::Store(e) => e.into(),
    }
}

/// Hang-up, transfer, hold: on a call by its id (as events name it). A supervisor scoped to
/// teams or locations cannot tell whose call it is before the PBX does, so these are for those
/// who see the whole tenant.
async fn api_call_control(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((call, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Live)?;
    if scope.visibility() != &crate::store::Visibility::default() {
        return Err(ApiError::forbidden(
            "call actions are for supervisors of the whole tenant (this one sees some teams or locations)",
        ));
    }
    let input: CallControl = optional_json(&body)?;
    if call.is_empty() || call.len() > 200 || call.chars().any(char::is_control) {
        return Err(ApiError::bad_request("a call id is one line of at most 200 characters"));
    }
    let command = call_command(&call, &action, input).map_err(api_error)?;
    let answer = carry_out(
        &app,
        &scope,
        &origin,
        command,
        &format!("call.{action}"),
        ("call", &call),
        &call,
        None,
    )
    .await
    .map_err(api_error)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "sent": true, "answer": answer })),
    )
        .into_response())
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
    let answer = control(&app, &scope, &origin, &id, &action, input)
        .await
        .map_err(api_error)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "sent": true, "answer": answer })),
    )
        .into_response())
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
    let (status, message) = match control(&app, &scope, &signed.page.origin, &id, &action, input).await {
        Ok(_) => (StatusCode::OK, locale.text("board.control_sent")),
        Err(Refusal::NotFound) => (StatusCode::NOT_FOUND, locale.text("board.agent_not_found")),
        Err(Refusal::BadRequest(why)) => (StatusCode::UNPROCESSABLE_ENTITY, why),
        Err(Refusal::NoCall) => (StatusCode::CONFLICT, locale.text("board.no_call")),
        Err(Refusal::NoConnector) => (StatusCode::CONFLICT, locale.text("board.no_connector")),
        Err(Refusal::Refused { message, .. }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{} {message}", locale.text("board.control_failed")),
        ),
        Err(Refusal::Store(e)) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    if super::ui::is_htmx(&headers) {
        let mut context = tera::Context::new();
        context.insert("ok", &status.is_success());
        context.insert("message", &message);
        // Answered 200 either way: the outcome is the fragment, swapped where the buttons are.
        return super::ui::render(&app, "partials/control_result.html", context, StatusCode::OK);
    }
    if status.is_success() {
        Redirect::to(&format!("/board/agents/{id}")).into_response()
    } else {
        super::ui::error_page(&app, &headers, status, &message)
    }
}
