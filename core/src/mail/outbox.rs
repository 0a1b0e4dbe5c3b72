//! Sends what waits in the mail outbox: every couple of seconds, each due message on its own
//! task (a slow server holds up only its message), retried with growing pauses
//! (`domain::retry`) and failed for good after the last. A message is claimed in the database
//! before it is sent, so several instances on one database do not send it side by side; a
//! sender that dies after the server took a message and before it is marked sent has it sent
//! again (at least once, as SMTP itself).

use std::sync::Arc;
use std::time::Duration;

use super::Mailer;
use crate::domain::retry::next_attempt;
use crate::domain::time::now_ms;
use crate::store::Store;
use crate::store::mail_outbox::{self, MailRow};

/// How long a claimed message is left to its sender before another may take it.
const CLAIM_MS: i64 = 5 * 60 * 1000;
/// Messages taken per pass.
const PER_PASS: i64 = 20;
/// How long sent and failed messages are kept (they show on what queued them).
const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;
/// Passes between two purges of old messages (an hour).
const PURGE_EVERY: u32 = 1800;

pub struct Outbox {
    store: Store,
    mailer: Option<Arc<Mailer>>,
}

impl Outbox {
    pub fn new(store: Store, mailer: Option<Arc<Mailer>>) -> Arc<Self> {
        Arc::new(Self { store, mailer })
    }

    /// Sends what is due every two seconds while the process runs, and forgets what was sent
    /// or failed 30 days ago once an hour.
    pub fn start(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(2));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut passes: u32 = 0;
            loop {
                every.tick().await;
                if let Err(e) = self.clone().send_due().await {
                    tracing::warn!(error = %e, "sending queued mail failed");
                }
                passes = (passes + 1) % PURGE_EVERY;
                if passes == 1
                    && let Err(e) = mail_outbox::purge(&self.store, now_ms() - KEEP_MS).await
                {
                    tracing::warn!(error = %e, "forgetting old mail failed");
                }
            }
        });
    }

    /// Starts sending every due message this instance could claim; returns how many.
    pub async fn send_due(self: Arc<Self>) -> crate::store::StoreResult<usize> {
        let now = now_ms();
        let mut started = 0;
        for row in mail_outbox::due(&self.store, now, PER_PASS).await? {
            if !mail_outbox::claim(&self.store, &row, now + CLAIM_MS).await? {
                continue;
            }
            started += 1;
            let outbox = self.clone();
            tokio::spawn(async move { outbox.send(row).await });
        }
        Ok(started)
    }

    async fn send(&self, row: MailRow) {
        let outcome = match &self.mailer {
            None => Err("no SMTP server is configured (smtp.host)".to_owned()),
            Some(mailer) => mailer
                .send_with(
                    &row.recipient,
                    &row.subject,
                    row.body.clone(),
                    row.attachment().as_ref(),
                )
                .await
                .map_err(|e| e.to_string()),
        };
        let next = match &outcome {
            Ok(()) => None,
            Err(_) => next_attempt(row.attempts + 1, now_ms()),
        };
        match &outcome {
            Ok(()) => metrics::counter!("mail_sent_total").increment(1),
            Err(why) => {
                tracing::warn!(origin = %row.origin, attempt = row.attempts + 1, "an email could not be sent: {why}");
                metrics::counter!("mail_failed_total").increment(1);
            }
        }
        if let Err(e) = mail_outbox::attempted(&self.store, &row, &outcome, next).await {
            tracing::warn!(error = %e, "recording an email's attempt failed");
        }
    }
}
