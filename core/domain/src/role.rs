use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a principal may do. Ordered from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Operates the installation: manages tenants. Not bound to a tenant.
    PlatformAdmin,
    /// Manages one tenant: users, configuration, tokens.
    TenantAdmin,
    /// Watches and steers agents and queues.
    Supervisor,
    /// Handles contacts.
    Agent,
    /// Read-only access.
    Viewer,
}

impl Role {
    pub const TENANT_ROLES: [Role; 4] = [Role::TenantAdmin, Role::Supervisor, Role::Agent, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::TenantAdmin => "tenant_admin",
            Role::Supervisor => "supervisor",
            Role::Agent => "agent",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`: expected one of platform_admin, tenant_admin, supervisor, agent, viewer")]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "platform_admin" => Role::PlatformAdmin,
            "tenant_admin" => Role::TenantAdmin,
            "supervisor" => Role::Supervisor,
            "agent" => Role::Agent,
            "viewer" => Role::Viewer,
            other => return Err(UnknownRole(other.to_owned())),
        })
    }
}
