//! The state-hook plugin in the real host, with the harness: requests in, events out.

use monti_plugin_test::wit::{AgentState, AgentStateChange};
use monti_plugin_test::{EventBody, Harness, HookRequest, HookResponse};

fn plugin() -> Harness {
    let mut plugin = Harness::build(env!("CARGO_MANIFEST_DIR")).expect("the example builds and loads");
    plugin
        .configure(serde_json::json!({ "shared_token": "t0ken" }))
        .unwrap();
    plugin
}

fn post(path: &str, token: Option<&str>, body: &serde_json::Value) -> HookRequest {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(token) = token {
        headers.push(("X-Hook-Token".to_owned(), token.to_owned()));
    }
    HookRequest {
        method: "POST".into(),
        path: path.into(),
        headers,
        body: body.to_string().into_bytes(),
    }
}

fn message(response: &HookResponse) -> String {
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("a JSON answer");
    body["message"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_reported_state_becomes_a_monti_event() {
    let mut plugin = plugin();
    let report = serde_json::json!({
        "id": "crm-77", "agent": "1001", "state": "paused", "reason": "training", "at_ms": 1_800_000_000_000_i64
    });
    let (answer, run) = plugin
        .handle_request(post("/state", Some("t0ken"), &report))
        .expect("runs");
    let answer = answer.expect("answers");
    assert_eq!(answer.status, 202, "{}", message(&answer));
    assert_eq!(run.emitted.len(), 1);
    let event = &run.emitted[0];
    assert_eq!((event.id.as_str(), event.at_ms), ("crm-77", 1_800_000_000_000));
    assert!(matches!(
        &event.body,
        EventBody::AgentState(AgentStateChange { agent, state: AgentState::Paused, reason: Some(r) })
            if agent == "1001" && r == "training"
    ));
    assert_eq!(run.logs_at("info"), ["1001 is now paused"]);
    // A reason only travels with a pause.
    let available = serde_json::json!({
        "id": "crm-78", "agent": "1001", "state": "available", "reason": "ignored", "at_ms": 1_800_000_001_000_i64
    });
    let (_, run) = plugin
        .handle_request(post("/state", Some("t0ken"), &available))
        .unwrap();
    assert!(matches!(
        &run.emitted[0].body,
        EventBody::AgentState(AgentStateChange {
            state: AgentState::Available,
            reason: None,
            ..
        })
    ));
}

#[test]
fn callers_without_the_token_or_with_bad_bodies_are_answered_and_nothing_is_emitted() {
    let mut plugin = plugin();
    let good = serde_json::json!({ "id": "x", "agent": "1001", "state": "available", "at_ms": 1 });
    let cases = [
        (post("/state", None, &good), 401),
        (post("/state", Some("wrong"), &good), 401),
        (post("/elsewhere", Some("t0ken"), &good), 404),
        (
            post("/state", Some("t0ken"), &serde_json::json!({ "agent": "1001" })),
            400,
        ),
        (
            post(
                "/state",
                Some("t0ken"),
                &serde_json::json!({ "id": "x", "agent": "1001", "state": "dancing", "at_ms": 1 }),
            ),
            422,
        ),
    ];
    for (request, status) in cases {
        let path = request.path.clone();
        let (answer, run) = plugin.handle_request(request).expect("runs");
        let answer = answer.expect("answers");
        assert_eq!(answer.status, status, "{path}: {}", message(&answer));
        assert!(run.emitted.is_empty(), "{path}");
    }
    // The raw body reaches the plugin byte for byte, even when it is not UTF-8.
    let mut binary = post("/state", Some("t0ken"), &good);
    binary.body = vec![0xff, 0xfe, b'{'];
    let (answer, _) = plugin.handle_request(binary).unwrap();
    assert_eq!(answer.unwrap().status, 400);
}
