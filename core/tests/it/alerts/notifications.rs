//! Where alerts go: signed, retried and grouped webhooks and emails, the starter rules on the
//! board, alert-handler plugins.

use super::*;

/// A server that mails alerts through `smtp` and groups what fires within 2 s.
async fn mailing_server(smtp: &common::smtp::SmtpServer) -> TestServer {
    TestServer::start_with(Backend::Sqlite, |c| {
        crate::common::smtp::mail_through(c, smtp.port);
        c.plugins.private_networks = vec!["acme".into()];
        c.live.alert_notify_interval = Duration::from_secs(2);
    })
    .await
    .unwrap()
}

/// Notifications: an email received by a real SMTP server, a signed webhook, a webhook that
/// fails and one that hangs (both retried and shown with the reason, the others not held up),
/// and both told when the alert resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_notifications_go_out_signed_and_retried() {
    let Some(smtp) = common::smtp::SmtpServer::start(false).await else {
        return;
    };
    let server = mailing_server(&smtp).await;
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
    server.stop().await;
}

/// A storm: twenty agents paused at once make one email listing them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_alerts_is_one_email() {
    let Some(smtp) = common::smtp::SmtpServer::start(false).await else {
        return;
    };
    let server = mailing_server(&smtp).await;
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
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
}

/// An SMTP server that refuses: the email waits for its retry with the server's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_email_waits_for_its_retry_with_the_reason() {
    let Some(refusing) = common::smtp::SmtpServer::start(true).await else {
        return;
    };
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        crate::common::smtp::mail_through(c, refusing.port);
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
        crate::common::smtp::mail_through(c, smtp.port);
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
