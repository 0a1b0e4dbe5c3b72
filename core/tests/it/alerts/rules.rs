//! Alert rules: checked before they are saved, hostile ones contained, the lifecycle of an
//! alert, one flow for the API and the admin form.

use super::*;

both_backends!(rules_are_checked_before_they_are_saved_and_hostile_ones_contained);
async fn rules_are_checked_before_they_are_saved_and_hostile_ones_contained(server: &TestServer) {
    let (admin, supervisor, viewer) = acme(server).await;
    // Syntax errors say where; unknown names and placeholders are refused before saving.
    let bad = server
        .post(
            "/api/v1/alert-rules",
            &admin,
            json!({ "name": "Broken", "scope": "queue", "expression": "queue.waiting >\n  && 1" }),
        )
        .await;
    bad.expect_problem(422);
    let detail = bad.body["errors"].to_string();
    assert!(detail.contains("/expression") && detail.contains("line 2"), "{detail}");
    let wrong_variable = server
        .post(
            "/api/v1/alert-rules",
            &admin,
            json!({ "name": "Wrong", "scope": "queue", "expression": "agent.state == \"paused\"" }),
        )
        .await;
    wrong_variable.expect_problem(422);
    assert!(
        wrong_variable.body["errors"]
            .to_string()
            .contains("no variable `agent`"),
        "{}",
        wrong_variable.body
    );
    server
        .post(
            "/api/v1/alert-rules",
            &admin,
            json!({ "name": "Msg", "scope": "queue", "expression": "true", "message": "{agent.name}" }),
        )
        .await
        .expect_problem(422);
    // The editor's check, as one types.
    let checked = server
        .post(
            "/api/v1/alert-rules/check",
            &viewer,
            json!({ "scope": "queue", "expression": "queue.waiting > 1 &&" }),
        )
        .await;
    checked.expect(200);
    assert_eq!(checked.body["valid"], json!(false));
    assert_eq!(checked.body["error"]["line"], json!(1), "{}", checked.body);
    // Supervisors may not write rules.
    server
        .post(
            "/api/v1/alert-rules",
            &supervisor,
            json!({ "name": "x", "scope": "tenant", "expression": "true" }),
        )
        .await
        .expect_problem(403);

    // Hostile rules run, fail and say why; the others are not held up.
    for (name, expression) in [
        ("Typo", "queue.wating > 1"),
        ("Endless", "loop { } true"),
        ("Recursion", "fn f(n) { f(n + 1) } f(0)"),
        ("Huge", "let s = \"x\"; loop { s += s; } true"),
        ("Not a condition", "queue.waiting"),
    ] {
        server
            .post(
                "/api/v1/alert-rules",
                &admin,
                json!({ "name": name, "scope": "queue", "expression": expression, "for_s": 0 }),
            )
            .await
            .expect(201);
    }
    let rules = until(server, &admin, "/api/v1/alert-rules", "errors reported", |b| {
        b["items"]
            .as_array()
            .is_some_and(|items| items.iter().filter(|r| r["status"]["error"].is_object()).count() == 5)
    })
    .await;
    let error_of = |name: &str| -> String {
        rules["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == json!(name))
            .map(|r| r["status"]["error"]["message"].as_str().unwrap_or_default().to_owned())
            .unwrap()
    };
    assert!(error_of("Typo").contains("wating"));
    assert!(error_of("Endless").contains("stopped"));
    assert!(error_of("Recursion").contains("deep"));
    assert!(error_of("Huge").contains("limit"));
    assert!(error_of("Not a condition").contains("true or false"));

    // The starter set imports once.
    let imported = server.post("/api/v1/alert-rules/starter", &admin, json!({})).await;
    imported.expect(201);
    assert_eq!(
        imported.body["created"].as_array().unwrap().len(),
        4,
        "{}",
        imported.body
    );
    let again = server.post("/api/v1/alert-rules/starter", &admin, json!({})).await;
    assert_eq!(again.body["skipped"].as_array().unwrap().len(), 4);

    // The API reference describes all of it.
    let openapi = server.get("/api/v1/openapi.json", &admin).await.body;
    for path in [
        "/api/v1/alert-rules",
        "/api/v1/alert-rules/{id}/silence",
        "/api/v1/alerts",
        "/api/v1/alert-notifications",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} is in the API reference");
    }
}

both_backends!(a_rule_fires_is_acknowledged_resolves_and_keeps_its_versions);
async fn a_rule_fires_is_acknowledged_resolves_and_keeps_its_versions(server: &TestServer) {
    let (admin, supervisor, viewer) = acme(server).await;
    let created = server
        .post(
            "/api/v1/alert-rules",
            &admin,
            json!({
                "name": "Queue busy", "scope": "queue", "expression": "queue.waiting > 2",
                "severity": "critical", "for_s": 1, "message": "{queue.name}: {queue.waiting} waiting",
            }),
        )
        .await;
    created.expect(201);
    let rule = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["version"], json!(1));

    // Three callers wait: the test against the floor says it holds; it fires within its `for`
    // and a tick or two.
    let joins: Vec<Value> = (0..3)
        .map(|n| {
            event(
                &format!("j{n}"),
                json!({ "type": "caller_join", "queue": "Sales", "call": format!("c{n}") }),
            )
        })
        .collect();
    server.post("/api/v1/events", &admin, json!(joins)).await.expect(200);
    let tested = server
        .post(
            "/api/v1/alert-rules/test",
            &admin,
            json!({ "scope": "queue", "expression": "queue.waiting > 2", "message": "{queue.name}" }),
        )
        .await;
    tested.expect(200);
    assert_eq!(tested.body["holding"][0]["message"], json!("Sales"), "{}", tested.body);
    let started = Instant::now();
    let alerts = until(server, &supervisor, "/api/v1/alerts", "the alert fires", |b| {
        b["items"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fired in {:?}",
        started.elapsed()
    );
    let alert = &alerts["items"][0];
    assert_eq!(alert["message"], json!("Sales: 3 waiting"));
    assert_eq!(
        (alert["state"].as_str(), alert["severity"].as_str()),
        (Some("firing"), Some("critical"))
    );
    let alert_id = alert["id"].as_str().unwrap().to_owned();
    let rules = server.get("/api/v1/alert-rules", &viewer).await.body;
    assert_eq!(rules["items"][0]["status"]["firing"], json!(1), "{rules}");
    // Acknowledged by a supervisor (a viewer may not).
    server
        .post(&format!("/api/v1/alerts/{alert_id}/acknowledge"), &viewer, json!({}))
        .await
        .expect_problem(403);
    let acked = server
        .post(
            &format!("/api/v1/alerts/{alert_id}/acknowledge"),
            &supervisor,
            json!({}),
        )
        .await;
    acked.expect(200);
    assert!(acked.body["acknowledged_by"].as_str().is_some(), "{}", acked.body);
    server
        .post(
            &format!("/api/v1/alert-rules/{rule}/silence"),
            &supervisor,
            json!({ "minutes": 30, "reason": "known outage" }),
        )
        .await
        .expect(201);

    // The callers leave: resolved.
    let leaves: Vec<Value> = (0..3)
        .map(|n| {
            event(
                &format!("l{n}"),
                json!({ "type": "caller_leave", "queue": "Sales", "call": format!("c{n}"), "reason": "abandon", "wait_s": 5.0 }),
            )
        })
        .collect();
    server.post("/api/v1/events", &admin, json!(leaves)).await.expect(200);
    until(server, &admin, "/api/v1/alerts", "resolved", |b| {
        b["items"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    let history = server.get("/api/v1/alerts?state=all", &admin).await.body;
    assert_eq!(history["items"][0]["state"], json!("resolved"), "{history}");

    // A change is a new version; every version is kept.
    let changed = server
        .patch(&format!("/api/v1/alert-rules/{rule}"), &admin, json!({ "for_s": 5 }))
        .await;
    changed.expect(200);
    assert_eq!(changed.body["version"], json!(2));
    let versions = server
        .get(&format!("/api/v1/alert-rules/{rule}/versions"), &admin)
        .await
        .body;
    assert_eq!(versions["items"].as_array().unwrap().len(), 2, "{versions}");
    assert_eq!(versions["items"][1]["rule"]["for_s"], json!(1));

    // Audited.
    let audit = server.get("/api/v1/audit?action=alert_rule.update", &admin).await.body;
    assert!(audit.to_string().contains("Queue busy v2"), "{audit}");
    // Another tenant sees none of it.
    let other = server.tenant("other", monti::domain::Role::TenantAdmin).await;
    let theirs = server.get("/api/v1/alert-rules", &other).await.body;
    assert_eq!(theirs["items"], json!([]));
    server
        .get(&format!("/api/v1/alert-rules/{rule}"), &other)
        .await
        .expect_problem(404);
    server
        .post(&format!("/api/v1/alerts/{alert_id}/acknowledge"), &other, json!({}))
        .await
        .expect_problem(404);
    server
        .delete(&format!("/api/v1/alert-rules/{rule}"), &admin)
        .await
        .expect(204);
}

crate::both_backends!(rules_are_one_flow_for_the_api_and_the_admin_form);
/// One flow, two entry points: a rule written over the API and one written in the admin form
/// are checked, stored, changed, tested and deleted alike, refused with the same field error,
/// and audited with the same actions.
async fn rules_are_one_flow_for_the_api_and_the_admin_form(server: &TestServer) {
    const PASSWORD: &str = "correct horse battery staple";
    let token = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    common::account(
        &server.store,
        "rules@acme.test",
        PASSWORD,
        Some(("acme", monti::domain::Role::TenantAdmin)),
        false,
    )
    .await;
    let mut ui = common::Visitor::new(server);
    let signed_in = ui.sign_in("rules@acme.test", PASSWORD).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let before = common::audit_actions(server, Some("acme")).await.len();

    // The same broken condition: the same field and the same explanation, line and column.
    let broken = "queue.waiting >\n  && 1";
    let refused = server
        .post(
            "/api/v1/alert-rules",
            &token,
            json!({ "name": "Broken", "scope": "queue", "expression": broken, "for_s": 60 }),
        )
        .await;
    refused.expect_problem(422);
    assert_eq!(refused.pointers(), vec!["/expression".to_owned()], "{}", refused.body);
    let why = refused.body["errors"][0]["detail"].as_str().unwrap().to_owned();
    assert!(why.contains("line 2"), "{why}");
    let form = |name: &'static str, expression: &'static str| {
        vec![
            ("name", name),
            ("scope", "queue"),
            ("expression", expression),
            ("severity", "critical"),
            ("for_s", "30"),
            ("message", "{queue.name}: {queue.waiting} waiting"),
            ("emails", "ops@acme.test"),
            ("enabled", "on"),
        ]
    };
    ui.get("/admin/alert-rules/new").await;
    let page = ui.post("/admin/alert-rules", &form("Broken", broken)).await;
    assert_eq!(page.status, 422, "{}", page.body);
    let shown = format!("<li>expression: {}</li>", as_html(&why));
    assert!(page.body.contains(&shown), "{shown} in {}", page.body);
    // Testing the draft says the same, as JSON and as a fragment.
    let tested = server
        .post(
            "/api/v1/alert-rules/test",
            &token,
            json!({ "scope": "queue", "expression": broken }),
        )
        .await;
    tested.expect(200);
    assert_eq!(tested.body["valid"], json!(false), "{}", tested.body);
    let message = tested.body["error"]["message"].as_str().unwrap();
    let line = tested.body["error"]["line"].as_u64().unwrap();
    let fragment = ui
        .post("/admin/alert-rules/test", &[("scope", "queue"), ("expression", broken)])
        .await;
    assert_eq!(fragment.status, 200, "{}", fragment.body);
    let said = format!("{} (line {line})", as_html(message));
    assert!(
        fragment.body.contains("id=\"test-result\"") && fragment.body.contains(&said),
        "{said} in {}",
        fragment.body
    );
    // Nothing was stored or audited for the refusals.
    let listed = server.get("/api/v1/alert-rules", &token).await;
    assert_eq!(listed.body["items"], json!([]), "{}", listed.body);

    // Created through each: the same rule.
    let by_api = server
        .post(
            "/api/v1/alert-rules",
            &token,
            json!({
                "name": "Busy (API)", "scope": "queue", "expression": "queue.waiting > 100", "severity": "critical",
                "for_s": 30, "message": "{queue.name}: {queue.waiting} waiting",
                "targets": [{ "type": "email", "to": "ops@acme.test" }], "enabled": true,
            }),
        )
        .await;
    by_api.expect(201);
    let api_id = by_api.id();
    ui.get("/admin/alert-rules/new").await;
    let saved = ui
        .post("/admin/alert-rules", &form("Busy (UI)", "queue.waiting > 100"))
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let location = saved.location.clone().unwrap_or_default();
    let ui_id = location.trim_start_matches("/admin/alert-rules/").to_owned();
    assert!(ui_id.starts_with("rule"), "{location}");
    let same = |a: &Value, b: &Value| {
        for field in [
            "scope",
            "expression",
            "severity",
            "for_s",
            "message",
            "targets",
            "queues",
            "teams",
            "labels",
            "enabled",
            "version",
        ] {
            assert_eq!(a[field], b[field], "{field}: {a} / {b}");
        }
    };
    let api_rule = server.get(&format!("/api/v1/alert-rules/{api_id}"), &token).await.body;
    let ui_rule = server.get(&format!("/api/v1/alert-rules/{ui_id}"), &token).await.body;
    same(&api_rule, &ui_rule);
    assert_eq!(ui_rule["version"], json!(1));

    // Changed through each: a new version; a broken change is refused alike and keeps it.
    let changed = server
        .patch(
            &format!("/api/v1/alert-rules/{api_id}"),
            &token,
            json!({ "expression": "queue.waiting > 50" }),
        )
        .await;
    changed.expect(200);
    ui.get(&format!("/admin/alert-rules/{ui_id}")).await;
    let page = ui
        .post(
            &format!("/admin/alert-rules/{ui_id}"),
            &form("Busy (UI)", "queue.waiting > 50"),
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let refused = server
        .patch(
            &format!("/api/v1/alert-rules/{api_id}"),
            &token,
            json!({ "expression": broken }),
        )
        .await;
    refused.expect_problem(422);
    assert_eq!(refused.body["errors"][0]["detail"], json!(why), "{}", refused.body);
    ui.get(&format!("/admin/alert-rules/{ui_id}")).await;
    let page = ui
        .post(&format!("/admin/alert-rules/{ui_id}"), &form("Busy (UI)", broken))
        .await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains(&shown), "{shown} in {}", page.body);
    let api_rule = server.get(&format!("/api/v1/alert-rules/{api_id}"), &token).await.body;
    let ui_rule = server.get(&format!("/api/v1/alert-rules/{ui_id}"), &token).await.body;
    same(&api_rule, &ui_rule);
    assert_eq!(ui_rule["version"], json!(2));
    assert_eq!(ui_rule["expression"], json!("queue.waiting > 50"));

    // Deleted through each: gone for both.
    server
        .delete(&format!("/api/v1/alert-rules/{api_id}"), &token)
        .await
        .expect(204);
    ui.get(&format!("/admin/alert-rules/{ui_id}")).await;
    let page = ui.post(&format!("/admin/alert-rules/{ui_id}/delete"), &[]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/admin/alert-rules"));
    for id in [&api_id, &ui_id] {
        server
            .get(&format!("/api/v1/alert-rules/{id}"), &token)
            .await
            .expect_problem(404);
    }

    // The same audit entries, once per entry point; none for what was refused.
    let audited: Vec<(String, String)> = common::audit_actions(server, Some("acme"))
        .await
        .split_off(before)
        .into_iter()
        .filter(|(action, _)| action.starts_with("alert_rule."))
        .collect();
    let twice = |action: &str| vec![(action.to_owned(), "success".to_owned()); 2];
    let expected: Vec<(String, String)> = [
        twice("alert_rule.create"),
        twice("alert_rule.update"),
        twice("alert_rule.delete"),
    ]
    .concat();
    assert_eq!(audited, expected);
}

/// A rule reads a queue's service level and abandon rate in percent, as the board shows them
/// (the starter rule compares the service level with the target in percent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_read_service_level_and_abandon_rate_in_percent() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let (admin, _, _) = acme(&server).await;
    // Three callers answered within the threshold, one hangs up: 75 % by the default variant
    // (answered within of answered and abandoned), 25 % abandoned.
    let mut events = Vec::new();
    for n in 0..4 {
        events.push(event(
            &format!("j{n}"),
            json!({ "type": "caller_join", "queue": "Sales", "call": format!("c{n}") }),
        ));
    }
    for n in 0..3 {
        events.push(event(
            &format!("a{n}"),
            json!({ "type": "caller_answer", "queue": "Sales", "call": format!("c{n}"), "agent": "1001", "wait_s": 5.0 }),
        ));
    }
    events.push(event(
        "l3",
        json!({ "type": "caller_leave", "queue": "Sales", "call": "c3", "reason": "abandon", "wait_s": 40.0 }),
    ));
    server.post("/api/v1/events", &admin, json!(events)).await.expect(200);
    let holds = |expression: &'static str| {
        let (server, admin) = (&server, &admin);
        async move {
            let tested = server
                .post(
                    "/api/v1/alert-rules/test",
                    admin,
                    json!({ "scope": "queue", "expression": expression, "message": "{queue.name}" }),
                )
                .await;
            tested.expect(200);
            tested.body["holding"].as_array().map_or(0, Vec::len)
        }
    };
    let seen = server
        .post(
            "/api/v1/alert-rules/test",
            &admin,
            json!({ "scope": "queue", "expression": "true",
                    "message": "{queue.service_level} {queue.abandon_rate} {queue.offered} {queue.answered} {queue.abandoned}" }),
        )
        .await;
    let seen = seen.body["holding"][0]["message"].clone();
    assert_eq!(
        holds("queue.service_level > 74.0 && queue.service_level < 76.0").await,
        1,
        "{seen}"
    );
    assert_eq!(
        holds("queue.abandon_rate > 24.0 && queue.abandon_rate < 26.0").await,
        1,
        "{seen}"
    );
    // Against the queue's 80 % target: under it, but not more than 5 points under (the
    // starter rule's condition), which a fraction (0.75) would be.
    assert_eq!(holds("queue.service_level < queue.sl_target").await, 1);
    assert_eq!(holds("queue.service_level < queue.sl_target - 5").await, 0, "{seen}");
    server.stop().await;
}
