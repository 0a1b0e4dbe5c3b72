//! Server-rendered pages. Every page works without JavaScript; htmx requests (`HX-Request`)
//! get fragments instead of whole pages, including for errors.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::problem::ApiError;

/// Whether htmx sent the request: it swaps the answer into the page, so it gets a fragment.
pub(crate) fn is_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some()
}

/// Renders a template; a rendering failure is logged and shown as a plain error page.
pub fn render(app: &AppState, template: &str, mut context: tera::Context, status: StatusCode) -> Response {
    context.insert("version", crate::VERSION);
    match app.templates.render(template, &context) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template, error = ?e, "template rendering failed");
            rendering_failed()
        }
    }
}

/// What a visitor sees when a page could not be rendered (its template is broken): plain,
/// since the templates cannot be trusted to render this either.
fn rendering_failed() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html("<!doctype html><title>Error</title><h1>Something went wrong</h1><p>The error has been logged.</p>"),
    )
        .into_response()
}

/// A typed view (a `Serialize` struct whose fields are the template's variables) as the
/// template's context.
fn view_context<V: serde::Serialize>(template: &str, view: &V) -> Option<tera::Context> {
    tera::Context::from_serialize(view)
        .inspect_err(|e| tracing::error!(template, error = %e, "a view could not be serialized"))
        .ok()
}

/// Renders a page from its typed view, with what every page needs added by [`render_page`].
pub fn render_view<V: serde::Serialize>(
    app: &AppState,
    page: &super::session::PageContext,
    template: &str,
    view: &V,
    status: StatusCode,
) -> Response {
    match view_context(template, view) {
        Some(context) => render_page(app, page, template, context, status),
        None => rendering_failed(),
    }
}

/// Renders a template from its typed view alone, without the layout's shared variables: a
/// fragment htmx swaps in, or a page that stands on its own (errors, the API reference).
pub fn render_alone<V: serde::Serialize>(app: &AppState, template: &str, view: &V, status: StatusCode) -> Response {
    match view_context(template, view) {
        Some(context) => render(app, template, context, status),
        None => rendering_failed(),
    }
}

/// What every page's layout (`layouts/base.html`) needs: the message catalog of the request's
/// language, the CSRF token, and the signed-in user with their tenants and what the navigation
/// offers them.
#[derive(serde::Serialize)]
struct Layout<'a> {
    /// Asked for by htmx: the page's content alone.
    fragment: bool,
    t: &'static Value,
    lang: &'static str,
    csrf_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<LayoutUser<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<LayoutTenant<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memberships: Option<Vec<LayoutTenant<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nav: Option<Navigation>,
}

/// The signed-in person, as the header shows them.
#[derive(serde::Serialize)]
struct LayoutUser<'a> {
    id: &'a str,
    name: &'a str,
    email: &'a str,
    platform_admin: bool,
}

/// A tenant the person may work in (the tenant switcher).
#[derive(serde::Serialize)]
struct LayoutTenant<'a> {
    id: &'a str,
    slug: &'a str,
    name: &'a str,
    role: &'a str,
    /// The one the session works in.
    current: bool,
}

/// Which parts of the navigation the person may open.
#[derive(serde::Serialize)]
struct Navigation {
    admin: bool,
    platform: bool,
    platform_available: bool,
    board: bool,
    history: bool,
}

impl<'a> Layout<'a> {
    fn of(page: &'a super::session::PageContext) -> Self {
        let mut layout = Layout {
            fragment: is_htmx(&page.error_headers),
            t: page.locale.catalog(),
            lang: page.locale.code(),
            csrf_token: &page.csrf_token,
            user: None,
            tenant: None,
            memberships: None,
            nav: None,
        };
        let Some(current) = &page.current else {
            return layout;
        };
        let account = &current.account;
        layout.user = Some(LayoutUser {
            id: &account.id,
            name: &account.display_name,
            email: &account.email,
            platform_admin: account.platform_admin,
        });
        let tenant = |m: &'a crate::store::accounts::Membership| LayoutTenant {
            id: m.tenant_id.as_str(),
            slug: &m.tenant_slug,
            name: &m.tenant_name,
            role: &m.role,
            current: current.session.tenant_id.as_ref() == Some(&m.tenant_id),
        };
        layout.tenant = current.membership().filter(|m| m.usable()).map(tenant);
        layout.memberships = Some(current.memberships.iter().filter(|m| m.usable()).map(tenant).collect());
        let role = current.principal.as_ref().map(crate::auth::Principal::role);
        let may = |area| role.is_some_and(|r| crate::auth::permits(r, crate::auth::Action::Read, area));
        layout.nav = Some(Navigation {
            admin: may(crate::auth::Area::Configuration),
            platform: matches!(current.principal, Some(crate::auth::Principal::Platform { .. })),
            platform_available: account.platform_admin,
            board: may(crate::auth::Area::Live) && matches!(current.principal, Some(crate::auth::Principal::Tenant(_))),
            history: may(crate::auth::Area::History)
                && matches!(current.principal, Some(crate::auth::Principal::Tenant(_))),
        });
        layout
    }
}

/// Renders a page with what every page needs ([`Layout`]) added to its own context.
pub fn render_page(
    app: &AppState,
    page: &super::session::PageContext,
    template: &str,
    mut context: tera::Context,
    status: StatusCode,
) -> Response {
    match view_context(template, &Layout::of(page)) {
        Some(layout) => context.extend(layout),
        None => return rendering_failed(),
    }
    render(app, template, context, status)
}

/// `pages/error.html` and `partials/error.html`.
#[derive(serde::Serialize)]
struct ErrorView<'a> {
    status: u16,
    title: &'static str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// An error as a full page, or as a fragment for htmx.
pub fn error_page(app: &AppState, headers: &HeaderMap, status: StatusCode, detail: &str) -> Response {
    let view = ErrorView {
        status: status.as_u16(),
        title: status.canonical_reason().unwrap_or("Error"),
        detail,
        request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()),
    };
    let template = if is_htmx(headers) {
        "partials/error.html"
    } else {
        "pages/error.html"
    };
    render_alone(app, template, &view, status)
}

/// The start page: the sign-in page for visitors, the tenant's overview for members, the
/// installation overview for platform admins.
pub async fn home(State(app): State<AppState>, page: super::session::PageContext, headers: HeaderMap) -> Response {
    let Some(current) = page.current.clone() else {
        return super::session::to_sign_in(&headers, &Uri::from_static("/"));
    };
    let Some(principal) = &current.principal else {
        return render_page(
            &app,
            &page,
            "pages/no_access.html",
            tera::Context::new(),
            StatusCode::FORBIDDEN,
        );
    };
    let mut view = HomeView {
        sections: None,
        today: None,
        alerts_html: None,
    };
    if let crate::auth::Principal::Tenant(scope) = principal
        && crate::auth::permits(scope.role(), crate::auth::Action::Read, crate::auth::Area::Live)
        && let Ok(floor) = app.live.floor(scope).await
    {
        view.today = Some(today_by_queue(&floor));
        let firing = app.rules.firing(scope.tenant_id()).borrow().clone();
        let banner = super::alerts_ui::banner(&app.templates, &firing, &floor, scope.visibility(), page.locale);
        view.alerts_html = Some(banner);
    }
    if let crate::auth::Principal::Tenant(scope) = principal {
        let t = page.locale;
        let mut sections = Vec::new();
        let counts = crate::store::entities::counts(&app.store, scope)
            .await
            .unwrap_or_default();
        for (key, href, area) in [
            ("teams", "/admin/teams", crate::auth::Area::Configuration),
            ("locations", "/admin/locations", crate::auth::Area::Configuration),
            ("agents", "/admin/agents", crate::auth::Area::Configuration),
            ("queues", "/admin/queues", crate::auth::Area::Configuration),
            ("dids", "/admin/dids", crate::auth::Area::Configuration),
            ("endpoints", "/admin/endpoints", crate::auth::Area::Configuration),
            ("users", "/admin/users", crate::auth::Area::Users),
            ("audit", "/admin/audit", crate::auth::Area::Audit),
        ] {
            if crate::auth::permits(scope.role(), crate::auth::Action::Read, area) {
                let mut section = json!({ "title": t.text(&format!("admin.{key}")), "href": href });
                if let Some(n) = counts.get(key) {
                    section["count"] = json!(n);
                }
                sections.push(section);
            }
        }
        view.sections = Some(sections);
    }
    render_view(&app, &page, "pages/home.html", &view, StatusCode::OK)
}

/// Today per queue, for the home page: the figures the board's tiles show, and a sparkline of
/// the calls offered by half hour.
fn today_by_queue(floor: &crate::live::registry::Floor) -> Vec<QueueToday> {
    let now = crate::domain::time::now_ms();
    let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
    live.queues()
        .iter()
        .zip(&floor.queues)
        .map(|(queue, info)| {
            let today = queue.today();
            let service_level = crate::kpi::service_level(today, queue.settings.service_level);
            let by_half_hour = queue.offered_by_half_hour(now);
            QueueToday {
                name: info.name.clone(),
                offered: today.offered,
                service_level: super::board::render::percent(service_level),
                below_target: service_level.is_some_and(|v| v * 100.0 + 1e-9 < f64::from(info.target_pct)),
                target_pct: info.target_pct,
                abandon_rate: super::board::render::percent(crate::kpi::abandon_rate(
                    today,
                    queue.settings.abandon_rate_counts_short,
                )),
                sparkline: sparkline(&by_half_hour),
                half_hours: by_half_hour,
            }
        })
        .collect()
}

/// A polyline's points for `values` in a 96 × 24 box (the highest value at the top).
fn sparkline(values: &[u64]) -> String {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = if values.len() > 1 {
        96.0 / (values.len() - 1) as f64
    } else {
        0.0
    };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, 23.0 - 22.0 * *v as f64 / max))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One queue's row on the home page.
#[derive(serde::Serialize)]
struct QueueToday {
    name: String,
    offered: u64,
    service_level: String,
    below_target: bool,
    target_pct: u32,
    abandon_rate: String,
    /// `points` of the sparkline's polyline.
    sparkline: String,
    /// Offered per half hour since midnight (the sparkline's values, for its text).
    half_hours: Vec<u64>,
}

/// `pages/home.html`: for a tenant's member, today's overview (for those who may watch the
/// floor) and the sections they may open with their counts.
#[derive(serde::Serialize)]
struct HomeView {
    #[serde(skip_serializing_if = "Option::is_none")]
    today: Option<Vec<QueueToday>>,
    /// The alerts firing that the viewer may see (the board's banner).
    #[serde(skip_serializing_if = "Option::is_none")]
    alerts_html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sections: Option<Vec<Value>>,
}

/// The browsable API reference, rendered from the OpenAPI document.
pub async fn api_reference(State(app): State<AppState>) -> Response {
    let doc: Value = serde_json::from_slice(&app.openapi_json).unwrap_or(Value::Null);
    let view = json!({ "api": reference_context(&doc) });
    render_alone(&app, "pages/api_reference.html", &view, StatusCode::OK)
}

fn schema_label(schema: &Value) -> Option<String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return Some(r.rsplit('/').next().unwrap_or(r).to_owned());
    }
    match schema.get("type") {
        Some(Value::String(t)) if t == "array" => schema
            .get("items")
            .and_then(schema_label)
            .map(|inner| format!("array of {inner}")),
        Some(Value::String(t)) if t == "object" && schema.pointer("/properties/items").is_some() => schema
            .pointer("/properties/items")
            .and_then(schema_label)
            .map(|inner| format!("page of {}", inner.trim_start_matches("array of "))),
        Some(Value::String(t)) => Some(t.clone()),
        Some(Value::Array(ts)) => Some(ts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | ")),
        _ => schema.get("oneOf").map(|_| "one of several".to_owned()),
    }
}

fn property_type(schema: &Value) -> String {
    if let Some(label) = schema_label(schema) {
        let format = schema.get("format").and_then(Value::as_str);
        return match format {
            Some(f) => format!("{label} ({f})"),
            None => label,
        };
    }
    if let Some(one_of) = schema.get("oneOf").and_then(Value::as_array) {
        return one_of.iter().map(property_type).collect::<Vec<_>>().join(" | ");
    }
    "any".into()
}

/// Gathers a schema's properties, following `allOf` (how flattened fields are expressed).
fn collect_properties(
    schema: &Value,
    all: Option<&serde_json::Map<String, Value>>,
    required: &mut Vec<String>,
    out: &mut Vec<(String, Value)>,
    depth: usize,
) {
    if depth > 8 {
        return;
    }
    if let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
    {
        if let Some(target) = all.and_then(|a| a.get(name)) {
            collect_properties(target, all, required, out, depth + 1);
        }
        return;
    }
    for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        collect_properties(part, all, required, out, depth + 1);
    }
    required.extend(
        schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned)),
    );
    for (name, p) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        out.push((name.clone(), p.clone()));
    }
}

/// Flattens the OpenAPI document into what the reference template shows.
pub fn reference_context(doc: &Value) -> Value {
    let mut groups: Vec<(String, Vec<Value>)> = doc
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.get("name")?.as_str())
                .map(|n| (n.to_owned(), Vec::new()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            for method in ["get", "post", "put", "patch", "delete"] {
                let Some(op) = item.get(method) else { continue };
                let tag = op
                    .pointer("/tags/0")
                    .and_then(Value::as_str)
                    .unwrap_or("other")
                    .to_owned();
                let parameters: Vec<Value> = op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .map(|ps| {
                        ps.iter()
                            .map(|p| {
                                json!({
                                    "name": p.get("name"), "location": p.get("in"),
                                    "required": p.get("required").and_then(Value::as_bool).unwrap_or(false),
                                    "description": p.get("description").and_then(Value::as_str).unwrap_or(""),
                                    "schema": p.get("schema").map(property_type).unwrap_or_default(),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let request_body = op
                    .pointer("/requestBody/content/application~1json/schema")
                    .and_then(schema_label);
                let responses: Vec<Value> = op
                    .get("responses")
                    .and_then(Value::as_object)
                    .map(|rs| {
                        rs.iter()
                            .map(|(status, r)| {
                                let schema = r
                                    .get("content")
                                    .and_then(Value::as_object)
                                    .and_then(|c| c.values().next())
                                    .and_then(|c| c.get("schema"))
                                    .and_then(schema_label);
                                json!({ "status": status, "description": r.get("description").and_then(Value::as_str).unwrap_or(""), "schema": schema })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let operation = json!({
                    "method": method, "path": path,
                    "summary": op.get("summary").and_then(Value::as_str).unwrap_or(""),
                    "description": op.get("description").and_then(Value::as_str).unwrap_or(""),
                    "operation_id": op.get("operationId").and_then(Value::as_str).unwrap_or(""),
                    "parameters": parameters, "request_body": request_body, "responses": responses,
                });
                match groups.iter_mut().find(|(name, _)| *name == tag) {
                    Some((_, ops)) => ops.push(operation),
                    None => groups.push((tag, vec![operation])),
                }
            }
        }
    }
    let all = doc.pointer("/components/schemas").and_then(Value::as_object);
    let mut schemas: Vec<Value> = all
        .map(|schemas| {
            schemas
                .iter()
                .map(|(name, schema)| {
                    let mut required = Vec::new();
                    let mut properties = Vec::new();
                    collect_properties(schema, all, &mut required, &mut properties, 0);
                    let properties: Vec<Value> = properties
                        .into_iter()
                        .map(|(pname, p)| {
                            json!({
                                "name": pname, "type": property_type(&p),
                                "required": required.contains(&pname),
                                "description": p.get("description").and_then(Value::as_str).unwrap_or(""),
                                "read_only": p.get("readOnly").and_then(Value::as_bool).unwrap_or(false),
                            })
                        })
                        .collect();
                    json!({ "name": name, "description": schema.get("description").and_then(Value::as_str).unwrap_or(""), "properties": properties })
                })
                .collect()
        })
        .unwrap_or_default();
    schemas.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({
        "title": doc.pointer("/info/title"),
        "version": doc.pointer("/info/version"),
        "description": doc.pointer("/info/description"),
        "groups": groups.into_iter().filter(|(_, ops)| !ops.is_empty()).map(|(tag, operations)| json!({ "tag": tag, "operations": operations })).collect::<Vec<_>>(),
        "schemas": schemas,
    })
}

#[derive(serde::Deserialize)]
pub struct AssetQuery {
    v: Option<String>,
}

/// `/favicon.ico`, which browsers ask for on their own: the same icon as the pages link to.
pub async fn favicon(State(app): State<AppState>) -> Response {
    let Some(asset) = app.assets.get("img/favicon.svg") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    asset_response(asset, "public, max-age=86400")
}

/// An embedded file with its type and how long it may be cached.
fn asset_response(asset: &crate::assets::Asset, cache: &'static str) -> Response {
    let mut response = asset.bytes.clone().into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

pub async fn static_file(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(path): Path<String>,
    Query(query): Query<AssetQuery>,
) -> Response {
    let Some(asset) = app.assets.get(&path) else {
        return error_page(&app, &headers, StatusCode::NOT_FOUND, "No such file.");
    };
    let etag = format!("\"{}\"", asset.hash);
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    // Only a URL with the current hash may be cached forever.
    let cache = if query.v.as_deref() == Some(asset.hash.as_str()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = asset_response(asset, cache);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

/// Unknown paths: problem details under `/api`, a page elsewhere.
pub async fn not_found(State(app): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return ApiError::not_found("no such API endpoint; see /api/v1/openapi.json").into_response();
    }
    error_page(
        &app,
        &headers,
        StatusCode::NOT_FOUND,
        "There is no page at this address.",
    )
}
