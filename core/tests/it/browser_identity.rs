//! Signing in as a person does, in real headless Chromium: through a real OpenID provider
//! (panva/oidc-provider, started here) with roles mapped from its groups claim; with a local
//! password; through first-run setup; and as a supervisor scoped to one team.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::browser::Browser;
use common::{Backend, TestServer, account};
use monti::config::{OidcProviderConfig, Secret};
use monti::domain::Role;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const PASSWORD: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(15);

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct OpenIdProvider {
    child: tokio::process::Child,
    issuer: String,
}

impl OpenIdProvider {
    async fn start(port: u16, monti_base: &str) -> Option<OpenIdProvider> {
        if let Err(e) = common::npm_ci(&provider_dir(), "oidc-provider") {
            common::service_missing("Node.js with npm (for oidc-provider)", &e);
            return None;
        }
        let mut child = tokio::process::Command::new("node")
            .arg("server.mjs")
            .current_dir(provider_dir())
            .env("PORT", port.to_string())
            .env(
                "REDIRECT_URI",
                format!("{monti_base}/auth/oidc/test/callback,{monti_base}/auth/oidc/acme-sso/callback"),
            )
            .env("POST_LOGOUT_URI", format!("{monti_base}/login?notice=login.signed_out"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let mut lines = BufReader::new(child.stdout.take()?).lines();
        let ready = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("listening") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        assert!(ready, "oidc-provider did not start");
        // Keep reading: a closed pipe would kill the provider at its next log line.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(OpenIdProvider {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
        })
    }
}

fn provider_config(issuer: &str) -> OidcProviderConfig {
    OidcProviderConfig {
        display_name: "Test IdP".into(),
        issuer: issuer.into(),
        client_id: "monti".into(),
        client_secret: Some(Secret::new("monti-test-secret")),
        scopes: vec!["openid".into(), "email".into(), "profile".into(), "groups".into()],
        tenant: Some("acme".into()),
        roles_claim: "groups".into(),
        role_map: [
            ("/monti/supervisors", "supervisor"),
            ("/monti/admins", "tenant_admin"),
            ("/monti/operators", "platform_admin"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..Default::default()
    }
}

/// Ends the provider's own session (its end-session page asks to confirm).
async fn provider_logout(page: &mut common::browser::Page, issuer: &str) {
    page.goto(&format!("{issuer}/session/end")).await;
    page.eval(
        "(document.querySelector('button[name=logout]') || document.querySelector('button[type=submit]')).click()",
    )
    .await;
    assert!(
        page.wait_for("document.body.innerText.toLowerCase().includes('sign')", WAIT)
            .await,
        "{}",
        page.text().await
    );
}

/// Signs in at the provider's development login form.
async fn provider_login(page: &mut common::browser::Page, who: &str) {
    let found = page.wait_for("document.querySelector('input[name=login]')", WAIT).await;
    assert!(
        found,
        "the provider's login form: {} {}",
        page.eval("location.href").await,
        page.text().await
    );
    page.fill("input[name=login]", who).await;
    page.fill("input[name=password]", "anything").await;
    page.click("button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_through_a_real_openid_provider() {
    let Some(browser) = Browser::launch().await else { return };
    let idp_port = free_port();
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.auth.oidc.insert("test".into(), provider_config(&issuer));
    })
    .await
    .unwrap();
    server.tenant("acme", Role::Viewer).await;
    let Some(mut idp) = OpenIdProvider::start(idp_port, &server.base).await else {
        return;
    };
    assert_eq!(idp.issuer, issuer);
    let mut page = browser.page().await;

    // Alice is in /monti/supervisors: she becomes a supervisor of acme on first sign-in.
    page.goto(&server.url("/login")).await;
    let html = page.eval("document.documentElement.outerHTML").await;
    assert!(html.as_str().unwrap_or_default().contains("data-provider"), "{html}");
    page.click("a[data-provider=test]").await;
    provider_login(&mut page, "alice").await;
    assert!(
        page.wait_for(
            "location.pathname === '/' && document.body.innerText.includes('Tenant acme')",
            WAIT
        )
        .await,
        "signed in to Monti: {} {}",
        page.path().await,
        page.text().await
    );
    assert!(page.text().await.contains("Supervisor"));
    let alice = monti::store::accounts::by_email(&server.store, "alice@example.com")
        .await
        .unwrap()
        .expect("provisioned");
    assert!(alice.password_hash.is_none(), "an SSO account has no local password");
    let membership = monti::store::accounts::memberships(&server.store, &alice.id)
        .await
        .unwrap();
    assert_eq!(membership[0].role, "supervisor");

    // Sign-out ends the session here and at the provider (RP-initiated logout).
    page.click("form[action='/logout'] button").await;
    let left = format!("location.port === '{idp_port}' || location.pathname === '/login'");
    let went = page.wait_for(&left, WAIT).await;
    assert!(went, "{} {}", page.eval("location.href").await, page.text().await);
    if page.eval("location.port").await == json!(idp_port.to_string()) {
        // The provider asks to confirm.
        page.wait_for(
            "document.querySelector('button[name=logout], button[type=submit]')",
            WAIT,
        )
        .await;
        page.eval(
            "(document.querySelector('button[name=logout]') || document.querySelector('button[type=submit]')).click()",
        )
        .await;
    }
    assert!(
        page.wait_for("location.pathname === '/login'", WAIT).await,
        "back at Monti: {}",
        page.text().await
    );

    // Mallory's groups map to nothing: a clear "no access", and no account is created.
    page.goto(&server.url("/login")).await;
    page.click("a[data-provider=test]").await;
    provider_login(&mut page, "mallory").await;
    assert!(
        page.wait_for("document.body.innerText.includes('no access')", WAIT)
            .await,
        "no-access page: {}",
        page.text().await
    );
    assert!(
        monti::store::accounts::by_email(&server.store, "mallory@example.com")
            .await
            .unwrap()
            .is_none()
    );
    // She is still signed in at the provider; end that before the next person signs in.
    provider_logout(&mut page, &issuer).await;

    // Olga is in /monti/operators: a platform admin.
    page.goto(&server.url("/login")).await;
    page.click("a[data-provider=test]").await;
    provider_login(&mut page, "olga").await;
    assert!(
        page.wait_for(
            "location.pathname === '/' && document.querySelector('a[href=\"/platform/tenants\"]')",
            WAIT
        )
        .await,
        "platform view: {}",
        page.text().await
    );

    // Every step is in the audit log.
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let params = monti::store::ListParams(vec![("limit".into(), "500".into())]);
    let log = monti::store::resource::list::<monti::store::audit::AuditRow>(&server.store, &scope, &params)
        .await
        .unwrap();
    let actions: Vec<(String, String)> = log
        .items
        .iter()
        .map(|e| (e.action.clone(), e.outcome.clone()))
        .collect();
    for expected in [
        ("user.provision", "success"),
        ("session.sign_in", "success"),
        ("session.sign_in", "denied"),
        ("session.sign_out", "success"),
    ] {
        assert!(
            actions.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {actions:?}"
        );
    }
    let _ = idp.child.kill().await;
    browser.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_setup_then_local_sign_in_in_the_browser() {
    let Some(browser) = Browser::launch().await else { return };
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let token = monti::web::auth_pages::prepare_setup(&server.store)
        .await
        .unwrap()
        .unwrap();
    let mut page = browser.page().await;
    page.goto(&server.url(&format!("/setup?token={token}"))).await;
    page.fill("#display_name", "Olga Owner").await;
    page.fill("#email", "olga@example.com").await;
    page.fill("#password", PASSWORD).await;
    page.fill("#confirm", PASSWORD).await;
    page.click("button[type=submit]").await;
    assert!(
        page.wait_for(
            "location.pathname === '/' && document.querySelector('a[href=\"/platform/tenants\"]')",
            WAIT
        )
        .await,
        "{}",
        page.text().await
    );
    // Create a tenant from the platform page.
    page.goto(&server.url("/platform/tenants")).await;
    page.fill("#t-slug", "acme").await;
    page.fill("#t-name", "Acme Support").await;
    page.fill("#t-tz", "Europe/Berlin").await;
    page.click("form[action='/platform/tenants'] button[type=submit]").await;
    assert!(
        page.wait_for("document.querySelector('tr[data-slug=acme]')", WAIT)
            .await,
        "{}",
        page.text().await
    );
    // Sign out, and in again with the password.
    page.click("form[action='/logout'] button").await;
    assert!(page.wait_for("location.pathname === '/login'", WAIT).await);
    page.fill("#email", "olga@example.com").await;
    page.fill("#password", "wrong wrong wrong").await;
    page.click("#sign-in").await;
    assert!(page.wait_for("document.querySelector('#login-error')", WAIT).await);
    page.fill("#password", PASSWORD).await;
    page.click("#sign-in").await;
    assert!(
        page.wait_for("location.pathname === '/'", WAIT).await,
        "{}",
        page.text().await
    );
    browser.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_supervisor_sees_only_their_team_in_the_browser() {
    let Some(browser) = Browser::launch().await else { return };
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", Role::TenantAdmin).await;
    let north = server
        .post("/api/v1/teams", &admin, json!({ "name": "North" }))
        .await
        .id();
    let south = server
        .post("/api/v1/teams", &admin, json!({ "name": "South" }))
        .await
        .id();
    for (name, team) in [("Nina North", &north), ("Nils North", &north), ("Sven South", &south)] {
        server
            .post("/api/v1/agents", &admin, json!({ "name": name, "team_id": team }))
            .await
            .expect(201);
    }
    account(&server.store, "sue@example.com", PASSWORD, None, false).await;
    let invited = server
        .post(
            "/api/v1/users",
            &admin,
            json!({ "email": "sue@example.com", "role": "supervisor", "team_scope": [north] }),
        )
        .await;
    invited.expect(202);
    // Sue's account exists already, so she accepts before she is a member.
    let link = invited.body["link"].as_str().expect("an invitation link");
    let path = &link[link.find("/invitations/").unwrap()..];
    let mut sue = common::Visitor::new(&server);
    assert_eq!(sue.sign_in("sue@example.com", PASSWORD).await.status, 303);
    sue.get(path).await;
    assert_eq!(sue.post(&format!("{path}/accept"), &[]).await.status, 303);
    let mut page = browser.page().await;
    page.goto(&server.url("/admin/agents")).await;
    assert_eq!(page.path().await, "/login", "sign in first");
    page.fill("#email", "sue@example.com").await;
    page.fill("#password", PASSWORD).await;
    page.click("#sign-in").await;
    assert!(
        page.wait_for("location.pathname === '/admin/agents'", WAIT).await,
        "back where she wanted to go"
    );
    let rows = page
        .eval("Array.from(document.querySelectorAll('#entries tbody tr[data-id]')).map(r => r.cells[0].innerText)")
        .await;
    assert_eq!(rows, json!(["Nils North", "Nina North"]));
    assert_eq!(
        page.eval("!!document.querySelector('#new-entry')").await,
        json!(false),
        "read-only"
    );
    if let Ok(dir) = std::env::var("MONTI_SCREENSHOTS") {
        page.screenshot(&Path::new(&dir).join("scoped-supervisor-agents.png"))
            .await;
    }
    browser.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_configures_single_sign_on_for_their_tenant() {
    let Some(browser) = Browser::launch().await else { return };
    let idp_port = free_port();
    let issuer = format!("http://127.0.0.1:{idp_port}");
    // The test provider runs on this machine over plain http; by default a tenant's provider
    // must be public and https (see tokens.rs and the unit tests of auth::oidc).
    let server = TestServer::start_with(Backend::Sqlite, |c| c.auth.tenant_providers_private = true)
        .await
        .unwrap();
    server.tenant("acme", Role::Viewer).await;
    server.tenant("other", Role::Viewer).await;
    let Some(mut idp) = OpenIdProvider::start(idp_port, &server.base).await else {
        return;
    };
    account(
        &server.store,
        "ada@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut admin = common::Visitor::new(&server);
    assert_eq!(admin.sign_in("ada@example.com", PASSWORD).await.status, 303);
    admin.get("/admin/settings").await;
    let fields = |role_map: &'static str| {
        vec![
            ("slug", "acme-sso"),
            ("display_name", "Acme login"),
            ("issuer", issuer.as_str()),
            ("client_id", "monti"),
            ("client_secret", "monti-test-secret"),
            ("scopes", "openid, email, profile, groups"),
            ("roles_claim", "groups"),
            ("role_map", role_map),
            ("enabled", "on"),
        ]
    };
    // A tenant's provider can never make anyone a platform admin.
    let escalate = admin
        .post("/admin/settings/sso", &fields("/monti/operators = platform_admin"))
        .await;
    assert_eq!(escalate.status, 422, "{}", escalate.body);
    assert!(escalate.body.contains("platform_admin"));
    let added = admin
        .post("/admin/settings/sso", &fields("/monti/supervisors = supervisor"))
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let settings = admin.get("/admin/settings").await;
    assert!(
        settings.body.contains("acme-sso") && !settings.body.contains("monti-test-secret"),
        "the secret is write-only"
    );

    let mut page = browser.page().await;
    page.goto(&server.url("/login")).await;
    assert_eq!(
        page.eval("!!document.querySelector('a[data-provider=\"acme-sso\"]')")
            .await,
        json!(false),
        "not on the shared page"
    );
    page.goto(&server.url("/login?tenant=other")).await;
    assert_eq!(
        page.eval("!!document.querySelector('a[data-provider=\"acme-sso\"]')")
            .await,
        json!(false),
        "nor on another tenant's"
    );
    page.goto(&server.url("/login?tenant=acme")).await;
    page.click("a[data-provider=\"acme-sso\"]").await;
    provider_login(&mut page, "alice").await;
    assert!(
        page.wait_for(
            "location.pathname === '/' && document.body.innerText.includes('Tenant acme')",
            WAIT
        )
        .await,
        "{}",
        page.text().await
    );
    assert!(page.text().await.contains("Supervisor"));
    // Signing out goes through the provider's end-session page and back.
    page.click("form[action='/logout'] button").await;
    let at_provider = format!("location.port === '{idp_port}'");
    assert!(page.wait_for(&at_provider, WAIT).await, "{}", page.text().await);
    page.eval(
        "(document.querySelector('button[name=logout]') || document.querySelector('button[type=submit]')).click()",
    )
    .await;
    assert!(
        page.wait_for("location.pathname === '/login'", WAIT).await,
        "{}",
        page.text().await
    );
    // The provider's idea of an email address cannot reach accounts beyond this tenant: Bob runs
    // the installation, so the tenant's provider may not sign him in.
    account(&server.store, "bob@example.com", PASSWORD, None, true).await;
    page.goto(&server.url("/login?tenant=acme")).await;
    page.click("a[data-provider=\"acme-sso\"]").await;
    provider_login(&mut page, "bob").await;
    assert!(
        page.wait_for("document.body.innerText.includes('no access')", WAIT)
            .await,
        "{}",
        page.text().await
    );
    let bob = monti::store::accounts::by_email(&server.store, "bob@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(bob.platform_admin, "untouched");
    assert!(
        monti::store::accounts::memberships(&server.store, &bob.id)
            .await
            .unwrap()
            .is_empty()
    );
    // Disabled, the provider no longer signs anyone in.
    let provider_id = monti::store::oidc_providers::list(
        &server.store,
        &monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
            .await
            .unwrap(),
    )
    .await
    .unwrap()[0]
        .id
        .clone();
    admin.get("/admin/settings").await;
    let mut off = fields("/monti/supervisors = supervisor");
    off.retain(|(k, _)| *k != "enabled");
    assert_eq!(
        admin
            .post(&format!("/admin/settings/sso/{provider_id}"), &off)
            .await
            .status,
        303
    );
    assert_eq!(
        common::Visitor::new(&server)
            .get("/auth/oidc/acme-sso/start")
            .await
            .status,
        404
    );
    let _ = idp.child.kill().await;
    browser.close().await;
    server.stop().await;
}
