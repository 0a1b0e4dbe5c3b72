//! Counts the calls each agent ends (in the installation's key-value store) and, every
//! `pause_after` calls, puts the agent on a short break by emitting a `paused` state — a toy
//! "wellbeing" rule, enough to show events in, storage, configuration, logging and events out.

use monti_plugin_sdk::{AgentState, AgentStateChange, Event, EventBody, EventHandler, PluginError, info, kv, warn};

#[derive(serde::Deserialize)]
struct Config {
    /// Calls before a break.
    #[serde(default = "default_pause_after")]
    pause_after: u32,
}

fn default_pause_after() -> u32 {
    10
}

struct Wellbeing;

impl EventHandler for Wellbeing {
    fn handle_events(batch: Vec<Event>) -> Result<(), PluginError> {
        let config: Config =
            monti_plugin_sdk::config().map_err(|e| PluginError::permanent(format!("bad configuration: {e}")))?;
        let mut breaks = Vec::new();
        for event in &batch {
            let EventBody::CallEnd(end) = &event.body else {
                continue;
            };
            let key = format!("calls/{}", end.agent);
            let calls = kv::get(&key)
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
                + 1;
            if calls >= config.pause_after {
                info!("agent {} ended {calls} calls: time for a break", end.agent);
                breaks.push(Event {
                    id: format!("wellbeing-{}", event.id),
                    source: "plugin:wellbeing".into(),
                    at_ms: event.at_ms,
                    body: EventBody::AgentState(AgentStateChange {
                        agent: end.agent.clone(),
                        state: AgentState::Paused,
                        reason: Some("wellbeing".into()),
                    }),
                });
                kv::delete(&key);
            } else if let Err(denied) = kv::set(&key, calls.to_string().as_bytes()) {
                warn!("cannot store the count: {denied:?}");
            }
        }
        if !breaks.is_empty() {
            monti_plugin_sdk::emit(&breaks).map_err(|e| PluginError::retryable(format!("{e:?}")))?;
        }
        if batch.iter().any(|e| e.id == "panic-please") {
            panic!("asked to panic");
        }
        Ok(())
    }
}

monti_plugin_sdk::event_handler!(Wellbeing);
monti_plugin_sdk::manifest!("../monti-plugin.toml");
