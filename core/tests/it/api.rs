//! The REST API suite. Every test runs against SQLite and against PostgreSQL.

use crate::both_backends;
use crate::common;

use common::TestServer;
use monti::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};

async fn seed_team(s: &TestServer, token: &str, name: &str) -> String {
    s.post("/api/v1/teams", token, json!({ "name": name }))
        .await
        .expect(201)
        .id()
}

const SUE_PASSWORD: &str = "correct horse battery staple";

/// The path of the invitation link an API answer carries (no mail server in these tests).
fn invitation_path(reply: &common::Reply) -> String {
    let link = reply.body["link"].as_str().expect("an invitation link");
    link[link.find("/invitations/").expect("an invitation path")..].to_owned()
}

both_backends!(operations_endpoints);
async fn operations_endpoints(s: &TestServer) {
    let health = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = common::Reply::from(s.client.get(s.url("/readyz")).send().await.unwrap()).await;
    ready.expect(200);
    assert_eq!(ready.body["status"], "ready");
    let openapi = common::Reply::from(s.client.get(s.url("/api/v1/openapi.json")).send().await.unwrap()).await;
    openapi.expect(200);
    assert_eq!(openapi.body["openapi"], "3.1.0");
    for path in [
        "/api/v1/agents",
        "/api/v1/agents/{id}",
        "/api/v1/dids",
        "/api/v1/endpoints",
        "/api/v1/users",
        "/api/v1/tokens",
    ] {
        assert!(openapi.body["paths"][path].is_object(), "openapi lacks {path}");
    }
    // Agent = its own fields plus the shared Stamps (created_at, updated_at, version).
    let agent = openapi.body["components"]["schemas"]["Agent"]["allOf"]
        .as_array()
        .expect("Agent is allOf")
        .clone();
    assert!(
        agent.iter().any(|part| part["properties"]["team_id"].is_object()),
        "{agent:?}"
    );
    assert!(
        agent.iter().any(|part| part["$ref"] == "#/components/schemas/Stamps"),
        "{agent:?}"
    );
    assert!(openapi.body["components"]["schemas"]["Stamps"]["properties"]["version"].is_object());
    // Metrics count the requests just made.
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_requests_total") && metrics.contains("route=\"/healthz\""),
        "{metrics}"
    );
    assert!(metrics.contains("http_request_duration_seconds_bucket"), "{metrics}");
    // The reference page renders from the same document.
    let docs = s.client.get(s.url("/api/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(
        html.contains("id=\"op-list_agents\"") && html.contains("id=\"schema-Agent\""),
        "{html}"
    );
}

both_backends!(authentication_is_required_and_explained);
async fn authentication_is_required_and_explained(s: &TestServer) {
    let reply = common::Reply::from(s.client.get(s.url("/api/v1/agents")).send().await.unwrap()).await;
    reply.expect_problem(401);
    assert!(reply.header("www-authenticate").unwrap().starts_with("Bearer"));
    let reply = s.get("/api/v1/agents", "monti_not-a-real-token").await;
    reply.expect_problem(401);
    assert!(reply.body["detail"].as_str().unwrap().contains("not valid"));
    // Request ids: ours are generated, a caller's safe one is echoed, an unsafe one replaced.
    let resp = s
        .client
        .get(s.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let resp = s
        .client
        .get(s.url("/healthz"))
        .header("x-request-id", "bad id\twith spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.headers()["x-request-id"], "bad id\twith spaces");
    assert!(!resp.headers()["x-request-id"].is_empty());
    // Revoked and expired tokens stop working at once.
    let token = s.tenant("acme", Role::TenantAdmin).await;
    s.get("/api/v1/agents", &token).await.expect(200);
    let issued = s
        .post("/api/v1/tokens", &token, json!({ "name": "temp", "role": "viewer" }))
        .await;
    issued.expect(201);
    assert_eq!(issued.header("cache-control"), Some("no-store"));
    let temp = issued.body["secret"].as_str().unwrap().to_owned();
    s.get("/api/v1/agents", &temp).await.expect(200);
    s.delete(&format!("/api/v1/tokens/{}", issued.id()), &token)
        .await
        .expect(204);
    let reply = s.get("/api/v1/agents", &temp).await;
    reply.expect_problem(401);
    assert!(reply.body["detail"].as_str().unwrap().contains("revoked"));
    let tenant = monti::store::tenants::by_slug(&s.store, "acme").await.unwrap().unwrap();
    let expired = monti::store::tokens::issue(
        &s.store,
        Some(&tenant.id),
        "old",
        Role::Viewer,
        Some(monti::domain::time::now_ms() + 300),
        "t",
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let reply = s.get("/api/v1/agents", &expired.secret).await;
    reply.expect_problem(401);
    assert!(reply.body["detail"].as_str().unwrap().contains("expired"));
    // The token list never contains secrets.
    let list = s.get("/api/v1/tokens", &token).await;
    list.expect(200);
    assert!(!list.text.contains(&temp) && !list.text.contains(&token));
}

both_backends!(roles_limit_what_tokens_may_do);
async fn roles_limit_what_tokens_may_do(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let viewer = s.tenant("acme", Role::Viewer).await;
    let supervisor = s.tenant("acme", Role::Supervisor).await;
    let team = seed_team(s, &admin, "Sales").await;
    s.get(&format!("/api/v1/teams/{team}"), &viewer).await.expect(200);
    s.post("/api/v1/teams", &viewer, json!({ "name": "X" }))
        .await
        .expect_problem(403);
    s.patch(&format!("/api/v1/teams/{team}"), &supervisor, json!({ "name": "Y" }))
        .await
        .expect_problem(403);
    s.get("/api/v1/tokens", &viewer).await.expect_problem(403);
    s.get("/api/v1/users", &viewer).await.expect_problem(403);
    s.get("/api/v1/users", &supervisor).await.expect(200);
    s.get("/api/v1/tenants", &admin).await.expect_problem(403);
    let platform = s.platform_token().await;
    s.get("/api/v1/agents", &platform).await.expect_problem(403);
    let tenants = s.get("/api/v1/tenants", &platform).await;
    tenants.expect(200);
    assert!(
        tenants.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["slug"] == "acme")
    );
    s.post("/api/v1/tenants", &platform, json!({ "slug": "acme", "name": "Again" }))
        .await
        .expect_problem(409);
    let created = s
        .post(
            "/api/v1/tenants",
            &platform,
            json!({ "slug": "beta", "name": "Beta", "timezone": "America/New_York", "limits": { "max_agents": 2 } }),
        )
        .await;
    created.expect(201);
    assert_eq!(created.body["timezone"], "America/New_York");
}

both_backends!(crud_with_etags_and_preconditions);
async fn crud_with_etags_and_preconditions(s: &TestServer) {
    let t = s.tenant("acme", Role::TenantAdmin).await;
    let created = s
        .post(
            "/api/v1/teams",
            &t,
            json!({ "name": "  Support  ", "description": "Tier 1" }),
        )
        .await;
    created.expect(201);
    let id = created.id();
    assert_eq!(created.body["name"], "Support");
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.header("location"), Some(format!("/api/v1/teams/{id}").as_str()));
    let got = s.get(&format!("/api/v1/teams/{id}"), &t).await;
    got.expect(200);
    assert_eq!(got.body["description"], "Tier 1");
    // Conditional GET.
    let resp = s
        .client
        .get(s.url(&format!("/api/v1/teams/{id}")))
        .bearer_auth(&t)
        .header("if-none-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    // Update with the right ETag, then a stale one.
    let resp = s
        .client
        .patch(s.url(&format!("/api/v1/teams/{id}")))
        .bearer_auth(&t)
        .header("if-match", "\"1\"")
        .json(&json!({ "name": "Support EU" }))
        .send()
        .await
        .unwrap();
    let updated = common::Reply::from(resp).await;
    updated.expect(200);
    assert_eq!(updated.body["version"], 2);
    assert_eq!(updated.header("etag"), Some("\"2\""));
    let resp = s
        .client
        .patch(s.url(&format!("/api/v1/teams/{id}")))
        .bearer_auth(&t)
        .header("if-match", "\"1\"")
        .json(&json!({ "name": "Lost update" }))
        .send()
        .await
        .unwrap();
    let stale = common::Reply::from(resp).await;
    stale.expect_problem(412);
    assert_eq!(stale.body["current_version"], 2);
    assert_eq!(
        s.get(&format!("/api/v1/teams/{id}"), &t).await.body["name"],
        "Support EU"
    );
    let resp = s
        .client
        .delete(s.url(&format!("/api/v1/teams/{id}")))
        .bearer_auth(&t)
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 412);
    s.delete(&format!("/api/v1/teams/{id}"), &t).await.expect(204);
    s.get(&format!("/api/v1/teams/{id}"), &t).await.expect_problem(404);
    // Every collection: create, read, update, delete.
    let team = seed_team(s, &t, "Sales").await;
    let loc = s
        .post(
            "/api/v1/locations",
            &t,
            json!({ "name": "Berlin", "timezone": "Europe/Berlin" }),
        )
        .await
        .expect(201)
        .id();
    let agent = s.post("/api/v1/agents", &t, json!({ "name": "Ana", "team_id": team, "location_id": loc, "extension": "1001", "interface": "PJSIP/1001", "skills": ["Sales", "german"] })).await;
    agent.expect(201);
    assert_eq!(agent.body["skills"], json!(["sales", "german"]));
    let agent = agent.id();
    let cleared = s
        .patch(&format!("/api/v1/agents/{agent}"), &t, json!({ "team_id": null }))
        .await;
    cleared.expect(200);
    assert!(cleared.body["team_id"].is_null());
    assert_eq!(cleared.body["location_id"], loc.as_str());
    let queue = s
        .post("/api/v1/queues", &t, json!({ "name": "Sales", "sl_threshold_s": 15 }))
        .await;
    queue.expect(201);
    assert_eq!(queue.body["sl_target_pct"], 80);
    assert_eq!(queue.body["strategy"], "rrmemory");
    let queue = queue.id();
    let ep = s
        .post(
            "/api/v1/endpoints",
            &t,
            json!({ "name": "1001", "password": "correct horse battery", "agent_id": agent }),
        )
        .await;
    ep.expect(201);
    assert_eq!(ep.body["has_password"], true);
    assert!(ep.body.get("password").is_none() && !ep.text.contains("correct horse"));
    let ep = ep.id();
    let did = s
        .post(
            "/api/v1/dids",
            &t,
            json!({ "number": "+49 30 5550100", "route_type": "queue", "route_target": queue }),
        )
        .await;
    did.expect(201);
    assert_eq!(did.body["number"], "+49305550100");
    assert_eq!(did.body["route_target"], queue.as_str());
    let did = did.id();
    let rerouted = s
        .patch(
            &format!("/api/v1/dids/{did}"),
            &t,
            json!({ "route_type": "external", "route_target": "+14155550100" }),
        )
        .await;
    rerouted.expect(200);
    assert_eq!(rerouted.body["route_target"], "+14155550100");
    s.patch(&format!("/api/v1/endpoints/{ep}"), &t, json!({ "password": null }))
        .await
        .expect(200);
    assert_eq!(
        s.get(&format!("/api/v1/endpoints/{ep}"), &t).await.body["has_password"],
        false
    );
    for path in [
        format!("/api/v1/dids/{did}"),
        format!("/api/v1/endpoints/{ep}"),
        format!("/api/v1/queues/{queue}"),
        format!("/api/v1/agents/{agent}"),
        format!("/api/v1/locations/{loc}"),
        format!("/api/v1/teams/{team}"),
    ] {
        s.delete(&path, &t).await.expect(204);
        s.get(&path, &t).await.expect_problem(404);
    }
}

both_backends!(bad_input_is_explained);
async fn bad_input_is_explained(s: &TestServer) {
    let t = s.tenant("acme", Role::TenantAdmin).await;
    let send = |body: &'static str, ctype: &'static str| {
        s.client
            .post(s.url("/api/v1/teams"))
            .bearer_auth(&t)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    let reply = common::Reply::from(send("{\"name\": ", "application/json").await.unwrap()).await;
    reply.expect_problem(400);
    let reply = common::Reply::from(send("{\"name\": 42}", "application/json").await.unwrap()).await;
    reply.expect_problem(422);
    assert_eq!(reply.pointers(), vec!["/name"]);
    let reply = common::Reply::from(
        send("{\"name\": \"A\", \"colour\": \"red\"}", "application/json")
            .await
            .unwrap(),
    )
    .await;
    reply.expect_problem(422);
    assert!(reply.text.contains("colour"));
    let reply = common::Reply::from(send("{\"name\": \"A\"}", "text/plain").await.unwrap()).await;
    reply.expect_problem(415);
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    // The server answers 413 and closes the connection without reading the rest, so the
    // oversize request gets a client of its own rather than poisoning the shared pool.
    let resp = reqwest::Client::new()
        .post(s.url("/api/v1/teams"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    common::Reply::from(resp).await.expect_problem(413);
    // Field validation reports every field at once.
    let reply = s
        .post(
            "/api/v1/agents",
            &t,
            json!({ "name": "", "extension": "12a", "interface": "1001", "skills": ["ok", "not ok!"] }),
        )
        .await;
    reply.expect_problem(422);
    let mut pointers = reply.pointers();
    pointers.sort();
    assert_eq!(pointers, vec!["/extension", "/interface", "/name", "/skills"]);
    for number in ["0301234567", "+0301234567", "+12", "+49abc"] {
        let reply = s.post("/api/v1/dids", &t, json!({ "number": number })).await;
        reply.expect_problem(422);
        assert_eq!(reply.pointers(), vec!["/number"], "{number}");
    }
    let reply = s
        .post(
            "/api/v1/dids",
            &t,
            json!({ "number": "+4930123456", "route_type": "queue" }),
        )
        .await;
    reply.expect_problem(422);
    assert_eq!(reply.pointers(), vec!["/route_target"]);
    let reply = s
        .post(
            "/api/v1/queues",
            &t,
            json!({ "name": "Q", "sl_target_pct": 120, "strategy": "fastest" }),
        )
        .await;
    reply.expect_problem(422);
    assert_eq!(reply.pointers().len(), 2);
    let reply = s
        .post(
            "/api/v1/endpoints",
            &t,
            json!({ "name": "bad name", "password": "short", "codecs": ["mp3"] }),
        )
        .await;
    reply.expect_problem(422);
    assert_eq!(reply.pointers().len(), 3);
    // Duplicates are conflicts naming the field.
    seed_team(s, &t, "Sales").await;
    let reply = s.post("/api/v1/teams", &t, json!({ "name": "sales" })).await;
    reply.expect_problem(409);
    assert_eq!(reply.pointers(), vec!["/name"]);
    s.post("/api/v1/dids", &t, json!({ "number": "+4930123456" }))
        .await
        .expect(201);
    let other = s.tenant("other", Role::TenantAdmin).await;
    let reply = s
        .post("/api/v1/dids", &other, json!({ "number": "+49 30 123456" }))
        .await;
    reply.expect_problem(409);
    assert_eq!(reply.pointers(), vec!["/number"]);
    s.post("/api/v1/agents", &t, json!({ "name": "A", "extension": "100" }))
        .await
        .expect(201);
    let reply = s
        .post("/api/v1/agents", &t, json!({ "name": "B", "extension": "100" }))
        .await;
    reply.expect_problem(409);
    assert_eq!(reply.pointers(), vec!["/extension"]);
    // References to things that do not exist.
    let reply = s
        .post(
            "/api/v1/agents",
            &t,
            json!({ "name": "C", "team_id": "team_doesnotexist" }),
        )
        .await;
    reply.expect_problem(422);
    assert_eq!(reply.pointers(), vec!["/team_id"]);
    // Unknown routes and methods.
    s.get("/api/v1/nothing", &t).await.expect_problem(404);
    let resp = s
        .client
        .request(Method::PUT, s.url("/api/v1/teams"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let reply = common::Reply::from(resp).await;
    reply.expect_problem(405);
    // Bad list parameters.
    s.get("/api/v1/agents?colour=red", &t).await.expect_problem(400);
    s.get("/api/v1/agents?sort=salary", &t).await.expect_problem(400);
    s.get("/api/v1/agents?limit=100000", &t).await.expect_problem(400);
    s.get("/api/v1/agents?cursor=%%%", &t).await.expect_problem(400);
    s.get("/api/v1/agents?cursor=bm90IGEgY3Vyc29y", &t)
        .await
        .expect_problem(400);
}

both_backends!(pagination_sort_filter_search);
async fn pagination_sort_filter_search(s: &TestServer) {
    let t = s.tenant("acme", Role::TenantAdmin).await;
    let sales = seed_team(s, &t, "Sales").await;
    let support = seed_team(s, &t, "Support").await;
    for i in 0..25 {
        let team = if i % 2 == 0 { &sales } else { &support };
        s.post(
            "/api/v1/agents",
            &t,
            json!({ "name": format!("Agent {:02}", 24 - i), "team_id": team, "extension": format!("{}", 2000 + i) }),
        )
        .await
        .expect(201);
    }
    s.post("/api/v1/agents", &t, json!({ "name": "Teamless 50%_x" }))
        .await
        .expect(201);
    // Walk all pages: every agent exactly once, in order.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/agents?limit=10&sort=-name&cursor={c}"),
            None => "/api/v1/agents?limit=10&sort=-name".into(),
        };
        let page = s.get(&path, &t).await;
        page.expect(200);
        pages += 1;
        seen.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 26);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "descending by name");
    // A cursor is bound to its sort order.
    let first = s.get("/api/v1/agents?limit=5&sort=name", &t).await;
    let c = first.body["next_cursor"].as_str().unwrap();
    s.get(&format!("/api/v1/agents?limit=5&sort=-name&cursor={c}"), &t)
        .await
        .expect_problem(400);
    // Filters.
    let by_team = s.get(&format!("/api/v1/agents?team_id={sales}&limit=100"), &t).await;
    assert_eq!(by_team.body["items"].as_array().unwrap().len(), 13);
    let teamless = s.get("/api/v1/agents?team_id=null", &t).await;
    assert_eq!(teamless.body["items"].as_array().unwrap().len(), 1);
    let by_ext = s.get("/api/v1/agents?extension=2003", &t).await;
    assert_eq!(by_ext.body["items"][0]["name"], "Agent 21");
    // Search is case-insensitive and treats % and _ literally.
    let found = s.get("/api/v1/agents?q=AGENT%200", &t).await;
    assert_eq!(found.body["items"].as_array().unwrap().len(), 10);
    let literal = s.get("/api/v1/agents?q=50%25_", &t).await;
    assert_eq!(literal.body["items"].as_array().unwrap().len(), 1);
    let none = s.get("/api/v1/agents?q=%25%25", &t).await;
    assert_eq!(none.body["items"].as_array().unwrap().len(), 0);
}

both_backends!(deletes_that_would_break_references_are_refused);
async fn deletes_that_would_break_references_are_refused(s: &TestServer) {
    let t = s.tenant("acme", Role::TenantAdmin).await;
    let team = seed_team(s, &t, "Sales").await;
    let agent = s
        .post("/api/v1/agents", &t, json!({ "name": "Ana", "team_id": team }))
        .await
        .expect(201)
        .id();
    let reply = s.delete(&format!("/api/v1/teams/{team}"), &t).await;
    reply.expect_problem(409);
    assert!(reply.body["detail"].as_str().unwrap().contains("1 agents"));
    let queue = s
        .post("/api/v1/queues", &t, json!({ "name": "Sales" }))
        .await
        .expect(201)
        .id();
    s.post(
        "/api/v1/dids",
        &t,
        json!({ "number": "+4930111222", "route_type": "agent", "route_target": agent }),
    )
    .await
    .expect(201);
    s.delete(&format!("/api/v1/agents/{agent}"), &t)
        .await
        .expect_problem(409);
    // Queue membership follows the agent and queue lifecycle.
    let members = s
        .put(
            &format!("/api/v1/queues/{queue}/members"),
            &t,
            json!([{ "agent_id": agent, "penalty": 2 }]),
        )
        .await;
    members.expect(200);
    assert_eq!(members.body["items"][0]["agent_name"], "Ana");
    let q = s.get(&format!("/api/v1/queues/{queue}"), &t).await;
    assert_eq!(q.body["version"], 2, "membership changes bump the queue version");
    s.put(
        &format!("/api/v1/queues/{queue}/members/{agent}"),
        &t,
        json!({ "penalty": 5 }),
    )
    .await
    .expect(200);
    assert_eq!(
        s.get(&format!("/api/v1/queues/{queue}/members"), &t).await.body["items"][0]["penalty"],
        5
    );
    let dup = s
        .put(
            &format!("/api/v1/queues/{queue}/members"),
            &t,
            json!([{ "agent_id": agent }, { "agent_id": agent }]),
        )
        .await;
    dup.expect_problem(422);
    assert_eq!(dup.pointers(), vec!["/1/agent_id"]);
    s.delete(&format!("/api/v1/queues/{queue}/members/{agent}"), &t)
        .await
        .expect(204);
    s.delete(&format!("/api/v1/queues/{queue}/members/{agent}"), &t)
        .await
        .expect_problem(404);
    assert_eq!(
        s.get(&format!("/api/v1/queues/{queue}/members"), &t).await.body["items"],
        json!([])
    );
}

both_backends!(tenant_limits_and_settings);
async fn tenant_limits_and_settings(s: &TestServer) {
    let platform = s.platform_token().await;
    let created = s
        .post(
            "/api/v1/tenants",
            &platform,
            json!({ "slug": "small", "name": "Small", "limits": { "max_agents": 2 } }),
        )
        .await;
    created.expect(201);
    let t = s.tenant("small", Role::TenantAdmin).await;
    s.post("/api/v1/agents", &t, json!({ "name": "One" })).await.expect(201);
    s.post("/api/v1/agents", &t, json!({ "name": "Two" })).await.expect(201);
    let reply = s.post("/api/v1/agents", &t, json!({ "name": "Three" })).await;
    reply.expect_problem(403);
    assert!(reply.body["detail"].as_str().unwrap().contains("max_agents"));
    // A tenant admin may rename the tenant but not raise its limits.
    let own = s
        .patch(
            "/api/v1/tenant",
            &t,
            json!({ "name": "Small Co", "timezone": "Asia/Tokyo" }),
        )
        .await;
    own.expect(200);
    assert_eq!(own.body["timezone"], "Asia/Tokyo");
    s.patch("/api/v1/tenant", &t, json!({ "limits": { "max_agents": 100 } }))
        .await
        .expect_problem(422);
    s.patch("/api/v1/tenant", &t, json!({ "timezone": "Mars/Base" }))
        .await
        .expect_problem(422);
    let id = created.id();
    s.patch(
        &format!("/api/v1/tenants/{id}"),
        &platform,
        json!({ "limits": { "max_agents": 3 } }),
    )
    .await
    .expect(200);
    s.post("/api/v1/agents", &t, json!({ "name": "Three" }))
        .await
        .expect(201);
    s.patch(
        &format!("/api/v1/tenants/{id}"),
        &platform,
        json!({ "limits": { "max_unicorns": 3 } }),
    )
    .await
    .expect_problem(422);
}

both_backends!(users_and_memberships);
async fn users_and_memberships(s: &TestServer) {
    let a = s.tenant("acme", Role::TenantAdmin).await;
    let b = s.tenant("beta", Role::TenantAdmin).await;
    let team = seed_team(s, &a, "Sales").await;
    // Adding someone invites them; they are a member once they accept.
    let invited = s
        .post(
            "/api/v1/users",
            &a,
            json!({ "email": "Sue@Example.com", "display_name": "Sue", "role": "supervisor", "team_scope": [team] }),
        )
        .await;
    invited.expect(202);
    assert_eq!(invited.body["email"], "sue@example.com");
    assert_eq!(invited.body["status"], "pending");
    assert_eq!(invited.body["team_scope"], json!([team]));
    let mut sue = common::Visitor::new(s);
    let link = invitation_path(&invited);
    sue.get(&link).await;
    let joined = sue
        .post(
            &format!("{link}/register"),
            &[
                ("display_name", "Sue"),
                ("password", SUE_PASSWORD),
                ("confirm", SUE_PASSWORD),
            ],
        )
        .await;
    assert_eq!(joined.status, 303, "{}", joined.body);
    let members = s.get("/api/v1/users?role=supervisor", &a).await;
    let id = members.body["items"][0]["id"]
        .as_str()
        .expect("Sue is a member")
        .to_owned();
    let created = s.get(&format!("/api/v1/users/{id}"), &a).await;
    assert_eq!(created.body["email"], "sue@example.com");
    assert_eq!(created.body["team_scope"], json!([team]));
    s.post(
        "/api/v1/users",
        &a,
        json!({ "email": "sue@example.com", "role": "agent" }),
    )
    .await
    .expect_problem(409);
    s.post(
        "/api/v1/users",
        &a,
        json!({ "email": "x@example.com", "role": "platform_admin" }),
    )
    .await
    .expect_problem(422);
    s.post(
        "/api/v1/users",
        &a,
        json!({ "email": "y@example.com", "role": "agent", "team_scope": ["team_nope"] }),
    )
    .await
    .expect_problem(422);
    // The same person joins another tenant with another role, when she accepts.
    let in_b = s
        .post(
            "/api/v1/users",
            &b,
            json!({ "email": "sue@example.com", "role": "viewer" }),
        )
        .await;
    in_b.expect(202);
    assert!(!in_b.text.contains(&id), "the answer does not reveal the account");
    let link = invitation_path(&in_b);
    sue.get(&link).await;
    assert_eq!(sue.post(&format!("{link}/accept"), &[]).await.status, 303);
    let in_b = s.get(&format!("/api/v1/users/{id}"), &b).await;
    in_b.expect(200);
    assert_eq!(in_b.body["display_name"], "Sue");
    let renamed = s
        .patch(&format!("/api/v1/users/{id}"), &a, json!({ "display_name": "Susan" }))
        .await;
    renamed.expect_problem(422);
    let changed = s
        .patch(
            &format!("/api/v1/users/{id}"),
            &a,
            json!({ "role": "tenant_admin", "disabled": true }),
        )
        .await;
    changed.expect(200);
    assert_eq!(changed.body["role"], "tenant_admin");
    assert_eq!(s.get(&format!("/api/v1/users/{id}"), &b).await.body["role"], "viewer");
    // An agent linked to the account blocks removal.
    let agent = s
        .post("/api/v1/agents", &a, json!({ "name": "Sue", "user_id": id }))
        .await
        .expect(201)
        .id();
    s.delete(&format!("/api/v1/users/{id}"), &a).await.expect_problem(409);
    s.delete(&format!("/api/v1/agents/{agent}"), &a).await.expect(204);
    s.delete(&format!("/api/v1/users/{id}"), &a).await.expect(204);
    s.get(&format!("/api/v1/users/{id}"), &a).await.expect_problem(404);
    s.get(&format!("/api/v1/users/{id}"), &b).await.expect(200);
    let list = s.get("/api/v1/users?role=viewer", &b).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

both_backends!(secrets_are_encrypted_at_rest);
async fn secrets_are_encrypted_at_rest(s: &TestServer) {
    let t = s.tenant("acme", Role::TenantAdmin).await;
    s.post(
        "/api/v1/endpoints",
        &t,
        json!({ "name": "2001", "password": "super-secret-sip-pw" }),
    )
    .await
    .expect(201);
    let stored = s.raw_db().await.text("SELECT password_enc FROM endpoints").await;
    let stored = stored.expect("a password is stored");
    assert!(
        stored.starts_with("v1:") && !stored.contains("super-secret"),
        "{stored}"
    );
}

// Every endpoint, called with tenant A's token on tenant B's ids, answers 404 and never
// returns B's data; lists never include it; A cannot reference B's rows.
both_backends!(cross_tenant_access_is_impossible);
async fn cross_tenant_access_is_impossible(s: &TestServer) {
    let a = s.tenant("alpha", Role::TenantAdmin).await;
    let b = s.tenant("bravo", Role::TenantAdmin).await;
    let b_team = seed_team(s, &b, "Bravo team").await;
    let b_loc = s
        .post("/api/v1/locations", &b, json!({ "name": "Bravo site" }))
        .await
        .expect(201)
        .id();
    let b_agent = s
        .post(
            "/api/v1/agents",
            &b,
            json!({ "name": "Bravo agent", "team_id": b_team, "extension": "7000" }),
        )
        .await
        .expect(201)
        .id();
    let b_queue = s
        .post("/api/v1/queues", &b, json!({ "name": "Bravo queue" }))
        .await
        .expect(201)
        .id();
    let b_ep = s
        .post(
            "/api/v1/endpoints",
            &b,
            json!({ "name": "7000", "password": "bravo-secret-pass" }),
        )
        .await
        .expect(201)
        .id();
    let b_did = s
        .post(
            "/api/v1/dids",
            &b,
            json!({ "number": "+4930777000", "route_type": "queue", "route_target": b_queue }),
        )
        .await
        .expect(201)
        .id();
    let b_user = common::account(
        &s.store,
        "bravo@example.com",
        SUE_PASSWORD,
        Some(("bravo", Role::Agent)),
        false,
    )
    .await;
    s.post(
        "/api/v1/users",
        &b,
        json!({ "email": "bravo-invited@example.com", "role": "agent" }),
    )
    .await
    .expect(202);
    let b_token = s
        .post("/api/v1/tokens", &b, json!({ "name": "bravo", "role": "viewer" }))
        .await
        .expect(201)
        .id();
    s.put(
        &format!("/api/v1/queues/{b_queue}/members"),
        &b,
        json!([{ "agent_id": b_agent }]),
    )
    .await
    .expect(200);
    let secret_strings = ["Bravo", "bravo", "+4930777000"];

    let items = [
        ("teams", &b_team),
        ("locations", &b_loc),
        ("agents", &b_agent),
        ("queues", &b_queue),
        ("endpoints", &b_ep),
        ("dids", &b_did),
        ("users", &b_user),
        ("tokens", &b_token),
    ];
    let openapi = s
        .client
        .get(s.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let mut walked = 0;
    for (path, item) in openapi["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/") || path.starts_with("/api/v1/tenants") || path == "/api/v1/openapi.json" {
            continue;
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            // Substitute B's ids into the path template.
            let mut concrete = path.clone();
            if let Some((_, id)) = items.iter().find(|(c, _)| path.starts_with(&format!("/api/v1/{c}/"))) {
                concrete = concrete.replace("{id}", id);
            }
            concrete = concrete.replace("{agent_id}", &b_agent).replace("{letter}", "dl_none");
            let body = match method {
                "post" | "patch" => Some(json!({})),
                "put" => Some(if concrete.ends_with("/members") {
                    json!([])
                } else {
                    json!({ "penalty": 1 })
                }),
                _ => None,
            };
            if concrete.ends_with("/live/stream") {
                // A stream does not end: its first event (the snapshot) must not show B.
                let mut stream = SseReader::open(s, &a, None).await;
                let (event, _, first) = stream.next().await;
                assert_eq!(event, "snapshot");
                let text = first.to_string();
                assert!(
                    secret_strings.iter().all(|secret| !text.contains(secret))
                        && items.iter().all(|(_, id)| !text.contains(id.as_str())),
                    "the stream shows another tenant: {text}"
                );
                walked += 1;
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let reply = s.call(m, &concrete, &a, body).await;
            walked += 1;
            let has_id = path.contains('{');
            if has_id {
                assert_eq!(
                    reply.status.as_u16(),
                    404,
                    "{method} {concrete} must be 404 for a foreign id: {}",
                    reply.text
                );
            } else {
                assert!(reply.status.as_u16() < 500, "{method} {concrete}: {}", reply.text);
            }
            for secret in secret_strings {
                assert!(
                    !reply.text.contains(secret),
                    "{method} {concrete} leaked `{secret}`: {}",
                    reply.text
                );
            }
            for (_, id) in &items {
                assert!(
                    !reply.text.contains(id.as_str()),
                    "{method} {concrete} leaked an id: {}",
                    reply.text
                );
            }
        }
    }
    assert!(walked >= 40, "walked only {walked} operations");
    // A cannot point its rows at B's.
    let r = s
        .post(
            "/api/v1/agents",
            &a,
            json!({ "name": "X", "team_id": b_team, "location_id": b_loc, "user_id": b_user }),
        )
        .await;
    r.expect_problem(422);
    assert_eq!(r.pointers().len(), 3);
    let a_queue = s
        .post("/api/v1/queues", &a, json!({ "name": "Alpha queue" }))
        .await
        .expect(201)
        .id();
    s.put(
        &format!("/api/v1/queues/{a_queue}/members"),
        &a,
        json!([{ "agent_id": b_agent }]),
    )
    .await
    .expect_problem(422);
    s.put(
        &format!("/api/v1/queues/{a_queue}/members/{b_agent}"),
        &a,
        json!({ "penalty": 0 }),
    )
    .await
    .expect_problem(404);
    s.post(
        "/api/v1/dids",
        &a,
        json!({ "number": "+4930777001", "route_type": "queue", "route_target": b_queue }),
    )
    .await
    .expect_problem(422);
    s.post("/api/v1/endpoints", &a, json!({ "name": "x1", "agent_id": b_agent }))
        .await
        .expect_problem(422);
    s.post(
        "/api/v1/users",
        &a,
        json!({ "email": "a@example.com", "role": "supervisor", "team_scope": [b_team] }),
    )
    .await
    .expect_problem(422);
    // B's data is untouched.
    assert_eq!(
        s.get(&format!("/api/v1/agents/{b_agent}"), &b).await.body["name"],
        "Bravo agent"
    );
    assert_eq!(
        s.get(&format!("/api/v1/queues/{b_queue}/members"), &b).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    s.get(&format!("/api/v1/tokens/{b_token}"), &b).await.expect(200);
}

both_backends!(list_pages_carry_etags_and_never_go_stale);
async fn list_pages_carry_etags_and_never_go_stale(s: &TestServer) {
    let a = s.tenant("acme", Role::TenantAdmin).await;
    let b = s.tenant("bravo", Role::TenantAdmin).await;
    seed_team(s, &a, "Alpha").await;
    seed_team(s, &b, "Bravo").await;
    let first = s.get("/api/v1/teams?sort=name", &a).await;
    first.expect(200);
    let tag = first.header("etag").expect("lists have an ETag").to_owned();
    assert_eq!(first.body["items"].as_array().unwrap().len(), 1);
    // Unchanged: 304 for a conditional request, the same body otherwise.
    let again = s
        .client
        .get(s.url("/api/v1/teams?sort=name"))
        .bearer_auth(&a)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(s.get("/api/v1/teams?sort=name", &a).await.text, first.text);
    // Another tenant's page is its own.
    let other = s.get("/api/v1/teams?sort=name", &b).await;
    assert_eq!(other.body["items"][0]["name"], "Bravo");
    assert_ne!(other.header("etag"), Some(tag.as_str()));
    // A change through the API shows at once, with a new ETag.
    let id = seed_team(s, &a, "Beta").await;
    let after = s.get("/api/v1/teams?sort=name", &a).await;
    assert_eq!(after.body["items"].as_array().unwrap().len(), 2);
    assert_ne!(after.header("etag"), Some(tag.as_str()));
    // So does a change made behind the server's back (another instance, the CLI): the
    // database triggers bump the version.
    let sql = "UPDATE teams SET name = 'Gamma' WHERE id = $1";
    s.raw_db().await.execute(sql, &[&id]).await.unwrap();
    let behind = s.get("/api/v1/teams?sort=name", &a).await;
    assert_eq!(behind.body["items"][1]["name"], "Gamma", "{}", behind.text);
    s.delete(&format!("/api/v1/teams/{id}"), &a).await.expect(204);
    assert_eq!(
        s.get("/api/v1/teams?sort=name", &a).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

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

/// Reads server-sent events from a streaming response: (event, id, data) each.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    async fn open(s: &TestServer, token: &str, last_event_id: Option<&str>) -> SseReader {
        let mut request = s.client.get(s.url("/api/v1/live/stream")).bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event that is not a keep-alive comment, within 5 s.
    async fn next(&mut self) -> (String, String, Value) {
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("id:") {
                            id = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if event.is_empty() && data.is_empty() {
                        continue;
                    }
                    return (event, id, serde_json::from_str(&data).unwrap_or(Value::String(data)));
                }
                let chunk = self.response.chunk().await.unwrap().expect("the stream stays open");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event within 5 s")
    }
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
