//! `/hooks/{tenant}/{installation}/…`: inbound HTTP for webhook plugins. The request reaches the
//! plugin as it came (method, path after the installation, headers, the raw body, so signatures
//! can be checked). The plugin's answer goes back with its status and body, but it is served
//! on the UI's origin, so it must never act with that origin's authority: only data headers
//! of the plugin pass, never cookies or security policies; every answer is sandboxed (no
//! script, no forms, an opaque origin), never sniffed, never framed; and content types a
//! browser would run or render as a page become an opaque download.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::AppState;
use super::problem::ApiError;
use crate::plugins::HookRequest;
use crate::plugins::dispatch::HookOutcome;

/// Largest inbound body.
const MAX_HOOK_BODY: usize = 1 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/hooks/{tenant}/{installation}", any(hook))
        .route("/hooks/{tenant}/{installation}/{*rest}", any(hook))
        .layer(DefaultBodyLimit::max(MAX_HOOK_BODY))
}

/// With `http.hooks_host` set, hooks are answered only on that host and nothing else is
/// served there: a plugin's answer then never shares an origin with the UI.
pub async fn separate_host(
    State(app): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(hooks_host) = app.config.http.hooks_host.as_deref() else {
        return next.run(request).await;
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let on_hooks_host = host.eq_ignore_ascii_case(hooks_host);
    let path = request.uri().path();
    let is_hook = path.starts_with("/hooks/");
    // Probes ask any host.
    let anywhere = matches!(path, "/healthz" | "/readyz");
    if anywhere || on_hooks_host == is_hook {
        next.run(request).await
    } else {
        ApiError::not_found("not served on this host").into_response()
    }
}

async fn hook(
    State(app): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (tenant_slug, installation) = (param("tenant"), param("installation"));
    // Guessing at hooks is what an anonymous caller pays for (see `shield`).
    let not_found = || {
        ApiError::not_found("no webhook here")
            .anonymous_refusal()
            .into_response()
    };
    let tenant = match app.plugins.hook_tenant(&tenant_slug).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return not_found(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    // The body is read only for a hook that exists.
    match app.plugins.has_hook(tenant.id(), &installation).await {
        Ok(true) => {}
        Ok(false) => return not_found(),
        Err(e) => return ApiError::from(e).into_response(),
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_HOOK_BODY).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is larger than hooks accept",
        )
        .into_response();
    };
    let scope = tenant.system_scope(&installation);
    let prefix = format!("/hooks/{tenant_slug}/{installation}");
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .strip_prefix(&prefix)
        .map(|rest| {
            if rest.is_empty() || rest.starts_with('?') {
                format!("/{rest}")
            } else {
                rest.to_owned()
            }
        })
        .unwrap_or_else(|| "/".into());
    let request = HookRequest {
        method: method.as_str().to_owned(),
        path,
        headers: forwarded_headers(&headers),
        body: body.to_vec(),
    };
    let (answer, emitted) = match app.plugins.hook(tenant.id(), &installation, request).await {
        Ok(HookOutcome::Ran(answer, emitted)) => (answer, emitted),
        Ok(HookOutcome::NotFound) => return not_found(),
        Ok(HookOutcome::Limited(wait)) => {
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "this webhook takes no more requests just now",
            );
            error.retry_after = Some(wait);
            return error.into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    if !emitted.is_empty()
        && let Err(e) = app.live.accept_from_plugin(&scope, emitted).await
    {
        return ApiError::from(e).into_response();
    }
    match answer {
        Ok(Ok(response)) => plugin_answer(status_of(response.status), response.headers, response.body),
        Ok(Err(error)) => {
            let status = if error.retryable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            ApiError::new(status, format!("the plugin refused the request: {}", error.message)).into_response()
        }
        Err(failure) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the plugin failed ({})", failure.kind.as_str()),
        )
        .into_response(),
    }
}

/// The request's headers as the plugin sees them: never the browser's cookies, nor a Monti
/// credential. A signed-in person who follows a link to a hook must not hand their session to
/// the tenant whose plugin answers it.
fn forwarded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, value)| {
            *name != header::COOKIE
                && !(*name == header::AUTHORIZATION && value.to_str().is_ok_and(|v| v.contains("monti_")))
        })
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

fn status_of(code: u16) -> StatusCode {
    StatusCode::from_u16(code)
        .ok()
        .filter(|s| !s.is_informational())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

/// Response headers a plugin may set: what describes the data. Cookies, security policies,
/// CORS, redirects, authentication challenges (a browser would prompt for a password on the UI's
/// origin) and everything else are the server's alone.
const PLUGIN_HEADERS: [&str; 7] = [
    "content-type",
    "content-language",
    "content-encoding",
    "cache-control",
    "etag",
    "last-modified",
    "retry-after",
];

/// Media types served as the plugin named them: data for machines. Anything else (HTML, SVG,
/// JavaScript, XHTML …) is served as `application/octet-stream`.
fn data_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/json"
            | "application/problem+json"
            | "text/plain"
            | "text/csv"
            | "application/xml"
            | "text/xml"
            | "application/x-www-form-urlencoded"
            | "application/octet-stream"
    ) || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Sandboxed: no script runs, no form submits, no plugin, and the page has an opaque origin
/// (so no cookie or storage of ours); it cannot be framed either.
const HOOK_CONTENT_SECURITY_POLICY: &str = "sandbox; default-src 'none'; frame-ancestors 'none'";

/// A plugin's answer as served: its status and body, the headers it may set, and ours.
fn plugin_answer(status: StatusCode, headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
    let mut out = Response::new(axum::body::Body::from(body));
    *out.status_mut() = status;
    for (name, value) in headers {
        let Ok(name) = HeaderName::try_from(name) else {
            continue;
        };
        if !PLUGIN_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = if name == header::CONTENT_TYPE && !data_media_type(&value) {
            "application/octet-stream".to_owned()
        } else {
            value
        };
        if let Ok(value) = HeaderValue::try_from(value) {
            out.headers_mut().insert(name, value);
        }
    }
    let ours = out.headers_mut();
    ours.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(HOOK_CONTENT_SECURITY_POLICY),
    );
    ours.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    ours.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    ours.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    ours.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_cannot_set_cookies_policies_or_serve_a_page() {
        let answer = plugin_answer(
            StatusCode::OK,
            vec![
                ("Content-Type".into(), "text/html; charset=utf-8".into()),
                ("Set-Cookie".into(), "monti_session=stolen; Path=/".into()),
                ("Content-Security-Policy".into(), "script-src *".into()),
                ("X-Frame-Options".into(), "ALLOWALL".into()),
                ("Access-Control-Allow-Origin".into(), "*".into()),
                ("Location".into(), "https://evil.example/".into()),
                ("ETag".into(), "\"v1\"".into()),
                ("WWW-Authenticate".into(), "Basic realm=\"Monti\"".into()),
            ],
            b"<script>alert(1)</script>".to_vec(),
        );
        let headers = answer.headers();
        assert!(headers.get(header::SET_COOKIE).is_none());
        assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert!(headers.get(header::LOCATION).is_none());
        assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], HOOK_CONTENT_SECURITY_POLICY);
        assert_eq!(headers.get_all(header::CONTENT_SECURITY_POLICY).iter().count(), 1);
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::ETAG], "\"v1\"");
    }

    #[test]
    fn cookies_and_monti_credentials_stay_with_the_server() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("monti_session=s3cret"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer monti_abc"));
        headers.insert("x-signature", HeaderValue::from_static("sig"));
        assert_eq!(
            forwarded_headers(&headers),
            vec![("x-signature".to_owned(), "sig".to_owned())]
        );
        let mut own = HeaderMap::new();
        own.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer crm-token"));
        assert_eq!(forwarded_headers(&own).len(), 1, "the caller's own credentials pass");
    }

    #[test]
    fn data_types_pass_as_named() {
        for data in [
            "application/json",
            "text/plain; charset=utf-8",
            "application/vnd.api+json",
            "text/XML",
        ] {
            assert!(data_media_type(data), "{data}");
        }
        for active in [
            "text/html",
            "image/svg+xml",
            "application/javascript",
            "application/xhtml+xml",
            "",
        ] {
            assert!(!data_media_type(active), "{active}");
        }
    }

    #[test]
    fn informational_statuses_are_not_passed_on() {
        assert_eq!(status_of(101), StatusCode::BAD_GATEWAY);
        assert_eq!(status_of(99), StatusCode::BAD_GATEWAY);
        assert_eq!(status_of(204), StatusCode::NO_CONTENT);
    }
}
