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
