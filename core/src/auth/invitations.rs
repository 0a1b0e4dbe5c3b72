//! Adding people to a tenant by invitation. The admin names an email, a role and scopes; the
//! person accepts at `/invitations/{token}` (signing in with the account of that address, or
//! choosing a password when the address is new). Until then nothing changes for the account,
//! and nothing the admin sees depends on whether the address already has one: the answer, the
//! pending list, the email and the link are the same either way.

use std::sync::Arc;
use std::time::Duration;

use super::ratelimit::RateLimiter;
use super::{Action, Area, GrantError, may_grant, may_manage, permits};
use crate::domain::{Role, Validation, validate};
use crate::i18n::Locale;
use crate::mail::Mailer;
use crate::store::accounts::{self, Account};
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::entities::users::{Member, MemberCreate, MemberUpdate};
use crate::store::invitations::{self, Invitation, NewInvitation, Pending};
use crate::store::{Store, StoreError, TenantScope, Visibility, tenants, tokens};

/// How long an invitation link works.
pub const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Invitations a tenant may create per hour (each may send an email and adds a row).
pub const PER_TENANT_PER_HOUR: u32 = 100;

/// The per-tenant budget for [`invite`].
pub fn limiter() -> RateLimiter {
    RateLimiter::new(f64::from(PER_TENANT_PER_HOUR) / 3600.0, PER_TENANT_PER_HOUR)
}

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// The tenant made too many invitations lately; try again after the wait.
    #[error("this tenant has made too many invitations in the last hour; try again later")]
    Throttled(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the inviting admin gets back.
#[derive(Debug)]
pub struct Invited {
    pub invitation: Invitation,
    /// The acceptance link, when no mail server is configured and the admin hands it over.
    pub link: Option<String>,
}

/// Where the acceptance page of a token is.
pub fn link(public_url: &str, token: &str) -> String {
    format!("{public_url}/invitations/{token}")
}

/// Checks and stores an invitation, records it, and mails the link when a mail server is
/// configured (after answering, so the answer's timing does not depend on the account either).
/// `limiter` holds each tenant to [`PER_TENANT_PER_HOUR`] invitations.
#[allow(clippy::too_many_arguments)]
pub async fn invite(
    store: &Store,
    mailer: Option<Arc<Mailer>>,
    limiter: &RateLimiter,
    public_url: &str,
    scope: &TenantScope,
    input: MemberCreate,
    locale: Locale,
    origin: &Origin,
) -> Result<Invited, InviteError> {
    let mut v = Validation::new();
    let email = v.check("email", validate::email(&input.email));
    let display_name = match input.display_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => v.check("display_name", validate::name(name, 100)),
        None => None,
    };
    if input.role == Role::PlatformAdmin {
        v.add(
            "role",
            "platform_admin is not a tenant role; use tenant_admin, supervisor, agent or viewer",
        );
    }
    let tenant = scope.tenant();
    crate::store::entities::users::check_ids(store, tenant, &mut v, "team_scope", "teams", &input.team_scope).await?;
    crate::store::entities::users::check_ids(
        store,
        tenant,
        &mut v,
        "location_scope",
        "locations",
        &input.location_scope,
    )
    .await?;
    v.finish().map_err(StoreError::from)?;
    let email = email.unwrap_or_default();
    if let Err(e) = may_grant(scope, input.role, &input.team_scope, &input.location_scope) {
        let event = AuditEvent::in_tenant(scope, "invitation.create", Outcome::Denied).detail(e.to_string());
        audit::record(store, event, origin).await;
        return Err(e.into());
    }
    // The admin sees the member list anyway, so saying "already a member" tells them nothing.
    if invitations::is_member(store, scope, &email).await? {
        return Err(StoreError::Conflict {
            field: Some("email".into()),
            message: "this user is already a member of this tenant".into(),
        }
        .into());
    }
    // Counted only once the invitation would be made: refused ones cost no row and no email.
    limiter.check(scope.tenant_id()).map_err(InviteError::Throttled)?;
    let new = NewInvitation {
        email: email.clone(),
        display_name,
        role: input.role,
        team_scope: input.team_scope,
        location_scope: input.location_scope,
        lifetime_ms: LIFETIME.as_millis() as i64,
    };
    let (invitation, token) = invitations::create(store, scope, new).await?;
    let event = AuditEvent::in_tenant(scope, "invitation.create", Outcome::Success)
        .target("invitation", &invitation.id)
        .change(None, serde_json::to_value(&invitation).ok());
    audit::record(store, event, origin).await;
    let url = link(public_url, &token);
    let Some(mailer) = mailer else {
        return Ok(Invited {
            invitation,
            link: Some(url),
        });
    };
    let (store, scope, origin, role) = (store.clone(), scope.clone(), origin.clone(), invitation.role.clone());
    let id = invitation.id.clone();
    tokio::spawn(async move {
        let tenant_name = tenants::by_id(&store, scope.tenant_id())
            .await
            .map(|t| t.name)
            .unwrap_or_else(|_| scope.tenant_slug().to_owned());
        // The person's own language when they have an account and chose one; this runs after
        // the answer, so the lookup reveals nothing.
        let locale = accounts::by_email(&store, &email)
            .await
            .ok()
            .flatten()
            .and_then(|a| a.locale)
            .as_deref()
            .and_then(Locale::parse)
            .unwrap_or(locale);
        let role = locale.text(&format!("roles.{role}"));
        let days = (LIFETIME.as_secs() / 86_400).max(1);
        let outcome = match mailer
            .send_invitation(&email, &tenant_name, &role, &url, days, locale)
            .await
        {
            Ok(()) => Outcome::Success,
            Err(e) => {
                tracing::warn!(error = %e, "cannot send the invitation email");
                Outcome::Failure
            }
        };
        let event = AuditEvent::in_tenant(&scope, "invitation.email", outcome).target("invitation", &id);
        audit::record(&store, event, &origin).await;
    });
    Ok(Invited { invitation, link: None })
}

/// Revokes a pending invitation and records it.
pub async fn revoke(store: &Store, scope: &TenantScope, id: &str, origin: &Origin) -> Result<Invitation, StoreError> {
    let invitation = invitations::revoke(store, scope, id).await?;
    let event = AuditEvent::in_tenant(scope, "invitation.revoke", Outcome::Success).target("invitation", id);
    audit::record(store, event, origin).await;
    Ok(invitation)
}

/// Whether `scope` may act on `member` at all (change, disable, remove, reset, sign out):
/// what the member holds now must be within what `scope` could grant.
pub fn may_manage_member(scope: &TenantScope, member: &Member) -> Result<(), GrantError> {
    may_manage(scope, &member.role, &member.team_scope.0, &member.location_scope.0)
}

/// Whether `scope` may apply `update` to `current`: every update, whatever it changes (disabling
/// included), needs [`may_manage_member`]; the role and scopes it leaves the member with must
/// be something `scope` may grant.
pub fn may_change_member(scope: &TenantScope, current: &Member, update: &MemberUpdate) -> Result<(), GrantError> {
    may_manage_member(scope, current)?;
    let role = match update.role {
        Some(role) => role,
        None => current.role.parse().unwrap_or(Role::PlatformAdmin),
    };
    let teams = update.team_scope.as_ref().unwrap_or(&current.team_scope.0);
    let locations = update.location_scope.as_ref().unwrap_or(&current.location_scope.0);
    may_grant(scope, role, teams, locations)
}

/// What the credential that made an invitation may do today, if it still exists and works in
/// the invitation's tenant. `Ok(None)` when it does not.
async fn inviter_scope(store: &Store, pending: &Pending) -> Result<Option<TenantScope>, StoreError> {
    let actor = pending.created_by.clone();
    if let Some(user_id) = actor.strip_prefix("user:") {
        let Some(membership) = accounts::membership(store, user_id, &pending.tenant_id).await? else {
            return Ok(None);
        };
        let account = match accounts::by_id(store, user_id).await {
            Ok(account) => account,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if account.disabled || !membership.usable() {
            return Ok(None);
        }
        return Ok(membership.scope(actor));
    }
    if let Some(token_id) = actor.strip_prefix("token:") {
        let Some(grant) = tokens::grant_by_id(store, token_id).await? else {
            return Ok(None);
        };
        let now = crate::domain::time::now_ms();
        let usable = grant.tenant_id.as_deref() == Some(pending.tenant_id.as_str())
            && grant.revoked_at.is_none()
            && grant.expires_at.is_none_or(|e| e > now)
            && !grant.tenant_suspended;
        let Ok(role) = grant.role.parse::<Role>() else {
            return Ok(None);
        };
        return Ok(usable.then(|| {
            TenantScope::verified(pending.tenant_id.clone(), pending.tenant_slug.clone(), role, actor)
                .with_visibility(Visibility::from_scopes(grant.team_scope.0, grant.location_scope.0))
        }));
    }
    // The operator at the console ("cli") and identity-provider tokens ("jwt:…") leave nothing
    // here to look up again; they count as the tenant's admin, as when they made it.
    Ok(Some(TenantScope::verified(
        pending.tenant_id.clone(),
        pending.tenant_slug.clone(),
        Role::TenantAdmin,
        actor,
    )))
}

/// Whether the invitation's maker could still make it: an admin demoted, disabled or removed
/// since (or a token revoked) no longer hands out access through invitations they made. When
/// not, the invitation is revoked (so repeating costs nothing) and the refusal recorded.
pub async fn check_inviter(store: &Store, pending: &Pending, actor: &str, origin: &Origin) -> Result<(), AcceptError> {
    let role = pending.role.parse::<Role>().unwrap_or(Role::PlatformAdmin);
    let allowed = inviter_scope(store, pending).await?.is_some_and(|scope| {
        permits(scope.role(), Action::Write, Area::Users)
            && may_grant(&scope, role, &pending.team_scope.0, &pending.location_scope.0).is_ok()
    });
    if allowed {
        return Ok(());
    }
    invitations::revoke_unusable(store, &pending.id).await?;
    let event = AuditEvent::new(Some(&pending.tenant_id), actor, "invitation.accept", Outcome::Denied)
        .target("invitation", &pending.id)
        .detail(format!(
            "{} can no longer grant {}; the invitation was revoked",
            pending.created_by, pending.role
        ));
    audit::record(store, event, origin).await;
    Err(AcceptError::InviterCannotGrant)
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("this invitation is not valid any more")]
    NotPending,
    #[error("this invitation is for another email address")]
    OtherAccount,
    #[error("this account is disabled")]
    Disabled,
    #[error("whoever invited you can no longer grant this access")]
    InviterCannotGrant,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn same_address(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Accepts an invitation for the signed-in account of its address and records it in the
/// tenant's audit log.
pub async fn accept(store: &Store, token: &str, account: &Account, origin: &Origin) -> Result<Pending, AcceptError> {
    let pending = invitations::pending_by_token(store, token)
        .await?
        .ok_or(AcceptError::NotPending)?;
    if !same_address(&pending.email, &account.email) {
        return Err(AcceptError::OtherAccount);
    }
    if account.disabled {
        return Err(AcceptError::Disabled);
    }
    check_inviter(store, &pending, &format!("user:{}", account.id), origin).await?;
    let pending = invitations::accept(store, token, &account.id)
        .await?
        .ok_or(AcceptError::NotPending)?;
    let event = AuditEvent::new(
        Some(&pending.tenant_id),
        &format!("user:{}", account.id),
        "invitation.accept",
        Outcome::Success,
    )
    .target("user", &account.id)
    .detail(format!("invitation {} as {}", pending.id, pending.role));
    audit::record(store, event, origin).await;
    Ok(pending)
}

/// Declines an invitation for the signed-in account of its address.
pub async fn decline(store: &Store, token: &str, account: &Account, origin: &Origin) -> Result<Pending, AcceptError> {
    let pending = invitations::pending_by_token(store, token)
        .await?
        .ok_or(AcceptError::NotPending)?;
    if !same_address(&pending.email, &account.email) {
        return Err(AcceptError::OtherAccount);
    }
    let pending = invitations::decline(store, token)
        .await?
        .ok_or(AcceptError::NotPending)?;
    let event = AuditEvent::new(
        Some(&pending.tenant_id),
        &format!("user:{}", account.id),
        "invitation.decline",
        Outcome::Success,
    )
    .target("invitation", &pending.id);
    audit::record(store, event, origin).await;
    Ok(pending)
}
