//! Alert rules over the API, on a running server: rules checked as they are saved (syntax
//! errors with line and column), tested against the current floor, evaluated every second —
//! pending, firing after their `for`, resolved when the condition clears —, hostile rules
//! contained and explained, versions kept, alerts acknowledged, every change audited, tenants
//! kept apart. On SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use serde_json::{Value, json};

fn event(id: &str, body: Value) -> Value {
    let mut event = json!({ "id": id, "source": "test", "at": chrono::Utc::now().to_rfc3339() });
    event.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
    event
}

/// Waits until `GET path` satisfies `ready`.
async fn until(server: &TestServer, token: &str, path: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let body = server.get(path, token).await.body;
        if ready(&body) {
            return body;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn rules_fire_resolve_and_explain(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let supervisor = server.tenant("acme", monti::domain::Role::Supervisor).await;
    let viewer = server.tenant("acme", monti::domain::Role::Viewer).await;
    server
        .post("/api/v1/queues", &admin, json!({ "name": "Sales" }))
        .await
        .expect(201);
    server
        .post("/api/v1/agents", &admin, json!({ "name": "Ana", "extension": "1001" }))
        .await
        .expect(201);

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
    let alerts = until(&server, &supervisor, "/api/v1/alerts", "the alert fires", |b| {
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
    until(&server, &admin, "/api/v1/alerts", "resolved", |b| {
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
    let rules = until(&server, &admin, "/api/v1/alert-rules", "errors reported", |b| {
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
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_on_sqlite() {
    rules_fire_resolve_and_explain(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_on_postgres() {
    rules_fire_resolve_and_explain(Backend::Postgres).await;
}
