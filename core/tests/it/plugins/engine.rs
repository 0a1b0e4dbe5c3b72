//! The engine alone: components validated, run, kept warm, and every way one can fail contained.

use super::*;

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
