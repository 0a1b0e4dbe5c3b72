//! Plugin packages (stored once per digest) and their installations per tenant: configuration,
//! on/off, the installation's key-value store, and what its last runs did.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{SqlValue, Store, StoreError, StoreResult, TenantId, TenantScope};
use crate::domain::new_id;
use crate::domain::time::now_ms;
use crate::on_db;
use monti_plugin_host::manifest::{Capabilities, Manifest};

/// An installation as admins see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Installation {
    pub id: String,
    pub plugin_id: String,
    pub digest: String,
    pub version: String,
    pub config: String,
    pub enabled: bool,
    pub invocations: i64,
    pub failures: i64,
    pub last_error: Option<String>,
    pub last_logs: String,
    pub updated_at: i64,
    /// The capabilities the tenant approved (JSON), if any.
    #[serde(skip)]
    pub approved: Option<String>,
}

/// What a run of an installation needs.
#[derive(Debug, Clone)]
pub struct Runnable {
    pub id: String,
    pub plugin_id: String,
    pub digest: String,
    pub config: String,
    pub component: Vec<u8>,
}

/// Stores a package (validated by the caller); a known digest is kept as it is, counted as
/// uploaded now (the sweep of unused packages leaves it its grace period).
pub async fn store_package(store: &Store, digest: &str, manifest: &Manifest, component: &[u8]) -> StoreResult<()> {
    let manifest_json = serde_json::to_string(manifest).map_err(|e| StoreError::Internal(e.to_string()))?;
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "INSERT INTO plugin_packages (digest, plugin_id, version, world, manifest, component, size, uploaded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (digest) DO UPDATE SET uploaded_at = excluded.uploaded_at",
        )
        .bind(digest)
        .bind(&manifest.id)
        .bind(&manifest.version)
        .bind(manifest.world.as_str())
        .bind(&manifest_json)
        .bind(component)
        .bind(component.len() as i64)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

const SELECT: &str = "SELECT i.id, i.plugin_id, i.digest, p.version, i.config, i.enabled, i.invocations, i.failures, \
    i.last_error, i.last_logs, i.updated_at, i.approved FROM plugin_installations i JOIN plugin_packages p ON p.digest = i.digest";

/// Installs (or upgrades to) the package with `digest` in the tenant, disabled until enabled.
/// An upgrade keeps the installation's configuration, store and enablement.
///
/// An upgrade to a package that asks for capabilities the tenant has not approved leaves the
/// installation disabled until they are ([`unapproved`], [`approve`]).
pub async fn install(store: &Store, scope: &TenantScope, digest: &str, config: &str) -> StoreResult<Installation> {
    let plugin_id = manifest(store, digest).await?.id;
    let previous = get(store, scope, &plugin_id).await.ok();
    if let Some(previous) = &previous
        && previous.approved.is_none()
        && previous.enabled
    {
        // Installed before approvals were recorded: what ran was approved by running it.
        let ran = manifest(store, &previous.digest).await?.capabilities;
        record_approval(store, scope, &previous.id, &ran).await?;
    }
    let now = now_ms();
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "INSERT INTO plugin_installations (id, tenant_id, plugin_id, digest, config, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (tenant_id, plugin_id) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
        )
        .bind(new_id("inst"))
        .bind(scope.tenant_id())
        .bind(&plugin_id)
        .bind(digest)
        .bind(config)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    if let Some(previous) = previous.filter(|p| p.digest != digest) {
        drop_if_unused(store, &previous.digest).await?;
    }
    let installed = get(store, scope, &plugin_id).await?;
    if installed.enabled && !unapproved(store, &installed).await?.is_empty() {
        return set_enabled(store, scope, &installed.id, false).await;
    }
    Ok(installed)
}

/// What the installation's package asks for beyond what the tenant approved, in words; empty
/// when nothing waits for approval.
pub async fn unapproved(store: &Store, installation: &Installation) -> StoreResult<Vec<String>> {
    let requested = manifest(store, &installation.digest).await?.capabilities;
    let approved: Capabilities = installation
        .approved
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default();
    Ok(requested.beyond(&approved))
}

/// The tenant approves what the installation's package asks for.
pub async fn approve(store: &Store, scope: &TenantScope, plugin_or_id: &str) -> StoreResult<Installation> {
    let installation = get(store, scope, plugin_or_id).await?;
    let requested = manifest(store, &installation.digest).await?.capabilities;
    record_approval(store, scope, &installation.id, &requested).await?;
    get(store, scope, &installation.id).await
}

async fn record_approval(
    store: &Store,
    scope: &TenantScope,
    installation_id: &str,
    capabilities: &Capabilities,
) -> StoreResult<()> {
    let approved = serde_json::to_string(capabilities).map_err(|e| StoreError::Internal(e.to_string()))?;
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("UPDATE plugin_installations SET approved = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(&approved)
            .bind(scope.tenant_id())
            .bind(installation_id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// The tenant's installation of `plugin_id` (or by installation id).
pub async fn get(store: &Store, scope: &TenantScope, plugin_or_id: &str) -> StoreResult<Installation> {
    let sql = format!("{SELECT} WHERE i.tenant_id = $1 AND (i.plugin_id = $2 OR i.id = $2)");
    let found: Option<Installation> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, Installation>(&sql)
            .bind(scope.tenant_id())
            .bind(plugin_or_id)
            .fetch_optional(pool)
            .await
    })?;
    found.ok_or(StoreError::NotFound {
        kind: "plugin installation",
    })
}

pub async fn list(store: &Store, scope: &TenantScope) -> StoreResult<Vec<Installation>> {
    let sql = format!("{SELECT} WHERE i.tenant_id = $1 ORDER BY i.plugin_id");
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, Installation>(&sql)
            .bind(scope.tenant_id())
            .fetch_all(pool)
            .await
    })?)
}

pub async fn set_enabled(
    store: &Store,
    scope: &TenantScope,
    plugin_or_id: &str,
    enabled: bool,
) -> StoreResult<Installation> {
    set(store, scope, plugin_or_id, "enabled", SqlValue::Bool(enabled)).await
}

pub async fn set_config(
    store: &Store,
    scope: &TenantScope,
    plugin_or_id: &str,
    config: &str,
) -> StoreResult<Installation> {
    set(store, scope, plugin_or_id, "config", SqlValue::Text(config.to_owned())).await
}

/// Sets one column of the tenant's installation (`column` is one of ours, never input).
async fn set(
    store: &Store,
    scope: &TenantScope,
    plugin_or_id: &str,
    column: &'static str,
    value: SqlValue,
) -> StoreResult<Installation> {
    let installation = get(store, scope, plugin_or_id).await?;
    let sql =
        format!("UPDATE plugin_installations SET {column} = $1, updated_at = $2 WHERE id = $3 AND tenant_id = $4");
    on_db!(&store.db, |pool, DB| {
        crate::bind_values!(sqlx::query::<DB>(&sql), [value.clone()])
            .bind(now_ms())
            .bind(&installation.id)
            .bind(scope.tenant_id())
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    get(store, scope, &installation.id).await
}

pub async fn remove(store: &Store, scope: &TenantScope, plugin_or_id: &str) -> StoreResult<Installation> {
    let installation = get(store, scope, plugin_or_id).await?;
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("DELETE FROM plugin_installations WHERE id = $1 AND tenant_id = $2")
            .bind(&installation.id)
            .bind(scope.tenant_id())
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    drop_if_unused(store, &installation.digest).await?;
    Ok(installation)
}

/// Deletes a package no installation uses any more (after an upgrade or a removal).
async fn drop_if_unused(store: &Store, digest: &str) -> StoreResult<()> {
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "DELETE FROM plugin_packages WHERE digest = $1 \
             AND NOT EXISTS (SELECT 1 FROM plugin_installations WHERE digest = $1)",
        )
        .bind(digest)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Deletes the packages no installation uses that were stored before `uploaded_before` (ms):
/// uploads whose installation failed or was refused, and what earlier versions left behind.
/// Newer ones may belong to an installation under way. Returns how many bytes were freed.
pub async fn collect_unused_packages(store: &Store, uploaded_before: i64) -> StoreResult<i64> {
    let freed: Option<i64> = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, Option<i64>>(
            "SELECT CAST(SUM(size) AS BIGINT) FROM plugin_packages WHERE uploaded_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM plugin_installations i WHERE i.digest = plugin_packages.digest)",
        )
        .bind(uploaded_before)
        .fetch_one(pool)
        .await
    })?;
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "DELETE FROM plugin_packages WHERE uploaded_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM plugin_installations i WHERE i.digest = plugin_packages.digest)",
        )
        .bind(uploaded_before)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(freed.unwrap_or(0))
}

/// Bytes of the packages the tenant's installations use, leaving out `except_plugin` (the one
/// an upload would replace).
pub async fn package_bytes(store: &Store, scope: &TenantScope, except_plugin: &str) -> StoreResult<i64> {
    let used: Option<i64> = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, Option<i64>>(
            "SELECT CAST(SUM(p.size) AS BIGINT) FROM plugin_installations i JOIN plugin_packages p ON p.digest = i.digest \
             WHERE i.tenant_id = $1 AND i.plugin_id <> $2",
        )
        .bind(scope.tenant_id())
        .bind(except_plugin)
        .fetch_one(pool)
        .await
    })?;
    Ok(used.unwrap_or(0))
}

/// The tenant's enabled installations with their components, to run; none while the tenant is
/// suspended.
pub async fn enabled(store: &Store, tenant: &TenantId) -> StoreResult<Vec<Runnable>> {
    let tenant_id = tenant.as_str();
    let rows: Vec<(String, String, String, String, Vec<u8>)> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (String, String, String, String, Vec<u8>)>(
            "SELECT i.id, i.plugin_id, i.digest, i.config, p.component FROM plugin_installations i \
             JOIN plugin_packages p ON p.digest = i.digest JOIN tenants t ON t.id = i.tenant_id \
             WHERE i.tenant_id = $1 AND i.enabled AND t.suspended_at IS NULL ORDER BY i.plugin_id",
        )
        .bind(tenant_id)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(id, plugin_id, digest, config, component)| Runnable {
            id,
            plugin_id,
            digest,
            config,
            component,
        })
        .collect())
}

/// Tenants with at least one enabled installation: (id, slug).
pub async fn tenants_with_enabled(store: &Store) -> StoreResult<Vec<(TenantId, String)>> {
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (TenantId, String)>(
            "SELECT DISTINCT t.id, t.slug FROM plugin_installations i JOIN tenants t ON t.id = i.tenant_id \
             WHERE i.enabled AND t.suspended_at IS NULL ORDER BY t.id",
        )
        .fetch_all(pool)
        .await
    })?)
}

/// How many installations are enabled, and when the newest was changed.
pub type Stamp = (i64, i64);

/// A version stamp of the tenant's enabled installations (changes when any changes); `(0, 0)`
/// while the tenant is suspended, so every instance lets go of its plugins.
pub async fn enabled_stamp(store: &Store, tenant: &TenantId) -> StoreResult<Stamp> {
    let tenant_id = tenant.as_str();
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (i64, i64)>(
            "SELECT COUNT(*), COALESCE(MAX(i.updated_at), 0) FROM plugin_installations i \
             JOIN tenants t ON t.id = i.tenant_id WHERE i.tenant_id = $1 AND i.enabled AND t.suspended_at IS NULL",
        )
        .bind(tenant_id)
        .fetch_one(pool)
        .await
    })?)
}

/// The manifest stored with a package.
pub async fn manifest(store: &Store, digest: &str) -> StoreResult<Manifest> {
    let text: Option<String> = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, String>("SELECT manifest FROM plugin_packages WHERE digest = $1")
            .bind(digest)
            .fetch_optional(pool)
            .await
    })?;
    let text = text.ok_or(StoreError::NotFound { kind: "plugin package" })?;
    serde_json::from_str(&text).map_err(|e| StoreError::Internal(format!("a stored manifest does not read: {e}")))
}

/// What the plugin reports about itself: a JSON object it keeps under the key `status` (a
/// connector's connection state, say), shown on its page. `None` when it keeps none.
pub async fn status(store: &Store, tenant: &TenantId, installation_id: &str) -> StoreResult<Option<serde_json::Value>> {
    Ok(kv(store, tenant, installation_id)
        .await?
        .get("status")
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(bytes).ok())
        .filter(serde_json::Value::is_object))
}

/// The installation's key-value store.
pub async fn kv(store: &Store, tenant: &TenantId, installation_id: &str) -> StoreResult<BTreeMap<String, Vec<u8>>> {
    let text: Option<String> = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, String>("SELECT kv FROM plugin_installations WHERE id = $1 AND tenant_id = $2")
            .bind(installation_id)
            .bind(tenant.as_str())
            .fetch_optional(pool)
            .await
    })?;
    // Stored as JSON: key → bytes as an array of numbers.
    Ok(text
        .and_then(|t| serde_json::from_str::<BTreeMap<String, Vec<u8>>>(&t).ok())
        .unwrap_or_default())
}

/// Records a run: the store after it, and how it went.
pub async fn record_run(
    store: &Store,
    tenant: &TenantId,
    installation_id: &str,
    kv: Option<&BTreeMap<String, Vec<u8>>>,
    error: Option<&str>,
    logs: &[monti_plugin_host::LogLine],
) -> StoreResult<()> {
    record_runs(
        store,
        tenant,
        installation_id,
        1,
        i64::from(error.is_some()),
        kv,
        error,
        logs,
    )
    .await
}

/// Records `runs` runs at once (`failures` of them failed): the store after the last that
/// changed it, the last error, the last logs.
#[allow(clippy::too_many_arguments)]
pub async fn record_runs(
    store: &Store,
    tenant: &TenantId,
    installation_id: &str,
    runs: i64,
    failures: i64,
    kv: Option<&BTreeMap<String, Vec<u8>>>,
    error: Option<&str>,
    logs: &[monti_plugin_host::LogLine],
) -> StoreResult<()> {
    let logs: Vec<serde_json::Value> = logs
        .iter()
        .map(|l| serde_json::json!({ "level": l.level, "message": l.message }))
        .collect();
    let logs = serde_json::to_string(&logs).unwrap_or_else(|_| "[]".into());
    let kv = kv.map(|kv| serde_json::to_string(kv).unwrap_or_else(|_| "{}".into()));
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE plugin_installations SET invocations = invocations + $6, \
             failures = failures + $1, last_error = COALESCE($2, last_error), last_logs = $3, kv = COALESCE($4, kv) \
             WHERE id = $5 AND tenant_id = $7",
        )
        .bind(failures)
        .bind(error)
        .bind(&logs)
        .bind(kv)
        .bind(installation_id)
        .bind(runs)
        .bind(tenant.as_str())
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

pub(crate) fn secret_context(installation_id: &str, name: &str) -> String {
    format!("plugin-secret:{installation_id}:{name}")
}

/// Stores (or replaces) a secret of the tenant's installation, sealed.
pub async fn set_secret(
    store: &Store,
    scope: &TenantScope,
    plugin_or_id: &str,
    name: &str,
    value: &str,
) -> StoreResult<()> {
    let installation = get(store, scope, plugin_or_id).await?;
    let sealed = store.secrets.seal(value, &secret_context(&installation.id, name));
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "INSERT INTO plugin_secrets (installation_id, name, sealed, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (installation_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
        )
        .bind(&installation.id)
        .bind(name)
        .bind(&sealed)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// The installation's secrets, opened (for the host only; never shown or logged).
pub async fn secrets(store: &Store, tenant: &TenantId, installation_id: &str) -> StoreResult<BTreeMap<String, String>> {
    let rows: Vec<(String, String)> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (String, String)>(
            "SELECT s.name, s.sealed FROM plugin_secrets s JOIN plugin_installations i ON i.id = s.installation_id \
             WHERE s.installation_id = $1 AND i.tenant_id = $2",
        )
        .bind(installation_id)
        .bind(tenant.as_str())
        .fetch_all(pool)
        .await
    })?;
    let mut out = BTreeMap::new();
    for (name, sealed) in rows {
        match store.secrets.open(&sealed, &secret_context(installation_id, &name)) {
            Ok(value) => {
                out.insert(name, value);
            }
            Err(_) => tracing::warn!(
                installation_id,
                name,
                "a plugin secret does not open (was the key changed?)"
            ),
        }
    }
    Ok(out)
}

/// Names of the installation's configured secrets.
pub async fn secret_names(store: &Store, scope: &TenantScope, plugin_or_id: &str) -> StoreResult<Vec<String>> {
    let installation = get(store, scope, plugin_or_id).await?;
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, String>("SELECT name FROM plugin_secrets WHERE installation_id = $1 ORDER BY name")
            .bind(&installation.id)
            .fetch_all(pool)
            .await
    })?)
}

/// A batch a plugin kept failing on.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: String,
    pub error: String,
    pub attempts: i64,
    pub events: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn add_dead_letter(
    store: &Store,
    tenant: &TenantId,
    installation_id: &str,
    events: &[crate::domain::events::Event],
    error: &str,
    attempts: i64,
) -> StoreResult<()> {
    let tenant_id = tenant.as_str();
    let events = serde_json::to_string(events).map_err(|e| StoreError::Internal(e.to_string()))?;
    let now = now_ms();
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "INSERT INTO plugin_dead_letters (id, tenant_id, installation_id, events, error, attempts, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(new_id("dl"))
        .bind(tenant_id)
        .bind(installation_id)
        .bind(&events)
        .bind(error)
        .bind(attempts)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// The tenant's installation's dead letters, oldest first.
pub async fn dead_letters(store: &Store, scope: &TenantScope, plugin_or_id: &str) -> StoreResult<Vec<DeadLetter>> {
    let installation = get(store, scope, plugin_or_id).await?;
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, DeadLetter>(
            "SELECT id, error, attempts, events, created_at, updated_at FROM plugin_dead_letters \
             WHERE tenant_id = $1 AND installation_id = $2 ORDER BY created_at, id",
        )
        .bind(scope.tenant_id())
        .bind(&installation.id)
        .fetch_all(pool)
        .await
    })?)
}

pub async fn dead_letter_events(
    store: &Store,
    tenant: &TenantId,
    installation_id: &str,
    letter_id: &str,
) -> StoreResult<Vec<crate::domain::events::Event>> {
    let tenant_id = tenant.as_str();
    let text: Option<String> = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, String>(
            "SELECT events FROM plugin_dead_letters WHERE id = $1 AND tenant_id = $2 AND installation_id = $3",
        )
        .bind(letter_id)
        .bind(tenant_id)
        .bind(installation_id)
        .fetch_optional(pool)
        .await
    })?;
    let text = text.ok_or(StoreError::NotFound { kind: "dead letter" })?;
    serde_json::from_str(&text).map_err(|e| StoreError::Internal(format!("a dead letter does not read: {e}")))
}

/// How many dead letters the tenant's installation holds.
pub async fn dead_letter_depth(store: &Store, tenant: &TenantId, installation_id: &str) -> StoreResult<i64> {
    let tenant_id = tenant.as_str();
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, i64>(
            "SELECT COUNT(*) FROM plugin_dead_letters WHERE tenant_id = $1 AND installation_id = $2",
        )
        .bind(tenant_id)
        .bind(installation_id)
        .fetch_one(pool)
        .await
    })?)
}

pub async fn delete_dead_letter(store: &Store, tenant: &TenantId, letter_id: &str) -> StoreResult<()> {
    let tenant_id = tenant.as_str();
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("DELETE FROM plugin_dead_letters WHERE id = $1 AND tenant_id = $2")
            .bind(letter_id)
            .bind(tenant_id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

pub async fn dead_letter_failed_again(
    store: &Store,
    tenant: &TenantId,
    letter_id: &str,
    error: &str,
) -> StoreResult<()> {
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE plugin_dead_letters SET error = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id = $3 AND tenant_id = $4",
        )
        .bind(error)
        .bind(now_ms())
        .bind(letter_id)
        .bind(tenant.as_str())
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}
