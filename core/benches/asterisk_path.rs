//! The whole Asterisk path, end to end: `cargo bench -p monti --bench asterisk_path`.
//!
//! A simulated PBX (the AMI simulator, in this process) writes a simulated contact-center day
//! over TCP to `monti serve` (release, SQLite, another process). There the host's stream
//! hands the lines to the Asterisk connector (`.wasm`, warm), which emits Monti events; they are
//! stored and applied to the live floor. Measured: from the first line sent until the floor
//! shows the last one — AMI messages per second, and Monti events stored per second.
//!
//! The traffic is sent in chunks; after each the PBX pauses a marker member with the chunk's
//! number as the reason, and the chunk counts as done when the board's snapshot shows it.
//!
//! Knobs: AGENTS (2000), EVENTS (300000 simulated events, rendered as AMI), CHUNK (40000 AMI
//! messages).

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use monti::asterisk::AmiSimulator;
use serde_json::json;
use support::{Server, env_or, setup};

fn main() {
    let agents: usize = env_or("AGENTS", 2000);
    let wanted: usize = env_or("EVENTS", 300_000);
    let chunk: usize = env_or("CHUNK", 40_000);
    let wasm = monti_plugin_test::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/asterisk"))
        .expect("the connector builds (rustup target add wasm32-wasip2)");
    let setup = setup(1, agents);
    let tenant = &setup.tenants[0];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // A day of the simulated floor, as the PBX would report it. A second simulator renders it
    // (its members are the day's end state); the one the connector talks to starts empty, but
    // for the marker.
    let now = monti::domain::time::now_ms();
    let start = now - 6 * 86_400_000;
    let params = monti::sim::SimParams {
        run_id: "bench".into(),
        ..Default::default()
    };
    let mut sim = monti::sim::Simulation::new(&tenant.scenario, params, start);
    let mut events = Vec::with_capacity(wanted);
    while events.len() < wanted && sim.now_ms() < now - 60_000 {
        let next = (sim.now_ms() + 3_600_000).min(now - 60_000);
        sim.advance(next, &mut events);
    }
    events.truncate(wanted);
    let (pbx, renderer) = runtime.block_on(async {
        (
            AmiSimulator::start("monti", "bench-pw").await.unwrap(),
            AmiSimulator::start("monti", "unused").await.unwrap(),
        )
    });
    for agent in &tenant.scenario.agents {
        let queues = agent
            .queues
            .iter()
            .filter_map(|q| tenant.scenario.queues.get(*q))
            .map(|q| (q.name.clone(), q.wrap_up_s.round() as u32))
            .collect();
        renderer.set_queues(&agent.extension, queues);
    }
    let messages: Vec<String> = events.iter().flat_map(|e| renderer.render(e)).collect();
    let lines: usize = messages.iter().map(|m| m.lines().count()).sum();
    println!(
        "{} simulated events → {} AMI messages ({:.1} lines each), {agents} agents, chunks of {chunk}",
        events.len(),
        messages.len(),
        lines as f64 / messages.len() as f64
    );
    pbx.add_member("bench-marker", "PJSIP/9999", "marker");

    let slug = tenant.slug.as_str();
    let private = format!("[\"{slug}\"]");
    let server = Server::start_with(
        &setup,
        &[
            ("MONTI_PLUGINS__PRIVATE_NETWORKS", private.as_str()),
            ("MONTI_PLUGINS__TENANT_QUOTA__INVOCATIONS", "1000000000"),
            ("MONTI_PLUGINS__TENANT_QUOTA__EVENTS", "1000000000"),
        ],
    );
    let (elapsed, chunks) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let token = &tenant.token;
        let api = |path: &str| format!("{}/api/v1{path}", server.base);
        let marker = client
            .post(api("/agents"))
            .bearer_auth(token)
            .json(&json!({ "name": "Marker", "extension": "9999" }))
            .send()
            .await
            .unwrap();
        assert_eq!(marker.status(), 201);
        let installed = client
            .post(api("/plugins"))
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(std::fs::read(&wasm).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(installed.status(), 201, "{}", installed.text().await.unwrap());
        let configured = client
            .patch(api("/plugins/asterisk"))
            .bearer_auth(token)
            .json(&json!({
                "config": { "host": "127.0.0.1", "port": pbx.port(), "username": "monti" },
                "secrets": { "password": "bench-pw" },
                "enabled": true,
                "approve_capabilities": true,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(configured.status(), 200, "{}", configured.text().await.unwrap());
        // The marker shows once the connector is connected and in step.
        let marked = |n: usize| {
            let client = client.clone();
            let url = api("/live/snapshot");
            async move {
                let reason = format!("mark-{n}");
                let started = Instant::now();
                loop {
                    let snapshot: serde_json::Value = client
                        .get(&url)
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let shown = snapshot["agents"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|a| a["name"] == json!("Marker") && a["reason"] == json!(reason));
                    if shown {
                        return;
                    }
                    assert!(started.elapsed() < Duration::from_secs(120), "{reason} never showed");
                    // Not too often: a snapshot of the whole floor costs the server (one of two cores).
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        pbx.pause("PJSIP/9999", true, "mark-0");
        marked(0).await;
        let started = Instant::now();
        let mut chunks = 0;
        for (n, part) in messages.chunks(chunk).enumerate() {
            pbx.send_text(part.iter().cloned());
            pbx.pause("PJSIP/9999", true, &format!("mark-{}", n + 1));
            marked(n + 1).await;
            chunks += 1;
        }
        (started.elapsed(), chunks)
    });
    let (rss, peak) = server.memory_mib();
    drop(server);
    let stored: i64 = runtime.block_on(async {
        let config = monti::config::Config {
            data_dir: setup.dir.path().to_path_buf(),
            ..Default::default()
        };
        // Counted behind the server's back, as an operator would with the database's own tool.
        let pool = sqlx::SqlitePool::connect(&config.database_url()).await.unwrap();
        let count = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events WHERE source = 'plugin:asterisk'")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        count
    });
    let seconds = elapsed.as_secs_f64();
    println!(
        "PBX → connector → stored and live, SQLite: {} AMI messages in {chunks} chunks in {seconds:.2} s = {:.0} AMI messages/s ({:.0} lines/s); {stored} Monti events stored = {:.0} events/s; server RSS {rss:.0} MiB (peak {peak:.0} MiB)",
        messages.len(),
        messages.len() as f64 / seconds,
        lines as f64 / seconds,
        stored as f64 / seconds,
    );
}
