//! Compatibility: the golden plugins — one per published contract version, built from its folder
//! in `sdk/wit/` (frozen: tests/contracts.rs) — must load and behave exactly as recorded, in this
//! host and every later one. A difference here means plugins in the field would break.
//!
//! `expected.json` is written once, when a contract version is published
//! (`MONTI_GOLDEN_RECORD=1 cargo test -p monti-plugin-test --test golden`), and never again.

use std::path::{Path, PathBuf};

use monti_plugin_test::wit::{self, EventBody};
use monti_plugin_test::{Expectation, Harness, Run, StreamItem};
use serde_json::{Value, json};

fn golden_dir(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden").join(version)
}

fn event_json(e: &wit::Event) -> Value {
    let body = match &e.body {
        EventBody::AgentLogin(a) => json!({ "agent_login": a }),
        EventBody::AgentLogout(a) => json!({ "agent_logout": a }),
        EventBody::AgentState(s) => {
            json!({ "agent_state": { "agent": s.agent, "state": format!("{:?}", s.state), "reason": s.reason } })
        }
        EventBody::CallerJoin(j) => json!({ "caller_join": { "queue": j.queue, "call": j.call } }),
        EventBody::CallerAnswer(a) => {
            json!({ "caller_answer": { "queue": a.queue, "call": a.call, "agent": a.agent, "wait_s": a.wait_s } })
        }
        EventBody::CallerLeave(l) => json!({ "caller_leave": {
            "queue": l.queue, "call": l.call, "reason": format!("{:?}", l.reason), "wait_s": l.wait_s } }),
        EventBody::CallStart(c) => json!({ "call_start": {
            "call": c.call, "agent": c.agent, "queue": c.queue, "direction": format!("{:?}", c.direction) } }),
        EventBody::CallEnd(c) => json!({ "call_end": {
            "call": c.call, "agent": c.agent, "queue": c.queue, "talk_s": c.talk_s, "hold_s": c.hold_s, "wrap_s": c.wrap_s } }),
    };
    json!({ "id": e.id, "source": e.source, "at_ms": e.at_ms, "body": body })
}

/// Everything observable about one call, resources aside.
fn transcript(plugin: &Harness, run: &Run) -> Value {
    json!({
        "result": match &run.result {
            Ok(()) => json!("ok"),
            Err(e) => json!({ "error": e.message, "retryable": e.retryable }),
        },
        "emitted": run.emitted.iter().map(event_json).collect::<Vec<_>>(),
        "logs": run.logs.iter().map(|l| format!("{} {}", l.level, l.message)).collect::<Vec<_>>(),
        "requests": run.requests.iter().map(|r| json!({
            "method": r.method, "url": r.url, "headers": r.headers, "body": r.body_text(), "expected": r.expected,
        })).collect::<Vec<_>>(),
        "secret_uses": run.secret_uses,
        "kv": plugin.kv().iter().map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v)))).collect::<serde_json::Map<_, _>>(),
        "streams": plugin.streams().opened().iter().map(|s| {
            let mut stream = json!({
                "id": s.id, "name": s.name, "target": s.target, "sent": s.sent_text(), "closed": s.closed,
            });
            // Since 1.3 (a secret on a WebSocket's upgrade request); left out when there are none,
            // as earlier versions were recorded.
            if !s.headers.is_empty() {
                stream["headers"] = json!(s.headers);
            }
            stream
        }).collect::<Vec<_>>(),
    })
}

fn one_of_each(plugin: &mut Harness, ids: &[&str]) -> Vec<wit::Event> {
    let bodies = [
        EventBody::AgentLogin("1001".into()),
        EventBody::AgentState(wit::AgentStateChange {
            agent: "1001".into(),
            state: wit::AgentState::Paused,
            reason: Some("lunch".into()),
        }),
        EventBody::CallerJoin(wit::CallerJoin {
            queue: "sales".into(),
            call: "c1".into(),
        }),
        EventBody::CallerAnswer(wit::CallerAnswer {
            queue: "sales".into(),
            call: "c1".into(),
            agent: "1001".into(),
            wait_s: 12.5,
        }),
        EventBody::CallStart(wit::CallStart {
            call: "c1".into(),
            agent: "1001".into(),
            queue: Some("sales".into()),
            direction: wit::Direction::Inbound,
        }),
        EventBody::CallEnd(wit::CallEnd {
            call: "c1".into(),
            agent: "1001".into(),
            queue: None,
            talk_s: 61.0,
            hold_s: 2.0,
            wrap_s: Some(15.0),
        }),
        EventBody::CallerLeave(wit::CallerLeave {
            queue: "sales".into(),
            call: "c2".into(),
            reason: wit::LeaveReason::Abandon,
            wait_s: 3.0,
        }),
        EventBody::AgentLogout("1001".into()),
    ];
    ids.iter()
        .zip(bodies.into_iter().cycle())
        .map(|(id, body)| {
            let mut event = plugin.event(body);
            event.id = (*id).into();
            event
        })
        .collect()
}

/// The script every host must answer the same way; `extra` ids run after the streams step
/// (what a later contract version added).
fn play_v1(plugin: &mut Harness, extra: &[&str]) -> Value {
    plugin.configure(json!({ "greeting": "hej" })).unwrap();
    plugin.set_secret("api", "golden-secret-value").unwrap();
    if plugin.manifest().capabilities.secrets.contains_key("pbx") {
        plugin.set_secret("pbx", "golden-pbx-secret").unwrap();
    }
    if plugin.manifest().capabilities.secrets.contains_key("ari") {
        plugin.set_secret("ari", "golden-ari-secret").unwrap();
    }
    plugin
        .http()
        .expect(Expectation::new("GET", "https://api.example.com/ping").respond(200, "pong"))
        .expect(Expectation::new("POST", "https://api.example.com/v1/report").respond(201, "noted"))
        .expect(Expectation::new("GET", "https://api.example.com/basic").respond(200, "basic ok"))
        .expect(Expectation::new("GET", "https://api.example.com/header").respond(200, "header ok"));
    let mut steps = Vec::new();
    let first = one_of_each(
        plugin,
        &["levels", "config", "clock", "kv", "http", "secrets", "streams", "plain"],
    );
    let run = plugin.handle_events(first).expect("runs");
    steps.push(transcript(plugin, &run));
    let second = one_of_each(plugin, &["kv", "fail"]);
    let run = plugin.handle_events(second).expect("runs");
    steps.push(transcript(plugin, &run));
    let pbx = plugin.streams().named("pbx").expect("the plugin opened its stream").id;
    for item in [
        StreamItem::Opened,
        StreamItem::Line("Paused: 1002".into()),
        StreamItem::Message(vec![1, 2, 3]),
        StreamItem::Closed("the PBX went away".into()),
    ] {
        let run = plugin.deliver(pbx, item).expect("runs");
        steps.push(transcript(plugin, &run));
    }
    if !extra.is_empty() {
        let batch = one_of_each(plugin, extra);
        let run = plugin.handle_events(batch).expect("runs");
        steps.push(transcript(plugin, &run));
    }
    let last = one_of_each(plugin, &["close"]);
    let run = plugin.handle_events(last).expect("runs");
    steps.push(transcript(plugin, &run));
    plugin.http().verify();
    Value::Array(steps)
}

/// Requests a connector gets in the 1.2 script: every kind of command.
fn commands() -> Vec<wit::commands::Request> {
    use wit::commands::{AgentInQueue, CallRef, Command, Dial, Pause, Request, Snoop, SnoopMode, Transfer};
    let agent = |queue: Option<&str>| AgentInQueue {
        agent: "1001".into(),
        queue: queue.map(str::to_owned),
    };
    let call = || CallRef { call: "c1".into() };
    let transfer = || Transfer {
        call: "c1".into(),
        to: "2002".into(),
    };
    [
        Command::Pause(Pause {
            agent: "1001".into(),
            queue: Some("sales".into()),
            reason: Some("lunch".into()),
        }),
        Command::Unpause(agent(None)),
        Command::Logout(agent(Some("sales"))),
        Command::Originate(Dial {
            agent: "1001".into(),
            number: "+4930123".into(),
        }),
        Command::Hangup(call()),
        Command::Hold(call()),
        Command::Unhold(call()),
        Command::BlindTransfer(transfer()),
        Command::AttendedTransfer(transfer()),
        Command::Snoop(Snoop {
            call: "c1".into(),
            supervisor: "PJSIP/sup".into(),
            mode: SnoopMode::Whisper,
        }),
        Command::Reload,
    ]
    .into_iter()
    .enumerate()
    .map(|(n, command)| Request {
        id: format!("r{n}"),
        by: "user:sup".into(),
        command,
    })
    .collect()
}

/// Plays the version's script and compares it with what was recorded when it was published.
fn check_golden(version: &str, extra: &[&str]) {
    let dir = golden_dir(&format!("v{version}"));
    let mut plugin = Harness::build(&dir).expect("the golden plugin builds and loads");
    assert_eq!(plugin.manifest().sdk, version);
    let mut played = play_v1(&mut plugin, extra);
    if plugin.manifest().world == "connector" {
        for request in commands() {
            let run = plugin.handle_command(request).expect("runs");
            let mut step = transcript(&plugin, &run);
            step["answer"] = json!(run.answer);
            played.as_array_mut().unwrap().push(step);
        }
    }
    let expected_path = dir.join("expected.json");
    if std::env::var_os("MONTI_GOLDEN_RECORD").is_some() && !expected_path.exists() {
        std::fs::write(&expected_path, serde_json::to_string_pretty(&played).unwrap() + "\n").unwrap();
    }
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(&expected_path).expect("expected.json"))
        .expect("expected.json is JSON");
    // The secrets reached the wire only where the host placed them; the plugin never had them to
    // log, store or emit.
    for step in played.as_array().unwrap() {
        let seen_by_plugin = json!([step["logs"], step["emitted"], step["kv"]]).to_string();
        assert!(
            !seen_by_plugin.contains("golden-secret-value")
                && !seen_by_plugin.contains("golden-pbx-secret")
                && !seen_by_plugin.contains("golden-ari-secret"),
            "{seen_by_plugin}"
        );
    }
    let (played, expected) = (played.as_array().unwrap(), expected.as_array().unwrap());
    assert_eq!(played.len(), expected.len(), "steps");
    for (n, (got, want)) in played.iter().zip(expected).enumerate() {
        assert_eq!(
            got,
            want,
            "step {n} differs:\n got: {}\nwant: {}",
            serde_json::to_string_pretty(got).unwrap(),
            serde_json::to_string_pretty(want).unwrap()
        );
    }
}

#[test]
fn the_golden_plugin_of_contract_1_0_0_behaves_as_recorded() {
    check_golden("1.0.0", &[]);
}

#[test]
fn the_golden_plugin_of_contract_1_1_0_behaves_as_recorded() {
    check_golden("1.1.0", &["stream-secret"]);
}

#[test]
fn the_golden_plugin_of_contract_1_2_0_behaves_as_recorded() {
    check_golden("1.2.0", &["stream-secret"]);
}

#[test]
fn the_golden_plugin_of_contract_1_3_0_behaves_as_recorded() {
    check_golden("1.3.0", &["stream-secret", "ws-secret"]);
}

/// The 1.4 script: an alert handler gets a firing and a resolved alert, then one that makes it
/// fail.
#[test]
fn the_golden_plugin_of_contract_1_4_0_behaves_as_recorded() {
    use monti_plugin_test::wit::alerts::{Alert, AlertState, Severity};
    let dir = golden_dir("v1.4.0");
    let mut plugin = Harness::build(&dir).expect("the golden plugin builds and loads");
    assert_eq!(plugin.manifest().sdk, "1.4.0");
    plugin.configure(json!({ "greeting": "hej" })).unwrap();
    plugin.set_secret("api", "golden-secret-value").unwrap();
    plugin
        .http()
        .expect(Expectation::new("POST", "https://api.example.com/page").respond(202, "paged"));
    let alert = |rule: &str, state: AlertState, resolved: Option<i64>| Alert {
        rule_id: rule.into(),
        rule_name: "Callers waiting too long".into(),
        rule_version: 3,
        severity: Severity::Critical,
        state,
        subject: "queue:q1".into(),
        subject_name: "Sales".into(),
        message: "Sales: a caller has waited 130.0 s".into(),
        since_ms: 1_800_000_000_000,
        fired_ms: 1_800_000_010_000,
        resolved_ms: resolved,
    };
    let mut played = Vec::new();
    for alerts in [
        vec![
            alert("r1", AlertState::Firing, None),
            alert("r2", AlertState::Resolved, Some(1_800_000_020_000)),
        ],
        vec![alert("fail", AlertState::Resolved, Some(1_800_000_030_000))],
    ] {
        let run = plugin.handle_alerts(alerts).expect("runs");
        played.push(transcript(&plugin, &run));
    }
    plugin.http().verify();
    let played = Value::Array(played);
    let expected_path = dir.join("expected.json");
    if std::env::var_os("MONTI_GOLDEN_RECORD").is_some() && !expected_path.exists() {
        std::fs::write(&expected_path, serde_json::to_string_pretty(&played).unwrap() + "\n").unwrap();
    }
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(&expected_path).expect("expected.json"))
        .expect("expected.json is JSON");
    for step in played.as_array().unwrap() {
        let seen_by_plugin = json!([step["logs"], step["kv"]]).to_string();
        assert!(!seen_by_plugin.contains("golden-secret-value"), "{seen_by_plugin}");
    }
    assert_eq!(played, expected);
}
