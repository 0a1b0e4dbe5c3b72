//! The call history at scale: `cargo bench --bench history`.
//!
//! Loads CALLS synthetic calls (a realistic mix over the last DAYS days: answered by one of
//! the demo floor's agents, abandoned, timed out, outbound; callers' numbers and DIDs) straight
//! into a fresh database of BACKEND (`sqlite`, or `postgres` on the local server), starts the
//! release `monti serve` on it and measures over HTTP what a supervisor does: the newest page,
//! a page deep in the history, and the filters, each REPEAT times (p50, p95, max); then exports
//! EXPORT_DAYS days as CSV while sampling the server's resident memory.
//! Targets (issue 16): a page p95 < 300 ms at 10 M calls; a 1 M-call export with the server's
//! RSS growing by < 64 MB.
//!
//! Then loads AGENT_DAYS days of agent events (each agent's working day: login, rings, calls,
//! wrap-up, pauses with reasons, logout; about 290 events an agent a day) and measures the agent
//! report over 30 days: the first request (every day made from the events) and the ones after
//! (kept days), ending yesterday and ending now (today is made on every request).
//! Target (issue 16): an agent report over 30 days < 1 s.
//!
//! Knobs: BACKEND (sqlite), CALLS (10000000), DAYS (70), AGENTS (2000), REPEAT (30),
//! EXPORT_DAYS (7), AGENT_DAYS (30; 0 skips the agent report).

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{Server, env_or, percentile, setup_on};

fn mix(mut x: u64) -> u64 {
    // splitmix64: reproducible, well spread.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// One synthetic call as CSV for the loader: the `calls` columns in order.
fn call_line(out: &mut String, tenant: &str, i: u64, started: i64, queues: &[String], agents: &[String]) {
    use std::fmt::Write as _;
    let h = mix(i);
    let roll = h % 100;
    let direct = roll >= 92;
    let queue = if direct {
        ""
    } else {
        &queues[(h >> 8) as usize % queues.len()]
    };
    let agent = &agents[(h >> 20) as usize % agents.len()];
    let wait = ((h >> 32) % 150) as f64;
    let talk = 30.0 + ((h >> 40) % 600) as f64;
    let (outcome, agent, wait, talk) = match roll {
        0..=79 => ("answered", Some(agent.as_str()), Some(wait), Some(talk)),
        80..=88 => ("abandoned", None, Some(wait), None),
        89..=91 => ("timeout", None, Some(300.0), None),
        _ => ("answered", Some(agent.as_str()), None, Some(talk)),
    };
    let wait_ms = (wait.unwrap_or(0.0) * 1000.0) as i64;
    let counted = started + wait_ms;
    let ended = counted + (talk.unwrap_or(0.0) * 1000.0) as i64;
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let answered = talk.map(|_| counted.to_string()).unwrap_or_default();
    let _ = writeln!(
        out,
        "{tenant},{started}.{i},\"{queue}\",{agent},{direction},{started},{outcome},{counted},{wait},{answered},{ended},{talk},0,{wrap},+49{caller:09},49302{did:03},{disposition},{billsec}",
        agent = agent.unwrap_or_default(),
        direction = if direct { "outbound" } else { "inbound" },
        wait = num(wait),
        talk = num(talk),
        wrap = if talk.is_some() { "15" } else { "" },
        caller = (h >> 12) % 1_000_000_000,
        did = i % 40,
        disposition = if talk.is_some() { "ANSWERED" } else { "NO ANSWER" },
        billsec = talk.map(|t| (t as i64).to_string()).unwrap_or_default(),
    );
}

const COLUMNS: &str = "tenant_id, call_id, queue, agent, direction, started_at, outcome, outcome_at, wait_s, \
     answered_at, ended_at, talk_s, hold_s, wrap_s, caller, destination, disposition, billsec_s";

fn main() {
    let backend: String = env_or("BACKEND", "sqlite".to_owned());
    let calls: u64 = env_or("CALLS", 10_000_000);
    let days: i64 = env_or("DAYS", 70);
    let agents: usize = env_or("AGENTS", 2000);
    let repeat: usize = env_or("REPEAT", 30);
    let export_days: i64 = env_or("EXPORT_DAYS", 7);
    let agent_days: i64 = env_or("AGENT_DAYS", 30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let pg_url = (backend == "postgres").then(|| {
        let name = format!("monti_bench_history_{}", std::process::id());
        runtime.block_on(async {
            use sqlx::Executor as _;
            let admin = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
                .await
                .unwrap();
            admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        });
        format!("postgres://postgres@127.0.0.1:5432/{name}")
    });
    let setup = setup_on(1, agents, pg_url.as_deref());
    let tenant = &setup.tenants[0];
    let queues: Vec<String> = tenant.scenario.queues.iter().map(|q| q.name.clone()).collect();
    let now = monti::domain::time::now_ms();
    let start = now - days * 86_400_000;
    let step = (days * 86_400_000) as f64 / calls as f64;

    // Load straight into the table (the same rows the events would make), in one pass.
    let loaded = Instant::now();
    runtime.block_on(async {
        let url = pg_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", setup.dir.path().join("monti.db").display()));
        let tenant_id: String = match &pg_url {
            Some(url) => {
                use sqlx::postgres::PgPoolCopyExt as _;
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let id: String = sqlx::query_scalar("SELECT id FROM tenants")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                let mut copy = pool
                    .copy_in_raw(&format!("COPY calls ({COLUMNS}) FROM STDIN WITH (FORMAT csv)"))
                    .await
                    .unwrap();
                let mut chunk = String::with_capacity(16 << 20);
                for i in 0..calls {
                    call_line(
                        &mut chunk,
                        &id,
                        i,
                        start + (i as f64 * step) as i64,
                        &queues,
                        &tenant.extensions,
                    );
                    if chunk.len() > 15 << 20 {
                        copy.send(chunk.as_bytes()).await.unwrap();
                        chunk.clear();
                    }
                }
                copy.send(chunk.as_bytes()).await.unwrap();
                copy.finish().await.unwrap();
                sqlx::query("ANALYZE calls").execute(&pool).await.unwrap();
                pool.close().await;
                id
            }
            None => {
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                let id: String = sqlx::query_scalar("SELECT id FROM tenants")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                let mut tx = pool.begin().await.unwrap();
                let mut chunk = String::new();
                let mut i = 0;
                while i < calls {
                    chunk.clear();
                    let end = (i + 1_000).min(calls);
                    for j in i..end {
                        call_line(
                            &mut chunk,
                            &id,
                            j,
                            start + (j as f64 * step) as i64,
                            &queues,
                            &tenant.extensions,
                        );
                    }
                    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!("INSERT INTO calls ({COLUMNS}) "));
                    insert.push_values(chunk.lines(), |mut b, line| {
                        let f: Vec<&str> = line.split(',').collect();
                        let int = |s: &str| s.parse::<i64>().ok();
                        let real = |s: &str| s.parse::<f64>().ok();
                        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
                        b.push_bind(f[0].to_owned())
                            .push_bind(f[1].to_owned())
                            // Quoted, so that COPY reads an empty queue as '' rather than NULL.
                            .push_bind(f[2].trim_matches('"').to_owned())
                            .push_bind(text(f[3]))
                            .push_bind(f[4].to_owned())
                            .push_bind(int(f[5]))
                            .push_bind(f[6].to_owned())
                            .push_bind(int(f[7]))
                            .push_bind(real(f[8]))
                            .push_bind(int(f[9]))
                            .push_bind(int(f[10]))
                            .push_bind(real(f[11]))
                            .push_bind(real(f[12]))
                            .push_bind(real(f[13]))
                            .push_bind(f[14].to_owned())
                            .push_bind(f[15].to_owned())
                            .push_bind(f[16].to_owned())
                            .push_bind(int(f[17]));
                    });
                    insert.build().persistent(false).execute(&mut *tx).await.unwrap();
                    i = end;
                    if i % 1_000_000 == 0 {
                        eprintln!("  {i} calls loaded ({:.0} s)", loaded.elapsed().as_secs_f64());
                    }
                }
                tx.commit().await.unwrap();
                sqlx::query("ANALYZE").execute(&pool).await.unwrap();
                pool.close().await;
                id
            }
        };
        let _ = tenant_id;
    });
    println!(
        "{calls} calls over {days} days loaded into {backend} in {:.0} s",
        loaded.elapsed().as_secs_f64()
    );
    if agent_days > 0 {
        let loaded = Instant::now();
        let url = pg_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", setup.dir.path().join("monti.db").display()));
        let events = runtime.block_on(load_agent_events(&url, &tenant.extensions, now, agent_days));
        println!(
            "{events} agent events over {agent_days} days loaded in {:.0} s",
            loaded.elapsed().as_secs_f64()
        );
    }

    // A first report over a month may take longer than a page: it is measured, not cut off.
    // No days made ahead in the background: "first" is what a report that finds no kept days
    // costs (the background pass pays it once), the requests after it what one that finds them
    // costs.
    let mut env = vec![
        ("MONTI_HTTP__REQUEST_TIMEOUT", "10m"),
        ("MONTI_REPORTS__DAYS_AHEAD", "0"),
    ];
    if let Some(url) = &pg_url {
        env.push(("MONTI_DATABASE_URL", url.as_str()));
    }
    let server = Server::start_with(&setup, &env);
    let client = reqwest::Client::new();
    let iso = |ms: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let month = format!("from={}&to={}", iso(now - 30 * 86_400_000), iso(now));
    let deep = format!("from={}&to={}", iso(start), iso(start + 86_400_000 * 5));
    let (agent_id, team_id, queue_id) = runtime.block_on(async {
        let get = |path: String| {
            let client = client.clone();
            let token = tenant.token.clone();
            let base = server.base.clone();
            async move {
                client
                    .get(format!("{base}{path}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json::<serde_json::Value>()
                    .await
                    .unwrap()
            }
        };
        let agent = get(format!("/api/v1/agents?extension={}", tenant.extensions[7])).await;
        let teams = get("/api/v1/teams?limit=1".into()).await;
        let queues = get("/api/v1/queues?limit=1".into()).await;
        (
            agent["items"][0]["id"].as_str().unwrap_or_default().to_owned(),
            teams["items"][0]["id"].as_str().unwrap_or_default().to_owned(),
            queues["items"][0]["id"].as_str().unwrap_or_default().to_owned(),
        )
    });
    let cases: Vec<(&str, String)> = vec![
        ("newest page, last 30 days", month.clone()),
        ("a page 65 days back", deep.clone()),
        ("one queue", format!("{month}&queue={queue_id}")),
        ("one agent", format!("{month}&agent={agent_id}")),
        ("one team", format!("{month}&team={team_id}")),
        (
            "abandoned in one queue",
            format!("{month}&queue={queue_id}&outcome=abandoned"),
        ),
        ("caller prefix", format!("{month}&caller=%2B491234")),
        ("DID (destination)", format!("{month}&destination=49302017")),
        ("longer than 10 minutes", format!("{month}&min_duration=620")),
        ("page 2 via cursor", String::new()),
    ];
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>6}",
        "page of 50", "p50 ms", "p95 ms", "max ms", "rows"
    );
    runtime.block_on(async {
        let fetch = |query: String| {
            let client = client.clone();
            let token = tenant.token.clone();
            let base = server.base.clone();
            async move {
                let started = Instant::now();
                let reply = client
                    .get(format!("{base}/api/v1/calls?{query}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                let status = reply.status();
                let body: serde_json::Value = reply.json().await.unwrap();
                assert!(status.is_success(), "{query}: {body}");
                (started.elapsed().as_secs_f64() * 1000.0, body)
            }
        };
        let mut cursor = String::new();
        for (name, query) in &cases {
            let query = if query.is_empty() {
                format!("{month}&cursor={cursor}")
            } else {
                query.clone()
            };
            let mut times = Vec::with_capacity(repeat);
            let mut rows = 0;
            for _ in 0..repeat {
                let (ms, body) = fetch(query.clone()).await;
                times.push(ms);
                rows = body["items"].as_array().map_or(0, Vec::len);
                if cursor.is_empty() {
                    cursor = body["next_cursor"].as_str().unwrap_or_default().to_owned();
                }
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{name:<28} {:>9.1} {:>9.1} {:>9.1} {rows:>6}",
                percentile(&times, 0.5),
                percentile(&times, 0.95),
                times.last().copied().unwrap_or_default()
            );
        }
    });

    // Queue reports over 30 days at 30-minute buckets: one queue, and every queue.
    let report_month = format!("from={}&to={}&bucket=30m", iso(now - 30 * 86_400_000), iso(now));
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>6}",
        "queue report, 30 days", "p50 ms", "p95 ms", "max ms", "calls"
    );
    runtime.block_on(async {
        for (name, query) in [
            ("one queue, 30 min buckets", format!("{report_month}&queue={queue_id}")),
            ("all queues, 30 min buckets", report_month.clone()),
            (
                "all queues, by day",
                format!("from={}&to={}&bucket=day", iso(now - 30 * 86_400_000), iso(now)),
            ),
        ] {
            let mut times = Vec::new();
            let mut offered = 0;
            for _ in 0..repeat.min(10) {
                let started = Instant::now();
                let reply = client
                    .get(format!("{}/api/v1/reports/queues?{query}", server.base))
                    .bearer_auth(&tenant.token)
                    .send()
                    .await
                    .unwrap();
                assert!(reply.status().is_success());
                let body: serde_json::Value = reply.json().await.unwrap();
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                offered = body["queues"].as_array().map_or(0, |qs| {
                    qs.iter().map(|q| q["total"]["offered"].as_u64().unwrap_or(0)).sum()
                });
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{name:<28} {:>9.1} {:>9.1} {:>9.1} {offered:>6}",
                percentile(&times, 0.5),
                percentile(&times, 0.95),
                times.last().copied().unwrap_or_default()
            );
        }
    });

    // Agent reports over 30 days: the first request makes every day, later ones read them.
    if agent_days > 0 {
        println!(
            "{:<36} {:>9} {:>9} {:>9} {:>6}",
            "agent report, 30 days", "first ms", "p50 ms", "p95 ms", "agents"
        );
        let day = 86_400_000;
        let yesterday_end = now - now.rem_euclid(day);
        runtime.block_on(async {
            for (name, query) in [
                (
                    "all agents, ending yesterday",
                    format!(
                        "from={}&to={}&tz=UTC",
                        iso(yesterday_end - 30 * day),
                        iso(yesterday_end)
                    ),
                ),
                (
                    "all agents, ending now",
                    format!("from={}&to={}&tz=UTC", iso(yesterday_end - 29 * day), iso(now)),
                ),
            ] {
                let mut times = Vec::new();
                let mut agents = 0;
                for _ in 0..repeat.min(10) {
                    let started = Instant::now();
                    let reply = client
                        .get(format!("{}/api/v1/reports/agents?{query}", server.base))
                        .bearer_auth(&tenant.token)
                        .send()
                        .await
                        .unwrap();
                    assert!(
                        reply.status().is_success(),
                        "{}",
                        reply.text().await.unwrap_or_default()
                    );
                    let body: serde_json::Value = reply.json().await.unwrap();
                    times.push(started.elapsed().as_secs_f64() * 1000.0);
                    agents = body["agents"].as_array().map_or(0, |a| {
                        a.iter()
                            .filter(|a| a["total"]["logged_in_s"].as_f64() > Some(0.0))
                            .count()
                    });
                }
                let first = times.remove(0);
                times.sort_by(f64::total_cmp);
                println!(
                    "{name:<36} {first:>9.1} {:>9.1} {:>9.1} {agents:>6}",
                    percentile(&times, 0.5),
                    percentile(&times, 0.95),
                );
            }
        });
    }

    // The export: every call of EXPORT_DAYS days, while the server's memory is watched.
    let (rss_before, _) = server.memory_mib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let pid = server.child.id();
    let watcher = {
        let (peak, watching) = (peak.clone(), watching.clone());
        std::thread::spawn(move || {
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let kib: u64 = status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let range = format!("from={}&to={}", iso(now - export_days * 86_400_000), iso(now));
    let (bytes, lines, secs) = runtime.block_on(async {
        let started = Instant::now();
        let mut reply = client
            .get(format!("{}/api/v1/calls/export?{range}", server.base))
            .bearer_auth(&tenant.token)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success());
        let (mut bytes, mut lines) = (0usize, 0usize);
        while let Some(chunk) = reply.chunk().await.unwrap() {
            bytes += chunk.len();
            lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        (bytes, lines, started.elapsed().as_secs_f64())
    });
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    watcher.join().unwrap();
    let peak_mib = peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0;
    println!(
        "export of {export_days} days: {} calls, {:.0} MB in {secs:.1} s ({:.0} calls/s); server RSS {rss_before:.0} MiB before, peak {peak_mib:.0} MiB (+{:.0} MiB)",
        lines.saturating_sub(1),
        bytes as f64 / 1e6,
        lines as f64 / secs,
        peak_mib - rss_before
    );
    drop(server);
    if let Some(url) = pg_url {
        let name = url.rsplit('/').next().unwrap().to_owned();
        runtime.block_on(async {
            use sqlx::Executor as _;
            let admin = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
                .await
                .unwrap();
            let _ = admin
                .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
                .await;
        });
    }
}

/// One agent's working day as (at ms, kind, body): login at 08:00 (spread by agent), a call
/// about every six minutes (a ring; one in twenty missed, the others answered, talked, wrapped
/// up), a pause each hour with a reason, logout after eight hours.
fn agent_day(ext: &str, day_start: i64, seed: u64, out: &mut Vec<(i64, &'static str, String)>) {
    let mut at = day_start + 8 * 3_600_000 + (mix(seed) % 1_800_000) as i64;
    let end = at + 8 * 3_600_000;
    let state = |s: &str| format!(r#"{{"type":"agent_state","agent":"{ext}","state":"{s}"}}"#);
    out.push((
        at,
        "agent_login",
        format!(r#"{{"type":"agent_login","agent":"{ext}"}}"#),
    ));
    let mut n = 0u64;
    let mut next_pause = at + 3_600_000;
    while at < end {
        n += 1;
        let r = mix(seed ^ n);
        at += 60_000 + (r % 240_000) as i64;
        out.push((at, "agent_state", state("ringing")));
        at += 5_000 + (r % 15_000) as i64;
        if r.is_multiple_of(20) {
            out.push((at, "agent_state", state("available")));
            continue;
        }
        let call = format!("b{seed}-{n}");
        out.push((
            at,
            "caller_answer",
            format!(r#"{{"type":"caller_answer","queue":"Support","call":"{call}","agent":"{ext}","wait_s":12.0}}"#),
        ));
        let talk = 60 + (r >> 8) % 240;
        at += talk as i64 * 1000;
        out.push((
            at,
            "call_end",
            format!(
                r#"{{"type":"call_end","call":"{call}","agent":"{ext}","queue":"Support","talk_s":{talk}.0,"hold_s":0.0,"wrap_s":20.0}}"#
            ),
        ));
        at += 20_000;
        out.push((at, "agent_state", state("available")));
        if at >= next_pause {
            let reason = ["break", "lunch", "training", "coaching"][(r >> 16) as usize % 4];
            out.push((
                at,
                "agent_state",
                format!(r#"{{"type":"agent_state","agent":"{ext}","state":"paused","reason":"{reason}"}}"#),
            ));
            at += 300_000 + (r % 600_000) as i64;
            out.push((at, "agent_state", state("available")));
            next_pause += 3_600_000;
        }
    }
    out.push((
        end,
        "agent_logout",
        format!(r#"{{"type":"agent_logout","agent":"{ext}"}}"#),
    ));
}

/// Loads `days` days (ending today) of every agent's working days into the events table.
async fn load_agent_events(url: &str, extensions: &[String], now: i64, days: i64) -> u64 {
    let day = 86_400_000;
    let today = now - now.rem_euclid(day);
    let mut count = 0u64;
    let mut seq = 0u64;
    let rows_of = |d: i64, a: usize, ext: &str| {
        let mut rows = Vec::new();
        agent_day(ext, today - d * day, (d as u64) << 20 | a as u64, &mut rows);
        rows.retain(|r| r.0 < now);
        rows
    };
    if url.starts_with("postgres") {
        use sqlx::postgres::PgPoolCopyExt as _;
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let tenant: String = sqlx::query_scalar("SELECT id FROM tenants")
            .fetch_one(&pool)
            .await
            .unwrap();
        let mut copy = pool
            .copy_in_raw(
                "COPY events (tenant_id, source, event_id, at, kind, agent, queue, call_id, body, received_at) \
                 FROM STDIN WITH (FORMAT csv)",
            )
            .await
            .unwrap();
        let mut chunk = String::with_capacity(16 << 20);
        for d in (0..days).rev() {
            let mut rows: Vec<(i64, &'static str, String, &String)> = extensions
                .iter()
                .enumerate()
                .flat_map(|(a, ext)| rows_of(d, a, ext).into_iter().map(move |(at, k, b)| (at, k, b, ext)))
                .collect();
            rows.sort_by_key(|r| r.0);
            {
                for (at, kind, body, ext) in rows {
                    seq += 1;
                    count += 1;
                    chunk.push_str(&format!(
                        "{tenant},bench,ae{seq},{at},{kind},{ext},,,\"{}\",{at}\n",
                        body.replace('"', "\"\"")
                    ));
                }
                if chunk.len() > 15 << 20 {
                    copy.send(chunk.as_bytes()).await.unwrap();
                    chunk.clear();
                }
            }
        }
        copy.send(chunk.as_bytes()).await.unwrap();
        copy.finish().await.unwrap();
        sqlx::query("ANALYZE events").execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let tenant: String = sqlx::query_scalar("SELECT id FROM tenants")
            .fetch_one(&pool)
            .await
            .unwrap();
        let mut tx = pool.begin().await.unwrap();
        for d in (0..days).rev() {
            // A day's events in the order ingest stores them: by time, every agent together.
            let mut rows: Vec<(i64, &'static str, String, &String)> = extensions
                .iter()
                .enumerate()
                .flat_map(|(a, ext)| rows_of(d, a, ext).into_iter().map(move |(at, k, b)| (at, k, b, ext)))
                .collect();
            rows.sort_by_key(|r| r.0);
            {
                for chunk in rows.chunks(1_000) {
                    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                        "INSERT INTO events (tenant_id, source, event_id, at, kind, agent, body, received_at) ",
                    );
                    insert.push_values(chunk, |mut b, (at, kind, body, ext)| {
                        seq += 1;
                        b.push_bind(&tenant)
                            .push_bind("bench")
                            .push_bind(format!("ae{seq}"))
                            .push_bind(*at)
                            .push_bind(*kind)
                            .push_bind(*ext)
                            .push_bind(body)
                            .push_bind(*at);
                    });
                    insert.build().persistent(false).execute(&mut *tx).await.unwrap();
                    count += chunk.len() as u64;
                }
            }
        }
        tx.commit().await.unwrap();
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
        pool.close().await;
    }
    count
}
