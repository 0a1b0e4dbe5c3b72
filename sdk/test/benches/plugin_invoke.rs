//! What running a plugin costs, on one core: `cargo bench -p monti-plugin-test --bench plugin_invoke`.
//!
//! The pass-through plugin (`benches/passthrough`) emits every event it receives. Measured:
//! - the fixed cost of a call on a warm instance (an empty batch): target ≤ 2 µs;
//! - a fresh instance per batch (instantiate + call + drop): target ≤ 30 µs;
//! - events per second through the plugin in batches of 256: target ≥ 500,000 on one core;
//! - the same pass-through compiled natively, for comparison.
//!
//! Extism on the same workload is measured by `bench/extism` (its own workspace, so the product
//! does not carry a second wasmtime); docs/benchmarks.md has both side by side.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use monti_plugin_host::wit::{AgentState, AgentStateChange, Event, EventBody};
use monti_plugin_host::{Grants, Invocation, Limits, PluginEngine};

// The allocator the server runs with (core/src/main.rs): the host side of every call allocates.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 256;

fn batch() -> Vec<Event> {
    (0..BATCH)
        .map(|i| Event {
            id: format!("pbx-{i:08}"),
            source: "asterisk".into(),
            at_ms: 1_800_000_000_000 + i as i64,
            body: EventBody::AgentState(AgentStateChange {
                agent: format!("{}", 1000 + i % 200),
                state: if i % 3 == 0 {
                    AgentState::Paused
                } else {
                    AgentState::Available
                },
                reason: (i % 3 == 0).then(|| "lunch".to_owned()),
            }),
        })
        .collect()
}

/// The plugin's logic, compiled for this machine.
fn native_pass_through(batch: Vec<Event>) -> Vec<Event> {
    batch
        .into_iter()
        .map(|mut e| {
            e.source = "plugin:passthrough".into();
            e
        })
        .collect()
}

/// Runs `f` for at least `at_least`, five times; returns the median time per call.
fn per_call(at_least: Duration, mut f: impl FnMut()) -> Duration {
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let mut calls = 0u32;
        while started.elapsed() < at_least {
            for _ in 0..16 {
                f();
            }
            calls += 16;
        }
        rounds.push(started.elapsed() / calls);
    }
    rounds.sort();
    rounds[2]
}

fn micros(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let wasm = monti_plugin_test::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/passthrough"))
        .expect("the pass-through plugin builds");
    let bytes = std::fs::read(wasm).unwrap();
    let engine = PluginEngine::new(16).unwrap();
    let plugin = engine.validate(&bytes).expect("valid");
    let limits = Limits::requested(&plugin.manifest);
    let grants = Grants::default();
    let events = batch();
    let invocation = |events: Vec<Event>| Invocation::events("{}", BTreeMap::new(), events);
    let round = Duration::from_millis(400);
    // `MONTI_BENCH_PROFILE=1`: only the warm batch, for 10 s, for a profiler to look at.
    if std::env::var_os("MONTI_BENCH_PROFILE").is_some() {
        let mut warm = engine.warm(&plugin, None, &limits).unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if !warm.is_usable() {
                warm = engine.warm(&plugin, None, &limits).unwrap();
            }
            black_box(
                engine
                    .run_warm(&mut warm, invocation(events.clone()), &grants, &limits)
                    .unwrap(),
            );
        }
        return;
    }

    let mut warm = engine.warm(&plugin, None, &limits).unwrap();
    let warm_empty = per_call(round, || {
        if !warm.is_usable() {
            warm = engine.warm(&plugin, None, &limits).unwrap();
        }
        let out = engine
            .run_warm(&mut warm, invocation(Vec::new()), &grants, &limits)
            .unwrap();
        black_box(out);
    });
    let mut warm = engine.warm(&plugin, None, &limits).unwrap();
    let fresh_empty = per_call(round, || {
        black_box(engine.run(&plugin, invocation(Vec::new()), &grants, &limits).unwrap());
    });
    let warm_batch = per_call(round, || {
        if !warm.is_usable() {
            warm = engine.warm(&plugin, None, &limits).unwrap();
        }
        let out = engine
            .run_warm(&mut warm, invocation(events.clone()), &grants, &limits)
            .unwrap();
        assert_eq!(out.emitted.len(), BATCH);
        black_box(out);
    });
    let fresh_batch = per_call(round, || {
        let out = engine
            .run(&plugin, invocation(events.clone()), &grants, &limits)
            .unwrap();
        assert_eq!(out.emitted.len(), BATCH);
        black_box(out);
    });
    let native_batch = per_call(round, || {
        black_box(native_pass_through(black_box(events.clone())));
    });
    let rate = |per_batch: Duration| BATCH as f64 / per_batch.as_secs_f64();
    println!("plugin_invoke: pass-through plugin, batches of {BATCH} agent-state events, one thread");
    println!(
        "  warm instance, empty batch (fixed cost)   {:>12}   target ≤ 2 µs",
        micros(warm_empty)
    );
    println!(
        "  fresh instance, empty batch               {:>12}   target ≤ 30 µs",
        micros(fresh_empty)
    );
    println!(
        "  warm instance, batch of {BATCH}               {:>12}   {:>10.0} events/s   target ≥ 500,000",
        micros(warm_batch),
        rate(warm_batch)
    );
    println!(
        "  fresh instance, batch of {BATCH}              {:>12}   {:>10.0} events/s",
        micros(fresh_batch),
        rate(fresh_batch)
    );
    println!(
        "  native (same logic, no sandbox)            {:>12}   {:>10.0} events/s",
        micros(native_batch),
        rate(native_batch)
    );
    println!(
        "  per event: warm {:.0} ns, fresh {:.0} ns, native {:.0} ns",
        warm_batch.as_nanos() as f64 / BATCH as f64,
        fresh_batch.as_nanos() as f64 / BATCH as f64,
        native_batch.as_nanos() as f64 / BATCH as f64
    );
}
