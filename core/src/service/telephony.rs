//! Supervisor call control and PBX requests: pause, unpause or log out an agent, click-to-call;
//! on a call, hang up, transfer, hold, and listen, whisper or barge in from the supervisor's
//! own phone; have the PBX reload its configuration. One flow for the REST API and the board's
//! agent drawer: the input checked, the agent one the caller may see, the command handed to the
//! tenant's connector plugin, what it emitted accepted, and the outcome audited with what the
//! connector answered. The effect comes back as events.

use serde::Deserialize;

use crate::live::service::LiveService;
use crate::plugins::dispatch::{CommandOutcome, Dispatcher};
use crate::plugins::wit::commands::{AgentInQueue, CallRef, Command, Dial, Pause, Request, Snoop, SnoopMode, Transfer};
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::{Store, TenantScope};

/// What telephony control needs from the running system.
#[derive(Clone, Copy)]
pub struct Telephony<'a> {
    pub store: &'a Store,
    /// The live floors: which agent is on which call, and where emitted events go.
    pub live: &'a LiveService,
    /// The tenant's connector plugin carries the commands out.
    pub plugins: &'a Dispatcher,
}

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

/// Why a control request was not carried out.
#[derive(Debug)]
pub enum ControlError {
    /// No such agent (or one the caller may not see), call or action.
    NotFound,
    BadRequest(String),
    /// The caller may not do this at all.
    Forbidden(&'static str),
    /// A call action for an agent who is on no call.
    NoCall,
    /// The tenant has no connector enabled.
    NoConnector,
    /// The connector could not do it.
    Refused {
        message: String,
        retryable: bool,
    },
    Store(crate::store::StoreError),
}

impl From<crate::store::StoreError> for ControlError {
    fn from(e: crate::store::StoreError) -> Self {
        ControlError::Store(e)
    }
}

/// Carries out `action` (pause, unpause, logout, call; or one of [`CALL_ACTIONS`] on the call
/// the agent is on) on agent `id`, one the scope may see; returns the connector's answer.
pub async fn control_agent(
    app: Telephony<'_>,
    scope: &TenantScope,
    origin: &Origin,
    id: &str,
    action: &str,
    input: AgentControl,
) -> Result<String, ControlError> {
    let floor = app.live.floor(scope).await?;
    // The agent as the connector names it: by its extension (or interface), as events do.
    let (name, call) = {
        let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
        let slot = live.agent_slot(id).ok_or(ControlError::NotFound)?;
        let call = live.agent(slot).and_then(|a| a.call.as_deref().map(str::to_owned));
        let (team, location) = floor.agent_groups.get(slot as usize).cloned().unwrap_or_default();
        if !scope.visibility().admits(team.as_deref(), location.as_deref()) {
            return Err(ControlError::NotFound);
        }
        let name = floor
            .agent_aliases
            .get(slot as usize)
            .and_then(|aliases| aliases.first().cloned())
            .unwrap_or_else(|| id.to_owned());
        (name, call)
    };
    let clean = |text: Option<String>, limit: usize, what: &str| match text.map(|t| t.trim().to_owned()) {
        Some(t) if t.chars().count() > limit => Err(ControlError::BadRequest(format!(
            "{what} is at most {limit} characters"
        ))),
        Some(t) if t.chars().any(char::is_control) => Err(ControlError::BadRequest(format!("{what} must be one line"))),
        Some(t) if t.is_empty() => Ok(None),
        other => Ok(other),
    };
    let reason = clean(input.reason, 80, "the reason")?;
    let queue = clean(input.queue, 80, "the queue")?;
    let number = clean(input.number, 40, "the number")?;
    if CALL_ACTIONS.contains(&action) {
        let call = call.ok_or(ControlError::NoCall)?;
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
        _ => return Err(ControlError::NotFound),
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
fn call_command(call: &str, action: &str, input: CallControl) -> Result<Command, ControlError> {
    let reference = || CallRef { call: call.to_owned() };
    let snoop = |mode: SnoopMode| -> Result<Command, ControlError> {
        let supervisor = input.supervisor.as_deref().map(str::trim).unwrap_or_default();
        if supervisor.is_empty() {
            return Err(ControlError::BadRequest(
                "your phone (an endpoint like PJSIP/2001, or an extension) is needed".into(),
            ));
        }
        if supervisor.chars().count() > 80 || supervisor.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ControlError::BadRequest(
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
        _ => return Err(ControlError::NotFound),
    })
}

/// A number or extension to dial: digits, `+`, `*`, `#`.
fn dialable(number: Option<String>) -> Result<String, ControlError> {
    match number {
        Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#')) => Ok(n),
        Some(_) => Err(ControlError::BadRequest(
            "the number may hold digits, +, * and # only".into(),
        )),
        None => Err(ControlError::BadRequest("a number to dial is needed".into())),
    }
}

/// Hands a command to the tenant's connector, accepts what it emitted, audits the outcome.
#[allow(clippy::too_many_arguments)]
async fn carry_out(
    app: Telephony<'_>,
    scope: &TenantScope,
    origin: &Origin,
    command: Command,
    audit_action: &str,
    target: (&str, &str),
    name: &str,
    reason: Option<String>,
) -> Result<String, ControlError> {
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
            (
                Err(ControlError::Refused { message, retryable }),
                detail,
                Outcome::Failure,
            )
        }
        CommandOutcome::NoConnector => (
            Err(ControlError::NoConnector),
            "no connector".to_owned(),
            Outcome::Failure,
        ),
    };
    let reason_note = reason.map(|r| format!(" (reason: {r})")).unwrap_or_default();
    let event = AuditEvent::in_tenant(scope, audit_action, audit_outcome)
        .target(target.0, target.1)
        .detail(format!("{name}{reason_note}: {detail}"));
    audit::record(app.store, event, origin).await;
    result
}

/// Hang-up, transfer, hold, listen, whisper, barge on a call by its id (as events name it). A
/// supervisor scoped to teams or locations cannot tell whose call it is before the PBX does, so
/// these are for those who see the whole tenant.
pub async fn control_call(
    app: Telephony<'_>,
    scope: &TenantScope,
    origin: &Origin,
    call: &str,
    action: &str,
    input: CallControl,
) -> Result<String, ControlError> {
    if scope.visibility() != &crate::store::Visibility::default() {
        return Err(ControlError::Forbidden(
            "call actions are for supervisors of the whole tenant (this one sees some teams or locations)",
        ));
    }
    if call.is_empty() || call.len() > 200 || call.chars().any(char::is_control) {
        return Err(ControlError::BadRequest(
            "a call id is one line of at most 200 characters".into(),
        ));
    }
    let command = call_command(call, action, input)?;
    carry_out(
        app,
        scope,
        origin,
        command,
        &format!("call.{action}"),
        ("call", call),
        call,
        None,
    )
    .await
}

/// After the PBX got new configuration from Monti (`monti asterisk export`): has it reload,
/// through the tenant's connector.
pub async fn reload(app: Telephony<'_>, scope: &TenantScope, origin: &Origin) -> Result<String, ControlError> {
    carry_out(
        app,
        scope,
        origin,
        Command::Reload,
        "telephony.reload",
        ("telephony", "pbx"),
        "pbx",
        None,
    )
    .await
}

/// A configuration file Monti writes for the tenant's Asterisk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFile {
    Pjsip,
    Queues,
    Extensions,
}

impl ConfigFile {
    pub const ALL: [ConfigFile; 3] = [ConfigFile::Pjsip, ConfigFile::Queues, ConfigFile::Extensions];

    pub fn name(self) -> &'static str {
        match self {
            ConfigFile::Pjsip => "pjsip.conf",
            ConfigFile::Queues => "queues.conf",
            ConfigFile::Extensions => "extensions.conf",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The tenant's telephony as Asterisk configuration files. They hold the endpoints' passwords,
/// so every export is audited, from wherever it is asked for.
pub async fn export_config(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    files: &[ConfigFile],
) -> crate::store::StoreResult<Vec<(ConfigFile, String)>> {
    use crate::asterisk::config;
    let telephony = config::load(store, scope).await?;
    let rendered: Vec<(ConfigFile, String)> = files
        .iter()
        .map(|&file| {
            let text = match file {
                ConfigFile::Pjsip => config::pjsip_conf(&telephony),
                ConfigFile::Queues => config::queues_conf(&telephony),
                ConfigFile::Extensions => config::extensions_conf(&telephony),
            };
            (file, text)
        })
        .collect();
    for file in files {
        let event = AuditEvent::in_tenant(scope, "telephony.export", Outcome::Success).target("telephony", file.name());
        audit::record(store, event, origin).await;
    }
    Ok(rendered)
}
