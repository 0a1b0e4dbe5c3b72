//! Health, readiness and metrics endpoints for orchestrators and monitoring.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::problem::ApiError;

/// The process is up and serving HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// The database answers and its schema is current.
pub async fn readyz(State(app): State<AppState>) -> Response {
    match app.store.readiness().await {
        Ok(()) => axum::Json(serde_json::json!({ "status": "ready", "database": app.store.backend().as_str() }))
            .into_response(),
        Err(reason) => {
            let mut err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason);
            err.retry_after = Some(5);
            err.into_response()
        }
    }
}

/// Prometheus metrics; with `metrics.token` set, only for requests bearing that token.
pub async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &app.config.metrics.token {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let admitted =
            crate::auth::bearer(given).is_ok_and(|token| crate::secrets::constant_time_eq(token, expected.expose()));
        if !admitted {
            let mut err = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this server's metrics need the bearer token configured as metrics.token",
            );
            err.www_authenticate = Some("Bearer realm=\"metrics\"");
            return err.anonymous_refusal().into_response();
        }
    }
    let mut response = app.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
