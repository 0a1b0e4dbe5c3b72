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

#[test]
fn the_example_plugin_counts_calls_and_emits_a_break() {
    let engine = engine();
    let plugin = engine
        .validate(&component("monti-example-minimal"))
        .expect("a valid plugin");
    assert!(plugin.digest.starts_with("sha256:"));
    // The manifest travels inside the component.
    assert_eq!(
        (plugin.manifest.id.as_str(), plugin.manifest.version.as_str()),
        ("wellbeing", "1.0.0")
    );
    assert_eq!(plugin.manifest.limits.cpu_ms, 50);
    assert_eq!(
        plugin.manifest.config.as_ref().unwrap()["properties"]["pause_after"]["default"],
        serde_json::json!(10)
    );
    let run = |kv: BTreeMap<String, Vec<u8>>, events: Vec<Event>| {
        engine
            .run(
                &plugin,
                Invocation::events(r#"{"pause_after": 3}"#, kv, events.iter().map(to_wit).collect()),
                &Grants::default(),
                &Limits::default(),
            )
            .expect("runs")
    };
    let first = run(
        BTreeMap::new(),
        vec![
            call_end("a", 1, "1001"),
            call_end("b", 2, "1001"),
            call_end("c", 3, "1002"),
        ],
    );
    assert_eq!(first.result, Ok(()));
    assert!(first.emitted.is_empty());
    assert_eq!(first.kv.get("calls/1001").map(Vec::as_slice), Some(&b"2"[..]));
    // The store carries over to the next batch (the host persists it between calls).
    let second = run(first.kv, vec![call_end("d", 4, "1001")]);
    assert_eq!(second.result, Ok(()));
    let (emitted, dropped) = convert::emitted(second.emitted.clone());
    assert_eq!((emitted.len(), dropped), (1, 0));
    let emitted = &emitted[0];
    assert_eq!(emitted.id, "wellbeing-d");
    assert_eq!(emitted.source, "plugin:wellbeing");
    assert_eq!(emitted.at_ms(), 1_800_000_004_000);
    assert_eq!(
        emitted.body,
        EventBody::AgentState {
            agent: "1001".into(),
            state: AgentState::Paused,
            reason: Some("wellbeing".into())
        }
    );
    assert!(emitted.validate(emitted.at_ms()).is_ok(), "a valid Monti event");
    assert!(!second.kv.contains_key("calls/1001"), "the count starts over");
    assert!(
        second
            .logs
            .iter()
            .any(|l| l.level == "info" && l.message.contains("time for a break")),
        "{:?}",
        second.logs
    );
    assert!(second.memory_high_water > 0 && second.memory_high_water < 16 << 20);
    // A configuration the plugin cannot read is its error, reported as permanent.
    let bad = engine
        .run(
            &plugin,
            Invocation::events(
                r#"{"pause_after": "many"}"#,
                BTreeMap::new(),
                vec![to_wit(&call_end("e", 5, "1001"))],
            ),
            &Grants::default(),
            &Limits::default(),
        )
        .expect("runs");
    let error = bad.result.expect_err("refused");
    assert!(
        error.message.contains("bad configuration") && !error.retryable,
        "{error:?}"
    );
}

#[test]
fn components_are_validated_before_they_run() {
    let engine = engine();
    let garbage = engine.validate(b"not wasm at all").expect_err("refused");
    assert_eq!(garbage.kind, FailureKind::Invalid);
    // A core module is not a component.
    let module = engine.validate(b"\0asm\x01\0\0\0").expect_err("refused");
    assert!(module.message.contains("not a WebAssembly component"), "{module}");
    // A component whose header is right but whose body is not.
    let broken = engine.validate(b"\0asm\x0d\0\x01\0\x99\x99").expect_err("refused");
    assert_eq!(broken.kind, FailureKind::Invalid);
    assert!(
        broken.message.contains("not a readable WebAssembly component"),
        "{broken}"
    );
    // The real component with a manifest that does not fit it, or the host.
    let minimal = component("monti-example-minimal");
    let manifest = String::from_utf8(manifest_section(&minimal)).unwrap();
    for (changed, says) in [
        (
            manifest.replace("sdk = \"1.4.0\"", "sdk = \"2.0.0\""),
            "this host implements 1.x",
        ),
        (
            manifest.replace("world = \"event-handler\"", "world = \"billing\""),
            "unknown world",
        ),
        (
            manifest.replace("world = \"event-handler\"", "world = \"webhook\""),
            "is not a `webhook` of monti:plugin@1.4.0",
        ),
        (
            manifest.replace("[config]\ntype = \"object\"", "[config]\ntype = \"string\""),
            "JSON Schema",
        ),
        (manifest.replace("id = \"wellbeing\"", "id = \"Wellbeing!\""), "`id`"),
    ] {
        assert_ne!(changed, manifest, "{says}: the edit applies");
        let refused = engine.validate(&with_manifest(&minimal, &changed, "")).expect_err(says);
        assert_eq!(refused.kind, FailureKind::Invalid);
        assert!(refused.message.contains(says), "{says}: {refused}");
    }
    // Cut short anywhere, an upload is refused, never half-accepted.
    for cut in [9, minimal.len() / 3, minimal.len() - 1] {
        let truncated = engine.validate(&minimal[..cut]).expect_err("truncated");
        assert_eq!(truncated.kind, FailureKind::Invalid, "cut at {cut}: {truncated}");
    }

    // The same bytes twice: compiled once, the same digest.
    let bytes = component("monti-example-minimal");
    let first = engine.validate(&bytes).expect("valid");
    let started = Instant::now();
    let again = engine.validate(&bytes).expect("valid");
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "served from the digest cache"
    );
    assert_eq!((again.size, &again.digest), (bytes.len(), &first.digest));
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

#[test]
fn a_warm_instance_keeps_its_memory_between_calls_until_it_fails() {
    let engine = engine();
    let plugin = engine.validate(&component("monti-test-misbehaving")).expect("valid");
    let limits = Limits::default();
    let call = |how: &str| {
        Invocation::events(
            "",
            BTreeMap::new(),
            vec![to_wit(&event(how, 0, EventBody::AgentLogin { agent: "1001".into() }))],
        )
    };
    let counted = |outcome: &monti::plugins::Outcome| {
        outcome
            .logs
            .iter()
            .find_map(|l| l.message.strip_prefix("call number ").map(str::to_owned))
            .expect("the plugin counted")
    };
    // Fresh instances (the default) start from nothing every time.
    for _ in 0..2 {
        let fresh = engine.run(&plugin, call("count"), &Grants::default(), &limits).unwrap();
        assert_eq!(counted(&fresh), "1");
    }
    let mut warm = engine.warm(&plugin, None, &limits).expect("instantiates");
    for expected in ["1", "2", "3"] {
        let outcome = engine
            .run_warm(&mut warm, call("count"), &Grants::default(), &limits)
            .unwrap();
        assert_eq!(counted(&outcome), expected);
        // Log lines are per call, not accumulated.
        assert_eq!(outcome.logs.len(), 2, "{:?}", outcome.logs);
    }
    let failed = engine
        .run_warm(&mut warm, call("panic"), &Grants::default(), &limits)
        .expect_err("panics");
    assert_eq!(failed.kind, FailureKind::Panic);
    assert!(!warm.is_usable(), "never called again after a trap");
    let refused = engine
        .run_warm(&mut warm, call("count"), &Grants::default(), &limits)
        .expect_err("spent");
    assert_eq!(refused.kind, FailureKind::Invalid);
    let mut replacement = engine.warm(&plugin, None, &limits).unwrap();
    let outcome = engine
        .run_warm(&mut replacement, call("count"), &Grants::default(), &limits)
        .unwrap();
    assert_eq!(counted(&outcome), "1");
    // The CPU limit applies per call on a warm instance too.
    let spun = engine
        .run_warm(&mut replacement, call("spin"), &Grants::default(), &limits)
        .expect_err("stopped");
    assert_eq!(spun.kind, FailureKind::CpuDeadline);
}

#[test]
fn every_way_a_plugin_can_fail_is_classified_and_contained() {
    let limits = Limits {
        cpu: Duration::from_millis(100),
        memory_bytes: 32 << 20,
        max_emit: 1_000,
        kv_bytes: 256 * 1024,
        wall: Duration::from_secs(5),
        ..Limits::default()
    };
    let panic = misbehave("panic", &limits).expect_err("traps");
    assert_eq!(panic.kind, FailureKind::Panic);
    assert!(
        panic.message.contains("as requested"),
        "the panic message is kept: {panic}"
    );
    assert!(
        panic.logs.iter().any(|l| l.message == "asked to panic"),
        "with the log before it"
    );

    let started = Instant::now();
    let spin = misbehave("spin", &limits).expect_err("stopped");
    assert_eq!(spin.kind, FailureKind::CpuDeadline, "{spin}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stopped after {:?}",
        started.elapsed()
    );

    let hog = misbehave("hog", &limits).expect_err("refused memory");
    assert_eq!(hog.kind, FailureKind::Memory, "{hog}");

    let deep = misbehave("recurse", &limits).expect_err("overflows");
    assert_eq!(deep.kind, FailureKind::Trap, "{deep}");

    // Quotas are answered to the plugin, which decides what to do.
    let many = misbehave("emit-many", &limits).expect("runs");
    let error = many.result.expect_err("the plugin gives up");
    assert!(error.message.contains("QuotaExceeded"), "{error:?}");
    assert!(many.emitted.is_empty(), "nothing of a refused emit is kept");
    let kv = misbehave("kv-hog", &limits).expect("runs");
    assert!(kv.result.expect_err("quota").message.contains("QuotaExceeded"));
    assert!(kv.kv.values().map(Vec::len).sum::<usize>() <= 256 * 1024);

    let error = misbehave("error", &limits).expect("runs").result.expect_err("an error");
    assert!(error.retryable && error.message.contains("down"));

    let print = misbehave("print", &limits).expect("runs");
    let lines: Vec<_> = print.logs.iter().map(|l| (l.level, l.message.as_str())).collect();
    assert!(
        lines.contains(&("info", "to stdout")) && lines.contains(&("warn", "to stderr")),
        "{lines:?}"
    );

    // A flood of log lines: the newest 200 are kept, each cut at 2,000 bytes; the flood ends
    // with the call or with its CPU time.
    let flood = match misbehave("log-flood", &limits) {
        Ok(outcome) => outcome.logs,
        Err(failure) => {
            assert_eq!(failure.kind, FailureKind::CpuDeadline, "{failure}");
            failure.logs
        }
    };
    assert!(flood.len() <= 200 && flood.len() > 100, "{} lines kept", flood.len());
    assert!(flood.iter().all(|l| l.message.len() <= 2_000 + '…'.len_utf8()));
    // Output beyond what the host keeps fails the write; the plugin's print panics on it.
    let huge = misbehave("huge-output", &limits).expect_err("the write fails");
    assert_eq!(huge.kind, FailureKind::Panic, "{huge}");
    assert!(huge.message.contains("stdout"), "{huge}");

    // Each batch runs in a fresh instance: after all that, a normal call works.
    let fine = misbehave("nothing", &limits).expect("runs");
    assert_eq!(fine.result, Ok(()));
}

#[test]
fn authors_check_and_run_a_plugin_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("wellbeing.wasm");
    std::fs::write(&wasm, component("monti-example-minimal")).unwrap();
    let monti = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_monti"))
            .args(args)
            .output()
            .expect("run monti")
    };
    let check = monti(&["plugin", "check", wasm.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{said}");
    assert!(said.contains("wellbeing 1.0.0") && said.contains("event-handler") && said.contains("valid"));

    let events = dir.path().join("events.ndjson");
    std::fs::write(
        &events,
        [
            r#"{"id":"1","source":"pbx","at":"2026-11-24T10:00:00Z","type":"call_end","call":"c1","agent":"1001","talk_s":60}"#,
            r#"{"id":"2","source":"pbx","at":"2026-11-24T10:05:00Z","type":"call_end","call":"c2","agent":"1001","talk_s":60}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let run = monti(&[
        "plugin",
        "run",
        wasm.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
        "--plugin-config",
        r#"{"pause_after": 2}"#,
    ]);
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    let emitted: Event = serde_json::from_str(out.trim()).expect("one event, as JSON");
    assert_eq!(emitted.id, "wellbeing-2");
    assert!(
        err.contains("[info] agent 1001 ended 2 calls") && err.contains("ok: 1 events emitted"),
        "{err}"
    );

    // Not a component: a clear error and a failing exit.
    let not = monti(&["plugin", "check", events.to_str().unwrap()]);
    assert!(!not.status.success());
    assert!(String::from_utf8_lossy(&not.stderr).contains("not a WebAssembly component"));
    // A panicking run fails with the panic's message.
    let misbehaving = dir.path().join("misbehaving.wasm");
    std::fs::write(&misbehaving, component("monti-test-misbehaving")).unwrap();
    std::fs::write(
        &events,
        r#"[{"id":"panic","source":"t","at":"2026-11-24T10:00:00Z","type":"agent_login","agent":"1"}]"#,
    )
    .unwrap();
    let panicked = monti(&[
        "plugin",
        "run",
        misbehaving.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
    ]);
    assert!(!panicked.status.success());
    let err = String::from_utf8_lossy(&panicked.stderr);
    assert!(err.contains("failed: panic") && err.contains("as requested"), "{err}");
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

/// The whole path: PBX events posted to the ingest API reach the tenant's enabled plugin, and
/// what it emits moves the live floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_plugin_sees_the_tenants_events_and_moves_the_floor() {
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    server
        .post(
            "/api/v1/agents",
            &admin,
            serde_json::json!({ "name": "Ana", "extension": "1001" }),
        )
        .await
        .expect(201);
    let other = server.tenant("other", monti::domain::Role::TenantAdmin).await;
    server
        .post(
            "/api/v1/agents",
            &other,
            serde_json::json!({ "name": "Oli", "extension": "1001" }),
        )
        .await
        .expect(201);
    // Installed as `monti plugin install --tenant acme --enable` does.
    let bytes = component("monti-example-minimal");
    let plugin = engine().validate(&bytes).expect("valid");
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let installed = install_package(&server.store, &scope, &plugin, &bytes, r#"{"pause_after":2}"#).await;
    assert!(!installed.enabled, "installed disabled");
    monti::store::plugins::set_enabled(&server.store, &scope, "wellbeing", true)
        .await
        .unwrap();

    let at = |s: i64| (chrono::Utc::now() - chrono::Duration::seconds(60 - s)).to_rfc3339();
    let call_end = |id: &str, s: i64| serde_json::json!({ "id": id, "source": "pbx", "at": at(s), "type": "call_end", "call": id, "agent": "1001", "talk_s": 30.0 });
    for token in [&admin, &other] {
        let reply = server
            .post(
                "/api/v1/events",
                token,
                serde_json::json!([
                    { "id": "login", "source": "pbx", "at": at(0), "type": "agent_login", "agent": "1001" },
                    call_end("c1", 10),
                    call_end("c2", 20),
                ]),
            )
            .await;
        assert_eq!(reply.body["accepted"], serde_json::json!(3), "{}", reply.body);
    }
    // The plugin runs after the answer; the floor shows its break within moments.
    let started = Instant::now();
    let ana = loop {
        let snapshot = server.get("/api/v1/live/snapshot", &admin).await.body;
        let ana = snapshot["agents"][0].clone();
        if ana["reason"] == serde_json::json!("wellbeing") || started.elapsed() > Duration::from_secs(10) {
            break ana;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ana["state"], serde_json::json!("paused"), "{ana}");
    assert_eq!(ana["reason"], serde_json::json!("wellbeing"));
    // The other tenant has no plugin: its agent is untouched.
    let oli = server.get("/api/v1/live/snapshot", &other).await.body["agents"][0].clone();
    assert_eq!(oli["state"], serde_json::json!("wrap_up"), "{oli}");
    // The installation's record: a run, no failure, its log line.
    let record = monti::store::plugins::get(&server.store, &scope, "wellbeing")
        .await
        .unwrap();
    assert_eq!((record.invocations, record.failures), (1, 0));
    assert!(record.last_logs.contains("time for a break"), "{}", record.last_logs);
    // The emitted event is stored with the plugin as its source.
    let stored = monti::store::events::since(&server.store, &scope, 0).await.unwrap();
    assert!(
        stored
            .iter()
            .any(|e| e.source == "plugin:wellbeing" && e.id == "wellbeing-c2")
    );
    // Operators see it in the metrics.
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Labelled by the installation id Monti made, not the plugin's own id.
    let label = format!("{{installation=\"{}\"}}", installed.id);
    for series in [
        format!("plugin_invocations_total{label}"),
        format!("plugin_host_calls_total{label}"),
        "plugin_duration_seconds".to_owned(),
        format!("plugin_memory_high_water_bytes{label}"),
        format!("plugin_circuit_open{label} 0"),
    ] {
        assert!(metrics.contains(&series), "{series} in /metrics");
    }
    assert!(!metrics.contains("wellbeing"), "no tenant-chosen names on /metrics");
    server.stop().await;
}

#[test]
fn operators_install_enable_and_remove_plugins_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("wellbeing.wasm");
    std::fs::write(&wasm, component("monti-example-minimal")).unwrap();
    let data = dir.path().join("data");
    let monti = |args: &[&str]| common::monti_cli(&data, args);
    let (ok, _, err) = monti(&["admin", "tenant", "create", "--slug", "acme", "--name", "Acme"]);
    assert!(ok, "{err}");
    let file = wasm.to_str().unwrap();
    // A configuration outside the plugin's schema is refused with the reason.
    let (ok, _, err) = monti(&[
        "plugin",
        "install",
        file,
        "--tenant",
        "acme",
        "--plugin-config",
        r#"{"pause_after": 0}"#,
    ]);
    assert!(!ok);
    assert!(err.contains("/pause_after: must be at least 1"), "{err}");
    let (ok, out, err) = monti(&[
        "plugin",
        "install",
        file,
        "--tenant",
        "acme",
        "--plugin-config",
        r#"{"pause_after": 5}"#,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("wellbeing") && out.contains("disabled"), "{out}");
    let (ok, out, _) = monti(&["plugin", "enable", "wellbeing", "--tenant", "acme"]);
    assert!(ok && out.contains("enabled"), "{out}");
    let (_, out, _) = monti(&["plugin", "list", "--tenant", "acme"]);
    assert!(
        out.contains("wellbeing") && out.contains("1.0.0") && out.contains("enabled"),
        "{out}"
    );
    let (ok, out, _) = monti(&["plugin", "disable", "wellbeing", "--tenant", "acme"]);
    assert!(ok && out.contains("disabled"), "{out}");
    let (ok, out, _) = monti(&["plugin", "remove", "wellbeing", "--tenant", "acme"]);
    assert!(ok && out.contains("removed wellbeing"), "{out}");
    let (ok, _, err) = monti(&["plugin", "enable", "wellbeing", "--tenant", "acme"]);
    assert!(!ok && err.contains("not found"), "{err}");
}

/// A tenant admin manages plugins through the API; others may not; everything is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_admins_manage_plugins_through_the_api() {
    use serde_json::json;
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let supervisor = server.tenant("acme", monti::domain::Role::Supervisor).await;
    let upload = |token: &str, mime: &str, body: Vec<u8>| {
        server
            .client
            .post(server.url("/api/v1/plugins"))
            .bearer_auth(token)
            .header("content-type", mime)
            .body(body)
            .send()
    };
    let bytes = component("monti-example-minimal");
    let refused = upload(&supervisor, "application/wasm", bytes.clone()).await.unwrap();
    assert_eq!(refused.status(), 403);
    let wrong_type = upload(&admin, "application/json", bytes.clone()).await.unwrap();
    assert_eq!(wrong_type.status(), 415);
    let garbage = upload(&admin, "application/wasm", b"\0asm garbage".to_vec())
        .await
        .unwrap();
    assert_eq!(garbage.status(), 422);
    let problem: serde_json::Value = garbage.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not an installable plugin"),
        "{problem}"
    );

    let installed = upload(&admin, "application/wasm", bytes.clone()).await.unwrap();
    assert_eq!(installed.status(), 201);
    let installed: serde_json::Value = installed.json().await.unwrap();
    assert_eq!(installed["plugin_id"], json!("wellbeing"));
    assert_eq!(installed["enabled"], json!(false));
    assert_eq!(installed["manifest"]["limits"]["cpu_ms"], json!(50));

    // Enabling with a configuration outside the schema is refused, field by field.
    let bad = server
        .patch(
            "/api/v1/plugins/wellbeing",
            &admin,
            json!({ "enabled": true, "config": { "pause_after": 0, "colour": "red" } }),
        )
        .await;
    bad.expect_problem(422);
    let mut pointers = bad.pointers();
    pointers.sort();
    assert_eq!(pointers, vec!["/config/colour", "/config/pause_after"]);
    // What the plugin asks for must be approved before it runs.
    let unapproved = server
        .patch(
            "/api/v1/plugins/wellbeing",
            &admin,
            json!({ "enabled": true, "config": { "pause_after": 3 } }),
        )
        .await;
    unapproved.expect_problem(409);
    assert_eq!(
        unapproved.body["capabilities"],
        json!(["emit events into live monitoring", "store up to 64 KiB"])
    );
    let good = server
        .patch(
            "/api/v1/plugins/wellbeing",
            &admin,
            json!({ "enabled": true, "approve_capabilities": true, "config": { "pause_after": 3 } }),
        )
        .await;
    good.expect(200);
    assert_eq!(good.body["enabled"], json!(true));
    assert_eq!(good.body["config"], json!({ "pause_after": 3 }));
    // The same component again is an upgrade that keeps configuration and enablement.
    let again = upload(&admin, "application/wasm", bytes.clone()).await.unwrap();
    assert_eq!(again.status(), 200);
    let list = server.get("/api/v1/plugins", &supervisor).await;
    list.expect(200);
    assert_eq!(list.body["items"][0]["enabled"], json!(true));
    assert_eq!(list.body["items"][0]["config"], json!({ "pause_after": 3 }));
    // A version asking for more is installed disabled, showing only what is new, until approved.
    let newer = String::from_utf8(manifest_section(&bytes))
        .unwrap()
        .replace("version = \"1.0.0\"", "version = \"1.1.0\"");
    let more = with_manifest(&bytes, &newer, "http = [\"https://crm.example\"]");
    let upgraded = upload(&admin, "application/wasm", more).await.unwrap();
    assert_eq!(upgraded.status(), 200);
    let upgraded: serde_json::Value = upgraded.json().await.unwrap();
    assert_eq!(upgraded["version"], json!("1.1.0"));
    assert_eq!(upgraded["enabled"], json!(false));
    assert_eq!(
        upgraded["pending_capabilities"],
        json!(["send HTTP requests to https://crm.example"])
    );
    let refused = server
        .patch("/api/v1/plugins/wellbeing", &admin, json!({ "enabled": true }))
        .await;
    refused.expect_problem(409);
    assert_eq!(
        refused.body["capabilities"],
        json!(["send HTTP requests to https://crm.example"])
    );
    let approved = server
        .patch(
            "/api/v1/plugins/wellbeing",
            &admin,
            json!({ "enabled": true, "approve_capabilities": true }),
        )
        .await;
    approved.expect(200);
    assert_eq!(approved.body["pending_capabilities"], json!([]));
    assert_eq!(
        approved.body["config"],
        json!({ "pause_after": 3 }),
        "configuration kept"
    );
    // Another tenant sees nothing of it.
    let other = server.tenant("other", monti::domain::Role::TenantAdmin).await;
    assert_eq!(server.get("/api/v1/plugins", &other).await.body["items"], json!([]));
    server
        .get("/api/v1/plugins/wellbeing", &other)
        .await
        .expect_problem(404);

    // Secrets the plugin does not declare are refused; values are never shown.
    server
        .patch(
            "/api/v1/plugins/wellbeing",
            &admin,
            json!({ "secrets": { "api-token": "x" } }),
        )
        .await
        .expect_problem(422);
    let misbehaving = upload(&admin, "application/wasm", component("monti-test-misbehaving"))
        .await
        .unwrap();
    assert_eq!(misbehaving.status(), 201);
    let set = server
        .patch(
            "/api/v1/plugins/misbehaving",
            &admin,
            json!({ "secrets": { "token": "very-secret-value" } }),
        )
        .await;
    set.expect(200);
    assert_eq!(set.body["secrets"], json!(["token"]));
    assert!(!set.text.contains("very-secret-value"), "never shown: {}", set.text);
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let installation = monti::store::plugins::get(&server.store, &scope, "misbehaving")
        .await
        .unwrap();
    let opened = monti::store::plugins::secrets(&server.store, scope.tenant(), &installation.id)
        .await
        .unwrap();
    assert_eq!(opened.get("token").map(String::as_str), Some("very-secret-value"));
    if let common::RawDb::Sqlite(pool) = &server.raw_db().await {
        let sealed: String = sqlx::query_scalar("SELECT sealed FROM plugin_secrets")
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(!sealed.contains("very-secret-value"), "stored sealed");
    }
    server.delete("/api/v1/plugins/wellbeing", &admin).await.expect(204);
    server
        .get("/api/v1/plugins/wellbeing", &admin)
        .await
        .expect_problem(404);
    let audit = server.get("/api/v1/audit?target_kind=plugin", &admin).await.body;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "plugin.install",
        "plugin.update",
        "plugin.upgrade",
        "plugin.secret.set",
        "plugin.remove",
    ] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
    server.stop().await;
}

/// A tenant admin installs, configures and enables a plugin in the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_installs_and_configures_a_plugin_in_the_browser() {
    let Some(browser) = common::browser::Browser::launch().await else {
        return;
    };
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    common::account(
        &server.store,
        "ada@example.com",
        "correct horse battery staple",
        Some(("acme", monti::domain::Role::TenantAdmin)),
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("wellbeing.wasm");
    std::fs::write(&wasm, component("monti-example-minimal")).unwrap();
    let wait = Duration::from_secs(15);

    let mut page = browser.page().await;
    page.goto(&server.url("/admin/plugins")).await;
    page.fill("#email", "ada@example.com").await;
    page.fill("#password", "correct horse battery staple").await;
    page.click("#sign-in").await;
    assert!(page.wait_for("location.pathname === '/admin/plugins'", wait).await);
    // Choose the file as a person would, then install.
    let document = page.call("DOM.getDocument", serde_json::json!({})).await;
    let input = page
        .call(
            "DOM.querySelector",
            serde_json::json!({ "nodeId": document["result"]["root"]["nodeId"], "selector": "#component" }),
        )
        .await;
    page.call(
        "DOM.setFileInputFiles",
        serde_json::json!({ "nodeId": input["result"]["nodeId"], "files": [wasm.to_str().unwrap()] }),
    )
    .await;
    assert_eq!(
        page.eval("document.querySelector('#component').files.length").await,
        serde_json::json!(1),
        "file chosen: {input} {document}"
    );
    page.click("#upload").await;
    assert!(
        page.wait_for("location.pathname === '/admin/plugins/wellbeing'", wait)
            .await,
        "installed, on its page: {}",
        page.text().await
    );
    assert_eq!(
        page.eval("document.querySelector('#f-pause_after').value").await,
        serde_json::json!("10"),
        "the form comes from the manifest's schema, with its default"
    );
    // Out of range: the field says why.
    page.fill("#f-pause_after", "0").await;
    page.click("#save").await;
    assert!(
        page.wait_for("document.querySelector('.field.invalid .field-error') !== null", wait)
            .await,
        "the error is shown at the field"
    );
    page.fill("#f-pause_after", "4").await;
    page.click("#save").await;
    assert!(
        page.wait_for(
            "document.querySelector('#enable') !== null && document.querySelector('.field.invalid') === null",
            wait
        )
        .await
    );
    // What the plugin asks for is listed above the button that approves it.
    assert!(
        page.wait_for(
            "document.querySelector('#approval') !== null \
             && document.querySelector('#approval').textContent.includes('emit events into live monitoring') \
             && document.querySelector('#enable').textContent.includes('Approve')",
            wait
        )
        .await,
        "the capabilities to approve are shown"
    );
    page.click("#enable").await;
    assert!(
        page.wait_for("document.querySelector('#disable') !== null", wait).await,
        "enabled"
    );
    assert!(
        page.wait_for("document.querySelector('#approval') === null", wait)
            .await,
        "nothing left to approve"
    );
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let installed = monti::store::plugins::get(&server.store, &scope, "wellbeing")
        .await
        .unwrap();
    assert!(installed.enabled);
    assert_eq!(installed.config, r#"{"pause_after":4}"#);
    browser.close().await;
    server.stop().await;
}

/// Outbound HTTP goes only to granted destinations, and not to private addresses unless the
/// operator allows them; what comes back reaches the plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_only_to_granted_public_destinations() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 2048];
            let _ = socket.read(&mut request).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                .await;
        }
    });
    let url = format!("http://127.0.0.1:{port}/status");
    let run = |grants: Grants| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let outcome = misbehave_with(&format!("http {url}"), &grants, &Limits::default()).expect("runs");
            outcome.logs.last().map(|l| l.message.clone()).unwrap_or_default()
        })
    };
    let not_granted = run(Grants::default()).await.unwrap();
    assert!(
        not_granted.contains("NotGranted") && not_granted.contains("not granted"),
        "{not_granted}"
    );
    let origin = format!("http://127.0.0.1:{port}");
    let private = run(Grants {
        http: vec![origin.clone()],
        ..Grants::default()
    })
    .await
    .unwrap();
    assert!(private.contains("private or local address"), "{private}");
    let allowed = run(Grants {
        http: vec![origin],
        allow_private_networks: true,
        ..Grants::default()
    })
    .await
    .unwrap();
    assert_eq!(allowed, "status 200, body hello");

    // A destination that never answers holds the invocation only for its wall-clock budget.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let waited = tokio::task::spawn_blocking(move || {
        let grants = Grants {
            http: vec![format!("http://127.0.0.1:{silent_port}")],
            allow_private_networks: true,
            ..Grants::default()
        };
        let limits = Limits {
            wall: Duration::from_millis(300),
            ..Limits::default()
        };
        misbehave_with(&format!("http http://127.0.0.1:{silent_port}/"), &grants, &limits).expect("runs")
    })
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "held for {:?}",
        started.elapsed()
    );
    let last = &waited.logs.last().unwrap().message;
    assert!(last.starts_with("refused:") && last.contains("Transport("), "{last}");
}

/// A secret reaches the destination it is bound to, placed by the host; the plugin only holds
/// a handle, and the use is reported for the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_injected_by_the_host_and_never_seen_by_the_plugin() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0u8; 4096];
            let n = socket.read(&mut request).await.unwrap_or(0);
            let text = String::from_utf8_lossy(&request[..n]).to_lowercase();
            let auth = text
                .lines()
                .find_map(|l| l.strip_prefix("authorization: ").map(str::to_owned))
                .unwrap_or_default();
            let _ = seen_tx.send(auth);
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    });
    let origin = format!("http://127.0.0.1:{port}");
    let grants = Grants {
        http: vec![origin.clone(), "http://127.0.0.2:9".into()],
        allow_private_networks: true,
        secrets: [("token".to_owned(), (origin.clone(), "s3cret-value".to_owned()))].into(),
        ..Grants::default()
    };
    let run = |target: String, grants: Grants| {
        tokio::task::spawn_blocking(move || {
            misbehave_with(&format!("secret-http {target}"), &grants, &Limits::default()).expect("runs")
        })
    };
    let used = run(format!("{origin}/api"), grants.clone()).await.unwrap();
    assert_eq!(
        seen.recv().await.unwrap(),
        "bearer s3cret-value",
        "the host put it in, over the plugin's own header"
    );
    let logs: Vec<&str> = used.logs.iter().map(|l| l.message.as_str()).collect();
    assert!(logs.contains(&"status 200, secret token"), "{logs:?}");
    assert!(
        !logs.iter().any(|l| l.contains("s3cret")),
        "the value never reaches the plugin: {logs:?}"
    );
    assert_eq!(
        used.secret_uses,
        vec![("token".to_owned(), format!("http://127.0.0.1:{port}"))]
    );

    // Another granted destination is still the wrong one for this secret.
    let elsewhere = run("http://127.0.0.2:9/".into(), grants).await.unwrap();
    let last = &elsewhere.logs.last().unwrap().message;
    assert!(last.contains("may only be sent to"), "{last}");
    assert!(elsewhere.secret_uses.is_empty());
    // Without the secret configured, the handle is refused.
    let none = run(format!("{origin}/api"), Grants::default()).await.unwrap();
    assert!(
        none.logs.last().unwrap().message.contains("no secret"),
        "{:?}",
        none.logs
    );
}

/// A webhook plugin answers `/hooks/{tenant}/{installation}/…` with the request as sent, and what
/// it emits moves the floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_plugin_answers_its_hook_url() {
    use serde_json::json;
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    server
        .post("/api/v1/agents", &admin, json!({ "name": "Ana", "extension": "1001" }))
        .await
        .expect(201);
    let bytes = component("monti-example-webhook");
    let plugin = engine().validate(&bytes).expect("a valid webhook plugin");
    assert_eq!(plugin.manifest.world, "webhook");
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let installed = install_package(&server.store, &scope, &plugin, &bytes, r#"{"shared_token":"t0k"}"#).await;
    let url = server.url(&format!("/hooks/acme/{}/state", installed.id));
    let post = |token: &str, body: serde_json::Value| {
        server
            .client
            .post(&url)
            .header("x-hook-token", token)
            .json(&body)
            .send()
    };
    let report = |id: &str| {
        json!({ "id": id, "agent": "1001", "state": "paused", "reason": "training",
                "at_ms": chrono::Utc::now().timestamp_millis() })
    };
    // Disabled: there is no hook.
    assert_eq!(post("t0k", report("r0")).await.unwrap().status(), 404);
    monti::store::plugins::set_enabled(&server.store, &scope, &installed.id, true)
        .await
        .unwrap();
    // Enabling applies within a second (the tenant's installations are looked up at most once
    // a second, so unknown hooks cost no query).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut status = post("wrong", report("r1")).await.unwrap().status();
    while status == 404 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = post("wrong", report("r1")).await.unwrap().status();
    }
    assert_eq!(status, 401, "the plugin checks its caller");
    let accepted = post("t0k", report("r2")).await.unwrap();
    assert_eq!(accepted.status(), 202);
    assert_eq!(accepted.headers()["content-type"], "application/json");
    let snapshot = server.get("/api/v1/live/snapshot", &admin).await.body;
    assert_eq!(snapshot["agents"][0]["state"], json!("paused"), "{snapshot}");
    assert_eq!(snapshot["agents"][0]["reason"], json!("training"));
    // The plugin's own answers for what it does not do; Monti's 404 for unknown installations.
    let get = server
        .client
        .get(&url)
        .header("x-hook-token", "t0k")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 404);
    let bad = post("t0k", json!({ "agent": "1001" })).await.unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = server
        .client
        .post(server.url("/hooks/acme/inst_nothing/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let other_tenant = server
        .client
        .post(server.url(&format!("/hooks/nobody/{}/state", installed.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(other_tenant.status(), 404);
    let record = monti::store::plugins::get(&server.store, &scope, "state-hook")
        .await
        .unwrap();
    assert_eq!(record.invocations, 4, "every call is a run");
    // A flood is cut off at the installation's rate (50 a second, bursts of 100) with 429 and
    // Retry-After; the plugin does not run for those.
    let mut limited = None;
    for _ in 0..300 {
        let reply = post("t0k", json!({ "agent": "1001" })).await.unwrap();
        if reply.status() == 429 {
            limited = Some(reply);
            break;
        }
    }
    let limited = limited.expect("the flood was limited");
    assert!(limited.headers().contains_key("retry-after"));
    let problem: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(problem["status"], json!(429), "{problem}");
    server.stop().await;
}

/// `monti plugin new` gives a crate that builds into a valid plugin as it is.
#[test]
fn a_new_plugin_builds_and_checks_as_scaffolded() {
    let dir = tempfile::tempdir().unwrap();
    let monti = |args: &[&str], cwd: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_monti"))
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("run monti")
    };
    let made = monti(&["plugin", "new", "greeter"], dir.path());
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let crate_dir = dir.path().join("greeter");
    for file in [
        "Cargo.toml",
        "monti-plugin.toml",
        "src/lib.rs",
        "tests/plugin.rs",
        "README.md",
    ] {
        assert!(crate_dir.join(file).exists(), "{file}");
    }
    let again = monti(&["plugin", "new", "greeter"], dir.path());
    assert!(!again.status.success(), "an existing directory is left alone");
    let bad = monti(&["plugin", "new", "Not A Name"], dir.path());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lower-case"));

    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate_dir.join("target"));
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .expect("cargo");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let wasm = target_dir.join("wasm32-wasip2/release/greeter.wasm");
    let check = monti(&["plugin", "check", wasm.to_str().unwrap()], dir.path());
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && said.contains("greeter 0.1.0") && said.contains("valid"),
        "{said}"
    );
}

/// A batch a plugin keeps failing on is retried, then kept as a dead letter to inspect and
/// replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_batches_are_retried_then_dead_lettered_and_can_be_replayed() {
    use serde_json::json;
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    server
        .post("/api/v1/agents", &admin, json!({ "name": "Ana", "extension": "1001" }))
        .await
        .expect(201);
    let bytes = component("monti-test-misbehaving");
    let plugin = engine().validate(&bytes).expect("valid");
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let installed = install_package(&server.store, &scope, &plugin, &bytes, "{}").await;
    monti::store::plugins::set_enabled(&server.store, &scope, &installed.id, true)
        .await
        .unwrap();
    let at = chrono::Utc::now().to_rfc3339();
    server
        .post(
            "/api/v1/events",
            &admin,
            json!([{ "id": "flaky", "source": "crm", "at": at, "type": "agent_login", "agent": "1001" }]),
        )
        .await
        .expect(200);
    // The first try and two retries fail (it says retrying may help): a dead letter.
    let started = Instant::now();
    let letters = loop {
        let letters = server.get("/api/v1/plugins/misbehaving/dead-letters", &admin).await;
        letters.expect(200);
        if !letters.body["items"].as_array().unwrap().is_empty() || started.elapsed() > Duration::from_secs(15) {
            break letters.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let letter = &letters["items"][0];
    assert_eq!(letter["attempts"], json!(3), "{letters}");
    assert_eq!(letter["error"], json!("try 3 failed"));
    assert_eq!(letter["events"][0]["id"], json!("flaky"), "the batch is kept as it was");
    // The admin page shows it, with a form for the plugin's secret (write-only).
    common::account(
        &server.store,
        "ada@example.com",
        "correct horse battery staple",
        Some(("acme", monti::domain::Role::TenantAdmin)),
        false,
    )
    .await;
    let mut ada = common::Visitor::new(&server);
    assert_eq!(
        ada.sign_in("ada@example.com", "correct horse battery staple")
            .await
            .status,
        303
    );
    let page = ada.get("/admin/plugins/misbehaving").await;
    assert_eq!(page.status, 200);
    let letter_id = letter["id"].as_str().unwrap();
    assert!(page.body.contains(&format!("data-letter=\"{letter_id}\"")) && page.body.contains("try 3 failed"));
    assert!(page.body.contains("id=\"plugin-secrets\"") && page.body.contains("type=\"password\""));
    let saved = ada
        .post("/admin/plugins/misbehaving/secrets", &[("token", "from-the-form")])
        .await;
    assert_eq!(saved.status, 303);
    let opened = monti::store::plugins::secrets(&server.store, scope.tenant(), &installed.id)
        .await
        .unwrap();
    assert_eq!(opened.get("token").map(String::as_str), Some("from-the-form"));
    assert!(
        !ada.get("/admin/plugins/misbehaving")
            .await
            .body
            .contains("from-the-form"),
        "never shown again"
    );
    // The fourth try works: replaying removes it.
    let id = letter["id"].as_str().unwrap();
    let replayed = server
        .post(
            &format!("/api/v1/plugins/misbehaving/dead-letters/{id}/replay"),
            &admin,
            json!({}),
        )
        .await;
    replayed.expect(200);
    assert_eq!(replayed.body["replayed"], json!(true));
    let letters = server
        .get("/api/v1/plugins/misbehaving/dead-letters", &admin)
        .await
        .body;
    assert_eq!(letters["items"], json!([]));
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("plugin_dead_letters{{installation=\"{}\"}}", installed.id)),
        "the dead-letter depth is a gauge"
    );
    let record = monti::store::plugins::get(&server.store, &scope, "misbehaving")
        .await
        .unwrap();
    assert_eq!(record.invocations, 4);
    assert!(record.last_logs.contains("worked on try 4"), "{}", record.last_logs);
    // Another tenant cannot see or replay it.
    let other = server.tenant("other", monti::domain::Role::TenantAdmin).await;
    server
        .get("/api/v1/plugins/misbehaving/dead-letters", &other)
        .await
        .expect_problem(404);
    server.stop().await;
}

/// The operator decides which plugins tenants may install, or turns plugins off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_restrict_which_plugins_tenants_may_install() {
    let bytes = component("monti-example-minimal");
    for (tweak, says) in [
        (
            (|c: &mut monti::config::Config| c.plugins.allowed = vec!["state-hook".into()])
                as fn(&mut monti::config::Config),
            "does not allow the plugin `wellbeing`",
        ),
        (|c: &mut monti::config::Config| c.plugins.enabled = false, "turned off"),
        (
            |c: &mut monti::config::Config| {
                c.plugins.denied_capabilities =
                    [("acme".to_owned(), vec![monti::config::PluginCapability::EmitsEvents])].into();
            },
            "asks for emits_events, which the operator does not allow",
        ),
        (
            |c: &mut monti::config::Config| {
                c.plugins.denied_capabilities = [("*".to_owned(), vec![monti::config::PluginCapability::Kv])].into();
            },
            "asks for kv",
        ),
    ] {
        let server = common::TestServer::start_with(common::Backend::Sqlite, tweak)
            .await
            .unwrap();
        let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
        let refused = server
            .client
            .post(server.url("/api/v1/plugins"))
            .bearer_auth(&admin)
            .header("content-type", "application/wasm")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        let problem: serde_json::Value = refused.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains(says), "{problem}");
        server.stop().await;
    }

    // A capability taken away after installation is gone at run time: the stream is refused.
    let server = common::TestServer::start_with(common::Backend::Sqlite, |c| {
        c.plugins.denied_capabilities = [("acme".to_owned(), vec![monti::config::PluginCapability::Streams])].into();
    })
    .await
    .unwrap();
    let _ = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let misbehaving = component("monti-test-misbehaving");
    let plugin = engine().validate(&misbehaving).unwrap();
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    install_package(
        &server.store,
        &scope,
        &plugin,
        &misbehaving,
        r#"{"host":"pbx.example.com","port":5038}"#,
    )
    .await;
    monti::store::plugins::set_enabled(&server.store, &scope, "misbehaving", true)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let record = monti::store::plugins::get(&server.store, &scope, "misbehaving")
            .await
            .unwrap();
        if record.last_logs.contains("stream refused")
            && record.last_logs.contains("is not granted to this installation")
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(12), "{}", record.last_logs);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

/// A plugin that keeps a TCP line stream: the host connects for it (the destination comes from
/// its configuration), delivers lines to `on-stream`, sends what it writes, reconnects when the
/// server drops the connection, and refuses private addresses unless the operator allows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_keeps_a_line_stream_through_the_host() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let install = |server: &common::TestServer| {
        let store = server.store.clone();
        async move {
            let bytes = component("monti-test-misbehaving");
            let plugin = engine().validate(&bytes).expect("valid");
            let scope = monti::store::tenants::system_scope(&store, "acme", monti::store::SystemActor::Operator)
                .await
                .unwrap();
            let config = serde_json::json!({ "host": "127.0.0.1", "port": port }).to_string();
            install_package(&store, &scope, &plugin, &bytes, &config).await;
            monti::store::plugins::set_enabled(&store, &scope, "misbehaving", true)
                .await
                .unwrap();
        }
    };

    // Without the operator's say-so, 127.0.0.1 is not reached.
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let _ = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    install(&server).await;
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        // The plugin hears why: its stream closed, and its log says so.
        let record = monti::store::plugins::list(&server.store, &scope).await.unwrap();
        if record[0].last_logs.contains("private or local address") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(12), "{}", record[0].last_logs);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
    assert!(refused.is_err(), "connected to a private address without permission");
    drop(server);

    let server = common::TestServer::start_with(common::Backend::Sqlite, |config| {
        config.plugins.private_networks = vec!["acme".into()];
    })
    .await
    .unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    server
        .post(
            "/api/v1/agents",
            &admin,
            serde_json::json!({ "name": "Ana", "extension": "1001" }),
        )
        .await
        .expect(201);
    install(&server).await;
    // The heartbeat opens the stream within its period; the plugin greets on `opened`.
    let (socket, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the host connects for the plugin")
        .unwrap();
    let (reader, mut writer) = socket.into_split();
    let mut reader = tokio::io::BufReader::new(reader).lines();
    async fn next_line(reader: &mut tokio::io::Lines<tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>>) -> String {
        tokio::time::timeout(Duration::from_secs(10), reader.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("not closed")
    }
    assert_eq!(next_line(&mut reader).await, "hello");
    writer.write_all(b"echo ping\r\n").await.unwrap();
    assert_eq!(next_line(&mut reader).await, "ping");
    // A line the plugin turns into an event moves the floor.
    writer.write_all(b"Login: 1001\r\n").await.unwrap();
    let started = Instant::now();
    loop {
        let snapshot = server.get("/api/v1/live/snapshot", &admin).await.body;
        if snapshot["agents"][0]["state"] == serde_json::json!("available") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{snapshot}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server cuts the connection in the middle of a line: the half line is not delivered,
    // the plugin hears `closed` and reopens, and the host connects again.
    writer.write_all(b"Login: 99").await.unwrap();
    drop(writer);
    drop(reader);
    let (socket, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the host reconnects")
        .unwrap();
    let mut reader = tokio::io::BufReader::new(socket).lines();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), reader.next_line())
            .await
            .unwrap()
            .unwrap()
            .as_deref(),
        Some("hello")
    );
    let agents = server.get("/api/v1/live/snapshot", &admin).await.body["agents"].clone();
    assert_eq!(agents.as_array().unwrap().len(), 1, "no agent 99: {agents}");
}

/// `monti secrets rotate-key` re-encrypts what is sealed at rest under a new key, which then
/// replaces the old; a secret that does not open stops it before anything changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_re_encrypts_secrets_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let monti = |args: &[&str]| common::monti_cli(&data, args);
    let (ok, _, err) = monti(&["admin", "tenant", "create", "--slug", "acme", "--name", "Acme"]);
    assert!(ok, "{err}");
    let config = monti::config::Config {
        data_dir: data.clone(),
        ..Default::default()
    };
    let open = || monti::store::Store::open(&config);
    let store = open().await.unwrap();
    let scope = monti::store::tenants::system_scope(&store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let bytes = component("monti-test-misbehaving");
    let plugin = engine().validate(&bytes).unwrap();
    let installed = install_package(&store, &scope, &plugin, &bytes, "{}").await;
    monti::store::plugins::set_secret(&store, &scope, "misbehaving", "token", "s3cret-value")
        .await
        .unwrap();
    let old_key = std::fs::read_to_string(data.join("secret.key")).unwrap();
    store.close().await;

    let (ok, out, err) = monti(&["secrets", "rotate-key"]);
    assert!(ok, "{err}");
    assert!(out.contains("     1 plugin secrets"), "{out}");
    let new_key = std::fs::read_to_string(data.join("secret.key")).unwrap();
    assert_ne!(new_key, old_key);
    let kept: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("secret.key.old-"))
        .collect();
    assert_eq!(kept.len(), 1, "the old key is kept beside");
    assert!(!data.join("secret.key.new").exists());
    // The server, with the new key, reads the secret as before.
    let store = open().await.unwrap();
    let secrets = monti::store::plugins::secrets(&store, scope.tenant(), &installed.id)
        .await
        .unwrap();
    assert_eq!(secrets.get("token").map(String::as_str), Some("s3cret-value"));

    // A value that does not open: refused, nothing changed, the key stays.
    monti::store::plugins::set_secret(&store, &scope, "misbehaving", "other", "x")
        .await
        .unwrap();
    let raw = common::raw_db(&config).await;
    let pool = raw.sqlite();
    sqlx::query("UPDATE plugin_secrets SET sealed = 'v1.AAAA.AAAA' WHERE name = 'other'")
        .execute(pool)
        .await
        .unwrap();
    store.close().await;
    let (ok, _, err) = monti(&["secrets", "rotate-key"]);
    assert!(!ok);
    assert!(
        err.contains("nothing was changed") && err.contains("plugin secrets"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(data.join("secret.key")).unwrap(), new_key);
    assert!(!data.join("secret.key.new").exists());
    let store = open().await.unwrap();
    let secrets = monti::store::plugins::secrets(&store, scope.tenant(), &installed.id)
        .await
        .unwrap();
    assert_eq!(secrets.get("token").map(String::as_str), Some("s3cret-value"));
}

/// What all of a tenant's plugins may use per minute: calls beyond it wait (a retry, then a dead
/// letter to replay), emitting beyond it is refused to the plugin; another tenant is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_plugins_share_a_quota_per_minute() {
    let server = common::TestServer::start_with(common::Backend::Sqlite, |c| {
        c.plugins.tenant_quota.invocations = 2;
        c.plugins.tenant_quota.events = 5;
    })
    .await
    .unwrap();
    let bytes = component("monti-test-misbehaving");
    let plugin = engine().validate(&bytes).unwrap();
    monti::store::plugins::store_package(&server.store, &plugin.digest, &plugin.manifest, &bytes)
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for slug in ["acme", "other"] {
        let token = server.tenant(slug, monti::domain::Role::TenantAdmin).await;
        server
            .post(
                "/api/v1/agents",
                &token,
                serde_json::json!({ "name": "Ana", "extension": "1001" }),
            )
            .await
            .expect(201);
        let scope = monti::store::tenants::system_scope(&server.store, slug, monti::store::SystemActor::Operator)
            .await
            .unwrap();
        monti::store::plugins::install(&server.store, &scope, &plugin.digest, "{}")
            .await
            .unwrap();
        monti::store::plugins::set_enabled(&server.store, &scope, "misbehaving", true)
            .await
            .unwrap();
        tokens.push((token, scope));
    }
    let at = chrono::Utc::now().to_rfc3339();
    let body =
        |id: &str| serde_json::json!([{ "id": id, "source": "pbx", "at": at, "type": "agent_login", "agent": "1001" }]);
    let (acme, acme_scope) = &tokens[0];
    // Call 1 emits: 20,000 asked, 5 allowed this minute: refused to the plugin.
    server.post("/api/v1/events", acme, body("emit-many")).await.expect(200);
    // Call 2 works; call 3 is over the quota and ends as a dead letter.
    server.post("/api/v1/events", acme, body("nothing")).await.expect(200);
    server.post("/api/v1/events", acme, body("count")).await.expect(200);
    let started = Instant::now();
    let letters = loop {
        let letters = monti::store::plugins::dead_letters(&server.store, acme_scope, "misbehaving")
            .await
            .unwrap();
        if letters.iter().any(|l| l.error.contains("calls a minute")) || started.elapsed() > Duration::from_secs(10) {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let quota_letter = letters
        .iter()
        .find(|l| l.error.contains("used their 2 calls a minute"))
        .unwrap_or_else(|| panic!("{letters:?}"));
    assert!(
        quota_letter.events.contains("\"count\""),
        "the batch is kept: {}",
        quota_letter.events
    );
    let emit_letter = letters
        .iter()
        .find(|l| l.events.contains("emit-many"))
        .unwrap_or_else(|| panic!("{letters:?}"));
    assert!(emit_letter.error.contains("QuotaExceeded"), "{}", emit_letter.error);
    // The other tenant's plugins have their own minute.
    let (other, other_scope) = &tokens[1];
    server.post("/api/v1/events", other, body("count")).await.expect(200);
    let started = Instant::now();
    loop {
        let record = monti::store::plugins::get(&server.store, other_scope, "misbehaving")
            .await
            .unwrap();
        if record.last_logs.contains("call number") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{}", record.last_logs);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}
