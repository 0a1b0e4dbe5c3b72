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
        let held = entries
            .values()
            .filter(|(t, _)| t.scope.actor() == scope.actor())
            .count();
        if held >= PER_CREDENTIAL || entries.len() >= OUTSTANDING {
            return Err(TicketError::TooMany);
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
        TenantScope::verified("ten_1".into(), "acme".into(), Role::Viewer, actor.into())
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
}
