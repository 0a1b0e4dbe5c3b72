//! `/api/v1/plugins`: a tenant admin installs, upgrades, configures, enables, disables and
//! removes plugins. Every change is audited.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde::Deserialize;

use super::AppState;
use super::extract::{ApiJson, Caller, RequestOrigin};
use super::problem::{ApiError, ApiResult};
use crate::auth::{Action, Area};
use crate::service::telephony::ConfigFile;
use crate::service::{
    self,
    plugins::{Change, Installed, PluginContext, Replayed},
};
use crate::store::plugins::{self, Installation};
use std::sync::Arc;

/// Largest component accepted, bytes.
pub const MAX_COMPONENT_BYTES: usize = 32 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list).post(install))
        .route("/plugins/{id}", patch(update).delete(remove).get(read))
        .route("/plugins/{id}/dead-letters", get(dead_letters))
        .route(
            "/plugins/{id}/dead-letters/{letter}/replay",
            axum::routing::post(replay),
        )
        .route("/telephony/asterisk/{file}", get(asterisk_file))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_COMPONENT_BYTES))
}

/// `pjsip.conf`, `queues.conf` or `extensions.conf` of the tenant's telephony. They hold the
/// endpoints' passwords: tenant admins only, and every download is audited.
async fn asterisk_file(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(file): Path<String>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    let Some(wanted) = ConfigFile::from_name(&file) else {
        return Err(ApiError::not_found("pjsip.conf, queues.conf or extensions.conf"));
    };
    let mut files = crate::service::telephony::export_config(&app.store, &scope, &origin, &[wanted]).await?;
    let text = files.pop().map(|(_, text)| text).unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        text,
    )
        .into_response())
}

fn view(i: &Installation) -> serde_json::Value {
    serde_json::json!({
        "id": i.id, "plugin_id": i.plugin_id, "version": i.version, "digest": i.digest,
        "enabled": i.enabled,
        "config": serde_json::from_str::<serde_json::Value>(&i.config).unwrap_or_default(),
        "invocations": i.invocations, "failures": i.failures, "last_error": i.last_error,
        "last_logs": serde_json::from_str::<serde_json::Value>(&i.last_logs).unwrap_or_default(),
        "updated_at": crate::domain::time::to_rfc3339(i.updated_at),
    })
}

async fn list(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Configuration)?;
    let items: Vec<_> = plugins::list(&app.store, &scope).await?.iter().map(view).collect();
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

async fn read(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Configuration)?;
    let installation = plugins::get(&app.store, &scope, &id).await?;
    let mut body = view(&installation);
    body["pending_capabilities"] =
        serde_json::json!(service::plugins::pending_capabilities(&app.store, &installation).await?);
    body["status"] = plugins::status(&app.store, scope.tenant(), &installation.id)
        .await?
        .unwrap_or_default();
    body["last_disconnect"] = serde_json::json!(
        app.plugins
            .last_disconnect(scope.tenant(), &installation.id)
            .map(|d| d.view())
    );
    Ok(axum::Json(body).into_response())
}

/// The body is the component (`Content-Type: application/wasm`). A plugin the tenant has already
/// is upgraded, keeping its configuration and whether it is enabled.
async fn install(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let scope = match caller.tenant(Action::Write, Area::Configuration) {
        Ok(scope) => scope,
        Err(refused) => {
            super::extract::discard_body(body).await;
            return Err(refused);
        }
    };
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !mime.starts_with("application/wasm") {
        super::extract::discard_body(body).await;
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the plugin's component as application/wasm",
        ));
    }
    // Read only now that the caller may install: nobody else makes the server hold 32 MiB.
    let body = axum::body::to_bytes(body, MAX_COMPONENT_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a plugin component may have at most {MAX_COMPONENT_BYTES} bytes"),
        )
    })?;
    let ctx = PluginContext::running(&app.store, &app.plugins)?;
    let Installed {
        installation: installed,
        plugin,
        before,
    } = service::plugins::install(&ctx, &scope, &origin, Arc::from(&body[..]), None).await?;
    let status = if before.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut body = view(&installed);
    body["manifest"] = serde_json::to_value(&plugin.manifest).unwrap_or_default();
    body["pending_capabilities"] =
        serde_json::json!(service::plugins::pending_capabilities(&app.store, &installed).await?);
    Ok((status, axum::Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallationUpdate {
    enabled: Option<bool>,
    config: Option<serde_json::Value>,
    /// Values for the secrets the plugin declares (write-only: never shown again).
    secrets: Option<std::collections::BTreeMap<String, String>>,
    /// With `enabled: true`: approve what the plugin asks for (needed once per capability; an
    /// upgrade asking for more needs it again).
    approve_capabilities: Option<bool>,
}

async fn update(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<InstallationUpdate>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    let input = input?;
    let change = Change {
        enabled: input.enabled,
        config: input.config,
        secrets: input.secrets.unwrap_or_default(),
        approve_capabilities: input.approve_capabilities == Some(true),
    };
    let after = service::plugins::update(app.running_plugins(), &scope, &origin, &id, change).await?;
    let mut body = view(&after);
    body["secrets"] = serde_json::json!(plugins::secret_names(&app.store, &scope, &after.id).await?);
    body["pending_capabilities"] = serde_json::json!(service::plugins::pending_capabilities(&app.store, &after).await?);
    Ok(axum::Json(body).into_response())
}

/// Batches the plugin kept failing on (after its retries), oldest first.
async fn dead_letters(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Configuration)?;
    // Batches are raw events about any agent of the tenant.
    if scope.visibility().is_limited() {
        return Err(ApiError::forbidden(
            "dead letters hold events of the whole tenant: they are for those who see all of it",
        ));
    }
    let items: Vec<serde_json::Value> = plugins::dead_letters(&app.store, &scope, &id)
        .await?
        .into_iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id, "error": d.error, "attempts": d.attempts,
                "events": serde_json::from_str::<serde_json::Value>(&d.events).unwrap_or_default(),
                "created_at": crate::domain::time::to_rfc3339(d.created_at),
                "updated_at": crate::domain::time::to_rfc3339(d.updated_at),
            })
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

/// Runs a dead-lettered batch again; gone when it works, kept (with the new error) when not.
async fn replay(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((id, letter)): Path<(String, String)>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    match service::plugins::replay(app.running_plugins(), &scope, &origin, &id, &letter).await? {
        Replayed::Done { emitted } => {
            Ok(axum::Json(serde_json::json!({ "replayed": true, "emitted": emitted })).into_response())
        }
        Replayed::FailedAgain(error) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the plugin failed again, the dead letter is kept: {error}"),
        )),
    }
}

async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    service::plugins::remove(app.running_plugins(), &scope, &origin, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
