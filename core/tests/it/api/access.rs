//! Who may call what: credentials, roles, users and memberships, tenants' settings and limits, secrets at rest, and no way into another tenant.

use super::*;

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

/// Tenant B's rows of every kind, for tenant A to reach for.
struct Bravo {
    token: String,
    team: String,
    location: String,
    agent: String,
    queue: String,
    endpoint: String,
    did: String,
    user: String,
    api_token: String,
    saved_report: String,
}

/// Tenant A (alpha) with nothing, tenant B (bravo) with a row of every kind.
async fn alpha_and_bravo(s: &TestServer) -> (String, Bravo) {
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
    let b_saved = s
        .post(
            "/api/v1/reports/saved",
            &b,
            json!({ "name": "Bravo daily", "kind": "queues", "period": "yesterday", "params": { "queue": b_queue },
                    "schedule": { "frequency": "daily", "time": "07:00", "recipients": ["bravo@example.com"] } }),
        )
        .await
        .expect(201)
        .id();
    let bravo = Bravo {
        saved_report: b_saved,
        token: b,
        team: b_team,
        location: b_loc,
        agent: b_agent,
        queue: b_queue,
        endpoint: b_ep,
        did: b_did,
        user: b_user,
        api_token: b_token,
    };
    (a, bravo)
}

// Every endpoint, called with tenant A's token on tenant B's ids, answers 404 and never
// returns B's data; lists never include it.
both_backends!(cross_tenant_access_is_impossible);
async fn cross_tenant_access_is_impossible(s: &TestServer) {
    let (a, bravo) = alpha_and_bravo(s).await;
    let Bravo {
        team: b_team,
        location: b_loc,
        agent: b_agent,
        queue: b_queue,
        endpoint: b_ep,
        did: b_did,
        user: b_user,
        api_token: b_token,
        saved_report: b_saved,
        ..
    } = &bravo;
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
        ("reports/saved", &b_saved),
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
            concrete = concrete.replace("{agent_id}", b_agent).replace("{letter}", "dl_none");
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
}

// A cannot point its rows at B's, and B's rows stay as they were.
both_backends!(no_tenant_can_reference_anothers_rows);
async fn no_tenant_can_reference_anothers_rows(s: &TestServer) {
    let (a, bravo) = alpha_and_bravo(s).await;
    let Bravo {
        token: b,
        team: b_team,
        location: b_loc,
        agent: b_agent,
        queue: b_queue,
        user: b_user,
        api_token: b_token,
        ..
    } = &bravo;
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
        s.get(&format!("/api/v1/agents/{b_agent}"), b).await.body["name"],
        "Bravo agent"
    );
    assert_eq!(
        s.get(&format!("/api/v1/queues/{b_queue}/members"), b).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    s.get(&format!("/api/v1/tokens/{b_token}"), b).await.expect(200);
}
