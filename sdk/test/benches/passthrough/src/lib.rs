//! Emits every event it receives, re-sourced: what a plugin costs when it does next to nothing.

use monti_plugin_sdk::{Event, EventHandler, PluginError};

#[derive(Default)]
struct PassThrough;

impl EventHandler for PassThrough {
    fn handle_events(&mut self, batch: Vec<Event>) -> Result<(), PluginError> {
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
        Ok(monti_plugin_sdk::emit(&out)?)
    }
}

monti_plugin_sdk::event_handler!(PassThrough);
monti_plugin_sdk::manifest!("../monti-plugin.toml");
