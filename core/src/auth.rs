//! Who is calling, and what they may do.
//!
//! Every API request carries `Authorization: Bearer <token>`. The token is looked up by its hash;
//! the tenant comes from the token, never from the request, so ids from another tenant simply
//! do not resolve.

use crate::domain::Role;
use crate::store::tokens::{self, TokenGrant};
use crate::store::{Store, StoreError, TenantScope};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Acts within one tenant.
    Tenant(TenantScope),
    /// Operates the installation (manages tenants); bound to no tenant.
    Platform { actor: String },
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Principal::Tenant(scope) => scope.role(),
            Principal::Platform { .. } => Role::PlatformAdmin,
        }
    }
}

/// Parts of the product a permission applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Teams, locations, agents, queues, phone numbers, SIP endpoints.
    Configuration,
    /// Members of the tenant and their roles.
    Users,
    /// API tokens.
    Tokens,
    /// The tenant's own settings.
    TenantSettings,
    /// All tenants of the installation.
    Tenants,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
}

/// The one permission table. Everything that checks access asks here.
pub fn can(role: Role, action: Action, area: Area) -> bool {
    use Action::*;
    use Area::*;
    match (role, area) {
        (Role::PlatformAdmin, Tenants) => true,
        (Role::PlatformAdmin, _) => false,
        (_, Tenants) => false,
        (Role::TenantAdmin, _) => true,
        (Role::Supervisor, Configuration | Users | TenantSettings) => action == Read,
        (Role::Agent | Role::Viewer, Configuration | TenantSettings) => action == Read,
        (Role::Supervisor | Role::Agent | Role::Viewer, _) => false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("an Authorization: Bearer <token> header is required")]
    Missing,
    #[error("the Authorization header must be `Bearer <token>`")]
    Malformed,
    #[error("the token is not valid")]
    Unknown,
    #[error("the token has expired")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Extracts the bearer token from an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    let token = token.trim();
    if token.is_empty() || token.len() > 256 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// Verifies a bearer token and returns who it speaks for.
pub async fn authenticate(store: &Store, token: &str) -> Result<Principal, AuthError> {
    let grant: TokenGrant = tokens::find(store, token).await?.ok_or(AuthError::Unknown)?;
    let now = crate::domain::time::now_ms();
    if grant.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if grant.expires_at.is_some_and(|e| e <= now) {
        return Err(AuthError::Expired);
    }
    let role: Role = grant.role.parse().map_err(|_| AuthError::Unknown)?;
    // Best effort: failing to record use must not fail the request.
    if let Err(e) = tokens::touch(store, &grant).await {
        tracing::warn!(error = %e, "could not record token use");
    }
    let actor = format!("token:{}", grant.id);
    match (grant.tenant_id, grant.tenant_slug) {
        (Some(tenant_id), Some(slug)) => Ok(Principal::Tenant(TenantScope::verified(tenant_id, slug, role, actor))),
        (None, _) if role == Role::PlatformAdmin => Ok(Principal::Platform { actor }),
        _ => Err(AuthError::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some("bearer  abc ")).unwrap(), "abc");
        assert!(matches!(bearer(None), Err(AuthError::Missing)));
        assert!(matches!(bearer(Some("Basic abc")), Err(AuthError::Malformed)));
        assert!(matches!(bearer(Some("Bearer")), Err(AuthError::Malformed)));
        assert!(matches!(bearer(Some("Bearer a\u{7f}b")), Err(AuthError::Malformed)));
    }

    #[test]
    fn permission_table() {
        assert!(can(Role::TenantAdmin, Action::Write, Area::Configuration));
        assert!(can(Role::TenantAdmin, Action::Write, Area::Tokens));
        assert!(!can(Role::TenantAdmin, Action::Read, Area::Tenants));
        assert!(can(Role::Supervisor, Action::Read, Area::Configuration));
        assert!(!can(Role::Supervisor, Action::Write, Area::Configuration));
        assert!(can(Role::Supervisor, Action::Read, Area::Users));
        assert!(!can(Role::Viewer, Action::Read, Area::Users));
        assert!(!can(Role::Viewer, Action::Read, Area::Tokens));
        assert!(can(Role::PlatformAdmin, Action::Write, Area::Tenants));
        assert!(!can(Role::PlatformAdmin, Action::Read, Area::Configuration));
    }
}
