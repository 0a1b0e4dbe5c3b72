//! Users as a tenant sees them: a global account (email, name) plus this tenant's membership
//! (role, scopes). One person can belong to several tenants with different roles.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use sqlx::types::Json;
use utoipa::ToSchema;

use super::Stamps;
use crate::domain::time::now_ms;
use crate::domain::{Role, Validation, new_id, validate};
use crate::on_db;
use crate::store::TenantId;
use crate::store::list::{Field, FieldKind};
use crate::store::resource::{self, Listable};
use crate::store::{Store, StoreError, StoreResult, TenantScope};

/// A user's account and membership in this tenant.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Member {
    /// The user id (the same in every tenant the user belongs to).
    pub id: String,
    pub email: String,
    pub display_name: String,
    /// `tenant_admin`, `supervisor`, `agent` or `viewer`.
    pub role: String,
    /// Team ids a supervisor is limited to; empty means all teams.
    #[schema(value_type = Vec<String>)]
    pub team_scope: Json<Vec<String>>,
    /// Location ids a supervisor is limited to; empty means all locations.
    #[schema(value_type = Vec<String>)]
    pub location_scope: Json<Vec<String>>,
    /// A disabled member cannot sign in to this tenant.
    pub disabled: bool,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub stamps: Stamps,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberCreate {
    pub email: String,
    /// Used when the account is new; an existing account keeps its name.
    pub display_name: Option<String>,
    pub role: Role,
    #[serde(default)]
    pub team_scope: Vec<String>,
    #[serde(default)]
    pub location_scope: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberUpdate {
    /// Only for accounts that belong to this tenant alone.
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub team_scope: Option<Vec<String>>,
    pub location_scope: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

impl Listable for Member {
    const KIND: &'static str = "user";
    const COLLECTION: &'static str = "users";
    const FROM: &'static str = "memberships m JOIN users u ON u.id = m.user_id";
    const SELECT: &'static str = "u.id AS id, u.email AS email, u.display_name AS display_name, m.role AS role, \
        m.team_scope AS team_scope, m.location_scope AS location_scope, m.disabled AS disabled, \
        m.created_at AS created_at, m.updated_at AS updated_at, m.version AS version";
    const ID_COLUMN: &'static str = "u.id";
    const TENANT_COLUMN: &'static str = "m.tenant_id";
    const FIELDS: &'static [Field] = &[
        Field::new("email", "u.email", FieldKind::Text),
        Field::new("display_name", "u.display_name", FieldKind::Text),
        Field::new("role", "m.role", FieldKind::Text),
        Field::new("disabled", "m.disabled", FieldKind::Bool),
        Field::new("created_at", "m.created_at", FieldKind::Time).sort_only(),
    ];
    const SEARCH: &'static [&'static str] = &["u.email", "u.display_name"];
    const DESCRIPTION: &'static str = "People who can sign in to this tenant, with their role and scopes.";
    type View = Member;
    fn view(self) -> Member {
        self
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> i64 {
        self.stamps.version
    }
}

fn tenant_role(v: &mut Validation, role: Role) -> Option<String> {
    if role == Role::PlatformAdmin {
        v.add(
            "role",
            "platform_admin is not a tenant role; use tenant_admin, supervisor, agent or viewer",
        );
        None
    } else {
        Some(role.as_str().to_owned())
    }
}

async fn check_scope(
    store: &Store,
    scope: &TenantScope,
    v: &mut Validation,
    field: &str,
    table: &str,
    ids: &[String],
) -> StoreResult<()> {
    check_ids(store, scope.tenant(), v, field, table, ids).await
}

/// Checks that every id names a row of `table` in the tenant (scopes of users and tokens).
pub(crate) async fn check_ids(
    store: &Store,
    tenant: &TenantId,
    v: &mut Validation,
    field: &str,
    table: &str,
    ids: &[String],
) -> StoreResult<()> {
    let tenant_id = tenant.as_str();
    if ids.len() > 200 {
        v.add(field, "must have at most 200 entries");
        return Ok(());
    }
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = $1 AND id = $2");
    for (i, id) in ids.iter().enumerate() {
        let n: i64 = on_db!(&store.db, |pool, DB| {
            sqlx::query_scalar::<DB, i64>(&sql)
                .bind(tenant_id)
                .bind(id)
                .fetch_one(pool)
                .await
        })?;
        if n == 0 {
            v.add(
                &format!("{field}/{i}"),
                format!("no {} with id `{id}` exists", &table[..table.len() - 1]),
            );
        }
    }
    Ok(())
}

pub async fn create(store: &Store, scope: &TenantScope, input: MemberCreate) -> StoreResult<Member> {
    let mut v = Validation::new();
    let email = v.check("email", validate::email(&input.email));
    let display_name = match &input.display_name {
        Some(name) => v.check("display_name", validate::name(name, 100)),
        None => email
            .as_ref()
            .map(|e| e.split('@').next().unwrap_or_default().to_owned()),
    };
    let role = tenant_role(&mut v, input.role);
    check_scope(store, scope, &mut v, "team_scope", "teams", &input.team_scope).await?;
    check_scope(
        store,
        scope,
        &mut v,
        "location_scope",
        "locations",
        &input.location_scope,
    )
    .await?;
    v.finish()?;
    let (email, display_name, role) = (
        email.unwrap_or_default(),
        display_name.unwrap_or_default(),
        role.unwrap_or_default(),
    );
    let now = now_ms();
    let user_id = on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        let existing: Option<String> = sqlx::query_scalar::<DB, String>("SELECT id FROM users WHERE lower(email) = $1")
            .bind(&email)
            .fetch_optional(&mut *tx)
            .await?;
        let user_id = match existing {
            Some(id) => id,
            None => {
                let id = new_id("usr");
                sqlx::query::<DB>(
                    "INSERT INTO users (id, email, display_name, disabled, created_at, updated_at, version) \
                     VALUES ($1, $2, $3, FALSE, $4, $4, 1)",
                )
                .bind(&id)
                .bind(&email)
                .bind(&display_name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        sqlx::query::<DB>(
            "INSERT INTO memberships (tenant_id, user_id, role, team_scope, location_scope, disabled, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6, 1)",
        )
        .bind(scope.tenant_id())
        .bind(&user_id)
        .bind(&role)
        .bind(Json(&input.team_scope))
        .bind(Json(&input.location_scope))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(user_id)
    })
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict { .. } => StoreError::Conflict {
            field: Some("email".into()),
            message: "this user is already a member of this tenant".into(),
        },
        other => other,
    })?;
    resource::get::<Member>(store, scope, &user_id).await
}

pub async fn update(
    store: &Store,
    scope: &TenantScope,
    user_id: &str,
    expected_version: Option<i64>,
    input: MemberUpdate,
) -> StoreResult<Member> {
    let current: Member = resource::get(store, scope, user_id).await?;
    if expected_version.is_some_and(|e| e != current.stamps.version) {
        return Err(StoreError::PreconditionFailed {
            kind: "user",
            current: current.stamps.version,
        });
    }
    let mut v = Validation::new();
    let role = input
        .role
        .and_then(|r| tenant_role(&mut v, r))
        .unwrap_or(current.role.clone());
    let display_name = match &input.display_name {
        Some(name) => v.check("display_name", validate::name(name, 100)),
        None => None,
    };
    let team_scope = input.team_scope.unwrap_or_else(|| current.team_scope.0.clone());
    let location_scope = input.location_scope.unwrap_or_else(|| current.location_scope.0.clone());
    check_scope(store, scope, &mut v, "team_scope", "teams", &team_scope).await?;
    check_scope(store, scope, &mut v, "location_scope", "locations", &location_scope).await?;
    v.finish()?;
    let disabled = input.disabled.unwrap_or(current.disabled);
    if display_name.is_some() {
        let memberships: i64 = on_db!(&store.db, |pool, DB| {
            sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM memberships WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(pool)
                .await
        })?;
        if memberships > 1 {
            return Err(Validation::single(
                "display_name",
                "this account belongs to other tenants too; only its owner can rename it",
            )
            .into());
        }
    }
    let now = now_ms();
    let updated = on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        if let Some(name) = &display_name {
            sqlx::query::<DB>(
                "UPDATE users SET display_name = $1, updated_at = $2, version = version + 1 WHERE id = $3",
            )
            .bind(name)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        }
        let n = sqlx::query::<DB>(
            "UPDATE memberships SET role = $1, team_scope = $2, location_scope = $3, disabled = $4, updated_at = $5, \
             version = version + 1 WHERE tenant_id = $6 AND user_id = $7 AND version = $8",
        )
        .bind(&role)
        .bind(Json(&team_scope))
        .bind(Json(&location_scope))
        .bind(disabled)
        .bind(now)
        .bind(scope.tenant_id())
        .bind(user_id)
        .bind(current.stamps.version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok::<_, sqlx::Error>(n)
    })?;
    match updated {
        0 => Err(StoreError::PreconditionFailed {
            kind: "user",
            current: current.stamps.version + 1,
        }),
        _ => {
            crate::store::credentials::publish(crate::store::credentials::Change::Account(user_id.to_owned()));
            resource::get(store, scope, user_id).await
        }
    }
}

/// Removes the user from this tenant; an account left without any tenant is deleted.
pub async fn remove(
    store: &Store,
    scope: &TenantScope,
    user_id: &str,
    expected_version: Option<i64>,
) -> StoreResult<()> {
    let current: Member = resource::get(store, scope, user_id).await?;
    if expected_version.is_some_and(|e| e != current.stamps.version) {
        return Err(StoreError::PreconditionFailed {
            kind: "user",
            current: current.stamps.version,
        });
    }
    let agents: i64 = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM agents WHERE tenant_id = $1 AND user_id = $2")
            .bind(scope.tenant_id())
            .bind(user_id)
            .fetch_one(pool)
            .await
    })?;
    if agents > 0 {
        return Err(StoreError::Conflict {
            field: None,
            message: format!("cannot remove this user: {agents} agents are linked to the account"),
        });
    }
    on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        sqlx::query::<DB>("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(scope.tenant_id())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query::<DB>(
            "DELETE FROM users WHERE id = $1 AND platform_admin = FALSE \
             AND NOT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1)",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })?;
    crate::store::credentials::publish(crate::store::credentials::Change::Account(user_id.to_owned()));
    Ok(())
}
