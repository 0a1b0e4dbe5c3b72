//! Tenants: the unit of isolation. Managed by operators (CLI) and platform admins; a tenant
//! admin may rename their own tenant and change its time zone.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use sqlx::types::Json;
use utoipa::ToSchema;

use super::{Store, StoreError, StoreResult, SystemActor, TenantId, TenantScope};
use crate::domain::time::{now_ms, serialize_ms};
use crate::domain::{Validation, new_id, validate};
use crate::on_db;

/// Limits the store enforces, by key.
pub const LIMIT_KEYS: &[&str] = &["max_agents"];

type JsonMap = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Tenant {
    #[schema(value_type = String)]
    pub id: TenantId,
    /// Short, URL-safe, unique name.
    pub slug: String,
    pub name: String,
    /// IANA time zone; "today" on boards starts at midnight here.
    pub timezone: String,
    /// The day weeks start on in reports: `monday`, `sunday` or `saturday`.
    pub week_start: String,
    /// Feature flags: name → on/off.
    #[schema(value_type = Object)]
    pub features: Json<JsonMap>,
    /// Limits such as `max_agents`.
    #[schema(value_type = Object)]
    pub limits: Json<JsonMap>,
    #[serde(serialize_with = "serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    pub version: i64,
    /// Set while the tenant is suspended: its tokens, sessions and sign-ins get nothing.
    #[serde(serialize_with = "crate::domain::time::serialize_opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub suspended_at: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    pub slug: String,
    pub name: String,
    /// Default `UTC`.
    pub timezone: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub features: JsonMap,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub limits: JsonMap,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    pub name: Option<String>,
    pub timezone: Option<String>,
    /// `monday`, `sunday` or `saturday`.
    #[serde(default)]
    pub week_start: Option<String>,
    /// Platform admins only.
    #[schema(value_type = Option<Object>)]
    pub features: Option<JsonMap>,
    /// Platform admins only.
    #[schema(value_type = Option<Object>)]
    pub limits: Option<JsonMap>,
    /// Platform admins only: a suspended tenant's tokens, sessions and sign-ins get nothing.
    #[serde(default)]
    pub suspended: Option<bool>,
}

const SELECT: &str =
    "id, slug, name, timezone, week_start, features, limits, created_at, updated_at, version, suspended_at";

fn check_features(v: &mut Validation, features: &JsonMap) {
    for (key, value) in features {
        if !value.is_boolean() {
            v.add(&format!("features/{key}"), "feature flags are true or false");
        }
    }
}

fn check_limits(v: &mut Validation, limits: &JsonMap) {
    for (key, value) in limits {
        if !LIMIT_KEYS.contains(&key.as_str()) {
            v.add(
                &format!("limits/{key}"),
                format!("unknown limit; known limits: {}", LIMIT_KEYS.join(", ")),
            );
        } else if value.as_i64().is_none_or(|n| n < 0) {
            v.add(&format!("limits/{key}"), "must be a whole number of at least 0");
        }
    }
}

pub async fn create(store: &Store, input: TenantCreate) -> StoreResult<Tenant> {
    let mut v = Validation::new();
    let slug = v.check("slug", validate::slug(&input.slug));
    let name = v.check("name", validate::name(&input.name, 100));
    let timezone = v.check(
        "timezone",
        validate::timezone(input.timezone.as_deref().unwrap_or("UTC")),
    );
    check_features(&mut v, &input.features);
    check_limits(&mut v, &input.limits);
    v.finish()?;
    let now = now_ms();
    let sql = format!(
        "INSERT INTO tenants (id, slug, name, timezone, features, limits, created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1) RETURNING {SELECT}"
    );
    on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, Tenant>(&sql)
            .bind(new_id("ten"))
            .bind(slug.unwrap_or_default())
            .bind(name.unwrap_or_default())
            .bind(timezone.unwrap_or_default())
            .bind(Json(&input.features))
            .bind(Json(&input.limits))
            .bind(now)
            .fetch_one(pool)
            .await
    })
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict { .. } => StoreError::Conflict {
            field: Some("slug".into()),
            message: "a tenant with this slug already exists".into(),
        },
        other => other,
    })
}

pub async fn list_all(store: &Store) -> StoreResult<Vec<Tenant>> {
    let sql = format!("SELECT {SELECT} FROM tenants ORDER BY slug");
    Ok(on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Tenant>(&sql)
        .fetch_all(pool)
        .await)?)
}

pub async fn count(store: &Store) -> StoreResult<i64> {
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM tenants")
            .fetch_one(pool)
            .await
    })?)
}

pub async fn by_slug(store: &Store, slug: &str) -> StoreResult<Option<Tenant>> {
    let sql = format!("SELECT {SELECT} FROM tenants WHERE slug = $1");
    Ok(on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Tenant>(&sql)
        .bind(slug)
        .fetch_optional(pool)
        .await)?)
}

pub async fn by_id(store: &Store, id: &str) -> StoreResult<Tenant> {
    let sql = format!("SELECT {SELECT} FROM tenants WHERE id = $1");
    on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Tenant>(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await)?
    .ok_or(StoreError::NotFound { kind: "tenant" })
}

/// The caller's own tenant.
pub async fn current(store: &Store, scope: &TenantScope) -> StoreResult<Tenant> {
    by_id(store, scope.tenant_id()).await
}

pub async fn limits(store: &Store, tenant: &TenantId) -> StoreResult<JsonMap> {
    let tenant_id = tenant.as_str();
    Ok(by_id(store, tenant_id).await?.limits.0)
}

/// Updates a tenant. `as_platform_admin` allows features and limits to change.
pub async fn update(
    store: &Store,
    id: &str,
    expected_version: Option<i64>,
    input: TenantUpdate,
    as_platform_admin: bool,
) -> StoreResult<Tenant> {
    let current = by_id(store, id).await?;
    if expected_version.is_some_and(|e| e != current.version) {
        return Err(StoreError::PreconditionFailed {
            kind: "tenant",
            current: current.version,
        });
    }
    let mut v = Validation::new();
    let name = match &input.name {
        Some(n) => v.check("name", validate::name(n, 100)),
        None => Some(current.name.clone()),
    };
    let timezone = match &input.timezone {
        Some(t) => v.check("timezone", validate::timezone(t)),
        None => Some(current.timezone.clone()),
    };
    let week_start = match input.week_start.as_deref() {
        None => current.week_start.clone(),
        Some(day @ ("monday" | "sunday" | "saturday")) => day.to_owned(),
        Some(_) => {
            v.add("week_start", "must be monday, sunday or saturday");
            current.week_start.clone()
        }
    };
    if !as_platform_admin && input.suspended.is_some() {
        v.add("suspended", "only platform admins can suspend a tenant");
    }
    if !as_platform_admin && (input.features.is_some() || input.limits.is_some()) {
        if input.features.is_some() {
            v.add("features", "only platform admins can change feature flags");
        }
        if input.limits.is_some() {
            v.add("limits", "only platform admins can change limits");
        }
    }
    let features = input.features.unwrap_or_else(|| current.features.0.clone());
    let limits = input.limits.unwrap_or_else(|| current.limits.0.clone());
    check_features(&mut v, &features);
    check_limits(&mut v, &limits);
    v.finish()?;
    let sql = format!(
        "UPDATE tenants SET name = $1, timezone = $2, features = $3, limits = $4, updated_at = $5, \
         version = version + 1, week_start = $8 WHERE id = $6 AND version = $7 RETURNING {SELECT}"
    );
    let updated = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, Tenant>(&sql)
            .bind(name.unwrap_or_default())
            .bind(timezone.unwrap_or_default())
            .bind(Json(&features))
            .bind(Json(&limits))
            .bind(now_ms())
            .bind(id)
            .bind(current.version)
            .bind(&week_start)
            .fetch_optional(pool)
            .await
    })?;
    let updated = updated.ok_or(StoreError::PreconditionFailed {
        kind: "tenant",
        current: current.version + 1,
    })?;
    super::credentials::publish(super::credentials::Change::Tenant(id.to_owned()));
    match input.suspended {
        Some(suspended) if suspended != updated.suspended_at.is_some() => set_suspended(store, id, suspended).await,
        _ => Ok(updated),
    }
}

/// Suspends or reactivates a tenant (platform admins). Returns the tenant after the change.
pub async fn set_suspended(store: &Store, id: &str, suspended: bool) -> StoreResult<Tenant> {
    let sql = format!(
        "UPDATE tenants SET suspended_at = $1, updated_at = $2, version = version + 1 WHERE id = $3 RETURNING {SELECT}"
    );
    let now = now_ms();
    let tenant = on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Tenant>(&sql)
        .bind(suspended.then_some(now))
        .bind(now)
        .bind(id)
        .fetch_optional(pool)
        .await)?
    .ok_or(StoreError::NotFound { kind: "tenant" })?;
    super::credentials::publish(super::credentials::Change::Tenant(id.to_owned()));
    Ok(tenant)
}

/// The scope of a link the server sealed for `actor` in the tenant with id `tenant_id` (a
/// recording's playback link): a viewer's rights, in a tenant that is still active.
pub async fn link_scope(store: &Store, tenant_id: &str, actor: &str) -> StoreResult<TenantScope> {
    let tenant = by_id(store, tenant_id).await?;
    if tenant.suspended_at.is_some() {
        return Err(StoreError::NotFound { kind: "tenant" });
    }
    Ok(TenantScope::verified(
        tenant.id,
        tenant.slug,
        crate::domain::Role::Viewer,
        actor.to_owned(),
    ))
}

/// As [`system_scope`], for a tenant a worker read by its id.
pub async fn system_scope_of(store: &Store, tenant: &TenantId, actor: SystemActor) -> StoreResult<TenantScope> {
    let tenant = by_id(store, tenant).await?;
    Ok(TenantScope::system(tenant.id, tenant.slug, actor))
}

/// A scope for work in a tenant without a signed-in caller (the operator's command line, the
/// demo, the simulator), named for who does it in the audit log.
pub async fn system_scope(store: &Store, slug: &str, actor: SystemActor) -> StoreResult<TenantScope> {
    let tenant = by_slug(store, slug)
        .await?
        .ok_or(StoreError::NotFound { kind: "tenant" })?;
    Ok(TenantScope::system(tenant.id, tenant.slug, actor))
}
