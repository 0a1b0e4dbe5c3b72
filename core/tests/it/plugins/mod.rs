//! The plugin host with real components: the example plugin built from `examples/plugins/minimal`
//! and a plugin that misbehaves on request (`tests/plugins/misbehaving`), both compiled here with
//! `cargo build --target wasm32-wasip2` and run in the same engine Monti uses.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::TimeZone;
use monti::domain::events::{AgentState, Event, EventBody};
use monti::plugins::convert::{self, to_wit};
use monti::plugins::{FailureKind, Grants, Invocation, Limits, PluginEngine};

mod authoring;
mod capabilities;
mod engine;
mod management;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds a plugin package for wasm32-wasip2 (once per test run) and returns its bytes.
pub(crate) fn component(package: &str) -> Vec<u8> {
    static BUILT: OnceLock<Mutex<BTreeMap<String, Vec<u8>>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap();
    if let Some(bytes) = built.get(package) {
        return bytes.clone();
    }
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("target"));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2", "-p", package])
        .current_dir(workspace())
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "building {package} for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );
    let file = target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    built.insert(package.to_owned(), bytes.clone());
    bytes
}

/// Stores a validated package and installs it (disabled) in the scope's tenant, as
/// `monti plugin install` does.
async fn install_package(
    store: &monti::store::Store,
    scope: &monti::store::TenantScope,
    plugin: &monti::plugins::ValidPlugin,
    bytes: &[u8],
    config: &str,
) -> monti::store::plugins::Installation {
    monti::store::plugins::store_package(store, &plugin.digest, &plugin.manifest, bytes)
        .await
        .unwrap();
    monti::store::plugins::install(store, scope, &plugin.digest, config)
        .await
        .unwrap()
}

fn engine() -> Arc<PluginEngine> {
    static ENGINE: OnceLock<Arc<PluginEngine>> = OnceLock::new();
    ENGINE.get_or_init(|| PluginEngine::new(32).expect("engine")).clone()
}

fn event(id: &str, n: i64, body: EventBody) -> Event {
    Event {
        v: 1,
        id: id.into(),
        source: "test".into(),
        at: chrono::Utc.timestamp_opt(1_800_000_000 + n, 0).unwrap(),
        body,
    }
}

fn call_end(id: &str, n: i64, agent: &str) -> Event {
    event(
        id,
        n,
        EventBody::CallEnd {
            call: format!("c-{id}"),
            agent: agent.into(),
            queue: Some("Sales".into()),
            talk_s: 60.0,
            hold_s: 0.0,
            wrap_s: Some(5.0),
        },
    )
}

fn leb_read(bytes: &[u8], at: &mut usize) -> usize {
    let (mut value, mut shift) = (0usize, 0);
    loop {
        let byte = bytes[*at];
        *at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
        shift += 7;
    }
}

fn leb_write(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Rewrites a module or component: `edit` sees every custom section (name, payload) and may
/// return a new payload; core modules and components nested in a component are visited too.
/// Sees a custom section (name, payload) and may give a new payload.
type SectionEdit<'a> = dyn FnMut(&str, &[u8]) -> Option<Vec<u8>> + 'a;

fn rewrite_custom(binary: &[u8], edit: &mut SectionEdit<'_>) -> Vec<u8> {
    let component = binary[6..8] == [1, 0];
    let mut out = binary[..8].to_vec();
    let mut at = 8;
    while at < binary.len() {
        let id = binary[at];
        at += 1;
        let size = leb_read(binary, &mut at);
        let payload = &binary[at..at + size];
        at += size;
        let replaced = if id == 0 {
            let mut inner = 0;
            let length = leb_read(payload, &mut inner);
            let name = String::from_utf8_lossy(&payload[inner..inner + length]).into_owned();
            edit(&name, &payload[inner + length..]).map(|data| {
                let mut section = Vec::new();
                leb_write(name.len(), &mut section);
                section.extend_from_slice(name.as_bytes());
                section.extend_from_slice(&data);
                section
            })
        } else if component && (id == 1 || id == 4) {
            Some(rewrite_custom(payload, edit))
        } else {
            None
        };
        let section = replaced.as_deref().unwrap_or(payload);
        out.push(id);
        leb_write(section.len(), &mut out);
        out.extend_from_slice(section);
    }
    out
}

/// The `monti-plugin` custom section of a component (its manifest).
fn manifest_section(component: &[u8]) -> Vec<u8> {
    let mut found = None;
    rewrite_custom(component, &mut |name, data| {
        if name == "monti-plugin" {
            found = Some(data.to_vec());
        }
        None
    });
    found.expect("a manifest section")
}

/// The same component with another manifest: `manifest` with `capabilities` lines added to its
/// `[capabilities]` table (a new version of the same plugin, as an upgrade would bring).
fn with_manifest(component: &[u8], manifest: &str, capabilities: &str) -> Vec<u8> {
    let text = manifest.replacen("[capabilities]\n", &format!("[capabilities]\n{capabilities}\n"), 1);
    rewrite_custom(component, &mut |name, _| {
        (name == "monti-plugin").then(|| text.as_bytes().to_vec())
    })
}

fn misbehave(how: &str, limits: &Limits) -> Result<monti::plugins::Outcome, monti::plugins::Failure> {
    misbehave_with(how, &Grants::default(), limits)
}

/// Runs the misbehaving plugin on one event whose id says what to do.
fn misbehave_with(
    how: &str,
    grants: &Grants,
    limits: &Limits,
) -> Result<monti::plugins::Outcome, monti::plugins::Failure> {
    let engine = engine();
    let plugin = engine.validate(&component("monti-test-misbehaving")).expect("valid");
    engine.run(
        &plugin,
        Invocation::events(
            "",
            BTreeMap::new(),
            vec![to_wit(&event(how, 0, EventBody::AgentLogin { agent: "1001".into() }))],
        ),
        grants,
        limits,
    )
}
