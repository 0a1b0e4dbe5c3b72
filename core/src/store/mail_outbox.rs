//! The mail outbox (migration 0021): email queued with at most one attachment, one message per
//! recipient, sent by the outbox worker (`mail::outbox`), retried with growing pauses and kept
//! as sent or failed where the tenant can see it.

use serde::Serialize;

use super::{Store, StoreResult, TenantId, TenantScope};
use crate::domain::new_id;
use crate::domain::time::now_ms;
use crate::on_db;

/// A file sent along.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attachment: Option<Attachment>,
}

/// A queued message as the worker sends it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MailRow {
    pub tenant_id: TenantId,
    pub id: String,
    pub origin: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attachment_name: Option<String>,
    pub attachment_type: Option<String>,
    pub attachment: Option<Vec<u8>>,
    pub attempts: i64,
    pub next_attempt_at: i64,
}

impl MailRow {
    pub fn attachment(&self) -> Option<Attachment> {
        Some(Attachment {
            name: self.attachment_name.clone()?,
            content_type: self.attachment_type.clone()?,
            bytes: self.attachment.clone()?,
        })
    }
}

/// A queued message as the tenant sees it (without its attachment's bytes).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MailStatus {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    pub attachment_name: Option<String>,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// Queues `mails` from `origin` (e.g. `saved_report:<id>`), due now, in one transaction.
pub async fn enqueue(store: &Store, scope: &TenantScope, origin: &str, mails: &[OutgoingMail]) -> StoreResult<()> {
    let now = now_ms();
    on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        for mail in mails {
            let attachment = mail.attachment.as_ref();
            sqlx::query::<DB>(
                "INSERT INTO mail_outbox (tenant_id, id, origin, recipient, subject, body, attachment_name, \
                 attachment_type, attachment, state, attempts, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $10)",
            )
            .bind(scope.tenant_id())
            .bind(new_id("mail"))
            .bind(origin)
            .bind(&mail.recipient)
            .bind(&mail.subject)
            .bind(&mail.body)
            .bind(attachment.map(|a| a.name.as_str()))
            .bind(attachment.map(|a| a.content_type.as_str()))
            .bind(attachment.map(|a| a.bytes.as_slice()))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })?;
    Ok(())
}

/// Pending messages due by `now`, across tenants (for the worker), earliest first.
pub async fn due(store: &Store, now: i64, limit: i64) -> StoreResult<Vec<MailRow>> {
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, MailRow>(
            "SELECT tenant_id, id, origin, recipient, subject, body, attachment_name, attachment_type, \
             attachment, attempts, next_attempt_at FROM mail_outbox \
             WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await
    })?)
}

/// Takes a due message for one sender: moves its next attempt to `until` unless another
/// instance took it first. Whoever gets `true` sends it.
pub async fn claim(store: &Store, row: &MailRow, until: i64) -> StoreResult<bool> {
    let done = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE mail_outbox SET next_attempt_at = $1 \
             WHERE tenant_id = $2 AND id = $3 AND state = 'pending' AND next_attempt_at = $4",
        )
        .bind(until)
        .bind(&row.tenant_id)
        .bind(&row.id)
        .bind(row.next_attempt_at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(done == 1)
}

/// Records an attempt: sent, or failed with the next try (`None`: no more tries).
pub async fn attempted(
    store: &Store,
    row: &MailRow,
    outcome: &Result<(), String>,
    next_attempt_at: Option<i64>,
) -> StoreResult<()> {
    let now = now_ms();
    let (state, error, next) = match (outcome, next_attempt_at) {
        (Ok(()), _) => ("sent", None, now),
        (Err(e), Some(next)) => ("pending", Some(e.as_str()), next),
        (Err(e), None) => ("failed", Some(e.as_str()), now),
    };
    on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(
            "UPDATE mail_outbox SET state = $1, attempts = attempts + 1, last_error = $2, \
             next_attempt_at = $3, sent_at = $4 WHERE tenant_id = $5 AND id = $6",
        )
        .bind(state)
        .bind(error)
        .bind(next)
        .bind(outcome.is_ok().then_some(now))
        .bind(&row.tenant_id)
        .bind(&row.id)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// The latest messages from `origin`, newest first.
pub async fn for_origin(store: &Store, scope: &TenantScope, origin: &str, limit: i64) -> StoreResult<Vec<MailStatus>> {
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, MailStatus>(
            "SELECT id, recipient, subject, attachment_name, state, attempts, last_error, created_at, sent_at \
             FROM mail_outbox WHERE tenant_id = $1 AND origin = $2 ORDER BY created_at DESC, id LIMIT $3",
        )
        .bind(scope.tenant_id())
        .bind(origin)
        .bind(limit)
        .fetch_all(pool)
        .await
    })?)
}

/// Forgets sent and failed messages created before `before` (their attachments with them);
/// returns how many.
pub async fn purge(store: &Store, before: i64) -> StoreResult<u64> {
    Ok(on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>("DELETE FROM mail_outbox WHERE state <> 'pending' AND created_at < $1")
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?)
}
