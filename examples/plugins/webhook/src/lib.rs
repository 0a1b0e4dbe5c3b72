//! A webhook plugin: another system (a CRM, a workforce tool) reports an agent's state with
//! `POST /hooks/{tenant}/{installation}/state` and a JSON body; the plugin checks the caller's
//! token, turns the body into a Monti event and answers `202`.

use monti_plugin_sdk::{
    AgentState, AgentStateChange, ConfigCache, Event, EventBody, IncomingRequest, OutgoingResponse, PluginError,
    Webhook, info,
};

#[derive(serde::Deserialize)]
struct Config {
    #[serde(default)]
    shared_token: Option<String>,
}

#[derive(serde::Deserialize)]
struct Report {
    agent: String,
    state: String,
    #[serde(default)]
    reason: Option<String>,
    /// Unix ms; the request's own time when left out is not known to the plugin, so it is required.
    at_ms: i64,
    id: String,
}

fn answer(status: u16, message: &str) -> OutgoingResponse {
    OutgoingResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::json!({ "message": message }).to_string().into_bytes(),
    }
}

fn state(name: &str) -> Option<AgentState> {
    Some(match name {
        "available" => AgentState::Available,
        "paused" => AgentState::Paused,
        "unavailable" => AgentState::Unavailable,
        "logged_out" => AgentState::LoggedOut,
        _ => return None,
    })
}

#[derive(Default)]
struct StateHook {
    config: ConfigCache<Config>,
}

impl Webhook for StateHook {
    fn handle_request(&mut self, request: IncomingRequest) -> Result<OutgoingResponse, PluginError> {
        let config = self.config.get()?;
        if let Some(expected) = config.shared_token.as_deref().filter(|t| !t.is_empty()) {
            let given = request
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("x-hook-token"))
                .map(|(_, value)| value.as_str());
            if given != Some(expected) {
                return Ok(answer(401, "missing or wrong X-Hook-Token"));
            }
        }
        if request.method != "POST" || request.path.split('?').next() != Some("/state") {
            return Ok(answer(404, "POST /state"));
        }
        let report: Report = match serde_json::from_slice(&request.body) {
            Ok(r) => r,
            Err(e) => return Ok(answer(400, &format!("body: {e}"))),
        };
        let Some(new_state) = state(&report.state) else {
            return Ok(answer(
                422,
                "state must be available, paused, unavailable or logged_out",
            ));
        };
        let event = Event {
            id: report.id,
            source: "plugin:state-hook".into(),
            at_ms: report.at_ms,
            body: EventBody::AgentState(AgentStateChange {
                agent: report.agent.clone(),
                state: new_state,
                reason: report.reason.filter(|_| new_state == AgentState::Paused),
            }),
        };
        monti_plugin_sdk::emit(&[event])?;
        info!("{} is now {}", report.agent, report.state);
        Ok(answer(202, "accepted"))
    }
}

monti_plugin_sdk::webhook!(StateHook);
monti_plugin_sdk::manifest!("../monti-plugin.toml");
