//! The browser side of OpenID Connect sign-in: `/auth/oidc/{provider}/start` sends the browser
//! to the provider; `/auth/oidc/{provider}/callback` receives it back, verifies everything, maps
//! claims to a tenant and role, provisions the account just in time, and starts a session.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

use super::AppState;
use super::auth_pages::start_session;
use super::session::{PageContext, cookie, safe_next};
use super::ui::render_page;
use crate::auth::claims;
use crate::auth::oidc::{self, OidcError, VerifiedIdentity};
use crate::store::accounts::{self, Account, NewAccount};
use crate::store::audit::{self, AuditEvent, Outcome};
use crate::store::tenants;

const FLOW_COOKIE: &str = "monti_oidc";

#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

pub async fn start(
    State(app): State<AppState>,
    page: PageContext,
    Path(provider): Path<String>,
    Query(q): Query<StartQuery>,
) -> Response {
    // Starting a sign-in makes the server talk to the provider: limit it like sign-in attempts.
    if let Err(wait) = app
        .limits
        .sign_in_per_ip
        .check(page.origin.ip.as_deref().unwrap_or_default())
    {
        let mut response = super::ui::error_page(
            &app,
            &HeaderMap::new(),
            StatusCode::TOO_MANY_REQUESTS,
            &page.locale.text("errors.too_many"),
        );
        let seconds = crate::auth::ratelimit::retry_after_secs(wait);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    match app
        .oidc
        .begin(&app.store, &provider, &safe_next(q.next.as_deref()))
        .await
    {
        Ok((url, flow)) => {
            let sealed = oidc::seal_flow(&app.store.secrets, &flow);
            let mut cookie = format!(
                "{FLOW_COOKIE}={sealed}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={}",
                oidc::FLOW_LIFETIME.as_secs()
            );
            if app.config.secure_cookies() {
                cookie.push_str("; Secure");
            }
            let mut response = Redirect::to(&url).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Err(e) => failure(&app, &page, &provider, e).await,
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub async fn callback(
    State(app): State<AppState>,
    page: PageContext,
    headers: HeaderMap,
    Path(provider): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let mut response = complete(&app, &page, &headers, &provider, q).await;
    // The flow cookie is single-use whatever the outcome.
    let mut clear = format!("{FLOW_COOKIE}=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0");
    if app.config.secure_cookies() {
        clear.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

async fn complete(
    app: &AppState,
    page: &PageContext,
    headers: &HeaderMap,
    provider_id: &str,
    q: CallbackQuery,
) -> Response {
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return failure(
            app,
            page,
            provider_id,
            OidcError::Refused(format!("{error} {detail}").trim().to_owned()),
        )
        .await;
    }
    let Some(flow) = cookie(headers, FLOW_COOKIE).and_then(|sealed| oidc::open_flow(&app.store.secrets, sealed)) else {
        return failure(
            app,
            page,
            provider_id,
            OidcError::InvalidFlow("this browser did not start a sign-in (or it expired)"),
        )
        .await;
    };
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return failure(
            app,
            page,
            provider_id,
            OidcError::InvalidFlow("the provider's answer lacks code or state"),
        )
        .await;
    };
    let identity = match app.oidc.finish(&app.store, provider_id, &flow, &state, &code).await {
        Ok(identity) => identity,
        Err(e) => return failure(app, page, provider_id, e).await,
    };
    match provision(app, page, provider_id, &identity).await {
        Ok(Some(account)) => {
            let sealed = app.store.secrets.seal(
                &identity.id_token,
                &crate::store::sessions::id_token_context(&account.id),
            );
            match start_session(app, page, &account, "oidc", Some(provider_id), Some(sealed)).await {
                Ok(cookie) => {
                    let mut response = Redirect::to(&safe_next(Some(&flow.next))).into_response();
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                    response
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SSO: cannot create the session");
                    super::ui::error_page(
                        app,
                        headers,
                        StatusCode::SERVICE_UNAVAILABLE,
                        &page.locale.text("errors.unavailable"),
                    )
                }
            }
        }
        Ok(None) => no_access(app, page),
        Err(response) => response,
    }
}

fn no_access(app: &AppState, page: &PageContext) -> Response {
    render_page(
        app,
        page,
        "pages/no_access.html",
        tera::Context::new(),
        StatusCode::FORBIDDEN,
    )
}

/// Maps the claims to a tenant and role and makes sure a matching account exists. `Ok(None)`:
/// the person has no role here; nothing is created for them.
async fn provision(
    app: &AppState,
    page: &PageContext,
    provider_id: &str,
    identity: &VerifiedIdentity,
) -> Result<Option<Account>, Response> {
    let provider = app
        .oidc
        .provider(&app.store, provider_id)
        .await
        .map_err(|_| no_access(app, page))?;
    let config = &provider.config;
    let mapped = provider.mapping.apply(&identity.claims);
    let tenant_slug = match (&config.tenant, &config.tenant_claim) {
        (Some(slug), _) => Some(slug.clone()),
        (None, Some(claim)) => claims::lookup(&identity.claims, claim)
            .and_then(Value::as_str)
            .map(str::to_owned),
        (None, None) => None,
    };
    let tenant = match &tenant_slug {
        Some(slug) => tenants::by_slug(&app.store, slug).await.ok().flatten(),
        None => None,
    };
    let actor = format!("oidc:{provider_id}:{}", identity.subject);
    let tenant_role = mapped
        .tenant_role
        .filter(|_| tenant.as_ref().is_some_and(|t| t.suspended_at.is_none()));
    if tenant_role.is_none() && !mapped.platform_admin {
        let detail = format!(
            "no role: claim `{}` had no mapped value{}",
            provider.mapping.claim,
            match (&tenant_slug, &tenant) {
                (Some(slug), None) => format!("; tenant `{slug}` does not exist"),
                (Some(slug), Some(t)) if t.suspended_at.is_some() => format!("; tenant `{slug}` is suspended"),
                _ => String::new(),
            }
        );
        let event = AuditEvent::new(
            tenant.as_ref().map(|t| &t.id),
            &actor,
            "session.sign_in",
            Outcome::Denied,
        )
        .detail(detail);
        audit::record(&app.store, event, &page.origin).await;
        return Ok(None);
    }
    let unavailable = |e: crate::store::StoreError| {
        tracing::warn!(error = %e, "SSO: cannot provision the account");
        super::ui::error_page(
            app,
            &HeaderMap::new(),
            StatusCode::SERVICE_UNAVAILABLE,
            &page.locale.text("errors.unavailable"),
        )
    };
    let (email, email_verified) = oidc::verified_email(&identity.claims, &config.email_claim);
    let name = claims::lookup(&identity.claims, &config.name_claim)
        .and_then(Value::as_str)
        .map(str::to_owned);
    let identity_key = provider.identity_key.as_str();
    let deny = |detail: &str| {
        AuditEvent::new(
            tenant.as_ref().map(|t| &t.id),
            &actor,
            "session.sign_in",
            Outcome::Denied,
        )
        .detail(detail.to_owned())
    };
    let account = match accounts::by_identity(&app.store, identity_key, &identity.subject)
        .await
        .map_err(unavailable)?
    {
        Some(account) => account,
        None => {
            let Some(email) = email else {
                let event = AuditEvent::new(
                    tenant.as_ref().map(|t| &t.id),
                    &actor,
                    "session.sign_in",
                    Outcome::Denied,
                )
                .detail(format!("the provider sent no `{}` claim", config.email_claim));
                audit::record(&app.store, event, &page.origin).await;
                return Ok(None);
            };
            match accounts::by_email(&app.store, &email).await.map_err(unavailable)? {
                // Linking to an existing account needs an address the provider vouches for,
                // or anyone able to set that address at the provider could take it over.
                Some(existing) if email_verified => existing,
                Some(_) => {
                    let event = AuditEvent::new(
                        tenant.as_ref().map(|t| &t.id),
                        &actor,
                        "session.sign_in",
                        Outcome::Denied,
                    )
                    .detail("an account with this email exists and the provider did not verify the address");
                    audit::record(&app.store, event, &page.origin).await;
                    return Ok(None);
                }
                None => {
                    let input = NewAccount {
                        email: email.clone(),
                        display_name: name.clone().filter(|n| !n.trim().is_empty()),
                        password_hash: None,
                        platform_admin: false,
                    };
                    let created = accounts::create(&app.store, input).await.map_err(unavailable)?;
                    let event = AuditEvent::new(
                        tenant.as_ref().map(|t| &t.id),
                        &actor,
                        "user.provision",
                        Outcome::Success,
                    )
                    .target("user", &created.id)
                    .detail(format!("created at first sign-in through {provider_id}"));
                    audit::record(&app.store, event, &page.origin).await;
                    created
                }
            }
        }
    };
    // A tenant's own provider vouches only for people of that tenant: an account that belongs
    // elsewhere too, or runs the installation, is out of its reach (else a tenant admin with an
    // identity provider of their own could sign in as anyone).
    if provider.tenant_scoped {
        let memberships = accounts::memberships(&app.store, &account.id)
            .await
            .map_err(unavailable)?;
        let elsewhere = memberships
            .iter()
            .any(|m| tenant.as_ref().is_none_or(|t| t.id != m.tenant_id));
        if account.platform_admin || elsewhere {
            let event = deny(
                "this account belongs to other tenants or runs the installation; a tenant's provider cannot sign it in",
            )
            .target("user", &account.id);
            audit::record(&app.store, event, &page.origin).await;
            return Ok(None);
        }
    }
    if account.disabled {
        let event = AuditEvent::new(
            tenant.as_ref().map(|t| &t.id),
            &actor,
            "session.sign_in",
            Outcome::Denied,
        )
        .target("user", &account.id)
        .detail("account disabled");
        audit::record(&app.store, event, &page.origin).await;
        return Ok(None);
    }
    accounts::link_identity(&app.store, identity_key, &identity.subject, &account.id)
        .await
        .map_err(unavailable)?;
    // The provider is the source of truth for the roles it grants: apply them at every sign-in.
    if let (Some(tenant), Some(role)) = (&tenant, tenant_role) {
        let current = accounts::membership(&app.store, &account.id, &tenant.id)
            .await
            .map_err(unavailable)?;
        let (teams, locations) = current
            .as_ref()
            .map(|m| (m.team_scope.0.clone(), m.location_scope.0.clone()))
            .unwrap_or_default();
        if current.as_ref().is_none_or(|m| m.role != role.as_str()) {
            accounts::grant_membership(&app.store, &account.id, &tenant.id, role, &teams, &locations)
                .await
                .map_err(unavailable)?;
            let event = AuditEvent::new(Some(&tenant.id), &actor, "user.role_from_sso", Outcome::Success)
                .target("user", &account.id)
                .change(
                    current.map(|m| serde_json::json!({ "role": m.role })),
                    Some(serde_json::json!({ "role": role.as_str(), "matched": mapped.matched })),
                );
            audit::record(&app.store, event, &page.origin).await;
        }
    }
    if !provider.tenant_scoped
        && mapped.platform_admin != account.platform_admin
        && (mapped.platform_admin || account.password_hash.is_none())
    {
        accounts::set_platform_admin(&app.store, &account.id, mapped.platform_admin)
            .await
            .map_err(unavailable)?;
        let event = AuditEvent::new(None, &actor, "user.platform_admin_from_sso", Outcome::Success)
            .target("user", &account.id)
            .detail(if mapped.platform_admin { "granted" } else { "withdrawn" });
        audit::record(&app.store, event, &page.origin).await;
    }
    accounts::by_id(&app.store, &account.id)
        .await
        .map(Some)
        .map_err(unavailable)
}

async fn failure(app: &AppState, page: &PageContext, provider: &str, error: OidcError) -> Response {
    let status = match &error {
        OidcError::UnknownProvider(_) => StatusCode::NOT_FOUND,
        OidcError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        OidcError::InvalidFlow(_) => StatusCode::BAD_REQUEST,
        OidcError::Refused(_) | OidcError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
    };
    let event = AuditEvent::new(None, &format!("oidc:{provider}"), "session.sign_in", Outcome::Failure)
        .detail(error.to_string());
    audit::record(&app.store, event, &page.origin).await;
    tracing::info!(provider, error = %error, "single sign-on failed");
    // People see what they can act on; the details (addresses, provider messages) go to the
    // audit log and the server log, not to a page anyone can provoke.
    let shown = match &error {
        OidcError::UnknownProvider(_) => page.locale.text("sso.unknown"),
        OidcError::Unavailable(_) => page.locale.text("sso.unavailable"),
        OidcError::InvalidFlow(_) => page.locale.text("sso.invalid_flow"),
        OidcError::Refused(_) | OidcError::InvalidToken(_) => page.locale.text("sso.refused"),
    };
    // The sign-in page again, as /login draws it, with what went wrong.
    let mut view = super::auth_pages::login_view(app, "/", None).await;
    view.error = Some(shown);
    super::ui::render_view(app, page, "pages/login.html", &view, status)
}
