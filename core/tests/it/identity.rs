//! Identity and access through the browser-facing pages: first-run setup, local sign-in,
//! sessions, CSRF, throttling, scoped supervisors, suspended tenants, the audit trail.

use crate::both_backends;
use crate::common;

use common::{TestServer, Visitor, account, audit_actions};
use monti::domain::Role;
use monti::store::{ListParams, tenants};
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

/// Accepts the invitation the API answered with, signed in as the invited account: adding an
/// existing account to a tenant takes its owner's consent.
async fn accept_invitation(s: &TestServer, invited: &common::Reply, email: &str) {
    invited.expect(202);
    let link = invited.body["link"].as_str().expect("an invitation link");
    let path = &link[link.find("/invitations/").expect("a link to the invitation")..];
    let mut v = Visitor::new(s);
    assert_eq!(v.sign_in(email, PASSWORD).await.status, 303);
    assert_eq!(v.get(path).await.status, 200);
    assert_eq!(v.post(&format!("{path}/accept"), &[]).await.status, 303);
}

both_backends!(first_run_setup_creates_the_first_admin_once);
async fn first_run_setup_creates_the_first_admin_once(s: &TestServer) {
    let token = monti::web::auth_pages::prepare_setup(&s.store)
        .await
        .unwrap()
        .expect("no admin yet: a setup link");
    let mut v = Visitor::new(s);
    assert_eq!(v.get("/setup").await.status, 403, "no token, no setup");
    assert_eq!(v.get("/setup?token=guess").await.status, 403);
    let page = v.get(&format!("/setup?token={token}")).await;
    assert_eq!(page.status, 200);
    let weak = v
        .post(
            "/setup",
            &[
                ("token", &token),
                ("display_name", "Olga"),
                ("email", "olga@example.com"),
                ("password", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status, 422);
    assert!(
        weak.body.contains("field-error") && weak.body.contains("at least 12"),
        "{}",
        weak.body
    );
    let done = v
        .post(
            "/setup",
            &[
                ("token", &token),
                ("display_name", "Olga"),
                ("email", "olga@example.com"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/"));
    let session = done
        .set_cookies
        .iter()
        .find(|c| c.starts_with("monti_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    let home = v.get("/").await;
    assert_eq!(home.status, 200);
    assert!(
        home.body.contains("/platform/tenants"),
        "a platform admin sees the tenants: {}",
        home.body
    );
    // The link works once: afterwards setup is closed, even with the same token.
    let mut other = Visitor::new(s);
    assert_eq!(other.get(&format!("/setup?token={token}")).await.status, 303);
    other.get("/login").await;
    let again = other
        .post(
            "/setup",
            &[
                ("token", &token),
                ("display_name", "Eve"),
                ("email", "eve@example.com"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(again.status, 403);
    assert!(monti::web::auth_pages::prepare_setup(&s.store).await.unwrap().is_none());
    let actions = audit_actions(s, None).await;
    assert!(
        actions.contains(&("platform.setup".into(), "success".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("platform.setup".into(), "denied".into())),
        "{actions:?}"
    );
}

both_backends!(local_sign_in_sessions_and_sign_out);
async fn local_sign_in_sessions_and_sign_out(s: &TestServer) {
    s.tenant("acme", Role::Viewer).await;
    account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut a = Visitor::new(s);
    // Anonymous visitors are sent to sign in, and learn nothing.
    let home = a.get("/").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location.as_deref(), Some("/login"));
    let wrong = a.sign_in("ana@example.com", "not the password").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("id=\"login-error\""));
    let unknown = a.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(
        unknown.status, 401,
        "unknown accounts look exactly like wrong passwords"
    );
    let ok = a.sign_in("ana@example.com", PASSWORD).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(a.get("/").await.body.contains("Tenant acme"));
    // A second browser.
    let mut b = Visitor::new(s);
    assert_eq!(
        b.sign_in("ANA@example.com", PASSWORD).await.status,
        303,
        "emails are case-insensitive"
    );
    let account_page = a.get("/account").await;
    assert_eq!(
        account_page.body.matches("/revoke\"").count(),
        2,
        "both sessions are listed"
    );
    // Sign out everywhere else: b's session ends, a's stays.
    assert_eq!(a.post("/account/sessions/revoke-others", &[]).await.status, 303);
    assert_eq!(b.get("/account").await.status, 303, "b was signed out");
    assert_eq!(a.get("/account").await.status, 200);
    // Sign out.
    let out = a.post("/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert!(!a.has_cookie("monti_session"));
    assert_eq!(a.get("/account").await.status, 303);
    let actions = audit_actions(s, Some("acme")).await;
    for expected in [
        ("session.sign_in", "failure"),
        ("session.sign_in", "success"),
        ("session.revoke_all", "success"),
        ("session.sign_out", "success"),
    ] {
        assert!(
            actions.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {actions:?}"
        );
    }
    // An address without an account names nobody: counted in metrics and logged, not audited.
    let platform = audit_actions(s, None).await;
    assert!(
        !platform.contains(&("session.sign_in".into(), "failure".into())),
        "{platform:?}"
    );
}

both_backends!(csrf_and_origin_are_checked_on_every_browser_write);
async fn csrf_and_origin_are_checked_on_every_browser_write(s: &TestServer) {
    s.tenant("acme", Role::Viewer).await;
    account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut v = Visitor::new(s);
    // Even signing in needs the token bound to this browser.
    v.get("/login").await;
    let no_token = v
        .post_raw(
            "/login",
            &[
                ("email".into(), "ana@example.com".into()),
                ("password".into(), PASSWORD.into()),
            ],
            &[],
        )
        .await;
    assert_eq!(no_token.status, 403);
    assert_eq!(v.sign_in("ana@example.com", PASSWORD).await.status, 303);
    v.get("/admin/teams/new").await;
    let token = v.csrf.clone().unwrap();
    let forged = v
        .post_raw(
            "/admin/teams",
            &[("name".into(), "X".into()), ("_csrf".into(), "forged".into())],
            &[],
        )
        .await;
    assert_eq!(forged.status, 403);
    let cross = v
        .post_raw(
            "/admin/teams",
            &[("name".into(), "X".into()), ("_csrf".into(), token.clone())],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(
        cross.status, 403,
        "a post from another origin is refused even with a token"
    );
    let site = v
        .post_raw(
            "/admin/teams",
            &[("name".into(), "X".into()), ("_csrf".into(), token.clone())],
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(site.status, 403);
    // htmx sends the token in a header.
    let htmx = v
        .post_raw(
            "/admin/teams",
            &[("name".into(), "Via htmx".into())],
            &[("x-csrf-token", &token), ("hx-request", "true")],
        )
        .await;
    assert_eq!(htmx.status, 303, "{}", htmx.body);
    let scope = tenants::system_scope(&s.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let teams =
        monti::store::resource::list::<monti::store::entities::teams::Team>(&s.store, &scope, &ListParams::default())
            .await
            .unwrap();
    assert_eq!(teams.items.len(), 1, "only the genuine request created a team");
    let actions = audit_actions(s, Some("acme")).await;
    assert_eq!(
        actions
            .iter()
            .filter(|(a, o)| a == "security.csrf_rejected" && o == "denied")
            .count(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_throttled_per_account_with_backoff() {
    let s = TestServer::start_with(common::Backend::Sqlite, |c| {
        c.auth.sign_in_free_failures = 3;
        c.auth.sign_in_per_minute_per_ip = 1000;
    })
    .await
    .unwrap();
    s.tenant("acme", Role::Viewer).await;
    account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::Supervisor)),
        false,
    )
    .await;
    let mut v = Visitor::new(&s);
    for _ in 0..3 {
        assert_eq!(v.sign_in("ana@example.com", "wrong password!").await.status, 401);
    }
    let locked = v.sign_in("ana@example.com", PASSWORD).await;
    assert_eq!(locked.status, 429, "locked even with the right password");
    let retry: u64 = locked.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Other accounts are unaffected.
    account(
        &s.store,
        "ben@example.com",
        PASSWORD,
        Some(("acme", Role::Viewer)),
        false,
    )
    .await;
    assert_eq!(Visitor::new(&s).sign_in("ben@example.com", PASSWORD).await.status, 303);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        v.sign_in("ana@example.com", PASSWORD).await.status,
        303,
        "after the wait it works"
    );
    // Throttled attempts are counted and logged, never one audit row each.
    let actions = audit_actions(&s, None).await;
    assert!(
        !actions.contains(&("session.sign_in".into(), "denied".into())),
        "{actions:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_throttled_per_address() {
    let s = TestServer::start_with(common::Backend::Sqlite, |c| c.auth.sign_in_per_minute_per_ip = 3)
        .await
        .unwrap();
    let mut v = Visitor::new(&s);
    for i in 0..3 {
        assert_eq!(
            v.sign_in(&format!("user{i}@example.com"), "whatever12345").await.status,
            401
        );
    }
    assert_eq!(v.sign_in("user9@example.com", "whatever12345").await.status, 429);
    s.stop().await;
}

both_backends!(scoped_supervisors_see_only_their_teams);
async fn scoped_supervisors_see_only_their_teams(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let north = s.post("/api/v1/teams", &admin, json!({ "name": "North" })).await.id();
    let south = s.post("/api/v1/teams", &admin, json!({ "name": "South" })).await.id();
    let mine = s
        .post(
            "/api/v1/agents",
            &admin,
            json!({ "name": "Nina North", "team_id": north }),
        )
        .await
        .id();
    let theirs = s
        .post(
            "/api/v1/agents",
            &admin,
            json!({ "name": "Sven South", "team_id": south }),
        )
        .await
        .id();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_end() {
    let s = TestServer::start_with(common::Backend::Sqlite, |c| {
        c.auth.session_idle_timeout = std::time::Duration::from_secs(1);
    })
    .await
    .unwrap();
    s.tenant("acme", Role::Viewer).await;
    account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::Viewer)),
        false,
    )
    .await;
    let mut v = Visitor::new(&s);
    assert_eq!(v.sign_in("ana@example.com", PASSWORD).await.status, 303);
    assert_eq!(v.get("/account").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_eq!(v.get("/account").await.status, 303, "idle too long");
    s.stop().await;
}

both_backends!(disabled_accounts_and_password_changes);
async fn disabled_accounts_and_password_changes(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let id = account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::Supervisor)),
        false,
    )
    .await;
    let mut a = Visitor::new(s);
    let mut b = Visitor::new(s);
    assert_eq!(a.sign_in("ana@example.com", PASSWORD).await.status, 303);
    assert_eq!(b.sign_in("ana@example.com", PASSWORD).await.status, 303);
    a.get("/account").await;
    let wrong = a
        .post(
            "/account/password",
            &[
                ("current", "nope nope nope"),
                ("password", "a new passphrase here"),
                ("confirm", "a new passphrase here"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422);
    let changed = a
        .post(
            "/account/password",
            &[
                ("current", PASSWORD),
                ("password", "a new passphrase here"),
                ("confirm", "a new passphrase here"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303);
    assert_eq!(
        b.get("/account").await.status,
        303,
        "other sessions end on a password change"
    );
    assert_eq!(a.get("/account").await.status, 200);
    assert_eq!(Visitor::new(s).sign_in("ana@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        Visitor::new(s)
            .sign_in("ana@example.com", "a new passphrase here")
            .await
            .status,
        303
    );
    // An admin disables the member (through the API, as through the users page): the session
    // in the tenant ends and sign-in stops.
    s.patch(&format!("/api/v1/users/{id}"), &admin, json!({ "disabled": true }))
        .await
        .expect(200);
    assert_eq!(a.get("/").await.status, 303, "signed out of the tenant");
    monti::store::accounts::set_disabled(&s.store, &id, true).await.unwrap();
    assert_eq!(a.get("/account").await.status, 303, "a disabled account has no session");
    assert_eq!(
        Visitor::new(s)
            .sign_in("ana@example.com", "a new passphrase here")
            .await
            .status,
        401
    );
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_are_rate_limited() {
    let s = TestServer::start_with(common::Backend::Sqlite, |c| {
        c.auth.api_rate_per_second = 1.0;
        c.auth.api_burst = 3;
    })
    .await
    .unwrap();
    let token = s.tenant("acme", Role::Viewer).await;
    let other = s.tenant("acme", Role::Viewer).await;
    for _ in 0..3 {
        s.get("/api/v1/teams", &token).await.expect(200);
    }
    let limited = s.get("/api/v1/teams", &token).await;
    limited.expect_problem(429);
    assert_eq!(limited.header("retry-after"), Some("1"));
    s.get("/api/v1/teams", &other).await.expect(200);
    s.stop().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_admits_only_configured_origins() {
    let s = TestServer::start_with(common::Backend::Sqlite, |c| {
        c.auth.cors_origins = vec!["https://wall.example.com".into()];
    })
    .await
    .unwrap();
    let token = s.tenant("acme", Role::Viewer).await;
    let preflight = |origin: &'static str| {
        s.client
            .request(reqwest::Method::OPTIONS, s.url("/api/v1/teams"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://wall.example.com").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://wall.example.com");
    let evil = preflight("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let get = s
        .client
        .get(s.url("/api/v1/teams"))
        .bearer_auth(&token)
        .header("origin", "https://wall.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["access-control-allow-origin"], "https://wall.example.com");
    // Pages are not opened to other origins.
    let page = s
        .client
        .get(s.url("/login"))
        .header("origin", "https://wall.example.com")
        .send()
        .await
        .unwrap();
    assert!(page.headers().get("access-control-allow-origin").is_none());
    s.stop().await;
}

/// A small SMTP server that accepts every message and keeps it (for the reset-email test).
struct SmtpSink {
    port: u16,
    messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

async fn smtp_sink() -> SmtpSink {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = messages.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            kept.lock().unwrap().push(std::mem::take(body));
                            data = None;
                            let _ = write.write_all(b"250 queued\r\n").await;
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"250 OK\r\n",
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    SmtpSink { port, messages }
}

impl SmtpSink {
    /// Waits for the next message and returns it with quoted-printable undone.
    async fn next(&self, seen: usize) -> Option<String> {
        for _ in 0..100 {
            if let Some(m) = self.messages.lock().unwrap().get(seen) {
                return Some(m.replace("=\n", "").replace("=3D", "="));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        None
    }
}

fn reset_link_in(mail: &str) -> String {
    let start = mail.find("/reset?token=").expect("a reset link in the mail");
    let rest = &mail[start..];
    rest.split_whitespace().next().unwrap().to_owned()
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
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = sink.port;
        c.smtp.security = monti::config::SmtpSecurity::None;
        c.smtp.from = "Monti <monti@example.com>".into();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_speaks_german_including_validation_messages() {
    let s = TestServer::start(common::Backend::Sqlite).await.unwrap();
    s.tenant("acme", Role::Viewer).await;
    account(
        &s.store,
        "ute@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut v = Visitor::new(&s);
    v.sign_in("ute@example.com", PASSWORD).await;
    v.get("/account").await;
    assert_eq!(v.post("/account/locale", &[("locale", "de")]).await.status, 303);
    let form = v.get("/admin/teams/new").await;
    assert!(
        form.body.contains("<html lang=\"de\">") && form.body.contains("Beschreibung"),
        "{}",
        form.body
    );
    let invalid = v.post("/admin/teams", &[("name", ""), ("description", "")]).await;
    assert_eq!(invalid.status, 422);
    assert!(invalid.body.contains("darf nicht leer sein"), "{}", invalid.body);
    assert!(invalid.body.contains("Bitte korrigieren Sie die markierten Felder."));
    v.post("/admin/teams", &[("name", "Nord"), ("description", "")]).await;
    v.get("/admin/teams/new").await;
    let taken = v.post("/admin/teams", &[("name", "nord"), ("description", "")]).await;
    assert!(
        taken.body.contains("ein Team mit diesem Namen gibt es schon"),
        "{}",
        taken.body
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_provider_cannot_point_into_the_servers_network() {
    let s = TestServer::start(common::Backend::Sqlite).await.unwrap();
    s.tenant("acme", Role::Viewer).await;
    account(
        &s.store,
        "ada@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut admin = Visitor::new(&s);
    admin.sign_in("ada@example.com", PASSWORD).await;
    admin.get("/admin/settings").await;
    let fields = |issuer: &'static str| {
        vec![
            ("slug", "inside"),
            ("display_name", "Inside"),
            ("issuer", issuer),
            ("client_id", "monti"),
            ("roles_claim", "groups"),
            ("role_map", "admins = viewer"),
            ("enabled", "on"),
        ]
    };
    let plain = admin
        .post("/admin/settings/sso", &fields("http://sso.example.com"))
        .await;
    assert_eq!(plain.status, 422);
    assert!(plain.body.contains("https"));
    assert_eq!(
        admin
            .post("/admin/settings/sso", &fields("https://169.254.169.254/latest"))
            .await
            .status,
        303
    );
    // Anyone may start a sign-in; the server refuses to call the internal address.
    let started = Visitor::new(&s).get("/auth/oidc/inside/start").await;
    assert_eq!(started.status, 503);
    assert!(
        !started.body.contains("169.254"),
        "no internal details on the page: {}",
        started.body
    );
    let params = ListParams(vec![
        ("limit".into(), "50".into()),
        ("outcome".into(), "failure".into()),
    ]);
    let log = monti::store::audit::list_platform(&s.store, &params).await.unwrap();
    assert!(log.items.iter().any(|e| {
        e.detail
            .as_deref()
            .unwrap_or_default()
            .contains("private or local address")
    }));
    s.stop().await;
}

both_backends!(the_board_is_a_plain_page_within_the_supervisors_scope);
async fn the_board_is_a_plain_page_within_the_supervisors_scope(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let north = s.post("/api/v1/teams", &admin, json!({ "name": "North" })).await.id();
    let south = s.post("/api/v1/teams", &admin, json!({ "name": "South" })).await.id();
    let nina = s
        .post(
            "/api/v1/agents",
            &admin,
            json!({ "name": "Nina North", "team_id": north }),
        )
        .await
        .id();
    let sven = s
        .post(
            "/api/v1/agents",
            &admin,
            json!({ "name": "Sven South", "team_id": south }),
        )
        .await
        .id();
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
