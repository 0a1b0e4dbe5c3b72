//! The wellbeing plugin in the real host, with the harness: its `.wasm` is built for
//! wasm32-wasip2 and called as Monti's server would call it.

use monti_plugin_test::wit::{AgentState, AgentStateChange, CallEnd};
use monti_plugin_test::{EventBody, FailureKind, Harness, HarnessError};

fn call_end(agent: &str) -> EventBody {
    EventBody::CallEnd(CallEnd {
        call: format!("call-{agent}"),
        agent: agent.into(),
        queue: Some("support".into()),
        talk_s: 120.0,
        hold_s: 0.0,
        wrap_s: Some(10.0),
    })
}

fn plugin() -> Harness {
    Harness::build(env!("CARGO_MANIFEST_DIR")).expect("the example builds and loads")
}

#[test]
fn an_agent_gets_a_break_after_the_configured_number_of_calls() {
    let mut plugin = plugin();
    assert_eq!(plugin.manifest().id, "wellbeing");
    plugin.configure(serde_json::json!({ "pause_after": 3 })).unwrap();

    let batch = vec![
        plugin.event(call_end("1001")),
        plugin.event(call_end("1001")),
        plugin.event(call_end("1002")),
    ];
    let first = plugin.handle_events(batch).expect("runs");
    assert_eq!(first.result, Ok(()));
    assert!(first.emitted.is_empty());
    assert_eq!(plugin.kv_text("calls/1001").as_deref(), Some("2"));
    assert_eq!(plugin.kv_text("calls/1002").as_deref(), Some("1"));

    // The store carries over; the third call of 1001 earns a break, stamped with its event's time.
    plugin.clock().advance(std::time::Duration::from_secs(90));
    let third = plugin.event(call_end("1001"));
    let second = plugin.handle_events(vec![third.clone()]).expect("runs");
    assert_eq!(second.result, Ok(()));
    assert_eq!(second.emitted.len(), 1, "{:?}", second.emitted);
    let paused = &second.emitted[0];
    assert_eq!(paused.id, format!("wellbeing-{}", third.id));
    assert_eq!(paused.at_ms, third.at_ms);
    match &paused.body {
        EventBody::AgentState(AgentStateChange { agent, state, reason }) => {
            assert_eq!(agent, "1001");
            assert_eq!(*state, AgentState::Paused);
            assert_eq!(reason.as_deref(), Some("wellbeing"));
        }
        other => panic!("expected a state change, got {other:?}"),
    }
    assert_eq!(plugin.kv_text("calls/1001"), None, "the count starts over");
    assert_eq!(second.logs_at("info"), ["agent 1001 ended 3 calls: time for a break"]);
    // Well inside the 50 ms and 16 MiB the manifest asks for.
    let report = second.report;
    assert!(
        report.memory_high_water > 0 && report.memory_high_water < 16 << 20,
        "{report}"
    );
    assert!(report.cpu <= report.wall, "{report}");
    eprintln!("one batch: {report}");
}

#[test]
fn configuration_is_checked_against_the_manifest() {
    let mut plugin = plugin();
    let refused = plugin
        .configure(serde_json::json!({ "pause_after": 0 }))
        .expect_err("below the minimum");
    assert!(
        matches!(&refused, HarnessError::Config(p) if p[0].starts_with("/pause_after")),
        "{refused}"
    );
    let refused = plugin
        .configure(serde_json::json!({ "pause_after": 3, "colour": "red" }))
        .expect_err("not in the schema");
    assert!(refused.to_string().contains("colour"), "{refused}");
    // Left out, the default applies (the plugin reads it with serde).
    plugin.configure(serde_json::json!({})).unwrap();
    for _ in 0..9 {
        let event = plugin.event(call_end("1001"));
        assert!(plugin.handle_events(vec![event]).unwrap().emitted.is_empty());
    }
    let tenth = plugin.event(call_end("1001"));
    assert_eq!(plugin.handle_events(vec![tenth]).unwrap().emitted.len(), 1);
}

#[test]
fn a_panic_is_contained_with_its_message_and_the_store_is_left_as_it_was() {
    let mut plugin = plugin();
    plugin.configure(serde_json::json!({ "pause_after": 5 })).unwrap();
    let counted = plugin.event(call_end("1001"));
    plugin.handle_events(vec![counted]).unwrap();
    let mut poison = plugin.event(call_end("1001"));
    poison.id = "panic-please".into();
    let failure = plugin.handle_events(vec![poison]).expect_err("the plugin panics");
    assert_eq!(failure.kind, FailureKind::Panic);
    assert!(failure.message.contains("asked to panic"), "{failure}");
    // The failed call's writes are not kept, as in the server.
    assert_eq!(plugin.kv_text("calls/1001").as_deref(), Some("1"));
}
