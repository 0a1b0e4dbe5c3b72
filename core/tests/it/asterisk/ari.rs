//! ARI: listening in, whispering, holding and hanging up through the connector.

use super::*;

/// Hold and listening in go through ARI: the connector logs in to the event socket with the
/// password placed by the host, snoops on the agent's own channel and rings the supervisor
/// into a bridge with it, ends the session when either side leaves, and holds calls that an
/// ARI application controls (a dial-plan queue call is refused with the reason).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ari_listens_in_whispers_and_holds_through_the_connector() {
    let ari = AriSimulator::start("monti", "ari-pw").await.unwrap();
    let (ami, server, admin, ana, _ben) = connected_tenant_with(Some(&ari)).await;
    let supervisor = server.tenant("acme", monti::domain::Role::Supervisor).await;
    // The event socket is open, authenticated by the host (the plugin never had the password).
    let started = Instant::now();
    loop {
        let status = server.get("/api/v1/plugins/asterisk", &admin).await.body["status"].clone();
        if status["ari"]["connection"] == json!("live") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "ARI never connected: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ari.requests().iter().any(|r| r == "GET /ari/events?app=monti"),
        "{:?}",
        ari.requests()
    );

    let call = "1800000000.7";
    ana_takes_call(&ami, &ari, &server, &admin, call).await;
    // No phone given: refused before anything is sent.
    server
        .post(&format!("/api/v1/live/agents/{ana}/listen"), &supervisor, json!({}))
        .await
        .expect_problem(400);
    // Listen: a snoop on Ana's own channel that hears both sides and says nothing, and the
    // supervisor's phone, in one bridge.
    let listen = server
        .post(
            &format!("/api/v1/live/agents/{ana}/listen"),
            &supervisor,
            json!({ "supervisor": "PJSIP/2001" }),
        )
        .await;
    listen.expect(202);
    assert!(
        listen.body["answer"].as_str().unwrap().contains("ringing PJSIP/2001"),
        "{}",
        listen.body
    );
    let (listen_bridge, snoop, sup) = snoop_session(&ari, "listen").await;
    assert_eq!(
        snoop["snoops"],
        json!({ "channel": member_channel_id(call), "spy": "both", "whisper": "none" })
    );
    assert!(sup["name"].as_str().unwrap().starts_with("PJSIP/2001-"), "{sup}");
    // The supervisor hangs up: the connector ends the session (the snoop goes, the bridge too).
    ari.hang_up(sup["id"].as_str().unwrap());
    let snoop_id = snoop["id"].as_str().unwrap().to_owned();
    ari_until(&ari, "the listen session ended", |ari| {
        !ari.bridge_ids().contains(&listen_bridge) && ari.channel(&snoop_id).is_none()
    })
    .await;

    // Whisper by the call's id, with an extension for the phone (rung through the dial plan).
    let whisper = server
        .post(
            &format!("/api/v1/live/calls/{call}/whisper"),
            &supervisor,
            json!({ "supervisor": "2001" }),
        )
        .await;
    whisper.expect(202);
    let (whisper_bridge, snoop, sup) = snoop_session(&ari, "whisper").await;
    assert_eq!(
        snoop["snoops"]["whisper"],
        json!("out"),
        "the agent hears the supervisor, the caller does not"
    );
    assert!(
        sup["name"].as_str().unwrap().starts_with("Local/2001@from-internal-"),
        "{sup}"
    );
    // Hold: a queue call from the dial plan is not Stasis's; Asterisk refuses, the reason shown.
    let hold = server
        .post(&format!("/api/v1/live/calls/{call}/hold"), &supervisor, json!({}))
        .await;
    hold.expect_problem(422);
    assert!(
        hold.body["detail"].as_str().unwrap().contains("dial plan"),
        "{}",
        hold.body
    );
    // The call ends: the snoop goes with Ana's channel, and the connector clears up the rest.
    use monti::domain::events::EventBody;
    play(
        &ami,
        &ari,
        EventBody::CallEnd {
            call: call.into(),
            agent: "1001".into(),
            queue: Some("sales".into()),
            talk_s: 30.0,
            hold_s: 0.0,
            wrap_s: None,
        },
    );
    let sup_id = sup["id"].as_str().unwrap().to_owned();
    ari_until(&ari, "the whisper session ended with the call", |ari| {
        !ari.bridge_ids().contains(&whisper_bridge) && ari.channel(&sup_id).is_none()
    })
    .await;
    // A call an ARI application controls can be held and taken off hold.
    ari.stasis_call("1800000000.9", "monti");
    server
        .post("/api/v1/live/calls/1800000000.9/hold", &supervisor, json!({}))
        .await
        .expect(202);
    assert_eq!(ari.channel("1800000000.9").unwrap()["held"], json!(true));
    server
        .post("/api/v1/live/calls/1800000000.9/unhold", &supervisor, json!({}))
        .await
        .expect(202);
    assert_eq!(ari.channel("1800000000.9").unwrap()["held"], json!(false));
    server
        .post("/api/v1/live/calls/1800000000.404/hold", &supervisor, json!({}))
        .await
        .expect_problem(422);
    // Ana is on no call now: the agent's call actions say so.
    server
        .post(&format!("/api/v1/live/agents/{ana}/hangup"), &supervisor, json!({}))
        .await
        .expect_problem(409);
    let audit = server.get("/api/v1/audit?action=call.listen", &admin).await.body;
    assert!(audit.to_string().contains("ringing PJSIP/2001"), "{audit}");
    server.stop().await;
}

/// A wrong ARI password shows on the plugin's page; the right one, once saved, connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ari_password_is_shown_and_a_corrected_one_connects() {
    let ari = AriSimulator::start("monti", "right-pw").await.unwrap();
    let (_ami, server, admin, _ana, _ben) = connected_tenant_with(Some(&ari)).await;
    let status_until = |what: &'static str, ready: fn(&Value) -> bool| {
        let (server, admin) = (&server, &admin);
        async move {
            let started = Instant::now();
            loop {
                let status = server.get("/api/v1/plugins/asterisk", admin).await.body["status"].clone();
                if ready(&status["ari"]) {
                    return status;
                }
                assert!(started.elapsed() < Duration::from_secs(30), "{what}: {status}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let status = status_until("the refusal shown", |ari| {
        ari["last_error"].as_str().is_some_and(|e| e.contains("401"))
    })
    .await;
    assert_eq!(status["ari"]["connection"], json!("disconnected"), "{status}");
    server
        .patch(
            "/api/v1/plugins/asterisk",
            &admin,
            json!({ "secrets": { "ari_password": "right-pw" } }),
        )
        .await
        .expect(200);
    status_until("connected with the corrected password", |ari| {
        ari["connection"] == json!("live")
    })
    .await;
    server.stop().await;
}

/// From the board: the drawer of an agent on a call offers listening in (the supervisor's
/// phone rings into a snoop bridge over ARI) and hanging up (a manager `Hangup` on the caller's
/// channel).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_listens_in_and_hangs_up_from_the_board() {
    let Some(browser) = common::browser::Browser::launch().await else {
        return;
    };
    let ari = AriSimulator::start("monti", "ari-pw").await.unwrap();
    let (ami, server, admin, ana, _ben) = connected_tenant_with(Some(&ari)).await;
    let call = "1800000000.21";
    ana_takes_call(&ami, &ari, &server, &admin, call).await;
    let wait = Duration::from_secs(15);
    let mut page = supervisor_on_board(&browser, &server).await;
    let row = format!("li.agent[data-agent='{ana}']");
    assert!(
        page.wait_for(
            &format!("document.querySelector(\"{row}[data-state='on_queue_call']\") !== null"),
            wait
        )
        .await,
        "Ana on a call on the board"
    );
    page.click(&format!("{row} a.agent-name")).await;
    assert!(
        page.wait_for(
            &format!("document.querySelector(\".call-control[data-call='{call}'] #listen\") !== null"),
            wait
        )
        .await,
        "the drawer offers the call's actions"
    );
    page.fill("#supervisor-phone", "PJSIP/2001").await;
    page.click("#listen").await;
    let (_bridge, snoop, supervisor) = snoop_session(&ari, "listen").await;
    assert_eq!(snoop["snoops"]["channel"], json!(member_channel_id(call)));
    assert!(supervisor["name"].as_str().unwrap().starts_with("PJSIP/2001-"));
    // The answer comes once the connector has answered too; on a loaded machine that can take
    // a while. Whatever the drawer then says is shown if it is not the notice.
    let answered = page
        .wait_for(
            "document.querySelector('#control-result.notice, #control-result.field-error') !== null",
            Duration::from_secs(30),
        )
        .await;
    let said = page
        .eval("document.querySelector('#control-result')?.outerHTML ?? ''")
        .await;
    let requests = page
        .eval(
            "JSON.stringify(performance.getEntriesByType('resource').filter(e => e.name.includes('/board/agents'))\
             .map(e => ({ name: e.name, start: e.startTime, duration: e.duration, status: e.responseStatus })))",
        )
        .await;
    let audit = server.get("/api/v1/audit?action=call.listen", &admin).await.body;
    assert!(
        answered && said.as_str().is_some_and(|html| html.contains("notice")),
        "the drawer says it was sent: {said}; requests {requests}; audit {audit}"
    );
    page.click("#hangup").await;
    let started = Instant::now();
    let hangup = loop {
        if let Some(found) = ami.actions().into_iter().find(|a| a.get("Action") == Some("Hangup")) {
            break found;
        }
        assert!(started.elapsed() < wait, "no Hangup reached the PBX");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(hangup.get("Channel"), Some(format!("PJSIP/trunk-{call}").as_str()));
    // Audited once the connector has answered, which can be after the PBX saw the action.
    let started = Instant::now();
    loop {
        let audit = server.get("/api/v1/audit?action=call.hangup", &admin).await.body;
        if audit.to_string().contains(call) {
            break;
        }
        assert!(started.elapsed() < wait, "the hang-up is audited: {audit}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await;
    server.stop().await;
}
