//! The built-in scenario: a plausible multi-site floor whose traffic is sized to its staff, the
//! way workforce management would plan it, so that it looks busy but sane at any head count.

use super::random::{Random, STREAM_SCENARIO};
use super::{AgentSpec, DEFAULT_CURVE, Dist, LocationSpec, QueueSpec, Scenario, ScenarioConfig};
use monti_domain::kpi::erlang_c_service_level;

struct TeamPlan {
    name: &'static str,
    /// Share of the head count.
    share: f64,
    sl_threshold_s: u32,
    sl_target_pct: u32,
    handle_mean_s: f64,
    handle_sd_s: f64,
    patience_mean_s: f64,
    wrap_up_s: f64,
}

const fn team(
    name: &'static str,
    share: f64,
    sl: (u32, u32),
    handle: (f64, f64),
    patience_mean_s: f64,
    wrap_up_s: f64,
) -> TeamPlan {
    TeamPlan {
        name,
        share,
        sl_threshold_s: sl.0,
        sl_target_pct: sl.1,
        handle_mean_s: handle.0,
        handle_sd_s: handle.1,
        patience_mean_s,
        wrap_up_s,
    }
}

const TEAMS: [TeamPlan; 8] = [
    team("Sales", 0.18, (20, 80), (300.0, 180.0), 120.0, 30.0),
    team("Support", 0.24, (30, 80), (420.0, 260.0), 180.0, 45.0),
    team("Billing", 0.12, (20, 85), (240.0, 140.0), 120.0, 30.0),
    team("Retention", 0.09, (20, 85), (330.0, 190.0), 150.0, 60.0),
    team("Tech", 0.14, (30, 80), (400.0, 250.0), 180.0, 60.0),
    team("Onboarding", 0.08, (20, 80), (280.0, 150.0), 120.0, 30.0),
    team("Claims", 0.10, (30, 80), (360.0, 200.0), 150.0, 45.0),
    team("VIP", 0.05, (10, 95), (180.0, 90.0), 60.0, 15.0),
];

const LOCATIONS: [(&str, Option<&str>, f64); 4] = [
    ("Berlin", Some("Europe/Berlin"), 0.35),
    ("Lisbon", Some("Europe/Lisbon"), 0.25),
    ("Manila", Some("Asia/Manila"), 0.25),
    ("Remote", None, 0.15),
];

const FIRST_NAMES: [&str; 40] = [
    "Anna", "Ben", "Carla", "David", "Elena", "Felix", "Gabriela", "Hannah", "Ivan", "Julia", "Karim", "Lena", "Marco",
    "Nadia", "Oskar", "Paula", "Rafael", "Sofia", "Tobias", "Ursula", "Vincent", "Wiebke", "Yusuf", "Zoe", "Maria",
    "Jose", "Ana", "Joao", "Ines", "Tiago", "Rosa", "Miguel", "Liza", "Paolo", "Jasmine", "Mark", "Angelica", "Ramon",
    "Kristine", "Noah",
];

const LAST_NAMES: [&str; 40] = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Koch",
    "Silva",
    "Santos",
    "Ferreira",
    "Pereira",
    "Oliveira",
    "Costa",
    "Rodrigues",
    "Martins",
    "Sousa",
    "Fernandes",
    "Reyes",
    "Cruz",
    "Bautista",
    "Ocampo",
    "Garcia",
    "Mendoza",
    "Torres",
    "Villanueva",
    "Ramos",
    "Aquino",
    "Smith",
    "Brown",
    "Novak",
    "Kowalski",
    "Rossi",
    "Dubois",
    "Jansen",
    "Nielsen",
    "Yilmaz",
    "Okafor",
];

/// Shift patterns (length, share): mostly full days with a lunch, some part-timers, a few long days.
const SHIFT_LENGTHS: [(u32, f64); 4] = [
    (8 * 3600 + 1800, 0.65),
    (6 * 3600, 0.18),
    (4 * 3600, 0.12),
    (10 * 3600, 0.05),
];

/// Planning assumptions when sizing the traffic: the share of a shift spent in breaks, lunch and
/// meetings (what the engine's pause plan comes to on this mix of shifts), the outbound share [`super::SimParams`] defaults to, and
/// the ring time added to every answered call.
const PAUSE_SHARE: f64 = 0.13;
const DIRECT_SHARE: f64 = 0.05;
const RING_ALLOWANCE_S: f64 = 4.0;

/// The traffic is sized so that no hour whose curve factor is at least this is short of staff.
/// Shifts cannot follow the curve exactly, so other hours have some slack (midday, typically,
/// when lunches take people away).
const BUSY_HOUR_FACTOR: f64 = 0.5;

const DAY_S: u32 = 86_400;
/// One team for every this many agents, up to all of [`TEAMS`].
const AGENTS_PER_TEAM_MIN: usize = 25;
const SHIFT_PLANNING_PASSES: usize = 3;
const SHORTFALL_WEIGHT: f64 = 4.0;

impl Scenario {
    /// The built-in floor with `config.agents` agents, derived from `config.seed` alone.
    pub fn generate(config: &ScenarioConfig) -> Scenario {
        let mut rng = Random::new(config.seed, STREAM_SCENARIO);
        // Small floors have fewer teams, so that each still has enough people to run a queue.
        let plans = &TEAMS[..(config.agents / AGENTS_PER_TEAM_MIN).clamp(1, TEAMS.len())];
        let teams: Vec<String> = plans.iter().map(|t| t.name.to_owned()).collect();
        let locations = LOCATIONS
            .iter()
            .map(|(name, tz, _)| LocationSpec {
                name: (*name).to_owned(),
                timezone: tz.map(str::to_owned),
            })
            .collect();

        let mut team_of: Vec<usize> = quotas(config.agents, &plans.iter().map(|t| t.share).collect::<Vec<_>>())
            .into_iter()
            .enumerate()
            .flat_map(|(team, n)| std::iter::repeat_n(team, n))
            .collect();
        // Fisher–Yates, so that extensions are not grouped by team.
        for i in (1..team_of.len()).rev() {
            team_of.swap(i, rng.below(i + 1));
        }

        let location_weights = LOCATIONS.map(|l| l.2);
        let length_weights = SHIFT_LENGTHS.map(|l| l.1);
        let mut agents: Vec<AgentSpec> = team_of
            .iter()
            .enumerate()
            .map(|(i, &team)| {
                let name = format!(
                    "{} {}",
                    FIRST_NAMES[rng.below(FIRST_NAMES.len())],
                    LAST_NAMES[rng.below(LAST_NAMES.len())]
                );
                AgentSpec {
                    name,
                    extension: (1001 + i).to_string(),
                    team,
                    location: rng.weighted(&location_weights),
                    queues: skills(&mut rng, team, plans.len()),
                    shift_start_s: 0,
                    shift_len_s: SHIFT_LENGTHS[rng.weighted(&length_weights)].0,
                }
            })
            .collect();
        for team in 0..plans.len() {
            plan_shifts(&mut rng, &mut agents, team);
        }

        let mut queues: Vec<QueueSpec> = plans
            .iter()
            .enumerate()
            .map(|(team, t)| QueueSpec {
                name: t.name.to_owned(),
                team,
                sl_threshold_s: t.sl_threshold_s,
                sl_target_pct: t.sl_target_pct,
                wrap_up_s: t.wrap_up_s,
                calls_per_hour: 0.0,
                handle: Dist::LogNormal {
                    mean: t.handle_mean_s,
                    sd: t.handle_sd_s,
                },
                patience: Some(Dist::Exponential {
                    mean: t.patience_mean_s,
                }),
            })
            .collect();
        let staff = peak_staff(&agents, queues.len());
        let occupancy = if config.peak_occupancy.is_finite() {
            config.peak_occupancy.clamp(0.0, 0.99)
        } else {
            0.0
        };
        for (queue, staff) in queues.iter_mut().zip(staff) {
            let service_s = queue.handle.mean() + queue.wrap_up_s + RING_ALLOWANCE_S;
            let erlangs = plannable_traffic(staff, occupancy, queue, service_s);
            queue.calls_per_hour = erlangs * 3600.0 / service_s;
        }
        Scenario {
            teams,
            locations,
            queues,
            agents,
        }
    }
}

/// Splits `total` by `shares` (largest remainder), so the parts add up exactly.
fn quotas(total: usize, shares: &[f64]) -> Vec<usize> {
    let sum: f64 = shares.iter().sum();
    let exact: Vec<f64> = shares.iter().map(|s| total as f64 * s / sum).collect();
    let mut parts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let missing = total.saturating_sub(parts.iter().sum());
    for &i in order.iter().cycle().take(missing) {
        parts[i] += 1;
    }
    parts
}

/// The team's queue first, then for some agents one or two others. Few enough that the teams'
/// pools stay mostly separate (more cross-skilling would make the whole floor one pool that
/// never queues).
fn skills(rng: &mut Random, team: usize, queue_count: usize) -> Vec<usize> {
    let extra = match rng.unit() {
        u if u < 0.85 => 0,
        u if u < 0.97 => 1,
        _ => 2,
    };
    let mut queues = vec![team];
    while queues.len() < (1 + extra).min(queue_count) {
        let q = rng.below(queue_count);
        if !queues.contains(&q) {
            queues.push(q);
        }
    }
    queues
}

/// Chooses the team's shift starts so that its coverage follows the curve: each agent goes where
/// it most reduces Σ penalty(covered − required) / required² (relative errors, shortfalls
/// weighing more than excess), first greedily, then in a few passes that move agents one at a
/// time. Starts are then jittered by up to half an hour either way.
fn plan_shifts(rng: &mut Random, agents: &mut [AgentSpec], team: usize) {
    let members: Vec<usize> = (0..agents.len()).filter(|&i| agents[i].team == team).collect();
    let total_hours: f64 = members.iter().map(|&i| f64::from(agents[i].shift_len_s) / 3600.0).sum();
    let curve_sum: f64 = DEFAULT_CURVE.iter().sum();
    let required: [f64; 24] = DEFAULT_CURVE.map(|f| f * total_hours / curve_sum);
    let mut covered = [0.0f64; 24];
    let mut start_hour = vec![None::<usize>; members.len()];
    let cover = |covered: &mut [f64; 24], start: usize, hours: f64, sign: f64| {
        for k in 0..hours.ceil() as usize {
            covered[(start + k) % 24] += sign * (hours - k as f64).min(1.0);
        }
    };
    for pass in 0..SHIFT_PLANNING_PASSES {
        for (m, &i) in members.iter().enumerate() {
            let hours = f64::from(agents[i].shift_len_s) / 3600.0;
            if let Some(start) = start_hour[m] {
                cover(&mut covered, start, hours, -1.0);
            }
            let gain = |start: usize| -> f64 {
                (0..hours.ceil() as usize)
                    .map(|k| {
                        let (h, w) = ((start + k) % 24, (hours - k as f64).min(1.0));
                        let before = shortfall_penalty(covered[h] - required[h]);
                        let after = shortfall_penalty(covered[h] + w - required[h]);
                        (before - after) / required[h].powi(2).max(1e-9)
                    })
                    .sum()
            };
            let best = (0..24)
                .map(|s| (s, gain(s)))
                .fold(
                    (0, f64::NEG_INFINITY),
                    |best, cand| if cand.1 > best.1 { cand } else { best },
                )
                .0;
            cover(&mut covered, best, hours, 1.0);
            start_hour[m] = Some(best);
            if pass + 1 == SHIFT_PLANNING_PASSES {
                let jitter = (rng.below(5) as i64 - 2) * 900;
                agents[i].shift_start_s = (best as i64 * 3600 + jitter).rem_euclid(i64::from(DAY_S)) as u32;
            }
        }
    }
}

/// How bad a coverage `excess` (negative: shortfall) is: being short costs service, being over
/// only money, so shortfalls weigh more.
fn shortfall_penalty(excess: f64) -> f64 {
    if excess < 0.0 {
        SHORTFALL_WEIGHT * excess * excess
    } else {
        excess * excess
    }
}

/// For each queue, the skilled agents on shift relative to its traffic in the busy hour where
/// that is lowest: min over busy hours of (Σ agents on shift × 1/skills) / curve factor.
/// Multi-skilled agents count fractionally towards each of their queues.
fn peak_staff(agents: &[AgentSpec], queue_count: usize) -> Vec<f64> {
    let mut on_shift = vec![[0.0f64; 24]; queue_count];
    for agent in agents {
        let skills: Vec<usize> = agent.queues.iter().copied().filter(|&q| q < queue_count).collect();
        if skills.is_empty() {
            continue;
        }
        let share = 1.0 / skills.len() as f64;
        for (h, _) in DEFAULT_CURVE.iter().enumerate() {
            let mid = h as u32 * 3600 + 1800;
            let into_shift = (mid + DAY_S - agent.shift_start_s % DAY_S) % DAY_S;
            if into_shift < agent.shift_len_s {
                for &q in &skills {
                    on_shift[q][h] += share;
                }
            }
        }
    }
    on_shift
        .iter()
        .map(|hours| {
            DEFAULT_CURVE
                .iter()
                .zip(hours)
                .filter(|(f, _)| **f >= BUSY_HOUR_FACTOR)
                .map(|(f, staff)| staff / f)
                .fold(f64::INFINITY, f64::min)
        })
        .map(|s| if s.is_finite() { s } else { 0.0 })
        .collect()
}

/// The traffic (Erlangs) `staff` agents can carry at the peak: at most `occupancy` of the
/// agents actually taking calls, and no more than Erlang C says still meets the queue's
/// service-level target (which is what limits small teams).
fn plannable_traffic(staff: f64, occupancy: f64, queue: &QueueSpec, service_s: f64) -> f64 {
    let answering = staff * (1.0 - PAUSE_SHARE) * (1.0 - DIRECT_SHARE);
    let servers = answering.floor().min(f64::from(u32::MAX)) as u32;
    let ceiling = (answering * occupancy).min(f64::from(servers) * 0.999);
    if servers == 0 || ceiling <= 0.0 || service_s <= 0.0 {
        return 0.0;
    }
    let target = f64::from(queue.sl_target_pct.min(100)) / 100.0;
    let threshold = f64::from(queue.sl_threshold_s);
    let meets = |a: f64| erlang_c_service_level(servers, a, service_s, threshold).is_some_and(|sl| sl >= target);
    if meets(ceiling) {
        return ceiling;
    }
    let (mut lo, mut hi) = (0.0, ceiling);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if meets(mid) { lo = mid } else { hi = mid }
    }
    lo
}
