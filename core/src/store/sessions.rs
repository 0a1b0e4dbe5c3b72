//! Browser sessions, kept in the database so any instance can serve any request. The cookie
//! holds a random secret; the table holds its hash, so a database leak yields no usable cookie.

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, StoreError, StoreResult, TenantId};
use crate::domain::new_id;
use crate::domain::time::{now_ms, serialize_ms, serialize_opt_ms};
use crate::on_db;
use crate::secrets::{hash_token, random_secret};

/// Writing `last_seen_at` at most this often keeps reads from becoming writes.
const TOUCH_INTERVAL_MS: i64 = 60_000;

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Session {
    pub id: String,
    #[serde(skip)]
    pub user_id: String,
    /// The tenant the user is working in; `None` for a platform admin's installation view.
    pub tenant_id: Option<TenantId>,
    #[serde(skip)]
    pub csrf_token: String,
    /// `password` or `oidc`.
    pub auth_method: String,
    pub oidc_provider: Option<String>,
    #[serde(skip)]
    pub id_token_enc: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[serde(serialize_with = "serialize_ms")]
    pub created_at: i64,
    #[serde(serialize_with = "serialize_ms")]
    pub last_seen_at: i64,
    #[serde(serialize_with = "serialize_ms")]
    pub expires_at: i64,
    #[serde(serialize_with = "serialize_opt_ms")]
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, tenant_id, csrf_token, auth_method, oidc_provider, id_token_enc, ip, user_agent, \
    created_at, last_seen_at, expires_at, revoked_at";

/// What starts a session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: String,
    pub tenant_id: Option<TenantId>,
    pub auth_method: String,
    pub oidc_provider: Option<String>,
    pub id_token_enc: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Absolute lifetime in milliseconds.
    pub lifetime_ms: i64,
}

/// Creates a session and returns the cookie secret with it.
pub async fn create(store: &Store, new: NewSession) -> StoreResult<(String, Session)> {
    let secret = random_secret();
    let now = now_ms();
    let sql = format!(
        "INSERT INTO sessions (id, token_hash, user_id, tenant_id, csrf_token, auth_method, oidc_provider, id_token_enc, \
         ip, user_agent, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12) RETURNING {COLUMNS}"
    );
    let session = on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Session>(&sql)
        .bind(new_id("ses"))
        .bind(hash_token(&secret))
        .bind(&new.user_id)
        .bind(&new.tenant_id)
        .bind(random_secret())
        .bind(&new.auth_method)
        .bind(&new.oidc_provider)
        .bind(&new.id_token_enc)
        .bind(new.ip.as_deref().map(|s| clip(s, 64)))
        .bind(new.user_agent.as_deref().map(|s| clip(s, 300)))
        .bind(now)
        .bind(now + new.lifetime_ms)
        .fetch_one(pool)
        .await)?;
    Ok((secret, session))
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The live session for a cookie secret: not revoked, not past its absolute expiry, and used
/// within the idle timeout. Refreshes `last_seen_at`.
pub async fn find_active(store: &Store, secret: &str, idle_ms: i64) -> StoreResult<Option<Session>> {
    let sql = format!("SELECT {COLUMNS} FROM sessions WHERE token_hash = $1");
    let Some(session) = on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Session>(&sql)
        .bind(hash_token(secret))
        .fetch_optional(pool)
        .await)?
    else {
        return Ok(None);
    };
    let now = now_ms();
    if session.revoked_at.is_some() || session.expires_at <= now || session.last_seen_at + idle_ms <= now {
        return Ok(None);
    }
    if now - session.last_seen_at >= TOUCH_INTERVAL_MS {
        on_db!(&store.db, |pool, DB| {
            sqlx::query::<DB>("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&session.id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
    }
    Ok(Some(session))
}

pub async fn switch_tenant(store: &Store, session_id: &str, tenant_id: Option<&TenantId>) -> StoreResult<()> {
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("UPDATE sessions SET tenant_id = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(tenant_id)
            .bind(session_id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    super::credentials::publish(super::credentials::Change::Session(session_id.to_owned()));
    Ok(())
}

/// Ends one of `user_id`'s sessions.
pub async fn revoke(store: &Store, user_id: &str, session_id: &str) -> StoreResult<()> {
    let n = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("UPDATE sessions SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND user_id = $3")
            .bind(now_ms())
            .bind(session_id)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    super::credentials::publish(super::credentials::Change::Session(session_id.to_owned()));
    if n == 0 {
        return Err(StoreError::NotFound { kind: "session" });
    }
    Ok(())
}

/// Ends every session of a user ("sign out everywhere"), optionally keeping one.
pub async fn revoke_all(store: &Store, user_id: &str, except: Option<&str>) -> StoreResult<u64> {
    let ended = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND id <> $3")
            .bind(now_ms())
            .bind(user_id)
            .bind(except.unwrap_or(""))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    super::credentials::publish(super::credentials::Change::Account(user_id.to_owned()));
    Ok(ended)
}

/// A user's sessions that are still open, newest first.
pub async fn list_active(store: &Store, user_id: &str, idle_ms: i64) -> StoreResult<Vec<Session>> {
    let now = now_ms();
    let sql = format!(
        "SELECT {COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
         AND last_seen_at > $3 ORDER BY created_at DESC LIMIT 100"
    );
    Ok(on_db!(&store.db, |pool, DB| sqlx::query_as::<DB, Session>(&sql)
        .bind(user_id)
        .bind(now)
        .bind(now - idle_ms)
        .fetch_all(pool)
        .await)?)
}

/// Open sessions of a tenant's members, for its admins (with who holds them).
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct MemberSession {
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub auth_method: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[serde(serialize_with = "serialize_ms")]
    pub created_at: i64,
    #[serde(serialize_with = "serialize_ms")]
    pub last_seen_at: i64,
}

pub async fn list_for_tenant(store: &Store, tenant: &TenantId, idle_ms: i64) -> StoreResult<Vec<MemberSession>> {
    let tenant_id = tenant.as_str();
    let now = now_ms();
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, MemberSession>(
        "SELECT s.id, s.user_id, u.email, s.auth_method, s.ip, s.user_agent, s.created_at, s.last_seen_at \
         FROM sessions s JOIN users u ON u.id = s.user_id JOIN memberships m ON m.user_id = s.user_id AND m.tenant_id = $1 \
         WHERE s.tenant_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.last_seen_at > $3 \
         ORDER BY s.last_seen_at DESC LIMIT 500"
    )
    .bind(tenant_id)
    .bind(now)
    .bind(now - idle_ms)
    .fetch_all(pool)
    .await
    })?)
}

/// Whose session this is, when it is one of the tenant's.
pub async fn owner_in_tenant(store: &Store, tenant: &TenantId, session_id: &str) -> StoreResult<Option<String>> {
    let tenant_id = tenant.as_str();
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, String>("SELECT user_id FROM sessions WHERE id = $1 AND tenant_id = $2")
            .bind(session_id)
            .bind(tenant_id)
            .fetch_optional(pool)
            .await
    })?)
}

/// A tenant admin ends a member's session in their tenant.
pub async fn revoke_in_tenant(store: &Store, tenant: &TenantId, session_id: &str) -> StoreResult<()> {
    let tenant_id = tenant.as_str();
    let n = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("UPDATE sessions SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND tenant_id = $3")
            .bind(now_ms())
            .bind(session_id)
            .bind(tenant_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    super::credentials::publish(super::credentials::Change::Session(session_id.to_owned()));
    if n == 0 {
        return Err(StoreError::NotFound { kind: "session" });
    }
    Ok(())
}

/// Drops sessions that ended long ago, so the table does not grow without bound.
pub async fn purge_expired(store: &Store, older_than_ms: i64) -> StoreResult<u64> {
    let cutoff = now_ms() - older_than_ms;
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("DELETE FROM sessions WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)")
            .bind(cutoff)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?)
}

/// The encryption context of a session's stored ID token: bound to its user.
pub fn id_token_context(user_id: &str) -> String {
    format!("id_token/{user_id}")
}
