//! Tenant settings (for its admins) and the installation's tenants (for platform admins).

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::admin::tenant_scope;
use super::page_error::PageResult;
use super::session::SignedIn;
use super::ui::render_view;
use crate::auth::{Action, Area, Principal};
use crate::service::tenants as tenant_service;
use crate::store::oidc_providers::{self, ProviderInput};
use crate::store::{StoreResult, tenants};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/settings", get(settings_page).post(save_settings))
        .route("/admin/settings/recordings", post(save_recording_source))
        .route("/admin/settings/recordings/delete", post(remove_recording_source))
        .route("/admin/settings/sso", post(add_provider))
        .route("/admin/settings/sso/{id}", post(update_provider))
        .route("/admin/settings/sso/{id}/delete", post(delete_provider))
        .route("/platform/tenants", get(tenants_page).post(create_tenant))
        .route("/platform/tenants/{id}/suspend", post(suspend))
        .route("/platform/tenants/{id}/reactivate", post(reactivate))
}

fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim())
}

async fn settings_page(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    settings_view(&app, &signed, None, Map::new(), None, StatusCode::OK).await
}

/// `admin/settings.html`: the tenant's settings and its own sign-in providers.
#[derive(Serialize)]
struct SettingsView {
    /// The tenant, or the values posted when they were refused.
    settings: Value,
    version: i64,
    /// The installation's providers, offered to every tenant.
    providers: Vec<Value>,
    own_providers: Vec<Value>,
    login_url: String,
    roles: [&'static str; 4],
    errors: Map<String, Value>,
    message: Option<String>,
    can_write: bool,
    /// The recording source, or the values posted when they were refused.
    recording_source: Option<Value>,
    /// The directories the operator allows for recordings.
    recording_directories: Vec<String>,
    /// Whether the recordings section is shown (who may see the history).
    sees_recordings: bool,
}

async fn settings_view(
    app: &AppState,
    signed: &SignedIn,
    values: Option<Value>,
    errors: Map<String, Value>,
    message: Option<String>,
    status: StatusCode,
) -> PageResult {
    settings_view_with(app, signed, values, None, errors, message, status).await
}

async fn settings_view_with(
    app: &AppState,
    signed: &SignedIn,
    values: Option<Value>,
    recording_values: Option<Value>,
    errors: Map<String, Value>,
    message: Option<String>,
    status: StatusCode,
) -> PageResult {
    let scope = tenant_scope(app, signed, Action::Read, Area::TenantSettings)?;
    let sees_recordings = crate::auth::permits(scope.role(), Action::Read, Area::History);
    let recording_source = match recording_values {
        Some(posted) => Some(posted),
        None if sees_recordings => super::recordings::recordings(app)
            .source(&scope)
            .await?
            .and_then(|s| serde_json::to_value(s).ok()),
        None => None,
    };
    let tenant = tenants::current(&app.store, &scope).await?;
    let providers: Vec<Value> = app
        .oidc
        .providers()
        .into_iter()
        .map(|(id, name)| json!({ "id": id, "name": name, "redirect_uri": app.oidc.redirect_uri(&id) }))
        .collect();
    let own: Vec<Value> = oidc_providers::list(&app.store, &scope)
        .await
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let view = p.view();
            let role_map: Vec<String> = view.role_map.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            json!({
                "role_map_text": role_map.join("\n"),
                "scopes_text": view.scopes.join(", "),
                "redirect_uri": app.oidc.redirect_uri(&view.slug),
                "provider": view,
            })
        })
        .collect();
    let view = SettingsView {
        settings: values.unwrap_or_else(|| serde_json::to_value(&tenant).unwrap_or_default()),
        version: tenant.version,
        providers,
        own_providers: own,
        login_url: format!("{}/login?tenant={}", app.config.public_url(), scope.tenant_slug()),
        roles: ["tenant_admin", "supervisor", "agent", "viewer"],
        errors,
        message,
        can_write: crate::auth::permits(scope.role(), Action::Write, Area::TenantSettings),
        recording_source,
        sees_recordings,
        recording_directories: app
            .config
            .recordings
            .directories
            .get(scope.tenant_slug())
            .into_iter()
            .flatten()
            .map(|d| d.display().to_string())
            .collect(),
    };
    Ok(render_view(app, &signed.page, "admin/settings.html", &view, status))
}

async fn save_settings(
    State(app): State<AppState>,
    signed: SignedIn,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::TenantSettings)?;
    let input = tenants::TenantUpdate {
        name: form_value(&form, "name").map(str::to_owned),
        timezone: form_value(&form, "timezone").map(str::to_owned),
        week_start: form_value(&form, "week_start").map(str::to_owned),
        features: None,
        limits: None,
        suspended: None,
    };
    let version = form_value(&form, "_version").and_then(|v| v.parse().ok());
    match tenant_service::update_own(&app.store, &scope, &signed.page.origin, version, input).await {
        Ok(_) => Ok(Redirect::to("/admin/settings").into_response()),
        Err(e) => {
            let (errors, message) = super::admin::field_errors(e, signed.page.locale)?;
            let values = json!({ "name": form_value(&form, "name"), "timezone": form_value(&form, "timezone"),
                                 "week_start": form_value(&form, "week_start"), "slug": scope.tenant_slug() });
            let message = message.or(Some(signed.page.locale.text("common.fix_errors")));
            settings_view(
                &app,
                &signed,
                Some(values),
                errors,
                message,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// The platform admin acting, or the "not allowed" page for anyone else.
fn platform_actor(app: &AppState, signed: &SignedIn) -> Result<String, Box<Response>> {
    match &signed.current.principal {
        Some(Principal::Platform { actor }) => Ok(actor.clone()),
        _ => Err(Box::new(super::admin::forbidden(app, signed))),
    }
}

async fn tenants_page(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    tenants_view(&app, &signed, Map::new(), None, StatusCode::OK).await
}

/// `admin/tenants.html`: the installation's tenants and the form that adds one.
#[derive(Serialize)]
struct TenantsView {
    tenants: Vec<tenants::Tenant>,
    errors: Map<String, Value>,
    message: Option<String>,
}

async fn tenants_view(
    app: &AppState,
    signed: &SignedIn,
    errors: Map<String, Value>,
    message: Option<String>,
    status: StatusCode,
) -> PageResult {
    platform_actor(app, signed)?;
    let view = TenantsView {
        tenants: tenants::list_all(&app.store).await?,
        errors,
        message,
    };
    Ok(render_view(app, &signed.page, "admin/tenants.html", &view, status))
}

async fn create_tenant(
    State(app): State<AppState>,
    signed: SignedIn,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let actor = platform_actor(&app, &signed)?;
    let input = tenants::TenantCreate {
        slug: form_value(&form, "slug").unwrap_or_default().to_owned(),
        name: form_value(&form, "name").unwrap_or_default().to_owned(),
        timezone: form_value(&form, "timezone")
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        features: Default::default(),
        limits: Default::default(),
    };
    match tenant_service::create(&app.store, &actor, &signed.page.origin, input).await {
        Ok(_) => Ok(Redirect::to("/platform/tenants").into_response()),
        Err(e) => {
            let (errors, message) = super::admin::field_errors(e, signed.page.locale)?;
            let message = message.or(Some(signed.page.locale.text("common.fix_errors")));
            tenants_view(&app, &signed, errors, message, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

async fn set_suspended(app: &AppState, signed: &SignedIn, id: &str, suspended: bool) -> PageResult {
    let actor = platform_actor(app, signed)?;
    let origin = &signed.page.origin;
    tenant_service::set_suspended(&app.store, app.running_tenants(), &actor, origin, id, suspended).await?;
    Ok(Redirect::to("/platform/tenants").into_response())
}

async fn suspend(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    set_suspended(&app, &signed, &id, true).await
}

async fn reactivate(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    set_suspended(&app, &signed, &id, false).await
}

/// Reads the provider form: `role_map` is one `value = role` per line, `scopes` comma-separated.
fn provider_input(form: &[(String, String)]) -> Result<ProviderInput, Map<String, Value>> {
    let mut errors = Map::new();
    let mut role_map = std::collections::BTreeMap::new();
    for (n, line) in form_value(form, "role_map").unwrap_or_default().lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.rsplit_once('=') {
            Some((value, role)) if !value.trim().is_empty() => {
                role_map.insert(value.trim().trim_matches('"').to_owned(), role.trim().to_owned());
            }
            _ => {
                errors.insert(
                    "role_map".into(),
                    json!(format!("line {}: write `claim value = role`", n + 1)),
                );
            }
        }
    }
    let scopes: Vec<String> = form_value(form, "scopes")
        .unwrap_or("openid, email, profile")
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ProviderInput {
        slug: form_value(form, "slug").unwrap_or_default().to_owned(),
        display_name: form_value(form, "display_name").unwrap_or_default().to_owned(),
        issuer: form_value(form, "issuer").unwrap_or_default().to_owned(),
        client_id: form_value(form, "client_id").unwrap_or_default().to_owned(),
        client_secret: form_value(form, "client_secret")
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        scopes: if scopes.is_empty() {
            vec!["openid".into()]
        } else {
            scopes
        },
        roles_claim: form_value(form, "roles_claim").unwrap_or("groups").to_owned(),
        role_map,
        default_role: form_value(form, "default_role")
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        enabled: form_value(form, "enabled").is_some_and(|v| v == "on" || v == "true"),
    })
}

async fn provider_result(app: &AppState, signed: &SignedIn, result: StoreResult<()>) -> PageResult {
    match result {
        Ok(()) => Ok(Redirect::to("/admin/settings").into_response()),
        Err(e) => {
            let (errors, message) = super::admin::field_errors(e, signed.page.locale)?;
            let message = message.or(Some(signed.page.locale.text("common.fix_errors")));
            settings_view(app, signed, None, errors, message, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

fn provider_policy<'a>(app: &AppState, reserved: &'a [String]) -> tenant_service::ProviderPolicy<'a> {
    tenant_service::ProviderPolicy {
        allow_plain_http: app.config.auth.tenant_providers_private,
        reserved,
    }
}

async fn add_provider(
    State(app): State<AppState>,
    signed: SignedIn,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::TenantSettings)?;
    let input = match provider_input(&form) {
        Ok(i) => i,
        Err(errors) => {
            let message = Some(signed.page.locale.text("common.fix_errors"));
            return settings_view(&app, &signed, None, errors, message, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let reserved = app.oidc.configured_ids();
    let policy = provider_policy(&app, &reserved);
    let origin = &signed.page.origin;
    let result = tenant_service::add_sign_in_provider(&app.store, &scope, origin, &policy, input).await;
    provider_result(&app, &signed, result.map(drop)).await
}

async fn update_provider(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::TenantSettings)?;
    let input = match provider_input(&form) {
        Ok(i) => i,
        Err(errors) => {
            let message = Some(signed.page.locale.text("common.fix_errors"));
            return settings_view(&app, &signed, None, errors, message, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let version = form_value(&form, "_version").and_then(|v| v.parse().ok());
    let reserved = app.oidc.configured_ids();
    let policy = provider_policy(&app, &reserved);
    let origin = &signed.page.origin;
    let result =
        tenant_service::update_sign_in_provider(&app.store, &scope, origin, &policy, &id, version, input).await;
    provider_result(&app, &signed, result.map(drop)).await
}

async fn save_recording_source(
    State(app): State<AppState>,
    signed: SignedIn,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::TenantSettings)?;
    let text = |key: &str| form_value(&form, key).unwrap_or_default().to_owned();
    let input = crate::service::recordings::SourceSet {
        kind: text("kind"),
        location: text("location"),
        pattern: text("pattern"),
        endpoint: text("endpoint"),
        region: text("region"),
        access_key_id: text("access_key_id"),
        secret_key: form_value(&form, "secret_key")
            .filter(|k| !k.is_empty())
            .map(str::to_owned),
        prefix: text("prefix"),
    };
    let origin = &signed.page.origin;
    match super::recordings::recordings(&app)
        .set_source(&scope, origin, input)
        .await
    {
        Ok(_) => Ok(Redirect::to("/admin/settings#recordings").into_response()),
        Err(e) => {
            let (errors, message) = super::admin::field_errors(e, signed.page.locale)?;
            // The secret key is not shown again.
            let posted = json!({
                "kind": text("kind"), "location": text("location"), "pattern": text("pattern"),
                "endpoint": text("endpoint"), "region": text("region"),
                "access_key_id": text("access_key_id"), "prefix": text("prefix"),
            });
            let message = message.or(Some(signed.page.locale.text("common.fix_errors")));
            settings_view_with(
                &app,
                &signed,
                None,
                Some(posted),
                errors,
                message,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

async fn remove_recording_source(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::TenantSettings)?;
    super::recordings::recordings(&app)
        .remove_source(&scope, &signed.page.origin)
        .await?;
    Ok(Redirect::to("/admin/settings#recordings").into_response())
}

async fn delete_provider(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::TenantSettings)?;
    tenant_service::remove_sign_in_provider(&app.store, &scope, &signed.page.origin, &id).await?;
    Ok(Redirect::to("/admin/settings").into_response())
}
