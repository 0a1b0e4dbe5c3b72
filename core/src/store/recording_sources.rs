//! A tenant's recording source (migration 0019): one row per tenant, its S3 secret key sealed.

use super::{Store, StoreResult, TenantScope};
use crate::domain::time::now_ms;
use crate::on_db;

/// The stored source; the secret key stays sealed until [`secret_key`] opens it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SourceRow {
    /// `directory` or `s3`.
    pub kind: String,
    /// The directory's path, or the bucket.
    pub location: String,
    pub pattern: String,
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub prefix: String,
    pub has_secret: bool,
    pub updated_at: i64,
    pub updated_by: String,
}

/// What a tenant admin sets; `secret_key` `None` keeps the stored one.
#[derive(Debug, Clone)]
pub struct SourceInput {
    pub kind: String,
    pub location: String,
    pub pattern: String,
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub prefix: String,
    pub secret_key: Option<String>,
}

fn secret_context(tenant_id: &str) -> String {
    format!("recording_sources/{tenant_id}")
}

const SELECT: &str = "kind, location, pattern, endpoint, region, access_key_id, prefix, \
     secret_enc IS NOT NULL AS has_secret, updated_at, updated_by";

pub async fn get(store: &Store, scope: &TenantScope) -> StoreResult<Option<SourceRow>> {
    let sql = format!("SELECT {SELECT} FROM recording_sources WHERE tenant_id = $1");
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, SourceRow>(&sql)
            .bind(scope.tenant_id())
            .fetch_optional(pool)
            .await
    })?)
}

/// The S3 secret key, opened.
pub async fn secret_key(store: &Store, scope: &TenantScope) -> StoreResult<Option<String>> {
    let sealed: Option<Option<String>> = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, Option<String>>("SELECT secret_enc FROM recording_sources WHERE tenant_id = $1")
            .bind(scope.tenant_id())
            .fetch_optional(pool)
            .await
    })?;
    match sealed.flatten() {
        None => Ok(None),
        Some(sealed) => store
            .secrets
            .open(&sealed, &secret_context(scope.tenant_id()))
            .map(Some)
            .map_err(|e| super::StoreError::Internal(format!("the recording source's secret key: {e}"))),
    }
}

/// Sets the tenant's source (checked by the caller), keeping the stored secret key when the
/// input has none and the kind stays S3.
pub async fn put(store: &Store, scope: &TenantScope, input: &SourceInput) -> StoreResult<SourceRow> {
    let tenant = scope.tenant_id();
    let sealed = input
        .secret_key
        .as_deref()
        .map(|key| store.secrets.seal(key, &secret_context(tenant)));
    let sql = format!(
        "INSERT INTO recording_sources (tenant_id, kind, location, pattern, endpoint, region, access_key_id, \
         secret_enc, prefix, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (tenant_id) DO UPDATE SET kind = excluded.kind, location = excluded.location, \
         pattern = excluded.pattern, endpoint = excluded.endpoint, region = excluded.region, \
         access_key_id = excluded.access_key_id, \
         secret_enc = CASE WHEN excluded.kind <> 's3' THEN NULL \
             ELSE COALESCE(excluded.secret_enc, recording_sources.secret_enc) END, \
         prefix = excluded.prefix, updated_at = excluded.updated_at, updated_by = excluded.updated_by \
         RETURNING {SELECT}"
    );
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, SourceRow>(&sql)
            .bind(tenant)
            .bind(&input.kind)
            .bind(&input.location)
            .bind(&input.pattern)
            .bind(&input.endpoint)
            .bind(&input.region)
            .bind(&input.access_key_id)
            .bind(&sealed)
            .bind(&input.prefix)
            .bind(now_ms())
            .bind(scope.actor())
            .fetch_one(pool)
            .await
    })?)
}

/// Removes the tenant's source; whether there was one.
pub async fn delete(store: &Store, scope: &TenantScope) -> StoreResult<bool> {
    let deleted = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("DELETE FROM recording_sources WHERE tenant_id = $1")
            .bind(scope.tenant_id())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(deleted > 0)
}
