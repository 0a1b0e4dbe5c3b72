//! Who is calling, and what they may do.
//!
//! Machines send `Authorization: Bearer <token>` (an API token looked up by its hash, or a JWT
//! access token from a configured issuer); people sign in to a session (password or OpenID
//! Connect). Either way the tenant comes from the credential, never from the request, so ids from
//! another tenant simply do not resolve.

pub mod claims;
pub mod invitations;
pub mod jwt;
pub mod oidc;
pub mod password;
pub mod ratelimit;
pub mod tickets;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::Role;
use crate::store::tokens::{self, TokenGrant};
use crate::store::{Dimension, Store, StoreError, TenantScope};

/// An HTTP client for talking to identity providers: no redirects (a provider's answer must not
/// point us anywhere else), a timeout, and no pooled connections (calls are minutes apart and a
/// kept connection would often have been closed by the other side).
pub fn provider_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default()
}

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
    /// The tenant's audit log.
    Audit,
    /// Other members' sign-in sessions.
    Sessions,
    /// Sending events (PBX connectors, CRMs, the simulator).
    Ingest,
    /// The live floor: agent states, queue figures.
    Live,
    /// Call history, reports and recordings.
    History,
}

impl Area {
    pub const ALL: [Area; 10] = [
        Area::Configuration,
        Area::Users,
        Area::Tokens,
        Area::TenantSettings,
        Area::Tenants,
        Area::Audit,
        Area::Sessions,
        Area::Ingest,
        Area::Live,
        Area::History,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Area::Configuration => "configuration",
            Area::Users => "users",
            Area::Tokens => "API tokens",
            Area::TenantSettings => "tenant settings",
            Area::Tenants => "tenants",
            Area::Audit => "the audit log",
            Area::Sessions => "sessions",
            Area::Ingest => "events",
            Area::Live => "the live floor",
            Area::History => "call history and reports",
        }
    }
}

/// What an action is about: a whole area, or one row a scoped supervisor may or may not see.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    Area(Area),
    /// An agent, by the team and location it belongs to.
    Agent {
        team: Option<&'a str>,
        location: Option<&'a str>,
    },
    Team(&'a str),
    Location(&'a str),
}

impl Resource<'_> {
    pub fn area(&self) -> Area {
        match self {
            Resource::Area(area) => *area,
            Resource::Agent { .. } | Resource::Team(_) | Resource::Location(_) => Area::Configuration,
        }
    }
}

/// The one access check: the role's permission table, then the caller's visibility.
pub fn can(principal: &Principal, action: Action, resource: Resource<'_>) -> bool {
    if !permits(principal.role(), action, resource.area()) {
        return false;
    }
    let Principal::Tenant(scope) = principal else {
        return true;
    };
    let visibility = scope.visibility();
    match resource {
        Resource::Area(_) => true,
        Resource::Agent { team, location } => visibility.admits(team, location),
        Resource::Team(team) => visibility.includes(Dimension::Team, team),
        Resource::Location(location) => visibility.includes(Dimension::Location, location),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
}

/// The permission table: what each role may do in each area. [`can`] adds visibility.
pub fn permits(role: Role, action: Action, area: Area) -> bool {
    use Action::*;
    use Area::*;
    match (role, area) {
        (Role::PlatformAdmin, Tenants) => true,
        (Role::PlatformAdmin, _) => false,
        (_, Tenants) => false,
        (Role::TenantAdmin, _) => true,
        // Writing to the live floor is call control (pausing an agent on the PBX …).
        (Role::Supervisor, Live) => true,
        (Role::Viewer, Live) => action == Read,
        (Role::Agent, Live) => false,
        // Looking back (calls with callers' numbers, recordings) is for who supervises; saving
        // and scheduling reports too.
        (Role::Supervisor, History) => true,
        (Role::Agent | Role::Viewer, History) => false,
        (Role::Supervisor, Configuration | Users | TenantSettings) => action == Read,
        (Role::Agent | Role::Viewer, Configuration | TenantSettings) => action == Read,
        (Role::Supervisor | Role::Agent | Role::Viewer, Tokens | Audit | Sessions | Users | Ingest) => false,
    }
}

/// How much a role may do, for comparing roles: the order of [`Role`]'s variants.
fn rank(role: Role) -> u8 {
    match role {
        Role::PlatformAdmin => 4,
        Role::TenantAdmin => 3,
        Role::Supervisor => 2,
        Role::Agent => 1,
        Role::Viewer => 0,
    }
}

/// Why a grant (an API token, an invitation, a changed membership) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("the role {requested} is stronger than your own ({own}); you cannot grant it")]
    Role { own: Role, requested: Role },
    #[error("you are limited to some teams; what you grant must be limited to those teams too")]
    Teams,
    #[error("you are limited to some locations; what you grant must be limited to those locations too")]
    Locations,
    /// The member or token acted on can do more than the caller.
    #[error(
        "this member or token can do more than you can (a stronger role, or more teams or locations); you cannot change, disable, reset, remove or sign them out"
    )]
    Beyond,
}

/// Whether `grantor` may hand out `role` limited to `teams` and `locations` (empty meaning
/// unlimited). Nobody can create a credential or a member that can do more than they can:
/// otherwise a scoped admin would mint an unscoped one and step outside their scope.
pub fn may_grant(grantor: &TenantScope, role: Role, teams: &[String], locations: &[String]) -> Result<(), GrantError> {
    if rank(role) > rank(grantor.role()) {
        return Err(GrantError::Role {
            own: grantor.role(),
            requested: role,
        });
    }
    let within = |allowed: Option<&[String]>, requested: &[String]| match allowed {
        None => true,
        Some(allowed) => !requested.is_empty() && requested.iter().all(|id| allowed.contains(id)),
    };
    let visibility = grantor.visibility();
    if !within(visibility.allowed(Dimension::Team), teams) {
        return Err(GrantError::Teams);
    }
    if !within(visibility.allowed(Dimension::Location), locations) {
        return Err(GrantError::Locations);
    }
    Ok(())
}

/// Whether `manager` may act on someone else's access: change, disable or remove a member, make
/// them a password reset link, end their sessions, revoke a token. What the target holds now
/// (`role` limited to `teams` and `locations`) must be something `manager` could have granted;
/// otherwise a scoped admin could lock out or take over an admin who sees more than they do.
pub fn may_manage(manager: &TenantScope, role: &str, teams: &[String], locations: &[String]) -> Result<(), GrantError> {
    // A role this version does not know is treated as the strongest one.
    let role = role.parse().unwrap_or(Role::PlatformAdmin);
    may_grant(manager, role, teams, locations).map_err(|_| GrantError::Beyond)
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
    #[error("the tenant is suspended")]
    Suspended,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token's issuer cannot be reached to check it; try again")]
    IssuerUnavailable,
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
    if token.is_empty() || token.len() > 8192 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// Verified API tokens, remembered briefly so a busy client does not cost a database lookup
/// per request. Revocation through this instance drops the entry at once.
#[derive(Debug)]
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (TokenGrant, Instant)>>,
    /// Stream tickets issued by this instance (they stand in for the credential they came from).
    pub tickets: tickets::Tickets,
}

/// Above this many cached tokens, expired entries are dropped on insert.
const TOKEN_CACHE_PRUNE: usize = 10_000;

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            tickets: tickets::Tickets::default(),
        }
    }

    fn get(&self, hash: &str) -> Option<TokenGrant> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(hash)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(grant, _)| grant.clone())
    }

    fn put(&self, hash: String, grant: TokenGrant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= TOKEN_CACHE_PRUNE {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        entries.insert(hash, (grant, Instant::now()));
    }

    /// Forgets a token (revoked) or every token of a tenant (suspended).
    pub fn forget(&self, token_id: Option<&str>, tenant_id: Option<&str>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (grant, _)| {
            token_id.is_none_or(|id| grant.id != id) && tenant_id.is_none_or(|t| grant.tenant_id.as_deref() != Some(t))
        });
    }
}

/// Verifies an API token and returns who it speaks for.
pub async fn authenticate(store: &Store, cache: &TokenCache, token: &str) -> Result<Principal, AuthError> {
    let hash = crate::secrets::hash_token(token);
    let grant = match cache.get(&hash) {
        Some(grant) => grant,
        None => look_up(store, cache, hash, token).await?,
    };
    principal_of(grant)
}

/// As [`authenticate`], but asks the database whatever the cache holds: for a stream that was
/// told its token may just have been revoked (by another part of this instance).
pub async fn authenticate_fresh(store: &Store, cache: &TokenCache, token: &str) -> Result<Principal, AuthError> {
    let hash = crate::secrets::hash_token(token);
    principal_of(look_up(store, cache, hash, token).await?)
}

async fn look_up(store: &Store, cache: &TokenCache, hash: String, token: &str) -> Result<TokenGrant, AuthError> {
    let mut grant: TokenGrant = tokens::find(store, token).await?.ok_or(AuthError::Unknown)?;
    // Best effort: failing to record use must not fail the request.
    match tokens::touch(store, &grant).await {
        Ok(Some(at)) => grant.last_used_at = Some(at),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not record token use"),
    }
    cache.put(hash, grant.clone());
    Ok(grant)
}

/// What `actor` (`user:<id>` or `token:<id>`, as a scope names who acted) may do in `tenant`
/// now: for work done later on their behalf, such as a scheduled report. `None` when they can no
/// longer act there (removed, disabled, revoked, expired, suspended) or cannot be looked up again
/// (a signed JWT's subject).
pub async fn acting_as(
    store: &Store,
    tenant: &crate::store::TenantId,
    actor: &str,
) -> Result<Option<TenantScope>, StoreError> {
    if let Some(user) = actor.strip_prefix("user:") {
        let account = match crate::store::accounts::by_id(store, user).await {
            Ok(account) => account,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if account.disabled {
            return Ok(None);
        }
        let membership = crate::store::accounts::membership(store, user, tenant).await?;
        return Ok(membership
            .filter(|m| m.usable())
            .and_then(|m| m.scope(actor.to_owned())));
    }
    if let Some(token) = actor.strip_prefix("token:") {
        let Some(grant) = tokens::grant_by_id(store, token).await? else {
            return Ok(None);
        };
        return Ok(match principal_of(grant) {
            Ok(Principal::Tenant(scope)) if scope.tenant() == tenant => Some(scope),
            _ => None,
        });
    }
    Ok(None)
}

fn principal_of(grant: TokenGrant) -> Result<Principal, AuthError> {
    let now = crate::domain::time::now_ms();
    if grant.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if grant.expires_at.is_some_and(|e| e <= now) {
        return Err(AuthError::Expired);
    }
    if grant.tenant_suspended {
        return Err(AuthError::Suspended);
    }
    let role: Role = grant.role.parse().map_err(|_| AuthError::Unknown)?;
    let actor = format!("token:{}", grant.id);
    match (grant.tenant_id, grant.tenant_slug) {
        (Some(tenant_id), Some(slug)) => Ok(Principal::Tenant(
            TenantScope::verified(tenant_id, slug, role, actor).with_visibility(crate::store::Visibility::from_scopes(
                grant.team_scope.0,
                grant.location_scope.0,
            )),
        )),
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
        assert!(permits(Role::TenantAdmin, Action::Write, Area::Configuration));
        assert!(permits(Role::TenantAdmin, Action::Write, Area::Tokens));
        assert!(!permits(Role::TenantAdmin, Action::Read, Area::Tenants));
        assert!(permits(Role::Supervisor, Action::Read, Area::Configuration));
        assert!(!permits(Role::Supervisor, Action::Write, Area::Configuration));
        assert!(permits(Role::Supervisor, Action::Read, Area::Users));
        assert!(!permits(Role::Viewer, Action::Read, Area::Users));
        assert!(!permits(Role::Viewer, Action::Read, Area::Tokens));
        assert!(permits(Role::PlatformAdmin, Action::Write, Area::Tenants));
        assert!(!permits(Role::PlatformAdmin, Action::Read, Area::Configuration));
        assert!(permits(Role::TenantAdmin, Action::Read, Area::Audit));
        assert!(!permits(Role::Supervisor, Action::Read, Area::Audit));
    }

    #[test]
    fn grants_never_exceed_the_grantor() {
        use crate::store::Visibility;
        let scoped = TenantScope::verified(
            crate::store::TenantId::for_tests("ten_1"),
            "acme".into(),
            Role::TenantAdmin,
            "user:a".into(),
        )
        .with_visibility(Visibility::from_scopes(vec!["team_a".into()], vec![]));
        let team_a = vec!["team_a".to_owned()];
        assert_eq!(may_grant(&scoped, Role::TenantAdmin, &[], &[]), Err(GrantError::Teams));
        assert_eq!(
            may_grant(&scoped, Role::Viewer, &["team_b".to_owned()], &[]),
            Err(GrantError::Teams)
        );
        assert_eq!(may_grant(&scoped, Role::TenantAdmin, &team_a, &[]), Ok(()));
        assert_eq!(
            may_grant(&scoped, Role::Supervisor, &team_a, &["loc_x".to_owned()]),
            Ok(()),
            "narrower is fine"
        );
        let supervisor = TenantScope::verified(
            crate::store::TenantId::for_tests("ten_1"),
            "acme".into(),
            Role::Supervisor,
            "user:s".into(),
        );
        assert!(matches!(
            may_grant(&supervisor, Role::TenantAdmin, &[], &[]),
            Err(GrantError::Role { .. })
        ));
        assert_eq!(may_grant(&supervisor, Role::Viewer, &[], &[]), Ok(()));
    }

    #[test]
    fn a_scoped_admin_manages_only_what_it_could_have_granted() {
        use crate::store::Visibility;
        let scoped = TenantScope::verified(
            crate::store::TenantId::for_tests("ten_1"),
            "acme".into(),
            Role::TenantAdmin,
            "user:a".into(),
        )
        .with_visibility(Visibility::from_scopes(vec!["team_a".into()], vec![]));
        let team_a = vec!["team_a".to_owned()];
        assert_eq!(
            may_manage(&scoped, "tenant_admin", &[], &[]),
            Err(GrantError::Beyond),
            "an unscoped admin"
        );
        assert_eq!(
            may_manage(&scoped, "viewer", &[], &[]),
            Err(GrantError::Beyond),
            "a viewer of every team"
        );
        assert_eq!(
            may_manage(&scoped, "viewer", &["team_b".to_owned()], &[]),
            Err(GrantError::Beyond)
        );
        assert_eq!(
            may_manage(&scoped, "no_such_role", &team_a, &[]),
            Err(GrantError::Beyond)
        );
        assert_eq!(may_manage(&scoped, "tenant_admin", &team_a, &[]), Ok(()), "a peer");
        assert_eq!(may_manage(&scoped, "agent", &team_a, &["loc_x".to_owned()]), Ok(()));
        let admin = TenantScope::verified(
            crate::store::TenantId::for_tests("ten_1"),
            "acme".into(),
            Role::TenantAdmin,
            "user:b".into(),
        );
        assert_eq!(may_manage(&admin, "tenant_admin", &[], &[]), Ok(()));
    }

    #[test]
    fn scoped_supervisors_see_only_their_teams_and_locations() {
        use crate::store::Visibility;
        let scope = TenantScope::verified(
            crate::store::TenantId::for_tests("ten_1"),
            "acme".into(),
            Role::Supervisor,
            "user:u".into(),
        )
        .with_visibility(Visibility::from_scopes(vec!["team_a".into()], vec![]));
        let supervisor = Principal::Tenant(scope);
        let agent = |team: Option<&'static str>| Resource::Agent {
            team,
            location: Some("loc_x"),
        };
        assert!(can(&supervisor, Action::Read, agent(Some("team_a"))));
        assert!(!can(&supervisor, Action::Read, agent(Some("team_b"))));
        assert!(
            !can(&supervisor, Action::Read, agent(None)),
            "an agent in no team is outside a team scope"
        );
        assert!(
            !can(&supervisor, Action::Write, agent(Some("team_a"))),
            "the role still decides writes"
        );
        assert!(can(&supervisor, Action::Read, Resource::Team("team_a")));
        assert!(!can(&supervisor, Action::Read, Resource::Team("team_b")));
        assert!(
            can(&supervisor, Action::Read, Resource::Location("loc_y")),
            "locations are not limited"
        );
        let admin = Principal::Tenant(TenantScope::verified(
            crate::store::TenantId::for_tests("ten_1"),
            "acme".into(),
            Role::TenantAdmin,
            "user:a".into(),
        ));
        assert!(can(&admin, Action::Write, agent(None)));
    }
}
