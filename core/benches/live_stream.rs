//! End-to-end latency and memory of the live streams: `cargo bench --bench live_stream`.
//!
//! Starts `monti serve` (release) on a fresh SQLite data directory with TENANTS tenants of AGENTS
//! simulated agents each, opens CLIENTS streams (`GET /api/v1/live/stream`, spread over the
//! tenants), and posts RATE agent state changes per second for SECONDS seconds, each stamped with
//! the moment it is sent. A stream's latency for a change is when the delta carrying it arrives
//! minus that stamp: ingest, storage, the floor, the tick (250 ms), rendering and delivery.
//! At the end it prints latency percentiles and the server's resident memory.
//!
//! Targets (issue 4): p99 ≤ 350 ms with 1 × 2,000 agents, 200 events/s, 500 clients;
//! report 100 × 1,000 agents, 10,000 events/s, 2,000 clients; RSS ≤ 300 MB with 100,000 agents
//! and 2,000 streams:
//!
//!   cargo bench --bench live_stream
//!   TENANTS=100 AGENTS=1000 CLIENTS=2000 RATE=10000 cargo bench --bench live_stream

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Server, env_or, percentile, setup};

const STATES: [&str; 4] = ["available", "paused", "on_direct_call", "wrap_up"];

#[derive(Default)]
struct Tally {
    deliveries: AtomicU64,
    resyncs: AtomicU64,
    errors: AtomicU64,
}

fn main() {
    let tenants: usize = env_or("TENANTS", 1);
    let agents: usize = env_or("AGENTS", 2000);
    let clients: usize = env_or("CLIENTS", 500);
    let rate: usize = env_or("RATE", 200);
    let seconds: u64 = env_or("SECONDS", 20);
    println!("{tenants} tenant(s) × {agents} agents, {clients} streams, {rate} changes/s for {seconds} s");
    let setup = setup(tenants, agents);
    let server = Server::start(&setup);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tally = Arc::new(Tally::default());
    let (latencies, rss, peak, sent, floors_rss, streams_rss) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        // Make every tenant's floor before the clock starts.
        for t in &setup.tenants {
            let reply = client
                .get(format!("{}/api/v1/live/snapshot", server.base))
                .bearer_auth(&t.token)
                .send()
                .await
                .unwrap();
            assert!(reply.status().is_success());
        }
        let (floors_rss, _) = server.memory_mib();
        let (sink, mut samples) = tokio::sync::mpsc::unbounded_channel::<Vec<f64>>();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut streams = Vec::new();
        for c in 0..clients {
            let tenant = &setup.tenants[c % tenants];
            let request = client
                .get(format!("{}/api/v1/live/stream", server.base))
                .bearer_auth(&tenant.token);
            let tally = tally.clone();
            let sink = sink.clone();
            let mut stopped = stopped.clone();
            streams.push(tokio::spawn(async move {
                let mut response = match request.send().await {
                    Ok(r) if r.status().is_success() => r,
                    _ => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                let mut buffer = String::new();
                let mut mine = Vec::new();
                loop {
                    let chunk = tokio::select! {
                        c = response.chunk() => c,
                        _ = stopped.changed() => break,
                    };
                    let Ok(Some(chunk)) = chunk else { break };
                    let received = monti::domain::time::now_ms();
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buffer.find("\n\n") {
                        let block: String = buffer.drain(..end + 2).collect();
                        let (mut event, mut data) = ("", String::new());
                        for line in block.lines() {
                            match line.split_once(':') {
                                Some(("event", v)) => event = v.trim(),
                                Some(("data", v)) => data.push_str(v.strip_prefix(' ').unwrap_or(v)),
                                _ => {}
                            }
                        }
                        if event == "resync" {
                            tally.resyncs.fetch_add(1, Ordering::Relaxed);
                        }
                        if event != "delta" {
                            continue;
                        }
                        let Ok(delta) = serde_json::from_str::<serde_json::Value>(&data) else {
                            continue;
                        };
                        for agent in delta["agents"].as_array().into_iter().flatten() {
                            let since = agent["since"]
                                .as_str()
                                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                                .map(|t| t.timestamp_millis());
                            if let Some(since) = since {
                                mine.push((received - since) as f64);
                                tally.deliveries.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                let _ = sink.send(mine);
            }));
        }
        drop(sink);
        // Let every stream connect (and get its snapshot) before the clock starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (streams_rss, _) = server.memory_mib();

        // The producer: every 50 ms, RATE/20 changes spread over the tenants, each agent moving
        // to a state it is not in, stamped with the moment of sending.
        let tick = Duration::from_millis(50);
        let per_tick = (rate as f64 * tick.as_secs_f64()).round().max(1.0) as usize;
        let mut cursor = vec![0usize; tenants];
        let mut turn = vec![0usize; tenants];
        let started = Instant::now();
        let mut ticker = tokio::time::interval(tick);
        let mut sent = 0u64;
        let mut n = 0u64;
        while started.elapsed() < Duration::from_secs(seconds) {
            ticker.tick().await;
            let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let mut bodies: Vec<(usize, String)> = Vec::new();
            for i in 0..per_tick {
                let t = (n as usize + i) % tenants;
                let tenant = &setup.tenants[t];
                let agent = &tenant.extensions[cursor[t] % tenant.extensions.len()];
                cursor[t] += 1;
                if cursor[t].is_multiple_of(tenant.extensions.len()) {
                    turn[t] += 1;
                }
                let state = STATES[turn[t] % STATES.len()];
                let line = format!(
                    "{{\"id\":\"b{n}-{i}\",\"source\":\"bench\",\"at\":\"{at}\",\"type\":\"agent_state\",\"agent\":\"{agent}\",\"state\":\"{state}\"}}\n"
                );
                match bodies.iter_mut().find(|(bt, _)| *bt == t) {
                    Some((_, body)) => body.push_str(&line),
                    None => bodies.push((t, line)),
                }
            }
            n += per_tick as u64;
            let posts = bodies.into_iter().map(|(t, body)| {
                let client = client.clone();
                let url = format!("{}/api/v1/events", server.base);
                let token = setup.tenants[t].token.clone();
                async move {
                    client
                        .post(url)
                        .bearer_auth(token)
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .is_some()
                }
            });
            for ok in futures_util::future::join_all(posts).await {
                if !ok {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            sent += per_tick as u64;
        }
        // Deltas still on their way arrive within a tick or two.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let (rss, peak) = server.memory_mib();
        println!("server at the end of the load: {}", server.memory_detail());
        let _ = stop.send(true);
        for s in streams {
            let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
        }
        let mut all = Vec::new();
        while let Some(mut some) = samples.recv().await {
            all.append(&mut some);
        }
        (all, rss, peak, sent, floors_rss, streams_rss)
    });
    let mut latencies = latencies;
    latencies.sort_by(f64::total_cmp);
    let expected = sent as f64 * clients as f64 / tenants as f64;
    println!(
        "sent {sent} changes; {} deliveries to streams ({:.1}% of changes × streams of their tenant); {} resyncs; {} errors",
        latencies.len(),
        100.0 * latencies.len() as f64 / expected.max(1.0),
        tally.resyncs.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
    );
    println!(
        "latency ingest → stream (ms): p50 {:.0}, p95 {:.0}, p99 {:.0}, max {:.0}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "server memory (resident): {floors_rss:.0} MiB with every floor built; {streams_rss:.0} MiB with {clients} streams open; \
         {rss:.0} MiB at the end of the load (peak {peak:.0} MiB)"
    );
}
