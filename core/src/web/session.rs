//! Browser sessions on the web side: the session cookie, who is signed in, the language, and the
//! CSRF check that guards every state-changing browser request.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::AppState;
use crate::auth::Principal;
use crate::i18n::Locale;
use crate::secrets::{constant_time_eq, random_secret};
use crate::store::accounts::{self, Account, Membership};
use crate::store::audit::Origin;
use crate::store::sessions::{self, Session};

/// The form field and header that carry the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Cookie names. With `Secure` cookies the `__Host-` prefix makes browsers refuse them from
/// sub-domains and over plain HTTP.
fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-monti_session"
    } else {
        "monti_session"
    }
}
fn csrf_cookie_name(secure: bool) -> &'static str {
    if secure { "__Host-monti_csrf" } else { "monti_csrf" }
}

/// A cookie value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 4096)
}

fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("monti_invalid=; Max-Age=0"))
}

/// The `Set-Cookie` that starts a session.
pub fn session_cookie(app: &AppState, secret: &str) -> HeaderValue {
    let secure = app.config.secure_cookies();
    let lifetime = app.config.auth.session_lifetime.as_secs() as i64;
    set_cookie(session_cookie_name(secure), secret, Some(lifetime), secure)
}

/// The `Set-Cookie` that ends a session in the browser.
pub fn clear_session_cookie(app: &AppState) -> HeaderValue {
    let secure = app.config.secure_cookies();
    set_cookie(session_cookie_name(secure), "", Some(0), secure)
}

/// Who is signed in, resolved once per request by [`resolve`].
#[derive(Debug, Clone)]
pub struct Current {
    pub session: Session,
    pub account: Account,
    /// What the session may do now: in its tenant, or as platform admin. `None` when the
    /// account has no usable role (a "no access" page, not an error).
    pub principal: Option<Principal>,
    pub memberships: Vec<Membership>,
}

impl Current {
    pub fn membership(&self) -> Option<&Membership> {
        let tenant = self.session.tenant_id.as_deref()?;
        self.memberships.iter().find(|m| m.tenant_id == tenant)
    }
}

/// Request-scoped facts the pages need: the signed-in user (if any), the language, the CSRF
/// token to put in forms, and where the request came from.
#[derive(Debug, Clone)]
pub struct PageContext {
    pub current: Option<Arc<Current>>,
    pub locale: Locale,
    pub csrf_token: String,
    /// A new anonymous CSRF cookie to set on the response.
    pub new_csrf_cookie: bool,
    pub origin: Origin,
    /// `METHOD /path`, for audit entries about this request.
    pub target: String,
    /// The request's headers an error page depends on (`HX-Request`, `X-Request-Id`), so
    /// handlers without the request at hand still answer htmx with a fragment.
    pub error_headers: HeaderMap,
}

/// Where a request came from, for the audit log and rate limits.
pub fn origin_of(parts_headers: &HeaderMap, peer: Option<SocketAddr>, trust_forwarded: bool) -> Origin {
    let forwarded = trust_forwarded
        .then(|| {
            parts_headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                // The entry our proxy appended is the last; earlier ones are the client's say.
                .and_then(|v| v.rsplit(',').next())
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        })
        .flatten();
    Origin {
        ip: forwarded.or_else(|| peer.map(|p| p.ip().to_string())),
        user_agent: parts_headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        request_id: parts_headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// Middleware for browser routes: resolves the session and language, then checks the CSRF
/// token of every state-changing request before any handler runs.
pub async fn resolve(axum::extract::State(app): axum::extract::State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let origin = origin_of(&parts.headers, peer, app.config.http.trust_forwarded_for);
    let secure = app.config.secure_cookies();
    let current = match cookie(&parts.headers, session_cookie_name(secure)) {
        Some(secret) => match load_current(&app, secret).await {
            Ok(current) => current.map(Arc::new),
            Err(e) => {
                tracing::warn!(error = %e, "cannot load the session");
                return super::ui::error_page(
                    &app,
                    &parts.headers,
                    StatusCode::SERVICE_UNAVAILABLE,
                    &Locale::En.text("errors.unavailable"),
                );
            }
        },
        None => None,
    };
    let locale = current
        .as_ref()
        .and_then(|c| c.account.locale.as_deref())
        .and_then(Locale::parse)
        .or_else(|| {
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Locale::from_accept_language)
        })
        .unwrap_or_default();
    let anonymous_csrf = cookie(&parts.headers, csrf_cookie_name(secure)).map(str::to_owned);
    let (csrf_token, new_csrf_cookie) = match (&current, &anonymous_csrf) {
        (Some(c), _) => (c.session.csrf_token.clone(), false),
        (None, Some(existing)) => (existing.clone(), false),
        (None, None) => (random_secret(), true),
    };
    let context = PageContext {
        current,
        locale,
        csrf_token,
        new_csrf_cookie,
        origin,
        target: format!("{} {}", parts.method, parts.uri.path()),
        error_headers: ["hx-request", "x-request-id"]
            .into_iter()
            .filter_map(|name| Some((header::HeaderName::from_static(name), parts.headers.get(name)?.clone())))
            .collect(),
    };

    let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let body = if unsafe_method {
        if let Err(reason) = same_origin(&app, &parts.headers) {
            return csrf_failure(&app, &parts, &context, reason).await;
        }
        // Who is calling decides how much of a body is read at all: an anonymous visitor only
        // ever sends a small form, so a large upload costs nothing before someone signed in.
        let limit = form_limit(&app, &parts, context.current.as_deref());
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let bytes = match declared {
            Some(length) if length > limit as u64 => Err(()),
            _ => axum::body::to_bytes(body, limit).await.map_err(|_| ()),
        };
        let Ok(bytes) = bytes else {
            metrics::counter!("http_form_too_large_total").increment(1);
            let refusal = super::ui::error_page(
                &app,
                &parts.headers,
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is larger than the server accepts.",
            );
            return match context.current {
                Some(_) => refusal,
                None => super::shield::charge(refusal),
            };
        };
        let presented = presented_csrf(&parts.headers, &bytes);
        // Before a session exists (sign-in, setup) the token is bound to a cookie instead.
        let expected = match &context.current {
            Some(_) => Some(context.csrf_token.as_str()),
            None => anonymous_csrf.as_deref(),
        };
        let valid = matches!((presented.as_deref(), expected), (Some(p), Some(e)) if constant_time_eq(p, e));
        if !valid {
            return csrf_failure(&app, &parts, &context, "missing or wrong CSRF token").await;
        }
        Body::from(bytes)
    } else {
        body
    };
    let new_cookie = context.new_csrf_cookie.then(|| context.csrf_token.clone());
    parts.extensions.insert(context);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if let Some(token) = new_cookie {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(csrf_cookie_name(secure), &token, None, secure),
        );
    }
    response
}

/// What an anonymous visitor may post: sign-in, setup, reset and forgot-password forms.
pub const ANONYMOUS_FORM_BYTES: usize = 16 * 1024;

/// The largest body a browser request may carry: small for anonymous visitors, the configured
/// size for signed-in users, and a plugin component only for those who may install plugins.
fn form_limit(app: &AppState, parts: &Parts, current: Option<&Current>) -> usize {
    let Some(current) = current else {
        return ANONYMOUS_FORM_BYTES;
    };
    let installs_plugins = current
        .principal
        .as_ref()
        .is_some_and(|p| crate::auth::permits(p.role(), crate::auth::Action::Write, crate::auth::Area::Configuration));
    if parts.uri.path() == "/admin/plugins" && installs_plugins {
        app.config
            .http
            .max_body_bytes
            .max(super::plugins_api::MAX_COMPONENT_BYTES + 64 * 1024)
    } else {
        app.config.http.max_body_bytes
    }
}

/// Browsers send `Origin` (and `Sec-Fetch-Site`) with cross-site form posts; refuse those.
fn same_origin(app: &AppState, headers: &HeaderMap) -> Result<(), &'static str> {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return Err("cross-site request");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let public = app.config.public_url();
    let matches_host = origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host));
    if origin.eq_ignore_ascii_case(&public) || matches_host {
        Ok(())
    } else {
        Err("request from another origin")
    }
}

fn presented_csrf(headers: &HeaderMap, body: &Bytes) -> Option<String> {
    if let Some(v) = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(v.to_owned());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return form_urlencoded_value(body, CSRF_FIELD);
    }
    if content_type.starts_with("multipart/form-data") {
        return multipart_value(content_type, body, CSRF_FIELD);
    }
    None
}

/// One small text field of a `multipart/form-data` body (file uploads carry the CSRF token as
/// a field like any form).
fn multipart_value(content_type: &str, body: &[u8], name: &str) -> Option<String> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let wanted = format!("name=\"{name}\"");
    let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    text.split(delimiter.as_str()).find_map(|part| {
        let (head, value) = part.split_once("\r\n\r\n")?;
        head.contains(&wanted)
            .then(|| value.trim_end_matches("\r\n").to_owned())
    })
}

/// One field of an `application/x-www-form-urlencoded` body.
pub fn form_urlencoded_value(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A refused state-changing request. What a signed-in person's browser was made to send is
/// audited (at most once a second per account); anonymous noise is counted and logged at a
/// bounded rate, never written to the append-only audit log.
async fn csrf_failure(app: &AppState, parts: &Parts, context: &PageContext, reason: &str) -> Response {
    metrics::counter!("http_csrf_rejected_total", "signed_in" => if context.current.is_some() { "true" } else { "false" })
        .increment(1);
    match context.current.as_ref() {
        Some(current) => {
            let actor = format!("user:{}", current.account.id);
            if app.limits.audit_failures.check(&format!("csrf:{actor}")).is_ok() {
                let event = crate::store::audit::AuditEvent::new(
                    current.session.tenant_id.as_ref(),
                    &actor,
                    "security.csrf_rejected",
                    crate::store::audit::Outcome::Denied,
                )
                .detail(format!("{reason}: {} {}", parts.method, parts.uri.path()));
                crate::store::audit::record(&app.store, event, &context.origin).await;
            }
        }
        None => {
            let client = context.origin.ip.as_deref().unwrap_or("unknown");
            if app.limits.audit_failures.check(&format!("csrf-log:{client}")).is_ok() {
                tracing::info!(client, reason, path = %parts.uri.path(), "refused an anonymous form post");
            }
        }
    }
    let refusal = super::ui::error_page(
        app,
        &parts.headers,
        StatusCode::FORBIDDEN,
        &context.locale.text("errors.csrf"),
    );
    match context.current {
        Some(_) => refusal,
        None => super::shield::charge(refusal),
    }
}

/// Loads the session for a cookie secret with its account and memberships. `None` when the
/// session is unknown, expired, revoked, or its account is disabled.
async fn load_current(app: &AppState, secret: &str) -> Result<Option<Current>, crate::store::StoreError> {
    let idle = app.config.auth.session_idle_timeout.as_millis() as i64;
    let Some(session) = sessions::find_active(&app.store, secret, idle).await? else {
        return Ok(None);
    };
    let account = accounts::by_id(&app.store, &session.user_id).await?;
    if account.disabled {
        return Ok(None);
    }
    let memberships = accounts::memberships(&app.store, &account.id).await?;
    let actor = format!("user:{}", account.id);
    let principal = match &session.tenant_id {
        Some(tenant) => memberships
            .iter()
            .find(|m| &m.tenant_id == tenant && m.usable())
            .and_then(|m| m.scope(actor))
            .map(Principal::Tenant),
        None if account.platform_admin => Some(Principal::Platform { actor }),
        None => None,
    };
    Ok(Some(Current {
        session,
        account,
        principal,
        memberships,
    }))
}

/// What the session behind a browser request's cookie grants now (`None`: signed out, revoked,
/// expired or no role): for streams, which check again while they run.
pub async fn principal_now(app: &AppState, headers: &HeaderMap) -> Result<Option<Principal>, crate::store::StoreError> {
    match cookie(headers, session_cookie_name(app.config.secure_cookies())) {
        Some(secret) => Ok(load_current(app, secret).await?.and_then(|c| c.principal)),
        None => Ok(None),
    }
}

/// The page context of a browser request (always present behind [`resolve`]).
impl FromRequestParts<AppState> for PageContext {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<PageContext>()
            .cloned()
            .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

/// A signed-in user. Anonymous visitors are sent to the sign-in page (htmx requests get an
/// `HX-Redirect`, so a fragment never replaces part of a page with a login form).
pub struct SignedIn {
    pub page: PageContext,
    pub current: Arc<Current>,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let page = PageContext::from_request_parts(parts, state).await?;
        match page.current.clone() {
            Some(current) => Ok(SignedIn { page, current }),
            None => Err(to_sign_in(&parts.headers, &parts.uri)),
        }
    }
}

/// Redirects to `/login`, remembering where the user wanted to go.
pub fn to_sign_in(headers: &HeaderMap, uri: &axum::http::Uri) -> Response {
    let next = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| *p != "/")
        .map(|p| format!("?next={}", urlencode(p)))
        .unwrap_or_default();
    let target = format!("/login{next}");
    if super::ui::is_htmx(headers) {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            response.headers_mut().insert("hx-redirect", v);
        }
        return response;
    }
    Redirect::to(&target).into_response()
}

pub fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A `next` target is followed only if it stays on this site: a path starting with a single
/// `/`, with no control characters or backslashes anywhere (browsers drop tabs and newlines and
/// read `\` as `/`, which would turn `/\t/evil.example` into `//evil.example`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() <= 2048
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; monti_session=abc; b=2"));
        assert_eq!(cookie(&headers, "monti_session"), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn next_targets_stay_on_site() {
        assert_eq!(safe_next(Some("/admin/users?x=1")), "/admin/users?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/a\\b")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(
            form_urlencoded_value(b"email=a%40b.c&_csrf=x%2By", CSRF_FIELD).as_deref(),
            Some("x+y")
        );
        assert_eq!(form_urlencoded_value(b"garbage", CSRF_FIELD), None);
    }
}
