//! People's accounts across the installation: the operator creating, disabling and enabling
//! accounts and making password-reset links (the command line), a tenant admin's reset link for
//! one of their members (the users page), mailing a reset link (the users page and the
//! forgotten-password page), the first platform admin (the setup page), and a signed-in person
//! ending their own sessions (the account page). One flow each, audited. Signing in itself
//! (passwords, lockouts, single sign-on) is `auth`.

use std::time::Duration;

use crate::domain::Role;
use crate::store::accounts::{self, Account, NewAccount};
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::sessions;
use crate::store::tenants::Tenant;
use crate::store::{Store, StoreError, TenantId, TenantScope};

/// Why an account flow did not happen.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The password does not meet the policy.
    #[error("password {0}")]
    WeakPassword(String),
    #[error("hashing the password failed")]
    Hashing,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An account to create.
pub struct AccountRequest {
    pub email: String,
    pub display_name: Option<String>,
    pub password: String,
    pub platform_admin: bool,
    /// A tenant to make the account a member of, with this role.
    pub membership: Option<(Tenant, Role)>,
}

/// Creates an account (checked against the password policy) and its membership, audited as
/// `actor` (`cli`, or the account itself when it is the first platform admin).
pub async fn create_account(
    store: &Store,
    actor: Option<&str>,
    origin: &Origin,
    request: AccountRequest,
) -> Result<Account, IdentityError> {
    crate::auth::password::check_policy(&request.password, &request.email)
        .map_err(|e| IdentityError::WeakPassword(e.to_string()))?;
    let hash = crate::auth::password::hash_off_thread(request.password)
        .await
        .map_err(|_| IdentityError::Hashing)?;
    let account = accounts::create(
        store,
        NewAccount {
            email: request.email,
            display_name: request.display_name,
            password_hash: Some(hash),
            platform_admin: request.platform_admin,
        },
    )
    .await?;
    if let Some((tenant, role)) = &request.membership {
        accounts::grant_membership(store, &account.id, &tenant.id, *role, &[], &[]).await?;
    }
    let actor = actor.map_or_else(|| format!("user:{}", account.id), str::to_owned);
    let role = request.membership.as_ref().map(|(_, role)| *role);
    let event = AuditEvent::new(
        request.membership.as_ref().map(|(tenant, _)| &tenant.id),
        &actor,
        "user.create",
        Outcome::Success,
    )
    .target("user", &account.id)
    .change(
        None,
        Some(serde_json::json!({ "email": account.email, "platform_admin": account.platform_admin, "role": role })),
    );
    audit::record(store, event, origin).await;
    Ok(account)
}

/// The operator disables or enables an account everywhere; disabling ends its sessions.
/// Audited in every tenant it belongs to (and installation-wide). Returns the sessions ended.
pub async fn set_disabled(
    store: &Store,
    actor: &str,
    origin: &Origin,
    account: &Account,
    disabled: bool,
) -> Result<u64, IdentityError> {
    accounts::set_disabled(store, &account.id, disabled).await?;
    let ended = if disabled {
        sessions::revoke_all(store, &account.id, None).await?
    } else {
        0
    };
    let action = if disabled { "user.disable" } else { "user.enable" };
    for tenant in audit_tenants(store, &account.id).await {
        let event = AuditEvent::new(tenant.as_ref(), actor, action, Outcome::Success).target("user", &account.id);
        audit::record(store, event, origin).await;
    }
    Ok(ended)
}

/// A single-use link that sets a new password for `account`, valid for `lifetime`: made by the
/// operator (`scope` None) or by a tenant admin for one of their members (the caller checks
/// that the member is theirs to manage).
pub async fn reset_link(
    store: &Store,
    public_url: &str,
    actor: &str,
    scope: Option<&TenantScope>,
    origin: &Origin,
    account_id: &str,
    lifetime: Duration,
) -> Result<String, IdentityError> {
    let tenant = scope.map(TenantScope::tenant);
    let token = accounts::create_password_reset(store, account_id, actor, tenant, lifetime.as_millis() as i64).await?;
    let event = AuditEvent::new(tenant, actor, "user.reset_link", Outcome::Success).target("user", account_id);
    audit::record(store, event, origin).await;
    Ok(reset_url(public_url, &token))
}

/// The page where a reset token sets a new password.
pub fn reset_url(public_url: &str, token: &str) -> String {
    format!("{public_url}/reset?token={token}")
}

/// A signed-in person ends one of their own sessions (`except` None) or all but the one they
/// use (`except` their current one). Returns how many ended.
pub async fn end_own_sessions(
    store: &Store,
    account_id: &str,
    tenant: Option<&TenantId>,
    origin: &Origin,
    which: OwnSessions<'_>,
) -> Result<u64, IdentityError> {
    let actor = format!("user:{account_id}");
    let event = match which {
        OwnSessions::One(id) => {
            sessions::revoke(store, account_id, id).await?;
            AuditEvent::new(tenant, &actor, "session.revoke", Outcome::Success).target("session", id)
        }
        OwnSessions::AllBut(current) => {
            let ended = sessions::revoke_all(store, account_id, Some(current)).await?;
            let event = AuditEvent::new(tenant, &actor, "session.revoke_all", Outcome::Success)
                .detail(format!("{ended} sessions ended"));
            audit::record(store, event, origin).await;
            return Ok(ended);
        }
    };
    audit::record(store, event, origin).await;
    Ok(1)
}

/// Which of their own sessions a person ends.
pub enum OwnSessions<'a> {
    One(&'a str),
    AllBut(&'a str),
}

/// Where what happens to an account is audited: in each tenant it belongs to, or at the
/// installation level when it belongs to none (or they cannot be read).
pub async fn audit_tenants(store: &Store, account_id: &str) -> Vec<Option<TenantId>> {
    match accounts::memberships(store, account_id).await {
        Ok(memberships) if !memberships.is_empty() => memberships.into_iter().map(|m| Some(m.tenant_id)).collect(),
        _ => vec![None],
    }
}

/// Whom a reset link is mailed to.
pub struct Recipient<'a> {
    pub account_id: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub locale: crate::i18n::Locale,
}

/// Mails reset `link`, valid for `lifetime`, to `to`. Audited as `user.reset_email` in each of
/// `tenants` under `actor`, whether or not the mail server took it.
#[allow(clippy::too_many_arguments)]
pub async fn email_reset_link(
    store: &Store,
    mailer: &crate::mail::Mailer,
    actor: &str,
    tenants: &[Option<TenantId>],
    origin: &Origin,
    to: Recipient<'_>,
    link: &str,
    lifetime: Duration,
) -> Result<(), crate::mail::MailError> {
    let hours = (lifetime.as_secs() / 3600).max(1);
    let sent = mailer.send_reset(to.email, to.name, link, hours, to.locale).await;
    let outcome = if sent.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    for tenant in tenants {
        let event = AuditEvent::new(tenant.as_ref(), actor, "user.reset_email", outcome).target("user", to.account_id);
        audit::record(store, event, origin).await;
    }
    sent
}
