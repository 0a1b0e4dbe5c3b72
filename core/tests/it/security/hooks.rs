//! `/hooks/…` answers come from tenants' plugins but are served on the UI's origin: they must
//! never act with that origin's authority, and an anonymous caller naming a hook that does not
//! exist must cost next to nothing.

use std::path::Path;
use std::time::Duration;

use monti::domain::Role;
use serde_json::{Value, json};

use crate::common::browser::Browser;
use crate::common::{Backend, TestServer, account};

const PASSWORD: &str = "correct horse battery staple";

/// The hostile webhook plugin (tests/plugins/hostile-webhook), built once.
pub fn hostile_webhook() -> Vec<u8> {
    static BUILT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let wasm =
                monti_plugin_test::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plugins/hostile-webhook"))
                    .expect("the hostile webhook builds");
            std::fs::read(wasm).expect("read the component")
        })
        .clone()
}

/// Uploads a component through the API as a tenant admin does: the answer.
pub async fn upload(server: &TestServer, admin: &str, component: Vec<u8>) -> reqwest::Response {
    server
        .client
        .post(server.url("/api/v1/plugins"))
        .bearer_auth(admin)
        .header("content-type", "application/wasm")
        .body(component)
        .send()
        .await
        .unwrap()
}

/// Installs, configures and enables the hostile webhook in the token's tenant: its
/// installation id.
async fn install_hostile(server: &TestServer, admin: &str, routes: Value) -> String {
    let installed = upload(server, admin, hostile_webhook()).await;
    assert_eq!(installed.status(), 201);
    let installed: Value = installed.json().await.unwrap();
    server
        .patch(
            "/api/v1/plugins/hostile-webhook",
            admin,
            json!({ "config": { "routes": routes }, "enabled": true, "approve_capabilities": true }),
        )
        .await
        .expect(200);
    installed["id"].as_str().unwrap().to_owned()
}

/// A page that, served with the UI origin's authority, takes the signed-in admin's CSRF token
/// from the tokens page and creates a tenant-admin token with it.
fn attack_routes() -> Value {
    let script = r#"
        window.__ran = true;
        document.cookie = "monti_session=planted; path=/";
        (async () => {
            const page = await (await fetch('/admin/tokens', { credentials: 'include' })).text();
            const csrf = page.match(/name="_csrf" value="([^"]+)"/)[1];
            const body = new URLSearchParams({ _csrf: csrf, name: 'planted-by-plugin', role: 'tenant_admin' });
            const created = await fetch('/admin/tokens', { method: 'POST', body, credentials: 'include' });
            window.__stolen = await created.text();
            document.title = 'done ' + created.status;
        })();
    "#;
    let html = format!(
        "<!doctype html><html><head><title>hook</title><script src=\"evil.js\"></script><script>{script}</script></head><body>hello</body></html>"
    );
    json!({
        "/page": {
            "headers": [
                ["Content-Type", "text/html; charset=utf-8"],
                ["Content-Security-Policy", "default-src * 'unsafe-inline'"],
                ["X-Frame-Options", "ALLOWALL"],
            ],
            "body": html,
        },
        // A document type that is data, and passes as such: XHTML in XML runs scripts where
        // nothing stops it.
        "/doc": {
            "headers": [
                ["Content-Type", "text/xml"],
                ["Content-Security-Policy", "default-src * 'unsafe-inline'"],
                ["Set-Cookie", "monti_session=planted; Path=/; HttpOnly"],
                ["Set-Cookie", "monti_csrf=planted; Path=/"],
            ],
            "body": format!("<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>doc</title><script><![CDATA[{script}]]></script></head><body>hello</body></html>"),
        },
        "/echo": { "echo_headers": true },
        "/evil.js": {
            "headers": [["Content-Type", "application/javascript"]],
            "body": script,
        },
    })
}

/// Tenant B's admin installs a webhook plugin whose page tries to act for tenant A's signed-in
/// admin; A opens the link in Chromium. Nothing of A's changes, no script runs, A stays signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_served_by_a_webhook_plugin_cannot_act_for_a_signed_in_admin() {
    let Some(browser) = Browser::launch().await else { return };
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let victim = server.tenant("victim", Role::TenantAdmin).await;
    let attacker = server.tenant("attacker", Role::TenantAdmin).await;
    account(
        &server.store,
        "ada@victim.example",
        PASSWORD,
        Some(("victim", Role::TenantAdmin)),
        false,
    )
    .await;
    let installation = install_hostile(&server, &attacker, attack_routes()).await;
    let tokens_before = server.get("/api/v1/tokens", &victim).await.body["items"].clone();

    let mut page = browser.page().await;
    page.sign_in_at(&server.url("/admin/tokens"), "ada@victim.example", PASSWORD)
        .await;
    assert!(
        page.wait_for("location.pathname === '/admin/tokens'", Duration::from_secs(10))
            .await,
        "signed in"
    );
    // The HTML page: served as a download, nothing of it runs.
    page.call(
        "Page.navigate",
        json!({ "url": server.url(&format!("/hooks/attacker/{installation}/page")) }),
    )
    .await;
    let finished = page
        .wait_for("document.title.startsWith('done')", Duration::from_secs(3))
        .await;
    assert!(
        !finished,
        "the plugin's page ran: {}",
        page.eval("window.__stolen").await
    );
    // The XML document is shown, sandboxed: its script does not run.
    page.goto(&server.url(&format!("/hooks/attacker/{installation}/doc")))
        .await;
    assert_eq!(page.eval("document.title").await, json!("doc"), "the document is shown");
    let finished = page
        .wait_for("document.title.startsWith('done')", Duration::from_secs(3))
        .await;
    assert!(
        !finished,
        "the plugin's script ran: {}",
        page.eval("window.__stolen").await
    );
    assert_eq!(page.eval("window.__ran === true").await, json!(false), "no script runs");
    // Even a script run by hand in that document (an opaque origin) reads nothing of the UI's.
    let read = page
        .eval("fetch('/admin/tokens', { credentials: 'include' }).then(r => r.text()).catch(e => 'refused: ' + e)")
        .await;
    assert!(
        read.as_str().is_some_and(|r| r.starts_with("refused")),
        "the page could read the tokens page: {read}"
    );

    let tokens_after = server.get("/api/v1/tokens", &victim).await.body["items"].clone();
    assert_eq!(
        tokens_before, tokens_after,
        "no token was created in the victim's tenant"
    );
    page.goto(&server.url("/admin/tokens")).await;
    assert_eq!(page.path().await, "/admin/tokens", "the admin is still signed in");
    browser.close().await;
    server.stop().await;
}

/// What the hook answers over plain HTTP: the plugin's status and body, never its cookies or
/// policies; our sandbox policy on every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_answers_carry_no_cookies_and_are_sandboxed() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = server.tenant("attacker", Role::TenantAdmin).await;
    let installation = install_hostile(&server, &admin, attack_routes()).await;
    let answer = server
        .client
        .get(server.url(&format!("/hooks/attacker/{installation}/page")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let headers = answer.headers();
    assert!(headers.get("set-cookie").is_none(), "{headers:?}");
    let policies: Vec<_> = headers.get_all("content-security-policy").iter().collect();
    assert_eq!(policies.len(), 1, "{policies:?}");
    assert!(policies[0].to_str().unwrap().starts_with("sandbox"), "{policies:?}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(
        headers["content-type"], "application/octet-stream",
        "no page of the plugin's"
    );
    let script = server
        .client
        .get(server.url(&format!("/hooks/attacker/{installation}/evil.js")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        script.headers()["content-type"],
        "application/octet-stream",
        "no script either"
    );
    // A signed-in person's cookies and Monti credentials never reach the plugin.
    let echoed = server
        .client
        .get(server.url(&format!("/hooks/attacker/{installation}/echo")))
        .header("cookie", "monti_session=s3cret; monti_csrf=c5rf")
        .header("authorization", format!("Bearer {admin}"))
        .header("x-crm-signature", "abc")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(echoed.contains("x-crm-signature: abc"), "{echoed}");
    assert!(!echoed.contains("s3cret") && !echoed.contains("c5rf"), "{echoed}");
    assert!(!echoed.contains(&admin), "{echoed}");
    server.stop().await;
}

/// Hook requests find their installation in what the server already loaded: the component is
/// not read from the database for each request (a request for an unknown installation is a map
/// lookup). Shown by spoiling the stored component after the first request: a server that reads
/// it again can no longer run the plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_requests_do_not_read_components_from_the_database() {
    // Hundreds of unknown hooks from one address: more than its refusal budget (see `shield`),
    // which is not what this test is about.
    let server = TestServer::start_with(Backend::Sqlite, |c| c.http.anonymous_refusal_burst = 10_000)
        .await
        .unwrap();
    let admin = server.tenant("acme", Role::TenantAdmin).await;
    let routes = json!({ "/ping": { "headers": [["Content-Type", "text/plain"]], "body": "pong" } });
    let installation = install_hostile(&server, &admin, routes).await;
    let ping = || async {
        server
            .client
            .get(server.url(&format!("/hooks/acme/{installation}/ping")))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(ping().await.text().await.unwrap(), "pong");
    let raw = server.raw_db().await;
    let pool = raw.sqlite();
    sqlx::query("UPDATE plugin_packages SET component = x'00'")
        .execute(pool)
        .await
        .unwrap();
    for n in 0..200 {
        let unknown = server
            .client
            .post(server.url(&format!("/hooks/acme/inst_made_up_{n}/x")))
            .body(vec![0u8; 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404);
        let no_tenant = server
            .client
            .get(server.url(&format!("/hooks/nobody-{n}/{installation}/ping")))
            .send()
            .await
            .unwrap();
        assert_eq!(no_tenant.status(), 404);
    }
    let again = ping().await;
    assert_eq!(
        again.status(),
        200,
        "the loaded plugin answers without its stored component"
    );
    assert_eq!(again.text().await.unwrap(), "pong");
    server.stop().await;
}

/// With `http.hooks_host`, hooks answer only on that host and the UI is not served there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_can_have_a_host_of_their_own() {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.http.hooks_host = Some("hooks.test".into()))
        .await
        .unwrap();
    let admin = server.tenant("acme", Role::TenantAdmin).await;
    let routes = json!({ "/ping": { "headers": [["Content-Type", "text/plain"]], "body": "pong" } });
    let installation = install_hostile(&server, &admin, routes).await;
    let get = |path: String, host: Option<&'static str>| {
        let mut request = server.client.get(server.url(&path));
        if let Some(host) = host {
            request = request.header("host", host);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let hook = format!("/hooks/acme/{installation}/ping");
    assert_eq!(get(hook.clone(), Some("hooks.test")).await, 200);
    assert_eq!(get(hook, None).await, 404, "not on the UI's host");
    assert_eq!(
        get("/login".into(), Some("hooks.test")).await,
        404,
        "no UI on the hooks host"
    );
    assert_eq!(get("/login".into(), None).await, 200);
    assert_eq!(get("/readyz".into(), Some("hooks.test")).await, 200);
    server.stop().await;
}
