//! Pages in real headless Chromium: htmx loads under the strict Content-Security-Policy.

use crate::common;

use std::process::Command;

use common::browser::chromium;
use common::{Backend, TestServer};

/// The page's DOM after scripts ran.
fn dump_dom(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landing_page_renders_with_htmx_loaded() {
    let Some(browser) = chromium() else {
        common::service_missing("Chromium (apt-get install chromium)", "not found on PATH");
        return;
    };
    let server = TestServer::start(Backend::Sqlite).await.expect("sqlite always works");
    server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    // A visitor is sent to the sign-in page.
    let url = server.url("/");
    let dom = tokio::task::spawn_blocking({
        let browser = browser.clone();
        move || dump_dom(&browser, &url)
    })
    .await
    .unwrap();
    assert!(dom.contains("data-htmx-version=\"2."), "htmx did not run: {dom}");
    assert!(dom.contains("Theme: auto"), "app.js did not run: {dom}");
    assert!(dom.contains("id=\"sign-in\""), "the sign-in form rendered: {dom}");
    assert!(!dom.contains("acme"), "visitors learn nothing about tenants: {dom}");
    let url = server.url("/api/docs");
    let dom = tokio::task::spawn_blocking(move || dump_dom(&browser, &url))
        .await
        .unwrap();
    assert!(
        dom.contains("data-htmx-version=") && dom.contains("schema-Agent"),
        "{dom}"
    );
    // The headers the browser enforced.
    let resp = server.client.get(server.url("/login")).send().await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    let html = resp.text().await.unwrap();
    let src = html
        .split("src=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert!(src.starts_with("/static/vendor/htmx.min.js?v="), "{src}");
    let asset = server.client.get(server.url(&src)).send().await.unwrap();
    assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
    let stale = server
        .client
        .get(server.url("/static/vendor/htmx.min.js?v=old"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.headers()["cache-control"], "no-cache");
    let missing = server.client.get(server.url("/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(
        missing
            .text()
            .await
            .unwrap()
            .contains("There is no page at this address")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_can_be_overridden_from_the_data_dir() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        let dir = config.data_dir.join("templates/pages");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("login.html"),
            "{% extends \"layouts/base.html\" %}{% block content %}<h1>Our own start page</h1>{% endblock content %}",
        )
        .unwrap();
    })
    .await
    .expect("sqlite always works");
    let html = server
        .client
        .get(server.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<h1>Our own start page</h1>"), "{html}");
    assert!(
        html.contains("/static/css/app.css?v="),
        "the embedded layout is still used: {html}"
    );
    // htmx requests get fragments, not pages, for errors too.
    let fragment = server
        .client
        .get(server.url("/missing"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(fragment.status(), 404);
    let body = fragment.text().await.unwrap();
    assert!(
        body.trim_start().starts_with("<div class=\"alert alert-error\""),
        "{body}"
    );
    server.stop().await;
}

/// Signed in as a tenant admin, the pages people open most report no error in the console: no
/// Content-Security-Policy violation (htmx's indicator styles are ours), no missing favicon, no
/// failed script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_report_no_errors_in_the_console() {
    let Some(browser) = common::browser::Browser::launch().await else {
        return;
    };
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = s.tenant("acme", monti::domain::Role::TenantAdmin).await;
    s.post(
        "/api/v1/agents",
        &admin,
        serde_json::json!({ "name": "Ana", "extension": "1001" }),
    )
    .await
    .expect(201);
    let role = Some(("acme", monti::domain::Role::TenantAdmin));
    common::account(&s.store, "ada@acme.example", "correct horse battery", role, false).await;
    let mut page = browser.page().await;
    page.sign_in_at(&s.url("/"), "ada@acme.example", "correct horse battery")
        .await;
    let mut found = Vec::new();
    for path in [
        "/",
        "/board",
        "/alerts",
        "/admin",
        "/admin/agents",
        "/admin/agents/new",
        "/admin/alert-rules/new",
        "/admin/plugins",
        "/admin/users",
        "/admin/settings",
        "/account",
        "/api/docs",
    ] {
        page.goto(&s.url(path)).await;
        // What loads after the document (htmx, the board's stream) has its moment.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        found.extend(page.errors().await.into_iter().map(|e| format!("{path}: {e}")));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    // Asked for by browsers on their own.
    let icon = s.client.get(s.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    browser.close().await;
    s.stop().await;
}
