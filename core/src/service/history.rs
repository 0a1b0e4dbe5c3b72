//! Call history: browsing the tenant's calls by time range and what else the caller filters by,
//! one call's detail with its timeline, and the CSV export of every matching call. One flow for
//! the REST API and the history pages: the filters checked and resolved (an agent, team or
//! queue by id as configured, to the names events use for them), the caller's scope applied (a
//! supervisor limited to teams sees their agents' calls), exports audited.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::Validation;
use crate::domain::events::{Event, EventBody};
use crate::live::registry::Floor;
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::call_records::{self, CallRecord};
use crate::store::calls::{self, CallCursor, CallFilter, CallRow};
use crate::store::{Dimension, Store, StoreError, TenantScope, events};

/// The longest range a page of calls may span; an export spans any.
pub const MAX_BROWSE_DAYS: i64 = 400;
/// Calls per page by default, and at most.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// The filters of the history, as a request gives them (query parameters or a form). Every
/// field is optional; the range defaults to today in the tenant's time zone.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallQuery {
    /// Started at or after: RFC 3339, or a local `YYYY-MM-DD` / `YYYY-MM-DDTHH:MM` in the time
    /// zone (`tz`, else the tenant's).
    pub from: Option<String>,
    /// Started before (a date means the end of that day).
    pub to: Option<String>,
    /// An IANA time zone for local dates and times.
    pub tz: Option<String>,
    /// A queue id (or `none` for calls outside queues).
    pub queue: Option<String>,
    /// An agent id.
    pub agent: Option<String>,
    /// A team id: calls its agents handled.
    pub team: Option<String>,
    /// `inbound`, `outbound` or `internal`.
    pub direction: Option<String>,
    /// `answered`, `abandoned`, `timeout`, `full` or `join_empty`.
    pub outcome: Option<String>,
    /// As the PBX's CDR says: `ANSWERED`, `NO ANSWER`, `BUSY`, `FAILED`, `CONGESTION`.
    pub disposition: Option<String>,
    /// The caller's number starts so.
    pub caller: Option<String>,
    /// The dialled number (for inbound calls the DID) starts so.
    pub destination: Option<String>,
    /// At least this many seconds from start to end.
    pub min_duration: Option<String>,
    /// At most this many seconds.
    pub max_duration: Option<String>,
    /// `started` (default); `counted`: calls a queue counted (answered or left) in `from`..`to`,
    /// what a queue report's cell is made of; `ended`: calls an agent handled whose handling
    /// ended then, what an agent report's calls handled are.
    pub by: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

impl CallQuery {
    /// From a page's query string: what a form sends, parameters it does not know left out.
    pub fn from_pairs(pairs: &[(String, String)]) -> CallQuery {
        let known: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| FIELDS.contains(&k.as_str())).collect();
        serde_urlencoded::to_string(known)
            .ok()
            .and_then(|q| serde_urlencoded::from_str(&q).ok())
            .unwrap_or_default()
    }

    /// The filters as a query string, without the page position (for links and exports).
    pub fn query_string(&self) -> String {
        let without_page = CallQuery {
            cursor: None,
            limit: None,
            ..self.clone()
        };
        let pairs: Vec<(&str, String)> = serde_json::to_value(&without_page)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                let k: &str = FIELDS.iter().find(|f| **f == k)?;
                let v = v.as_str()?.trim().to_owned();
                (!v.is_empty()).then_some((k, v))
            })
            .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

const FIELDS: [&str; 16] = [
    "from",
    "to",
    "tz",
    "queue",
    "agent",
    "team",
    "direction",
    "outcome",
    "disposition",
    "caller",
    "destination",
    "min_duration",
    "max_duration",
    "by",
    "cursor",
    "limit",
];

const DIRECTIONS: [&str; 3] = ["inbound", "outbound", "internal"];
const OUTCOMES: [&str; 5] = ["answered", "abandoned", "timeout", "full", "join_empty"];
const DISPOSITIONS: [&str; 6] = ["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION", "CANCEL"];

/// An agent or queue as the tenant configured it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// One call in a queue (or outside queues) as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CallView {
    /// The PBX's id of the call (Asterisk's uniqueid).
    pub call_id: String,
    /// The queue, `null` outside queues (or a queue since removed: `queue_ref` says how events
    /// named it).
    pub queue: Option<Named>,
    pub queue_ref: Option<String>,
    /// The agent who answered or made it.
    pub agent: Option<Named>,
    pub agent_ref: Option<String>,
    pub direction: Option<String>,
    pub started_at: DateTime<Utc>,
    /// `answered`, `abandoned`, `timeout`, `full`, `join_empty`; `null` while waiting.
    pub outcome: Option<String>,
    /// When a queue counted it (answered or left).
    pub counted_at: Option<DateTime<Utc>>,
    pub wait_s: Option<f64>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub talk_s: Option<f64>,
    pub hold_s: Option<f64>,
    pub wrap_s: Option<f64>,
    pub duration_s: Option<f64>,
    pub caller: Option<String>,
    pub destination: Option<String>,
    pub disposition: Option<String>,
    pub billsec_s: Option<i64>,
}

/// A page of calls, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CallsPage {
    pub items: Vec<CallView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
    /// The range the page covers (after defaults).
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// One moment of a call.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// The event as stored (`type` says what happened: `caller_join`, `caller_answer`,
    /// `call_start`, `agent_state` …).
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

/// A call: its rows (one per queue it went through), its CDR legs, its timeline.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CallDetail {
    pub call_id: String,
    pub legs: Vec<CallView>,
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<RecordView>,
    pub timeline: Vec<TimelineEntry>,
}

/// One CDR of a call.
#[derive(Debug, Clone, Serialize)]
pub struct RecordView {
    pub source: String,
    pub caller: String,
    pub destination: String,
    pub channel: String,
    pub dst_channel: String,
    pub last_app: String,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub duration_s: i64,
    pub billsec_s: i64,
    pub disposition: String,
}

/// The tenant's agents and queues under every name events use for them, and who the caller may
/// see: what turns ids into names and back.
pub struct Directory {
    pub tz: Tz,
    agents: Vec<AgentEntry>,
    agent_by_name: HashMap<String, usize>,
    queues: Vec<Named>,
    /// Per queue: its KPI settings and service-level target (percent).
    queue_settings: Vec<(crate::kpi::KpiSettings, u32)>,
    queue_by_name: HashMap<String, usize>,
    /// The team ids the caller may see.
    teams: Vec<String>,
    limited: bool,
}

struct AgentEntry {
    named: Named,
    team: Option<Arc<str>>,
    names: Vec<String>,
    visible: bool,
}

impl Directory {
    pub fn new(floor: &Floor, scope: &TenantScope) -> Self {
        let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut agents = Vec::with_capacity(live.agents().len());
        let mut agent_by_name = HashMap::new();
        for (slot, agent) in live.agents().iter().enumerate() {
            let (team, location) = floor.agent_groups.get(slot).cloned().unwrap_or_default();
            let mut names = vec![agent.id.to_string()];
            names.extend(floor.agent_aliases.get(slot).into_iter().flatten().cloned());
            for name in &names {
                agent_by_name.entry(name.clone()).or_insert(slot);
            }
            agents.push(AgentEntry {
                named: Named {
                    id: agent.id.to_string(),
                    name: agent.name.to_string(),
                },
                visible: scope.visibility().admits(team.as_deref(), location.as_deref()),
                team,
                names,
            });
        }
        let queues: Vec<Named> = floor
            .queues
            .iter()
            .map(|q| Named {
                id: q.id.clone(),
                name: q.name.clone(),
            })
            .collect();
        let queue_settings = floor
            .queues
            .iter()
            .enumerate()
            .map(|(slot, q)| {
                let settings = live.queue(slot as u32).map(|l| l.settings).unwrap_or_default();
                (settings, q.target_pct)
            })
            .collect();
        let mut queue_by_name = HashMap::new();
        for (i, q) in queues.iter().enumerate() {
            queue_by_name.insert(q.id.clone(), i);
            queue_by_name.entry(q.name.clone()).or_insert(i);
        }
        let teams = floor
            .teams
            .iter()
            .filter(|t| scope.visibility().includes(Dimension::Team, t))
            .cloned()
            .collect();
        Directory {
            tz: floor.tz,
            teams,
            limited: scope.visibility().is_limited(),
            agents,
            agent_by_name,
            queues,
            queue_settings,
            queue_by_name,
        }
    }

    /// A queue's KPI settings and service-level target (percent), by id or name.
    pub fn queue_settings(&self, queue: &str) -> Option<(crate::kpi::KpiSettings, u32)> {
        self.queue_by_name.get(queue).map(|&i| self.queue_settings[i])
    }

    pub fn queues(&self) -> &[Named] {
        &self.queues
    }

    /// The agents the caller may see, by name.
    pub fn visible_agents(&self) -> Vec<&Named> {
        let mut v: Vec<&Named> = self.agents.iter().filter(|a| a.visible).map(|a| &a.named).collect();
        v.sort_by_key(|a| a.name.to_lowercase());
        v
    }

    /// Whether the caller is limited to some teams or locations: then only calls their
    /// agents handled are theirs (not those of agents since removed or never set up).
    fn limited(&self) -> bool {
        self.limited
    }

    /// Every name of the queue with this id (or name).
    pub fn queue_names(&self, queue: &str) -> Option<Vec<String>> {
        let q = &self.queues[*self.queue_by_name.get(queue)?];
        let mut names = vec![q.id.clone()];
        if q.name != q.id {
            names.push(q.name.clone());
        }
        Some(names)
    }

    /// The agents the caller may see, by name, each with its team id.
    pub fn visible_agent_teams(&self) -> Vec<(&Named, Option<&str>)> {
        let mut v: Vec<(&Named, Option<&str>)> = self
            .agents
            .iter()
            .filter(|a| a.visible)
            .map(|a| (&a.named, a.team.as_deref()))
            .collect();
        v.sort_by_key(|(a, _)| a.name.to_lowercase());
        v
    }

    /// Whether the caller may see the team with this id.
    pub fn team_visible(&self, team: &str) -> bool {
        self.teams.iter().any(|t| t == team)
    }

    /// Every name of the agent with this id, as events may give it.
    pub fn names_of(&self, id: &str) -> Vec<String> {
        self.agents
            .iter()
            .find(|a| a.named.id == id)
            .map(|a| a.names.clone())
            .unwrap_or_default()
    }

    /// What the agents are called and who they are, as a short digest: kept reports that
    /// resolved events' names to agents are made again once it changes.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut names: Vec<(&str, &str)> = self
            .agents
            .iter()
            .flat_map(|a| a.names.iter().map(|n| (n.as_str(), a.named.id.as_str())))
            .collect();
        names.sort_unstable();
        let mut hash = Sha256::new();
        for (name, id) in names {
            hash.update(name.as_bytes());
            hash.update([0]);
            hash.update(id.as_bytes());
            hash.update([0]);
        }
        hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// Every name of every agent.
    pub fn agent_names_all(&self) -> Vec<String> {
        self.agents.iter().flat_map(|a| a.names.iter().cloned()).collect()
    }

    pub fn agent(&self, name: &str) -> Option<&Named> {
        self.agent_by_name.get(name).map(|&i| &self.agents[i].named)
    }

    pub fn queue(&self, name: &str) -> Option<&Named> {
        self.queue_by_name.get(name).map(|&i| &self.queues[i])
    }

    fn agent_visible(&self, name: &str) -> bool {
        self.agent_by_name.get(name).is_some_and(|&i| self.agents[i].visible)
    }

    /// The names of the visible agents `keep` admits.
    fn agent_names(&self, keep: impl Fn(&AgentEntry) -> bool) -> Vec<String> {
        self.agents
            .iter()
            .filter(|a| a.visible && keep(a))
            .flat_map(|a| a.names.iter().cloned())
            .collect()
    }

    fn view(&self, row: CallRow) -> CallView {
        let ms = |v: i64| Utc.timestamp_millis_opt(v).single();
        let duration_s = row.duration_s();
        let queue_ref = (!row.queue.is_empty()).then(|| row.queue.clone());
        CallView {
            queue: queue_ref.as_deref().and_then(|q| self.queue(q)).cloned(),
            queue_ref,
            agent: row.agent.as_deref().and_then(|a| self.agent(a)).cloned(),
            agent_ref: row.agent,
            direction: row.direction,
            started_at: ms(row.started_at).unwrap_or_default(),
            outcome: row.outcome,
            counted_at: row.outcome_at.and_then(ms),
            wait_s: row.wait_s,
            answered_at: row.answered_at.and_then(ms),
            ended_at: row.ended_at.and_then(ms),
            talk_s: row.talk_s,
            hold_s: row.hold_s,
            wrap_s: row.wrap_s,
            duration_s,
            caller: row.caller,
            destination: row.destination,
            disposition: row.disposition,
            billsec_s: row.billsec_s,
            call_id: row.call_id,
        }
    }
}

/// A point in time as a request gives it: RFC 3339, or a local date or date and minute in `tz`.
/// A date alone means its start, or with `end_of_day` the start of the next day.
pub fn parse_time(value: &str, tz: Tz, end_of_day: bool) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    let local = if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let date = if end_of_day { date.succ_opt()? } else { date };
        date.and_hms_opt(0, 0, 0)?
    } else {
        ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())?
    };
    // A local time that a clock change skips is the first moment after the gap; one it repeats
    // is its first occurrence.
    local_to_utc(local, tz)
}

/// The instant a local time in `tz` names (the first of two in a repeated hour, the end of the
/// gap in a skipped one).
pub fn local_to_utc(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    use chrono::offset::LocalResult;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => (1..=180).find_map(|minutes| {
            tz.from_local_datetime(&(local + chrono::Duration::minutes(minutes)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        }),
    }
}

/// Midnight starting the day of `at` in `tz`.
pub fn day_start(at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let date = at.with_timezone(&tz).date_naive();
    date.and_hms_opt(0, 0, 0)
        .and_then(|m| local_to_utc(m, tz))
        .unwrap_or(at)
}

/// The zone and range `tz`, `from` and `to` ask for, checked into `v`: local dates and times
/// are read in `tz` (else `default_tz`); the range defaults to today.
pub fn time_range(
    v: &mut Validation,
    tz: &Option<String>,
    from: &Option<String>,
    to: &Option<String>,
    default_tz: Tz,
    now: DateTime<Utc>,
) -> (Tz, DateTime<Utc>, DateTime<Utc>) {
    let tz = match non_empty(tz) {
        None => default_tz,
        Some(name) => name.parse::<Tz>().unwrap_or_else(|_| {
            v.add("tz", "must be an IANA time zone such as Europe/Berlin");
            default_tz
        }),
    };
    let mut time = |field: &str, value: &Option<String>, end: bool| {
        let raw = non_empty(value)?;
        let parsed = parse_time(raw, tz, end);
        if parsed.is_none() {
            v.add(
                field,
                "must be a date (2026-12-01), a local time (2026-12-01T09:30) or RFC 3339",
            );
        }
        parsed
    };
    let today = day_start(now, tz);
    let from = time("from", from, false).unwrap_or(today);
    let to = time("to", to, true)
        .unwrap_or_else(|| parse_time(&today.with_timezone(&tz).date_naive().to_string(), tz, true).unwrap_or(now));
    (tz, from, to)
}

/// A checked query: the store's filter and where the page starts.
pub struct Resolved {
    pub filter: CallFilter,
    /// The zone local times were read in, and the export writes in.
    pub tz: Tz,
    pub cursor: Option<CallCursor>,
    pub limit: i64,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn seconds(v: &mut Validation, field: &str, value: &Option<String>) -> Option<i64> {
    let raw = non_empty(value)?;
    match raw.parse::<i64>() {
        Ok(n) if (0..=86_400 * 365).contains(&n) => Some(n),
        _ => {
            v.add(field, "must be a whole number of seconds, 0 or more");
            None
        }
    }
}

fn one_of(v: &mut Validation, field: &str, value: &Option<String>, allowed: &[&str]) -> Option<String> {
    let raw = non_empty(value)?;
    if allowed.contains(&raw) {
        Some(raw.to_owned())
    } else {
        v.add(field, format!("must be one of: {}", allowed.join(", ")));
        None
    }
}

fn prefix(v: &mut Validation, field: &str, value: &Option<String>) -> Option<String> {
    let raw = non_empty(value)?;
    if raw.len() > 64 || raw.chars().any(char::is_control) {
        v.add(field, "must be up to 64 characters without control characters");
        return None;
    }
    Some(raw.to_owned())
}

/// Checks `query` and resolves it against the directory. `browse` limits the range's length (a
/// page) where an export does not.
pub fn resolve(query: &CallQuery, dir: &Directory, now: DateTime<Utc>, browse: bool) -> Result<Resolved, StoreError> {
    let mut v = Validation::new();
    let (tz, from, to) = time_range(&mut v, &query.tz, &query.from, &query.to, dir.tz, now);
    if to <= from {
        v.add("to", "must be after from");
    } else if browse && (to - from).num_days() > MAX_BROWSE_DAYS {
        v.add(
            "to",
            format!("a page covers at most {MAX_BROWSE_DAYS} days; narrow the range or export it"),
        );
    }
    let mut filter = CallFilter {
        from_ms: from.timestamp_millis(),
        to_ms: to.timestamp_millis(),
        direction: one_of(&mut v, "direction", &query.direction, &DIRECTIONS),
        outcome: one_of(&mut v, "outcome", &query.outcome, &OUTCOMES),
        disposition: one_of(&mut v, "disposition", &query.disposition, &DISPOSITIONS),
        caller_prefix: prefix(&mut v, "caller", &query.caller),
        destination_prefix: prefix(&mut v, "destination", &query.destination),
        min_duration_s: seconds(&mut v, "min_duration", &query.min_duration),
        max_duration_s: seconds(&mut v, "max_duration", &query.max_duration),
        ..CallFilter::default()
    };
    match non_empty(&query.by) {
        None | Some("started") => {}
        Some("counted") => filter.outcome_between = Some((filter.from_ms, filter.to_ms)),
        Some("ended") => filter.ended_between = Some((filter.from_ms, filter.to_ms)),
        Some(_) => v.add("by", "must be started, counted or ended"),
    }
    let mut queue_names = None;
    match non_empty(&query.queue) {
        None => {}
        Some("none") => filter.queues = Some(vec![String::new()]),
        Some(q) => match dir.queue_names(q) {
            Some(names) => queue_names = Some(names),
            None => v.add("queue", "no such queue"),
        },
    }
    // Agents: the one asked for, or a team's, within what the caller may see.
    let agents = match (non_empty(&query.agent), non_empty(&query.team)) {
        (Some(agent), team) => match dir.agent_by_name.get(agent).map(|&i| &dir.agents[i]) {
            Some(a) if a.visible && team.is_none_or(|t| a.team.as_deref() == Some(t)) => Some(a.names.clone()),
            Some(a) if a.visible => Some(Vec::new()),
            _ => {
                v.add("agent", "no such agent");
                None
            }
        },
        (None, Some(team)) => {
            if !dir.teams.iter().any(|t| t == team) {
                v.add("team", "no such team");
            }
            Some(dir.agent_names(|a| a.team.as_deref() == Some(team)))
        }
        (None, None) => dir.limited().then(|| dir.agent_names(|_| true)),
    };
    filter.agents = agents;
    let cursor = non_empty(&query.cursor).and_then(|c| {
        let parsed = decode_cursor(c);
        if parsed.is_none() {
            v.add("cursor", "is not a cursor this list gave");
        }
        parsed
    });
    let limit = match non_empty(&query.limit) {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                v.add("limit", format!("must be from 1 to {MAX_LIMIT}"));
                DEFAULT_LIMIT
            }
        },
    };
    v.finish()?;
    if let Some(names) = queue_names {
        filter.queues = Some(names);
    }
    Ok(Resolved {
        filter,
        tz,
        cursor,
        limit,
    })
}

fn encode_cursor(c: &CallCursor) -> String {
    use base64::Engine as _;
    let raw = format!("{}\u{1f}{}\u{1f}{}", c.started_at, c.call_id, c.queue);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(c: &str) -> Option<CallCursor> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let mut parts = raw.splitn(3, '\u{1f}');
    Some(CallCursor {
        started_at: parts.next()?.parse().ok()?,
        call_id: parts.next()?.to_owned(),
        queue: parts.next()?.to_owned(),
    })
}

/// What the history needs from the running system.
#[derive(Clone, Copy)]
pub struct History<'a> {
    pub store: &'a Store,
    pub live: &'a crate::live::service::LiveService,
}

impl History<'_> {
    pub async fn directory(&self, scope: &TenantScope) -> Result<Directory, StoreError> {
        let floor = self.live.floor(scope).await?;
        Ok(Directory::new(&floor, scope))
    }

    /// A page of the calls matching `query`, newest first.
    pub async fn calls(&self, scope: &TenantScope, query: &CallQuery) -> Result<(CallsPage, Directory), StoreError> {
        let dir = self.directory(scope).await?;
        let resolved = resolve(query, &dir, Utc::now(), true)?;
        let mut rows = calls::page(
            self.store,
            scope,
            &resolved.filter,
            resolved.cursor.as_ref(),
            resolved.limit + 1,
        )
        .await?;
        let next_cursor = if rows.len() as i64 > resolved.limit {
            rows.truncate(resolved.limit as usize);
            rows.last().map(|r| encode_cursor(&r.cursor()))
        } else {
            None
        };
        let ms = |v: i64| Utc.timestamp_millis_opt(v).single().unwrap_or_default();
        let page = CallsPage {
            items: rows.into_iter().map(|r| dir.view(r)).collect(),
            next_cursor,
            from: ms(resolved
                .filter
                .outcome_between
                .or(resolved.filter.ended_between)
                .map_or(resolved.filter.from_ms, |b| b.0)),
            to: ms(resolved
                .filter
                .outcome_between
                .or(resolved.filter.ended_between)
                .map_or(resolved.filter.to_ms, |b| b.1)),
        };
        Ok((page, dir))
    }

    /// How many calls match `query` (a report cell's count, checked against its calls).
    pub async fn count(&self, scope: &TenantScope, query: &CallQuery) -> Result<i64, StoreError> {
        let dir = self.directory(scope).await?;
        let resolved = resolve(query, &dir, Utc::now(), false)?;
        calls::count(self.store, scope, &resolved.filter).await
    }

    /// One call: its rows, CDR legs and timeline. "Not found" when the tenant has no such call
    /// or the caller may not see who handled it.
    pub async fn call(&self, scope: &TenantScope, call_id: &str) -> Result<(CallDetail, Directory), StoreError> {
        let dir = self.directory(scope).await?;
        let rows = calls::by_id(self.store, scope, call_id).await?;
        let visible = |agent: &Option<String>| agent.as_deref().is_some_and(|a| dir.agent_visible(a));
        if rows.is_empty() || (dir.limited() && !rows.iter().any(|r| visible(&r.agent))) {
            return Err(StoreError::NotFound { kind: "call" });
        }
        let records = call_records::for_call(self.store, scope, call_id).await?;
        // What the agents who handled it did meanwhile: ringing, wrap-up, the state after.
        let agents: Vec<&str> = rows.iter().filter_map(|r| r.agent.as_deref()).collect();
        let from = rows.iter().map(|r| r.started_at).min().unwrap_or_default();
        let to = rows
            .iter()
            .map(|r| {
                let wrap = r.wrap_s.unwrap_or(0.0) * 1000.0;
                r.ended_at.or(r.outcome_at).unwrap_or(r.started_at) + wrap as i64 + 1000
            })
            .max()
            .unwrap_or(from);
        // The call's own events lie within its rows' times (a start inferred from a wait is
        // rounded, hence the margin).
        let mut timeline: Vec<Event> = events::for_call(self.store, scope, call_id, from - 60_000, to + 60_000).await?;
        let around = events::for_agent_between(self.store, scope, &agents, from - 60_000, to, 1_000).await?;
        timeline.extend(around.into_iter().filter(|e| {
            matches!(e.body, EventBody::AgentState { .. })
                && e.agent().is_some_and(|a| !dir.limited() || dir.agent_visible(a))
        }));
        timeline.sort_by_key(|e| e.at_ms());
        let detail = CallDetail {
            call_id: call_id.to_owned(),
            legs: rows.into_iter().map(|r| dir.view(r)).collect(),
            records: records.into_iter().map(record_view).collect(),
            timeline: timeline
                .into_iter()
                .map(|e| TimelineEntry {
                    at: e.at,
                    event: serde_json::to_value(&e.body).unwrap_or_default(),
                })
                .collect(),
        };
        Ok((detail, dir))
    }

    /// Every call matching `query` (the range not limited) as CSV, streamed page by page so the
    /// memory used does not grow with the export. The export is audited with its filters.
    pub async fn export(
        &self,
        scope: &TenantScope,
        origin: &Origin,
        query: &CallQuery,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<String, StoreError>>, StoreError> {
        const PAGE: i64 = 1_000;
        let dir = self.directory(scope).await?;
        let resolved = resolve(query, &dir, Utc::now(), false)?;
        let event = AuditEvent::in_tenant(scope, "calls.export", Outcome::Success).detail(query.query_string());
        audit::record(self.store, event, origin).await;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let store = self.store.clone();
        let scope = scope.clone();
        tokio::spawn(async move {
            let mut chunk = String::from(CSV_HEADER);
            let mut after: Option<CallCursor> = None;
            loop {
                let rows = match calls::page(&store, &scope, &resolved.filter, after.as_ref(), PAGE).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                after = rows.last().map(CallRow::cursor);
                let last = (rows.len() as i64) < PAGE;
                for row in rows {
                    csv_line(&mut chunk, &dir.view(row), resolved.tz);
                }
                if tx.send(Ok(std::mem::take(&mut chunk))).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

fn record_view(r: CallRecord) -> RecordView {
    let ms = |v: i64| Utc.timestamp_millis_opt(v).single().unwrap_or_default();
    RecordView {
        source: r.source,
        caller: r.caller,
        destination: r.destination,
        channel: r.channel,
        dst_channel: r.dst_channel,
        last_app: r.last_app,
        started_at: ms(r.started_at),
        answered_at: r.answered_at.map(ms),
        ended_at: ms(r.ended_at),
        duration_s: r.duration_s,
        billsec_s: r.billsec_s,
        disposition: r.disposition,
    }
}

/// The export's columns.
pub const CSV_HEADER: &str = "call_id,started_at,queue,agent,direction,outcome,wait_s,answered_at,ended_at,talk_s,\
     hold_s,wrap_s,duration_s,caller,destination,disposition,billsec_s\r\n";

/// One RFC 4180 cell: quoted when it holds a separator, quote or line break; a leading `=`,
/// `+`, `-`, `@`, tab or carriage return gets a `'` first, so a spreadsheet shows the text
/// rather than running it as a formula.
pub fn csv_cell(out: &mut String, value: &str) {
    let guarded = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    // `;` too: spreadsheets in locales whose list separator it is split cells on it.
    let quoted = guarded || value.contains([',', ';', '"', '\n', '\r', '\t']);
    if quoted {
        out.push('"');
    }
    if guarded {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
}

fn csv_line(out: &mut String, c: &CallView, tz: Tz) {
    let time = |t: &DateTime<Utc>| t.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let number = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
    let named = |n: &Option<Named>, raw: &Option<String>| {
        n.as_ref()
            .map(|n| n.name.clone())
            .or_else(|| raw.clone())
            .unwrap_or_default()
    };
    let cells = [
        c.call_id.clone(),
        time(&c.started_at),
        named(&c.queue, &c.queue_ref),
        named(&c.agent, &c.agent_ref),
        c.direction.clone().unwrap_or_default(),
        c.outcome.clone().unwrap_or_default(),
        number(c.wait_s),
        c.answered_at.as_ref().map(time).unwrap_or_default(),
        c.ended_at.as_ref().map(time).unwrap_or_default(),
        number(c.talk_s),
        number(c.hold_s),
        number(c.wrap_s),
        number(c.duration_s),
        c.caller.clone().unwrap_or_default(),
        c.destination.clone().unwrap_or_default(),
        c.disposition.clone().unwrap_or_default(),
        c.billsec_s.map(|b| b.to_string()).unwrap_or_default(),
    ];
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_cell(out, cell);
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(v: &str) -> String {
        let mut s = String::new();
        csv_cell(&mut s, v);
        s
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("x;=HYPERLINK(1)"), "\"x;=HYPERLINK(1)\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell("=1+2"), "\"'=1+2\"");
        assert_eq!(cell("+49 30 1234"), "\"'+49 30 1234\"");
        assert_eq!(cell("-5"), "\"'-5\"");
        assert_eq!(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(cell(""), "");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = CallCursor {
            started_at: 1_800_000_000_123,
            call_id: "1800000000.21".into(),
            queue: "sales".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        assert_eq!(decode_cursor("not a cursor!"), None);
        assert_eq!(decode_cursor(""), None);
    }

    #[test]
    fn local_dates_are_days_in_the_zone_including_short_and_long_ones() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // The spring-forward day in Berlin has 23 hours, the fall-back day 25.
        let start = parse_time("2026-03-29", berlin, false).unwrap();
        let end = parse_time("2026-03-29", berlin, true).unwrap();
        assert_eq!((end - start).num_hours(), 23);
        let start = parse_time("2026-10-25", berlin, false).unwrap();
        let end = parse_time("2026-10-25", berlin, true).unwrap();
        assert_eq!((end - start).num_hours(), 25);
        // 02:30 does not exist on the short day: it is the end of the gap, 03:00 CEST.
        let skipped = parse_time("2026-03-29T02:30", berlin, false).unwrap();
        assert_eq!(skipped.to_rfc3339(), "2026-03-29T01:00:00+00:00");
        assert_eq!(
            parse_time("2026-12-01T09:30:00Z", berlin, false).unwrap().to_rfc3339(),
            "2026-12-01T09:30:00+00:00"
        );
        assert_eq!(parse_time("yesterday", berlin, false), None);
    }
}
