//! Supervisors control agents on the PBX through the API and the board.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_pause_agents_on_the_pbx_through_the_api() {
    let (pbx, server, admin, _ana, ben) = connected_tenant().await;
    let supervisor = server.tenant("acme", monti::domain::Role::Supervisor).await;
    let viewer = server.tenant("acme", monti::domain::Role::Viewer).await;
    let pause = format!("/api/v1/live/agents/{ben}/pause");
    server
        .post(&pause, &viewer, json!({ "reason": "x" }))
        .await
        .expect_problem(403);
    let sent = server.post(&pause, &supervisor, json!({ "reason": "coaching" })).await;
    sent.expect(202);
    assert!(
        sent.body["answer"].as_str().unwrap().contains("QueuePause"),
        "{}",
        sent.body
    );
    assert_eq!(pauses(&pbx), [("PJSIP/1002".into(), "true".into(), "coaching".into())]);
    let agents = floor_until(&server, &admin, "Ben paused", |agents| {
        state_of(agents, "Ben") == ("paused", "coaching")
    })
    .await;
    assert_eq!(state_of(&agents, "Ana").0, "available");
    server
        .post(&format!("/api/v1/live/agents/{ben}/unpause"), &supervisor, json!({}))
        .await
        .expect(202);
    floor_until(&server, &admin, "Ben back", |agents| {
        state_of(agents, "Ben").0 == "available"
    })
    .await;
    // Bad input is refused before anything is sent.
    let long = "x".repeat(81);
    server
        .post(&pause, &supervisor, json!({ "reason": long }))
        .await
        .expect_problem(400);
    server
        .post(&format!("/api/v1/live/agents/{ben}/dance"), &supervisor, json!({}))
        .await
        .expect_problem(404);
    assert_eq!(pauses(&pbx).len(), 2);
    // Another tenant neither sees Ben nor has a connector.
    let other = server.tenant("other", monti::domain::Role::TenantAdmin).await;
    server.post(&pause, &other, json!({})).await.expect_problem(404);
    let oli = server
        .post("/api/v1/agents", &other, json!({ "name": "Oli", "extension": "9" }))
        .await;
    let oli = oli.body["id"].as_str().unwrap().to_owned();
    server
        .post(&format!("/api/v1/live/agents/{oli}/pause"), &other, json!({}))
        .await
        .expect_problem(409);
    // Audited, with what the connector answered.
    let audit = server.get("/api/v1/audit?action=agent.pause", &admin).await.body;
    assert!(audit.to_string().contains("QueuePause"), "{audit}");
    server.stop().await;
}

/// Acceptance: a supervisor pauses an agent from the board, the PBX receives the QueuePause
/// action, and the state comes back to the board as paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_pauses_an_agent_from_the_board() {
    let Some(browser) = common::browser::Browser::launch().await else {
        return;
    };
    let (pbx, server, _admin, ana, _ben) = connected_tenant().await;
    let wait = Duration::from_secs(15);
    let mut page = supervisor_on_board(&browser, &server).await;
    let row = format!("li.agent[data-agent='{ana}']");
    assert!(
        page.wait_for(
            &format!("document.querySelector(\"{row}[data-state='available']\") !== null"),
            wait
        )
        .await,
        "Ana on the board"
    );
    page.click(&format!("{row} a.agent-name")).await;
    assert!(
        page.wait_for("document.querySelector('#pause') !== null", wait).await,
        "the drawer offers a pause"
    );
    page.fill("#pause-reason", "lunch").await;
    page.click("#pause").await;
    // The PBX receives the QueuePause for Ana's interface, with the reason …
    let started = Instant::now();
    while pauses(&pbx).is_empty() {
        let shown = page.eval("document.body.innerText.slice(0, 400)").await;
        assert!(
            started.elapsed() < wait,
            "no QueuePause reached the PBX; the page says {shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pauses(&pbx), [("PJSIP/1001".into(), "true".into(), "lunch".into())]);
    // … and the board shows Ana paused once the PBX confirms.
    page.goto(&server.url("/board")).await;
    assert!(
        page.wait_for(
            &format!("document.querySelector(\"{row}[data-state='paused']\") !== null"),
            wait
        )
        .await,
        "the board shows Ana paused"
    );
    // Click-to-call from the drawer: the PBX is asked to ring Ana's phone, then dial.
    page.click(&format!("{row} a.agent-name")).await;
    assert!(
        page.wait_for("document.querySelector('#call-number') !== null", wait)
            .await,
        "the drawer offers a call"
    );
    page.fill("#call-number", "+4930123").await;
    page.click("#call").await;
    let started = Instant::now();
    let originate = loop {
        if let Some(found) = pbx.actions().into_iter().find(|a| a.get("Action") == Some("Originate")) {
            break found;
        }
        assert!(started.elapsed() < wait, "no Originate reached the PBX");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (originate.get("Channel"), originate.get("Exten")),
        (Some("PJSIP/1001"), Some("+4930123"))
    );
    // Without JavaScript (the form posted as it is): back on the agent's page, which says it
    // was sent.
    page.eval("document.querySelector('#call').closest('form').submit()")
        .await;
    assert!(
        page.wait_for(
            "location.search === '?sent=1' && document.querySelector('#control-result.notice') !== null",
            wait
        )
        .await,
        "{}",
        page.eval("location.href + ' ' + document.body.innerText.slice(0, 300)")
            .await
    );
    browser.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_call_logout_and_call_actions_reach_the_pbx() {
    let (pbx, server, admin, ana, ben) = connected_tenant().await;
    let supervisor = server.tenant("acme", monti::domain::Role::Supervisor).await;
    // Click-to-call: Ana's phone rings first, then dials the number.
    let call = server
        .post(
            &format!("/api/v1/live/agents/{ana}/call"),
            &supervisor,
            json!({ "number": "+4930123" }),
        )
        .await;
    call.expect(202);
    let originate = pbx
        .actions()
        .into_iter()
        .find(|a| a.get("Action") == Some("Originate"))
        .expect("an Originate");
    assert_eq!(originate.get("Channel"), Some("PJSIP/1001"));
    assert_eq!(originate.get("Exten"), Some("+4930123"));
    assert_eq!(originate.get("Context"), Some("from-internal"));
    server
        .post(
            &format!("/api/v1/live/agents/{ana}/call"),
            &supervisor,
            json!({ "number": "1; Hangup" }),
        )
        .await
        .expect_problem(400);
    // Log Ben out of his queues: the PBX removes him and the floor follows.
    server
        .post(&format!("/api/v1/live/agents/{ben}/logout"), &supervisor, json!({}))
        .await
        .expect(202);
    floor_until(&server, &admin, "Ben logged out", |agents| {
        state_of(agents, "Ben").0 == "logged_out"
    })
    .await;
    // Calls the connector does not know, and what needs ARI, are refused with the reason.
    let unknown = server
        .post("/api/v1/live/calls/1800000000.42/hangup", &supervisor, json!({}))
        .await;
    unknown.expect_problem(422);
    assert!(
        unknown.body["detail"].as_str().unwrap().contains("no call"),
        "{}",
        unknown.body
    );
    let hold = server
        .post("/api/v1/live/calls/1800000000.42/hold", &supervisor, json!({}))
        .await;
    hold.expect_problem(422);
    assert!(hold.body["detail"].as_str().unwrap().contains("ARI"), "{}", hold.body);
    server
        .post("/api/v1/live/calls/x/transfer", &supervisor, json!({ "to": "" }))
        .await
        .expect_problem(400);
    let audit = server.get("/api/v1/audit?action=agent.call", &admin).await.body;
    assert!(audit.to_string().contains("Originate"), "{audit}");
    // After new configuration, the admin has the PBX reload; a supervisor may not.
    server
        .post("/api/v1/telephony/reload", &supervisor, json!({}))
        .await
        .expect_problem(403);
    server
        .post("/api/v1/telephony/reload", &admin, json!({}))
        .await
        .expect(202);
    assert!(pbx.actions().iter().any(|a| a.get("Action") == Some("Reload")));
    server.stop().await;
}
