//! Events in, the live floor and its streams out: ingest results, floors that move and survive restarts, SSE and WebSocket, per-queue KPIs.

use super::*;

both_backends!(events_are_ingested_one_result_each);
async fn events_are_ingested_one_result_each(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let viewer = s.tenant("acme", Role::Viewer).await;
    s.post("/api/v1/agents", &admin, json!({ "name": "Ana", "extension": "1001" }))
        .await
        .expect(201);
    s.post("/api/v1/queues", &admin, json!({ "name": "Sales" }))
        .await
        .expect(201);
    let now = chrono::Utc::now();
    let at = now.to_rfc3339();
    let old = (now - chrono::Duration::days(30)).to_rfc3339();
    let batch = json!([
        { "id": "e1", "source": "pbx1", "at": at, "type": "agent_login", "agent": "1001" },
        { "id": "e2", "source": "pbx1", "at": at, "type": "caller_join", "queue": "Sales", "call": "c1" },
        { "id": "e1", "source": "pbx1", "at": at, "type": "agent_login", "agent": "1001" },
        { "id": "e3", "source": "pbx1", "at": old, "type": "agent_logout", "agent": "1001" },
        { "id": "e4", "source": "pbx1", "at": at, "type": "agent_state", "agent": "9999", "state": "available" },
        { "id": "e5", "source": "pbx1", "at": at, "type": "agent_dance", "agent": "1001" },
    ]);
    let reply = s.post("/api/v1/events", &admin, batch.clone()).await;
    reply.expect(200);
    assert_eq!(
        (
            reply.body["accepted"].as_u64(),
            reply.body["duplicates"].as_u64(),
            reply.body["rejected"].as_u64()
        ),
        (Some(2), Some(1), Some(3))
    );
    let results = reply.body["results"].as_array().unwrap();
    let statuses: Vec<&str> = results.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        vec!["accepted", "accepted", "duplicate", "rejected", "rejected", "rejected"]
    );
    assert_eq!(results[3]["errors"][0]["pointer"], "/at");
    assert_eq!(results[4]["errors"][0]["pointer"], "/agent");
    assert!(
        results[5]["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("agent_dance")
    );
    // Sent again: everything that was accepted is a duplicate now.
    let again = s.post("/api/v1/events", &admin, batch).await;
    assert_eq!(again.body["accepted"], 0);
    assert_eq!(again.body["duplicates"], 3);
    // NDJSON, with a line that is not JSON.
    let ndjson = format!(
        "{}\nnot json\n\n{}\n",
        json!({ "id": "n1", "source": "crm", "at": at, "type": "agent_logout", "agent": "1001" }),
        json!({ "id": "n2", "source": "crm", "at": at, "type": "caller_leave", "queue": "Sales", "call": "c1", "reason": "abandon", "wait_s": 12.5 })
    );
    let lines = s
        .client
        .post(s.url("/api/v1/events"))
        .bearer_auth(&admin)
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    let lines = common::Reply::from(lines).await;
    lines.expect(200);
    assert_eq!(lines.body["accepted"], 2);
    assert_eq!(lines.body["rejected"], 1);
    assert_eq!(lines.body["results"][1]["status"], "rejected");
    // Only tenant admins send events; other tenants see none of them.
    s.post("/api/v1/events", &viewer, json!([])).await.expect_problem(403);
    let text = s
        .client
        .post(s.url("/api/v1/events"))
        .bearer_auth(&admin)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let other = s.tenant("other", Role::TenantAdmin).await;
    let foreign = s
        .post(
            "/api/v1/events",
            &other,
            json!([{ "id": "e1", "source": "pbx1", "at": at, "type": "agent_login", "agent": "1001" }]),
        )
        .await;
    assert_eq!(
        foreign.body["rejected"], 1,
        "acme's agents are unknown to another tenant"
    );
}

both_backends!(ingested_events_move_the_live_floor);
async fn ingested_events_move_the_live_floor(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let north = seed_team(s, &admin, "North").await;
    let south = seed_team(s, &admin, "South").await;
    let ana = s
        .post(
            "/api/v1/agents",
            &admin,
            json!({ "name": "Ana", "team_id": north, "extension": "1001" }),
        )
        .await
        .id();
    s.post(
        "/api/v1/agents",
        &admin,
        json!({ "name": "Ben", "team_id": south, "interface": "PJSIP/1002" }),
    )
    .await
    .expect(201);
    let queue = s
        .post(
            "/api/v1/queues",
            &admin,
            json!({ "name": "Sales", "sl_threshold_s": 20 }),
        )
        .await
        .id();
    s.put(
        &format!("/api/v1/queues/{queue}/members"),
        &admin,
        json!([{ "agent_id": ana }]),
    )
    .await
    .expect(200);
    let now = chrono::Utc::now();
    let at = |s: i64| (now - chrono::Duration::seconds(60 - s)).to_rfc3339();
    let batch = json!([
        { "id": "1", "source": "pbx", "at": at(0), "type": "agent_login", "agent": "1001" },
        { "id": "2", "source": "pbx", "at": at(1), "type": "agent_state", "agent": "PJSIP/1002", "state": "paused", "reason": "lunch" },
        { "id": "3", "source": "pbx", "at": at(2), "type": "caller_join", "queue": "Sales", "call": "c1" },
        { "id": "4", "source": "pbx", "at": at(3), "type": "caller_join", "queue": "Sales", "call": "c2" },
        { "id": "5", "source": "pbx", "at": at(10), "type": "caller_answer", "queue": "Sales", "call": "c1", "agent": "1001", "wait_s": 8.0 },
        { "id": "6", "source": "pbx", "at": at(40), "type": "caller_leave", "queue": "Sales", "call": "c2", "reason": "abandon", "wait_s": 37.0 },
    ]);
    s.post("/api/v1/events", &admin, batch).await.expect(200);
    let snap = s.get("/api/v1/live/snapshot", &admin).await;
    snap.expect(200);
    let agents = snap.body["agents"].as_array().unwrap();
    let state_of = |name: &str| agents.iter().find(|a| a["name"] == name).unwrap().clone();
    assert_eq!(state_of("Ana")["state"], "on_queue_call");
    assert_eq!(state_of("Ben")["state"], "paused");
    assert_eq!(state_of("Ben")["reason"], "lunch");
    assert_eq!(snap.body["states"]["on_queue_call"], 1);
    let sales = &snap.body["queues"][0];
    assert_eq!(sales["name"], "Sales");
    assert_eq!(sales["waiting"], 0);
    assert_eq!(sales["today"]["offered"], 2);
    assert_eq!(sales["today"]["answered"], 1);
    assert_eq!(sales["today"]["abandoned"], 1);
    assert_eq!(
        sales["today"]["service_level"], 0.5,
        "1 of (1 answered + 1 abandoned) within 20 s"
    );
    assert_eq!(sales["today"]["asa_s"], 8.0);
    assert_eq!(sales["agents"]["on_queue_call"], 1);
    // A late event does not rewind Ana.
    s.post("/api/v1/events", &admin, json!([{ "id": "7", "source": "pbx", "at": at(5), "type": "agent_state", "agent": "1001", "state": "available" }])).await.expect(200);
    assert_eq!(
        s.get("/api/v1/live/snapshot", &admin).await.body["agents"][0]["state"],
        "on_queue_call"
    );
    // A new agent appears on the floor, and the others keep their states.
    s.post("/api/v1/agents", &admin, json!({ "name": "Cem", "team_id": north }))
        .await
        .expect(201);
    let after = s.get("/api/v1/live/snapshot", &admin).await;
    assert_eq!(after.body["agents"].as_array().unwrap().len(), 3);
    assert_eq!(after.body["states"]["paused"], 1);
    assert_eq!(after.body["states"]["logged_out"], 1);
    // A supervisor token scoped to North sees only North; agents see no floor.
    let scoped = s
        .post(
            "/api/v1/tokens",
            &admin,
            json!({ "name": "north", "role": "supervisor", "team_scope": [north] }),
        )
        .await;
    let scoped = scoped.body["secret"].as_str().unwrap().to_owned();
    let north_view = s.get("/api/v1/live/snapshot", &scoped).await;
    let names: Vec<&str> = north_view.body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Ana", "Cem"]);
    assert_eq!(north_view.body["teams"].as_array().unwrap().len(), 1);
    assert_eq!(
        north_view.body["states"]["paused"], 0,
        "Ben (South) is not counted for North"
    );
    let agent = s.tenant("acme", Role::Agent).await;
    s.get("/api/v1/live/snapshot", &agent).await.expect_problem(403);
}

both_backends!(the_live_floor_survives_a_restart);
async fn the_live_floor_survives_a_restart(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    s.post("/api/v1/agents", &admin, json!({ "name": "Ana", "extension": "1001" }))
        .await
        .expect(201);
    s.post("/api/v1/queues", &admin, json!({ "name": "Sales" }))
        .await
        .expect(201);
    let at = |secs: i64| (chrono::Utc::now() - chrono::Duration::seconds(secs)).to_rfc3339();
    let batch = json!([
        { "id": "1", "source": "pbx", "at": at(50), "type": "agent_state", "agent": "1001", "state": "paused", "reason": "training" },
        { "id": "2", "source": "pbx", "at": at(40), "type": "caller_join", "queue": "Sales", "call": "c1" },
        { "id": "3", "source": "pbx", "at": at(30), "type": "caller_leave", "queue": "Sales", "call": "c1", "reason": "abandon", "wait_s": 10.0 },
        { "id": "4", "source": "pbx", "at": at(20), "type": "caller_join", "queue": "Sales", "call": "c2" },
    ]);
    s.post("/api/v1/events", &admin, batch).await.expect(200);
    let before = s.get("/api/v1/live/snapshot", &admin).await.body;
    // A new instance on the same database (as after a restart) starts with an empty registry.
    let scope = monti::store::tenants::system_scope(&s.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let fresh = monti::live::registry::LiveRegistry::default();
    let floor = fresh.floor(&s.store, &scope).await.unwrap();
    let live = floor.live.lock().unwrap();
    let ana = live.agent(0).unwrap();
    assert_eq!(ana.state.as_str(), before["agents"][0]["state"].as_str().unwrap());
    assert_eq!(ana.reason.as_deref(), Some("training"));
    assert_eq!(
        monti::domain::time::to_rfc3339(ana.since_ms),
        before["agents"][0]["since"].as_str().unwrap(),
        "the same since-when"
    );
    let sales = live.queue(0).unwrap();
    assert_eq!(sales.waiting(), 1, "c2 is still waiting");
    assert_eq!(sales.today().offered, 1);
    assert_eq!(sales.today().abandoned, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_event_flood_is_limited_without_touching_others() {
    let s = TestServer::start_with(common::Backend::Sqlite, |c| {
        c.auth.ingest_events_per_second = 1.0;
        c.auth.ingest_burst = 3;
    })
    .await
    .unwrap();
    let a = s.tenant("acme", Role::TenantAdmin).await;
    let b = s.tenant("bravo", Role::TenantAdmin).await;
    let at = chrono::Utc::now().to_rfc3339();
    let batch = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| json!({ "id": format!("e{i}"), "source": "s", "at": at, "type": "agent_login", "agent": "x" }))
                .collect(),
        )
    };
    s.post("/api/v1/events", &a, batch(3)).await.expect(200);
    let flood = s.post("/api/v1/events", &a, batch(3)).await;
    flood.expect_problem(429);
    assert!(flood.header("retry-after").is_some());
    s.post("/api/v1/events", &b, batch(3)).await.expect(200);
    s.stop().await;
}

both_backends!(the_live_stream_sends_deltas_resumes_and_respects_scopes);
async fn the_live_stream_sends_deltas_resumes_and_respects_scopes(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let north = seed_team(s, &admin, "North").await;
    let south = seed_team(s, &admin, "South").await;
    for (name, team, extension) in [("Ana", &north, "1001"), ("Ben", &south, "1002")] {
        s.post(
            "/api/v1/agents",
            &admin,
            json!({ "name": name, "team_id": team, "extension": extension }),
        )
        .await
        .expect(201);
    }
    let scoped = s
        .post(
            "/api/v1/tokens",
            &admin,
            json!({ "name": "north wall", "role": "supervisor", "team_scope": [north] }),
        )
        .await;
    scoped.expect(201);
    let scoped = scoped.body["secret"].as_str().unwrap().to_owned();
    let state = |id: &str, agent: &str, state: &str| json!([{ "id": id, "source": "t", "at": chrono::Utc::now().to_rfc3339(), "type": "agent_state", "agent": agent, "state": state }]);

    let mut all = SseReader::open(s, &admin, None).await;
    let (event, first_id, snapshot) = all.next().await;
    assert_eq!(event, "snapshot");
    assert_eq!(snapshot["agents"].as_array().unwrap().len(), 2);
    let mut north_only = SseReader::open(s, &scoped, None).await;
    let (_, _, snapshot) = north_only.next().await;
    assert_eq!(
        snapshot["agents"].as_array().unwrap().len(),
        1,
        "the scope applies to the snapshot"
    );

    s.post("/api/v1/events", &admin, state("1", "1001", "available"))
        .await
        .expect(200);
    let (event, id1, delta) = all.next().await;
    assert_eq!(event, "delta");
    assert_eq!(delta["seq"], json!(id1), "the data carries the event id");
    assert_eq!(delta["agents"][0]["name"], json!("Ana"));
    assert_eq!(delta["agents"][0]["state"], json!("available"));
    let (_, _, seen) = north_only.next().await;
    assert_eq!(seen["agents"][0]["name"], json!("Ana"));

    // Ben is in team South: the north-scoped stream gets nothing of him.
    s.post("/api/v1/events", &admin, state("2", "1002", "paused"))
        .await
        .expect(200);
    let (_, id2, delta) = all.next().await;
    assert_eq!(delta["agents"][0]["name"], json!("Ben"));
    assert_ne!(id1, id2);
    s.post("/api/v1/events", &admin, state("3", "1001", "on_direct_call"))
        .await
        .expect(200);
    let (_, _, seen) = north_only.next().await;
    assert_eq!(
        seen["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].clone())
            .collect::<Vec<_>>(),
        vec![json!("Ana")],
        "only Ana's change, never Ben's"
    );
    let (_, id3, _) = all.next().await;

    // A client that lost its connection after the first delta resumes from there.
    drop(all);
    let mut resumed = SseReader::open(s, &admin, Some(&id1)).await;
    let (event, id, delta) = resumed.next().await;
    assert_eq!(
        (event.as_str(), id.as_str()),
        ("delta", id2.as_str()),
        "the missed delta comes first"
    );
    assert_eq!(delta["agents"][0]["name"], json!("Ben"));
    let (_, id, _) = resumed.next().await;
    assert_eq!(id, id3);
    // One that resumes from something unknown starts over with a snapshot.
    let mut unknown = SseReader::open(s, &admin, Some("1-999999")).await;
    let (event, _, _) = unknown.next().await;
    assert_eq!(event, "snapshot");
    assert!(!first_id.is_empty(), "a snapshot has a position to resume from");
}

both_backends!(unknown_agents_are_created_when_the_tenant_allows_and_old_history_is_trimmed);
async fn unknown_agents_are_created_when_the_tenant_allows_and_old_history_is_trimmed(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let platform = s.platform_token().await;
    let event = |id: &str, agent: &str, ago_s: i64| {
        json!([{ "id": id, "source": "pbx", "at": (chrono::Utc::now() - chrono::Duration::seconds(ago_s)).to_rfc3339(),
                 "type": "agent_login", "agent": agent }])
    };
    let refused = s.post("/api/v1/events", &admin, event("1", "7001", 0)).await;
    assert_eq!(
        refused.body["rejected"],
        json!(1),
        "unknown agents are refused by default"
    );
    assert_eq!(refused.body["results"][0]["errors"][0]["pointer"], json!("/agent"));

    let tenant = s.get("/api/v1/tenant", &admin).await.body;
    s.patch(
        &format!("/api/v1/tenants/{}", tenant["id"].as_str().unwrap()),
        &platform,
        json!({ "features": { "auto_create_agents": true } }),
    )
    .await
    .expect(200);
    // Six days ago: inside what ingest accepts, outside a two-day retention.
    let accepted = s.post("/api/v1/events", &admin, event("2", "7001", 6 * 86_400)).await;
    assert_eq!(accepted.body["accepted"], json!(1), "{}", accepted.body);
    let fresh = s.post("/api/v1/events", &admin, event("3", "7001", 0)).await;
    assert_eq!(fresh.body["accepted"], json!(1));
    let agents = s.get("/api/v1/agents?extension=7001", &admin).await.body;
    assert_eq!(agents["items"].as_array().unwrap().len(), 1, "created once: {agents}");
    let audit = s.get("/api/v1/audit?action=agent.create", &admin).await.body;
    assert_eq!(
        audit["items"].as_array().map(Vec::len),
        Some(1),
        "the creation is audited: {audit}"
    );
    let snapshot = s.get("/api/v1/live/snapshot", &admin).await.body;
    assert_eq!(snapshot["agents"][0]["state"], json!("available"));

    let deleted = monti::live::service::trim_history(&s.store, std::time::Duration::from_secs(2 * 86_400))
        .await
        .unwrap();
    assert_eq!(deleted, 1, "only the six-day-old event is past the retention");
    let scope = monti::store::tenants::system_scope(&s.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let left = monti::store::events::since(&s.store, &scope, 0).await.unwrap();
    assert_eq!(left.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec!["3"]);
}

both_backends!(the_live_stream_over_websocket);
async fn the_live_stream_over_websocket(s: &TestServer) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let team = seed_team(s, &admin, "North").await;
    s.post(
        "/api/v1/agents",
        &admin,
        json!({ "name": "Ana", "team_id": team, "extension": "1001" }),
    )
    .await
    .expect(201);
    let ws_url = s.url("/api/v1/live/ws").replacen("http://", "ws://", 1);
    // Without a token the upgrade is refused.
    let refused = tokio_tungstenite::connect_async(ws_url.as_str()).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401),
        "{refused:?}"
    );
    // Browsers cannot send headers on a WebSocket: they connect with a short-lived ticket.
    let ticket = s.post("/api/v1/live/tickets", &admin, json!({})).await;
    ticket.expect(201);
    let ticket = ticket.body["ticket"].as_str().unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws_url}?ticket={ticket}"))
        .await
        .expect("upgrade with a ticket in the query");
    let mut next = async || -> Value {
        loop {
            let message = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
                .await
                .expect("a message within 5 s")
                .expect("open")
                .expect("no error");
            if let Message::Text(text) = message {
                return serde_json::from_str(&text).unwrap();
            }
        }
    };
    let snapshot = next().await;
    assert_eq!(snapshot["type"], json!("snapshot"));
    assert_eq!(snapshot["data"]["agents"][0]["name"], json!("Ana"));
    s.post(
        "/api/v1/events",
        &admin,
        json!([{ "id": "w1", "source": "t", "at": chrono::Utc::now().to_rfc3339(), "type": "agent_state", "agent": "1001", "state": "paused", "reason": "coffee" }]),
    )
    .await
    .expect(200);
    let delta = next().await;
    assert_eq!(delta["type"], json!("delta"));
    assert_eq!(delta["data"]["agents"][0]["state"], json!("paused"));
    assert_eq!(delta["data"]["agents"][0]["reason"], json!("coffee"));
    assert_eq!(delta["id"], delta["data"]["seq"]);
}

both_backends!(each_queue_counts_its_kpis_its_own_way);
async fn each_queue_counts_its_kpis_its_own_way(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let team = seed_team(s, &admin, "North").await;
    s.post(
        "/api/v1/agents",
        &admin,
        json!({ "name": "Ana", "team_id": team, "extension": "1001" }),
    )
    .await
    .expect(201);
    s.post("/api/v1/queues", &admin, json!({ "name": "Plain" }))
        .await
        .expect(201);
    let custom = s
        .post(
            "/api/v1/queues",
            &admin,
            json!({ "name": "Custom", "sl_variant": "answered_only", "short_abandon_s": 5, "abandon_rate_counts_short": false }),
        )
        .await;
    custom.expect(201);
    assert_eq!(custom.body["sl_variant"], json!("answered_only"));
    s.post(
        "/api/v1/queues",
        &admin,
        json!({ "name": "Bad", "sl_variant": "whatever" }),
    )
    .await
    .expect_problem(422);
    // The same calls in both queues: one answered after 10 s, one caller gone after 3 s.
    let at = |secs: i64| (chrono::Utc::now() - chrono::Duration::seconds(60 - secs)).to_rfc3339();
    let mut events = Vec::new();
    for queue in ["Plain", "Custom"] {
        events.extend([
            json!({ "id": format!("{queue}1"), "source": "pbx", "at": at(0), "type": "caller_join", "queue": queue, "call": format!("{queue}-a") }),
            json!({ "id": format!("{queue}2"), "source": "pbx", "at": at(10), "type": "caller_answer", "queue": queue, "call": format!("{queue}-a"), "agent": "1001", "wait_s": 10.0 }),
            json!({ "id": format!("{queue}3"), "source": "pbx", "at": at(20), "type": "caller_join", "queue": queue, "call": format!("{queue}-b") }),
            json!({ "id": format!("{queue}4"), "source": "pbx", "at": at(23), "type": "caller_leave", "queue": queue, "call": format!("{queue}-b"), "reason": "abandon", "wait_s": 3.0 }),
        ]);
    }
    let reply = s.post("/api/v1/events", &admin, Value::Array(events)).await;
    assert_eq!(reply.body["accepted"], json!(8), "{}", reply.body);
    let snapshot = s.get("/api/v1/live/snapshot", &admin).await.body;
    let today = |name: &str| {
        snapshot["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == json!(name))
            .unwrap()["today"]
            .clone()
    };
    // Plain: answered within 20 s ÷ (answered + abandoned) = 1/2; abandon rate 1/2.
    assert_eq!(today("Plain")["service_level"], json!(0.5));
    assert_eq!(today("Plain")["abandon_rate"], json!(0.5));
    // Custom: ÷ answered only = 1; the 3 s caller is a short abandon, left out of the rate.
    assert_eq!(today("Custom")["service_level"], json!(1.0));
    assert_eq!(today("Custom")["abandon_rate"], json!(0.0));
}
