//! Who acts for which tenant. A [`TenantId`] can only come from the store's own rows or from a
//! [`TenantScope`], and a scope only from verified credentials (the authentication layer) or an
//! explicit [`SystemActor`]: a request can name ids, but never the tenant they belong to.

use std::fmt;

use crate::domain::Role;

/// A tenant's id as every tenant-owned store function takes it. Not constructible from a string
/// outside the store, so a value from a request cannot be passed off as a tenant.
///
/// It reads as a `&str` (for binding and display) but is never built from one: it decodes only
/// from a tenant row, so it has no `Deserialize`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For unit tests of code that takes a tenant.
    #[cfg(test)]
    pub(crate) fn for_tests(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> String {
        id.0
    }
}

impl std::ops::Deref for TenantId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TenantId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TenantId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for TenantId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// Work done in a tenant without a signed-in caller. Each names itself in the audit log, so the
/// log never says a person did what the system did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemActor {
    /// The operator at the command line, who holds the database anyway.
    Operator,
    /// `monti demo` seeding and running its tenant.
    Demo,
    /// The contact-center simulator feeding events.
    Simulator,
    /// Alert rule evaluation and its notifications.
    Rules,
    /// An inbound webhook handled by a plugin installation.
    Hooks { installation: String },
    /// The plugin runtime driving installations (heartbeats, streams).
    Plugins,
    /// Scheduled reports sent by email.
    Reports,
}

impl SystemActor {
    /// The actor as the audit log and attribution show it.
    pub fn actor(&self) -> String {
        match self {
            SystemActor::Operator => "cli".into(),
            SystemActor::Demo => "system:demo".into(),
            SystemActor::Simulator => "system:simulator".into(),
            SystemActor::Rules => "system:rules".into(),
            SystemActor::Hooks { installation } => format!("system:hooks:{installation}"),
            SystemActor::Plugins => "system:plugins".into(),
            SystemActor::Reports => "system:reports".into(),
        }
    }
}

/// The tenant a caller acts for, established from verified credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    tenant: TenantId,
    tenant_slug: String,
    role: Role,
    actor: String,
    visibility: Visibility,
}

/// Which parts of a tenant a scoped supervisor sees. `None` means everything; `Some(ids)` only
/// the listed teams (or locations).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visibility {
    pub teams: Option<Vec<String>>,
    pub locations: Option<Vec<String>>,
}

impl Visibility {
    /// From a membership's scopes, where an empty list means "not limited".
    pub fn from_scopes(teams: Vec<String>, locations: Vec<String>) -> Self {
        Self {
            teams: (!teams.is_empty()).then_some(teams),
            locations: (!locations.is_empty()).then_some(locations),
        }
    }

    pub fn is_limited(&self) -> bool {
        self.teams.is_some() || self.locations.is_some()
    }

    pub fn allowed(&self, dimension: Dimension) -> Option<&[String]> {
        match dimension {
            Dimension::Team => self.teams.as_deref(),
            Dimension::Location => self.locations.as_deref(),
        }
    }

    /// Whether one team (or location) is visible.
    pub fn includes(&self, dimension: Dimension, id: &str) -> bool {
        self.allowed(dimension).is_none_or(|ids| ids.iter().any(|i| i == id))
    }

    /// Whether a row in `team` at `location` is visible.
    pub fn admits(&self, team: Option<&str>, location: Option<&str>) -> bool {
        let fits = |allowed: &Option<Vec<String>>, value: Option<&str>| match allowed {
            None => true,
            Some(ids) => value.is_some_and(|v| ids.iter().any(|id| id == v)),
        };
        fits(&self.teams, team) && fits(&self.locations, location)
    }
}

/// What a visibility restriction is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Team,
    Location,
}

impl TenantScope {
    /// Only for the authentication layer, once it has verified who the caller is (a session,
    /// a token, a signed JWT, an invitation).
    pub(crate) fn verified(tenant: TenantId, tenant_slug: String, role: Role, actor: String) -> Self {
        Self {
            tenant,
            tenant_slug,
            role,
            actor,
            visibility: Visibility::default(),
        }
    }

    /// The system acting in a tenant it read from the store: full rights in that tenant, and
    /// the actor named for what it is.
    pub(crate) fn system(tenant: TenantId, tenant_slug: String, actor: SystemActor) -> Self {
        Self {
            tenant,
            tenant_slug,
            role: Role::TenantAdmin,
            actor: actor.actor(),
            visibility: Visibility::default(),
        }
    }

    /// Narrows what this caller sees (a supervisor scoped to teams or locations).
    pub(crate) fn with_visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }

    pub fn visibility(&self) -> &Visibility {
        &self.visibility
    }

    /// The tenant, as tenant-owned store functions take it.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    /// The tenant's id as text (for binding, attribution and display).
    pub fn tenant_id(&self) -> &str {
        self.tenant.as_str()
    }
    pub fn tenant_slug(&self) -> &str {
        &self.tenant_slug
    }
    pub fn role(&self) -> Role {
        self.role
    }
    /// Who acts (for attribution): `user:<id>`, `token:<id>`, `cli`, or a system actor such as
    /// `system:rules`.
    pub fn actor(&self) -> &str {
        &self.actor
    }
}
