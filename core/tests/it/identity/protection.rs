//! What protects the pages and the API: CSRF and origin checks, sign-in throttling, API rate
//! limits, CORS, and tenants' sign-in providers kept out of the server's network.

use super::*;

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
