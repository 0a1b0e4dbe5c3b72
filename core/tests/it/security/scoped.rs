//! A supervisor scoped to a team sees and acts on that team only, through every API path: not
//! only the status codes, the bodies too. Two teams are seeded (agents, queue members, SIP
//! endpoints, a direct number, alerts); a token limited to one team walks every GET path of the
//! OpenAPI document and finds nothing of the other team's agents in any answer, and cannot
//! acknowledge or silence their alerts.

use std::time::{Duration, Instant};

use monti::domain::Role;
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::TestServer;

fn event(id: &str, body: Value) -> Value {
    let mut event = json!({ "id": id, "source": "scoped-test", "at": chrono::Utc::now().to_rfc3339() });
    event.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
    event
}

/// What was seeded, by team.
struct Seeded {
    north_team: String,
    north_agent: String,
    north_endpoint: String,
    south_team: String,
    south_agents: Vec<String>,
    south_endpoint: String,
    south_did: String,
    queue: String,
    rule: String,
    /// Texts that name the south team's agents (ids, names, their endpoint and number).
    south_texts: Vec<String>,
}

async fn seed(s: &TestServer, admin: &str) -> Seeded {
    let post = |path: &'static str, body: Value| async move { s.post(path, admin, body).await.expect(201).id() };
    let north_team = post("/api/v1/teams", json!({ "name": "North Team" })).await;
    let south_team = post("/api/v1/teams", json!({ "name": "Southern Team" })).await;
    let north_agent = post(
        "/api/v1/agents",
        json!({ "name": "Nora Northcott", "team_id": north_team, "extension": "1001" }),
    )
    .await;
    let mut south_agents = Vec::new();
    for (name, extension) in [("Sam Southwark", "2001"), ("Sue Southall", "2002")] {
        south_agents.push(
            post(
                "/api/v1/agents",
                json!({ "name": name, "team_id": south_team, "extension": extension }),
            )
            .await,
        );
    }
    let queue = post("/api/v1/queues", json!({ "name": "Shared queue" })).await;
    let members: Vec<Value> = std::iter::once(&north_agent)
        .chain(&south_agents)
        .map(|a| json!({ "agent_id": a }))
        .collect();
    s.put(&format!("/api/v1/queues/{queue}/members"), admin, json!(members))
        .await
        .expect(200);
    let north_endpoint = post(
        "/api/v1/endpoints",
        json!({ "name": "north-desk", "agent_id": north_agent }),
    )
    .await;
    let south_endpoint = post(
        "/api/v1/endpoints",
        json!({ "name": "southdesk-ep", "agent_id": south_agents[0] }),
    )
    .await;
    post("/api/v1/endpoints", json!({ "name": "spare-phone" })).await;
    let south_did = post(
        "/api/v1/dids",
        json!({ "number": "+4930777000", "route_type": "agent", "route_target": south_agents[1] }),
    )
    .await;
    let rule = post(
        "/api/v1/alert-rules",
        json!({ "name": "Paused", "scope": "agent", "expression": "agent.state == \"paused\"", "for_s": 0,
                "message": "{agent.name} paused" }),
    )
    .await;
    let events: Vec<Value> = ["1001", "2001", "2002"]
        .iter()
        .map(|ext| {
            event(
                &format!("pause-{ext}"),
                json!({ "type": "agent_state", "agent": ext, "state": "paused", "reason": "meeting" }),
            )
        })
        .collect();
    s.post("/api/v1/events", admin, json!(events)).await.expect(200);
    // The rule fires for all three (seen by the tenant admin).
    let started = Instant::now();
    loop {
        let alerts = s.get("/api/v1/alerts", admin).await.body;
        if alerts["items"].as_array().is_some_and(|a| a.len() == 3) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "alerts did not fire: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut south_texts = south_agents.clone();
    south_texts.extend(
        [
            "Sam Southwark",
            "Sue Southall",
            "Southern Team",
            "southdesk-ep",
            "+4930777000",
        ]
        .map(str::to_owned),
    );
    south_texts.extend([south_team.clone(), south_endpoint.clone(), south_did.clone()]);
    Seeded {
        north_team,
        north_agent,
        north_endpoint,
        south_team,
        south_agents,
        south_endpoint,
        south_did,
        queue,
        rule,
        south_texts,
    }
}

/// The id a path's `{…}` stands for: the other team's row where there is one (it must not be
/// found), else a row the supervisor may see.
fn fill(path: &str, seeded: &Seeded, tenant_id: &str) -> String {
    let collection = path
        .trim_start_matches("/api/v1/")
        .split('/')
        .next()
        .unwrap_or_default();
    let id = match collection {
        "teams" => seeded.south_team.as_str(),
        "agents" => &seeded.south_agents[0],
        "endpoints" => &seeded.south_endpoint,
        "dids" => &seeded.south_did,
        "queues" => &seeded.queue,
        "alert-rules" => &seeded.rule,
        "tenants" => tenant_id,
        _ => "none",
    };
    path.replace("{agent_id}", &seeded.south_agents[0])
        .replace("{id}", id)
        .replace("{letter}", "dl_none")
        .replace("{file}", "pjsip.conf")
}

/// Fails if `text` (with the ids the request itself named taken out) mentions the other team.
#[track_caller]
fn assert_clean(what: &str, text: &str, named: &str, seeded: &Seeded) {
    let mut text = text.to_owned();
    for part in named.split('/') {
        if part.len() > 3 {
            text = text.replace(part, "");
        }
    }
    for secret in &seeded.south_texts {
        assert!(
            !text.contains(secret.as_str()),
            "{what} shows `{secret}` of another team: {text}"
        );
    }
}

/// The first event of a server-sent event stream.
async fn first_event(s: &TestServer, path: &str, token: &str) -> String {
    let mut response = s.client.get(s.url(path)).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .expect("the stream is open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

both_backends!(a_team_scoped_supervisor_sees_nothing_of_other_teams);
async fn a_team_scoped_supervisor_sees_nothing_of_other_teams(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let tenant_id = monti::store::tenants::by_slug(&s.store, "acme")
        .await
        .unwrap()
        .unwrap()
        .id;
    let seeded = seed(s, &admin).await;
    let supervisor = s
        .post(
            "/api/v1/tokens",
            &admin,
            json!({ "name": "north supervisor", "role": "supervisor", "team_scope": [seeded.north_team] }),
        )
        .await
        .expect(201)
        .body["secret"]
        .as_str()
        .expect("the token")
        .to_owned();

    // What the supervisor does see: its own team, in every collection that carries agents.
    let agents = s.get("/api/v1/agents", &supervisor).await;
    assert_eq!(agents.body["items"].as_array().unwrap().len(), 1, "{}", agents.text);
    assert_eq!(agents.body["items"][0]["id"], json!(seeded.north_agent));
    let members = s
        .get(&format!("/api/v1/queues/{}/members", seeded.queue), &supervisor)
        .await;
    members.expect(200);
    assert_eq!(
        members.body["items"],
        json!([{ "agent_id": seeded.north_agent, "agent_name": "Nora Northcott", "penalty": 0 }])
    );
    let endpoints = s.get("/api/v1/endpoints", &supervisor).await;
    let names: Vec<&str> = endpoints.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["north-desk", "spare-phone"],
        "the own team's and unassigned endpoints"
    );
    s.get(&format!("/api/v1/endpoints/{}", seeded.north_endpoint), &supervisor)
        .await
        .expect(200);
    let alerts = s.get("/api/v1/alerts?state=all", &supervisor).await;
    let subjects: Vec<&str> = alerts.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["subject"].as_str())
        .collect();
    assert_eq!(subjects, [format!("agent:{}", seeded.north_agent)]);
    // … and the tenant admin sees everything (the seed worked).
    let all = s.get(&format!("/api/v1/queues/{}/members", seeded.queue), &admin).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 3);

    // Every GET path of the API, with the other team's ids where a path takes one.
    let openapi = monti::web::openapi::document();
    let mut walked = 0;
    for (path, item) in openapi["paths"].as_object().unwrap() {
        if item.get("get").is_none() || !path.starts_with("/api/v1/") {
            continue;
        }
        let filled = fill(path, &seeded, &tenant_id);
        if path.ends_with("/live/ws") {
            continue; // below, through a ticket
        }
        let text = if path.ends_with("/live/stream") {
            first_event(s, &filled, &supervisor).await
        } else {
            let reply = s.get(&filled, &supervisor).await;
            assert!(reply.status.as_u16() < 500, "GET {filled}: {}", reply.text);
            reply.text
        };
        assert_clean(&format!("GET {filled}"), &text, &filled, &seeded);
        walked += 1;
    }
    assert!(walked > 20, "walked {walked} GET paths");
    let filtered = [
        "/api/v1/alerts?state=all".to_owned(),
        "/api/v1/endpoints?q=south".to_owned(),
        "/api/v1/dids?route_type=agent".to_owned(),
        format!("/api/v1/agents?team_id={}", seeded.south_team),
    ];
    for path in &filtered {
        let reply = s.get(path, &supervisor).await;
        assert_clean(path, &reply.text, &seeded.south_team, &seeded);
    }
    // The WebSocket's snapshot, through a ticket.
    let ticket = s
        .post("/api/v1/live/tickets", &supervisor, json!({}))
        .await
        .expect(201)
        .body["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let snapshot = super::streams::first_message(s, &format!("/api/v1/live/ws?ticket={ticket}")).await;
    assert!(snapshot.contains(&seeded.north_agent), "{snapshot}");
    assert_clean("the WebSocket snapshot", &snapshot, "", &seeded);

    // Acting on the other team's alerts: not found, like anything else out of sight.
    let south_alert = s.get("/api/v1/alerts", &admin).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["subject"] == json!(format!("agent:{}", seeded.south_agents[0])))
        .expect("the south alert")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.post(
        &format!("/api/v1/alerts/{south_alert}/acknowledge"),
        &supervisor,
        json!({}),
    )
    .await
    .expect_problem(404);
    let south_subject = format!("agent:{}", seeded.south_agents[0]);
    s.post(
        &format!("/api/v1/alert-rules/{}/silence", seeded.rule),
        &supervisor,
        json!({ "minutes": 10, "subject": south_subject }),
    )
    .await
    .expect_problem(404);
    // Silencing the rule for every agent would silence the other team's too.
    s.post(
        &format!("/api/v1/alert-rules/{}/silence", seeded.rule),
        &supervisor,
        json!({ "minutes": 10 }),
    )
    .await
    .expect_problem(422);
    let acknowledged = s.get("/api/v1/alerts", &admin).await.body;
    assert!(
        acknowledged["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["acknowledged_by"].is_null()),
        "nothing was acknowledged: {acknowledged}"
    );
    // Its own team's alert it acknowledges and silences.
    let north_alert = s.get("/api/v1/alerts", &supervisor).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.post(
        &format!("/api/v1/alerts/{north_alert}/acknowledge"),
        &supervisor,
        json!({}),
    )
    .await
    .expect(200);
    s.post(
        &format!("/api/v1/alert-rules/{}/silence", seeded.rule),
        &supervisor,
        json!({ "minutes": 10, "subject": format!("agent:{}", seeded.north_agent) }),
    )
    .await
    .expect(201);
}

both_backends!(a_scoped_writer_changes_only_the_queue_members_it_sees);
async fn a_scoped_writer_changes_only_the_queue_members_it_sees(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let admin = admin.as_str();
    let post = |path: &'static str, body: Value| async move { s.post(path, admin, body).await.expect(201).id() };
    let north = post("/api/v1/teams", json!({ "name": "North" })).await;
    let south = post("/api/v1/teams", json!({ "name": "South" })).await;
    let nora = post("/api/v1/agents", json!({ "name": "Nora", "team_id": north })).await;
    let sam = post("/api/v1/agents", json!({ "name": "Sam", "team_id": south })).await;
    let queue = post("/api/v1/queues", json!({ "name": "Q" })).await;
    s.put(
        &format!("/api/v1/queues/{queue}/members"),
        admin,
        json!([{ "agent_id": nora }, { "agent_id": sam }]),
    )
    .await
    .expect(200);
    // An admin token limited to the north team.
    let scoped = s
        .post(
            "/api/v1/tokens",
            admin,
            json!({ "name": "north admin", "role": "tenant_admin", "team_scope": [north] }),
        )
        .await
        .expect(201)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    s.put(
        &format!("/api/v1/queues/{queue}/members/{sam}"),
        &scoped,
        json!({ "penalty": 3 }),
    )
    .await
    .expect_problem(404);
    s.delete(&format!("/api/v1/queues/{queue}/members/{sam}"), &scoped)
        .await
        .expect_problem(404);
    let replaced = s
        .put(
            &format!("/api/v1/queues/{queue}/members"),
            &scoped,
            json!([{ "agent_id": nora, "penalty": 2 }]),
        )
        .await;
    replaced.expect(200);
    assert_eq!(
        replaced.body["items"],
        json!([{ "agent_id": nora, "agent_name": "Nora", "penalty": 2 }])
    );
    s.put(
        &format!("/api/v1/queues/{queue}/members"),
        &scoped,
        json!([{ "agent_id": sam }]),
    )
    .await
    .expect_problem(422);
    let all = s.get(&format!("/api/v1/queues/{queue}/members"), admin).await;
    let ids: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["agent_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "the south member stayed: {}", all.text);
    assert!(ids.contains(&sam.as_str()));
}
