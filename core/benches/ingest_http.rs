//! Ingest over HTTP, persisted: `cargo bench --bench ingest_http`.
//!
//! Starts `monti serve` (release) on a fresh SQLite data directory with the demo's 2,000-agent
//! floor, generates simulated events (a realistic mix: logins, states, queue callers, calls),
//! and posts them as NDJSON batches over several connections. Every event is answered only
//! after it is committed, and the count in the database is checked at the end.
//! Target (issue 4): ≥ 50,000 events/s on SQLite.
//!
//! Knobs: AGENTS (2000), EVENTS (600000), BATCH (5000), CONNECTIONS (4).

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use support::{Server, env_or, setup};

fn main() {
    let agents: usize = env_or("AGENTS", 2000);
    let wanted: usize = env_or("EVENTS", 600_000);
    let batch: usize = env_or("BATCH", 5000);
    let connections: usize = env_or("CONNECTIONS", 4);
    let setup = setup(1, agents);
    let tenant = &setup.tenants[0];

    // Simulated events from up to six days back until there are enough.
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
    let bodies: Vec<Vec<u8>> = events
        .chunks(batch)
        .map(|chunk| {
            let mut body = Vec::with_capacity(chunk.len() * 220);
            for e in chunk {
                serde_json::to_writer(&mut body, e).unwrap();
                body.push(b'\n');
            }
            body
        })
        .collect();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "{} simulated events ({:.0} bytes each on average) in {} batches of {batch}, {connections} connections",
        events.len(),
        bytes as f64 / events.len() as f64,
        bodies.len()
    );

    let server = Server::start(&setup);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (accepted, elapsed) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{}/api/v1/events", server.base);
        // The first request builds the tenant's floor; it is not part of the measurement.
        let warm = client
            .post(&url)
            .bearer_auth(&tenant.token)
            .header("content-type", "application/x-ndjson")
            .body("")
            .send()
            .await
            .unwrap();
        assert!(warm.status().is_success(), "{}", warm.status());
        let queue = std::sync::Arc::new(std::sync::Mutex::new(bodies.into_iter()));
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..connections {
            let queue = queue.clone();
            let client = client.clone();
            let url = url.clone();
            let token = tenant.token.clone();
            workers.push(tokio::spawn(async move {
                let mut accepted = 0u64;
                loop {
                    let Some(body) = queue.lock().unwrap().next() else {
                        return accepted;
                    };
                    let reply = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert!(reply.status().is_success(), "{}", reply.status());
                    let result: serde_json::Value = reply.json().await.unwrap();
                    assert_eq!(result["rejected"], 0, "{}", result["results"][0]);
                    accepted += result["accepted"].as_u64().unwrap();
                }
            }));
        }
        let mut accepted = 0;
        for w in workers {
            accepted += w.await.unwrap();
        }
        (accepted, started.elapsed())
    });
    let (rss, peak) = server.memory_mib();
    drop(server);
    // Persisted: the events are in the database after the server is gone.
    let stored: i64 = runtime.block_on(async {
        let config = monti::config::Config {
            data_dir: setup.dir.path().to_path_buf(),
            ..Default::default()
        };
        // Counted behind the server's back, as an operator would with the database's own tool.
        let url = config.database_url();
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
                .fetch_one(&pool)
                .await
                .unwrap()
        } else {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    });
    println!(
        "ingest over HTTP, SQLite: {accepted} events accepted in {:.2} s = {:.0} events/s ({:.1} MB/s); {stored} rows stored; server RSS {rss:.0} MiB (peak {peak:.0} MiB)",
        elapsed.as_secs_f64(),
        accepted as f64 / elapsed.as_secs_f64(),
        bytes as f64 / elapsed.as_secs_f64() / 1e6,
    );
    assert_eq!(stored as u64, accepted, "every accepted event is stored");
}
