//! Starting Monti: the application state built from an opened store and a configuration, and
//! every background worker that keeps it going (live plugin streams, alert evaluation and
//! notification delivery, the mail outbox, report days made ahead, scheduled reports, package
//! collection, history retention). The command line, the demo and the tests start the server
//! through here; the web layer only routes.

use std::sync::Arc;

use axum::body::Bytes;

use crate::assets::Assets;

use crate::config::Config;
use crate::store::Store;
use crate::web::AppState;

/// Builds the application and starts its workers. Workers hold weak references where they
/// can, so they end with the application.
pub fn start(store: Store, config: Config) -> anyhow::Result<AppState> {
    let state = build(store.clone(), config)?;
    state.live.start_plugin_streams();
    state.rules.start(state.live.clone());
    Arc::new(crate::rules::notify::Delivery::new(
        store.clone(),
        state.mailer.clone(),
        state.config.plugins.private_networks.clone(),
    ))
    .start();
    crate::mail::outbox::Outbox::new(store.clone(), state.mailer.clone()).start();
    crate::service::report_days::ReportDays::new(store.clone(), state.live.clone(), state.config.reports.days_ahead)
        .start();
    crate::service::saved_reports::Scheduler::new(store.clone(), state.live.clone(), state.config.public_url()).start();
    crate::plugins::start_package_collection(store.clone());
    crate::live::service::spawn_history_trimmer(store, state.config.live.retention);
    Ok(state)
}

/// The application's state and services; nothing runs yet.
pub fn build(store: Store, config: Config) -> anyhow::Result<AppState> {
    let assets = Assets::load();
    let templates = crate::assets::templates(&assets, Some(&config.data_dir.join("templates")))?;
    let openapi_json = Bytes::from(serde_json::to_vec(&crate::web::openapi::document())?);
    let list_cache = Arc::new(crate::web::list_cache::ListCache::new(config.http.list_cache_bytes));
    let mailer = crate::mail::Mailer::from_config(&config.smtp)?.map(Arc::new);
    let plugins = Arc::new(crate::plugins::dispatch::Dispatcher::new(
        store.clone(),
        config.plugins.clone(),
    ));
    let live = Arc::new(crate::live::service::LiveService::new(
        store.clone(),
        config.live.tick,
        config.live.writer_queue,
        plugins.clone(),
    ));
    let rules = crate::rules::service::RuleService::new(
        store.clone(),
        config.public_url(),
        config.live.alert_notify_interval,
        plugins.clone(),
    );
    Ok(AppState {
        store,
        templates: Arc::new(templates),
        assets: Arc::new(assets),
        metrics: crate::telemetry::metrics(),
        openapi_json,
        list_cache,
        tokens: Arc::new(crate::auth::TokenCache::new(config.auth.token_cache_ttl)),
        limits: Arc::new(crate::auth::ratelimit::Limits::new(&config.auth)),
        oidc: Arc::new(crate::auth::oidc::OidcRegistry::new(&config)),
        jwt: Arc::new(crate::auth::jwt::JwtVerifier::new(&config)),
        shield: Arc::new(crate::web::shield::Shield::new(&config.http)),
        mailer,
        live,
        plugins,
        rules,
        config: Arc::new(config),
    })
}
