//! Alert rules over the API, on a running server: rules checked as they are saved (syntax
//! errors with line and column), tested against the current floor, evaluated every second —
//! pending, firing after their `for`, resolved when the condition clears —, hostile rules
//! contained and explained, versions kept, alerts acknowledged, every change audited, tenants
//! kept apart. On SQLite and PostgreSQL.

use crate::both_backends;
use crate::common;

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

/// Tenant acme with a queue and an agent; its admin's, supervisor's and viewer's tokens.
async fn acme(server: &TestServer) -> (String, String, String) {
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
    (admin, supervisor, viewer)
}

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

/// A webhook receiver: records what it was sent (body, `Monti-Signature`), answers `status`,
/// or never answers when `hang`.
async fn webhook(status: u16, hang: bool) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>) {
    use axum::routing::post;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let keep = keep.clone();
            async move {
                let signature = headers
                    .get("monti-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                keep.lock().unwrap().push((body, signature));
                if hang {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

fn hmac_hex(secret: &str, text: &str) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Notifications: an email received by a real SMTP server, a signed webhook, a webhook that
/// fails and one that hangs (both retried and shown with the reason, the others not held up),
/// an SMTP server that refuses; a storm of alerts grouped into one notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_notifications_go_out_signed_retried_and_grouped() {
    let Some(smtp) = common::smtp::SmtpServer::start(false).await else {
        return;
    };
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = smtp.port;
        c.smtp.security = monti::config::SmtpSecurity::None;
        c.smtp.from = "Monti <monti@example.com>".into();
        c.plugins.private_networks = vec!["acme".into()];
        c.live.alert_notify_interval = Duration::from_secs(2);
    })
    .await
    .unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    server
        .post("/api/v1/queues", &admin, json!({ "name": "Sales" }))
        .await
        .expect(201);
    let (good, received) = webhook(200, false).await;
    let (failing, _) = webhook(500, false).await;
    let (hanging, _) = webhook(200, true).await;
    let created = server
        .post(
            "/api/v1/alert-rules",
            &admin,
            json!({
                "name": "Callers waiting", "scope": "queue", "expression": "queue.waiting > 0", "for_s": 0,
                "message": "{queue.name}: {queue.waiting} waiting",
                "targets": [
                    { "type": "email", "to": "ops@example.com" },
                    { "type": "webhook", "url": format!("http://127.0.0.1:{good}/hook") },
                    { "type": "webhook", "url": format!("http://127.0.0.1:{failing}/hook") },
                    { "type": "webhook", "url": format!("http://127.0.0.1:{hanging}/hook") },
                ],
            }),
        )
        .await;
    created.expect(201);
    let rule = created.body["id"].as_str().unwrap().to_owned();
    server
        .post(
            "/api/v1/alert-rules",
            &admin,
            json!({ "name": "Bad target", "scope": "tenant", "expression": "true", "targets": [{ "type": "pager" }] }),
        )
        .await
        .expect_problem(422);
    server
        .post(
            "/api/v1/events",
            &admin,
            json!([event(
                "j1",
                json!({ "type": "caller_join", "queue": "Sales", "call": "c1" })
            )]),
        )
        .await
        .expect(200);

    // The email arrives at the SMTP server, the good webhook gets a verifiable signature.
    let started = Instant::now();
    while smtp.received().is_empty() || received.lock().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "no email or webhook");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mail = &smtp.received()[0];
    assert_eq!(mail["to"], json!(["ops@example.com"]));
    let data = mail["data"].as_str().unwrap();
    assert!(data.contains("Subject: [warning] Callers waiting: firing"), "{data}");
    assert!(data.contains("Sales: 1 waiting"), "{data}");
    let secret = server
        .get(&format!("/api/v1/alert-rules/{rule}/signing-secret"), &admin)
        .await
        .body["signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (body, signature) = received.lock().unwrap()[0].clone();
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .expect("t=…,v1=…");
    assert_eq!(v1, hmac_hex(&secret, &format!("{t}.{body}")), "the signature verifies");
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["type"], json!("alert.firing"));
    assert_eq!(payload["alerts"][0]["message"], json!("Sales: 1 waiting"));

    // The failing webhook is waiting for its retry, with the reason, while the hanging one is
    // still hanging: it did not hold the others up.
    let error_of = |body: &Value, needle: &str| -> Option<Value> {
        body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["last_error"].as_str().is_some_and(|e| e.contains(needle)))
            .cloned()
    };
    let path = "/api/v1/alert-notifications?state=pending";
    let pending = until(&server, &admin, path, "the failure shown", |b| {
        error_of(b, "500").is_some()
    })
    .await;
    assert_eq!(error_of(&pending, "500").unwrap()["attempts"], json!(1), "{pending}");
    assert!(error_of(&pending, "did not answer").is_none(), "{pending}");
    // The hanging one fails after its timeout, on its first attempt. (The failing one's first
    // retry comes as long after its failure, so it may have been tried again by now.)
    let pending = until(&server, &admin, path, "the timeout shown", |b| {
        error_of(b, "did not answer").is_some()
    })
    .await;
    assert_eq!(
        error_of(&pending, "did not answer").unwrap()["attempts"],
        json!(1),
        "{pending}"
    );
    let sent = server.get("/api/v1/alert-notifications?state=sent", &admin).await.body;
    assert_eq!(sent["items"].as_array().unwrap().len(), 2, "{sent}");

    // Resolved: told too.
    server
        .post(
            "/api/v1/events",
            &admin,
            json!([event(
                "l1",
                json!({ "type": "caller_leave", "queue": "Sales", "call": "c1", "reason": "abandon", "wait_s": 3.0 })
            )]),
        )
        .await
        .expect(200);
    let started = Instant::now();
    while smtp.received().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no resolved email (throttled 2 s here)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(smtp.received()[1]["data"].as_str().unwrap().contains("resolved"));

    // A storm: twenty agents paused at once make one email listing them.
    let mut events = Vec::new();
    for n in 0..20 {
        server
            .post(
                "/api/v1/agents",
                &admin,
                json!({ "name": format!("Agent {n}"), "extension": format!("20{n:02}") }),
            )
            .await
            .expect(201);
        events.push(event(
            &format!("p{n}"),
            json!({ "type": "agent_state", "agent": format!("20{n:02}"), "state": "paused", "reason": "meeting" }),
        ));
    }
    server
        .post(
            "/api/v1/alert-rules",
            &admin,
            json!({
                "name": "Paused", "scope": "agent", "expression": "agent.state == \"paused\"", "for_s": 0,
                "message": "{agent.name} paused", "targets": [{ "type": "email", "to": "storm@example.com" }],
            }),
        )
        .await
        .expect(201);
    server.post("/api/v1/events", &admin, json!(events)).await.expect(200);
    let started = Instant::now();
    let storm = loop {
        let mails: Vec<Value> = smtp
            .received()
            .into_iter()
            .filter(|m| m["to"] == json!(["storm@example.com"]))
            .collect();
        if !mails.is_empty() {
            break mails;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no storm email");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let storm_mails = smtp
        .received()
        .into_iter()
        .filter(|m| m["to"] == json!(["storm@example.com"]))
        .count();
    assert_eq!(storm_mails, 1, "one email for the storm");
    let data = storm[0]["data"].as_str().unwrap();
    assert!(data.contains("Paused: 20 firing"), "{data}");
    server.stop().await;

    // An SMTP server that refuses: the email waits for its retry with the server's answer.
    let Some(refusing) = common::smtp::SmtpServer::start(true).await else {
        return;
    };
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = refusing.port;
        c.smtp.security = monti::config::SmtpSecurity::None;
        c.smtp.from = "Monti <monti@example.com>".into();
    })
    .await
    .unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    server
        .post(
            "/api/v1/alert-rules",
            &admin,
            json!({ "name": "Always", "scope": "tenant", "expression": "true", "for_s": 0,
                    "targets": [{ "type": "email", "to": "ops@example.com" }] }),
        )
        .await
        .expect(201);
    until(
        &server,
        &admin,
        "/api/v1/alert-notifications?state=pending",
        "the refusal shown",
        |b| b["items"][0]["last_error"].as_str().is_some_and(|e| e.contains("451")),
    )
    .await;
    server.stop().await;
}

/// Acceptance: with the simulator running the floor, a starter rule fires within its `for` and a
/// tick, shows on the board in Chromium (pushed with the board's stream), sends an email the SMTP
/// server receives, and resolves when the condition clears. The editor shows a syntax error with its line as one types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starter_rule_fires_on_the_board_emails_and_resolves() {
    let Some(browser) = common::browser::Browser::launch().await else {
        return;
    };
    let Some(smtp) = common::smtp::SmtpServer::start(false).await else {
        return;
    };
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = smtp.port;
        c.smtp.security = monti::config::SmtpSecurity::None;
        c.smtp.from = "Monti <monti@example.com>".into();
    })
    .await
    .unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let sales = server.post("/api/v1/queues", &admin, json!({ "name": "Sales" })).await;
    sales.expect(201);
    let sales = sales.body["id"].as_str().unwrap().to_owned();
    // The contract-center simulator runs the tenant's floor (its own queues and agents) over the
    // API, caught up from ten minutes ago and then in real time.
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let scenario = monti::demo::scenario(40, 7);
    monti::simulate::provision(&server.store, &scope, &scenario)
        .await
        .unwrap();
    let sink = monti::simulate::Sink::remote(&server.base, &admin).unwrap();
    let params = monti::sim::SimParams {
        run_id: "t".into(),
        ..Default::default()
    };
    let mut simulation = monti::sim::Simulation::new(&scenario, params, monti::domain::time::now_ms() - 600_000);
    let simulator = tokio::spawn(async move {
        let pace = monti::simulate::Pace {
            speed: Some(1.0),
            duration: None,
            warm_up: Duration::from_secs(600),
        };
        monti::simulate::run(&mut simulation, &sink, pace, |_, _, _| {}).await
    });
    // The starter set, with the long-waits rule told to email the floor manager.
    server
        .post("/api/v1/alert-rules/starter", &admin, json!({}))
        .await
        .expect(201);
    let rules = server.get("/api/v1/alert-rules", &admin).await.body;
    let long_waits = rules["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == json!("Callers waiting too long"))
        .expect("the starter rule")
        .clone();
    let rule = long_waits["id"].as_str().unwrap().to_owned();
    let for_s = long_waits["for_s"].as_u64().unwrap();
    server
        .patch(
            &format!("/api/v1/alert-rules/{rule}"),
            &admin,
            // For the Sales queue, which the test's own caller waits in.
            json!({ "targets": [{ "type": "email", "to": "floor@example.com" }], "queues": [sales] }),
        )
        .await
        .expect(200);
    common::account(
        &server.store,
        "sue@example.com",
        "correct horse battery staple",
        Some(("acme", monti::domain::Role::TenantAdmin)),
        false,
    )
    .await;
    let wait = Duration::from_secs(20);
    let mut page = browser.page().await;
    page.sign_in_at(&server.url("/board"), "sue@example.com", "correct horse battery staple")
        .await;
    assert!(
        page.wait_for("document.querySelector('#board-alerts') !== null", wait)
            .await,
        "the board has its alert banner"
    );
    // A caller who joined three minutes ago is still waiting: over the rule's two minutes.
    let joined = (chrono::Utc::now() - chrono::Duration::minutes(3)).to_rfc3339();
    let started = Instant::now();
    server
        .post(
            "/api/v1/events",
            &admin,
            json!([{ "id": "j1", "source": "simulator", "at": joined, "type": "caller_join", "queue": "Sales", "call": "c1" }]),
        )
        .await
        .expect(200);
    let banner = format!("document.querySelector(\"#board-alerts .alert-item[data-rule='{rule}']\")");
    assert!(
        page.wait_for(&format!("{banner} !== null"), wait).await,
        "the alert shows on the board"
    );
    let fired_after = started.elapsed();
    assert!(
        fired_after < Duration::from_secs(for_s + 3),
        "fired after {fired_after:?} (for {for_s} s plus a tick)"
    );
    let text = page.eval(&format!("{banner}.innerText")).await;
    assert!(
        text.as_str().unwrap_or_default().contains("Sales: a caller has waited"),
        "{text}"
    );
    // The email arrives.
    let started = Instant::now();
    let mail = loop {
        if let Some(mail) = smtp
            .received()
            .into_iter()
            .find(|m| m["to"] == json!(["floor@example.com"]))
        {
            break mail;
        }
        assert!(started.elapsed() < wait, "no email");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        mail["data"]
            .as_str()
            .unwrap()
            .contains("Callers waiting too long: firing"),
        "{mail}"
    );
    // The caller is answered: the alert resolves and leaves the board.
    server
        .post(
            "/api/v1/events",
            &admin,
            json!([event(
                "l1",
                json!({ "type": "caller_leave", "queue": "Sales", "call": "c1", "reason": "timeout", "wait_s": 190.0 })
            )]),
        )
        .await
        .expect(200);
    assert!(
        page.wait_for(&format!("{banner} === null"), wait).await,
        "the resolved alert leaves the board"
    );
    let history = server.get("/api/v1/alerts?state=all", &admin).await.body;
    assert_eq!(history["items"][0]["state"], json!("resolved"), "{history}");
    // The editor: a syntax error shows with its line as one types.
    page.goto(&server.url("/admin/alert-rules/new")).await;
    assert!(
        page.wait_for("document.querySelector('#rule-expression') !== null", wait)
            .await
    );
    page.fill("#rule-expression", "queue.waiting >\n  && 3").await;
    page.eval("htmx.trigger('#rule-expression', 'change')").await;
    assert!(
        page.wait_for(
            "(document.querySelector('#expression-check.field-error') || {innerText: ''}).innerText.includes('line 2')",
            wait
        )
        .await,
        "the syntax error is shown with its line: {}",
        page.eval(
            "document.querySelector('#expression-check') && document.querySelector('#expression-check').outerHTML"
        )
        .await
    );
    assert!(!simulator.is_finished(), "the simulator ran throughout");
    let snapshot = server.get("/api/v1/live/snapshot", &admin).await.body;
    let working = snapshot["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] != json!("logged_out"))
        .count();
    assert!(
        working >= 10,
        "the simulated floor is at work: {working} agents logged in"
    );
    simulator.abort();
    browser.close().await;
    server.stop().await;
}

/// Plugins of the `alert-handler` world receive the alerts as they fire and resolve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_handler_plugins_receive_alerts() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    // The contract's golden alert handler: it logs every alert it gets.
    let wasm = monti_plugin_test::build(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/golden/v1.4.0"))
        .expect("the alert handler builds");
    let installed = server
        .client
        .post(server.url("/api/v1/plugins"))
        .bearer_auth(&admin)
        .header("content-type", "application/wasm")
        .body(std::fs::read(wasm).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(installed.status(), 201);
    server
        .patch(
            "/api/v1/plugins/golden",
            &admin,
            json!({ "config": { "greeting": "hej" }, "enabled": true, "approve_capabilities": true }),
        )
        .await
        .expect(200);
    server
        .post(
            "/api/v1/alert-rules",
            &admin,
            json!({ "name": "Always", "scope": "tenant", "expression": "tenant.waiting == 0", "for_s": 0,
                    "message": "{tenant.waiting} waiting" }),
        )
        .await
        .expect(201);
    let plugin = until(
        &server,
        &admin,
        "/api/v1/plugins/golden",
        "the alert reached the plugin",
        |p| p["last_logs"].to_string().contains("firing"),
    )
    .await;
    let logs = plugin["last_logs"].to_string();
    assert!(logs.contains("firing warning Always v1 on tenant"), "{logs}");
    assert!(logs.contains("0 waiting"), "{logs}");
    server.stop().await;
}

/// Text as the page templates show it (HTML-escaped the way tera does).
fn as_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2F;")
}

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

crate::both_backends!(rules_are_one_flow_for_the_api_and_the_admin_form);
