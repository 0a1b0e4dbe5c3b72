//! The tenant's plugins in the admin UI: upload (install or upgrade), a configuration form made
//! from the plugin's JSON Schema, enable, disable, remove, and what the last runs did.

use axum::Router;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, extract::DefaultBodyLimit};
use serde_json::{Map, Value, json};

use super::AppState;
use super::admin::{tenant_scope, unavailable};
use super::session::SignedIn;
use super::ui::render_page;
use crate::auth::{Action, Area, permits};
use crate::service::{
    self,
    plugins::{PluginContext, PluginError},
};
use crate::store::audit::{self, AuditEvent, Outcome};
use crate::store::plugins::{self, Installation};
use crate::store::{StoreError, TenantScope};
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

async fn audit_action(app: &AppState, signed: &SignedIn, scope: &TenantScope, action: &str, target: &str) {
    let event = AuditEvent::in_tenant(scope, action, Outcome::Success).target("plugin", target);
    audit::record(&app.store, event, &signed.page.origin).await;
}

async fn list_page(State(app): State<AppState>, signed: SignedIn) -> Response {
    render_list(&app, &signed, None, StatusCode::OK).await
}

async fn render_list(app: &AppState, signed: &SignedIn, message: Option<String>, status: StatusCode) -> Response {
    let scope = match tenant_scope(app, signed, Action::Read, Area::Configuration) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let installed = match plugins::list(&app.store, &scope).await {
        Ok(i) => i,
        Err(e) => return unavailable(app, signed, &e),
    };
    let mut context = tera::Context::new();
    context.insert("plugins", &installed.iter().map(installation_json).collect::<Vec<_>>());
    context.insert("can_write", &permits(scope.role(), Action::Write, Area::Configuration));
    context.insert("message", &message);
    render_page(app, &signed.page, "admin/plugins.html", context, status)
}

async fn upload(State(app): State<AppState>, signed: SignedIn, mut form: Multipart) -> Response {
    let scope = match tenant_scope(&app, &signed, Action::Write, Area::Configuration) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let t = signed.page.locale;
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
        Ok(done) => Redirect::to(&format!("/admin/plugins/{}", done.installation.plugin_id)).into_response(),
        Err(PluginError::NotInstallable(why)) => {
            let message = format!("{} {}", t.text("plugins.not_installable"), why);
            render_list(&app, &signed, Some(message), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(PluginError::Refused(why)) => render_list(&app, &signed, Some(why), StatusCode::FORBIDDEN).await,
        Err(PluginError::TooLarge(why)) => render_list(&app, &signed, Some(why), StatusCode::PAYLOAD_TOO_LARGE).await,
        Err(PluginError::Store(e)) => unavailable(&app, &signed, &e),
        Err(e @ PluginError::Unavailable(_)) => unavailable(&app, &signed, &e),
    }
}

/// Schema problems by form field.
fn field_errors(problems: Vec<crate::plugins::config::Problem>) -> Map<String, Value> {
    problems
        .into_iter()
        .map(|p| (p.pointer.trim_start_matches('/').to_owned(), Value::from(p.message)))
        .collect()
}

/// Every destination a plugin's capabilities name, longest first (so a template is never
/// replaced inside a longer one).
fn destinations(capabilities: &crate::plugins::manifest::Capabilities) -> Vec<String> {
    let mut all: Vec<String> = capabilities
        .http
        .iter()
        .chain(&capabilities.streams)
        .chain(capabilities.secrets.values())
        .filter(|d| d.contains("${"))
        .cloned()
        .collect();
    all.sort_by_key(|d| std::cmp::Reverse(d.len()));
    all.dedup();
    all
}

/// A capability in words with its destination as configured (`tcp://pbx.example:5038`
/// rather than `tcp://${host}:${port}`); a template the configuration does not fill stays.
fn with_configured(line: &str, templates: &[String], config: &Value) -> String {
    let mut line = line.to_owned();
    for template in templates {
        if line.contains(template.as_str())
            && let Some(filled) = crate::plugins::manifest::expand(template, config)
        {
            line = line.replace(template.as_str(), &filled);
        }
    }
    line
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

async fn render_detail(
    app: &AppState,
    signed: &SignedIn,
    id: &str,
    shown_config: Option<Value>,
    errors: Map<String, Value>,
    status: StatusCode,
) -> Response {
    let scope = match tenant_scope(app, signed, Action::Read, Area::Configuration) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let installed = match plugins::get(&app.store, &scope, id).await {
        Ok(i) => i,
        Err(StoreError::NotFound { .. }) => {
            return super::ui::error_page(
                app,
                &signed.page.error_headers,
                StatusCode::NOT_FOUND,
                &signed.page.locale.text("plugins.not_found"),
            );
        }
        Err(e) => return unavailable(app, signed, &e),
    };
    let manifest = match plugins::manifest(&app.store, &installed.digest).await {
        Ok(m) => m,
        Err(e) => return unavailable(app, signed, &e),
    };
    let config = shown_config.unwrap_or_else(|| serde_json::from_str(&installed.config).unwrap_or_default());
    let mut context = tera::Context::new();
    context.insert("plugin", &installation_json(&installed));
    context.insert("manifest", &manifest);
    let pending = if installed.enabled {
        Vec::new()
    } else {
        plugins::unapproved(&app.store, &installed).await.unwrap_or_default()
    };
    // What the tenant approves is where this installation will connect, not a template.
    let stored_config: Value = serde_json::from_str(&installed.config).unwrap_or_default();
    let templates = destinations(&manifest.capabilities);
    let pending: Vec<String> = pending
        .into_iter()
        .map(|line| with_configured(&line, &templates, &stored_config))
        .collect();
    context.insert("pending", &pending);
    let configured = |list: &[String]| -> Vec<Value> {
        list.iter()
            .map(|template| {
                let filled = crate::plugins::manifest::expand(template, &stored_config);
                json!({ "template": template, "configured": filled })
            })
            .collect()
    };
    context.insert("http_destinations", &configured(&manifest.capabilities.http));
    context.insert("stream_destinations", &configured(&manifest.capabilities.streams));
    let disconnect = app
        .plugins
        .last_disconnect(scope.tenant(), &installed.id)
        .map(|d| d.view());
    context.insert("last_disconnect", &disconnect);
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
    context.insert("status", &reported);
    context.insert("fields", &form_fields(manifest.config.as_ref(), &config, &errors));
    context.insert("has_errors", &!errors.is_empty());
    context.insert("can_write", &permits(scope.role(), Action::Write, Area::Configuration));
    let configured = plugins::secret_names(&app.store, &scope, &installed.id)
        .await
        .unwrap_or_default();
    let secrets: Vec<Value> = manifest
        .capabilities
        .secrets
        .iter()
        .map(
            |(name, destination)| json!({ "name": name, "destination": destination, "set": configured.contains(name) }),
        )
        .collect();
    context.insert("secrets", &secrets);
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
    context.insert("dead_letters", &letters);
    render_page(app, &signed.page, "admin/plugin.html", context, status)
}

async fn detail_page(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> Response {
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

async fn save_config(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let scope = match tenant_scope(&app, &signed, Action::Write, Area::Configuration) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let Ok(installed) = plugins::get(&app.store, &scope, &id).await else {
        return render_detail(&app, &signed, &id, None, Map::new(), StatusCode::NOT_FOUND).await;
    };
    let manifest = match plugins::manifest(&app.store, &installed.digest).await {
        Ok(m) => m,
        Err(e) => return unavailable(&app, &signed, &e),
    };
    let (config, mut errors) = config_from_form(manifest.config.as_ref(), &form);
    if errors.is_empty()
        && let Some(schema) = &manifest.config
        && let Err(problems) = crate::plugins::config::check(schema, &config)
    {
        errors.extend(field_errors(problems));
    }
    if !errors.is_empty() {
        return render_detail(
            &app,
            &signed,
            &id,
            Some(config),
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    match plugins::set_config(&app.store, &scope, &id, &config.to_string()).await {
        Ok(saved) => {
            let event = AuditEvent::in_tenant(&scope, "plugin.update", Outcome::Success)
                .target("plugin", &saved.id)
                .change(serde_json::from_str(&installed.config).ok(), Some(config));
            audit::record(&app.store, event, &signed.page.origin).await;
            Redirect::to(&format!("/admin/plugins/{}", saved.plugin_id)).into_response()
        }
        Err(e) => unavailable(&app, &signed, &e),
    }
}

/// Enables (with the tenant's approval of what the plugin asks for, given by the button that
/// lists it) or disables an installation.
async fn switch(app: &AppState, signed: &SignedIn, id: &str, enabled: bool, approve: bool) -> Response {
    let scope = match tenant_scope(app, signed, Action::Write, Area::Configuration) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    if enabled {
        // Only a configuration the plugin accepts may run.
        let checked = async {
            let installed = plugins::get(&app.store, &scope, id).await?;
            let manifest = plugins::manifest(&app.store, &installed.digest).await?;
            let config: Value = serde_json::from_str(&installed.config).unwrap_or_default();
            Ok::<_, StoreError>(
                manifest
                    .config
                    .as_ref()
                    .map(|schema| crate::plugins::config::check(schema, &config)),
            )
        }
        .await;
        if let Ok(Some(Err(problems))) = checked {
            return render_detail(
                app,
                signed,
                id,
                None,
                field_errors(problems),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        let approval = async {
            let installed = plugins::get(&app.store, &scope, id).await?;
            let pending = plugins::unapproved(&app.store, &installed).await?;
            if !pending.is_empty() && approve {
                plugins::approve(&app.store, &scope, id).await?;
                audit_action(app, signed, &scope, "plugin.approve", &installed.id).await;
                return Ok(Vec::new());
            }
            Ok::<_, StoreError>(pending)
        }
        .await;
        match approval {
            Ok(pending) if pending.is_empty() => {}
            Ok(_) => return render_detail(app, signed, id, None, Map::new(), StatusCode::CONFLICT).await,
            Err(e) => return unavailable(app, signed, &e),
        }
    }
    let changed = plugins::set_enabled(&app.store, &scope, id, enabled).await;
    app.plugins.forget_installations(scope.tenant_id());
    match changed {
        Ok(i) => {
            let action = if enabled { "plugin.enable" } else { "plugin.disable" };
            audit_action(app, signed, &scope, action, &i.id).await;
            Redirect::to(&format!("/admin/plugins/{}", i.plugin_id)).into_response()
        }
        Err(StoreError::NotFound { .. }) => {
            render_detail(app, signed, id, None, Map::new(), StatusCode::NOT_FOUND).await
        }
        Err(e) => unavailable(app, signed, &e),
    }
}

/// Sets the secrets given (empty fields keep what is stored); values are never shown again.
async fn save_secrets(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let scope = match tenant_scope(&app, &signed, Action::Write, Area::Configuration) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let saved = async {
        let installed = plugins::get(&app.store, &scope, &id).await?;
        let manifest = plugins::manifest(&app.store, &installed.digest).await?;
        let mut set = Vec::new();
        for (name, value) in &form {
            if manifest.capabilities.secrets.contains_key(name) && !value.is_empty() && value.len() <= 8192 {
                plugins::set_secret(&app.store, &scope, &installed.id, name, value).await?;
                set.push(name.clone());
            }
        }
        Ok::<_, StoreError>((installed, set))
    }
    .await;
    match saved {
        Ok((installed, set)) => {
            if !set.is_empty() {
                let event = AuditEvent::in_tenant(&scope, "plugin.secret.set", Outcome::Success)
                    .target("plugin", &installed.id)
                    .detail(format!("secrets set: {}", set.join(", ")));
                audit::record(&app.store, event, &signed.page.origin).await;
            }
            Redirect::to(&format!("/admin/plugins/{}", installed.plugin_id)).into_response()
        }
        Err(StoreError::NotFound { .. }) => {
            render_detail(&app, &signed, &id, None, Map::new(), StatusCode::NOT_FOUND).await
        }
        Err(e) => unavailable(&app, &signed, &e),
    }
}

/// Runs a dead letter again (see the API's replay).
async fn replay(State(app): State<AppState>, signed: SignedIn, Path((id, letter)): Path<(String, String)>) -> Response {
    let scope = match tenant_scope(&app, &signed, Action::Write, Area::Configuration) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let Ok(installed) = plugins::get(&app.store, &scope, &id).await else {
        return render_detail(&app, &signed, &id, None, Map::new(), StatusCode::NOT_FOUND).await;
    };
    let ran = match app.plugins.replay(scope.tenant(), &installed.id, &letter).await {
        Ok(ran) => ran,
        Err(StoreError::NotFound { .. }) => {
            return render_detail(&app, &signed, &id, None, Map::new(), StatusCode::NOT_FOUND).await;
        }
        Err(e) => return unavailable(&app, &signed, &e),
    };
    let outcome = if ran.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    let event = AuditEvent::in_tenant(&scope, "plugin.dead_letter.replay", outcome)
        .target("plugin", &installed.id)
        .detail(format!("dead letter {letter}"));
    audit::record(&app.store, event, &signed.page.origin).await;
    if let Ok(emitted) = ran
        && !emitted.is_empty()
        && let Err(e) = app.live.accept_from_plugin(&scope, emitted).await
    {
        return unavailable(&app, &signed, &e);
    }
    Redirect::to(&format!("/admin/plugins/{}", installed.plugin_id)).into_response()
}

async fn enable(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let approve = form.iter().any(|(k, v)| k == "approve" && v == "1");
    switch(&app, &signed, &id, true, approve).await
}

async fn disable(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> Response {
    switch(&app, &signed, &id, false, false).await
}

async fn remove(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> Response {
    let scope = match tenant_scope(&app, &signed, Action::Write, Area::Configuration) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let removed = plugins::remove(&app.store, &scope, &id).await;
    app.plugins.forget_installations(scope.tenant_id());
    match removed {
        Ok(removed) => {
            audit_action(&app, &signed, &scope, "plugin.remove", &removed.id).await;
            Redirect::to("/admin/plugins").into_response()
        }
        Err(StoreError::NotFound { .. }) => {
            render_detail(&app, &signed, &id, None, Map::new(), StatusCode::NOT_FOUND).await
        }
        Err(e) => unavailable(&app, &signed, &e),
    }
}
