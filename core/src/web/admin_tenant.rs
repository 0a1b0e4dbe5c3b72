//! Tenant settings (for its admins) and the installation's tenants (for platform admins).

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::AppState;
use super::admin::tenant_scope;
use super::page_error::PageResult;
use super::session::SignedIn;
use super::ui::render_page;
use crate::auth::{Action, Area, Principal};
use crate::store::audit::{self, AuditEvent, Outcome};
use crate::store::oidc_providers::{self, ProviderInput};
use crate::store::{StoreError, tenants};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/settings", get(settings_page).post(save_settings))
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

async fn settings_page(State(app): State<AppState>, signed: SignedIn) -> Response {
    settings_view(&app, &signed, None, Map::new(), None, StatusCode::OK).await
}

async fn settings_view(
    app: &AppState,
    signed: &SignedIn,
    values: Option<Value>,
    errors: Map<String, Value>,
    message: Option<String>,
    status: StatusCode,
) -> Response {
    let scope = match tenant_scope(app, signed, Action::Read, Area::TenantSettings) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let tenant = match tenants::current(&app.store, &scope).await {
        Ok(t) => t,
        Err(e) => {
            return super::admin::unavailable(app, signed, &e);
        }
    };
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
    let mut context = tera::Context::new();
    context.insert(
        "settings",
        &values.unwrap_or_else(|| serde_json::to_value(&tenant).unwrap_or_default()),
    );
    context.insert("version", &tenant.version);
    context.insert("providers", &providers);
    context.insert("own_providers", &own);
    context.insert(
        "login_url",
        &format!("{}/login?tenant={}", app.config.public_url(), scope.tenant_slug()),
    );
    context.insert("roles", &["tenant_admin", "supervisor", "agent", "viewer"]);
    context.insert("errors", &errors);
    context.insert("message", &message);
    context.insert(
        "can_write",
        &crate::auth::permits(scope.role(), Action::Write, Area::TenantSettings),
    );
    render_page(app, &signed.page, "admin/settings.html", context, status)
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
        features: None,
        limits: None,
        suspended: None,
    };
    let version = form_value(&form, "_version").and_then(|v| v.parse().ok());
    Ok(
        match crate::service::tenants::update_own(&app.store, &scope, &signed.page.origin, version, input).await {
            Ok(_) => Redirect::to("/admin/settings").into_response(),
            Err(e) => match super::admin::field_errors(e, signed.page.locale) {
                Ok((errors, message)) => {
                    let values = json!({ "name": form_value(&form, "name"), "timezone": form_value(&form, "timezone"),
                    "slug": scope.tenant_slug() });
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
                Err(e) => super::admin::unavailable(&app, &signed, &e),
            },
        },
    )
}

fn platform_actor(signed: &SignedIn) -> Option<String> {
    match &signed.current.principal {
        Some(Principal::Platform { actor }) => Some(actor.clone()),
        _ => None,
    }
}

async fn tenants_page(State(app): State<AppState>, signed: SignedIn) -> Response {
    tenants_view(&app, &signed, Map::new(), None, StatusCode::OK).await
}

async fn tenants_view(
    app: &AppState,
    signed: &SignedIn,
    errors: Map<String, Value>,
    message: Option<String>,
    status: StatusCode,
) -> Response {
    if platform_actor(signed).is_none() {
        return super::admin::forbidden(app, signed);
    }
    let all = tenants::list_all(&app.store).await.unwrap_or_default();
    let mut context = tera::Context::new();
    context.insert("tenants", &all);
    context.insert("errors", &errors);
    context.insert("message", &message);
    render_page(app, &signed.page, "admin/tenants.html", context, status)
}

async fn create_tenant(
    State(app): State<AppState>,
    signed: SignedIn,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let Some(actor) = platform_actor(&signed) else {
        return super::admin::forbidden(&app, &signed);
    };
    let input = tenants::TenantCreate {
        slug: form_value(&form, "slug").unwrap_or_default().to_owned(),
        name: form_value(&form, "name").unwrap_or_default().to_owned(),
        timezone: form_value(&form, "timezone")
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        features: Default::default(),
        limits: Default::default(),
    };
    match crate::service::tenants::create(&app.store, &actor, &signed.page.origin, input).await {
        Ok(_) => Redirect::to("/platform/tenants").into_response(),
        Err(e) => match super::admin::field_errors(e, signed.page.locale) {
            Ok((errors, message)) => {
                let message = message.or(Some(signed.page.locale.text("common.fix_errors")));
                tenants_view(&app, &signed, errors, message, StatusCode::UNPROCESSABLE_ENTITY).await
            }
            Err(e) => super::admin::unavailable(&app, &signed, &e),
        },
    }
}

async fn set_suspended(app: &AppState, signed: &SignedIn, id: &str, suspended: bool) -> Response {
    let Some(actor) = platform_actor(signed) else {
        return super::admin::forbidden(app, signed);
    };
    let origin = &signed.page.origin;
    match crate::service::tenants::set_suspended(&app.store, &app.tokens, &actor, origin, id, suspended).await {
        Ok(_) => Redirect::to("/platform/tenants").into_response(),
        Err(_) => super::ui::error_page(
            app,
            &signed.page.error_headers,
            StatusCode::NOT_FOUND,
            &signed.page.locale.text("admin.not_found"),
        ),
    }
}

async fn suspend(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> Response {
    set_suspended(&app, &signed, &id, true).await
}

async fn reactivate(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> Response {
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

async fn provider_result(
    app: &AppState,
    signed: &SignedIn,
    scope: &crate::store::TenantScope,
    action: &str,
    before: Option<Value>,
    result: Result<oidc_providers::ProviderRow, StoreError>,
) -> Response {
    match result {
        Ok(row) => {
            let event = AuditEvent::in_tenant(scope, action, Outcome::Success)
                .target("sign_in_provider", &row.id)
                .change(before, serde_json::to_value(row.view()).ok());
            audit::record(&app.store, event, &signed.page.origin).await;
            Redirect::to("/admin/settings").into_response()
        }
        Err(e) => match super::admin::field_errors(e, signed.page.locale) {
            Ok((errors, message)) => {
                let message = message.or(Some(signed.page.locale.text("common.fix_errors")));
                settings_view(app, signed, None, errors, message, StatusCode::UNPROCESSABLE_ENTITY).await
            }
            Err(e) => super::admin::unavailable(app, signed, &e),
        },
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
            return Ok(settings_view(&app, &signed, None, errors, message, StatusCode::UNPROCESSABLE_ENTITY).await);
        }
    };
    if !app.config.auth.tenant_providers_private && !input.issuer.starts_with("https://") {
        let mut errors = Map::new();
        errors.insert("issuer".into(), json!("must be an https URL"));
        let message = Some(signed.page.locale.text("common.fix_errors"));
        return Ok(settings_view(&app, &signed, None, errors, message, StatusCode::UNPROCESSABLE_ENTITY).await);
    }
    let reserved = app.oidc.configured_ids();
    let result = oidc_providers::create(&app.store, &scope, input, &reserved).await;
    Ok(provider_result(&app, &signed, &scope, "sign_in_provider.create", None, result).await)
}

async fn update_provider(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::TenantSettings)?;
    let before = match oidc_providers::get(&app.store, &scope, &id).await {
        Ok(row) => serde_json::to_value(row.view()).ok(),
        Err(_) => {
            return Ok(super::ui::error_page(
                &app,
                &signed.page.error_headers,
                StatusCode::NOT_FOUND,
                &signed.page.locale.text("admin.not_found"),
            ));
        }
    };
    let input = match provider_input(&form) {
        Ok(i) => i,
        Err(errors) => {
            let message = Some(signed.page.locale.text("common.fix_errors"));
            return Ok(settings_view(&app, &signed, None, errors, message, StatusCode::UNPROCESSABLE_ENTITY).await);
        }
    };
    let version = form_value(&form, "_version").and_then(|v| v.parse().ok());
    let reserved = app.oidc.configured_ids();
    let result = oidc_providers::update(&app.store, &scope, &id, version, input, &reserved).await;
    Ok(provider_result(&app, &signed, &scope, "sign_in_provider.update", before, result).await)
}

async fn delete_provider(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::TenantSettings)?;
    let before = oidc_providers::get(&app.store, &scope, &id)
        .await
        .ok()
        .and_then(|r| serde_json::to_value(r.view()).ok());
    Ok(match oidc_providers::delete(&app.store, &scope, &id).await {
        Ok(()) => {
            let event = AuditEvent::in_tenant(&scope, "sign_in_provider.delete", Outcome::Success)
                .target("sign_in_provider", &id)
                .change(before, None);
            audit::record(&app.store, event, &signed.page.origin).await;
            Redirect::to("/admin/settings").into_response()
        }
        Err(_) => super::ui::error_page(
            &app,
            &signed.page.error_headers,
            StatusCode::NOT_FOUND,
            &signed.page.locale.text("admin.not_found"),
        ),
    })
}
