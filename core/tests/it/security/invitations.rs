//! Adding people: another tenant's admin cannot make someone its member, nor learn from the
//! answer whether an address has an account or what its owner is called. The person accepts an
//! invitation, signed in as the account of that address (or choosing a password when new).

use monti::domain::Role;
use monti::store::{accounts, tenants};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{TestServer, Visitor, account, audit_actions};

const PASSWORD: &str = "correct horse battery staple";

/// The path of an invitation link (`http://…/invitations/<token>`).
fn path_of(link: &str) -> String {
    let start = link.find("/invitations/").expect("an invitation link");
    link[start..].split_whitespace().next().unwrap().to_owned()
}

/// An answer with what legitimately differs between two invitations blanked out.
fn shape(body: &Value) -> Value {
    let mut body = body.clone();
    for key in ["id", "email", "created_at", "expires_at", "link"] {
        if body.get(key).is_some() {
            body[key] = json!("…");
        }
    }
    body
}

async fn member_tenants(s: &TestServer, user_id: &str) -> Vec<String> {
    accounts::memberships(&s.store, user_id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.tenant_slug)
        .collect()
}

both_backends!(another_tenant_cannot_take_someone_in_nor_learn_about_them);
async fn another_tenant_cannot_take_someone_in_nor_learn_about_them(s: &TestServer) {
    s.tenant("acme", Role::Viewer).await;
    let bravo = s.tenant("bravo", Role::TenantAdmin).await;
    account(
        &s.store,
        "boss@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let ana = accounts::create(
        &s.store,
        accounts::NewAccount {
            email: "ana@example.com".into(),
            display_name: Some("Anastasia Quux".into()),
            password_hash: Some(monti::auth::password::hash(PASSWORD).unwrap()),
            platform_admin: false,
        },
    )
    .await
    .unwrap()
    .id;
    let acme = tenants::by_slug(&s.store, "acme").await.unwrap().unwrap();
    accounts::grant_membership(&s.store, &ana, &acme.id, Role::Agent, &[], &[])
        .await
        .unwrap();

    // Bravo adds acme's Ana and an address nobody has: the same answer, with nothing of Ana's.
    let existing = s
        .post(
            "/api/v1/users",
            &bravo,
            json!({ "email": "Ana@Example.com", "role": "tenant_admin" }),
        )
        .await;
    existing.expect(202);
    let new = s
        .post(
            "/api/v1/users",
            &bravo,
            json!({ "email": "nobody@example.com", "role": "tenant_admin" }),
        )
        .await;
    new.expect(202);
    assert_eq!(existing.body["email"], "ana@example.com");
    assert_eq!(existing.body["status"], "pending");
    assert_eq!(
        shape(&existing.body),
        shape(&new.body),
        "{} vs {}",
        existing.text,
        new.text
    );
    assert!(
        !existing.text.contains("Anastasia") && !existing.text.contains(&ana),
        "the answer reveals the account: {}",
        existing.text
    );
    let link = existing.body["link"].as_str().expect("a link to hand over").to_owned();
    // Nothing changed for Ana: no membership in bravo, not in bravo's member list.
    assert_eq!(member_tenants(s, &ana).await, vec!["acme".to_owned()]);
    let listed = s.get("/api/v1/users", &bravo).await;
    assert!(!listed.text.contains("ana@example.com"), "{}", listed.text);
    let pending = s.get("/api/v1/invitations", &bravo).await;
    pending.expect(200);
    assert_eq!(pending.body["items"].as_array().unwrap().len(), 2);

    // So acme's admin can still make Ana a reset link (bravo could force a 403 here before).
    let mut boss = Visitor::new(s);
    assert_eq!(boss.sign_in("boss@example.com", PASSWORD).await.status, 303);
    boss.get("/admin/users").await;
    let made = boss
        .post(&format!("/admin/users/{ana}/reset-link"), &[("via", "link")])
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert!(made.body.contains("id=\"reset-link\""), "{}", made.body);

    // Someone else signed in cannot accept Ana's invitation.
    let mut boss_accepts = Visitor::new(s);
    boss_accepts.sign_in("boss@example.com", PASSWORD).await;
    let page = boss_accepts.get(&path_of(&link)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"other-account\"") && !page.body.contains("id=\"accept\""));
    let tried = boss_accepts.post(&format!("{}/accept", path_of(&link)), &[]).await;
    assert_eq!(tried.status, 403);
    assert_eq!(member_tenants(s, &ana).await, vec!["acme".to_owned()]);

    // Ana herself: sign in (the link survives the detour through /login), see, accept.
    let mut v = Visitor::new(s);
    let page = v.get(&path_of(&link)).await;
    assert!(page.body.contains("Tenant bravo") && page.body.contains("id=\"sign-in-to-accept\""));
    v.get(&format!("/login?next={}", path_of(&link))).await;
    let signed = v
        .post(
            "/login",
            &[
                ("email", "ana@example.com"),
                ("password", PASSWORD),
                ("next", &path_of(&link)),
            ],
        )
        .await;
    assert_eq!(signed.location.as_deref(), Some(path_of(&link).as_str()));
    let page = v.get(&path_of(&link)).await;
    assert!(page.body.contains("id=\"accept\""), "{}", page.body);
    let accepted = v.post(&format!("{}/accept", path_of(&link)), &[]).await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    let mut tenants_now = member_tenants(s, &ana).await;
    tenants_now.sort();
    assert_eq!(tenants_now, vec!["acme".to_owned(), "bravo".to_owned()]);
    let member = s.get(&format!("/api/v1/users/{ana}"), &bravo).await;
    member.expect(200);
    assert_eq!(member.body["role"], "tenant_admin");
    assert_eq!(v.get(&path_of(&link)).await.status, 404, "a link works once");
    assert!(
        audit_actions(s, Some("bravo"))
            .await
            .contains(&("invitation.accept".into(), "success".into()))
    );
}

both_backends!(invitations_are_listed_revoked_and_taken_up_by_new_people);
async fn invitations_are_listed_revoked_and_taken_up_by_new_people(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let first = s
        .post(
            "/api/v1/users",
            &admin,
            json!({ "email": "new@example.com", "display_name": "Nea", "role": "supervisor" }),
        )
        .await;
    first.expect(202);
    let id = first.id();
    let first_link = path_of(first.body["link"].as_str().unwrap());
    let revoked = s.delete(&format!("/api/v1/invitations/{id}"), &admin).await;
    revoked.expect(200);
    assert_eq!(revoked.body["status"], "revoked");
    assert_eq!(
        Visitor::new(s).get(&first_link).await.status,
        404,
        "revoked links stop working"
    );
    // Inviting again replaces the pending invitation: only the newest link works.
    let second = s
        .post(
            "/api/v1/users",
            &admin,
            json!({ "email": "new@example.com", "role": "supervisor" }),
        )
        .await;
    let stale = path_of(second.body["link"].as_str().unwrap());
    let third = s
        .post(
            "/api/v1/users",
            &admin,
            json!({ "email": "new@example.com", "display_name": "Nea", "role": "supervisor" }),
        )
        .await;
    let link = path_of(third.body["link"].as_str().unwrap());
    assert_eq!(Visitor::new(s).get(&stale).await.status, 404);
    // Someone new chooses a password and is in.
    let mut v = Visitor::new(s);
    let page = v.get(&link).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"register\"") && page.body.contains("value=\"Nea\""));
    let weak = v
        .post(
            &format!("{link}/register"),
            &[("display_name", "Nea"), ("password", "short"), ("confirm", "short")],
        )
        .await;
    assert_eq!(weak.status, 422);
    let joined = v
        .post(
            &format!("{link}/register"),
            &[("display_name", "Nea"), ("password", PASSWORD), ("confirm", PASSWORD)],
        )
        .await;
    assert_eq!(joined.status, 303, "{}", joined.body);
    assert_eq!(
        v.get("/admin/agents").await.status,
        200,
        "signed in, as supervisor of acme"
    );
    let users = s.get("/api/v1/users", &admin).await;
    let nea = users.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "new@example.com")
        .expect("a member now")
        .clone();
    assert_eq!(nea["role"], "supervisor");
    assert_eq!(nea["display_name"], "Nea");
    assert_eq!(Visitor::new(s).get(&link).await.status, 404, "used up");
    // Adding a member again is a conflict the admin can see in their own list anyway.
    s.post(
        "/api/v1/users",
        &admin,
        json!({ "email": "new@example.com", "role": "viewer" }),
    )
    .await
    .expect_problem(409);
    let actions = audit_actions(s, Some("acme")).await;
    for action in ["invitation.create", "invitation.revoke", "invitation.accept"] {
        assert!(
            actions.contains(&(action.into(), "success".into())),
            "{action}: {actions:?}"
        );
    }
}

both_backends!(a_registration_link_never_sets_an_existing_accounts_password);
async fn a_registration_link_never_sets_an_existing_accounts_password(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    s.tenant("bravo", Role::Viewer).await;
    let ana = account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("bravo", Role::Agent)),
        false,
    )
    .await;
    let invited = s
        .post(
            "/api/v1/users",
            &admin,
            json!({ "email": "ana@example.com", "role": "viewer" }),
        )
        .await;
    let link = path_of(invited.body["link"].as_str().unwrap());
    let mut v = Visitor::new(s);
    v.get(&link).await;
    let tried = v
        .post(
            &format!("{link}/register"),
            &[("password", "taken over now!!"), ("confirm", "taken over now!!")],
        )
        .await;
    assert_eq!(tried.status, 409);
    assert!(
        !tried.set_cookies.iter().any(|c| c.contains("session")),
        "not signed in"
    );
    assert_eq!(member_tenants(s, &ana).await, vec!["bravo".to_owned()]);
    assert_eq!(
        Visitor::new(s)
            .sign_in("ana@example.com", "taken over now!!")
            .await
            .status,
        401
    );
    assert_eq!(Visitor::new(s).sign_in("ana@example.com", PASSWORD).await.status, 303);
}

both_backends!(the_admin_pages_invite_the_same_way);
async fn the_admin_pages_invite_the_same_way(s: &TestServer) {
    s.tenant("acme", Role::Viewer).await;
    s.tenant("bravo", Role::Viewer).await;
    account(
        &s.store,
        "boss@example.com",
        PASSWORD,
        Some(("bravo", Role::TenantAdmin)),
        false,
    )
    .await;
    let ana = accounts::create(
        &s.store,
        accounts::NewAccount {
            email: "ana@example.com".into(),
            display_name: Some("Anastasia Quux".into()),
            password_hash: None,
            platform_admin: true,
        },
    )
    .await
    .unwrap()
    .id;
    let mut boss = Visitor::new(s);
    boss.sign_in("boss@example.com", PASSWORD).await;
    let mut pages = Vec::new();
    for email in ["ana@example.com", "nobody@example.com"] {
        boss.get("/admin/users").await;
        let page = boss
            .post(
                "/admin/users",
                &[("email", email), ("display_name", ""), ("role", "tenant_admin")],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("id=\"invitation-link\""), "{}", page.body);
        assert!(!page.body.contains("Anastasia") && !page.body.contains(&ana));
        pages.push(page.body);
    }
    let notice = |body: &str| {
        let start = body.find("id=\"invited\"").unwrap();
        let text = &body[start..];
        text[..text.find("<code").unwrap()]
            .replace("ana@example.com", "x")
            .replace("nobody@example.com", "x")
    };
    assert_eq!(notice(&pages[0]), notice(&pages[1]));
    let listed = boss.get("/admin/users").await;
    assert!(listed.body.contains("id=\"invitations\""));
    assert_eq!(listed.body.matches("data-invitation=").count(), 2);
    assert!(accounts::memberships(&s.store, &ana).await.unwrap().is_empty());
    // Revoking from the page.
    let id = listed
        .body
        .split("data-invitation=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let revoked = boss.post(&format!("/admin/invitations/{id}/revoke"), &[]).await;
    assert_eq!(revoked.status, 303);
    assert_eq!(
        boss.get("/admin/users").await.body.matches("data-invitation=").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_mail_server_the_invitation_goes_to_the_address_only() {
    let Some(smtp) = crate::common::smtp::SmtpServer::start(false).await else {
        return;
    };
    let s = TestServer::start_with(crate::common::Backend::Sqlite, |c| {
        crate::common::smtp::mail_through(c, smtp.port);
    })
    .await
    .unwrap();
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    s.tenant("bravo", Role::Viewer).await;
    account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("bravo", Role::Agent)),
        false,
    )
    .await;
    let mut answers = Vec::new();
    for email in ["ana@example.com", "nobody@example.com"] {
        let invited = s
            .post("/api/v1/users", &admin, json!({ "email": email, "role": "viewer" }))
            .await;
        invited.expect(202);
        assert_eq!(invited.body["delivery"], "email");
        assert!(
            invited.body.get("link").is_none(),
            "the admin never sees the link: {}",
            invited.text
        );
        answers.push(shape(&invited.body));
    }
    assert_eq!(answers[0], answers[1]);
    let started = std::time::Instant::now();
    while smtp.received().len() < 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no invitation emails"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Both mails read the same apart from the address and the link.
    let mails: Vec<(String, String)> = smtp
        .received()
        .iter()
        .map(|m| {
            let data = m["data"]
                .as_str()
                .unwrap()
                .replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=");
            (m["to"][0].as_str().unwrap().to_owned(), data)
        })
        .collect();
    let body = |data: &str| {
        let start = data.find("Hello,").expect("the invitation text");
        let text = &data[start..];
        let link = path_of(text);
        text.replace(&link, "<link>").trim().to_owned()
    };
    assert_eq!(body(&mails[0].1), body(&mails[1].1));
    assert!(
        mails[0].1.contains("Subject: You are invited to Tenant acme in Monti"),
        "{}",
        mails[0].1
    );
    let (_, ana_mail) = mails
        .iter()
        .find(|(to, _)| to == "ana@example.com")
        .expect("Ana's mail");
    let link = path_of(&ana_mail[ana_mail.find("Hello,").unwrap()..]);
    let mut ana = Visitor::new(&s);
    assert_eq!(ana.sign_in("ana@example.com", PASSWORD).await.status, 303);
    ana.get(&link).await;
    assert_eq!(ana.post(&format!("{link}/accept"), &[]).await.status, 303);
    let acme = tenants::by_slug(&s.store, "acme").await.unwrap().unwrap();
    let ana_id = accounts::by_email(&s.store, "ana@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert!(
        accounts::membership(&s.store, &ana_id, &acme.id)
            .await
            .unwrap()
            .is_some()
    );
    s.stop().await;
}

/// Invites `email` from the users page as the signed-in `admin`; returns the link's path.
async fn invite_from_page(admin: &mut Visitor, email: &str, role: &str) -> String {
    admin.get("/admin/users").await;
    let page = admin
        .post(
            "/admin/users",
            &[("email", email), ("display_name", ""), ("role", role)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let start = page.body.find("id=\"invitation-link\"").expect("the link");
    let shown = &page.body[start..];
    // Tera escapes the slashes.
    path_of(
        &shown[..shown.find("</code>").unwrap()]
            .replace('>', " ")
            .replace("&#x2F;", "/"),
    )
}

/// Chooses a password on an invitation page as someone new; returns the answer.
async fn register(s: &TestServer, link: &str) -> crate::common::Seen {
    let mut v = Visitor::new(s);
    v.get(link).await;
    v.post(
        &format!("{link}/register"),
        &[("display_name", "New"), ("password", PASSWORD), ("confirm", PASSWORD)],
    )
    .await
}

both_backends!(an_invitation_grants_nothing_its_maker_can_no_longer_grant);
async fn an_invitation_grants_nothing_its_maker_can_no_longer_grant(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    s.tenant("bravo", Role::Viewer).await;
    let boss = account(
        &s.store,
        "boss@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let carl = account(
        &s.store,
        "carl@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let ana = account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("bravo", Role::Agent)),
        false,
    )
    .await;
    // Invitations made by two admins in the browser and by an API token.
    let mut boss_browser = Visitor::new(s);
    assert_eq!(boss_browser.sign_in("boss@example.com", PASSWORD).await.status, 303);
    let from_boss = invite_from_page(&mut boss_browser, "new1@example.com", "tenant_admin").await;
    let to_ana = invite_from_page(&mut boss_browser, "ana@example.com", "supervisor").await;
    let mut carl_browser = Visitor::new(s);
    assert_eq!(carl_browser.sign_in("carl@example.com", PASSWORD).await.status, 303);
    let from_carl = invite_from_page(&mut carl_browser, "new2@example.com", "viewer").await;
    let issued = s
        .post(
            "/api/v1/tokens",
            &admin,
            json!({ "name": "provisioning", "role": "tenant_admin" }),
        )
        .await;
    issued.expect(201);
    let (token_id, token) = (issued.id(), issued.body["secret"].as_str().unwrap().to_owned());
    let from_token = s
        .post(
            "/api/v1/users",
            &token,
            json!({ "email": "new3@example.com", "role": "tenant_admin" }),
        )
        .await;
    from_token.expect(202);
    let from_token = path_of(from_token.body["link"].as_str().unwrap());
    let still_good = s
        .post(
            "/api/v1/users",
            &admin,
            json!({ "email": "new4@example.com", "role": "supervisor" }),
        )
        .await;
    let still_good = path_of(still_good.body["link"].as_str().unwrap());

    // Then boss is demoted, carl disabled, and the token revoked.
    s.patch(&format!("/api/v1/users/{boss}"), &admin, json!({ "role": "viewer" }))
        .await
        .expect(200);
    s.patch(&format!("/api/v1/users/{carl}"), &admin, json!({ "disabled": true }))
        .await
        .expect(200);
    s.delete(&format!("/api/v1/tokens/{token_id}"), &admin)
        .await
        .expect(204);

    for (link, email) in [
        (&from_boss, "new1@example.com"),
        (&from_carl, "new2@example.com"),
        (&from_token, "new3@example.com"),
    ] {
        let refused = register(s, link).await;
        assert_eq!(refused.status, 403, "{email}: {}", refused.body);
        assert!(refused.body.contains("id=\"invitation-refused\""), "{}", refused.body);
        assert!(refused.body.contains("can no longer grant"), "{}", refused.body);
        assert!(
            !refused.set_cookies.iter().any(|c| c.contains("session")),
            "not signed in"
        );
        assert!(
            accounts::by_email(&s.store, email).await.unwrap().is_none(),
            "no account is made for {email}"
        );
        assert_eq!(Visitor::new(s).get(link).await.status, 404, "the link is withdrawn");
    }
    // Someone with an account, signed in, accepting.
    let mut v = Visitor::new(s);
    assert_eq!(v.sign_in("ana@example.com", PASSWORD).await.status, 303);
    assert!(v.get(&to_ana).await.body.contains("id=\"accept\""));
    let refused = v.post(&format!("{to_ana}/accept"), &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("can no longer grant"));
    assert_eq!(member_tenants(s, &ana).await, vec!["bravo".to_owned()]);
    let users = s.get("/api/v1/users", &admin).await;
    for email in ["new1@", "new2@", "new3@", "ana@"] {
        assert!(!users.text.contains(email), "{email} joined: {}", users.text);
    }
    let denied = audit_actions(s, Some("acme"))
        .await
        .into_iter()
        .filter(|a| a == &("invitation.accept".to_owned(), "denied".to_owned()))
        .count();
    assert_eq!(denied, 4);

    // An invitation whose maker still may grant it works as before.
    let joined = register(s, &still_good).await;
    assert_eq!(joined.status, 303, "{}", joined.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_limited_per_tenant() {
    let Some(s) = TestServer::start(crate::common::Backend::Sqlite).await else {
        return;
    };
    let acme = s.tenant("acme", Role::TenantAdmin).await;
    let bravo = s.tenant("bravo", Role::TenantAdmin).await;
    let limit = monti::auth::invitations::PER_TENANT_PER_HOUR as usize;
    for i in 0..limit {
        s.post(
            "/api/v1/users",
            &acme,
            json!({ "email": format!("person{i}@example.com"), "role": "viewer" }),
        )
        .await
        .expect(202);
    }
    let refused = s
        .post(
            "/api/v1/users",
            &acme,
            json!({ "email": "one.more@example.com", "role": "viewer" }),
        )
        .await;
    refused.expect_problem(429);
    let wait: u64 = refused.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    // The admin pages share the budget.
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
    let page = boss
        .post(
            "/admin/users",
            &[("email", "paged@example.com"), ("display_name", ""), ("role", "viewer")],
        )
        .await;
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(!page.body.contains("id=\"invitation-link\""));
    // Other tenants are not held back.
    s.post(
        "/api/v1/users",
        &bravo,
        json!({ "email": "one.more@example.com", "role": "viewer" }),
    )
    .await
    .expect(202);
    s.stop().await;
}

both_backends!(the_users_page_lists_every_pending_invitation);
async fn the_users_page_lists_every_pending_invitation(s: &TestServer) {
    use monti::store::invitations::{self, NewInvitation};
    s.tenant("acme", Role::Viewer).await;
    account(
        &s.store,
        "boss@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let scope = tenants::system_scope(&s.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let new = |email: String| NewInvitation {
        email,
        display_name: None,
        role: Role::Viewer,
        team_scope: vec![],
        location_scope: vec![],
        lifetime_ms: 86_400_000,
    };
    invitations::create(&s.store, &scope, new("early@example.com".into()))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // More closed invitations since than the page shows at once.
    for i in 0..210 {
        let (closed, _) = invitations::create(&s.store, &scope, new(format!("gone{i}@example.com")))
            .await
            .unwrap();
        invitations::revoke(&s.store, &scope, &closed.id).await.unwrap();
    }
    let mut boss = Visitor::new(s);
    boss.sign_in("boss@example.com", PASSWORD).await;
    let page = boss.get("/admin/users").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body.matches("data-invitation=").count(), 1, "only the pending one");
    assert!(
        page.body.contains("early@example.com"),
        "the pending invitation is listed"
    );
}
