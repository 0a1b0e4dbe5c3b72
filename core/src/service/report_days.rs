//! Report days made ahead. Queue and agent reports read kept summaries of whole days, made the
//! first time a report needs them; for a large tenant the first month of an agent report reads
//! millions of events (over a minute). So each tenant's last month is made in the background
//! soon after start and again every hour — after midnight that makes yesterday, and it makes
//! again whatever late events or changed settings moved — and a person's first report of the
//! month reads kept days.
//!
//! Agent days are kept per time zone: this makes them in the tenant's. Several instances on one
//! database each make them (the same summaries; a newer one is never overwritten by an older).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use chrono_tz::Tz;

use crate::live::service::LiveService;
use crate::service::agent_reports::AgentReportQuery;
use crate::service::history::History;
use crate::service::reports::ReportQuery;
use crate::store::{Store, StoreError, SystemActor, tenants};

/// How long after start the first pass waits (start-up has its own work).
const FIRST_PASS: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_secs(3600);

pub struct ReportDays {
    store: Store,
    live: Arc<LiveService>,
    /// How many days before today (`reports.days_ahead`).
    days: u32,
}

impl ReportDays {
    pub fn new(store: Store, live: Arc<LiveService>, days: u32) -> Arc<Self> {
        Arc::new(Self { store, live, days })
    }

    /// Makes days ahead while the process runs (nothing with `reports.days_ahead = 0`).
    pub fn start(self: Arc<Self>) {
        if self.days == 0 {
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(FIRST_PASS).await;
            let mut every = tokio::time::interval(EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let started = std::time::Instant::now();
                match self.make_all().await {
                    Ok(0) => {}
                    Ok(tenants) => tracing::info!(
                        tenants,
                        seconds = started.elapsed().as_secs_f64(),
                        "report days made ahead"
                    ),
                    Err(e) => tracing::warn!(error = %e, "making report days ahead failed; again in an hour"),
                }
            }
        });
    }

    /// Makes the last `days` days of every tenant that is not suspended, one tenant
    /// after the other; returns how many tenants. One tenant's failure is logged and the others
    /// go on.
    pub async fn make_all(&self) -> Result<usize, StoreError> {
        let mut made = 0;
        if self.days == 0 {
            return Ok(0);
        }
        for tenant in tenants::list_all(&self.store).await? {
            if tenant.suspended_at.is_some() {
                continue;
            }
            match self.make(&tenant).await {
                Ok(()) => made += 1,
                Err(e) => tracing::warn!(tenant = %tenant.slug, error = %e, "making report days ahead failed"),
            }
        }
        Ok(made)
    }

    async fn make(&self, tenant: &tenants::Tenant) -> Result<(), StoreError> {
        let scope = tenants::system_scope_of(&self.store, &tenant.id, SystemActor::Reports).await?;
        let history = History {
            store: &self.store,
            live: &self.live,
        };
        let tz: Tz = tenant.timezone.parse().unwrap_or(Tz::UTC);
        let today = Utc::now().with_timezone(&tz).date_naive();
        let from = (today - chrono::Duration::days(i64::from(self.days))).to_string();
        let to = (today - chrono::Duration::days(1)).to_string();
        history
            .agent_report(
                &scope,
                &AgentReportQuery {
                    from: Some(from.clone()),
                    to: Some(to.clone()),
                    ..AgentReportQuery::default()
                },
            )
            .await?;
        history
            .queue_report(
                &scope,
                &ReportQuery {
                    from: Some(from),
                    to: Some(to),
                    bucket: Some("day".into()),
                    ..ReportQuery::default()
                },
            )
            .await?;
        Ok(())
    }
}
