//! Tenants: created, changed and suspended by platform admins (the REST API, the platform page,
//! `monti admin tenant create`), and their own settings changed by tenant admins (the API and
//! the settings page). Each change is audited with what it was before and after; a change that
//! can affect what credentials grant drops the cached grants.

use crate::auth::TokenCache;
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::tenants::{self, Tenant, TenantCreate, TenantUpdate};
use crate::store::{Store, StoreResult, TenantScope};

fn snapshot(tenant: &Tenant) -> Option<serde_json::Value> {
    serde_json::to_value(tenant).ok()
}

/// Creates a tenant; `actor` is the platform admin (`user:…`, `token:…`) or `cli`.
pub async fn create(store: &Store, actor: &str, origin: &Origin, input: TenantCreate) -> StoreResult<Tenant> {
    let tenant = tenants::create(store, input).await?;
    let event = AuditEvent::new(Some(&tenant.id), actor, "tenant.create", Outcome::Success)
        .target("tenant", &tenant.id)
        .change(None, snapshot(&tenant));
    audit::record(store, event, origin).await;
    tracing::info!(actor, tenant = tenant.slug, "tenant created");
    Ok(tenant)
}

/// A tenant admin changes their own tenant's settings (name, time zone): never its features,
/// limits or suspension, which are the platform's.
pub async fn update_own(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    expected_version: Option<i64>,
    input: TenantUpdate,
) -> StoreResult<Tenant> {
    let before = tenants::current(store, scope).await?;
    let tenant = tenants::update(store, scope.tenant_id(), expected_version, input, false).await?;
    let event = AuditEvent::in_tenant(scope, "tenant.update", Outcome::Success)
        .target("tenant", &tenant.id)
        .change(snapshot(&before), snapshot(&tenant));
    audit::record(store, event, origin).await;
    Ok(tenant)
}

/// A platform admin changes any of a tenant's fields.
pub async fn update(
    store: &Store,
    grants: &TokenCache,
    actor: &str,
    origin: &Origin,
    id: &str,
    expected_version: Option<i64>,
    input: TenantUpdate,
) -> StoreResult<Tenant> {
    let before = tenants::by_id(store, id).await?;
    let tenant = tenants::update(store, id, expected_version, input, true).await?;
    // Cached grants carry the suspension state: drop them either way.
    grants.forget(None, Some(&tenant.id));
    let event = AuditEvent::new(Some(&tenant.id), actor, "tenant.update", Outcome::Success)
        .target("tenant", &tenant.id)
        .change(snapshot(&before), snapshot(&tenant));
    audit::record(store, event, origin).await;
    Ok(tenant)
}

/// A platform admin suspends a tenant (nobody in it can act until it is reactivated) or
/// reactivates it.
pub async fn set_suspended(
    store: &Store,
    grants: &TokenCache,
    actor: &str,
    origin: &Origin,
    id: &str,
    suspended: bool,
) -> StoreResult<Tenant> {
    let tenant = tenants::set_suspended(store, id, suspended).await?;
    grants.forget(None, Some(&tenant.id));
    let action = if suspended {
        "tenant.suspend"
    } else {
        "tenant.reactivate"
    };
    let event = AuditEvent::new(Some(&tenant.id), actor, action, Outcome::Success).target("tenant", &tenant.id);
    audit::record(store, event, origin).await;
    Ok(tenant)
}
