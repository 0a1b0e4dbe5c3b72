//! OpenID providers a tenant's admins configure for their own people (Administration →
//! Settings). They sign people in to that tenant only and can grant tenant roles only, never
//! `platform_admin`. The client secret is stored encrypted and never shown again.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::FromRow;
use sqlx::types::Json;

use super::{Store, StoreError, StoreResult, TenantScope};
use crate::domain::time::now_ms;
use crate::domain::{Role, Validation, new_id, validate};
use crate::on_db;

#[derive(Debug, Clone, FromRow)]
pub struct ProviderRow {
    pub id: String,
    pub tenant_id: String,
    pub slug: String,
    pub display_name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret_enc: Option<String>,
    pub scopes: Json<Vec<String>>,
    pub roles_claim: String,
    pub role_map: Json<BTreeMap<String, String>>,
    pub default_role: Option<String>,
    pub enabled: bool,
    pub version: i64,
}

/// A provider as its admins see it (without the secret).
#[derive(Debug, Clone, Serialize)]
pub struct ProviderView {
    pub id: String,
    pub slug: String,
    pub display_name: String,
    pub issuer: String,
    pub client_id: String,
    pub has_secret: bool,
    pub scopes: Vec<String>,
    pub roles_claim: String,
    pub role_map: BTreeMap<String, String>,
    pub default_role: Option<String>,
    pub enabled: bool,
    pub version: i64,
}

impl ProviderRow {
    pub fn view(&self) -> ProviderView {
        ProviderView {
            id: self.id.clone(),
            slug: self.slug.clone(),
            display_name: self.display_name.clone(),
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            has_secret: self.client_secret_enc.is_some(),
            scopes: self.scopes.0.clone(),
            roles_claim: self.roles_claim.clone(),
            role_map: self.role_map.0.clone(),
            default_role: self.default_role.clone(),
            enabled: self.enabled,
            version: self.version,
        }
    }
}

const COLUMNS: &str = "id, tenant_id, slug, display_name, issuer, client_id, client_secret_enc, scopes, roles_claim, \
    role_map, default_role, enabled, version";

/// What an admin submits.
#[derive(Debug, Clone, Default)]
pub struct ProviderInput {
    pub slug: String,
    pub display_name: String,
    pub issuer: String,
    pub client_id: String,
    /// `None` keeps the stored secret.
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub roles_claim: String,
    pub role_map: BTreeMap<String, String>,
    pub default_role: Option<String>,
    pub enabled: bool,
}

pub(crate) fn secret_context(provider_id: &str) -> String {
    format!("oidc-client-secret/{provider_id}")
}

fn check(input: &ProviderInput, reserved: &[String]) -> Result<(), Validation> {
    let mut v = Validation::new();
    match validate::slug(&input.slug) {
        Ok(slug) if reserved.contains(&slug) => v.add("slug", "this id is taken by an installation-wide provider"),
        Ok(_) => {}
        Err(e) => v.add("slug", e),
    }
    v.check("display_name", validate::name(&input.display_name, 100));
    if !(input.issuer.starts_with("https://") || input.issuer.starts_with("http://")) || input.issuer.len() > 500 {
        v.add("issuer", "must be the provider's issuer URL (https://…)");
    }
    if input.client_id.trim().is_empty() || input.client_id.len() > 200 {
        v.add("client_id", "is required");
    }
    if input.roles_claim.trim().is_empty() || input.roles_claim.len() > 200 {
        v.add("roles_claim", "name the claim that holds groups or roles, e.g. groups");
    }
    if input.role_map.len() > 200 {
        v.add("role_map", "at most 200 entries");
    }
    let tenant_role = |r: &str| matches!(r.parse::<Role>(), Ok(role) if role != Role::PlatformAdmin);
    for (value, role) in &input.role_map {
        if !tenant_role(role) {
            v.add(
                "role_map",
                format!("`{value}` maps to `{role}`; use tenant_admin, supervisor, agent or viewer"),
            );
        }
    }
    if let Some(role) = &input.default_role
        && !tenant_role(role)
    {
        v.add("default_role", "use tenant_admin, supervisor, agent or viewer");
    }
    v.finish()
}

pub async fn list(store: &Store, scope: &TenantScope) -> StoreResult<Vec<ProviderRow>> {
    let sql = format!("SELECT {COLUMNS} FROM oidc_providers WHERE tenant_id = $1 ORDER BY slug");
    Ok(on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, ProviderRow>(&sql)
        .bind(scope.tenant_id())
        .fetch_all(pool)
        .await)?)
}

pub async fn get(store: &Store, scope: &TenantScope, id: &str) -> StoreResult<ProviderRow> {
    let sql = format!("SELECT {COLUMNS} FROM oidc_providers WHERE tenant_id = $1 AND id = $2");
    on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, ProviderRow>(&sql)
        .bind(scope.tenant_id())
        .bind(id)
        .fetch_optional(pool)
        .await)?
    .ok_or(StoreError::NotFound {
        kind: "sign-in provider",
    })
}

/// An enabled provider by its id, for the sign-in flow, with its tenant's slug.
pub async fn enabled_by_slug(store: &Store, slug: &str) -> StoreResult<Option<(ProviderRow, String)>> {
    let sql = format!(
        "SELECT {}, t.slug AS tenant_slug FROM oidc_providers p JOIN tenants t ON t.id = p.tenant_id \
         WHERE p.slug = $1 AND p.enabled = TRUE",
        COLUMNS
            .split(", ")
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    #[derive(FromRow)]
    struct WithTenant {
        #[sqlx(flatten)]
        row: ProviderRow,
        tenant_slug: String,
    }
    let found = on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, WithTenant>(&sql)
        .bind(slug)
        .fetch_optional(pool)
        .await)?;
    Ok(found.map(|w| (w.row, w.tenant_slug)))
}

/// The enabled providers of a tenant, for its sign-in page: `(id, button text)`.
pub async fn buttons_for_tenant(store: &Store, tenant_slug: &str) -> StoreResult<Vec<(String, String)>> {
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (String, String)>(
            "SELECT p.slug, p.display_name FROM oidc_providers p JOIN tenants t ON t.id = p.tenant_id \
             WHERE t.slug = $1 AND p.enabled = TRUE AND t.suspended_at IS NULL ORDER BY p.display_name",
        )
        .bind(tenant_slug)
        .fetch_all(pool)
        .await
    })?)
}

pub async fn create(
    store: &Store,
    scope: &TenantScope,
    input: ProviderInput,
    reserved: &[String],
) -> StoreResult<ProviderRow> {
    check(&input, reserved)?;
    let id = new_id("idp");
    let secret = input
        .client_secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| store.secrets.seal(s, &secret_context(&id)));
    let now = now_ms();
    let sql = format!(
        "INSERT INTO oidc_providers (id, tenant_id, slug, display_name, issuer, client_id, client_secret_enc, scopes, \
         roles_claim, role_map, default_role, enabled, created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, 1) RETURNING {COLUMNS}"
    );
    on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, ProviderRow>(&sql)
        .bind(&id)
        .bind(scope.tenant_id())
        .bind(input.slug.trim())
        .bind(input.display_name.trim())
        .bind(input.issuer.trim())
        .bind(input.client_id.trim())
        .bind(&secret)
        .bind(Json(&input.scopes))
        .bind(input.roles_claim.trim())
        .bind(Json(&input.role_map))
        .bind(&input.default_role)
        .bind(input.enabled)
        .bind(now)
        .fetch_one(pool)
        .await)
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict { .. } => StoreError::Conflict {
            field: Some("slug".into()),
            message: "a sign-in provider with this id already exists".into(),
        },
        other => other,
    })
}

pub async fn update(
    store: &Store,
    scope: &TenantScope,
    id: &str,
    expected_version: Option<i64>,
    input: ProviderInput,
    reserved: &[String],
) -> StoreResult<ProviderRow> {
    let current = get(store, scope, id).await?;
    if expected_version.is_some_and(|v| v != current.version) {
        return Err(StoreError::PreconditionFailed {
            kind: "sign-in provider",
            current: current.version,
        });
    }
    let mut input = input;
    input.slug = current.slug.clone();
    check(&input, reserved)?;
    let secret = match input.client_secret.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(store.secrets.seal(s, &secret_context(id))),
        None => current.client_secret_enc.clone(),
    };
    let sql = format!(
        "UPDATE oidc_providers SET display_name = $1, issuer = $2, client_id = $3, client_secret_enc = $4, scopes = $5, \
         roles_claim = $6, role_map = $7, default_role = $8, enabled = $9, updated_at = $10, version = version + 1 \
         WHERE tenant_id = $11 AND id = $12 AND version = $13 RETURNING {COLUMNS}"
    );
    on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, ProviderRow>(&sql)
        .bind(input.display_name.trim())
        .bind(input.issuer.trim())
        .bind(input.client_id.trim())
        .bind(&secret)
        .bind(Json(&input.scopes))
        .bind(input.roles_claim.trim())
        .bind(Json(&input.role_map))
        .bind(&input.default_role)
        .bind(input.enabled)
        .bind(now_ms())
        .bind(scope.tenant_id())
        .bind(id)
        .bind(current.version)
        .fetch_optional(pool)
        .await)?
    .ok_or(StoreError::PreconditionFailed {
        kind: "sign-in provider",
        current: current.version + 1,
    })
}

pub async fn delete(store: &Store, scope: &TenantScope, id: &str) -> StoreResult<()> {
    let n = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("DELETE FROM oidc_providers WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id())
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    if n == 0 {
        return Err(StoreError::NotFound {
            kind: "sign-in provider",
        });
    }
    Ok(())
}

/// The provider's client secret, decrypted for the token request.
pub fn client_secret(store: &Store, row: &ProviderRow) -> Option<String> {
    let sealed = row.client_secret_enc.as_deref()?;
    store.secrets.open(sealed, &secret_context(&row.id)).ok()
}
