//! Invitations to join a tenant. A tenant admin names an email, a role and scopes; the membership
//! exists only once the person behind that address accepts. Whether the address already has an
//! account plays no part in making an invitation, so the tenant learns nothing from it.

use serde::Serialize;
use sqlx::FromRow;
use sqlx::types::Json;
use utoipa::ToSchema;

use super::list::{Field, FieldKind};
use super::resource::Listable;
use super::{Store, StoreError, StoreResult, TenantScope};
use crate::domain::time::{now_ms, serialize_ms, serialize_opt_ms};
use crate::domain::{Role, new_id};
use crate::on_db;
use crate::secrets::{hash_token, random_secret};

/// An invitation as its tenant's admins see it.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Invitation {
    pub id: String,
    /// The address as the admin typed it (lower-cased).
    pub email: String,
    /// A name suggested for a new account; the person may change it.
    pub display_name: Option<String>,
    pub role: String,
    #[schema(value_type = Vec<String>)]
    pub team_scope: Json<Vec<String>>,
    #[schema(value_type = Vec<String>)]
    pub location_scope: Json<Vec<String>>,
    pub created_by: String,
    #[serde(serialize_with = "serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    #[serde(serialize_with = "serialize_opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub accepted_at: Option<i64>,
    #[serde(serialize_with = "serialize_opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub declined_at: Option<i64>,
    #[serde(serialize_with = "serialize_opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
    /// `pending`, `accepted`, `declined`, `revoked` or `expired`.
    #[sqlx(skip)]
    pub status: String,
}

impl Invitation {
    fn with_status(mut self, now: i64) -> Self {
        self.status = if self.accepted_at.is_some() {
            "accepted"
        } else if self.declined_at.is_some() {
            "declined"
        } else if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at <= now {
            "expired"
        } else {
            "pending"
        }
        .to_owned();
        self
    }

    pub fn is_pending(&self) -> bool {
        self.status == "pending"
    }
}

const COLUMNS: &str = "id, email, display_name, role, team_scope, location_scope, created_by, created_at, expires_at, \
    accepted_at, declined_at, revoked_at";

impl Listable for Invitation {
    const KIND: &'static str = "invitation";
    const COLLECTION: &'static str = "invitations";
    const FROM: &'static str = "invitations";
    const SELECT: &'static str = COLUMNS;
    const FIELDS: &'static [Field] = &[
        Field::new("email", "email", FieldKind::Text),
        Field::new("role", "role", FieldKind::Text),
        Field::new("created_at", "created_at", FieldKind::Time).sort_only(),
    ];
    const SEARCH: &'static [&'static str] = &["email"];
    const DESCRIPTION: &'static str = "Invitations to join this tenant; a membership exists once the person accepts.";
    type View = Invitation;
    fn view(self) -> Invitation {
        self.with_status(now_ms())
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> i64 {
        1
    }
}

/// What an invitation grants, already checked by the caller.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub team_scope: Vec<String>,
    pub location_scope: Vec<String>,
    pub lifetime_ms: i64,
}

/// A pending invitation found by its token, with what the acceptance page shows.
#[derive(Debug, Clone, FromRow)]
pub struct Pending {
    pub id: String,
    pub tenant_id: crate::store::TenantId,
    pub tenant_slug: String,
    pub tenant_name: String,
    pub email: String,
    pub display_name: Option<String>,
    pub role: String,
    pub team_scope: Json<Vec<String>>,
    pub location_scope: Json<Vec<String>>,
    pub created_by: String,
}

/// Whether `email` already belongs to a member of this tenant (something its admins can see
/// in their member list anyway).
pub async fn is_member(store: &Store, scope: &TenantScope, email: &str) -> StoreResult<bool> {
    let n: i64 = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, i64>(
            "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.tenant_id = $1 AND lower(u.email) = lower($2)",
        )
        .bind(scope.tenant_id())
        .bind(email)
        .fetch_one(pool)
        .await
    })?;
    Ok(n > 0)
}

/// Stores an invitation and returns it with its one-time token. An earlier pending invitation
/// of the same address to the same tenant is revoked: only the newest link works.
pub async fn create(store: &Store, scope: &TenantScope, input: NewInvitation) -> StoreResult<(Invitation, String)> {
    let token = random_secret();
    let now = now_ms();
    let sql = format!(
        "INSERT INTO invitations (id, tenant_id, email, display_name, role, team_scope, location_scope, token_hash, \
         created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}"
    );
    let invitation = on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        sqlx::query::<DB>(
            "UPDATE invitations SET revoked_at = $1 WHERE tenant_id = $2 AND email = $3 AND accepted_at IS NULL \
             AND declined_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(scope.tenant_id())
        .bind(&input.email)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query_as::<DB, Invitation>(&sql)
            .bind(new_id("inv"))
            .bind(scope.tenant_id())
            .bind(&input.email)
            .bind(&input.display_name)
            .bind(input.role.as_str())
            .bind(Json(&input.team_scope))
            .bind(Json(&input.location_scope))
            .bind(hash_token(&token))
            .bind(scope.actor())
            .bind(now)
            .bind(now + input.lifetime_ms)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(row)
    })?;
    Ok((invitation.with_status(now), token))
}

/// Revokes a pending invitation of this tenant; revoking one that is already closed is fine.
pub async fn revoke(store: &Store, scope: &TenantScope, id: &str) -> StoreResult<Invitation> {
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE invitations SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND accepted_at IS NULL \
             AND declined_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(scope.tenant_id())
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    super::resource::get::<Invitation>(store, scope, id)
        .await
        .map(|i| i.with_status(now_ms()))
}

/// Revokes a pending invitation that can no longer be taken up (its maker lost the right to
/// grant it).
pub async fn revoke_unusable(store: &Store, id: &str) -> StoreResult<()> {
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE invitations SET revoked_at = $1 WHERE id = $2 AND accepted_at IS NULL AND declined_at IS NULL \
             AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// The tenant's pending invitations, newest first, at most `limit`. Filtered in the query, so
/// a pending invitation is listed however many closed ones came after it.
pub async fn pending(store: &Store, scope: &TenantScope, limit: i64) -> StoreResult<Vec<Invitation>> {
    let now = now_ms();
    let sql = format!(
        "SELECT {COLUMNS} FROM invitations WHERE tenant_id = $1 AND accepted_at IS NULL AND declined_at IS NULL \
         AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id DESC LIMIT $3"
    );
    let rows = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, Invitation>(&sql)
            .bind(scope.tenant_id())
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await
    })?;
    Ok(rows.into_iter().map(|i| i.with_status(now)).collect())
}

/// The pending, unexpired invitation a token stands for, if any.
pub async fn pending_by_token(store: &Store, token: &str) -> StoreResult<Option<Pending>> {
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, Pending>(
            "SELECT i.id, i.tenant_id, t.slug AS tenant_slug, t.name AS tenant_name, i.email, i.display_name, i.role, \
             i.team_scope, i.location_scope, i.created_by FROM invitations i JOIN tenants t ON t.id = i.tenant_id \
             WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.declined_at IS NULL AND i.revoked_at IS NULL \
             AND i.expires_at > $2 AND t.suspended_at IS NULL",
        )
        .bind(hash_token(token))
        .bind(now_ms())
        .fetch_optional(pool)
        .await
    })?)
}

/// Accepts an invitation for `user_id`: closes it and creates the membership in one
/// transaction, so a token is used once. `None` when the invitation is no longer pending. A
/// membership the account already has is left as it is.
pub async fn accept(store: &Store, token: &str, user_id: &str) -> StoreResult<Option<Pending>> {
    let Some(pending) = pending_by_token(store, token).await? else {
        return Ok(None);
    };
    let role: Role = pending
        .role
        .parse()
        .map_err(|_| StoreError::Internal("invitation with an unknown role".into()))?;
    let now = now_ms();
    let accepted = on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        let n = sqlx::query::<DB>(
            "UPDATE invitations SET accepted_at = $1, accepted_by = $2 WHERE id = $3 AND accepted_at IS NULL \
             AND declined_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(user_id)
        .bind(&pending.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            sqlx::query::<DB>(
                "INSERT INTO memberships (tenant_id, user_id, role, team_scope, location_scope, disabled, created_at, \
                 updated_at, version) VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6, 1) \
                 ON CONFLICT (tenant_id, user_id) DO NOTHING",
            )
            .bind(&pending.tenant_id)
            .bind(user_id)
            .bind(role.as_str())
            .bind(&pending.team_scope)
            .bind(&pending.location_scope)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(n == 1)
    })?;
    Ok(accepted.then_some(pending))
}

/// Declines an invitation; `None` when it is no longer pending.
pub async fn decline(store: &Store, token: &str) -> StoreResult<Option<Pending>> {
    let Some(pending) = pending_by_token(store, token).await? else {
        return Ok(None);
    };
    let n = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE invitations SET declined_at = $1 WHERE id = $2 AND accepted_at IS NULL AND declined_at IS NULL \
             AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(&pending.id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok((n == 1).then_some(pending))
}
