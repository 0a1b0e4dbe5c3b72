//! Sign-in, sign-out, first-run setup, password reset and the user's own account page.

use std::time::Duration;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::session::{self, PageContext, SignedIn, safe_next};
use super::ui::render_view;
use crate::auth::invitations::{self as auth_invitations, AcceptError as InvitationError};
use crate::auth::password;
use crate::auth::ratelimit::{MAX_EMAIL_LEN, retry_after_secs};
use crate::i18n::Locale;
use crate::secrets::{constant_time_eq, hash_token, random_secret};
use crate::service::identity;
use crate::store::accounts::{self, Account, NewAccount};
use crate::store::audit::{self, AuditEvent, Outcome};
use crate::store::invitations;
use crate::store::sessions::{self, NewSession};

/// Where the one-time setup token's hash is kept until setup is done.
const SETUP_STATE_KEY: &str = "setup_token_hash";

/// At start-up: when no platform admin exists, makes a fresh one-time setup link and returns it
/// for the log. Only someone who can read the server's log can claim a fresh installation.
pub async fn prepare_setup(app_store: &crate::store::Store) -> crate::store::StoreResult<Option<String>> {
    if accounts::platform_admin_exists(app_store).await? {
        accounts::delete_state(app_store, SETUP_STATE_KEY).await?;
        return Ok(None);
    }
    let token = random_secret();
    accounts::set_state(app_store, SETUP_STATE_KEY, &hash_token(&token)).await?;
    Ok(Some(token))
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    notice: Option<String>,
    /// A tenant's own sign-in page also shows the providers that tenant configured.
    tenant: Option<String>,
}

/// Notices a page may show, by catalog key; anything else in `?notice=` is ignored.
fn notice(locale: Locale, key: Option<&str>) -> Option<String> {
    const KNOWN: &[&str] = &[
        "login.signed_out",
        "login.expired",
        "setup.done",
        "reset.done",
        "account.password_changed",
        "account.signed_out_others",
        "common.saved",
    ];
    key.filter(|k| KNOWN.contains(k)).map(|k| locale.text(k))
}

/// `pages/login.html`: the sign-in form and the single sign-on buttons.
#[derive(Clone, Serialize)]
pub(super) struct LoginView {
    /// Where to go once signed in (a local path).
    next: String,
    local_login: bool,
    can_email_reset: bool,
    /// Signing in to one tenant: its own providers are offered too.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_slug: Option<String>,
    providers: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
    /// The address typed, shown again after a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

pub(super) async fn login_view(app: &AppState, next: &str, tenant: Option<&str>) -> LoginView {
    let mut buttons = app.oidc.providers();
    let tenant_slug = tenant.filter(|s| !s.is_empty() && s.len() <= 64);
    if let Some(slug) = tenant_slug {
        buttons.extend(
            crate::store::oidc_providers::buttons_for_tenant(&app.store, slug)
                .await
                .unwrap_or_default(),
        );
    }
    LoginView {
        next: next.to_owned(),
        local_login: app.config.auth.local_login,
        can_email_reset: app.mailer.is_some(),
        tenant_slug: tenant_slug.map(str::to_owned),
        providers: buttons
            .into_iter()
            .map(|(id, name)| json!({ "id": id, "name": name }))
            .collect(),
        notice: None,
        error: None,
        email: None,
    }
}

pub async fn login_page(State(app): State<AppState>, page: PageContext, Query(q): Query<LoginQuery>) -> Response {
    if page.current.is_some() {
        return Redirect::to(&safe_next(q.next.as_deref())).into_response();
    }
    let mut view = login_view(&app, &safe_next(q.next.as_deref()), q.tenant.as_deref()).await;
    view.notice = notice(page.locale, q.notice.as_deref());
    render_view(&app, &page, "pages/login.html", &view, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
    tenant: Option<String>,
}

pub async fn login(State(app): State<AppState>, page: PageContext, Form(form): Form<LoginForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    let base_view = login_view(&app, &next, form.tenant.as_deref()).await;
    let fail = |status: StatusCode, message: String, retry: Option<u64>| {
        let view = LoginView {
            error: Some(message),
            email: Some(form.email.clone()),
            ..base_view.clone()
        };
        let mut response = render_view(&app, &page, "pages/login.html", &view, status);
        if let Some(seconds) = retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    };
    if !app.config.auth.local_login {
        return fail(StatusCode::FORBIDDEN, page.locale.text("login.disabled"), None);
    }
    let ip = page.origin.ip.clone().unwrap_or_default();
    let account_key = form.email.trim().to_lowercase();
    let limited = match app.limits.sign_in_per_ip.check(&ip) {
        Err(wait) => Some(wait),
        // No account has such an address: answered like any failure, and never a throttle key.
        Ok(()) if account_key.len() > MAX_EMAIL_LEN => {
            metrics::counter!("sign_in_failures_total", "reason" => "unknown_account").increment(1);
            return fail(StatusCode::UNAUTHORIZED, page.locale.text("login.failed"), None);
        }
        Ok(()) => app.limits.sign_in.attempt(&ip, &account_key).err(),
    };
    if let Some(wait) = limited {
        let seconds = retry_after_secs(wait);
        // Nobody identified did this, and each refusal costs nothing: counted, logged at a
        // bounded rate, never one audit row per request.
        metrics::counter!("sign_in_throttled_total").increment(1);
        if app.limits.audit_failures.check(&format!("sign-in-log:{ip}")).is_ok() {
            tracing::info!(client = %ip, seconds, "sign-in throttled");
        }
        let message = locked(page.locale, seconds);
        return fail(StatusCode::TOO_MANY_REQUESTS, message, Some(seconds));
    }
    let account = match accounts::by_email(&app.store, &form.email).await {
        Ok(account) => account,
        Err(e) => {
            tracing::warn!(error = %e, "sign-in: cannot read accounts");
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                page.locale.text("errors.unavailable"),
                None,
            );
        }
    };
    let stored = account.as_ref().and_then(|a| a.password_hash.clone());
    let presented = form.password.clone();
    // Hashing takes tens of milliseconds of CPU: keep it off the async workers.
    let verified = tokio::task::spawn_blocking(move || password::verify(&presented, stored.as_deref()))
        .await
        .unwrap_or(false);
    let account = match account {
        Some(a) if verified && !a.disabled => a,
        other => {
            let reason = match &other {
                None => "unknown account",
                Some(a) if a.disabled => "account disabled",
                Some(_) => "wrong password",
            };
            // Recorded after answering, so a failure for a known account takes no longer than
            // one for an unknown address.
            let (app2, page2, account, key) = (app.clone(), page.clone(), other.clone(), account_key.clone());
            tokio::spawn(async move {
                record_sign_in_failure(&app2, &page2, account.as_ref(), &key, reason).await;
            });
            return fail(StatusCode::UNAUTHORIZED, page.locale.text("login.failed"), None);
        }
    };
    app.limits.sign_in.succeeded(&ip, &account_key);
    match start_session(&app, &page, &account, "password", None, None).await {
        Ok(cookie) => {
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "sign-in: cannot create the session");
            fail(
                StatusCode::SERVICE_UNAVAILABLE,
                page.locale.text("errors.unavailable"),
                None,
            )
        }
    }
}

/// Failed sign-ins on an account are recorded in every tenant it belongs to, so each tenant's
/// admins see attacks on their people, at most a few a minute per account (beyond that they are
/// counted and logged). Addresses without an account name nobody: counted and logged at a
/// bounded rate, not written to the audit log.
async fn record_sign_in_failure(
    app: &AppState,
    page: &PageContext,
    account: Option<&Account>,
    email: &str,
    reason: &str,
) {
    let reason_label = match (account, reason) {
        (None, _) => "unknown_account",
        (Some(_), "account disabled") => "disabled",
        _ => "wrong_password",
    };
    metrics::counter!("sign_in_failures_total", "reason" => reason_label).increment(1);
    let client = page.origin.ip.as_deref().unwrap_or("unknown");
    let audited = account.is_some_and(|a| app.limits.sign_in_audit.check(&a.id).is_ok());
    if !audited {
        if app
            .limits
            .audit_failures
            .check(&format!("sign-in-log:{client}"))
            .is_ok()
        {
            tracing::info!(client, reason, "sign-in failed");
        }
        return;
    }
    let tenants = match account {
        Some(a) => identity::audit_tenants(&app.store, &a.id).await,
        None => vec![None],
    };
    for tenant in tenants {
        let mut event = AuditEvent::new(tenant.as_ref(), email, "session.sign_in", Outcome::Failure).detail(reason);
        if let Some(a) = account {
            event = event.target("user", &a.id);
        }
        audit::record(&app.store, event, &page.origin).await;
    }
}

/// Creates a session for a verified account and returns its cookie. The session starts in the
/// first tenant the account may use (or the installation view for platform admins).
pub async fn start_session(
    app: &AppState,
    page: &PageContext,
    account: &Account,
    method: &str,
    oidc_provider: Option<&str>,
    id_token_enc: Option<String>,
) -> crate::store::StoreResult<HeaderValue> {
    let memberships = accounts::memberships(&app.store, &account.id).await?;
    let tenant_id = memberships.iter().find(|m| m.usable()).map(|m| m.tenant_id.clone());
    let (secret, session) = sessions::create(
        &app.store,
        NewSession {
            user_id: account.id.clone(),
            tenant_id: tenant_id.clone(),
            auth_method: method.to_owned(),
            oidc_provider: oidc_provider.map(str::to_owned),
            id_token_enc,
            ip: page.origin.ip.clone(),
            user_agent: page.origin.user_agent.clone(),
            lifetime_ms: app.config.auth.session_lifetime.as_millis() as i64,
        },
    )
    .await?;
    accounts::record_login(&app.store, &account.id).await?;
    let actor = format!("user:{}", account.id);
    let detail = match oidc_provider {
        Some(p) => format!("{method} via {p}"),
        None => method.to_owned(),
    };
    let event = AuditEvent::new(tenant_id.as_ref(), &actor, "session.sign_in", Outcome::Success)
        .target("session", &session.id)
        .detail(detail);
    audit::record(&app.store, event, &page.origin).await;
    Ok(session::session_cookie(app, &secret))
}

pub async fn logout(State(app): State<AppState>, page: PageContext) -> Response {
    let mut provider_logout: Option<String> = None;
    if let Some(current) = &page.current {
        if let Err(e) = sessions::revoke(&app.store, &current.account.id, &current.session.id).await {
            tracing::warn!(error = %e, "sign-out: cannot revoke the session");
        }
        let event = AuditEvent::new(
            current.session.tenant_id.as_ref(),
            &format!("user:{}", current.account.id),
            "session.sign_out",
            Outcome::Success,
        )
        .target("session", &current.session.id);
        audit::record(&app.store, event, &page.origin).await;
        provider_logout = app.oidc.logout_url(&app.store, &current.session).await;
    }
    // Signing out at the provider too: a page that moves on by itself, because our
    // Content-Security-Policy lets forms lead only to our own origin.
    let mut response = match provider_logout {
        Some(url) => {
            let signed_out = PageContext {
                current: None,
                ..page.clone()
            };
            let view = json!({ "provider_logout": url });
            render_view(&app, &signed_out, "pages/signing_out.html", &view, StatusCode::OK)
        }
        None => Redirect::to("/login?notice=login.signed_out").into_response(),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::clear_session_cookie(&app));
    response
}

#[derive(Deserialize)]
pub struct SetupQuery {
    token: Option<String>,
}

async fn setup_token_valid(app: &AppState, token: &str) -> bool {
    match accounts::get_state(&app.store, SETUP_STATE_KEY).await {
        Ok(Some(hash)) => constant_time_eq(&hash, &hash_token(token)),
        _ => false,
    }
}

pub async fn setup_page(State(app): State<AppState>, page: PageContext, Query(q): Query<SetupQuery>) -> Response {
    if accounts::platform_admin_exists(&app.store).await.unwrap_or(false) {
        return Redirect::to("/login").into_response();
    }
    let token = q.token.unwrap_or_default();
    if !setup_token_valid(&app, &token).await {
        return render_view(
            &app,
            &page,
            "pages/setup.html",
            &TokenForm::invalid(),
            StatusCode::FORBIDDEN,
        );
    }
    render_view(&app, &page, "pages/setup.html", &TokenForm::new(token), StatusCode::OK)
}

/// `pages/setup.html` and `pages/reset.html`: a form that a one-time token opens, or word that
/// the token is not (or no longer) valid.
#[derive(Default, Serialize)]
struct TokenForm {
    #[serde(skip_serializing_if = "Option::is_none")]
    invalid: Option<bool>,
    token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<serde_json::Map<String, serde_json::Value>>,
    /// What was typed, shown again with the errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    form: Option<serde_json::Value>,
}

impl TokenForm {
    fn new(token: String) -> Self {
        Self {
            token,
            ..Self::default()
        }
    }

    fn invalid() -> Self {
        Self {
            invalid: Some(true),
            ..Self::default()
        }
    }
}

#[derive(Deserialize)]
pub struct SetupForm {
    token: String,
    display_name: String,
    email: String,
    password: String,
    confirm: String,
}

pub async fn setup(State(app): State<AppState>, page: PageContext, Form(form): Form<SetupForm>) -> Response {
    if accounts::platform_admin_exists(&app.store).await.unwrap_or(true) || !setup_token_valid(&app, &form.token).await
    {
        let event = AuditEvent::new(None, "anonymous", "platform.setup", Outcome::Denied).detail("invalid setup token");
        audit::record(&app.store, event, &page.origin).await;
        return render_view(
            &app,
            &page,
            "pages/setup.html",
            &TokenForm::invalid(),
            StatusCode::FORBIDDEN,
        );
    }
    let mut errors = serde_json::Map::new();
    let account = if form.password != form.confirm {
        errors.insert("confirm".into(), json!(page.locale.text("setup.mismatch")));
        None
    } else {
        let request = identity::AccountRequest {
            email: form.email.clone(),
            display_name: Some(form.display_name.clone()),
            password: form.password.clone(),
            platform_admin: true,
            membership: None,
        };
        match identity::create_account(&app.store, None, &page.origin, request).await {
            Ok(account) => Some(account),
            Err(identity::IdentityError::WeakPassword(why)) => {
                errors.insert("password".into(), json!(page.locale.translate(&why)));
                None
            }
            Err(identity::IdentityError::Store(crate::store::StoreError::Invalid(v))) => {
                for e in v.errors {
                    errors.insert(e.pointer.trim_start_matches('/').to_owned(), json!(e.detail));
                }
                None
            }
            Err(identity::IdentityError::Store(crate::store::StoreError::Conflict { message, .. })) => {
                errors.insert("email".into(), json!(message));
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "setup: cannot create the account");
                return super::ui::error_page(
                    &app,
                    &page.error_headers,
                    StatusCode::SERVICE_UNAVAILABLE,
                    &page.locale.text("errors.unavailable"),
                );
            }
        }
    };
    let Some(account) = account else {
        let view = TokenForm {
            errors: Some(errors),
            form: Some(json!({ "display_name": form.display_name, "email": form.email })),
            ..TokenForm::new(form.token)
        };
        return render_view(&app, &page, "pages/setup.html", &view, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let _ = accounts::delete_state(&app.store, SETUP_STATE_KEY).await;
    let event = AuditEvent::new(
        None,
        &format!("user:{}", account.id),
        "platform.setup",
        Outcome::Success,
    )
    .target("user", &account.id)
    .detail("first platform admin created");
    audit::record(&app.store, event, &page.origin).await;
    tracing::info!(email = %account.email, "first-run setup complete");
    match start_session(&app, &page, &account, "password", None, None).await {
        Ok(cookie) => {
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(_) => Redirect::to("/login?notice=setup.done").into_response(),
    }
}

#[derive(Deserialize)]
pub struct ResetQuery {
    token: Option<String>,
}

pub async fn reset_page(State(app): State<AppState>, page: PageContext, Query(q): Query<ResetQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    match accounts::peek_password_reset(&app.store, &token).await {
        Ok(Some(_)) => render_view(&app, &page, "pages/reset.html", &TokenForm::new(token), StatusCode::OK),
        _ => render_view(
            &app,
            &page,
            "pages/reset.html",
            &TokenForm::invalid(),
            StatusCode::FORBIDDEN,
        ),
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    token: String,
    password: String,
    confirm: String,
}

pub async fn reset(State(app): State<AppState>, page: PageContext, Form(form): Form<ResetForm>) -> Response {
    let invalid = |app: &AppState, page: &PageContext| {
        render_view(
            app,
            page,
            "pages/reset.html",
            &TokenForm::invalid(),
            StatusCode::FORBIDDEN,
        )
    };
    let Ok(Some(user_id)) = accounts::peek_password_reset(&app.store, &form.token).await else {
        return invalid(&app, &page);
    };
    let Ok(account) = accounts::by_id(&app.store, &user_id).await else {
        return invalid(&app, &page);
    };
    let mut errors = serde_json::Map::new();
    if let Err(e) = password::check_policy(&form.password, &account.email) {
        errors.insert("password".into(), json!(page.locale.translate(&e.to_string())));
    } else if form.password != form.confirm {
        errors.insert("confirm".into(), json!(page.locale.text("setup.mismatch")));
    }
    if !errors.is_empty() {
        let view = TokenForm {
            errors: Some(errors),
            ..TokenForm::new(form.token)
        };
        return render_view(&app, &page, "pages/reset.html", &view, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Consume first, so two concurrent submissions cannot both succeed.
    match accounts::consume_password_reset(&app.store, &form.token).await {
        Ok(Some(id)) if id == account.id => {}
        _ => return invalid(&app, &page),
    }
    let Some(hash) = password::hash_off_thread(form.password).await.ok() else {
        return invalid(&app, &page);
    };
    if accounts::set_password(&app.store, &account.id, &hash).await.is_err() {
        return invalid(&app, &page);
    }
    let _ = sessions::revoke_all(&app.store, &account.id, None).await;
    for tenant in identity::audit_tenants(&app.store, &account.id).await {
        let event = AuditEvent::new(
            tenant.as_ref(),
            &format!("user:{}", account.id),
            "user.password_reset",
            Outcome::Success,
        )
        .target("user", &account.id);
        audit::record(&app.store, event, &page.origin).await;
    }
    Redirect::to("/login?notice=reset.done").into_response()
}

#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn account_page(State(app): State<AppState>, signed: SignedIn, Query(q): Query<NoticeQuery>) -> Response {
    account_view(
        &app,
        &signed,
        notice(signed.page.locale, q.notice.as_deref()),
        None,
        StatusCode::OK,
    )
    .await
}

async fn account_view(
    app: &AppState,
    signed: &SignedIn,
    notice: Option<String>,
    errors: Option<serde_json::Map<String, serde_json::Value>>,
    status: StatusCode,
) -> Response {
    let idle = app.config.auth.session_idle_timeout.as_millis() as i64;
    let sessions = sessions::list_active(&app.store, &signed.current.account.id, idle)
        .await
        .unwrap_or_default();
    let rows: Vec<_> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s.id, "method": s.auth_method, "provider": s.oidc_provider, "ip": s.ip,
                "user_agent": s.user_agent, "created_at": crate::domain::time::to_rfc3339(s.created_at),
                "last_seen_at": crate::domain::time::to_rfc3339(s.last_seen_at),
                "current": s.id == signed.current.session.id,
            })
        })
        .collect();
    let view = AccountView {
        sessions: rows,
        has_password: signed.current.account.password_hash.is_some(),
        locale_setting: signed.current.account.locale.clone().unwrap_or_default(),
        locales: Locale::ALL
            .iter()
            .map(|l| json!({ "code": l.code(), "name": l.native_name() }))
            .collect(),
        notice,
        errors,
    };
    render_view(app, &signed.page, "pages/account.html", &view, status)
}

/// `pages/account.html`: one's own sessions, password and language.
#[derive(Serialize)]
struct AccountView {
    sessions: Vec<serde_json::Value>,
    has_password: bool,
    /// The language chosen (empty: the browser's).
    locale_setting: String,
    locales: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    password: String,
    confirm: String,
}

pub async fn change_password(
    State(app): State<AppState>,
    signed: SignedIn,
    Form(form): Form<PasswordForm>,
) -> Response {
    let account = &signed.current.account;
    let mut errors = serde_json::Map::new();
    let key = format!("password-change:{}", account.id);
    if let Err(wait) = app.limits.password_change.attempt(&key) {
        errors.insert(
            "current".into(),
            json!(locked(signed.page.locale, retry_after_secs(wait))),
        );
        return account_view(&app, &signed, None, Some(errors), StatusCode::TOO_MANY_REQUESTS).await;
    }
    let stored = account.password_hash.clone();
    let current = form.current.clone();
    let verified = tokio::task::spawn_blocking(move || password::verify(&current, stored.as_deref()))
        .await
        .unwrap_or(false);
    if !verified {
        errors.insert(
            "current".into(),
            json!(signed.page.locale.text("account.wrong_password")),
        );
    } else if let Err(e) = password::check_policy(&form.password, &account.email) {
        errors.insert("password".into(), json!(signed.page.locale.translate(&e.to_string())));
    } else if form.password != form.confirm {
        errors.insert("confirm".into(), json!(signed.page.locale.text("setup.mismatch")));
    }
    if !errors.is_empty() {
        return account_view(&app, &signed, None, Some(errors), StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    app.limits.password_change.succeeded(&key);
    let Some(hash) = password::hash_off_thread(form.password).await.ok() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Err(e) = accounts::set_password(&app.store, &account.id, &hash).await {
        tracing::warn!(error = %e, "cannot change password");
        return super::ui::error_page(
            &app,
            &signed.page.error_headers,
            StatusCode::SERVICE_UNAVAILABLE,
            &signed.page.locale.text("errors.unavailable"),
        );
    }
    let _ = sessions::revoke_all(&app.store, &account.id, Some(&signed.current.session.id)).await;
    for tenant in identity::audit_tenants(&app.store, &account.id).await {
        let event = AuditEvent::new(
            tenant.as_ref(),
            &format!("user:{}", account.id),
            "user.password_change",
            Outcome::Success,
        )
        .target("user", &account.id);
        audit::record(&app.store, event, &signed.page.origin).await;
    }
    Redirect::to("/account?notice=account.password_changed").into_response()
}

#[derive(Deserialize)]
pub struct LocaleForm {
    locale: String,
}

pub async fn set_locale(State(app): State<AppState>, signed: SignedIn, Form(form): Form<LocaleForm>) -> Response {
    let locale = Locale::parse(&form.locale).map(Locale::code);
    let _ = accounts::set_locale(&app.store, &signed.current.account.id, locale).await;
    Redirect::to("/account?notice=common.saved").into_response()
}

pub async fn revoke_session(State(app): State<AppState>, signed: SignedIn, Path(id): Path<String>) -> Response {
    let current = &signed.current;
    let which = identity::OwnSessions::One(&id);
    let tenant = current.session.tenant_id.as_ref();
    // Ending a session that is already gone leaves nothing to do.
    let _ = identity::end_own_sessions(&app.store, &current.account.id, tenant, &signed.page.origin, which).await;
    if id == current.session.id {
        let mut response = Redirect::to("/login?notice=login.signed_out").into_response();
        response
            .headers_mut()
            .append(header::SET_COOKIE, session::clear_session_cookie(&app));
        return response;
    }
    Redirect::to("/account").into_response()
}

pub async fn revoke_other_sessions(State(app): State<AppState>, signed: SignedIn) -> Response {
    let current = &signed.current;
    let which = identity::OwnSessions::AllBut(&current.session.id);
    let tenant = current.session.tenant_id.as_ref();
    let _ = identity::end_own_sessions(&app.store, &current.account.id, tenant, &signed.page.origin, which).await;
    Redirect::to("/account?notice=account.signed_out_others").into_response()
}

#[derive(Deserialize)]
pub struct SwitchForm {
    /// A tenant id, or empty for the installation view (platform admins).
    tenant_id: String,
    next: Option<String>,
}

pub async fn switch_tenant(State(app): State<AppState>, signed: SignedIn, Form(form): Form<SwitchForm>) -> Response {
    let current = &signed.current;
    let target = if form.tenant_id.is_empty() {
        current.account.platform_admin.then_some(None)
    } else {
        current
            .memberships
            .iter()
            .find(|m| m.tenant_id == form.tenant_id && m.usable())
            .map(|m| Some(m.tenant_id.clone()))
    };
    let Some(target) = target else {
        return super::ui::error_page(
            &app,
            &signed.page.error_headers,
            StatusCode::FORBIDDEN,
            &signed.page.locale.text("errors.forbidden"),
        );
    };
    if let Err(e) = sessions::switch_tenant(&app.store, &current.session.id, target.as_ref()).await {
        tracing::warn!(error = %e, "cannot switch tenant");
    }
    Redirect::to(&safe_next(form.next.as_deref())).into_response()
}

/// "Too many attempts. Try again in 1 second." in the visitor's language.
fn locked(locale: Locale, seconds: u64) -> String {
    locale
        .text("login.locked")
        .replace("{seconds}", &locale.count("units.seconds", seconds))
}

/// How long ago, for people: "3 min", "2 h".
pub fn ago(ms: i64) -> String {
    let d = Duration::from_millis(ms.max(0) as u64);
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

pub async fn forgot_page(State(app): State<AppState>, page: PageContext) -> Response {
    if app.mailer.is_none() {
        return Redirect::to("/login").into_response();
    }
    render_view(&app, &page, "pages/forgot.html", &json!({}), StatusCode::OK)
}

#[derive(Deserialize)]
pub struct ForgotForm {
    email: String,
}

/// Sends a reset link when the address belongs to an account with a password. The answer is
/// the same either way, and arrives before the mail is sent, so nobody learns which addresses
/// have accounts.
/// Creates a reset link for an account with a password and mails it.
async fn send_reset_email(
    app: &AppState,
    mailer: std::sync::Arc<crate::mail::Mailer>,
    email: &str,
    fallback_locale: Locale,
    origin: &crate::store::audit::Origin,
) {
    let account = accounts::by_email(&app.store, email).await.ok().flatten();
    let Some(account) = account.filter(|a| !a.disabled && a.password_hash.is_some()) else {
        return;
    };
    let lifetime = app.config.auth.password_reset_lifetime;
    let created = accounts::create_password_reset(
        &app.store,
        &account.id,
        "self-service",
        None,
        lifetime.as_millis() as i64,
    )
    .await;
    let token = match created {
        Ok(token) => token,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create a reset link");
            return;
        }
    };
    let link = identity::reset_url(&app.config.public_url(), &token);
    let locale = account
        .locale
        .as_deref()
        .and_then(Locale::parse)
        .unwrap_or(fallback_locale);
    let to = identity::Recipient {
        account_id: &account.id,
        email: &account.email,
        name: &account.display_name,
        locale,
    };
    // Asked for by whoever knew the address: the entries name it, in each of its tenants.
    let tenants = identity::audit_tenants(&app.store, &account.id).await;
    let sent = identity::email_reset_link(
        &app.store,
        &mailer,
        &account.email,
        &tenants,
        origin,
        to,
        &link,
        lifetime,
    )
    .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot send the reset email");
    }
}

pub async fn forgot(State(app): State<AppState>, page: PageContext, Form(form): Form<ForgotForm>) -> Response {
    let Some(mailer) = app.mailer.clone() else {
        return Redirect::to("/login").into_response();
    };
    let ip = page.origin.ip.clone().unwrap_or_default();
    let email = form.email.trim().to_lowercase();
    // Per client and per address: a reset form cannot be used to flood a mailbox.
    let limited = app.limits.sign_in_per_ip.check(&ip).is_err() || app.limits.reset_emails.check(&email).is_err();
    if !limited {
        // Everything after the rate limits happens after answering: the response takes as long
        // whether or not the address has an account.
        let (app, locale, origin) = (app.clone(), page.locale, page.origin.clone());
        tokio::spawn(async move { send_reset_email(&app, mailer, &email, locale, &origin).await });
    }
    render_view(
        &app,
        &page,
        "pages/forgot.html",
        &json!({ "sent": true }),
        StatusCode::OK,
    )
}

// --- invitations -------------------------------------------------------------------------

/// The invitation page: what joining means (tenant, role), and the way to accept for whoever
/// opens it. Signed out, it offers both signing in and choosing a password, so the page itself
/// does not say whether the address has an account.
pub async fn invitation_page(State(app): State<AppState>, page: PageContext, Path(token): Path<String>) -> Response {
    invitation_view(&app, &page, &token, None, None, StatusCode::OK).await
}

async fn invitation_view(
    app: &AppState,
    page: &PageContext,
    token: &str,
    message: Option<String>,
    errors: Option<serde_json::Map<String, serde_json::Value>>,
    status: StatusCode,
) -> Response {
    let pending = match invitations::pending_by_token(&app.store, token).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            let view = InvitationView::Gone(InvitationGone {
                invalid: Some(true),
                ..InvitationGone::default()
            });
            return render_view(app, page, "pages/invitation.html", &view, StatusCode::NOT_FOUND);
        }
        Err(e) => {
            tracing::warn!(error = %e, "invitation page: cannot read the invitation");
            return super::ui::error_page(
                app,
                &page.error_headers,
                StatusCode::SERVICE_UNAVAILABLE,
                &page.locale.text("errors.unavailable"),
            );
        }
    };
    let lead = page
        .locale
        .text("invitation.lead")
        .replace("{tenant}", &pending.tenant_name)
        .replace("{role}", &page.locale.text(&format!("roles.{}", pending.role)));
    let state = match &page.current {
        Some(current) if current.account.email.eq_ignore_ascii_case(&pending.email) => "invitee",
        Some(_) => "other",
        None => "anonymous",
    };
    let other_account = (state == "other").then(|| {
        page.locale
            .text("invitation.other_account")
            .replace("{email}", &pending.email)
    });
    let view = InvitationView::Open(OpenInvitation {
        lead,
        display_name: pending.display_name.clone().unwrap_or_default(),
        email: pending.email,
        token: token.to_owned(),
        local_login: app.config.auth.local_login,
        next: format!("/invitations/{token}"),
        state,
        other_account,
        message,
        errors,
    });
    render_view(app, page, "pages/invitation.html", &view, status)
}

/// `pages/invitation.html`: an invitation to accept, or why there is none.
#[derive(Serialize)]
#[serde(untagged)]
enum InvitationView {
    Open(OpenInvitation),
    Gone(InvitationGone),
}

/// An invitation that can be accepted: by the invitee signed in, after signing in or
/// registering, or not by the account signed in.
#[derive(Serialize)]
struct OpenInvitation {
    lead: String,
    email: String,
    token: String,
    display_name: String,
    local_login: bool,
    next: String,
    /// `invitee`, `other` or `anonymous`.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    other_account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<serde_json::Map<String, serde_json::Value>>,
}

/// No invitation to accept: it is not there (any more), not for this account, or declined.
#[derive(Default, Serialize)]
struct InvitationGone {
    #[serde(skip_serializing_if = "Option::is_none")]
    invalid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    declined: Option<bool>,
}

/// The page for an invitation that cannot be used (any more, or by this account).
fn invitation_refused(app: &AppState, page: &PageContext, error: InvitationError) -> Response {
    let (status, refused) = match error {
        InvitationError::NotPending => (StatusCode::NOT_FOUND, None),
        InvitationError::OtherAccount | InvitationError::Disabled => {
            (StatusCode::FORBIDDEN, Some("invitation.not_yours"))
        }
        InvitationError::InviterCannotGrant => (StatusCode::FORBIDDEN, Some("invitation.inviter_cannot_grant")),
        InvitationError::Store(e) => {
            tracing::warn!(error = %e, "invitation: storage failed");
            return super::ui::error_page(
                app,
                &page.error_headers,
                StatusCode::SERVICE_UNAVAILABLE,
                &page.locale.text("errors.unavailable"),
            );
        }
    };
    let view = InvitationView::Gone(match refused {
        Some(key) => InvitationGone {
            refused: Some(page.locale.text(key)),
            ..InvitationGone::default()
        },
        None => InvitationGone {
            invalid: Some(true),
            ..InvitationGone::default()
        },
    });
    render_view(app, page, "pages/invitation.html", &view, status)
}

pub async fn accept_invitation(State(app): State<AppState>, signed: SignedIn, Path(token): Path<String>) -> Response {
    let current = &signed.current;
    match auth_invitations::accept(&app.store, &token, &current.account, &signed.page.origin).await {
        Ok(pending) => {
            // Straight into the tenant just joined.
            if let Err(e) = sessions::switch_tenant(&app.store, &current.session.id, Some(&pending.tenant_id)).await {
                tracing::warn!(error = %e, "cannot switch to the tenant just joined");
            }
            Redirect::to("/").into_response()
        }
        Err(e) => invitation_refused(&app, &signed.page, e),
    }
}

pub async fn decline_invitation(State(app): State<AppState>, signed: SignedIn, Path(token): Path<String>) -> Response {
    match auth_invitations::decline(&app.store, &token, &signed.current.account, &signed.page.origin).await {
        Ok(_) => {
            let view = InvitationView::Gone(InvitationGone {
                declined: Some(true),
                ..InvitationGone::default()
            });
            render_view(&app, &signed.page, "pages/invitation.html", &view, StatusCode::OK)
        }
        Err(e) => invitation_refused(&app, &signed.page, e),
    }
}

#[derive(Deserialize)]
pub struct RegisterForm {
    display_name: Option<String>,
    password: String,
    confirm: String,
}

/// Someone new accepts by choosing a password: the account is created with the invitation's
/// address, joins the tenant, and is signed in. An address that already has an account must
/// sign in instead; its password is never set from here.
pub async fn register_invitation(
    State(app): State<AppState>,
    page: PageContext,
    Path(token): Path<String>,
    Form(form): Form<RegisterForm>,
) -> Response {
    if page.current.is_some() {
        return Redirect::to(&format!("/invitations/{}", session::urlencode(&token))).into_response();
    }
    if !app.config.auth.local_login {
        return invitation_view(
            &app,
            &page,
            &token,
            Some(page.locale.text("login.disabled")),
            None,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    // Hashing costs CPU: the same per-address budget as signing in.
    let ip = page.origin.ip.clone().unwrap_or_default();
    if let Err(wait) = app.limits.sign_in_per_ip.check(&ip) {
        let message = locked(page.locale, retry_after_secs(wait));
        return invitation_view(&app, &page, &token, Some(message), None, StatusCode::TOO_MANY_REQUESTS).await;
    }
    let pending = match invitations::pending_by_token(&app.store, &token).await {
        Ok(Some(p)) => p,
        Ok(None) => return invitation_refused(&app, &page, InvitationError::NotPending),
        Err(e) => return invitation_refused(&app, &page, InvitationError::Store(e)),
    };
    let mut errors = serde_json::Map::new();
    if let Err(e) = password::check_policy(&form.password, &pending.email) {
        errors.insert("password".into(), json!(page.locale.translate(&e.to_string())));
    } else if form.password != form.confirm {
        errors.insert("confirm".into(), json!(page.locale.text("setup.mismatch")));
    }
    if !errors.is_empty() {
        return invitation_view(
            &app,
            &page,
            &token,
            None,
            Some(errors),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let exists = || {
        let message = page.locale.text("invitation.sign_in_instead");
        invitation_view(&app, &page, &token, Some(message), None, StatusCode::CONFLICT)
    };
    match accounts::by_email(&app.store, &pending.email).await {
        Ok(None) => {}
        Ok(Some(_)) => return exists().await,
        Err(e) => return invitation_refused(&app, &page, InvitationError::Store(e)),
    }
    // Before the account exists: an invitation its maker can no longer grant makes nobody.
    if let Err(e) = auth_invitations::check_inviter(&app.store, &pending, &pending.email, &page.origin).await {
        return invitation_refused(&app, &page, e);
    }
    let Some(hash) = password::hash_off_thread(form.password).await.ok() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let input = NewAccount {
        email: pending.email.clone(),
        display_name: form
            .display_name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .or(pending.display_name.clone()),
        password_hash: Some(hash),
        platform_admin: false,
    };
    let account = match accounts::create(&app.store, input).await {
        Ok(account) => account,
        Err(crate::store::StoreError::Conflict { .. }) => return exists().await,
        Err(crate::store::StoreError::Invalid(v)) => {
            let errors = v
                .errors
                .into_iter()
                .map(|e| {
                    (
                        e.pointer.trim_start_matches('/').to_owned(),
                        json!(page.locale.translate(&e.detail)),
                    )
                })
                .collect();
            return invitation_view(
                &app,
                &page,
                &token,
                None,
                Some(errors),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(e) => return invitation_refused(&app, &page, InvitationError::Store(e)),
    };
    if let Err(e) = auth_invitations::accept(&app.store, &token, &account, &page.origin).await {
        return invitation_refused(&app, &page, e);
    }
    match start_session(&app, &page, &account, "password", None, None).await {
        Ok(cookie) => {
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "invitation: cannot create the session");
            Redirect::to("/login").into_response()
        }
    }
}
