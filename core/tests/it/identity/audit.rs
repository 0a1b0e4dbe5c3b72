//! The audit trail (changes with before and after, refusals) and password resets.

use super::*;

both_backends!(admin_changes_are_audited_with_before_and_after);
async fn admin_changes_are_audited_with_before_and_after(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let other = s.tenant("bravo", Role::TenantAdmin).await;
    account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut v = Visitor::new(s);
    v.sign_in("ana@example.com", PASSWORD).await;
    v.get("/admin/teams/new").await;
    assert_eq!(
        v.post("/admin/teams", &[("name", "Day"), ("description", "")])
            .await
            .status,
        303
    );
    let id = s.get("/api/v1/teams", &admin).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.patch(&format!("/api/v1/teams/{id}"), &admin, json!({ "name": "Day shift" }))
        .await
        .expect(200);
    let log = s.get("/api/v1/audit?action=team.update&sort=-at", &admin).await;
    log.expect(200);
    let entry = &log.body["items"][0];
    assert_eq!(entry["before"]["name"], "Day");
    assert_eq!(entry["after"]["name"], "Day shift");
    assert!(entry["actor"].as_str().unwrap().starts_with("token:"));
    assert_eq!(entry["ip"], "127.0.0.1");
    let created = s.get("/api/v1/audit?action=team.create", &admin).await;
    assert!(created.body["items"][0]["actor"].as_str().unwrap().starts_with("user:"));
    // Tenants see only their own log.
    assert_eq!(
        s.get("/api/v1/audit", &other).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let viewer = s.tenant("acme", Role::Supervisor).await;
    s.get("/api/v1/audit", &viewer).await.expect_problem(403);
    // CSV export with the same filters.
    let csv = s
        .client
        .get(s.url("/api/v1/audit/export?action=team.update"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("id,at,actor,action,outcome"));
    assert!(lines.next().unwrap().contains("team.update"));
    // The log cannot be rewritten, not even with direct database access.
    let sql = "UPDATE audit_log SET actor = 'someone else'";
    let refused = s.raw_db().await.execute(sql, &[]).await.is_err();
    assert!(refused, "audit_log is append-only");
}

both_backends!(refusals_are_audited);
async fn refusals_are_audited(s: &TestServer) {
    let viewer = s.tenant("acme", Role::Viewer).await;
    s.post("/api/v1/teams", &viewer, json!({ "name": "Nope" }))
        .await
        .expect_problem(403);
    s.get("/api/v1/teams", "monti_not-a-real-token")
        .await
        .expect_problem(401);
    account(
        &s.store,
        "vic@example.com",
        PASSWORD,
        Some(("acme", Role::Viewer)),
        false,
    )
    .await;
    let mut v = Visitor::new(s);
    v.sign_in("vic@example.com", PASSWORD).await;
    assert_eq!(v.get("/admin/audit").await.status, 403);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let tenant = audit_actions(s, Some("acme")).await;
    assert!(tenant.contains(&("api.denied".into(), "denied".into())), "{tenant:?}");
    assert!(tenant.contains(&("ui.denied".into(), "denied".into())), "{tenant:?}");
    let platform = audit_actions(s, None).await;
    assert!(
        platform.contains(&("api.auth".into(), "failure".into())),
        "{platform:?}"
    );
    // A flood of bad tokens is recorded, but not one row per request.
    for _ in 0..30 {
        s.get("/api/v1/teams", "monti_still-not-real").await.expect_problem(401);
    }
    let auth_rows = audit_actions(s, None)
        .await
        .iter()
        .filter(|(a, _)| a == "api.auth")
        .count();
    assert!(auth_rows <= 8, "{auth_rows} rows for 31 failures");
}

both_backends!(forgotten_passwords_are_reset_by_email);
async fn forgotten_passwords_are_reset_by_email(_s: &TestServer) {
    // The mail server must be known at start, so this test makes its own server.
    let sink = smtp_sink().await;
    let backend = if _s.pg_database.is_some() {
        common::Backend::Postgres
    } else {
        common::Backend::Sqlite
    };
    let s = TestServer::start_with(backend, |c| {
        crate::common::smtp::mail_through(c, sink.port);
    })
    .await
    .unwrap();
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let _ = admin;
    let ana = account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::Supervisor)),
        false,
    )
    .await;
    let mut v = Visitor::new(&s);
    assert!(v.get("/login").await.body.contains("id=\"forgot\""));
    v.get("/forgot").await;
    let sent = v.post("/forgot", &[("email", "Ana@Example.com")]).await;
    assert_eq!(sent.status, 200);
    assert!(sent.body.contains("id=\"reset-sent\""));
    let mail = sink.next(0).await.expect("the reset email arrives");
    assert!(
        mail.contains("To: ana@example.com") && mail.contains("Subject: Reset your Monti password"),
        "{mail}"
    );
    let link = reset_link_in(&mail);
    // Unknown addresses get the same answer and no mail.
    let unknown = v.post("/forgot", &[("email", "nobody@example.com")]).await;
    assert!(
        unknown.body.contains("id=\"reset-sent\""),
        "the same answer for unknown addresses"
    );
    // Asking again at once sends nothing more (no mailbox flooding).
    v.post("/forgot", &[("email", "ana@example.com")]).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.messages.lock().unwrap().len(), 1);
    // The link works once.
    let mut r = Visitor::new(&s);
    assert_eq!(r.get(&link).await.status, 200);
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let done = r
        .post(
            "/reset",
            &[
                ("token", &token),
                ("password", "a brand new passphrase"),
                ("confirm", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(r.get(&link).await.status, 403, "used up");
    assert_eq!(
        Visitor::new(&s)
            .sign_in("ana@example.com", "a brand new passphrase")
            .await
            .status,
        303
    );
    assert_eq!(Visitor::new(&s).sign_in("ana@example.com", PASSWORD).await.status, 401);
    // An admin can send the link by email too.
    account(
        &s.store,
        "boss@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut boss = Visitor::new(&s);
    boss.sign_in("boss@example.com", PASSWORD).await;
    boss.get("/admin/users").await;
    let emailed = boss
        .post(&format!("/admin/users/{ana}/reset-link"), &[("via", "email")])
        .await;
    assert!(emailed.body.contains("id=\"reset-emailed\""), "{}", emailed.body);
    assert!(
        !emailed.body.contains("/reset?token="),
        "the link is not shown when mailed"
    );
    assert!(sink.next(1).await.is_some());
    s.stop().await;
}

both_backends!(an_admins_reset_link_stops_when_the_account_outgrows_the_tenant);
async fn an_admins_reset_link_stops_when_the_account_outgrows_the_tenant(s: &TestServer) {
    s.tenant("acme", Role::Viewer).await;
    s.tenant("bravo", Role::Viewer).await;
    account(
        &s.store,
        "boss@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let ana = account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::Agent)),
        false,
    )
    .await;
    let mut boss = Visitor::new(s);
    boss.sign_in("boss@example.com", PASSWORD).await;
    boss.get("/admin/users").await;
    let made = boss
        .post(&format!("/admin/users/{ana}/reset-link"), &[("via", "link")])
        .await;
    assert!(made.body.contains("id=\"reset-link\""), "{}", made.body);
    let body = made.body.replace("&#x2F;", "/");
    let token = body
        .split("/reset?token=")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let path = format!("/reset?token={token}");
    assert_eq!(
        Visitor::new(s).get(&path).await.status,
        200,
        "works while Ana belongs to acme alone"
    );
    // Ana joins another tenant: acme's admin may no longer set her password.
    let bravo = monti::store::tenants::by_slug(&s.store, "bravo")
        .await
        .unwrap()
        .unwrap();
    monti::store::accounts::grant_membership(&s.store, &ana, &bravo.id, Role::Supervisor, &[], &[])
        .await
        .unwrap();
    assert_eq!(Visitor::new(s).get(&path).await.status, 403);
    let mut v = Visitor::new(s);
    v.get("/login").await;
    let tried = v
        .post(
            "/reset",
            &[
                ("token", &token),
                ("password", "taken over now!!"),
                ("confirm", "taken over now!!"),
            ],
        )
        .await;
    assert_eq!(tried.status, 403);
    assert_eq!(
        Visitor::new(s).sign_in("ana@example.com", PASSWORD).await.status,
        303,
        "password unchanged"
    );
}
