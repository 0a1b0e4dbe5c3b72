//! Who may act in a tenant: API tokens issued and revoked, members changed and removed, their
//! sessions ended. One flow each for the REST API, the admin pages and the command line, with
//! the policy (nobody grants or manages more than they have, nobody locks themselves out) and
//! the audit entries, allowed or denied. Invitations, the way people are added, are
//! `auth::invitations`.

use crate::auth::{GrantError, TokenCache};
use crate::domain::{Role, Validation};
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::entities::users::{self, Member, MemberUpdate};
use crate::store::resource;
use crate::store::sessions;
use crate::store::tokens::{self, ApiToken, IssuedToken, TokenScopes};
use crate::store::{Store, StoreError, TenantScope};

/// Why an access flow did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The input is not valid, named as the API's body names it (`role`, `expires_in`).
    #[error("invalid input")]
    Invalid(Validation),
    /// The caller may not grant or manage that (recorded as denied).
    #[error(transparent)]
    Beyond(#[from] GrantError),
    /// The change would take the caller's own administrator access away.
    #[error("{0}")]
    OwnAccess(&'static str),
    #[error(transparent)]
    Store(StoreError),
}

impl From<Validation> for AccessError {
    fn from(v: Validation) -> Self {
        AccessError::Invalid(v)
    }
}

impl From<StoreError> for AccessError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(v) => AccessError::Invalid(v),
            other => AccessError::Store(other),
        }
    }
}

/// Parses a lifetime such as `30d` into an absolute expiry (Unix ms).
pub fn expiry_from_lifetime(lifetime: &str) -> Result<i64, String> {
    let duration = humantime::parse_duration(lifetime)
        .map_err(|e| format!("`{lifetime}` is not a lifetime like 30d or 12h: {e}"))?;
    let ms = i64::try_from(duration.as_millis()).map_err(|_| "too long".to_owned())?;
    if ms < 60_000 {
        return Err("must be at least one minute".into());
    }
    crate::domain::time::now_ms()
        .checked_add(ms)
        .ok_or_else(|| "too long".into())
}

/// A tenant token as someone asks for it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub name: String,
    pub role: Role,
    /// A lifetime such as `30d`; none for a token that does not expire.
    pub expires_in: Option<String>,
    pub scopes: TokenScopes,
}

/// Records a refusal of `action` on `target` as denied and hands the reason back.
async fn denied(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    action: &str,
    target: Option<(&str, &str)>,
    why: GrantError,
) -> AccessError {
    let mut event = AuditEvent::in_tenant(scope, action, Outcome::Denied).detail(why.to_string());
    if let Some((kind, id)) = target {
        event = event.target(kind, id);
    }
    audit::record(store, event, origin).await;
    AccessError::Beyond(why)
}

/// Issues a token in the caller's tenant: never stronger or wider than the caller.
pub async fn issue_token(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    request: TokenRequest,
) -> Result<IssuedToken, AccessError> {
    let mut invalid = Validation::new();
    if request.role == Role::PlatformAdmin {
        invalid.add("role", "tenant tokens cannot be platform_admin");
    }
    let expires_at = match request.expires_in.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(lifetime) => invalid.check("expires_in", expiry_from_lifetime(lifetime)),
        None => None,
    };
    invalid.finish()?;
    if let Err(why) = crate::auth::may_grant(scope, request.role, &request.scopes.teams, &request.scopes.locations) {
        return Err(denied(store, scope, origin, "token.create", None, why).await);
    }
    let issued = tokens::issue_scoped(
        store,
        Some(scope.tenant()),
        &request.name,
        request.role,
        expires_at,
        scope.actor(),
        request.scopes,
    )
    .await?;
    let event = AuditEvent::in_tenant(scope, "token.create", Outcome::Success)
        .target("token", &issued.token.id)
        .change(None, serde_json::to_value(&issued.token).ok());
    audit::record(store, event, origin).await;
    tracing::info!(
        actor = scope.actor(),
        tenant = scope.tenant_slug(),
        token = issued.token.id,
        "token issued"
    );
    Ok(issued)
}

/// Revokes one of the tenant's tokens; it stops working at once on this instance (and within
/// the token cache's lifetime on others).
pub async fn revoke_token(
    store: &Store,
    cache: &TokenCache,
    scope: &TenantScope,
    origin: &Origin,
    id: &str,
) -> Result<(), AccessError> {
    let token = resource::get::<ApiToken>(store, scope, id).await?;
    if let Err(why) = crate::auth::may_manage(scope, &token.role, &token.team_scope.0, &token.location_scope.0) {
        return Err(denied(store, scope, origin, "token.revoke", Some(("token", id)), why).await);
    }
    tokens::revoke(store, scope, id).await?;
    cache.forget(Some(id), None);
    let event = AuditEvent::in_tenant(scope, "token.revoke", Outcome::Success).target("token", id);
    audit::record(store, event, origin).await;
    tracing::info!(
        actor = scope.actor(),
        tenant = scope.tenant_slug(),
        token = id,
        "token revoked"
    );
    Ok(())
}

/// Whether the scope may act on `member` (for `action`, such as `user.reset_link`): only on
/// someone it could have made. A refusal is recorded as denied.
pub async fn may_manage(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    action: &str,
    member: &Member,
) -> Result<(), AccessError> {
    match crate::auth::invitations::may_manage_member(scope, member) {
        Ok(()) => Ok(()),
        Err(why) => Err(denied(store, scope, origin, action, Some(("user", &member.id)), why).await),
    }
}

/// Whether the scope acts for the person `user_id` (signed in, not through a token).
fn acts_as(scope: &TenantScope, user_id: &str) -> bool {
    scope.actor().strip_prefix("user:") == Some(user_id)
}

/// Changes a member (role, scopes, name, disabled). A disabled member's sessions in the tenant
/// end at once. Nobody takes their own administrator access away.
pub async fn update_member(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    id: &str,
    expected_version: Option<i64>,
    update: MemberUpdate,
) -> Result<Member, AccessError> {
    let before = resource::get::<Member>(store, scope, id).await?;
    let demoted = update.role.is_some_and(|r| r != Role::TenantAdmin);
    if acts_as(scope, id) && (update.disabled == Some(true) || demoted) {
        return Err(AccessError::OwnAccess(
            "You cannot remove your own administrator access; ask another admin.",
        ));
    }
    if let Err(why) = crate::auth::invitations::may_change_member(scope, &before, &update) {
        return Err(denied(store, scope, origin, "user.update", Some(("user", id)), why).await);
    }
    let member = users::update(store, scope, id, expected_version, update).await?;
    if member.disabled {
        end_sessions_in_tenant(store, scope, id).await;
    }
    let event = AuditEvent::in_tenant(scope, "user.update", Outcome::Success)
        .target("user", id)
        .change(serde_json::to_value(&before).ok(), serde_json::to_value(&member).ok());
    audit::record(store, event, origin).await;
    Ok(member)
}

/// A member's sessions in the scope's tenant end (best effort: the session loader refuses a
/// disabled member anyway).
async fn end_sessions_in_tenant(store: &Store, scope: &TenantScope, user_id: &str) {
    match sessions::list_for_tenant(store, scope.tenant(), i64::MAX / 4).await {
        Ok(list) => {
            for session in list.into_iter().filter(|s| s.user_id == user_id) {
                if let Err(e) = sessions::revoke_in_tenant(store, scope.tenant(), &session.id).await {
                    tracing::warn!(error = %e, "ending a disabled member's session failed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing a disabled member's sessions failed"),
    }
}

/// Takes a member out of the tenant (the account stays). Nobody removes themselves.
pub async fn remove_member(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    id: &str,
    expected_version: Option<i64>,
) -> Result<(), AccessError> {
    if acts_as(scope, id) {
        return Err(AccessError::OwnAccess("You cannot remove yourself."));
    }
    let before = resource::get::<Member>(store, scope, id).await?;
    may_manage(store, scope, origin, "user.remove", &before).await?;
    users::remove(store, scope, id, expected_version).await?;
    let event = AuditEvent::in_tenant(scope, "user.remove", Outcome::Success)
        .target("user", id)
        .change(serde_json::to_value(&before).ok(), None);
    audit::record(store, event, origin).await;
    Ok(())
}

/// Ends a session in the tenant. Signing someone out is managing them: only members the caller
/// could have made.
pub async fn revoke_session(store: &Store, scope: &TenantScope, origin: &Origin, id: &str) -> Result<(), AccessError> {
    let Some(owner) = sessions::owner_in_tenant(store, scope.tenant(), id).await? else {
        return Err(AccessError::Store(StoreError::NotFound { kind: "session" }));
    };
    let member = match resource::get::<Member>(store, scope, &owner).await {
        Ok(member) => Some(member),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(Err(why)) = member.map(|m| crate::auth::invitations::may_manage_member(scope, &m)) {
        return Err(denied(store, scope, origin, "session.revoke", Some(("session", id)), why).await);
    }
    sessions::revoke_in_tenant(store, scope.tenant(), id).await?;
    let event = AuditEvent::in_tenant(scope, "session.revoke", Outcome::Success).target("session", id);
    audit::record(store, event, origin).await;
    Ok(())
}

/// The tenant's audit entries matching `query` (the list's filters) as CSV, newest first, at
/// most 100,000 of them. Exporting is itself audited, with the filters used.
pub async fn export_audit(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    query: &[(String, String)],
) -> Result<String, StoreError> {
    const EXPORT_MAX: usize = 100_000;
    let mut out = String::from(audit::CSV_HEADER);
    let mut cursor: Option<String> = None;
    let mut count = 0;
    loop {
        let mut params: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "cursor" | "limit" | "sort"))
            .cloned()
            .collect();
        params.push(("limit".into(), "500".into()));
        params.push(("sort".into(), "-at".into()));
        if let Some(c) = &cursor {
            params.push(("cursor".into(), c.clone()));
        }
        let page = resource::list::<audit::AuditRow>(store, scope, &crate::store::ListParams(params)).await?;
        for entry in &page.items {
            out.push_str(&audit::csv_line(entry));
            count += 1;
        }
        match page.next_cursor {
            Some(c) if count < EXPORT_MAX => cursor = Some(c),
            _ => break,
        }
    }
    // What the person filtered by, not how the pages were fetched.
    let filters: Vec<&(String, String)> = query
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "cursor" | "limit" | "sort"))
        .collect();
    let filters = serde_urlencoded::to_string(filters).unwrap_or_default();
    let event = AuditEvent::in_tenant(scope, "audit.export", Outcome::Success).detail(filters);
    audit::record(store, event, origin).await;
    Ok(out)
}
