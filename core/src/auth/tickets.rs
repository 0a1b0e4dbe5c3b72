//! Stream tickets: a browser cannot set headers on a WebSocket, and a token in the URL ends up in
//! proxy and access logs for as long as the token lives. A ticket is what goes into the URL
//! instead: random, good for [`LIFETIME`], redeemable once, and only at the instance that issued
//! it. It carries the principal it was issued to and the credential it came from, so the stream
//! it opens sees what that credential sees and ends when that credential does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::TenantScope;

/// How long a ticket may wait to be used.
pub const LIFETIME: Duration = Duration::from_secs(30);

/// Unused tickets one credential may hold at a time; more are refused until some are used or
/// expire (a client needs one per connection attempt).
const PER_CREDENTIAL: usize = 16;

/// Unused tickets one tenant's credentials hold together: a tenant with many tokens cannot use
/// up [`OUTSTANDING`] and leave other tenants' browsers without streams.
const PER_TENANT: usize = 1_000;

/// Unused tickets this instance holds at most.
const OUTSTANDING: usize = 10_000;

/// What a redeemed ticket stands for.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// Who it was issued to, as that credential saw the tenant then.
    pub scope: TenantScope,
    /// The `Authorization: Bearer` credential it was issued for, checked again on use and while
    /// the stream runs.
    pub bearer: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("this credential holds too many unused stream tickets; use or let them expire first")]
    TooMany,
    #[error("this tenant holds too many unused stream tickets; use or let them expire first")]
    TenantFull,
    #[error("this server holds too many unused stream tickets; try again in a few seconds")]
    ServerFull,
}

#[derive(Debug, Default)]
pub struct Tickets {
    /// By the ticket's hash: the ticket and when it expires.
    entries: Mutex<HashMap<String, (Ticket, Instant)>>,
}

impl Tickets {
    /// Issues a ticket: (the secret to put in the URL, its lifetime).
    pub fn issue(&self, scope: TenantScope, bearer: String) -> Result<(String, Duration), TicketError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        entries.retain(|_, (_, expires)| *expires > now);
        let (mut by_credential, mut by_tenant) = (0, 0);
        for (ticket, _) in entries.values() {
            by_credential += usize::from(ticket.scope.actor() == scope.actor());
            by_tenant += usize::from(ticket.scope.tenant_id() == scope.tenant_id());
        }
        if by_credential >= PER_CREDENTIAL {
            return Err(TicketError::TooMany);
        }
        if by_tenant >= PER_TENANT {
            return Err(TicketError::TenantFull);
        }
        if entries.len() >= OUTSTANDING {
            return Err(TicketError::ServerFull);
        }
        let secret = format!("mst_{}", crate::secrets::random_secret());
        entries.insert(
            crate::secrets::hash_token(&secret),
            (Ticket { scope, bearer }, now + LIFETIME),
        );
        Ok((secret, LIFETIME))
    }

    /// The ticket for `secret`, once: a used, expired or unknown ticket is `None`.
    pub fn redeem(&self, secret: &str) -> Option<Ticket> {
        if secret.len() > 256 {
            return None;
        }
        let hash = crate::secrets::hash_token(secret);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (ticket, expires) = entries.remove(&hash)?;
        (expires > Instant::now()).then_some(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn scope(actor: &str) -> TenantScope {
        TenantScope::verified(
            crate::store::TenantId::for_tests("ten_1"),
            "acme".into(),
            Role::Viewer,
            actor.into(),
        )
    }

    #[test]
    fn a_ticket_is_good_once_and_not_after_it_expires() {
        let tickets = Tickets::default();
        let (secret, lifetime) = tickets.issue(scope("token:a"), "monti_x".into()).unwrap();
        assert_eq!(lifetime, LIFETIME);
        let ticket = tickets.redeem(&secret).expect("first use");
        assert_eq!(ticket.bearer, "monti_x");
        assert!(tickets.redeem(&secret).is_none(), "second use");
        let (old, _) = tickets.issue(scope("token:a"), "monti_x".into()).unwrap();
        for (_, expires) in tickets.entries.lock().unwrap().values_mut() {
            *expires = Instant::now();
        }
        assert!(tickets.redeem(&old).is_none(), "expired");
        assert!(tickets.redeem("mst_unknown").is_none());
    }

    #[test]
    fn one_credential_holds_a_few_tickets_at_most() {
        let tickets = Tickets::default();
        for _ in 0..PER_CREDENTIAL {
            tickets.issue(scope("token:a"), "monti_x".into()).unwrap();
        }
        assert!(tickets.issue(scope("token:a"), "monti_x".into()).is_err());
        assert!(
            tickets.issue(scope("token:b"), "monti_y".into()).is_ok(),
            "others are not held up"
        );
    }

    fn in_tenant(tenant: &str, actor: &str) -> TenantScope {
        TenantScope::verified(
            crate::store::TenantId::for_tests(tenant),
            tenant.into(),
            Role::Viewer,
            actor.into(),
        )
    }

    #[test]
    fn one_tenant_cannot_use_up_every_ticket() {
        let tickets = Tickets::default();
        // Many tokens of one tenant, each within its own allowance, up to the tenant's share.
        for n in 0..PER_TENANT {
            let actor = format!("token:{}", n / PER_CREDENTIAL);
            tickets.issue(in_tenant("ten_a", &actor), "monti_a".into()).unwrap();
        }
        let fresh = format!("token:{}", PER_TENANT);
        assert!(
            matches!(
                tickets.issue(in_tenant("ten_a", &fresh), "monti_a".into()),
                Err(TicketError::TenantFull)
            ),
            "a token of the same tenant that holds none is refused too"
        );
        assert!(
            tickets
                .issue(in_tenant("ten_b", "token:other"), "monti_b".into())
                .is_ok(),
            "another tenant still gets tickets"
        );
        // Redeeming one frees room for the tenant again.
        let (secret, _) = tickets
            .issue(in_tenant("ten_b", "token:other"), "monti_b".into())
            .unwrap();
        assert!(tickets.redeem(&secret).is_some());
        let used = tickets
            .entries
            .lock()
            .unwrap()
            .iter()
            .find(|(_, (t, _))| t.scope.tenant_id() == "ten_a")
            .map(|(hash, _)| hash.clone())
            .unwrap();
        tickets.entries.lock().unwrap().remove(&used);
        assert!(tickets.issue(in_tenant("ten_a", &fresh), "monti_a".into()).is_ok());
    }

    #[test]
    fn the_instance_holds_a_bounded_number_of_tickets() {
        let tickets = Tickets::default();
        // Ten tenants at their share, as issued (filled in directly: issuing scans every ticket).
        let expires = Instant::now() + LIFETIME;
        let full: HashMap<_, _> = (0..OUTSTANDING)
            .map(|n| {
                let ticket = Ticket {
                    scope: in_tenant(
                        &format!("ten_{}", n / PER_TENANT),
                        &format!("token:{}", n / PER_CREDENTIAL),
                    ),
                    bearer: "monti_x".into(),
                };
                (format!("hash_{n}"), (ticket, expires))
            })
            .collect();
        *tickets.entries.lock().unwrap() = full;
        assert!(matches!(
            tickets.issue(in_tenant("ten_new", "token:new"), "monti_x".into()),
            Err(TicketError::ServerFull)
        ));
    }
}
