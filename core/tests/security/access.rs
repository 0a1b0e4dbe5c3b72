//! Access that must not grow: a scoped admin cannot mint a token (or a member) that sees more
//! than they do, and guessing passwords from one address cannot lock the owner out.

use monti::domain::Role;
use monti::store::{accounts, tenants, tokens};
use serde_json::json;

use crate::both_backends;
use crate::common::{Backend, TestServer, Visitor, account};

const PASSWORD: &str = "correct horse battery staple";

/// An acme admin limited to the North team: a token and a signed-in person. Returns
/// (unscoped admin token, scoped admin token, north, south).
async fn scoped_admin(s: &TestServer) -> (String, String, String, String) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let north = s.post("/api/v1/teams", &admin, json!({ "name": "North" })).await.id();
    let south = s.post("/api/v1/teams", &admin, json!({ "name": "South" })).await.id();
    let acme = tenants::by_slug(&s.store, "acme").await.unwrap().unwrap();
    let scoped = tokens::issue_scoped(
        &s.store,
        Some(&acme.id),
        "north admin",
        Role::TenantAdmin,
        None,
        "test",
        tokens::TokenScopes {
            teams: vec![north.clone()],
            locations: vec![],
        },
    )
    .await
    .unwrap()
    .secret;
    let nora = account(&s.store, "nora@example.com", PASSWORD, None, false).await;
    accounts::grant_membership(
        &s.store,
        &nora,
        &acme.id,
        Role::TenantAdmin,
        std::slice::from_ref(&north),
        &[],
    )
    .await
    .unwrap();
    (admin, scoped, north, south)
}

both_backends!(a_token_never_exceeds_its_creators_scope_through_the_api);
async fn a_token_never_exceeds_its_creators_scope_through_the_api(s: &TestServer) {
    let (admin, scoped, north, south) = scoped_admin(s).await;
    let wider = [
        json!({ "name": "all", "role": "tenant_admin" }),
        json!({ "name": "south", "role": "viewer", "team_scope": [south] }),
        json!({ "name": "both", "role": "viewer", "team_scope": [north, south] }),
    ];
    for body in wider {
        s.post("/api/v1/tokens", &scoped, body.clone())
            .await
            .expect_problem(403);
    }
    let narrow = s
        .post(
            "/api/v1/tokens",
            &scoped,
            json!({ "name": "north", "role": "viewer", "team_scope": [north] }),
        )
        .await;
    narrow.expect(201);
    assert_eq!(narrow.body["team_scope"], json!([north]));
    let listed = s.get("/api/v1/tokens", &admin).await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        3,
        "only the test tokens and the narrow one: {}",
        listed.text
    );
    // The same for members: no unscoped invitation, and no widening of a member's scope.
    s.post(
        "/api/v1/users",
        &scoped,
        json!({ "email": "wide@example.com", "role": "supervisor" }),
    )
    .await
    .expect_problem(403);
    s.post(
        "/api/v1/users",
        &scoped,
        json!({ "email": "narrow@example.com", "role": "supervisor", "team_scope": [north] }),
    )
    .await
    .expect(202);
    let nora = accounts::by_email(&s.store, "nora@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    s.patch(&format!("/api/v1/users/{nora}"), &scoped, json!({ "team_scope": [] }))
        .await
        .expect_problem(403);
    // An unscoped admin still may.
    s.post(
        "/api/v1/tokens",
        &admin,
        json!({ "name": "all", "role": "tenant_admin" }),
    )
    .await
    .expect(201);
}

both_backends!(a_token_never_exceeds_its_creators_scope_through_the_admin_pages);
async fn a_token_never_exceeds_its_creators_scope_through_the_admin_pages(s: &TestServer) {
    let (admin, _, north, south) = scoped_admin(s).await;
    let mut nora = Visitor::new(s);
    assert_eq!(nora.sign_in("nora@example.com", PASSWORD).await.status, 303);
    for fields in [
        vec![("name", "all"), ("role", "tenant_admin")],
        vec![("name", "south"), ("role", "viewer"), ("team_scope", south.as_str())],
    ] {
        nora.get("/admin/tokens").await;
        let refused = nora.post("/admin/tokens", &fields).await;
        assert_eq!(refused.status, 403, "{fields:?}: {}", refused.body);
        assert!(!refused.body.contains("id=\"new-token\""));
    }
    nora.get("/admin/tokens").await;
    let made = nora
        .post(
            "/admin/tokens",
            &[
                ("name", "north"),
                ("role", "supervisor"),
                ("team_scope", north.as_str()),
            ],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert!(made.body.contains("id=\"new-token\""));
    let listed = s.get("/api/v1/tokens", &admin).await;
    let token = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "north")
        .expect("the narrow token")
        .clone();
    assert_eq!(token["team_scope"], json!([north]), "the form's scope is kept");
}

/// Posts the sign-in form as if from `ip` (the server trusts X-Forwarded-For here).
async fn sign_in_from(v: &mut Visitor, ip: &str, email: &str, password: &str) -> u16 {
    v.get("/login").await;
    let form = vec![
        ("email".to_owned(), email.to_owned()),
        ("password".to_owned(), password.to_owned()),
        ("_csrf".to_owned(), v.csrf.clone().unwrap_or_default()),
    ];
    v.post_raw("/login", &form, &[("x-forwarded-for", ip)]).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_from_one_address_does_not_lock_the_owner_out() {
    let Some(s) = TestServer::start_with(Backend::Sqlite, |c| {
        c.http.trust_forwarded_for = true;
        c.auth.sign_in_free_failures = 2;
    })
    .await
    else {
        return;
    };
    s.tenant("acme", Role::Viewer).await;
    for email in ["root@example.com", "ana@example.com"] {
        let platform_admin = email.starts_with("root");
        let tenant = (!platform_admin).then_some(("acme", Role::Supervisor));
        account(&s.store, email, PASSWORD, tenant, platform_admin).await;
    }
    const ATTACKER: &str = "203.0.113.66";
    for email in ["root@example.com", "ana@example.com"] {
        let mut attacker = Visitor::new(&s);
        let mut refused = 0;
        for i in 0..20 {
            // Waiting out the first waits makes the next ones long (1 s, 2 s, then 4 s), so the
            // checks below do not race the clock.
            if i == 3 || i == 4 {
                tokio::time::sleep(std::time::Duration::from_millis(if i == 3 { 1050 } else { 2050 })).await;
            }
            let status = sign_in_from(&mut attacker, ATTACKER, email, &format!("guess number {i}!")).await;
            assert!(status == 401 || status == 429, "{status}");
            refused += usize::from(status == 429);
        }
        assert!(refused >= 15, "the guessing address is held back ({refused} refused)");
        assert_eq!(
            sign_in_from(&mut attacker, ATTACKER, email, PASSWORD).await,
            429,
            "the guessing address stays locked, even with the right password"
        );
        let mut owner = Visitor::new(&s);
        assert_eq!(
            sign_in_from(&mut owner, "198.51.100.7", email, PASSWORD).await,
            303,
            "{email} signs in from their own address"
        );
        assert_eq!(owner.get("/account").await.status, 200);
    }
    s.stop().await;
}
