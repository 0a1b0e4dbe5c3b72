//! Agent reports: per agent over a range, logged-in time, time in each state and each pause
//! reason, calls handled with talk, hold and wrap-up time, AHT, occupancy and missed rings; per
//! team the sums of its agents.
//!
//! States are walked from the events as the live board applies them (`Event::agent_transition`):
//! an agent is in a state from the event that put it there until the next one. Calls handled are
//! the history's calls the agent handled whose handling ended in the range, so the list behind a
//! cell (`by=ended`) holds exactly that many calls.
//!
//! Whole local days come from kept summaries (`store::agent_reports`), made again when the days
//! they read changed; finer buckets (15 minutes to an hour) are walked from the events of one
//! agent.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::Validation;
use crate::domain::events::{AgentState, Event};
use crate::kpi;
use crate::service::history::{Directory, History, csv_cell, local_to_utc, time_range};
use crate::service::reports::{
    Bucket, MAX_POINTS, MAX_REPORT_DAYS, boundaries, known_pairs, label, query_string, weekday,
};
use crate::store::agent_reports::{self, DAY_MS};
use crate::store::{StoreError, TenantScope, tenants};

/// How far back an agent's state at the start of a range is looked for.
pub const STANDING_DAYS: i64 = 8;

/// An agent report's parameters as a request gives them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentReportQuery {
    /// As the call history's `from` (default: today's start).
    pub from: Option<String>,
    /// As the call history's `to` (default: the end of today).
    pub to: Option<String>,
    /// An IANA time zone (default: the tenant's).
    pub tz: Option<String>,
    /// `day` (default), `week`, `month`; with `agent`, also `15m`, `30m`, `1h`.
    pub bucket: Option<String>,
    /// A team id: its agents only.
    pub team: Option<String>,
    /// An agent id: that agent's points by bucket.
    pub agent: Option<String>,
}

impl AgentReportQuery {
    /// From a page's query string, parameters it does not know left out.
    pub fn from_pairs(pairs: &[(String, String)]) -> AgentReportQuery {
        known_pairs(pairs, &["from", "to", "tz", "bucket", "team", "agent"])
    }

    /// The parameters as a query string (for links and exports).
    pub fn query_string(&self) -> String {
        query_string(&[
            ("from", &self.from),
            ("to", &self.to),
            ("tz", &self.tz),
            ("bucket", &self.bucket),
            ("team", &self.team),
            ("agent", &self.agent),
        ])
    }
}

/// What an agent did over some time: the sums a report adds up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentFigures {
    /// Time in any state but logged out.
    pub logged_in_s: f64,
    /// Seconds per state (`available`, `ringing`, `on_queue_call`, `on_direct_call`, `wrap_up`,
    /// `paused`, `unavailable`).
    pub states_s: BTreeMap<String, f64>,
    /// Seconds paused per reason (`""` without one).
    pub pauses_s: BTreeMap<String, f64>,
    /// Calls whose handling ended here.
    pub handled: u64,
    pub talk_s: f64,
    pub hold_s: f64,
    pub wrap_s: f64,
    /// Rings that ended in anything but a call.
    pub missed_rings: u64,
}

impl AgentFigures {
    fn add(&mut self, other: &AgentFigures) {
        self.logged_in_s += other.logged_in_s;
        for (state, s) in &other.states_s {
            *self.states_s.entry(state.clone()).or_default() += s;
        }
        for (reason, s) in &other.pauses_s {
            *self.pauses_s.entry(reason.clone()).or_default() += s;
        }
        self.handled += other.handled;
        self.talk_s += other.talk_s;
        self.hold_s += other.hold_s;
        self.wrap_s += other.wrap_s;
        self.missed_rings += other.missed_rings;
    }

    fn spend(&mut self, state: AgentState, reason: Option<&str>, seconds: f64) {
        if seconds <= 0.0 || state == AgentState::LoggedOut {
            return;
        }
        self.logged_in_s += seconds;
        *self.states_s.entry(state.as_str().to_owned()).or_default() += seconds;
        if state == AgentState::Paused {
            *self.pauses_s.entry(reason.unwrap_or_default().to_owned()).or_default() += seconds;
        }
    }

    fn state_s(&self, state: AgentState) -> f64 {
        self.states_s.get(state.as_str()).copied().unwrap_or(0.0)
    }
}

/// An agent's figures over a bucket or the range, with what follows from them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentPoint {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The start in the report's time zone, as a person reads it.
    pub label: String,
    #[serde(flatten)]
    pub figures: AgentFigures,
    /// (talk + hold + wrap-up) / calls handled.
    pub aht_s: Option<f64>,
    /// Time on calls and in wrap-up / (that + time available), as `kpi::occupancy`.
    pub occupancy: Option<f64>,
    /// The `/api/v1/calls` query of the calls handled (`by=ended`); empty for a team.
    pub calls: String,
}

/// One agent over the range.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentSeries {
    pub id: String,
    pub name: String,
    /// The team's id and name.
    pub team: Option<String>,
    pub team_name: Option<String>,
    /// The whole range as one point.
    pub total: AgentPoint,
    /// By bucket; only when the report is for one agent.
    pub points: Vec<AgentPoint>,
}

/// A team's agents added up.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TeamTotal {
    pub id: String,
    pub name: String,
    pub agents: usize,
    pub total: AgentPoint,
}

/// An agent report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub tz: String,
    pub bucket: String,
    pub agents: Vec<AgentSeries>,
    pub teams: Vec<TeamTotal>,
}

/// Where an agent stands: its state, its pause reason, and when an event last said so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stand {
    state: AgentState,
    reason: Option<String>,
    said_at: i64,
}

/// Where each agent stands, by agent id.
type Standing = HashMap<String, Stand>;

/// A kept day: each agent's figures and where it stood at the day's end.
#[derive(Debug, Default, Serialize, Deserialize)]
struct DaySummary {
    figures: BTreeMap<String, AgentFigures>,
    end: BTreeMap<String, Stand>,
}

/// Where agents stand at `at_ms` going on from `standing` (where they stood the day before):
/// only what an event said in the [`STANDING_DAYS`] before, as [`standing_at`] reads it.
fn carried(standing: Standing, at_ms: i64) -> Standing {
    standing
        .into_iter()
        .filter(|(_, stand)| stand.said_at >= at_ms - STANDING_DAYS * DAY_MS)
        .collect()
}

/// Walks agents through `events` (in time order) from `standing`, adding the time between
/// `edges[0]` and the last edge (but not past `now_ms`) to the bucket it falls in. `agent_of`
/// names the agent an event's name stands for (`None`: not one reported). Returns the figures
/// per agent and bucket, and where each agent stood at the end.
fn walk(
    standing: Standing,
    events: &[Event],
    edges: &[i64],
    now_ms: i64,
    agent_of: &dyn Fn(&str) -> Option<String>,
) -> (HashMap<String, Vec<AgentFigures>>, Standing) {
    let buckets = edges.len().saturating_sub(1);
    let (start, end) = (edges[0], edges[buckets].min(now_ms).max(edges[0]));
    let mut figures: HashMap<String, Vec<AgentFigures>> = HashMap::new();
    // Where each agent stands, and since when within the range.
    let mut at: HashMap<String, (Stand, i64)> = standing
        .into_iter()
        .map(|(agent, stand)| (agent, (stand, start)))
        .collect();
    let bucket_of = |t: i64| {
        edges
            .partition_point(|e| *e <= t)
            .saturating_sub(1)
            .min(buckets.saturating_sub(1))
    };
    let spend = |figures: &mut HashMap<String, Vec<AgentFigures>>, agent: &str, stand: &Stand, from: i64, to: i64| {
        if to <= from || stand.state == AgentState::LoggedOut {
            return;
        }
        let row = figures
            .entry(agent.to_owned())
            .or_insert_with(|| vec![AgentFigures::default(); buckets]);
        let mut b = bucket_of(from);
        let mut t = from;
        while t < to && b < buckets {
            let upto = edges[b + 1].min(to);
            row[b].spend(stand.state, stand.reason.as_deref(), (upto - t) as f64 / 1000.0);
            t = upto;
            b += 1;
        }
    };
    let logged_out = Stand {
        state: AgentState::LoggedOut,
        reason: None,
        said_at: i64::MIN,
    };
    for event in events {
        let Some((name, state, reason)) = event.agent_transition() else {
            continue;
        };
        let Some(agent) = agent_of(name) else { continue };
        let t = event.at_ms().clamp(start, end);
        let entry = at.entry(agent.clone()).or_insert((logged_out.clone(), start));
        if entry.0.state == state && entry.0.reason.as_deref() == reason {
            entry.0.said_at = event.at_ms();
            continue;
        }
        let now_standing = Stand {
            state,
            reason: reason.map(str::to_owned),
            said_at: event.at_ms(),
        };
        let (previous, since) = std::mem::replace(entry, (now_standing, t));
        spend(&mut figures, &agent, &previous, since, t);
        if previous.state == AgentState::Ringing && !matches!(state, AgentState::OnQueueCall | AgentState::OnDirectCall)
        {
            let row = figures
                .entry(agent.clone())
                .or_insert_with(|| vec![AgentFigures::default(); buckets]);
            if buckets > 0 && event.at_ms() >= start && event.at_ms() < edges[buckets] {
                row[bucket_of(event.at_ms())].missed_rings += 1;
            }
        }
    }
    let mut standing = Standing::new();
    for (agent, (stand, since)) in at {
        spend(&mut figures, &agent, &stand, since, end);
        standing.insert(agent, stand);
    }
    (figures, standing)
}

/// Where each agent stood at `at_ms`, from the last event before it that moved it (looked for
/// [`STANDING_DAYS`] back).
async fn standing_at(
    history: &History<'_>,
    scope: &TenantScope,
    dir: &Directory,
    at_ms: i64,
) -> Result<Standing, StoreError> {
    let names = dir.agent_names_all();
    let events = agent_reports::standing(history.store, scope, &names, at_ms - STANDING_DAYS * DAY_MS, at_ms).await?;
    let mut out = Standing::new();
    for event in events {
        let Some((name, state, reason)) = event.agent_transition() else {
            continue;
        };
        let Some(agent) = dir.agent(name).map(|a| a.id.clone()) else {
            continue;
        };
        // An agent known by several names stands where its latest event put it.
        if out.get(&agent).is_some_and(|s| s.said_at > event.at_ms()) {
            continue;
        }
        out.insert(
            agent,
            Stand {
                state,
                reason: reason.map(str::to_owned),
                said_at: event.at_ms(),
            },
        );
    }
    Ok(out)
}

/// Adds the calls handled (ended in a bucket) to `figures`.
fn add_handled(
    figures: &mut HashMap<String, Vec<AgentFigures>>,
    calls: Vec<(String, i64, f64, f64, f64)>,
    edges: &[i64],
    dir: &Directory,
) {
    let buckets = edges.len().saturating_sub(1);
    for (name, ended_at, talk, hold, wrap) in calls {
        let Some(agent) = dir.agent(&name).map(|a| a.id.clone()) else {
            continue;
        };
        let b = edges.partition_point(|e| *e <= ended_at);
        if b == 0 || b > buckets {
            continue;
        }
        let row = figures
            .entry(agent)
            .or_insert_with(|| vec![AgentFigures::default(); buckets]);
        let f = &mut row[b - 1];
        f.handled += 1;
        f.talk_s += talk;
        f.hold_s += hold;
        f.wrap_s += wrap;
    }
}

/// The versions a local day's summary depends on, as kept.
fn version_key(versions: &BTreeMap<i64, i64>, start_ms: i64, end_ms: i64) -> String {
    let first = start_ms.div_euclid(DAY_MS) - STANDING_DAYS;
    let last = (end_ms - 1).div_euclid(DAY_MS);
    (first..=last)
        .map(|d| format!("{d}:{}", versions.get(&d).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A checked agent report query.
struct Resolved {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: Tz,
    bucket: Bucket,
    /// (id, name, team) of the agents reported.
    agents: Vec<(String, String, Option<String>)>,
    single: bool,
}

/// Checks `query` as a report would (a saved report's parameters before they are kept).
pub(crate) fn check(query: &AgentReportQuery, dir: &Directory, now: DateTime<Utc>) -> Result<(), StoreError> {
    resolve(query, dir, now).map(drop)
}

fn resolve(query: &AgentReportQuery, dir: &Directory, now: DateTime<Utc>) -> Result<Resolved, StoreError> {
    let mut v = Validation::new();
    let (tz, from, to) = time_range(&mut v, &query.tz, &query.from, &query.to, dir.tz, now);
    if to <= from {
        v.add("to", "must be after from");
    } else if (to - from).num_days() > MAX_REPORT_DAYS {
        v.add("to", format!("a report covers at most {MAX_REPORT_DAYS} days"));
    }
    let agent = query.agent.as_deref().map(str::trim).filter(|a| !a.is_empty());
    let team = query.team.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let bucket = match query.bucket.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        None => Bucket::Day,
        Some(b) => match Bucket::ALL.iter().find(|(s, _)| *s == b).map(|(_, b)| *b) {
            Some(bucket @ (Bucket::Quarter | Bucket::HalfHour | Bucket::Hour)) if agent.is_none() => {
                v.add(
                    "bucket",
                    "15m, 30m and 1h are for one agent (add agent); for all agents use day, week or month",
                );
                bucket
            }
            Some(bucket) => bucket,
            None => {
                v.add("bucket", "must be one of 15m, 30m, 1h, day, week, month");
                Bucket::Day
            }
        },
    };
    if let Some(minutes) = bucket.minutes()
        && to > from
        && (to - from).num_minutes() / minutes > MAX_POINTS as i64
    {
        v.add(
            "bucket",
            format!("more than {MAX_POINTS} points; choose a larger bucket or a shorter range"),
        );
    }
    v.finish()?;
    if let Some(team) = team
        && !dir.team_visible(team)
    {
        return Err(StoreError::NotFound { kind: "team" });
    }
    let agents: Vec<(String, String, Option<String>)> = dir
        .visible_agent_teams()
        .into_iter()
        .filter(|(named, t)| agent.is_none_or(|a| named.id == a) && team.is_none_or(|team| *t == Some(team)))
        .map(|(named, t)| (named.id.clone(), named.name.clone(), t.map(str::to_owned)))
        .collect();
    if agent.is_some() && agents.is_empty() {
        return Err(StoreError::NotFound { kind: "agent" });
    }
    Ok(Resolved {
        from,
        to,
        tz,
        bucket,
        agents,
        single: agent.is_some(),
    })
}

/// The drill-down: the calls an agent handled in `start..end`.
fn calls_query(agent: &str, start: DateTime<Utc>, end: DateTime<Utc>, tz: Tz) -> String {
    let pairs = [
        ("agent", agent.to_owned()),
        ("from", start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ("to", end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ("tz", tz.name().to_owned()),
        ("by", "ended".to_owned()),
    ];
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

fn point(
    figures: AgentFigures,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    label: String,
    calls: String,
) -> AgentPoint {
    let handling = figures.state_s(AgentState::OnQueueCall)
        + figures.state_s(AgentState::OnDirectCall)
        + figures.state_s(AgentState::WrapUp);
    let handled_s = figures.talk_s + figures.hold_s + figures.wrap_s;
    AgentPoint {
        start,
        end,
        label,
        aht_s: (figures.handled > 0).then(|| handled_s / figures.handled as f64),
        occupancy: kpi::occupancy(handling, figures.state_s(AgentState::Available)),
        figures,
        calls,
    }
}

impl History<'_> {
    /// The agent report `query` asks for.
    pub async fn agent_report(&self, scope: &TenantScope, query: &AgentReportQuery) -> Result<AgentReport, StoreError> {
        let dir = self.directory(scope).await?;
        let now = Utc::now();
        let r = resolve(query, &dir, now)?;
        let tenant = tenants::current(self.store, scope).await?;
        let edges = boundaries(r.from, r.to, r.tz, r.bucket, weekday(&tenant.week_start));
        let edges_ms: Vec<i64> = edges.iter().map(DateTime::timestamp_millis).collect();
        let buckets = edges.len() - 1;
        // Per agent id and bucket.
        let figures: HashMap<String, Vec<AgentFigures>> = if r.bucket.minutes().is_some() {
            self.walked(scope, &dir, &r, &edges_ms, now).await?
        } else {
            let days = self.local_days(scope, &dir, r.tz, edges[0], r.to, now).await?;
            let mut out: HashMap<String, Vec<AgentFigures>> = HashMap::new();
            for (day_start, summary) in days {
                let b = edges_ms
                    .partition_point(|e| *e <= day_start)
                    .saturating_sub(1)
                    .min(buckets - 1);
                for (agent, f) in summary.figures {
                    out.entry(agent)
                        .or_insert_with(|| vec![AgentFigures::default(); buckets])[b]
                        .add(&f);
                }
            }
            out
        };
        let team_names: HashMap<String, String> = crate::store::resource::list::<crate::store::entities::teams::Team>(
            self.store,
            scope,
            &crate::store::ListParams(vec![("limit".into(), "500".into())]),
        )
        .await?
        .items
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
        let mut agents: Vec<AgentSeries> = Vec::with_capacity(r.agents.len());
        for (id, name, team) in &r.agents {
            let row = figures.get(id);
            let points: Vec<AgentPoint> = (0..buckets)
                .map(|b| {
                    point(
                        row.map(|r| r[b].clone()).unwrap_or_default(),
                        (edges[b], edges[b + 1]),
                        label(edges[b], r.tz, r.bucket),
                        calls_query(id, edges[b], edges[b + 1], r.tz),
                    )
                })
                .collect();
            let mut total = AgentFigures::default();
            points.iter().for_each(|p| total.add(&p.figures));
            agents.push(AgentSeries {
                id: id.clone(),
                name: name.clone(),
                team_name: team.as_ref().and_then(|t| team_names.get(t).cloned()),
                team: team.clone(),
                total: point(
                    total,
                    (edges[0], r.to),
                    label(edges[0], r.tz, r.bucket),
                    calls_query(id, edges[0], r.to, r.tz),
                ),
                points: if r.single { points } else { Vec::new() },
            });
        }
        agents.sort_by_key(|a| a.name.to_lowercase());
        let mut teams: BTreeMap<String, (usize, AgentFigures)> = BTreeMap::new();
        for a in &agents {
            if let Some(team) = &a.team {
                let entry = teams.entry(team.clone()).or_default();
                entry.0 += 1;
                entry.1.add(&a.total.figures);
            }
        }
        let teams = teams
            .into_iter()
            .map(|(id, (count, f))| TeamTotal {
                name: team_names.get(&id).cloned().unwrap_or_else(|| id.clone()),
                id,
                agents: count,
                total: point(f, (edges[0], r.to), label(edges[0], r.tz, r.bucket), String::new()),
            })
            .collect();
        Ok(AgentReport {
            from: edges[0],
            to: r.to,
            tz: r.tz.name().to_owned(),
            bucket: r.bucket.as_str().to_owned(),
            agents,
            teams,
        })
    }

    /// Finer buckets for one agent, walked from its events.
    async fn walked(
        &self,
        scope: &TenantScope,
        dir: &Directory,
        r: &Resolved,
        edges: &[i64],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, Vec<AgentFigures>>, StoreError> {
        let (from, to) = (edges[0], *edges.last().unwrap_or(&edges[0]));
        let ids: Vec<&str> = r.agents.iter().map(|a| a.0.as_str()).collect();
        let names: Vec<String> = ids.iter().flat_map(|id| dir.names_of(id)).collect();
        let standing = standing_at(self, scope, dir, from).await?;
        let standing: Standing = standing
            .into_iter()
            .filter(|(a, _)| ids.contains(&a.as_str()))
            .collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut events =
            crate::store::events::for_agent_between(self.store, scope, &name_refs, from, to - 1, i64::MAX).await?;
        events.retain(|e| e.at_ms() < to);
        let agent_of = |name: &str| {
            dir.agent(name)
                .map(|a| a.id.clone())
                .filter(|id| ids.contains(&id.as_str()))
        };
        let (mut figures, _) = walk(standing, &events, edges, now.timestamp_millis(), &agent_of);
        let calls = agent_reports::handled(self.store, scope, &names, from, to).await?;
        add_handled(&mut figures, calls, edges, dir);
        Ok(figures)
    }

    /// The summaries of the local days that `from..to` touches, in zone `tz`: kept ones where
    /// current, the others made (consecutive days walked on from where the day before ended).
    async fn local_days(
        &self,
        scope: &TenantScope,
        dir: &Directory,
        tz: Tz,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, DaySummary)>, StoreError> {
        let first: NaiveDate = from.with_timezone(&tz).date_naive();
        let last: NaiveDate = (to - Duration::milliseconds(1)).with_timezone(&tz).date_naive();
        let mut days: Vec<(NaiveDate, i64, i64)> = Vec::new();
        let mut date = first;
        while date <= last {
            let start = date.and_hms_opt(0, 0, 0).and_then(|m| local_to_utc(m, tz));
            let end = date
                .succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .and_then(|m| local_to_utc(m, tz));
            if let (Some(start), Some(end)) = (start, end) {
                days.push((date, start.timestamp_millis(), end.timestamp_millis()));
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        let Some(&(_, range_start, _)) = days.first() else {
            return Ok(Vec::new());
        };
        let range_end = days.last().map_or(range_start, |d| d.2);
        let versions = agent_reports::versions(
            self.store,
            scope,
            range_start.div_euclid(DAY_MS) - STANDING_DAYS,
            (range_end - 1).div_euclid(DAY_MS),
        )
        .await?;
        let names: Vec<String> = days.iter().map(|d| d.0.to_string()).collect();
        let mut kept = agent_reports::kept(self.store, scope, tz.name(), &names).await?;
        let now_ms = now.timestamp_millis();
        let (to_ms, directory) = (to.timestamp_millis(), dir.fingerprint());
        let all_names = dir.agent_names_all();
        let mut out = Vec::with_capacity(days.len());
        // Where agents stood at the end of the day before, while it is known.
        let mut before: Option<Standing> = None;
        for (date, start, end) in days {
            // A summary holds whole days that are over; the part of a day a range ends inside
            // (or today) is walked each time.
            let until = end.min(to_ms);
            let whole = until == end && end <= now_ms;
            let key = format!("{directory}|{}", version_key(&versions, start, end));
            let current = kept
                .remove(&date.to_string())
                .filter(|(made_at, _)| whole && *made_at == key)
                .and_then(|(_, summary)| serde_json::from_str::<DaySummary>(&summary).ok());
            let summary = match current {
                Some(summary) => summary,
                None => {
                    let standing = match before.take() {
                        Some(standing) => carried(standing, start),
                        None => standing_at(self, scope, dir, start).await?,
                    };
                    let events = agent_reports::transitions(self.store, scope, start, until).await?;
                    let agent_of = |name: &str| dir.agent(name).map(|a| a.id.clone());
                    let (mut figures, end_standing) = walk(standing, &events, &[start, until], now_ms, &agent_of);
                    let calls = agent_reports::handled(self.store, scope, &all_names, start, until).await?;
                    add_handled(&mut figures, calls, &[start, until], dir);
                    let summary = DaySummary {
                        figures: figures
                            .into_iter()
                            .filter_map(|(agent, mut f)| f.pop().map(|f| (agent, f)))
                            .collect(),
                        end: end_standing.into_iter().collect(),
                    };
                    if whole && let Ok(json) = serde_json::to_string(&summary) {
                        agent_reports::keep(self.store, scope, tz.name(), &date.to_string(), &key, &json).await?;
                    }
                    summary
                }
            };
            before = Some(summary.end.clone().into_iter().collect());
            out.push((start, summary));
        }
        Ok(out)
    }
}

/// The report's agents as CSV: a line per agent (and, for one agent, per point), the same
/// numbers as the report, times in its zone.
pub fn csv(report: &AgentReport) -> String {
    let states = [
        AgentState::Available,
        AgentState::Ringing,
        AgentState::OnQueueCall,
        AgentState::OnDirectCall,
        AgentState::WrapUp,
        AgentState::Paused,
        AgentState::Unavailable,
    ];
    let mut out = String::from("agent,team,start,end,logged_in_s");
    for s in states {
        out.push_str(&format!(",{}_s", s.as_str()));
    }
    out.push_str(",handled,talk_s,hold_s,wrap_s,aht_s,occupancy,missed_rings,pauses\r\n");
    let tz: Tz = report.tz.parse().unwrap_or(Tz::UTC);
    let time = |t: &DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%dT%H:%M:%S%:z").to_string();
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for a in &report.agents {
        let rows = if a.points.is_empty() {
            std::slice::from_ref(&a.total)
        } else {
            a.points.as_slice()
        };
        for p in rows {
            let f = &p.figures;
            let pauses: Vec<String> = f.pauses_s.iter().map(|(r, s)| format!("{r}={s}")).collect();
            let cell = |value: &str| {
                let mut out = String::new();
                csv_cell(&mut out, value);
                out
            };
            let mut line = vec![
                cell(&a.name),
                cell(a.team_name.as_deref().unwrap_or_default()),
                time(&p.start),
                time(&p.end),
                f.logged_in_s.to_string(),
            ];
            line.extend(states.iter().map(|s| f.state_s(*s).to_string()));
            line.extend([
                f.handled.to_string(),
                f.talk_s.to_string(),
                f.hold_s.to_string(),
                f.wrap_s.to_string(),
                opt(p.aht_s),
                opt(p.occupancy),
                f.missed_rings.to_string(),
                cell(&pauses.join(" ")),
            ]);
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::EventBody;
    use chrono::TimeZone as _;

    fn event(at_s: i64, body: EventBody) -> Event {
        Event {
            v: 1,
            id: format!("e{at_s}"),
            source: "t".into(),
            at: Utc.timestamp_opt(at_s, 0).single().unwrap(),
            body,
        }
    }

    fn state(agent: &str, state: AgentState, reason: Option<&str>) -> EventBody {
        EventBody::AgentState {
            agent: agent.into(),
            state,
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn states_pauses_and_missed_rings_are_walked_into_their_buckets() {
        let events = vec![
            event(100, EventBody::AgentLogin { agent: "a".into() }),
            event(200, state("a", AgentState::Ringing, None)),
            // The ring ends without a call: missed.
            event(210, state("a", AgentState::Available, None)),
            event(300, state("a", AgentState::Ringing, None)),
            event(
                305,
                EventBody::CallerAnswer {
                    queue: "q".into(),
                    call: "c".into(),
                    agent: "a".into(),
                    wait_s: 5.0,
                },
            ),
            event(
                405,
                EventBody::CallEnd {
                    call: "c".into(),
                    agent: "a".into(),
                    queue: Some("q".into()),
                    talk_s: 100.0,
                    hold_s: 0.0,
                    wrap_s: None,
                },
            ),
            event(425, state("a", AgentState::Paused, Some("lunch"))),
            event(1025, state("a", AgentState::Paused, Some("coaching"))),
            event(1100, EventBody::AgentLogout { agent: "a".into() }),
            event(1150, state("stranger", AgentState::Available, None)),
        ];
        let edges = [0, 600_000, 1_200_000];
        let agent_of = |name: &str| (name == "a").then(|| "A".to_owned());
        let (figures, end) = walk(Standing::new(), &events, &edges, i64::MAX, &agent_of);
        let a = &figures["A"];
        // 100 s to 600 s: available 100+90+… ; the sums hold whatever the split.
        let logged: f64 = a.iter().map(|f| f.logged_in_s).sum();
        assert_eq!(logged, 1000.0);
        assert_eq!(a[0].missed_rings, 1);
        assert_eq!(a[0].state_s(AgentState::Ringing), 15.0);
        assert_eq!(a[0].state_s(AgentState::OnQueueCall), 100.0);
        assert_eq!(a[0].state_s(AgentState::WrapUp), 20.0);
        assert_eq!(a[0].pauses_s["lunch"], 175.0);
        assert_eq!(a[1].pauses_s["lunch"], 425.0);
        assert_eq!(a[1].pauses_s["coaching"], 75.0);
        assert_eq!(end["A"].state, AgentState::LoggedOut);
        assert_eq!(end["A"].said_at, 1_100_000);
        // Carried to a day more than the standing days later, nothing is said of A any more.
        assert!(carried(end.clone(), 1_100_000 + STANDING_DAYS * DAY_MS).contains_key("A"));
        assert!(!carried(end, 1_100_001 + STANDING_DAYS * DAY_MS).contains_key("A"));
        assert!(!figures.contains_key("stranger"));
        // Occupancy: (100 + 20) / (120 + available 190).
        let mut total = AgentFigures::default();
        a.iter().for_each(|f| total.add(f));
        assert_eq!(total.state_s(AgentState::Available), 190.0);
        let p = point(total, (Utc::now(), Utc::now()), String::new(), String::new());
        assert!((p.occupancy.unwrap() - 120.0 / 310.0).abs() < 1e-12);
    }

    #[test]
    fn an_agent_standing_in_a_state_fills_the_range_until_now() {
        let mut standing = Standing::new();
        standing.insert(
            "A".into(),
            Stand {
                state: AgentState::Paused,
                reason: Some("training".into()),
                said_at: -5,
            },
        );
        let (figures, _) = walk(standing, &[], &[0, 3_600_000], 1_800_000, &|_| None);
        assert_eq!(figures["A"][0].pauses_s["training"], 1800.0);
        assert_eq!(figures["A"][0].logged_in_s, 1800.0);
    }
}
