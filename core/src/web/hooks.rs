//! `/hooks/{tenant}/{installation}/…`: inbound HTTP for webhook plugins. The request reaches the
//! plugin as it came (method, path after the installation, headers, the raw body, so signatures
//! can be checked); the plugin's answer goes back as it gave it.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::AppState;
use super::problem::ApiError;
use crate::plugins::HookRequest;
use crate::plugins::dispatch::HookOutcome;
use crate::store::tenants;

/// Largest inbound body.
const MAX_HOOK_BODY: usize = 1 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/hooks/{tenant}/{installation}", any(hook))
        .route("/hooks/{tenant}/{installation}/{*rest}", any(hook))
        .layer(DefaultBodyLimit::max(MAX_HOOK_BODY))
}

async fn hook(
    State(app): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (tenant_slug, installation) = (param("tenant"), param("installation"));
    let not_found = || ApiError::not_found("no webhook here").into_response();
    let Ok(Some(tenant)) = tenants::by_slug(&app.store, &tenant_slug).await else {
        return not_found();
    };
    if tenant.suspended_at.is_some() {
        return not_found();
    }
    let Ok(scope) = tenants::operator_scope(&app.store, &tenant.slug).await else {
        return not_found();
    };
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
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    let (answer, emitted) = match app.live.plugins.hook(scope.tenant_id(), &installation, request).await {
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
        Ok(Ok(response)) => {
            let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            // The plugin's headers as it gave them (no default content type of ours).
            let mut out = Response::new(axum::body::Body::from(response.body));
            *out.status_mut() = status;
            for (name, value) in response.headers {
                if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                    out.headers_mut().append(name, value);
                }
            }
            out
        }
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
