//! What a scoped supervisor, a scoped token and a suspended tenant's people see.

use super::*;

/// Tenant acme with teams North and South and an agent in each: Nina North and Sven South.
struct North {
    admin: String,
    north: String,
    south: String,
    nina: String,
    sven: String,
}

async fn north_and_south(s: &TestServer) -> North {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let north = s.post("/api/v1/teams", &admin, json!({ "name": "North" })).await.id();
    let south = s.post("/api/v1/teams", &admin, json!({ "name": "South" })).await.id();
    let agent = |name: &'static str, team: &String| json!({ "name": name, "team_id": team });
    let nina = s.post("/api/v1/agents", &admin, agent("Nina North", &north)).await.id();
    let sven = s.post("/api/v1/agents", &admin, agent("Sven South", &south)).await.id();
    North {
        admin,
        north,
        south,
        nina,
        sven,
    }
}

both_backends!(scoped_supervisors_see_only_their_teams);
async fn scoped_supervisors_see_only_their_teams(s: &TestServer) {
    let North {
        admin,
        north,
        south,
        nina: mine,
        sven: theirs,
    } = north_and_south(s).await;
    let loose = s
        .post("/api/v1/agents", &admin, json!({ "name": "Nobody Teamless" }))
        .await
        .id();
    account(&s.store, "sue@example.com", PASSWORD, None, false).await;
    let invited = s
        .post(
            "/api/v1/users",
            &admin,
            json!({ "email": "sue@example.com", "role": "supervisor", "team_scope": [north] }),
        )
        .await;
    accept_invitation(s, &invited, "sue@example.com").await;
    let mut v = Visitor::new(s);
    assert_eq!(v.sign_in("sue@example.com", PASSWORD).await.status, 303);
    let list = v.get("/admin/agents").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("Nina North"));
    assert!(
        !list.body.contains("Sven South") && !list.body.contains("Nobody Teamless"),
        "{}",
        list.body
    );
    assert_eq!(v.get(&format!("/admin/agents/{mine}")).await.status, 200);
    assert_eq!(
        v.get(&format!("/admin/agents/{theirs}")).await.status,
        404,
        "crafted URL outside the scope"
    );
    assert_eq!(v.get(&format!("/admin/agents/{loose}")).await.status, 404);
    assert_eq!(v.get(&format!("/admin/teams/{south}")).await.status, 404);
    let teams = v.get("/admin/teams").await;
    assert!(teams.body.contains("North") && !teams.body.contains("South"));
    // Read-only: no writes, no audit log.
    assert_eq!(v.get("/admin/agents/new").await.status, 403);
    v.get("/admin/agents").await;
    assert_eq!(v.post("/admin/agents", &[("name", "Sneaky")]).await.status, 403);
    assert_eq!(v.get("/admin/audit").await.status, 403);
    assert_eq!(
        v.get("/admin/users").await.status,
        200,
        "supervisors may read the member list"
    );
}

both_backends!(suspended_tenants_get_nothing);
async fn suspended_tenants_get_nothing(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut v = Visitor::new(s);
    assert_eq!(v.sign_in("ana@example.com", PASSWORD).await.status, 303);
    s.get("/api/v1/agents", &admin).await.expect(200);
    let platform = s.platform_token().await;
    let tenant = tenants::by_slug(&s.store, "acme").await.unwrap().unwrap();
    s.patch(
        &format!("/api/v1/tenants/{}", tenant.id),
        &platform,
        json!({ "suspended": true }),
    )
    .await
    .expect(200);
    s.get("/api/v1/agents", &admin).await.expect_problem(403);
    let home = v.get("/").await;
    assert_eq!(home.status, 403, "the session has no access any more");
    assert_eq!(v.get("/admin/agents").await.status, 403);
    let mut fresh = Visitor::new(s);
    fresh.sign_in("ana@example.com", PASSWORD).await;
    assert_eq!(fresh.get("/").await.status, 403, "nor does a new sign-in");
    s.patch(
        &format!("/api/v1/tenants/{}", tenant.id),
        &platform,
        json!({ "suspended": false }),
    )
    .await
    .expect(200);
    s.get("/api/v1/agents", &admin).await.expect(200);
    // A tenant admin cannot lift it.
    s.patch("/api/v1/tenant", &admin, json!({ "suspended": false }))
        .await
        .expect_problem(422);
}

both_backends!(scoped_api_tokens_see_only_their_teams);
async fn scoped_api_tokens_see_only_their_teams(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let north = s.post("/api/v1/teams", &admin, json!({ "name": "North" })).await.id();
    let south = s.post("/api/v1/teams", &admin, json!({ "name": "South" })).await.id();
    let mine = s
        .post("/api/v1/agents", &admin, json!({ "name": "Nina", "team_id": north }))
        .await
        .id();
    let theirs = s
        .post("/api/v1/agents", &admin, json!({ "name": "Sven", "team_id": south }))
        .await
        .id();
    // The unscoped admin's list is cached; the scoped token must not get that page.
    assert_eq!(
        s.get("/api/v1/agents", &admin).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let issued = s
        .post(
            "/api/v1/tokens",
            &admin,
            json!({ "name": "north board", "role": "supervisor", "team_scope": [north] }),
        )
        .await;
    issued.expect(201);
    assert_eq!(issued.body["team_scope"], json!([north]));
    let token = issued.body["secret"].as_str().unwrap().to_owned();
    let list = s.get("/api/v1/agents", &token).await;
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Nina"]);
    s.get(&format!("/api/v1/agents/{mine}"), &token).await.expect(200);
    s.get(&format!("/api/v1/agents/{theirs}"), &token)
        .await
        .expect_problem(404);
    s.get(&format!("/api/v1/teams/{south}"), &token)
        .await
        .expect_problem(404);
    // Scopes must name the tenant's own teams.
    let other = s.tenant("other", Role::TenantAdmin).await;
    let foreign_team = s
        .post("/api/v1/teams", &other, json!({ "name": "Elsewhere" }))
        .await
        .id();
    let bad = s
        .post(
            "/api/v1/tokens",
            &admin,
            json!({ "name": "x", "role": "viewer", "team_scope": [foreign_team] }),
        )
        .await;
    bad.expect_problem(422);
    assert_eq!(bad.pointers(), vec!["/team_scope/0"]);
}

both_backends!(the_board_is_a_plain_page_within_the_supervisors_scope);
async fn the_board_is_a_plain_page_within_the_supervisors_scope(s: &TestServer) {
    let North {
        admin,
        north,
        south,
        nina,
        sven,
    } = north_and_south(s).await;
    // A queue both teams answer.
    let queue = s.post("/api/v1/queues", &admin, json!({ "name": "Sales" })).await.id();
    s.put(
        &format!("/api/v1/queues/{queue}/members"),
        &admin,
        json!([{ "agent_id": nina }, { "agent_id": sven }]),
    )
    .await
    .expect(200);
    account(&s.store, "sue@example.com", PASSWORD, None, false).await;
    let invited = s
        .post(
            "/api/v1/users",
            &admin,
            json!({ "email": "sue@example.com", "role": "supervisor", "team_scope": [north] }),
        )
        .await;
    accept_invitation(s, &invited, "sue@example.com").await;
    account(
        &s.store,
        "ada@example.com",
        PASSWORD,
        Some(("acme", Role::Agent)),
        false,
    )
    .await;

    let mut sue = Visitor::new(s);
    assert_eq!(sue.sign_in("sue@example.com", PASSWORD).await.status, 303);
    // Without JavaScript the board is complete: rows, filters as a form, a refresh fallback.
    let board = sue.get("/board?group=state").await;
    assert_eq!(board.status, 200);
    assert!(board.body.contains("Nina North"), "her team's agent is shown");
    assert!(!board.body.contains("Sven South"), "another team's agent is not");
    // The queue's tile shows its figures, but not how many of its agents (Sven among them)
    // are in each state.
    let tile = board
        .body
        .split("id=\"tile-0\"")
        .nth(1)
        .and_then(|t| t.split("</article>").next())
        .expect("the Sales tile");
    assert!(tile.contains("Sales") && !tile.contains("class=\"counts\""), "{tile}");
    assert!(
        board
            .body
            .contains(r#"<form class="board-controls" method="get" action="/board""#)
    );
    assert!(board.body.contains(r#"http-equiv="refresh""#));
    assert!(board.body.contains("sse-connect=\""), "and the stream for live updates");
    // Filtering on a team outside her scope shows nobody, not everybody.
    let outside = sue.get(&format!("/board?team={south}")).await;
    assert!(!outside.body.contains("Sven South") && !outside.body.contains("Nina North"));
    // The drawer: her agent's day; the other team's agent does not exist for her.
    let drawer = sue.get(&format!("/board/agents/{nina}")).await;
    assert_eq!(drawer.status, 200);
    assert!(drawer.body.contains("Nina North") && drawer.body.contains("<svg class=\"timeline\""));
    assert_eq!(sue.get(&format!("/board/agents/{sven}")).await.status, 404);
    assert_eq!(sue.get("/board/agents/agt_nobody").await.status, 404);
    let mut ada = Visitor::new(s);
    assert_eq!(ada.sign_in("ada@example.com", PASSWORD).await.status, 303);
    assert_eq!(ada.get("/board").await.status, 403, "the agent role has no board");
    assert_eq!(ada.get("/board/stream").await.status, 403, "nor its stream");
    let mut anonymous = Visitor::new(s);
    let away = anonymous.get("/board").await;
    assert_eq!(away.status, 303);
    assert_eq!(away.location.as_deref(), Some("/login?next=%2Fboard"));
}
