//! Tenants: created, changed and suspended by platform admins (the REST API, the platform page,
//! `monti admin tenant create`), and their own settings changed by tenant admins (the API and
//! the settings page). Each change is audited with what it was before and after; a change that
//! can affect what credentials grant drops the cached grants. Tenant admins also manage their
//! tenant's own single sign-on providers here.

use crate::auth::TokenCache;
use crate::plugins::dispatch::Dispatcher;
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::oidc_providers::{self, ProviderInput};
use crate::store::tenants::{self, Tenant, TenantCreate, TenantUpdate};
use crate::store::{Store, StoreError, StoreResult, TenantScope};

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

/// What a platform admin's change to a tenant reaches in the running server.
#[derive(Clone, Copy)]
pub struct Running<'a> {
    /// Cached grants carry the tenant's suspension state.
    pub grants: &'a TokenCache,
    /// A suspended tenant's plugins stop: streams closed, warm instances dropped.
    pub plugins: &'a Dispatcher,
}

impl Running<'_> {
    async fn changed(&self, tenant: &Tenant) {
        self.grants.forget(None, Some(&tenant.id));
        self.plugins.tenants_changed().await;
        // Loaded again later, a suspended tenant's runtime finds nothing enabled (the store's
        // `enabled` leaves it out), here and on every other instance.
        if tenant.suspended_at.is_some()
            && let Err(e) = self.plugins.unload_tenant(&tenant.id).await
        {
            tracing::warn!(tenant = tenant.slug, error = %e, "stopping a suspended tenant's plugins");
        }
    }
}

/// A platform admin changes any of a tenant's fields.
pub async fn update(
    store: &Store,
    running: Running<'_>,
    actor: &str,
    origin: &Origin,
    id: &str,
    expected_version: Option<i64>,
    input: TenantUpdate,
) -> StoreResult<Tenant> {
    let before = tenants::by_id(store, id).await?;
    let tenant = tenants::update(store, id, expected_version, input, true).await?;
    running.changed(&tenant).await;
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
    running: Running<'_>,
    actor: &str,
    origin: &Origin,
    id: &str,
    suspended: bool,
) -> StoreResult<Tenant> {
    let tenant = tenants::set_suspended(store, id, suspended).await?;
    running.changed(&tenant).await;
    let action = if suspended {
        "tenant.suspend"
    } else {
        "tenant.reactivate"
    };
    let event = AuditEvent::new(Some(&tenant.id), actor, action, Outcome::Success).target("tenant", &tenant.id);
    audit::record(store, event, origin).await;
    Ok(tenant)
}

/// Where a tenant's own sign-in providers may live and which ids they may not take.
pub struct ProviderPolicy<'a> {
    /// The operator lets tenants use issuers that are not https (private networks, tests).
    pub allow_plain_http: bool,
    /// Ids of the installation's own providers.
    pub reserved: &'a [String],
}

fn provider_snapshot(row: &oidc_providers::ProviderRow) -> Option<serde_json::Value> {
    serde_json::to_value(row.view()).ok()
}

fn check_issuer(policy: &ProviderPolicy<'_>, input: &ProviderInput) -> StoreResult<()> {
    if !policy.allow_plain_http && !input.issuer.starts_with("https://") {
        return Err(StoreError::Invalid(crate::domain::Validation::single(
            "issuer",
            "must be an https URL",
        )));
    }
    Ok(())
}

async fn record_provider(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    action: &str,
    id: &str,
    change: (Option<serde_json::Value>, Option<serde_json::Value>),
) {
    let event = AuditEvent::in_tenant(scope, action, Outcome::Success)
        .target("sign_in_provider", id)
        .change(change.0, change.1);
    audit::record(store, event, origin).await;
}

/// A tenant admin adds a single sign-on provider for their tenant's people.
pub async fn add_sign_in_provider(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    policy: &ProviderPolicy<'_>,
    input: ProviderInput,
) -> StoreResult<oidc_providers::ProviderRow> {
    check_issuer(policy, &input)?;
    let row = oidc_providers::create(store, scope, input, policy.reserved).await?;
    let after = provider_snapshot(&row);
    record_provider(store, scope, origin, "sign_in_provider.create", &row.id, (None, after)).await;
    Ok(row)
}

/// A tenant admin changes one of their sign-in providers (at `expected_version` when given).
pub async fn update_sign_in_provider(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    policy: &ProviderPolicy<'_>,
    id: &str,
    expected_version: Option<i64>,
    input: ProviderInput,
) -> StoreResult<oidc_providers::ProviderRow> {
    check_issuer(policy, &input)?;
    let before = provider_snapshot(&oidc_providers::get(store, scope, id).await?);
    let row = oidc_providers::update(store, scope, id, expected_version, input, policy.reserved).await?;
    let after = provider_snapshot(&row);
    record_provider(store, scope, origin, "sign_in_provider.update", id, (before, after)).await;
    Ok(row)
}

/// A tenant admin removes one of their sign-in providers.
pub async fn remove_sign_in_provider(store: &Store, scope: &TenantScope, origin: &Origin, id: &str) -> StoreResult<()> {
    let before = provider_snapshot(&oidc_providers::get(store, scope, id).await?);
    oidc_providers::delete(store, scope, id).await?;
    record_provider(store, scope, origin, "sign_in_provider.delete", id, (before, None)).await;
    Ok(())
}
