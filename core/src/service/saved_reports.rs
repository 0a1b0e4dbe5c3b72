//! Saved and scheduled reports. A tenant keeps a report's filters under a name, with its range
//! as a period that moves with time ("yesterday", "last week" …) or fixed dates; a schedule
//! emails it daily or weekly at a local time to the addresses it lists — a summary in the body,
//! the report's CSV export attached — through the mail outbox.
//!
//! A scheduled report runs with what its owner (who saved it) may see when it runs: a
//! supervisor scoped to a team sends their team's figures, and a report whose owner has left
//! the tenant sends nothing (the reason shows on it). Only the owner or a tenant admin changes,
//! sends or deletes a saved report; everyone who may read reports sees the tenant's list.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::{Role, Validation};
use crate::i18n::Locale;
use crate::live::service::LiveService;
use crate::service::agent_reports::{self, AgentReport, AgentReportQuery};
use crate::service::history::{History, local_to_utc};
use crate::service::reports::{self, QueueReport, ReportQuery, weekday};
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::mail_outbox::{self, Attachment, MailStatus, OutgoingMail};
use crate::store::saved_reports::{self, DueReport, SavedReportInput, SavedReportRow};
use crate::store::{Store, StoreError, TenantScope, tenants};

/// The most recipients one schedule has.
pub const MAX_RECIPIENTS: usize = 20;
/// The longest name.
const MAX_NAME: usize = 100;
/// Agents listed in an email's body (the attachment holds every one).
const LISTED_AGENTS: usize = 50;

/// The periods a saved report's range can be: (name, what it covers).
pub const PERIODS: [&str; 9] = [
    "today",
    "yesterday",
    "last_7_days",
    "last_30_days",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "custom",
];

/// The parameters each kind of report takes besides its range.
fn params_of(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "queues" => Some(&["tz", "bucket", "queue"]),
        "agents" => Some(&["tz", "bucket", "team", "agent"]),
        _ => None,
    }
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// When a saved report is sent.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// `daily` or `weekly`.
    pub frequency: String,
    /// Weekly: the day, `monday` … `sunday`.
    #[serde(default)]
    pub weekday: Option<String>,
    /// The local time, `HH:MM`, in the report's time zone (the tenant's unless it names one).
    pub time: String,
    /// Email addresses (at most 20).
    pub recipients: Vec<String>,
}

/// A saved report as a request gives it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SavedReportSet {
    pub name: String,
    /// `queues` or `agents`.
    pub kind: String,
    /// The report's parameters besides its range: `tz`, `bucket`, and `queue` (queue reports)
    /// or `team` and `agent` (agent reports), as the report's API takes them.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// `today`, `yesterday`, `last_7_days`, `last_30_days`, `this_week`, `last_week`,
    /// `this_month`, `last_month`, or `custom` with `from` and `to`.
    pub period: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    /// Left out: not sent by email.
    #[serde(default)]
    pub schedule: Option<Schedule>,
}

/// A saved report as shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SavedReport {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub params: BTreeMap<String, String>,
    pub period: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub schedule: Option<Schedule>,
    /// Who saved it (`user:<id>` or `token:<id>`); a schedule runs with what they may see.
    pub owner: String,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    /// Why the last run sent nothing.
    pub last_error: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The report's query string over the period as of now (for `/reports/{kind}` and
    /// `/api/v1/reports/{kind}`).
    pub query: String,
}

fn ms(at: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(at).single().unwrap_or_default()
}

/// The first and last day `period` covers on `today` (weeks starting on `week_start`); `None`
/// for `custom` and unknown periods.
pub fn period_days(period: &str, today: NaiveDate, week_start: chrono::Weekday) -> Option<(NaiveDate, NaiveDate)> {
    let day = |n: i64| today - chrono::Duration::days(n);
    let back = (7 + today.weekday().num_days_from_monday() - week_start.num_days_from_monday()) % 7;
    let week = day(i64::from(back));
    let month = today.with_day(1)?;
    Some(match period {
        "today" => (today, today),
        "yesterday" => (day(1), day(1)),
        "last_7_days" => (day(7), day(1)),
        "last_30_days" => (day(30), day(1)),
        "this_week" => (week, today),
        "last_week" => (week - chrono::Duration::days(7), week - chrono::Duration::days(1)),
        "this_month" => (month, today),
        "last_month" => (month.checked_sub_months(Months::new(1))?, month.pred_opt()?),
        _ => return None,
    })
}

/// The next time after `after` a schedule sends: `time` on each day (daily) or on `weekday`
/// (weekly) in `tz`. A time that does not exist on a day (the hour clocks skip) sends at the
/// first minute after it; a time that comes twice sends once, the first time.
pub fn next_run(
    weekly: Option<chrono::Weekday>,
    time: NaiveTime,
    tz: Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut date = after.with_timezone(&tz).date_naive();
    for _ in 0..9 {
        if weekly.is_none_or(|w| date.weekday() == w)
            && let Some(at) = local_to_utc(date.and_time(time), tz)
            && at > after
        {
            return Some(at);
        }
        date = date.succ_opt()?;
    }
    None
}

fn parse_time_of_day(raw: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(raw.trim(), "%H:%M").ok()
}

fn weekday_named(name: &str) -> Option<chrono::Weekday> {
    WEEKDAYS
        .iter()
        .position(|d| *d == name)
        .and_then(|i| chrono::Weekday::try_from(i as u8).ok())
}

/// A plausible single address: something@domain.tld without spaces, commas or angle brackets
/// (lettre checks it again when it sends).
fn plausible_email(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    address.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && address.parse::<lettre::message::Mailbox>().is_ok()
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '<' | '>' | ';'))
}

impl SavedReport {
    fn from_row(row: SavedReportRow, now: DateTime<Utc>, tenant_tz: Tz, week_start: chrono::Weekday) -> Self {
        let params: BTreeMap<String, String> = serde_json::from_str(&row.params).unwrap_or_default();
        let schedule = row.frequency.clone().map(|frequency| Schedule {
            frequency,
            weekday: row.weekday.clone(),
            time: row.send_at.clone().unwrap_or_default(),
            recipients: row.recipients.0.clone(),
        });
        let query = report_query_string(Span::of(&row), &params, now, tenant_tz, week_start);
        SavedReport {
            id: row.id,
            name: row.name,
            kind: row.kind,
            params,
            period: row.period,
            from: row.range_from,
            to: row.range_to,
            schedule,
            owner: row.owner,
            next_run_at: row.next_run_at.map(ms),
            last_run_at: row.last_run_at.map(ms),
            last_error: row.last_error,
            version: row.version,
            created_at: ms(row.created_at),
            updated_at: ms(row.updated_at),
            query,
        }
    }
}

/// The zone a saved report's dates and schedule are read in: its own `tz`, else the tenant's.
fn zone_of(params: &BTreeMap<String, String>, tenant_tz: Tz) -> Tz {
    params
        .get("tz")
        .and_then(|tz| tz.parse::<Tz>().ok())
        .unwrap_or(tenant_tz)
}

/// A saved report's range: its period, and the dates of a custom one.
#[derive(Clone, Copy)]
struct Span<'a> {
    period: &'a str,
    from: Option<&'a str>,
    to: Option<&'a str>,
}

impl<'a> Span<'a> {
    fn of(row: &'a SavedReportRow) -> Self {
        Span {
            period: &row.period,
            from: row.range_from.as_deref(),
            to: row.range_to.as_deref(),
        }
    }
}

/// `from` and `to` as the report's query takes them, for the period as of `now`.
fn range_of(
    span: Span<'_>,
    params: &BTreeMap<String, String>,
    now: DateTime<Utc>,
    tenant_tz: Tz,
    week_start: chrono::Weekday,
) -> (Option<String>, Option<String>) {
    let today = now.with_timezone(&zone_of(params, tenant_tz)).date_naive();
    match period_days(span.period, today, week_start) {
        Some((from, to)) => (Some(from.to_string()), Some(to.to_string())),
        None => (span.from.map(str::to_owned), span.to.map(str::to_owned)),
    }
}

fn report_query_string(
    span: Span<'_>,
    params: &BTreeMap<String, String>,
    now: DateTime<Utc>,
    tenant_tz: Tz,
    week_start: chrono::Weekday,
) -> String {
    let (from, to) = range_of(span, params, now, tenant_tz, week_start);
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if let Some(from) = &from {
        pairs.push(("from", from));
    }
    if let Some(to) = &to {
        pairs.push(("to", to));
    }
    for (k, v) in params {
        pairs.push((k, v));
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// The query pairs of a saved report's run: its parameters and its range as of `now`.
fn query_pairs(
    span: Span<'_>,
    params: &BTreeMap<String, String>,
    now: DateTime<Utc>,
    tenant_tz: Tz,
    week_start: chrono::Weekday,
) -> Vec<(String, String)> {
    let (from, to) = range_of(span, params, now, tenant_tz, week_start);
    let mut pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    pairs.extend(from.map(|f| ("from".to_owned(), f)));
    pairs.extend(to.map(|t| ("to".to_owned(), t)));
    pairs
}

/// A report made for a saved report.
pub enum Made {
    Queues(QueueReport),
    Agents(AgentReport),
}

impl Made {
    /// The report's CSV export, as its export endpoint gives it.
    pub fn csv(&self) -> String {
        match self {
            Made::Queues(r) => reports::csv(r),
            Made::Agents(r) => agent_reports::csv(r),
        }
    }
}

/// A report's figures as a few lines of text (an email's body).
pub fn summary(report: &Made, locale: Locale) -> String {
    let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.1} %", v * 100.0));
    let secs = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0} s"));
    let hours = |s: f64| format!("{:.1} h", s / 3600.0);
    let t = |key: &str| locale.text(&format!("reports.{key}"));
    let mut out = String::new();
    match report {
        Made::Queues(r) => {
            if r.queues.is_empty() {
                out.push_str(&t("none"));
                out.push('\n');
            }
            for q in &r.queues {
                let c = &q.total;
                out.push_str(&format!(
                    "{}\n  {}: {}   {}: {}   {}: {}\n  {}: {} ({} {} %)   {}: {}   {}: {}   {}: {}\n\n",
                    q.name,
                    t("offered"),
                    c.offered,
                    t("answered"),
                    c.answered,
                    t("abandoned"),
                    c.abandoned,
                    t("service_level"),
                    pct(c.service_level),
                    t("target"),
                    q.settings.target_pct,
                    t("abandon_rate"),
                    pct(c.abandon_rate),
                    t("asa"),
                    secs(c.asa_s),
                    t("aht"),
                    secs(c.aht_s),
                ));
            }
        }
        Made::Agents(r) => {
            if r.agents.is_empty() {
                out.push_str(&t("no_agents"));
                out.push('\n');
            }
            // Teams first, then agents (the attachment holds every one).
            let rows = r
                .teams
                .iter()
                .map(|team| (team.name.as_str(), &team.total))
                .chain(r.agents.iter().take(LISTED_AGENTS).map(|a| (a.name.as_str(), &a.total)));
            for (name, total) in rows {
                let f = &total.figures;
                out.push_str(&format!(
                    "{name}\n  {}: {}   {}: {}   {}: {}   {}: {}\n\n",
                    t("logged_in"),
                    hours(f.logged_in_s),
                    t("handled"),
                    f.handled,
                    t("aht"),
                    secs(total.aht_s),
                    t("occupancy"),
                    pct(total.occupancy),
                ));
            }
            if r.agents.len() > LISTED_AGENTS {
                out.push_str(
                    &locale
                        .text("saved_reports.more_agents")
                        .replace("{n}", &(r.agents.len() - LISTED_AGENTS).to_string()),
                );
                out.push('\n');
            }
        }
    }
    out
}

/// Who may read reports, with what the service needs for saved ones.
#[derive(Clone)]
pub struct SavedReports<'a> {
    pub history: History<'a>,
    /// Where links in emails point.
    pub public_url: String,
}

impl<'a> SavedReports<'a> {
    fn store(&self) -> &'a Store {
        self.history.store
    }

    async fn tenant_clock(&self, scope: &TenantScope) -> Result<(Tz, chrono::Weekday), StoreError> {
        let tenant = tenants::current(self.store(), scope).await?;
        Ok((tenant.timezone.parse().unwrap_or(Tz::UTC), weekday(&tenant.week_start)))
    }

    pub async fn list(&self, scope: &TenantScope) -> Result<Vec<SavedReport>, StoreError> {
        let (tz, week_start) = self.tenant_clock(scope).await?;
        let now = Utc::now();
        Ok(saved_reports::list(self.store(), scope)
            .await?
            .into_iter()
            .map(|row| SavedReport::from_row(row, now, tz, week_start))
            .collect())
    }

    pub async fn get(&self, scope: &TenantScope, id: &str) -> Result<SavedReport, StoreError> {
        let (tz, week_start) = self.tenant_clock(scope).await?;
        let row = saved_reports::get(self.store(), scope, id).await?;
        Ok(SavedReport::from_row(row, Utc::now(), tz, week_start))
    }

    /// The latest emails a saved report queued, newest first.
    pub async fn mail(&self, scope: &TenantScope, id: &str) -> Result<Vec<MailStatus>, StoreError> {
        saved_reports::get(self.store(), scope, id).await?;
        mail_outbox::for_origin(self.store(), scope, &origin_of(id), 20).await
    }

    /// Checks `input` into what the store keeps. The report's parameters are checked as the
    /// report itself would check them, against what the caller may see.
    /// `owner` is who the report runs as (the caller for a new one); its parameters are checked
    /// against what `owner_view` sees when it can still be looked up.
    async fn checked(
        &self,
        scope: &TenantScope,
        owner: &str,
        owner_view: Option<&TenantScope>,
        input: SavedReportSet,
    ) -> Result<SavedReportInput, StoreError> {
        let mut v = Validation::new();
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
            v.add(
                "name",
                format!("must be 1 to {MAX_NAME} characters without control characters"),
            );
        }
        let kind = input.kind.trim().to_owned();
        let allowed = params_of(&kind);
        if allowed.is_none() {
            v.add("kind", "must be queues or agents");
        }
        let mut params = BTreeMap::new();
        for (key, value) in &input.params {
            let value = value.trim();
            if allowed.is_some_and(|a| !a.contains(&key.as_str())) {
                v.add(
                    &format!("params/{key}"),
                    format!(
                        "is not a parameter of this report (it takes {})",
                        allowed.unwrap_or_default().join(", ")
                    ),
                );
            } else if value.len() > 200 || value.chars().any(char::is_control) {
                v.add(
                    &format!("params/{key}"),
                    "must be up to 200 characters without control characters",
                );
            } else if !value.is_empty() {
                params.insert(key.clone(), value.to_owned());
            }
        }
        let period = input.period.trim().to_owned();
        let custom = period == "custom";
        if !PERIODS.contains(&period.as_str()) {
            v.add("period", format!("must be one of {}", PERIODS.join(", ")));
        }
        let text = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let (range_from, range_to) = (text(&input.from), text(&input.to));
        if custom && (range_from.is_none() || range_to.is_none()) {
            v.add("from", "a custom period needs from and to");
        }
        if !custom && (range_from.is_some() || range_to.is_some()) {
            v.add(
                "from",
                "from and to are for the custom period only; the others move with time",
            );
        }
        let (tenant_tz, week_start) = self.tenant_clock(scope).await?;
        let mut frequency = None;
        let mut weekday_name = None;
        let mut send_at = None;
        let mut recipients = Vec::new();
        let mut next_run_at = None;
        if let Some(schedule) = &input.schedule {
            let weekly = match schedule.frequency.trim() {
                "daily" => None,
                "weekly" => match schedule.weekday.as_deref().map(str::trim).and_then(weekday_named) {
                    Some(day) => Some(day),
                    None => {
                        v.add("schedule/weekday", "a weekly schedule needs a day, monday to sunday");
                        None
                    }
                },
                _ => {
                    v.add("schedule/frequency", "must be daily or weekly");
                    None
                }
            };
            let time = parse_time_of_day(&schedule.time);
            if time.is_none() {
                v.add("schedule/time", "must be a time of day such as 07:00");
            }
            for address in &schedule.recipients {
                let address = address.trim();
                if address.is_empty() {
                    continue;
                }
                if !plausible_email(address) {
                    v.add("schedule/recipients", format!("`{address}` is not an email address"));
                } else if !recipients.iter().any(|r: &String| r.eq_ignore_ascii_case(address)) {
                    recipients.push(address.to_owned());
                }
            }
            if recipients.is_empty() {
                v.add("schedule/recipients", "a schedule needs at least one email address");
            } else if recipients.len() > MAX_RECIPIENTS {
                v.add(
                    "schedule/recipients",
                    format!("at most {MAX_RECIPIENTS} addresses; send to a list address instead"),
                );
            }
            if !owner.starts_with("user:") && !owner.starts_with("token:") {
                v.add(
                    "schedule",
                    "a schedule runs as who saved it: save it signed in or with an API token",
                );
            }
            if let Some(time) = time {
                let tz = zone_of(&params, tenant_tz);
                next_run_at = next_run(weekly, time, tz, Utc::now()).map(|t| t.timestamp_millis());
                frequency = Some(schedule.frequency.trim().to_owned());
                weekday_name = weekly.map(|_| schedule.weekday.clone().unwrap_or_default().trim().to_owned());
                send_at = Some(time.format("%H:%M").to_string());
            }
        }
        v.finish()?;
        // The parameters as the report reads them, over the longest the period grows to (a
        // month's report that fits on the 1st must fit on the 31st too).
        let today = Utc::now().with_timezone(&zone_of(&params, tenant_tz)).date_naive();
        let longest = match period.as_str() {
            "this_week" | "last_week" => Some((today - chrono::Duration::days(6), today)),
            "this_month" | "last_month" => Some((today - chrono::Duration::days(30), today)),
            _ => period_days(&period, today, week_start),
        }
        .map(|(from, to)| (from.to_string(), to.to_string()));
        let span = Span {
            period: "custom",
            from: longest.as_ref().map(|l| l.0.as_str()).or(range_from.as_deref()),
            to: longest.as_ref().map(|l| l.1.as_str()).or(range_to.as_deref()),
        };
        let pairs = query_pairs(span, &params, Utc::now(), tenant_tz, week_start);
        let dir = self.history.directory(owner_view.unwrap_or(scope)).await?;
        let checked = match kind.as_str() {
            "queues" => reports::check(&ReportQuery::from_pairs(&pairs), &dir, Utc::now()),
            _ => agent_reports::check(&AgentReportQuery::from_pairs(&pairs), &dir, Utc::now()),
        };
        match checked {
            Ok(()) => {}
            // A queue (or agent, team) the caller cannot see is a bad parameter here.
            Err(StoreError::NotFound { kind: what }) => {
                let mut v = Validation::new();
                v.add(&format!("params/{what}"), format!("no such {what}"));
                v.finish()?;
            }
            Err(StoreError::Invalid(inner)) => {
                let mut v = Validation::new();
                for e in inner.errors {
                    let field = e.pointer.trim_start_matches('/');
                    let field = if ["from", "to"].contains(&field) {
                        field.to_owned()
                    } else {
                        format!("params/{field}")
                    };
                    v.add(&field, e.detail);
                }
                v.finish()?;
            }
            Err(e) => return Err(e),
        }
        Ok(SavedReportInput {
            name,
            kind,
            params: serde_json::to_string(&params).unwrap_or_else(|_| "{}".into()),
            period,
            range_from,
            range_to,
            frequency,
            weekday: weekday_name,
            send_at,
            recipients,
            next_run_at,
        })
    }

    /// Who may change, send or delete `row`: who saved it, or a tenant admin.
    fn may_manage(scope: &TenantScope, row: &SavedReportRow) -> Result<(), StoreError> {
        if scope.actor() == row.owner || scope.role() == Role::TenantAdmin {
            return Ok(());
        }
        Err(StoreError::Forbidden(
            "only who saved this report or a tenant admin may change, send or delete it".into(),
        ))
    }

    fn audit_event(scope: &TenantScope, action: &str, id: &str) -> AuditEvent {
        AuditEvent::in_tenant(scope, action, Outcome::Success).target("saved_report", id)
    }

    pub async fn create(
        &self,
        scope: &TenantScope,
        origin: &Origin,
        input: SavedReportSet,
    ) -> Result<SavedReport, StoreError> {
        let input = self.checked(scope, scope.actor(), Some(scope), input).await?;
        let row = saved_reports::create(self.store(), scope, scope.actor(), &input).await?;
        let (tz, week_start) = self.tenant_clock(scope).await?;
        let shown = SavedReport::from_row(row, Utc::now(), tz, week_start);
        let event =
            Self::audit_event(scope, "reports.saved.create", &shown.id).change(None, serde_json::to_value(&shown).ok());
        audit::record(self.store(), event, origin).await;
        Ok(shown)
    }

    pub async fn update(
        &self,
        scope: &TenantScope,
        origin: &Origin,
        id: &str,
        version: Option<i64>,
        input: SavedReportSet,
    ) -> Result<SavedReport, StoreError> {
        let before = saved_reports::get(self.store(), scope, id).await?;
        Self::may_manage(scope, &before)?;
        let owner_view = owner_scope(self.store(), scope.tenant(), &before.owner).await?;
        let mut input = self.checked(scope, &before.owner, owner_view.as_ref(), input).await?;
        // A run that is due and not made yet stays due when the schedule's time is unchanged
        // (renaming a report at 07:00:10 must not skip its 07:00 email).
        let same_time = before.frequency == input.frequency
            && before.weekday == input.weekday
            && before.send_at == input.send_at
            && zone_param(&before.params) == zone_param(&input.params);
        if same_time && before.next_run_at.is_some_and(|t| t <= Utc::now().timestamp_millis()) {
            input.next_run_at = before.next_run_at;
        }
        let row = saved_reports::update(self.store(), scope, id, version, &input).await?;
        let (tz, week_start) = self.tenant_clock(scope).await?;
        let now = Utc::now();
        let shown = SavedReport::from_row(row, now, tz, week_start);
        let event = Self::audit_event(scope, "reports.saved.update", id).change(
            serde_json::to_value(SavedReport::from_row(before, now, tz, week_start)).ok(),
            serde_json::to_value(&shown).ok(),
        );
        audit::record(self.store(), event, origin).await;
        Ok(shown)
    }

    pub async fn delete(&self, scope: &TenantScope, origin: &Origin, id: &str) -> Result<(), StoreError> {
        let before = saved_reports::get(self.store(), scope, id).await?;
        Self::may_manage(scope, &before)?;
        saved_reports::delete(self.store(), scope, id).await?;
        let (tz, week_start) = self.tenant_clock(scope).await?;
        let event = Self::audit_event(scope, "reports.saved.delete", id).change(
            serde_json::to_value(SavedReport::from_row(before, Utc::now(), tz, week_start)).ok(),
            None,
        );
        audit::record(self.store(), event, origin).await;
        Ok(())
    }

    /// Makes the report now and queues its email to the schedule's recipients, as the
    /// schedule would (with what the owner may see). Returns how many emails were queued.
    pub async fn send_now(&self, scope: &TenantScope, origin: &Origin, id: &str) -> Result<usize, StoreError> {
        let row = saved_reports::get(self.store(), scope, id).await?;
        Self::may_manage(scope, &row)?;
        if row.recipients.0.is_empty() {
            let mut v = Validation::new();
            v.add(
                "schedule/recipients",
                "this report has no recipients; give it a schedule first",
            );
            v.finish()?;
        }
        let last = mail_outbox::for_origin(self.store(), scope, &origin_of(id), 1).await?;
        if last
            .first()
            .is_some_and(|m| Utc::now().timestamp_millis() - m.created_at < SEND_NOW_GAP_MS)
        {
            return Err(StoreError::LimitReached(format!(
                "this report was sent less than {} seconds ago; wait a moment before sending it again",
                SEND_NOW_GAP_MS / 1000
            )));
        }
        let owner = owner_scope(self.store(), scope.tenant(), &row.owner)
            .await?
            .ok_or_else(|| StoreError::BadRequest(OWNER_GONE.into()))?;
        let queued = self.deliver(&owner, &row, Utc::now()).await?;
        let event = Self::audit_event(scope, "reports.saved.send", id)
            .detail(format!("queued for {}", row.recipients.0.join(", ")));
        audit::record(self.store(), event, origin).await;
        Ok(queued)
    }

    /// Makes the report `row` describes as `owner` sees it at `now`.
    pub async fn make(
        &self,
        owner: &TenantScope,
        row: &SavedReportRow,
        now: DateTime<Utc>,
    ) -> Result<Made, StoreError> {
        let params: BTreeMap<String, String> = serde_json::from_str(&row.params).unwrap_or_default();
        let (tz, week_start) = self.tenant_clock(owner).await?;
        let pairs = query_pairs(Span::of(row), &params, now, tz, week_start);
        Ok(match row.kind.as_str() {
            "queues" => Made::Queues(
                self.history
                    .queue_report(owner, &ReportQuery::from_pairs(&pairs))
                    .await?,
            ),
            _ => Made::Agents(
                self.history
                    .agent_report(owner, &AgentReportQuery::from_pairs(&pairs))
                    .await?,
            ),
        })
    }

    /// Makes the report and queues one email per recipient: the summary in the body, the CSV
    /// attached.
    async fn deliver(
        &self,
        owner: &TenantScope,
        row: &SavedReportRow,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let made = self.make(owner, row, now).await?;
        let locale = owner_locale(self.store(), &row.owner).await;
        let (tz, week_start) = self.tenant_clock(owner).await?;
        let params: BTreeMap<String, String> = serde_json::from_str(&row.params).unwrap_or_default();
        let (from, to) = range_of(Span::of(row), &params, now, tz, week_start);
        let range = match (from, to) {
            (Some(f), Some(t)) if f == t => f,
            (Some(f), Some(t)) => format!("{f} – {t}"),
            _ => String::new(),
        };
        let link = format!(
            "{}/reports/{}?{}",
            self.public_url.trim_end_matches('/'),
            row.kind,
            report_query_string(Span::of(row), &params, now, tz, week_start)
        );
        let subject = locale
            .text("saved_reports.mail_subject")
            .replace("{name}", &row.name)
            .replace("{range}", &range);
        let body = locale
            .text("saved_reports.mail_body")
            .replace("{name}", &row.name)
            .replace("{range}", &range)
            .replace("{summary}", summary(&made, locale).trim_end())
            .replace("{link}", &link);
        let file = format!(
            "monti-{}-{}-{}.csv",
            row.kind,
            owner.tenant_slug(),
            range.replace(" – ", "_to_")
        );
        let attachment = Attachment {
            name: file,
            content_type: "text/csv; charset=utf-8".into(),
            bytes: made.csv().into_bytes(),
        };
        let mails: Vec<OutgoingMail> = row
            .recipients
            .0
            .iter()
            .map(|to| OutgoingMail {
                recipient: to.clone(),
                subject: subject.clone(),
                body: body.clone(),
                attachment: Some(attachment.clone()),
            })
            .collect();
        mail_outbox::enqueue(self.store(), owner, &origin_of(&row.id), &mails).await?;
        Ok(mails.len())
    }

    /// Runs one due schedule. It is claimed for a while first (so one instance makes it, and a
    /// run cut short by a crash is made again once the claim runs out), made as its owner over
    /// the period as of its scheduled time, and moved on to its next time only once its emails
    /// are queued. A run that failed for a passing reason (the database) is tried again every 10
    /// minutes for 6 hours; one that cannot succeed (its owner is gone) moves on. Why it sent
    /// nothing shows on the report.
    pub async fn run_due(&self, due: DueReport) -> Result<bool, StoreError> {
        let now = Utc::now();
        let row = &due.report;
        let scheduled = row
            .next_run_at
            .and_then(|t| Utc.timestamp_millis_opt(t).single())
            .unwrap_or(now);
        let lease = now.timestamp_millis() + CLAIM_MS;
        if !saved_reports::claim(self.store(), &due, lease).await? {
            return Ok(false);
        }
        let params: BTreeMap<String, String> = serde_json::from_str(&row.params).unwrap_or_default();
        let system = tenants::system_scope_of(self.store(), &due.tenant_id, crate::store::SystemActor::Reports).await?;
        let (tenant_tz, _) = self.tenant_clock(&system).await?;
        let regular = match (
            row.send_at.as_deref().and_then(parse_time_of_day),
            row.frequency.as_deref(),
        ) {
            (Some(time), Some("daily" | "weekly")) => {
                let weekly = row.weekday.as_deref().and_then(weekday_named);
                next_run(weekly, time, zone_of(&params, tenant_tz), now).map(|t| t.timestamp_millis())
            }
            _ => None,
        };
        let describe = |e: StoreError| match e {
            StoreError::Invalid(v) => v
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.pointer.trim_start_matches('/'), e.detail))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        let passing = |e: &StoreError| {
            matches!(
                e,
                StoreError::Unavailable(_) | StoreError::Busy(_) | StoreError::Internal(_)
            )
        };
        // (why it failed, whether trying again may help)
        let outcome: Result<usize, (String, bool)> = match owner_scope(self.store(), &due.tenant_id, &row.owner).await {
            Err(e) => Err((e.to_string(), passing(&e))),
            Ok(None) => Err((OWNER_GONE.to_owned(), false)),
            Ok(Some(owner)) => self.deliver(&owner, row, scheduled).await.map_err(|e| {
                let again = passing(&e);
                (describe(e), again)
            }),
        };
        let next = match &outcome {
            Err((_, true)) if now - scheduled < chrono::Duration::hours(6) => Some(now.timestamp_millis() + RETRY_MS),
            _ => regular,
        };
        if let Err((why, _)) = &outcome {
            tracing::warn!(tenant = %due.tenant_slug, report = %row.id, "a scheduled report was not sent: {why}");
        }
        saved_reports::ran(
            self.store(),
            &system,
            &row.id,
            lease,
            next,
            now.timestamp_millis(),
            outcome.as_ref().err().map(|(why, _)| why.as_str()),
        )
        .await?;
        Ok(outcome.is_ok())
    }
}

/// How long a run is left to the instance that claimed it.
const CLAIM_MS: i64 = 15 * 60 * 1000;
/// When a run that failed for a passing reason is tried again.
const RETRY_MS: i64 = 10 * 60 * 1000;
/// The shortest time between two "send now" of one report.
const SEND_NOW_GAP_MS: i64 = 60 * 1000;

/// A saved report's own time zone parameter, from its stored parameters.
fn zone_param(params: &str) -> Option<String> {
    serde_json::from_str::<BTreeMap<String, String>>(params)
        .ok()
        .and_then(|p| p.get("tz").cloned())
}

const OWNER_GONE: &str = "who saved this report can no longer read reports in this tenant (removed, disabled, a revoked or expired token, or a role without reports); a tenant admin can save it again as someone who can";

fn origin_of(id: &str) -> String {
    format!("saved_report:{id}")
}

/// The owner's scope, when they may still read reports.
async fn owner_scope(
    store: &Store,
    tenant: &crate::store::TenantId,
    owner: &str,
) -> Result<Option<TenantScope>, StoreError> {
    Ok(crate::auth::acting_as(store, tenant, owner)
        .await?
        .filter(|scope| crate::auth::permits(scope.role(), crate::auth::Action::Read, crate::auth::Area::History)))
}

/// The language of who saved a report (English for a token).
async fn owner_locale(store: &Store, owner: &str) -> Locale {
    match owner.strip_prefix("user:") {
        Some(user) => crate::store::accounts::by_id(store, user)
            .await
            .ok()
            .and_then(|a| a.locale)
            .and_then(|code| Locale::parse(&code))
            .unwrap_or_default(),
        None => Locale::default(),
    }
}

/// Sends scheduled reports when they are due: every 30 seconds it runs what is due, one report
/// after the other (a month's agent report can take a while to make the first time).
pub struct Scheduler {
    store: Store,
    live: Arc<LiveService>,
    public_url: String,
}

impl Scheduler {
    pub fn new(store: Store, live: Arc<LiveService>, public_url: String) -> Arc<Self> {
        Arc::new(Self {
            store,
            live,
            public_url,
        })
    }

    pub fn start(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = self.run_due().await {
                    tracing::warn!(error = %e, "running scheduled reports failed");
                }
            }
        });
    }

    /// Runs every schedule due now; returns how many sent.
    pub async fn run_due(&self) -> Result<usize, StoreError> {
        let service = SavedReports {
            history: History {
                store: &self.store,
                live: &self.live,
            },
            public_url: self.public_url.clone(),
        };
        let mut sent = 0;
        for due in saved_reports::due(&self.store, Utc::now().timestamp_millis(), 50).await? {
            let (tenant, report) = (due.tenant_slug.clone(), due.report.id.clone());
            match service.run_due(due).await {
                Ok(true) => sent += 1,
                Ok(false) => {}
                // One report's trouble does not hold up the others.
                Err(e) => tracing::warn!(%tenant, %report, error = %e, "a scheduled report could not be run"),
            }
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn periods_cover_whole_days_and_honour_the_week_start() {
        let today = date("2026-12-03"); // a Thursday
        let days = |p: &str, w: Weekday| period_days(p, today, w).map(|(a, b)| (a.to_string(), b.to_string()));
        let pair = |a: &str, b: &str| Some((a.to_owned(), b.to_owned()));
        assert_eq!(days("today", Weekday::Mon), pair("2026-12-03", "2026-12-03"));
        assert_eq!(days("yesterday", Weekday::Mon), pair("2026-12-02", "2026-12-02"));
        assert_eq!(days("last_7_days", Weekday::Mon), pair("2026-11-26", "2026-12-02"));
        assert_eq!(days("last_30_days", Weekday::Mon), pair("2026-11-03", "2026-12-02"));
        assert_eq!(days("this_week", Weekday::Mon), pair("2026-11-30", "2026-12-03"));
        assert_eq!(days("this_week", Weekday::Sun), pair("2026-11-29", "2026-12-03"));
        assert_eq!(days("this_week", Weekday::Thu), pair("2026-12-03", "2026-12-03"));
        assert_eq!(days("last_week", Weekday::Mon), pair("2026-11-23", "2026-11-29"));
        assert_eq!(days("last_week", Weekday::Sat), pair("2026-11-21", "2026-11-27"));
        assert_eq!(days("this_month", Weekday::Mon), pair("2026-12-01", "2026-12-03"));
        assert_eq!(days("last_month", Weekday::Mon), pair("2026-11-01", "2026-11-30"));
        let jan = period_days("last_month", date("2027-01-15"), Weekday::Mon).unwrap();
        assert_eq!(
            (jan.0.to_string(), jan.1.to_string()),
            ("2026-12-01".into(), "2026-12-31".into())
        );
        assert_eq!(days("custom", Weekday::Mon), None);
    }

    #[test]
    fn schedules_run_at_local_time_across_daylight_saving() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let seven = NaiveTime::from_hms_opt(7, 0, 0).unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // Before 07:00 local: today; after: tomorrow.
        assert_eq!(
            next_run(None, seven, berlin, at("2026-12-03T05:00:00Z")),
            Some(at("2026-12-03T06:00:00Z"))
        );
        assert_eq!(
            next_run(None, seven, berlin, at("2026-12-03T06:00:00Z")),
            Some(at("2026-12-04T06:00:00Z"))
        );
        // Summer time starts on 2027-03-28: 07:00 is 05:00 UTC from then on.
        assert_eq!(
            next_run(None, seven, berlin, at("2027-03-27T06:30:00Z")),
            Some(at("2027-03-28T05:00:00Z"))
        );
        // 02:30 does not exist on that day: the first minute after the gap.
        let half_two = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        assert_eq!(
            next_run(None, half_two, berlin, at("2027-03-28T00:00:00Z")),
            Some(at("2027-03-28T01:00:00Z"))
        );
        // 02:30 comes twice on 2027-10-31: once, the first time.
        let first = next_run(None, half_two, berlin, at("2027-10-30T23:00:00Z")).unwrap();
        assert_eq!(first, at("2027-10-31T00:30:00Z"));
        assert_eq!(
            next_run(None, half_two, berlin, first),
            Some(at("2027-11-01T01:30:00Z"))
        );
        // Weekly on Monday from a Thursday.
        assert_eq!(
            next_run(Some(Weekday::Mon), seven, berlin, at("2026-12-03T12:00:00Z")),
            Some(at("2026-12-07T06:00:00Z"))
        );
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            next_run(Some(Weekday::Mon), seven, ny, at("2026-12-07T11:59:00Z")),
            Some(at("2026-12-07T12:00:00Z"))
        );
    }

    #[test]
    fn recipients_must_be_single_addresses() {
        assert!(plausible_email("ops@example.com"));
        assert!(plausible_email("first.last+reports@sub.example.co.uk"));
        for bad in [
            "",
            "ops",
            "ops@localhost",
            "a@b.com, c@d.com",
            "Ops <ops@example.com>",
            "ops@example.com\r\nBcc: x@y.z",
            "ops@.com",
        ] {
            assert!(!plausible_email(bad), "{bad:?}");
        }
    }
}
