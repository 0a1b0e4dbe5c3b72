//! The pager in the real host, with the harness: alerts in, pages out.

use monti_plugin_test::wit::alerts::{Alert, AlertState, Severity};
use monti_plugin_test::{Expectation, Harness};

fn alert(severity: Severity, state: AlertState) -> Alert {
    Alert {
        rule_id: "rule_1".into(),
        rule_name: "Callers waiting too long".into(),
        rule_version: 1,
        severity,
        state,
        subject: "queue:q1".into(),
        subject_name: "Sales".into(),
        message: "Sales: a caller has waited 130.0 s".into(),
        since_ms: 1_800_000_000_000,
        fired_ms: 1_800_000_010_000,
        resolved_ms: (state == AlertState::Resolved).then_some(1_800_000_060_000),
    }
}

#[test]
fn critical_alerts_page_and_their_resolution_follows() {
    let mut plugin = Harness::build(env!("CARGO_MANIFEST_DIR")).expect("the example builds and loads");
    plugin
        .configure(serde_json::json!({ "pager_host": "pager.example.com" }))
        .unwrap();
    plugin.set_secret("token", "pager-token").unwrap();
    plugin
        .http()
        .expect(Expectation::new("POST", "https://pager.example.com/v1/pages").respond(202, "queued"));
    // A warning is below the configured severity: nothing is sent.
    let run = plugin
        .handle_alerts(vec![
            alert(Severity::Warning, AlertState::Firing),
            alert(Severity::Critical, AlertState::Firing),
        ])
        .expect("runs");
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.requests.len(), 1);
    let page = &run.requests[0];
    assert!(
        page.body_text().contains("\"state\":\"firing\""),
        "{}",
        page.body_text()
    );
    assert!(
        page.headers
            .iter()
            .any(|(n, v)| n == "authorization" && v == "Bearer pager-token"),
        "the host placed the token"
    );
    assert_eq!(plugin.kv_text("paged/rule_1/queue:q1").as_deref(), Some("1"));
    // The resolution goes out for the page that was sent, and is forgotten then.
    plugin
        .http()
        .expect(Expectation::new("POST", "https://pager.example.com/v1/pages").respond(202, "queued"));
    let run = plugin
        .handle_alerts(vec![alert(Severity::Critical, AlertState::Resolved)])
        .expect("runs");
    assert_eq!(run.result, Ok(()));
    assert!(run.requests[0].body_text().contains("\"state\":\"resolved\""));
    assert!(plugin.kv_text("paged/rule_1/queue:q1").is_none());
    plugin.http().verify();
    // A pager that fails makes the call fail, retryably.
    plugin
        .http()
        .expect(Expectation::new("POST", "https://pager.example.com/v1/pages").respond(503, "busy"));
    let run = plugin
        .handle_alerts(vec![alert(Severity::Critical, AlertState::Firing)])
        .expect("runs");
    let error = run.result.expect_err("the pager refused");
    assert!(error.retryable && error.message.contains("503"), "{error:?}");
}
