//! Starting Monti: the application state built from an opened store and a configuration, and
//! every background worker that keeps it going (live plugin streams, alert evaluation and
//! notification delivery, package collection, history retention). The command line, the demo
//! and the tests start the server through here; the web layer only routes.

use std::sync::Arc;

use crate::config::Config;
use crate::store::Store;
use crate::web::AppState;

/// Builds the application and starts its workers. Workers hold weak references where they
/// can, so they end with the application.
pub fn start(store: Store, config: Config) -> anyhow::Result<AppState> {
    let state = AppState::new(store.clone(), config)?;
    state.live.start_plugin_streams();
    state.rules.start(state.live.clone());
    Arc::new(crate::rules::notify::Delivery::new(
        store.clone(),
        state.mailer.clone(),
        state.config.plugins.private_networks.clone(),
    ))
    .start();
    crate::plugins::start_package_collection(store.clone());
    crate::live::service::spawn_history_trimmer(store, state.config.live.retention);
    Ok(state)
}
