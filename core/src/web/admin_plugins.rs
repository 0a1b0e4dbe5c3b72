//! The tenant's plugins in the admin UI: upload (install or upgrade), a configuration form made
//! from the plugin's JSON Schema, enable, disable, remove, and what the last runs did.

use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, extract::DefaultBodyLimit};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::admin::tenant_scope;
use super::page_error::{PageError, PageResult};
use super::session::SignedIn;
use super::ui::render_view;
use crate::auth::{Action, Area, permits};
use crate::service::{
    self,
    plugins::{Change, PluginContext, PluginError},
};
use crate::store::StoreError;
use crate::store::plugins::{self, Installation};
use std::sync::Arc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/plugins",
            get(list_page).post(upload).layer(DefaultBodyLimit::max(
                super::plugins_api::MAX_COMPONENT_BYTES + 64 * 1024,
            )),
        )
        .route("/admin/plugins/{id}", get(detail_page).post(save_config))
        .route("/admin/plugins/{id}/enable", post(enable))
        .route("/admin/plugins/{id}/disable", post(disable))
        .route("/admin/plugins/{id}/remove", post(remove))
        .route("/admin/plugins/{id}/secrets", post(save_secrets))
        .route("/admin/plugins/{id}/dead-letters/{letter}/replay", post(replay))
}

fn installation_json(i: &Installation) -> Value {
    json!({
        "id": i.id, "plugin_id": i.plugin_id, "version": i.version, "enabled": i.enabled,
        "invocations": i.invocations, "failures": i.failures, "last_error": i.last_error,
        "logs": serde_json::from_str::<Value>(&i.last_logs).unwrap_or_default(),
        "digest": i.digest,
    })
}

async fn list_page(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    render_list(&app, &signed, None, StatusCode::OK).await
}

/// `admin/plugins.html`: the tenant's installations and the upload form.
#[derive(Serialize)]
struct PluginsView {
    plugins: Vec<Value>,
    can_write: bool,
    message: Option<String>,
}

async fn render_list(app: &AppState, signed: &SignedIn, message: Option<String>, status: StatusCode) -> PageResult {
    let scope = tenant_scope(app, signed, Action::Read, Area::Configuration)?;
    let view = PluginsView {
        plugins: plugins::list(&app.store, &scope)
            .await?
            .iter()
            .map(installation_json)
            .collect(),
        can_write: permits(scope.role(), Action::Write, Area::Configuration),
        message,
    };
    Ok(render_view(app, &signed.page, "admin/plugins.html", &view, status))
}

async fn upload(
    State(app): State<AppState>,
    signed: SignedIn,
    form: Result<Multipart, MultipartRejection>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Configuration)?;
    let t = signed.page.locale;
    // Not a file upload at all (no multipart body): the list again, asking for a file.
    let mut form = match form {
        Ok(form) => form,
        Err(rejection) => {
            return render_list(&app, &signed, Some(t.text("plugins.choose_file")), rejection.status()).await;
        }
    };
    let mut component = None;
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("component") {
            component = field.bytes().await.ok();
        }
    }
    let Some(bytes) = component.filter(|b| !b.is_empty()) else {
        return render_list(
            &app,
            &signed,
            Some(t.text("plugins.choose_file")),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let installed = match PluginContext::running(&app.store, &app.plugins) {
        Ok(ctx) => service::plugins::install(&ctx, &scope, &signed.page.origin, Arc::from(&bytes[..]), None).await,
        Err(e) => Err(e),
    };
    match installed {
        Ok(done) => Ok(Redirect::to(&format!("/admin/plugins/{}", done.installation.plugin_id)).into_response()),
        Err(PluginError::NotInstallable(why)) => {
            let message = format!("{} {}", t.text("plugins.not_installable"), why);
            render_list(&app, &signed, Some(message), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(PluginError::Refused(why)) => render_list(&app, &signed, Some(why), StatusCode::FORBIDDEN).await,
        Err(PluginError::TooLarge(why)) => render_list(&app, &signed, Some(why), StatusCode::PAYLOAD_TOO_LARGE).await,
        Err(other) => Err(other.into()),
    }
}

/// One configuration field as the form shows it.
fn form_fields(schema: Option<&Value>, config: &Value, errors: &Map<String, Value>) -> Vec<Value> {
    let Some(properties) = schema.and_then(|s| s.get("properties")).and_then(Value::as_object) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    properties
        .iter()
        .map(|(name, property)| {
            let kind = if property.get("enum").is_some() {
                "choice"
            } else {
                property.get("type").and_then(Value::as_str).unwrap_or("string")
            };
            let value = config.get(name).or_else(|| property.get("default")).cloned();
            json!({
                "name": name,
                "label": property.get("title").or_else(|| property.get("description")).and_then(Value::as_str).unwrap_or(name),
                "kind": kind,
                "value": match &value { Some(Value::String(s)) => s.clone(), Some(Value::Null) | None => String::new(), Some(v) => v.to_string() },
                "checked": value == Some(Value::Bool(true)),
                "choices": property.get("enum").cloned().unwrap_or(Value::Array(Vec::new())),
                "minimum": property.get("minimum"), "maximum": property.get("maximum"),
                "required": required.contains(&name.as_str()),
                "error": errors.get(name),
            })
        })
        .collect()
}

/// `admin/plugin.html`: one installation, its configuration form, secrets, status and dead
/// letters.
#[derive(Serialize)]
struct PluginView {
    plugin: Value,
    manifest: crate::plugins::manifest::Manifest,
    /// What it asks for that the tenant has not approved, as it will connect.
    pending: Vec<String>,
    http_destinations: Vec<Value>,
    stream_destinations: Vec<Value>,
    last_disconnect: Option<Value>,
    /// What the plugin reports about itself, as label and value.
    status: Vec<(String, String)>,
    fields: Vec<Value>,
    has_errors: bool,
    can_write: bool,
    secrets: Vec<Value>,
    dead_letters: Vec<Value>,
}

async fn render_detail(
    app: &AppState,
    signed: &SignedIn,
    id: &str,
    shown_config: Option<Value>,
    errors: Map<String, Value>,
    status: StatusCode,
) -> PageResult {
    let scope = tenant_scope(app, signed, Action::Read, Area::Configuration)?;
    let installed = match plugins::get(&app.store, &scope, id).await {
        Ok(i) => i,
        Err(StoreError::NotFound { .. }) => {
            let message = signed.page.locale.text("plugins.not_found");
            return Err(PageError::refused(StatusCode::NOT_FOUND, message));
        }
        Err(e) => return Err(e.into()),
    };
    let manifest = plugins::manifest(&app.store, &installed.digest).await?;
    let config = shown_config.unwrap_or_else(|| serde_json::from_str(&installed.config).unwrap_or_default());
    let pending = if installed.enabled {
        Vec::new()
    } else {
        service::plugins::pending_capabilities(&app.store, &installed)
            .await
            .unwrap_or_default()
    };
    let stored_config: Value = serde_json::from_str(&installed.config).unwrap_or_default();
    let configured = |list: &[String]| -> Vec<Value> {
        list.iter()
            .map(|template| {
                let filled = crate::plugins::manifest::expand(template, &stored_config);
                json!({ "template": template, "configured": filled })
            })
            .collect()
    };
    let last_disconnect = app
        .plugins
        .last_disconnect(scope.tenant(), &installed.id)
        .map(|d| d.view());
    // What the plugin reports about itself, as label → value (times as dates).
    let reported: Vec<(String, String)> = plugins::status(&app.store, scope.tenant(), &installed.id)
        .await
        .ok()
        .flatten()
        .and_then(|v| v.as_object().cloned())
        .map(|object| {
            object
                .into_iter()
                .map(|(key, value)| {
                    let shown = match (&value, key.as_str()) {
                        (Value::Number(n), "since") => n
                            .as_i64()
                            .filter(|ms| *ms > 0)
                            .map_or_else(|| "–".to_owned(), crate::domain::time::to_rfc3339),
                        (Value::String(s), _) => s.clone(),
                        (Value::Null, _) => "–".to_owned(),
                        (other, _) => other.to_string(),
                    };
                    (key.replace('_', " "), shown)
                })
                .collect()
        })
        .unwrap_or_default();
    let secrets_set = plugins::secret_names(&app.store, &scope, &installed.id)
        .await
        .unwrap_or_default();
    let secrets: Vec<Value> = manifest
        .capabilities
        .secrets
        .iter()
        .map(
            |(name, destination)| json!({ "name": name, "destination": destination, "set": secrets_set.contains(name) }),
        )
        .collect();
    let letters: Vec<Value> = plugins::dead_letters(&app.store, &scope, &installed.id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let events = serde_json::from_str::<Vec<Value>>(&d.events)
                .map(|e| e.len())
                .unwrap_or(0);
            json!({ "id": d.id, "error": d.error, "attempts": d.attempts, "events": events,
                    "at": crate::domain::time::to_rfc3339(d.updated_at) })
        })
        .collect();
    let view = PluginView {
        plugin: installation_json(&installed),
        http_destinations: configured(&manifest.capabilities.http),
        stream_destinations: configured(&manifest.capabilities.streams),
        fields: form_fields(manifest.config.as_ref(), &config, &errors),
        manifest,
        pending,
        last_disconnect,
        status: reported,
        has_errors: !errors.is_empty(),
        can_write: permits(scope.role(), Action::Write, Area::Configuration),
        secrets,
        dead_letters: letters,
    };
    Ok(render_view(app, &signed.page, "admin/plugin.html", &view, status))
}

async fn detail_page(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    render_detail(&app, &signed, &id, None, Map::new(), StatusCode::OK).await
}

/// The form's fields as the JSON the schema describes; unreadable numbers are errors.
fn config_from_form(schema: Option<&Value>, form: &[(String, String)]) -> (Value, Map<String, Value>) {
    let mut config = Map::new();
    let mut errors = Map::new();
    let properties = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (name, property) in &properties {
        let given = form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
        let kind = property.get("type").and_then(Value::as_str).unwrap_or("string");
        let value = match (kind, given) {
            ("boolean", given) => Some(Value::Bool(given.is_some())),
            (_, None | Some("")) => None,
            ("integer", Some(text)) => match text.parse::<i64>() {
                Ok(n) => Some(Value::from(n)),
                Err(_) => {
                    errors.insert(name.clone(), Value::from("a whole number"));
                    None
                }
            },
            ("number", Some(text)) => match text.parse::<f64>() {
                Ok(n) => Some(Value::from(n)),
                Err(_) => {
                    errors.insert(name.clone(), Value::from("a number"));
                    None
                }
            },
            (_, Some(text)) => Some(Value::from(text)),
        };
        if let Some(value) = value {
            config.insert(name.clone(), value);
        }
    }
    (Value::Object(config), errors)
}

/// Config field errors from the service's pointers (`config/port` → `port`).
fn config_errors(invalid: crate::domain::Validation) -> Map<String, Value> {
    invalid
        .errors
        .into_iter()
        .map(|e| {
            let field = e.pointer.trim_start_matches("/").trim_start_matches("config/");
            (field.trim_start_matches('/').to_owned(), Value::from(e.detail))
        })
        .collect()
}

async fn save_config(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Configuration)?;
    let installed = plugins::get(&app.store, &scope, &id).await?;
    let manifest = plugins::manifest(&app.store, &installed.digest).await?;
    let (config, unreadable) = config_from_form(manifest.config.as_ref(), &form);
    let errors = if unreadable.is_empty() {
        let change = Change {
            config: Some(config.clone()),
            ..Change::default()
        };
        match service::plugins::update(app.running_plugins(), &scope, &signed.page.origin, &id, change).await {
            Ok(saved) => return Ok(Redirect::to(&format!("/admin/plugins/{}", saved.plugin_id)).into_response()),
            Err(PluginError::Invalid(invalid)) => config_errors(invalid),
            Err(e) => return Err(e.into()),
        }
    } else {
        unreadable
    };
    render_detail(
        &app,
        &signed,
        &id,
        Some(config),
        errors,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// Enables (with the tenant's approval of what the plugin asks for, given by the button that
/// lists it) or disables an installation.
async fn switch(app: &AppState, signed: &SignedIn, id: &str, enabled: bool, approve: bool) -> PageResult {
    let scope = tenant_scope(app, signed, Action::Write, Area::Configuration)?;
    let change = Change {
        enabled: Some(enabled),
        approve_capabilities: approve,
        ..Change::default()
    };
    match service::plugins::update(app.running_plugins(), &scope, &signed.page.origin, id, change).await {
        Ok(i) => Ok(Redirect::to(&format!("/admin/plugins/{}", i.plugin_id)).into_response()),
        // Only a configuration the plugin accepts may run.
        Err(PluginError::Invalid(invalid)) => {
            let errors = config_errors(invalid);
            render_detail(app, signed, id, None, errors, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(PluginError::NeedsApproval(_)) => {
            render_detail(app, signed, id, None, Map::new(), StatusCode::CONFLICT).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets the secrets given (empty fields keep what is stored); values are never shown again.
async fn save_secrets(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Configuration)?;
    let secrets = form
        .into_iter()
        .filter(|(name, value)| name != super::session::CSRF_FIELD && !value.is_empty())
        .collect();
    let change = Change {
        secrets,
        ..Change::default()
    };
    match service::plugins::update(app.running_plugins(), &scope, &signed.page.origin, &id, change).await {
        Ok(installed) => Ok(Redirect::to(&format!("/admin/plugins/{}", installed.plugin_id)).into_response()),
        Err(PluginError::Invalid(invalid)) => {
            let detail: Vec<String> = invalid.errors.into_iter().map(|e| e.detail).collect();
            Err(PageError::refused(StatusCode::UNPROCESSABLE_ENTITY, detail.join("; ")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs a dead letter again (see the API's replay).
async fn replay(
    State(app): State<AppState>,
    signed: SignedIn,
    Path((id, letter)): Path<(String, String)>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Configuration)?;
    // Kept with its new error when it fails again: the page shows it.
    service::plugins::replay(app.running_plugins(), &scope, &signed.page.origin, &id, &letter).await?;
    Ok(Redirect::to(&format!("/admin/plugins/{id}")).into_response())
}

async fn enable(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let approve = form.iter().any(|(k, v)| k == "approve" && v == "1");
    switch(&app, &signed, &id, true, approve).await
}

async fn disable(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    switch(&app, &signed, &id, false, false).await
}

async fn remove(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Configuration)?;
    service::plugins::remove(app.running_plugins(), &scope, &signed.page.origin, &id).await?;
    Ok(Redirect::to("/admin/plugins").into_response())
}
