//! Access that must not grow: a scoped admin cannot mint a token (or a member) that sees more
//! than they do, and guessing passwords from one address cannot lock the owner out.

use monti::domain::Role;
use monti::store::{accounts, tenants, tokens};
use serde_json::json;

use crate::both_backends;
use crate::common::{Backend, TestServer, Visitor, account, audit_actions};

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

both_backends!(a_scoped_admin_can_neither_take_over_nor_lock_out_an_unscoped_one);
async fn a_scoped_admin_can_neither_take_over_nor_lock_out_an_unscoped_one(s: &TestServer) {
    let (admin, scoped, north, _) = scoped_admin(s).await;
    let owner = account(
        &s.store,
        "owner@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    // Someone the scoped admin may manage: limited to North.
    let acme = tenants::by_slug(&s.store, "acme").await.unwrap().unwrap();
    let nina = account(&s.store, "nina@example.com", PASSWORD, None, false).await;
    accounts::grant_membership(
        &s.store,
        &nina,
        &acme.id,
        Role::Agent,
        std::slice::from_ref(&north),
        &[],
    )
    .await
    .unwrap();
    let admin_token = s.get("/api/v1/tokens", &admin).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "tenant_admin" && t["team_scope"] == json!([]))
        .expect("the unscoped admin token")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Through the API: neither disabling (role and scopes unchanged), nor demoting into the
    // caller's own team, nor removing, nor revoking the unscoped admin's token.
    let owner_path = format!("/api/v1/users/{owner}");
    for body in [
        json!({ "disabled": true }),
        json!({ "role": "viewer", "team_scope": [north] }),
        json!({ "display_name": "Someone else" }),
    ] {
        s.patch(&owner_path, &scoped, body.clone()).await.expect_problem(403);
    }
    s.delete(&owner_path, &scoped).await.expect_problem(403);
    s.delete(&format!("/api/v1/tokens/{admin_token}"), &scoped)
        .await
        .expect_problem(403);

    // Through the admin pages, signed in as the North admin.
    let mut owner_browser = Visitor::new(s);
    assert_eq!(owner_browser.sign_in("owner@example.com", PASSWORD).await.status, 303);
    let mut nora = Visitor::new(s);
    assert_eq!(nora.sign_in("nora@example.com", PASSWORD).await.status, 303);
    nora.get("/admin/users").await;
    let reset = nora
        .post(&format!("/admin/users/{owner}/reset-link"), &[("via", "link")])
        .await;
    assert_eq!(reset.status, 403, "{}", reset.body);
    assert!(
        !reset.body.contains("id=\"reset-link\""),
        "no link to sign in as the owner"
    );
    assert!(reset.body.contains("can do more than you"), "says why: {}", reset.body);
    for fields in [vec![("disabled", "true")], vec![("role", "viewer")]] {
        nora.get("/admin/users").await;
        let refused = nora.post(&format!("/admin/users/{owner}"), &fields).await;
        assert_eq!(refused.status, 403, "{fields:?}: {}", refused.body);
    }
    nora.get("/admin/users").await;
    assert_eq!(
        nora.post(&format!("/admin/users/{owner}/remove"), &[]).await.status,
        403
    );
    nora.get("/admin/tokens").await;
    let refused = nora.post(&format!("/admin/tokens/{admin_token}/revoke"), &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let owner_session = monti::store::sessions::list_for_tenant(&s.store, &acme.id, i64::MAX / 4)
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.user_id == owner)
        .expect("the owner's session")
        .id;
    nora.get("/admin/sessions").await;
    let refused = nora.post(&format!("/admin/sessions/{owner_session}/revoke"), &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // Nothing changed for the owner: same membership, still signed in, the token still works.
    let seen = s.get(&owner_path, &admin).await;
    seen.expect(200);
    assert_eq!(seen.body["role"], "tenant_admin");
    assert_eq!(seen.body["disabled"], false);
    assert_eq!(seen.body["team_scope"], json!([]));
    assert_eq!(owner_browser.get("/account").await.status, 200);
    s.get("/api/v1/teams", &admin).await.expect(200);
    let denied: Vec<String> = audit_actions(s, Some("acme"))
        .await
        .into_iter()
        .filter(|(_, outcome)| outcome == "denied")
        .map(|(action, _)| action)
        .collect();
    for action in [
        "user.update",
        "user.remove",
        "user.reset_link",
        "token.revoke",
        "session.revoke",
    ] {
        assert!(denied.iter().any(|a| a == action), "{action} denied: {denied:?}");
    }

    // Within the scope everything still works.
    s.patch(&format!("/api/v1/users/{nina}"), &scoped, json!({ "disabled": true }))
        .await
        .expect(200);
    nora.get("/admin/users").await;
    let enabled = nora
        .post(&format!("/admin/users/{nina}"), &[("disabled", "false")])
        .await;
    assert_eq!(enabled.status, 303, "{}", enabled.body);
    nora.get("/admin/users").await;
    let made = nora
        .post(&format!("/admin/users/{nina}/reset-link"), &[("via", "link")])
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert!(made.body.contains("id=\"reset-link\""));
    // And the unscoped admin may manage the owner.
    s.patch(&owner_path, &admin, json!({ "display_name": "The Owner" }))
        .await
        .expect(200);
}

/// Sign-in attempts that are refused cost no audit rows each: 300 attempts on a real account
/// from many addresses, and on made-up addresses from one, write at most a handful.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sign_ins_do_not_fill_the_audit_log() {
    let Some(s) = TestServer::start_with(Backend::Sqlite, |c| {
        c.http.trust_forwarded_for = true;
        c.auth.sign_in_free_failures = 1;
        c.auth.sign_in_per_minute_per_ip = 5;
    })
    .await
    else {
        return;
    };
    s.tenant("acme", Role::Viewer).await;
    account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::Supervisor)),
        false,
    )
    .await;
    let before = audit_actions(&s, Some("acme")).await.len() + audit_actions(&s, None).await.len();
    let mut v = Visitor::new(&s);
    v.get("/login").await;
    let csrf = v.csrf.clone().unwrap();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..300 {
        // Half guess Ana's password from ever new addresses, half try made-up accounts from one.
        let (ip, email) = if i % 2 == 0 {
            (format!("203.0.{}.{}", i / 250, i % 250), "ana@example.com".to_owned())
        } else {
            ("198.51.100.9".to_owned(), format!("nobody{i}@example.com"))
        };
        let form = vec![
            ("email".to_owned(), email),
            ("password".to_owned(), format!("guess {i}")),
            ("_csrf".to_owned(), csrf.clone()),
        ];
        let status = v.post_raw("/login", &form, &[("x-forwarded-for", &ip)]).await.status;
        *statuses.entry(status).or_default() += 1;
    }
    assert!(
        statuses.get(&429).copied().unwrap_or(0) >= 250,
        "most are throttled: {statuses:?}"
    );
    // Failures are recorded after the answer.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let after = audit_actions(&s, Some("acme")).await.len() + audit_actions(&s, None).await.len();
    assert!(
        after - before <= 6,
        "{} audit rows for 300 refused sign-ins ({statuses:?})",
        after - before
    );
    assert!(
        audit_actions(&s, Some("acme"))
            .await
            .contains(&("session.sign_in".into(), "failure".into())),
        "a wrong password on Ana's account is still in her tenant's log"
    );
    // Addresses no account could have are answered like any failure.
    for email in ["x".repeat(255) + "@example.com", "y".repeat(8 * 1024)] {
        let mut w = Visitor::new(&s);
        w.get("/login").await;
        let form = vec![
            ("email".to_owned(), email),
            ("password".to_owned(), "whatever".to_owned()),
            ("_csrf".to_owned(), w.csrf.clone().unwrap()),
        ];
        let answer = w.post_raw("/login", &form, &[("x-forwarded-for", "192.0.2.200")]).await;
        assert_eq!(answer.status, 401);
        assert!(answer.body.contains("id=\"login-error\""));
    }
    s.stop().await;
}

// An admin page's error for an htmx request is a fragment, not a whole page in the swap.
both_backends!(admin_errors_answer_htmx_with_a_fragment);
async fn admin_errors_answer_htmx_with_a_fragment(s: &TestServer) {
    s.tenant("acme", Role::Viewer).await;
    account(
        &s.store,
        "boss@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut boss = Visitor::new(s);
    assert_eq!(boss.sign_in("boss@example.com", PASSWORD).await.status, 303);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for htmx in [false, true] {
        let mut request = client
            .get(format!("{}/admin/teams/tm_nothing_here", boss.base))
            .header("cookie", boss.cookie_header());
        if htmx {
            request = request.header("hx-request", "true");
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 404);
        let body = answer.text().await.unwrap();
        assert_eq!(body.contains("<html"), !htmx, "htmx {htmx}: {body}");
    }
    boss.get("/admin/tokens").await;
    let form = vec![("_csrf".to_owned(), boss.csrf.clone().unwrap())];
    let answer = boss
        .post_raw(
            "/admin/tokens/tok_nothing_here/revoke",
            &form,
            &[("hx-request", "true")],
        )
        .await;
    assert_eq!(answer.status, 404);
    assert!(!answer.body.contains("<html"), "{}", answer.body);
}

// Changing who may act is one flow for the API and the admin pages: a member disabled either
// way is signed out of the tenant at once, and nobody takes their own administrator access away.
both_backends!(members_are_changed_one_way_through_the_api_and_the_pages);
async fn members_are_changed_one_way_through_the_api_and_the_pages(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let ada = account(
        &s.store,
        "ada@acme.example",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let nina = account(
        &s.store,
        "nina@acme.example",
        PASSWORD,
        Some(("acme", Role::Supervisor)),
        false,
    )
    .await;
    let mut nina_browser = Visitor::new(s);
    assert_eq!(nina_browser.sign_in("nina@acme.example", PASSWORD).await.status, 303);
    assert_eq!(nina_browser.get("/account").await.status, 200);

    // Disabled through the API: her session in the tenant ends.
    s.patch(&format!("/api/v1/users/{nina}"), &admin, json!({ "disabled": true }))
        .await
        .expect(200);
    let after = nina_browser.get("/account").await;
    assert_ne!(after.status, 200, "signed out: {:?}", after.location);
    let ended = audit_actions(s, Some("acme")).await;
    assert!(
        ended.iter().any(|(a, o)| a == "user.update" && o == "success"),
        "{ended:?}"
    );

    // Through the page, an admin cannot lock themselves out, nor remove themselves.
    let mut ada_browser = Visitor::new(s);
    assert_eq!(ada_browser.sign_in("ada@acme.example", PASSWORD).await.status, 303);
    ada_browser.get("/admin/users").await;
    let disabled = ada_browser
        .post(&format!("/admin/users/{ada}"), &[("disabled", "true")])
        .await;
    assert_eq!(disabled.status, 409, "{}", disabled.body);
    assert!(disabled.body.contains("own administrator access"), "{}", disabled.body);
    let demoted = ada_browser
        .post(&format!("/admin/users/{ada}"), &[("role", "viewer")])
        .await;
    assert_eq!(demoted.status, 409, "{}", demoted.body);
    let removed = ada_browser.post(&format!("/admin/users/{ada}/remove"), &[]).await;
    assert_eq!(removed.status, 409, "{}", removed.body);
    assert!(removed.body.contains("cannot remove yourself"), "{}", removed.body);
    assert_eq!(ada_browser.get("/admin/users").await.status, 200, "still an admin");

    // The page re-enables nina the same way the API disabled her.
    let enabled = ada_browser
        .post(&format!("/admin/users/{nina}"), &[("disabled", "false")])
        .await;
    assert_eq!(enabled.status, 303, "{}", enabled.body);
    let member = s.get(&format!("/api/v1/users/{nina}"), &admin).await;
    assert_eq!(member.body["disabled"], json!(false), "{}", member.text);
}
