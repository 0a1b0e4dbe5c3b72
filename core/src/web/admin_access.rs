//! Administration of who gets in: users and their roles and scopes, API tokens, open sessions,
//! and the audit log (browsable, filterable, exportable as CSV).

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::AppState;
use super::admin::tenant_scope;
use super::page_error::{PageError, PageResult};
use super::session::SignedIn;
use super::ui::render_view;
use crate::auth::{Action, Area, invitations};
use crate::domain::Role;
use crate::domain::time::to_rfc3339;
use crate::service::access::{self, AccessError};
use crate::service::identity;
use crate::store::audit::{AuditEntry, AuditRow};
use crate::store::entities::locations::Location;
use crate::store::entities::teams::Team;
use crate::store::entities::users::{Member, MemberCreate, MemberUpdate};
use crate::store::resource;
use crate::store::tokens::{self, ApiToken};
use crate::store::{ListParams, StoreError, accounts, sessions};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(users_page).post(add_user))
        .route("/admin/users/{id}", post(update_user))
        .route("/admin/users/{id}/reset-link", post(reset_link))
        .route("/admin/users/{id}/remove", post(remove_user))
        .route("/admin/invitations/{id}/revoke", post(revoke_invitation))
        // The invitee's side: not administration, but the other half of the same flow.
        .route("/invitations/{token}", get(super::auth_pages::invitation_page))
        .route(
            "/invitations/{token}/accept",
            post(super::auth_pages::accept_invitation),
        )
        .route(
            "/invitations/{token}/decline",
            post(super::auth_pages::decline_invitation),
        )
        .route(
            "/invitations/{token}/register",
            post(super::auth_pages::register_invitation),
        )
        .route("/admin/tokens", get(tokens_page).post(create_token))
        .route("/admin/tokens/{id}/revoke", post(revoke_token))
        .route("/admin/sessions", get(sessions_page))
        .route("/admin/sessions/{id}/revoke", post(revoke_session))
        .route("/admin/audit", get(audit_page))
        .route("/admin/audit/export.csv", get(audit_csv))
}

fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn form_values(form: &[(String, String)], name: &str) -> Vec<String> {
    form.iter()
        .filter(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect()
}

async fn names<R: resource::Listable>(app: &AppState, scope: &crate::store::TenantScope) -> Vec<Value>
where
    R::View: serde::Serialize,
{
    let params = ListParams(vec![("limit".into(), "500".into()), ("sort".into(), "name".into())]);
    resource::list::<R>(&app.store, scope, &params)
        .await
        .map(|p| {
            p.items
                .into_iter()
                .filter_map(|i| serde_json::to_value(i).ok())
                .map(|v| json!({ "id": v["id"], "name": v["name"] }))
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Deserialize, Default)]
struct UsersQuery {
    q: Option<String>,
    cursor: Option<String>,
}

async fn users_page(State(app): State<AppState>, signed: SignedIn, Query(q): Query<UsersQuery>) -> PageResult {
    users_view(
        &app,
        &signed,
        q,
        None,
        Map::new(),
        UsersNotice::default(),
        StatusCode::OK,
    )
    .await
}

/// What the users page shows above the list after an action.
#[derive(Default, Serialize)]
struct UsersNotice {
    /// An invitation sent, or its link to pass on.
    #[serde(skip_serializing_if = "Option::is_none")]
    invited: Option<Value>,
    /// A password reset link made.
    #[serde(skip_serializing_if = "Option::is_none")]
    reset: Option<Value>,
    /// A password reset link emailed.
    #[serde(skip_serializing_if = "Option::is_none")]
    emailed: Option<String>,
}

/// `admin/users.html`: members, pending invitations and the forms that change them.
#[derive(Serialize)]
struct UsersView {
    users: Vec<Member>,
    next_cursor: Option<String>,
    q: String,
    teams: Vec<Value>,
    locations: Vec<Value>,
    roles: Vec<&'static str>,
    can_write: bool,
    message: Option<String>,
    errors: Map<String, Value>,
    self_id: String,
    can_email: bool,
    invitations: Vec<Value>,
    #[serde(flatten)]
    notice: UsersNotice,
}

async fn users_view(
    app: &AppState,
    signed: &SignedIn,
    q: UsersQuery,
    message: Option<String>,
    errors: Map<String, Value>,
    notice: UsersNotice,
    status: StatusCode,
) -> PageResult {
    let scope = tenant_scope(app, signed, Action::Read, Area::Users)?;
    let mut params = vec![
        ("limit".to_owned(), "100".to_owned()),
        ("sort".to_owned(), "email".to_owned()),
    ];
    if let Some(query) = q.q.as_ref().filter(|v| !v.trim().is_empty()) {
        params.push(("q".into(), query.clone()));
    }
    if let Some(c) = &q.cursor {
        params.push(("cursor".into(), c.clone()));
    }
    let page = resource::list::<Member>(&app.store, &scope, &ListParams(params)).await?;
    let invitations: Vec<Value> = crate::store::invitations::pending(&app.store, &scope, 200)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|i| {
            json!({
                "id": i.id, "email": i.email, "role": i.role, "created_by": i.created_by,
                "expires_at": to_rfc3339(i.expires_at),
                "scoped": !i.team_scope.0.is_empty() || !i.location_scope.0.is_empty(),
            })
        })
        .collect();
    let view = UsersView {
        users: page.items,
        next_cursor: page.next_cursor,
        q: q.q.unwrap_or_default(),
        teams: names::<Team>(app, &scope).await,
        locations: names::<Location>(app, &scope).await,
        roles: tenant_roles(),
        can_write: crate::auth::permits(scope.role(), Action::Write, Area::Users),
        message,
        errors,
        self_id: signed.current.account.id.clone(),
        can_email: app.mailer.is_some(),
        invitations,
        notice,
    };
    Ok(render_view(app, &signed.page, "admin/users.html", &view, status))
}

/// The roles a tenant member or token can have, as the forms offer them.
fn tenant_roles() -> Vec<&'static str> {
    Role::TENANT_ROLES.iter().map(|r| r.as_str()).collect()
}

async fn add_user(
    State(app): State<AppState>,
    signed: SignedIn,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Users)?;
    let role = form_value(&form, "role").unwrap_or("viewer").parse::<Role>();
    let input = match role {
        Ok(role) => MemberCreate {
            email: form_value(&form, "email").unwrap_or_default().trim().to_owned(),
            display_name: form_value(&form, "display_name")
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            role,
            team_scope: form_values(&form, "team_scope"),
            location_scope: form_values(&form, "location_scope"),
        },
        Err(e) => {
            let error = crate::domain::Validation::single("role", e.to_string()).into();
            return users_rejected(&app, &signed, error).await;
        }
    };
    let invited = invitations::invite(
        &app.store,
        app.mailer.clone(),
        &app.limits.invitations,
        &app.config.public_url(),
        &scope,
        input,
        signed.page.locale,
        &signed.page.origin,
    )
    .await;
    match invited {
        Ok(invited) => {
            let locale = signed.page.locale;
            let days = locale.count("units.days", invitations::LIFETIME.as_secs() / 86_400);
            // The same words whether or not the address has an account.
            let text = match &invited.link {
                Some(_) => locale.text("users.invitation_link").replace("{days}", &days),
                None => locale.text("users.invitation_emailed"),
            };
            let notice = UsersNotice {
                invited: Some(json!({ "email": invited.invitation.email, "text": text, "link": invited.link })),
                ..UsersNotice::default()
            };
            users_view(
                &app,
                &signed,
                UsersQuery::default(),
                None,
                Map::new(),
                notice,
                StatusCode::OK,
            )
            .await
        }
        Err(invitations::InviteError::Grant(e)) => {
            users_view(
                &app,
                &signed,
                UsersQuery::default(),
                Some(signed.page.locale.translate(&e.to_string())),
                Map::new(),
                UsersNotice::default(),
                StatusCode::FORBIDDEN,
            )
            .await
        }
        Err(invitations::InviteError::Throttled(wait)) => {
            let mut response = users_view(
                &app,
                &signed,
                UsersQuery::default(),
                Some(signed.page.locale.text("users.invitations_throttled")),
                Map::new(),
                UsersNotice::default(),
                StatusCode::TOO_MANY_REQUESTS,
            )
            .await?;
            let seconds = crate::auth::ratelimit::retry_after_secs(wait);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
            Ok(response)
        }
        Err(invitations::InviteError::Store(e)) => users_rejected(&app, &signed, e).await,
    }
}

async fn revoke_invitation(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Users)?;
    invitations::revoke(&app.store, &scope, &id, &signed.page.origin).await?;
    Ok(Redirect::to("/admin/users").into_response())
}

/// The users page again after a change the store refused, with its field errors.
async fn users_rejected(app: &AppState, signed: &SignedIn, error: crate::store::StoreError) -> PageResult {
    let (errors, message) = super::admin::field_errors(error, signed.page.locale)?;
    let message = message.or(Some(signed.page.locale.text("common.fix_errors")));
    users_view(
        app,
        signed,
        UsersQuery::default(),
        message,
        errors,
        UsersNotice::default(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

async fn update_user(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Users)?;
    let Ok(role) = form_value(&form, "role").map(str::parse::<Role>).transpose() else {
        return users_view(
            &app,
            &signed,
            UsersQuery::default(),
            Some("unknown role".into()),
            Map::new(),
            UsersNotice::default(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let scopes_sent = form_value(&form, "scopes").is_some();
    let input = MemberUpdate {
        display_name: None,
        role,
        team_scope: scopes_sent.then(|| form_values(&form, "team_scope")),
        location_scope: scopes_sent.then(|| form_values(&form, "location_scope")),
        disabled: form_value(&form, "disabled").map(|v| v == "true"),
    };
    let version = form_value(&form, "_version").and_then(|v| v.parse().ok());
    match access::update_member(&app.store, &scope, &signed.page.origin, &id, version, input).await {
        Ok(_) => Ok(Redirect::to("/admin/users").into_response()),
        Err(e) => users_refused(&app, &signed, e).await,
    }
}

async fn remove_user(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Users)?;
    match access::remove_member(&app.store, &scope, &signed.page.origin, &id, None).await {
        Ok(()) => Ok(Redirect::to("/admin/users").into_response()),
        Err(e) => users_refused(&app, &signed, e).await,
    }
}

/// The users page again after an access flow refused a change, saying why.
async fn users_refused(app: &AppState, signed: &SignedIn, error: AccessError) -> PageResult {
    let Refusal {
        status,
        message,
        errors,
    } = refusal(signed, error)?;
    users_view(
        app,
        signed,
        UsersQuery::default(),
        message,
        errors,
        UsersNotice::default(),
        status,
    )
    .await
}

/// A refused access flow as a page shows it again: a message and field errors.
struct Refusal {
    status: StatusCode,
    message: Option<String>,
    errors: Map<String, Value>,
}

/// Why an access flow refused, for the page; nothing there or storage failing is an error
/// page of its own.
fn refusal(signed: &SignedIn, error: AccessError) -> Result<Refusal, PageError> {
    let locale = signed.page.locale;
    let (status, store_error) = match error {
        AccessError::Beyond(why) => {
            return Ok(Refusal {
                status: StatusCode::FORBIDDEN,
                message: Some(locale.translate(&why.to_string())),
                errors: Map::new(),
            });
        }
        AccessError::OwnAccess(why) => {
            return Ok(Refusal {
                status: StatusCode::CONFLICT,
                message: Some(locale.translate(why)),
                errors: Map::new(),
            });
        }
        AccessError::Invalid(v) => (StatusCode::UNPROCESSABLE_ENTITY, StoreError::Invalid(v)),
        AccessError::Store(e @ StoreError::NotFound { .. }) => return Err(e.into()),
        AccessError::Store(e) => (StatusCode::CONFLICT, e),
    };
    let (errors, message) = super::admin::field_errors(store_error, locale)?;
    Ok(Refusal {
        status,
        message: message.or(Some(locale.text("common.fix_errors"))),
        errors,
    })
}

async fn reset_link(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Users)?;
    // Only for members of this tenant, and not for accounts that also belong elsewhere or run
    // the installation: their reset is for those admins or the operator to make.
    let member = resource::get::<Member>(&app.store, &scope, &id).await?;
    // A link signs in as the member: only for someone the caller could have made.
    if let Err(e) = access::may_manage(&app.store, &scope, &signed.page.origin, "user.reset_link", &member).await {
        return users_refused(&app, &signed, e).await;
    }
    let account = accounts::by_id(&app.store, &member.id).await.ok();
    let elsewhere = accounts::memberships(&app.store, &member.id)
        .await
        .map(|m| m.len() > 1)
        .unwrap_or(true);
    if account.as_ref().is_none_or(|a| a.platform_admin) || elsewhere {
        return users_view(
            &app,
            &signed,
            UsersQuery::default(),
            Some("This account belongs to other tenants or runs the installation; its password can only be reset by the operator (monti admin user reset-link).".into()),
            Map::new(),
            UsersNotice::default(),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let lifetime = app.config.auth.password_reset_lifetime;
    let link = identity::reset_link(
        &app.store,
        &app.config.public_url(),
        scope.actor(),
        Some(&scope),
        &signed.page.origin,
        &member.id,
        lifetime,
    )
    .await
    .map_err(|e| match e {
        identity::IdentityError::Store(e) => PageError::from(e),
        other => PageError::refused(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    })?;
    if let (Some(mailer), Some("email")) = (&app.mailer, form_value(&form, "via")) {
        let locale = account
            .as_ref()
            .and_then(|a| a.locale.as_deref())
            .and_then(crate::i18n::Locale::parse)
            .unwrap_or(signed.page.locale);
        let to = identity::Recipient {
            account_id: &member.id,
            email: &member.email,
            name: &member.display_name,
            locale,
        };
        let tenants = [Some(scope.tenant().clone())];
        let origin = &signed.page.origin;
        let sent =
            identity::email_reset_link(&app.store, mailer, scope.actor(), &tenants, origin, to, &link, lifetime).await;
        let message = match sent {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        };
        let notice = UsersNotice {
            emailed: message.is_none().then(|| {
                signed
                    .page
                    .locale
                    .text("forgot.emailed")
                    .replace("{email}", &member.email)
            }),
            ..UsersNotice::default()
        };
        return users_view(
            &app,
            &signed,
            UsersQuery::default(),
            message,
            Map::new(),
            notice,
            StatusCode::OK,
        )
        .await;
    }
    let locale = signed.page.locale;
    let hours = locale.count("units.hours", (lifetime.as_secs() / 3600).max(1));
    let text = locale.text("users.reset_link_created").replace("{hours}", &hours);
    let notice = UsersNotice {
        reset: Some(json!({ "email": member.email, "text": text, "link": link })),
        ..UsersNotice::default()
    };
    users_view(
        &app,
        &signed,
        UsersQuery::default(),
        None,
        Map::new(),
        notice,
        StatusCode::OK,
    )
    .await
}

async fn tokens_page(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    tokens_view(&app, &signed, None, Map::new(), None, StatusCode::OK).await
}

async fn tokens_view(
    app: &AppState,
    signed: &SignedIn,
    message: Option<String>,
    errors: Map<String, Value>,
    secret: Option<String>,
    status: StatusCode,
) -> PageResult {
    let scope = tenant_scope(app, signed, Action::Read, Area::Tokens)?;
    let params = ListParams(vec![
        ("limit".into(), "500".into()),
        ("sort".into(), "-created_at".into()),
    ]);
    let list = resource::list::<ApiToken>(&app.store, &scope, &params)
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let now = crate::domain::time::now_ms();
    let rows: Vec<Value> = list
        .iter()
        .map(|t| {
            let status = if t.revoked_at.is_some() {
                "revoked"
            } else if t.expires_at.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            };
            json!({
                "id": t.id, "name": t.name, "role": t.role, "prefix": t.token_prefix, "status": status,
                "created_at": to_rfc3339(t.created_at), "expires_at": t.expires_at.map(to_rfc3339),
                "last_used_at": t.last_used_at.map(to_rfc3339), "created_by": t.created_by,
                "scoped": !t.team_scope.0.is_empty() || !t.location_scope.0.is_empty(),
            })
        })
        .collect();
    let view = TokensView {
        tokens: rows,
        teams: names::<Team>(app, &scope).await,
        locations: names::<Location>(app, &scope).await,
        roles: tenant_roles(),
        message,
        errors,
        secret,
    };
    Ok(render_view(app, &signed.page, "admin/tokens.html", &view, status))
}

/// `admin/tokens.html`: the tenant's API tokens, the form that makes one, a new one's secret.
#[derive(Serialize)]
struct TokensView {
    tokens: Vec<Value>,
    teams: Vec<Value>,
    locations: Vec<Value>,
    roles: Vec<&'static str>,
    message: Option<String>,
    errors: Map<String, Value>,
    /// Shown once, right after the token is made.
    secret: Option<String>,
}

async fn create_token(
    State(app): State<AppState>,
    signed: SignedIn,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Tokens)?;
    let Ok(role) = form_value(&form, "role").unwrap_or("viewer").parse::<Role>() else {
        let errors = Map::from_iter([("role".to_owned(), json!("choose a tenant role"))]);
        return tokens_view(&app, &signed, None, errors, None, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let request = access::TokenRequest {
        name: form_value(&form, "name").unwrap_or_default().to_owned(),
        role,
        expires_in: form_value(&form, "expires").map(str::to_owned),
        scopes: tokens::TokenScopes {
            teams: form_values(&form, "team_scope"),
            locations: form_values(&form, "location_scope"),
        },
    };
    match access::issue_token(&app.store, &scope, &signed.page.origin, request).await {
        Ok(issued) => {
            let secret = Some(issued.secret);
            tokens_view(&app, &signed, None, Map::new(), secret, StatusCode::CREATED).await
        }
        Err(e) => tokens_refused(&app, &signed, e).await,
    }
}

async fn revoke_token(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Tokens)?;
    match access::revoke_token(&app.store, &app.tokens, &scope, &signed.page.origin, &id).await {
        Ok(()) => Ok(Redirect::to("/admin/tokens").into_response()),
        Err(e) => tokens_refused(&app, &signed, e).await,
    }
}

/// The tokens page again after a refused change, its field errors named as its form names them.
async fn tokens_refused(app: &AppState, signed: &SignedIn, error: AccessError) -> PageResult {
    let Refusal {
        status,
        message,
        mut errors,
    } = refusal(signed, error)?;
    if let Some(expiry) = errors.remove("expires_in") {
        errors.insert("expires".into(), expiry);
    }
    tokens_view(app, signed, message, errors, None, status).await
}

async fn sessions_page(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::Sessions)?;
    let idle = app.config.auth.session_idle_timeout.as_millis() as i64;
    let list = sessions::list_for_tenant(&app.store, scope.tenant(), idle)
        .await
        .unwrap_or_default();
    let rows: Vec<Value> = list
        .iter()
        .map(|s| {
            json!({
                "id": s.id, "email": s.email, "method": s.auth_method, "ip": s.ip, "user_agent": s.user_agent,
                "created_at": to_rfc3339(s.created_at), "last_seen_at": to_rfc3339(s.last_seen_at),
                "current": s.id == signed.current.session.id,
            })
        })
        .collect();
    Ok(render_view(
        &app,
        &signed.page,
        "admin/sessions.html",
        &SessionsView { sessions: rows },
        StatusCode::OK,
    ))
}

/// `admin/sessions.html`: who is signed in to the tenant, from where.
#[derive(Serialize)]
struct SessionsView {
    sessions: Vec<Value>,
}

async fn revoke_session(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, Area::Sessions)?;
    match access::revoke_session(&app.store, &scope, &signed.page.origin, &id).await {
        Ok(()) => Ok(Redirect::to("/admin/sessions").into_response()),
        Err(e) => {
            let Refusal { status, message, .. } = refusal(&signed, e)?;
            Err(PageError::refused(status, message.unwrap_or_default()))
        }
    }
}

/// The audit filters a person can set, turned into list parameters.
fn audit_params(query: &[(String, String)], limit: &str) -> ListParams {
    let mut params = vec![
        ("limit".to_owned(), limit.to_owned()),
        ("sort".to_owned(), "-at".to_owned()),
    ];
    for (key, value) in query {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "q" | "action" | "outcome" | "actor" | "target_id" | "cursor" => {
                params.push((key.clone(), value.to_owned()))
            }
            // Date inputs give a day; the range covers it whole.
            "from" => params.push(("at_from".into(), day_start(value))),
            "until" => params.push(("at_to".into(), day_after(value))),
            _ => {}
        }
    }
    ListParams(params)
}

fn day_start(day: &str) -> String {
    if day.contains('T') {
        day.to_owned()
    } else {
        format!("{day}T00:00:00Z")
    }
}

fn day_after(day: &str) -> String {
    match chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") {
        Ok(d) => format!("{}T00:00:00Z", d + chrono::Days::new(1)),
        Err(_) => day.to_owned(),
    }
}

async fn audit_page(
    State(app): State<AppState>,
    signed: SignedIn,
    Query(query): Query<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::Audit)?;
    let params = audit_params(&query, "100");
    let (entries, next, error) = match resource::list::<AuditRow>(&app.store, &scope, &params).await {
        Ok(page) => (page.items, page.next_cursor, None),
        Err(e) => {
            tracing::warn!(error = %e, "audit page: cannot list entries");
            (Vec::new(), None, Some(signed.page.locale.text("errors.unavailable")))
        }
    };
    let rows: Vec<Value> = entries.iter().map(entry_row).collect();
    let filters: Map<String, Value> = query
        .iter()
        .filter(|(k, _)| k != "cursor")
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let filter_query = serde_urlencoded::to_string(
        query
            .iter()
            .filter(|(k, v)| k != "cursor" && !v.is_empty())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    let view = AuditView {
        entries: rows,
        next_cursor: next,
        filters,
        filter_query,
        message: error,
    };
    Ok(render_view(
        &app,
        &signed.page,
        "admin/audit.html",
        &view,
        StatusCode::OK,
    ))
}

/// `admin/audit.html`: the tenant's audit log, filtered.
#[derive(Serialize)]
struct AuditView {
    entries: Vec<Value>,
    next_cursor: Option<String>,
    /// The filters as set, to fill the form again.
    filters: Map<String, Value>,
    /// The same as a query string, for the next page and the CSV link.
    filter_query: String,
    message: Option<String>,
}

fn entry_row(e: &AuditEntry) -> Value {
    json!({
        "id": e.id, "at": to_rfc3339(e.at), "actor": e.actor, "action": e.action, "outcome": e.outcome,
        "target": match (&e.target_kind, &e.target_id) { (Some(k), Some(i)) => format!("{k} {i}"), _ => String::new() },
        "detail": e.detail, "ip": e.ip,
        "before": e.before.as_ref().map(|v| serde_json::to_string_pretty(v).unwrap_or_default()),
        "after": e.after.as_ref().map(|v| serde_json::to_string_pretty(v).unwrap_or_default()),
    })
}

async fn audit_csv(
    State(app): State<AppState>,
    signed: SignedIn,
    Query(query): Query<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::Audit)?;
    let query = audit_params(&query, "500").0;
    match access::export_audit(&app.store, &scope, &signed.page.origin, &query).await {
        Ok(body) => Ok(super::api::csv_response(body, scope.tenant_slug())),
        Err(e) => Err(PageError::refused(StatusCode::BAD_REQUEST, e.to_string())),
    }
}
