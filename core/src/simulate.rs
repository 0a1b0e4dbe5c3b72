//! Running the simulator against a Monti: setting up a tenant for a scenario (teams, locations,
//! queues, agents and their queues), and feeding the simulated events to it, in real time or
//! faster, either in-process (the demo) or through a server's ingest API (`monti simulate`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};

use crate::domain::events::Event;
use crate::domain::new_id;
use crate::live::service::{LiveService, Outcome};
use crate::sim::{Scenario, Simulation};
use crate::store::entities::locations::{Location, LocationCreate};
use crate::store::entities::queues::{Queue, QueueCreate};
use crate::store::entities::teams::{Team, TeamCreate};
use crate::store::provisioning::{self, Named, NewAgent};
use crate::store::{Store, StoreResult, TenantScope, resource};

/// What a tenant has of a scenario after [`provision`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Provisioned {
    pub created_agents: usize,
    pub existing_agents: usize,
}

/// Makes sure the tenant has the scenario's teams, locations and queues (matched by name) and
/// its agents (matched by extension), with their queues. Agents come in bulk, a few statements
/// for thousands, so a 2,000-agent demo is ready in moments. Safe to run again.
pub async fn provision(store: &Store, scope: &TenantScope, scenario: &Scenario) -> StoreResult<Provisioned> {
    let mut teams = provisioning::ids_by_name(store, scope, Named::Teams).await?;
    for name in &scenario.teams {
        if !teams.contains_key(name) {
            let team: Team = resource::create(
                store,
                scope,
                TeamCreate {
                    name: name.clone(),
                    description: format!("{name} team"),
                },
            )
            .await?;
            teams.insert(name.clone(), team.id);
        }
    }
    let mut locations = provisioning::ids_by_name(store, scope, Named::Locations).await?;
    for spec in &scenario.locations {
        if !locations.contains_key(&spec.name) {
            let location: Location = resource::create(
                store,
                scope,
                LocationCreate {
                    name: spec.name.clone(),
                    timezone: spec.timezone.clone(),
                    address: String::new(),
                },
            )
            .await?;
            locations.insert(spec.name.clone(), location.id);
        }
    }
    let mut queues = provisioning::ids_by_name(store, scope, Named::Queues).await?;
    for spec in &scenario.queues {
        if !queues.contains_key(&spec.name) {
            let queue: Queue = resource::create(
                store,
                scope,
                QueueCreate {
                    name: spec.name.clone(),
                    description: format!("{} line", spec.name),
                    strategy: Some("rrmemory".into()),
                    sl_threshold_s: Some(i64::from(spec.sl_threshold_s)),
                    sl_target_pct: Some(i64::from(spec.sl_target_pct)),
                    wrap_up_s: Some(spec.wrap_up_s.round() as i64),
                    sl_variant: None,
                    short_abandon_s: Some(5),
                    abandon_rate_counts_short: Some(false),
                },
            )
            .await?;
            queues.insert(spec.name.clone(), queue.id);
        }
    }
    let existing = provisioning::ids_by_name(store, scope, Named::AgentExtensions).await?;
    let lookup =
        |map: &HashMap<String, String>, names: &[String], i: usize| names.get(i).and_then(|n| map.get(n)).cloned();
    let location_names: Vec<String> = scenario.locations.iter().map(|l| l.name.clone()).collect();
    let queue_names: Vec<String> = scenario.queues.iter().map(|q| q.name.clone()).collect();
    let fresh: Vec<NewAgent> = scenario
        .agents
        .iter()
        .filter(|a| !existing.contains_key(&a.extension))
        .map(|spec| NewAgent {
            id: new_id("agt"),
            name: spec.name.clone(),
            team_id: lookup(&teams, &scenario.teams, spec.team),
            location_id: lookup(&locations, &location_names, spec.location),
            extension: spec.extension.clone(),
            interface: format!("PJSIP/{}", spec.extension),
            skills: spec
                .queues
                .iter()
                .filter_map(|q| queue_names.get(*q))
                .map(|q| q.to_lowercase())
                .collect(),
            queue_ids: spec
                .queues
                .iter()
                .filter_map(|q| lookup(&queues, &queue_names, *q))
                .collect(),
        })
        .collect();
    provisioning::insert_agents(store, scope, &fresh).await?;
    Ok(Provisioned {
        created_agents: fresh.len(),
        existing_agents: existing.len(),
    })
}

/// Where simulated events go.
pub enum Sink {
    /// Straight into this process's live path (the demo).
    Local { live: Arc<LiveService>, scope: TenantScope },
    /// As a PBX would report it: through the Asterisk simulator's manager interface, to the
    /// connector plugin (`monti demo --asterisk`).
    Pbx(Arc<crate::asterisk::SimulatedPbx>),
    /// To a Monti server's `POST /api/v1/events`.
    Remote {
        client: reqwest::Client,
        url: String,
        token: String,
    },
}

/// Totals of what the sink answered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// Events per request to a remote server.
const BATCH: usize = 5_000;

impl Sink {
    pub fn remote(base_url: &str, token: &str) -> anyhow::Result<Sink> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot create an HTTP client")?;
        Ok(Sink::Remote {
            client,
            url: format!("{}/api/v1/events", base_url.trim_end_matches('/')),
            token: token.to_owned(),
        })
    }

    /// Delivers events, retrying while the server asks to (429, 503); the first rejection
    /// reasons are logged.
    pub async fn send(&self, events: Vec<Event>, sent: &mut Sent) -> anyhow::Result<()> {
        match self {
            Sink::Pbx(pbx) => {
                for event in &events {
                    pbx.play(event);
                }
                sent.accepted += events.len() as u64;
                Ok(())
            }
            Sink::Local { live, scope } => {
                for chunk in events.chunks(BATCH) {
                    let items = chunk.iter().cloned().map(Ok).collect();
                    let outcomes = live
                        .ingest(scope, items, crate::domain::time::now_ms())
                        .await
                        .map_err(|e| anyhow!("storing simulated events failed: {e}"))?;
                    for outcome in outcomes {
                        match outcome {
                            Outcome::Accepted(_) => sent.accepted += 1,
                            Outcome::Duplicate => sent.duplicates += 1,
                            Outcome::Rejected(errors) => {
                                if sent.rejected < 5 {
                                    tracing::warn!(?errors, "a simulated event was rejected");
                                }
                                sent.rejected += 1;
                            }
                        }
                    }
                }
                Ok(())
            }
            Sink::Remote { client, url, token } => {
                for chunk in events.chunks(BATCH) {
                    let mut body = Vec::with_capacity(chunk.len() * 200);
                    for event in chunk {
                        serde_json::to_writer(&mut body, event)?;
                        body.push(b'\n');
                    }
                    let mut attempt = 0u32;
                    loop {
                        let response = client
                            .post(url)
                            .bearer_auth(token)
                            .header("content-type", "application/x-ndjson")
                            .body(body.clone())
                            .send()
                            .await
                            .with_context(|| format!("cannot reach {url}"))?;
                        let status = response.status();
                        if (status.as_u16() == 429 || status.as_u16() == 503) && attempt < 30 {
                            let wait = response
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u64>().ok())
                                .unwrap_or(1)
                                .clamp(1, 30);
                            attempt += 1;
                            tokio::time::sleep(Duration::from_secs(wait)).await;
                            continue;
                        }
                        let text = response.text().await.unwrap_or_default();
                        if !status.is_success() {
                            return Err(anyhow!("{url} answered {status}: {}", text.trim()));
                        }
                        let result: serde_json::Value =
                            serde_json::from_str(&text).context("the server's answer is not JSON")?;
                        let count = |k: &str| result.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
                        sent.accepted += count("accepted");
                        sent.duplicates += count("duplicates");
                        let rejected = count("rejected");
                        if rejected > 0 && sent.rejected < 5 {
                            let first = result.get("results").and_then(|r| r.as_array()).and_then(|r| {
                                r.iter()
                                    .find(|i| i.get("status").and_then(|s| s.as_str()) == Some("rejected"))
                            });
                            tracing::warn!(rejected, first = ?first, "simulated events were rejected");
                        }
                        sent.rejected += rejected;
                        break;
                    }
                }
                Ok(())
            }
        }
    }
}

/// How a run is paced.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Simulated seconds per real second; `None`: as fast as the sink takes them.
    pub speed: Option<f64>,
    /// Simulated time to cover; `None`: until stopped.
    pub duration: Option<Duration>,
    /// Simulated time to run through at full speed first (so a floor starts mid-day).
    pub warm_up: Duration,
}

/// Feeds `simulation` into `sink` as `pace` says, reporting progress to `progress`.
pub async fn run(
    simulation: &mut Simulation,
    sink: &Sink,
    pace: Pace,
    mut progress: impl FnMut(&Simulation, &Sent, bool),
) -> anyhow::Result<Sent> {
    let mut sent = Sent::default();
    let start_ms = simulation.now_ms();
    let end_ms = pace.duration.map(|d| start_ms + d.as_millis() as i64);
    let mut events = Vec::new();
    // Warm-up: as fast as possible up to `warm_up` of simulated time.
    let warm_until = start_ms + pace.warm_up.as_millis() as i64;
    while simulation.now_ms() < warm_until {
        let step = (simulation.now_ms() + 60_000).min(warm_until);
        simulation.advance(step, &mut events);
        sink.send(std::mem::take(&mut events), &mut sent).await?;
        progress(simulation, &sent, false);
    }
    let real_start = Instant::now();
    let sim_start = simulation.now_ms();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let target = match pace.speed {
            Some(speed) => sim_start + (real_start.elapsed().as_secs_f64() * speed * 1000.0) as i64,
            None => simulation.now_ms() + 60_000,
        };
        let target = end_ms.map_or(target, |end| target.min(end));
        simulation.advance(target, &mut events);
        if !events.is_empty() {
            sink.send(std::mem::take(&mut events), &mut sent).await?;
        }
        let done = end_ms.is_some_and(|end| simulation.now_ms() >= end);
        progress(simulation, &sent, done);
        if done {
            return Ok(sent);
        }
        if pace.speed.is_some() {
            ticker.tick().await;
        }
    }
}

/// A one-line progress report on a terminal (redrawn in place), or a line every few seconds
/// when the output is not a terminal.
pub struct ProgressLine {
    started: Instant,
    last: Option<Instant>,
    total_ms: Option<i64>,
    start_ms: i64,
    tty: bool,
}

impl ProgressLine {
    pub fn new(start_ms: i64, duration: Option<Duration>) -> Self {
        use std::io::IsTerminal as _;
        Self {
            started: Instant::now(),
            last: None,
            total_ms: duration.map(|d| d.as_millis() as i64),
            start_ms,
            tty: std::io::stderr().is_terminal(),
        }
    }

    pub fn update(&mut self, simulation: &Simulation, sent: &Sent, done: bool) {
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if !done && self.last.is_some_and(|l| l.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let covered = simulation.now_ms() - self.start_ms;
        let rate = sent.accepted as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let bar = match self.total_ms {
            Some(total) if total > 0 => {
                let share = (covered as f64 / total as f64).clamp(0.0, 1.0);
                let filled = (share * 30.0) as usize;
                format!(
                    "[{}{}] {:>3.0}% ",
                    "=".repeat(filled),
                    " ".repeat(30 - filled),
                    share * 100.0
                )
            }
            _ => String::new(),
        };
        let line = format!(
            "{bar}simulated {} · {} accepted, {} duplicates, {} rejected · {:.0} events/s",
            crate::web::board::render::duration(covered / 1000),
            sent.accepted,
            sent.duplicates,
            sent.rejected,
            rate
        );
        if self.tty {
            eprint!("\r\x1b[2K{line}");
            if done {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
    }
}
