//! Adding people to a tenant by invitation. The admin names an email, a role and scopes; the
//! person accepts at `/invitations/{token}` (signing in with the account of that address, or
//! choosing a password when the address is new). Until then nothing changes for the account,
//! and nothing the admin sees depends on whether the address already has one: the answer, the
//! pending list, the email and the link are the same either way.

use std::sync::Arc;
use std::time::Duration;

use super::{GrantError, may_grant};
use crate::domain::{Role, Validation, validate};
use crate::i18n::Locale;
use crate::mail::Mailer;
use crate::store::accounts::{self, Account};
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::entities::users::{Member, MemberCreate, MemberUpdate};
use crate::store::invitations::{self, Invitation, NewInvitation, Pending};
use crate::store::{Store, StoreError, TenantScope, tenants};

/// How long an invitation link works.
pub const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error(transparent)]
    Grant(#[from] GrantError),
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
pub async fn invite(
    store: &Store,
    mailer: Option<Arc<Mailer>>,
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
    let tenant = scope.tenant_id();
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

/// Whether `scope` may give a member the role and scopes `update` asks for. Only a change of
/// them is checked: what a member already has stays editable otherwise (disabling, say).
pub fn may_change_member(scope: &TenantScope, current: &Member, update: &MemberUpdate) -> Result<(), GrantError> {
    let role = match update.role {
        Some(role) => role,
        None => current.role.parse().unwrap_or(Role::Viewer),
    };
    let teams = update.team_scope.as_ref().unwrap_or(&current.team_scope.0);
    let locations = update.location_scope.as_ref().unwrap_or(&current.location_scope.0);
    let unchanged =
        role.as_str() == current.role && *teams == current.team_scope.0 && *locations == current.location_scope.0;
    if unchanged {
        return Ok(());
    }
    may_grant(scope, role, teams, locations)
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("this invitation is not valid any more")]
    NotPending,
    #[error("this invitation is for another email address")]
    OtherAccount,
    #[error("this account is disabled")]
    Disabled,
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
