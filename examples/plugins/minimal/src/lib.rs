//! Counts the calls each agent ends (in the installation's key-value store) and, every
//! `pause_after` calls, puts the agent on a short break by emitting a `paused` state — a toy
//! "wellbeing" rule, enough to show events in, storage, configuration, logging and events out.

use monti_plugin_sdk::{
    AgentState, AgentStateChange, ConfigCache, Event, EventBody, EventHandler, PluginError, info, kv, warn,
};

#[derive(serde::Deserialize)]
struct Config {
    /// Calls before a break.
    #[serde(default = "default_pause_after")]
    pause_after: u32,
}

fn default_pause_after() -> u32 {
    10
}

/// What the instance keeps between calls: the configuration, parsed once (the counts live in
/// the store, which outlasts the instance).
#[derive(Default)]
struct Wellbeing {
    config: ConfigCache<Config>,
}

impl EventHandler for Wellbeing {
    fn handle_events(&mut self, batch: Vec<Event>) -> Result<(), PluginError> {
        let pause_after = self.config.get()?.pause_after;
        let mut breaks = Vec::new();
        for event in &batch {
            let EventBody::CallEnd(end) = &event.body else {
                continue;
            };
            let key = format!("calls/{}", end.agent);
            let calls = kv::get_string(&key).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0) + 1;
            if calls >= pause_after {
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
            } else if let Err(error) = kv::set(&key, calls.to_string()) {
                warn!("cannot store the count: {error}");
            }
        }
        if !breaks.is_empty() {
            monti_plugin_sdk::emit(&breaks)?;
        }
        if batch.iter().any(|e| e.id == "panic-please") {
            panic!("asked to panic");
        }
        Ok(())
    }
}

monti_plugin_sdk::event_handler!(Wellbeing);
monti_plugin_sdk::manifest!("../monti-plugin.toml");
