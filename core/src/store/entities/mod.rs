//! The tenant-owned collections and how each maps to its table.

pub mod agents;
pub mod dids;
pub mod endpoints;
pub mod locations;
pub mod queues;
pub mod teams;
pub mod users;

use serde::{Deserialize, Deserializer, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use super::SqlValue;
use crate::domain::Validation;
use crate::domain::time::serialize_ms;

/// How many rows each configuration collection of the tenant has (for overviews); scoped
/// supervisors count only what they see.
pub async fn counts(
    store: &super::Store,
    scope: &super::TenantScope,
) -> super::StoreResult<std::collections::BTreeMap<&'static str, i64>> {
    use super::resource::Listable;
    async fn count<R: Listable>(store: &super::Store, scope: &super::TenantScope) -> super::StoreResult<i64> {
        let mut args = vec![SqlValue::Text(scope.tenant_id().to_owned())];
        let mut sql = format!("SELECT COUNT(*) FROM {} WHERE {} = $1", R::FROM, R::TENANT_COLUMN);
        for restriction in super::resource::restrictions::<R>(scope) {
            sql.push_str(" AND ");
            sql.push_str(&restriction.condition(&mut args));
        }
        Ok(crate::on_db!(&store.db, |pool, DB| {
            crate::bind_values!(sqlx::query_scalar::<DB, i64>(&sql), args)
                .fetch_one(pool)
                .await
        })?)
    }
    let mut out = std::collections::BTreeMap::new();
    out.insert("teams", count::<teams::Team>(store, scope).await?);
    out.insert("locations", count::<locations::Location>(store, scope).await?);
    out.insert("agents", count::<agents::Agent>(store, scope).await?);
    out.insert("queues", count::<queues::Queue>(store, scope).await?);
    out.insert("dids", count::<dids::DidRow>(store, scope).await?);
    out.insert("endpoints", count::<endpoints::EndpointRow>(store, scope).await?);
    Ok(out)
}

/// When a row was created and last changed, and its version (sent as the ETag).
#[derive(Debug, Clone, Copy, FromRow, Serialize, ToSchema)]
pub struct Stamps {
    #[serde(serialize_with = "serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    /// Increases with every change; sent as the ETag and checked against If-Match.
    pub version: i64,
}

/// For PATCH bodies: distinguishes an absent field (`None`) from an explicit `null`
/// (`Some(None)`), which clears the value.
pub fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// For PATCH: when `value` was sent, validates it with `check` and adds the column (errors are
/// recorded under `field`).
pub fn set<T>(
    columns: &mut super::resource::Columns,
    v: &mut Validation,
    field: &'static str,
    value: Option<T>,
    check: impl FnOnce(T) -> Result<SqlValue, String>,
) {
    if let Some(value) = value.and_then(|value| v.check(field, check(value))) {
        columns.push((field, value));
    }
}

/// Validates an optional value with `check`, recording errors under `field`.
pub fn optional(
    v: &mut Validation,
    field: &str,
    value: Option<String>,
    check: impl Fn(&str) -> Result<String, String>,
) -> Option<String> {
    value.and_then(|raw| v.check(field, check(&raw)))
}

/// `Some(SqlValue::OptText)` for a PATCH of a nullable text field, `None` if absent.
pub fn patch_nullable(
    v: &mut Validation,
    field: &str,
    value: Option<Option<String>>,
    check: impl Fn(&str) -> Result<String, String>,
) -> Option<SqlValue> {
    match value {
        None => None,
        Some(None) => Some(SqlValue::OptText(None)),
        Some(Some(raw)) => v.check(field, check(&raw)).map(|ok| SqlValue::OptText(Some(ok))),
    }
}

/// Checks that a referenced id is non-empty; existence within the tenant is checked by the
/// store against the database.
pub fn reference_id(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > 64 {
        Err("must be an id".into())
    } else {
        Ok(value.to_owned())
    }
}
