//! The supervisor board's server-side cost: `cargo bench --bench board`.
//!
//! Builds the demo's 2,000-agent floor in a fresh SQLite database, plays a simulated hour into it,
//! then measures rendering the full board (every agent, grouped by team) and what one agent
//! change costs on the wire (the pushed row as an SSE message, and as a JSON delta).
//! Target (issue 4): full 2,000-agent board ≤ 5 ms.

use std::time::{Duration, Instant};

use monti::config::Config;
use monti::i18n::Locale;
use monti::web::board::render::{Labels, RowGroups, agent_row};
use monti::web::board::render_board;
use monti::web::board::view::{BoardQuery, View};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let agents: usize = std::env::var("AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        log_level: "warn".into(),
        ..Config::default()
    };
    let (floor, scope_visibility) = runtime.block_on(async {
        let store = monti::store::Store::open(&config).await.unwrap();
        monti::store::tenants::create(
            &store,
            monti::store::tenants::TenantCreate {
                slug: "bench".into(),
                name: "Bench".into(),
                timezone: Some("Europe/Berlin".into()),
                features: Default::default(),
                limits: Default::default(),
            },
        )
        .await
        .unwrap();
        let scope = monti::store::tenants::system_scope(&store, "bench", monti::store::SystemActor::Operator)
            .await
            .unwrap();
        let scenario = monti::demo::scenario(agents, 1);
        monti::simulate::provision(&store, &scope, &scenario).await.unwrap();
        let plugins = std::sync::Arc::new(monti::plugins::dispatch::Dispatcher::new(
            store.clone(),
            Default::default(),
        ));
        let live = monti::live::service::LiveService::new(store.clone(), Duration::from_millis(250), 16, plugins);
        let floor = live.floor(&scope).await.unwrap();
        // A simulated hour, applied straight to the floor (storage is not what is measured).
        let now = monti::domain::time::now_ms();
        let mut sim = monti::sim::Simulation::new(&scenario, Default::default(), now - 3_600_000);
        let mut events = Vec::new();
        sim.advance(now, &mut events);
        {
            let mut state = floor.live.lock().unwrap();
            for event in &events {
                let _ = state.apply(event);
            }
        }
        (floor, scope.visibility().clone())
    });
    let labels = Labels::new(Locale::En);
    let bands = Config::default().live.bands;
    let view = View::parse(&BoardQuery::default(), &floor, &scope_visibility);
    let now = monti::domain::time::now_ms();

    // Warm up, then measure.
    let mut size = 0;
    for _ in 0..20 {
        size = render_board(&floor, &view, &labels, &bands, now).groups.len();
    }
    let mut times: Vec<Duration> = (0..300)
        .map(|_| {
            let started = Instant::now();
            let html = render_board(&floor, &view, &labels, &bands, now);
            std::hint::black_box(&html);
            started.elapsed()
        })
        .collect();
    times.sort();
    let shown = render_board(&floor, &view, &labels, &bands, now).agents;
    println!("board render, {shown} agents grouped by team (300 runs):");
    println!(
        "  median {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.0} KiB of HTML",
        percentile(&times, 0.5).as_secs_f64() * 1000.0,
        percentile(&times, 0.99).as_secs_f64() * 1000.0,
        times.last().unwrap().as_secs_f64() * 1000.0,
        size as f64 / 1024.0
    );

    // One agent change on the wire: the row (the same bytes for every viewer it concerns),
    // framed as the SSE message a board receives, and the JSON delta a machine stream receives.
    let state = floor.live.lock().unwrap();
    let mut row_bytes = 0usize;
    let mut json_bytes = 0usize;
    let mut row = String::new();
    for (slot, agent) in state.agents().iter().enumerate() {
        row.clear();
        agent_row(
            &mut row,
            &labels,
            agent,
            RowGroups {
                team: agent.member.team,
                location: agent.member.location,
                queues: &agent.member.queues,
            },
            now,
            "",
        );
        row_bytes += row.len();
        let (team, location) = floor.agent_groups[slot].clone();
        json_bytes += serde_json::json!({
            "id": &*agent.id, "name": &*agent.name, "team_id": team, "location_id": location,
            "state": agent.state.as_str(), "reason": agent.reason.as_deref(),
            "since": monti::domain::time::to_rfc3339(agent.since_ms),
        })
        .to_string()
        .len();
    }
    let n = state.agents().len().max(1);
    // "event: agents\ndata: …\nid: <epoch>-<seq>\n\n"
    let sse_framing = "event: agents\ndata: \nid: 1764000000000-12345\n\n".len();
    let json_framing = r#"event: delta
data: {"seq":"1764000000000-12345","at":"2026-11-24T21:00:00.000Z","agents":[],"queues":[]}
id: 1764000000000-12345

"#
    .len();
    println!("bytes on the wire for one agent change (average over {n} agents):");
    println!(
        "  board (HTML row + SSE framing): {} bytes; machine stream (JSON + framing): {} bytes",
        row_bytes / n + sse_framing,
        json_bytes / n + json_framing
    );
    println!("  (several changes in one tick share one message's framing)");
}
