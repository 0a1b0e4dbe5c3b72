//! Emits every event it receives, re-sourced: what a plugin costs when it does next to nothing.

use monti_plugin_sdk::{Event, EventHandler, PluginError};

struct PassThrough;

impl EventHandler for PassThrough {
    fn handle_events(batch: Vec<Event>) -> Result<(), PluginError> {
        if batch.is_empty() {
            return Ok(());
        }
        let out: Vec<Event> = batch
            .into_iter()
            .map(|mut e| {
                e.source = "plugin:passthrough".into();
                e
            })
            .collect();
        monti_plugin_sdk::emit(&out).map_err(|e| PluginError::retryable(format!("{e:?}")))
    }
}

monti_plugin_sdk::event_handler!(PassThrough);
monti_plugin_sdk::manifest!("../monti-plugin.toml");
