//! Extism running the pass-through plugin on the workload of Monti's `plugin_invoke` benchmark:
//! batches of 256 agent-state events, one thread. Prints the same lines.

use std::hint::black_box;
use std::time::{Duration, Instant};

use extism::{Manifest, Plugin, PluginBuilder, Wasm};
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 256;

#[derive(Serialize, Deserialize, Clone)]
struct AgentStateChange {
    agent: String,
    state: String,
    reason: Option<String>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "snake_case")]
enum Body {
    AgentState(AgentStateChange),
}

#[derive(Serialize, Deserialize, Clone)]
struct Event {
    id: String,
    source: String,
    at_ms: i64,
    body: Body,
}

fn batch() -> Vec<Event> {
    (0..BATCH)
        .map(|i| Event {
            id: format!("pbx-{i:08}"),
            source: "asterisk".into(),
            at_ms: 1_800_000_000_000 + i as i64,
            body: Body::AgentState(AgentStateChange {
                agent: format!("{}", 1000 + i % 200),
                state: if i % 3 == 0 { "paused" } else { "available" }.into(),
                reason: (i % 3 == 0).then(|| "lunch".to_owned()),
            }),
        })
        .collect()
}

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

/// Typed events in, typed events out, as a host uses a plugin (serialising is part of the call).
fn call(plugin: &mut Plugin, events: &[Event]) -> Vec<Event> {
    let input = serde_json::to_vec(events).unwrap();
    let output = plugin.call::<&[u8], &[u8]>("handle_events", &input).unwrap();
    serde_json::from_slice(output).unwrap()
}

fn micros(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let wasm = std::env::args().nth(1).expect("usage: extism-bench PLUGIN.wasm");
    let manifest = Manifest::new([Wasm::file(&wasm)]);
    let builder = || PluginBuilder::new(manifest.clone()).with_wasi(false);
    let mut plugin = builder().build().unwrap();
    let events = batch();
    let round = Duration::from_millis(400);
    let empty = per_call(round, || {
        black_box(call(&mut plugin, &[]));
    });
    let compiled = extism::CompiledPlugin::new(builder()).unwrap();
    let fresh_empty = per_call(round, || {
        let mut fresh = Plugin::new_from_compiled(&compiled).unwrap();
        black_box(call(&mut fresh, &[]));
    });
    let full = per_call(round, || {
        let out = call(&mut plugin, &events);
        assert_eq!(out.len(), BATCH);
        black_box(out);
    });
    let rate = |per_batch: Duration| BATCH as f64 / per_batch.as_secs_f64();
    println!("extism: pass-through plugin, batches of {BATCH} agent-state events (JSON), one thread");
    println!("  kept instance, empty batch (fixed cost)   {:>12}", micros(empty));
    println!("  new instance from compiled, empty batch   {:>12}", micros(fresh_empty));
    println!(
        "  kept instance, batch of {BATCH}               {:>12}   {:>10.0} events/s",
        micros(full),
        rate(full)
    );
    println!("  per event: {:.0} ns", full.as_nanos() as f64 / BATCH as f64);
}
