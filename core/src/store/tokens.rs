//! API tokens: random secrets shown once, stored only as a hash, bound to one tenant (or the
//! platform) and one role, with optional expiry and revocation.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::list::{Field, FieldKind};
use super::resource::Listable;
use super::{Store, StoreError, StoreResult, TenantId, TenantScope};
use crate::domain::time::{now_ms, serialize_ms, serialize_opt_ms};
use crate::domain::{Role, Validation, new_id, validate};
use crate::on_db;
use crate::secrets::{hash_token, new_api_token};

/// How often `last_used_at` is written: enough for "is this token still used?", without a
/// write on every request.
const TOUCH_INTERVAL_MS: i64 = 60_000;

#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub role: String,
    /// The first characters of the token, to recognise it; the rest is never stored.
    pub token_prefix: String,
    pub created_by: String,
    #[serde(serialize_with = "serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "serialize_opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<i64>,
    #[serde(serialize_with = "serialize_opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
    #[serde(serialize_with = "serialize_opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<i64>,
    /// Team ids the token is limited to (like a scoped supervisor); empty means all teams.
    #[schema(value_type = Vec<String>)]
    pub team_scope: sqlx::types::Json<Vec<String>>,
    /// Location ids the token is limited to; empty means all locations.
    #[schema(value_type = Vec<String>)]
    pub location_scope: sqlx::types::Json<Vec<String>>,
    #[serde(skip)]
    pub version: i64,
}

impl Listable for ApiToken {
    const KIND: &'static str = "token";
    const COLLECTION: &'static str = "tokens";
    const FROM: &'static str = "api_tokens";
    const SELECT: &'static str = "id, name, role, token_prefix, created_by, created_at, expires_at, revoked_at, \
        last_used_at, team_scope, location_scope, CAST(1 AS BIGINT) AS version";
    const FIELDS: &'static [Field] = &[
        Field::new("name", "name", FieldKind::Text),
        Field::new("role", "role", FieldKind::Text),
        Field::new("created_at", "created_at", FieldKind::Time).sort_only(),
    ];
    const SEARCH: &'static [&'static str] = &["name"];
    const DESCRIPTION: &'static str = "API tokens of this tenant (the secret is shown once, at creation).";
    type View = ApiToken;
    fn view(self) -> ApiToken {
        self
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> i64 {
        self.version
    }
}

/// A token that was just created, with its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    #[serde(flatten)]
    pub token: ApiToken,
    /// The secret. It is shown only now; store it safely.
    pub secret: String,
}

/// What a presented token grants.
#[derive(Debug, Clone, FromRow)]
pub struct TokenGrant {
    pub id: String,
    pub tenant_id: Option<crate::store::TenantId>,
    pub tenant_slug: Option<String>,
    pub tenant_suspended: bool,
    pub role: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub team_scope: sqlx::types::Json<Vec<String>>,
    pub location_scope: sqlx::types::Json<Vec<String>>,
}

/// Teams and locations a token is limited to.
#[derive(Debug, Clone, Default)]
pub struct TokenScopes {
    pub teams: Vec<String>,
    pub locations: Vec<String>,
}

pub async fn issue(
    store: &Store,
    tenant_id: Option<&TenantId>,
    name: &str,
    role: Role,
    expires_at: Option<i64>,
    created_by: &str,
) -> StoreResult<IssuedToken> {
    issue_scoped(
        store,
        tenant_id,
        name,
        role,
        expires_at,
        created_by,
        TokenScopes::default(),
    )
    .await
}

/// Issues a token limited to teams and locations (checked to exist in the tenant).
pub async fn issue_scoped(
    store: &Store,
    tenant_id: Option<&TenantId>,
    name: &str,
    role: Role,
    expires_at: Option<i64>,
    created_by: &str,
    scopes: TokenScopes,
) -> StoreResult<IssuedToken> {
    let mut v = Validation::new();
    let name = v.check("name", validate::name(name, 100));
    match (tenant_id, role) {
        (None, r) if r != Role::PlatformAdmin => v.add("role", "tokens without a tenant must be platform_admin"),
        (Some(_), Role::PlatformAdmin) => v.add("role", "platform_admin tokens cannot belong to a tenant"),
        _ => {}
    }
    let now = now_ms();
    if expires_at.is_some_and(|e| e <= now) {
        v.add("expires_at", "must be in the future");
    }
    match tenant_id {
        Some(tenant) => {
            super::entities::users::check_ids(store, tenant, &mut v, "team_scope", "teams", &scopes.teams).await?;
            super::entities::users::check_ids(store, tenant, &mut v, "location_scope", "locations", &scopes.locations)
                .await?;
        }
        None if !scopes.teams.is_empty() || !scopes.locations.is_empty() => {
            v.add("team_scope", "platform tokens have no teams");
        }
        None => {}
    }
    v.finish()?;
    let secret = new_api_token();
    let sql = format!(
        "INSERT INTO api_tokens (id, tenant_id, name, role, token_hash, token_prefix, created_by, created_at, expires_at, \
         team_scope, location_scope) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {}",
        ApiToken::SELECT
    );
    let token = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, ApiToken>(&sql)
            .bind(new_id("tok"))
            .bind(tenant_id)
            .bind(name.unwrap_or_default())
            .bind(role.as_str())
            .bind(hash_token(&secret))
            .bind(&secret[..12])
            .bind(created_by)
            .bind(now)
            .bind(expires_at)
            .bind(sqlx::types::Json(&scopes.teams))
            .bind(sqlx::types::Json(&scopes.locations))
            .fetch_one(pool)
            .await
    })?;
    Ok(IssuedToken { token, secret })
}

/// Looks up a presented token. `None` when it does not exist.
pub async fn find(store: &Store, secret: &str) -> StoreResult<Option<TokenGrant>> {
    let sql = "SELECT t.id, t.tenant_id, ten.slug AS tenant_slug, (ten.suspended_at IS NOT NULL) AS tenant_suspended, \
               t.role, t.expires_at, t.revoked_at, t.last_used_at, t.team_scope, t.location_scope \
               FROM api_tokens t LEFT JOIN tenants ten ON ten.id = t.tenant_id WHERE t.token_hash = $1";
    let hash = hash_token(secret);
    Ok(on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, TokenGrant>(sql)
        .bind(&hash)
        .fetch_optional(pool)
        .await)?)
}

/// What the token with this id grants (revoked and expired ones too, for the caller to judge).
pub async fn grant_by_id(store: &Store, id: &str) -> StoreResult<Option<TokenGrant>> {
    let sql = "SELECT t.id, t.tenant_id, ten.slug AS tenant_slug, (ten.suspended_at IS NOT NULL) AS tenant_suspended, \
               t.role, t.expires_at, t.revoked_at, t.last_used_at, t.team_scope, t.location_scope \
               FROM api_tokens t LEFT JOIN tenants ten ON ten.id = t.tenant_id WHERE t.id = $1";
    Ok(on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, TokenGrant>(sql)
        .bind(id)
        .fetch_optional(pool)
        .await)?)
}

/// Records use of a token, at most once per interval; returns the time written, if any.
pub async fn touch(store: &Store, grant: &TokenGrant) -> StoreResult<Option<i64>> {
    let now = now_ms();
    if grant.last_used_at.is_some_and(|t| now - t < TOUCH_INTERVAL_MS) {
        return Ok(None);
    }
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&grant.id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(Some(now))
}

pub async fn revoke(store: &Store, scope: &TenantScope, id: &str) -> StoreResult<()> {
    let n = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE api_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(scope.tenant_id())
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })?;
    super::credentials::publish(super::credentials::Change::Token(id.to_owned()));
    if n == 0 {
        // Either unknown, or already revoked (which is fine to repeat).
        super::resource::get::<ApiToken>(store, scope, id).await?;
    }
    Ok(())
}

/// All tokens of a tenant, or the platform tokens when `tenant_id` is `None` (for the CLI).
pub async fn list_for_operator(store: &Store, tenant_id: Option<&TenantId>) -> StoreResult<Vec<ApiToken>> {
    let sql = format!(
        "SELECT {} FROM api_tokens WHERE (tenant_id = $1 OR ($1 IS NULL AND tenant_id IS NULL)) ORDER BY created_at",
        ApiToken::SELECT
    );
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, ApiToken>(&sql)
            .bind(tenant_id)
            .fetch_all(pool)
            .await
    })?)
}

/// Revokes a token by id regardless of tenant (for the operator's CLI).
pub async fn revoke_for_operator(store: &Store, id: &str) -> StoreResult<()> {
    let n = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    super::credentials::publish(super::credentials::Change::Token(id.to_owned()));
    if n == 0 {
        Err(StoreError::NotFound { kind: "token" })
    } else {
        Ok(())
    }
}
