//! The pass-through plugin of Monti's benchmark, as an Extism plugin: Extism hands a plugin
//! bytes, so the batch travels as JSON with the same fields as the contract's events.

use extism_pdk::{FnResult, Json, plugin_fn};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct AgentStateChange {
    agent: String,
    state: String,
    reason: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    AgentState(AgentStateChange),
}

#[derive(Serialize, Deserialize)]
pub struct Event {
    id: String,
    source: String,
    at_ms: i64,
    body: Body,
}

#[plugin_fn]
pub fn handle_events(Json(batch): Json<Vec<Event>>) -> FnResult<Json<Vec<Event>>> {
    Ok(Json(
        batch
            .into_iter()
            .map(|mut e| {
                e.source = "plugin:passthrough".into();
                e
            })
            .collect(),
    ))
}
