//! Changes to who may do what — a token revoked, a session ended, a membership's role or scopes
//! changed, an account disabled, a tenant suspended — announced in this process as they are
//! written, so open live streams check their credential at once instead of at their next
//! periodic check. Changes made by another instance or the CLI are not heard here; streams
//! check again every few seconds for those.

use std::sync::LazyLock;

use tokio::sync::broadcast;

/// What changed. A stream re-checks when a change names its token, session, account or tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Token(String),
    Session(String),
    /// Every session and membership of an account.
    Account(String),
    /// Everyone of a tenant (suspension, settings).
    Tenant(String),
}

/// Room for bursts (an admin revoking many sessions); a stream that misses some re-checks.
const CAPACITY: usize = 1024;

static CHANGES: LazyLock<broadcast::Sender<Change>> = LazyLock::new(|| broadcast::channel(CAPACITY).0);

/// Announces a change (no one listening is fine).
pub fn publish(change: Change) {
    let _ = CHANGES.send(change);
}

/// Changes from now on.
pub fn subscribe() -> broadcast::Receiver<Change> {
    CHANGES.subscribe()
}
