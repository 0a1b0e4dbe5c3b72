//! The resources themselves: create, read, update and delete with ETags and preconditions, bad input explained, pages, sorting, filters, references kept whole.

use super::*;

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
