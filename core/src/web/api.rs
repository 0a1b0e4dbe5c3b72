//! REST API v1 handlers.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::extract::{ApiJson, Caller, IfMatch, ListQuery, RequestOrigin, etag};
use super::list_cache::{PageKey, fingerprint};
use super::problem::{ApiError, ApiResult};
use crate::auth::{Action, Area};
use crate::domain::Role;
use crate::service::{access, configuration};
use crate::store::audit;
use crate::store::entities::agents::Agent;
use crate::store::entities::dids::DidRow;
use crate::store::entities::endpoints::EndpointRow;
use crate::store::entities::locations::Location;
use crate::store::entities::queues::{self, PenaltyInput, Queue, QueueMemberInput};
use crate::store::entities::teams::Team;
use crate::store::entities::users::{Member, MemberCreate, MemberUpdate};
use crate::store::invitations::Invitation;
use crate::store::resource::{self, Listable, Writable};
use crate::store::tenants;
use crate::store::tokens::{self, ApiToken};

/// Which permission area a collection belongs to.
pub trait Guarded: Listable {
    const AREA: Area;
}

impl Guarded for Team {
    const AREA: Area = Area::Configuration;
}
impl Guarded for Location {
    const AREA: Area = Area::Configuration;
}
impl Guarded for Agent {
    const AREA: Area = Area::Configuration;
}
impl Guarded for Queue {
    const AREA: Area = Area::Configuration;
}
impl Guarded for DidRow {
    const AREA: Area = Area::Configuration;
}
impl Guarded for EndpointRow {
    const AREA: Area = Area::Configuration;
}
impl Guarded for Member {
    const AREA: Area = Area::Users;
}
impl Guarded for Invitation {
    const AREA: Area = Area::Users;
}
impl Guarded for ApiToken {
    const AREA: Area = Area::Tokens;
}
impl Guarded for audit::AuditRow {
    const AREA: Area = Area::Audit;
}

/// A JSON body with an ETag (and for creation, a Location).
pub(super) fn versioned<T: Serialize>(
    status: StatusCode,
    version: i64,
    location: Option<String>,
    body: &T,
) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        headers.insert(header::ETAG, v);
    }
    if let Some(Ok(v)) = location.map(|l| HeaderValue::from_str(&l)) {
        headers.insert(header::LOCATION, v);
    }
    response
}

fn not_modified(headers: &HeaderMap, version: i64) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag(version) || tag.trim() == "*"))
}

async fn list<R: Guarded>(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: axum::http::Uri,
    ListQuery(params): ListQuery,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, R::AREA)?;
    // What a scoped caller sees of rows that belong to agents changes with the agents too, which
    // the collection's version does not follow: such pages are not cached.
    let follows_agents = R::AGENT_REFERENCE.is_some() && scope.visibility().is_limited();
    if !R::VERSIONED || follows_agents {
        return Ok(axum::Json(resource::list::<R>(&app.store, &scope, &params).await?).into_response());
    }
    // Read the version before the rows: a page cached under version N then holds data at least
    // as new as N, and any later change makes N stale.
    let version = resource::collection_version::<R>(&app.store, &scope).await?;
    let key = PageKey {
        tenant_id: scope.tenant_id().to_owned(),
        collection: R::COLLECTION,
        visibility: format!("{:?}", scope.visibility()),
        query: uri.query().unwrap_or_default().to_owned(),
    };
    let tag = format!("\"L{version}-{:x}\"", fingerprint(&key));
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let body = match app.list_cache.get(&key, version) {
        Some(body) => body,
        None => {
            let page = resource::list::<R>(&app.store, &scope, &params).await?;
            let body = axum::body::Bytes::from(serde_json::to_vec(&page).map_err(|_| ApiError::internal())?);
            app.list_cache.put(key, version, body.clone());
            body
        }
    };
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}

async fn read<R: Guarded>(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, R::AREA)?;
    let row: R = resource::get(&app.store, &scope, &id).await?;
    let version = row.version();
    if not_modified(&headers, version) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    Ok(versioned(StatusCode::OK, version, None, &row.view()))
}

async fn create<R: Guarded + Writable>(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    body: ApiJson<R::Create>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, R::AREA)?;
    let input = body.0?;
    let saved = configuration::create::<R>(&app.store, &scope, &origin, input).await?;
    let location = format!("/api/v1/{}/{}", R::COLLECTION, saved.id);
    Ok(versioned(
        StatusCode::CREATED,
        saved.version,
        Some(location),
        &saved.view,
    ))
}

async fn update<R: Guarded + Writable>(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    body: ApiJson<R::Update>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, R::AREA)?;
    let input = body.0?;
    let saved = configuration::update::<R>(&app.store, &scope, &origin, &id, expected, input).await?;
    Ok(versioned(StatusCode::OK, saved.version, None, &saved.view))
}

async fn remove<R: Guarded + Writable>(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> ApiResult<StatusCode> {
    let scope = caller.tenant(Action::Write, R::AREA)?;
    configuration::delete::<R>(&app.store, &scope, &origin, &id, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn crud<R: Guarded + Writable>() -> Router<AppState> {
    Router::new()
        .route(&format!("/{}", R::COLLECTION), get(list::<R>).post(create::<R>))
        .route(
            &format!("/{}/{{id}}", R::COLLECTION),
            get(read::<R>).patch(update::<R>).delete(remove::<R>),
        )
}

// --- users -------------------------------------------------------------------------------

/// Adding someone is an invitation they accept: the answer is the same whether or not the
/// address has an account, and carries only what the caller sent (plus the link to hand over
/// when no mail server is configured).
async fn create_user(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    body: ApiJson<MemberCreate>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Users)?;
    let input = body.0?;
    let invited = crate::auth::invitations::invite(
        &app.store,
        app.mailer.clone(),
        &app.limits.invitations,
        &app.config.public_url(),
        &scope,
        input,
        crate::i18n::Locale::default(),
        &origin,
    )
    .await
    .map_err(|e| invite_error(e, &scope))?;
    Ok(invitation_response(invited))
}

pub(super) fn invite_error(
    error: crate::auth::invitations::InviteError,
    scope: &crate::store::TenantScope,
) -> ApiError {
    let detail = error.to_string();
    match error {
        crate::auth::invitations::InviteError::Grant(e) => ApiError::forbidden(e.to_string()),
        crate::auth::invitations::InviteError::Throttled(wait) => {
            let mut err = ApiError::new(StatusCode::TOO_MANY_REQUESTS, detail);
            err.retry_after = Some(u32::try_from(crate::auth::ratelimit::retry_after_secs(wait)).unwrap_or(u32::MAX));
            err
        }
        crate::auth::invitations::InviteError::Store(e) => {
            tracing::debug!(tenant = scope.tenant_slug(), error = %e, "invitation refused");
            e.into()
        }
    }
}

/// `202 Accepted`: the membership exists once the person accepts.
fn invitation_response(invited: crate::auth::invitations::Invited) -> Response {
    let mut body = serde_json::to_value(&invited.invitation).unwrap_or_default();
    body["delivery"] = serde_json::json!(if invited.link.is_some() { "link" } else { "email" });
    if let Some(link) = &invited.link {
        body["link"] = serde_json::json!(link);
    }
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/invitations/{}", invited.invitation.id)) {
        headers.insert(header::LOCATION, v);
    }
    // The link works once, like a password.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn revoke_invitation(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Users)?;
    let invitation = crate::auth::invitations::revoke(&app.store, &scope, &id, &origin).await?;
    Ok(axum::Json(invitation).into_response())
}

async fn update_user(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    body: ApiJson<MemberUpdate>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Users)?;
    let input = body.0?;
    let member = access::update_member(&app.store, &scope, &origin, &id, expected, input).await?;
    Ok(versioned(StatusCode::OK, member.stamps.version, None, &member))
}

async fn remove_user(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> ApiResult<StatusCode> {
    let scope = caller.tenant(Action::Write, Area::Users)?;
    access::remove_member(&app.store, &scope, &origin, &id, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- tokens ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    pub name: String,
    /// `tenant_admin`, `supervisor`, `agent` or `viewer`.
    pub role: Role,
    /// Lifetime such as `30d` or `12h`; omit for a token that does not expire.
    pub expires_in: Option<String>,
    /// Limit the token to these teams (ids), as for a scoped supervisor.
    #[serde(default)]
    pub team_scope: Vec<String>,
    /// Limit the token to these locations (ids).
    #[serde(default)]
    pub location_scope: Vec<String>,
}

async fn create_token(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    body: ApiJson<TokenCreate>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Tokens)?;
    let input = body.0?;
    let request = access::TokenRequest {
        name: input.name,
        role: input.role,
        expires_in: input.expires_in,
        scopes: tokens::TokenScopes {
            teams: input.team_scope,
            locations: input.location_scope,
        },
    };
    let issued = access::issue_token(&app.store, &scope, &origin, request).await?;
    let location = format!("/api/v1/tokens/{}", issued.token.id);
    let mut response = (StatusCode::CREATED, axum::Json(&issued)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn revoke_token(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let scope = caller.tenant(Action::Write, Area::Tokens)?;
    access::revoke_token(&app.store, &app.tokens, &scope, &origin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- queue members -----------------------------------------------------------------------

async fn list_members(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Configuration)?;
    let members = queues::members(&app.store, &scope, &id).await?;
    Ok(axum::Json(serde_json::json!({ "items": members })).into_response())
}

async fn replace_members(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    body: ApiJson<Vec<QueueMemberInput>>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    let input = body.0?;
    let members = configuration::replace_members(&app.store, &scope, &origin, &id, input).await?;
    Ok(axum::Json(serde_json::json!({ "items": members })).into_response())
}

async fn put_member(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((id, agent_id)): Path<(String, String)>,
    body: ApiJson<PenaltyInput>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    let input = body.0?;
    let member = configuration::put_member(&app.store, &scope, &origin, &id, &agent_id, input.penalty).await?;
    Ok(axum::Json(member).into_response())
}

async fn remove_member(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((id, agent_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let scope = caller.tenant(Action::Write, Area::Configuration)?;
    configuration::remove_member(&app.store, &scope, &origin, &id, &agent_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- audit -------------------------------------------------------------------------------

async fn list_audit(
    State(app): State<AppState>,
    caller: Caller,
    ListQuery(params): ListQuery,
) -> ApiResult<axum::Json<crate::store::Page<audit::AuditEntry>>> {
    let scope = caller.tenant(Action::Read, Area::Audit)?;
    Ok(axum::Json(
        resource::list::<audit::AuditRow>(&app.store, &scope, &params).await?,
    ))
}

async fn export_audit(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    axum::extract::Query(query): axum::extract::Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::Audit)?;
    let body = access::export_audit(&app.store, &scope, &origin, &query).await?;
    Ok(csv_response(body, scope.tenant_slug()))
}

/// The audit log as a CSV download.
pub fn csv_response(body: String, tenant: &str) -> Response {
    csv_download(axum::body::Body::from(body), &format!("monti-audit-{tenant}.csv"))
}

/// A CSV download named `filename`, whole or streamed.
pub fn csv_download(body: axum::body::Body, filename: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

// --- tenants -----------------------------------------------------------------------------

async fn own_tenant(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Read, Area::TenantSettings)?;
    let tenant = tenants::current(&app.store, &scope).await?;
    Ok(versioned(StatusCode::OK, tenant.version, None, &tenant))
}

async fn update_own_tenant(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    IfMatch(expected): IfMatch,
    body: ApiJson<tenants::TenantUpdate>,
) -> ApiResult<Response> {
    let scope = caller.tenant(Action::Write, Area::TenantSettings)?;
    let input = body.0?;
    let tenant = crate::service::tenants::update_own(&app.store, &scope, &origin, expected, input).await?;
    Ok(versioned(StatusCode::OK, tenant.version, None, &tenant))
}

async fn list_tenants(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.platform()?;
    let items = tenants::list_all(&app.store).await?;
    Ok(axum::Json(serde_json::json!({ "items": items, "next_cursor": null })).into_response())
}

async fn create_tenant(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    body: ApiJson<tenants::TenantCreate>,
) -> ApiResult<Response> {
    let actor = caller.platform()?;
    let input = body.0?;
    let tenant = crate::service::tenants::create(&app.store, &actor, &origin, input).await?;
    Ok(versioned(
        StatusCode::CREATED,
        tenant.version,
        Some(format!("/api/v1/tenants/{}", tenant.id)),
        &tenant,
    ))
}

async fn read_tenant(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    caller.platform()?;
    let tenant = tenants::by_id(&app.store, &id).await?;
    Ok(versioned(StatusCode::OK, tenant.version, None, &tenant))
}

async fn update_tenant(
    State(app): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    body: ApiJson<tenants::TenantUpdate>,
) -> ApiResult<Response> {
    let actor = caller.platform()?;
    let input = body.0?;
    let tenant =
        crate::service::tenants::update(&app.store, app.running_tenants(), &actor, &origin, &id, expected, input)
            .await?;
    Ok(versioned(StatusCode::OK, tenant.version, None, &tenant))
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API endpoint; see /api/v1/openapi.json")
}

/// Every `/api/v1` route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(crud::<Team>())
        .merge(crud::<Location>())
        .merge(crud::<Agent>())
        .merge(crud::<Queue>())
        .merge(crud::<DidRow>())
        .merge(crud::<EndpointRow>())
        .route("/users", get(list::<Member>).post(create_user))
        .route(
            "/users/{id}",
            get(read::<Member>).patch(update_user).delete(remove_user),
        )
        .route("/invitations", get(list::<Invitation>))
        .route("/invitations/{id}", get(read::<Invitation>).delete(revoke_invitation))
        .route("/tokens", get(list::<ApiToken>).post(create_token))
        .route("/tokens/{id}", get(read::<ApiToken>).delete(revoke_token))
        .route("/queues/{id}/members", get(list_members).put(replace_members))
        .route(
            "/queues/{id}/members/{agent_id}",
            axum::routing::put(put_member).delete(remove_member),
        )
        .route("/audit", get(list_audit))
        .route("/audit/export", get(export_audit))
        .route("/tenant", get(own_tenant).patch(update_own_tenant))
        .route("/tenants", get(list_tenants).post(create_tenant))
        .route("/tenants/{id}", get(read_tenant).patch(update_tenant))
        .route("/openapi.json", get(super::openapi::serve))
        .fallback(api_not_found)
}
