//! One tenant's hostile plugin must not slow another tenant's plugin down:
//! `cargo bench -p monti-plugin-test --bench plugin_isolation`.
//!
//! Tenant B's pass-through plugin takes batches of 256 events on one thread, first alone, then
//! while tenant A's plugin misbehaves without pause on another thread of the same engine —
//! endless loops, memory bombs, runaway recursion, panics, floods of logs and events, in turn.
//! Target (issue 5): B keeps at least 80 % of its undisturbed throughput. The machine has two
//! cores: A gets one, B the other, as the server's blocking pool would give them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use monti_plugin_host::wit::{AgentState, AgentStateChange, Event, EventBody};
use monti_plugin_host::{Grants, Invocation, Limits, PluginEngine};

const BATCH: usize = 256;
const HOSTILE: [&str; 8] = [
    "spin",
    "hog",
    "recurse",
    "panic",
    "emit-many",
    "log-flood",
    "huge-output",
    "kv-hog",
];

fn event(id: &str, agent: usize) -> Event {
    Event {
        id: id.into(),
        source: "pbx".into(),
        at_ms: 1_800_000_000_000,
        body: EventBody::AgentState(AgentStateChange {
            agent: format!("{}", 1000 + agent),
            state: AgentState::Available,
            reason: None,
        }),
    }
}

fn load(engine: &PluginEngine, dir: &str) -> monti_plugin_host::ValidPlugin {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wasm = monti_plugin_test::build(&root.join(dir)).expect("builds");
    engine.validate(&std::fs::read(wasm).unwrap()).expect("valid")
}

/// Tenant B's events per second over `window`.
fn tenant_b(engine: &PluginEngine, plugin: &monti_plugin_host::ValidPlugin, window: Duration) -> f64 {
    let limits = Limits::requested(&plugin.manifest);
    let batch: Vec<Event> = (0..BATCH).map(|i| event(&format!("b-{i}"), i % 100)).collect();
    let started = Instant::now();
    let mut events = 0;
    while started.elapsed() < window {
        let out = engine
            .run(
                plugin,
                Invocation::events("{}", BTreeMap::new(), batch.clone()),
                &Grants::default(),
                &limits,
            )
            .expect("B's plugin runs");
        assert_eq!(out.emitted.len(), BATCH);
        events += BATCH;
    }
    events as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let engine = PluginEngine::new(16).unwrap();
    let passthrough = load(&engine, "benches/passthrough");
    let misbehaving = load(&engine, "../../core/tests/plugins/misbehaving");
    let window = Duration::from_secs(3);

    let alone = tenant_b(&engine, &passthrough, window);

    let stop = Arc::new(AtomicBool::new(false));
    let contained = Arc::new(AtomicU64::new(0));
    let hostile = {
        let (engine, stop, contained) = (engine.clone(), stop.clone(), contained.clone());
        std::thread::spawn(move || {
            let limits = Limits::requested(&misbehaving.manifest);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let how = HOSTILE[n % HOSTILE.len()];
                n += 1;
                let ran = engine.run(
                    &misbehaving,
                    Invocation::events("{}", BTreeMap::new(), vec![event(how, 0)]),
                    &Grants::default(),
                    &limits,
                );
                // Every hostile call ends in a classified failure or a refused request.
                let refused = match &ran {
                    Err(_) => true,
                    Ok(outcome) => outcome.result.is_err() || how == "log-flood",
                };
                assert!(refused, "{how} was not contained: {ran:?}");
                contained.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let beside_hostile = tenant_b(&engine, &passthrough, window);
    stop.store(true, Ordering::Relaxed);
    hostile.join().expect("the hostile tenant's thread survives its plugin");

    println!("plugin_isolation: tenant B's pass-through plugin, batches of {BATCH}, while tenant A misbehaves");
    println!("  B alone                         {alone:>12.0} events/s");
    println!(
        "  B beside A ({} hostile calls)  {beside_hostile:>12.0} events/s   {:.1} % of alone   target ≥ 80 %",
        contained.load(Ordering::Relaxed),
        100.0 * beside_hostile / alone
    );
}
