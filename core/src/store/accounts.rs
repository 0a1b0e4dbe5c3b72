//! Accounts across tenants: sign-in credentials, platform operators, linked OpenID identities,
//! password reset links and installation-wide state. Tenant-facing membership management lives
//! in `entities::users`.

use serde::Serialize;
use sqlx::FromRow;
use sqlx::types::Json;

use super::{Store, StoreError, StoreResult, TenantScope, Visibility};
use crate::domain::time::now_ms;
use crate::domain::{Role, Validation, new_id, validate};
use crate::on_db;
use crate::secrets::{hash_token, random_secret};
use crate::store::TenantId;

/// A user account with what sign-in needs.
#[derive(Debug, Clone, FromRow)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub disabled: bool,
    pub platform_admin: bool,
    pub password_hash: Option<String>,
    pub locale: Option<String>,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

const ACCOUNT: &str =
    "id, email, display_name, disabled, platform_admin, password_hash, locale, created_at, last_login_at";

/// A user's place in one tenant.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub tenant_slug: String,
    pub tenant_name: String,
    pub tenant_suspended: bool,
    pub role: String,
    #[serde(skip)]
    pub team_scope: Json<Vec<String>>,
    #[serde(skip)]
    pub location_scope: Json<Vec<String>>,
    pub disabled: bool,
}

impl Membership {
    /// Whether the user may act in this tenant at all.
    pub fn usable(&self) -> bool {
        !self.disabled && !self.tenant_suspended
    }

    /// The verified scope this membership grants to `actor`.
    pub fn scope(&self, actor: String) -> Option<TenantScope> {
        let role: Role = self.role.parse().ok()?;
        Some(
            TenantScope::verified(self.tenant_id.clone(), self.tenant_slug.clone(), role, actor).with_visibility(
                Visibility::from_scopes(self.team_scope.0.clone(), self.location_scope.0.clone()),
            ),
        )
    }
}

const MEMBERSHIP: &str = "m.tenant_id AS tenant_id, t.slug AS tenant_slug, t.name AS tenant_name, \
    (t.suspended_at IS NOT NULL) AS tenant_suspended, m.role AS role, m.team_scope AS team_scope, \
    m.location_scope AS location_scope, m.disabled AS disabled";

pub async fn by_email(store: &Store, email: &str) -> StoreResult<Option<Account>> {
    let sql = format!("SELECT {ACCOUNT} FROM users WHERE lower(email) = lower($1)");
    Ok(on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Account>(&sql)
        .bind(email.trim())
        .fetch_optional(pool)
        .await)?)
}

pub async fn by_id(store: &Store, id: &str) -> StoreResult<Account> {
    let sql = format!("SELECT {ACCOUNT} FROM users WHERE id = $1");
    on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Account>(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await)?
    .ok_or(StoreError::NotFound { kind: "user" })
}

/// Every account (for the operator's CLI and platform admins).
pub async fn list_all(store: &Store) -> StoreResult<Vec<Account>> {
    let sql = format!("SELECT {ACCOUNT} FROM users ORDER BY lower(email)");
    Ok(on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Account>(&sql)
        .fetch_all(pool)
        .await)?)
}

pub async fn memberships(store: &Store, user_id: &str) -> StoreResult<Vec<Membership>> {
    let sql = format!(
        "SELECT {MEMBERSHIP} FROM memberships m JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = $1 ORDER BY t.slug"
    );
    Ok(on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Membership>(&sql)
        .bind(user_id)
        .fetch_all(pool)
        .await)?)
}

pub async fn membership(store: &Store, user_id: &str, tenant: &TenantId) -> StoreResult<Option<Membership>> {
    let tenant_id = tenant.as_str();
    let sql = format!(
        "SELECT {MEMBERSHIP} FROM memberships m JOIN tenants t ON t.id = m.tenant_id \
         WHERE m.user_id = $1 AND m.tenant_id = $2"
    );
    Ok(on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Membership>(&sql)
        .bind(user_id)
        .bind(tenant_id)
        .fetch_optional(pool)
        .await)?)
}

pub async fn platform_admin_exists(store: &Store) -> StoreResult<bool> {
    let n: i64 = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM users WHERE platform_admin = TRUE AND disabled = FALSE")
            .fetch_one(pool)
            .await
    })?;
    Ok(n > 0)
}

/// What a new account starts with.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub email: String,
    pub display_name: Option<String>,
    pub password_hash: Option<String>,
    pub platform_admin: bool,
}

/// Creates an account; the email must be new.
pub async fn create(store: &Store, input: NewAccount) -> StoreResult<Account> {
    let mut v = Validation::new();
    let email = v.check("email", validate::email(&input.email));
    let display_name = match &input.display_name {
        Some(name) => v.check("display_name", validate::name(name, 100)),
        None => email
            .as_ref()
            .map(|e| e.split('@').next().unwrap_or_default().to_owned()),
    };
    v.finish()?;
    let now = now_ms();
    let sql = format!(
        "INSERT INTO users (id, email, display_name, disabled, platform_admin, password_hash, password_changed_at, \
         created_at, updated_at, version) VALUES ($1, $2, $3, FALSE, $4, $5, $6, $7, $7, 1) RETURNING {ACCOUNT}"
    );
    let changed_at = input.password_hash.as_ref().map(|_| now);
    on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Account>(&sql)
        .bind(new_id("usr"))
        .bind(email.unwrap_or_default())
        .bind(display_name.unwrap_or_default())
        .bind(input.platform_admin)
        .bind(&input.password_hash)
        .bind(changed_at)
        .bind(now)
        .fetch_one(pool)
        .await)
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict { .. } => StoreError::Conflict {
            field: Some("email".into()),
            message: "an account with this email already exists".into(),
        },
        other => other,
    })
}

pub async fn set_password(store: &Store, user_id: &str, password_hash: &str) -> StoreResult<()> {
    let now = now_ms();
    affected(on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE users SET password_hash = $1, password_changed_at = $2, updated_at = $2, version = version + 1 \
             WHERE id = $3",
        )
        .bind(password_hash)
        .bind(now)
        .bind(user_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })?)
}

pub async fn set_disabled(store: &Store, user_id: &str, disabled: bool) -> StoreResult<()> {
    let changed = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("UPDATE users SET disabled = $1, updated_at = $2, version = version + 1 WHERE id = $3")
            .bind(disabled)
            .bind(now_ms())
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    super::credentials::publish(super::credentials::Change::Account(user_id.to_owned()));
    affected(changed)
}

pub async fn set_platform_admin(store: &Store, user_id: &str, platform_admin: bool) -> StoreResult<()> {
    let changed = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("UPDATE users SET platform_admin = $1, updated_at = $2, version = version + 1 WHERE id = $3")
            .bind(platform_admin)
            .bind(now_ms())
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    super::credentials::publish(super::credentials::Change::Account(user_id.to_owned()));
    affected(changed)
}

/// `None` clears the preference (Accept-Language decides).
pub async fn set_locale(store: &Store, user_id: &str, locale: Option<&str>) -> StoreResult<()> {
    affected(on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("UPDATE users SET locale = $1 WHERE id = $2")
            .bind(locale)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?)
}

pub async fn record_login(store: &Store, user_id: &str) -> StoreResult<()> {
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("UPDATE users SET last_login_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(user_id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

fn affected(n: u64) -> StoreResult<()> {
    if n == 0 {
        Err(StoreError::NotFound { kind: "user" })
    } else {
        Ok(())
    }
}

/// Grants a role in a tenant to an account (creating or replacing the membership).
pub async fn grant_membership(
    store: &Store,
    user_id: &str,
    tenant: &TenantId,
    role: Role,
    team_scope: &[String],
    location_scope: &[String],
) -> StoreResult<()> {
    let tenant_id = tenant.as_str();
    if role == Role::PlatformAdmin {
        return Err(Validation::single("role", "platform_admin is not a tenant role").into());
    }
    let now = now_ms();
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "INSERT INTO memberships (tenant_id, user_id, role, team_scope, location_scope, disabled, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6, 1) \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role, team_scope = excluded.team_scope, \
             location_scope = excluded.location_scope, updated_at = excluded.updated_at, version = memberships.version + 1",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(Json(team_scope))
        .bind(Json(location_scope))
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    super::credentials::publish(super::credentials::Change::Account(user_id.to_owned()));
    Ok(())
}

/// The account linked to `subject` at an OpenID provider.
pub async fn by_identity(store: &Store, provider: &str, subject: &str) -> StoreResult<Option<Account>> {
    let sql = format!(
        "SELECT {} FROM users u JOIN user_identities i ON i.user_id = u.id WHERE i.provider = $1 AND i.subject = $2",
        ACCOUNT
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Account>(&sql)
        .bind(provider)
        .bind(subject)
        .fetch_optional(pool)
        .await)?)
}

pub async fn link_identity(store: &Store, provider: &str, subject: &str, user_id: &str) -> StoreResult<()> {
    let now = now_ms();
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "INSERT INTO user_identities (provider, subject, user_id, created_at, last_login_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (provider, subject) DO UPDATE SET last_login_at = excluded.last_login_at",
        )
        .bind(provider)
        .bind(subject)
        .bind(user_id)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Creates a one-time password reset link token (only its hash is kept).
/// Creates a one-time password reset link token (only its hash is kept). `tenant_id` is set
/// when a tenant's admin made it: the link then only works while the account belongs to that
/// tenant alone.
pub async fn create_password_reset(
    store: &Store,
    user_id: &str,
    created_by: &str,
    tenant_id: Option<&TenantId>,
    lifetime_ms: i64,
) -> StoreResult<String> {
    let token = random_secret();
    let now = now_ms();
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "INSERT INTO password_resets (token_hash, user_id, created_by, created_at, expires_at, tenant_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hash_token(&token))
        .bind(user_id)
        .bind(created_by)
        .bind(now)
        .bind(now + lifetime_ms)
        .bind(tenant_id)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(token)
}

/// The user a reset token is for, if it is unused, unexpired and still within the reach of
/// whoever made it. Does not consume it.
pub async fn peek_password_reset(store: &Store, token: &str) -> StoreResult<Option<String>> {
    let found: Option<(String, Option<TenantId>)> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (String, Option<TenantId>)>(
            "SELECT user_id, tenant_id FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(hash_token(token))
        .bind(now_ms())
        .fetch_optional(pool)
        .await
    })?;
    let Some((user_id, tenant_id)) = found else {
        return Ok(None);
    };
    if let Some(tenant_id) = tenant_id {
        let account = by_id(store, &user_id).await?;
        let memberships = memberships(store, &user_id).await?;
        if account.platform_admin || memberships.iter().any(|m| m.tenant_id != tenant_id) {
            return Ok(None);
        }
    }
    Ok(Some(user_id))
}

/// Marks a reset token used; `None` when it was not valid (already used, expired, unknown).
/// Every other open link of the same user is invalidated too.
pub async fn consume_password_reset(store: &Store, token: &str) -> StoreResult<Option<String>> {
    let hash = hash_token(token);
    let now = now_ms();
    Ok(on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        let user: Option<String> = sqlx::query_scalar::<DB, String>(
            "UPDATE password_resets SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING user_id",
        )
        .bind(now)
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(user_id) = &user {
            sqlx::query::<DB>("UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(user)
    })?)
}

pub async fn get_state(store: &Store, key: &str) -> StoreResult<Option<String>> {
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, String>("SELECT value FROM system_state WHERE key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await
    })?)
}

pub async fn set_state(store: &Store, key: &str, value: &str) -> StoreResult<()> {
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "INSERT INTO system_state (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

pub async fn delete_state(store: &Store, key: &str) -> StoreResult<()> {
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("DELETE FROM system_state WHERE key = $1")
            .bind(key)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}
