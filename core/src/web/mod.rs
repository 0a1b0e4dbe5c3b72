//! The HTTP server: REST API, web UI, static assets, health and metrics.

pub mod admin;
pub mod admin_access;
pub mod admin_plugins;
pub mod admin_rules;
pub mod admin_tenant;
pub mod alerts;
pub mod alerts_ui;
pub mod api;
pub mod auth_pages;
pub mod board;
pub mod control;
pub mod extract;
pub mod history;
pub mod hooks;
pub mod ingest;
pub mod list_cache;
pub mod openapi;
pub mod ops;
pub mod page_error;
pub mod plugins_api;
pub mod problem;
pub mod recordings;
pub mod reports;
pub mod saved_reports;
pub mod session;
pub mod shield;
pub mod sso;
pub mod stream;
pub mod ui;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use self::problem::ApiError;
use crate::assets::Assets;
use crate::config::Config;
use crate::store::Store;

const REQUEST_ID: &str = "x-request-id";
/// No inline script or style, nothing from elsewhere, never framed, forms only to ourselves.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Browsers allowed to call the API from other origins (`auth.cors_origins`).
fn cors(config: &Config) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<HeaderValue> = config
        .auth
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            axum::http::Method::GET,
            axum::http::Method::POST,
            axum::http::Method::PATCH,
            axum::http::Method::PUT,
            axum::http::Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
        ])
        .expose_headers([header::ETAG, header::LOCATION, header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(600))
}

/// Everything a request handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub templates: Arc<tera::Tera>,
    pub assets: Arc<Assets>,
    pub metrics: PrometheusHandle,
    pub openapi_json: Bytes,
    pub list_cache: Arc<list_cache::ListCache>,
    pub tokens: Arc<crate::auth::TokenCache>,
    pub limits: Arc<crate::auth::ratelimit::Limits>,
    pub oidc: Arc<crate::auth::oidc::OidcRegistry>,
    pub jwt: Arc<crate::auth::jwt::JwtVerifier>,
    /// `None` when no SMTP server is configured.
    pub mailer: Option<Arc<crate::mail::Mailer>>,
    /// Every tenant's live floor in this instance.
    pub live: Arc<crate::live::service::LiveService>,
    /// Every tenant's plugins: their runtimes, hooks, streams and commands.
    pub plugins: Arc<crate::plugins::dispatch::Dispatcher>,
    /// Every tenant's alert rules, evaluated on the live floors.
    pub rules: Arc<crate::rules::service::RuleService>,
    /// Holds off addresses whose anonymous requests keep being refused.
    pub shield: Arc<shield::Shield>,
}

impl AppState {
    /// The plugin services' view of the running server.
    pub fn running_plugins(&self) -> crate::service::plugins::Running<'_> {
        crate::service::plugins::Running::server(&self.store, &self.plugins, &self.live)
    }

    /// The tenant services' view of the running server.
    pub fn running_tenants(&self) -> crate::service::tenants::Running<'_> {
        crate::service::tenants::Running {
            grants: &self.tokens,
            plugins: &self.plugins,
        }
    }
}

/// The complete application.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    let body_limit = state.config.http.max_body_bytes;
    let timeout = state.config.http.request_timeout;
    let pages = Router::new()
        .route("/", get(ui::home))
        .route("/login", get(auth_pages::login_page).post(auth_pages::login))
        .route("/logout", post(auth_pages::logout))
        .route("/setup", get(auth_pages::setup_page).post(auth_pages::setup))
        .route("/reset", get(auth_pages::reset_page).post(auth_pages::reset))
        .route("/forgot", get(auth_pages::forgot_page).post(auth_pages::forgot))
        .route("/account", get(auth_pages::account_page))
        .route("/account/password", post(auth_pages::change_password))
        .route("/account/locale", post(auth_pages::set_locale))
        .route("/account/sessions/{id}/revoke", post(auth_pages::revoke_session))
        .route(
            "/account/sessions/revoke-others",
            post(auth_pages::revoke_other_sessions),
        )
        .route("/tenant/switch", post(auth_pages::switch_tenant))
        .route("/auth/oidc/{provider}/start", get(sso::start))
        .route("/auth/oidc/{provider}/callback", get(sso::callback))
        .route("/api/docs", get(ui::api_reference))
        .merge(admin::router())
        .merge(board::router())
        .merge(alerts_ui::router())
        .merge(history::router())
        .merge(recordings::router())
        .merge(reports::router())
        .merge(saved_reports::router())
        .merge(admin_rules::router())
        .merge(control::board_router())
        .merge(admin_plugins::router())
        .merge(admin_access::router())
        .merge(admin_tenant::router())
        // Inside the session layer: a failure is rendered for the request's visitor.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            page_error::render_page_errors,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), session::resolve));
    let hsts = state.config.public_url().starts_with("https://");
    // Event batches may be larger than other requests.
    let events = Router::new()
        .route("/events", post(ingest::post_events))
        .route("/live/snapshot", get(ingest::snapshot))
        .route("/live/stream", get(ingest::stream))
        // Browsers cannot set headers on a WebSocket: they connect with a stream ticket.
        .route("/live/ws", get(ingest::websocket))
        .route("/live/tickets", post(ingest::create_ticket))
        .layer(DefaultBodyLimit::max(state.config.http.max_ingest_bytes));
    let api = api::router()
        .merge(events)
        .merge(plugins_api::router())
        .merge(control::api_router())
        .merge(alerts::api_router())
        .merge(history::api_router())
        .merge(reports::api_router())
        .merge(saved_reports::api_router())
        .merge(recordings::api_router())
        .layer(middleware::from_fn_with_state(state.clone(), audit_denials));
    let api = if state.config.auth.cors_origins.is_empty() {
        api
    } else {
        api.layer(cors(&state.config))
    };
    let router = Router::new()
        .nest("/api/v1", api)
        .merge(pages)
        .merge(hooks::router())
        .merge(recordings::media_router())
        .route("/static/{*path}", get(ui::static_file))
        .route("/favicon.ico", get(ui::favicon))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(ui::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), hooks::separate_host))
        .layer(middleware::from_fn(explain_empty_errors))
        .layer(middleware::from_fn(track_metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::internal().into_response()
        }))
        .layer(security_header(
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        ))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(
            header::REFERRER_POLICY,
            "strict-origin-when-cross-origin",
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(middleware::from_fn(drop_unsafe_request_id))
        // Outermost: a held-off client costs as little as possible.
        .layer(middleware::from_fn_with_state(state.clone(), shield::guard))
        .with_state(state);
    if hsts {
        // Only under TLS: browsers then refuse plain HTTP to this host for a year.
        router.layer(security_header(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ))
    } else {
        router
    }
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// A client-supplied request id ends up in logs: accept only short, plain ones.
async fn drop_unsafe_request_id(mut req: Request, next: Next) -> Response {
    let unsafe_id = req.headers().get(REQUEST_ID).is_some_and(|v| {
        v.len() > 128
            || !v
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    });
    if unsafe_id {
        req.headers_mut().remove(REQUEST_ID);
    }
    next.run(req).await
}

async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Writes the audit entries of refused API requests (marked by [`ApiError::audited`]). Failed
/// credentials are recorded at most once per second per client address, so a flood of bad
/// tokens cannot turn into a flood of writes.
async fn audit_denials(
    axum::extract::State(app): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let origin = session::origin_of(req.headers(), peer, app.config.http.trust_forwarded_for);
    let target = format!("{} {}", req.method(), req.uri().path());
    let response = next.run(req).await;
    if let Some(denied) = response.extensions().get::<problem::DeniedAccess>() {
        let throttle_key = format!("audit:{}", origin.ip.as_deref().unwrap_or("unknown"));
        if denied.action != "api.auth" || app.limits.audit_failures.check(&throttle_key).is_ok() {
            let detail = response
                .extensions()
                .get::<problem::AuditDetail>()
                .map(|d| format!("{target}: {}", d.0))
                .unwrap_or(target);
            let event = crate::store::audit::AuditEvent::new(
                denied.tenant_id.as_ref(),
                &denied.actor,
                denied.action,
                denied.outcome,
            )
            .detail(detail);
            crate::store::audit::record(&app.store, event, &origin).await;
        }
    }
    response
}

/// Routing answers some errors (405) with an empty body; give them problem details.
async fn explain_empty_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED && !response.headers().contains_key(header::CONTENT_TYPE) {
        let allow = response.headers().get(header::ALLOW).cloned();
        let detail = match allow.as_ref().and_then(|a| a.to_str().ok()) {
            Some(allowed) => {
                format!("this endpoint does not support that method; allowed: {allowed}")
            }
            None => "this endpoint does not support that method".to_owned(),
        };
        let mut problem = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, detail).into_response();
        if let Some(allow) = allow {
            problem.headers_mut().insert(header::ALLOW, allow);
        }
        return problem;
    }
    response
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish for up to the
/// configured grace period.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = state.config.http.shutdown_grace;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut stopped = rx.clone();
    let listener = shield::ShieldedListener::new(listener, state.shield.clone());
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    // Answers are written whole; waiting to coalesce them only adds latency.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let deadline = async move {
        let _ = stopped.wait_for(|s| *s).await;
        tracing::info!(grace = ?grace, "shutting down: finishing in-flight requests");
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!("shutdown grace period over; dropping remaining connections");
            Ok(())
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Time budget for start-up reporting.
pub fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
